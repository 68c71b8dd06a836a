//! The order status machine: `PENDING → CONFIRMED → SHIPPED → DELIVERED`, and
//! `PENDING | CONFIRMED → CANCELLED`. Anything else is refused, never a silent no-op.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{DomainError, ParseEnumError};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [Self; 5] = [Self::Pending, Self::Confirmed, Self::Shipped, Self::Delivered, Self::Cancelled];
    const NAMES: &[&str] = &["PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"];

    /// The wire name: `PENDING`, `CONFIRMED`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// The status after `transition`, or `DomainError::InvalidTransition`.
    pub fn apply(self, transition: Transition) -> Result<Self, DomainError> {
        match (self, transition) {
            (Self::Pending, Transition::Confirm) => Ok(Self::Confirmed),
            (Self::Confirmed, Transition::Ship) => Ok(Self::Shipped),
            (Self::Shipped, Transition::Deliver) => Ok(Self::Delivered),
            (Self::Pending | Self::Confirmed, Transition::Cancel) => Ok(Self::Cancelled),
            (from, transition) => Err(DomainError::InvalidTransition { from, transition }),
        }
    }

    /// Items and shipping address can change only while the order is pending.
    pub const fn is_editable(self) -> bool {
        matches!(self, Self::Pending)
    }

    /// No transition leaves this status.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Delivered | Self::Cancelled)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = ParseEnumError;

    /// Exactly the wire names; `pending` is refused like any other unknown value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| ParseEnumError {
            kind: "order status",
            value: s.to_owned(),
            allowed: Self::NAMES,
        })
    }
}

/// A command that moves an order to another status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    Confirm,
    Ship,
    Deliver,
    Cancel,
}

impl Transition {
    pub const ALL: [Self; 4] = [Self::Confirm, Self::Ship, Self::Deliver, Self::Cancel];
    const NAMES: &[&str] = &["confirm", "ship", "deliver", "cancel"];

    /// The verb, as in the API path `/orders/{id}/confirm`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Ship => "ship",
            Self::Deliver => "deliver",
            Self::Cancel => "cancel",
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transition {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|transition| transition.as_str() == s).ok_or_else(|| ParseEnumError {
            kind: "transition",
            value: s.to_owned(),
            allowed: Self::NAMES,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{OrderStatus::*, Transition::*, *};

    /// Every status × every transition; `None` means refused.
    const TABLE: [(OrderStatus, Transition, Option<OrderStatus>); 20] = [
        (Pending, Confirm, Some(Confirmed)),
        (Pending, Ship, None),
        (Pending, Deliver, None),
        (Pending, Cancel, Some(Cancelled)),
        (Confirmed, Confirm, None),
        (Confirmed, Ship, Some(Shipped)),
        (Confirmed, Deliver, None),
        (Confirmed, Cancel, Some(Cancelled)),
        (Shipped, Confirm, None),
        (Shipped, Ship, None),
        (Shipped, Deliver, Some(Delivered)),
        (Shipped, Cancel, None),
        (Delivered, Confirm, None),
        (Delivered, Ship, None),
        (Delivered, Deliver, None),
        (Delivered, Cancel, None),
        (Cancelled, Confirm, None),
        (Cancelled, Ship, None),
        (Cancelled, Deliver, None),
        (Cancelled, Cancel, None),
    ];

    #[test]
    fn status_machine_table_covers_every_status_and_transition() {
        for status in OrderStatus::ALL {
            for transition in Transition::ALL {
                let rows = TABLE.iter().filter(|(s, t, _)| *s == status && *t == transition).count();
                assert_eq!(rows, 1, "{status} × {transition}");
            }
        }
    }

    #[test]
    fn apply_follows_the_status_machine_and_refuses_everything_else() {
        for (from, transition, expected) in TABLE {
            let result = from.apply(transition);
            match expected {
                Some(to) => assert_eq!(result, Ok(to), "{from} --{transition}-->"),
                None => {
                    assert_eq!(result, Err(DomainError::InvalidTransition { from, transition }), "{from} {transition}")
                }
            }
        }
    }

    #[test]
    fn only_pending_orders_are_editable() {
        for status in OrderStatus::ALL {
            assert_eq!(status.is_editable(), status == Pending, "{status}");
        }
    }

    #[test]
    fn terminal_statuses_are_exactly_those_no_transition_leaves() {
        for status in OrderStatus::ALL {
            let leaves = Transition::ALL.into_iter().any(|t| status.apply(t).is_ok());
            assert_eq!(status.is_terminal(), !leaves, "{status}");
        }
    }

    #[test]
    fn status_wire_names_are_uppercase_in_serde_display_and_from_str() {
        for (status, name) in OrderStatus::ALL.into_iter().zip(OrderStatus::NAMES) {
            assert_eq!(status.as_str(), *name);
            assert_eq!(status.to_string(), *name);
            assert_eq!(name.parse::<OrderStatus>(), Ok(status));
            assert_eq!(serde_json::to_value(status).expect("serializes"), serde_json::json!(name));
            assert_eq!(serde_json::from_value::<OrderStatus>(serde_json::json!(name)).expect("parses"), status);
        }
    }

    #[test]
    fn unknown_status_error_names_the_value_and_the_allowed_ones() {
        let error = "pending".parse::<OrderStatus>().expect_err("lowercase is not a wire name");
        assert_eq!(
            error.to_string(),
            r#"unknown order status "pending"; expected one of PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED"#
        );
    }

    #[test]
    fn transition_names_are_lowercase_verbs() {
        for (transition, name) in Transition::ALL.into_iter().zip(Transition::NAMES) {
            assert_eq!(transition.as_str(), *name);
            assert_eq!(name.parse::<Transition>(), Ok(transition));
            assert_eq!(serde_json::to_value(transition).expect("serializes"), serde_json::json!(name));
        }
        let error = "refund".parse::<Transition>().expect_err("not a transition");
        assert_eq!(error.to_string(), r#"unknown transition "refund"; expected one of confirm, ship, deliver, cancel"#);
    }
}

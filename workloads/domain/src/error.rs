//! The domain's errors: field-level validation errors addressed by JSON pointer, the one
//! `DomainError` every operation returns, and the error of parsing a wire enum from a string.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Currency, OrderStatus, Sku, Transition};

/// One invalid field of a request, addressed by a JSON pointer into the request body
/// (`/items/0/quantity`). An empty `field` points at the whole value being parsed; callers
/// place it with [`FieldError::under`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// Moves the error below `prefix`: `FieldError::new("", m).under("/sku")` points at `/sku`.
    #[must_use]
    pub fn under(mut self, prefix: &str) -> Self {
        self.field.insert_str(0, prefix);
        self
    }
}

impl fmt::Display for FieldError {
    /// `field: message`, or the message alone when the error points at the whole value (as it
    /// does when serde reports it while deserializing a `Sku` or `Currency`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.field, self.message) }
    }
}

impl std::error::Error for FieldError {}

/// Everything a domain operation can refuse. The API maps each variant to one HTTP status
/// (validation and catalog problems 422, refused transitions and edits 409); [`DomainError::code`]
/// is a stable machine-readable name for problem details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid request: {}", joined(.0, "; "))]
    Validation(Vec<FieldError>),
    #[error("unknown sku: {}", joined(.0, ", "))]
    UnknownSkus(Vec<Sku>),
    #[error("sku no longer sold: {}", joined(.0, ", "))]
    InactiveSkus(Vec<Sku>),
    #[error("an order has one currency, but the items are priced in {}", joined(.0, ", "))]
    MixedCurrencies(Vec<Currency>),
    #[error("cannot {transition} an order that is {from}")]
    InvalidTransition { from: OrderStatus, transition: Transition },
    #[error("cannot change the items or shipping address of an order that is {status}; only PENDING orders can change")]
    NotEditable { status: OrderStatus },
}

impl DomainError {
    /// A validation error of one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// A stable name of the error kind, for problem-details `type` URIs, metrics and logs.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation-failed",
            Self::UnknownSkus(_) => "unknown-sku",
            Self::InactiveSkus(_) => "inactive-sku",
            Self::MixedCurrencies(_) => "mixed-currencies",
            Self::InvalidTransition { .. } => "invalid-transition",
            Self::NotEditable { .. } => "not-editable",
        }
    }
}

/// A wire enum (`OrderStatus`, `Transition`, `EventType`) could not be parsed from a string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of {}", .allowed.join(", "))]
pub struct ParseEnumError {
    pub kind: &'static str,
    pub value: String,
    pub allowed: &'static [&'static str],
}

/// The error of `OrderStatus::from_str` (the name the API uses).
pub type ParseStatusError = ParseEnumError;

fn joined<T: fmt::Display>(items: &[T], separator: &str) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_error_displays_pointer_then_message() {
        assert_eq!(FieldError::new("/items/0/sku", "is bad").to_string(), "/items/0/sku: is bad");
    }

    #[test]
    fn field_error_without_pointer_displays_only_the_message() {
        assert_eq!(FieldError::new("", "is bad").to_string(), "is bad");
    }

    #[test]
    fn under_prefixes_the_pointer() {
        let error = FieldError::new("/sku", "is bad").under("/items/3");
        assert_eq!(error.field, "/items/3/sku");
    }

    #[test]
    fn field_error_serializes_as_field_and_message() {
        let json = serde_json::to_value(FieldError::new("/name", "must not be blank")).expect("serializes");
        assert_eq!(json, serde_json::json!({"field": "/name", "message": "must not be blank"}));
    }

    #[test]
    fn validation_error_lists_every_field_error() {
        let error = DomainError::Validation(vec![FieldError::new("/a", "x"), FieldError::new("/b", "y")]);
        assert_eq!(error.to_string(), "invalid request: /a: x; /b: y");
    }

    #[test]
    fn invalid_transition_names_the_transition_and_the_status() {
        let error = DomainError::InvalidTransition { from: OrderStatus::Shipped, transition: Transition::Confirm };
        assert_eq!(error.to_string(), "cannot confirm an order that is SHIPPED");
    }

    #[test]
    fn not_editable_names_the_status() {
        let error = DomainError::NotEditable { status: OrderStatus::Confirmed };
        assert!(error.to_string().contains("CONFIRMED"), "{error}");
    }

    #[test]
    fn catalog_errors_list_the_offending_values() {
        let skus = vec![Sku::parse("A-1").expect("valid"), Sku::parse("B-2").expect("valid")];
        assert_eq!(DomainError::UnknownSkus(skus.clone()).to_string(), "unknown sku: A-1, B-2");
        assert_eq!(DomainError::InactiveSkus(skus).to_string(), "sku no longer sold: A-1, B-2");
        let currencies = vec![Currency::parse("EUR").expect("valid"), Currency::parse("USD").expect("valid")];
        assert_eq!(
            DomainError::MixedCurrencies(currencies).to_string(),
            "an order has one currency, but the items are priced in EUR, USD"
        );
    }

    #[test]
    fn every_error_kind_has_a_distinct_code() {
        let status = OrderStatus::Pending;
        let codes = [
            DomainError::Validation(vec![]).code(),
            DomainError::UnknownSkus(vec![]).code(),
            DomainError::InactiveSkus(vec![]).code(),
            DomainError::MixedCurrencies(vec![]).code(),
            DomainError::InvalidTransition { from: status, transition: Transition::Ship }.code(),
            DomainError::NotEditable { status }.code(),
        ];
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
    }
}

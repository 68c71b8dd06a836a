//! The order aggregate: placing it, moving it through the status machine and revising it while
//! it is pending. Every change bumps `version` by one and sets `updated_at`; the caller passes
//! `now` (use [`crate::now_micros`]) so the logic stays deterministic.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Currency, DomainError, MinorUnits, OrderId, OrderItem, OrderStatus, PricedItems, ShippingAddress, Transition,
};

/// An order, in exactly the shape of the API and of event snapshots.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub user_id: String,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub currency: Currency,
    pub total: MinorUnits,
    pub shipping_address: ShippingAddress,
    pub version: i64,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// A new PENDING order at version 1. `priced` comes from [`crate::price_items`] and
    /// `address` should be validated (see [`ShippingAddress::into_validated`]).
    pub fn place(
        id: OrderId,
        user_id: String,
        priced: PricedItems,
        address: ShippingAddress,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            user_id,
            status: OrderStatus::Pending,
            items: priced.items,
            currency: priced.currency,
            total: priced.total,
            shipping_address: address,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// Moves the order through the status machine; a refused transition changes nothing.
    pub fn transition(&mut self, transition: Transition, now: DateTime<Utc>) -> Result<(), DomainError> {
        self.status = self.status.apply(transition)?;
        self.touch(now);
        Ok(())
    }

    /// Replaces the items and/or the shipping address of a PENDING order. A request that
    /// changes nothing is a validation error (checked first: it is wrong whatever the status);
    /// a non-pending order is `NotEditable`. A refused revision changes nothing.
    pub fn revise(
        &mut self,
        priced: Option<PricedItems>,
        address: Option<ShippingAddress>,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        if priced.is_none() && address.is_none() {
            return Err(DomainError::invalid("", "give items, shipping_address or both"));
        }
        if !self.status.is_editable() {
            return Err(DomainError::NotEditable { status: self.status });
        }
        if let Some(priced) = priced {
            self.items = priced.items;
            self.currency = priced.currency;
            self.total = priced.total;
        }
        if let Some(address) = address {
            self.shipping_address = address;
        }
        self.touch(now);
        Ok(())
    }

    fn touch(&mut self, now: DateTime<Utc>) {
        self.version += 1;
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::{
        FieldError, Sku,
        fixtures::{address, at, catalog, item, placed_order, product},
        price_items,
    };

    fn later() -> DateTime<Utc> {
        at("2026-03-02T08:30:00.000001Z")
    }

    fn keys(value: &serde_json::Value) -> BTreeSet<&str> {
        value.as_object().expect("an object").keys().map(String::as_str).collect()
    }

    #[test]
    fn placed_order_is_pending_at_version_1_with_both_timestamps_now() {
        let order = placed_order();
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(order.version, 1);
        assert_eq!(order.created_at, at("2026-03-01T12:00:00.123456Z"));
        assert_eq!(order.updated_at, order.created_at);
        assert_eq!(order.total, 2 * 1299 + 2500);
        assert_eq!(order.currency.as_str(), "EUR");
        assert_eq!(order.shipping_address, address());
    }

    #[test]
    fn transition_changes_status_bumps_version_and_sets_updated_at() {
        let mut order = placed_order();
        order.transition(Transition::Confirm, later()).expect("pending can be confirmed");
        assert_eq!(order.status, OrderStatus::Confirmed);
        assert_eq!(order.version, 2);
        assert_eq!(order.updated_at, later());
        assert_eq!(order.created_at, at("2026-03-01T12:00:00.123456Z"));
    }

    #[test]
    fn full_lifecycle_counts_one_version_per_change() {
        let mut order = placed_order();
        for transition in [Transition::Confirm, Transition::Ship, Transition::Deliver] {
            order.transition(transition, later()).expect("allowed");
        }
        assert_eq!((order.status, order.version), (OrderStatus::Delivered, 4));
    }

    #[test]
    fn refused_transition_leaves_the_order_unchanged() {
        let mut order = placed_order();
        let before = order.clone();
        let error = order.transition(Transition::Deliver, later()).expect_err("pending cannot be delivered");
        assert_eq!(
            error,
            DomainError::InvalidTransition { from: OrderStatus::Pending, transition: Transition::Deliver }
        );
        assert_eq!(order, before);
    }

    #[test]
    fn revise_replaces_items_and_total_of_a_pending_order() {
        let mut order = placed_order();
        let priced = price_items(&[item("PEN", 4)], &catalog([product("PEN", 150)])).expect("valid");
        order.revise(Some(priced), None, later()).expect("pending is editable");
        assert_eq!(order.items.len(), 1);
        assert_eq!(order.items[0].sku, Sku::parse("PEN").expect("valid"));
        assert_eq!(order.total, 600);
        assert_eq!(order.shipping_address, address());
        assert_eq!((order.version, order.updated_at), (2, later()));
    }

    #[test]
    fn revise_replaces_the_address_of_a_pending_order() {
        let mut order = placed_order();
        let moved = ShippingAddress { city: "Boston".to_owned(), ..address() };
        let items_before = order.items.clone();
        order.revise(None, Some(moved.clone()), later()).expect("pending is editable");
        assert_eq!(order.shipping_address, moved);
        assert_eq!(order.items, items_before);
        assert_eq!(order.version, 2);
    }

    #[test]
    fn revise_with_nothing_to_change_is_a_validation_error() {
        let mut order = placed_order();
        let before = order.clone();
        let error = order.revise(None, None, later()).expect_err("nothing to change");
        assert_eq!(error, DomainError::Validation(vec![FieldError::new("", "give items, shipping_address or both")]));
        assert_eq!(order, before);
    }

    #[test]
    fn revise_is_refused_once_the_order_left_pending() {
        for path in [&[Transition::Confirm][..], &[Transition::Cancel], &[Transition::Confirm, Transition::Ship]] {
            let mut order = placed_order();
            for transition in path {
                order.transition(*transition, later()).expect("allowed");
            }
            let before = order.clone();
            let error = order.revise(None, Some(address()), later()).expect_err("not editable");
            assert_eq!(error, DomainError::NotEditable { status: order.status });
            assert_eq!(order, before);
        }
    }

    #[test]
    fn order_json_has_exactly_the_wire_field_names() {
        let json = serde_json::to_value(placed_order()).expect("serializes");
        assert_eq!(
            keys(&json),
            BTreeSet::from([
                "id",
                "user_id",
                "status",
                "items",
                "currency",
                "total",
                "shipping_address",
                "version",
                "created_at",
                "updated_at",
            ])
        );
        assert_eq!(keys(&json["items"][0]), BTreeSet::from(["sku", "name", "quantity", "unit_price", "line_total"]));
        assert_eq!(
            keys(&json["shipping_address"]),
            BTreeSet::from(["name", "line1", "line2", "city", "postal_code", "region", "country"])
        );
    }

    #[test]
    fn order_json_has_the_wire_values() {
        let order = placed_order();
        let json = serde_json::to_value(&order).expect("serializes");
        assert_eq!(
            json,
            json!({
                "id": order.id.to_string(),
                "user_id": "user-42",
                "status": "PENDING",
                "items": [
                    {"sku": "MUG", "name": "MUG product", "quantity": 2, "unit_price": 1299, "line_total": 2598},
                    {"sku": "TEE", "name": "TEE product", "quantity": 1, "unit_price": 2500, "line_total": 2500},
                ],
                "currency": "EUR",
                "total": 5098,
                "shipping_address": {
                    "name": "Grace Hopper",
                    "line1": "1 Navy Way",
                    "line2": "Building 7",
                    "city": "Arlington",
                    "postal_code": "22202",
                    "region": "VA",
                    "country": "US",
                },
                "version": 1,
                "created_at": "2026-03-01T12:00:00.123456Z",
                "updated_at": "2026-03-01T12:00:00.123456Z",
            })
        );
    }

    #[test]
    fn order_json_round_trips() {
        let mut order = placed_order();
        order.transition(Transition::Cancel, later()).expect("allowed");
        let json = serde_json::to_string(&order).expect("serializes");
        assert_eq!(serde_json::from_str::<Order>(&json).expect("parses"), order);
    }

    #[test]
    fn order_json_with_an_invalid_sku_or_currency_does_not_parse() {
        let mut json = serde_json::to_value(placed_order()).expect("serializes");
        json["items"][0]["sku"] = json!("not a sku");
        assert!(serde_json::from_value::<Order>(json.clone()).is_err());
        json["items"][0]["sku"] = json!("MUG");
        json["currency"] = json!("eur");
        assert!(serde_json::from_value::<Order>(json).is_err());
    }
}

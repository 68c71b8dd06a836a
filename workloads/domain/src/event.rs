//! The event contract on Kafka: the JSON envelope every record of the orders topic carries, with
//! its checked-in JSON Schema (`schema/order-event.v1.json`). Topic names are `ordexa-topics`'.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Order, OrderId, ParseEnumError};

/// The `schema_version` of events this crate produces.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// JSON Schema (draft 2020-12) of the event envelope, version [`EVENT_SCHEMA_VERSION`].
pub const ORDER_EVENT_SCHEMA: &str = include_str!("../schema/order-event.v1.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// The order was placed (version 1).
    #[serde(rename = "order.created")]
    OrderCreated,
    /// Any later change, cancellation included; the snapshot carries the new status.
    #[serde(rename = "order.updated")]
    OrderUpdated,
}

impl EventType {
    const NAMES: &[&str] = &["order.created", "order.updated"];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OrderCreated => "order.created",
            Self::OrderUpdated => "order.updated",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = ParseEnumError;

    /// Parses the `type` header.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::OrderCreated, Self::OrderUpdated].into_iter().find(|t| t.as_str() == s).ok_or_else(|| ParseEnumError {
            kind: "event type",
            value: s.to_owned(),
            allowed: Self::NAMES,
        })
    }
}

/// The value of a record on the orders topic (key: the order id): the full order after the
/// change, in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub order_id: OrderId,
    pub version: i64,
    #[serde(with = "crate::time::rfc3339")]
    pub occurred_at: DateTime<Utc>,
    pub schema_version: u32,
    pub order: Order,
}

impl OrderEvent {
    /// The event of a just-placed order.
    pub fn created(order: &Order) -> Self {
        Self::new(EventType::OrderCreated, order)
    }

    /// The event of any later change of `order`.
    pub fn updated(order: &Order) -> Self {
        Self::new(EventType::OrderUpdated, order)
    }

    fn new(event_type: EventType, order: &Order) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type,
            order_id: order.id,
            version: order.version,
            occurred_at: order.updated_at,
            schema_version: EVENT_SCHEMA_VERSION,
            order: order.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use serde_json::{Value, json};

    use super::*;
    use crate::{
        Transition,
        fixtures::{at, placed_order},
    };

    static SCHEMA: LazyLock<Value> =
        LazyLock::new(|| serde_json::from_str(ORDER_EVENT_SCHEMA).expect("the schema file is JSON"));

    static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
        jsonschema::draft202012::options().should_validate_formats(true).build(&SCHEMA).expect("the schema compiles")
    });

    fn schema_errors(event: &Value) -> Vec<String> {
        VALIDATOR.iter_errors(event).map(|error| format!("{} at {}", error, error.instance_path())).collect()
    }

    fn created_event() -> Value {
        serde_json::to_value(OrderEvent::created(&placed_order())).expect("serializes")
    }

    fn updated_event() -> Value {
        let mut order = placed_order();
        order.transition(Transition::Confirm, at("2026-03-01T13:00:00Z")).expect("allowed");
        serde_json::to_value(OrderEvent::updated(&order)).expect("serializes")
    }

    /// Asserts the schema accepts the produced event, then that it refuses the event after `break_it`.
    fn assert_schema_refuses(break_it: impl FnOnce(&mut Value)) {
        let mut event = created_event();
        assert_eq!(schema_errors(&event), Vec::<String>::new(), "the unbroken event must be valid");
        break_it(&mut event);
        assert!(!VALIDATOR.is_valid(&event), "the schema accepted a broken event: {event:#}");
    }

    fn remove(event: &mut Value, parent: &str, key: &str) {
        let removed = event.pointer_mut(parent).and_then(Value::as_object_mut).and_then(|object| object.remove(key));
        assert!(removed.is_some(), "{parent}/{key} must exist to be removed");
    }

    fn set(event: &mut Value, pointer: &str, value: Value) {
        *event.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} must exist")) = value;
    }

    #[test]
    fn event_type_wire_names_are_dotted() {
        for (event_type, name) in
            [(EventType::OrderCreated, "order.created"), (EventType::OrderUpdated, "order.updated")]
        {
            assert_eq!(event_type.as_str(), name);
            assert_eq!(event_type.to_string(), name);
            assert_eq!(name.parse::<EventType>(), Ok(event_type));
            assert_eq!(serde_json::to_value(event_type).expect("serializes"), json!(name));
        }
        let error = "order.deleted".parse::<EventType>().expect_err("unknown");
        assert_eq!(
            error.to_string(),
            r#"unknown event type "order.deleted"; expected one of order.created, order.updated"#
        );
    }

    #[test]
    fn created_event_wraps_the_order_snapshot() {
        let order = placed_order();
        let event = OrderEvent::created(&order);
        assert_eq!(event.event_type, EventType::OrderCreated);
        assert_eq!(event.event_id.get_version_num(), 7);
        assert_eq!(event.order_id, order.id);
        assert_eq!(event.version, 1);
        assert_eq!(event.occurred_at, order.updated_at);
        assert_eq!(event.schema_version, EVENT_SCHEMA_VERSION);
        assert_eq!(event.order, order);
    }

    #[test]
    fn updated_event_carries_the_new_version_status_and_time() {
        let mut order = placed_order();
        order.transition(Transition::Cancel, at("2026-03-01T13:00:00Z")).expect("allowed");
        let event = OrderEvent::updated(&order);
        assert_eq!(event.event_type, EventType::OrderUpdated);
        assert_eq!(event.version, 2);
        assert_eq!(event.occurred_at, at("2026-03-01T13:00:00Z"));
        assert_eq!(event.order.status, crate::OrderStatus::Cancelled);
    }

    #[test]
    fn every_event_gets_its_own_id() {
        let order = placed_order();
        assert_ne!(OrderEvent::created(&order).event_id, OrderEvent::created(&order).event_id);
    }

    #[test]
    fn event_json_has_exactly_the_envelope_fields() {
        let event = created_event();
        let keys: std::collections::BTreeSet<_> =
            event.as_object().expect("an object").keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["event_id", "type", "order_id", "version", "occurred_at", "schema_version", "order"].into_iter().collect()
        );
        assert_eq!(event["type"], "order.created");
        assert_eq!(event["schema_version"], 1);
        assert_eq!(event["occurred_at"], "2026-03-01T12:00:00.123456Z");
        assert_eq!(event["order_id"], event["order"]["id"]);
    }

    #[test]
    fn event_json_round_trips() {
        let event = OrderEvent::created(&placed_order());
        let json = serde_json::to_vec(&event).expect("serializes");
        assert_eq!(serde_json::from_slice::<OrderEvent>(&json).expect("parses"), event);
    }

    #[test]
    fn schema_is_a_valid_draft_2020_12_schema() {
        assert_eq!(SCHEMA["$schema"], "https://json-schema.org/draft/2020-12/schema");
        jsonschema::draft202012::meta::validate(&SCHEMA).expect("valid against the 2020-12 meta-schema");
    }

    #[test]
    fn created_event_satisfies_the_schema() {
        assert_eq!(schema_errors(&created_event()), Vec::<String>::new());
    }

    #[test]
    fn updated_event_satisfies_the_schema() {
        assert_eq!(schema_errors(&updated_event()), Vec::<String>::new());
    }

    #[test]
    fn event_without_optional_address_lines_satisfies_the_schema() {
        let mut order = placed_order();
        order.shipping_address.line2 = None;
        order.shipping_address.region = None;
        let event = serde_json::to_value(OrderEvent::created(&order)).expect("serializes");
        assert_eq!(schema_errors(&event), Vec::<String>::new());
    }

    #[test]
    fn schema_refuses_a_missing_envelope_field() {
        for field in ["event_id", "type", "order_id", "version", "occurred_at", "schema_version", "order"] {
            assert_schema_refuses(|event| remove(event, "", field));
        }
    }

    #[test]
    fn schema_refuses_a_missing_order_field() {
        for field in ["id", "user_id", "status", "items", "currency", "total", "shipping_address", "version"] {
            assert_schema_refuses(|event| remove(event, "/order", field));
        }
        assert_schema_refuses(|event| remove(event, "/order", "created_at"));
        assert_schema_refuses(|event| remove(event, "/order", "updated_at"));
    }

    #[test]
    fn schema_refuses_a_missing_item_or_address_field() {
        for field in ["sku", "name", "quantity", "unit_price", "line_total"] {
            assert_schema_refuses(|event| remove(event, "/order/items/0", field));
        }
        for field in ["name", "line1", "city", "postal_code", "country"] {
            assert_schema_refuses(|event| remove(event, "/order/shipping_address", field));
        }
    }

    #[test]
    fn schema_refuses_an_extra_field_at_every_level() {
        for object in ["", "/order", "/order/items/0", "/order/shipping_address"] {
            assert_schema_refuses(|event| {
                let target = event.pointer_mut(object).and_then(Value::as_object_mut).expect("an object");
                target.insert("unexpected".to_owned(), json!("x"));
            });
        }
    }

    #[test]
    fn schema_refuses_an_unknown_or_lowercase_status() {
        for status in ["SHIPPING", "pending", ""] {
            assert_schema_refuses(|event| set(event, "/order/status", json!(status)));
        }
    }

    #[test]
    fn schema_refuses_quantity_zero_negative_fractional_or_above_the_limit() {
        for quantity in [json!(0), json!(-1), json!(1.5), json!(10_001), json!("2")] {
            assert_schema_refuses(|event| set(event, "/order/items/0/quantity", quantity));
        }
    }

    #[test]
    fn schema_refuses_ids_that_are_not_lowercase_uuid_v7() {
        let v4 = Uuid::new_v4().to_string();
        let upper = Uuid::now_v7().to_string().to_uppercase();
        for bad in ["not-a-uuid", "", v4.as_str(), upper.as_str(), "0190a6e4-7b1c-7d3e-8f00-00000000000"] {
            for pointer in ["/event_id", "/order_id", "/order/id"] {
                assert_schema_refuses(|event| set(event, pointer, json!(bad)));
            }
        }
    }

    #[test]
    fn schema_refuses_timestamps_that_are_not_rfc3339_utc() {
        for bad in ["2026-03-01T12:00:00+02:00", "2026-03-01 12:00:00Z", "2026-03-01T25:00:00Z", "1709294400", ""] {
            for pointer in ["/occurred_at", "/order/created_at", "/order/updated_at"] {
                assert_schema_refuses(|event| set(event, pointer, json!(bad)));
            }
        }
    }

    #[test]
    fn schema_refuses_bad_currency_sku_and_country() {
        assert_schema_refuses(|event| set(event, "/order/currency", json!("eur")));
        assert_schema_refuses(|event| set(event, "/order/currency", json!("EURO")));
        assert_schema_refuses(|event| set(event, "/order/items/0/sku", json!("has space")));
        assert_schema_refuses(|event| set(event, "/order/items/0/sku", json!("")));
        assert_schema_refuses(|event| set(event, "/order/shipping_address/country", json!("USA")));
    }

    #[test]
    fn schema_refuses_negative_amounts() {
        for pointer in ["/order/total", "/order/items/0/unit_price", "/order/items/0/line_total"] {
            assert_schema_refuses(|event| set(event, pointer, json!(-1)));
        }
    }

    #[test]
    fn schema_refuses_blank_or_control_character_text() {
        for bad in ["", "   ", "\u{feff}", "line\nbreak", "nul\u{0}", "del\u{7f}", "c1\u{85}"] {
            assert_schema_refuses(|event| set(event, "/order/shipping_address/line1", json!(bad)));
            assert_schema_refuses(|event| set(event, "/order/items/0/name", json!(bad)));
        }
        assert_schema_refuses(|event| set(event, "/order/shipping_address/postal_code", json!("1".repeat(21))));
        assert_schema_refuses(|event| set(event, "/order/shipping_address/line2", Value::Null));
    }

    #[test]
    fn schema_refuses_an_order_without_items_or_with_more_than_100() {
        assert_schema_refuses(|event| set(event, "/order/items", json!([])));
        assert_schema_refuses(|event| {
            let line = event["order"]["items"][0].clone();
            set(event, "/order/items", Value::Array(vec![line; 101]));
        });
    }

    #[test]
    fn schema_refuses_an_unknown_type_or_schema_version() {
        assert_schema_refuses(|event| set(event, "/type", json!("order.deleted")));
        assert_schema_refuses(|event| set(event, "/schema_version", json!(2)));
    }

    #[test]
    fn schema_refuses_versions_below_1() {
        assert_schema_refuses(|event| set(event, "/order/version", json!(0)));
        assert_schema_refuses(|event| set(event, "/version", json!(0)));
    }

    #[test]
    fn schema_refuses_a_created_event_that_is_not_a_pending_version_1() {
        assert_schema_refuses(|event| set(event, "/order/status", json!("CONFIRMED")));
        assert_schema_refuses(|event| {
            set(event, "/version", json!(2));
            set(event, "/order/version", json!(2));
        });
    }

    #[test]
    fn schema_refuses_an_updated_event_at_version_1() {
        let mut event = updated_event();
        set(&mut event, "/version", json!(1));
        set(&mut event, "/order/version", json!(1));
        assert!(!VALIDATOR.is_valid(&event));
    }
}

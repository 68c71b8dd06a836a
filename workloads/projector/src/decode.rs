//! Decoding (pure): a record of the orders topic as an event, or why it is poison — without a key
//! or value, not JSON, not matching the event schema, or contradicting its key.

use std::sync::LazyLock;

use ordexa_domain::OrderEvent;
use uuid::Uuid;

/// Why a record cannot be projected, ever: it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    #[error("the record has no value")]
    NoValue,
    #[error("the record has no key")]
    NoKey,
    #[error("the key is not an order id (UUID): {0:?}")]
    BadKey(String),
    #[error("the value is not JSON: {0}")]
    NotJson(String),
    #[error("the value does not match the order event schema: {0}")]
    SchemaInvalid(String),
    #[error("the event contradicts itself or its key: {0}")]
    Inconsistent(String),
}

static EVENT_VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: serde_json::Value =
        serde_json::from_str(ordexa_domain::ORDER_EVENT_SCHEMA).map_err(|e| format!("event schema: {e}"))?;
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema).map_err(|e| e.to_string())
});

/// Decodes and checks one record: the event, or why it is poison.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<OrderEvent, Poison> {
    let value = value.ok_or(Poison::NoValue)?;
    let key = key.ok_or(Poison::NoKey)?;
    let key_text = String::from_utf8_lossy(key);
    let key_id = Uuid::parse_str(&key_text).map_err(|_| Poison::BadKey(key_text.chars().take(64).collect()))?;
    let json: serde_json::Value = serde_json::from_slice(value).map_err(|e| Poison::NotJson(e.to_string()))?;
    match EVENT_VALIDATOR.as_ref() {
        Ok(validator) => {
            if let Some(error) = validator.iter_errors(&json).next() {
                return Err(Poison::SchemaInvalid(format!("{error} at {:?}", error.instance_path().to_string())));
            }
        }
        // The schema is compiled into the binary and tested; this cannot happen in a release.
        Err(e) => return Err(Poison::SchemaInvalid(format!("the schema itself does not compile: {e}"))),
    }
    let event: OrderEvent = serde_json::from_value(json).map_err(|e| Poison::SchemaInvalid(e.to_string()))?;
    if event.order_id.0 != key_id {
        return Err(Poison::Inconsistent(format!("key {key_id} but order_id {}", event.order_id)));
    }
    if event.order.id != event.order_id || event.order.version != event.version {
        return Err(Poison::Inconsistent(format!(
            "envelope says order {} version {}, snapshot says order {} version {}",
            event.order_id, event.version, event.order.id, event.order.version
        )));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event_json() -> serde_json::Value {
        json!({
            "event_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "type": "order.created",
            "order_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
            "version": 1,
            "occurred_at": "2026-11-26T10:00:00.000000Z",
            "schema_version": 1,
            "order": {
                "id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
                "user_id": "alice",
                "status": "PENDING",
                "items": [{"sku": "MUG-CERAMIC", "name": "Mug", "quantity": 2, "unit_price": 1200, "line_total": 2400}],
                "currency": "EUR",
                "total": 2400,
                "shipping_address": {"name": "Alice", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
                "version": 1,
                "created_at": "2026-11-26T10:00:00.000000Z",
                "updated_at": "2026-11-26T10:00:00.000000Z"
            }
        })
    }

    const KEY: &[u8] = b"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

    #[test]
    fn a_valid_event_decodes() -> Result<(), Box<dyn std::error::Error>> {
        let value = serde_json::to_vec(&event_json())?;
        let event = decode(Some(KEY), Some(&value))?;
        assert_eq!(event.version, 1);
        assert_eq!(event.order.user_id, "alice");
        Ok(())
    }

    #[test]
    fn every_kind_of_poison_is_named() -> Result<(), Box<dyn std::error::Error>> {
        let good = serde_json::to_vec(&event_json())?;
        let mut missing_field = event_json();
        missing_field["order"].as_object_mut().map(|o| o.remove("total"));
        let mut other_snapshot = event_json();
        other_snapshot["order"]["id"] = json!("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e");
        let other_key = b"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d";
        type Case<'a> = (Option<&'a [u8]>, Vec<u8>, fn(&Poison) -> bool);
        let cases: Vec<Case<'_>> = vec![
            (Some(KEY), b"{not json".to_vec(), |p| matches!(p, Poison::NotJson(_))),
            (
                Some(KEY),
                serde_json::to_vec(&missing_field)?,
                |p| matches!(p, Poison::SchemaInvalid(m) if m.contains("total")),
            ),
            (Some(KEY), serde_json::to_vec(&other_snapshot)?, |p| matches!(p, Poison::Inconsistent(_))),
            (Some(other_key), good.clone(), |p| matches!(p, Poison::Inconsistent(m) if m.contains("key"))),
            (Some(b"not-a-uuid"), good.clone(), |p| matches!(p, Poison::BadKey(_))),
            (None, good.clone(), |p| *p == Poison::NoKey),
        ];
        for (i, (key, value, expected)) in cases.into_iter().enumerate() {
            let poison = decode(key, Some(&value)).expect_err("poison");
            assert!(expected(&poison), "case {i}: {poison}");
        }
        assert_eq!(decode(Some(KEY), None).expect_err("no value"), Poison::NoValue);
        Ok(())
    }
}

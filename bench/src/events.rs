//! Real order events, made with the domain's own types and serialized as the store serializes
//! them: the bench's messages and outbox payloads are the size and shape of production's.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use ordexa_domain::{Currency, ItemRequest, Order, OrderEvent, OrderId, Product, ShippingAddress, Sku, Transition};

use crate::kafka::Outgoing;

/// The W3C trace context every bench event carries.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A new PENDING order of two lines from the development catalog, for `user`.
pub fn place_order(user: &str) -> Result<Order> {
    let currency = Currency::parse("EUR").map_err(|e| anyhow!("{e:?}"))?;
    let mut catalog = HashMap::new();
    let mut items = Vec::new();
    for (i, (raw, name, price)) in ordexa_store::DEV_CATALOG.iter().take(2).enumerate() {
        let sku = Sku::parse(raw).map_err(|e| anyhow!("{e:?}"))?;
        catalog
            .insert(sku.clone(), Product { sku, name: (*name).to_owned(), unit_price: *price, currency, active: true });
        items.push(ItemRequest { sku: (*raw).to_owned(), quantity: i as i64 + 1 });
    }
    let priced = ordexa_domain::price_items(&items, &catalog).map_err(|e| anyhow!("{e}"))?;
    Ok(Order::place(OrderId::new(), user.to_owned(), priced, address(), ordexa_domain::now_micros()))
}

pub fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Grace Hopper".to_owned(),
        line1: "1 Navy Way".to_owned(),
        line2: None,
        city: "Arlington".to_owned(),
        postal_code: "22202".to_owned(),
        region: Some("VA".to_owned()),
        country: "US".to_owned(),
    }
}

/// The body of `POST /api/v1/orders` for the same two lines.
pub fn create_body() -> String {
    let items: Vec<_> = ordexa_store::DEV_CATALOG
        .iter()
        .take(2)
        .enumerate()
        .map(|(i, (sku, _, _))| serde_json::json!({"sku": sku, "quantity": i + 1}))
        .collect();
    serde_json::json!({"items": items, "shipping_address": address()}).to_string()
}

/// One `order.created` event as JSON text, as the store writes it to the outbox.
pub fn created_payload() -> Result<String> {
    Ok(serde_json::to_string(&OrderEvent::created(&place_order("bench-user")?))?)
}

/// Whole order lives as Kafka messages, interleaved as a busy write side commits them: each of
/// `orders` orders is placed, confirmed, shipped and delivered (4 events each).
pub fn order_lives(orders: usize) -> Result<Vec<Outgoing>> {
    let mut lives = Vec::with_capacity(orders);
    for i in 0..orders {
        let order = place_order(&format!("bench-user-{}", i % 100))?;
        let mut events = vec![OrderEvent::created(&order)];
        let mut next = order;
        for t in [Transition::Confirm, Transition::Ship, Transition::Deliver] {
            next.transition(t, ordexa_domain::now_micros()).map_err(|e| anyhow!("{e}"))?;
            events.push(OrderEvent::updated(&next));
        }
        lives.push(events);
    }
    let mut messages = Vec::with_capacity(orders * 4);
    for step in 0..4 {
        for life in &lives {
            messages.push(message(&life[step])?);
        }
    }
    Ok(messages)
}

/// The contract's message of an event: key = order id, the envelope's headers.
pub fn message(event: &OrderEvent) -> Result<Outgoing> {
    Ok(Outgoing {
        key: event.order_id.0.to_string(),
        value: serde_json::to_string(event)?,
        headers: vec![
            ("event_id", event.event_id.to_string()),
            ("type", event.event_type.as_str().to_owned()),
            ("schema_version", event.schema_version.to_string()),
            ("traceparent", TRACEPARENT.to_owned()),
        ],
    })
}

//! What one "create an order" looks like in these benchmarks, shared by the HTTP load and the
//! pgbench script so both sides do the same work: two lines from the development catalog
//! (`ordexa migrate --seed-dev`), a full shipping address, one of [`DEFAULT_USERS`] users.
//! The relay benchmark takes whole order lives from here too ([`order_life`]): the events the
//! write side would put in the outbox.

use std::collections::HashMap;

use anyhow::{Context, Result};
use ordexa_domain::{
    Currency, ItemRequest, Order, OrderEvent, OrderId, Product, ShippingAddress, Sku, Transition, price_items,
};
use ordexa_store::DEV_CATALOG;

/// How many distinct users (token subjects) the load spreads over.
pub const DEFAULT_USERS: u32 = 100;

/// The `sub` of user `n` (1-based, like pgbench's `random(1, users)`).
pub fn user_id(n: u32) -> String {
    format!("bench-user-{n}")
}

pub fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Ada Lovelace".to_owned(),
        line1: "12 Analytical Row".to_owned(),
        line2: Some("Flat 3".to_owned()),
        city: "London".to_owned(),
        postal_code: "N1 7GU".to_owned(),
        region: None,
        country: "GB".to_owned(),
    }
}

/// How many different request bodies the load rotates through.
pub fn variants() -> usize {
    DEV_CATALOG.len()
}

/// Two lines of different skus from the development catalog; `variant` picks which.
pub fn items(variant: usize) -> Vec<ItemRequest> {
    let n = DEV_CATALOG.len();
    let first = DEV_CATALOG[variant % n].0;
    let second = DEV_CATALOG[(variant + 1) % n].0;
    let quantity = i64::try_from(1 + variant % 3).unwrap_or(1);
    vec![ItemRequest { sku: first.to_owned(), quantity }, ItemRequest { sku: second.to_owned(), quantity: 1 }]
}

/// The wire-contract body of `POST /api/v1/orders` for `variant`.
pub fn request_body(variant: usize) -> Result<String> {
    let body = serde_json::json!({ "items": items(variant), "shipping_address": address() });
    Ok(serde_json::to_string(&body)?)
}

fn catalog() -> Result<HashMap<Sku, Product>> {
    let eur = Currency::parse("EUR").context("currency")?;
    DEV_CATALOG
        .iter()
        .map(|(sku, name, price)| {
            let sku = Sku::parse(sku).with_context(|| format!("catalog sku {sku}"))?;
            Ok((
                sku.clone(),
                Product { sku, name: (*name).to_owned(), unit_price: *price, currency: eur, active: true },
            ))
        })
        .collect()
}

/// The order the API would create for `variant`, priced from the development catalog, with its
/// `order.created` event: the sizes of what the pgbench script stores.
pub fn sample_order(variant: usize, user: &str) -> Result<(Order, OrderEvent)> {
    let priced = price_items(&items(variant), &catalog()?).context("pricing the sample order")?;
    let order = Order::place(OrderId::new(), user.to_owned(), priced, address(), ordexa_domain::now_micros());
    let event = OrderEvent::created(&order);
    Ok((order, event))
}

/// The events of one order's life, `events` of them (at least one), as the write side's
/// commands produce them: placed (`order.created`), then revised while PENDING (items and
/// address in turn), then confirmed, shipped and delivered (each `order.updated`, carrying the
/// full snapshot). `variant` picks the items, like [`items`].
pub fn order_life(variant: usize, user: &str, events: usize) -> Result<Vec<OrderEvent>> {
    let catalog = catalog()?;
    let priced = price_items(&items(variant), &catalog).context("pricing the sample order")?;
    let mut order = Order::place(OrderId::new(), user.to_owned(), priced, address(), ordexa_domain::now_micros());
    let mut life = vec![OrderEvent::created(&order)];
    let changes = events.saturating_sub(1);
    let transitions = changes.min(3);
    for n in 0..changes - transitions {
        if n % 2 == 0 {
            let priced = price_items(&items(variant + n + 1), &catalog).context("pricing a revision")?;
            order.revise(Some(priced), None, ordexa_domain::now_micros())?;
        } else {
            let moved = ShippingAddress { line2: Some(format!("Flat {}", n + 1)), ..address() };
            order.revise(None, Some(moved), ordexa_domain::now_micros())?;
        }
        life.push(OrderEvent::updated(&order));
    }
    for transition in [Transition::Confirm, Transition::Ship, Transition::Deliver].into_iter().take(transitions) {
        order.transition(transition, ordexa_domain::now_micros())?;
        life.push(OrderEvent::updated(&order));
    }
    Ok(life)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_prices_from_the_dev_catalog() -> Result<()> {
        for variant in 0..variants() {
            let (order, event) = sample_order(variant, &user_id(1))?;
            assert_eq!(order.items.len(), 2);
            assert!(order.total > 0);
            assert_eq!(event.order, order);
            assert!(request_body(variant)?.contains("shipping_address"));
        }
        Ok(())
    }

    #[test]
    fn an_order_life_goes_version_by_version_to_delivered() -> Result<()> {
        for events in [1, 2, 4, 10] {
            let life = order_life(3, &user_id(2), events)?;
            assert_eq!(life.len(), events);
            for (i, event) in life.iter().enumerate() {
                assert_eq!(event.version, i64::try_from(i)? + 1);
                assert_eq!(event.order_id, life[0].order_id);
                let expected = if i == 0 { "order.created" } else { "order.updated" };
                assert_eq!(event.event_type.as_str(), expected);
            }
        }
        let life = order_life(0, &user_id(1), 10)?;
        assert_eq!(life.last().map(|e| e.order.status.as_str()), Some("DELIVERED"));
        assert_eq!(life[6].order.status.as_str(), "PENDING");
        Ok(())
    }
}

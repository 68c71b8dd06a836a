//! What one "create an order" looks like in these benchmarks, shared by the HTTP load and the
//! pgbench script so both sides do the same work: two lines from the development catalog
//! (`ordexa migrate --seed-dev`), a full shipping address, one of [`DEFAULT_USERS`] users.

use std::collections::HashMap;

use anyhow::{Context, Result};
use ordexa_domain::{Currency, ItemRequest, Order, OrderEvent, OrderId, Product, ShippingAddress, Sku, price_items};
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
}

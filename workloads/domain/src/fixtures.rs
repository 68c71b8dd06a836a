//! Small builders the unit tests share.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::{Currency, ItemRequest, Order, OrderId, Product, ShippingAddress, Sku, price_items};

pub(crate) fn sku(raw: &str) -> Sku {
    Sku::parse(raw).expect("test sku is valid")
}

/// An active product priced in EUR, named "<sku> product".
pub(crate) fn product(code: &str, unit_price: i64) -> Product {
    Product {
        sku: sku(code),
        name: format!("{code} product"),
        unit_price,
        currency: Currency::parse("EUR").expect("valid"),
        active: true,
    }
}

pub(crate) fn catalog(products: impl IntoIterator<Item = Product>) -> HashMap<Sku, Product> {
    products.into_iter().map(|product| (product.sku.clone(), product)).collect()
}

pub(crate) fn item(code: &str, quantity: i64) -> ItemRequest {
    ItemRequest { sku: code.to_owned(), quantity }
}

pub(crate) fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Grace Hopper".to_owned(),
        line1: "1 Navy Way".to_owned(),
        line2: Some("Building 7".to_owned()),
        city: "Arlington".to_owned(),
        postal_code: "22202".to_owned(),
        region: Some("VA".to_owned()),
        country: "US".to_owned(),
    }
}

pub(crate) fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).expect("test timestamp is valid").with_timezone(&Utc)
}

/// A PENDING order at version 1: 2 × MUG at 12.99 and 1 × TEE at 25.00 EUR.
pub(crate) fn placed_order() -> Order {
    let catalog = catalog([product("MUG", 1299), product("TEE", 2500)]);
    let priced = price_items(&[item("MUG", 2), item("TEE", 1)], &catalog).expect("valid");
    Order::place(OrderId::new(), "user-42".to_owned(), priced, address(), at("2026-03-01T12:00:00.123456Z"))
}

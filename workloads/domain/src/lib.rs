//! Ordexa's domain: products, pricing, orders and their status machine, and the order event
//! contract. Pure logic without I/O; the API, the relay and the projector share it.
//!
//! Decisions this crate makes for everyone:
//! - Money is an integer of minor units ([`MinorUnits`]); unit prices are at most
//!   [`MAX_UNIT_PRICE`], so totals of at most [`MAX_ORDER_LINES`] × [`MAX_QUANTITY`] cannot
//!   overflow, and the arithmetic is checked anyway.
//! - An order has one currency; items priced in several are refused.
//! - Validation errors carry JSON pointers into the request body (`/items/0/quantity`) and are
//!   collected, so a client learns about every bad field at once.
//! - Free text (names, address lines) is non-blank, bounded in characters and free of control
//!   characters (PostgreSQL refuses NUL in `text`).
//! - Timestamps are UTC at microsecond precision (PostgreSQL's), written as fixed-width
//!   RFC 3339 with `Z`; take them from [`now_micros`].
//! - Events are a versioned envelope around the full order snapshot, described by the strict
//!   JSON Schema [`ORDER_EVENT_SCHEMA`]; everything this crate produces satisfies it.

mod address;
mod error;
mod event;
mod order;
mod pricing;
mod product;
mod status;
mod text;
mod time;
mod values;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod properties;

pub use address::{ADDRESS_TEXT_MAX_CHARS, POSTAL_CODE_MAX_CHARS, ShippingAddress};
pub use error::{DomainError, FieldError, ParseEnumError, ParseStatusError};
pub use event::{EVENT_SCHEMA_VERSION, EventType, ORDER_EVENT_SCHEMA, OrderEvent};
pub use order::Order;
pub use pricing::{ItemRequest, MAX_ORDER_LINES, MAX_QUANTITY, OrderItem, PricedItems, price_items};
pub use product::{MAX_UNIT_PRICE, PRODUCT_NAME_MAX_CHARS, Product, ProductInput};
pub use status::{OrderStatus, Transition};
pub use time::now_micros;
pub use values::{Currency, MinorUnits, OrderId, SKU_MAX_LEN, Sku};

//! Properties over generated inputs: whatever the domain accepts prices consistently, and every
//! event it can produce satisfies the checked-in schema, so the projector never dead-letters one
//! of our own events as schema-invalid.

use std::{collections::HashSet, sync::LazyLock};

use proptest::{collection::vec, prelude::*, sample::Index};
use serde_json::Value;

use crate::{
    ItemRequest, MAX_QUANTITY, MAX_UNIT_PRICE, ORDER_EVENT_SCHEMA, Order, OrderEvent, OrderId, Product, ProductInput,
    ShippingAddress, Transition,
    fixtures::{self, at, catalog, placed_order},
    now_micros, price_items,
};

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(ORDER_EVENT_SCHEMA).expect("the schema file is JSON");
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema).expect("the schema compiles")
});

fn schema_errors(event: &OrderEvent) -> Vec<String> {
    let json = serde_json::to_value(event).expect("serializes");
    VALIDATOR.iter_errors(&json).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

/// Text that is mostly plausible and sometimes blank, overlong or exotic (any character but a
/// control character, Unicode whitespace and zero-width characters included).
fn text(max_chars: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[A-Za-z0-9 äßçøł☕'-]{1,30}",
        2 => proptest::string::string_regex(&format!("[^\\p{{Cc}}]{{0,{}}}", max_chars + 2)).expect("valid regex"),
        1 => "[ \\t\\u{a0}\\u{2003}\\u{feff}\\u{200b}]{0,3}[a-z]?[ \\u{3000}]{0,2}",
    ]
}

fn address() -> impl Strategy<Value = ShippingAddress> {
    let optional = || proptest::option::of(text(200));
    (text(200), text(200), optional(), text(200), text(20), optional(), "[A-Z]{2}| ?[a-z]{2} ?|[A-Z]{3}").prop_map(
        |(name, line1, line2, city, postal_code, region, country)| ShippingAddress {
            name,
            line1,
            line2,
            city,
            postal_code,
            region,
            country,
        },
    )
}

/// The products among 1 to 10 generated inputs that pass validation.
fn products() -> impl Strategy<Value = Vec<Product>> {
    proptest::collection::btree_set("[A-Za-z0-9._-]{1,64}", 1..=10).prop_flat_map(|skus| {
        skus.into_iter()
            .map(|sku| {
                (text(200), prop_oneof![0..=MAX_UNIT_PRICE, Just(MAX_UNIT_PRICE)], any::<Option<bool>>()).prop_map(
                    move |(name, unit_price, active)| ProductInput {
                        sku: sku.clone(),
                        name,
                        unit_price,
                        currency: "EUR".to_owned(),
                        active: active.filter(|active| *active),
                    },
                )
            })
            .collect::<Vec<_>>()
            .prop_map(|inputs| inputs.into_iter().filter_map(|input| input.validate().ok()).collect())
    })
}

/// Up to 10 (product, quantity) picks; the first pick of a product wins.
fn picks() -> impl Strategy<Value = Vec<(Index, i64)>> {
    vec((any::<Index>(), 1..=i64::from(MAX_QUANTITY)), 1..=10)
}

fn request_for(products: &[Product], picks: &[(Index, i64)]) -> Vec<ItemRequest> {
    let mut seen = HashSet::new();
    picks
        .iter()
        .map(|(index, quantity)| (index.get(products), *quantity))
        .filter(|(product, _)| seen.insert(product.sku.clone()))
        .map(|(product, quantity)| ItemRequest { sku: product.sku.to_string(), quantity })
        .collect()
}

proptest! {
    #[test]
    fn valid_requests_of_active_products_price_every_line_and_sum_the_total(products in products(), picks in picks()) {
        prop_assume!(!products.is_empty());
        let request = request_for(&products, &picks);
        let catalog = catalog(products);
        let priced = price_items(&request, &catalog).expect("a valid request of active products prices");
        prop_assert_eq!(priced.items.len(), request.len());
        let mut sum = 0;
        for (line, asked) in priced.items.iter().zip(&request) {
            let product = &catalog[line.sku.as_str()];
            prop_assert_eq!(line.sku.as_str(), asked.sku.as_str());
            prop_assert_eq!(i64::from(line.quantity), asked.quantity);
            prop_assert_eq!(&line.name, &product.name);
            prop_assert_eq!(line.unit_price, product.unit_price);
            prop_assert_eq!(line.line_total, product.unit_price * asked.quantity);
            sum += line.line_total;
        }
        prop_assert_eq!(priced.total, sum);
    }

    #[test]
    fn every_event_of_a_validly_built_order_satisfies_the_schema_and_round_trips(
        products in products(),
        picks in picks(),
        address in address(),
        user_id in "[A-Za-z0-9|@._-]{1,40}",
        transitions in vec(proptest::sample::select(Transition::ALL.to_vec()), 0..6),
    ) {
        prop_assume!(!products.is_empty());
        let priced = price_items(&request_for(&products, &picks), &catalog(products)).expect("valid");
        let address = address.into_validated("/shipping_address").unwrap_or_else(|_| fixtures::address());
        let mut order = Order::place(OrderId::new(), user_id, priced, address, at("2026-03-01T12:00:00.5Z"));
        let mut events = vec![OrderEvent::created(&order)];
        for transition in transitions {
            if order.transition(transition, now_micros()).is_ok() {
                events.push(OrderEvent::updated(&order));
            }
        }
        for event in events {
            prop_assert_eq!(schema_errors(&event), Vec::<String>::new(), "{:#?}", event);
            let json = serde_json::to_string(&event).expect("serializes");
            prop_assert_eq!(serde_json::from_str::<OrderEvent>(&json).expect("parses back"), event);
        }
    }

    #[test]
    fn addresses_the_domain_accepts_satisfy_the_schema(address in address()) {
        if let Ok(address) = address.into_validated("/shipping_address") {
            let mut order = placed_order();
            order.shipping_address = address;
            let event = OrderEvent::created(&order);
            prop_assert_eq!(schema_errors(&event), Vec::<String>::new(), "{:#?}", event.order.shipping_address);
        }
    }
}

//! Pricing: turns the items a client asks for into order lines priced from the catalog. A client
//! never sends a price; names and unit prices are copied from the catalog when the command runs.

use std::collections::{BTreeSet, HashMap, hash_map::Entry};

use serde::{Deserialize, Serialize};

use crate::{Currency, DomainError, FieldError, MinorUnits, Product, Sku};

/// The most lines one order may have.
pub const MAX_ORDER_LINES: usize = 100;
/// The most pieces of one SKU one line may have.
pub const MAX_QUANTITY: u32 = 10_000;

/// One line as a client asks for it, not yet validated.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub sku: String,
    pub quantity: i64,
}

/// One priced line of an order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub sku: Sku,
    pub name: String,
    pub quantity: u32,
    pub unit_price: MinorUnits,
    pub line_total: MinorUnits,
}

/// The priced lines of an order, all in one currency, with their total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedItems {
    pub items: Vec<OrderItem>,
    pub currency: Currency,
    pub total: MinorUnits,
}

/// Prices `requests` from `catalog`, keeping the request's line order.
///
/// Refuses, in this order (a later check runs only when the earlier ones passed):
/// 1. `Validation`: no lines or more than [`MAX_ORDER_LINES`] (at `/items`); then every invalid
///    SKU, quantity outside `1..=MAX_QUANTITY` and repeated SKU, each at `/items/<i>/<field>`;
/// 2. `UnknownSkus`: every SKU the catalog does not have, in request order;
/// 3. `InactiveSkus`: every SKU no longer sold, in request order;
/// 4. `MixedCurrencies`: the distinct currencies, sorted, when there is more than one;
/// 5. `Validation`: a line total or the order total does not fit in [`MinorUnits`]
///    (only possible with prices above [`crate::MAX_UNIT_PRICE`]).
pub fn price_items(requests: &[ItemRequest], catalog: &HashMap<Sku, Product>) -> Result<PricedItems, DomainError> {
    let lines = parse_lines(requests)?;
    let products = look_up(&lines, catalog)?;
    let currency = single_currency(&products)?;
    total(&lines, &products, currency)
}

fn parse_lines(requests: &[ItemRequest]) -> Result<Vec<(Sku, u32)>, DomainError> {
    if requests.is_empty() {
        return Err(DomainError::invalid("/items", "must contain at least one item"));
    }
    if requests.len() > MAX_ORDER_LINES {
        return Err(DomainError::invalid(
            "/items",
            format!("must contain at most {MAX_ORDER_LINES} items, got {}", requests.len()),
        ));
    }
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(requests.len());
    let mut first_line_of: HashMap<&str, usize> = HashMap::new();
    for (index, request) in requests.iter().enumerate() {
        let sku = match Sku::parse(&request.sku) {
            Ok(sku) => match first_line_of.entry(request.sku.as_str()) {
                Entry::Vacant(entry) => {
                    entry.insert(index);
                    Some(sku)
                }
                Entry::Occupied(first) => {
                    errors.push(FieldError::new(
                        format!("/items/{index}/sku"),
                        format!("repeats sku {sku} of /items/{}; put the whole quantity on one line", first.get()),
                    ));
                    None
                }
            },
            Err(error) => {
                errors.push(error.under(&format!("/items/{index}/sku")));
                None
            }
        };
        let quantity = match u32::try_from(request.quantity) {
            Ok(quantity) if (1..=MAX_QUANTITY).contains(&quantity) => Some(quantity),
            _ => {
                errors.push(FieldError::new(
                    format!("/items/{index}/quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
                None
            }
        };
        if let (Some(sku), Some(quantity)) = (sku, quantity) {
            lines.push((sku, quantity));
        }
    }
    if errors.is_empty() { Ok(lines) } else { Err(DomainError::Validation(errors)) }
}

fn look_up<'c>(lines: &[(Sku, u32)], catalog: &'c HashMap<Sku, Product>) -> Result<Vec<&'c Product>, DomainError> {
    let mut unknown = Vec::new();
    let mut inactive = Vec::new();
    let mut products = Vec::with_capacity(lines.len());
    for (sku, _) in lines {
        match catalog.get(sku) {
            None => unknown.push(sku.clone()),
            Some(product) if !product.active => inactive.push(sku.clone()),
            Some(product) => products.push(product),
        }
    }
    if !unknown.is_empty() {
        return Err(DomainError::UnknownSkus(unknown));
    }
    if !inactive.is_empty() {
        return Err(DomainError::InactiveSkus(inactive));
    }
    Ok(products)
}

fn single_currency(products: &[&Product]) -> Result<Currency, DomainError> {
    let currencies: BTreeSet<Currency> = products.iter().map(|product| product.currency).collect();
    let mut distinct = currencies.iter().copied();
    match (distinct.next(), distinct.next()) {
        (Some(currency), None) => Ok(currency),
        // `parse_lines` refuses an empty request, so `(None, _)` cannot happen; it would be the
        // same client error.
        (None, _) => Err(DomainError::invalid("/items", "must contain at least one item")),
        (Some(_), Some(_)) => Err(DomainError::MixedCurrencies(currencies.into_iter().collect())),
    }
}

fn total(lines: &[(Sku, u32)], products: &[&Product], currency: Currency) -> Result<PricedItems, DomainError> {
    let mut errors = Vec::new();
    let mut items = Vec::with_capacity(lines.len());
    let mut total: Option<MinorUnits> = Some(0);
    for (index, ((sku, quantity), product)) in lines.iter().zip(products).enumerate() {
        let Some(line_total) = product.unit_price.checked_mul(MinorUnits::from(*quantity)) else {
            errors.push(FieldError::new(
                format!("/items/{index}/quantity"),
                format!("{quantity} × {} {currency} is more than an order can hold", product.unit_price),
            ));
            continue;
        };
        total = total.and_then(|sum| sum.checked_add(line_total));
        items.push(OrderItem {
            sku: sku.clone(),
            name: product.name.clone(),
            quantity: *quantity,
            unit_price: product.unit_price,
            line_total,
        });
    }
    if !errors.is_empty() {
        return Err(DomainError::Validation(errors));
    }
    let Some(total) = total else {
        return Err(DomainError::invalid("/items", "the order total is more than an order can hold"));
    };
    Ok(PricedItems { items, currency, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{catalog, item, product, sku};

    fn validation_errors(result: Result<PricedItems, DomainError>) -> Vec<FieldError> {
        match result {
            Err(DomainError::Validation(errors)) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn prices_lines_from_the_catalog_in_request_order() {
        let catalog = catalog([product("MUG", 1299), product("TEE", 2500), product("PEN", 0)]);
        let priced = price_items(&[item("TEE", 2), item("MUG", 3), item("PEN", 1)], &catalog).expect("valid");
        assert_eq!(priced.currency.as_str(), "EUR");
        assert_eq!(priced.total, 2 * 2500 + 3 * 1299);
        assert_eq!(
            priced.items,
            vec![
                OrderItem {
                    sku: sku("TEE"),
                    name: "TEE product".to_owned(),
                    quantity: 2,
                    unit_price: 2500,
                    line_total: 5000
                },
                OrderItem {
                    sku: sku("MUG"),
                    name: "MUG product".to_owned(),
                    quantity: 3,
                    unit_price: 1299,
                    line_total: 3897
                },
                OrderItem {
                    sku: sku("PEN"),
                    name: "PEN product".to_owned(),
                    quantity: 1,
                    unit_price: 0,
                    line_total: 0
                },
            ]
        );
    }

    #[test]
    fn quantity_bounds_are_inclusive() {
        let catalog = catalog([product("MUG", 1), product("TEE", 1)]);
        let priced = price_items(&[item("MUG", 1), item("TEE", 10_000)], &catalog).expect("valid");
        assert_eq!(priced.total, 10_001);
    }

    #[test]
    fn exactly_100_lines_are_accepted() {
        let products: Vec<_> = (0..MAX_ORDER_LINES).map(|i| product(&format!("SKU-{i}"), 100)).collect();
        let requests: Vec<_> = (0..MAX_ORDER_LINES).map(|i| item(&format!("SKU-{i}"), 1)).collect();
        let priced = price_items(&requests, &catalog(products)).expect("valid");
        assert_eq!(priced.items.len(), MAX_ORDER_LINES);
        assert_eq!(priced.total, 100 * 100);
    }

    #[test]
    fn empty_request_is_refused_at_items() {
        let errors = validation_errors(price_items(&[], &catalog([product("MUG", 1)])));
        assert_eq!(errors, [FieldError::new("/items", "must contain at least one item")]);
    }

    #[test]
    fn more_than_100_lines_are_refused_at_items() {
        let requests: Vec<_> = (0..=MAX_ORDER_LINES).map(|i| item(&format!("SKU-{i}"), 1)).collect();
        let errors = validation_errors(price_items(&requests, &catalog([])));
        assert_eq!(errors, [FieldError::new("/items", "must contain at most 100 items, got 101")]);
    }

    #[test]
    fn quantity_outside_1_to_10000_is_refused_at_its_line() {
        let catalog = catalog([product("MUG", 1)]);
        for quantity in [0, -1, 10_001, i64::from(u32::MAX) + 1, i64::MIN, i64::MAX] {
            let errors = validation_errors(price_items(&[item("MUG", quantity)], &catalog));
            assert_eq!(errors, [FieldError::new("/items/0/quantity", "must be between 1 and 10000")], "{quantity}");
        }
    }

    #[test]
    fn invalid_sku_is_refused_at_its_line() {
        let errors = validation_errors(price_items(&[item("MUG", 1), item("no such thing!", 1)], &catalog([])));
        assert_eq!(fields(&errors), ["/items/1/sku"]);
        assert!(errors[0].message.starts_with("a sku is"), "{}", errors[0]);
    }

    #[test]
    fn repeated_sku_is_refused_at_the_repeating_line_naming_the_first() {
        let catalog = catalog([product("MUG", 1), product("TEE", 1)]);
        let errors = validation_errors(price_items(&[item("MUG", 1), item("TEE", 1), item("MUG", 2)], &catalog));
        assert_eq!(
            errors,
            [FieldError::new("/items/2/sku", "repeats sku MUG of /items/0; put the whole quantity on one line")]
        );
    }

    #[test]
    fn every_line_error_is_reported_at_once() {
        let requests = [item("MUG", 0), item("bad sku", 1), item("TEE", 5), item("TEE", 20_000), item("", -3)];
        let errors = validation_errors(price_items(&requests, &catalog([])));
        assert_eq!(
            fields(&errors),
            [
                "/items/0/quantity",
                "/items/1/sku",
                "/items/3/sku",
                "/items/3/quantity",
                "/items/4/sku",
                "/items/4/quantity"
            ]
        );
    }

    #[test]
    fn unknown_skus_are_all_named_in_request_order() {
        let catalog = catalog([product("MUG", 1)]);
        let result = price_items(&[item("ZED", 1), item("MUG", 1), item("ABC", 1)], &catalog);
        assert_eq!(result, Err(DomainError::UnknownSkus(vec![sku("ZED"), sku("ABC")])));
    }

    #[test]
    fn inactive_skus_are_all_named_in_request_order() {
        let retired = |code: &str| Product { active: false, ..product(code, 1) };
        let catalog = catalog([retired("OLD-2"), product("MUG", 1), retired("OLD-1")]);
        let result = price_items(&[item("OLD-2", 1), item("MUG", 1), item("OLD-1", 1)], &catalog);
        assert_eq!(result, Err(DomainError::InactiveSkus(vec![sku("OLD-2"), sku("OLD-1")])));
    }

    #[test]
    fn unknown_skus_are_reported_before_inactive_ones() {
        let catalog = catalog([Product { active: false, ..product("OLD", 1) }]);
        let result = price_items(&[item("OLD", 1), item("NEW", 1)], &catalog);
        assert_eq!(result, Err(DomainError::UnknownSkus(vec![sku("NEW")])));
    }

    #[test]
    fn products_in_different_currencies_are_refused_naming_each_currency_once() {
        let in_currency = |code: &str, currency: &str| Product {
            currency: Currency::parse(currency).expect("valid"),
            ..product(code, 1)
        };
        let catalog = catalog([in_currency("A", "USD"), in_currency("B", "EUR"), in_currency("C", "USD")]);
        let result = price_items(&[item("A", 1), item("B", 1), item("C", 1)], &catalog);
        let expected = vec![Currency::parse("EUR").expect("valid"), Currency::parse("USD").expect("valid")];
        assert_eq!(result, Err(DomainError::MixedCurrencies(expected)));
    }

    #[test]
    fn line_total_overflow_is_refused_at_the_line_quantity() {
        let catalog = catalog([product("MUG", 1), product("GOLD", i64::MAX / 2)]);
        let errors = validation_errors(price_items(&[item("MUG", 1), item("GOLD", 3)], &catalog));
        assert_eq!(fields(&errors), ["/items/1/quantity"]);
    }

    #[test]
    fn order_total_overflow_is_refused_at_items() {
        // Each line fits; their sum is i64::MAX - 1 + 2.
        let catalog = catalog([product("GOLD", i64::MAX / 2), product("SILVER", i64::MAX / 2), product("PEN", 2)]);
        let errors = validation_errors(price_items(&[item("GOLD", 1), item("SILVER", 1), item("PEN", 1)], &catalog));
        assert_eq!(errors, [FieldError::new("/items", "the order total is more than an order can hold")]);
    }

    #[test]
    fn largest_validated_prices_and_quantities_cannot_overflow() {
        let products: Vec<_> =
            (0..MAX_ORDER_LINES).map(|i| product(&format!("SKU-{i}"), crate::MAX_UNIT_PRICE)).collect();
        let requests: Vec<_> =
            (0..MAX_ORDER_LINES).map(|i| item(&format!("SKU-{i}"), i64::from(MAX_QUANTITY))).collect();
        let priced = price_items(&requests, &catalog(products)).expect("fits in i64");
        assert_eq!(priced.total, crate::MAX_UNIT_PRICE * 10_000 * 100);
    }

    #[test]
    fn item_request_refuses_unknown_fields_such_as_a_client_price() {
        let error = serde_json::from_str::<ItemRequest>(r#"{"sku":"MUG","quantity":1,"unit_price":1}"#)
            .expect_err("a client never sends a price");
        assert!(error.to_string().contains("unknown field `unit_price`"), "{error}");
    }
}

//! The catalog's product, and the raw product a client (an admin) sends.

use serde::{Deserialize, Serialize};

use crate::{
    Currency, DomainError, FieldError, MinorUnits, Sku,
    text::{check_text, trimmed},
};

/// The longest product name, in characters.
pub const PRODUCT_NAME_MAX_CHARS: usize = 200;
/// The highest unit price accepted (10^12 minor units). With at most 10 000 pieces a line and
/// 100 lines an order, no total can come near `i64::MAX`.
pub const MAX_UNIT_PRICE: MinorUnits = 1_000_000_000_000;

/// A product of the catalog, as stored and as listed by `GET /api/v1/products`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: Sku,
    pub name: String,
    pub unit_price: MinorUnits,
    pub currency: Currency,
    pub active: bool,
}

/// A product as a client sends it, not yet validated.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub sku: String,
    pub name: String,
    pub unit_price: i64,
    pub currency: String,
    /// Absent means active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl ProductInput {
    /// The product, with its name trimmed; or every invalid field at once.
    pub fn validate(self) -> Result<Product, DomainError> {
        let mut errors = Vec::new();
        let sku = Sku::parse(&self.sku).map_err(|e| errors.push(e.under("/sku"))).ok();
        let name = trimmed(&self.name);
        check_text(&mut errors, "/name".to_owned(), name, PRODUCT_NAME_MAX_CHARS);
        if !(0..=MAX_UNIT_PRICE).contains(&self.unit_price) {
            errors.push(FieldError::new("/unit_price", format!("must be between 0 and {MAX_UNIT_PRICE} minor units")));
        }
        let currency = Currency::parse(&self.currency).map_err(|e| errors.push(e.under("/currency"))).ok();
        match (sku, currency) {
            (Some(sku), Some(currency)) if errors.is_empty() => Ok(Product {
                sku,
                name: name.to_owned(),
                unit_price: self.unit_price,
                currency,
                active: self.active.unwrap_or(true),
            }),
            _ => Err(DomainError::Validation(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProductInput {
        ProductInput {
            sku: "MUG-1".to_owned(),
            name: "  Coffee mug  ".to_owned(),
            unit_price: 1299,
            currency: "EUR".to_owned(),
            active: None,
        }
    }

    fn field_errors(input: ProductInput) -> Vec<FieldError> {
        match input.validate() {
            Err(DomainError::Validation(errors)) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn valid_input_becomes_an_active_product_with_a_trimmed_name() {
        let product = input().validate().expect("valid");
        assert_eq!(
            product,
            Product {
                sku: Sku::parse("MUG-1").expect("valid"),
                name: "Coffee mug".to_owned(),
                unit_price: 1299,
                currency: Currency::parse("EUR").expect("valid"),
                active: true,
            }
        );
    }

    #[test]
    fn explicit_active_false_is_kept() {
        assert!(!ProductInput { active: Some(false), ..input() }.validate().expect("valid").active);
    }

    #[test]
    fn unit_price_bounds_are_inclusive() {
        for unit_price in [0, MAX_UNIT_PRICE] {
            assert_eq!(ProductInput { unit_price, ..input() }.validate().expect("valid").unit_price, unit_price);
        }
    }

    #[test]
    fn invalid_sku_is_reported_at_sku() {
        let errors = field_errors(ProductInput { sku: "no spaces".to_owned(), ..input() });
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["/sku"]);
    }

    #[test]
    fn blank_name_is_reported_at_name() {
        assert_eq!(
            field_errors(ProductInput { name: "   ".to_owned(), ..input() }),
            [FieldError::new("/name", "must not be blank")]
        );
    }

    #[test]
    fn name_longer_than_200_characters_after_trimming_is_reported() {
        let ok = format!(" {} ", "n".repeat(PRODUCT_NAME_MAX_CHARS));
        assert!(ProductInput { name: ok, ..input() }.validate().is_ok());
        assert_eq!(
            field_errors(ProductInput { name: "n".repeat(PRODUCT_NAME_MAX_CHARS + 1), ..input() }),
            [FieldError::new("/name", "must be at most 200 characters")]
        );
    }

    #[test]
    fn name_with_control_characters_is_reported() {
        assert_eq!(
            field_errors(ProductInput { name: "mug\0".to_owned(), ..input() }),
            [FieldError::new("/name", "must not contain control characters")]
        );
    }

    #[test]
    fn negative_and_too_high_unit_prices_are_reported() {
        for unit_price in [-1, MAX_UNIT_PRICE + 1, i64::MIN, i64::MAX] {
            let errors = field_errors(ProductInput { unit_price, ..input() });
            assert_eq!(errors.len(), 1, "{unit_price}");
            assert_eq!(errors[0].field, "/unit_price");
        }
    }

    #[test]
    fn invalid_currency_is_reported_at_currency() {
        let errors = field_errors(ProductInput { currency: "eur".to_owned(), ..input() });
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["/currency"]);
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let all_bad = ProductInput {
            sku: String::new(),
            name: String::new(),
            unit_price: -5,
            currency: "euro".to_owned(),
            active: Some(true),
        };
        let fields: Vec<_> = field_errors(all_bad).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["/sku", "/name", "/unit_price", "/currency"]);
    }

    #[test]
    fn product_input_refuses_unknown_fields() {
        let json = r#"{"sku":"A","name":"n","unit_price":1,"currency":"EUR","price":2}"#;
        let error = serde_json::from_str::<ProductInput>(json).expect_err("unknown field");
        assert!(error.to_string().contains("unknown field `price`"), "{error}");
    }

    #[test]
    fn product_input_active_is_optional() {
        let json = r#"{"sku":"A","name":"n","unit_price":1,"currency":"EUR"}"#;
        assert_eq!(serde_json::from_str::<ProductInput>(json).expect("parses").active, None);
    }

    #[test]
    fn product_wire_shape_uses_exactly_the_catalog_field_names() {
        let product = input().validate().expect("valid");
        let json = serde_json::to_value(&product).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"sku": "MUG-1", "name": "Coffee mug", "unit_price": 1299, "currency": "EUR", "active": true})
        );
        assert_eq!(serde_json::from_value::<Product>(json).expect("round trips"), product);
    }
}

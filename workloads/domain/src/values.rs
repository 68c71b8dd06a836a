//! Value types that cross the wire as strings: order ids, SKUs and currency codes. A `Sku` or
//! `Currency` that exists is valid: the only ways in are `parse` and deserialization, which
//! runs the same check.

use std::{borrow::Borrow, fmt, str::FromStr};

use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use crate::FieldError;

/// An amount of money in the currency's minor unit (cents for EUR). Never a float.
pub type MinorUnits = i64;

/// The id of an order: a UUIDv7, so ids sort by creation time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub Uuid);

impl OrderId {
    /// A fresh UUIDv7.
    #[expect(clippy::new_without_default, reason = "a freshly generated id is not a default value")]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl fmt::Display for OrderId {
    /// The hyphenated lowercase form, as on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for OrderId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl From<Uuid> for OrderId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<OrderId> for Uuid {
    fn from(id: OrderId) -> Self {
        id.0
    }
}

/// The longest SKU accepted.
pub const SKU_MAX_LEN: usize = 64;

/// A stock keeping unit: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, case-sensitive.
///
/// `Sku: Borrow<str>`, so a `HashMap<Sku, Product>` can be looked up with a `&str`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "MUG-CERAMIC"))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::check(raw)?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn check(raw: &str) -> Result<(), FieldError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if (1..=SKU_MAX_LEN).contains(&raw.len()) && raw.bytes().all(allowed) {
            Ok(())
        } else {
            Err(FieldError::new(
                "",
                format!("a sku is 1 to {SKU_MAX_LEN} characters of A-Z, a-z, 0-9, '.', '_' and '-'"),
            ))
        }
    }
}

impl TryFrom<String> for Sku {
    type Error = FieldError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::check(&raw)?;
        Ok(Self(raw))
    }
}

impl FromStr for Sku {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Sku {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Sku {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Sku {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// An ISO 4217 alphabetic currency code: exactly three ASCII uppercase letters. Only the format
/// is checked, so a newly introduced currency needs no code change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "EUR"))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match *raw.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(FieldError::new("", "a currency is an ISO 4217 code of three uppercase letters, like EUR")),
        }
    }

    pub fn as_str(&self) -> &str {
        // `parse` admits only ASCII, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl TryFrom<String> for Currency {
    type Error = FieldError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl FromStr for Currency {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Currency").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn order_id_new_is_a_uuid_v7() {
        assert_eq!(OrderId::new().0.get_version_num(), 7);
    }

    #[test]
    fn order_ids_created_later_sort_later() {
        let first = OrderId::new();
        let second = OrderId::new();
        assert!(first < second);
    }

    #[test]
    fn order_id_displays_and_parses_the_hyphenated_uuid() {
        let id = OrderId::new();
        let text = id.to_string();
        assert_eq!(text, id.0.hyphenated().to_string());
        assert_eq!(text.parse::<OrderId>().expect("parses"), id);
    }

    #[test]
    fn order_id_serializes_as_a_bare_string() {
        let id = OrderId::new();
        assert_eq!(serde_json::to_value(id).expect("serializes"), serde_json::json!(id.to_string()));
    }

    #[test]
    fn sku_accepts_letters_digits_dot_underscore_and_dash() {
        for raw in ["A", "abc-123", "X.Y_Z-9", &"s".repeat(SKU_MAX_LEN)] {
            assert_eq!(Sku::parse(raw).expect("valid").as_str(), raw);
        }
    }

    #[test]
    fn sku_rejects_empty_too_long_and_other_characters() {
        for raw in ["", &"s".repeat(SKU_MAX_LEN + 1), "a b", "a/b", "ä", "a\n", " a"] {
            let error = Sku::parse(raw).expect_err(raw);
            assert_eq!(error.field, "", "{raw:?}");
            assert!(error.message.contains("1 to 64"), "{error}");
        }
    }

    #[test]
    fn sku_deserialization_validates() {
        assert_eq!(serde_json::from_str::<Sku>(r#""AB-1""#).expect("valid"), Sku::parse("AB-1").expect("valid"));
        let error = serde_json::from_str::<Sku>(r#""a b""#).expect_err("invalid sku");
        assert!(error.to_string().contains("a sku is"), "{error}");
    }

    #[test]
    fn sku_serializes_as_a_string() {
        assert_eq!(serde_json::to_string(&Sku::parse("AB-1").expect("valid")).expect("serializes"), r#""AB-1""#);
    }

    #[test]
    fn catalog_keyed_by_sku_can_be_looked_up_by_str() {
        let catalog = HashMap::from([(Sku::parse("AB-1").expect("valid"), 7)]);
        assert_eq!(catalog.get("AB-1"), Some(&7));
    }

    #[test]
    fn currency_accepts_three_uppercase_letters() {
        let currency = Currency::parse("EUR").expect("valid");
        assert_eq!(currency.as_str(), "EUR");
        assert_eq!(currency.to_string(), "EUR");
        assert_eq!(format!("{currency:?}"), r#"Currency("EUR")"#);
    }

    #[test]
    fn currency_rejects_anything_but_three_uppercase_letters() {
        for raw in ["", "EU", "EURO", "eur", "Eur", "E1R", "ÄUR", " EU"] {
            let error = Currency::parse(raw).expect_err(raw);
            assert!(error.message.contains("three uppercase letters"), "{error}");
        }
    }

    #[test]
    fn currency_serde_is_a_validated_string() {
        let currency: Currency = serde_json::from_str(r#""USD""#).expect("valid");
        assert_eq!(serde_json::to_string(&currency).expect("serializes"), r#""USD""#);
        assert!(serde_json::from_str::<Currency>(r#""usd""#).is_err());
    }
}

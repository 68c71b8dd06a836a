//! The shipping address of an order.

use serde::{Deserialize, Serialize};

use crate::{
    DomainError, FieldError,
    text::{check_text, trimmed},
};

/// The longest name, address line, city or region, in characters.
pub const ADDRESS_TEXT_MAX_CHARS: usize = 200;
/// The longest postal code, in characters.
pub const POSTAL_CODE_MAX_CHARS: usize = 20;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2, uppercase (`DE`). Only the format is checked.
    pub country: String,
}

impl ShippingAddress {
    /// Every invalid field, each addressed as `<pointer_prefix>/<field>` (the API passes
    /// `/shipping_address`). Checks the address as it is; see [`ShippingAddress::into_validated`]
    /// to tidy it first.
    pub fn validate(&self, pointer_prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let at = |field: &str| format!("{pointer_prefix}/{field}");
        check_text(&mut errors, at("name"), &self.name, ADDRESS_TEXT_MAX_CHARS);
        check_text(&mut errors, at("line1"), &self.line1, ADDRESS_TEXT_MAX_CHARS);
        if let Some(line2) = &self.line2 {
            check_text(&mut errors, at("line2"), line2, ADDRESS_TEXT_MAX_CHARS);
        }
        check_text(&mut errors, at("city"), &self.city, ADDRESS_TEXT_MAX_CHARS);
        check_text(&mut errors, at("postal_code"), &self.postal_code, POSTAL_CODE_MAX_CHARS);
        if let Some(region) = &self.region {
            check_text(&mut errors, at("region"), region, ADDRESS_TEXT_MAX_CHARS);
        }
        if !(self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase())) {
            errors.push(FieldError::new(at("country"), "must be an ISO 3166-1 alpha-2 code of two uppercase letters"));
        }
        errors
    }

    /// What a form sends, tidied: every field trimmed, a blank `line2`/`region` treated as
    /// absent, the country code uppercased.
    #[must_use]
    pub fn normalized(self) -> Self {
        let tidy = |s: String| trimmed(&s).to_owned();
        let present = |s: Option<String>| s.map(tidy).filter(|s| !s.is_empty());
        Self {
            name: tidy(self.name),
            line1: tidy(self.line1),
            line2: present(self.line2),
            city: tidy(self.city),
            postal_code: tidy(self.postal_code),
            region: present(self.region),
            country: trimmed(&self.country).to_ascii_uppercase(),
        }
    }

    /// [`normalized`](Self::normalized), then [`validate`](Self::validate)d.
    pub fn into_validated(self, pointer_prefix: &str) -> Result<Self, DomainError> {
        let address = self.normalized();
        let errors = address.validate(pointer_prefix);
        if errors.is_empty() { Ok(address) } else { Err(DomainError::Validation(errors)) }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::fixtures::address;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn complete_address_is_valid() {
        assert_eq!(address().validate("/shipping_address"), vec![]);
    }

    #[test]
    fn optional_lines_may_be_absent() {
        let minimal = ShippingAddress { line2: None, region: None, ..address() };
        assert_eq!(minimal.validate(""), vec![]);
    }

    #[test]
    fn blank_required_fields_are_reported_under_the_prefix() {
        let blank = ShippingAddress {
            name: " ".to_owned(),
            line1: String::new(),
            line2: None,
            city: "\t".to_owned(),
            postal_code: String::new(),
            region: None,
            country: String::new(),
        };
        let errors = blank.validate("/shipping_address");
        assert_eq!(
            fields(&errors),
            [
                "/shipping_address/name",
                "/shipping_address/line1",
                "/shipping_address/city",
                "/shipping_address/postal_code",
                "/shipping_address/country",
            ]
        );
        assert_eq!(errors[0].message, "must not be blank");
    }

    #[test]
    fn present_but_blank_optional_lines_are_reported() {
        let address = ShippingAddress { line2: Some(String::new()), region: Some("  ".to_owned()), ..address() };
        assert_eq!(fields(&address.validate("")), ["/line2", "/region"]);
    }

    #[test]
    fn overlong_fields_are_reported() {
        let long = "x".repeat(ADDRESS_TEXT_MAX_CHARS + 1);
        let address = ShippingAddress {
            name: long.clone(),
            line1: long.clone(),
            line2: Some(long.clone()),
            city: long.clone(),
            postal_code: "1".repeat(POSTAL_CODE_MAX_CHARS + 1),
            region: Some(long),
            country: "DE".to_owned(),
        };
        let errors = address.validate("");
        assert_eq!(fields(&errors), ["/name", "/line1", "/line2", "/city", "/postal_code", "/region"]);
        assert_eq!(errors[4].message, "must be at most 20 characters");
    }

    #[test]
    fn fields_at_their_maximum_length_are_valid() {
        let max = "x".repeat(ADDRESS_TEXT_MAX_CHARS);
        let address = ShippingAddress {
            name: max.clone(),
            line1: max.clone(),
            line2: Some(max.clone()),
            city: max.clone(),
            postal_code: "1".repeat(POSTAL_CODE_MAX_CHARS),
            region: Some(max),
            country: "DE".to_owned(),
        };
        assert_eq!(address.validate(""), vec![]);
    }

    #[test]
    fn control_characters_are_reported() {
        let address = ShippingAddress { line1: "Main St\n5".to_owned(), ..address() };
        assert_eq!(address.validate(""), [FieldError::new("/line1", "must not contain control characters")]);
    }

    #[test]
    fn country_must_be_two_uppercase_letters() {
        for country in ["de", "DEU", "D", "D1", "ÄÖ", " DE"] {
            let errors = ShippingAddress { country: country.to_owned(), ..address() }.validate("");
            assert_eq!(fields(&errors), ["/country"], "{country:?}");
        }
    }

    #[test]
    fn normalized_trims_drops_blank_optionals_and_uppercases_the_country() {
        let messy = ShippingAddress {
            name: " Ada Lovelace ".to_owned(),
            line1: "12 St James's Square ".to_owned(),
            line2: Some("   ".to_owned()),
            city: " London".to_owned(),
            postal_code: " SW1Y 4JH ".to_owned(),
            region: Some(" Westminster ".to_owned()),
            country: " gb ".to_owned(),
        };
        let tidy = messy.into_validated("/shipping_address").expect("valid after normalizing");
        assert_eq!(
            tidy,
            ShippingAddress {
                name: "Ada Lovelace".to_owned(),
                line1: "12 St James's Square".to_owned(),
                line2: None,
                city: "London".to_owned(),
                postal_code: "SW1Y 4JH".to_owned(),
                region: Some("Westminster".to_owned()),
                country: "GB".to_owned(),
            }
        );
    }

    #[test]
    fn into_validated_reports_what_normalizing_cannot_fix() {
        let error = ShippingAddress { city: " ".to_owned(), ..address() }.into_validated("/shipping_address");
        assert_eq!(
            error,
            Err(DomainError::Validation(vec![FieldError::new("/shipping_address/city", "must not be blank")]))
        );
    }

    #[test]
    fn absent_optional_lines_are_left_out_of_the_json() {
        let json =
            serde_json::to_value(ShippingAddress { line2: None, region: None, ..address() }).expect("serializes");
        let keys: BTreeSet<_> = json.as_object().expect("an object").keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["name", "line1", "city", "postal_code", "country"]));
    }

    #[test]
    fn address_json_refuses_unknown_fields() {
        let json = r#"{"name":"a","line1":"b","city":"c","postal_code":"1","country":"DE","zip":"1"}"#;
        let error = serde_json::from_str::<ShippingAddress>(json).expect_err("unknown field");
        assert!(error.to_string().contains("unknown field `zip`"), "{error}");
    }

    #[test]
    fn address_json_round_trips() {
        let json = serde_json::to_string(&address()).expect("serializes");
        assert_eq!(serde_json::from_str::<ShippingAddress>(&json).expect("parses"), address());
    }
}

//! The OpenAPI 3.1 document: generated from the handlers' annotations and the types' schemas,
//! then completed in one place with what the API enforces but the derives cannot say — so the
//! document is the contract a client (and schemathesis) can rely on:
//!
//! - every rule the API checks on a value: lengths, ranges, patterns, formats
//!   ([`constrain_request_schemas`], [`constrain_parameters`]), from the same constants the
//!   checks use;
//! - every status an operation can answer, each error as `application/problem+json`
//!   ([`document_problems`]): 400 for a malformed request, 401, 413 and 415 for bodies, 422 for
//!   values, 500, and 503 (`overloaded`, `timeout`, `unavailable`) with `Retry-After`.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use ordexa_domain::{
    ADDRESS_TEXT_MAX_CHARS, MAX_ORDER_LINES, MAX_QUANTITY, MAX_UNIT_PRICE, POSTAL_CODE_MAX_CHARS,
    PRODUCT_NAME_MAX_CHARS, SKU_MAX_LEN,
};
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::extract::{MAX_ETAG_DIGITS, MAX_IDEMPOTENCY_KEY_LEN};
use crate::orders::{self, MAX_MIN_VERSION, MAX_PAGE_SIZE, MAX_PAGE_TOKEN_LEN};
use crate::problem::ApiError;
use crate::products;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ordexa API", description = "Orders and catalog of the Ordexa ordering system. Errors are RFC 9457 problem details (`application/problem+json`) whose `type` ends in a stable slug naming the problem."),
    paths(
        products::list_products, products::create_product, products::update_product,
        orders::create_order, orders::get_order, orders::list_orders, orders::update_order,
        orders::cancel_order, orders::confirm_order, orders::ship_order, orders::deliver_order,
    ),
    modifiers(&BearerAuth),
    tags((name = "orders"), (name = "fulfilment", description = "Staff (admin role) actions"), (name = "catalog"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The media type of every error body.
const PROBLEM_JSON: &str = ordexa_platform::problem::CONTENT_TYPE;

/// Characters `char::is_control` refuses: C0, DEL and C1.
const CONTROL: &[(u32, u32)] = &[(0x00, 0x1F), (0x7F, 0x9F)];
/// Whitespace that is not a control character, as the domain trims it (Unicode `White_Space`
/// and the byte order mark).
const SPACE: &[(u32, u32)] = &[
    (0x20, 0x20),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
    (0xFEFF, 0xFEFF),
];

/// The ranges as the inside of a regex character class, in `\uXXXX` escapes (the same in
/// ECMA-262, Python and Rust regexes).
fn class(ranges: &[(u32, u32)]) -> String {
    ranges
        .iter()
        .map(|&(from, to)| if from == to { format!("\\u{from:04X}") } else { format!("\\u{from:04X}-\\u{to:04X}") })
        .collect()
}

/// Free text as the domain accepts it: no control character, at least one character that is
/// not whitespace.
fn text_pattern() -> String {
    let (control, space) = (class(CONTROL), class(SPACE));
    format!("^[^{control}]*[^{control}{space}][^{control}]*$")
}

fn text(max_chars: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": text_pattern()})
}

fn optional_text(max_chars: usize) -> Value {
    json!({"type": ["string", "null"], "minLength": 1, "maxLength": max_chars, "pattern": text_pattern(),
        "description": "Absent or null: none"})
}

fn sku() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": SKU_MAX_LEN, "pattern": format!("^[A-Za-z0-9._-]{{1,{SKU_MAX_LEN}}}$"),
        "example": "MUG-CERAMIC"})
}

/// A UUID in the hyphenated form, the only one the API takes.
const UUID_PATTERN: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// The document, built once.
pub fn document_json() -> Result<&'static Value, ApiError> {
    static DOCUMENT: OnceLock<Result<Value, String>> = OnceLock::new();
    DOCUMENT.get_or_init(build).as_ref().map_err(|err| ApiError::Internal(format!("the OpenAPI document: {err}")))
}

/// `GET /api/v1/openapi.json`
pub async fn document() -> Response {
    match document_json() {
        Ok(doc) => axum::Json(doc).into_response(),
        Err(err) => err.into_response(),
    }
}

fn build() -> Result<Value, String> {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).map_err(|e| e.to_string())?;
    constrain_request_schemas(&mut doc)?;
    constrain_parameters(&mut doc)?;
    document_problems(&mut doc)?;
    link_operations(&mut doc)?;
    Ok(doc)
}

/// `doc.components.schemas[name]`, which must exist.
fn schema<'a>(doc: &'a mut Value, name: &str) -> Result<&'a mut Map<String, Value>, String> {
    doc.pointer_mut(&format!("/components/schemas/{name}"))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("the document has no schema {name}"))
}

/// Replaces the schemas of `properties` of `object`; each must exist, so a renamed field fails
/// the build (and its test) rather than leaving a rule out.
fn set_properties(object: &mut Map<String, Value>, properties: &[(&str, Value)]) -> Result<(), String> {
    let props = object.get_mut("properties").and_then(Value::as_object_mut).ok_or("a schema without properties")?;
    for (name, value) in properties {
        let slot = props.get_mut(*name).ok_or_else(|| format!("no property {name}"))?;
        *slot = value.clone();
    }
    Ok(())
}

fn constrain_request_schemas(doc: &mut Value) -> Result<(), String> {
    let quantity = json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_QUANTITY});
    set_properties(schema(doc, "ItemRequest")?, &[("sku", sku()), ("quantity", quantity)])?;

    let line = text(ADDRESS_TEXT_MAX_CHARS);
    set_properties(
        schema(doc, "ShippingAddress")?,
        &[
            ("name", line.clone()),
            ("line1", line.clone()),
            ("line2", optional_text(ADDRESS_TEXT_MAX_CHARS)),
            ("city", line),
            ("postal_code", text(POSTAL_CODE_MAX_CHARS)),
            ("region", optional_text(ADDRESS_TEXT_MAX_CHARS)),
            (
                "country",
                json!({"type": "string", "pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2, uppercase", "example": "DE"}),
            ),
        ],
    )?;

    let items = json!({"type": "array", "items": {"$ref": "#/components/schemas/ItemRequest"},
        "minItems": 1, "maxItems": MAX_ORDER_LINES,
        "description": "Distinct skus (a repeated sku is refused as `duplicate-sku`)"});
    set_properties(schema(doc, "CreateOrderRequest")?, &[("items", items.clone())])?;
    let update = schema(doc, "UpdateOrderRequest")?;
    set_properties(update, &[("items", items)])?;
    update.insert("minProperties".into(), json!(1));

    set_properties(
        schema(doc, "ProductInput")?,
        &[
            ("sku", sku()),
            ("name", text(PRODUCT_NAME_MAX_CHARS)),
            (
                "unit_price",
                json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_UNIT_PRICE,
                "description": "In the currency's minor unit (cents)"}),
            ),
            (
                "currency",
                json!({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217", "example": "EUR"}),
            ),
            ("active", json!({"type": ["boolean", "null"], "description": "Absent or null: true"})),
        ],
    )?;

    // `errors` is left out when there are none.
    let problem = schema(doc, "Problem")?;
    problem.insert("required".into(), json!(["type", "title", "status", "detail"]));
    set_properties(
        problem,
        &[(
            "type",
            json!({"type": "string", "format": "uri",
                "description": "https://ordexa.io/problems/<slug>; the slug names the problem (e.g. `validation`, `read-model-unavailable`)"}),
        )],
    )?;
    Ok(())
}

/// One operation of the document, by its path and method.
struct Operation<'a> {
    path: String,
    method: String,
    fields: &'a mut Map<String, Value>,
}

/// Every operation of the document.
fn operations(doc: &mut Value) -> Result<Vec<Operation<'_>>, String> {
    let paths = doc.get_mut("paths").and_then(Value::as_object_mut).ok_or("the document has no paths")?;
    let mut out = Vec::new();
    for (path, item) in paths.iter_mut() {
        for (method, operation) in item.as_object_mut().into_iter().flatten() {
            if let Some(fields) = operation.as_object_mut() {
                out.push(Operation { path: path.clone(), method: method.clone(), fields });
            }
        }
    }
    Ok(out)
}

fn constrain_parameters(doc: &mut Value) -> Result<(), String> {
    let sku_schema = sku();
    for Operation { path, method, fields: operation } in operations(doc)? {
        for parameter in operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(name) = parameter.get("name").and_then(Value::as_str).map(str::to_owned) else { continue };
            let replacement = match name.as_str() {
                "id" => json!({"type": "string", "format": "uuid", "pattern": UUID_PATTERN}),
                "sku" => sku_schema.clone(),
                "If-Match" => json!({"type": "string",
                    "pattern": format!(r#"^(\*|"[0-9]{{1,{MAX_ETAG_DIGITS}}}"|W/"[!#-~]*"|)$"#),
                    "description": "`*`, or the ETag last seen (`\"3\"`); a weak ETag, or none (empty), never matches (412)"}),
                "Idempotency-Key" => json!({"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LEN,
                    "pattern": "^[!-~]+$", "description": "Visible ASCII without spaces"}),
                "page_token" => {
                    json!({"type": "string", "minLength": 1, "maxLength": MAX_PAGE_TOKEN_LEN, "pattern": "^[A-Za-z0-9_-]+$"})
                }
                "limit" => json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": MAX_PAGE_SIZE}),
                "min_version" => {
                    json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_MIN_VERSION})
                }
                "status" => continue,
                other => return Err(format!("{method} {path}: parameter {other} has no stated rule")),
            };
            parameter["schema"] = replacement;
        }
    }
    Ok(())
}

fn problem_response(description: &str) -> Value {
    json!({"description": description, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn document_problems(doc: &mut Value) -> Result<(), String> {
    for Operation { path, method, fields: operation } in operations(doc)? {
        let parameters_in = |place: &str| {
            operation
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p.get("in").and_then(Value::as_str) == Some(place)))
        };
        let has_body = operation.contains_key("requestBody");
        let (in_path, in_header, in_query) = (parameters_in("path"), parameters_in("header"), parameters_in("query"));
        let responses = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("{method} {path} has no responses"))?;
        let mut add = |status: &str, description: &str| {
            responses.entry(status).or_insert_with(|| problem_response(description));
        };
        if has_body || in_path || in_header {
            add("400", "`bad-request`: malformed JSON, or a path segment or header not of the form stated here");
        }
        add("401", "`unauthorized`: no bearer token, or one that is not valid");
        if has_body {
            add("413", "`too-large`: the body is larger than the API accepts");
            add("415", "`unsupported-media-type`: the body is not `application/json`");
        }
        if has_body || in_query {
            add("422", "`validation`: a value breaks a rule stated here; `errors` names each");
        }
        add("500", "`internal`: the API failed; the details are in its log");
        add(
            "503",
            "`overloaded` or `timeout`: the API is at its limits; `unavailable`: the database cannot be reached. Retry after `Retry-After` seconds",
        );
        for (status, response) in responses.iter_mut() {
            let Ok(code) = status.parse::<u16>() else { continue };
            if code < 400 {
                continue;
            }
            let response =
                response.as_object_mut().ok_or_else(|| format!("{method} {path} {status}: not an object"))?;
            // Errors are problems: move whatever schema was given to the problem media type.
            let content = response.entry("content").or_insert_with(|| json!({}));
            let schema = content
                .as_object_mut()
                .and_then(|c| c.remove("application/json"))
                .and_then(|media| media.get("schema").cloned())
                .unwrap_or_else(|| json!({"$ref": "#/components/schemas/Problem"}));
            *content = json!({PROBLEM_JSON: {"schema": schema}});
            let headers = response.entry("headers").or_insert_with(|| json!({}));
            match code {
                401 => {
                    headers["WWW-Authenticate"] =
                        json!({"required": true, "schema": {"type": "string", "const": "Bearer"}})
                }
                503 => {
                    headers["Retry-After"] = json!({"required": true, "description": "Seconds to wait before retrying",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"}})
                }
                _ => {}
            }
            if headers.as_object().is_some_and(Map::is_empty) {
                response.remove("headers");
            }
        }
    }
    Ok(())
}

/// OpenAPI links: what a client can do next with what an answer returned — read, change,
/// cancel or move on the order a create or a change answered with (by its `id`, with its
/// `ETag` as `If-Match`), change the product a create answered with. Clients (and
/// schemathesis' stateful phase) follow them through an order's life.
fn link_operations(doc: &mut Value) -> Result<(), String> {
    let order = |operation: &str, if_match: bool| {
        let mut parameters = json!({"path.id": "$response.body#/id"});
        if operation == "get_order" {
            parameters["query.min_version"] = json!("$response.body#/version");
        }
        if if_match {
            parameters["header.If-Match"] = json!("$response.header.ETag");
        }
        json!({"operationId": operation, "parameters": parameters})
    };
    let read = ("GetOrder", order("get_order", false));
    let update = ("UpdateOrder", order("update_order", true));
    let cancel = ("CancelOrder", order("cancel_order", true));
    let confirm = ("ConfirmOrder", order("confirm_order", true));
    let ship = ("ShipOrder", order("ship_order", true));
    let deliver = ("DeliverOrder", order("deliver_order", true));
    let product =
        ("UpdateProduct", json!({"operationId": "update_product", "parameters": {"path.sku": "$response.body#/sku"}}));
    let table = [
        ("/api/v1/orders", "post", "201", vec![read.clone(), update.clone(), cancel.clone(), confirm.clone()]),
        ("/api/v1/orders/{id}", "patch", "200", vec![read.clone(), update, cancel.clone(), confirm]),
        ("/api/v1/orders/{id}/confirm", "post", "200", vec![read.clone(), ship, cancel]),
        ("/api/v1/orders/{id}/ship", "post", "200", vec![read.clone(), deliver]),
        ("/api/v1/orders/{id}/deliver", "post", "200", vec![read.clone()]),
        ("/api/v1/orders/{id}/cancel", "post", "200", vec![read]),
        ("/api/v1/products", "post", "201", vec![product]),
    ];
    for (path, method, status, links) in table {
        let response = doc
            .pointer_mut(&format!("/paths/{}/{method}/responses/{status}", path.replace('~', "~0").replace('/', "~1")))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("no {status} response of {method} {path} to link from"))?;
        let links: Map<String, Value> = links.into_iter().map(|(name, link)| (name.to_owned(), link)).collect();
        response.insert("links".into(), Value::Object(links));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_builds_and_every_error_is_problem_json() -> Result<(), String> {
        let doc = build()?;
        let paths = doc["paths"].as_object().ok_or("no paths")?;
        for (path, item) in paths {
            for (method, operation) in item.as_object().ok_or("no item")? {
                let responses = operation["responses"].as_object().ok_or("no responses")?;
                for status in ["401", "500", "503"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
                for (status, response) in responses {
                    if status.as_str() >= "400" {
                        let content = response["content"].as_object().ok_or("no content")?;
                        assert_eq!(content.keys().collect::<Vec<_>>(), vec![PROBLEM_JSON], "{method} {path} {status}");
                    }
                }
            }
        }
        assert_eq!(doc["components"]["schemas"]["ItemRequest"]["properties"]["quantity"]["maximum"], MAX_QUANTITY);
        let list = doc["paths"]["/api/v1/orders"]["get"]["parameters"].as_array().ok_or("no parameters")?;
        let limit = list.iter().find(|p| p["name"] == "limit").ok_or("no limit")?;
        assert_eq!((&limit["schema"]["minimum"], &limit["schema"]["maximum"]), (&json!(1), &json!(MAX_PAGE_SIZE)));
        // Every link names an operation of the document.
        let ids: Vec<&Value> = paths
            .values()
            .flat_map(|item| item.as_object().into_iter().flatten())
            .map(|(_, op)| &op["operationId"])
            .collect();
        let created = &doc["paths"]["/api/v1/orders"]["post"]["responses"]["201"]["links"];
        for link in created.as_object().ok_or("create has no links")?.values() {
            assert!(ids.contains(&&link["operationId"]), "{link}");
        }
        Ok(())
    }

    #[test]
    fn the_text_pattern_classes_are_the_domains_control_and_whitespace() {
        let within =
            |ranges: &[(u32, u32)], c: char| ranges.iter().any(|&(from, to)| (from..=to).contains(&(c as u32)));
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(within(CONTROL, c), c.is_control(), "{c:?}");
            let blank = (c.is_whitespace() || c == '\u{feff}') && !c.is_control();
            assert_eq!(within(SPACE, c), blank, "{c:?}");
        }
        assert!(text_pattern().starts_with("^[^\\u0000-\\u001F\\u007F-\\u009F]*"), "{}", text_pattern());
    }

    #[test]
    fn blank_and_control_text_is_refused_by_the_domain_as_the_pattern_says() {
        for (value, ok) in [
            ("Ada", true),
            (" Ada ", true),
            ("Zoë ☕", true),
            ("", false),
            ("   ", false),
            ("\u{3000}\u{feff}", false),
            ("Ada\n", false),
            ("A\u{85}da", false),
        ] {
            let address = ordexa_domain::ShippingAddress {
                name: value.to_owned(),
                line1: "x".into(),
                line2: None,
                city: "x".into(),
                postal_code: "1".into(),
                region: None,
                country: "DE".into(),
            };
            assert_eq!(address.validate("").is_empty(), ok, "{value:?}");
        }
    }
}

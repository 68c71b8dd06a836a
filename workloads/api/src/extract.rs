//! Request extractors that turn malformed input into problem details naming what is wrong.
//! Every input the API reads goes through one of these, never through axum's own extractors,
//! whose rejections are plain text: each rule checked here is stated in the OpenAPI document
//! (`openapi.rs`), and each refusal is a problem.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use ordexa_domain::OrderId;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// A JSON body, deserialized with the path of any offending field, plus the SHA-256 of its
/// canonical form (keys sorted, whitespace dropped) so idempotent retries compare by meaning.
pub struct JsonBody<T> {
    pub value: T,
    pub canonical_hash: Vec<u8>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "the request body must be JSON (Content-Type: application/json)".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(rejection.body_text())
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        let mut json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        integral_numbers_as_integers(&mut json);
        let canonical_hash = Sha256::digest(json.to_string().as_bytes()).to_vec();
        let value = from_json_value(json)?;
        Ok(JsonBody { value, canonical_hash })
    }
}

/// The largest integer every JSON implementation reads exactly (2^53).
const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;

/// `2.0` → `2`: JSON (and JSON Schema's `integer`) does not tell the two apart, so a client
/// that writes integers as floating point numbers is not refused for it.
fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) if number.is_f64() => {
            if let Some(float) = number.as_f64()
                && float.fract() == 0.0
                && float.abs() <= EXACT_INTEGER_LIMIT
            {
                *value = serde_json::Value::from(float as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

/// Well-formed JSON of the wrong shape is 422 naming the field (as a JSON pointer).
fn from_json_value<T: DeserializeOwned>(json: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize::<_, T>(json).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." { "/".to_owned() } else { json_pointer(&path) };
        ApiError::field(&field, err.into_inner().to_string())
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// `items[0].quantity` → `/items/0/quantity`
fn json_pointer(path: &str) -> String {
    let mut out = String::new();
    for segment in path.split('.') {
        let mut rest = segment;
        while let Some(open) = rest.find('[') {
            let (name, tail) = rest.split_at(open);
            if !name.is_empty() {
                out.push('/');
                out.push_str(name);
            }
            let close = tail.find(']').unwrap_or(tail.len());
            out.push('/');
            out.push_str(&tail[1..close]);
            rest = tail.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

/// The query string, deserialized into `T`; a value that does not parse is a 422 naming the
/// parameter (`/limit`), like a body field.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(QueryParams).map_err(|err| {
            let path = err.path().to_string();
            let field = if path == "." { "/".to_owned() } else { format!("/{path}") };
            ApiError::field(&field, err.into_inner().to_string())
        })
    }
}

/// One path segment, percent-decoded.
async fn path_segment(parts: &mut Parts, what: &str) -> Result<String, ApiError> {
    Path::<String>::from_request_parts(parts, &()).await.map(|Path(raw)| raw).map_err(|rejection| {
        ApiError::BadRequest(format!("the {what} in the path is not valid: {}", rejection.body_text()))
    })
}

/// The `{id}` of an order path: a UUID in its hyphenated form (`format: uuid`).
pub struct OrderIdPath(pub OrderId);

/// Whether `raw` is a UUID in the hyphenated 8-4-4-4-12 form — the only form the document
/// names; `Uuid::parse_str` alone would also take the simple, braced and URN forms.
pub fn is_hyphenated_uuid(raw: &str) -> bool {
    raw.len() == 36
        && raw.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

impl<S: Send + Sync> FromRequestParts<S> for OrderIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = path_segment(parts, "order id").await?;
        if !is_hyphenated_uuid(&raw) {
            return Err(ApiError::BadRequest(format!(
                "order id must be a UUID like 0191a7c2-7e1b-7000-8000-000000000001, got {raw:?}"
            )));
        }
        uuid::Uuid::parse_str(&raw)
            .map(|id| OrderIdPath(OrderId(id)))
            .map_err(|_| ApiError::BadRequest(format!("order id must be a UUID, got {raw:?}")))
    }
}

/// The `{sku}` of a product path.
pub struct SkuPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SkuPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = path_segment(parts, "sku").await?;
        ordexa_domain::Sku::parse(&raw)
            .map(|_| SkuPath(raw.clone()))
            .map_err(|err| ApiError::BadRequest(format!("the sku in the path is not valid: {}", err.message)))
    }
}

/// The longest version an `If-Match` ETag may name: 18 digits always fit an `i64`.
pub const MAX_ETAG_DIGITS: usize = 18;

/// `If-Match`: `*` (or absent) means unconditional; `"<version>"` the version the client last
/// saw. A weak ETag (`W/"…"`) is well formed but never matches (RFC 9110 §13.1.1 compares
/// strongly), nor does an empty list: that 412 is decided by [`IfMatch::expected_version`],
/// which a handler calls once the rest of the request is known to be valid — a precondition
/// is only evaluated for a request that would otherwise succeed (RFC 9110 §13.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    Version(i64),
    Never(&'static str),
}

impl IfMatch {
    /// The version the order must be at, if any; 412 when no version can match.
    pub fn expected_version(&self) -> Result<Option<i64>, ApiError> {
        match self {
            IfMatch::Any => Ok(None),
            IfMatch::Version(version) => Ok(Some(*version)),
            IfMatch::Never(why) => Err(ApiError::PreconditionFailed((*why).to_owned())),
        }
    }
}

/// `etagc` of RFC 9110: visible ASCII except `"`.
fn is_etag_char(b: u8) -> bool {
    b == b'!' || (b'#'..=b'~').contains(&b)
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IF_MATCH) else { return Ok(IfMatch::Any) };
        let malformed = || ApiError::BadRequest("If-Match must be * or one ETag like \"3\"".to_owned());
        let text = value.to_str().map_err(|_| malformed())?.trim();
        if text == "*" {
            return Ok(IfMatch::Any);
        }
        if text.is_empty() {
            // An empty list of ETags (RFC 9110 `#entity-tag`).
            return Ok(IfMatch::Never("If-Match names no ETag, so none matches"));
        }
        if let Some(weak) = text.strip_prefix("W/") {
            let quoted = weak.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
            return match quoted {
                Some(tag) if tag.bytes().all(is_etag_char) => {
                    Ok(IfMatch::Never("If-Match needs a strong ETag such as \"3\"; weak ETags never match"))
                }
                _ => Err(malformed()),
            };
        }
        text.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|digits| {
                (1..=MAX_ETAG_DIGITS).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|digits| digits.parse::<i64>().ok())
            .map(IfMatch::Version)
            .ok_or_else(malformed)
    }
}

/// The optional `Idempotency-Key` of a create: 1 to 255 visible ASCII characters.
pub struct IdempotencyKeyHeader(pub Option<String>);

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(IdempotencyKeyHeader(None)) };
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_IDEMPOTENCY_KEY_LEN || !bytes.iter().all(|b| (b'!'..=b'~').contains(b))
        {
            return Err(ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters without spaces"
            )));
        }
        Ok(IdempotencyKeyHeader(Some(String::from_utf8_lossy(bytes).into_owned())))
    }
}

/// The W3C `traceparent` the request's events carry: the caller's trace continued with a new
/// span id, or a new trace when the caller sent none (or an invalid one).
pub struct TraceParent(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TraceParent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let incoming = parts.headers.get("traceparent").and_then(|v| v.to_str().ok());
        Ok(TraceParent(ordexa_store::trace::continue_trace(incoming)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths_become_json_pointers() {
        assert_eq!(json_pointer("items[0].quantity"), "/items/0/quantity");
        assert_eq!(json_pointer("shipping_address.city"), "/shipping_address/city");
        assert_eq!(json_pointer("items"), "/items");
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Item>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quantity: i64,
    }

    fn parse(body: &str) -> Result<Body, ApiError> {
        let mut json: serde_json::Value =
            serde_json::from_str(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        integral_numbers_as_integers(&mut json);
        from_json_value(json)
    }

    #[test]
    fn wrong_types_are_422_with_the_field() {
        match parse(r#"{"items":[{"quantity":"two"}]}"#) {
            Err(ApiError::Unprocessable { errors, .. }) => assert_eq!(errors[0].field, "/items/0/quantity"),
            other => panic!("expected 422, got {other:?}"),
        }
        match parse(r#"{"items":[{"quantity":2.5}]}"#) {
            Err(ApiError::Unprocessable { errors, .. }) => assert_eq!(errors[0].field, "/items/0/quantity"),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn integral_floating_point_numbers_are_integers() {
        assert!(matches!(parse(r#"{"items":[{"quantity":2.0}]}"#), Ok(Body { items }) if items[0].quantity == 2));
        assert!(matches!(parse(r#"{"items":[{"quantity":1e3}]}"#), Ok(Body { items }) if items[0].quantity == 1000));
        assert!(matches!(parse(r#"{"items":[{"quantity":1e300}]}"#), Err(ApiError::Unprocessable { .. })));
    }

    #[test]
    fn if_match_is_star_one_strong_etag_or_a_weak_one_that_never_matches() -> Result<(), axum::http::Error> {
        let parse = |value: &str| -> Result<Result<Option<i64>, u16>, axum::http::Error> {
            let request = axum::http::Request::builder().header(IF_MATCH, value).body(())?;
            let (mut parts, ()) = request.into_parts();
            Ok(block_on(IfMatch::from_request_parts(&mut parts, &()))
                .and_then(|if_match| if_match.expected_version())
                .map_err(|err| err.kind().status.as_u16()))
        };
        assert_eq!(parse("\"3\"")?, Ok(Some(3)));
        assert_eq!(parse("*")?, Ok(None));
        assert_eq!(parse("W/\"3\"")?, Err(412));
        assert_eq!(parse("")?, Err(412), "an empty list of ETags matches nothing");
        for malformed in ["3", "\"abc\"", "\"1\", \"2\"", "W/3", "\"1234567890123456789\""] {
            assert_eq!(parse(malformed)?, Err(400), "{malformed}");
        }
        Ok(())
    }

    /// Runs an extractor future that never waits (header extractors do not).
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
    }

    #[test]
    fn only_hyphenated_uuids_are_order_ids() {
        assert!(is_hyphenated_uuid("0191a7c2-7e1b-7000-8000-00000000000A"));
        assert!(!is_hyphenated_uuid("0191a7c27e1b70008000000000000001"));
        assert!(!is_hyphenated_uuid("{0191a7c2-7e1b-7000-8000-000000000001}"));
        assert!(!is_hyphenated_uuid("urn:uuid:0191a7c2-7e1b-7000-8000-000000000001"));
    }
}

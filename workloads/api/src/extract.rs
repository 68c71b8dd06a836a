//! Request extractors that turn malformed input into problem details naming what is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
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
        let value = parse_json(&bytes)?;
        let canonical: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        let canonical_hash = Sha256::digest(canonical.to_string().as_bytes()).to_vec();
        Ok(JsonBody { value, canonical_hash })
    }
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

/// Syntax errors are 400; well-formed JSON of the wrong shape is 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { "/".to_owned() } else { json_pointer(&path) };
                ApiError::field(&field, inner.to_string())
            }
            _ => ApiError::BadRequest(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end().map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
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

/// `If-Match: "<version>"`, the version the client last saw. Absent means unconditional.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IF_MATCH) else { return Ok(IfMatch(None)) };
        let text = value.to_str().map_err(|_| ApiError::BadRequest("If-Match is not valid text".into()))?.trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        if text.starts_with("W/") {
            return Err(ApiError::PreconditionFailed(
                "If-Match needs a strong ETag such as \"3\"; weak ETags never match".into(),
            ));
        }
        text.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|t| t.parse::<i64>().ok())
            .map(|v| IfMatch(Some(v)))
            .ok_or_else(|| ApiError::BadRequest(format!("If-Match must be one ETag like \"3\", got {text}")))
    }
}

/// The optional `Idempotency-Key` of a create.
pub struct IdempotencyKeyHeader(pub Option<String>);

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(IdempotencyKeyHeader(None)) };
        let key = value.to_str().map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?;
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters, got {}",
                key.len()
            )));
        }
        Ok(IdempotencyKeyHeader(Some(key.to_owned())))
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

    #[test]
    fn wrong_types_are_422_with_the_field_and_bad_syntax_is_400() {
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
        match parse_json::<Body>(br#"{"items":[{"quantity":"two"}]}"#) {
            Err(ApiError::Unprocessable { errors, .. }) => assert_eq!(errors[0].field, "/items/0/quantity"),
            other => panic!("expected 422, got {other:?}"),
        }
        assert!(matches!(parse_json::<Body>(b"{\"items\":["), Err(ApiError::BadRequest(_))));
    }
}

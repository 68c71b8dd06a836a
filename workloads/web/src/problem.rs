//! RFC 9457 problem details for the answers the web role gives itself (the API's own problems
//! pass through the proxy untouched). Same shape and `type` URIs as the API's.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A problem+json response.
pub fn problem(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "type": format!("https://ordexa.io/problems/{slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

//! The built frontend. Vite names everything under `assets/` after a hash of its content, so
//! those files may be cached for a year without revalidation; `index.html` (and any other
//! unhashed file) must be revalidated on every load so a deploy is picked up at once. Paths
//! that are no file fall back to `index.html`, where the SPA's router takes over — except
//! under `assets/`, where a missing file is a plain 404 rather than HTML posing as a script.

use std::path::Path;

use axum::Router;
use axum::http::{HeaderValue, Response, header};
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const REVALIDATE: &str = "no-cache";

fn immutable_when_found<B>(response: &Response<B>) -> Option<HeaderValue> {
    // A 404 must not be cached forever: the file may appear with the next deploy.
    Some(HeaderValue::from_static(if response.status().is_success() || response.status().as_u16() == 304 {
        IMMUTABLE
    } else {
        REVALIDATE
    }))
}

fn revalidate<B>(_: &Response<B>) -> Option<HeaderValue> {
    Some(HeaderValue::from_static(REVALIDATE))
}

/// `/assets/*` and the SPA fallback for every other path.
pub fn router(dir: &Path) -> Router {
    let hashed = Router::new()
        .nest_service("/assets", ServeDir::new(dir.join("assets")))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, immutable_when_found));
    let spa =
        ServeDir::new(dir).append_index_html_on_directories(true).fallback(ServeFile::new(dir.join("index.html")));
    let rest = Router::new()
        .fallback_service(spa)
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, revalidate));
    hashed.merge(rest).layer(CompressionLayer::new().gzip(true))
}

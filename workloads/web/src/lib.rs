//! The `web` role: serves the built single-page app and forwards `/api/` to the API, so the
//! browser talks to one origin and needs no CORS.
//!
//! - [`assets`]: the built files with cache headers (hashed files forever, `index.html` never
//!   without revalidation) and the SPA fallback to `index.html` for client-side routes.
//! - [`proxy`]: a streaming reverse proxy for `/api/` that answers 502 problem+json when the
//!   API cannot be reached.
//! - [`dev_token`]: `POST /dev/token`, development sign-in; answers 404 unless enabled.

pub mod assets;
pub mod dev_token;
pub mod proxy;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{any, get, post};
use tower_http::set_header::SetResponseHeaderLayer;

/// Why the web role cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("--assets-dir (ORDEXA_WEB_ASSETS) {0} has no index.html; build the frontend with `make frontend`")]
    MissingIndex(PathBuf),
    #[error("--api-upstream (ORDEXA_API_UPSTREAM) must be an http:// URL like http://127.0.0.1:8081, got {0:?}")]
    BadUpstream(String),
    #[error("--dev-sign-in needs the JWT secret: set --jwt-secret or ORDEXA_JWT_SECRET")]
    DevSignInWithoutSecret,
    #[error("--dev-sign-in cannot use the JWT secret: {0}")]
    DevSignIn(#[from] ordexa_platform::auth::TokenConfigError),
}

/// What the web role is configured with.
pub struct WebConfig {
    /// The built frontend (`frontend/dist`): `index.html` and `assets/`.
    pub assets_dir: PathBuf,
    /// Base URL of the API, e.g. `http://127.0.0.1:8081`.
    pub api_upstream: String,
    /// Signs development tokens when development sign-in is enabled; `None` keeps
    /// `/dev/token` answering 404.
    pub dev_sign_in: Option<ordexa_platform::auth::Hs256Tokens>,
}

/// Checks the configuration and builds every route.
pub fn router(config: WebConfig) -> Result<Router, WebError> {
    let index = config.assets_dir.join("index.html");
    if !index.is_file() {
        return Err(WebError::MissingIndex(config.assets_dir));
    }
    let upstream = proxy::Upstream::parse(&config.api_upstream)?;
    let proxy_state = Arc::new(proxy::Proxy::new(upstream));
    let dev_state = Arc::new(dev_token::DevSignIn { auth: config.dev_sign_in });

    let api = Router::new()
        .route("/api", any(proxy::forward))
        .route("/api/{*rest}", any(proxy::forward))
        .with_state(proxy_state);
    let dev = Router::new()
        .route("/dev/token", post(dev_token::mint))
        .route("/config.json", get(dev_token::client_config))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .with_state(dev_state);
    Ok(Router::new()
        .merge(api)
        .merge(dev)
        .route("/healthz", get(|| async { "ok" }))
        .merge(assets::router(&config.assets_dir)))
}

/// Serves `app` until `shutdown` resolves, then finishes the requests in flight. The peer
/// address reaches the proxy for `X-Forwarded-For`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

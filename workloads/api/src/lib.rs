//! The Ordexa REST API: catalog and order commands on the PostgreSQL write model, order reads
//! from the Cassandra read model, bearer JWT auth, RFC 9457 problem details and a generated
//! OpenAPI 3.1 document.

pub mod auth;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod problem;
pub mod products;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use ordexa_readmodel::ReadModel;
use ordexa_store::Store;
use tower_http::trace::TraceLayer;

pub use auth::Hs256Tokens;

/// The largest request body accepted; an order of 100 lines with an address is far below it.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How long a read waits for the projection to reach the version a client asked for.
pub const DEFAULT_READ_WAIT: Duration = Duration::from_secs(2);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The write model (PostgreSQL): commands and the catalog.
    pub store: Store,
    /// The read model (Cassandra): order reads and lists.
    pub reads: Arc<ReadModel>,
    /// Verifies bearer tokens.
    pub auth: Hs256Tokens,
    /// The longest a read waits for the projection (`min_version`, or an order committed but
    /// not projected yet).
    pub read_wait: Duration,
}

impl AppState {
    pub fn new(store: Store, reads: Arc<ReadModel>, auth: Hs256Tokens) -> Self {
        AppState { store, reads, auth, read_wait: DEFAULT_READ_WAIT }
    }

    pub fn with_read_wait(mut self, read_wait: Duration) -> Self {
        self.read_wait = read_wait;
        self
    }
}

/// All routes: `/api/v1/...`, `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: AppState, body_limit: usize) -> Router {
    let api = Router::new()
        .route("/products", get(products::list_products).post(products::create_product))
        .route("/products/{sku}", axum::routing::put(products::update_product))
        .route("/orders", get(orders::list_orders).post(orders::create_order))
        .route("/orders/{id}", get(orders::get_order).patch(orders::update_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .route("/orders/{id}/confirm", post(orders::confirm_order))
        .route("/orders/{id}/ship", post(orders::ship_order))
        .route("/orders/{id}/deliver", post(orders::deliver_order))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { problem::ApiError::NotFound("no such API route".to_owned()) });
    let ops = ordexa_platform::ops_router("api", state.clone());
    Router::new()
        .nest("/api/v1", api)
        .with_state(state)
        .merge(ops)
        .layer(axum::middleware::from_fn(ordexa_platform::metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
}

/// Serves `app` until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

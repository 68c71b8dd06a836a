//! The Ordexa REST API: catalog and order commands on the PostgreSQL write model, order reads
//! from the Cassandra read model, bearer JWT auth, RFC 9457 problem details and a generated
//! OpenAPI 3.1 document that states every status, content type and constraint.

pub mod auth;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod problem;
pub mod products;
pub mod purge;
pub mod reads;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use ordexa_readmodel::ReadModel;
use ordexa_store::Store;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

pub use auth::Hs256Tokens;
pub use purge::IdempotencyPurge;
pub use reads::{ReadModelTarget, ReadSide};

use crate::problem::ApiError;

/// The largest request body accepted; an order of 100 lines with an address is far below it.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How long a read waits for the projection to reach the version a client asked for.
pub const DEFAULT_READ_WAIT: Duration = Duration::from_secs(2);

/// How long one API request may take before it is answered 503 `timeout`; longer than the
/// read wait, so a read that waits for the projection ends with its own answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How many API requests one process works on at once; more are answered 503 `overloaded` at
/// once rather than queued (a queue would only add latency to requests that then time out).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 512;

/// How long one Cassandra request of the API may take (retries included).
pub const DEFAULT_READ_MODEL_TIMEOUT: Duration = Duration::from_secs(2);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The write model (PostgreSQL): commands and the catalog.
    pub store: Store,
    /// The read model (Cassandra): order reads and lists.
    pub reads: ReadSide,
    /// Verifies bearer tokens.
    pub auth: Hs256Tokens,
    /// The longest a read waits for the projection (`min_version`, or an order committed but
    /// not projected yet).
    pub read_wait: Duration,
}

impl AppState {
    pub fn new(store: Store, reads: Arc<ReadModel>, auth: Hs256Tokens) -> Self {
        Self::with_read_side(store, ReadSide::connected(reads), auth)
    }

    /// The state with a read side that may not be connected yet.
    pub fn with_read_side(store: Store, reads: ReadSide, auth: Hs256Tokens) -> Self {
        AppState { store, reads, auth, read_wait: DEFAULT_READ_WAIT }
    }

    pub fn with_read_wait(mut self, read_wait: Duration) -> Self {
        self.read_wait = read_wait;
        self
    }
}

/// The bounds every request of the API is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, in bytes (larger: 413).
    pub body_limit: usize,
    /// Longest time one request may take (longer: 503 `timeout`).
    pub request_timeout: Duration,
    /// Most requests worked on at once (more: 503 `overloaded`).
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT as usize,
        }
    }
}

/// All routes: `/api/v1/...`, `/healthz`, `/readyz`, `/metrics`. The API routes are held to
/// `limits` (the ops routes are not: probes and scrapes must answer when the API is busy); an
/// unknown route is a 404 and an unsupported method a 405 with `Allow`, both problems.
pub fn router(state: AppState, limits: Limits) -> Router {
    let bounded = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|err: tower::BoxError| async move { limit_error(&err) }))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(limits.max_in_flight))
        .timeout(limits.request_timeout);
    let api = Router::new()
        .route("/products", get(products::list_products).post(products::create_product))
        .route("/products/{sku}", put(products::update_product))
        .route("/orders", get(orders::list_orders).post(orders::create_order))
        .route("/orders/{id}", get(orders::get_order).patch(orders::update_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .route("/orders/{id}/confirm", post(orders::confirm_order))
        .route("/orders/{id}/ship", post(orders::ship_order))
        .route("/orders/{id}/deliver", post(orders::deliver_order))
        .route("/openapi.json", get(openapi::document))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(bounded);
    let ops = ordexa_platform::ops_router("api", state.clone());
    Router::new()
        .nest("/api/v1", api)
        .with_state(state)
        .merge(ops)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(ordexa_platform::metrics::track))
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .layer(TraceLayer::new_for_http())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}; the Allow header lists what it takes", uri.path()))
}

/// The answer to a request the limits refused: 503 (with `Retry-After`, as every 503).
fn limit_error(err: &tower::BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        metrics::counter!("ordexa_api_requests_refused_total", "reason" => "timeout").increment(1);
        ApiError::Timeout("the request did not finish within the request timeout; retry later".to_owned())
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("ordexa_api_requests_refused_total", "reason" => "overloaded").increment(1);
        ApiError::Overloaded("too many requests are in flight; retry shortly".to_owned())
    } else {
        ApiError::Internal(format!("request limits: {err}"))
    }
}

/// Serves `app` until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

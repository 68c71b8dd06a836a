//! The ops HTTP server every long-running process serves — `/healthz`, `/readyz` and `/metrics`
//! — on its own port (relay, projector, operator) or beside its API (api).

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::{Health, Shutdown, metrics_response};

/// What `/readyz` and `/healthz` ask.
pub trait Readiness: Clone + Send + Sync + 'static {
    /// `Ok` when the process can do its work now, else why not (`/readyz`).
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// `Ok` unless the process is stuck and should be restarted (`/healthz`).
    fn live(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Readiness for Health {
    async fn check(&self) -> Result<(), String> {
        Health::check(self)
    }

    fn live(&self) -> Result<(), String> {
        Health::live(self)
    }
}

/// `/healthz` (live: serving and not stuck), `/readyz` (from `readiness`, naming `role`) and
/// `/metrics`.
/// Installs the process's metrics recorder if nothing did yet: what is recorded before it is lost.
pub fn ops_router<R: Readiness>(role: &'static str, readiness: R) -> Router {
    let _ = crate::prometheus();
    Router::new()
        .route(
            "/healthz",
            get(move |State(readiness): State<R>| async move {
                match readiness.live() {
                    Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok", "role": role}))),
                    Err(reason) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"status": "stuck", "role": role, "reason": reason})),
                    ),
                }
            }),
        )
        .route(
            "/readyz",
            get(move |State(readiness): State<R>| async move {
                match readiness.check().await {
                    Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready", "role": role}))),
                    Err(reason) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"status": "not ready", "role": role, "reason": reason})),
                    ),
                }
            }),
        )
        .route("/metrics", get(|| async { metrics_response() }))
        .with_state(readiness)
}

/// Binds `addr` (so a taken port fails at start-up) and serves `router` on it in the
/// background until `shutdown` fires.
pub async fn spawn_ops_server(
    addr: SocketAddr,
    router: Router,
    mut shutdown: Shutdown,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "ops endpoints listening");
    Ok(tokio::spawn(async move {
        axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.wait().await }).await
    }))
}

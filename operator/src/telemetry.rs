//! Logs, metrics and health (no Kubernetes): tracing as text or JSON, a Prometheus recorder,
//! and the HTTP server the operator's Deployment probes and Prometheus scrapes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("failed to install the Prometheus recorder: {0}")]
    Recorder(#[from] metrics_exporter_prometheus::BuildError),
    #[error("failed to listen on {addr} (--metrics-addr): {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Installs the global tracing subscriber (`RUST_LOG`, default `info`).
pub fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Readiness of this replica: true once it holds the leader Lease and its controller runs.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    readiness: Readiness,
}

/// Installs the metrics recorder and binds `/metrics`, `/healthz` and `/readyz` on `addr`;
/// the returned future serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<impl std::future::Future<Output = std::io::Result<()>>, TelemetryError> {
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let app = Router::new()
        .route("/metrics", get(|State(state): State<AppState>| async move { state.metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(state): State<AppState>| async move {
                if state.readiness.get() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not the leader")
                }
            }),
        )
        .with_state(AppState { metrics, readiness });
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| TelemetryError::Bind { addr, source })?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    Ok(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await })
}

//! What every long-running Ordexa role shares: the Prometheus registry, a readiness flag with
//! a reason a person can act on, the `/healthz` `/readyz` `/metrics` server, and the shutdown
//! signal.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

/// The process-wide Prometheus recorder (a process has one global recorder; every server in it
/// renders the same registry).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only its own registry");
            }
            handle
        })
        .clone()
}

/// Folds recorded histogram samples into their summaries every few seconds. Without it the
/// samples pile up in memory until `/metrics` is scraped — unbounded in a process nobody scrapes.
pub async fn metrics_upkeep() {
    let handle = prometheus();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// Whether a role can do its work right now, and if not, why.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<Mutex<Result<(), String>>>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new("starting")
    }
}

impl Health {
    /// Not ready, for `reason`, until [`Health::ready`] is called.
    pub fn new(reason: &str) -> Self {
        Health { inner: Arc::new(Mutex::new(Err(reason.to_owned()))) }
    }

    pub fn ready(&self) {
        self.set(Ok(()));
    }

    pub fn not_ready(&self, reason: impl Into<String>) {
        let reason = reason.into();
        if self.check().as_ref().err() != Some(&reason) {
            tracing::warn!(%reason, "not ready");
        }
        self.set(Err(reason));
    }

    fn set(&self, state: Result<(), String>) {
        match self.inner.lock() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        match self.inner.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// `/healthz`, `/readyz` (from `health`) and `/metrics`, for roles without an API of their own.
pub fn ops_router(role: &'static str, health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route(
            "/readyz",
            get(move |State(health): State<Health>| async move {
                match health.check() {
                    Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready", "role": role}))),
                    Err(reason) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"status": "not ready", "role": role, "reason": reason})),
                    ),
                }
            }),
        )
        .route("/metrics", get(|| async { metrics_response() }))
        .with_state(health)
}

/// The Prometheus text exposition of every metric in this process.
pub fn metrics_response() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render())
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

/// A shutdown flag every task can wait on; fired once by SIGTERM/Ctrl-C or by hand.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Fires a [`Shutdown`].
#[derive(Clone, Debug)]
pub struct ShutdownTrigger {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownTrigger {
    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx: Arc::new(tx) }, Shutdown { rx })
    }

    /// A shutdown that fires on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
    pub fn on_signals() -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            trigger.fire();
        });
        shutdown
    }

    pub fn is_fired(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the shutdown fired (at once if it already had).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|fired| *fired).await;
    }

    /// Sleeps for `duration`, or less when the shutdown fires meanwhile.
    pub async fn sleep(&mut self, duration: std::time::Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.wait() => {}
        }
    }
}

/// Capped exponential backoff with full jitter: 100 ms doubling to 10 s.
pub fn backoff_delay(attempt: u32) -> std::time::Duration {
    use rand::Rng;
    let cap_ms = 100u64.saturating_mul(1 << attempt.min(7)).min(10_000);
    std::time::Duration::from_millis(rand::rng().random_range(cap_ms / 2..=cap_ms))
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reports_the_latest_reason() {
        let health = Health::new("starting");
        assert_eq!(health.check(), Err("starting".to_owned()));
        health.ready();
        assert_eq!(health.check(), Ok(()));
        health.not_ready("kafka unreachable");
        assert_eq!(health.check(), Err("kafka unreachable".to_owned()));
    }

    #[tokio::test]
    async fn a_fired_shutdown_wakes_every_waiter() {
        let (trigger, shutdown) = Shutdown::new();
        let mut a = shutdown.clone();
        let mut b = shutdown;
        trigger.fire();
        a.wait().await;
        b.wait().await;
        assert!(a.is_fired() && b.is_fired());
    }

    #[test]
    fn backoff_grows_and_stays_capped() {
        for attempt in 0..20 {
            let d = backoff_delay(attempt);
            let cap = std::time::Duration::from_millis((100u64 << attempt.min(7)).min(10_000));
            assert!(d <= cap && d >= cap / 2, "attempt {attempt}: {d:?} outside [{:?}, {cap:?}]", cap / 2);
        }
    }
}

//! Operational endpoints and the request metrics middleware.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::problem::ApiError;

/// Liveness: the process serves requests.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: PostgreSQL and Cassandra each answer within a second.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = Duration::from_secs(1);
    let (postgres, cassandra) =
        tokio::join!(tokio::time::timeout(limit, state.store.ping()), tokio::time::timeout(limit, state.reads.ping()));
    let mut failures = Vec::new();
    match postgres {
        Ok(Ok(())) => {}
        Ok(Err(err)) => failures.push(format!("postgres: {err}")),
        Err(_) => failures.push("postgres did not answer within 1s".to_owned()),
    }
    match cassandra {
        Ok(Ok(())) => {}
        Ok(Err(err)) => failures.push(format!("cassandra: {err}")),
        Err(_) => failures.push("cassandra did not answer within 1s".to_owned()),
    }
    if failures.is_empty() {
        Ok(Json(serde_json::json!({"status": "ready", "checks": {"postgres": "ok", "cassandra": "ok"}})))
    } else {
        Err(ApiError::Unavailable(failures.join("; ")))
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Counts requests and times them by route template (never by raw path, which would explode
/// the label set).
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

//! The open-loop HTTP load generator: `POST /api/v1/orders` at a fixed rate whatever the answers
//! do, each request's latency taken from its *scheduled* start (a stall is charged to every
//! request queued behind it: no coordinated omission), at most `max_in_flight` at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::stats::{self, Latency};

/// What an API create looks like on the wire for the bench: URL, bearer token, body.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
    pub body: String,
}

/// A step of load: the rate asked, the rate reached, errors and latency.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rate: f64,
    pub achieved: f64,
    pub errors: u64,
    pub latency: Latency,
}

impl Step {
    /// Sustained: ≥ 95 % of the rate asked, no error, p99 within the bound.
    pub fn sustained(&self, p99_bound_ms: f64) -> bool {
        self.achieved >= 0.95 * self.rate && self.errors == 0 && self.latency.p99_ms <= p99_bound_ms
    }
}

/// A created order handed to `on_created`: its id and when its 201 arrived.
pub type OnCreated = Arc<dyn Fn(String, Instant) + Send + Sync>;

/// Sends creates at `rate` per second for `warmup + seconds`; judges the last `seconds`.
/// Every `sample_every`-th created order in the measured window goes to `on_created`.
pub async fn open_loop(
    http: &reqwest::Client,
    target: &Target,
    rate: f64,
    warmup: f64,
    seconds: f64,
    max_in_flight: usize,
    on_created: Option<(usize, OnCreated)>,
) -> Result<Step> {
    let total = ((warmup + seconds) * rate).round() as u64;
    let measured_from = (warmup * rate).round() as u64;
    let results: Arc<Mutex<Vec<Option<u64>>>> = Arc::new(Mutex::new(Vec::new()));
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let measured = i >= measured_from;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if measured {
                results.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(None);
            }
            continue;
        };
        let (http, target, results) = (http.clone(), target.clone(), results.clone());
        let sample =
            on_created.as_ref().filter(|(every, _)| measured && (i - measured_from).is_multiple_of(*every as u64));
        let sample = sample.map(|(_, f)| f.clone());
        tasks.spawn(async move {
            let response = http
                .post(&target.url)
                .bearer_auth(&target.token)
                .header("content-type", "application/json")
                .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                .body(target.body)
                .send()
                .await;
            let outcome = match response {
                Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                    let body = r.bytes().await.unwrap_or_default();
                    let done = Instant::now();
                    if let Some(f) = sample
                        && let Some(id) = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
                    {
                        f(id, done);
                    }
                    Some(done.duration_since(scheduled).as_micros() as u64)
                }
                _ => None,
            };
            drop(permit);
            if measured && let Ok(mut r) = results.lock() {
                r.push(outcome);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let results = std::mem::take(&mut *results.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let ok: Vec<u64> = results.iter().flatten().copied().collect();
    Ok(Step {
        rate,
        achieved: ok.len() as f64 / seconds,
        errors: (results.len() - ok.len()) as u64,
        latency: stats::latency(ok)?,
    })
}

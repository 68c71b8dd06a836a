//! The load: clients that run order lifecycles through the APIs over HTTP, as a shop would —
//! create (with an Idempotency-Key), sometimes change the address, confirm, then ship and
//! deliver or cancel, each change with `If-Match` — and record every write a 2xx acknowledged.
//!
//! Outages are expected: a connection error, a timeout or a 5xx leaves the outcome unknown, so
//! the request is retried, the same way (the same key, the same `If-Match`), on either API, with
//! capped backoff. Each order has one writer, its client, so a 412 after such an unknown outcome
//! means the earlier attempt was committed: the client goes on from there, but only a 2xx
//! counts as acknowledged. Anything else (a 4xx the lifecycle cannot cause, a read below an
//! acknowledged version) is an anomaly the run reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use crate::timeline::Clock;

/// What the load is told.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub clients: usize,
    /// API base URLs; requests go round-robin, a retry to the next one.
    pub apis: Vec<String>,
    /// A bearer token per client (customer `chaos-c<i>`), and the staff token.
    pub customer_tokens: Vec<String>,
    pub admin_token: String,
    /// Most time between one client's steps (random below it).
    pub think: Duration,
    /// How long one request is retried before the client gives the order up.
    pub give_up_after: Duration,
    /// Makes the Idempotency-Keys of this run unique.
    pub tag: String,
    pub seed: u64,
}

/// One order as its client knows it.
#[derive(Clone, Debug)]
pub struct OrderRecord {
    pub id: String,
    /// The highest version a 2xx acknowledged.
    pub acked: i64,
    /// The version the client believes the order has (an unknown outcome later shown committed
    /// by a 412 counts here, not in `acked`).
    pub believed: i64,
    /// The status at `believed`.
    pub status: &'static str,
    /// False when the client gave up on a request whose outcome stayed unknown.
    pub certain: bool,
}

/// What the clients counted.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Creates and changes a 2xx acknowledged.
    pub writes_acked: u64,
    pub creates_acked: u64,
    /// Attempts whose outcome was unknown (connection error, timeout, 5xx) and were retried.
    pub retries: u64,
    /// Unknown outcomes a later 412 showed were committed.
    pub inferred: u64,
    /// Creates given up after `give_up_after` of failures (their order may or may not exist).
    pub creates_given_up: u64,
    /// Changes given up likewise.
    pub changes_given_up: u64,
    pub reads_ok: u64,
    /// Reads answered 503 (read model unavailable, projection behind) or not at all, by reason.
    pub reads_unavailable: u64,
    pub reads_unavailable_why: BTreeMap<String, u64>,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.writes_acked += o.writes_acked;
        self.creates_acked += o.creates_acked;
        self.retries += o.retries;
        self.inferred += o.inferred;
        self.creates_given_up += o.creates_given_up;
        self.changes_given_up += o.changes_given_up;
        self.reads_ok += o.reads_ok;
        self.reads_unavailable += o.reads_unavailable;
        for (why, n) in &o.reads_unavailable_why {
            *self.reads_unavailable_why.entry(why.clone()).or_default() += n;
        }
    }
}

/// Everything the clients recorded.
#[derive(Debug, Default)]
pub struct Ledger {
    pub orders: Vec<OrderRecord>,
    pub counts: Counts,
    /// Answers the contract does not allow, with the time they came.
    pub anomalies: Vec<String>,
}

/// Live counters, for progress lines while the load runs, and the acknowledged versions so
/// far, for the projection probe after each fault.
#[derive(Debug, Default)]
pub struct Progress {
    pub writes_acked: AtomicU64,
    pub retries: AtomicU64,
    acked: Mutex<HashMap<String, i64>>,
}

impl Progress {
    /// Every order's highest acknowledged version, as of now.
    pub fn acked(&self) -> HashMap<String, i64> {
        self.acked.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn acknowledge(&self, order: &str, version: i64) {
        self.writes_acked.fetch_add(1, Ordering::Relaxed);
        let mut acked = self.acked.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = acked.entry(order.to_owned()).or_default();
        *entry = (*entry).max(version);
    }
}

/// The running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub progress: Arc<Progress>,
    clients: Vec<tokio::task::JoinHandle<ClientReport>>,
}

impl Load {
    pub fn start(config: LoadConfig, clock: Clock) -> crate::Result<Load> {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        // Longer than the API's own request timeout (10 s), so the API answers first.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        let config = Arc::new(config);
        let clients = (0..config.clients)
            .map(|id| {
                let client = Client {
                    id,
                    http: http.clone(),
                    config: config.clone(),
                    rng: StdRng::seed_from_u64(config.seed.wrapping_add(id as u64)),
                    next_api: id,
                    stop: stop.clone(),
                    progress: progress.clone(),
                    clock,
                    report: ClientReport::default(),
                };
                tokio::spawn(client.run())
            })
            .collect();
        Ok(Load { stop, progress, clients })
    }

    /// Stops the clients after their current step and gathers what they recorded.
    pub async fn stop(self) -> crate::Result<Ledger> {
        self.stop.store(true, Ordering::Relaxed);
        let mut ledger = Ledger::default();
        for client in self.clients {
            let report = client.await?;
            ledger.orders.extend(report.orders);
            ledger.counts.add(&report.counts);
            ledger.anomalies.extend(report.anomalies);
        }
        Ok(ledger)
    }
}

#[derive(Debug, Default)]
struct ClientReport {
    orders: Vec<OrderRecord>,
    counts: Counts,
    anomalies: Vec<String>,
}

/// One HTTP exchange's meaning for the client.
enum Reply {
    /// 2xx: the version (ETag) and the body.
    Done { version: i64, body: Value },
    /// A 4xx: the request was refused and changed nothing.
    Refused { status: u16, body: String },
    /// No answer, a timeout or a 5xx: the outcome is unknown.
    Unknown(String),
}

/// The steps of a lifecycle after the create.
#[derive(Clone, Copy, Debug)]
enum Step {
    Revise,
    Confirm,
    Ship,
    Deliver,
    Cancel,
}

impl Step {
    fn status(self, before: &'static str) -> &'static str {
        match self {
            Step::Revise => before,
            Step::Confirm => "CONFIRMED",
            Step::Ship => "SHIPPED",
            Step::Deliver => "DELIVERED",
            Step::Cancel => "CANCELLED",
        }
    }
}

const SKUS: &[&str] = &["COFFEE-BEANS-1KG", "FRENCH-PRESS", "MUG-CERAMIC", "GRINDER-HAND", "FILTER-PAPERS-100"];

struct Client {
    id: usize,
    http: reqwest::Client,
    config: Arc<LoadConfig>,
    rng: StdRng,
    next_api: usize,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    clock: Clock,
    report: ClientReport,
}

impl Client {
    async fn run(mut self) -> ClientReport {
        let mut n = 0u64;
        while !self.stopping() {
            n += 1;
            self.lifecycle(n).await;
        }
        self.report
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    async fn think(&mut self) {
        let most = self.config.think.as_millis() as u64;
        if most > 0 {
            let ms = self.rng.random_range(0..=most);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    async fn lifecycle(&mut self, n: u64) {
        let Some(at) = self.create(n).await else { return };
        if self.rng.random_bool(0.3) {
            self.read(at).await;
        }
        let mut steps = Vec::new();
        if self.rng.random_bool(0.4) {
            steps.push(Step::Revise);
        }
        steps.extend_from_slice(match self.rng.random_range(0..10) {
            0 | 1 => &[Step::Cancel][..],
            2 => &[Step::Confirm, Step::Cancel],
            3 => &[Step::Confirm, Step::Ship],
            _ => &[Step::Confirm, Step::Ship, Step::Deliver],
        });
        for step in steps {
            if self.stopping() {
                return;
            }
            self.think().await;
            if !self.change(at, step).await {
                return;
            }
        }
        if self.rng.random_bool(0.3) {
            self.read(at).await;
        }
    }

    fn address(&mut self, revision: u32) -> Value {
        json!({
            "name": format!("Chaos Client {}", self.id),
            "line1": format!("{revision} Failure Lane"),
            "city": "Faultham",
            "postal_code": format!("{:05}", self.rng.random_range(0..100_000)),
            "country": "DE",
        })
    }

    fn items(&mut self) -> Value {
        let first = self.rng.random_range(0..SKUS.len());
        let count = self.rng.random_range(1..=3);
        let items: Vec<Value> = (0..count)
            .map(|k| json!({"sku": SKUS[(first + k) % SKUS.len()], "quantity": self.rng.random_range(1..=4)}))
            .collect();
        Value::Array(items)
    }

    fn anomaly(&mut self, what: String) {
        let line = format!("{} client {}: {what}", self.clock.stamp(), self.id);
        println!("ANOMALY {line}");
        self.report.anomalies.push(line);
    }

    /// Places an order, retrying with the same Idempotency-Key until an answer; the index of
    /// its record.
    async fn create(&mut self, n: u64) -> Option<usize> {
        let key = format!("{}-c{}-{n}", self.config.tag, self.id);
        let body = json!({"items": self.items(), "shipping_address": self.address(0)});
        let token = self.config.customer_tokens[self.id].clone();
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let reply = self
                .call(Method::POST, "/api/v1/orders".into(), &token, &[("Idempotency-Key", &key)], Some(&body))
                .await;
            match reply {
                Reply::Done { version, body } => {
                    let Some(id) = body["id"].as_str().map(str::to_owned) else {
                        self.anomaly(format!("create {key}: a 2xx without an id: {body}"));
                        return None;
                    };
                    if version != 1 {
                        self.anomaly(format!("create {key}: order {id} acknowledged at v{version}, not v1"));
                    }
                    self.report.counts.creates_acked += 1;
                    self.acknowledged(&id, 1);
                    self.report.orders.push(OrderRecord {
                        id,
                        acked: 1,
                        believed: 1,
                        status: "PENDING",
                        certain: true,
                    });
                    return Some(self.report.orders.len() - 1);
                }
                Reply::Refused { status, body } => {
                    self.anomaly(format!("create {key}: refused {status}: {body}"));
                    return None;
                }
                Reply::Unknown(why) => {
                    if started.elapsed() > self.config.give_up_after || self.stopping() {
                        self.report.counts.creates_given_up += 1;
                        self.say_giving_up(&format!("create {key}"), &why);
                        return None;
                    }
                    self.retry_after(attempt).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One change of order `at`, retried like the create; false when the lifecycle ends here.
    async fn change(&mut self, at: usize, step: Step) -> bool {
        let order = self.report.orders[at].clone();
        let expected = order.believed;
        let (method, path, token, body) = match step {
            Step::Revise => {
                let address = self.address(expected as u32);
                (
                    Method::PATCH,
                    format!("/api/v1/orders/{}", order.id),
                    self.customer(),
                    Some(json!({"shipping_address": address})),
                )
            }
            Step::Cancel => (Method::POST, format!("/api/v1/orders/{}/cancel", order.id), self.customer(), None),
            Step::Confirm => (Method::POST, format!("/api/v1/orders/{}/confirm", order.id), self.admin(), None),
            Step::Ship => (Method::POST, format!("/api/v1/orders/{}/ship", order.id), self.admin(), None),
            Step::Deliver => (Method::POST, format!("/api/v1/orders/{}/deliver", order.id), self.admin(), None),
        };
        let if_match = format!("\"{expected}\"");
        let started = Instant::now();
        let mut unknown = false;
        let mut attempt = 0;
        loop {
            let reply =
                self.call(method.clone(), path.clone(), &token, &[("If-Match", &if_match)], body.as_ref()).await;
            match reply {
                Reply::Done { version, body } => {
                    if version != expected + 1 {
                        self.anomaly(format!("{step:?} {}: acknowledged v{version} after v{expected}", order.id));
                    }
                    let status = body["status"].as_str().unwrap_or_default().to_owned();
                    if status != step.status(order.status) {
                        self.anomaly(format!("{step:?} {}: acknowledged with status {status}", order.id));
                    }
                    let record = &mut self.report.orders[at];
                    record.acked = version;
                    record.believed = version;
                    record.status = step.status(order.status);
                    self.acknowledged(&order.id, version);
                    return true;
                }
                // The version moved since If-Match: only this client writes the order, so an
                // earlier attempt of this very change was committed.
                Reply::Refused { status: 412, .. } if unknown => {
                    self.report.counts.inferred += 1;
                    let record = &mut self.report.orders[at];
                    record.believed = expected + 1;
                    record.status = step.status(order.status);
                    return true;
                }
                Reply::Refused { status, body } => {
                    self.anomaly(format!("{step:?} {} at v{expected}: refused {status}: {body}", order.id));
                    self.report.orders[at].certain = false;
                    return false;
                }
                Reply::Unknown(why) => {
                    unknown = true;
                    if started.elapsed() > self.config.give_up_after || self.stopping() {
                        self.report.counts.changes_given_up += 1;
                        self.report.orders[at].certain = false;
                        self.say_giving_up(&format!("{step:?} {}", order.id), &why);
                        return false;
                    }
                    self.retry_after(attempt).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Reads order `at` at its acknowledged version: the API must never answer with less, nor
    /// say it does not exist; a 503 (Cassandra away, projection behind) is allowed.
    async fn read(&mut self, at: usize) {
        let order = self.report.orders[at].clone();
        let path = format!("/api/v1/orders/{}?min_version={}", order.id, order.acked);
        let token = self.customer();
        match self.call(Method::GET, path, &token, &[], None).await {
            Reply::Done { version, .. } => {
                self.report.counts.reads_ok += 1;
                if version < order.acked {
                    self.anomaly(format!("read {}: v{version} below the acknowledged v{}", order.id, order.acked));
                }
            }
            Reply::Refused { status, body } => {
                self.anomaly(format!("read {} at min_version {}: {status}: {body}", order.id, order.acked))
            }
            Reply::Unknown(why) => {
                self.report.counts.reads_unavailable += 1;
                let reason = ["projection-behind", "read-model-unavailable", "overloaded", "timeout"]
                    .into_iter()
                    .find(|slug| why.contains(slug))
                    .unwrap_or(if why.contains(": 5") { "other 5xx" } else { "no answer" });
                *self.report.counts.reads_unavailable_why.entry(reason.to_owned()).or_default() += 1;
            }
        }
    }

    fn customer(&self) -> String {
        self.config.customer_tokens[self.id].clone()
    }

    fn admin(&self) -> String {
        self.config.admin_token.clone()
    }

    fn acknowledged(&mut self, order: &str, version: i64) {
        self.report.counts.writes_acked += 1;
        self.progress.acknowledge(order, version);
    }

    fn say_giving_up(&self, what: &str, why: &str) {
        self.clock.say(format!("client {}: gave up {what} after {:?}: {why}", self.id, self.config.give_up_after));
    }

    /// Capped, jittered backoff: 100 ms doubling to 3 s.
    async fn retry_after(&mut self, attempt: u32) {
        self.report.counts.retries += 1;
        self.progress.retries.fetch_add(1, Ordering::Relaxed);
        let base = 100u64.saturating_mul(1 << attempt.min(5)).min(3_000);
        let jitter = self.rng.random_range(0..=base / 2);
        tokio::time::sleep(Duration::from_millis(base + jitter)).await;
    }

    async fn call(
        &mut self,
        method: Method,
        path: String,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let api = &self.config.apis[self.next_api % self.config.apis.len()];
        self.next_api = self.next_api.wrapping_add(1);
        let mut request = self.http.request(method, format!("{api}{path}")).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return Reply::Unknown(format!("{api}: {err}")),
        };
        let status = response.status();
        let version = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').parse::<i64>().ok());
        let text = match response.text().await {
            Ok(text) => text,
            Err(err) => return Reply::Unknown(format!("{api}: reading the body: {err}")),
        };
        if status.is_success() {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let version = version.or_else(|| body["version"].as_i64()).unwrap_or(0);
            Reply::Done { version, body }
        } else if status.is_server_error() || status.as_u16() == 429 {
            Reply::Unknown(format!("{api}: {status}: {}", text.chars().take(200).collect::<String>()))
        } else {
            Reply::Refused { status: status.as_u16(), body: text.chars().take(300).collect() }
        }
    }
}

//! `api-load`: open-loop load on `POST /api/v1/orders`.
//!
//! Requests are scheduled at fixed intervals for the target rate, whatever the responses do
//! (open loop), and each latency is measured from the request's *scheduled* send time, so a
//! server that stalls is charged for every request queued behind the stall (no coordinated
//! omission). In-flight requests are capped; a request due while the cap is reached is not
//! sent and counts as an error, so an overloaded server shows up as errors rather than as an
//! ever-growing client queue.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use hdrhistogram::Histogram;
use ordexa_api::Auth;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::ladder::{self, Ladder, LadderArgs, Progress, Step};
use crate::procfs::{self, CpuSnapshot, Group};
use crate::workload;

/// The API side's own options.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of the API, e.g. http://127.0.0.1:8081.
    #[arg(long)]
    url: String,
    /// HS256 secret the API verifies tokens with; the load mints one token per user with it.
    #[arg(long, env = "ORDEXA_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Most requests in flight (and so HTTP/1.1 connections); a request due beyond it fails.
    #[arg(long, default_value_t = 512)]
    max_in_flight: u32,
    /// Seconds before a request is given up (and counted as an error).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// The API's process id: its CPU use and resident memory are recorded.
    #[arg(long)]
    api_pid: Option<u32>,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Extra `key=value` settings to state in the report (the API's pool size, log level...).
    #[arg(long = "setting")]
    settings: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApiLoadArgs {
    #[command(flatten)]
    ladder: LadderArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// Where to write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The load generator's runtime: `threads` workers.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the load generator's runtime")
}

pub fn run(args: ApiLoadArgs) -> Result<()> {
    args.ladder.check()?;
    runtime(args.api.client_threads)?.block_on(async {
        let side = ApiSide::connect(args.ladder.clone(), args.api.clone()).await?;
        let mut progress = Progress::new("api", args.ladder.stop_after);
        for &rate in &args.ladder.rates {
            progress.push(side.step(rate).await?);
            if progress.done() {
                break;
            }
            tokio::time::sleep(Duration::from_secs_f64(args.ladder.pause)).await;
        }
        let result = side.finish(progress.steps);
        if let Some(path) = &args.json {
            result.save(path)?;
        }
        Ok(())
    })
}

/// Everything a request needs, shared by all requests.
pub(crate) struct Target {
    pub(crate) client: reqwest::Client,
    pub(crate) url: String,
    /// `Bearer <token>` of each user.
    pub(crate) authorizations: Vec<String>,
    pub(crate) bodies: Vec<String>,
    /// Requests sent so far, across steps; picks the user and the body.
    pub(crate) sequence: AtomicU64,
}

impl Target {
    /// Sends the next create (users and bodies taken in turn); a transport failure is named by
    /// its kind.
    pub(crate) async fn send_create(&self, idempotency_key: String) -> Result<reqwest::Response, String> {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let user = usize::try_from(n % self.authorizations.len() as u64).unwrap_or(0);
        let body = usize::try_from(n % self.bodies.len() as u64).unwrap_or(0);
        self.client
            .post(&self.url)
            .header(AUTHORIZATION, &self.authorizations[user])
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", idempotency_key)
            .body(self.bodies[body].clone())
            .send()
            .await
            .map_err(|e| error_kind(&e))
    }
}

/// What the requests of one step recorded.
struct Recorder {
    warm_end: Instant,
    end: Instant,
    latency: Histogram<u64>,
    start_lag: Histogram<u64>,
    /// Successful responses that arrived inside the measured window.
    ok_in_window: u64,
    scheduled: u64,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
}

impl Recorder {
    fn fail(&mut self, scheduled: Instant, kind: String) {
        if scheduled >= self.warm_end {
            self.errors += 1;
            *self.error_kinds.entry(kind).or_default() += 1;
        }
    }

    fn finish(&mut self, scheduled: Instant, started: Instant, done: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                if done >= self.warm_end && done < self.end {
                    self.ok_in_window += 1;
                }
                if scheduled >= self.warm_end {
                    ladder::record(&mut self.latency, micros(done - scheduled));
                    ladder::record(&mut self.start_lag, micros(started.saturating_duration_since(scheduled)));
                }
            }
            Err(kind) => self.fail(scheduled, kind),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn lock(recorder: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    // A panicking request task cannot leave the counters half-updated in a way that matters.
    recorder.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn error_kind(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else if err.is_body() || err.is_decode() {
        "response body"
    } else if err.is_request() {
        "request"
    } else {
        "transport"
    };
    kind.to_owned()
}

/// Sends one create and says whether it succeeded (201 with the whole body read).
async fn create(target: &Target, idempotency_key: String) -> Result<(), String> {
    let response = target.send_create(idempotency_key).await?;
    let status = response.status();
    response.bytes().await.map_err(|e| error_kind(&e))?;
    if status == StatusCode::CREATED { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("{base}/readyz");
    loop {
        match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if Instant::now() >= deadline => bail!("{url} answered {}", response.status()),
            Err(err) if Instant::now() >= deadline => bail!("{url} did not answer: {err}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One real create before the ladder, checked field by field: a benchmark of error responses
/// would measure nothing.
async fn smoke_test(target: &Target) -> Result<()> {
    let response = target
        .client
        .post(&target.url)
        .header(AUTHORIZATION, &target.authorizations[0])
        .header(CONTENT_TYPE, "application/json")
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .body(target.bodies[0].clone())
        .send()
        .await
        .context("the first create failed")?;
    let status = response.status();
    let text = response.text().await.context("reading the first create's response")?;
    if status != StatusCode::CREATED {
        bail!("the first create answered {status}, not 201: {text}");
    }
    let order: serde_json::Value = serde_json::from_str(&text).context("the first create's body is not JSON")?;
    if order["status"] != "PENDING" || !order["total"].is_i64() || !order["id"].is_string() {
        bail!("the first create's body is not an order: {text}");
    }
    Ok(())
}

/// A running API under test: the client, the tokens and bodies, and how to run one step.
pub struct ApiSide {
    ladder: LadderArgs,
    args: ApiArgs,
    target: Arc<Target>,
    memory_idle: Option<procfs::Memory>,
}

impl ApiSide {
    /// Prepares the requests, waits for `/readyz` and checks one real create.
    pub async fn connect(ladder: LadderArgs, args: ApiArgs) -> Result<Self> {
        if args.max_in_flight == 0 {
            bail!("--max-in-flight must be above 0");
        }
        let base = args.url.trim_end_matches('/').to_owned();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(args.timeout))
            .pool_max_idle_per_host(args.max_in_flight as usize)
            .pool_idle_timeout(Duration::from_secs(300))
            .tcp_nodelay(true)
            .http1_only()
            .build()
            .context("building the HTTP client")?;
        let auth = Auth::new(args.jwt_secret.as_bytes()).context("the JWT secret")?;
        let authorizations = (1..=ladder.users)
            .map(|n| auth.mint(&workload::user_id(n), false, Duration::from_secs(3600)).map(|t| format!("Bearer {t}")))
            .collect::<Result<Vec<_>, _>>()
            .context("minting tokens")?;
        let bodies = (0..workload::variants()).map(workload::request_body).collect::<Result<Vec<_>>>()?;
        let target = Arc::new(Target {
            client: client.clone(),
            url: format!("{base}/api/v1/orders"),
            authorizations,
            bodies,
            sequence: AtomicU64::new(0),
        });
        wait_ready(&client, &base).await?;
        smoke_test(&target).await?;
        eprintln!("[api] sustain rule: {}", ladder.rule().describe());
        let memory_idle = args.api_pid.and_then(procfs::memory);
        Ok(ApiSide { ladder, args, target, memory_idle })
    }

    fn groups(&self) -> Vec<Group> {
        let mut groups = vec![Group { name: "load generator".into(), pid: std::process::id(), with_children: false }];
        if let Some(pid) = self.args.api_pid {
            groups.push(Group { name: "api".into(), pid, with_children: false });
        }
        if let Some(pid) = self.ladder.pg_pid {
            groups.push(Group { name: "postgres".into(), pid, with_children: true });
        }
        groups
    }

    /// Waits for a quiet machine, then loads the API at `rate` for the warm-up and the window;
    /// a step disturbed by other work on the machine is repeated once.
    pub async fn step(&self, rate: u32) -> Result<Step> {
        let step = self.quiet_step(rate).await?;
        if !step.disturbed() {
            return Ok(step);
        }
        eprintln!(
            "[api] {rate}/s was disturbed by {:.2} cores of other work; repeating it once",
            step.other_cores().unwrap_or_default()
        );
        let mut step = self.quiet_step(rate).await?;
        step.repeated = true;
        Ok(step)
    }

    async fn quiet_step(&self, rate: u32) -> Result<Step> {
        let quiet = self.ladder.quiet;
        let busy_before = tokio::task::spawn_blocking(move || quiet.wait()).await.ok();
        let mut step = self.load(rate).await?;
        step.busy_before_pct = busy_before;
        Ok(step)
    }

    async fn load(&self, rate: u32) -> Result<Step> {
        let (ladder, args) = (&self.ladder, &self.args);
        let permits = Arc::new(Semaphore::new(args.max_in_flight as usize));
        let start = Instant::now() + Duration::from_millis(20);
        let warm_end = start + Duration::from_secs_f64(ladder.warmup);
        let end = warm_end + Duration::from_secs_f64(ladder.duration);
        let recorder = Arc::new(Mutex::new(Recorder {
            warm_end,
            end,
            latency: ladder::histogram()?,
            start_lag: ladder::histogram()?,
            ok_in_window: 0,
            scheduled: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
        }));

        // CPU over exactly the measured window.
        let groups = self.groups();
        let cpu = tokio::spawn(async move {
            tokio::time::sleep_until(warm_end).await;
            let before = CpuSnapshot::take(&groups);
            tokio::time::sleep_until(end).await;
            before.usage_until(&CpuSnapshot::take(&groups))
        });
        // The API's resident memory, sampled through the step.
        let sampler = args.api_pid.map(|pid| procfs::RssSampler::start(pid, Duration::from_millis(250)));

        let count = ((ladder.warmup + ladder.duration) * f64::from(rate)) as u64;
        for i in 0..count {
            let scheduled = start + Duration::from_nanos(i * 1_000_000_000 / u64::from(rate));
            tokio::time::sleep_until(scheduled).await;
            if scheduled >= warm_end {
                lock(&recorder).scheduled += 1;
            }
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                lock(&recorder).fail(scheduled, format!("in-flight cap ({}) reached", args.max_in_flight));
                continue;
            };
            let target = Arc::clone(&self.target);
            let recorder = Arc::clone(&recorder);
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = create(&target, uuid::Uuid::new_v4().to_string()).await;
                let done = Instant::now();
                lock(&recorder).finish(scheduled, started, done, outcome);
                drop(permit);
            });
        }

        // Drain: every request finishes or times out (the client's timeout bounds this).
        let drain = Duration::from_secs_f64(args.timeout + 5.0);
        let drained = tokio::time::timeout(drain, permits.acquire_many(args.max_in_flight)).await;
        if !matches!(drained, Ok(Ok(_))) {
            bail!("requests still in flight {drain:?} after the step ended");
        }
        let cpu = cpu.await.ok();
        let rss_peak_kib = sampler.map(|sampler| sampler.peak_kib());
        let rec = lock(&recorder);
        let mut step = Step {
            target_rate: f64::from(rate),
            achieved_rate: rec.ok_in_window as f64 / ladder.duration,
            scheduled: rec.scheduled,
            offered_rate: rec.scheduled as f64 / ladder.duration,
            errors: rec.errors,
            error_kinds: rec.error_kinds.clone(),
            latency: ladder::latency(&rec.latency),
            start_lag: ladder::latency(&rec.start_lag),
            cpu,
            api_rss_peak_kib: rss_peak_kib,
            busy_before_pct: None,
            repeated: false,
            sustained: false,
        };
        step.sustained = ladder.rule().holds(&step);
        Ok(step)
    }

    /// The ladder's result, with the API's memory after it.
    pub fn finish(self, steps: Vec<Step>) -> Ladder {
        let (ladder, args) = (&self.ladder, &self.args);
        let mut settings = BTreeMap::new();
        settings.insert("arrivals".to_owned(), "fixed interval (1/rate), open loop".to_owned());
        settings.insert(
            "protocol".to_owned(),
            "HTTP/1.1 keep-alive (reqwest), one connection per request in flight".to_owned(),
        );
        settings.insert("in-flight cap".to_owned(), args.max_in_flight.to_string());
        settings.insert("request timeout".to_owned(), format!("{} s", args.timeout));
        settings.insert("users".to_owned(), ladder.users.to_string());
        settings.insert("request bodies".to_owned(), format!("{} variants, 2 lines each", workload::variants()));
        settings.insert("Idempotency-Key".to_owned(), "a new UUIDv4 per request".to_owned());
        settings.insert("load generator threads".to_owned(), args.client_threads.to_string());
        for setting in &args.settings {
            if let Some((key, value)) = setting.split_once('=') {
                settings.insert(key.to_owned(), value.to_owned());
            }
        }
        let result = Ladder {
            tool: "api".to_owned(),
            rule: ladder.rule(),
            warmup_s: ladder.warmup,
            duration_s: ladder.duration,
            settings,
            steps,
            api_memory_idle: self.memory_idle,
            api_memory_after: args.api_pid.and_then(procfs::memory),
            closed_loop: None,
            script: None,
        };
        match result.highest_sustained() {
            Some(step) => eprintln!("[api] highest sustained rate: {}/s", step.target_rate),
            None => eprintln!("[api] no rate was sustained"),
        }
        result
    }
}

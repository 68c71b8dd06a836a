//! The live phase: `ordexa api`, `ordexa relay` and `ordexa projector` (release) as real
//! processes; the highest create rate they sustain together (a short ladder, see `pipeline.rs`,
//! unless the rate is given); open-loop creates at fractions of it, and how long a committed
//! order takes to become visible in the read model; then a burst and the catch-up.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use ordexa_api::Auth;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use uuid::Uuid;

use super::pipeline::{self, Ended, Next, PipelineLadder};
use super::process::{self, Workload};
use super::{ApiRateMode, E2eArgs, cluster, groups, nodes, quiet};
use crate::ladder::{self, Latency};
use crate::load::{Target, error_kind};
use crate::procfs::{self, CpuSnapshot, CpuUsage, Memory};
use crate::relay::outbox::wall_micros;
use crate::workload;

/// One load level (or the burst, or a step of the pipeline's ladder).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Level {
    /// The rate as a fraction of the rate the live loads are fractions of.
    pub fraction: f64,
    pub target_rate: f64,
    pub burst: bool,
    pub seconds: f64,
    /// Requests due inside the measured window, and the 201s that arrived inside it, per second.
    pub scheduled: u64,
    pub achieved_rate: f64,
    /// 201s over the whole level (warm-up included).
    pub created: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// The create requests' latency from their scheduled start.
    pub api_latency: Option<Latency>,
    /// Sampled orders: from the 201 response's arrival until the row was seen in Cassandra.
    pub visible_after_response: Option<Latency>,
    /// The same orders, from their `created_at` (taken by the API before its transaction).
    pub visible_after_created: Option<Latency>,
    pub sampled: u64,
    /// Sampled orders still not visible 60 s after their response.
    pub not_visible: u64,
    /// The projector's `ordexa_projector_delay_seconds` summary (now − occurred_at, the
    /// exporter's rolling window) at the end of the level.
    pub projector_delay: Option<Latency>,
    /// From the end of the schedule until every committed order was projected, and until the
    /// projector's group had no lag.
    pub caught_up_s: f64,
    pub lag_zero_s: f64,
    pub cpu: Option<CpuUsage>,
    pub cpu_s: BTreeMap<String, f64>,
    pub busy_before_pct: f64,
    pub loadavg_before: String,
    pub repeated: bool,
    /// Peak VmRSS sampled during the level, per workload, KiB.
    pub rss_peak_kib: BTreeMap<String, u64>,
}

impl Level {
    pub fn disturbed(&self) -> bool {
        self.cpu.as_ref().is_some_and(|c| c.other_cores() > ladder::DISTURBED_CORES)
    }
}

/// The whole live phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Live {
    /// The rate the loads and the burst are fractions of: the highest rate the pipeline sustained
    /// in `ladder` (measured), or the API's rate as given.
    pub api_rate: f64,
    /// The API's highest sustained rate alone (bench-api), as given, and where it came from.
    #[serde(default)]
    pub api_alone_rate: Option<f64>,
    #[serde(default)]
    pub api_alone_source: String,
    /// The ladder that measured `api_rate` with the whole pipeline running; `None` when given.
    #[serde(default)]
    pub ladder: Option<PipelineLadder>,
    pub levels: Vec<Level>,
    pub burst: Option<Level>,
    /// VmRSS/VmHWM of each workload at the end (VmHWM: the peak over the whole live phase).
    pub memory: BTreeMap<String, Memory>,
    pub memory_idle: BTreeMap<String, Memory>,
    pub exits: BTreeMap<String, String>,
    pub orders_committed: i64,
    pub orders_projected: i64,
}

/// A created order to follow until it is visible.
struct Sample {
    id: Uuid,
    response_us: u64,
    created_us: Option<u64>,
}

struct Recorder {
    warm_end: Instant,
    end: Instant,
    latency: Histogram<u64>,
    ok_in_window: u64,
    created: u64,
    scheduled: u64,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub async fn run(args: &E2eArgs) -> Result<Live> {
    let prefix = format!("{}live.", args.topic_prefix);
    let keyspace = format!("{}_live", args.keyspace_prefix);
    let group = format!("{prefix}projector");
    let topic = ordexa_domain::topic_name(&prefix);
    eprintln!("[e2e] live: topics {prefix}*, keyspace {keyspace}");
    ordexa_relay::topics::ensure_topics(&args.kafka_bootstrap, &prefix, args.partitions, 1).await?;
    let model = cluster::fresh_keyspace(&args.cassandra_nodes, &keyspace).await?;
    drop(model);
    let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());

    let api_env = [
        ("ORDEXA_DATABASE_URL", args.database_url.clone()),
        ("ORDEXA_JWT_SECRET", secret.clone()),
        ("ORDEXA_CASSANDRA_NODES", nodes(args)),
        ("ORDEXA_CASSANDRA_KEYSPACE", keyspace.clone()),
        ("RUST_LOG", args.log.clone()),
    ];
    let relay_env = [
        ("ORDEXA_DATABASE_URL", args.database_url.clone()),
        ("ORDEXA_KAFKA_BOOTSTRAP", args.kafka_bootstrap.clone()),
        ("ORDEXA_TOPIC_PREFIX", prefix.clone()),
        ("RUST_LOG", args.log.clone()),
    ];
    let projector_env = [
        ("ORDEXA_KAFKA_BOOTSTRAP", args.kafka_bootstrap.clone()),
        ("ORDEXA_TOPIC_PREFIX", prefix.clone()),
        ("ORDEXA_CASSANDRA_NODES", nodes(args)),
        ("ORDEXA_CASSANDRA_KEYSPACE", keyspace.clone()),
        ("ORDEXA_PROJECTOR_GROUP", group.clone()),
        ("RUST_LOG", args.log.clone()),
    ];
    let mut api = Workload::start(&args.ordexa, "api", "api", &api_env, &args.work_dir)?;
    let mut relay = Workload::start(&args.ordexa, "relay", "relay", &relay_env, &args.work_dir)?;
    let mut projector = Workload::start(&args.ordexa, "projector", "projector", &projector_env, &args.work_dir)?;
    for w in [&mut api, &mut relay, &mut projector] {
        w.wait_ready(Duration::from_secs(60)).await?;
    }
    let pids = [("api", api.pid()), ("relay", relay.pid()), ("projector", projector.pid())];
    let mut live =
        Live { api_alone_rate: args.api_rate, api_alone_source: args.api_rate_source.clone(), ..Live::default() };
    for (name, pid) in pids {
        if let Some(m) = procfs::memory(pid) {
            live.memory_idle.insert(name.to_owned(), m);
        }
    }

    let target = Arc::new(target(args, &api.addr, &secret)?);
    let session = Arc::new(cluster::connect(&args.cassandra_nodes).await?);
    let lookup = Arc::new(
        session
            .prepare(format!("SELECT order_id FROM {keyspace}.orders_by_id WHERE order_id IN ?"))
            .await
            .context("preparing the visibility lookup")?,
    );
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&args.database_url).await?;
    let ctx = Ctx { args, target, session, lookup, pool, pids, topic, group };

    // One order end to end before measuring anything.
    let first = ctx.level(0.0, 1.0, 0.0, 1.0, false, &mut projector).await?;
    if first.created == 0 || first.not_visible > 0 {
        bail!("the first order was not created and projected: {first:?}");
    }

    live.api_rate = match args.api_rate_mode {
        ApiRateMode::Given => args.api_rate.context("--api-rate-mode given needs --api-rate")?,
        ApiRateMode::Measured => {
            let ladder = ctx.pipeline_ladder(&mut projector).await?;
            let sustained = ladder.sustained_rate();
            live.ladder = Some(ladder);
            match sustained {
                Some(rate) => rate,
                None => {
                    eprintln!("[e2e] no step of the ladder held: no live loads and no burst to run");
                    0.0
                }
            }
        }
    };
    if let Some(ladder) = live.ladder.as_mut()
        && live.api_rate > 0.0
    {
        for step in &mut ladder.steps {
            step.level.fraction = step.level.target_rate / live.api_rate;
        }
    }

    if live.api_rate > 0.0 {
        for &fraction in &args.levels {
            let window = (args.warmup, args.level_seconds);
            live.levels.push(ctx.measured_level(fraction, fraction * live.api_rate, window, &mut projector).await?);
        }
        if args.burst_seconds > 0.0 {
            let rate = args.burst_factor * live.api_rate;
            let window = (0.0, args.burst_seconds);
            live.burst = Some(ctx.quiet_level(args.burst_factor, rate, window, true, &mut projector).await?);
        }
    }

    for (name, pid) in pids {
        if let Some(m) = procfs::memory(pid) {
            live.memory.insert(name.to_owned(), m);
        }
    }
    live.orders_committed = ctx.orders_committed().await?;
    live.orders_projected = cluster::count_orders(&ctx.session, &keyspace).await?;
    ctx.pool.close().await;
    for w in [api, relay, projector] {
        let role = w.role.clone();
        live.exits.insert(role, process::stop(w));
    }
    if live.orders_projected != live.orders_committed {
        bail!("{} orders committed but {} in the read model", live.orders_committed, live.orders_projected);
    }
    Ok(live)
}

fn target(args: &E2eArgs, addr: &str, secret: &str) -> Result<Target> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(args.max_in_flight)
        .pool_idle_timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .http1_only()
        .build()
        .context("building the HTTP client")?;
    let auth = Auth::new(secret.as_bytes()).context("the JWT secret")?;
    let authorizations = (1..=workload::DEFAULT_USERS)
        .map(|n| auth.mint(&workload::user_id(n), false, Duration::from_secs(7200)).map(|t| format!("Bearer {t}")))
        .collect::<Result<Vec<_>, _>>()
        .context("minting tokens")?;
    let bodies = (0..workload::variants()).map(workload::request_body).collect::<Result<Vec<_>>>()?;
    Ok(Target {
        client,
        url: format!("http://{addr}/api/v1/orders"),
        authorizations,
        bodies,
        sequence: AtomicU64::new(0),
    })
}

struct Ctx<'a> {
    args: &'a E2eArgs,
    target: Arc<Target>,
    session: Arc<Session>,
    lookup: Arc<PreparedStatement>,
    pool: sqlx::PgPool,
    pids: [(&'static str, u32); 3],
    topic: String,
    group: String,
}

impl Ctx<'_> {
    async fn orders_committed(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&self.pool).await?)
    }

    /// Waits for a quiet machine, then [`Ctx::level`] with `(warm-up, measured)` seconds.
    async fn quiet_level(
        &self,
        fraction: f64,
        rate: f64,
        (warmup, seconds): (f64, f64),
        burst: bool,
        projector: &mut Workload,
    ) -> Result<Level> {
        let loadavg_before = super::loadavg();
        let busy = quiet(self.args, &format!("{rate:.0}/s")).await;
        let mut level = self.level(fraction, rate, warmup, seconds, burst, projector).await?;
        level.busy_before_pct = busy;
        level.loadavg_before = loadavg_before;
        Ok(level)
    }

    /// [`Ctx::quiet_level`], repeated once when other work on the machine disturbed it.
    async fn measured_level(
        &self,
        fraction: f64,
        rate: f64,
        window: (f64, f64),
        projector: &mut Workload,
    ) -> Result<Level> {
        let level = self.quiet_level(fraction, rate, window, false, projector).await?;
        if !level.disturbed() {
            return Ok(level);
        }
        eprintln!(
            "[e2e] {rate:.0}/s was disturbed by {:.2} cores of other work; repeating it once",
            level.cpu.as_ref().map(CpuUsage::other_cores).unwrap_or_default()
        );
        let mut level = self.quiet_level(fraction, rate, window, false, projector).await?;
        level.repeated = true;
        Ok(level)
    }

    /// The highest create rate api + relay + projector sustain together: open-loop steps chosen
    /// by the plan (see `pipeline.rs`), each judged by the sustain rule on the creates and by the
    /// projector's catch-up, until the plan ends, the step limit or the time budget.
    async fn pipeline_ladder(&self, projector: &mut Workload) -> Result<PipelineLadder> {
        let args = self.args;
        let (start, start_from) = args.ladder_start()?;
        let mut ladder = PipelineLadder {
            rule: args.ladder_rule(),
            max_caught_up_s: args.ladder_max_caught_up_s,
            plan: pipeline::Plan {
                start,
                factor: args.ladder_factor,
                refine: args.ladder_refine,
                max_steps: args.ladder_max_steps,
            },
            start_from,
            warmup_s: args.ladder_warmup,
            seconds: args.ladder_seconds,
            budget_s: args.ladder_budget_s,
            steps: Vec::new(),
            ended: Ended::default(),
            took_s: 0.0,
        };
        eprintln!(
            "[e2e] ladder with the whole pipeline from {:.0}/s ({}); a step holds when {}",
            ladder.plan.start,
            ladder.start_from,
            pipeline::describe_rule(&ladder.rule, ladder.max_caught_up_s)
        );
        let started = Instant::now();
        ladder.ended = loop {
            let rate = match ladder.plan.next(&ladder.asked()) {
                Next::Ask(rate) => rate,
                Next::Done(ended) => break ended,
            };
            if started.elapsed().as_secs_f64() >= ladder.budget_s {
                break Ended::Budget;
            }
            let level = self.measured_level(0.0, rate, (ladder.warmup_s, ladder.seconds), projector).await?;
            let step = pipeline::judge(&ladder.rule, ladder.max_caught_up_s, level);
            let why = ladder.why_not(&step);
            let judged = ladder::Step { sustained: step.held, ..pipeline::as_step(&step.level) };
            let why = if why.is_empty() { String::new() } else { format!(" ({})", why.join("; ")) };
            eprintln!("{}  caught up {:.2} s{why}", ladder::step_line("e2e ladder", &judged), step.level.caught_up_s);
            ladder.steps.push(step);
        };
        ladder.took_s = started.elapsed().as_secs_f64();
        match ladder.sustained_rate() {
            Some(rate) => eprintln!(
                "[e2e] highest rate sustained with the whole pipeline: {rate:.0}/s ({} steps in {:.0} s; {})",
                ladder.steps.len(),
                ladder.took_s,
                ladder.ended.describe()
            ),
            None => eprintln!("[e2e] the pipeline sustained none of the {} rates tried", ladder.steps.len()),
        }
        Ok(ladder)
    }

    /// Open-loop creates at `rate` for `warmup` + `seconds`, the sampled orders followed until
    /// visible, then the projector's catch-up.
    async fn level(
        &self,
        fraction: f64,
        rate: f64,
        warmup: f64,
        seconds: f64,
        burst: bool,
        projector: &mut Workload,
    ) -> Result<Level> {
        let args = self.args;
        eprintln!("[e2e] {}{rate:.0}/s for {seconds} s", if burst { "burst: " } else { "" });
        let permits = Arc::new(Semaphore::new(args.max_in_flight));
        let start = Instant::now() + Duration::from_millis(20);
        let warm_end = start + Duration::from_secs_f64(warmup);
        let end = warm_end + Duration::from_secs_f64(seconds);
        let recorder = Arc::new(Mutex::new(Recorder {
            warm_end,
            end,
            latency: ladder::histogram()?,
            ok_in_window: 0,
            created: 0,
            scheduled: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
        }));
        let cpu_groups = groups(args, &self.pids);
        let cpu = tokio::spawn(async move {
            tokio::time::sleep_until(warm_end).await;
            let before = CpuSnapshot::take(&cpu_groups);
            tokio::time::sleep_until(end).await;
            let after = CpuSnapshot::take(&cpu_groups);
            (before.usage_until(&after), before.cpu_seconds_until(&after))
        });
        let samplers: Vec<(&str, procfs::RssSampler)> = self
            .pids
            .iter()
            .map(|(name, pid)| (*name, procfs::RssSampler::start(*pid, Duration::from_millis(250))))
            .collect();
        let (samples_tx, samples_rx) = mpsc::unbounded_channel::<Sample>();
        let poller = tokio::spawn(follow(
            Arc::clone(&self.session),
            Arc::clone(&self.lookup),
            samples_rx,
            Duration::from_millis(args.visible_poll_ms),
        ));

        let count = ((warmup + seconds) * rate).round().max(1.0) as u64;
        let interval_ns = 1e9 / rate;
        for i in 0..count {
            let scheduled = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
            tokio::time::sleep_until(scheduled).await;
            let in_window = scheduled >= warm_end;
            if in_window {
                lock(&recorder).scheduled += 1;
            }
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                if in_window {
                    let mut r = lock(&recorder);
                    r.errors += 1;
                    *r.error_kinds.entry(format!("in-flight cap ({}) reached", args.max_in_flight)).or_default() += 1;
                }
                continue;
            };
            let sample = in_window && (i % args.sample_every == 0) || count == 1;
            let (target, recorder, tx) = (Arc::clone(&self.target), Arc::clone(&recorder), samples_tx.clone());
            tokio::spawn(async move {
                let outcome = create(&target, sample).await;
                let done = Instant::now();
                let mut r = lock(&recorder);
                match outcome {
                    Ok(created) => {
                        r.created += 1;
                        if done >= r.warm_end && done < r.end {
                            r.ok_in_window += 1;
                        }
                        if in_window {
                            ladder::record(&mut r.latency, micros(done - scheduled));
                        }
                        if let Some(s) = created {
                            let _ = tx.send(s);
                        }
                    }
                    Err(kind) => {
                        if in_window {
                            r.errors += 1;
                            *r.error_kinds.entry(kind).or_default() += 1;
                        }
                    }
                }
                drop(permit);
            });
        }
        drop(samples_tx);
        let schedule_end = Instant::now();
        let in_flight = u32::try_from(args.max_in_flight).unwrap_or(u32::MAX);
        if tokio::time::timeout(Duration::from_secs(20), permits.acquire_many(in_flight)).await.is_err() {
            bail!("create requests still in flight 20 s after the schedule ended");
        }
        let (cpu, cpu_s) = cpu.await.context("the CPU sampler")?;
        let rss_peak_kib = samplers.iter().map(|(n, s)| ((*n).to_owned(), s.peak_kib())).collect();
        drop(samplers);

        // Catch-up: every order committed so far projected, then no lag in the group.
        let committed = self.orders_committed().await?;
        let mut progress = Vec::new();
        projector
            .wait_counter(
                "ordexa_projector_events_total",
                u64::try_from(committed).unwrap_or(0),
                schedule_end,
                Duration::from_millis(args.poll_ms),
                Duration::from_secs(600),
                &mut progress,
            )
            .await?;
        let caught_up_s = schedule_end.elapsed().as_secs_f64();
        cluster::wait_no_lag(
            &args.kafka_bootstrap,
            &self.group,
            &self.topic,
            Duration::from_millis(50),
            Duration::from_secs(120),
        )
        .await?;
        let lag_zero_s = schedule_end.elapsed().as_secs_f64();
        let followed = poller.await.context("the visibility poller")??;
        let projector_delay =
            projector.metrics().await.and_then(|m| process::summary_ms(&m, "ordexa_projector_delay_seconds"));

        let r = lock(&recorder);
        let level = Level {
            fraction,
            target_rate: rate,
            burst,
            seconds,
            scheduled: r.scheduled,
            achieved_rate: if seconds > 0.0 { r.ok_in_window as f64 / seconds } else { 0.0 },
            created: r.created,
            errors: r.errors,
            error_kinds: r.error_kinds.clone(),
            api_latency: ladder::latency(&r.latency),
            visible_after_response: ladder::latency(&followed.after_response),
            visible_after_created: ladder::latency(&followed.after_created),
            sampled: followed.sampled,
            not_visible: followed.not_visible,
            projector_delay,
            caught_up_s,
            lag_zero_s,
            cpu: Some(cpu),
            cpu_s,
            busy_before_pct: 0.0,
            loadavg_before: String::new(),
            repeated: false,
            rss_peak_kib,
        };
        let (p50, p99) = level.visible_after_response.as_ref().map(|l| (l.p50_ms, l.p99_ms)).unwrap_or_default();
        eprintln!(
            "[e2e] {rate:.0}/s: {:.0}/s created, {} errors; visible after the response p50 {p50:.1} ms p99 {p99:.1} ms \
             ({} sampled, {} not visible); caught up {caught_up_s:.2} s after the schedule, no lag after {lag_zero_s:.2} s",
            level.achieved_rate, level.errors, level.sampled, level.not_visible
        );
        Ok(level)
    }
}

/// Sends one create; on 201 the order id (from `Location`) and, for a sampled one, what to follow.
async fn create(target: &Target, sample: bool) -> Result<Option<Sample>, String> {
    let response = target.send_create(Uuid::new_v4().to_string()).await?;
    let status = response.status();
    let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.bytes().await.map_err(|e| error_kind(&e))?;
    let response_us = wall_micros();
    if status != StatusCode::CREATED {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    if !sample {
        return Ok(None);
    }
    let id = location
        .as_deref()
        .and_then(|l| l.rsplit('/').next())
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| "201 without an order id in Location".to_owned())?;
    let created_us = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["created_at"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()))
        .and_then(|t| u64::try_from(t.timestamp_micros()).ok());
    Ok(Some(Sample { id, response_us, created_us }))
}

struct Followed {
    after_response: Histogram<u64>,
    after_created: Histogram<u64>,
    sampled: u64,
    not_visible: u64,
}

/// Follows the sampled orders until each is in `orders_by_id`: every `every`, one `IN` query per
/// up to 100 pending ids. Ends when the senders are gone and nothing is pending (an order not
/// visible 60 s after its response is given up and counted).
async fn follow(
    session: Arc<Session>,
    lookup: Arc<PreparedStatement>,
    mut incoming: mpsc::UnboundedReceiver<Sample>,
    every: Duration,
) -> Result<Followed> {
    let mut followed = Followed {
        after_response: ladder::histogram()?,
        after_created: ladder::histogram()?,
        sampled: 0,
        not_visible: 0,
    };
    let mut pending: HashMap<Uuid, Sample> = HashMap::new();
    let mut open = true;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while open || !pending.is_empty() {
        tick.tick().await;
        loop {
            match incoming.try_recv() {
                Ok(sample) => {
                    followed.sampled += 1;
                    pending.insert(sample.id, sample);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if pending.is_empty() {
            continue;
        }
        let ids: Vec<Uuid> = pending.keys().copied().collect();
        let queries = ids.chunks(100).map(|chunk| {
            let (session, lookup) = (Arc::clone(&session), Arc::clone(&lookup));
            let chunk = chunk.to_vec();
            async move {
                let rows = session.execute_unpaged(&lookup, (chunk,)).await?.into_rows_result()?;
                let mut found = Vec::new();
                for row in rows.rows::<(Uuid,)>()? {
                    found.push(row?.0);
                }
                Ok::<_, anyhow::Error>(found)
            }
        });
        let results = futures::future::join_all(queries).await;
        let now = wall_micros();
        for result in results {
            for id in result.context("polling the read model")? {
                if let Some(sample) = pending.remove(&id) {
                    ladder::record(&mut followed.after_response, now.saturating_sub(sample.response_us));
                    if let Some(created) = sample.created_us {
                        ladder::record(&mut followed.after_created, now.saturating_sub(created));
                    }
                }
            }
        }
        let before = pending.len();
        pending.retain(|_, s| now.saturating_sub(s.response_us) < 60_000_000);
        followed.not_visible += (before - pending.len()) as u64;
    }
    Ok(followed)
}

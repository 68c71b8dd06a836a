//! `e2e`: the projector and the whole pipeline end to end (`make bench-e2e`, driven by
//! `bench/e2e.sh`).
//!
//! In one run, with the run's own topics (`bench<stamp>.`) and keyspaces (`bench_e2e_<stamp>…`):
//!
//! 1. **Drain rounds** (3 by default), each of:
//!    - **projector**: 200,000 real `order.created`/`order.updated` events preloaded once into a
//!      topic; one `ordexa projector` (release) started with a fresh consumer group on a fresh
//!      keyspace and measured from its process start until its `ordexa_projector_events_total`
//!      reaches every event (then until the group's committed offsets show no lag);
//!    - **ceiling**: the same events, decoded beforehand, written by this process through
//!      `ordexa_readmodel::ReadModel::apply` (the projector's statements) with the projector's
//!      concurrency into another fresh keyspace: no Kafka, no decoding.
//! 2. **Live**: `ordexa api`, `ordexa relay` and `ordexa projector` (release) on a fresh
//!    database, topics and keyspace. First (`--api-rate-mode measured`, the default) a short
//!    **ladder** of open-loop create steps against the three of them finds the highest create
//!    rate the whole pipeline sustains on this machine (`pipeline.rs`); with `given`, the rate is
//!    `--api-rate` (bench-api's figure for the API alone). Then open-loop `POST /api/v1/orders`
//!    at fractions of that rate; for a sample of the created orders, the time from the 201
//!    response (and from the order's `created_at`) until its row is in `orders_by_id`, polled
//!    directly in Cassandra. Then a **burst** at a multiple of that rate and the time until the
//!    projector has caught up (every committed order projected, no group lag). Resident memory
//!    (VmHWM) of each workload.

pub mod cluster;
pub mod live;
pub mod pipeline;
pub mod process;
pub mod report;
pub mod svg;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use ordexa_domain::OrderEvent;
use ordexa_relay::RelayConfig;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::ladder::{self, QuietArgs, SustainRule};
use crate::procfs::{self, CpuSnapshot, CpuUsage, Group, Memory};
use crate::relay::{Throughput, kafka, median, outbox};
use process::Workload;

/// Where the rate the live loads are fractions of comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiRateMode {
    /// Measured in this run: the highest create rate api + relay + projector sustain together
    /// (a ladder of create steps before the loads).
    Measured,
    /// `--api-rate` as given (bench-api's figure for the API alone); no ladder.
    Given,
}

#[derive(Debug, Clone, Args)]
pub struct E2eArgs {
    /// host:port of Kafka.
    #[arg(long)]
    pub kafka_bootstrap: String,
    /// Cassandra contact points, host:port[,host:port…].
    #[arg(long, value_delimiter = ',', required = true)]
    pub cassandra_nodes: Vec<String>,
    /// postgres://… URL of a fresh database of this run's own, migrated with the development
    /// catalog (`ordexa migrate --seed-dev`): the live phase's write model.
    #[arg(long)]
    pub database_url: String,
    /// The run's own topic prefix, `bench<unique>.` (never the system's `ordexa.`).
    #[arg(long)]
    pub topic_prefix: String,
    /// The run's own keyspace prefix, `bench_e2e_<unique>`; every keyspace starts with it.
    #[arg(long)]
    pub keyspace_prefix: String,
    /// The `ordexa` binary (release build) whose workloads are measured.
    #[arg(long)]
    pub ordexa: PathBuf,
    /// Events preloaded for the drain.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Orders the drain's events belong to (events / orders each).
    #[arg(long, default_value_t = 20_000)]
    pub orders: usize,
    /// Partitions of the topics (as `ordexa topics --partitions`).
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Rounds of (projector drain, ceiling); the report takes the median of each.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Writes in flight in the ceiling: the projector's default ORDEXA_PROJECTOR_CONCURRENCY.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// RUST_LOG of the workloads under test.
    #[arg(long, default_value = "info")]
    pub log: String,
    /// Where the rate the live loads and the burst are fractions of comes from: `measured` (a
    /// ladder with the whole pipeline running, in this run) or `given` (`--api-rate`).
    #[arg(long, value_enum, default_value_t = ApiRateMode::Measured)]
    pub api_rate_mode: ApiRateMode,
    /// The API's highest sustained create rate alone (bench-api), per second. `given`: the live
    /// loads are fractions of it. `measured`: the ladder starts from `--ladder-start-fraction` of
    /// it, and the report states it for reference.
    #[arg(long)]
    pub api_rate: Option<f64>,
    /// Where `--api-rate` comes from (stated in the report), e.g. the bench-api result file.
    #[arg(long, default_value = "given on the command line")]
    pub api_rate_source: String,
    /// `measured`: the ladder's first rate, per second (default: `--ladder-start-fraction` × `--api-rate`).
    #[arg(long)]
    pub ladder_start_rate: Option<f64>,
    /// `measured`: the ladder's first rate as a fraction of `--api-rate`.
    #[arg(long, default_value_t = 0.2)]
    pub ladder_start_fraction: f64,
    /// `measured`: each step up (while every step held) multiplies the rate by this, each step
    /// down (while none has) divides it.
    #[arg(long, default_value_t = 1.25)]
    pub ladder_factor: f64,
    /// `measured`: once a held and a failed step bracket the rate, this many steps halve the gap.
    #[arg(long, default_value_t = 2)]
    pub ladder_refine: u32,
    /// `measured`: at most this many ladder steps.
    #[arg(long, default_value_t = 8)]
    pub ladder_max_steps: usize,
    /// `measured`: no new ladder step starts after this many seconds of ladder.
    #[arg(long, default_value_t = 200.0)]
    pub ladder_budget_s: f64,
    /// `measured`: seconds measured at each ladder step.
    #[arg(long, default_value_t = 15.0)]
    pub ladder_seconds: f64,
    /// `measured`: seconds of load before each ladder step's measured window.
    #[arg(long, default_value_t = 3.0)]
    pub ladder_warmup: f64,
    /// `measured`: the sustain rule's p99 bound on the creates (from their scheduled start), ms,
    /// as bench-api's.
    #[arg(long, default_value_t = 200.0)]
    pub ladder_p99_bound_ms: f64,
    /// `measured`: a step holds only if the projector had counted every committed order at most
    /// this many seconds after the step's schedule ended.
    #[arg(long, default_value_t = 2.0)]
    pub ladder_max_caught_up_s: f64,
    /// The live loads, as fractions of the measured (or given) rate.
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.75")]
    pub levels: Vec<f64>,
    /// Seconds measured at each live load.
    #[arg(long, default_value_t = 30.0)]
    pub level_seconds: f64,
    /// Seconds of load before each level's measured window.
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// The burst's rate, as a multiple of the measured (or given) rate.
    #[arg(long, default_value_t = 2.0)]
    pub burst_factor: f64,
    /// Seconds of burst.
    #[arg(long, default_value_t = 60.0)]
    pub burst_seconds: f64,
    /// Every n-th created order is followed until it is visible in Cassandra.
    #[arg(long, default_value_t = 5)]
    pub sample_every: u64,
    /// Milliseconds between Cassandra polls for the sampled orders.
    #[arg(long, default_value_t = 5)]
    pub visible_poll_ms: u64,
    /// Most create requests in flight; one due beyond it is not sent and counts as an error.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Milliseconds between reads of a workload's /metrics while waiting for it.
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    /// Skip the drain rounds (live only).
    #[arg(long)]
    pub skip_drain: bool,
    /// Skip the live phase (drain only).
    #[arg(long)]
    pub skip_live: bool,
    /// The PostgreSQL postmaster's process id: its and its backends' CPU use are recorded.
    #[arg(long)]
    pub pg_pid: Option<u32>,
    /// The Kafka broker's process id.
    #[arg(long)]
    pub kafka_pid: Option<u32>,
    /// The Cassandra node's process id.
    #[arg(long)]
    pub cassandra_pid: Option<u32>,
    /// Where the workloads' logs and process id files go.
    #[arg(long)]
    pub work_dir: PathBuf,
    /// Where to write the results as JSON.
    #[arg(long)]
    pub json: PathBuf,
    #[command(flatten)]
    pub quiet: QuietArgs,
}

/// Removes a run's topics and keyspaces: `e2e-cleanup`.
#[derive(Debug, Clone, Args)]
pub struct E2eCleanupArgs {
    #[arg(long)]
    kafka_bootstrap: String,
    #[arg(long, value_delimiter = ',', required = true)]
    cassandra_nodes: Vec<String>,
    /// Every topic starting with this prefix goes (`bench<unique>.`).
    #[arg(long)]
    topic_prefix: String,
    /// Every keyspace starting with this prefix goes (`bench_e2e_<unique>`).
    #[arg(long)]
    keyspace_prefix: String,
}

pub fn cleanup(args: E2eCleanupArgs) -> Result<()> {
    kafka::check_prefix(&args.topic_prefix)?;
    cluster::check_keyspace_prefix(&args.keyspace_prefix)?;
    crate::load::runtime(1)?.block_on(async {
        let topics = kafka::delete_topics(&args.kafka_bootstrap, &args.topic_prefix).await;
        let keyspaces = cluster::drop_keyspaces(&args.cassandra_nodes, &args.keyspace_prefix).await;
        match &topics {
            Ok(t) => eprintln!("[e2e] deleted {} topics: {}", t.len(), t.join(", ")),
            Err(err) => eprintln!("[e2e] could not delete the topics {}*: {err:#}", args.topic_prefix),
        }
        match &keyspaces {
            Ok(k) => eprintln!("[e2e] dropped {} keyspaces: {}", k.len(), k.join(", ")),
            Err(err) => eprintln!("[e2e] could not drop the keyspaces {}*: {err:#}", args.keyspace_prefix),
        }
        topics?;
        keyspaces?;
        Ok(())
    })
}

/// One projector drain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProjectorDrain {
    pub throughput: Throughput,
    /// From the process start to the first event projected (`/metrics` resolution).
    pub first_event_s: Option<f64>,
    /// After the last event was projected, until the group's committed offsets showed no lag.
    pub lag_zero_after_s: f64,
    /// Events projected in each second since the start.
    pub per_second: Vec<u64>,
    pub rss_peak_kib: u64,
    pub memory: Option<Memory>,
    /// The projector's own counters and delay summary at the end.
    pub metrics: Vec<String>,
    /// Rows in the keyspace's orders_by_id at the end (one per order).
    pub orders_rows: i64,
    pub exit: String,
}

/// One run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct E2eRun {
    pub settings: BTreeMap<String, String>,
    /// `/proc/loadavg` at the start and at the end of the run.
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub payload_bytes: (usize, f64, usize),
    /// Seconds the preload into the topic took.
    pub preload_s: f64,
    pub drains: Vec<ProjectorDrain>,
    pub ceilings: Vec<Throughput>,
    /// Rounds run a second time because other work disturbed them.
    pub repeated_rounds: Vec<u32>,
    pub live: Option<live::Live>,
}

impl E2eArgs {
    /// Checks the options of the rate mode: `given` needs `--api-rate`; `measured` needs a rate to
    /// start the ladder from and a ladder that can run.
    pub fn check_rate_mode(&self) -> Result<()> {
        match self.api_rate_mode {
            ApiRateMode::Given if self.api_rate.is_none() => bail!("--api-rate-mode given needs --api-rate"),
            ApiRateMode::Given => Ok(()),
            ApiRateMode::Measured => {
                self.ladder_start()?;
                if self.ladder_factor <= 1.0 || self.ladder_max_steps == 0 || self.ladder_seconds <= 0.0 {
                    bail!("--ladder-factor must be above 1, --ladder-max-steps and --ladder-seconds above 0");
                }
                if self.ladder_warmup < 0.0 || self.ladder_max_caught_up_s < 0.0 || self.ladder_p99_bound_ms <= 0.0 {
                    bail!(
                        "--ladder-warmup and --ladder-max-caught-up-s must be at least 0, --ladder-p99-bound-ms above 0"
                    );
                }
                Ok(())
            }
        }
    }

    /// The ladder's first rate and where it comes from.
    pub fn ladder_start(&self) -> Result<(f64, String)> {
        let (rate, from) = match (self.ladder_start_rate, self.api_rate) {
            (Some(rate), _) => (rate, "--ladder-start-rate".to_owned()),
            (None, Some(api)) => (
                self.ladder_start_fraction * api,
                format!("{:.0} % of the API-alone rate, {api:.0}/s", self.ladder_start_fraction * 100.0),
            ),
            (None, None) => {
                bail!("--api-rate-mode measured needs --api-rate (bench-api's rate) or --ladder-start-rate")
            }
        };
        if !(rate >= 1.0 && rate.is_finite()) {
            bail!("the ladder's first rate ({rate}/s, {from}) must be at least 1/s");
        }
        Ok((rate, from))
    }

    /// The ladder's sustain rule on the creates: bench-api's, with `--ladder-p99-bound-ms`.
    pub fn ladder_rule(&self) -> SustainRule {
        SustainRule::new(self.ladder_p99_bound_ms)
    }
}

impl E2eRun {
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }

    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Process groups whose CPU is recorded: this process, the servers, and `workloads`.
pub fn groups(args: &E2eArgs, workloads: &[(&str, u32)]) -> Vec<Group> {
    let mut groups = vec![Group { name: "bench".into(), pid: std::process::id(), with_children: false }];
    for (name, pid) in workloads {
        groups.push(Group { name: (*name).into(), pid: *pid, with_children: false });
    }
    for (name, pid, with_children) in
        [("postgres", args.pg_pid, true), ("kafka", args.kafka_pid, false), ("cassandra", args.cassandra_pid, false)]
    {
        if let Some(pid) = pid {
            groups.push(Group { name: name.into(), pid, with_children });
        }
    }
    groups
}

pub async fn quiet(args: &E2eArgs, what: &str) -> f64 {
    eprintln!("[e2e] {what}: waiting for a quiet machine");
    let quiet = args.quiet;
    tokio::task::spawn_blocking(move || quiet.wait()).await.unwrap_or(100.0)
}

pub fn nodes(args: &E2eArgs) -> String {
    args.cassandra_nodes.join(",")
}

pub fn run(args: E2eArgs) -> Result<()> {
    kafka::check_prefix(&args.topic_prefix)?;
    cluster::check_keyspace_prefix(&args.keyspace_prefix)?;
    if args.orders == 0 || args.events < args.orders || args.rounds == 0 || args.concurrency == 0 {
        bail!("--events must be at least --orders (above 0); --rounds and --concurrency above 0");
    }
    if args.api_rate.is_some_and(|r| r <= 0.0) || args.levels.iter().any(|l| *l <= 0.0) || args.sample_every == 0 {
        bail!("--api-rate, --levels and --sample-every must be above 0");
    }
    if !args.skip_live {
        args.check_rate_mode()?;
    }
    std::fs::create_dir_all(&args.work_dir)?;
    crate::load::runtime(2)?.block_on(run_async(args))
}

async fn run_async(args: E2eArgs) -> Result<()> {
    let mut run = E2eRun { loadavg_start: loadavg(), ..E2eRun::default() };
    settings(&args, &mut run.settings);
    if !args.skip_drain {
        drain_rounds(&args, &mut run).await?;
        run.save(&args.json)?;
    }
    if !args.skip_live {
        run.live = Some(live::run(&args).await?);
    }
    run.loadavg_end = loadavg();
    run.save(&args.json)?;
    Ok(())
}

/// Preloads the topic, then runs the rounds of projector drain and ceiling.
async fn drain_rounds(args: &E2eArgs, run: &mut E2eRun) -> Result<()> {
    let per_order = args.events.div_ceil(args.orders);
    eprintln!("[e2e] generating {} events: {} orders × {per_order}", args.events, args.orders);
    let mut rows = outbox::order_lives(args.orders, per_order, 0)?;
    rows.truncate(args.events);
    run.payload_bytes = outbox::payload_sizes(&rows);
    let events: Vec<OrderEvent> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.payload).context("decoding a generated event"))
        .collect::<Result<_>>()?;
    let events = Arc::new(events);

    // The topic, preloaded once: every round's projector reads it with a group of its own.
    ordexa_relay::topics::ensure_topics(&args.kafka_bootstrap, &args.topic_prefix, args.partitions, 1).await?;
    let topic = ordexa_domain::topic_name(&args.topic_prefix);
    let config = RelayConfig {
        database_url: args.database_url.clone(),
        kafka_bootstrap: args.kafka_bootstrap.clone(),
        topic_prefix: args.topic_prefix.clone(),
        batch_size: 1000,
        poll_interval: Duration::from_secs(1),
        batches_in_flight: 4,
        vacuum_every: ordexa_relay::DEFAULT_VACUUM_EVERY,
    };
    eprintln!("[e2e] preloading {} events into {topic}", rows.len());
    let started = Instant::now();
    let (producer, _) = kafka::ready_producer(&config).await?;
    kafka::produce_from_memory(&producer, &topic, &rows, 1000, 4).await?;
    drop(producer);
    run.preload_s = started.elapsed().as_secs_f64();
    let in_topic = kafka::total(&kafka::high_watermarks(&args.kafka_bootstrap, &topic)?);
    if in_topic != rows.len() as i64 {
        bail!("the topic holds {in_topic} messages, not {}", rows.len());
    }
    drop(rows);

    for round in 1..=args.rounds {
        eprintln!("[e2e] round {round} of {}", args.rounds);
        let mut measured = one_round(args, &events, &topic, round, "").await?;
        let other = [&measured.0.throughput, &measured.1]
            .iter()
            .filter_map(|t| t.cpu.as_ref())
            .map(CpuUsage::other_cores)
            .fold(0.0, f64::max);
        if other > ladder::DISTURBED_CORES {
            eprintln!("[e2e] round {round} was disturbed by {other:.2} cores of other work; repeating it once");
            measured = one_round(args, &events, &topic, round, "r").await?;
            run.repeated_rounds.push(round);
        }
        run.drains.push(measured.0);
        run.ceilings.push(measured.1);
    }
    let p = median(&run.drains.iter().map(|d| d.throughput.rate).collect::<Vec<_>>());
    let c = median(&run.ceilings.iter().map(|t| t.rate).collect::<Vec<_>>());
    eprintln!("[e2e] median projector {p:.0} events/s, ceiling {c:.0} events/s: ratio {:.2}", p / c);
    Ok(())
}

async fn one_round(
    args: &E2eArgs,
    events: &Arc<Vec<OrderEvent>>,
    topic: &str,
    round: u32,
    suffix: &str,
) -> Result<(ProjectorDrain, Throughput)> {
    let drain = projector_drain(args, events.len() as u64, topic, round, suffix).await?;
    let ceiling = ceiling(args, events, round, suffix).await?;
    Ok((drain, ceiling))
}

/// One `ordexa projector` with a fresh group draining the preloaded topic into a fresh keyspace.
async fn projector_drain(args: &E2eArgs, events: u64, topic: &str, round: u32, suffix: &str) -> Result<ProjectorDrain> {
    let keyspace = format!("{}_p{round}{suffix}", args.keyspace_prefix);
    let group = format!("{}drain-p{round}{suffix}", args.topic_prefix);
    eprintln!("[e2e] projector drain: keyspace {keyspace}, group {group}");
    let model = cluster::fresh_keyspace(&args.cassandra_nodes, &keyspace).await?;
    drop(model);
    let env = [
        ("ORDEXA_KAFKA_BOOTSTRAP", args.kafka_bootstrap.clone()),
        ("ORDEXA_TOPIC_PREFIX", args.topic_prefix.clone()),
        ("ORDEXA_CASSANDRA_NODES", nodes(args)),
        ("ORDEXA_CASSANDRA_KEYSPACE", keyspace.clone()),
        ("ORDEXA_PROJECTOR_GROUP", group.clone()),
        ("RUST_LOG", args.log.clone()),
    ];
    let busy_before = quiet(args, "projector drain").await;
    let cpu_before = CpuSnapshot::take(&groups(args, &[]));
    let started = Instant::now();
    let mut projector =
        Workload::start(&args.ordexa, "projector", &format!("projector-drain-{round}{suffix}"), &env, &args.work_dir)?;
    let pid = projector.pid();
    let sampler = procfs::RssSampler::start(pid, Duration::from_millis(100));
    let mut samples = Vec::new();
    let poll = Duration::from_millis(args.poll_ms);
    projector
        .wait_counter("ordexa_projector_events_total", events, started, poll, Duration::from_secs(900), &mut samples)
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = CpuSnapshot::take(&groups(args, &[("projector", pid)]));
    let lag_zero_after_s =
        cluster::wait_no_lag(&args.kafka_bootstrap, &group, topic, Duration::from_millis(50), Duration::from_secs(60))
            .await?;
    let metrics = projector.metrics().await.unwrap_or_default();
    let memory = procfs::memory(pid);
    let rss_peak_kib = sampler.peak_kib();
    drop(sampler);
    let exit = process::stop(projector);
    let session = cluster::connect(&args.cassandra_nodes).await?;
    let orders_rows = cluster::count_orders(&session, &keyspace).await?;
    // Dropped now: a small node's heap holds every keyspace's memtables.
    cluster::drop_keyspace(&session, &keyspace).await?;
    let drain = ProjectorDrain {
        throughput: Throughput {
            events,
            seconds,
            rate: events as f64 / seconds,
            batches: 0,
            batch_ms: None,
            cpu_s: cpu_before.cpu_seconds_until(&cpu_after),
            cpu: Some(cpu_before.usage_until(&cpu_after)),
            busy_before_pct: busy_before,
            setup_s: None,
        },
        first_event_s: samples.iter().find(|s| s.1 > 0).map(|s| s.0),
        lag_zero_after_s,
        per_second: crate::relay::per_second(&samples),
        rss_peak_kib,
        memory,
        metrics: [
            "ordexa_projector_events_total",
            "ordexa_projector_dead_letters_total",
            "ordexa_projector_errors_total",
            "ordexa_projector_delay_seconds",
        ]
        .iter()
        .flat_map(|name| crate::relay::process::metric_lines(&metrics, name))
        .collect(),
        orders_rows,
        exit,
    };
    let t = &drain.throughput;
    eprintln!(
        "[e2e] projector drained {} events in {:.2} s: {:.0} events/s, {:.0} per projector CPU-second; lag 0 {:.2} s later",
        t.events,
        t.seconds,
        t.rate,
        t.events_per_cpu_s("projector").unwrap_or(0.0),
        drain.lag_zero_after_s
    );
    let orders_expected = i64::try_from(args.orders.min(events as usize)).unwrap_or(i64::MAX);
    if drain.orders_rows != orders_expected {
        bail!("orders_by_id of {keyspace} holds {} rows, not {orders_expected}", drain.orders_rows);
    }
    Ok(drain)
}

/// The projector's writes alone: `ReadModel::apply` on the pre-decoded events, `concurrency`
/// at a time, from this process into a fresh keyspace.
async fn ceiling(args: &E2eArgs, events: &Arc<Vec<OrderEvent>>, round: u32, suffix: &str) -> Result<Throughput> {
    let keyspace = format!("{}_c{round}{suffix}", args.keyspace_prefix);
    let setup = Instant::now();
    let model = cluster::fresh_keyspace(&args.cassandra_nodes, &keyspace).await?;
    let setup_s = setup.elapsed().as_secs_f64();
    let busy_before = quiet(args, "ceiling").await;
    let cpu_groups = groups(args, &[]);
    let before = CpuSnapshot::take(&cpu_groups);
    let started = Instant::now();
    let mut applied = futures::stream::iter(events.iter()).map(|e| model.apply(e)).buffer_unordered(args.concurrency);
    let mut done = 0u64;
    while let Some(result) = applied.next().await {
        result.context("a ceiling write failed")?;
        done += 1;
    }
    drop(applied);
    let seconds = started.elapsed().as_secs_f64();
    let after = CpuSnapshot::take(&cpu_groups);
    let orders_rows = cluster::count_orders(model.session(), &keyspace).await?;
    cluster::drop_keyspace(model.session(), &keyspace).await?;
    let orders_expected = i64::try_from(args.orders.min(events.len())).unwrap_or(i64::MAX);
    if orders_rows != orders_expected {
        bail!("orders_by_id of {keyspace} holds {orders_rows} rows, not {orders_expected}");
    }
    let t = Throughput {
        events: done,
        seconds,
        rate: done as f64 / seconds,
        batches: 0,
        batch_ms: None,
        cpu_s: before.cpu_seconds_until(&after),
        cpu: Some(before.usage_until(&after)),
        busy_before_pct: busy_before,
        setup_s: Some(setup_s),
    };
    eprintln!(
        "[e2e] ceiling: {} events in {:.2} s: {:.0} events/s, {:.0} per bench CPU-second",
        t.events,
        t.seconds,
        t.rate,
        t.events_per_cpu_s("bench").unwrap_or(0.0)
    );
    Ok(t)
}

fn settings(args: &E2eArgs, out: &mut BTreeMap<String, String>) {
    let mut set = |k: &str, v: String| {
        out.insert(k.to_owned(), v);
    };
    let per_order = args.events.div_ceil(args.orders);
    set(
        "drain backlog",
        format!(
            "{} events of {} orders ({per_order} each: order.created, revisions while PENDING, then confirmed, \
             shipped, delivered; real ordexa_domain events serialized as the store does), produced once into a topic \
             of {} partitions keyed by order id, in the order a busy write side commits them",
            args.events, args.orders, args.partitions
        ),
    );
    set("rounds", format!("{} × (projector drain, ceiling); medians reported", args.rounds));
    set(
        "projector",
        "ordexa projector (release), defaults: ORDEXA_PROJECTOR_BATCH_SIZE 500, ORDEXA_PROJECTOR_CONCURRENCY 64; a \
         fresh consumer group (auto.offset.reset earliest) and a fresh keyspace per round"
            .to_owned(),
    );
    set(
        "ceiling",
        format!(
            "this process: ordexa_readmodel::ReadModel::apply (the projector's statements: 3 upserts and 0–2 deletes \
             USING TIMESTAMP, concurrently, plus the hour bucket once) on the events decoded beforehand, {} applies \
             in flight (a sliding window), into a fresh keyspace; its set-up (keyspace, prepare) not counted",
            args.concurrency
        ),
    );
    set("workloads' RUST_LOG", args.log.clone());
    set(
        "end of drain detected by",
        format!(
            "the projector's ordexa_projector_events_total, read every {} ms; then the group's committed offsets vs the \
             high watermarks (lag), every 50 ms",
            args.poll_ms
        ),
    );
    let api_alone = args.api_rate.map(|r| format!("{r:.0}/s ({})", args.api_rate_source));
    match args.api_rate_mode {
        ApiRateMode::Given => set(
            "rate the live loads are fractions of",
            format!("the API's, given, not measured in this run: {}", api_alone.unwrap_or_default()),
        ),
        ApiRateMode::Measured => {
            set(
                "rate the live loads are fractions of",
                "measured in this run: the highest create rate api + relay + projector sustained together in a \
                 ladder of steps before the loads (see Live)"
                    .to_owned(),
            );
            set("API alone (bench-api), for reference", api_alone.unwrap_or_else(|| "not given".to_owned()));
            let start = args.ladder_start().map(|(r, from)| format!("{r:.0}/s ({from})")).unwrap_or_default();
            set(
                "ladder with the pipeline",
                format!(
                    "from {start}, × {} per step up while every step held (÷ down while none had), then {} steps \
                     halving the gap between the highest held and the lowest failed rate; at most {} steps, none \
                     started after {} s; {} s measured after {} s of warm-up each, open loop as the loads; a step \
                     holds when {}",
                    args.ladder_factor,
                    args.ladder_refine,
                    args.ladder_max_steps,
                    args.ladder_budget_s,
                    args.ladder_seconds,
                    args.ladder_warmup,
                    pipeline::describe_rule(&args.ladder_rule(), args.ladder_max_caught_up_s)
                ),
            );
        }
    }
    set(
        "live loads",
        format!(
            "{} of that rate, {} s measured after {} s of warm-up each; burst {}× for {} s; open loop, fixed \
             interval, at most {} requests in flight",
            args.levels.iter().map(|l| format!("{:.0} %", l * 100.0)).collect::<Vec<_>>().join(", "),
            args.level_seconds,
            args.warmup,
            args.burst_factor,
            args.burst_seconds,
            args.max_in_flight
        ),
    );
    set(
        "commit → visible",
        format!(
            "every {}th created order (inside the measured window) is polled in Cassandra (SELECT … FROM \
             orders_by_id WHERE order_id IN ?) every {} ms until its row is there; measured from the 201 response's \
             arrival (after the commit) and from the order's created_at (before it)",
            args.sample_every, args.visible_poll_ms
        ),
    );
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: E2eArgs,
    }

    fn parse(extra: &[&str]) -> Result<E2eArgs> {
        let required = [
            "e2e",
            "--kafka-bootstrap=127.0.0.1:9092",
            "--cassandra-nodes=127.0.0.1:9042",
            "--database-url=postgres://localhost/x",
            "--topic-prefix=bench20261126T000000Z.",
            "--keyspace-prefix=bench_e2e_20261126t000000z",
            "--ordexa=/nowhere/ordexa",
            "--work-dir=/nowhere",
            "--json=/nowhere/e2e.json",
        ];
        Ok(Cli::try_parse_from(required.iter().chain(extra))?.args)
    }

    #[test]
    fn the_options_do_not_clash() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_rate_is_measured_by_default_starting_from_a_fraction_of_the_api_alone() -> Result<()> {
        let args = parse(&["--api-rate=1300"])?;
        assert_eq!(args.api_rate_mode, ApiRateMode::Measured);
        args.check_rate_mode()?;
        let (start, from) = args.ladder_start()?;
        assert_eq!(start, 260.0);
        assert_eq!(from, "20 % of the API-alone rate, 1300/s");
        assert_eq!(args.ladder_rule().p99_bound_ms, 200.0);

        // As bench/e2e.sh passes them.
        let args = parse(&[
            "--api-rate",
            "1300",
            "--api-rate-source",
            "bench/results/api-2026-11-26-d48a5cb.md",
            "--api-rate-mode",
            "measured",
            "--ladder-seconds",
            "15",
            "--ladder-max-steps",
            "8",
            "--ladder-start-rate",
            "150",
        ])?;
        assert_eq!(args.ladder_start()?, (150.0, "--ladder-start-rate".to_owned()));
        assert_eq!((args.ladder_seconds, args.ladder_max_steps), (15.0, 8));
        let args = parse(&["--ladder-start-rate=150"])?;
        args.check_rate_mode()?;
        Ok(())
    }

    #[test]
    fn each_mode_needs_its_rate() -> Result<()> {
        assert!(parse(&[])?.check_rate_mode().is_err());
        assert!(parse(&["--api-rate-mode=given"])?.check_rate_mode().is_err());
        let given = parse(&["--api-rate-mode=given", "--api-rate=1300"])?;
        given.check_rate_mode()?;
        assert_eq!(given.api_rate_mode, ApiRateMode::Given);
        assert!(parse(&["--api-rate-mode=guessed", "--api-rate=1300"]).is_err());
        assert!(parse(&["--api-rate=1300", "--ladder-factor=1"])?.check_rate_mode().is_err());
        assert!(parse(&["--api-rate=2", "--ladder-start-fraction=0.2"])?.check_rate_mode().is_err());
        Ok(())
    }
}

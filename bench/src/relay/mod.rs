//! `relay`: the outbox relay's benchmark (`make bench-relay`, driven by `bench/relay.sh`).
//!
//! In one run, against one fresh database and the run's own topics:
//!
//! 1. **Rounds** (3 by default), each of:
//!    - **drain**: a backlog of outbox rows shaped as the write side writes them (whole order
//!      lives of real `order.created`/`order.updated` events, loaded with one `COPY`), then one
//!      `ordexa relay` started; events per second from its start until it has published every
//!      row, and per CPU-second of the relay process; the relay is stopped after;
//!    - **the two ceilings**: the relay's producer sending the same messages from memory, and
//!      the relay's claim-and-remove SQL on a fresh identical backlog without Kafka.
//! 2. **The write side's commit ceiling**: one-event transactions closed loop, with the outbox's
//!    NOTIFY trigger while a relay waits (every commit notifies) and while none does (none
//!    notifies), and without the trigger.
//! 3. **Steady load**: a new relay, and a writer committing events at a fraction (default ½) of
//!    the median drain rate, on an open-loop schedule, N events per transaction, each of a
//!    different order (`--writer-events-per-commit`: by default the smallest N that keeps the
//!    writer's commits per second within a fraction of the commit ceiling just measured, since a
//!    PostgreSQL that flushes WAL at every commit commits far fewer transactions per second than
//!    the relay moves events); every event's Kafka CreateTime minus its transaction's commit
//!    time (the writer's wall clock right after COMMIT returned).

pub mod kafka;
pub mod outbox;
pub mod process;
pub mod report;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use ordexa_relay::RelayConfig;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;

use crate::ladder::{self, Latency, QuietArgs};
use crate::procfs::{self, CpuSnapshot, CpuUsage, Group, Memory};
use outbox::{OutboxEvent, WriterResult};
use process::{RelayProcess, RelaySpec};

#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// postgres://… URL of a fresh, migrated database of this run's own (its outbox is emptied).
    #[arg(long)]
    database_url: String,
    /// host:port of Kafka.
    #[arg(long)]
    kafka_bootstrap: String,
    /// The run's own topic prefix, `bench<unique>.` (never the system's `ordexa.`).
    #[arg(long)]
    topic_prefix: String,
    /// The `ordexa` binary (release build) whose relay is measured.
    #[arg(long)]
    ordexa: PathBuf,
    /// Events in the backlog.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Orders the backlog's events belong to (events / orders each: created, revisions, then
    /// confirmed, shipped, delivered).
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// The relay's batch size (ORDEXA_RELAY_BATCH_SIZE), used by both ceilings too.
    #[arg(long, default_value_t = 1000)]
    batch_size: i64,
    /// The relay's batches in flight (ORDEXA_RELAY_BATCHES_IN_FLIGHT), used by the producer
    /// ceiling too.
    #[arg(long, default_value_t = 4)]
    batches_in_flight: usize,
    /// Rows the relay deletes between its VACUUMs of the outbox (ORDEXA_RELAY_VACUUM_EVERY; 0:
    /// never, autovacuum alone).
    #[arg(long, default_value_t = ordexa_relay::DEFAULT_VACUUM_EVERY)]
    vacuum_every: u64,
    /// Partitions of the topics (as `ordexa topics --partitions`).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Seconds of steady load.
    #[arg(long, default_value_t = 30.0)]
    steady_seconds: f64,
    /// The steady load's rate as a fraction of the drain rate.
    #[arg(long, default_value_t = 0.5)]
    steady_fraction: f64,
    /// The steady load's rate in events per second, in place of --steady-fraction: the same load
    /// whatever this run's drain reached, to compare runs with each other.
    #[arg(long)]
    steady_rate: Option<f64>,
    /// Connections of the steady-load writer.
    #[arg(long, default_value_t = 32)]
    writers: u32,
    /// How the writer makes its transactions. `statement` by default: the load is there to
    /// measure the relay, and one multi-row INSERT per transaction leaves it the most CPU
    /// (`explicit`, one INSERT per event, reached a third of the rate asked on 2 cores).
    #[arg(long, value_enum, default_value_t = outbox::WriterTransaction::Statement)]
    writer_transaction: outbox::WriterTransaction,
    /// Events each steady-load transaction commits, each of a different order: a number (1: one
    /// event per transaction, as the store's commands), or `auto`: the smallest number that keeps
    /// the writer's commits per second within --writer-commit-fraction of what it can commit
    /// (--writer-commit-rate if given, else the writer ceiling with the NOTIFY trigger and no
    /// relay waiting, measured just before the steady load).
    #[arg(long, default_value_t = EventsPerCommit::Auto)]
    writer_events_per_commit: EventsPerCommit,
    /// Commits per second the writer can make (one-event transactions, closed loop, NOTIFY trigger
    /// on, no relay waiting), for `--writer-events-per-commit auto` in place of the writer ceiling of this run.
    #[arg(long)]
    writer_commit_rate: Option<f64>,
    /// With `--writer-events-per-commit auto`: the most commits per second the steady writer is
    /// asked for, as a fraction of the commit rate it can make closed loop. The relay, stopped
    /// while that is measured, needs the machine too, and while it waits for rows commits notify
    /// and take turns, so an eighth by default.
    #[arg(long, default_value_t = 0.125)]
    writer_commit_fraction: f64,
    /// Most writer transactions waiting or running at once; one due beyond it is not attempted.
    #[arg(long, default_value_t = 256)]
    writer_max_in_flight: usize,
    /// Seconds of each closed-loop writer run (the write side's commit ceiling, with the
    /// outbox's NOTIFY trigger, a relay waiting or not, and without it, before the steady load); 0 skips them
    /// (`--writer-events-per-commit auto` then needs --writer-commit-rate).
    #[arg(long, default_value_t = 5.0)]
    writer_ceiling_seconds: f64,
    /// RUST_LOG of the relay under test.
    #[arg(long, default_value = "info")]
    relay_log: String,
    /// Rounds of drain, producer ceiling and SQL ceiling, one after the other; the report takes
    /// the median of each.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Messages sent to a warm-up topic in each warm-up pass before the drain, so that a Kafka
    /// broker started shortly before (a cold JVM) does not slow the first phase down; 0 skips it.
    #[arg(long, default_value_t = 100_000)]
    kafka_warmup_events: usize,
    /// Most warm-up passes. Passes go on until the broker's CPU per message in the last three
    /// passes is within 15 % (one pass when the broker's process id is not given).
    #[arg(long, default_value_t = 20)]
    kafka_warmup_passes: u32,
    /// Milliseconds between reads of the relay's /metrics while waiting for it.
    #[arg(long, default_value_t = 20)]
    poll_ms: u64,
    /// The PostgreSQL postmaster's process id: its and its backends' CPU use are recorded.
    #[arg(long)]
    pg_pid: Option<u32>,
    /// The Kafka broker's process id: its CPU use is recorded.
    #[arg(long)]
    kafka_pid: Option<u32>,
    /// Where the relay's log and process id file go.
    #[arg(long)]
    work_dir: PathBuf,
    /// Where to write the results as JSON.
    #[arg(long)]
    json: PathBuf,
    #[command(flatten)]
    quiet: QuietArgs,
}

/// How many events the steady writer commits per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsPerCommit {
    /// The smallest number that keeps the writer's commits per second within what it can commit.
    Auto,
    /// This many (1 to [`outbox::MAX_EVENTS_PER_COMMIT`]).
    Fixed(usize),
}

impl FromStr for EventsPerCommit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(EventsPerCommit::Auto);
        }
        let max = outbox::MAX_EVENTS_PER_COMMIT;
        match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(EventsPerCommit::Fixed(n)),
            _ => Err(format!("expected `auto` or a whole number from 1 to {max}, not `{s}`")),
        }
    }
}

impl fmt::Display for EventsPerCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventsPerCommit::Auto => f.write_str("auto"),
            EventsPerCommit::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// The smallest number of events per transaction that brings `event_rate` events per second
/// within `fraction` of `commit_rate` commits per second: ⌈event_rate / (fraction × commit_rate)⌉,
/// at least 1 and at most [`outbox::MAX_EVENTS_PER_COMMIT`].
pub(crate) fn auto_events_per_commit(event_rate: f64, commit_rate: f64, fraction: f64) -> Result<usize> {
    let budget = commit_rate * fraction;
    if !(event_rate.is_finite() && event_rate > 0.0 && budget.is_finite() && budget > 0.0) {
        bail!("choosing events per commit needs rates above 0, not {event_rate} events/s within {budget} commits/s");
    }
    // Rounding of the quotient must not make an exact fit (2400 events/s, 1200 commits/s: 2) one more.
    let n = (event_rate / budget * (1.0 - 1e-12)).ceil().max(1.0);
    Ok((n as usize).min(outbox::MAX_EVENTS_PER_COMMIT))
}

/// Events per transaction of the steady writer, and how they were chosen (for the report).
/// `measured` is the commit ceiling with the NOTIFY trigger and no relay waiting measured in this
/// run, if it was.
pub(crate) fn choose_events_per_commit(
    choice: EventsPerCommit,
    event_rate: f64,
    given_commit_rate: Option<f64>,
    measured: Option<f64>,
    fraction: f64,
) -> Result<(usize, String)> {
    if let EventsPerCommit::Fixed(n) = choice {
        return Ok((n, format!("given, --writer-events-per-commit {n}")));
    }
    let (commit_rate, source) = match (given_commit_rate, measured) {
        (Some(given), _) => (given, "given with --writer-commit-rate"),
        (None, Some(measured)) => (
            measured,
            "the commit ceiling below with the NOTIFY trigger and no relay waiting, measured just before this load",
        ),
        (None, None) => bail!("--writer-events-per-commit auto needs the writer ceiling or --writer-commit-rate"),
    };
    let n = auto_events_per_commit(event_rate, commit_rate, fraction)?;
    let mut basis = format!(
        "auto: the smallest N with {event_rate:.0}/N ≤ {:.0} commits/s, {:.0} % of the {commit_rate:.0} commits/s \
         the writer can make ({source})",
        fraction * commit_rate,
        fraction * 100.0
    );
    if n == outbox::MAX_EVENTS_PER_COMMIT && event_rate / n as f64 > fraction * commit_rate {
        basis.push_str(&format!("; capped at {n}"));
    }
    Ok((n, basis))
}

/// Removes the run's topics: `relay-cleanup`.
#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    #[arg(long)]
    kafka_bootstrap: String,
    /// Every topic starting with this prefix goes; it must be a benchmark's (`bench<unique>.`).
    #[arg(long)]
    topic_prefix: String,
}

pub fn cleanup(args: CleanupArgs) -> Result<()> {
    kafka::check_prefix(&args.topic_prefix)?;
    crate::load::runtime(1)?.block_on(async {
        let deleted = kafka::delete_topics(&args.kafka_bootstrap, &args.topic_prefix).await?;
        eprintln!("[relay] deleted {} topics: {}", deleted.len(), deleted.join(", "));
        Ok(())
    })
}

/// Throughput of one way of moving the backlog.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Throughput {
    pub events: u64,
    /// From the start (process start, connection, producer creation included) to the last
    /// event published or removed.
    pub seconds: f64,
    pub rate: f64,
    /// Transactions (SQL ceiling, relay) or batches awaited (producer ceiling).
    pub batches: u64,
    /// How long each batch took (the relay: its `ordexa_relay_batch_seconds`, claim to commit).
    pub batch_ms: Option<Latency>,
    /// CPU seconds of each process group over the window.
    pub cpu_s: BTreeMap<String, f64>,
    pub cpu: Option<CpuUsage>,
    /// How busy the machine was just before, with nothing under load (0–100 %).
    pub busy_before_pct: f64,
    /// Ceilings: seconds of set-up before the measured window (connection; the producer with
    /// its first message delivered), not part of `seconds`.
    pub setup_s: Option<f64>,
}

impl Throughput {
    /// Events per CPU-second of one group.
    pub fn events_per_cpu_s(&self, group: &str) -> Option<f64> {
        self.cpu_s.get(group).filter(|&&s| s > 0.0).map(|s| self.events as f64 / s)
    }
}

/// The relay draining the backlog.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Drain {
    pub throughput: Throughput,
    /// From the relay's start to its first published batch (`/metrics` resolution).
    pub first_batch_s: Option<f64>,
    /// Events per second from the first published batch on: timed as the ceilings are, whose
    /// set-up (connecting, a producer id) is not counted.
    #[serde(default)]
    pub rate_after_first_batch: Option<f64>,
    /// Events published in each second since the start.
    pub per_second: Vec<u64>,
    pub relay_rss_peak_kib: u64,
    pub relay_memory: Option<Memory>,
    /// The relay's own batch timing and counters at the end of the drain.
    pub relay_metrics: Vec<String>,
    /// Messages the topic gained, and rows left in the outbox, at the end.
    pub kafka_messages: i64,
    pub outbox_left: i64,
    /// How the relay exited when stopped (SIGTERM) after the drain.
    pub relay_exit: String,
}

/// The relay under steady load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Steady {
    pub writer: WriterResult,
    /// Kafka CreateTime minus commit time, over every committed event.
    pub latency: Option<Latency>,
    /// The smallest difference (may be below 0: see the report's clock note), ms.
    pub latency_min_ms: Option<f64>,
    /// Events whose CreateTime came before the writer's commit time (counted as 0 above).
    pub negative: u64,
    pub matched: u64,
    /// Committed events not found on the topic, messages found twice, and messages of
    /// events this writer did not commit.
    pub missing: u64,
    pub duplicates: u64,
    pub foreign: u64,
    /// From the schedule's end until the relay had published every committed event.
    pub catch_up_s: f64,
    /// CPU over the writer's schedule.
    pub window_s: f64,
    pub cpu_s: BTreeMap<String, f64>,
    pub cpu: Option<CpuUsage>,
    pub busy_before_pct: f64,
    pub relay_rss_peak_kib: u64,
    pub relay_memory: Option<Memory>,
    pub relay_exit: String,
    /// Batches the relay published during the schedule and catch-up.
    pub relay_batches: u64,
    /// How the writer's events per transaction were chosen.
    #[serde(default)]
    pub events_per_commit_basis: String,
    /// What the database's active sessions waited on, sampled through the schedule.
    pub wait_samples: u64,
    pub wait_events: BTreeMap<String, u64>,
    /// Second by second from the first commit: where in the run the latency came from.
    #[serde(default)]
    pub timeline: Vec<LoadSecond>,
}

/// One second of the steady load: the latency of the events committed in it, and PostgreSQL's
/// background work sampled in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSecond {
    /// Seconds from the first commit.
    pub second: u64,
    pub events: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Background samples taken in this second, and how many of them saw an autovacuum worker
    /// on the database or the checkpointer checkpointing.
    pub samples: u64,
    pub autovacuum: u64,
    pub checkpoint: u64,
    /// Sessions waiting on the WAL, on average over the samples.
    pub wal_waits: f64,
}

/// Buckets `latencies` (each event's commit time, µs since the epoch, and its CreateTime minus
/// that, µs) by the second of its commit counted from the first, and `background` samples into
/// the same seconds (samples before the first commit are left out).
fn timeline(latencies: &[(u64, i64)], background: &[outbox::Background]) -> Result<Vec<LoadSecond>> {
    let Some(origin) = latencies.iter().map(|(at, _)| *at).min() else { return Ok(Vec::new()) };
    let second_of = |at: u64| usize::try_from((at - origin) / 1_000_000).unwrap_or(usize::MAX);
    let seconds = latencies.iter().map(|(at, _)| second_of(*at)).max().unwrap_or(0) + 1;
    let mut hists = Vec::with_capacity(seconds);
    for _ in 0..seconds {
        hists.push(ladder::histogram()?);
    }
    for (at, delta_us) in latencies {
        ladder::record(&mut hists[second_of(*at)], u64::try_from((*delta_us).max(0)).unwrap_or(0));
    }
    let mut out: Vec<LoadSecond> = hists
        .iter()
        .enumerate()
        .map(|(second, hist)| {
            let latency = ladder::latency(hist);
            LoadSecond {
                second: second as u64,
                events: hist.len(),
                p50_ms: latency.as_ref().map_or(0.0, |l| l.p50_ms),
                p99_ms: latency.as_ref().map_or(0.0, |l| l.p99_ms),
                max_ms: latency.as_ref().map_or(0.0, |l| l.max_ms),
                ..LoadSecond::default()
            }
        })
        .collect();
    for sample in background.iter().filter(|b| b.at_us >= origin) {
        let Some(slot) = out.get_mut(second_of(sample.at_us)) else { continue };
        slot.samples += 1;
        slot.autovacuum += u64::from(sample.autovacuum);
        slot.checkpoint += u64::from(sample.checkpoint);
        slot.wal_waits += f64::from(sample.wal_waits);
    }
    for slot in out.iter_mut().filter(|s| s.samples > 0) {
        slot.wal_waits /= slot.samples as f64;
    }
    Ok(out)
}

/// The write side's commit ceiling for one-event transactions, closed loop.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WriterCeiling {
    /// The outbox's NOTIFY trigger enabled (as migrated) or disabled.
    pub notify: bool,
    /// A session held the relay's idle lock, as a relay waiting for rows does: every commit
    /// notifies (migration 0005). Without it, as while the relay is busy or stopped, none does.
    #[serde(default)]
    pub relay_waiting: bool,
    pub connections: u32,
    pub commits: u64,
    pub seconds: f64,
    pub rate: f64,
    pub commit_latency: Option<Latency>,
    pub cpu: Option<CpuUsage>,
    pub wait_samples: u64,
    pub wait_events: BTreeMap<String, u64>,
    /// Heavyweight locks on objects (`pg_locks.locktype = 'object'`) half-way through the run:
    /// `object, mode, granted: sessions`.
    pub object_locks: Vec<String>,
}

/// One whole run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RelayRun {
    pub settings: BTreeMap<String, String>,
    pub payload_bytes: (usize, f64, usize),
    pub backlog_load_s: f64,
    /// One per round, in the order they ran.
    pub drains: Vec<Drain>,
    /// Rounds run a second time because more than `DISTURBED_CORES` of other work disturbed them.
    pub repeated_rounds: Vec<u32>,
    pub producer_ceilings: Vec<Throughput>,
    pub sql_ceilings: Vec<Throughput>,
    pub steady: Steady,
    pub writer_ceilings: Vec<WriterCeiling>,
    /// The Kafka broker's CPU per message, µs, in each warm-up pass.
    #[serde(default)]
    pub kafka_warmup_us_per_message: Vec<f64>,
}

impl RelayRun {
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }

    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Sends the first `--kafka-warmup-events` rows to the warm-up topic, pass after pass, until the
/// broker's CPU per message of the last three passes is within 15 % ([`settled`]; a JVM started
/// shortly before compiles its hot paths over the first million messages or so: drains right
/// after a broker's start spent 9.2–9.7 µs of Kafka CPU per event, 1.9–3.1 once it had run a
/// while). Returns each pass's CPU per message, µs.
async fn warm_kafka_up(args: &RelayArgs, backlog: &[OutboxEvent], prefix: &str) -> Result<Vec<f64>> {
    let rows = &backlog[..args.kafka_warmup_events.min(backlog.len())];
    let config = relay_config(args, prefix);
    let (producer, _) = kafka::ready_producer(&config).await?;
    let batch = usize::try_from(args.batch_size).unwrap_or(1);
    let groups = groups(args, None);
    let mut passes: Vec<f64> = Vec::new();
    for pass in 1..=args.kafka_warmup_passes.max(1) {
        let before = CpuSnapshot::take(&groups);
        kafka::produce_from_memory(&producer, &config.topic(), rows, batch, args.batches_in_flight).await?;
        let Some(kafka_s) = before.cpu_seconds_until(&CpuSnapshot::take(&groups)).get("kafka").copied() else {
            eprintln!("[relay] warmed Kafka up with {} messages (its CPU is not recorded)", rows.len());
            break;
        };
        let per_message = kafka_s * 1e6 / rows.len() as f64;
        eprintln!("[relay] Kafka warm-up pass {pass}: {} messages, {per_message:.1} µs of broker CPU each", rows.len());
        passes.push(per_message);
        if settled(&passes) {
            break;
        }
    }
    Ok(passes)
}

/// Whether the last three warm-up passes cost within 15 % of each other per message: neither
/// still falling (a freshly started broker went 13.5, 10.5, 7.1, 6.5 µs per message and still
/// spent 7.2 in the drain that followed, against 1.9–3.1 warm) nor rising. A broker started 16 s
/// before a run went 7.5, 2.5, 3.3, 4.0 (its JIT compiling on its own threads, counted as the
/// broker's CPU); a rule that only asked each pass not to fall by 10 % stopped there, and the
/// drains that followed cost Kafka 7.1 µs per event.
fn settled(passes: &[f64]) -> bool {
    let Some(last) = passes.len().checked_sub(3).map(|from| &passes[from..]) else { return false };
    let (low, high) = last.iter().fold((f64::INFINITY, 0.0_f64), |(low, high), &p| (low.min(p), high.max(p)));
    high <= 1.15 * low
}

/// Process groups whose CPU is recorded, without the relay when `relay` is `None`.
fn groups(args: &RelayArgs, relay: Option<u32>) -> Vec<Group> {
    let mut groups = vec![Group { name: "bench".into(), pid: std::process::id(), with_children: false }];
    if let Some(pid) = relay {
        groups.push(Group { name: "relay".into(), pid, with_children: false });
    }
    if let Some(pid) = args.pg_pid {
        groups.push(Group { name: "postgres".into(), pid, with_children: true });
    }
    if let Some(pid) = args.kafka_pid {
        groups.push(Group { name: "kafka".into(), pid, with_children: false });
    }
    groups
}

async fn quiet(args: &RelayArgs, what: &str) -> f64 {
    eprintln!("[relay] {what}: waiting for a quiet machine");
    let quiet = args.quiet;
    tokio::task::spawn_blocking(move || quiet.wait()).await.unwrap_or(100.0)
}

fn relay_config(args: &RelayArgs, prefix: &str) -> RelayConfig {
    RelayConfig {
        database_url: args.database_url.clone(),
        kafka_bootstrap: args.kafka_bootstrap.clone(),
        topic_prefix: prefix.to_owned(),
        batch_size: args.batch_size,
        poll_interval: Duration::from_secs(1),
        batches_in_flight: args.batches_in_flight,
        vacuum_every: args.vacuum_every,
    }
}

/// Events per second between the first sample that saw a batch published and `seconds`, when
/// all `events` were: the drain without the relay's start-up.
pub(crate) fn rate_after_first_batch(samples: &[(f64, u64)], events: u64, seconds: f64) -> Option<f64> {
    let &(at, published) = samples.iter().find(|s| s.1 > 0)?;
    (seconds > at && events > published).then(|| (events - published) as f64 / (seconds - at))
}

/// Events per second from cumulative `(seconds, published)` samples.
pub(crate) fn per_second(samples: &[(f64, u64)]) -> Vec<u64> {
    let Some(&(end, _)) = samples.last() else { return Vec::new() };
    let at = |t: f64| samples.iter().take_while(|s| s.0 <= t).last().map(|s| s.1).unwrap_or(0);
    (0..end.ceil() as u32).map(|s| at(f64::from(s + 1)).saturating_sub(at(f64::from(s)))).collect()
}

pub fn run(args: RelayArgs) -> Result<()> {
    kafka::check_prefix(&args.topic_prefix)?;
    if args.orders == 0
        || args.events < args.orders
        || args.batch_size < 1
        || args.batches_in_flight < 1
        || args.steady_fraction <= 0.0
        || args.steady_rate.is_some_and(|r| !(r > 0.0 && r.is_finite()))
    {
        bail!(
            "--events must be at least --orders (above 0), --batch-size, --steady-fraction and --steady-rate above 0"
        );
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if args.writer_commit_rate.is_some_and(|r| !(r.is_finite() && r > 0.0))
        || !(args.writer_commit_fraction > 0.0 && args.writer_commit_fraction <= 1.0)
    {
        bail!("--writer-commit-rate must be above 0, --writer-commit-fraction above 0 and at most 1");
    }
    if args.writer_events_per_commit == EventsPerCommit::Auto
        && args.writer_ceiling_seconds <= 0.0
        && args.writer_commit_rate.is_none()
    {
        bail!(
            "--writer-events-per-commit auto takes the writer's commit rate from the writer ceiling, which \
             --writer-ceiling-seconds 0 skips: give --writer-commit-rate, or a number of events per commit"
        );
    }
    std::fs::create_dir_all(&args.work_dir)?;
    crate::load::runtime(2)?.block_on(run_async(args))
}

/// What every phase shares.
struct Ctx {
    args: RelayArgs,
    backlog: Arc<Vec<OutboxEvent>>,
    events_per_order: usize,
    pool: sqlx::PgPool,
    topic: String,
    ceiling: RelayConfig,
}

impl Ctx {
    fn spec(&self, name: &str) -> RelaySpec {
        RelaySpec {
            ordexa: self.args.ordexa.clone(),
            database_url: self.args.database_url.clone(),
            kafka_bootstrap: self.args.kafka_bootstrap.clone(),
            topic_prefix: self.args.topic_prefix.clone(),
            batch_size: self.args.batch_size,
            batches_in_flight: self.args.batches_in_flight,
            vacuum_every: self.args.vacuum_every,
            rust_log: self.args.relay_log.clone(),
            log: self.args.work_dir.join(format!("relay-{name}.log")),
            pid_file: self.args.work_dir.join("relay.pid"),
        }
    }

    fn events(&self) -> u64 {
        self.backlog.len() as u64
    }
}

async fn run_async(args: RelayArgs) -> Result<()> {
    let events_per_order = args.events.div_ceil(args.orders);
    eprintln!("[relay] generating {} events: {} orders × {events_per_order}", args.events, args.orders);
    let mut backlog = outbox::order_lives(args.orders, events_per_order, 0)?;
    backlog.truncate(args.events);
    let backlog = Arc::new(backlog);
    let mut run = RelayRun { payload_bytes: outbox::payload_sizes(&backlog), ..RelayRun::default() };
    settings(&args, events_per_order, &mut run.settings);

    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&args.database_url).await?;
    // Every topic now: a topic made just before it is used makes its first producer wait for
    // the partition leaders, which would be charged to whoever comes first.
    let ceiling_prefix = format!("{}ceiling.", args.topic_prefix);
    let warmup_prefix = format!("{}warmup.", args.topic_prefix);
    for prefix in [&args.topic_prefix, &ceiling_prefix, &warmup_prefix] {
        ordexa_relay::topics::ensure_topics(&args.kafka_bootstrap, prefix, args.partitions, 1).await?;
    }
    if args.kafka_warmup_events > 0 {
        run.kafka_warmup_us_per_message = warm_kafka_up(&args, &backlog, &warmup_prefix).await?;
    }
    let ctx = Ctx {
        topic: ordexa_domain::topic_name(&args.topic_prefix),
        ceiling: relay_config(&args, &ceiling_prefix),
        args,
        backlog,
        events_per_order,
        pool,
    };

    // --- 1. rounds: the relay draining the backlog, then each ceiling ------------------------
    for round in 1..=ctx.args.rounds {
        eprintln!("[relay] round {round} of {}", ctx.args.rounds);
        let mut measured = one_round(&ctx, round).await?;
        let windows = [&measured.1.throughput, &measured.2, &measured.3];
        let other = windows.iter().filter_map(|t| t.cpu.as_ref()).map(CpuUsage::other_cores).fold(0.0, f64::max);
        if other > ladder::DISTURBED_CORES {
            eprintln!("[relay] round {round} was disturbed by {other:.2} cores of other work; repeating it once");
            measured = one_round(&ctx, round).await?;
            run.repeated_rounds.push(round);
        }
        let (load_s, drain, producer, sql) = measured;
        run.backlog_load_s = load_s;
        run.drains.push(drain);
        run.producer_ceilings.push(producer);
        run.sql_ceilings.push(sql);
    }

    // --- 2. the write side's commit ceiling: notifying, not notifying, no trigger --------------
    if ctx.args.writer_ceiling_seconds > 0.0 {
        run.writer_ceilings = writer_ceilings(&ctx).await?;
    }

    // --- 3. steady load at a fraction of the median drain rate ---------------------------------
    let median_rate = median(&run.drains.iter().map(|d| d.throughput.rate).collect::<Vec<_>>());
    let rate = ctx.args.steady_rate.unwrap_or(median_rate * ctx.args.steady_fraction);
    let measured = run.writer_ceilings.iter().find(|c| c.notify && !c.relay_waiting).map(|c| c.rate);
    let (events_per_commit, basis) = choose_events_per_commit(
        ctx.args.writer_events_per_commit,
        rate,
        ctx.args.writer_commit_rate,
        measured,
        ctx.args.writer_commit_fraction,
    )?;
    eprintln!("[relay] steady writer: {events_per_commit} events per transaction ({basis})");
    run.settings.insert("steady writer, events per transaction".to_owned(), format!("{events_per_commit} ({basis})"));
    run.steady = steady(&ctx, rate, events_per_commit).await?;
    run.steady.events_per_commit_basis = basis;

    ctx.pool.close().await;
    run.save(&ctx.args.json)?;
    Ok(())
}

/// One drain and one of each ceiling: (backlog COPY seconds, drain, producer, SQL).
async fn one_round(ctx: &Ctx, round: u32) -> Result<(f64, Drain, Throughput, Throughput)> {
    let (drain, load_s) = drain(ctx, round).await?;
    let producer = producer_ceiling(ctx).await?;
    let sql = sql_ceiling(ctx).await?;
    Ok((load_s, drain, producer, sql))
}

/// The middle value (the lower middle of an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

/// Loads the backlog, starts a relay, measures it until it has published every row, stops it.
async fn drain(ctx: &Ctx, round: u32) -> Result<(Drain, f64)> {
    let args = &ctx.args;
    eprintln!("[relay] loading the backlog");
    let load_s = outbox::load_backlog(&args.database_url, &ctx.backlog).await?;
    let spec = ctx.spec(&format!("drain-{round}"));
    let busy_before = quiet(args, "drain").await;
    let watermarks_before = kafka::high_watermarks(&args.kafka_bootstrap, &ctx.topic)?;
    let cpu_before = CpuSnapshot::take(&groups(args, None));
    let started = Instant::now();
    let mut relay = RelayProcess::start(&spec)?;
    let relay_pid = relay.pid();
    let sampler = procfs::RssSampler::start(relay_pid, Duration::from_millis(100));
    let mut samples = Vec::new();
    let poll = Duration::from_millis(args.poll_ms);
    let waited = relay.wait_published(ctx.events(), started, poll, Duration::from_secs(600), &mut samples).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = CpuSnapshot::take(&groups(args, Some(relay_pid)));
    if let Err(err) = waited {
        return Err(err.context(format!("relay log tail:\n{}", process::log_tail(&spec.log, 20))));
    }
    let metrics = relay.metrics().await.unwrap_or_default();
    let watermarks_after = kafka::high_watermarks(&args.kafka_bootstrap, &ctx.topic)?;
    let relay_memory = procfs::memory(relay_pid);
    let relay_exit = stop(relay);
    let drain = Drain {
        throughput: Throughput {
            events: ctx.events(),
            seconds,
            rate: ctx.events() as f64 / seconds,
            batches: process::metric(&metrics, "ordexa_relay_batch_seconds_count").unwrap_or(0.0) as u64,
            batch_ms: relay_batch_ms(&metrics),
            cpu_s: cpu_before.cpu_seconds_until(&cpu_after),
            cpu: Some(cpu_before.usage_until(&cpu_after)),
            busy_before_pct: busy_before,
            setup_s: None,
        },
        first_batch_s: samples.iter().find(|s| s.1 > 0).map(|s| s.0),
        rate_after_first_batch: rate_after_first_batch(&samples, ctx.events(), seconds),
        per_second: per_second(&samples),
        relay_rss_peak_kib: sampler.peak_kib(),
        relay_memory,
        relay_metrics: [
            "ordexa_relay_batch_seconds",
            "ordexa_relay_published_total",
            "ordexa_relay_publish_errors_total",
        ]
        .iter()
        .flat_map(|name| process::metric_lines(&metrics, name))
        .collect(),
        kafka_messages: kafka::total(&watermarks_after) - kafka::total(&watermarks_before),
        outbox_left: outbox::outbox_rows(&ctx.pool).await?,
        relay_exit,
    };
    let t = &drain.throughput;
    eprintln!(
        "[relay] drained {} events in {:.2} s: {:.0} events/s, {:.0} events per relay CPU-second",
        t.events,
        t.seconds,
        t.rate,
        t.events_per_cpu_s("relay").unwrap_or(0.0)
    );
    if drain.kafka_messages != ctx.events() as i64 || drain.outbox_left != 0 {
        bail!(
            "the topic gained {} messages for {} rows, and {} rows were left in the outbox",
            drain.kafka_messages,
            ctx.events(),
            drain.outbox_left
        );
    }
    Ok((drain, load_s))
}

/// Stops a relay and says how it exited.
fn stop(relay: RelayProcess) -> String {
    let exit = match relay.stop(Duration::from_secs(15)) {
        Ok(status) => status.to_string(),
        Err(err) => format!("{err:#}"),
    };
    eprintln!("[relay] relay stopped: {exit}");
    exit
}

/// The relay's producer sending the backlog's messages from memory.
async fn producer_ceiling(ctx: &Ctx) -> Result<Throughput> {
    let args = &ctx.args;
    let topic = ctx.ceiling.topic();
    let busy_before = quiet(args, "producer ceiling").await;
    let watermarks_before = kafka::high_watermarks(&args.kafka_bootstrap, &topic)?;
    let batch = usize::try_from(args.batch_size).unwrap_or(1);
    let (producer, setup) = kafka::ready_producer(&ctx.ceiling).await?;
    let mut ceiling = measure(
        args,
        busy_before,
        ctx.events(),
        kafka::produce_from_memory(&producer, &topic, &ctx.backlog, batch, args.batches_in_flight),
    )
    .await?;
    ceiling.setup_s = Some(setup.as_secs_f64());
    drop(producer);
    let gained =
        kafka::total(&kafka::high_watermarks(&args.kafka_bootstrap, &topic)?) - kafka::total(&watermarks_before);
    if gained != ctx.events() as i64 {
        bail!("the producer ceiling's topic gained {gained} messages, not {}", ctx.events());
    }
    eprintln!("[relay] producer ceiling: {:.0} events/s", ceiling.rate);
    Ok(ceiling)
}

/// The relay's claim-and-remove SQL alone, on the backlog loaded afresh.
async fn sql_ceiling(ctx: &Ctx) -> Result<Throughput> {
    let args = &ctx.args;
    eprintln!("[relay] loading the backlog");
    outbox::load_backlog(&args.database_url, &ctx.backlog).await?;
    let busy_before = quiet(args, "SQL ceiling").await;
    let connecting = Instant::now();
    let mut conn = sqlx::PgConnection::connect(&args.database_url).await.context("connecting for the SQL ceiling")?;
    let deleter =
        sqlx::PgConnection::connect(&args.database_url).await.context("connecting the SQL ceiling's deleter")?;
    let setup = connecting.elapsed();
    let mut ceiling = measure(args, busy_before, ctx.events(), async {
        let (removed, batches) =
            outbox::claim_and_remove(&mut conn, deleter, args.batch_size, args.batches_in_flight).await?;
        if removed != ctx.events() {
            bail!("the SQL ceiling removed {removed} rows, not {}", ctx.events());
        }
        Ok(batches)
    })
    .await?;
    ceiling.setup_s = Some(setup.as_secs_f64());
    conn.close().await?;
    eprintln!("[relay] SQL ceiling: {:.0} events/s", ceiling.rate);
    Ok(ceiling)
}

/// The relay's count of batches published (and deleted).
const BATCHES: &str = "ordexa_relay_batch_seconds_count";

/// A relay under an open-loop writer at `rate` events per second in transactions of
/// `events_per_commit` events, and every committed event's way to Kafka.
async fn steady(ctx: &Ctx, rate: f64, events_per_commit: usize) -> Result<Steady> {
    let args = &ctx.args;
    let commit_rate = rate / events_per_commit as f64;
    let transactions = ((commit_rate * args.steady_seconds).round() as usize).max(1);
    let count = transactions * events_per_commit;
    eprintln!(
        "[relay] steady load: {count} events at {rate:.0}/s, {events_per_commit} per transaction \
         ({transactions} transactions at {commit_rate:.0}/s)"
    );
    let per_order = ctx.events_per_order;
    // At least as many orders as events in a transaction, so that each of its events is of a
    // different order (consecutive rows are).
    let orders = count.div_ceil(per_order).max(events_per_commit);
    let mut rows = outbox::order_lives(orders, per_order, args.orders)?;
    rows.truncate(count);
    let rows = Arc::new(rows);
    let writers = outbox::writer_pool(&args.database_url, args.writers).await?;
    let first = rows.get(..events_per_commit).context("fewer steady-load rows than one transaction's")?;
    outbox::warm_writers(&writers, first, args.writer_transaction).await?;
    let spec = ctx.spec("steady");
    let mut relay = RelayProcess::start(&spec)?;
    let relay_pid = relay.pid();
    relay.wait_leading(Duration::from_secs(30)).await?;
    let busy_before = quiet(args, "steady load").await;
    relay.check_alive()?;
    let from = kafka::high_watermarks(&args.kafka_bootstrap, &ctx.topic)?;
    let published_before = relay.published().await.context("the relay's /metrics does not answer")?;
    // Before its first batch the relay has no such line: none published yet.
    let batches_before = relay.metrics().await.map(|m| process::metric(&m, BATCHES).unwrap_or(0.0));
    let waits = outbox::WaitSampler::start(&args.database_url, Duration::from_millis(50)).await?;
    let window = Duration::from_secs_f64(count as f64 / rate);
    let sampler = procfs::RssSampler::start(relay_pid, Duration::from_millis(100));
    let cpu_groups = groups(args, Some(relay_pid));
    let cpu_window = tokio::spawn(async move {
        let before = CpuSnapshot::take(&cpu_groups);
        tokio::time::sleep(window).await;
        let after = CpuSnapshot::take(&cpu_groups);
        (before.cpu_seconds_until(&after), before.usage_until(&after))
    });
    let (writer, commits) = outbox::open_loop_writer(
        &writers,
        rows,
        rate,
        events_per_commit,
        args.writer_transaction,
        args.writer_max_in_flight,
    )
    .await?;
    let schedule_end = Instant::now();
    let (cpu_s, cpu) = cpu_window.await.context("the CPU sampler")?;
    let (wait_samples, wait_events, background) = waits.finish();
    writers.close().await;
    let mut catch_up = Vec::new();
    let poll = Duration::from_millis(args.poll_ms);
    let target = published_before + writer.events_committed();
    relay.wait_published(target, schedule_end, poll, Duration::from_secs(120), &mut catch_up).await?;
    let to = kafka::high_watermarks(&args.kafka_bootstrap, &ctx.topic)?;
    let batches_after = relay.metrics().await.and_then(|m| process::metric(&m, BATCHES));
    let relay_rss_peak_kib = sampler.peak_kib();
    drop(sampler);
    let relay_memory = procfs::memory(relay_pid);
    let relay_exit = stop(relay);
    eprintln!(
        "[relay] writer: {} of {} transactions committed ({} events, {:.0} events/s in {:.0} commits/s); reading {} \
         messages back",
        writer.committed,
        writer.scheduled,
        writer.events_committed(),
        writer.achieved_rate,
        writer.commit_rate(),
        kafka::total(&to) - kafka::total(&from)
    );
    let published = kafka::read_range(&args.kafka_bootstrap, &ctx.topic, &from, &to).await?;
    let (mut steady, latencies) = steady_latency(&commits, &published)?;
    steady.timeline = timeline(&latencies, &background)?;
    steady.writer = writer;
    steady.catch_up_s = catch_up.last().map(|s| s.0).unwrap_or(0.0);
    steady.window_s = window.as_secs_f64();
    steady.cpu_s = cpu_s;
    steady.cpu = Some(cpu);
    steady.busy_before_pct = busy_before;
    steady.relay_rss_peak_kib = relay_rss_peak_kib;
    steady.relay_memory = relay_memory;
    steady.relay_exit = relay_exit;
    steady.relay_batches = match (batches_before, batches_after) {
        (Some(before), Some(after)) => (after - before) as u64,
        _ => 0,
    };
    steady.wait_samples = wait_samples;
    steady.wait_events = wait_events;
    if let Some(l) = &steady.latency {
        eprintln!(
            "[relay] CreateTime − commit: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    Ok(steady)
}

/// How a writer ceiling was measured, for logs and the report.
pub(crate) fn writer_case(notify: bool, relay_waiting: bool) -> &'static str {
    match (notify, relay_waiting) {
        (true, true) => "NOTIFY trigger on, a relay waiting: every commit notifies",
        (true, false) => "NOTIFY trigger on, no relay waiting (as while it publishes): no commit notifies",
        (false, _) => "trigger off",
    }
}

/// One-event transactions closed loop: with the outbox's NOTIFY trigger while a relay waits (every
/// commit notifies), with it while no relay waits (as under load: none notifies), then without
/// the trigger. The second is the commit rate the steady load's `auto` events per commit is
/// chosen from.
async fn writer_ceilings(ctx: &Ctx) -> Result<Vec<WriterCeiling>> {
    let args = &ctx.args;
    let per_run = 60_000usize;
    let per_order = ctx.events_per_order;
    let cases = [(true, true), (true, false), (false, false)];
    let rows = outbox::order_lives((cases.len() * per_run).div_ceil(per_order), per_order, 2 * args.orders)?;
    let writers = outbox::writer_pool(&args.database_url, args.writers).await?;
    // So that the first case does not start on colder sessions than the others.
    outbox::warm_writers(&writers, rows.get(..1).context("no rows for the writer ceilings")?, args.writer_transaction)
        .await?;
    let mut ceilings = Vec::new();
    for (i, (notify, relay_waiting)) in cases.into_iter().enumerate() {
        let part = Arc::new(rows.iter().skip(i * per_run).take(per_run).cloned().collect::<Vec<_>>());
        let toggle = if notify { "ENABLE" } else { "DISABLE" };
        sqlx::query(sqlx::AssertSqlSafe(format!("ALTER TABLE outbox {toggle} TRIGGER outbox_notify")))
            .execute(&ctx.pool)
            .await?;
        let what = writer_case(notify, relay_waiting);
        quiet(args, &format!("writer ceiling ({what})")).await;
        // The idle lock, held as a waiting relay holds it, on a session of its own.
        let mut waiting = match relay_waiting {
            true => {
                let mut conn = PgConnection::connect(&args.database_url).await?;
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(ordexa_relay::IDLE_LOCK_KEY)
                    .fetch_one(&mut conn)
                    .await?;
                ensure!(got, "the relay's idle lock is held by another session");
                Some(conn)
            }
            false => None,
        };
        let groups = groups(args, None);
        let before = CpuSnapshot::take(&groups);
        let waits = outbox::WaitSampler::start(&args.database_url, Duration::from_millis(50)).await?;
        let (locks_pool, half) = (ctx.pool.clone(), Duration::from_secs_f64(args.writer_ceiling_seconds / 2.0));
        let locks = tokio::spawn(async move {
            tokio::time::sleep(half).await;
            outbox::object_locks(&locks_pool).await
        });
        let (commits, seconds, commit_latency) =
            outbox::closed_loop_writer(&writers, part, args.writer_ceiling_seconds, args.writer_transaction).await?;
        let (wait_samples, wait_events, _) = waits.finish();
        let object_locks = locks.await.context("the lock sampler")??;
        let cpu = before.usage_until(&CpuSnapshot::take(&groups));
        if let Some(conn) = waiting.take() {
            conn.close().await?;
        }
        let ceiling = WriterCeiling {
            notify,
            relay_waiting,
            connections: args.writers,
            commits,
            seconds,
            rate: commits as f64 / seconds,
            commit_latency,
            cpu: Some(cpu),
            wait_samples,
            wait_events,
            object_locks,
        };
        eprintln!("[relay] writer ceiling, {what}: {:.0} commits/s", ceiling.rate);
        ceilings.push(ceiling);
    }
    sqlx::query("ALTER TABLE outbox ENABLE TRIGGER outbox_notify").execute(&ctx.pool).await?;
    sqlx::query("TRUNCATE outbox").execute(&ctx.pool).await?;
    // The steady load comes next: it starts, as the drains do, from a checkpointed database
    // rather than inheriting the flush of these runs' WAL.
    sqlx::query("CHECKPOINT").execute(&ctx.pool).await?;
    writers.close().await;
    Ok(ceilings)
}

/// Runs `work` (which returns how long each of its batches took) and measures it as moving
/// `events` events.
async fn measure(
    args: &RelayArgs,
    busy_before_pct: f64,
    events: u64,
    work: impl std::future::Future<Output = Result<Vec<Duration>>>,
) -> Result<Throughput> {
    let groups = groups(args, None);
    let before = CpuSnapshot::take(&groups);
    let started = Instant::now();
    let batches = work.await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = CpuSnapshot::take(&groups);
    let mut hist = ladder::histogram()?;
    for batch in &batches {
        ladder::record(&mut hist, u64::try_from(batch.as_micros()).unwrap_or(u64::MAX));
    }
    Ok(Throughput {
        events,
        seconds,
        rate: events as f64 / seconds,
        batches: batches.len() as u64,
        batch_ms: ladder::latency(&hist),
        cpu_s: before.cpu_seconds_until(&after),
        cpu: Some(before.usage_until(&after)),
        busy_before_pct,
        setup_s: None,
    })
}

/// The relay's batch durations from its `ordexa_relay_batch_seconds` summary.
fn relay_batch_ms(metrics: &str) -> Option<Latency> {
    crate::e2e::process::summary_ms(metrics, "ordexa_relay_batch_seconds")
}

/// Matches what was read back against the writer's commit times.
/// Every committed event's latency (its first copy's) and, for [`timeline`], each one's commit time
/// and latency in µs.
fn steady_latency(commits: &outbox::CommitTimes, published: &[kafka::Published]) -> Result<(Steady, Vec<(u64, i64)>)> {
    let mut hist = ladder::histogram()?;
    let mut latencies = Vec::with_capacity(commits.len());
    let mut seen = std::collections::HashSet::with_capacity(commits.len());
    let mut steady = Steady::default();
    let mut min_us: Option<i64> = None;
    for message in published {
        let (Some(event_id), Some(ts)) = (message.event_id, message.timestamp_ms) else {
            steady.foreign += 1;
            continue;
        };
        let Some(&committed_us) = commits.get(&event_id) else {
            steady.foreign += 1;
            continue;
        };
        if !seen.insert(event_id) {
            steady.duplicates += 1;
            continue;
        }
        steady.matched += 1;
        let delta_us = ts * 1000 - i64::try_from(committed_us).unwrap_or(i64::MAX);
        min_us = Some(min_us.map_or(delta_us, |m| m.min(delta_us)));
        if delta_us < 0 {
            steady.negative += 1;
        }
        ladder::record(&mut hist, u64::try_from(delta_us.max(0)).unwrap_or(0));
        latencies.push((committed_us, delta_us));
    }
    steady.missing = (commits.len() - seen.len()) as u64;
    steady.latency = ladder::latency(&hist);
    steady.latency_min_ms = min_us.map(|us| us as f64 / 1000.0);
    Ok((steady, latencies))
}

fn settings(args: &RelayArgs, events_per_order: usize, out: &mut BTreeMap<String, String>) {
    let mut set = |k: &str, v: String| {
        out.insert(k.to_owned(), v);
    };
    set(
        "backlog",
        format!(
            "{} outbox rows of {} orders ({events_per_order} events each: order.created, revisions while PENDING, \
             then confirmed, shipped, delivered; real ordexa_domain events), one COPY, then VACUUM ANALYZE and \
             CHECKPOINT",
            args.events, args.orders
        ),
    );
    set("relay batch size (ORDEXA_RELAY_BATCH_SIZE)", args.batch_size.to_string());
    set("relay batches in flight (ORDEXA_RELAY_BATCHES_IN_FLIGHT)", args.batches_in_flight.to_string());
    set("relay vacuums the outbox every (ORDEXA_RELAY_VACUUM_EVERY)", format!("{} rows deleted", args.vacuum_every));
    set("rounds", format!("{} × (drain, producer ceiling, SQL ceiling); medians reported", args.rounds));
    set("relay RUST_LOG", args.relay_log.clone());
    set("relay poll interval", "1 s (default)".to_owned());
    set("topic partitions", format!("{} (replication factor 1)", args.partitions));
    set(
        "producer (ordexa_relay::producer)",
        "acks=all, enable.idempotence, enable.gapless.guarantee, lz4, linger.ms=2, batch.num.messages=10000, \
         murmur2_random"
            .to_owned(),
    );
    let transaction = match args.writer_transaction {
        outbox::WriterTransaction::Explicit => "BEGIN; the store's outbox INSERT once per event; COMMIT",
        outbox::WriterTransaction::Statement => {
            "the store's outbox INSERT with one VALUES row per event, committed by itself"
        }
    };
    let per_commit = match args.writer_events_per_commit {
        EventsPerCommit::Auto => format!(
            "N events per transaction (N auto: commits/s at most {:.0} % of what the writer can commit)",
            args.writer_commit_fraction * 100.0
        ),
        EventsPerCommit::Fixed(1) => "one event per transaction".to_owned(),
        EventsPerCommit::Fixed(n) => format!("{n} events per transaction"),
    };
    set(
        "steady load",
        format!(
            "{} for {} s, fixed-interval open-loop schedule of transactions, \
             {per_commit}, each event of a different order ({transaction}) over {} connections (each first \
             wrote one transaction and rolled it back), at most {} transactions in flight",
            match args.steady_rate {
                Some(rate) => format!("{rate:.0} events/s (given, --steady-rate)"),
                None => format!("{:.0} % of the drain rate (in events/s)", args.steady_fraction * 100.0),
            },
            args.steady_seconds,
            args.writers,
            args.writer_max_in_flight
        ),
    );
    set(
        "Kafka warm-up before the drain",
        format!(
            "passes of {} messages to a topic of their own until the broker's CPU per message in the last three \
             passes is within 15 %, at most {}",
            args.kafka_warmup_events, args.kafka_warmup_passes
        ),
    );
    set(
        "end of drain detected by",
        format!("the relay's ordexa_relay_published_total, read every {} ms", args.poll_ms),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.0);
        assert_eq!(median(&[5.0]), 5.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn events_per_commit_is_auto_or_a_number_in_range() {
        assert_eq!("auto".parse::<EventsPerCommit>(), Ok(EventsPerCommit::Auto));
        assert_eq!("1".parse::<EventsPerCommit>(), Ok(EventsPerCommit::Fixed(1)));
        assert_eq!("25".parse::<EventsPerCommit>(), Ok(EventsPerCommit::Fixed(25)));
        for bad in ["0", "-3", "2.5", "", "many", "1001"] {
            assert!(bad.parse::<EventsPerCommit>().is_err(), "{bad}");
        }
        assert_eq!(EventsPerCommit::Auto.to_string(), "auto");
        assert_eq!(EventsPerCommit::Fixed(7).to_string(), "7");
    }

    #[test]
    fn auto_takes_the_smallest_n_whose_commits_fit() -> Result<()> {
        // The 2026-11-26 run: 33588 events/s asked, 2629 commits/s closed loop; half of that is
        // 1314.5 commits/s, so 25 events per commit is 1343/s (too many), 26 is 1292/s.
        assert_eq!(auto_events_per_commit(33_588.0, 2629.0, 0.5)?, 26);
        // An exact fit needs no extra event.
        assert_eq!(auto_events_per_commit(2400.0, 2400.0, 0.5)?, 2);
        assert_eq!(auto_events_per_commit(3600.0, 2400.0, 0.5)?, 3);
        // A rate the writer commits one event at a time.
        assert_eq!(auto_events_per_commit(800.0, 2400.0, 0.5)?, 1);
        assert_eq!(auto_events_per_commit(1200.0, 2400.0, 0.5)?, 1);
        // Never beyond what one transaction may hold.
        assert_eq!(auto_events_per_commit(1e9, 10.0, 0.5)?, outbox::MAX_EVENTS_PER_COMMIT);
        assert!(auto_events_per_commit(1000.0, 0.0, 0.5).is_err());
        assert!(auto_events_per_commit(0.0, 2400.0, 0.5).is_err());
        assert!(auto_events_per_commit(f64::NAN, 2400.0, 0.5).is_err());
        Ok(())
    }

    #[test]
    fn the_commit_rate_auto_uses_is_given_or_measured() -> Result<()> {
        let (n, basis) = choose_events_per_commit(EventsPerCommit::Fixed(1), 33_588.0, None, Some(2629.0), 0.5)?;
        assert_eq!((n, basis.as_str()), (1, "given, --writer-events-per-commit 1"));
        let (n, basis) = choose_events_per_commit(EventsPerCommit::Auto, 33_588.0, None, Some(2629.0), 0.5)?;
        assert_eq!(n, 26);
        assert!(basis.starts_with("auto: the smallest N with 33588/N ≤ "), "{basis}");
        assert!(basis.contains("commits/s, 50 % of the 2629 commits/s the writer can make"), "{basis}");
        assert!(basis.contains("measured just before this load"), "{basis}");
        // A given commit rate wins over the measured one.
        let (n, basis) = choose_events_per_commit(EventsPerCommit::Auto, 33_588.0, Some(4000.0), Some(2629.0), 0.5)?;
        assert_eq!(n, 17);
        assert!(basis.contains("4000 commits/s the writer can make (given with --writer-commit-rate)"), "{basis}");
        let (n, basis) = choose_events_per_commit(EventsPerCommit::Auto, 1e9, None, Some(10.0), 0.5)?;
        assert_eq!(n, outbox::MAX_EVENTS_PER_COMMIT);
        assert!(basis.ends_with("; capped at 1000"), "{basis}");
        assert!(choose_events_per_commit(EventsPerCommit::Auto, 33_588.0, None, None, 0.5).is_err());
        Ok(())
    }

    #[test]
    fn the_rate_after_the_first_batch_leaves_the_start_up_out() {
        let samples = [(0.1, 0), (0.2, 0), (0.3, 1000), (1.3, 101_000)];
        let rate = rate_after_first_batch(&samples, 201_000, 2.3).unwrap_or(0.0);
        assert!((rate - 100_000.0).abs() < 1e-6, "200,000 events in the 2 s after the first batch: {rate}");
        assert_eq!(rate_after_first_batch(&[(0.1, 0)], 1000, 2.0), None, "nothing published");
        assert_eq!(rate_after_first_batch(&[(0.5, 1000)], 1000, 0.5), None, "all in the first batch");
    }

    #[test]
    fn the_warm_up_stops_once_three_passes_cost_alike() {
        assert!(!settled(&[13.5, 10.5]), "too few passes");
        assert!(!settled(&[13.5, 10.5, 7.1, 6.5]), "one small step");
        assert!(settled(&[13.5, 10.5, 7.1, 6.5, 6.2]));
        assert!(settled(&[2.0, 2.1, 1.9]), "a warm broker: three passes");
        assert!(!settled(&[6.5, 6.2, 4.0]), "still falling");
        assert!(!settled(&[7.5, 2.5, 3.3, 4.0]), "rising: a broker started just before");
        assert!(settled(&[7.5, 2.5, 3.3, 4.0, 2.6, 2.5, 2.4]));
    }

    #[test]
    fn per_second_rates_come_from_cumulative_samples() {
        let samples = [(0.5, 0), (1.0, 100), (1.5, 250), (2.0, 400), (2.4, 450)];
        assert_eq!(per_second(&samples), vec![100, 300, 50]);
    }

    #[test]
    fn latencies_match_by_event_id_and_count_what_does_not() -> Result<()> {
        let (a, b, c) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let commits: outbox::CommitTimes = [(a, 1_000_000_500), (b, 1_000_002_000), (c, 1_000_003_000)].into();
        let published = [
            kafka::Published { event_id: Some(a), timestamp_ms: Some(1_000_005) },
            kafka::Published { event_id: Some(a), timestamp_ms: Some(1_000_006) },
            kafka::Published { event_id: Some(b), timestamp_ms: Some(1_000_001) },
            kafka::Published { event_id: Some(uuid::Uuid::now_v7()), timestamp_ms: Some(1) },
        ];
        let (steady, _) = steady_latency(&commits, &published)?;
        assert_eq!((steady.matched, steady.duplicates, steady.foreign, steady.missing), (2, 1, 1, 1));
        assert_eq!(steady.negative, 1);
        assert_eq!(steady.latency_min_ms, Some(-1.0));
        let l = steady.latency.context("latency")?;
        assert!((l.max_ms - 4.5).abs() < 0.01, "{l:?}");
        Ok(())
    }

    #[test]
    fn the_timeline_buckets_latency_and_background_work_by_the_second_of_commit() -> Result<()> {
        let t0 = 1_700_000_000_000_000u64;
        let background =
            |at_us, autovacuum, wal_waits| outbox::Background { at_us, autovacuum, checkpoint: false, wal_waits };
        let latencies = [(t0, 2_000), (t0 + 400_000, 4_000), (t0 + 2_100_000, 90_000), (t0 + 2_200_000, -500)];
        let samples = [
            background(t0 - 10_000, true, 9), // before the first commit: left out
            background(t0 + 100_000, false, 1),
            background(t0 + 2_050_000, true, 3),
            background(t0 + 2_500_000, true, 5),
            background(t0 + 9_000_000, true, 0), // after the last second: left out
        ];
        let seconds = timeline(&latencies, &samples)?;
        assert_eq!(seconds.len(), 3, "seconds 0, 1 (no events) and 2: {seconds:?}");
        assert_eq!((seconds[0].events, seconds[1].events, seconds[2].events), (2, 0, 2));
        assert!((seconds[0].max_ms - 4.0).abs() < 0.01, "{:?}", seconds[0]);
        assert!((seconds[2].p99_ms - 90.0).abs() < 0.1, "{:?}", seconds[2]);
        assert!(seconds[2].p50_ms < 0.01, "a negative latency counts as 0: {:?}", seconds[2]);
        assert_eq!((seconds[0].samples, seconds[0].autovacuum), (1, 0));
        assert_eq!((seconds[1].samples, seconds[2].samples, seconds[2].autovacuum), (0, 2, 2));
        assert!((seconds[2].wal_waits - 4.0).abs() < 1e-9 && (seconds[0].wal_waits - 1.0).abs() < 1e-9);
        assert!(timeline(&[], &samples)?.is_empty());
        Ok(())
    }
}

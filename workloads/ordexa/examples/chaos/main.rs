//! The chaos suite (`make chaos`; see docs/chaos.md): order lifecycles through two APIs under
//! load while every workload is killed -9 and SIGSTOPped and PostgreSQL, Kafka and Cassandra
//! are each killed -9 and restarted; then the write model is compared with the read model and
//! the topic, the dead letters are counted, and every workload must be healthy by itself.
//!
//! It runs on servers of its own — `make chaos` starts them on spare ports with a state folder
//! of their own and exports their addresses — and refuses to run against the shared development
//! servers, which it would otherwise kill. Each run has its own database, topics and keyspace.
//!
//! - `system`: the servers' scripts and the workload processes.
//! - `load`: the HTTP clients and what they recorded.
//! - `faults`: the faults, one after another.
//! - `checks`: the comparisons after the load.

mod checks;
mod faults;
mod load;
mod probe;
mod system;
mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::faults::{Fault, FaultOptions, FaultRecord};
use crate::load::{Load, LoadConfig};
use crate::system::{Settings, System, infra, repo_root};
use crate::timeline::{Clock, secs};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The testkit's errors, as this program's.
pub fn kit<T>(result: Result<T, ordexa_testkit::Failure>) -> Result<T> {
    result.map_err(|failure| format!("{failure:?}").into())
}

/// Faults under load, then the write model against the read model and the topic.
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Args {
    /// Runs, one after another; it stops at the first that fails (unless --keep-going).
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Least time the load runs; it also goes on until every fault is done, the system has
    /// recovered and --tail has passed.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrent order-lifecycle clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// The faults, in order (comma-separated); all of them by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<Fault>,
    /// Load before the first fault.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Pause after each fault, once every workload is healthy again.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pause: Duration,
    /// Load after the last fault's recovery, at least.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    tail: Duration,
    /// How long the relay leader stays SIGSTOPped.
    #[arg(long, default_value = "35s", value_parser = humantime::parse_duration)]
    relay_stop: Duration,
    /// How long a projector stays SIGSTOPped.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    projector_stop: Duration,
    /// How long a killed server stays down before it is started again.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    server_down: Duration,
    /// How long the workloads may take to be healthy and ready by themselves after a fault.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    recover_within: Duration,
    /// How long the writes acknowledged before a fault's recovery may take to reach the read
    /// model (checked after each fault).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    project_within: Duration,
    /// How long the outbox may take to drain, and the read model to agree, after the load.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    settle_within: Duration,
    /// Most time between two steps of one client (random below it).
    #[arg(long, default_value = "30ms", value_parser = humantime::parse_duration)]
    think: Duration,
    /// First of six consecutive loopback ports: api-1, api-2, relay-1, relay-2, projector-1,
    /// projector-2.
    #[arg(long, default_value_t = 29180)]
    port_base: u16,
    /// The `ordexa` binary (default: `ordexa` in the folder above this program's, i.e. the same
    /// cargo profile).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Seed of the clients' choices (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Go on after a failed run.
    #[arg(long)]
    keep_going: bool,
    /// Keep the database, keyspace and topics of passing runs too (failed runs always keep theirs).
    #[arg(long)]
    keep: bool,
}

/// The suite's own servers, as `make chaos` exported them.
struct ChaosEnv {
    state_dir: PathBuf,
    database_url: String,
    kafka_bootstrap: String,
    cassandra_nodes: String,
}

impl ChaosEnv {
    /// Refuses the shared development servers (their state folder or their default ports): the
    /// suite kills its servers.
    fn from_env() -> Result<ChaosEnv> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let hint = "run the suite with `make chaos`, which starts servers of its own on spare ports";
        let state_dir = PathBuf::from(var("ORDEXA_STATE_DIR").ok_or(format!("ORDEXA_STATE_DIR is not set; {hint}"))?);
        let shared = repo_root().join(".state");
        if state_dir.canonicalize().ok().is_some_and(|s| Some(s) == shared.canonicalize().ok()) {
            return Err(
                format!("ORDEXA_STATE_DIR is the development servers' folder {}; {hint}", shared.display()).into()
            );
        }
        let mut ports = Vec::new();
        for (name, shared_default) in
            [("ORDEXA_PG_PORT", "55432"), ("ORDEXA_KAFKA_PORT", "19092"), ("ORDEXA_CASSANDRA_PORT", "19042")]
        {
            let port = var(name).ok_or(format!("{name} is not set; {hint}"))?;
            if port == shared_default {
                return Err(format!("{name}={port} is the development servers' port; {hint}").into());
            }
            ports.push(port);
        }
        let database_url = var("ORDEXA_DATABASE_URL").ok_or(format!("ORDEXA_DATABASE_URL is not set; {hint}"))?;
        let kafka_bootstrap =
            var("ORDEXA_KAFKA_BOOTSTRAP").ok_or(format!("ORDEXA_KAFKA_BOOTSTRAP is not set; {hint}"))?;
        let cassandra_nodes =
            var("ORDEXA_CASSANDRA_NODES").ok_or(format!("ORDEXA_CASSANDRA_NODES is not set; {hint}"))?;
        for (name, value, port) in [
            ("ORDEXA_DATABASE_URL", &database_url, &ports[0]),
            ("ORDEXA_KAFKA_BOOTSTRAP", &kafka_bootstrap, &ports[1]),
            ("ORDEXA_CASSANDRA_NODES", &cassandra_nodes, &ports[2]),
        ] {
            if !value.contains(&format!(":{port}")) {
                return Err(format!("{name} does not name the suite's port {port}; {hint}").into());
            }
        }
        Ok(ChaosEnv { state_dir, database_url, kafka_bootstrap, cassandra_nodes })
    }
}

/// What one run found.
struct RunReport {
    n: u32,
    took: Duration,
    dir: PathBuf,
    faults: Vec<FaultRecord>,
    load: Option<load::Counts>,
    acked_orders: usize,
    checks: Option<checks::Counts>,
    failures: Vec<String>,
    notes: Vec<String>,
}

impl RunReport {
    fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn failover(&self) -> String {
        let times: Vec<String> = self.faults.iter().filter_map(|f| f.failover).map(secs).collect();
        if times.is_empty() { "-".to_owned() } else { times.join(", ") }
    }

    fn summary(&self) -> String {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let mut line = format!("run {}: {verdict} in {}", self.n, secs(self.took));
        if let Some(c) = &self.checks {
            line.push_str(&format!(
                "; orders {} in the write model, events {} (+{} duplicates), differences {}, dead letters {} + {} in the outbox",
                c.orders, c.events, c.duplicates, c.differences, c.dlq, c.outbox_dead_letters
            ));
        }
        if let Some(l) = &self.load {
            line.push_str(&format!(
                "; acknowledged {} orders / {} writes, {} retried attempts, {} inferred, given up {} creates + {} changes, reads {} ok / {} unavailable {:?}",
                self.acked_orders,
                l.writes_acked,
                l.retries,
                l.inferred,
                l.creates_given_up,
                l.changes_given_up,
                l.reads_ok,
                l.reads_unavailable,
                l.reads_unavailable_why
            ));
        }
        line.push_str(&format!("; faults {}; failover {}", self.faults.len(), self.failover()));
        line
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let args = Args::parse();
    match suite(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("chaos: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn suite(mut args: Args) -> Result<bool> {
    let env = ChaosEnv::from_env()?;
    if args.faults.is_empty() {
        args.faults = Fault::ALL.to_vec();
    }
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => {
            let exe = std::env::current_exe()?;
            exe.parent().and_then(|examples| examples.parent()).ok_or("cannot place the ordexa binary")?.join("ordexa")
        }
    };
    if !bin.is_file() {
        return Err(format!("{} is missing; build it with `cargo build -p ordexa --bin ordexa`", bin.display()).into());
    }
    // Every start of every run uses the binary as it is now: a build in the shared target folder
    // during the runs (someone's `cargo test`) must not swap the code under a restart.
    let copy = env.state_dir.join("ordexa");
    let staging = env.state_dir.join("ordexa.partial");
    std::fs::create_dir_all(&env.state_dir)?;
    std::fs::copy(&bin, &staging)
        .map_err(|e| format!("cannot copy {} to {}: {e}", bin.display(), staging.display()))?;
    std::fs::rename(&staging, &copy)?;
    let built = std::fs::metadata(&bin)?.modified()?.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let bin = copy;
    let seed = args.seed.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs());
    println!(
        "chaos: {} run(s); {} clients for at least {}; faults {:?}; seed {seed}; binary {} (a copy, built {} s ago; {}); servers: {}, {}, {} (state {})",
        args.runs,
        args.clients,
        secs(args.duration),
        args.faults,
        bin.display(),
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs().saturating_sub(built),
        checkout_state(),
        env.database_url.rsplit('@').next().unwrap_or_default(),
        env.kafka_bootstrap,
        env.cassandra_nodes,
        env.state_dir.display()
    );
    let mut reports = Vec::new();
    for n in 1..=args.runs {
        let report = run(&args, &env, &bin, n, seed.wrapping_add(u64::from(n) * 1000)).await;
        println!("\n{}", report.summary());
        for f in &report.faults {
            let recovered = match &f.recovered {
                Ok(took) => format!("healthy again after {}", secs(*took)),
                Err(unhealthy) => format!("NOT healthy again: {}", unhealthy.join("; ")),
            };
            let failover = f.failover.map(|t| format!(", failover {}", secs(t))).unwrap_or_default();
            let projected = match f.projected {
                Some(took) => format!("{} orders' writes projected {} later", f.probed_orders, secs(took)),
                None => format!("{} orders' writes NOT all projected", f.probed_orders),
            };
            println!("  +{:>5.1}s {}: {recovered}{failover}; {projected}", f.at.as_secs_f64(), f.what);
        }
        for note in &report.notes {
            println!("  note: {note}");
        }
        for failure in &report.failures {
            println!("  FAILED: {failure}");
        }
        if !report.passed() {
            println!(
                "  logs: workloads and server scripts in {}; servers in {}/{{postgres/log,kafka/log,cassandra/log}}",
                report.dir.display(),
                env.state_dir.display()
            );
        }
        println!();
        let passed = report.passed();
        reports.push(report);
        if !passed && !args.keep_going {
            break;
        }
    }
    println!("chaos: {} of {} run(s) passed", reports.iter().filter(|r| r.passed()).count(), reports.len());
    for report in &reports {
        println!("  {}", report.summary());
    }
    Ok(reports.iter().all(RunReport::passed) && reports.len() == args.runs as usize)
}

/// The checkout the binary was presumably built from: its commit and how many files differ.
fn checkout_state() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let changed = git(&["status", "--porcelain", "--untracked-files=no"]).lines().count();
    format!("checkout {} with {changed} changed files", head.trim())
}

async fn run(args: &Args, env: &ChaosEnv, bin: &std::path::Path, n: u32, seed: u64) -> RunReport {
    let clock = Clock::start();
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let dir = env.state_dir.join("chaos-runs").join(format!("{stamp}-run{n}"));
    let mut report = RunReport {
        n,
        took: Duration::ZERO,
        dir: dir.clone(),
        faults: Vec::new(),
        load: None,
        acked_orders: 0,
        checks: None,
        failures: Vec::new(),
        notes: Vec::new(),
    };
    println!("\n===== run {n} of {} (seed {seed}; logs in {}) =====", args.runs, dir.display());
    if let Err(err) = run_checked(args, env, bin, seed, clock, &mut report).await {
        report.failures.push(format!("the run stopped: {err}"));
    }
    report.took = clock.elapsed();
    report
}

async fn run_checked(
    args: &Args,
    env: &ChaosEnv,
    bin: &std::path::Path,
    seed: u64,
    clock: Clock,
    report: &mut RunReport,
) -> Result<()> {
    let dir = report.dir.clone();
    std::fs::create_dir_all(&dir)?;
    clock.say("servers: infra/infra.sh up (starts what is not running)");
    let servers_log = dir.join("servers.log");
    tokio::task::spawn_blocking(move || infra("infra", &["up"], &servers_log)).await??;

    let db = kit(ordexa_testkit::TestDatabase::create().await)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let settings = Settings {
        bin: bin.to_owned(),
        database_url: db.url.clone(),
        kafka_bootstrap: env.kafka_bootstrap.clone(),
        cassandra_nodes: env.cassandra_nodes.clone(),
        keyspace: ordexa_testkit::unique_name("chaos"),
        prefix: format!("{}.", ordexa_testkit::unique_name("chaos")),
        jwt_secret: (&mut rng).sample_iter(rand::distr::Alphanumeric).take(48).map(char::from).collect(),
        dir: dir.clone(),
    };
    clock.say(format!(
        "setup: database {}, topics {}orders (6 partitions), keyspace {}",
        db.name, settings.prefix, settings.keyspace
    ));
    settings.run_once(&["migrate", "--seed-dev"], &[("ORDEXA_DATABASE_URL", &settings.database_url)])?;
    settings.run_once(
        &["topics"],
        &[
            ("ORDEXA_KAFKA_BOOTSTRAP", &settings.kafka_bootstrap),
            ("ORDEXA_TOPIC_PREFIX", &settings.prefix),
            ("ORDEXA_TOPIC_PARTITIONS", "6"),
        ],
    )?;
    settings.run_once(
        &["cassandra-schema"],
        &[("ORDEXA_CASSANDRA_NODES", &settings.cassandra_nodes), ("ORDEXA_CASSANDRA_KEYSPACE", &settings.keyspace)],
    )?;

    let mut system = System::start(settings.clone(), args.port_base, clock)?;
    if let Err(unhealthy) = system.wait_healthy(Duration::from_secs(120)).await? {
        return Err(format!("the workloads were not ready 120 s after their start: {}", unhealthy.join("; ")).into());
    }
    clock.say(format!(
        "workloads ready: {}",
        system.workloads.iter().map(|w| format!("{} :{}", w.name, w.port)).collect::<Vec<_>>().join(", ")
    ));

    let tokens = ordexa_platform::auth::Hs256Tokens::new(settings.jwt_secret.as_bytes())?;
    let ttl = Duration::from_secs(6 * 3600);
    let customer_tokens =
        (0..args.clients).map(|i| tokens.mint(&format!("chaos-c{i}"), false, ttl)).collect::<Result<Vec<_>, _>>()?;
    let load = Load::start(
        LoadConfig {
            clients: args.clients,
            apis: system.api_urls(),
            customer_tokens,
            admin_token: tokens.mint("chaos-staff", true, ttl)?,
            think: args.think,
            give_up_after: Duration::from_secs(180),
            tag: settings.prefix.trim_end_matches('.').to_owned(),
            seed,
        },
        clock,
    )?;
    let load_started = clock.elapsed();
    clock.say(format!("load: {} clients started", args.clients));
    system.idle(args.warmup).await?;

    let options = FaultOptions {
        relay_stop: args.relay_stop,
        projector_stop: args.projector_stop,
        server_down: args.server_down,
        recover_within: args.recover_within,
        replica: report.n as usize,
    };
    let mut probe = probe::Probe::new();
    for (k, fault) in args.faults.iter().enumerate() {
        let record = faults::inject(&mut system, *fault, &options).await?;
        report.faults.push(record);
        let acked = load.progress.acked();
        let outcome = probe.check(&system, acked, args.project_within, &report.faults).await?;
        if let Some(record) = report.faults.last_mut() {
            record.probed_orders = outcome.orders;
            record.projected = outcome.took;
            match (outcome.took, outcome.failure) {
                (Some(took), _) => clock.say(format!(
                    "      projection: the latest acknowledged versions of the {} orders written since the last probe are in orders_by_id, {} later",
                    outcome.orders,
                    secs(took)
                )),
                (None, Some(failure)) => {
                    clock.say(format!("      PROJECTION FAILED: {failure}"));
                    record.failures.push(failure);
                }
                (None, None) => {}
            }
        }
        clock.say(format!(
            "load: {} writes acknowledged, {} attempts retried so far",
            load.progress.writes_acked.load(std::sync::atomic::Ordering::Relaxed),
            load.progress.retries.load(std::sync::atomic::Ordering::Relaxed)
        ));
        if k + 1 < args.faults.len() {
            system.idle(args.pause).await?;
        }
    }
    let ran = clock.elapsed() - load_started;
    system.idle(args.tail.max(args.duration.saturating_sub(ran))).await?;
    let ledger = load.stop().await?;
    let load_took = clock.elapsed() - load_started;
    clock.say(format!(
        "load stopped after {}: {} orders and {} writes acknowledged, {} anomalies",
        secs(load_took),
        ledger.orders.len(),
        ledger.counts.writes_acked,
        ledger.anomalies.len()
    ));
    report.load = Some(ledger.counts.clone());
    report.acked_orders = ledger.orders.len();

    let bounds =
        checks::Bounds { drain: args.settle_within, projection: args.settle_within, health: args.recover_within };
    let findings = checks::run(&mut system, &ledger, &report.faults, &bounds).await?;
    report.checks = Some(findings.counts);
    report.failures.extend(findings.failures);
    for unclean in system.terminate_all() {
        report.notes.push(unclean);
    }
    drop(system);

    if report.passed() && !args.keep {
        clean_up(&settings, db).await?;
    } else {
        report.notes.push(format!(
            "kept for inspection: database {}, topics {}orders and {}orders.dlq, keyspace {}",
            db.name, settings.prefix, settings.prefix, settings.keyspace
        ));
    }
    Ok(())
}

/// Drops what a passing run created on the servers.
async fn clean_up(settings: &Settings, db: ordexa_testkit::TestDatabase) -> Result<()> {
    kit(db.drop_database().await)?;
    let session = ordexa_testkit::cassandra().await?;
    session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", settings.keyspace), &[]).await?;
    let admin = ordexa_topics::Admin::connect(&settings.kafka_bootstrap, "ordexa-chaos")?;
    admin.delete(&ordexa_topics::topic_names(&settings.prefix)).await?;
    Ok(())
}

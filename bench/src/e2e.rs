//! `make bench-e2e`: the projector draining a preloaded topic next to the raw driver making the
//! same writes (`ordexa_readmodel::ReadModel::apply` from memory, no Kafka); then `ordexa api`,
//! `relay` and `projector` together under open-loop creates: commit → visible in Cassandra, and
//! each workload's resident memory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use ordexa_domain::{OrderEvent, OrderId};
use serde::Serialize;

use crate::load::{self, Target};
use crate::proc::{self, Memory, Sampler};
use crate::stats::{self, Latency, Table, num, ratio};
use crate::workload::{Workload, free_addr, run_ordexa};
use crate::{events, kafka};

#[derive(Debug, Args)]
pub struct E2eArgs {
    #[arg(long)]
    ordexa: String,
    /// A fresh database, migrated with the development catalog.
    #[arg(long)]
    database_url: String,
    #[arg(long)]
    kafka_bootstrap: String,
    #[arg(long)]
    cassandra_nodes: String,
    /// Prefix of the run's topics and keyspaces (lowercase, a-z0-9_).
    #[arg(long)]
    prefix: String,
    /// Orders preloaded for the drain, 4 events each (placed, confirmed, shipped, delivered).
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Creates per second of the live load, how long it is measured, after how long a warm-up.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Every n-th created order is watched until Cassandra has it.
    #[arg(long, default_value_t = 5)]
    sample_every: usize,
    #[arg(long)]
    work_dir: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    events: usize,
    projector_events_per_s: f64,
    projector_events_per_cpu_s: f64,
    projector_drain_memory: Memory,
    driver_events_per_s: f64,
    rate: f64,
    achieved: f64,
    errors: u64,
    create: Latency,
    commit_to_visible: Latency,
    not_visible: u64,
    memory: Vec<(String, Memory)>,
}

pub async fn run(args: E2eArgs) -> Result<()> {
    std::fs::create_dir_all(&args.work_dir)?;
    // The drain's topic and the live pipeline's, so the live projector starts on an empty one.
    let topics: Vec<String> = ["", "_live"]
        .iter()
        .flat_map(|t| [format!("{}{t}.orders", args.prefix), format!("{}{t}.orders.dlq", args.prefix)])
        .collect();
    let keyspaces: Vec<String> = ["drain", "driver", "live"].iter().map(|k| format!("{}_{k}", args.prefix)).collect();
    let session = ordexa_readmodel::connect(std::slice::from_ref(&args.cassandra_nodes)).await?;
    let result = crate::interruptible(async {
        kafka::create_topics(&args.kafka_bootstrap, &topics, 6).await?;
        for ks in &keyspaces {
            run_ordexa(
                &args.ordexa,
                &["cassandra-schema", "--cassandra-keyspace", ks],
                &[("ORDEXA_CASSANDRA_NODES", &args.cassandra_nodes)],
            )?;
        }
        let mut report = Report::default();
        drain(&args, &mut report).await?;
        live(&args, &mut report).await?;
        Ok::<_, anyhow::Error>(report)
    })
    .await;
    let _ = kafka::delete_topics(&args.kafka_bootstrap, &topics).await;
    let drops = keyspaces.iter().map(|ks| session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ()));
    let _ = futures::future::join_all(drops).await;
    write_report(&args, &result?)
}

fn env(args: &E2eArgs, keyspace: &str) -> Result<Vec<(&'static str, String)>> {
    let topics = if keyspace == "live" { format!("{}_live.", args.prefix) } else { format!("{}.", args.prefix) };
    Ok(vec![
        ("ORDEXA_KAFKA_BOOTSTRAP", args.kafka_bootstrap.clone()),
        ("ORDEXA_TOPIC_PREFIX", topics),
        ("ORDEXA_CASSANDRA_NODES", args.cassandra_nodes.clone()),
        ("ORDEXA_CASSANDRA_KEYSPACE", format!("{}_{keyspace}", args.prefix)),
        ("ORDEXA_HTTP_ADDR", free_addr()?),
        ("RUST_LOG", "info".into()),
    ])
}

/// The projector from its start until its counter reaches every preloaded event, then the same
/// events through the driver with the projector's concurrency (64 writes in flight).
async fn drain(args: &E2eArgs, report: &mut Report) -> Result<()> {
    let messages = events::order_lives(args.orders)?;
    report.events = messages.len();
    let producer = kafka::producer(&args.kafka_bootstrap)?;
    kafka::produce_all(&producer, &format!("{}.orders", args.prefix), &messages, 10_000).await?;
    let http = reqwest::Client::new();
    let mut env = env(args, "drain")?;
    env.push(("ORDEXA_PROJECTOR_GROUP", format!("{}_drain", args.prefix)));
    let mut projector =
        Workload::spawn("projector", &args.ordexa, &["projector"], &env, &args.work_dir.join("projector-drain.log"))?;
    let cpu = Sampler::start(projector.pid, false);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first = None;
    loop {
        let n = projector.metric(&http, "ordexa_projector_events_total").await.unwrap_or(0.0);
        if n > 0.0 && first.is_none() {
            first = Some(proc::now_ms());
        }
        if n >= messages.len() as f64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the projector applied {n} of {} events within 600 s", messages.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = proc::now_ms();
    report.projector_drain_memory = proc::memory(projector.pid).unwrap_or_default();
    let stopped = projector.stop();
    let cpu = cpu.stop();
    stopped?;
    let started = first.unwrap_or(done);
    report.projector_events_per_s = messages.len() as f64 / ((done - started) / 1000.0).max(1e-3);
    report.projector_events_per_cpu_s = messages.len() as f64 / cpu.cpu_between(started, done).max(1e-9);

    let decoded: Vec<OrderEvent> = messages.iter().map(|m| serde_json::from_str(&m.value)).collect::<Result<_, _>>()?;
    let session = ordexa_readmodel::connect(std::slice::from_ref(&args.cassandra_nodes)).await?;
    let model = ordexa_readmodel::ReadModel::new(session, &format!("{}_driver", args.prefix)).await?;
    let started = Instant::now();
    let mut writes = futures::stream::iter(decoded.iter().map(|e| model.apply(e))).buffer_unordered(64);
    while let Some(written) = writes.next().await {
        written?;
    }
    report.driver_events_per_s = decoded.len() as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "[bench] projector {:.0} events/s, driver {:.0} events/s",
        report.projector_events_per_s, report.driver_events_per_s
    );
    Ok(())
}

/// api + relay + projector, open-loop creates at `rate`; every `sample_every`-th created order is
/// read from Cassandra every 2 ms from its 201 on until it is there.
async fn live(args: &E2eArgs, report: &mut Report) -> Result<()> {
    let secret = uuid::Uuid::new_v4().simple().to_string().repeat(2);
    let token = run_ordexa(&args.ordexa, &["token", "--user", "bench-user"], &[("ORDEXA_JWT_SECRET", &secret)])?;
    let http = reqwest::Client::new();
    let mut workloads = Vec::new();
    for role in ["api", "relay", "projector"] {
        let mut env = env(args, "live")?;
        env.push(("ORDEXA_DATABASE_URL", args.database_url.clone()));
        env.push(("ORDEXA_JWT_SECRET", secret.clone()));
        env.push(("ORDEXA_PROJECTOR_GROUP", format!("{}_live", args.prefix)));
        let mut w = Workload::spawn(role, &args.ordexa, &[role], &env, &args.work_dir.join(format!("{role}.log")))?;
        w.ready(&http, Duration::from_secs(60)).await?;
        workloads.push(w);
    }
    let session = ordexa_readmodel::connect(std::slice::from_ref(&args.cassandra_nodes)).await?;
    let model = Arc::new(ordexa_readmodel::ReadModel::new(session, &format!("{}_live", args.prefix)).await?);
    let visible: Arc<Mutex<Vec<Option<u64>>>> = Arc::default();
    let watchers = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
    let on_created: load::OnCreated = {
        let (model, visible, watchers) = (model.clone(), visible.clone(), watchers.clone());
        Arc::new(move |id: String, at: Instant| {
            let (model, visible) = (model.clone(), visible.clone());
            let Ok(uuid) = uuid::Uuid::parse_str(&id) else { return };
            if let Ok(mut w) = watchers.lock() {
                w.spawn(async move {
                    let deadline = at + Duration::from_secs(10);
                    let seen = loop {
                        if model.get(OrderId(uuid)).await.ok().flatten().is_some() {
                            break Some(at.elapsed().as_micros() as u64);
                        }
                        if Instant::now() > deadline {
                            break None;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    };
                    if let Ok(mut v) = visible.lock() {
                        v.push(seen);
                    }
                });
            }
        })
    };
    let api = workloads[0].addr.clone().context("api address")?;
    let target = Target { url: format!("http://{api}/api/v1/orders"), token, body: events::create_body() };
    let step = load::open_loop(
        &http,
        &target,
        args.rate,
        args.warmup,
        args.seconds,
        512,
        Some((args.sample_every, on_created)),
    )
    .await?;
    let mut pending = std::mem::take(&mut *watchers.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    while pending.join_next().await.is_some() {}
    let seen = std::mem::take(&mut *visible.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    for w in workloads {
        report.memory.push((w.name.clone(), proc::memory(w.pid).unwrap_or_default()));
        w.stop()?;
    }
    report.rate = args.rate;
    report.achieved = step.achieved;
    report.errors = step.errors;
    report.create = step.latency;
    report.not_visible = seen.iter().filter(|s| s.is_none()).count() as u64;
    report.commit_to_visible = stats::latency(seen.into_iter().flatten())?;
    eprintln!("[bench] commit → visible p99 {:.1} ms at {} creates/s", report.commit_to_visible.p99_ms, args.rate);
    Ok(())
}

fn write_report(args: &E2eArgs, r: &Report) -> Result<()> {
    let mut table = Table::new(&["", "measured", "goal"]);
    let verdict = |met: bool| if met { "met" } else { "**not met**" };
    table.row(vec![
        format!("projector drain, events/s ({} events of {} orders)", r.events, args.orders),
        num(r.projector_events_per_s),
        String::new(),
    ]);
    table.row(vec!["raw driver, same writes from memory, events/s".into(), num(r.driver_events_per_s), String::new()]);
    let drain_ratio = r.projector_events_per_s / r.driver_events_per_s.max(1e-9);
    table.row(vec![
        "projector / driver".into(),
        ratio(r.projector_events_per_s, r.driver_events_per_s),
        format!("≥ 0.8: {}", verdict(drain_ratio >= 0.8)),
    ]);
    table.row(vec!["projector events per CPU-second".into(), num(r.projector_events_per_cpu_s), String::new()]);
    table.row(vec![
        format!("creates/s asked, achieved (errors)"),
        format!("{}, {} ({})", num(r.rate), num(r.achieved), r.errors),
        String::new(),
    ]);
    table.row(vec![
        "create p50 / p99, ms".into(),
        format!("{} / {}", num(r.create.p50_ms), num(r.create.p99_ms)),
        String::new(),
    ]);
    table.row(vec![
        format!(
            "commit → visible in Cassandra p50 / p99, ms ({} orders watched, {} never seen)",
            r.commit_to_visible.count, r.not_visible
        ),
        format!("{} / {}", num(r.commit_to_visible.p50_ms), num(r.commit_to_visible.p99_ms)),
        format!("p99 < 100 ms: {}", verdict(r.commit_to_visible.p99_ms < 100.0 && r.not_visible == 0)),
    ]);
    table.row(vec![
        "projector resident memory during the drain, peak MiB".into(),
        num(r.projector_drain_memory.peak_mib),
        String::new(),
    ]);
    for (name, m) in &r.memory {
        table.row(vec![format!("{name} resident memory under the load, peak MiB"), num(m.peak_mib), String::new()]);
    }
    let facts = vec![format!(
        "live: `ordexa api`, `relay` and `projector` on one database, topic and keyspace; {} s of open-loop creates after 3 s of warm-up; every {}th created order read from Cassandra every 2 ms from its 201 on",
        args.seconds, args.sample_every
    )];
    stats::write(&args.out, "Projector and the whole pipeline", &facts, &table, &[], r)
}

//! `make bench-relay`: one `ordexa relay` and Debezium (Debezium Server's outbox event router),
//! each alone on a fresh copy of the same outbox, measured the same way: drain a backlog, then
//! commit → Kafka at a fixed load, then memory. Next to the relay, its two halves alone: the
//! relay's own SQL (its `.sql` files) without Kafka, and a producer without PostgreSQL.
//!
//! Both publishers are black boxes. Rows are written by pgbench with the store's own insert;
//! messages are read back from topics timestamped by the broker on append.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};

use crate::kafka::{self, Counter};
use crate::proc::{self, Memory, Sampler};
use crate::stats::{self, Latency, Table, num, ratio};
use crate::workload::{Workload, free_addr, run_ordexa};
use crate::{events, pgbench};

const CLAIM_SQL: &str = include_str!("../../workloads/relay/sql/claim.sql");
const SNAPSHOT_SQL: &str = include_str!("../../workloads/relay/sql/snapshot.sql");
const DELETE_SQL: &str = include_str!("../../workloads/relay/sql/delete.sql");

#[derive(Debug, Args)]
pub struct RelayArgs {
    #[arg(long)]
    ordexa: String,
    /// A database URL on the bench's PostgreSQL (wal_level=logical); the run's databases are
    /// created beside it and dropped.
    #[arg(long)]
    admin_url: String,
    #[arg(long)]
    kafka_bootstrap: String,
    /// Prefix of the run's topics, databases and slot (lowercase, a-z0-9_).
    #[arg(long)]
    prefix: String,
    /// Rows in the backlog.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// The fixed load, events (= transactions) per second, and how long.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// The relay's defaults (ORDEXA_RELAY_BATCH_SIZE, ORDEXA_RELAY_BATCHES_IN_FLIGHT), for the ceilings.
    #[arg(long, default_value_t = 1000)]
    batch: i64,
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// The command that runs Debezium (`bash bench/debezium.sh run`); none: the relay alone.
    #[arg(long)]
    debezium: Option<String>,
    /// PostgreSQL's postmaster, for its CPU.
    #[arg(long)]
    pg_pid: Option<u32>,
    #[arg(long)]
    work_dir: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Default, Serialize)]
struct Publisher {
    name: String,
    /// Process start to the first event in Kafka.
    startup_s: f64,
    /// First to last event of the backlog in Kafka.
    drain_s: f64,
    drain_events_per_s: f64,
    drain_cpu_s: f64,
    drain_events_per_cpu_s: f64,
    drain_postgres_cpu_s: f64,
    duplicates: u64,
    steady_rate: f64,
    steady_committed: u64,
    steady_missing: u64,
    commit_to_kafka: Latency,
    steady_cores: f64,
    memory: Memory,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    events: u64,
    rate: f64,
    seconds: f64,
    relay: Publisher,
    debezium: Option<Publisher>,
    sql_ceiling_events_per_s: f64,
    producer_ceiling_events_per_s: f64,
}

pub async fn run(args: RelayArgs) -> Result<()> {
    std::fs::create_dir_all(&args.work_dir)?;
    let script = args.work_dir.join("outbox.sql");
    std::fs::write(&script, pgbench::outbox_script())?;
    let mut report = Report { events: args.events, rate: args.rate, seconds: args.seconds, ..Default::default() };
    report.relay = with_outbox(&args, "relay", |db| publisher(&args, "relay", db)).await?;
    let (sql, producer) = with_outbox(&args, "ceiling", |db| ceilings(&args, db)).await?;
    report.sql_ceiling_events_per_s = sql;
    report.producer_ceiling_events_per_s = producer;
    if args.debezium.is_some() {
        report.debezium = Some(with_outbox(&args, "debezium", |db| publisher(&args, "debezium", db)).await?);
    }
    write_report(&args, &report)
}

/// A fresh migrated database and topics named `<prefix><name>`, removed after `body` whatever it did.
async fn with_outbox<T, F: Future<Output = Result<T>>>(
    args: &RelayArgs,
    name: &str,
    body: impl FnOnce(String) -> F,
) -> Result<T> {
    let db = format!("{}{name}", args.prefix);
    let topics = vec![format!("{db}.orders"), format!("{db}.orders.dlq")];
    let mut admin = PgConnection::connect(&args.admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
    let url = db_url(&args.admin_url, &db);
    let result = crate::interruptible(async {
        run_ordexa(&args.ordexa, &["migrate", "--database-url", &url], &[])?;
        kafka::create_topics(&args.kafka_bootstrap, &topics, args.partitions).await?;
        body(url).await
    })
    .await;
    let _ = kafka::delete_topics(&args.kafka_bootstrap, &topics).await;
    let slots = format!("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{db}'");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(slots)).execute(&mut admin).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    result
}

fn db_url(admin_url: &str, db: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    format!("{base}/{db}{}", query.map(|q| format!("?{q}")).unwrap_or_default())
}

/// Writes `rows` outbox rows of `phase` with pgbench as fast as it can (no WAL flush wait: this
/// is the backlog, not a measurement), then VACUUM ANALYZE and CHECKPOINT.
fn load_backlog(args: &RelayArgs, url: &str, rows: u64, phase: u32) -> Result<()> {
    let clients = 4;
    pgbench::Run {
        url,
        script: &args.work_dir.join("outbox.sql"),
        vars: &pgbench::outbox_vars(phase)?,
        clients,
        rate: None,
        seconds: None,
        transactions: Some(rows.div_ceil(u64::from(clients))),
        log_dir: None,
        options: "-c synchronous_commit=off",
    }
    .run()?;
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-c", "VACUUM ANALYZE outbox", "-c", "CHECKPOINT", url])
        .output()?;
    if !out.status.success() {
        bail!("VACUUM/CHECKPOINT: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Drain, fixed load and memory of one publisher on its own outbox.
async fn publisher(args: &RelayArgs, name: &str, url: String) -> Result<Publisher> {
    let db = format!("{}{name}", args.prefix);
    let topic = format!("{db}.orders");
    if name == "debezium" {
        // The slot is made before the backlog: Debezium, started with no offsets and
        // snapshot.mode=no_data, streams from the slot's start, so it drains the backlog from the WAL.
        let mut conn = PgConnection::connect(&url).await?;
        sqlx::raw_sql("CREATE PUBLICATION bench_outbox FOR TABLE outbox").execute(&mut conn).await?;
        sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')").bind(&db).execute(&mut conn).await?;
    }
    let backlog = args.events.div_ceil(4) * 4;
    load_backlog(args, &url, backlog, 1)?;
    let counter = Counter::new(&args.kafka_bootstrap, &topic, args.partitions)?;
    let pg = args.pg_pid.map(|pid| Sampler::start(pid, true));
    let dir = args.work_dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let mut process = match name {
        "relay" => Workload::spawn(
            "relay",
            &args.ordexa,
            &["relay"],
            &[
                ("ORDEXA_DATABASE_URL", url.clone()),
                ("ORDEXA_KAFKA_BOOTSTRAP", args.kafka_bootstrap.clone()),
                ("ORDEXA_TOPIC_PREFIX", format!("{db}.")),
                ("ORDEXA_HTTP_ADDR", free_addr()?),
                ("RUST_LOG", "info".into()),
            ],
            &dir.join("relay.log"),
        )?,
        _ => {
            let command = args.debezium.as_deref().context("no Debezium command")?;
            let mut words = command.split_whitespace();
            let program = words.next().context("empty Debezium command")?;
            let rest: Vec<&str> = words.collect();
            Workload::spawn(
                "debezium",
                program,
                &rest,
                &[
                    ("BENCH_DBZ_HOME", dir.display().to_string()),
                    ("BENCH_DBZ_URL", url.clone()),
                    ("BENCH_DBZ_TOPIC", topic.clone()),
                    ("BENCH_DBZ_SLOT", db.clone()),
                    ("BENCH_DBZ_PUBLICATION", "bench_outbox".into()),
                    ("ORDEXA_KAFKA_BOOTSTRAP", args.kafka_bootstrap.clone()),
                ],
                &dir.join("debezium.log"),
            )?
        }
    };
    let cpu = Sampler::start(process.pid, false);
    let result = measure(args, &mut process, &counter, &topic, &url, backlog).await;
    let memory = proc::memory(process.pid).unwrap_or_default();
    let stopped = process.stop();
    let (cpu, pg) = (cpu.stop(), pg.map(Sampler::stop));
    let (mut p, drain_window, steady_window) = result?;
    stopped?;
    p.name = name.to_owned();
    p.memory = memory;
    p.drain_cpu_s = cpu.cpu_between(drain_window.0, drain_window.1);
    p.drain_events_per_cpu_s = backlog as f64 / p.drain_cpu_s.max(1e-9);
    p.drain_postgres_cpu_s = pg.map_or(0.0, |s| s.cpu_between(drain_window.0, drain_window.1));
    p.steady_cores = cpu.cpu_between(steady_window.0, steady_window.1) / ((steady_window.1 - steady_window.0) / 1000.0);
    if name == "relay" {
        let mut conn = PgConnection::connect(&url).await?;
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&mut conn).await?;
        if left != 0 {
            bail!("the relay left {left} rows in the outbox");
        }
    }
    eprintln!(
        "[bench] {name}: drain {:.0} events/s ({:.0} per CPU-s), commit→Kafka p99 {:.1} ms, peak {:.1} MiB",
        p.drain_events_per_s, p.drain_events_per_cpu_s, p.commit_to_kafka.p99_ms, p.memory.peak_mib
    );
    Ok(p)
}

type Window = (f64, f64);

async fn wait_for(process: &mut Workload, counter: &Counter, count: i64, within: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + within;
    while counter.count()? < count {
        if let Some(status) = process.exited()? {
            bail!("{} exited ({status}) with {} of {count} messages in Kafka", process.name, counter.count()?);
        }
        if std::time::Instant::now() > deadline {
            bail!("{} published {} of {count} messages within {within:?}", process.name, counter.count()?);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn measure(
    args: &RelayArgs,
    process: &mut Workload,
    counter: &Counter,
    topic: &str,
    url: &str,
    backlog: u64,
) -> Result<(Publisher, Window, Window)> {
    let mut p = Publisher::default();
    // Drain: process start → every backlog row in Kafka (offsets first, as a cheap gate; then the
    // messages themselves, whose broker timestamps time the drain).
    wait_for(process, counter, i64::try_from(backlog)?, Duration::from_secs(900)).await?;
    let start = vec![0; usize::try_from(args.partitions)?];
    let drained =
        kafka::read_back(&args.kafka_bootstrap, topic, &start, usize::try_from(backlog)?, Duration::from_secs(900))?;
    let first = drained.iter().map(|r| r.at_ms).min().unwrap_or(0) as f64;
    let last = drained.iter().map(|r| r.at_ms).max().unwrap_or(0) as f64;
    let unique: std::collections::HashSet<&str> = drained.iter().map(|r| r.key.as_str()).collect();
    p.duplicates = (drained.len() - unique.len()) as u64;
    p.startup_s = (first - process.started_ms) / 1000.0;
    p.drain_s = (last - first).max(1.0) / 1000.0;
    p.drain_events_per_s = backlog as f64 / p.drain_s;

    // Fixed load: pgbench commits one event per transaction at `rate`; each event's latency is
    // its broker append time minus its transaction's commit (pgbench's log).
    let from = counter.ends()?;
    let dir = args.work_dir.join(format!("{}-steady", process.name));
    let _ = std::fs::remove_dir_all(&dir);
    let steady_start = proc::now_ms();
    let (url, script, rate, seconds, log_dir) =
        (url.to_owned(), args.work_dir.join("outbox.sql"), args.rate, args.seconds, dir.clone());
    tokio::task::spawn_blocking(move || {
        pgbench::Run {
            url: &url,
            script: &script,
            vars: &pgbench::outbox_vars(2)?,
            clients: 8,
            rate: Some(rate),
            seconds: Some(seconds),
            transactions: None,
            log_dir: Some(&log_dir),
            options: "",
        }
        .run()
    })
    .await??;
    let steady_end = proc::now_ms();
    let commits: HashMap<(u32, u64), f64> = pgbench::read_log(&dir)?
        .iter()
        .filter(|t| t.latency_us.is_some())
        .map(|t| ((t.client, t.number), t.end_ms))
        .collect();
    let expected = from.iter().sum::<i64>() + i64::try_from(commits.len())?;
    wait_for(process, counter, expected, Duration::from_secs(120)).await?;
    let records = kafka::read_back(&args.kafka_bootstrap, topic, &from, commits.len(), Duration::from_secs(120))?;
    let mut seen = std::collections::HashSet::new();
    let latencies: Vec<u64> = records
        .iter()
        .filter_map(|r| {
            let (phase, client, n) = pgbench::decode_order_id(&r.key)?;
            let commit = commits.get(&(client, n)).filter(|_| phase == 2 && seen.insert((client, n)))?;
            Some(((r.at_ms as f64 - commit).max(0.0) * 1000.0) as u64)
        })
        .collect();
    p.steady_rate = commits.len() as f64 / args.seconds;
    p.steady_committed = commits.len() as u64;
    p.steady_missing = (commits.len() - latencies.len()) as u64;
    p.commit_to_kafka = stats::latency(latencies)?;
    Ok((p, (first, last), (steady_start, steady_end)))
}

/// The relay's halves alone on a backlog like the relay's: its SQL (claim + snapshot in one
/// repeatable-read transaction on one session, delete on another, `in_flight` batches between
/// them) without Kafka; a producer with the contract's settings sending the same messages from
/// memory, `batch × in_flight` awaiting delivery, without PostgreSQL.
async fn ceilings(args: &RelayArgs, url: String) -> Result<(f64, f64)> {
    let rows = args.events.div_ceil(4) * 4;
    load_backlog(args, &url, rows, 3)?;
    let mut claimer = PgConnection::connect(&url).await?;
    let mut deleter = PgConnection::connect(&url).await?;
    let deleter_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut deleter).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<i64>>(args.in_flight);
    let started = std::time::Instant::now();
    let deletes = tokio::spawn(async move {
        while let Some(ids) = rx.recv().await {
            sqlx::query(DELETE_SQL).bind(&ids).execute(&mut deleter).await?;
        }
        Ok::<_, sqlx::Error>(())
    });
    let (mut settled, mut claimed) = (0_i64, 0_u64);
    loop {
        let mut t = claimer.begin().await?;
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *t).await?;
        let batch =
            sqlx::query(CLAIM_SQL).bind(args.batch).bind(settled).bind(Vec::<i64>::new()).fetch_all(&mut *t).await?;
        if batch.is_empty() {
            break;
        }
        sqlx::query(SNAPSHOT_SQL).bind(deleter_pid).fetch_one(&mut *t).await?;
        t.commit().await?;
        let mut ids = Vec::with_capacity(batch.len());
        for row in &batch {
            let (id, _payload): (i64, String) = (row.try_get("id")?, row.try_get("payload")?);
            ids.push(id);
        }
        settled = ids.iter().copied().max().unwrap_or(settled);
        claimed += ids.len() as u64;
        tx.send(ids).await?;
    }
    drop(tx);
    deletes.await??;
    let sql = claimed as f64 / started.elapsed().as_secs_f64();
    if claimed != rows {
        bail!("the SQL ceiling claimed {claimed} of {rows} rows");
    }

    let topic = format!("{}ceiling.orders", args.prefix);
    let producer = kafka::producer(&args.kafka_bootstrap)?;
    let payload = events::created_payload()?;
    let messages: Vec<kafka::Outgoing> = (0..rows)
        .map(|n| kafka::Outgoing {
            key: format!("00000000-0003-7000-8000-{n:012x}"),
            value: payload.clone(),
            headers: vec![("traceparent", events::TRACEPARENT.to_owned())],
        })
        .collect();
    kafka::produce_all(&producer, &topic, &messages[..1], 1).await?;
    let window = usize::try_from(args.batch)? * args.in_flight;
    let seconds = kafka::produce_all(&producer, &topic, &messages, window).await?;
    let producer_rate = rows as f64 / seconds;
    eprintln!("[bench] ceilings: SQL {sql:.0} events/s, producer {producer_rate:.0} events/s");
    Ok((sql, producer_rate))
}

fn write_report(args: &RelayArgs, r: &Report) -> Result<()> {
    let d = r.debezium.as_ref();
    let both = |f: &dyn Fn(&Publisher) -> String| vec![f(&r.relay), d.map_or("–".into(), f)];
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met".to_owned(),
        Some(false) => "**not met**".to_owned(),
        None => "–".to_owned(),
    };
    let mut table = Table::new(&["", "relay", "Debezium", "relay / Debezium", "goal"]);
    let mut row = |label: &str, f: &dyn Fn(&Publisher) -> f64, goal: &str, met: Option<bool>| {
        let mut cells = vec![label.to_owned()];
        cells.extend(both(&|p| num(f(p))));
        cells.push(d.map_or("–".into(), |d| ratio(f(&r.relay), f(d))));
        cells.push(match met {
            Some(_) => format!("{goal}: {}", verdict(met)),
            None => goal.to_owned(),
        });
        table.row(cells);
    };
    let cmp = |f: &dyn Fn(&Publisher) -> f64, k: f64| d.map(|d| f(&r.relay) >= k * f(d));
    row(
        "drain, events/s (first to last event in Kafka)",
        &|p| p.drain_events_per_s,
        "≥ Debezium",
        cmp(&|p| p.drain_events_per_s, 1.0),
    );
    row(
        "events per CPU-second of the publisher, drain",
        &|p| p.drain_events_per_cpu_s,
        "≥ 2× Debezium",
        cmp(&|p| p.drain_events_per_cpu_s, 2.0),
    );
    row("PostgreSQL CPU-seconds during the drain", &|p| p.drain_postgres_cpu_s, "", None);
    row("start-up to the first event in Kafka, s", &|p| p.startup_s, "", None);
    row(&format!("commit → Kafka p50, ms, at {} events/s", r.rate), &|p| p.commit_to_kafka.p50_ms, "", None);
    let p99 = &|p: &Publisher| p.commit_to_kafka.p99_ms;
    row(
        &format!("commit → Kafka p99, ms, at {} events/s", r.rate),
        p99,
        "lower than Debezium",
        d.map(|d| p99(&r.relay) < p99(d)),
    );
    row("publisher cores at that load", &|p| p.steady_cores, "", None);
    let peak = &|p: &Publisher| p.memory.peak_mib;
    row("resident memory, peak MiB (VmHWM)", peak, "≤ 1/10 of Debezium", d.map(|d| peak(&r.relay) * 10.0 <= peak(d)));
    let lower = r.sql_ceiling_events_per_s.min(r.producer_ceiling_events_per_s);
    table.row(vec![
        "relay drain / lower ceiling (SQL, producer alone)".into(),
        ratio(r.relay.drain_events_per_s, lower),
        "–".into(),
        "–".into(),
        format!("≥ 0.8: {}", verdict(Some(r.relay.drain_events_per_s >= 0.8 * lower))),
    ]);
    let facts = vec![
        format!(
            "backlog: {} outbox rows (a real `order.created` each, written with `ordexa_store::outbox::INSERT_SQL` by pgbench); fixed load: {} events/s, one per transaction, for {} s",
            r.events, r.rate, r.seconds
        ),
        format!(
            "ceilings: the relay's SQL alone (claim.sql, snapshot.sql, delete.sql) {} events/s; a producer alone (idempotent, acks=all, lz4) {} events/s",
            num(r.sql_ceiling_events_per_s),
            num(r.producer_ceiling_events_per_s)
        ),
        format!(
            "lost or duplicated: relay {} missing, {} duplicates; Debezium {}",
            r.relay.steady_missing,
            r.relay.duplicates,
            d.map_or("–".into(), |d| format!("{} missing, {} duplicates", d.steady_missing, d.duplicates))
        ),
    ];
    let notes = vec!["Each publisher runs alone on a fresh database with the same backlog and load, on one PostgreSQL with `wal_level=logical`; commit → Kafka is the broker's append time (`LogAppendTime`) minus the time the writer's `COMMIT` returned.".to_owned()];
    stats::write(&args.out, "Outbox relay vs Debezium", &facts, &table, &notes, r)
}

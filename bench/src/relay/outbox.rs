//! The outbox side of the relay benchmark: rows shaped as the write side writes them, a backlog
//! loaded with `COPY`, a writer committing a fixed number of events per transaction (each of a
//! different order) at an open-loop rate, and the relay's claim-and-remove SQL on its own (the
//! PostgreSQL ceiling).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use ordexa_domain::{EVENT_SCHEMA_VERSION, OrderEvent};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::time::Instant;
use uuid::Uuid;

use crate::ladder::{self, Latency};
use crate::workload;

/// `ordexa_store`'s outbox insert (`insert_outbox` in workloads/store/src/orders.rs), verbatim.
pub const INSERT_SQL: &str = "INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, \
     schema_version, payload, headers) VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// The relay's claim and its removal of a published batch: the relay's own constants.
pub use ordexa_relay::DELETE_SQL;
/// The most events one writer transaction may commit (a multi-row INSERT binds 7 per row, and
/// PostgreSQL takes at most 65535 parameters).
pub const MAX_EVENTS_PER_COMMIT: usize = 1000;

/// [`INSERT_SQL`] with `rows` rows of values: the same columns and the same value expressions,
/// `$1…$7` for the first row, `$8…$14` for the second, and so on. One row is `INSERT_SQL` itself.
pub fn insert_sql(rows: usize) -> String {
    let head = INSERT_SQL.split_once(" VALUES ").map_or(INSERT_SQL, |(head, _)| head);
    let values: Vec<String> = (0..rows.max(1))
        .map(|row| {
            let p: Vec<usize> = (1..=7).map(|i| 7 * row + i).collect();
            format!("(${}, ${}, ${}, ${}, ${}, ${}, ${})", p[0], p[1], p[2], p[3], p[4], p[5], p[6])
        })
        .collect();
    format!("{head} VALUES {}", values.join(", "))
}

/// One outbox row as `ordexa_store` writes it: the event serialized once (`payload` is what the
/// relay publishes, byte for byte), and its trace context header.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub event_id: Uuid,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub event_type: &'static str,
    pub payload: String,
    pub traceparent: String,
}

impl OutboxEvent {
    pub fn of(event: &OrderEvent) -> Result<Self> {
        Ok(OutboxEvent {
            event_id: event.event_id,
            aggregate_id: event.order_id.0,
            aggregate_version: event.version,
            event_type: event.event_type.as_str(),
            payload: serde_json::to_string(event).context("serializing an event")?,
            traceparent: ordexa_store::trace::continue_trace(None),
        })
    }

    fn headers(&self) -> serde_json::Value {
        serde_json::json!({ "traceparent": self.traceparent })
    }
}

/// `orders` order lives of `events_per_order` events each, in the order a busy write side
/// commits them: round by round, every order's next version (so an order's rows get
/// increasing ids, as the write side's row lock guarantees). `first_variant` keeps sets apart.
pub fn order_lives(orders: usize, events_per_order: usize, first_variant: usize) -> Result<Vec<OutboxEvent>> {
    let lives = (0..orders)
        .map(|i| {
            let user = workload::user_id(u32::try_from(i % workload::DEFAULT_USERS as usize).unwrap_or(0) + 1);
            workload::order_life(first_variant + i, &user, events_per_order)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::with_capacity(orders * events_per_order);
    for version in 0..events_per_order {
        for life in &lives {
            if let Some(event) = life.get(version) {
                rows.push(OutboxEvent::of(event)?);
            }
        }
    }
    Ok(rows)
}

/// Payload sizes of a set of rows: (min, mean, max) bytes.
pub fn payload_sizes(rows: &[OutboxEvent]) -> (usize, f64, usize) {
    let sizes = rows.iter().map(|r| r.payload.len());
    let min = sizes.clone().min().unwrap_or(0);
    let max = sizes.clone().max().unwrap_or(0);
    let mean = if rows.is_empty() { 0.0 } else { sizes.sum::<usize>() as f64 / rows.len() as f64 };
    (min, mean, max)
}

/// A value in COPY's text format.
fn copy_text(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

/// Empties the outbox, loads `rows` with one `COPY` (the outbox's NOTIFY trigger fires once,
/// per statement), then `VACUUM ANALYZE`s it and checkpoints, so every backlog starts from the
/// same state. Returns the seconds the COPY took.
pub async fn load_backlog(url: &str, rows: &[OutboxEvent]) -> Result<f64> {
    let mut conn = PgConnection::connect(url).await.context("connecting to load the backlog")?;
    sqlx::query("TRUNCATE outbox").execute(&mut conn).await?;
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw(
            "COPY outbox (event_id, aggregate_id, aggregate_version, event_type, schema_version, payload, headers) \
             FROM STDIN",
        )
        .await?;
    let schema_version = EVENT_SCHEMA_VERSION.to_string();
    for chunk in rows.chunks(5_000) {
        let mut text = String::with_capacity(chunk.len() * 1_500);
        for row in chunk {
            let (event_id, aggregate_id) =
                (row.event_id.hyphenated().to_string(), row.aggregate_id.hyphenated().to_string());
            let (version, headers) = (row.aggregate_version.to_string(), row.headers().to_string());
            let fields: [&str; 7] =
                [&event_id, &aggregate_id, &version, row.event_type, &schema_version, &row.payload, &headers];
            for (i, field) in fields.into_iter().enumerate() {
                if i > 0 {
                    text.push('\t');
                }
                copy_text(field, &mut text);
            }
            text.push('\n');
        }
        copy.send(text.into_bytes()).await?;
    }
    let copied = copy.finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    if copied != rows.len() as u64 {
        bail!("COPY loaded {copied} rows, not {}", rows.len());
    }
    sqlx::query("VACUUM (ANALYZE) outbox").execute(&mut conn).await?;
    sqlx::query("CHECKPOINT").execute(&mut conn).await?;
    conn.close().await?;
    Ok(seconds)
}

pub async fn outbox_rows(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(pool).await?)
}

/// Microseconds since the Unix epoch, from the wall clock (Kafka's CreateTime uses the same).
pub fn wall_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// What the open-loop writer did. Rates are events per second; `scheduled` and `committed` count
/// transactions, each of `events_per_commit` events.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WriterResult {
    /// Events per second asked.
    pub target_rate: f64,
    pub duration_s: f64,
    pub connections: u32,
    pub transaction: Option<WriterTransaction>,
    pub max_in_flight: usize,
    /// Events in each transaction, each of a different order (runs before it was a knob: 1).
    #[serde(default = "one")]
    pub events_per_commit: u64,
    /// Transactions scheduled.
    pub scheduled: u64,
    /// Transactions committed.
    pub committed: u64,
    /// Events committed per second of the schedule.
    pub achieved_rate: f64,
    /// From its first scheduled start to the last commit.
    pub elapsed_s: f64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// From each transaction's scheduled start to its COMMIT returning.
    pub commit_latency: Option<Latency>,
}

fn one() -> u64 {
    1
}

impl WriterResult {
    /// Events in each transaction (at least 1).
    pub fn events_per_commit(&self) -> u64 {
        self.events_per_commit.max(1)
    }

    /// Events committed (every transaction holds the same number of events).
    pub fn events_committed(&self) -> u64 {
        self.committed * self.events_per_commit()
    }

    /// Commits per second asked: the event rate over the events per transaction.
    pub fn target_commit_rate(&self) -> f64 {
        self.target_rate / self.events_per_commit() as f64
    }

    /// Transactions committed per second of the schedule.
    pub fn commit_rate(&self) -> f64 {
        if self.duration_s > 0.0 { self.committed as f64 / self.duration_s } else { 0.0 }
    }
}

/// Commit times of the events the writer committed, by event id: wall-clock µs taken right
/// after COMMIT returned.
pub type CommitTimes = std::collections::HashMap<Uuid, u64>;

struct Recorder {
    commits: CommitTimes,
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    last_commit: Option<Instant>,
}

fn lock(recorder: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    recorder.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A pool of `connections` sessions, all open before the load starts.
pub async fn writer_pool(url: &str, connections: u32) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await
        .context("connecting the writer's pool")?;
    let mut held = Vec::new();
    for _ in 0..connections {
        held.push(pool.acquire().await?);
    }
    drop(held);
    Ok(pool)
}

/// Has every session of `pool` write `rows` once as the writer will ([`Writes::commit`]'s
/// statements), then roll back. A session's first write loads its catalog caches, compiles the
/// outbox trigger and prepares the statement: with 32 fresh sessions starting at once, that held
/// both cores for the load's first 200 ms or so (commits up to 165 ms, relay batches up to
/// 210 ms), a start-up cost no write side with warm connections pays. Nothing is committed, so
/// the relay sees nothing and the ids drawn are only skipped.
pub async fn warm_writers(pool: &PgPool, rows: &[OutboxEvent], how: WriterTransaction) -> Result<()> {
    let writes = Writes::new(how, rows.len());
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        let mut conn = pool.acquire().await.context("a writer session for the warm-up")?;
        let mut tx = conn.begin().await?;
        writes.insert(&mut tx, rows).await.context("the writer's warm-up write")?;
        tx.rollback().await?;
        held.push(conn);
    }
    Ok(())
}

/// How the writer makes its transactions of one or more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum WriterTransaction {
    /// BEGIN, the write side's outbox INSERT once per event, COMMIT: as the store's commands
    /// (one event: three round trips).
    Explicit,
    /// One outbox INSERT of all the transaction's events (the store's columns and values, one
    /// VALUES row per event; one event: the store's INSERT itself), committed by itself
    /// (autocommit): one round trip, so the writer and PostgreSQL spend the least CPU per event
    /// and leave the most to the relay.
    Statement,
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds one row's seven values, in [`INSERT_SQL`]'s order.
fn bind_row<'q>(query: PgQuery<'q>, row: &OutboxEvent) -> PgQuery<'q> {
    query
        .bind(row.event_id)
        .bind(row.aggregate_id)
        .bind(row.aggregate_version)
        .bind(row.event_type)
        .bind(i32::try_from(EVENT_SCHEMA_VERSION).unwrap_or(i32::MAX))
        .bind(&row.payload)
        .bind(Json(row.headers()))
}

/// How the writer writes its transactions of a given number of events: `how`, and for
/// [`WriterTransaction::Statement`] the multi-row statement ([`insert_sql`]), made once.
#[derive(Debug, Clone)]
struct Writes {
    how: WriterTransaction,
    multi_row: Arc<str>,
}

impl Writes {
    fn new(how: WriterTransaction, events_per_commit: usize) -> Self {
        Writes { how, multi_row: insert_sql(events_per_commit).into() }
    }

    /// The events of `rows` in one transaction.
    async fn commit(&self, pool: &PgPool, rows: &[OutboxEvent]) -> Result<(), sqlx::Error> {
        match self.how {
            WriterTransaction::Explicit => {
                let mut tx = pool.begin().await?;
                self.insert(&mut tx, rows).await?;
                tx.commit().await
            }
            // One statement, committed by itself.
            WriterTransaction::Statement => self.insert(&mut *pool.acquire().await?, rows).await,
        }
    }

    /// [`Writes::commit`]'s statements on `conn`: one [`INSERT_SQL`] per event
    /// ([`WriterTransaction::Explicit`]), or one for all of them.
    async fn insert(&self, conn: &mut PgConnection, rows: &[OutboxEvent]) -> Result<(), sqlx::Error> {
        match self.how {
            WriterTransaction::Explicit => {
                for row in rows {
                    bind_row(sqlx::query(INSERT_SQL), row).execute(&mut *conn).await?;
                }
                Ok(())
            }
            WriterTransaction::Statement if rows.len() == 1 => {
                bind_row(sqlx::query(INSERT_SQL), &rows[0]).execute(conn).await.map(|_| ())
            }
            WriterTransaction::Statement => {
                let query = sqlx::query(sqlx::AssertSqlSafe(Arc::clone(&self.multi_row)));
                rows.iter().fold(query, bind_row).execute(conn).await.map(|_| ())
            }
        }
    }
}

/// Commits `rows` in transactions of `events_per_commit` consecutive rows (which must divide
/// the rows evenly; consecutive rows of [`order_lives`] are of different orders) at `rate`
/// events per second, so `rate / events_per_commit` transactions per second, on a fixed-interval,
/// open-loop schedule (a slow commit does not delay the next start; transactions wait for a free
/// connection of the pool instead), for as long as there are rows. Every event of a transaction
/// gets that transaction's commit time. At most `max_in_flight` transactions wait or run at
/// once; one due beyond that is not attempted and counts as an error, so an overloaded database
/// shows up as errors, not as an ever-growing queue.
pub async fn open_loop_writer(
    pool: &PgPool,
    rows: Arc<Vec<OutboxEvent>>,
    rate: f64,
    events_per_commit: usize,
    how: WriterTransaction,
    max_in_flight: usize,
) -> Result<(WriterResult, CommitTimes)> {
    if rate <= 0.0 || max_in_flight == 0 {
        bail!("the writer's rate and in-flight cap must be above 0");
    }
    let n = events_per_commit;
    if n == 0 || n > MAX_EVENTS_PER_COMMIT || rows.is_empty() || !rows.len().is_multiple_of(n) {
        bail!(
            "the writer needs 1 to {MAX_EVENTS_PER_COMMIT} events per transaction and a whole number of \
             transactions, not {} rows in transactions of {n}",
            rows.len()
        );
    }
    let transactions = rows.len() / n;
    let commit_rate = rate / n as f64;
    let writes = Writes::new(how, n);
    let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let recorder = Arc::new(Mutex::new(Recorder {
        commits: CommitTimes::with_capacity(rows.len()),
        latency: ladder::histogram()?,
        errors: BTreeMap::new(),
        last_commit: None,
    }));
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(transactions);
    for t in 0..transactions {
        let scheduled = start + Duration::from_secs_f64(t as f64 / commit_rate);
        tokio::time::sleep_until(scheduled).await;
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            *lock(&recorder).errors.entry(format!("not attempted: {max_in_flight} already in flight")).or_default() +=
                1;
            continue;
        };
        let (pool, rows, recorder, writes) = (pool.clone(), Arc::clone(&rows), Arc::clone(&recorder), writes.clone());
        tasks.push(tokio::spawn(async move {
            let events = &rows[t * n..(t + 1) * n];
            let outcome = writes.commit(&pool, events).await;
            drop(permit);
            // The commit time of every event of the transaction: the writer's wall clock right
            // after COMMIT returned.
            let committed_us = wall_micros();
            let done = Instant::now();
            let mut rec = lock(&recorder);
            match outcome {
                Ok(()) => {
                    for row in events {
                        rec.commits.insert(row.event_id, committed_us);
                    }
                    let micros = u64::try_from((done - scheduled).as_micros()).unwrap_or(u64::MAX);
                    ladder::record(&mut rec.latency, micros);
                    rec.last_commit = Some(rec.last_commit.map_or(done, |t| t.max(done)));
                }
                Err(err) => {
                    let kind =
                        err.as_database_error().map(|e| e.message().to_owned()).unwrap_or_else(|| err.to_string());
                    *rec.errors.entry(kind).or_default() += 1;
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("a writer task panicked")?;
    }
    let rec = lock(&recorder);
    let duration_s = rows.len() as f64 / rate;
    let events_committed = rec.commits.len() as u64;
    let result = WriterResult {
        target_rate: rate,
        duration_s,
        connections: pool.options().get_max_connections(),
        transaction: Some(how),
        max_in_flight,
        events_per_commit: n as u64,
        scheduled: transactions as u64,
        committed: events_committed / n as u64,
        achieved_rate: events_committed as f64 / duration_s,
        elapsed_s: rec.last_commit.map(|t| (t - start).as_secs_f64()).unwrap_or(0.0),
        errors: rec.errors.values().sum(),
        error_kinds: rec.errors.clone(),
        commit_latency: ladder::latency(&rec.latency),
    };
    Ok((result, rec.commits.clone()))
}

/// The write side's commit ceiling for one-event transactions: `connections` sessions each
/// committing back to back (closed loop) for `seconds`. Returns (commits, seconds, commit
/// latency).
pub async fn closed_loop_writer(
    pool: &PgPool,
    rows: Arc<Vec<OutboxEvent>>,
    seconds: f64,
    how: WriterTransaction,
) -> Result<(u64, f64, Option<Latency>)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writes = Writes::new(how, 1);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        let (pool, rows, next, writes) = (pool.clone(), Arc::clone(&rows), Arc::clone(&next), writes.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = ladder::histogram()?;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(row) = rows.get(i..=i) else { break };
                let begun = Instant::now();
                writes.commit(&pool, row).await?;
                ladder::record(&mut hist, u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            anyhow::Ok(hist)
        }));
    }
    let mut all = ladder::histogram()?;
    for task in tasks {
        all.add(task.await.context("a writer task panicked")??).context("merging histograms")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((all.len(), elapsed, ladder::latency(&all)))
}

/// Heavyweight locks on objects held or awaited now, as `object, mode, granted: sessions`.
/// `pg_database, objid 0` is the lock PostgreSQL takes to serialise the commits of every
/// transaction that sent a NOTIFY (`PreCommit_Notify`, held until the commit is done).
pub async fn object_locks(pool: &PgPool) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT classid::regclass::text || ', objid ' || objid AS object, mode, granted, count(*) AS n \
         FROM pg_locks WHERE locktype = 'object' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (object, mode): (String, String) = (r.try_get("object")?, r.try_get("mode")?);
            let (granted, n): (bool, i64) = (r.try_get("granted")?, r.try_get("n")?);
            Ok(format!("{object}, {mode}, {}: {n}", if granted { "granted" } else { "waiting" }))
        })
        .collect()
}

/// Counts, every `every`, what the database's active sessions (other than the sampler's) are
/// waiting on (`wait_event_type: wait_event`, or "running (no wait event)"), until dropped; and
/// notes at each sample whether PostgreSQL's background work was under way (see [`Background`]).
pub struct WaitSampler {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    samples: Arc<std::sync::atomic::AtomicU64>,
    background: Arc<Mutex<Vec<Background>>>,
    task: tokio::task::JoinHandle<()>,
}

/// One sample of PostgreSQL's background work, for lining up latency with it second by second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Background {
    /// When the sample was taken, µs since the Unix epoch (as the writer's commit times).
    pub at_us: u64,
    /// An autovacuum worker was at work on the benchmark's database.
    pub autovacuum: bool,
    /// The checkpointer was checkpointing (anything but waiting for the next one).
    pub checkpoint: bool,
    /// Sessions of the database waiting on the WAL (`LWLock: WALWrite`, `IO: WALSync`, …).
    pub wal_waits: u32,
}

/// What [`WaitSampler`] asks each time, from one read of `pg_stat_activity`: sessions of the
/// database per wait event, then two rows named [`AUTOVACUUM`] and [`CHECKPOINT`] counting the
/// background work under way.
const SAMPLE_SQL: &str = "WITH a AS (SELECT backend_type, datname, state, wait_event_type, wait_event \
     FROM pg_stat_activity WHERE pid <> pg_backend_pid()) \
     SELECT coalesce(wait_event_type || ': ' || wait_event, 'running (no wait event)') AS what, count(*) AS n \
     FROM a WHERE datname = current_database() AND state = 'active' GROUP BY 1 \
     UNION ALL SELECT 'background: autovacuum', count(*) FROM a \
     WHERE backend_type = 'autovacuum worker' AND datname = current_database() \
     UNION ALL SELECT 'background: checkpoint', count(*) FROM a \
     WHERE backend_type = 'checkpointer' AND wait_event IS DISTINCT FROM 'CheckpointerMain'";
const AUTOVACUUM: &str = "background: autovacuum";
const CHECKPOINT: &str = "background: checkpoint";

/// One sample's rows of [`SAMPLE_SQL`]: the sessions per wait event, and the background work (the
/// WAL waits being the sessions whose wait event's name starts with `WAL`).
fn split_sample(rows: Vec<(String, u64)>, at_us: u64) -> (Vec<(String, u64)>, Background) {
    let mut background = Background { at_us, ..Background::default() };
    let mut waits = Vec::with_capacity(rows.len());
    for (what, n) in rows {
        match what.as_str() {
            AUTOVACUUM => background.autovacuum = n > 0,
            CHECKPOINT => background.checkpoint = n > 0,
            _ => {
                if what.split_once(": ").is_some_and(|(_, event)| event.starts_with("WAL")) {
                    background.wal_waits += u32::try_from(n).unwrap_or(u32::MAX);
                }
                waits.push((what, n));
            }
        }
    }
    (waits, background)
}

impl WaitSampler {
    pub async fn start(url: &str, every: Duration) -> Result<Self> {
        let mut conn = PgConnection::connect(url).await.context("connecting the wait-event sampler")?;
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let samples = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let background = Arc::new(Mutex::new(Vec::new()));
        let (c, n, b) = (Arc::clone(&counts), Arc::clone(&samples), Arc::clone(&background));
        let task = tokio::spawn(async move {
            loop {
                let at_us = wall_micros();
                if let Ok(rows) = sqlx::query(SAMPLE_SQL).fetch_all(&mut conn).await {
                    let rows = rows
                        .iter()
                        .filter_map(|row| {
                            let sessions = u64::try_from(row.try_get::<i64, _>("n").ok()?).ok()?;
                            Some((row.try_get::<String, _>("what").ok()?, sessions))
                        })
                        .collect();
                    let (waits, sample) = split_sample(rows, at_us);
                    let mut counts = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    for (what, sessions) in waits {
                        *counts.entry(what).or_default() += sessions;
                    }
                    n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    b.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sample);
                }
                tokio::time::sleep(every).await;
            }
        });
        Ok(WaitSampler { counts, samples, background, task })
    }

    /// (samples taken, sessions seen per wait event summed over the samples, the background
    /// work seen at each sample).
    pub fn finish(self) -> (u64, BTreeMap<String, u64>, Vec<Background>) {
        self.task.abort();
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let background =
            std::mem::take(&mut *self.background.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        (self.samples.load(std::sync::atomic::Ordering::Relaxed), counts, background)
    }
}

/// The relay's claim and removal alone, without Kafka, arranged as the relay arranges them:
/// claims on one session (`claimer`, as the relay's leader session), deletes on another
/// (`deleter`, with the relay's deleter's setting) in claim order, with up to `in_flight` claimed batches
/// not yet deleted; claims are the relay's own (`ordexa_relay::claim`: the statement, the
/// decoding, the start past settled rows). Runs until a claim finds
/// nothing and every batch is deleted. Returns the rows removed and how long each batch took
/// from its claim to its delete.
pub async fn claim_and_remove(
    claimer: &mut PgConnection,
    mut deleter: PgConnection,
    batch: i64,
    in_flight: usize,
) -> Result<(u64, Vec<Duration>)> {
    let deleter_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut deleter).await?;
    sqlx::query(ordexa_relay::DELETER_SESSION_SQL).execute(&mut deleter).await?;
    ordexa_relay::prepare_claim_session(&mut *claimer).await?;
    let (requests, mut to_delete) = tokio::sync::mpsc::unbounded_channel::<(Vec<i64>, Instant)>();
    let (report, mut deleted) = tokio::sync::mpsc::unbounded_channel::<Result<(u64, Duration)>>();
    let deleting = tokio::spawn(async move {
        while let Some((ids, started)) = to_delete.recv().await {
            let result = sqlx::query(DELETE_SQL)
                .bind(&ids)
                .execute(&mut deleter)
                .await
                .map(|_| (ids.len() as u64, started.elapsed()))
                .context("deleting a claimed batch");
            if report.send(result).is_err() {
                break;
            }
        }
        deleter.close().await.context("closing the deleter's session")
    });
    let (mut removed, mut batches) = (0u64, Vec::new());
    let mut pending: std::collections::VecDeque<Vec<i64>> = std::collections::VecDeque::new();
    let mut claims = ordexa_relay::Claims::default();
    let mut wait_one = async |pending: &mut std::collections::VecDeque<Vec<i64>>| -> Result<()> {
        let (rows, took) = deleted.recv().await.context("the deleter stopped")??;
        pending.pop_front();
        removed += rows;
        batches.push(took);
        Ok(())
    };
    loop {
        if pending.len() >= in_flight.max(1) {
            wait_one(&mut pending).await?;
        }
        let started = Instant::now();
        // The relay's own claim: the same statement, decoding and start past settled rows.
        let excluded = claims.excluded(pending.iter().flatten());
        let rows = ordexa_relay::claim(&mut *claimer, &mut claims, batch, &excluded, deleter_pid).await?;
        if rows.is_empty() {
            break;
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        pending.push_back(ids.clone());
        requests.send((ids, started)).context("the deleter stopped")?;
    }
    while !pending.is_empty() {
        wait_one(&mut pending).await?;
    }
    drop(requests);
    deleting.await.context("the deleter task")??;
    Ok((removed, batches))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Source text with Rust's `\`-newline continuations joined, as the compiler reads them.
    fn joined(source: &str) -> String {
        let mut out = String::new();
        let mut rest = source;
        while let Some(at) = rest.find("\\\n") {
            out.push_str(&rest[..at]);
            rest = rest[at + 2..].trim_start();
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn the_insert_is_the_stores() {
        let store = joined(include_str!("../../../workloads/store/src/orders.rs"));
        assert!(store.contains(INSERT_SQL), "the store's outbox insert changed; update INSERT_SQL");
    }

    #[test]
    fn a_multi_row_insert_is_the_stores_insert_repeated() {
        assert_eq!(insert_sql(1), INSERT_SQL);
        let two = insert_sql(2);
        let (head, values) = two.split_once(" VALUES ").unwrap_or_default();
        assert_eq!(head, INSERT_SQL.split_once(" VALUES ").unwrap_or_default().0);
        assert_eq!(values, "($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14)");
        let most = insert_sql(MAX_EVENTS_PER_COMMIT);
        assert!(most.ends_with(", $6999, $7000)"), "{most}");
        assert!(7 * MAX_EVENTS_PER_COMMIT <= usize::from(u16::MAX), "PostgreSQL's limit on parameters");
    }

    #[test]
    fn a_transaction_of_consecutive_rows_holds_different_orders() -> Result<()> {
        // The writer commits rows t·n … (t+1)·n − 1 together: any n ≤ orders consecutive rows of
        // the interleaved lives are of n different orders.
        let rows = order_lives(5, 3, 0)?;
        for n in 1..=5 {
            for chunk in rows.chunks_exact(n) {
                let orders: std::collections::HashSet<Uuid> = chunk.iter().map(|r| r.aggregate_id).collect();
                assert_eq!(orders.len(), n, "transactions of {n}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_writer_result_counts_events_and_commits() -> Result<()> {
        let writer = WriterResult {
            target_rate: 33_600.0,
            duration_s: 30.0,
            events_per_commit: 28,
            scheduled: 36_000,
            committed: 35_000,
            achieved_rate: 35_000.0 * 28.0 / 30.0,
            ..WriterResult::default()
        };
        assert_eq!(writer.events_committed(), 980_000);
        assert!((writer.target_commit_rate() - 1200.0).abs() < 1e-9);
        assert!((writer.commit_rate() - 35_000.0 / 30.0).abs() < 1e-9);
        // A run from before the knob: one event per transaction.
        let old: WriterResult = serde_json::from_str(
            r#"{"target_rate": 2000.0, "duration_s": 30.0, "connections": 32, "transaction": "Explicit",
                "max_in_flight": 256, "scheduled": 60000, "committed": 59000, "achieved_rate": 1966.7,
                "elapsed_s": 30.1, "errors": 1000, "error_kinds": {}, "commit_latency": null}"#,
        )?;
        assert_eq!((old.events_per_commit(), old.events_committed()), (1, 59_000));
        Ok(())
    }

    #[test]
    fn copy_text_escapes_what_copy_would_misread() {
        let mut out = String::new();
        copy_text("a\\b\tc\nd\re", &mut out);
        assert_eq!(out, "a\\\\b\\tc\\nd\\re");
    }

    #[test]
    fn lives_interleave_orders_and_keep_versions_increasing() -> Result<()> {
        let rows = order_lives(3, 4, 0)?;
        assert_eq!(rows.len(), 12);
        let versions: Vec<i64> = rows.iter().map(|r| r.aggregate_version).collect();
        assert_eq!(versions, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
        assert_eq!(rows[0].event_type, "order.created");
        assert_eq!(rows[3].event_type, "order.updated");
        assert_eq!(rows[0].aggregate_id, rows[3].aggregate_id);
        let value: serde_json::Value = serde_json::from_str(&rows[4].payload)?;
        assert_eq!(value["version"], 2);
        assert_eq!(value["event_id"], rows[4].event_id.to_string());
        Ok(())
    }

    #[test]
    fn a_sample_splits_into_wait_events_and_background_work() {
        let rows = [
            ("LWLock: WALWrite", 3),
            ("IO: WALSync", 2),
            ("running (no wait event)", 4),
            ("Lock: extend", 1),
            (AUTOVACUUM, 1),
            (CHECKPOINT, 0),
        ];
        let (waits, background) = split_sample(rows.iter().map(|(w, n)| ((*w).to_owned(), *n)).collect(), 7);
        let names: Vec<&str> = waits.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(names, ["LWLock: WALWrite", "IO: WALSync", "running (no wait event)", "Lock: extend"]);
        assert_eq!(background, Background { at_us: 7, autovacuum: true, checkpoint: false, wal_waits: 5 });
        assert!(SAMPLE_SQL.contains(AUTOVACUUM) && SAMPLE_SQL.contains(CHECKPOINT));
    }
}

//! The outbox relay: publishes committed outbox rows to `<prefix>orders`, then removes them.
//!
//! Ordering. Within one order the write side's row lock serialises commands, so an order's
//! outbox rows commit in version order and get increasing ids; every snapshot the relay reads
//! holds a prefix of each order's rows. Publishing in id order from a single publisher keeps
//! each order's events in version order. With several replicas, one holds a PostgreSQL
//! advisory lock and publishes; the others stand by and take over when its session ends
//! (a crash or `kill -9` closes the session and frees the lock at once).
//!
//! Delivery. A batch is claimed (`FOR UPDATE`) in a transaction, produced through an
//! idempotent, gapless producer, its delivery reports awaited together, and only then deleted
//! and committed. A crash between Kafka's acknowledgement and the commit republishes the batch:
//! at least once, duplicates being exact repeats of earlier messages. An uncommitted row is
//! never visible to the relay, so it is never published.
//!
//! Pipelining. Two batches overlap, on two connections: while Kafka acknowledges batch N, the
//! relay claims batch N+1 (every visible row not in N, in id order); once N is acknowledged it
//! sends N+1 and deletes and commits N while N+1 is on its way. N+1 is never sent before all of
//! N is acknowledged, so an order's later event cannot overtake an earlier one that failed;
//! when N fails, N+1 is rolled back unsent.

pub mod topics;

use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

use ordexa_runtime::{Health, Shutdown, backoff_delay};

/// The advisory lock key the publishing replica holds ("ordexa relay" in ASCII, as an i64).
pub const LEADER_LOCK_KEY: i64 = 0x6f72_6465_7861_726c;
/// The channel the outbox trigger notifies.
pub const NOTIFY_CHANNEL: &str = "ordexa_outbox";

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub database_url: String,
    pub kafka_bootstrap: String,
    pub topic_prefix: String,
    /// Rows claimed and produced together.
    pub batch_size: i64,
    /// How often to look for rows when no notification arrives (a missed NOTIFY, a restart).
    pub poll_interval: Duration,
    /// How long librdkafka keeps retrying one message before the batch fails.
    pub delivery_timeout: Duration,
}

impl RelayConfig {
    pub fn topic(&self) -> String {
        ordexa_domain::topic_name(&self.topic_prefix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("outbox row {id}: {reason}")]
    BadRow { id: i64, reason: String },
    #[error("a leader session was lost mid-batch; starting over")]
    LostSession,
}

/// One claimed outbox row.
struct OutboxRow {
    id: i64,
    aggregate_id: Uuid,
    event_id: Uuid,
    event_type: String,
    schema_version: i32,
    payload: String,
    traceparent: Option<String>,
}

/// An idempotent, gapless producer: retries keep per-partition order, and an error that would
/// leave a gap is fatal rather than silent, so the relay rebuilds the producer and republishes.
pub fn producer(config: &RelayConfig) -> Result<FutureProducer, RelayError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("enable.idempotence", "true")
        .set("enable.gapless.guarantee", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "2")
        .set("batch.num.messages", "10000")
        // The same key → partition mapping as Kafka's Java clients.
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", config.delivery_timeout.as_millis().to_string())
        .create()?)
}

/// Runs the relay until `shutdown` fires. Errors are retried with capped, jittered backoff;
/// only a shutdown ends the loop.
pub async fn run(config: RelayConfig, health: Health, mut shutdown: Shutdown) -> Result<(), RelayError> {
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&config.database_url)?;
    tokio::spawn(report_backlog(pool.clone(), shutdown.clone()));
    let mut producer = producer(&config)?;
    let mut leader: Option<Leader> = None;
    let mut listener: Option<PgListener> = None;
    let mut failures: u32 = 0;
    let topic = config.topic();

    while !shutdown.is_fired() {
        if listener.is_none() {
            listener = listen(&pool).await.map_err(|e| tracing::warn!(error = %e, "cannot LISTEN; polling only")).ok();
        }
        if leader.is_none() {
            match acquire_leadership(&config.database_url).await {
                Ok(Some(conns)) => {
                    tracing::info!("leading: this replica publishes the outbox");
                    metrics::gauge!("ordexa_relay_leader").set(1.0);
                    leader = Some(Leader { idle: conns, in_flight: None });
                }
                Ok(None) => {
                    metrics::gauge!("ordexa_relay_leader").set(0.0);
                    health.ready(); // a standby is healthy: it takes over when the leader goes
                    sleep_or_shutdown(config.poll_interval, &mut shutdown).await;
                    continue;
                }
                Err(err) => {
                    failures += 1;
                    health.not_ready(format!("cannot reach PostgreSQL: {err}"));
                    backoff(failures, &mut shutdown).await;
                    continue;
                }
            }
        }
        let Some(lead) = leader.as_mut() else { continue };
        match lead.step(&producer, &topic, config.batch_size, &health).await {
            Ok(published) => {
                failures = 0;
                health.ready();
                if published == 0 {
                    wait_for_rows(listener.as_mut(), config.poll_interval, &mut shutdown).await;
                }
            }
            Err(err) => {
                failures += 1;
                metrics::counter!("ordexa_relay_publish_errors_total").increment(1);
                health.not_ready(format!("publishing failed: {err}"));
                tracing::warn!(error = %err, attempt = failures, "publishing a batch failed; it stays in the outbox");
                if let Some(fatal) = producer.client().fatal_error() {
                    tracing::warn!(?fatal, "the producer hit a fatal error; building a new one");
                    producer = self::producer(&config)?;
                }
                let kept = match leader.as_mut() {
                    Some(lead) if !matches!(err, RelayError::Database(_)) => lead.abandon().await.is_ok(),
                    _ => false,
                };
                if !kept {
                    // Closing the sessions rolls back their batches and frees the leader lock;
                    // whoever gets it next goes on.
                    leader = None;
                    listener = None;
                    metrics::gauge!("ordexa_relay_leader").set(0.0);
                }
                backoff(failures, &mut shutdown).await;
            }
        }
    }
    tracing::info!("relay stopping");
    if let Some(lead) = leader {
        lead.finish(&health).await;
    }
    Ok(())
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

/// How many sessions the leader holds: one batch is claimed while the other is in flight.
const LEADER_SESSIONS: usize = 2;

/// Two dedicated sessions, one of them holding the leader lock, or `None` when another replica
/// leads.
async fn acquire_leadership(url: &str) -> Result<Option<Vec<PgConnection>>, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let acquired: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK_KEY).fetch_one(&mut conn).await?;
    if acquired {
        let second = PgConnection::connect(url).await?;
        Ok(Some(vec![second, conn]))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

/// A batch claimed in an open transaction on its own connection.
struct Claimed {
    conn: PgConnection,
    rows: Vec<OutboxRow>,
    started: Instant,
}

/// A claimed batch whose messages are queued in the producer.
struct InFlight {
    claimed: Claimed,
    deliveries: Vec<DeliveryFuture>,
}

/// The leading replica's sessions: idle ones, and the one whose batch is in flight.
struct Leader {
    idle: Vec<PgConnection>,
    in_flight: Option<InFlight>,
}

impl Leader {
    /// Claims the next batch, completes the one in flight, and sends the next. Returns how
    /// many rows this step claimed or completed; 0 means the outbox is empty and nothing is in
    /// flight, so the caller may wait for a notification.
    async fn step(
        &mut self,
        producer: &FutureProducer,
        topic: &str,
        limit: i64,
        health: &Health,
    ) -> Result<usize, RelayError> {
        let exclude: Vec<i64> =
            self.in_flight.as_ref().map(|f| f.claimed.rows.iter().map(|r| r.id).collect()).unwrap_or_default();
        let conn = self.idle.pop().ok_or(RelayError::LostSession)?;
        let next = claim(conn, limit, &exclude).await?;
        let claimed = next.rows.len();
        let mut completed = 0;
        if let Some(mut in_flight) = self.in_flight.take() {
            if let Err(err) = await_deliveries(&mut in_flight, health).await {
                self.in_flight = Some(in_flight);
                self.idle.push(rollback(next.conn).await?);
                return Err(err);
            }
            // Every row of the batch in flight is acknowledged: the next may go out now,
            // while this one is removed.
            if claimed > 0 {
                self.send(next, producer, topic)?;
            } else {
                self.idle.push(commit(next.conn).await?);
            }
            completed = in_flight.claimed.rows.len();
            self.idle.push(delete_and_commit(in_flight.claimed).await?);
        } else if claimed > 0 {
            self.send(next, producer, topic)?;
        } else {
            self.idle.push(commit(next.conn).await?);
        }
        Ok(claimed + completed)
    }

    /// Queues a claimed batch in the producer (an empty one just waits to be committed).
    fn send(&mut self, claimed: Claimed, producer: &FutureProducer, topic: &str) -> Result<(), RelayError> {
        let mut deliveries = Vec::with_capacity(claimed.rows.len());
        for row in &claimed.rows {
            deliveries.push(produce(producer, topic, row)?);
        }
        self.in_flight = Some(InFlight { claimed, deliveries });
        Ok(())
    }

    /// After a failed step: rolls the batch in flight back (its rows stay in the outbox).
    /// Fails when a session was lost on the way, and the caller must start over.
    async fn abandon(&mut self) -> Result<(), RelayError> {
        if let Some(in_flight) = self.in_flight.take() {
            self.idle.push(rollback(in_flight.claimed.conn).await?);
        }
        if self.idle.len() == LEADER_SESSIONS { Ok(()) } else { Err(RelayError::LostSession) }
    }

    /// On shutdown: completes the batch in flight if Kafka acknowledges it, else leaves it in
    /// the outbox; then closes the sessions, which frees the leader lock.
    async fn finish(mut self, health: &Health) {
        if let Some(mut in_flight) = self.in_flight.take() {
            let rows = in_flight.claimed.rows.len();
            match await_deliveries(&mut in_flight, health).await {
                Ok(()) => match delete_and_commit(in_flight.claimed).await {
                    Ok(conn) => self.idle.push(conn),
                    Err(err) => {
                        tracing::warn!(error = %err, rows, "cannot remove the last batch; it will be sent again")
                    }
                },
                Err(err) => {
                    tracing::warn!(error = %err, rows, "the last batch was not acknowledged; it stays in the outbox")
                }
            }
        }
        for conn in self.idle {
            let _ = conn.close().await;
        }
    }
}

/// Begins a transaction on `conn` and claims up to `limit` rows in id order, skipping
/// `exclude` (the batch in flight, locked by the other session). Other locked rows are waited
/// for, never skipped: skipping could let an order's later row overtake an earlier one.
async fn claim(mut conn: PgConnection, limit: i64, exclude: &[i64]) -> Result<Claimed, RelayError> {
    let started = Instant::now();
    sqlx::query("BEGIN").execute(&mut conn).await?;
    let rows = sqlx::query(
        "SELECT id, aggregate_id, event_id, event_type, schema_version, payload::text AS payload, \
         headers->>'traceparent' AS traceparent FROM outbox \
         WHERE id NOT IN (SELECT unnest($2::bigint[])) ORDER BY id LIMIT $1 FOR UPDATE",
    )
    .bind(limit)
    .bind(exclude)
    .fetch_all(&mut conn)
    .await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok(OutboxRow {
                id: r.try_get("id")?,
                aggregate_id: r.try_get("aggregate_id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                schema_version: r.try_get("schema_version")?,
                payload: r.try_get("payload")?,
                traceparent: r.try_get("traceparent")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Claimed { conn, rows, started })
}

fn produce(producer: &FutureProducer, topic: &str, row: &OutboxRow) -> Result<DeliveryFuture, RelayError> {
    let key = row.aggregate_id.hyphenated().to_string();
    let event_id = row.event_id.hyphenated().to_string();
    let schema_version = row.schema_version.to_string();
    let mut headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header { key: "event_id", value: Some(event_id.as_str()) })
        .insert(Header { key: "type", value: Some(row.event_type.as_str()) })
        .insert(Header { key: "schema_version", value: Some(schema_version.as_str()) });
    if let Some(tp) = &row.traceparent {
        headers = headers.insert(Header { key: "traceparent", value: Some(tp.as_str()) });
    }
    let record = FutureRecord::to(topic).key(&key).payload(&row.payload).headers(headers);
    producer.send_result(record).map_err(|(err, _)| err.into())
}

/// Waits for every delivery report of the batch; readiness goes false after 5 s without them.
async fn await_deliveries(in_flight: &mut InFlight, health: &Health) -> Result<(), RelayError> {
    let all = join_all(std::mem::take(&mut in_flight.deliveries));
    tokio::pin!(all);
    let results = tokio::select! {
        results = &mut all => results,
        () = tokio::time::sleep(Duration::from_secs(5)) => {
            health.not_ready("Kafka has not acknowledged the current batch for 5 s");
            all.await
        }
    };
    for (row, result) in in_flight.claimed.rows.iter().zip(results) {
        match result {
            Ok(Ok(_)) => {}
            Ok(Err((err, _))) => return Err(err.into()),
            Err(_) => return Err(RelayError::BadRow { id: row.id, reason: "delivery report lost".into() }),
        }
    }
    Ok(())
}

/// Removes an acknowledged batch and commits; returns the session for the next claim.
async fn delete_and_commit(claimed: Claimed) -> Result<PgConnection, RelayError> {
    let Claimed { mut conn, rows, started } = claimed;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&ids).execute(&mut conn).await?;
    let conn = commit(conn).await?;
    metrics::counter!("ordexa_relay_published_total").increment(rows.len() as u64);
    metrics::histogram!("ordexa_relay_batch_seconds").record(started.elapsed().as_secs_f64());
    tracing::debug!(rows = rows.len(), elapsed_ms = started.elapsed().as_millis() as u64, "batch published");
    Ok(conn)
}

async fn commit(mut conn: PgConnection) -> Result<PgConnection, RelayError> {
    sqlx::query("COMMIT").execute(&mut conn).await?;
    Ok(conn)
}

async fn rollback(mut conn: PgConnection) -> Result<PgConnection, RelayError> {
    sqlx::query("ROLLBACK").execute(&mut conn).await?;
    Ok(conn)
}

/// Waits for a NOTIFY, the fallback poll, or shutdown, whichever comes first.
async fn wait_for_rows(listener: Option<&mut PgListener>, poll: Duration, shutdown: &mut Shutdown) {
    match listener {
        Some(listener) => {
            tokio::select! {
                _ = listener.recv() => {}
                () = tokio::time::sleep(poll) => {}
                () = shutdown.wait() => {}
            }
        }
        None => sleep_or_shutdown(poll, shutdown).await,
    }
}

async fn sleep_or_shutdown(duration: Duration, shutdown: &mut Shutdown) {
    shutdown.sleep(duration).await;
}

async fn backoff(attempt: u32, shutdown: &mut Shutdown) {
    sleep_or_shutdown(backoff_delay(attempt), shutdown).await;
}

/// Every 5 s: backlog rows and the age of the oldest unpublished row, as gauges.
async fn report_backlog(pool: PgPool, mut shutdown: Shutdown) {
    while !shutdown.is_fired() {
        let row = sqlx::query(
            "SELECT count(*) AS backlog, COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)::float8 AS age \
             FROM outbox",
        )
        .fetch_one(&pool)
        .await;
        match row {
            Ok(row) => {
                let backlog: i64 = row.try_get("backlog").unwrap_or(0);
                let age: f64 = row.try_get("age").unwrap_or(0.0);
                metrics::gauge!("ordexa_outbox_backlog_rows").set(backlog as f64);
                metrics::gauge!("ordexa_outbox_oldest_age_seconds").set(age);
            }
            Err(err) => tracing::debug!(error = %err, "cannot read the outbox backlog"),
        }
        sleep_or_shutdown(Duration::from_secs(5), &mut shutdown).await;
    }
}

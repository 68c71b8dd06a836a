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

pub mod topics;

use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
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
    let mut leader: Option<PgConnection> = None;
    let mut listener: Option<PgListener> = None;
    let mut failures: u32 = 0;
    let topic = config.topic();

    while !shutdown.is_fired() {
        if listener.is_none() {
            listener = listen(&pool).await.map_err(|e| tracing::warn!(error = %e, "cannot LISTEN; polling only")).ok();
        }
        if leader.is_none() {
            match acquire_leadership(&config.database_url).await {
                Ok(Some(conn)) => {
                    tracing::info!("leading: this replica publishes the outbox");
                    metrics::gauge!("ordexa_relay_leader").set(1.0);
                    leader = Some(conn);
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
        let Some(conn) = leader.as_mut() else { continue };
        match publish_batch(conn, &producer, &topic, config.batch_size, &health).await {
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
                if matches!(err, RelayError::Database(_)) {
                    // Closing the session frees the leader lock; whoever gets it next goes on.
                    leader = None;
                    listener = None;
                    metrics::gauge!("ordexa_relay_leader").set(0.0);
                }
                backoff(failures, &mut shutdown).await;
            }
        }
    }
    tracing::info!("relay stopping");
    if let Some(conn) = leader {
        let _ = conn.close().await;
    }
    Ok(())
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

/// A dedicated session holding the leader lock, or `None` when another replica leads.
async fn acquire_leadership(url: &str) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let acquired: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK_KEY).fetch_one(&mut conn).await?;
    if acquired {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

/// Claims up to `limit` rows in id order, publishes them, and deletes them once Kafka has
/// acknowledged every one. Returns how many were published.
async fn publish_batch(
    conn: &mut PgConnection,
    producer: &FutureProducer,
    topic: &str,
    limit: i64,
    health: &Health,
) -> Result<usize, RelayError> {
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let rows = sqlx::query(
        "SELECT id, aggregate_id, event_id, event_type, schema_version, payload::text AS payload, \
         headers->>'traceparent' AS traceparent FROM outbox ORDER BY id LIMIT $1 FOR UPDATE",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
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

    // Queue the whole batch first, then wait for every delivery report together.
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in &rows {
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
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((err, _)) => return Err(err.into()),
        }
    }
    let all = join_all(deliveries);
    tokio::pin!(all);
    let results = tokio::select! {
        results = &mut all => results,
        () = tokio::time::sleep(Duration::from_secs(5)) => {
            health.not_ready("Kafka has not acknowledged the current batch for 5 s");
            all.await
        }
    };
    for (row, result) in rows.iter().zip(results) {
        match result {
            Ok(Ok(_)) => {}
            Ok(Err((err, _))) => return Err(err.into()),
            Err(_) => return Err(RelayError::BadRow { id: row.id, reason: "delivery report lost".into() }),
        }
    }

    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
    tx.commit().await?;
    metrics::counter!("ordexa_relay_published_total").increment(rows.len() as u64);
    metrics::histogram!("ordexa_relay_batch_seconds").record(started.elapsed().as_secs_f64());
    tracing::debug!(rows = rows.len(), elapsed_ms = started.elapsed().as_millis() as u64, "batch published");
    Ok(rows.len())
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

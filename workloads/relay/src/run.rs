//! A relay replica's loop (talks to PostgreSQL and Kafka): campaigns for leadership, publishes
//! while it leads, and retries every failure with capped, jittered backoff. Only a shutdown ends it.

use std::sync::Arc;
use std::time::Duration;

use ordexa_platform::{Health, Shutdown, backoff_delay};
use rdkafka::producer::Producer;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::batch::{self, BatchProducer};
use crate::publisher::Term;
use crate::{RelayConfig, RelayError, backlog, leader, wakeup};

/// Runs the relay until `shutdown` fires.
pub async fn run(config: RelayConfig, health: Health, mut shutdown: Shutdown) -> Result<(), RelayError> {
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&config.database_url)?;
    tokio::spawn(backlog::report_backlog(pool.clone(), shutdown.clone()));
    let topic = config.topic();
    let mut producer = Arc::new(batch::producer(&config.kafka_bootstrap)?);
    batch::warm_up(&producer, &topic);
    let mut leader: Option<PgConnection> = None;
    let mut listener: Option<PgListener> = None;
    let mut failures: u32 = 0;

    while !shutdown.is_fired() {
        if listener.is_none() {
            listener =
                wakeup::listen(&pool).await.map_err(|e| tracing::warn!(error = %e, "cannot LISTEN; polling only")).ok();
        }
        if leader.is_none() {
            match leader::acquire(&config.database_url).await {
                Ok(Some(conn)) => {
                    tracing::info!("leading: this replica publishes the outbox");
                    metrics::gauge!("ordexa_relay_leader").set(1.0);
                    leader = Some(conn);
                }
                Ok(None) => {
                    metrics::gauge!("ordexa_relay_leader").set(0.0);
                    health.ready(); // a standby is healthy: it takes over when the leader goes
                    shutdown.sleep(config.poll_interval).await;
                    continue;
                }
                Err(err) => {
                    failures += 1;
                    health.not_ready(format!("cannot reach PostgreSQL: {err}"));
                    shutdown.sleep(backoff_delay(failures)).await;
                    continue;
                }
            }
        }
        let Some(conn) = leader.as_mut() else { continue };
        match publish_term(conn, &producer, &topic, &config, listener.as_mut(), &health, &mut shutdown).await {
            Ok(()) => failures = 0,
            Err(err) => {
                failures += 1;
                metrics::counter!("ordexa_relay_publish_errors_total").increment(1);
                health.not_ready(format!("publishing failed: {err}"));
                tracing::warn!(error = %err, attempt = failures, "publishing a batch failed; it stays in the outbox");
                if let Some(fatal) = producer.client().fatal_error() {
                    tracing::warn!(?fatal, "the producer hit a fatal error; building a new one");
                    producer = Arc::new(batch::producer(&config.kafka_bootstrap)?);
                    batch::warm_up(&producer, &topic);
                }
                if matches!(err, RelayError::Database(_)) {
                    // Closing the session frees the leader lock; whoever gets it next goes on.
                    leader = None;
                    listener = None;
                    metrics::gauge!("ordexa_relay_leader").set(0.0);
                }
                shutdown.sleep(backoff_delay(failures)).await;
            }
        }
    }
    tracing::info!("relay stopping");
    if let Some(conn) = leader {
        let _ = conn.close().await;
    }
    Ok(())
}

async fn publish_term(
    conn: &mut PgConnection,
    producer: &BatchProducer,
    topic: &str,
    config: &RelayConfig,
    listener: Option<&mut PgListener>,
    health: &Health,
    shutdown: &mut Shutdown,
) -> Result<(), RelayError> {
    Term::start(conn, producer, topic, config, listener, health).await?.publish(shutdown).await
}

//! A relay replica's loop (talks to PostgreSQL and Kafka): campaigns for leadership, starts a
//! fenced producer for each term it leads, publishes, and retries every failure with capped,
//! jittered backoff. Only a shutdown, or a database where the ordering proof does not hold, ends it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ordexa_platform::{Health, Shutdown, backoff_delay};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::batch::{self, BatchProducer};
use crate::publisher::{End, Term};
use crate::{RelayConfig, RelayError, backlog, leader, wakeup};

/// Runs the relay until `shutdown` fires.
pub async fn run(config: RelayConfig, health: Health, mut shutdown: Shutdown) -> Result<(), RelayError> {
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(leader::session_options(&config.database_url, false)?);
    tokio::spawn(backlog::report_backlog(pool.clone(), shutdown.clone()));
    let topic = config.topic();
    let mut leader: Option<PgConnection> = None;
    let mut producer: Option<Arc<BatchProducer>> = None;
    // Rows Kafka refused in record batches of several, and whether the producer is careful.
    let mut suspects: HashSet<i64> = HashSet::new();
    let mut careful = false;
    let mut listener: Option<PgListener> = None;
    let mut failures: u32 = 0;

    while !shutdown.is_fired() {
        if listener.is_none() {
            listener =
                wakeup::listen(&pool).await.map_err(|e| tracing::warn!(error = %e, "cannot LISTEN; polling only")).ok();
        }
        if leader.is_none() {
            producer = None;
            match leader::acquire(&config.database_url).await {
                Ok(Some(conn)) => {
                    tracing::info!("leading: this replica publishes the outbox");
                    metrics::gauge!("ordexa_relay_leader").set(1.0);
                    leader = Some(conn);
                }
                Ok(None) => {
                    metrics::gauge!("ordexa_relay_leader").set(0.0);
                    health.ready(); // a standby is healthy: it takes over when the leader goes
                    health.idle();
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
        if producer.is_none() {
            careful = !suspects.is_empty();
            match start_producer(&config, careful).await {
                Ok(started) => producer = Some(started),
                Err(err) => {
                    failures += 1;
                    health.not_ready(format!("cannot start a transactional producer on Kafka: {err}"));
                    // Waiting for Kafka must not let the leader's session count as idle.
                    if let Err(err) = leader::heartbeat(conn).await {
                        tracing::warn!(error = %err, "the leader's session failed; leadership is given up");
                        leader = None;
                    }
                    shutdown.sleep(backoff_delay(failures).min(leader::HEARTBEAT)).await;
                    continue;
                }
            }
        }
        let Some(term_producer) = producer.as_ref() else { continue };
        let term =
            Term::start(conn, term_producer, careful, &mut suspects, &topic, &config, listener.as_mut(), &health);
        let result = match term.await {
            Ok(term) => term.publish(&mut shutdown).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(End::Shutdown) => failures = 0,
            // The refused rows are dead letters now; the next term goes on at once, with a new
            // producer (an aborted transaction may leave the old one needing an epoch bump).
            Ok(End::DeadLettered(rows)) => {
                tracing::warn!(rows, "rows refused by Kafka moved to the dead letters");
                producer = None;
            }
            Ok(End::Isolate(rows)) => {
                tracing::warn!(rows, "Kafka refused record batches of several rows; sending them one by one");
                producer = None;
            }
            Ok(End::Isolated) => {
                tracing::info!("every suspect row was published or refused alone; sending in batches again");
                producer = None;
            }
            Err(RelayError::Unsafe(why)) => {
                health.not_ready(format!("refusing to run: {why}"));
                tracing::error!(%why, "the relay refuses to run: its ordering guarantee does not hold here");
                return Err(RelayError::Unsafe(why));
            }
            Err(err) => {
                failures += 1;
                metrics::counter!("ordexa_relay_publish_errors_total").increment(1);
                health.not_ready(format!("publishing failed: {err}"));
                tracing::warn!(error = %err, attempt = failures, "publishing failed; the rows stay in the outbox");
                // Aborted, fenced, fatal or unknown: a new term starts with a new producer.
                producer = None;
                if err.ends_leadership() {
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

/// A transactional producer initialised for this leader, fencing every earlier one.
async fn start_producer(config: &RelayConfig, careful: bool) -> Result<Arc<BatchProducer>, RelayError> {
    let producer = Arc::new(batch::producer(&config.kafka_bootstrap, &config.transactional_id(), careful)?);
    batch::init(&producer).await?;
    tracing::info!(transactional_id = %config.transactional_id(), "producer started; earlier producers are fenced");
    Ok(producer)
}

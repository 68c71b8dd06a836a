//! What the relay's integration tests share: a relay configured for a test database and topic
//! prefix, and waiting until the relay has emptied the outbox.

#![allow(dead_code)] // each test file uses a different part

use std::time::Duration;

use ordexa_relay::RelayConfig;
use ordexa_testkit::{self as kit, TestResult};
use sqlx::PgPool;

/// Logs of the relay under test on stderr, filtered by `RUST_LOG` (nothing when it is unset).
pub fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    }
}

/// A relay on `database_url` publishing to `<prefix>orders`, 4 batches in flight.
pub fn relay_config(
    database_url: &str,
    prefix: &str,
    batch_size: i64,
    poll_interval: Duration,
) -> Result<RelayConfig, kit::Failure> {
    Ok(RelayConfig {
        database_url: database_url.to_owned(),
        kafka_bootstrap: kit::kafka_bootstrap()?,
        topic_prefix: prefix.to_owned(),
        batch_size,
        poll_interval,
        batches_in_flight: 4,
        vacuum_every: ordexa_relay::DEFAULT_VACUUM_EVERY,
        transactional_id: None,
    })
}

/// Rows in the outbox that this session can see.
pub async fn outbox_rows(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(pool).await
}

/// Waits until the outbox holds no row this session can see; fails, naming `what` and the rows
/// left, when it still does after `within`.
pub async fn drained(pool: &PgPool, within: Duration, what: &str) -> TestResult {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = outbox_rows(pool).await?;
        if left == 0 {
            return Ok(());
        }
        assert!(tokio::time::Instant::now() < deadline, "{left} rows still in the outbox after {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

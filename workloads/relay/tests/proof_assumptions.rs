//! The relay refuses to run where its ordering proof does not hold, and says what to fix: here,
//! an outbox id sequence that caches ids per session (which lets a session draw ids ahead of its
//! transaction id).

use std::time::Duration;

use ordexa_platform::{Health, Shutdown};
use ordexa_relay::RelayError;
use ordexa_testkit::{self as kit, TestDatabase, TestResult};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_that_caches_ids_makes_the_relay_refuse_to_run() -> TestResult {
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, 2).await?;
    ordexa_store::migrate(&pool).await?;
    sqlx::query("ALTER SEQUENCE outbox_id_seq CACHE 20").execute(&pool).await?;
    let prefix = format!("{}.", kit::unique_name("proof"));
    ordexa_topics::ensure_topics(&kit::kafka_bootstrap()?, &prefix, 1, 1).await?;

    let config = common::relay_config(&db.url, &prefix, 10, Duration::from_millis(200))?;
    let health = Health::new("starting");
    let (_trigger, shutdown) = Shutdown::new();
    let outcome = tokio::time::timeout(Duration::from_secs(60), ordexa_relay::run(config, health.clone(), shutdown))
        .await
        .map_err(|_| "the relay went on running")?;
    match outcome {
        Err(RelayError::Unsafe(why)) => {
            assert!(why.contains("outbox_id_seq") && why.contains("CACHE 1"), "names the fix: {why}");
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    assert!(health.check().is_err_and(|reason| reason.contains("refusing to run")), "{:?}", health.check());
    pool.close().await;
    db.drop_database().await
}

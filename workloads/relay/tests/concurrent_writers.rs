//! The relay under many concurrent, paced writers whose transactions overlap its claims: no
//! committed row is left behind. Claims start past the ids they settle, so a claim that wrongly
//! judged a writer finished would skip that writer's rows until the next leadership term.
//! (The one such case found so far, a claim taking its transaction id before its snapshot, showed
//! under paced pgbench writers with a release relay, the shape of the second test below; against
//! that code the first test, with a debug relay, passed twice: they guard the general property.)

use std::time::Duration;

use ordexa_platform::{Health, Shutdown};
use ordexa_testkit::{self as kit, TestDatabase, TestResult};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_overlapping_writer_transactions_are_all_published() -> TestResult {
    all_published_under(Writers { connections: 12, rows: 40, pause_ms: 30 }).await
}

/// The shape that found the flaw (once `bench/relay-overlap.sh`): 16 connections paced to 330
/// transactions/s in all, 78 rows each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_many_wide_paced_writer_transactions_are_all_published() -> TestResult {
    all_published_under(Writers { connections: 16, rows: 78, pause_ms: 16_000 / 330 }).await
}

/// Writers committing multi-row transactions, each row of its own order, in one INSERT (the
/// transaction's first write is its outbox row), each pausing between transactions.
struct Writers {
    connections: usize,
    rows: i64,
    pause_ms: u64,
}

async fn all_published_under(shape: Writers) -> TestResult {
    let Writers { connections, rows, pause_ms } = shape;
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, connections as u32 + 2).await?;
    ordexa_store::migrate(&pool).await?;
    let prefix = format!("{}.", kit::unique_name("relayload"));
    ordexa_topics::ensure_topics(&kit::kafka_bootstrap()?, &prefix, 3, 1).await?;
    let config = common::relay_config(&db.url, &prefix, 500, Duration::from_millis(500))?;
    let (trigger, shutdown) = Shutdown::new();
    let relay = tokio::spawn(ordexa_relay::run(config, Health::new("starting"), shutdown));

    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut writers = Vec::new();
    for _ in 0..connections {
        let pool = pool.clone();
        writers.push(tokio::spawn(async move {
            let mut committed = 0_i64;
            while tokio::time::Instant::now() < until {
                sqlx::query(
                    "INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, schema_version, payload) \
                     SELECT gen_random_uuid(), gen_random_uuid(), 1, 'order.created', 1, '{}' FROM generate_series(1, $1)",
                )
                .bind(rows)
                .execute(&pool)
                .await?;
                committed += rows;
                // Paced, so the relay keeps up and its claims often find no writer in progress.
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            }
            Ok::<i64, sqlx::Error>(committed)
        }));
    }
    let mut committed = 0;
    for writer in writers {
        committed += writer.await.map_err(|e| e.to_string())??;
    }

    let what = format!("{committed} rows committed, the writers stopped");
    common::drained(&pool, Duration::from_secs(30), &what).await?;
    trigger.fire();
    relay.await??;
    let published = kit::read_topic(&ordexa_topics::orders_topic(&prefix)).await?;
    eprintln!("concurrent writers: {committed} rows committed, {} messages", published.len());
    assert!(published.len() as i64 >= committed, "every committed row is published at least once");
    pool.close().await;
    db.drop_database().await
}

//! Kafka killed with SIGKILL and restarted while orders flow through relay and projectors:
//! once the outbox is drained, every order's latest version is in every read-model table —
//! the projectors never move past an event they have not applied.
//!
//! This kills the shared local Kafka, so it is the only test in its binary (cargo runs test
//! binaries one after another).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{World, free_port, order_with_history, read_model_keyspace, server_script, spawn_projector, spawn_relay};
use ordexa_projector::reconcile::{Options, reconcile};
use ordexa_testkit::{self as kit, Failure, TestResult};

const WRITERS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_crash_under_load_leaves_no_event_unprojected() -> TestResult {
    let world = World::new(6).await?;
    let (keyspace, model) = read_model_keyspace().await?;
    let relay = spawn_relay(&world, 0)?;
    let projectors =
        [spawn_projector(&world, &keyspace, free_port()?)?, spawn_projector(&world, &keyspace, free_port()?)?];

    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, stop, counter) = (world.store.clone(), stop.clone(), counter.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    // Histories of 1 to 4 versions, ending PENDING, PENDING, SHIPPED, SHIPPED.
                    match order_with_history(&store, &format!("user-{w}"), n % 4).await {
                        Ok(id) => ids.push(id),
                        // PostgreSQL is never stopped here: a failed command is a failure.
                        Err(e) => return Err(e),
                    }
                }
                Ok::<_, Failure>(ids)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(8)).await;
    server_script("kafka", "kill")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    server_script("kafka", "start")?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ids = Vec::new();
    for writer in writers {
        ids.extend(writer.await??);
    }
    world.wait_drained(Duration::from_secs(120)).await?;

    // Every order of the write model agrees with all three read-model tables (`ordexa
    // reconcile`), once the projection caught up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let options = Options { repair: false, settle: Duration::from_secs(2), page: 1000 };
    let report = loop {
        let report = reconcile(&world.store, &model, options).await?;
        if report.differences.is_empty() || tokio::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    relay.terminate()?;
    for projector in projectors {
        projector.terminate()?;
    }
    println!(
        "kafka crash: {} orders written, {} in the write model, {} differ from the read model",
        ids.len(),
        report.checked,
        report.differences.len()
    );
    let shown: Vec<String> = report.differences.iter().take(20).map(ToString::to_string).collect();
    assert!(report.differences.is_empty(), "orders never projected (first 20): {shown:#?}");
    assert_eq!(report.checked, ids.len() as u64);
    drop_keyspace(&keyspace).await?;
    world.finish().await
}

async fn drop_keyspace(keyspace: &str) -> TestResult {
    kit::cassandra().await?.query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[]).await?;
    Ok(())
}

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
use ordexa_domain::{Order, OrderId, OrderStatus};
use ordexa_readmodel::ReadModel;
use ordexa_store::{Actor, Store};
use ordexa_testkit::{self as kit, Failure, TestResult};
use scylla::value::CqlTimestamp;

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

    let differ = wait_converged(&world.store, &model, &keyspace, &ids, Duration::from_secs(90)).await?;
    relay.terminate()?;
    for projector in projectors {
        projector.terminate()?;
    }
    println!("kafka crash: {} orders, {} differ from the write model", ids.len(), differ.len());
    assert!(differ.is_empty(), "orders never projected (first 20): {:#?}", &differ[..differ.len().min(20)]);
    drop_keyspace(&keyspace).await?;
    world.finish().await
}

/// Waits until every order of `ids` reads the same in the read model as in the write model;
/// returns those that still differ at the deadline, with what each table holds.
async fn wait_converged(
    store: &Store,
    model: &ReadModel,
    keyspace: &str,
    ids: &[OrderId],
    within: Duration,
) -> Result<Vec<String>, Failure> {
    let staff = Actor { user_id: "staff".into(), is_admin: true };
    let mut expected = Vec::with_capacity(ids.len());
    for id in ids {
        expected.push(store.get_order(*id, &staff).await?);
    }
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut differ = Vec::new();
        for order in &expected {
            if let Some(why) = differs(model, keyspace, order).await? {
                differ.push(why);
            }
        }
        if differ.is_empty() || tokio::time::Instant::now() > deadline {
            return Ok(differ);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// How the read model differs from `order`, if it does: `orders_by_id` holds another version,
/// or `orders_by_status` does not hold the order under exactly its status.
async fn differs(model: &ReadModel, keyspace: &str, order: &Order) -> Result<Option<String>, Failure> {
    let projected = model.get(order.id).await?.map(|o| (o.version, o.status));
    let mut statuses = Vec::new();
    for status in OrderStatus::ALL {
        let cql = format!(
            "SELECT version FROM {keyspace}.orders_by_status WHERE status = ? AND bucket = ? AND created_at = ? AND order_id = ?"
        );
        let bucket = CqlTimestamp(ordexa_readmodel::bucket_of(order.created_at));
        let created = CqlTimestamp(order.created_at.timestamp_millis());
        let rows = model
            .session()
            .query_unpaged(cql, (status.as_str(), bucket, created, order.id.0))
            .await?
            .into_rows_result()?;
        if rows.rows_num() > 0 {
            statuses.push(status);
        }
    }
    if projected == Some((order.version, order.status)) && statuses == [order.status] {
        return Ok(None);
    }
    Ok(Some(format!(
        "order {} v{} {:?}: orders_by_id {projected:?}, orders_by_status under {statuses:?}",
        order.id, order.version, order.status
    )))
}

async fn drop_keyspace(keyspace: &str) -> TestResult {
    kit::cassandra().await?.query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[]).await?;
    Ok(())
}

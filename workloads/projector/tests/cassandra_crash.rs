//! Read-model writes Cassandra acknowledged survive the node being killed -9. The projector
//! commits its Kafka offsets once Cassandra acknowledged an event's writes, so an acknowledged
//! write lost in a crash would leave the read model behind for good (ADR 0031).
//!
//! This kills the shared local Cassandra, so it is the only test in its binary.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{World, histories};
use futures::StreamExt;
use ordexa_domain::OrderId;
use ordexa_readmodel::ReadModel;
use ordexa_testkit::{self as kit, TestResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_cassandra_acknowledged_survive_a_crash() -> TestResult {
    let mut world = World::new(1).await?;
    let model = world.read_model().await?;
    let keyspace = model.keyspace().to_owned();
    let (events, _) = histories(20_000, 200)?;

    // Writes as the projector makes them (32 in flight), until the node is gone.
    let acknowledged: Arc<Mutex<Vec<(OrderId, i64)>>> = Arc::default();
    let writer = {
        let (model, acknowledged) = (model.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let writes = futures::stream::iter(events).map(|event| {
                let model = model.clone();
                async move { model.apply(&event).await.map(|()| (event.order_id, event.version)) }
            });
            let mut writes = writes.buffer_unordered(32);
            while let Some(written) = writes.next().await {
                match written {
                    Ok(done) => acknowledged.lock().map_err(|_| "poisoned")?.push(done),
                    Err(_) => break,
                }
            }
            Ok::<_, kit::Failure>(())
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    kit::server_script("cassandra", "kill")?;
    writer.await??;
    kit::server_script("cassandra", "start")?;

    let acknowledged = std::mem::take(&mut *acknowledged.lock().map_err(|_| "poisoned")?);
    assert!(acknowledged.len() > 100, "only {} writes before the crash", acknowledged.len());
    let reopened = ReadModel::new(ordexa_readmodel::connect(&kit::cassandra_nodes()?).await?, &keyspace).await?;
    let mut lost = Vec::new();
    for (order, version) in &acknowledged {
        let stored = reopened.get(*order).await?.map_or(0, |o| o.version);
        if stored < *version {
            lost.push(format!("{order} v{version}: read model has v{stored}"));
        }
    }
    println!("cassandra crash: {} writes acknowledged before the kill, {} lost", acknowledged.len(), lost.len());
    assert!(lost.is_empty(), "acknowledged writes lost in the crash (first 10): {:#?}", &lost[..lost.len().min(10)]);
    world.finish().await
}

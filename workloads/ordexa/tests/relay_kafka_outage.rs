//! Kafka stopped for 20 s in the middle of a stream: the relay reports not-ready, keeps
//! retrying, recovers by itself, and nothing is lost or reordered.
//!
//! This stops the shared local Kafka, so it is the only test in its binary (cargo runs test
//! binaries one after another).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{World, free_port, order_with_history, spawn_relay};
use ordexa_testkit::{self as kit, TestResult};

fn kafka_script(action: &str) -> TestResult {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/kafka.sh");
    let status = Command::new("bash").arg(script).arg(action).status()?;
    if !status.success() {
        return Err(format!("infra/kafka.sh {action} failed: {status}").into());
    }
    Ok(())
}

async fn readiness(client: &reqwest::Client, port: u16) -> Option<u16> {
    client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.ok().map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_outage_delays_events_but_loses_and_reorders_none() -> TestResult {
    let world = World::new(3).await?;
    let port = free_port()?;
    let relay = spawn_relay(&world, port)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;

    // A steady stream of orders for the whole test: before, during and after the outage.
    let store = world.store.clone();
    let stream = tokio::spawn(async move {
        let mut ids = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(40);
        while tokio::time::Instant::now() < until {
            ids.push(order_with_history(&store, "alice", 3).await?);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<_, kit::Failure>(ids)
    });

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(readiness(&client, port).await, Some(200), "ready before the outage");
    kafka_script("stop")?;
    let outage_started = tokio::time::Instant::now();
    let mut saw_not_ready = false;
    while outage_started.elapsed() < Duration::from_secs(20) {
        saw_not_ready |= readiness(&client, port).await == Some(503);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let backlog_during_outage = world.outbox_len().await?;
    kafka_script("start")?;

    let ids = stream.await??;
    world.wait_drained(Duration::from_secs(120)).await?;
    // Readiness comes back by itself once batches go through again.
    let mut ready_again = false;
    for _ in 0..40 {
        if readiness(&client, port).await == Some(200) {
            ready_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    relay.terminate()?;

    assert!(saw_not_ready, "the relay reported not-ready while Kafka was down");
    assert!(backlog_during_outage > 0, "events piled up in the outbox during the outage");
    assert!(ready_again, "the relay became ready again after Kafka came back");
    let messages = kit::read_topic(&world.topic()).await?;
    let report = kit::check_order_stream(&messages)?;
    println!(
        "kafka outage: {} orders, {} events, {} duplicates, {backlog_during_outage} rows waited out the outage",
        ids.len(),
        report.events,
        report.duplicates
    );
    assert_eq!(report.events, ids.len() * 4);
    for id in &ids {
        assert_eq!(report.latest.get(&id.to_string()).copied(), Some(4), "order {id}");
    }
    world.finish().await
}

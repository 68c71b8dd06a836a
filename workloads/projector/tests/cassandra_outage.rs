//! Cassandra stopped for 30 s while events keep arriving: the projector reports not-ready,
//! retries without skipping, recovers by itself, and the read model converges with nothing
//! lost.
//!
//! This stops the shared local Cassandra, so it is the only test in its binary (cargo runs
//! test binaries one after another).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{World, histories, wait_converged};
use ordexa_testkit::TestResult;

fn cassandra_script(action: &str) -> TestResult {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/cassandra.sh");
    let status = Command::new("bash").arg(script).arg(action).status()?;
    if !status.success() {
        return Err(format!("infra/cassandra.sh {action} failed: {status}").into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cassandra_outage_delays_the_read_model_but_loses_nothing() -> TestResult {
    let mut world = World::new(3).await?;
    let model = world.read_model().await?;
    let projector = world.projector("main", model.clone());
    let (events, finals) = histories(1200, 50)?;
    // Events arrive steadily for the whole test, in about 60 slices.
    let slices: Vec<Vec<ordexa_domain::OrderEvent>> = {
        let mut by_order: Vec<Vec<ordexa_domain::OrderEvent>> = Vec::new();
        for event in events {
            match by_order.last_mut() {
                Some(last) if last[0].order_id == event.order_id => last.push(event),
                _ => by_order.push(vec![event]),
            }
        }
        by_order.chunks(20).map(|orders| orders.concat()).collect()
    };

    let started = Instant::now();
    let mut stopped_at = None;
    let mut restarted = false;
    let mut saw_not_ready = false;
    for (i, slice) in slices.iter().enumerate() {
        world.publish(slice).await?;
        if i == 5 {
            cassandra_script("stop")?;
            stopped_at = Some(Instant::now());
        }
        if let Some(at) = stopped_at
            && !restarted
        {
            saw_not_ready |= projector.health.check().is_err();
            if at.elapsed() >= Duration::from_secs(30) {
                cassandra_script("start")?;
                restarted = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    if !restarted {
        return Err(format!("the stream ended before the outage did ({:?})", started.elapsed()).into());
    }
    assert!(saw_not_ready, "readiness never went false while Cassandra was down");

    wait_converged(&model, &finals, Duration::from_secs(180)).await?;
    // Ready again by itself once the backlog is written.
    let mut ready = false;
    for _ in 0..100 {
        if projector.health.check().is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "projector still not ready: {:?}", projector.health.check());
    projector.stop().await?;
    world.finish().await
}

//! Three relays, 10,000 events across 500 orders, relays killed with SIGKILL at random moments
//! and restarted: every event arrives, per-order order holds, duplicates are exact repeats.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{World, order_with_history, spawn_relay};
use futures::future::try_join_all;
use ordexa_testkit::{self as kit, TestResult};
use rand::Rng;

const ORDERS: usize = 500;
const EVENTS_PER_ORDER: usize = 20;
const RELAYS: usize = 3;
const WRITERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_and_restarted_relays_lose_nothing_and_keep_per_order_order() -> TestResult {
    let world = World::new(6).await?;
    let mut relays = Vec::new();
    for _ in 0..RELAYS {
        relays.push(spawn_relay(&world, 0)?);
    }

    // Writers: 500 orders, each driven to version 20, WRITERS at a time.
    let next = Arc::new(AtomicUsize::new(0));
    let writers = (0..WRITERS).map(|w| {
        let store = world.store.clone();
        let next = next.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < ORDERS {
                ids.push(order_with_history(&store, &format!("user-{w}"), EVENTS_PER_ORDER - 1).await?);
            }
            Ok::<_, kit::Failure>(ids)
        })
    });
    let writing = tokio::spawn(try_join_all(writers));

    // Chaos: while the writers run, SIGKILL a random relay every 0.3–1.2 s and start a new one.
    let mut kills = 0usize;
    while !writing.is_finished() || kills < 5 {
        let pause = rand::rng().random_range(300..1200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let victim = rand::rng().random_range(0..relays.len());
        relays[victim].kill()?;
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..300))).await;
        relays[victim] = spawn_relay(&world, 0)?;
    }
    let mut order_ids = Vec::new();
    for ids in writing.await?? {
        order_ids.extend(ids?);
    }
    assert_eq!(order_ids.len(), ORDERS);

    world.wait_drained(Duration::from_secs(120)).await?;
    // Let the youngest relay finish starting, so SIGTERM meets its handler.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for relay in relays {
        relay.terminate()?;
    }

    let messages = kit::read_topic(&world.topic()).await?;
    let report = kit::check_order_stream(&messages)?;
    println!(
        "relay chaos: {kills} SIGKILLs, {} messages, {} distinct events, {} exact duplicates",
        messages.len(),
        report.events,
        report.duplicates
    );
    assert_eq!(report.events, ORDERS * EVENTS_PER_ORDER, "every committed event arrived");
    for id in &order_ids {
        assert_eq!(report.latest.get(&id.to_string()).copied(), Some(EVENTS_PER_ORDER as i64), "order {id}");
    }
    assert_eq!(messages.len(), report.events + report.duplicates);
    world.finish().await
}

//! A relay leader stopped with SIGSTOP while orders flow: a standby takes over within 30 s, and
//! when the stopped leader wakes it publishes nothing more (its producer is fenced); every event
//! arrives, each order's in version order.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Relay, World, free_port, metric, order_with_history, spawn_relay};
use ordexa_testkit::{self as kit, Failure, TestResult};

/// The bound the reliability contract sets for replacing a stopped leader.
const FAILOVER_BOUND: Duration = Duration::from_secs(30);

/// The index of the relay that leads, once one does.
async fn leader_of(client: &reqwest::Client, ports: &[u16], within: Duration) -> Result<usize, Failure> {
    let deadline = Instant::now() + within;
    loop {
        for (i, port) in ports.iter().enumerate() {
            if metric(client, *port, "ordexa_relay_leader").await.ok().flatten() == Some(1.0) {
                return Ok(i);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no relay led within {within:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_leader_is_replaced_in_bounded_time_and_publishes_nothing_when_it_wakes() -> TestResult {
    let world = World::new(3).await?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let ports = [free_port()?, free_port()?];
    let relays: Vec<Relay> = ports.iter().map(|port| spawn_relay(&world, *port)).collect::<Result<_, _>>()?;
    let leading = leader_of(&client, &ports, Duration::from_secs(30)).await?;
    let standby = 1 - leading;

    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (store, writing) = (world.store.clone(), writing.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while writing.load(Ordering::Relaxed) {
                ids.push(order_with_history(&store, "alice", 2).await?);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, Failure>(ids)
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    relays[leading].signal("STOP")?;
    let stopped = Instant::now();
    let stopped_published = metric(&client, ports[standby], "ordexa_relay_published_total").await?.unwrap_or(0.0);
    // The standby leads and publishes rows written after the stop.
    let took_over = loop {
        let published = metric(&client, ports[standby], "ordexa_relay_published_total").await?.unwrap_or(0.0);
        if published > stopped_published {
            break stopped.elapsed();
        }
        assert!(stopped.elapsed() < FAILOVER_BOUND * 2, "the standby has not published for {:?}", stopped.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("failover: the standby published {took_over:?} after the leader was stopped");
    assert!(took_over < FAILOVER_BOUND, "failover took {took_over:?}, more than {FAILOVER_BOUND:?}");

    // The stopped leader wakes while writes go on; its producer is fenced.
    relays[leading].signal("CONT")?;
    let woke_published = metric(&client, ports[leading], "ordexa_relay_published_total").await?.unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    writing.store(false, Ordering::Relaxed);
    let ids = writer.await??;
    world.wait_drained(Duration::from_secs(60)).await?;
    let after = metric(&client, ports[leading], "ordexa_relay_published_total").await?.unwrap_or(0.0);
    assert_eq!(after, woke_published, "the woken leader published after another took over");
    assert_eq!(
        metric(&client, ports[leading], "ordexa_relay_leader").await?,
        Some(0.0),
        "the woken leader knows it no longer leads"
    );

    let messages = kit::read_topic(&world.topic()).await?;
    let report = kit::check_order_stream(&messages)?;
    println!("failover: {} orders, {} events, {} exact duplicates", ids.len(), report.events, report.duplicates);
    for id in &ids {
        assert_eq!(report.latest.get(&id.to_string()).copied(), Some(3), "order {id}");
    }
    for relay in relays {
        relay.terminate()?;
    }
    world.finish().await
}

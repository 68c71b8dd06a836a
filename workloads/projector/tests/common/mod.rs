//! The projector's test world: topics and keyspaces of its own on the real local Kafka and
//! Cassandra, order histories built with the domain's own commands, and table dumps.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use ordexa_domain::{
    Currency, ItemRequest, Order, OrderEvent, OrderId, OrderStatus, Product, Sku, Transition, price_items,
};
use ordexa_platform::{Health, Shutdown, ShutdownTrigger};
use ordexa_projector::ProjectorConfig;
use ordexa_readmodel::{ReadModel, Replication};
use ordexa_testkit::{self as kit, Failure};
use rand::Rng;
use rand::seq::IndexedRandom;
use rdkafka::producer::FutureRecord;

pub struct World {
    pub prefix: String,
    pub bootstrap: String,
    pub keyspaces: Vec<String>,
}

impl World {
    /// Fresh topics (`partitions` each) under a prefix of this test's own.
    pub async fn new(partitions: i32) -> Result<World, Failure> {
        let prefix = format!("{}.", kit::unique_name("projtest"));
        let bootstrap = kit::kafka_bootstrap()?;
        ordexa_topics::ensure_topics(&bootstrap, &prefix, partitions, 1).await?;
        Ok(World { prefix, bootstrap, keyspaces: Vec::new() })
    }

    pub fn topic(&self) -> String {
        ordexa_topics::orders_topic(&self.prefix)
    }

    pub fn dlq_topic(&self) -> String {
        ordexa_topics::dlq_topic(&self.prefix)
    }

    /// An empty keyspace with the current schema, dropped by [`World::finish`].
    pub async fn read_model(&mut self) -> Result<Arc<ReadModel>, Failure> {
        let keyspace = kit::unique_name("projtest");
        let session = ordexa_readmodel::connect(&kit::cassandra_nodes()?).await?;
        ordexa_readmodel::apply_schema(&session, &keyspace, &Replication::Simple(1)).await?;
        self.keyspaces.push(keyspace.clone());
        Ok(Arc::new(ReadModel::new(session, &keyspace).await?))
    }

    /// A projector in consumer group `group`, writing into `model`.
    pub fn projector(&self, group: &str, model: Arc<ReadModel>) -> RunningProjector {
        let config = ProjectorConfig {
            kafka_bootstrap: self.bootstrap.clone(),
            topic_prefix: self.prefix.clone(),
            group_id: format!("{}{group}", self.prefix),
            batch_size: 200,
            concurrency: 32,
        };
        let (trigger, shutdown) = Shutdown::new();
        let health = Health::new("starting");
        let task = tokio::spawn(ordexa_projector::run(config, model, health.clone(), shutdown));
        RunningProjector { trigger, health, task }
    }

    /// Produces every event keyed by its order id, each order's events in version order, and
    /// waits for Kafka's acknowledgements.
    pub async fn publish(&self, events: &[OrderEvent]) -> Result<(), Failure> {
        let producer = kit::kafka_producer()?;
        let topic = self.topic();
        for chunk in events.chunks(500) {
            let mut sends = Vec::new();
            for event in chunk {
                let key = event.order_id.to_string();
                let value = serde_json::to_vec(event)?;
                let producer = &producer;
                let topic = &topic;
                sends.push(async move {
                    producer
                        .send(FutureRecord::to(topic).key(&key).payload(&value), Duration::from_secs(30))
                        .await
                        .map_err(|(e, _)| e)
                });
            }
            // Sent together, acknowledged together: one order's events sit in one partition,
            // and the idempotent producer keeps their order.
            for result in futures::future::join_all(sends).await {
                result?;
            }
        }
        Ok(())
    }

    /// Drops the test's keyspaces (a failing test leaves them for inspection).
    pub async fn finish(self) -> kit::TestResult {
        let session = kit::cassandra().await?;
        for keyspace in &self.keyspaces {
            session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[]).await?;
        }
        Ok(())
    }
}

pub struct RunningProjector {
    trigger: ShutdownTrigger,
    pub health: Health,
    task: tokio::task::JoinHandle<Result<(), ordexa_projector::ProjectorError>>,
}

impl RunningProjector {
    /// Stops it the way SIGTERM would; it must end cleanly.
    pub async fn stop(self) -> kit::TestResult {
        self.trigger.fire();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.map_err(|_| "projector did not stop")???;
        Ok(())
    }
}

/// Waits until the read model holds every order at its final version.
pub async fn wait_converged(model: &ReadModel, finals: &HashMap<OrderId, Order>, limit: Duration) -> kit::TestResult {
    let started = Instant::now();
    let mut behind: Vec<OrderId> = finals.keys().copied().collect();
    while !behind.is_empty() {
        let mut still = Vec::new();
        for id in behind {
            match model.get(id).await {
                Ok(Some(order)) if order == finals[&id] => {}
                _ => still.push(id),
            }
        }
        behind = still;
        if !behind.is_empty() {
            if started.elapsed() > limit {
                return Err(format!("{} orders not at their final version after {limit:?}", behind.len()).into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn product(sku: &str, price: i64) -> Result<Product, Failure> {
    Ok(Product {
        sku: Sku::parse(sku).map_err(|e| e.message)?,
        name: format!("{sku} product"),
        unit_price: price,
        currency: Currency::parse("EUR").map_err(|e| e.message)?,
        active: true,
    })
}

/// `orders` orders for `users` users, created a few minutes apart across several hours (so
/// several status buckets), each driven by random allowed commands: address revisions while
/// PENDING, confirm, ship, deliver, cancel. Returns every event in version order per order,
/// and each order's final state.
pub fn histories(orders: usize, users: usize) -> Result<(Vec<OrderEvent>, HashMap<OrderId, Order>), Failure> {
    let catalog: HashMap<Sku, Product> =
        [product("MUG", 1299)?, product("TEE", 2500)?].into_iter().map(|p| (p.sku.clone(), p)).collect();
    let mut rng = rand::rng();
    let start: DateTime<Utc> = ordexa_domain::now_micros() - TimeDelta::hours(5);
    let mut events = Vec::new();
    let mut finals = HashMap::new();
    for i in 0..orders {
        let items = [ItemRequest { sku: "MUG".into(), quantity: 1 + (i % 3) as i64 }];
        let priced = price_items(&items, &catalog)?;
        // Spread over four hours, all in the past: status lists start at the current hour.
        let offset_ms = i as i64 * 4 * 3_600_000 / orders.max(1) as i64;
        let mut now = start + TimeDelta::milliseconds(offset_ms) + TimeDelta::microseconds(rng.random_range(0..1000));
        let mut order = Order::place(
            OrderId::new(),
            format!("user-{}", i % users),
            priced,
            ordexa_testkit::shipping_address(&format!("{i} Main St")),
            now,
        );
        events.push(OrderEvent::created(&order));
        for step in 0..rng.random_range(0..6) {
            now += TimeDelta::milliseconds(rng.random_range(1..5000));
            let choices: &[Option<Transition>] = match order.status {
                OrderStatus::Pending => &[None, Some(Transition::Confirm), Some(Transition::Cancel)],
                OrderStatus::Confirmed => &[Some(Transition::Ship), Some(Transition::Cancel)],
                OrderStatus::Shipped => &[Some(Transition::Deliver)],
                OrderStatus::Delivered | OrderStatus::Cancelled => break,
            };
            match choices.choose(&mut rng).copied().flatten() {
                Some(t) => order.transition(t, now)?,
                None => order.revise(
                    None,
                    Some(ordexa_testkit::shipping_address(&format!("{i} Revision Road {step}"))),
                    now,
                )?,
            }
            events.push(OrderEvent::updated(&order));
        }
        finals.insert(order.id, order);
    }
    Ok((events, finals))
}

/// Every row of every read-model table, as sorted JSON lines per table, plus each
/// `orders_by_id` row's write time.
pub async fn dump(model: &ReadModel) -> Result<Vec<(String, Vec<String>)>, Failure> {
    let ks = model.keyspace();
    let mut out = Vec::new();
    let queries = [
        ("orders_by_id", format!("SELECT JSON * FROM {ks}.orders_by_id")),
        ("orders_by_id writetime", format!("SELECT JSON order_id, writetime(body) AS written FROM {ks}.orders_by_id")),
        ("orders_by_user", format!("SELECT JSON * FROM {ks}.orders_by_user")),
        ("orders_by_status", format!("SELECT JSON * FROM {ks}.orders_by_status")),
        ("order_buckets", format!("SELECT JSON * FROM {ks}.order_buckets")),
    ];
    for (name, cql) in queries {
        let mut pager = model.session().query_iter(cql, &[]).await?.rows_stream::<(String,)>()?;
        let mut rows = Vec::new();
        while let Some(row) = futures::StreamExt::next(&mut pager).await {
            rows.push(row?.0);
        }
        rows.sort();
        out.push((name.to_owned(), rows));
    }
    Ok(out)
}

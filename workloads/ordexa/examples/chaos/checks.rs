//! The checks after the load, once the outbox is drained and the projection caught up:
//! (a) every acknowledged write is in the write model; (b) `reconcile` finds every order of the
//! write model in all three read-model tables at its version; (c) the topic holds every order's
//! events in version order, with only exact repeats; (d) nothing went to a dead letter; (e) every
//! workload is healthy and ready by itself. A failed check prints what a person needs to debug it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use ordexa_projector::reconcile::{Difference, Options, reconcile};
use ordexa_testkit::ConsumedMessage;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use crate::faults::FaultRecord;
use crate::load::Ledger;
use crate::system::{Role, System};
use crate::timeline::secs;
use crate::{Result, kit};

/// How long each wait after the load may take.
#[derive(Clone, Debug)]
pub struct Bounds {
    /// Until the outbox is empty.
    pub drain: Duration,
    /// Until the read model agrees with the write model.
    pub projection: Duration,
    /// Until every workload is healthy and ready.
    pub health: Duration,
}

/// What the checks counted.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Orders in the write model.
    pub orders: usize,
    /// Distinct (order, version) events on the topic, and exact repeats.
    pub events: usize,
    pub duplicates: usize,
    /// Orders whose read-model rows still differed after the projection bound.
    pub differences: usize,
    pub dlq: usize,
    pub outbox_dead_letters: i64,
    /// Seconds until the outbox was empty and the read model agreed, after the load stopped.
    pub drained_in: Option<Duration>,
    pub projected_in: Option<Duration>,
}

pub struct Findings {
    pub counts: Counts,
    pub failures: Vec<String>,
}

pub async fn run(system: &mut System, ledger: &Ledger, faults: &[FaultRecord], bounds: &Bounds) -> Result<Findings> {
    let clock = system.clock();
    let settings = system.settings.clone();
    let mut counts = Counts::default();
    let mut failures = Vec::new();

    // What happened during the load.
    for f in faults {
        failures.extend(f.failures.iter().map(|why| format!("{:?}: {why}", f.fault)));
        if let Err(unhealthy) = &f.recovered {
            failures.push(format!(
                "{:?}: not every workload healthy and ready within {} by itself: {}",
                f.fault,
                secs(bounds.health),
                unhealthy.join("; ")
            ));
        }
    }
    if !ledger.anomalies.is_empty() {
        let shown: Vec<&str> = ledger.anomalies.iter().take(20).map(String::as_str).collect();
        failures.push(format!(
            "{} answers the API must not give (first 20):\n  {}",
            ledger.anomalies.len(),
            shown.join("\n  ")
        ));
    }

    // The outbox drains.
    let pool = ordexa_store::connect(&settings.database_url, 4).await?;
    let store = ordexa_store::Store::new(pool.clone());
    let started = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await?;
        if left == 0 {
            counts.drained_in = Some(started.elapsed());
            clock.say(format!("check: outbox empty after {}", secs(started.elapsed())));
            break;
        }
        if started.elapsed() > bounds.drain {
            let oldest: Vec<(String, i64)> =
                sqlx::query_as("SELECT aggregate_id::text, aggregate_version FROM outbox ORDER BY id LIMIT 10")
                    .fetch_all(&pool)
                    .await?;
            failures.push(format!(
                "{left} outbox rows still unpublished {} after the load stopped; the first: {oldest:?}",
                secs(bounds.drain)
            ));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // (a) Nothing acknowledged is lost.
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT id::text, version, status FROM orders").fetch_all(&pool).await?;
    counts.orders = rows.len();
    let written: HashMap<&str, (i64, &str)> =
        rows.iter().map(|(id, version, status)| (id.as_str(), (*version, status.as_str()))).collect();
    let mut lost = Vec::new();
    let mut disagree = Vec::new();
    for order in &ledger.orders {
        match written.get(order.id.as_str()) {
            None => lost.push(format!("order {} (acknowledged v{}) is not in the write model", order.id, order.acked)),
            Some((version, _)) if *version < order.acked => {
                lost.push(format!("order {} is at v{version}, below the acknowledged v{}", order.id, order.acked))
            }
            Some((version, status)) if order.certain && (*version != order.believed || *status != order.status) => {
                disagree.push(format!(
                    "order {} is v{version} {status} in the write model; its client had it at v{} {}",
                    order.id, order.believed, order.status
                ))
            }
            Some(_) => {}
        }
    }
    if !lost.is_empty() {
        failures.push(format!("{} acknowledged writes lost (first 20):\n  {}", lost.len(), first(&lost, 20)));
    }
    if !disagree.is_empty() {
        failures.push(format!(
            "{} orders differ from what their client knows (first 20):\n  {}",
            disagree.len(),
            first(&disagree, 20)
        ));
    }
    let known: HashSet<&str> = ledger.orders.iter().map(|o| o.id.as_str()).collect();
    let unknown: Vec<&str> = written.keys().filter(|id| !known.contains(*id)).copied().collect();
    if !unknown.is_empty() {
        let line = format!(
            "{} orders in the write model that no create acknowledged ({} creates were given up): {:?}",
            unknown.len(),
            ledger.counts.creates_given_up,
            unknown.iter().take(10).collect::<Vec<_>>()
        );
        if unknown.len() as u64 > ledger.counts.creates_given_up {
            failures.push(format!("{line} — more than creates given up: an Idempotency-Key did not hold"));
        } else {
            clock.say(format!("check: {line}"));
        }
    }

    // (b) The read model agrees with the write model, all three tables.
    let nodes: Vec<String> = settings.cassandra_nodes.split(',').map(str::to_owned).collect();
    let model = ordexa_readmodel::ReadModel::new(ordexa_readmodel::connect(&nodes).await?, &settings.keyspace).await?;
    let options = Options { repair: false, settle: Duration::from_secs(2), page: 1000 };
    let started = Instant::now();
    let differences: Vec<Difference> = loop {
        match reconcile(&store, &model, options).await {
            Ok(report) if report.differences.is_empty() => {
                counts.projected_in = Some(started.elapsed());
                clock.say(format!(
                    "check: reconcile: {} orders, all three tables agree ({} after the outbox check began)",
                    report.checked,
                    secs(started.elapsed())
                ));
                break Vec::new();
            }
            Ok(report) if started.elapsed() > bounds.projection => break report.differences,
            Ok(report) => clock.say(format!("check: reconcile: {} orders differ; waiting", report.differences.len())),
            Err(err) if started.elapsed() > bounds.projection => return Err(err.into()),
            Err(err) => clock.say(format!("check: reconcile failed ({err}); again")),
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    counts.differences = differences.len();

    // (c) The topic: per order, versions 1, 2, 3, … with only exact repeats.
    let topic = settings.topic();
    let messages = kit(ordexa_testkit::read_topic(&topic).await)?;
    match ordexa_testkit::check_order_stream(&messages) {
        Ok(report) => {
            counts.events = report.events;
            counts.duplicates = report.duplicates;
            let mut missing = Vec::new();
            for (id, (version, _)) in &written {
                let on_topic = report.latest.get(*id).copied().unwrap_or(0);
                if on_topic != *version {
                    missing.push(format!("order {id}: v{version} in the write model, v{on_topic} on the topic"));
                }
            }
            for id in report.latest.keys().filter(|id| !written.contains_key(id.as_str())) {
                missing.push(format!("order {id} is on the topic but not in the write model"));
            }
            if !missing.is_empty() {
                failures.push(format!(
                    "{} orders' events are not all on the topic once the outbox is empty (first 20):\n  {}",
                    missing.len(),
                    first(&missing, 20)
                ));
            }
        }
        Err(err) => {
            failures.push(format!(
                "{topic} breaks the per-order order: {err:?}\n  every offending order:\n  {}",
                offending_orders(&messages).join("\n  ")
            ));
        }
    }

    // (d) Nothing dead-lettered.
    let dlq_topic = settings.dlq_topic();
    let dead = kit(ordexa_testkit::read_topic(&dlq_topic).await)?;
    counts.dlq = dead.len();
    if !dead.is_empty() {
        let shown: Vec<String> = dead
            .iter()
            .take(10)
            .map(|m| {
                format!(
                    "p{} o{} key {:?} error {:?} source {:?}/{:?}/{:?}",
                    m.partition,
                    m.offset,
                    m.key,
                    m.header("dlq.error"),
                    m.header("dlq.source.topic"),
                    m.header("dlq.source.partition"),
                    m.header("dlq.source.offset")
                )
            })
            .collect();
        failures.push(format!("{} dead letters in {dlq_topic} (first 10):\n  {}", dead.len(), shown.join("\n  ")));
    }
    counts.outbox_dead_letters =
        sqlx::query_scalar("SELECT count(*) FROM outbox_dead_letters").fetch_one(&pool).await?;
    if counts.outbox_dead_letters > 0 {
        failures.push(format!(
            "{} outbox rows Kafka refused are in outbox_dead_letters (`ordexa outbox dead list`)",
            counts.outbox_dead_letters
        ));
    }

    if !differences.is_empty() {
        let orders: Vec<(String, String)> = differences.iter().map(|d| (d.order.to_string(), d.to_string())).collect();
        let report = explain(system, &orders, &messages, faults).await;
        failures.push(format!(
            "{} orders differ between the write model and the read model {} after the load stopped:\n{report}",
            differences.len(),
            secs(bounds.projection)
        ));
    }

    // (e) Every workload healthy and ready, by itself.
    match system.wait_healthy(bounds.health).await? {
        Ok(_) => {}
        Err(unhealthy) => failures.push(format!("not healthy and ready at the end: {}", unhealthy.join("; "))),
    }
    if !system.unexpected_exits.is_empty() {
        failures.push(format!(
            "{} workloads exited by themselves:\n  {}",
            system.unexpected_exits.len(),
            system.unexpected_exits.join("\n  ")
        ));
    }
    pool.close().await;
    Ok(Findings { counts, failures })
}

fn first(lines: &[String], n: usize) -> String {
    lines.iter().take(n).map(String::as_str).collect::<Vec<_>>().join("\n  ")
}

/// A message's order id, version and `occurred_at`, from its JSON value.
fn event_of(m: &ConsumedMessage) -> Option<(String, i64, String)> {
    let v: Value = serde_json::from_slice(&m.payload).ok()?;
    Some((
        v["order_id"].as_str()?.to_owned(),
        v["version"].as_i64()?,
        v["occurred_at"].as_str().unwrap_or("").to_owned(),
    ))
}

/// Every order whose messages go back or skip a version (exact repeats aside), with its
/// messages' partition, offset and version: `check_order_stream` stops at the first.
fn offending_orders(messages: &[ConsumedMessage]) -> Vec<String> {
    let mut by_order: BTreeMap<String, Vec<(i32, i64, i64)>> = BTreeMap::new();
    for m in messages {
        if let Some((order, version, _)) = event_of(m) {
            by_order.entry(order).or_default().push((m.partition, m.offset, version));
        }
    }
    let mut out = Vec::new();
    for (order, seen) in by_order {
        let mut latest = 0;
        let mut broken = false;
        for (_, _, version) in &seen {
            if *version == latest + 1 {
                latest = *version;
            } else if *version > latest + 1 {
                broken = true;
            }
            // Otherwise a repeat of an earlier version; check_order_stream compares its bytes.
        }
        let partitions: HashSet<i32> = seen.iter().map(|(p, _, _)| *p).collect();
        if broken || partitions.len() > 1 {
            let list: Vec<String> = seen.iter().map(|(p, o, v)| format!("p{p} o{o} v{v}")).collect();
            out.push(format!("{order}: {}", list.join(", ")));
        }
        if out.len() >= 30 {
            break;
        }
    }
    out
}

/// For orders the read model lacks (each with a line saying how): their events on the topic
/// (partition, offset, version, time), the projector group's committed offset and the high
/// watermark of those partitions, which projector reported lag for them, and the faults' times —
/// enough to say whether the projectors skipped the events or never reached them, and after
/// which fault.
pub async fn explain(
    system: &System,
    orders: &[(String, String)],
    messages: &[ConsumedMessage],
    faults: &[FaultRecord],
) -> String {
    let settings = &system.settings;
    let wanted: HashSet<&str> = orders.iter().map(|(id, _)| id.as_str()).collect();
    let mut events: HashMap<String, Vec<String>> = HashMap::new();
    let mut partitions: BTreeMap<i32, usize> = BTreeMap::new();
    for m in messages {
        if let Some((order, version, occurred)) = event_of(m)
            && wanted.contains(order.as_str())
        {
            events.entry(order).or_default().push(format!(
                "p{} o{} v{version} occurred {occurred} broker-time {:?}",
                m.partition, m.offset, m.timestamp_ms
            ));
            *partitions.entry(m.partition).or_default() += 1;
        }
    }
    let mut out = String::new();
    for (id, how) in orders.iter().take(40) {
        out.push_str(&format!("  {how}\n"));
        for line in events.get(id).map(Vec::as_slice).unwrap_or_default() {
            out.push_str(&format!("      {line}\n"));
        }
    }
    if orders.len() > 40 {
        out.push_str(&format!("  … and {} more\n", orders.len() - 40));
    }
    out.push_str(&format!("  events of these orders per partition: {partitions:?}\n"));
    let topic = settings.topic();
    match group_offsets(&settings.kafka_bootstrap, &settings.projector_group(), &topic) {
        Ok(offsets) => {
            for (p, (committed, high)) in offsets {
                out.push_str(&format!(
                    "  partition {p}: group {} committed {committed:?}, high watermark {high}\n",
                    settings.projector_group()
                ));
            }
        }
        Err(err) => out.push_str(&format!("  the group's offsets could not be read: {err}\n")),
    }
    for i in system.of(Role::Projector) {
        let lag: Vec<String> = system
            .metrics_text(i)
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("ordexa_projector_lag{"))
            .map(str::to_owned)
            .collect();
        out.push_str(&format!(
            "  {} lag gauges (partitions it reported on; a revoked partition keeps its last value): {}\n",
            system.workloads[i].name,
            lag.join(" | ")
        ));
    }
    out.push_str("  faults: ");
    let times: Vec<String> = faults.iter().map(|f| format!("{:?} at +{:.1}s", f.fault, f.at.as_secs_f64())).collect();
    out.push_str(&times.join(", "));
    out.push_str(&format!("\n  workload logs: {}", settings.dir.display()));
    out
}

/// Per partition of `topic`: the group's committed offset and the high watermark.
fn group_offsets(bootstrap: &str, group: &str, topic: &str) -> Result<BTreeMap<i32, (Option<i64>, i64)>> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut list = TopicPartitionList::new();
    let mut out = BTreeMap::new();
    for p in metadata.topics().iter().filter(|t| t.name() == topic).flat_map(|t| t.partitions()) {
        list.add_partition(topic, p.id());
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
    for element in committed.elements() {
        let (_, high) = consumer.fetch_watermarks(topic, element.partition(), Duration::from_secs(10))?;
        let offset = match element.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        out.insert(element.partition(), (offset, high));
    }
    Ok(out)
}

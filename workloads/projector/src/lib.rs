//! The projector: a Kafka consumer group on `<prefix>orders` that writes each event's order
//! snapshot into the Cassandra read model.
//!
//! Delivery. Messages are taken in batches; every decodable event of a batch is written (the
//! writes are idempotent and order-insensitive, so they run concurrently), every poison message
//! is produced to `<prefix>orders.dlq` and acknowledged, and only then are the batch's offsets
//! committed. A crash anywhere before the commit replays the batch, which rewrites identical
//! cells. Cassandra failures are retried with capped, jittered backoff for as long as they
//! last, never skipped; readiness is false meanwhile.
//!
//! Poison. A record without a key or value, a value that is not JSON, does not match the event
//! schema, or disagrees with its key goes to the dead-letter topic with its original key, value
//! and headers plus headers naming the error, the source topic/partition/offset, the attempt
//! count and the time. `ordexa dlq` inspects and replays them.

pub mod dlq;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ordexa_domain::OrderEvent;
use ordexa_platform::{Health, Shutdown, backoff_delay};
use ordexa_readmodel::{ReadModel, ReadModelError};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use rdkafka::{ClientContext, Statistics};
use uuid::Uuid;

/// Header names the projector adds to a dead letter.
pub mod dlq_headers {
    pub const ERROR: &str = "dlq.error";
    pub const SOURCE_TOPIC: &str = "dlq.source.topic";
    pub const SOURCE_PARTITION: &str = "dlq.source.partition";
    pub const SOURCE_OFFSET: &str = "dlq.source.offset";
    pub const ATTEMPTS: &str = "dlq.attempts";
    pub const DEAD_LETTERED_AT: &str = "dlq.dead_lettered_at";
    /// Set by `ordexa dlq replay` on the re-driven record: `<dlq topic>/<partition>:<offset>`.
    pub const REPLAYED_FROM: &str = "dlq.replayed_from";
    pub const ALL: [&str; 7] =
        [ERROR, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, ATTEMPTS, DEAD_LETTERED_AT, REPLAYED_FROM];
}

/// How the projector runs.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub kafka_bootstrap: String,
    pub topic_prefix: String,
    /// The consumer group; replicas with the same group share the partitions.
    pub group_id: String,
    /// Most messages handled (and committed) together.
    pub batch_size: usize,
    /// Most Cassandra writes in flight.
    pub concurrency: usize,
}

impl ProjectorConfig {
    pub fn topic(&self) -> String {
        ordexa_topics::orders_topic(&self.topic_prefix)
    }

    pub fn dlq_topic(&self) -> String {
        ordexa_topics::dlq_topic(&self.topic_prefix)
    }

    /// The group a prefix's projectors share unless told otherwise.
    pub fn default_group(prefix: &str) -> String {
        format!("{prefix}projector")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    #[error("{0}")]
    Config(String),
}

/// Why a record cannot be projected, ever: it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    #[error("the record has no value")]
    NoValue,
    #[error("the record has no key")]
    NoKey,
    #[error("the key is not an order id (UUID): {0:?}")]
    BadKey(String),
    #[error("the value is not JSON: {0}")]
    NotJson(String),
    #[error("the value does not match the order event schema: {0}")]
    SchemaInvalid(String),
    #[error("the event contradicts itself or its key: {0}")]
    Inconsistent(String),
}

static EVENT_VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: serde_json::Value =
        serde_json::from_str(ordexa_domain::ORDER_EVENT_SCHEMA).map_err(|e| format!("event schema: {e}"))?;
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema).map_err(|e| e.to_string())
});

/// Decodes and checks one record: the event, or why it is poison.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<OrderEvent, Poison> {
    let value = value.ok_or(Poison::NoValue)?;
    let key = key.ok_or(Poison::NoKey)?;
    let key_text = String::from_utf8_lossy(key);
    let key_id = Uuid::parse_str(&key_text).map_err(|_| Poison::BadKey(key_text.chars().take(64).collect()))?;
    let json: serde_json::Value = serde_json::from_slice(value).map_err(|e| Poison::NotJson(e.to_string()))?;
    match EVENT_VALIDATOR.as_ref() {
        Ok(validator) => {
            if let Some(error) = validator.iter_errors(&json).next() {
                return Err(Poison::SchemaInvalid(format!("{error} at {:?}", error.instance_path().to_string())));
            }
        }
        // The schema is compiled into the binary and tested; this cannot happen in a release.
        Err(e) => return Err(Poison::SchemaInvalid(format!("the schema itself does not compile: {e}"))),
    }
    let event: OrderEvent = serde_json::from_value(json).map_err(|e| Poison::SchemaInvalid(e.to_string()))?;
    if event.order_id.0 != key_id {
        return Err(Poison::Inconsistent(format!("key {key_id} but order_id {}", event.order_id)));
    }
    if event.order.id != event.order_id || event.order.version != event.version {
        return Err(Poison::Inconsistent(format!(
            "envelope says order {} version {}, snapshot says order {} version {}",
            event.order_id, event.version, event.order.id, event.order.version
        )));
    }
    Ok(event)
}

/// The consumer of the projector's group.
pub fn consumer(config: &ProjectorConfig) -> Result<StreamConsumer<LagReporter>, ProjectorError> {
    let consumer: StreamConsumer<LagReporter> = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("statistics.interval.ms", "5000")
        .create_with_context(LagReporter)?;
    consumer.subscribe(&[&config.topic()])?;
    Ok(consumer)
}

/// The producer of dead letters (and of `ordexa dlq replay`): idempotent, acks from all replicas.
pub fn producer(bootstrap: &str) -> Result<FutureProducer, ProjectorError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "30000")
        .create()?)
}

/// Runs the projector until `shutdown` fires. Failures are retried; only a shutdown (or a
/// configuration error at start-up) ends it.
pub async fn run(
    config: ProjectorConfig,
    model: Arc<ReadModel>,
    health: Health,
    mut shutdown: Shutdown,
) -> Result<(), ProjectorError> {
    if config.batch_size == 0 || config.concurrency == 0 {
        return Err(ProjectorError::Config("batch size and concurrency must be at least 1".to_owned()));
    }
    let consumer = consumer(&config)?;
    let producer = producer(&config.kafka_bootstrap)?;
    let topic = config.topic();
    let dlq_topic = config.dlq_topic();
    tracing::info!(%topic, group = %config.group_id, keyspace = model.keyspace(), "projector consuming");
    health.ready();
    let mut kafka_failures = 0u32;
    while !shutdown.is_fired() {
        let first = tokio::select! {
            () = shutdown.wait() => break,
            received = tokio::time::timeout(Duration::from_secs(5), consumer.recv()) => received,
        };
        let first = match first {
            // Idle for 5 s without an error: Kafka is reachable.
            Err(_idle) => {
                kafka_failures = 0;
                health.ready();
                continue;
            }
            Ok(Err(err)) => {
                metrics::counter!("ordexa_projector_errors_total", "stage" => "consume").increment(1);
                health.not_ready(format!("cannot consume from Kafka: {err}"));
                tracing::warn!(error = %err, "consume failed");
                shutdown.sleep(backoff_delay(kafka_failures)).await;
                kafka_failures = kafka_failures.saturating_add(1);
                continue;
            }
            Ok(Ok(message)) => message.detach(),
        };
        kafka_failures = 0;
        let mut batch = vec![first];
        while batch.len() < config.batch_size {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                _ => break,
            }
        }
        if !project_batch(&batch, &model, &producer, &dlq_topic, &config, &health, &mut shutdown).await {
            break; // shut down before the batch was done: its offsets stay uncommitted
        }
        commit(&consumer, &batch);
        health.ready();
    }
    tracing::info!("projector stopping");
    consumer.unsubscribe();
    Ok(())
}

/// Writes the batch's events and dead-letters its poison. Returns false when a shutdown
/// interrupted it.
async fn project_batch(
    batch: &[OwnedMessage],
    model: &ReadModel,
    producer: &FutureProducer,
    dlq_topic: &str,
    config: &ProjectorConfig,
    health: &Health,
    shutdown: &mut Shutdown,
) -> bool {
    let mut events = Vec::with_capacity(batch.len());
    let mut poison = Vec::new();
    for message in batch {
        match decode(message.key(), message.payload()) {
            Ok(event) => events.push(event),
            Err(why) => poison.push((message, why)),
        }
    }
    for (message, why) in poison {
        if !dead_letter(message, &why, producer, dlq_topic, health, shutdown).await {
            return false;
        }
    }
    let mut pending: Vec<&OrderEvent> = events.iter().collect();
    let mut attempt = 0u32;
    while !pending.is_empty() {
        let results = apply_all(model, &pending, config.concurrency).await;
        let mut failed = Vec::new();
        let mut first_error = None;
        for (event, result) in results {
            match result {
                Ok(()) => {
                    metrics::counter!("ordexa_projector_events_total").increment(1);
                    let delay = (chrono::Utc::now() - event.occurred_at).num_microseconds().unwrap_or(i64::MAX);
                    metrics::histogram!("ordexa_projector_delay_seconds").record(delay as f64 / 1e6);
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                    failed.push(event);
                }
            }
        }
        if let Some(err) = first_error {
            metrics::counter!("ordexa_projector_errors_total", "stage" => "cassandra").increment(failed.len() as u64);
            health.not_ready(format!("cannot write the read model: {err}"));
            tracing::warn!(error = %err, failed = failed.len(), attempt, "read model writes failed; retrying");
            shutdown.sleep(backoff_delay(attempt)).await;
            if shutdown.is_fired() {
                return false;
            }
            attempt = attempt.saturating_add(1);
        }
        pending = failed;
    }
    true
}

/// Applies every event with at most `concurrency` in flight: a sliding window, so one slow write
/// holds back only its own slot, not a whole group.
async fn apply_all<'a>(
    model: &'a ReadModel,
    events: &[&'a OrderEvent],
    concurrency: usize,
) -> Vec<(&'a OrderEvent, Result<(), ReadModelError>)> {
    let mut results = Vec::with_capacity(events.len());
    let mut queued = events.iter().copied();
    let mut in_flight = FuturesUnordered::new();
    for event in queued.by_ref().take(concurrency) {
        in_flight.push(apply_one(model, event));
    }
    while let Some(done) = in_flight.next().await {
        results.push(done);
        if let Some(event) = queued.next() {
            in_flight.push(apply_one(model, event));
        }
    }
    results
}

async fn apply_one<'a>(model: &'a ReadModel, event: &'a OrderEvent) -> (&'a OrderEvent, Result<(), ReadModelError>) {
    (event, model.apply(event).await)
}

/// Produces `message` to the dead-letter topic and waits for Kafka's acknowledgement, retrying
/// until it lands. Returns false when a shutdown interrupted it.
async fn dead_letter(
    message: &OwnedMessage,
    why: &Poison,
    producer: &FutureProducer,
    dlq_topic: &str,
    health: &Health,
    shutdown: &mut Shutdown,
) -> bool {
    let error = why.to_string();
    tracing::warn!(partition = message.partition(), offset = message.offset(), %error, "poison message → dead letters");
    let mut attempt = 0u32;
    loop {
        let now = ordexa_domain::now_micros().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let (partition, offset) = (message.partition().to_string(), message.offset().to_string());
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in original.iter().filter(|h| !dlq_headers::ALL.contains(&h.key)) {
                headers = headers.insert(Header { key: h.key, value: h.value });
            }
        }
        let added = [
            (dlq_headers::ERROR, error.as_str()),
            (dlq_headers::SOURCE_TOPIC, message.topic()),
            (dlq_headers::SOURCE_PARTITION, partition.as_str()),
            (dlq_headers::SOURCE_OFFSET, offset.as_str()),
            (dlq_headers::ATTEMPTS, "1"),
            (dlq_headers::DEAD_LETTERED_AT, now.as_str()),
        ];
        for (key, value) in added {
            headers = headers.insert(Header { key, value: Some(value) });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(dlq_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        match producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => {
                metrics::counter!("ordexa_projector_dead_letters_total").increment(1);
                return true;
            }
            Err((err, _)) => {
                metrics::counter!("ordexa_projector_errors_total", "stage" => "dead_letter").increment(1);
                health.not_ready(format!("cannot write to the dead-letter topic {dlq_topic}: {err}"));
                shutdown.sleep(backoff_delay(attempt)).await;
                if shutdown.is_fired() {
                    return false;
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Commits the offsets after the batch's last message of each partition.
fn commit(consumer: &StreamConsumer<LagReporter>, batch: &[OwnedMessage]) {
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for m in batch {
        let entry = next.entry((m.topic().to_owned(), m.partition())).or_insert(0);
        *entry = (*entry).max(m.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        if let Err(err) = list.add_partition_offset(&topic, partition, Offset::Offset(offset)) {
            tracing::warn!(error = %err, "cannot build the offset list");
            return;
        }
    }
    // After a rebalance took a partition away, its commit is refused; the new owner replays
    // from the last committed offset, which rewrites identical cells.
    if let Err(err) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(error = %err, "offset commit failed; the batch will be projected again");
    }
}

/// Reports consumer lag per partition (the high watermark minus the committed offset) from
/// librdkafka's periodic statistics.
pub struct LagReporter;

impl ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                // Partition -1 is librdkafka's internal "unassigned" bucket; -1 lag means unknown.
                if partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!("ordexa_projector_lag", "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for LagReporter {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event_json() -> serde_json::Value {
        json!({
            "event_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "type": "order.created",
            "order_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
            "version": 1,
            "occurred_at": "2026-11-26T10:00:00.000000Z",
            "schema_version": 1,
            "order": {
                "id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
                "user_id": "alice",
                "status": "PENDING",
                "items": [{"sku": "MUG-CERAMIC", "name": "Mug", "quantity": 2, "unit_price": 1200, "line_total": 2400}],
                "currency": "EUR",
                "total": 2400,
                "shipping_address": {"name": "Alice", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
                "version": 1,
                "created_at": "2026-11-26T10:00:00.000000Z",
                "updated_at": "2026-11-26T10:00:00.000000Z"
            }
        })
    }

    const KEY: &[u8] = b"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

    #[test]
    fn a_valid_event_decodes() -> Result<(), Box<dyn std::error::Error>> {
        let value = serde_json::to_vec(&event_json())?;
        let event = decode(Some(KEY), Some(&value))?;
        assert_eq!(event.version, 1);
        assert_eq!(event.order.user_id, "alice");
        Ok(())
    }

    #[test]
    fn every_kind_of_poison_is_named() -> Result<(), Box<dyn std::error::Error>> {
        let good = serde_json::to_vec(&event_json())?;
        let mut missing_field = event_json();
        missing_field["order"].as_object_mut().map(|o| o.remove("total"));
        let mut other_snapshot = event_json();
        other_snapshot["order"]["id"] = json!("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e");
        let other_key = b"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d";
        type Case<'a> = (Option<&'a [u8]>, Vec<u8>, fn(&Poison) -> bool);
        let cases: Vec<Case<'_>> = vec![
            (Some(KEY), b"{not json".to_vec(), |p| matches!(p, Poison::NotJson(_))),
            (
                Some(KEY),
                serde_json::to_vec(&missing_field)?,
                |p| matches!(p, Poison::SchemaInvalid(m) if m.contains("total")),
            ),
            (Some(KEY), serde_json::to_vec(&other_snapshot)?, |p| matches!(p, Poison::Inconsistent(_))),
            (Some(other_key), good.clone(), |p| matches!(p, Poison::Inconsistent(m) if m.contains("key"))),
            (Some(b"not-a-uuid"), good.clone(), |p| matches!(p, Poison::BadKey(_))),
            (None, good.clone(), |p| *p == Poison::NoKey),
        ];
        for (i, (key, value, expected)) in cases.into_iter().enumerate() {
            let poison = decode(key, Some(&value)).expect_err("poison");
            assert!(expected(&poison), "case {i}: {poison}");
        }
        assert_eq!(decode(Some(KEY), None).expect_err("no value"), Poison::NoValue);
        Ok(())
    }
}

//! The Kafka side of the relay benchmark: the run's own topics (and removing them), reading back
//! what the relay published, and the producer ceiling — the relay's producer, with the relay's
//! configuration, sending the same messages from memory.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ordexa_domain::EVENT_SCHEMA_VERSION;
use ordexa_relay::{BatchProducer, Event, RelayConfig, batch};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use uuid::Uuid;

use super::outbox::OutboxEvent;

/// A topic prefix is only ever one this benchmark made: `bench<something>.`, never the
/// system's default `ordexa.`.
pub fn check_prefix(prefix: &str) -> Result<()> {
    if !prefix.starts_with("bench") || !prefix.ends_with('.') || prefix.len() < "bench.".len() + 1 {
        bail!("topic prefix {prefix:?} is not a benchmark's own (bench<unique>.)");
    }
    Ok(())
}

/// High watermark of every partition of `topic`.
pub fn high_watermarks(bootstrap: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic {topic} does not exist");
    }
    partitions.into_iter().map(|p| Ok((p, consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?.1))).collect()
}

pub fn total(watermarks: &BTreeMap<i32, i64>) -> i64 {
    watermarks.values().sum()
}

/// One message read back: its `event_id` header and Kafka timestamp (CreateTime, ms).
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub event_id: Option<Uuid>,
    pub timestamp_ms: Option<i64>,
}

/// Every message of `topic` from `from` up to `to` (per partition offsets).
pub async fn read_range(
    bootstrap: &str,
    topic: &str,
    from: &BTreeMap<i32, i64>,
    to: &BTreeMap<i32, i64>,
) -> Result<Vec<Published>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("ordexa-bench-{}", Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = BTreeMap::new();
    for (&partition, &end) in to {
        let start = from.get(&partition).copied().unwrap_or(0);
        if end > start {
            assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
            remaining.insert(partition, end);
        }
    }
    let mut out =
        Vec::with_capacity(usize::try_from(to.values().sum::<i64>() - from.values().sum::<i64>()).unwrap_or(0));
    if remaining.is_empty() {
        return Ok(out);
    }
    consumer.assign(&assignment)?;
    while !remaining.is_empty() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .map_err(|_| anyhow::anyhow!("reading {topic} stalled; still expecting up to {remaining:?}"))??;
        let partition = message.partition();
        let Some(&end) = remaining.get(&partition) else { continue };
        if message.offset() >= end {
            continue;
        }
        let event_id = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == "event_id")
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| Uuid::parse_str(v).ok())
        });
        out.push(Published { event_id, timestamp_ms: message.timestamp().to_millis() });
        if message.offset() + 1 >= end {
            remaining.remove(&partition);
        }
    }
    Ok(out)
}

/// The relay's producer (`ordexa_relay::producer`, the same configuration), ready to send:
/// one small message to the DLQ topic delivered, so it is connected and holds its idempotent
/// producer id (a new one can wait up to a 500 ms retry timer of librdkafka for it). Returns
/// it and how long that took.
pub async fn ready_producer(config: &RelayConfig) -> Result<(BatchProducer, Duration)> {
    let started = std::time::Instant::now();
    let producer = ordexa_relay::producer(config)?;
    let dlq = ordexa_domain::dlq_topic_name(&config.topic_prefix);
    let warm_up = Event {
        aggregate_id: Uuid::new_v4(),
        event_id: Uuid::new_v4(),
        event_type: "warm-up",
        schema_version: 0,
        payload: "warm-up",
        traceparent: None,
    };
    let mut acknowledgements = batch::queue(&producer, &dlq, std::iter::once(warm_up))?;
    tokio::time::timeout(Duration::from_secs(30), acknowledgements.wait())
        .await
        .context("the warm-up message was not delivered within 30 s")?
        .context("the warm-up message was not delivered")?;
    Ok((producer, started.elapsed()))
}

/// The producer ceiling: the relay's message for each row (key, payload, headers), batches of
/// `batch` queued at once with their delivery reports counted together, up to `in_flight`
/// batches queued, as the relay does — but from memory, with no database in the loop. Returns
/// how long each batch took, from queueing to its last acknowledgement.
pub async fn produce_from_memory(
    producer: &BatchProducer,
    topic: &str,
    rows: &[OutboxEvent],
    batch: usize,
    in_flight: usize,
) -> Result<Vec<Duration>> {
    let schema_version = i32::try_from(EVENT_SCHEMA_VERSION).context("the event schema version")?;
    let mut batches = Vec::new();
    let mut queued = VecDeque::with_capacity(in_flight);
    let mut chunks = rows.chunks(batch.max(1));
    loop {
        // Keep `in_flight` batches queued, as the relay does, and await the oldest.
        while queued.len() < in_flight.max(1) {
            let Some(chunk) = chunks.next() else { break };
            let started = std::time::Instant::now();
            let events = chunk.iter().map(|row| Event {
                aggregate_id: row.aggregate_id,
                event_id: row.event_id,
                event_type: row.event_type,
                schema_version,
                payload: &row.payload,
                traceparent: Some(&row.traceparent),
            });
            let acknowledgements = batch::queue(producer, topic, events).context("queueing a batch")?;
            queued.push_back((started, acknowledgements));
        }
        let Some((started, mut acknowledgements)) = queued.pop_front() else { break };
        acknowledgements.wait().await.context("a batch was not delivered")?;
        batches.push(started.elapsed());
    }
    Ok(batches)
}

/// Deletes every topic whose name starts with `prefix` (a benchmark's own, see
/// [`check_prefix`]). Returns the topics deleted.
pub async fn delete_topics(bootstrap: &str, prefix: &str) -> Result<Vec<String>> {
    check_prefix(prefix)?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10)).context("listing topics")?;
    let topics: Vec<String> =
        metadata.topics().iter().map(|t| t.name().to_owned()).filter(|name| name.starts_with(prefix)).collect();
    if topics.is_empty() {
        return Ok(topics);
    }
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.delete_topics(&names, &options).await? {
        if let Err((topic, code)) = result {
            bail!("deleting topic {topic} failed: {code}");
        }
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_benchmarks_own_prefix_is_accepted() {
        assert!(check_prefix("bench20261126T101010Z.").is_ok());
        for bad in ["ordexa.", "", "bench.", "bench20261126", "orders.bench1."] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }
}

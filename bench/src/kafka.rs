//! The bench's own Kafka plumbing: its topics (broker append time, so a message's timestamp is
//! when Kafka had it), how many messages a topic holds, reading them back, and producing from
//! memory with the contract's producer settings (idempotent, acks=all, compressed).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(10);

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Creates `topics` with `partitions` each, timestamped by the broker on append.
pub async fn create_topics(bootstrap: &str, topics: &[String], partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            NewTopic::new(t, partitions, TopicReplication::Fixed(1)).set("message.timestamp.type", "LogAppendTime")
        })
        .collect();
    for result in admin.create_topics(&new, &AdminOptions::new().operation_timeout(Some(TIMEOUT))).await? {
        if let Err((topic, code)) = result {
            bail!("creating topic {topic}: {code}");
        }
    }
    Ok(())
}

/// Deletes `topics`, ignoring those that do not exist.
pub async fn delete_topics(bootstrap: &str, topics: &[String]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    admin.delete_topics(&names, &AdminOptions::new().operation_timeout(Some(TIMEOUT))).await?;
    Ok(())
}

/// Counts a topic's messages: the sum of its partitions' high watermarks.
pub struct Counter {
    consumer: BaseConsumer,
    topic: String,
    partitions: i32,
}

impl Counter {
    pub fn new(bootstrap: &str, topic: &str, partitions: i32) -> Result<Self> {
        Ok(Self { consumer: config(bootstrap).create()?, topic: topic.to_owned(), partitions })
    }

    pub fn ends(&self) -> Result<Vec<i64>> {
        (0..self.partitions).map(|p| Ok(self.consumer.fetch_watermarks(&self.topic, p, TIMEOUT)?.1)).collect()
    }

    pub fn count(&self) -> Result<i64> {
        Ok(self.ends()?.iter().sum())
    }
}

/// A message read back: its key and the broker's append time (ms since the epoch).
pub struct Record {
    pub key: String,
    pub at_ms: i64,
}

/// Reads the messages of `topic` from `from` (per-partition offsets) until at least `expected`
/// have arrived, then whatever else is already there (duplicates). Offsets are not counted:
/// a transactional producer's commit markers take offsets too.
pub fn read_back(bootstrap: &str, topic: &str, from: &[i64], expected: usize, within: Duration) -> Result<Vec<Record>> {
    let consumer: BaseConsumer =
        config(bootstrap).set("group.id", "ordexa-bench").set("isolation.level", "read_committed").create()?;
    let mut assignment = TopicPartitionList::new();
    for (p, offset) in from.iter().enumerate() {
        assignment.add_partition_offset(topic, i32::try_from(p)?, Offset::Offset(*offset))?;
    }
    consumer.assign(&assignment)?;
    let mut records = Vec::with_capacity(expected);
    let deadline = std::time::Instant::now() + within;
    loop {
        let wait = if records.len() < expected { 500 } else { 200 };
        match consumer.poll(Duration::from_millis(wait)) {
            Some(message) => {
                let message = message.with_context(|| format!("reading {topic}"))?;
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                records.push(Record { key, at_ms: message.timestamp().to_millis().unwrap_or(0) });
            }
            None if records.len() >= expected => return Ok(records),
            None if std::time::Instant::now() > deadline => {
                bail!("read {} of {expected} messages of {topic} within {within:?}", records.len())
            }
            None => {}
        }
    }
}

/// One message to produce: key, value and headers.
pub struct Outgoing {
    pub key: String,
    pub value: String,
    pub headers: Vec<(&'static str, String)>,
}

/// A producer with the contract's settings: idempotent, acks=all, lz4, Java's partitioner.
pub fn producer(bootstrap: &str) -> Result<FutureProducer> {
    Ok(config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

/// Produces `messages` to `topic`, at most `window` awaiting delivery at once, and returns the
/// seconds from the first send to the last delivery.
pub async fn produce_all(producer: &FutureProducer, topic: &str, messages: &[Outgoing], window: usize) -> Result<f64> {
    use futures::StreamExt;
    let started = std::time::Instant::now();
    let mut deliveries = futures::stream::iter(messages.iter().map(|m| {
        let headers = m.headers.iter().fold(OwnedHeaders::new_with_capacity(m.headers.len()), |h, (k, v)| {
            h.insert(Header { key: k, value: Some(v.as_str()) })
        });
        producer.send(FutureRecord::to(topic).key(&m.key).payload(&m.value).headers(headers), TIMEOUT)
    }))
    .buffer_unordered(window);
    while let Some(delivery) = deliveries.next().await {
        delivery.map_err(|(e, _)| e).with_context(|| format!("producing to {topic}"))?;
    }
    Ok(started.elapsed().as_secs_f64())
}

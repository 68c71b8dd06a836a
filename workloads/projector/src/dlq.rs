//! `ordexa dlq list|show|replay`: inspect dead letters and re-drive them after a fix.
//!
//! The dead-letter topic is read with an assigned (group-less) consumer, so inspecting it never
//! moves any group's offsets. A replay produces the record's original key, value and headers to
//! its source topic, adding `dlq.replayed_from`; the projector's writes are idempotent, so
//! replaying a record twice is harmless. Dead letters stay in their topic after a replay (Kafka
//! topics are append-only); its retention removes them.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::{ProjectorError, dlq_headers, producer};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading the topic may wait for a record known to exist.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A record's place in the dead-letter topic, written `partition:offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl FromStr for Position {
    type Err = ProjectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ProjectorError::Config(format!("{s:?} is not a dead-letter position; write partition:offset, e.g. 0:42"))
        };
        let (p, o) = s.split_once(':').ok_or_else(bad)?;
        let partition = p.trim().parse().map_err(|_| bad())?;
        let offset = o.trim().parse().map_err(|_| bad())?;
        if partition < 0 || offset < 0 {
            return Err(bad());
        }
        Ok(Position { partition, offset })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.partition, self.offset)
    }
}

/// One dead letter as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub position: Position,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Every header, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn key_text(&self) -> String {
        self.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_else(|| "(none)".to_owned())
    }

    /// Where the record was consumed from: `topic/partition:offset`.
    pub fn source(&self) -> String {
        format!(
            "{}/{}:{}",
            self.header(dlq_headers::SOURCE_TOPIC).unwrap_or_default(),
            self.header(dlq_headers::SOURCE_PARTITION).unwrap_or_default(),
            self.header(dlq_headers::SOURCE_OFFSET).unwrap_or_default()
        )
    }
}

fn reader(bootstrap: &str) -> Result<StreamConsumer, ProjectorError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ordexa-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()?)
}

/// The end offset of every partition of `topic` holding records: partition → (low, high).
fn ranges(consumer: &impl Consumer, topic: &str) -> Result<HashMap<i32, (i64, i64)>, ProjectorError> {
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ProjectorError::Config(format!("topic {topic} does not exist")));
    }
    let mut out = HashMap::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT)?;
        out.insert(p, (low, high));
    }
    Ok(out)
}

/// Every dead letter in `dlq_topic`, oldest first per partition, at most `limit`.
pub async fn list(bootstrap: &str, dlq_topic: &str, limit: usize) -> Result<Vec<DeadLetter>, ProjectorError> {
    let consumer = reader(bootstrap)?;
    let ranges = ranges(&consumer, dlq_topic)?;
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for (&p, &(low, high)) in &ranges {
        if high > low {
            remaining.insert(p, high);
            assignment.add_partition_offset(dlq_topic, p, Offset::Offset(low))?;
        }
    }
    let mut out = Vec::new();
    if remaining.is_empty() {
        return Ok(out);
    }
    consumer.assign(&assignment)?;
    while !remaining.is_empty() && out.len() < limit {
        let message = tokio::time::timeout(READ_TIMEOUT, consumer.recv()).await.map_err(|_| {
            ProjectorError::Config(format!("reading {dlq_topic} stalled; still expecting records up to {remaining:?}"))
        })??;
        let partition = message.partition();
        if remaining.get(&partition).is_some_and(|high| message.offset() + 1 >= *high) {
            remaining.remove(&partition);
        }
        out.push(to_dead_letter(&message));
    }
    out.sort_by_key(|d| d.position);
    Ok(out)
}

/// The dead letter at `position`.
pub async fn show(bootstrap: &str, dlq_topic: &str, position: Position) -> Result<DeadLetter, ProjectorError> {
    let consumer = reader(bootstrap)?;
    let ranges = ranges(&consumer, dlq_topic)?;
    let (low, high) = ranges
        .get(&position.partition)
        .copied()
        .ok_or_else(|| ProjectorError::Config(format!("{dlq_topic} has no partition {}", position.partition)))?;
    if position.offset < low || position.offset >= high {
        return Err(ProjectorError::Config(format!(
            "{dlq_topic} partition {} holds offsets {low}..{high}; {} is not among them",
            position.partition, position.offset
        )));
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(dlq_topic, position.partition, Offset::Offset(position.offset))?;
    consumer.assign(&assignment)?;
    loop {
        let message = tokio::time::timeout(READ_TIMEOUT, consumer.recv())
            .await
            .map_err(|_| ProjectorError::Config(format!("reading {dlq_topic} at {position} stalled")))??;
        // Compacted or transactional topics may skip offsets: take the first at or after it.
        if message.offset() >= position.offset {
            return Ok(to_dead_letter(&message));
        }
    }
}

/// Re-drives dead letters to their source topic (or `default_topic` when a record does not
/// name one); waits until Kafka acknowledged every one. Returns how many were replayed.
pub async fn replay(
    bootstrap: &str,
    dlq_topic: &str,
    letters: &[DeadLetter],
    default_topic: &str,
) -> Result<usize, ProjectorError> {
    let producer = producer(bootstrap)?;
    let mut sends = Vec::new();
    for letter in letters {
        let target =
            letter.header(dlq_headers::SOURCE_TOPIC).filter(|t| !t.is_empty()).unwrap_or(default_topic.to_owned());
        let replayed_from = format!("{dlq_topic}/{}", letter.position);
        let mut headers = OwnedHeaders::new();
        for (key, value) in letter.headers.iter().filter(|(k, _)| !dlq_headers::ALL.contains(&k.as_str())) {
            headers = headers.insert(Header { key, value: Some(value.as_slice()) });
        }
        headers = headers.insert(Header { key: dlq_headers::REPLAYED_FROM, value: Some(replayed_from.as_str()) });
        let producer = &producer;
        sends.push(async move {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&target).headers(headers);
            if let Some(key) = letter.key.as_deref() {
                record = record.key(key);
            }
            if let Some(value) = letter.value.as_deref() {
                record = record.payload(value);
            }
            producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e)
        });
    }
    let results = join_all(sends).await;
    let mut replayed = 0;
    for result in results {
        result?;
        replayed += 1;
    }
    Ok(replayed)
}

fn to_dead_letter(message: &impl Message) -> DeadLetter {
    let headers = message
        .headers()
        .map(|hs| hs.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
        .unwrap_or_default();
    DeadLetter {
        position: Position { partition: message.partition(), offset: message.offset() },
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_and_print() -> Result<(), ProjectorError> {
        let p: Position = "3:42".parse()?;
        assert_eq!(p, Position { partition: 3, offset: 42 });
        assert_eq!(p.to_string(), "3:42");
        for bad in ["", "3", "a:1", "1:b", "-1:0", "0:-5"] {
            let err = bad.parse::<Position>().expect_err(bad).to_string();
            assert!(err.contains("partition:offset"), "{bad}: {err}");
        }
        Ok(())
    }
}

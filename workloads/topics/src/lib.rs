//! The system's Kafka topics, `<prefix>orders` and its dead-letter topic `<prefix>orders.dlq`:
//! created, grown when more partitions are asked for, deleted. Kafka cannot remove partitions,
//! so a shrink is reported as such and never done. The operator manages the topics in
//! production; `ordexa topics` does the same for local runs and tests. Both use [`Admin`].

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the admin API could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("kafka admin client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("creating topic {topic} failed: {code}")]
    Create { topic: String, code: RDKafkaErrorCode },
    #[error("growing topic {topic} to {partitions} partitions failed: {code}")]
    Grow { topic: String, partitions: i32, code: RDKafkaErrorCode },
    #[error("topic {topic} has {current} partitions; shrinking to {requested} is not possible in Kafka")]
    WouldShrink { topic: String, current: i32, requested: i32 },
    #[error("partitions must be at least 1, got {0}")]
    InvalidPartitions(i32),
    #[error("topic metadata lookup did not finish: {0}")]
    Lookup(String),
    #[error("deleting topic {topic} failed: {code}")]
    Delete { topic: String, code: RDKafkaErrorCode },
}

/// What [`Admin::ensure`] found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created {
        topic: String,
        partitions: i32,
    },
    Grown {
        topic: String,
        from: i32,
        to: i32,
    },
    Unchanged {
        topic: String,
        partitions: i32,
    },
    /// It has more partitions than asked; left as it is.
    ShrinkRefused {
        topic: String,
        current: i32,
        requested: i32,
    },
}

/// The topic prefix when none is configured (`ORDEXA_TOPIC_PREFIX`).
pub const DEFAULT_PREFIX: &str = "ordexa.";

/// The orders topic: `<prefix>orders`.
pub fn orders_topic(prefix: &str) -> String {
    format!("{prefix}orders")
}

/// The dead-letter topic of the orders topic: `<prefix>orders.dlq`.
pub fn dlq_topic(prefix: &str) -> String {
    format!("{prefix}orders.dlq")
}

/// The orders topic and its DLQ for `prefix`.
pub fn topic_names(prefix: &str) -> [String; 2] {
    [orders_topic(prefix), dlq_topic(prefix)]
}

/// Creates the orders topic and its DLQ with `partitions` each, or grows them to it; a shrink is
/// an error, as the caller asked for something Kafka cannot do (`ordexa topics`, tests; the
/// operator reports a shrink in its status instead).
pub async fn ensure_topics(
    bootstrap: &str,
    prefix: &str,
    partitions: i32,
    replication_factor: i32,
) -> Result<Vec<TopicOutcome>, TopicError> {
    if partitions < 1 {
        return Err(TopicError::InvalidPartitions(partitions));
    }
    let admin = Admin::connect(bootstrap, "ordexa-topics")?;
    let mut outcomes = Vec::new();
    for topic in topic_names(prefix) {
        match admin.ensure(&topic, partitions, replication_factor).await? {
            TopicOutcome::ShrinkRefused { topic, current, requested } => {
                return Err(TopicError::WouldShrink { topic, current, requested });
            }
            outcome => outcomes.push(outcome),
        }
    }
    Ok(outcomes)
}

/// A Kafka admin client.
pub struct Admin {
    client: Arc<AdminClient<DefaultClientContext>>,
    options: AdminOptions,
}

impl Admin {
    /// A client of `bootstrap`, identified to the brokers as `client_id`.
    pub fn connect(bootstrap: &str, client_id: &str) -> Result<Self, TopicError> {
        let client = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("socket.timeout.ms", "10000")
            .set("client.id", client_id)
            .create()?;
        Ok(Self { client: Arc::new(client), options: AdminOptions::new().operation_timeout(Some(OPERATION_TIMEOUT)) })
    }

    /// Partitions of `topic`, or `None` when it does not exist. librdkafka's metadata call
    /// blocks, so it runs on the blocking pool rather than stalling the caller's runtime.
    pub async fn partitions(&self, topic: &str) -> Result<Option<i32>, TopicError> {
        let (client, topic) = (Arc::clone(&self.client), topic.to_owned());
        let lookup = tokio::task::spawn_blocking(move || {
            let metadata = client.inner().fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX)))
        });
        lookup.await.map_err(|err| TopicError::Lookup(err.to_string()))?
    }

    /// Creates `topic` with `partitions`, or grows it to that many. One with more partitions is
    /// left alone and reported as [`TopicOutcome::ShrinkRefused`].
    pub async fn ensure(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
    ) -> Result<TopicOutcome, TopicError> {
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(partitions));
        }
        let topic = topic.to_owned();
        Ok(match self.partitions(&topic).await? {
            None => {
                let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(replication_factor));
                for result in self.client.create_topics([&new], &self.options).await? {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((_, code)) => return Err(TopicError::Create { topic, code }),
                    }
                }
                TopicOutcome::Created { topic, partitions }
            }
            Some(current) if current < partitions => {
                let grow = NewPartitions::new(&topic, usize::try_from(partitions).unwrap_or(usize::MAX));
                for result in self.client.create_partitions([&grow], &self.options).await? {
                    result.map_err(|(_, code)| TopicError::Grow { topic: topic.clone(), partitions, code })?;
                }
                TopicOutcome::Grown { topic, from: current, to: partitions }
            }
            Some(current) if current > partitions => {
                TopicOutcome::ShrinkRefused { topic, current, requested: partitions }
            }
            Some(current) => TopicOutcome::Unchanged { topic, partitions: current },
        })
    }

    /// Deletes `topics`; ones already gone are fine.
    pub async fn delete(&self, topics: &[String]) -> Result<(), TopicError> {
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        for result in self.client.delete_topics(&refs, &self.options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => return Err(TopicError::Delete { topic, code }),
            }
        }
        Ok(())
    }
}

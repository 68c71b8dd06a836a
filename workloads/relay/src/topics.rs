//! The system's topics: `<prefix>orders` and its dead-letter topic. Creating them is the
//! operator's job in production; local runs and tests use this through `ordexa topics`.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

/// Why the topics could not be made as asked.
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
}

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created { topic: String, partitions: i32 },
    Grown { topic: String, from: i32, to: i32 },
    Unchanged { topic: String, partitions: i32 },
}

/// Creates the orders topic and its DLQ with `partitions` each, or grows them to it.
pub async fn ensure_topics(
    bootstrap: &str,
    prefix: &str,
    partitions: i32,
    replication_factor: i32,
) -> Result<Vec<TopicOutcome>, TopicError> {
    if partitions < 1 {
        return Err(TopicError::InvalidPartitions(partitions));
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut outcomes = Vec::new();
    for topic in [ordexa_domain::topic_name(prefix), ordexa_domain::dlq_topic_name(prefix)] {
        let metadata = admin.inner().fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let existing = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX));
        let outcome = match existing {
            None => {
                let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(replication_factor));
                for result in admin.create_topics([&new], &options).await? {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((_, code)) => return Err(TopicError::Create { topic: topic.clone(), code }),
                    }
                }
                TopicOutcome::Created { topic, partitions }
            }
            Some(current) if current < partitions => {
                let grow = NewPartitions::new(&topic, usize::try_from(partitions).unwrap_or(usize::MAX));
                for result in admin.create_partitions([&grow], &options).await? {
                    result.map_err(|(_, code)| TopicError::Grow { topic: topic.clone(), partitions, code })?;
                }
                TopicOutcome::Grown { topic, from: current, to: partitions }
            }
            Some(current) if current > partitions => {
                return Err(TopicError::WouldShrink { topic, current, requested: partitions });
            }
            Some(current) => TopicOutcome::Unchanged { topic, partitions: current },
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

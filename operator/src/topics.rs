//! Topics step (talks to Kafka's admin API, not to Kubernetes): `<prefix>orders` and
//! `<prefix>orders.dlq` are created, or grown when the spec asks for more partitions. A shrink is
//! refused and reported (Kafka cannot remove partitions); it is never silently ignored.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::conditions::TopicsState;

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
    #[error("topic metadata lookup did not finish: {0}")]
    Lookup(String),
    #[error("deleting topic {topic} failed: {code}")]
    Delete { topic: String, code: RDKafkaErrorCode },
}

/// The system's two topics for `prefix`.
pub fn topic_names(prefix: &str) -> [String; 2] {
    [format!("{prefix}orders"), format!("{prefix}orders.dlq")]
}

/// What [`ensure`] changed, for Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    Created { topic: String, partitions: i32 },
    Grown { topic: String, from: i32, to: i32 },
}

/// The outcome of one pass: the state for the `TopicsReady` condition and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicsOutcome {
    pub state: TopicsState,
    pub changes: Vec<TopicChange>,
}

fn admin(bootstrap: &str) -> Result<Arc<AdminClient<DefaultClientContext>>, TopicError> {
    Ok(Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("socket.timeout.ms", "10000")
            .set("client.id", "ordexa-operator")
            .create()?,
    ))
}

/// Partitions of `topic`, or `None` when it does not exist. librdkafka's metadata call blocks,
/// so it runs on the blocking pool rather than stalling the reconcilers' runtime.
async fn partitions_of(admin: &Arc<AdminClient<DefaultClientContext>>, topic: &str) -> Result<Option<i32>, TopicError> {
    let (admin, topic) = (Arc::clone(admin), topic.to_owned());
    let lookup = tokio::task::spawn_blocking(move || {
        let metadata = admin.inner().fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX)))
    });
    lookup.await.map_err(|err| TopicError::Lookup(err.to_string()))?
}

/// Creates the topics or grows them to `partitions`. A topic with more partitions than asked
/// is left as it is and reported as [`TopicsState::ShrinkRefused`]; the other topic is still
/// created or grown.
pub async fn ensure(
    bootstrap: &str,
    prefix: &str,
    partitions: i32,
    replication_factor: i32,
) -> Result<TopicsOutcome, TopicError> {
    let admin = admin(bootstrap)?;
    let options = AdminOptions::new().operation_timeout(Some(OPERATION_TIMEOUT));
    let mut changes = Vec::new();
    let mut refused = None;
    for topic in topic_names(prefix) {
        match partitions_of(&admin, &topic).await? {
            None => {
                let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(replication_factor));
                for result in admin.create_topics([&new], &options).await? {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((_, code)) => return Err(TopicError::Create { topic: topic.clone(), code }),
                    }
                }
                changes.push(TopicChange::Created { topic, partitions });
            }
            Some(current) if current < partitions => {
                let grow = NewPartitions::new(&topic, usize::try_from(partitions).unwrap_or(usize::MAX));
                for result in admin.create_partitions([&grow], &options).await? {
                    result.map_err(|(_, code)| TopicError::Grow { topic: topic.clone(), partitions, code })?;
                }
                changes.push(TopicChange::Grown { topic, from: current, to: partitions });
            }
            Some(current) if current > partitions => {
                refused.get_or_insert(TopicsState::ShrinkRefused { topic, current, requested: partitions });
            }
            Some(_) => {}
        }
    }
    Ok(TopicsOutcome { state: refused.unwrap_or(TopicsState::Ready { partitions }), changes })
}

/// Reads the topics without changing them (for a paused system).
pub async fn inspect(bootstrap: &str, prefix: &str, partitions: i32) -> Result<TopicsState, TopicError> {
    let admin = admin(bootstrap)?;
    for topic in topic_names(prefix) {
        match partitions_of(&admin, &topic).await? {
            Some(current) if current > partitions => {
                return Ok(TopicsState::ShrinkRefused { topic, current, requested: partitions });
            }
            Some(current) if current == partitions => {}
            Some(current) => {
                return Ok(TopicsState::Pending {
                    message: format!(
                        "topic {topic} has {current} of {partitions} partitions; it grows when spec.paused is set to false"
                    ),
                });
            }
            None => {
                return Ok(TopicsState::Pending {
                    message: format!("topic {topic} does not exist; it is created when spec.paused is set to false"),
                });
            }
        }
    }
    Ok(TopicsState::Ready { partitions })
}

/// Deletes both topics (the `Delete` topic deletion policy). Topics already gone are fine.
pub async fn delete(bootstrap: &str, prefix: &str) -> Result<(), TopicError> {
    let admin = admin(bootstrap)?;
    let options = AdminOptions::new().operation_timeout(Some(OPERATION_TIMEOUT));
    let names = topic_names(prefix);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for result in admin.delete_topics(&refs, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => return Err(TopicError::Delete { topic, code }),
        }
    }
    Ok(())
}

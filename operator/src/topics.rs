//! Topics step (talks to Kafka's admin API, not to Kubernetes): `<prefix>orders` and
//! `<prefix>orders.dlq` are created, or grown when the spec asks for more partitions. A shrink is
//! refused and reported (Kafka cannot remove partitions); it is never silently ignored.

use ordexa_topics::{Admin, TopicOutcome};

pub use ordexa_topics::{TopicError, topic_names};

use crate::conditions::TopicsState;

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

fn admin(bootstrap: &str) -> Result<Admin, TopicError> {
    Admin::connect(bootstrap, "ordexa-operator")
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
    let mut changes = Vec::new();
    let mut refused = None;
    for topic in topic_names(prefix) {
        match admin.ensure(&topic, partitions, replication_factor).await? {
            TopicOutcome::Created { topic, partitions } => changes.push(TopicChange::Created { topic, partitions }),
            TopicOutcome::Grown { topic, from, to } => changes.push(TopicChange::Grown { topic, from, to }),
            TopicOutcome::ShrinkRefused { topic, current, requested } => {
                refused.get_or_insert(TopicsState::ShrinkRefused { topic, current, requested });
            }
            TopicOutcome::Unchanged { .. } => {}
        }
    }
    Ok(TopicsOutcome { state: refused.unwrap_or(TopicsState::Ready { partitions }), changes })
}

/// Reads the topics without changing them (for a paused system).
pub async fn inspect(bootstrap: &str, prefix: &str, partitions: i32) -> Result<TopicsState, TopicError> {
    let admin = admin(bootstrap)?;
    for topic in topic_names(prefix) {
        match admin.partitions(&topic).await? {
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
    admin(bootstrap)?.delete(&topic_names(prefix)).await
}

//! Topics step (talks to Kafka's admin API, not to Kubernetes): `<prefix>orders` and
//! `<prefix>orders.dlq` are created, or grown when the spec asks for more partitions. A shrink is
//! refused and reported (Kafka cannot remove partitions); it is never silently ignored.
//!
//! The reconciler reaches Kafka only through [`TopicAdmin`]: [`KafkaTopics`] in production, a
//! fake in the reconciler's tests, so they run without Kafka.

use futures::FutureExt;
use futures::future::BoxFuture;
use ordexa_topics::{Admin, TopicOutcome};

pub use ordexa_topics::{TopicError, topic_names};

use crate::conditions::TopicsState;
use crate::crd::KafkaSpec;

/// What [`TopicAdmin::ensure`] changed, for Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    Created { topic: String, partitions: i32 },
    Grown { topic: String, from: i32, to: i32 },
}

impl TopicChange {
    /// The Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            TopicChange::Created { .. } => "TopicCreated",
            TopicChange::Grown { .. } => "TopicGrown",
        }
    }

    /// The Event action.
    pub fn action(&self) -> &'static str {
        match self {
            TopicChange::Created { .. } => "CreateTopic",
            TopicChange::Grown { .. } => "GrowTopic",
        }
    }

    /// The Event note.
    pub fn note(&self) -> String {
        match self {
            TopicChange::Created { topic, partitions } => format!("created topic {topic} with {partitions} partitions"),
            TopicChange::Grown { topic, from, to } => format!("grew topic {topic} from {from} to {to} partitions"),
        }
    }
}

/// The outcome of one pass: the state for the `TopicsReady` condition and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicsOutcome {
    pub state: TopicsState,
    pub changes: Vec<TopicChange>,
}

/// The Kafka admin operations a reconcile needs, for the topics `kafka` describes.
pub trait TopicAdmin: Send + Sync {
    /// Creates the topics or grows them to `kafka.partitions`. A topic with more partitions
    /// than asked is left as it is and reported as [`TopicsState::ShrinkRefused`]; the other
    /// topic is still created or grown.
    fn ensure<'a>(&'a self, kafka: &'a KafkaSpec, prefix: &'a str) -> BoxFuture<'a, Result<TopicsOutcome, TopicError>>;

    /// Reads the topics without changing them (for a paused system).
    fn inspect<'a>(&'a self, kafka: &'a KafkaSpec, prefix: &'a str) -> BoxFuture<'a, Result<TopicsState, TopicError>>;

    /// Deletes both topics (the `Delete` topic deletion policy). Topics already gone are fine.
    fn delete<'a>(&'a self, kafka: &'a KafkaSpec, prefix: &'a str) -> BoxFuture<'a, Result<(), TopicError>>;
}

/// [`TopicAdmin`] through Kafka's admin API, connecting to `kafka.bootstrapServers` on each call
/// (every OrderingSystem names its own Kafka).
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaTopics;

impl TopicAdmin for KafkaTopics {
    fn ensure<'a>(&'a self, kafka: &'a KafkaSpec, prefix: &'a str) -> BoxFuture<'a, Result<TopicsOutcome, TopicError>> {
        ensure(kafka, prefix).boxed()
    }

    fn inspect<'a>(&'a self, kafka: &'a KafkaSpec, prefix: &'a str) -> BoxFuture<'a, Result<TopicsState, TopicError>> {
        inspect(kafka, prefix).boxed()
    }

    fn delete<'a>(&'a self, kafka: &'a KafkaSpec, prefix: &'a str) -> BoxFuture<'a, Result<(), TopicError>> {
        async move { admin(&kafka.bootstrap_servers)?.delete(&topic_names(prefix)).await }.boxed()
    }
}

fn admin(bootstrap: &str) -> Result<Admin, TopicError> {
    Admin::connect(bootstrap, "ordexa-operator")
}

async fn ensure(kafka: &KafkaSpec, prefix: &str) -> Result<TopicsOutcome, TopicError> {
    let admin = admin(&kafka.bootstrap_servers)?;
    let partitions = kafka.partitions;
    let mut changes = Vec::new();
    let mut refused = None;
    for topic in topic_names(prefix) {
        match admin.ensure(&topic, partitions, kafka.replication_factor).await? {
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

async fn inspect(kafka: &KafkaSpec, prefix: &str) -> Result<TopicsState, TopicError> {
    let admin = admin(&kafka.bootstrap_servers)?;
    let partitions = kafka.partitions;
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

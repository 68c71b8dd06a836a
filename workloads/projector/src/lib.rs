//! The projector: a Kafka consumer group on `<prefix>orders` that writes each event's order
//! snapshot into the Cassandra read model.
//!
//! - `consume`: the loop — batches taken, written, committed; pauses and retries.
//! - `decode`: a record as an event, or why it is poison (pure).
//! - `dead_letter`: what cannot be applied goes to `<prefix>orders.dlq`.
//! - [`dlq`]: `ordexa dlq list|show|replay`.
//! - [`reconcile`]: `ordexa reconcile`, the write model against the read model.
//!
//! Delivery. Messages are taken in batches; every decodable event of a batch is written (the
//! writes are idempotent and order-insensitive, so they run concurrently), every poison message
//! and every event that fails for good is produced to the dead-letter topic, and only then are the
//! batch's offsets committed. A crash anywhere before the commit replays the batch, which
//! rewrites identical cells. While Cassandra fails transiently the batch is retried with capped,
//! jittered backoff, never skipped, and the consumer's partitions are paused meanwhile so that it
//! keeps polling (and keeps its place in the group) without taking more messages.

mod consume;
mod dead_letter;
mod decode;
pub mod dlq;
pub mod reconcile;

use std::time::Duration;

use ordexa_readmodel::ReadModelError;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;

pub use consume::run;
pub use dead_letter::dlq_headers;
pub use decode::{Poison, decode};

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

/// The producer of dead letters (and of `ordexa dlq replay`): idempotent, acks from all replicas,
/// with a bounded queue.
pub fn producer(bootstrap: &str) -> Result<FutureProducer, ProjectorError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.kbytes", "16384")
        .create()?)
}

/// How long a read-model write that fails for good (not for lack of Cassandra) is retried before
/// its event goes to the dead letters.
pub const PERMANENT_FAILURE_ATTEMPTS: u32 = 3;

/// How the projector treats a failed read-model write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Cassandra is away, slow or overloaded: retried for as long as it lasts.
    Transient,
    /// The write itself is refused (invalid, too large, unserialisable): retried a few times,
    /// then the event goes to the dead letters.
    Permanent,
}

/// Whether a read-model error is worth waiting out.
pub fn failure_kind(err: &ReadModelError) -> FailureKind {
    use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
    match err {
        ReadModelError::CorruptRow { .. } => FailureKind::Permanent,
        ReadModelError::Execute(execution) => match execution.as_ref() {
            ExecutionError::BadQuery(_) => FailureKind::Permanent,
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                DbError::Invalid | DbError::SyntaxError | DbError::Unauthorized | DbError::ConfigError,
                _,
            )) => FailureKind::Permanent,
            _ => FailureKind::Transient,
        },
        _ => FailureKind::Transient,
    }
}

/// How long the consumer waits for a first message before it counts itself idle.
const IDLE_AFTER: Duration = Duration::from_secs(5);

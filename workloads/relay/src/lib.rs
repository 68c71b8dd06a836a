//! The outbox relay: publishes committed outbox rows to `<prefix>orders` in id order, then
//! removes them. At least once, never an uncommitted row, each order's events in version order
//! under any number of replicas, restarts and broker outages (`docs/relay.md` says how).
//!
//! - [`run`]: the replica's loop — leadership, the producer, retries.
//! - `leader`: one replica publishes, holding a PostgreSQL advisory lock.
//! - `claim`: which rows the leader takes next (the claim/settle protocol; pure, unit-tested).
//! - `publisher`: one leadership term — batches claimed, queued, acknowledged, deleted.
//! - `batch`: the producer and its delivery reports counted per batch.
//! - `wakeup`: LISTEN/NOTIFY while the leader waits for rows, and the fallback poll.
//! - `deleter`, `vacuum`: removing published rows, and reclaiming their space.
//! - `backlog`: the outbox's size and age as gauges.

mod backlog;
mod batch;
mod claim;
mod config;
mod deleter;
mod leader;
mod publisher;
mod run;
mod vacuum;
mod wakeup;

pub use config::{DEFAULT_VACUUM_EVERY, RelayConfig};
pub use run::run;

/// Why the relay could not publish. [`run`] retries every one but [`RelayError::Unsafe`], which
/// ends it: the relay refuses to run where its ordering proof does not hold.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("a relay session did not answer within {0:?}; giving it up")]
    SessionTimeout(std::time::Duration),
    #[error("kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the delivery reports of a batch of {0} messages were lost: the producer dropped them")]
    ReportsLost(usize),
    #[error("the deleter's session stopped before reporting a batch removed")]
    DeleterStopped,
    #[error("the transaction was aborted ({0}); its rows stay in the outbox and are published again")]
    Aborted(String),
    #[error("a blocking producer call failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
    #[error("the relay cannot keep its ordering guarantee here: {0}")]
    Unsafe(String),
}

impl RelayError {
    /// Whether the leader's session is gone or unusable, and leadership with it.
    pub(crate) fn ends_leadership(&self) -> bool {
        matches!(self, RelayError::Database(_) | RelayError::SessionTimeout(_))
    }
}

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

/// Why the relay could not publish (every one is retried by [`run`], which ends only on shutdown).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the delivery reports of a batch of {0} messages were lost: the producer dropped them")]
    ReportsLost(usize),
    #[error("the deleter's session stopped before reporting a batch deleted")]
    DeleterStopped,
}

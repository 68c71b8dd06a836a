//! How a relay runs.

use std::time::Duration;

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub database_url: String,
    pub kafka_bootstrap: String,
    pub topic_prefix: String,
    /// Rows claimed and produced together.
    pub batch_size: i64,
    /// How often to look for rows when no notification arrives (a missed NOTIFY, a restart).
    pub poll_interval: Duration,
    /// Batches queued on the producer and not yet acknowledged, at most (1: claim, publish and
    /// delete one batch at a time).
    pub batches_in_flight: usize,
    /// Rows the leader deletes between its `VACUUM`s of the outbox (0: never; autovacuum alone
    /// then reclaims their space).
    pub vacuum_every: u64,
    /// The producer's `transactional.id`; `None`: `<prefix>relay`.
    pub transactional_id: Option<String>,
}

/// [`RelayConfig::vacuum_every`] unless told otherwise: at about 1 kB a row, some 50 MB of
/// deleted rows between vacuums (`docs/adr/`: the relay vacuums the outbox).
pub const DEFAULT_VACUUM_EVERY: u64 = 50_000;

impl RelayConfig {
    pub(crate) fn topic(&self) -> String {
        ordexa_topics::orders_topic(&self.topic_prefix)
    }

    /// The producer's `transactional.id`: one per system, shared by every replica, so that each
    /// new leader fences the producers of earlier ones.
    pub(crate) fn transactional_id(&self) -> String {
        self.transactional_id.clone().unwrap_or_else(|| format!("{}relay", self.topic_prefix))
    }
}

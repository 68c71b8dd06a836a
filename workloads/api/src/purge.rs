//! The idempotency-key purge: a background task of the API process that deletes keys older
//! than the configured age (default 24 h), in small batches so no statement holds many row
//! locks or runs long. Counted by `ordexa_idempotency_keys_purged_total`; failures (the
//! database down) are logged, counted by `ordexa_idempotency_purge_failures_total` and retried
//! at the next round.

use std::time::Duration;

use ordexa_platform::Shutdown;
use ordexa_store::{Store, StoreError};

/// How long a key is kept unless configured otherwise: longer than any client retries.
pub const DEFAULT_IDEMPOTENCY_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The pause between purge rounds.
pub const DEFAULT_PURGE_EVERY: Duration = Duration::from_secs(60);
/// Keys deleted per statement.
pub const DEFAULT_PURGE_BATCH: u32 = 500;

/// Deletes idempotency keys older than `max_age`, every `every`.
#[derive(Clone)]
pub struct IdempotencyPurge {
    pub store: Store,
    /// Keys older than this are deleted; a retry after it creates a new order.
    pub max_age: Duration,
    /// The pause between rounds.
    pub every: Duration,
    /// Keys per delete statement.
    pub batch_size: u32,
}

impl IdempotencyPurge {
    pub fn new(store: Store, max_age: Duration) -> Self {
        IdempotencyPurge { store, max_age, every: DEFAULT_PURGE_EVERY, batch_size: DEFAULT_PURGE_BATCH }
    }

    /// One round: batches until no key is due; returns how many keys it deleted.
    pub async fn purge_due(&self) -> Result<u64, StoreError> {
        let mut purged = 0;
        loop {
            let deleted = self.store.purge_idempotency_keys(self.max_age, self.batch_size).await?;
            purged += deleted;
            metrics::counter!("ordexa_idempotency_keys_purged_total").increment(deleted);
            if deleted < u64::from(self.batch_size) {
                return Ok(purged);
            }
            // Let the commands the batches compete with go first.
            tokio::task::yield_now().await;
        }
    }

    /// Rounds every `self.every` until `shutdown` fires.
    pub async fn run(self, mut shutdown: Shutdown) {
        tracing::info!(max_age = ?self.max_age, every = ?self.every, "purging old idempotency keys");
        while !shutdown.is_fired() {
            match self.purge_due().await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged old idempotency keys"),
                Err(err) => {
                    metrics::counter!("ordexa_idempotency_purge_failures_total").increment(1);
                    tracing::warn!(error = %err, "purging old idempotency keys failed; retrying at the next round");
                }
            }
            shutdown.sleep(self.every).await;
        }
    }
}

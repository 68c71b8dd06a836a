//! Idempotency keys are kept so a retried create returns the first response; after a while no
//! client retries any more, and the rows only grow the table. [`Store::purge_idempotency_keys`]
//! deletes the old ones, one small batch per call.

use std::time::Duration;

use crate::{Result, Store};

/// Deletes up to `$2` keys created more than `$1` seconds ago, oldest first: the keys are found
/// through the `idempotency_keys (created_at)` index and deleted by their row address (a TID
/// scan), so a batch costs the same however large the table is. `SKIP LOCKED`: several API
/// replicas purge without waiting on each other, and a key whose create is still in flight is
/// never touched.
pub const PURGE_BATCH_SQL: &str = "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(\
     SELECT ctid FROM idempotency_keys \
     WHERE created_at < now() - $1::float8 * interval '1 second' \
     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED))";

impl Store {
    /// Deletes at most `batch_size` idempotency keys older than `max_age` (by the database's
    /// clock) in one short transaction; returns how many it deleted. Call it again while it
    /// returns `batch_size`.
    pub async fn purge_idempotency_keys(&self, max_age: Duration, batch_size: u32) -> Result<u64> {
        Ok(sqlx::query(PURGE_BATCH_SQL)
            .bind(max_age.as_secs_f64())
            .bind(i64::from(batch_size))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

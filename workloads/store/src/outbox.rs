//! The outbox as a contract between the write side and the relay: the one statement that writes
//! a row, and the names the relay and the outbox trigger (migration 0005) agree on.

use ordexa_domain::{EVENT_SCHEMA_VERSION, OrderEvent};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::{Result, StoreError};

/// The channel the outbox trigger notifies (migration 0005).
pub const NOTIFY_CHANNEL: &str = "ordexa_outbox";

/// The advisory lock the relay's leader holds, exclusively and at session level, only while it
/// waits for rows ("ordxidle" in ASCII, as an i64). A writer's insert takes it shared for the rest
/// of its transaction and notifies only when it cannot (migration 0005): writers that commit
/// while the relay is busy need not notify.
pub const IDLE_LOCK_KEY: i64 = 0x6f72_6478_6964_6c65;

/// Inserts one outbox row: `$1` event id, `$2` order id, `$3` version, `$4` event type, `$5`
/// schema version, `$6` the event as JSON text, `$7` headers (`{"traceparent": …}`). The id is
/// the column's default, which takes the transaction id before it draws the id (migrations 0004
/// and 0007); the relay's claim depends on that order.
pub const INSERT_SQL: &str = "INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, \
     schema_version, payload, headers) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Writes `event` as the command's one outbox row, in the command's transaction.
pub(crate) async fn insert(conn: &mut PgConnection, event: &OrderEvent, traceparent: &str) -> Result<()> {
    let payload = serde_json::to_string(event).map_err(|e| StoreError::CorruptRow(format!("event: {e}")))?;
    sqlx::query(INSERT_SQL)
        .bind(event.event_id)
        .bind(event.order_id.0)
        .bind(event.version)
        .bind(event.event_type.as_str())
        .bind(i32::try_from(EVENT_SCHEMA_VERSION).unwrap_or(i32::MAX))
        .bind(payload)
        .bind(Json(serde_json::json!({ "traceparent": crate::trace::valid_or_new(traceparent) })))
        .execute(conn)
        .await?;
    Ok(())
}

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

/// An outbox row the relay moved to `outbox_dead_letters` because Kafka refused it for good.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    /// Its id in the outbox when it moved.
    pub id: i64,
    pub event_id: uuid::Uuid,
    pub aggregate_id: uuid::Uuid,
    pub aggregate_version: i64,
    pub event_type: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub reason: String,
    pub dead_lettered_at: chrono::DateTime<chrono::Utc>,
    /// The event's size in bytes.
    pub payload_bytes: i64,
}

/// The columns of a [`DeadLetter`], in a statement's select list.
macro_rules! dead_letter_columns {
    () => {
        "id, event_id, aggregate_id, aggregate_version, event_type, created_at, reason, dead_lettered_at, \
         octet_length(payload)::int8 AS payload_bytes"
    };
}

/// The oldest `limit` dead letters.
pub async fn dead_letters(pool: &sqlx::PgPool, limit: i64) -> Result<Vec<DeadLetter>> {
    let sql = concat!("SELECT ", dead_letter_columns!(), " FROM outbox_dead_letters ORDER BY id LIMIT $1");
    Ok(sqlx::query_as(sql).bind(limit).fetch_all(pool).await?)
}

/// One dead letter and its event (the JSON text the relay would publish), if it exists.
pub async fn dead_letter(pool: &sqlx::PgPool, id: i64) -> Result<Option<(DeadLetter, String)>> {
    let sql = concat!("SELECT ", dead_letter_columns!(), ", payload FROM outbox_dead_letters WHERE id = $1");
    let Some(row) = sqlx::query(sql).bind(id).fetch_optional(pool).await? else { return Ok(None) };
    use sqlx::{FromRow, Row};
    Ok(Some((DeadLetter::from_row(&row)?, row.try_get("payload")?)))
}

/// Moves dead letters back into the outbox (all of them when `ids` is `None`), oldest first, in
/// one statement; the number moved. They take new ids, so they are published after everything
/// published since they were refused: a consumer may then see an older version of an order after
/// a newer one, which the projector ignores (its writes are order-insensitive).
pub async fn retry_dead_letters(pool: &sqlx::PgPool, ids: Option<&[i64]>) -> Result<u64> {
    let moved = sqlx::query(
        "WITH moved AS (DELETE FROM outbox_dead_letters WHERE $1::int8[] IS NULL OR id = ANY($1) RETURNING *) \
         INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, schema_version, payload, headers) \
         SELECT event_id, aggregate_id, aggregate_version, event_type, schema_version, payload, headers \
         FROM moved ORDER BY id",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(moved.rows_affected())
}

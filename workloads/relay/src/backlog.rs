//! The backlog gauges (talks to PostgreSQL): rows waiting in the outbox and the age of the
//! oldest, read every 5 s by every replica.

use std::time::Duration;

use ordexa_platform::Shutdown;
use sqlx::{PgPool, Row};

/// Every 5 s: backlog rows and the age of the oldest unpublished row, as gauges.
pub(crate) async fn report_backlog(pool: PgPool, mut shutdown: Shutdown) {
    while !shutdown.is_fired() {
        match backlog(&pool, BACKLOG_EXACT_UP_TO).await {
            Ok(backlog) => {
                metrics::gauge!("ordexa_outbox_backlog_rows").set(backlog.rows as f64);
                metrics::gauge!("ordexa_outbox_backlog_exact").set(if backlog.exact { 1.0 } else { 0.0 });
                metrics::gauge!("ordexa_outbox_oldest_age_seconds").set(backlog.oldest_age_seconds);
            }
            Err(err) => tracing::debug!(error = %err, "cannot read the outbox backlog"),
        }
        shutdown.sleep(Duration::from_secs(5)).await;
    }
}

/// Up to this many rows the backlog gauge counts them; past it, it reports the span of ids.
const BACKLOG_EXACT_UP_TO: i64 = 100_000;

/// The outbox as the backlog gauges report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backlog {
    /// Rows in the outbox (claimed ones not yet deleted included): counted when the span of
    /// their ids is at most the limit given to [`backlog`], else that span, an upper bound (the
    /// ids of rolled-back writes count too).
    rows: i64,
    /// Whether `rows` was counted.
    exact: bool,
    /// Seconds since the row with the lowest id was written; 0 for an empty outbox.
    oldest_age_seconds: f64,
}

/// The lowest-id row's id and age, and the highest id: one index probe at each end of the
/// primary key, whatever the outbox holds; no row when it is empty.
const BACKLOG_SPAN_SQL: &str = "SELECT id AS lowest, (SELECT max(id) FROM outbox) AS highest, \
     EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 AS age FROM outbox ORDER BY id LIMIT 1";

/// Reads the backlog: the span of ids from the primary key's two ends, and the rows within it
/// counted only when there are at most `exact_up_to` of them, so that a large backlog (after a
/// Kafka outage, just when the relay needs the database most) costs two index probes, not a scan
/// of every row (`docs/adr/`: the backlog gauges).
async fn backlog(pool: &PgPool, exact_up_to: i64) -> Result<Backlog, sqlx::Error> {
    let Some(row) = sqlx::query(BACKLOG_SPAN_SQL).fetch_optional(pool).await? else {
        return Ok(Backlog { rows: 0, exact: true, oldest_age_seconds: 0.0 });
    };
    let (lowest, highest): (i64, i64) = (row.try_get("lowest")?, row.try_get("highest")?);
    let oldest_age_seconds: f64 = row.try_get("age")?;
    let span = highest - lowest + 1;
    if span > exact_up_to {
        return Ok(Backlog { rows: span, exact: false, oldest_age_seconds });
    }
    let rows = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE id BETWEEN $1 AND $2")
        .bind(lowest)
        .bind(highest)
        .fetch_one(pool)
        .await?;
    Ok(Backlog { rows, exact: true, oldest_age_seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordexa_testkit::{TestDatabase, TestResult};

    /// `count` rows written `seconds_ago` seconds ago, in one statement.
    async fn insert(pool: &sqlx::PgPool, count: i64, seconds_ago: f64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, schema_version, payload, created_at) \
             SELECT gen_random_uuid(), gen_random_uuid(), 1, 'order.created', 1, '{}', \
             clock_timestamp() - make_interval(secs => $2) FROM generate_series(1, $1)",
        )
        .bind(count)
        .bind(seconds_ago)
        .execute(pool)
        .await?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_backlog_is_counted_while_small_and_spanned_past_the_limit() -> TestResult {
        let db = TestDatabase::create().await?;
        let pool = ordexa_store::connect(&db.url, 2).await?;
        ordexa_store::migrate(&pool).await?;

        assert_eq!(backlog(&pool, 100).await?, Backlog { rows: 0, exact: true, oldest_age_seconds: 0.0 });

        // The oldest rows first (lowest ids), then newer ones.
        insert(&pool, 3, 120.0).await?;
        insert(&pool, 4, 1.0).await?;
        let seen = backlog(&pool, 100).await?;
        assert_eq!((seen.rows, seen.exact), (7, true));
        assert!((120.0..180.0).contains(&seen.oldest_age_seconds), "age of the oldest row: {seen:?}");

        // Published rows leave gaps in the ids: counted, they are not there.
        sqlx::query("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id OFFSET 1 LIMIT 2)")
            .execute(&pool)
            .await?;
        let seen = backlog(&pool, 100).await?;
        assert_eq!((seen.rows, seen.exact), (5, true));

        // Past the limit the ids' span stands in, an upper bound that counts the gaps.
        let seen = backlog(&pool, 4).await?;
        assert_eq!((seen.rows, seen.exact), (7, false));
        assert!((120.0..180.0).contains(&seen.oldest_age_seconds), "age of the oldest row: {seen:?}");

        // The oldest row published: the age is the next one's.
        sqlx::query("DELETE FROM outbox WHERE id = (SELECT min(id) FROM outbox)").execute(&pool).await?;
        let seen = backlog(&pool, 100).await?;
        assert_eq!((seen.rows, seen.exact), (4, true));
        assert!((1.0..60.0).contains(&seen.oldest_age_seconds), "age of the oldest row: {seen:?}");
        Ok(())
    }
}

//! The backlog gauges' reading of the outbox (`ordexa_relay::backlog`): rows counted while few,
//! the span of ids past the limit, and the age of the oldest row.

use ordexa_relay::{Backlog, backlog};
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

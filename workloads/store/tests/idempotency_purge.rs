//! The idempotency-key purge against a real PostgreSQL: old keys go, in batches no larger
//! than asked for, oldest first; recent keys stay.

use std::time::Duration;

use ordexa_store::Store;
use ordexa_testkit::{TestDatabase, TestResult};

#[tokio::test]
async fn keys_older_than_the_age_are_purged_in_batches_and_recent_ones_stay() -> TestResult {
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, 4).await?;
    ordexa_store::migrate(&pool).await?;
    let store = Store::new(pool.clone());
    // Five keys from two days ago and before, two from an hour ago.
    for (key, age_hours) in [("a", 48), ("b", 49), ("c", 50), ("d", 51), ("e", 52), ("fresh-1", 1), ("fresh-2", 1)] {
        sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at) \
             VALUES ('alice', $1, '\\x00', now() - make_interval(hours => $2))",
        )
        .bind(key)
        .bind(age_hours)
        .execute(&pool)
        .await?;
    }
    let day = Duration::from_secs(24 * 60 * 60);

    assert_eq!(store.purge_idempotency_keys(day, 2).await?, 2);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT key FROM idempotency_keys ORDER BY key").fetch_all(&pool).await?;
    assert_eq!(left, ["a", "b", "c", "fresh-1", "fresh-2"], "the oldest two went first");
    assert_eq!(store.purge_idempotency_keys(day, 2).await?, 2);
    assert_eq!(store.purge_idempotency_keys(day, 2).await?, 1);
    assert_eq!(store.purge_idempotency_keys(day, 2).await?, 0);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT key FROM idempotency_keys ORDER BY key").fetch_all(&pool).await?;
    assert_eq!(left, ["fresh-1", "fresh-2"]);

    // The age is the caller's: with half an hour, the fresh ones are due too.
    assert_eq!(store.purge_idempotency_keys(Duration::from_secs(30 * 60), 100).await?, 2);
    pool.close().await;
    db.drop_database().await
}

#[tokio::test]
async fn a_purge_batch_reads_only_the_keys_it_deletes() -> TestResult {
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, 2).await?;
    ordexa_store::migrate(&pool).await?;
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at) \
         SELECT 'u', 'k' || n, '\\x00', now() - n * interval '1 minute' FROM generate_series(1, 20000) AS n",
    )
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE idempotency_keys").execute(&pool).await?;
    let explain = format!("EXPLAIN {}", ordexa_store::idempotency::PURGE_BATCH_SQL);
    let plan: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(explain)).bind(86_400.0_f64).bind(500_i64).fetch_all(&pool).await?;
    let plan = plan.join("\n");
    assert!(plan.contains("idempotency_keys_created"), "the batch does not find keys by the created_at index:\n{plan}");
    assert!(plan.contains("Tid Scan"), "the batch does not delete by row address:\n{plan}");
    assert!(!plan.contains("Seq Scan"), "the batch scans the whole table:\n{plan}");
    pool.close().await;
    db.drop_database().await
}

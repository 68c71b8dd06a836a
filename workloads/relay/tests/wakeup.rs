//! How the relay learns of new rows (migration 0005): writers notify only while the relay waits,
//! holding `IDLE_LOCK_KEY`; a writer in progress that did not notify keeps the relay from waiting,
//! so the relay claims again by itself and finds its rows once it commits.

use std::time::Duration;

use ordexa_platform::{Health, Shutdown};
use ordexa_store::outbox::{IDLE_LOCK_KEY, NOTIFY_CHANNEL};
use ordexa_testkit::{self as kit, TestDatabase, TestResult};
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};

mod common;

/// Far longer than any wait below: a row published within those waits was not found by the
/// fallback poll.
const FALLBACK_POLL: Duration = Duration::from_secs(300);
const WITHIN: Duration = Duration::from_secs(30);

const INSERT: &str = "INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, schema_version, payload) \
     VALUES (gen_random_uuid(), gen_random_uuid(), 1, 'order.created', 1, '{}')";

/// The sessions holding `IDLE_LOCK_KEY` in this database (advisory locks are per database), with
/// the mode each holds it in.
async fn idle_lock_holders(pool: &PgPool) -> Result<Vec<(i32, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT pid, mode FROM pg_locks \
         WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND (classid::int8 << 32 | objid::int8) = $1 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY pid",
    )
    .bind(IDLE_LOCK_KEY)
    .fetch_all(pool)
    .await
}

/// The next notification's payload on `listener`.
async fn next_payload(listener: &mut PgListener) -> Result<String, kit::Failure> {
    let notification = tokio::time::timeout(WITHIN, listener.recv()).await.map_err(|_| "no notification")??;
    Ok(notification.payload().to_owned())
}

async fn drained(pool: &PgPool, what: &str) -> TestResult {
    common::drained(pool, WITHIN, what).await
}

/// `pg_try_advisory_lock` of `IDLE_LOCK_KEY` on `session`, as the relay takes it.
async fn try_idle_lock(session: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(IDLE_LOCK_KEY).fetch_one(session).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_notify_only_while_the_idle_lock_is_held() -> TestResult {
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, 4).await?;
    ordexa_store::migrate(&pool).await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;

    // Nobody waits: a commit does not notify. Notifications arrive in commit order, so the first
    // one must be the marker sent after the insert.
    sqlx::query(INSERT).execute(&pool).await?;
    sqlx::query("SELECT pg_notify($1, 'after the first insert')").bind(NOTIFY_CHANNEL).execute(&pool).await?;
    assert_eq!(next_payload(&mut listener).await?, "after the first insert", "a commit notified with no one waiting");

    // A waiting relay holds the lock: every commit notifies.
    let mut relay = PgConnection::connect(&db.url).await?;
    let got = try_idle_lock(&mut relay).await?;
    assert!(got, "no writer is in progress, so the lock is free");
    sqlx::query(INSERT).execute(&pool).await?;
    assert_eq!(next_payload(&mut listener).await?, "", "the commit made while the relay waits notifies");
    let released: bool =
        sqlx::query_scalar("SELECT pg_advisory_unlock($1)").bind(IDLE_LOCK_KEY).fetch_one(&mut relay).await?;
    assert!(released);

    // A writer in progress that did not notify holds the lock shared until it ends, so the relay
    // cannot start waiting while that writer's rows are still to come.
    let mut writer = pool.begin().await?;
    sqlx::query(INSERT).execute(&mut *writer).await?;
    let holders = idle_lock_holders(&pool).await?;
    assert!(holders.iter().any(|(_, mode)| mode == "ShareLock"), "the writer holds the lock shared: {holders:?}");
    let got = try_idle_lock(&mut relay).await?;
    assert!(!got, "the relay took the lock while a writer that did not notify was in progress");
    writer.commit().await?;
    sqlx::query("SELECT pg_notify($1, 'after the writer')").bind(NOTIFY_CHANNEL).execute(&pool).await?;
    assert_eq!(next_payload(&mut listener).await?, "after the writer", "the writer notified");
    let got = try_idle_lock(&mut relay).await?;
    assert!(got, "once the writer ended the relay can wait");
    relay.close().await?;
    // The listener holds one of the pool's connections, which closing the pool waits for.
    drop(listener);
    pool.close().await;
    db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_finds_rows_of_writers_that_did_not_notify_and_wakes_when_notified() -> TestResult {
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, 4).await?;
    ordexa_store::migrate(&pool).await?;
    let prefix = format!("{}.", kit::unique_name("relaywake"));
    ordexa_topics::ensure_topics(&kit::kafka_bootstrap()?, &prefix, 1, 1).await?;
    let config = common::relay_config(&db.url, &prefix, 100, FALLBACK_POLL)?;

    // A writer in progress before the relay starts: it takes the lock shared, so it will not
    // notify when it commits.
    let mut writer = pool.begin().await?;
    sqlx::query(INSERT).execute(&mut *writer).await?;
    sqlx::query(INSERT).execute(&pool).await?;
    let (trigger, shutdown) = Shutdown::new();
    let relay = tokio::spawn(ordexa_relay::run(config, Health::new("starting"), shutdown));
    drained(&pool, "the row committed before the relay started").await?;
    // The relay has claimed and found nothing more; it keeps trying to wait and cannot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holders = idle_lock_holders(&pool).await?;
    assert!(
        holders.iter().all(|(_, mode)| mode == "ShareLock"),
        "the relay waits while a writer that will not notify is in progress: {holders:?}"
    );
    writer.commit().await?;
    drained(&pool, "the row of the writer that did not notify").await?;

    // Now no writer is in progress: the relay waits, holding the lock, and a commit wakes it.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !idle_lock_holders(&pool).await?.iter().any(|(_, mode)| mode == "ExclusiveLock") {
        assert!(tokio::time::Instant::now() < deadline, "the idle relay never took the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::query(INSERT).execute(&pool).await?;
    drained(&pool, "a row committed while the relay waited").await?;
    // Having woken, it no longer holds the lock while it publishes, and takes it again after.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !idle_lock_holders(&pool).await?.iter().any(|(_, mode)| mode == "ExclusiveLock") {
        assert!(tokio::time::Instant::now() < deadline, "the relay did not wait again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    trigger.fire();
    relay.await.map_err(|e| e.to_string())??;
    assert!(idle_lock_holders(&pool).await?.is_empty(), "a stopped relay left the lock held");
    let messages = kit::read_topic(&format!("{prefix}orders")).await?;
    assert_eq!(messages.len(), 3, "every row once");
    pool.close().await;
    db.drop_database().await
}

//! The relay reclaims the space of the rows it deleted: it vacuums the outbox every
//! `vacuum_every` rows, so new rows reuse the pages of published ones instead of growing the
//! table (autovacuum is off for the outbox here, so only the relay's vacuums can do that). A
//! role that may not vacuum the outbox still publishes everything.

use std::time::Duration;

use ordexa_platform::{Health, Shutdown};
use ordexa_relay::RelayConfig;
use ordexa_testkit::{self as kit, TestDatabase, TestResult};
use sqlx::PgPool;

mod common;

/// Rows written per round; the next round starts once the relay has emptied the outbox.
const ROUND: i64 = 1_000;
/// Enough that rows appended without reuse take several times what a vacuum that lags a few
/// rounds behind (a busy machine) leaves: peaks of 2.3 and 12.9 MB in 30 rounds, against 35 MB
/// never vacuumed.
const ROUNDS: i64 = 60;
/// Bytes of each row's payload.
const PAYLOAD: i64 = 1_000;

/// One round of `ROUND` rows of `PAYLOAD` bytes each, every row of its own order.
async fn write_round(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, schema_version, payload) \
         SELECT gen_random_uuid(), gen_random_uuid(), 1, 'order.created', 1, \
         json_build_object('pad', repeat('x', $2::int - 10))::text FROM generate_series(1, $1)",
    )
    .bind(ROUND)
    .bind(PAYLOAD)
    .execute(pool)
    .await?;
    Ok(())
}

/// Writes every round through a relay run with `config`, waiting for the outbox to empty after
/// each; checks every row was published and returns the outbox's largest heap size in bytes,
/// read after each round (the file shrinks when a vacuum that may truncate finds its end empty,
/// so the size at the end alone would not show whether rows reused space meanwhile).
async fn publish_rounds(pool: &PgPool, config: RelayConfig) -> Result<i64, kit::Failure> {
    let topic = ordexa_topics::orders_topic(&config.topic_prefix);
    ordexa_topics::ensure_topics(&config.kafka_bootstrap, &config.topic_prefix, 2, 1).await?;
    let (trigger, shutdown) = Shutdown::new();
    let relay = tokio::spawn(ordexa_relay::run(config, Health::new("starting"), shutdown));
    let mut largest = 0;
    for round in 1..=ROUNDS {
        write_round(pool).await?;
        common::drained(pool, Duration::from_secs(30), &format!("round {round} of {ROUNDS}")).await?;
        let size: i64 = sqlx::query_scalar("SELECT pg_relation_size('outbox')").fetch_one(pool).await?;
        largest = largest.max(size);
    }
    trigger.fire();
    relay.await??;
    let published = kit::read_topic(&topic).await?;
    assert!(published.len() as i64 >= ROUND * ROUNDS, "{} of {} rows published", published.len(), ROUND * ROUNDS);
    Ok(largest)
}

/// A migrated test database whose outbox autovacuum leaves alone.
async fn database() -> Result<(TestDatabase, PgPool), kit::Failure> {
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, 2).await?;
    ordexa_store::migrate(&pool).await?;
    sqlx::query("ALTER TABLE outbox SET (autovacuum_enabled = false)").execute(&pool).await?;
    Ok((db, pool))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rows_reuse_the_space_of_published_ones() -> TestResult {
    let (db, pool) = database().await?;
    let prefix = format!("{}.", kit::unique_name("relayvacuum"));
    let mut config = common::relay_config(&db.url, &prefix, 500, Duration::from_millis(200))?;
    config.vacuum_every = 2_000;

    let size = publish_rounds(&pool, config).await?;
    // Appended without reuse, the rows would take at least their payloads' bytes. Reused, the
    // table holds about what was written between two vacuums and the rows not yet deleted.
    let written = ROUND * ROUNDS * PAYLOAD;
    eprintln!("outbox heap at most {size} bytes while {} rows of {PAYLOAD} bytes went through it", ROUND * ROUNDS);
    assert!(size < written / 3, "the outbox grew to {size} bytes for {written} bytes of payloads published through it");
    pool.close().await;
    db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_may_not_vacuum_the_outbox_still_publishes_it() -> TestResult {
    let (db, pool) = database().await?;
    // A role with just what publishing needs: it reads and deletes the outbox, which it does not own.
    let role = kit::unique_name("ordexa_relay_role");
    let password = kit::unique_name("pw");
    for grant in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        format!("GRANT CONNECT ON DATABASE {} TO {role}", db.name),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, DELETE ON outbox TO {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(grant)).execute(&pool).await?;
    }
    let (scheme, rest) = db.url.split_once("://").ok_or("the database URL has no scheme")?;
    let (_, host) = rest.rsplit_once('@').ok_or("the database URL names no user")?;
    let url = format!("{scheme}://{role}:{password}@{host}");
    let prefix = format!("{}.", kit::unique_name("relaynovacuum"));
    let mut config = common::relay_config(&url, &prefix, 500, Duration::from_millis(200))?;
    config.vacuum_every = 2_000;

    let size = publish_rounds(&pool, config).await?;
    // Nothing vacuumed the outbox, so every row went to new pages.
    let written = ROUND * ROUNDS * PAYLOAD;
    eprintln!("outbox heap at most {size} bytes while {} rows went through it, not vacuumed", ROUND * ROUNDS);
    assert!(size >= written, "{size} bytes for {written} bytes of payloads: the outbox was vacuumed after all");
    pool.close().await;
    db.drop_database().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}"))).execute(&kit::postgres().await?).await?;
    Ok(())
}

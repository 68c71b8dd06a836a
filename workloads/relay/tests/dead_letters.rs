//! Rows Kafka refuses for good do not stop the pipeline: a row larger than the producer may send,
//! and one larger than the topic accepts, both move to `outbox_dead_letters` with the reason,
//! and every row after them is published.

use std::time::Duration;

use ordexa_platform::{Health, Shutdown};
use ordexa_testkit::{self as kit, TestDatabase, TestResult};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use sqlx::PgPool;

mod common;

/// Writes an outbox row for a new order whose payload carries `padding` bytes of random hex (which
/// compression cannot shrink below half), as a writer would; returns its order id.
async fn insert_row(pool: &PgPool, padding: usize) -> Result<uuid::Uuid, kit::Failure> {
    let order = uuid::Uuid::now_v7();
    let mut noise = String::with_capacity(padding + 32);
    while noise.len() < padding {
        noise.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    noise.truncate(padding);
    let payload = serde_json::json!({"order_id": order, "padding": noise}).to_string();
    sqlx::query(ordexa_store::outbox::INSERT_SQL)
        .bind(uuid::Uuid::now_v7())
        .bind(order)
        .bind(1_i64)
        .bind("order.created")
        .bind(1_i32)
        .bind(payload)
        .bind(serde_json::json!({}))
        .execute(pool)
        .await?;
    Ok(order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_kafka_refuses_move_to_the_dead_letters_and_the_rest_is_published() -> TestResult {
    common::logs();
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, 4).await?;
    ordexa_store::migrate(&pool).await?;
    let prefix = format!("{}.", kit::unique_name("deadletters"));
    let topic = ordexa_topics::orders_topic(&prefix);
    // The topic accepts records up to 200 kB; the producer sends up to about 1 MB.
    let admin = kit::kafka_admin()?;
    let new_topic = NewTopic::new(&topic, 2, TopicReplication::Fixed(1)).set("max.message.bytes", "200000");
    for result in admin.create_topics([&new_topic], &AdminOptions::new()).await? {
        result.map_err(|(topic, code)| format!("creating {topic}: {code}"))?;
    }

    let first = insert_row(&pool, 0).await?;
    let too_large_for_the_producer = insert_row(&pool, 2_000_000).await?;
    let between = insert_row(&pool, 0).await?;
    let too_large_for_the_topic = insert_row(&pool, 600_000).await?;
    let mut after = Vec::new();
    for _ in 0..20 {
        after.push(insert_row(&pool, 0).await?);
    }

    let config = common::relay_config(&db.url, &prefix, 10, Duration::from_millis(200))?;
    let (trigger, shutdown) = Shutdown::new();
    let relay = tokio::spawn(ordexa_relay::run(config, Health::new("starting"), shutdown));
    common::drained(&pool, Duration::from_secs(60), "refused rows must not hold back the rows after them").await?;
    trigger.fire();
    relay.await??;

    let dead: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT aggregate_id, reason FROM outbox_dead_letters ORDER BY id").fetch_all(&pool).await?;
    let dead_orders: Vec<uuid::Uuid> = dead.iter().map(|(order, _)| *order).collect();
    assert_eq!(dead_orders, [too_large_for_the_producer, too_large_for_the_topic], "{dead:?}");
    for (_, reason) in &dead {
        assert!(reason.contains("too large"), "the reason names the refusal: {reason}");
    }
    let published: Vec<String> = kit::read_topic(&topic).await?.into_iter().filter_map(|m| m.key).collect();
    let mut expected = vec![first.to_string(), between.to_string()];
    expected.extend(after.iter().map(ToString::to_string));
    let mut published_sorted = published.clone();
    published_sorted.sort();
    published_sorted.dedup();
    expected.sort();
    assert_eq!(published_sorted, expected, "every acceptable row is published, no refused one");

    // `ordexa outbox dead list|show|retry`: listed oldest first, shown with the event, moved back
    // into the outbox with new ids.
    let listed = ordexa_store::outbox::dead_letters(&pool, 10).await?;
    assert_eq!(listed.iter().map(|d| d.aggregate_id).collect::<Vec<_>>(), dead_orders);
    assert!(listed[0].payload_bytes > 2_000_000, "{:?}", listed[0]);
    let (shown, event) = ordexa_store::outbox::dead_letter(&pool, listed[0].id).await?.ok_or("listed, not shown")?;
    assert_eq!((shown.id, event.contains(&too_large_for_the_producer.to_string())), (listed[0].id, true));
    let highest_published: i64 = sqlx::query_scalar("SELECT last_value FROM outbox_id_seq").fetch_one(&pool).await?;
    assert_eq!(ordexa_store::outbox::retry_dead_letters(&pool, Some(&[listed[1].id])).await?, 1);
    assert_eq!(ordexa_store::outbox::retry_dead_letters(&pool, None).await?, 1);
    let back: Vec<(i64, uuid::Uuid)> =
        sqlx::query_as("SELECT id, aggregate_id FROM outbox ORDER BY id").fetch_all(&pool).await?;
    assert_eq!(
        back.iter().map(|(_, order)| *order).collect::<Vec<_>>(),
        [too_large_for_the_topic, too_large_for_the_producer]
    );
    assert!(back.iter().all(|(id, _)| *id > highest_published), "retried rows take new ids: {back:?}");
    assert!(ordexa_store::outbox::dead_letters(&pool, 10).await?.is_empty());
    pool.close().await;
    db.drop_database().await
}

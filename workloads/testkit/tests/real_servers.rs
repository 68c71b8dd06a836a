//! Smoke tests: each client the system uses reaches its real server and gets an answer only
//! that server can give.

use std::time::Duration;

use ordexa_testkit as kit;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

#[tokio::test]
async fn postgres_reports_server_version_15_and_runs_a_transaction() -> kit::TestResult {
    let pool = kit::postgres().await?;

    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&pool).await?;
    assert!(version.starts_with("15."), "expected PostgreSQL 15, server says {version}");

    // A rolled-back insert must not be visible afterwards; a committed one must. A temporary
    // table lives on one connection, so the whole check holds on to one.
    let mut conn = pool.acquire().await?;
    sqlx::query("CREATE TEMP TABLE smoke (id int PRIMARY KEY)").execute(&mut *conn).await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("INSERT INTO smoke VALUES (1)").execute(&mut *tx).await?;
    tx.rollback().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("INSERT INTO smoke VALUES (2)").execute(&mut *tx).await?;
    tx.commit().await?;
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM smoke ORDER BY id").fetch_all(&mut *conn).await?;
    assert_eq!(ids, vec![2]);
    Ok(())
}

#[tokio::test]
async fn kafka_runs_kraft_combined_mode_and_round_trips_a_keyed_message() -> kit::TestResult {
    let admin = kit::kafka_admin()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));

    // Only the real broker knows its own configuration.
    let configs = admin.describe_configs([&ResourceSpecifier::Broker(1)], &options).await?;
    let broker = configs.into_iter().next().ok_or("no broker config returned")??;
    let roles = broker.get("process.roles").and_then(|e| e.value.clone());
    assert_eq!(roles.as_deref(), Some("broker,controller"), "broker is not a KRaft combined node");

    let topic = kit::unique_name("ordexa.smoke");
    let created = admin.create_topics([&NewTopic::new(&topic, 3, TopicReplication::Fixed(1))], &options).await?;
    for result in created {
        result.map_err(|(name, code)| format!("creating topic {name} failed: {code}"))?;
    }

    let producer = kit::kafka_producer()?;
    let key = "order-42";
    let payload = r#"{"type":"order.created"}"#;
    let delivery = producer
        .send(
            FutureRecord::to(&topic)
                .key(key)
                .payload(payload)
                .headers(OwnedHeaders::new().insert(Header { key: "type", value: Some("order.created") })),
            Timeout::After(Duration::from_secs(30)),
        )
        .await
        .map_err(|(err, _)| err)?;
    let (partition, offset) = (delivery.partition, delivery.offset);
    assert!((0..3).contains(&partition), "broker placed the message in partition {partition}");
    assert_eq!(offset, 0, "first message of a fresh partition gets offset 0");

    let consumer = kit::kafka_consumer()?;
    let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let partitions = metadata.topics().first().map(|t| t.partitions().len());
    assert_eq!(partitions, Some(3));

    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, partition, rdkafka::Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await??;
    assert_eq!(message.key(), Some(key.as_bytes()));
    assert_eq!(message.payload(), Some(payload.as_bytes()));
    assert_eq!(message.offset(), offset);
    let header = message.headers().map(|h| h.get(0));
    assert_eq!(header.map(|h| (h.key, h.value)), Some(("type", Some(&b"order.created"[..]))));

    admin.delete_topics(&[&topic], &options).await?;
    Ok(())
}

#[tokio::test]
async fn cassandra_reports_release_5_0_and_round_trips_a_row() -> kit::TestResult {
    let session = kit::cassandra().await?;

    let (release,): (String,) = session
        .query_unpaged("SELECT release_version FROM system.local", &[])
        .await?
        .into_rows_result()?
        .single_row()?;
    assert!(release.starts_with("5.0"), "expected Cassandra 5.0, node says {release}");

    let keyspace = kit::unique_name("smoke");
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await?;
    session.query_unpaged(format!("CREATE TABLE {keyspace}.kv (k text PRIMARY KEY, v bigint)"), &[]).await?;
    session.query_unpaged(format!("INSERT INTO {keyspace}.kv (k, v) VALUES (?, ?)"), ("total", 4_200_i64)).await?;
    // An older write (lower timestamp) must lose to the newer one: the read model relies on it.
    session
        .query_unpaged(format!("INSERT INTO {keyspace}.kv (k, v) VALUES (?, ?) USING TIMESTAMP 1"), ("total", 1_i64))
        .await?;
    let (value,): (i64,) = session
        .query_unpaged(format!("SELECT v FROM {keyspace}.kv WHERE k = ?"), ("total",))
        .await?
        .into_rows_result()?
        .single_row()?;
    session.query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[]).await?;
    assert_eq!(value, 4_200);
    Ok(())
}

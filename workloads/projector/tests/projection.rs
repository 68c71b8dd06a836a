//! The projector against the real local Kafka and Cassandra: replays are idempotent and
//! order-insensitive, poison goes to the dead-letter topic without stopping the stream, and
//! dead letters can be inspected and re-driven.

mod common;

use std::time::Duration;

use common::{World, dump, histories, wait_converged};
use ordexa_domain::{OrderId, OrderStatus};
use ordexa_projector::dlq::{self, Position};
use ordexa_projector::dlq_headers;
use ordexa_testkit::{self as kit, TestResult};
use rand::seq::SliceRandom;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_topic_twice_or_shuffled_with_duplicates_gives_identical_tables() -> TestResult {
    let mut world = World::new(6).await?;
    let (events, finals) = histories(300, 40)?;
    world.publish(&events).await?;

    // Two full replays from offset 0 (two groups), each into empty tables.
    let first = world.read_model().await?;
    let projector = world.projector("first", first.clone());
    wait_converged(&first, &finals, Duration::from_secs(120)).await?;
    projector.stop().await?;
    let second = world.read_model().await?;
    let projector = world.projector("second", second.clone());
    wait_converged(&second, &finals, Duration::from_secs(120)).await?;
    projector.stop().await?;
    let first_tables = dump(&first).await?;
    assert_eq!(first_tables, dump(&second).await?, "two replays of one topic differ");

    // The same events shuffled, a third of them delivered twice, applied concurrently.
    let mut shuffled = events.clone();
    let mut extra: Vec<_> = events.iter().step_by(3).cloned().collect();
    shuffled.append(&mut extra);
    shuffled.shuffle(&mut rand::rng());
    let third = world.read_model().await?;
    for chunk in shuffled.chunks(64) {
        futures::future::try_join_all(chunk.iter().map(|event| third.apply(event))).await?;
    }
    assert_eq!(first_tables, dump(&third).await?, "shuffled, duplicated delivery changed the tables");

    // And the tables say what the orders are: each order once in its user's list and once
    // under its final status.
    let rows = |name: &str| first_tables.iter().find(|(n, _)| n == name).map(|(_, rows)| rows.len()).unwrap_or(0);
    assert_eq!(rows("orders_by_id"), finals.len());
    assert_eq!(rows("orders_by_user"), finals.len());
    assert_eq!(rows("orders_by_status"), finals.len(), "every order listed under exactly one status");
    for status in OrderStatus::ALL {
        let expected = finals.values().filter(|o| o.status == status).count();
        let mut listed = 0;
        let mut after = None;
        loop {
            let page = first.list_by_status(status, 100, after).await?;
            assert!(page.orders.iter().all(|o| o.status == status && finals[&o.id] == *o), "{status:?}");
            listed += page.orders.len();
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(listed, expected, "{status:?}");
    }
    let user_page = first.list_by_user("user-7", 100, None).await?;
    let mut expected: Vec<&ordexa_domain::Order> = finals.values().filter(|o| o.user_id == "user-7").collect();
    expected.sort_by_key(|o| std::cmp::Reverse((o.created_at.timestamp_millis(), o.id.0)));
    assert_eq!(user_page.orders.iter().collect::<Vec<_>>(), expected, "newest first");
    world.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_with_its_headers_and_the_stream_goes_on() -> TestResult {
    let mut world = World::new(1).await?;
    let (events, finals) = histories(3, 1)?;
    let first_order = events[0].order_id;
    // Valid events, then two poison records, then the rest.
    world.publish(&events[..1]).await?;
    let producer = kit::kafka_producer()?;
    let topic = world.topic();
    let poison_key = first_order.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header { key: "traceparent", value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") });
    let not_json = producer
        .send(FutureRecord::to(&topic).key(&poison_key).payload("{not json").headers(headers), Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)?;
    let mut invalid = serde_json::to_value(&events[0])?;
    invalid["order"]["total"] = serde_json::json!(-5);
    let invalid = serde_json::to_vec(&invalid)?;
    let invalid_delivery = producer
        .send(FutureRecord::to(&topic).key(&poison_key).payload(&invalid), Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)?;
    world.publish(&events[1..]).await?;

    let model = world.read_model().await?;
    let projector = world.projector("main", model.clone());
    wait_converged(&model, &finals, Duration::from_secs(60)).await?;

    let letters = dlq::list(&world.bootstrap, &world.dlq_topic(), 100).await?;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let first = &letters[0];
    assert_eq!(first.key.as_deref(), Some(poison_key.as_bytes()));
    assert_eq!(first.value.as_deref(), Some(&b"{not json"[..]), "the original value, byte for byte");
    assert!(first.header(dlq_headers::ERROR).is_some_and(|e| e.contains("not JSON")), "{first:?}");
    assert_eq!(first.header(dlq_headers::SOURCE_TOPIC).as_deref(), Some(topic.as_str()));
    assert_eq!(first.header(dlq_headers::SOURCE_PARTITION).as_deref(), Some("0"));
    assert_eq!(first.header(dlq_headers::SOURCE_OFFSET), Some(not_json.offset.to_string()));
    assert_eq!(first.header(dlq_headers::ATTEMPTS).as_deref(), Some("1"));
    let at = first.header(dlq_headers::DEAD_LETTERED_AT).unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "time header {at:?}");
    assert_eq!(first.header("traceparent").as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    let second = &letters[1];
    assert!(
        second.header(dlq_headers::ERROR).is_some_and(|e| e.contains("schema") && e.contains("total")),
        "{second:?}"
    );
    assert_eq!(second.header(dlq_headers::SOURCE_OFFSET), Some(invalid_delivery.offset.to_string()));
    assert_eq!(dlq::show(&world.bootstrap, &world.dlq_topic(), second.position).await?, *second);

    // After a fix: a dead letter that is projectable now is re-driven and projected.
    let (late, late_finals) = histories(1, 1)?;
    let late_id: OrderId = late[0].order_id;
    let dlq_headers = OwnedHeaders::new()
        .insert(Header { key: dlq_headers::SOURCE_TOPIC, value: Some(topic.as_str()) })
        .insert(Header { key: dlq_headers::ERROR, value: Some("unsupported by the previous release") });
    let late_key = late_id.to_string();
    let late_value = serde_json::to_vec(&late[0])?;
    producer
        .send(
            FutureRecord::to(&world.dlq_topic()).key(&late_key).payload(&late_value).headers(dlq_headers),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;
    let letters = dlq::list(&world.bootstrap, &world.dlq_topic(), 100).await?;
    let to_replay: Vec<_> = letters.iter().filter(|d| d.key.as_deref() == Some(late_key.as_bytes())).cloned().collect();
    assert_eq!(to_replay.len(), 1);
    assert_eq!(dlq::replay(&world.bootstrap, &world.dlq_topic(), &to_replay, &topic).await?, 1);
    let expected = late_finals.get(&late_id).cloned().ok_or("late order")?;
    let mut projected = None;
    for _ in 0..200 {
        projected = model.get(late_id).await?;
        if projected.as_ref() == Some(&late[0].order) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(projected.map(|o| o.version), Some(1), "the replayed event was projected");
    assert_eq!(late[0].order.id, expected.id);
    // The poison itself is still poison, and is dead-lettered again rather than dropped.
    let poison: Vec<_> =
        letters.iter().filter(|d| d.position == Position { partition: 0, offset: 0 }).cloned().collect();
    assert_eq!(dlq::replay(&world.bootstrap, &world.dlq_topic(), &poison, &topic).await?, 1);
    let mut count = 0;
    for _ in 0..200 {
        count = dlq::list(&world.bootstrap, &world.dlq_topic(), 100).await?.len();
        if count == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count, 4, "the replayed poison is dead-lettered once more");
    assert!(projector.health.check().is_ok(), "poison does not make the projector unready");
    projector.stop().await?;
    world.finish().await
}

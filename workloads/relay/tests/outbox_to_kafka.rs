//! The relay in-process against real PostgreSQL and Kafka: only committed rows are published,
//! with the contract's key and headers and schema-valid values, and the outbox drains.

use std::time::Duration;

use ordexa_domain::{ItemRequest, OrderEvent, Transition};

use ordexa_platform::{Health, Shutdown};
use ordexa_store::{Actor, CreateOrder, CreateOutcome, OrderChange, Store};
use ordexa_testkit::{self as kit, TestDatabase, TestResult};
use serde_json::Value;

mod common;

/// Waits until the outbox holds no row this session can see.
async fn drained(store: &Store, what: &str) -> TestResult {
    common::drained(store.pool(), Duration::from_secs(60), what).await
}

const TRACE_HEADERS: &str = r#"{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#;

/// An `order.created` event for a new order like `like`.
async fn created_like(store: &Store, like: ordexa_domain::OrderId, admin: &Actor) -> Result<OrderEvent, kit::Failure> {
    let mut order = store.get_order(like, admin).await?;
    order.id = ordexa_domain::OrderId::new();
    order.version = 1;
    order.status = ordexa_domain::OrderStatus::Pending;
    Ok(OrderEvent::created(&order))
}

/// Inserts `event`'s outbox row with `headers`, as a writer would, on `conn`.
async fn insert_event(conn: &mut sqlx::PgConnection, event: &OrderEvent, headers: &str) -> TestResult {
    sqlx::query(
        "INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, schema_version, payload, headers) \
         VALUES ($1, $2, 1, 'order.created', 1, $3, $4::jsonb)",
    )
    .bind(event.event_id)
    .bind(event.order_id.0)
    .bind(serde_json::to_string(event)?)
    .bind(headers)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts an `order.created` outbox row for a new order, as a writer would, in `tx`.
async fn insert_created(
    tx: &mut sqlx::PgConnection,
    store: &Store,
    like: ordexa_domain::OrderId,
    admin: &Actor,
) -> Result<OrderEvent, kit::Failure> {
    let event = created_like(store, like, admin).await?;
    insert_event(tx, &event, TRACE_HEADERS).await?;
    Ok(event)
}

fn create_request(user_id: String) -> CreateOrder {
    CreateOrder {
        user_id,
        items: vec![ItemRequest { sku: "FRENCH-PRESS".into(), quantity: 1 }],
        shipping_address: kit::shipping_address("12 Analytical Row"),
        idempotency: None,
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_committed_rows_are_published_valid_and_the_outbox_drains() -> TestResult {
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, 8).await?;
    ordexa_store::migrate(&pool).await?;
    let store = Store::new(pool.clone());
    store.seed_dev_catalog().await?;
    let prefix = format!("{}.", kit::unique_name("relaytest"));
    let created = ordexa_topics::ensure_topics(&kit::kafka_bootstrap()?, &prefix, 3, 1).await?;
    assert_eq!(created.len(), 2, "orders topic and its DLQ");
    // Asking again changes nothing; asking for fewer partitions is refused.
    let again = ordexa_topics::ensure_topics(&kit::kafka_bootstrap()?, &prefix, 3, 1).await?;
    assert!(
        again.iter().all(|o| matches!(o, ordexa_topics::TopicOutcome::Unchanged { partitions: 3, .. })),
        "{again:?}"
    );
    assert!(matches!(
        ordexa_topics::ensure_topics(&kit::kafka_bootstrap()?, &prefix, 2, 1).await,
        Err(ordexa_topics::TopicError::WouldShrink { current: 3, requested: 2, .. })
    ));

    let config = common::relay_config(&db.url, &prefix, 100, Duration::from_millis(500))?;
    let (trigger, shutdown) = Shutdown::new();
    let health = Health::new("starting");
    let relay = tokio::spawn(ordexa_relay::run(config, health.clone(), shutdown));

    // Committed commands: 20 orders, each created, confirmed and cancelled (and 3 more below).
    let admin = Actor { user_id: "staff".into(), is_admin: true };
    let mut committed = Vec::new();
    for i in 0..23 {
        if i == 20 {
            // Let the relay publish everything so far, so that later claims start past it.
            drained(&store, "the first orders").await?;
        }
        let outcome = store.create_order(create_request(format!("user-{i}"))).await?;
        let CreateOutcome::Created { order, .. } = outcome else { return Err("unexpected replay".into()) };
        for t in [Transition::Confirm, Transition::Cancel] {
            store.change_order(order.id, &admin, OrderChange::Transition(t), None, "").await?;
        }
        committed.push(order.id);
    }

    // A row that commits late: its id is taken before those of the orders committed after it,
    // which the relay publishes while it is still open. It must be published all the same.
    let mut late_tx = pool.begin().await?;
    let late = insert_created(&mut late_tx, &store, committed[0], &admin).await?;
    let mut after_late = Vec::new();
    for i in 0..3 {
        let outcome = store.create_order(create_request(format!("user-late-{i}"))).await?;
        let CreateOutcome::Created { order, .. } = outcome else { return Err("unexpected replay".into()) };
        after_late.push(order.id);
    }
    drained(&store, "the orders committed after the late row").await?;
    late_tx.commit().await?;
    drained(&store, "the late row").await?;

    // The same when the late transaction took its id after every transaction finished so far
    // (a snapshot does not list such a transaction as in progress: it only lies at or above its
    // `xmax`): A takes a transaction id, then T does and writes an outbox row, then A writes one
    // after it and commits; T commits once the relay has published A's row.
    let mut a = pool.begin().await?;
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut *a).await?;
    let mut t = pool.begin().await?;
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut *t).await?;
    let newest_late = insert_created(&mut t, &store, committed[0], &admin).await?;
    let before_it = insert_created(&mut a, &store, committed[0], &admin).await?;
    a.commit().await?;
    drained(&store, "the row committed before the newest late one").await?;
    t.commit().await?;
    drained(&store, "the newest late row").await?;

    // A row whose id is drawn before its transaction has a transaction id: the outbox row is the
    // transaction's first write, and a test trigger holds it for 2 s after its id is drawn (the
    // column default) and before it is stored (where PostgreSQL would assign the transaction id).
    // An order committed meanwhile is published; the claim that finds it must not settle past
    // the held row (migration 0004 takes the transaction id before the outbox id).
    sqlx::raw_sql(
        "CREATE FUNCTION test_hold_row() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.headers ? 'hold' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$; \
         CREATE TRIGGER test_hold_row BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION test_hold_row();",
    )
    .execute(&pool)
    .await?;
    let held = created_like(&store, committed[0], &admin).await?;
    let holding = {
        let (pool, held) = (pool.clone(), held.clone());
        tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            let headers = TRACE_HEADERS.replacen('{', r#"{"hold": true, "#, 1);
            insert_event(&mut conn, &held, &headers).await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")
        .fetch_one(&pool)
        .await?
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "the held insert never reached its trigger");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let CreateOutcome::Created { order: during_hold, .. } =
        store.create_order(create_request("user-hold".into())).await?
    else {
        return Err("unexpected replay".into());
    };
    drained(&store, "the order committed while the held row waited").await?;
    holding.await.map_err(|e| e.to_string())??;
    drained(&store, "the row whose id was drawn before its transaction id").await?;

    // A transaction that writes an outbox row and is rolled back after the relay has had every
    // chance to see it.
    let mut tx = pool.begin().await?;
    let ghost = insert_created(&mut tx, &store, committed[0], &admin).await?;
    drained(&store, "the committed rows").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    tx.rollback().await?;
    assert_eq!(health.check(), Ok(()));
    assert_eq!(common::outbox_rows(&pool).await?, 0, "the outbox is empty after draining");

    trigger.fire();
    relay.await??;

    let messages = kit::read_topic(&ordexa_topics::orders_topic(&prefix)).await?;
    let report = kit::check_order_stream(&messages)?;
    assert_eq!(report.events, 23 * 3 + 3 + 1 + 2 + 2);
    assert!(!report.latest.contains_key(&ghost.order_id.to_string()), "a rolled-back row was published");
    for id in &committed {
        assert_eq!(report.latest.get(&id.to_string()).copied(), Some(3));
    }
    let once = [&late.order_id, &newest_late.order_id, &before_it.order_id, &held.order_id, &during_hold.id];
    for id in after_late.iter().chain(once) {
        assert_eq!(report.latest.get(&id.to_string()).copied(), Some(1), "order {id}");
    }

    let schema: Value = serde_json::from_str(ordexa_domain::ORDER_EVENT_SCHEMA)?;
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).map_err(|e| e.to_string())?;
    for m in &messages {
        let value: Value = serde_json::from_slice(&m.payload)?;
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "p{} o{}: {errors:?}", m.partition, m.offset);
        assert_eq!(m.header("event_id"), value["event_id"].as_str());
        assert_eq!(m.header("type"), value["type"].as_str());
        assert_eq!(m.header("schema_version"), Some("1"));
        assert!(m.header("traceparent").is_some_and(|t| t.starts_with("00-")), "traceparent header");
    }
    pool.close().await;
    db.drop_database().await
}

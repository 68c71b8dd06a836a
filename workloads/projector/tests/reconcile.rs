//! `ordexa reconcile`: an order missing from `orders_by_id`, one that lost its `orders_by_status`
//! row, one with a stale row under another status and one at an older version are each found
//! and named; `--repair` rewrites them, and a second run finds nothing.

mod common;

use std::time::Duration;

use ordexa_domain::{ItemRequest, OrderEvent, OrderId, Transition};
use ordexa_projector::reconcile::{Options, reconcile};
use ordexa_readmodel::{bucket_of, write_timestamp};
use ordexa_store::{Actor, CreateOrder, CreateOutcome, OrderChange, Store};
use ordexa_testkit::{self as kit, TestDatabase, TestResult};
use scylla::value::CqlTimestamp;

/// Places an order and confirms it when `confirm`; returns its id.
async fn place(store: &Store, confirm: bool) -> Result<OrderId, kit::Failure> {
    let created = store
        .create_order(CreateOrder {
            user_id: "alice".into(),
            items: vec![ItemRequest { sku: "MUG-CERAMIC".into(), quantity: 1 }],
            shipping_address: kit::shipping_address("12 Analytical Row"),
            idempotency: None,
            traceparent: String::new(),
        })
        .await?;
    let CreateOutcome::Created { order, .. } = created else { return Err("unexpected replay".into()) };
    if confirm {
        let staff = Actor { user_id: "staff".into(), is_admin: true };
        store.change_order(order.id, &staff, OrderChange::Transition(Transition::Confirm), None, "").await?;
    }
    Ok(order.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differing_orders_are_named_and_repaired() -> TestResult {
    let db = TestDatabase::create().await?;
    let pool = ordexa_store::connect(&db.url, 4).await?;
    ordexa_store::migrate(&pool).await?;
    let store = Store::new(pool);
    store.seed_dev_catalog().await?;
    let mut world = common::World::new(1).await?;
    let model = world.read_model().await?;
    let ks = model.keyspace().to_owned();

    let staff = Actor { user_id: "staff".into(), is_admin: true };
    let ids = [
        place(&store, true).await?,
        place(&store, true).await?,
        place(&store, false).await?,
        place(&store, true).await?,
        place(&store, false).await?,
    ];
    let [missing, unlisted, stale, behind, fine] = ids;
    // The read model as lost writes leave it. `fine` and `stale` are projected whole, each version
    // in turn; `behind` only up to version 1; `missing` not at all; `unlisted` has its
    // `orders_by_id` and `orders_by_user` rows but lost its `orders_by_status` row.
    for id in [fine, stale, behind] {
        let order = store.get_order(id, &staff).await?;
        let mut first = order.clone();
        first.version = 1;
        first.status = ordexa_domain::OrderStatus::Pending;
        model.apply(&OrderEvent::created(&first)).await?;
        if order.version > 1 && id != behind {
            model.apply(&OrderEvent::updated(&order)).await?;
        }
    }
    let session = model.session();
    let order = store.get_order(unlisted, &staff).await?;
    let (ts, created) = (write_timestamp(&order), CqlTimestamp(order.created_at.timestamp_millis()));
    let body = serde_json::to_string(&order)?;
    session
        .query_unpaged(
            format!(
                "INSERT INTO {ks}.orders_by_id (order_id, user_id, status, version, created_at, body) \
                 VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            (unlisted.0, "alice", order.status.as_str(), order.version, created, &body, ts),
        )
        .await?;
    session
        .query_unpaged(
            format!(
                "INSERT INTO {ks}.orders_by_user (user_id, created_at, order_id, status, version, body) \
                 VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            ("alice", created, unlisted.0, order.status.as_str(), order.version, &body, ts),
        )
        .await?;
    // A row left under a status the order never reached, written before its last version.
    let order = store.get_order(stale, &staff).await?;
    let key = (CqlTimestamp(bucket_of(order.created_at)), CqlTimestamp(order.created_at.timestamp_millis()), stale.0);
    session
        .query_unpaged(
            format!(
                "INSERT INTO {ks}.orders_by_status (status, bucket, created_at, order_id, version) \
                 VALUES ('SHIPPED', ?, ?, ?, 1) USING TIMESTAMP {}",
                write_timestamp(&order) - 1
            ),
            key,
        )
        .await?;

    let clean = Options { repair: false, settle: Duration::ZERO, page: 2 };
    let report = reconcile(&store, &model, clean).await?;
    assert_eq!(report.checked, 5);
    let mut named: Vec<OrderId> = report.differences.iter().map(|d| d.order).collect();
    named.sort_by_key(|id| id.0);
    let mut expected = vec![missing, unlisted, stale, behind];
    expected.sort_by_key(|id| id.0);
    assert_eq!(named, expected, "{:#?}", report.differences);
    assert_eq!(report.repaired, 0, "nothing is repaired unless asked");

    let repair = Options { repair: true, ..clean };
    let report = reconcile(&store, &model, repair).await?;
    assert_eq!((report.differences.len(), report.repaired), (4, 4));
    let report = reconcile(&store, &model, clean).await?;
    assert!(report.differences.is_empty(), "repaired: {:#?}", report.differences);

    store.pool().close().await;
    db.drop_database().await?;
    world.finish().await
}

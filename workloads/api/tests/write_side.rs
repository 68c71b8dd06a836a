//! The write side against a real PostgreSQL: commands, outbox, concurrency, idempotency.

mod common;

use common::{TestApp, address, expect_problem, expect_status, order_body};
use futures::future::join_all;
use ordexa_testkit::TestResult;
use reqwest::Method;
use serde_json::{Value, json};

fn event_schema() -> Result<jsonschema::Validator, ordexa_testkit::Failure> {
    let schema: Value = serde_json::from_str(ordexa_domain::ORDER_EVENT_SCHEMA)?;
    Ok(jsonschema::options().should_validate_formats(true).build(&schema).map_err(|e| e.to_string())?)
}

#[tokio::test]
async fn create_prices_from_the_catalog_and_writes_one_outbox_event() -> TestResult {
    let app = TestApp::start().await?;
    let response = app
        .request(Method::POST, "/api/v1/orders", "alice")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .json(&order_body())
        .send()
        .await?;
    let response = expect_status(response, 201).await?;
    let etag = response.headers()["etag"].to_str()?.to_owned();
    let location = response.headers()["location"].to_str()?.to_owned();
    let order: Value = response.json().await?;

    assert_eq!(etag, "\"1\"");
    assert_eq!(location, format!("/api/v1/orders/{}", order["id"].as_str().unwrap_or_default()));
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["user_id"], "alice");
    assert_eq!(order["version"], 1);
    assert_eq!(order["currency"], "EUR");
    // 2 × 24.50 + 1 × 12.00, from the development catalog.
    assert_eq!(
        order["items"][0],
        json!({"sku": "COFFEE-BEANS-1KG", "name": "Coffee beans, 1 kg", "quantity": 2, "unit_price": 2450, "line_total": 4900})
    );
    assert_eq!(order["total"], 6100);
    let id = order["id"].as_str().unwrap_or_default();
    assert_eq!(uuid::Uuid::parse_str(id)?.get_version_num(), 7, "order ids are UUIDv7");

    let events = app.events_of(id).await?;
    assert_eq!(events.len(), 1);
    let (version, event_type, payload) = (events[0].version, &events[0].event_type, &events[0].payload);
    assert_eq!((version, event_type.as_str()), (1, "order.created"));
    assert_eq!(payload["order"], order, "the event carries the full snapshot the client saw");
    assert_eq!(payload["type"], "order.created");
    let schema = event_schema()?;
    let errors: Vec<String> = schema.iter_errors(payload).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "stored event violates the schema: {errors:?}");

    let traceparent = events[0].traceparent.as_deref().unwrap_or_default();
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "trace continues: {traceparent}");

    let fetched = expect_status(app.request(Method::GET, &location, "alice").send().await?, 200).await?;
    assert_eq!(fetched.headers()["etag"].to_str()?, "\"1\"");
    assert_eq!(fetched.json::<Value>().await?, order);
    app.finish().await
}

#[tokio::test]
async fn outbox_rows_match_committed_commands_and_failed_commands_leave_none() -> TestResult {
    let app = TestApp::start().await?;
    let order = app.place_order("alice").await?;
    let id = order["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/api/v1/orders/{id}");

    // Five committed commands.
    let patch = json!({"items": [{"sku": "FRENCH-PRESS", "quantity": 1}]});
    expect_status(app.request(Method::PATCH, &path, "alice").json(&patch).send().await?, 200).await?;
    for action in ["confirm", "ship", "deliver"] {
        expect_status(app.admin_request(Method::POST, &format!("{path}/{action}")).send().await?, 200).await?;
    }

    // Failed commands: invalid transition, stale version, invalid input, edit after PENDING,
    // and a create that fails validation.
    expect_problem(app.request(Method::POST, &format!("{path}/cancel"), "alice").send().await?, 409).await?;
    expect_problem(app.admin_request(Method::POST, &format!("{path}/ship")).send().await?, 409).await?;
    expect_problem(
        app.admin_request(Method::POST, &format!("{path}/ship")).header("If-Match", "\"2\"").send().await?,
        412,
    )
    .await?;
    expect_problem(app.request(Method::PATCH, &path, "alice").json(&patch).send().await?, 409).await?;
    let unknown = json!({"items": [{"sku": "NO-SUCH-SKU", "quantity": 1}], "shipping_address": address()});
    expect_problem(app.request(Method::POST, "/api/v1/orders", "alice").json(&unknown).send().await?, 422).await?;

    let events = app.events_of(&id).await?;
    let summary: Vec<(i64, &str, &str)> = events
        .iter()
        .map(|e| (e.version, e.event_type.as_str(), e.payload["order"]["status"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "order.created", "PENDING"),
            (2, "order.updated", "PENDING"),
            (3, "order.updated", "CONFIRMED"),
            (4, "order.updated", "SHIPPED"),
            (5, "order.updated", "DELIVERED"),
        ]
    );
    assert_eq!(events[1].payload["order"]["total"], 3990, "the revision re-priced the order");
    assert_eq!(app.committed_event_count().await?, 5);
    assert_eq!(app.count("orders").await?, 1);
    let schema = event_schema()?;
    for event in &events {
        assert!(schema.is_valid(&event.payload), "{}", event.payload);
    }
    app.finish().await
}

#[tokio::test]
async fn a_command_that_fails_inside_its_transaction_leaves_no_rows_at_all() -> TestResult {
    let app = TestApp::start().await?;
    // Make the database itself fail the command after the order row is written.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_grinder() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.sku = 'GRINDER-HAND' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_grinder BEFORE INSERT ON order_items FOR EACH ROW EXECUTE FUNCTION refuse_grinder();",
    )
    .execute(&app.pool)
    .await?;
    let body = json!({"items": [{"sku": "GRINDER-HAND", "quantity": 1}], "shipping_address": address()});
    let response = app
        .request(Method::POST, "/api/v1/orders", "alice")
        .header("Idempotency-Key", "k-1")
        .json(&body)
        .send()
        .await?;
    expect_problem(response, 500).await?;
    assert_eq!(app.count("orders").await?, 0);
    assert_eq!(app.count("order_items").await?, 0);
    assert_eq!(app.committed_event_count().await?, 0);
    assert_eq!(app.count("idempotency_keys").await?, 0, "the key is free for a corrected retry");
    app.finish().await
}

#[tokio::test]
async fn fifty_concurrent_updates_with_the_same_if_match_let_exactly_one_through() -> TestResult {
    let app = TestApp::start().await?;
    let order = app.place_order("alice").await?;
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap_or_default());
    let requests = (0..50).map(|i| {
        let mut address = address();
        address["line1"] = json!(format!("{i} Concurrent Street"));
        app.request(Method::PATCH, &path, "alice")
            .header("If-Match", "\"1\"")
            .json(&json!({"shipping_address": address}))
            .send()
    });
    let mut statuses: Vec<u16> = Vec::new();
    for response in join_all(requests).await {
        statuses.push(response?.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 412).count(), 49, "{statuses:?}");
    assert_eq!(app.events_of(order["id"].as_str().unwrap_or_default()).await?.len(), 2);

    let current =
        expect_status(app.request(Method::GET, &format!("{path}?min_version=2"), "alice").send().await?, 200).await?;
    assert_eq!(current.headers()["etag"].to_str()?, "\"2\"");
    app.finish().await
}

/// The outbox has no unique index (migration 0006): one event per order version rests on the
/// order row's lock alone. Unconditional revisions racing on one order must each commit the next
/// version, with exactly one event for each.
#[tokio::test]
async fn concurrent_unconditional_revisions_get_one_event_per_version() -> TestResult {
    let app = TestApp::start().await?;
    let order = app.place_order("alice").await?;
    let id = order["id"].as_str().unwrap_or_default();
    let path = format!("/api/v1/orders/{id}");
    let revisions = 20;
    let requests = (0..revisions).map(|i| {
        let mut address = address();
        address["line1"] = json!(format!("{i} Racing Street"));
        app.request(Method::PATCH, &path, "alice").json(&json!({"shipping_address": address})).send()
    });
    let mut versions = Vec::new();
    for response in join_all(requests).await {
        let revised: Value = expect_status(response?, 200).await?.json().await?;
        versions.push(revised["version"].as_i64().unwrap_or_default());
    }
    versions.sort_unstable();
    let expected: Vec<i64> = (2..=revisions + 1).collect();
    assert_eq!(versions, expected, "every revision committed a version of its own");

    let events = app.events_of(id).await?;
    let event_versions: Vec<i64> = events.iter().map(|e| e.version).collect();
    let all: Vec<i64> = (1..=revisions + 1).collect();
    assert_eq!(event_versions, all, "exactly one event per version, none missing");
    let indexes: Vec<String> = sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE tablename = 'outbox'")
        .fetch_all(&app.pool)
        .await?;
    assert_eq!(indexes, ["outbox_pkey"], "the outbox keeps only its primary key");
    app.finish().await
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_first_response_and_writes_nothing() -> TestResult {
    let app = TestApp::start().await?;
    let send = |body: Value| {
        app.request(Method::POST, "/api/v1/orders", "alice").header("Idempotency-Key", "checkout-7").json(&body).send()
    };
    let first = expect_status(send(order_body()).await?, 201).await?;
    let first_headers = (first.headers()["location"].clone(), first.headers()["etag"].clone());
    let first_body = first.text().await?;

    // Same body with its keys in another order: the same request.
    let reordered = json!({"shipping_address": address(), "items": order_body()["items"].clone()});
    let retry = expect_status(send(reordered).await?, 201).await?;
    assert_eq!((retry.headers()["location"].clone(), retry.headers()["etag"].clone()), first_headers);
    assert_eq!(retry.text().await?, first_body);
    assert_eq!(app.count("orders").await?, 1);
    assert_eq!(app.committed_event_count().await?, 1);

    let other = json!({"items": [{"sku": "MUG-CERAMIC", "quantity": 3}], "shipping_address": address()});
    let problem = expect_problem(send(other).await?, 422).await?;
    assert!(problem["detail"].as_str().unwrap_or_default().contains("Idempotency-Key"), "{problem}");

    // The key is per user: another user's identical key is a new order.
    let bob =
        app.request(Method::POST, "/api/v1/orders", "bob").header("Idempotency-Key", "checkout-7").json(&order_body());
    expect_status(bob.send().await?, 201).await?;
    assert_eq!(app.count("orders").await?, 2);
    app.finish().await
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_create_one_order() -> TestResult {
    let app = TestApp::start().await?;
    let requests = (0..10).map(|_| {
        app.request(Method::POST, "/api/v1/orders", "alice")
            .header("Idempotency-Key", "double-click")
            .json(&order_body())
            .send()
    });
    let mut bodies = Vec::new();
    for response in join_all(requests).await {
        bodies.push(expect_status(response?, 201).await?.text().await?);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every response is the first one");
    assert_eq!(app.count("orders").await?, 1);
    assert_eq!(app.committed_event_count().await?, 1);
    app.finish().await
}

#[tokio::test]
async fn the_caller_lists_only_their_own_orders_newest_first_in_pages() -> TestResult {
    let app = TestApp::start().await?;
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(app.place_order("alice").await?["id"].clone());
    }
    let bobs = app.place_order("bob").await?;
    mine.reverse();
    // Lists come from the read model: wait until every order is projected.
    for id in mine.iter().chain([&bobs["id"]]) {
        app.projected(id.as_str().unwrap_or_default(), 1).await?;
    }

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = "/api/v1/orders?limit=2".to_owned();
        if let Some(t) = &token {
            path.push_str(&format!("&page_token={t}"));
        }
        let page: Value =
            expect_status(app.request(Method::GET, &path, "alice").send().await?, 200).await?.json().await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|o| o["id"].clone()));
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, mine);

    // A token is bound to its listing.
    let page: Value = expect_status(app.request(Method::GET, "/api/v1/orders?limit=1", "alice").send().await?, 200)
        .await?
        .json()
        .await?;
    let alice_token = page["next_page_token"].as_str().unwrap_or_default();
    let response = app.request(Method::GET, &format!("/api/v1/orders?page_token={alice_token}"), "bob").send().await?;
    let problem = expect_problem(response, 422).await?;
    assert_eq!(problem["type"], "https://ordexa.io/problems/invalid-page-token");

    // Staff list by status; customers may not.
    expect_problem(app.request(Method::GET, "/api/v1/orders?status=PENDING", "alice").send().await?, 403).await?;
    let pending: Value =
        expect_status(app.admin_request(Method::GET, "/api/v1/orders?status=PENDING&limit=100").send().await?, 200)
            .await?
            .json()
            .await?;
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(6));
    app.finish().await
}

#[tokio::test]
async fn migrations_run_concurrently_from_several_processes_apply_once() -> TestResult {
    let app = TestApp::start().await?;
    let (url, database) = app.empty_database().await?;
    // Four "processes" (separate pools) migrate one empty database at once.
    let mut pools = Vec::new();
    for _ in 0..4 {
        pools.push(ordexa_store::connect(&url, 2).await?);
    }
    for result in join_all(pools.iter().map(ordexa_store::migrate)).await {
        result?;
    }
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&pools[0]).await?;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../store/migrations"))?.count();
    assert_eq!(applied, i64::try_from(files)?);
    // And once more, later: nothing to do.
    ordexa_store::migrate(&pools[0]).await?;
    for pool in pools {
        pool.close().await;
    }
    app.drop_database(&database).await?;
    app.finish().await
}

#[tokio::test]
async fn idempotency_keys_are_purged_after_their_age_and_counted() -> TestResult {
    let app = TestApp::start().await?;
    let create = |key: &str| app.request(Method::POST, "/api/v1/orders", "alice").header("Idempotency-Key", key);
    let first: Value = expect_status(create("old-key").json(&order_body()).send().await?, 201).await?.json().await?;
    expect_status(create("new-key").json(&order_body()).send().await?, 201).await?;
    // "old-key" was used two days ago.
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '2 days' WHERE key = 'old-key'")
        .execute(&app.pool)
        .await?;

    let (stop, shutdown) = ordexa_platform::Shutdown::new();
    let purge = ordexa_api::IdempotencyPurge {
        store: ordexa_store::Store::new(app.pool.clone()),
        max_age: std::time::Duration::from_secs(24 * 60 * 60),
        every: std::time::Duration::from_millis(100),
        batch_size: 10,
    };
    let task = tokio::spawn(purge.run(shutdown));
    let started = std::time::Instant::now();
    while app.count("idempotency_keys").await? > 1 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the old key was not purged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.fire();
    task.await?;
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys").fetch_all(&app.pool).await?;
    assert_eq!(left, ["new-key"]);

    // The metric counts it (the API's /metrics renders the process's registry).
    let metrics =
        expect_status(app.client.get(format!("{}/metrics", app.base)).send().await?, 200).await?.text().await?;
    let purged = metrics
        .lines()
        .find_map(|line| line.strip_prefix("ordexa_idempotency_keys_purged_total "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(purged.is_some_and(|n| n >= 1), "ordexa_idempotency_keys_purged_total missing or 0 in:\n{metrics}");

    // A retry after the purge is a new request: a new order, not the first response.
    let again: Value = expect_status(create("old-key").json(&order_body()).send().await?, 201).await?.json().await?;
    assert_ne!(again["id"], first["id"]);
    app.finish().await
}

//! Reads come from the Cassandra read model, fed by the relay and the projector: the API waits
//! for a version a client asks for, and lists follow status changes.

mod common;

use std::time::{Duration, Instant};

use common::{Options, TestApp, address, expect_problem, expect_status};
use ordexa_testkit::TestResult;
use reqwest::Method;
use serde_json::{Value, json};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|o| o["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn by_status(app: &TestApp, status: &str) -> Result<Vec<String>, ordexa_testkit::Failure> {
    let path = format!("/api/v1/orders?status={status}&limit=100");
    let page: Value = expect_status(app.admin_request(Method::GET, &path).send().await?, 200).await?.json().await?;
    Ok(ids(&page))
}

/// Polls `check` until it holds or `limit` passes; lists have no min_version to wait on.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Result<(), ordexa_testkit::Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, ordexa_testkit::Failure>>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("condition not met within {limit:?}").into())
}

#[tokio::test]
async fn a_read_with_min_version_returns_the_version_just_written() -> TestResult {
    let app = TestApp::start().await?;
    let order = app.place_order("alice").await?;
    let id = order["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/api/v1/orders/{id}");

    let read =
        expect_status(app.request(Method::GET, &format!("{path}?min_version=1"), "alice").send().await?, 200).await?;
    assert_eq!(read.headers()["etag"].to_str()?, "\"1\"");
    assert_eq!(read.json::<Value>().await?, order, "the read model serves the snapshot the write returned");

    let mut moved = address();
    moved["line1"] = json!("7 Projection Place");
    let patched = app
        .request(Method::PATCH, &path, "alice")
        .header("If-Match", "\"1\"")
        .json(&json!({"shipping_address": moved}))
        .send()
        .await?;
    let patched: Value = expect_status(patched, 200).await?.json().await?;
    assert_eq!(patched["version"], 2);
    // Asked right after the write, with the version it returned: never the stale version 1.
    let read: Value =
        expect_status(app.request(Method::GET, &format!("{path}?min_version=2"), "alice").send().await?, 200)
            .await?
            .json()
            .await?;
    assert_eq!(read, patched);
    assert_eq!(read["shipping_address"]["line1"], "7 Projection Place");
    app.finish().await
}

#[tokio::test]
async fn a_status_change_moves_the_order_between_status_lists() -> TestResult {
    let app = TestApp::start().await?;
    let order = app.place_order("alice").await?;
    let id = order["id"].as_str().unwrap_or_default().to_owned();
    app.projected(&id, 1).await?;
    assert_eq!(by_status(&app, "PENDING").await?, vec![id.clone()]);
    assert!(by_status(&app, "CONFIRMED").await?.is_empty());

    expect_status(app.admin_request(Method::POST, &format!("/api/v1/orders/{id}/confirm")).send().await?, 200).await?;
    app.projected(&id, 2).await?;
    eventually(Duration::from_secs(10), || async {
        Ok(by_status(&app, "CONFIRMED").await? == vec![id.clone()] && by_status(&app, "PENDING").await?.is_empty())
    })
    .await?;

    expect_status(app.request(Method::POST, &format!("/api/v1/orders/{id}/cancel"), "alice").send().await?, 200)
        .await?;
    app.projected(&id, 3).await?;
    assert_eq!(by_status(&app, "CANCELLED").await?, vec![id.clone()]);
    assert!(by_status(&app, "CONFIRMED").await?.is_empty(), "a cancelled order left the CONFIRMED list");
    // The owner's own list shows the current status.
    let mine: Value =
        expect_status(app.request(Method::GET, "/api/v1/orders", "alice").send().await?, 200).await?.json().await?;
    assert_eq!(mine["items"][0]["status"], "CANCELLED");
    app.finish().await
}

#[tokio::test]
async fn status_lists_page_newest_first_with_tokens() -> TestResult {
    let app = TestApp::start().await?;
    let mut placed = Vec::new();
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        placed.push(app.place_order(user).await?["id"].as_str().unwrap_or_default().to_owned());
    }
    for id in &placed {
        app.projected(id, 1).await?;
    }
    placed.reverse();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = "/api/v1/orders?status=PENDING&limit=2".to_owned();
        if let Some(t) = &token {
            path.push_str(&format!("&page_token={t}"));
        }
        let page: Value = expect_status(app.admin_request(Method::GET, &path).send().await?, 200).await?.json().await?;
        assert!(ids(&page).len() <= 2);
        seen.extend(ids(&page));
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, placed);
    // A status token does not continue another status's list.
    let first: Value =
        expect_status(app.admin_request(Method::GET, "/api/v1/orders?status=PENDING&limit=1").send().await?, 200)
            .await?
            .json()
            .await?;
    let pending_token = first["next_page_token"].as_str().unwrap_or_default();
    let path = format!("/api/v1/orders?status=SHIPPED&page_token={pending_token}");
    let problem = expect_problem(app.admin_request(Method::GET, &path).send().await?, 422).await?;
    assert_eq!(problem["type"], "https://ordexa.io/problems/invalid-page-token");
    // Nor another user's list.
    let mine: Value = expect_status(app.request(Method::GET, "/api/v1/orders?limit=1", "alice").send().await?, 200)
        .await?
        .json()
        .await?;
    assert!(mine["next_page_token"].is_null(), "alice has one order: {mine}");
    let path = format!("/api/v1/orders?page_token={pending_token}");
    expect_problem(app.request(Method::GET, &path, "alice").send().await?, 422).await?;
    app.finish().await
}

#[tokio::test]
async fn a_version_the_order_never_reached_is_a_409_at_once() -> TestResult {
    let app = TestApp::start_with_read_wait(Duration::from_secs(5)).await?;
    let order = app.place_order("alice").await?;
    let id = order["id"].as_str().unwrap_or_default().to_owned();
    app.projected(&id, 1).await?;

    let started = Instant::now();
    let response = app.request(Method::GET, &format!("/api/v1/orders/{id}?min_version=5"), "alice").send().await?;
    let problem = expect_problem(response, 409).await?;
    assert!(started.elapsed() < Duration::from_secs(2), "answered after {:?}: it waited", started.elapsed());
    assert_eq!(problem["type"], "https://ordexa.io/problems/version-ahead");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("version 1") && detail.contains("version 5"), "{detail}");

    // Someone else's order is not found, whatever version is asked for: no 409 leaks it.
    expect_problem(app.request(Method::GET, &format!("/api/v1/orders/{id}?min_version=5"), "bob").send().await?, 404)
        .await?;
    expect_problem(
        app.request(Method::GET, &format!("/api/v1/orders/{}?min_version=1", uuid::Uuid::now_v7()), "alice")
            .send()
            .await?,
        404,
    )
    .await?;
    app.finish().await
}

#[tokio::test]
async fn a_committed_version_that_is_not_projected_in_time_is_a_clear_503_after_the_bounded_wait() -> TestResult {
    // No relay and no projector: what is committed never reaches the read model.
    let options = Options { read_wait: Duration::from_millis(600), pipeline: false, ..Options::default() };
    let app = TestApp::start_with(options).await?;
    let order = app.place_order("alice").await?;
    let id = order["id"].as_str().unwrap_or_default().to_owned();

    let started = Instant::now();
    let response = app.request(Method::GET, &format!("/api/v1/orders/{id}?min_version=1"), "alice").send().await?;
    let waited = started.elapsed();
    assert_eq!(response.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    let problem = expect_problem(response, 503).await?;
    assert_eq!(problem["type"], "https://ordexa.io/problems/projection-behind");
    assert!(waited >= Duration::from_millis(500), "answered after {waited:?}, before the wait was over");
    app.finish().await
}

#[tokio::test]
async fn with_cassandra_unreachable_from_the_start_commands_work_and_reads_are_a_quick_503() -> TestResult {
    // Nothing listens on a port the OS just handed out and took back.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let options = Options { read_model_nodes: Some(vec![closed.to_string()]), ..Options::default() };
    let app = TestApp::start_with(options).await?;

    let ready = app.client.get(format!("{}/readyz", app.base)).send().await?;
    expect_status(ready, 200).await?;
    let order = app.place_order("alice").await?;
    let id = order["id"].as_str().unwrap_or_default().to_owned();
    for path in [format!("/api/v1/orders/{id}?min_version=1"), "/api/v1/orders".to_owned()] {
        let started = Instant::now();
        let problem = expect_problem(app.request(Method::GET, &path, "alice").send().await?, 503).await?;
        assert_eq!(problem["type"], "https://ordexa.io/problems/read-model-unavailable", "{path}");
        assert!(started.elapsed() < Duration::from_secs(2), "{path} answered after {:?}", started.elapsed());
    }
    let cancelled = app.request(Method::POST, &format!("/api/v1/orders/{id}/cancel"), "alice").send().await?;
    let cancelled: Value = expect_status(cancelled, 200).await?.json().await?;
    assert_eq!(cancelled["status"], "CANCELLED");
    app.finish().await
}

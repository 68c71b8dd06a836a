//! Cassandra stopped while the API serves: the API stays ready (its readiness is PostgreSQL's),
//! orders can still be placed and cancelled, reads answer 503 `read-model-unavailable` within
//! seconds — a read with `min_version` too, instead of polling a dead Cassandra for the whole
//! wait — and once Cassandra is back, reads serve what was written meanwhile.
//!
//! This stops the shared local Cassandra, so it is the only test in its binary (cargo runs test
//! binaries one after another).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Options, TestApp, expect_problem, expect_status};
use ordexa_testkit::TestResult;
use reqwest::Method;
use serde_json::Value;

fn cassandra_script(action: &str) -> TestResult {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/cassandra.sh");
    let status = Command::new("bash").arg(script).arg(action).status()?;
    if !status.success() {
        return Err(format!("infra/cassandra.sh {action} failed: {status}").into());
    }
    Ok(())
}

/// How long a read may take to say the read model is unavailable.
const QUICK: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cassandra_outage_stops_reads_only_and_everything_recovers() -> TestResult {
    // A read wait far longer than QUICK: a 503 within QUICK proves the read did not wait it out.
    let app = TestApp::start_with(Options { read_wait: Duration::from_secs(20), ..Options::default() }).await?;
    let before = app.place_order("alice").await?;
    let before_id = before["id"].as_str().unwrap_or_default().to_owned();
    app.projected(&before_id, 1).await?;

    cassandra_script("stop")?;
    let outcome = during_the_outage(&app, &before_id).await;
    // Restart whatever happened, so the other tests find Cassandra running.
    let restarted = cassandra_script("start");
    let placed_during = outcome?;
    restarted?;

    // Everything written during the outage becomes readable by itself.
    let deadline = Instant::now() + Duration::from_secs(180);
    for (id, version, status) in [(before_id.as_str(), 2, "CANCELLED"), (placed_during.as_str(), 1, "PENDING")] {
        loop {
            let response =
                app.request(Method::GET, &format!("/api/v1/orders/{id}?min_version={version}"), "alice").send().await?;
            if response.status() == 200 {
                let order: Value = response.json().await?;
                assert_eq!(order["status"], status, "{order}");
                break;
            }
            assert!(Instant::now() < deadline, "order {id} still unreadable after the restart: {}", response.status());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let mine: Value =
        expect_status(app.request(Method::GET, "/api/v1/orders", "alice").send().await?, 200).await?.json().await?;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(2), "{mine}");
    app.finish().await
}

/// What must hold while Cassandra is down; returns the id of the order placed meanwhile.
async fn during_the_outage(app: &TestApp, before_id: &str) -> Result<String, ordexa_testkit::Failure> {
    // The driver notices the node is gone (its connections close) within moments.
    let deadline = Instant::now() + Duration::from_secs(30);
    let read = format!("/api/v1/orders/{before_id}?min_version=1");
    loop {
        let started = Instant::now();
        let response = app.request(Method::GET, &read, "alice").send().await?;
        assert!(started.elapsed() < QUICK, "a read took {:?} during the outage", started.elapsed());
        if response.status() == 503 {
            let problem = expect_problem(response, 503).await?;
            assert_eq!(problem["type"], "https://ordexa.io/problems/read-model-unavailable", "{problem}");
            break;
        }
        assert!(Instant::now() < deadline, "reads still answer {} with Cassandra stopped", response.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ready = app.client.get(format!("{}/readyz", app.base)).send().await?;
    expect_status(ready, 200).await.map_err(|e| format!("readiness followed Cassandra: {e:?}"))?;

    // Commands need PostgreSQL only.
    let placed = app.place_order("alice").await?;
    let placed_id = placed["id"].as_str().unwrap_or_default().to_owned();
    let cancel = app.request(Method::POST, &format!("/api/v1/orders/{before_id}/cancel"), "alice");
    let cancelled: Value = expect_status(cancel.header("If-Match", "\"1\"").send().await?, 200).await?.json().await?;
    assert_eq!(cancelled["status"], "CANCELLED");

    // Every read is a quick 503 naming the read model: a just-placed order (which would be
    // waited for), a version the write model has but the read model does not, and the lists.
    for path in [
        format!("/api/v1/orders/{placed_id}"),
        format!("/api/v1/orders/{before_id}?min_version=2"),
        "/api/v1/orders".to_owned(),
    ] {
        let started = Instant::now();
        let response = app.request(Method::GET, &path, "alice").send().await?;
        let took = started.elapsed();
        assert_eq!(response.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]), "{path}");
        let problem = expect_problem(response, 503).await?;
        assert_eq!(problem["type"], "https://ordexa.io/problems/read-model-unavailable", "{path}: {problem}");
        assert!(took < QUICK, "{path} answered after {took:?}");
    }
    let staff =
        expect_problem(app.admin_request(Method::GET, "/api/v1/orders?status=PENDING").send().await?, 503).await?;
    assert_eq!(staff["type"], "https://ordexa.io/problems/read-model-unavailable");
    Ok(placed_id)
}

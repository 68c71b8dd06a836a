//! The API's request bounds against a real PostgreSQL: a request running past the request
//! timeout and requests beyond the concurrency limit are answered 503 problems with
//! `Retry-After`, while the ops endpoints stay outside the bounds.

mod common;

use std::time::{Duration, Instant};

use common::{Options, TestApp, expect_problem, expect_status};
use ordexa_testkit::TestResult;
use reqwest::Method;

/// Without relay and projector nothing is projected, so a read of a just-placed order waits the
/// whole read wait: a request that is slow on purpose.
fn slow_reads(read_wait: Duration, limits: ordexa_api::Limits) -> Options {
    Options { read_wait, limits, pipeline: false, ..Options::default() }
}

#[tokio::test]
async fn a_request_past_the_timeout_is_a_503_timeout_with_retry_after() -> TestResult {
    let limits = ordexa_api::Limits { request_timeout: Duration::from_millis(500), ..ordexa_api::Limits::default() };
    let app = TestApp::start_with(slow_reads(Duration::from_secs(5), limits)).await?;
    let order = app.place_order("alice").await?;
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap_or_default());

    let started = Instant::now();
    let response = app.request(Method::GET, &path, "alice").send().await?;
    let took = started.elapsed();
    assert_eq!(response.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    let problem = expect_problem(response, 503).await?;
    assert_eq!(problem["type"], "https://ordexa.io/problems/timeout");
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "answered after {took:?}");
    app.finish().await
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_a_quick_503_overloaded() -> TestResult {
    let limits = ordexa_api::Limits { max_in_flight: 2, ..ordexa_api::Limits::default() };
    let app = TestApp::start_with(slow_reads(Duration::from_secs(3), limits)).await?;
    let order = app.place_order("alice").await?;
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap_or_default());

    // Two reads that wait for a projection that never comes hold both places.
    let slow: Vec<_> = (0..2).map(|_| app.request(Method::GET, &path, "alice").send()).collect();
    let slow = tokio::spawn(futures::future::join_all(slow));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let response = app.request(Method::GET, "/api/v1/products", "alice").send().await?;
    assert!(started.elapsed() < Duration::from_secs(1), "refused after {:?}, not at once", started.elapsed());
    assert_eq!(response.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    let problem = expect_problem(response, 503).await?;
    assert_eq!(problem["type"], "https://ordexa.io/problems/overloaded");
    // Probes and scrapes are not API requests: they answer while the API is full.
    expect_status(app.client.get(format!("{}/readyz", app.base)).send().await?, 200).await?;
    let metrics = expect_status(app.client.get(format!("{}/metrics", app.base)).send().await?, 200).await?;
    assert!(metrics.text().await?.contains("ordexa_api_requests_refused_total"));

    for response in slow.await? {
        let problem = expect_problem(response?, 503).await?;
        assert_eq!(problem["type"], "https://ordexa.io/problems/projection-behind");
    }
    // Places free again.
    expect_status(app.request(Method::GET, "/api/v1/products", "alice").send().await?, 200).await?;
    app.finish().await
}

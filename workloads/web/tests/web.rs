//! The web role over real sockets: a real axum server stands in for the API upstream, the web
//! router serves a built-looking assets folder, and reqwest is the browser.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use ordexa_web::{WebConfig, WebError};
use tokio::sync::Notify;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";
const INDEX: &str = "<!doctype html><title>Ordexa</title><div id=root></div>";
const APP_JS: &str = "console.log('ordexa app bundle');";

/// A fresh assets folder shaped like `vite build` output.
struct Assets {
    dir: PathBuf,
}

/// Numbers each test's folder. The tests run in parallel in one process, where the process id and
/// the clock alone do not make two names differ for certain, and a folder two tests shared would
/// be removed under one when the other ends: the likely cause of a 404 for an asset that
/// `assets_are_gzipped_for_clients_that_accept_it` saw once in CI and once in 30 local runs (none
/// in 60 runs since).
static ASSETS_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Assets {
    fn new() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "ordexa-web-test-{}-{}-{}",
            std::process::id(),
            ASSETS_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(dir.join("assets"))?;
        std::fs::write(dir.join("index.html"), INDEX)?;
        // Large enough that compression is worth it.
        std::fs::write(dir.join("assets/index-3f9a1c2b.js"), APP_JS.repeat(200))?;
        std::fs::write(dir.join("favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>")?;
        Ok(Assets { dir })
    }
}

impl Drop for Assets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn spawn(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { ordexa_web::serve(listener, app, std::future::pending()).await });
    Ok(addr)
}

/// Echoes what arrived (method, URI, headers, body) and answers with API-like headers.
async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or("").into()))
        .collect();
    let seen = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut out = HeaderMap::new();
    out.insert("etag", HeaderValue::from_static("\"7\""));
    out.insert("location", HeaderValue::from_static("/api/v1/orders/0191"));
    out.insert("idempotency-key", HeaderValue::from_static("k-1"));
    (StatusCode::CREATED, out, axum::Json(seen)).into_response()
}

/// An upstream whose `/api/v1/stream` sends one chunk, then waits for `release` before the
/// second: a proxy that buffered the body would never deliver the first chunk in time.
async fn upstream(release: Arc<Notify>) -> std::io::Result<SocketAddr> {
    let stream = move || {
        let release = release.clone();
        async move {
            let chunks = futures::stream::unfold(0u8, move |step| {
                let release = release.clone();
                async move {
                    match step {
                        0 => Some((Ok::<_, Infallible>("first;".to_owned()), 1)),
                        1 => {
                            release.notified().await;
                            Some((Ok("second".to_owned()), 2))
                        }
                        _ => None,
                    }
                }
            });
            Body::from_stream(chunks)
        }
    };
    let app = Router::new()
        .route("/api/v1/stream", get(stream))
        .route(
            "/api/v1/problem",
            get(|| async {
                (StatusCode::CONFLICT, [("content-type", "application/problem+json")], r#"{"status":409}"#)
            }),
        )
        .route(
            "/api/v1/upload",
            axum::routing::post(|body: Body| async move {
                let bytes = axum::body::to_bytes(body, 64 << 20).await.map_or(0, |b| b.len());
                bytes.to_string()
            }),
        )
        .route("/api/{*rest}", any(echo));
    spawn(app).await
}

async fn web(
    assets: &Assets,
    api_upstream: String,
    dev_sign_in: bool,
) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let dev_sign_in =
        if dev_sign_in { Some(ordexa_platform::auth::Hs256Tokens::new(SECRET.as_bytes())?) } else { None };
    let app = ordexa_web::router(WebConfig { assets_dir: assets.dir.clone(), api_upstream, dev_sign_in })?;
    Ok(spawn(app).await?)
}

fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build()
}

#[tokio::test]
async fn the_proxy_passes_method_path_query_headers_and_body_and_adds_forwarded_headers() -> TestResult {
    let assets = Assets::new()?;
    let api = upstream(Arc::new(Notify::new())).await?;
    let web = web(&assets, format!("http://{api}"), false).await?;

    let response = client()?
        .post(format!("http://{web}/api/v1/orders?limit=5&page_token=abc"))
        .header("authorization", "Bearer t0ken")
        .header("idempotency-key", "k-1")
        .header("if-match", "\"6\"")
        .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .header("content-type", "application/json")
        .body(r#"{"items":[{"sku":"TEA","quantity":2}]}"#)
        .send()
        .await?;

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["etag"], "\"7\"");
    assert_eq!(response.headers()["location"], "/api/v1/orders/0191");
    assert_eq!(response.headers()["idempotency-key"], "k-1");
    let seen: serde_json::Value = response.json().await?;
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/api/v1/orders?limit=5&page_token=abc");
    assert_eq!(seen["body"], r#"{"items":[{"sku":"TEA","quantity":2}]}"#);
    let headers = &seen["headers"];
    assert_eq!(headers["authorization"], "Bearer t0ken");
    assert_eq!(headers["idempotency-key"], "k-1");
    assert_eq!(headers["if-match"], "\"6\"");
    assert_eq!(headers["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], web.to_string());
    assert_eq!(headers["host"], api.to_string(), "the upstream sees its own host");
    Ok(())
}

#[tokio::test]
async fn the_proxy_streams_the_response_body_instead_of_buffering_it() -> TestResult {
    let assets = Assets::new()?;
    let release = Arc::new(Notify::new());
    let api = upstream(release.clone()).await?;
    let web = web(&assets, format!("http://{api}"), false).await?;

    let mut response = client()?.get(format!("http://{web}/api/v1/stream")).send().await?;
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .map_err(|_| "the first chunk did not arrive while the upstream held back the rest: the body was buffered")??;
    assert_eq!(first.as_deref(), Some(&b"first;"[..]));
    release.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"second");
    Ok(())
}

#[tokio::test]
async fn large_request_bodies_reach_the_api_whole() -> TestResult {
    let assets = Assets::new()?;
    let api = upstream(Arc::new(Notify::new())).await?;
    let web = web(&assets, format!("http://{api}"), false).await?;
    // Far above axum's default extractor limit: the proxy must not impose one of its own.
    let body = vec![b'x'; 5 << 20];
    let response = client()?.post(format!("http://{web}/api/v1/upload")).body(body).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await?, (5usize << 20).to_string());
    Ok(())
}

#[tokio::test]
async fn upstream_problems_pass_through_unchanged() -> TestResult {
    let assets = Assets::new()?;
    let api = upstream(Arc::new(Notify::new())).await?;
    let web = web(&assets, format!("http://{api}"), false).await?;
    let response = client()?.get(format!("http://{web}/api/v1/problem")).send().await?;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(response.text().await?, r#"{"status":409}"#);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_api_is_a_502_problem() -> TestResult {
    let assets = Assets::new()?;
    // Bind, note the port, close: nothing listens there any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let web = web(&assets, format!("http://{closed}"), false).await?;
    let response = client()?.get(format!("http://{web}/api/v1/orders")).send().await?;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = response.json().await?;
    assert_eq!(problem["type"], "https://ordexa.io/problems/bad-gateway");
    assert_eq!(problem["status"], 502);
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("cannot be reached")), "{problem}");
    Ok(())
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_index_html_is_revalidated() -> TestResult {
    let assets = Assets::new()?;
    let web = web(&assets, "http://127.0.0.1:9".to_owned(), false).await?;
    let client = client()?;

    let asset = client.get(format!("http://{web}/assets/index-3f9a1c2b.js")).send().await?;
    assert_eq!(asset.status(), StatusCode::OK);
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(asset.headers()["content-type"].to_str()?.contains("javascript"));
    assert_eq!(asset.text().await?, APP_JS.repeat(200));

    let index = client.get(format!("http://{web}/")).send().await?;
    assert_eq!(index.status(), StatusCode::OK);
    assert_eq!(index.headers()["cache-control"], "no-cache");
    assert_eq!(index.text().await?, INDEX);

    let favicon = client.get(format!("http://{web}/favicon.svg")).send().await?;
    assert_eq!(favicon.status(), StatusCode::OK);
    assert_eq!(favicon.headers()["cache-control"], "no-cache", "unhashed files are revalidated");
    Ok(())
}

#[tokio::test]
async fn client_side_routes_fall_back_to_index_html_but_missing_assets_are_404() -> TestResult {
    let assets = Assets::new()?;
    let web = web(&assets, "http://127.0.0.1:9".to_owned(), false).await?;
    let client = client()?;

    for path in ["/orders", "/orders/0191a7c2-7e1b-7000-8000-000000000000", "/staff/catalog"] {
        let page = client.get(format!("http://{web}{path}")).send().await?;
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert_eq!(page.headers()["cache-control"], "no-cache", "{path}");
        assert_eq!(page.text().await?, INDEX, "{path}");
    }
    let missing = client.get(format!("http://{web}/assets/gone-1234abcd.js")).send().await?;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["cache-control"], "no-cache", "a 404 is not cached forever");

    // /api is never answered with the SPA: here the upstream is down, so it is a 502.
    let api = client.get(format!("http://{web}/api/v1/nothing")).send().await?;
    assert_eq!(api.status(), StatusCode::BAD_GATEWAY);
    Ok(())
}

#[tokio::test]
async fn assets_are_gzipped_for_clients_that_accept_it() -> TestResult {
    let assets = Assets::new()?;
    let web = web(&assets, "http://127.0.0.1:9".to_owned(), false).await?;
    let response = client()?
        .get(format!("http://{web}/assets/index-3f9a1c2b.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await?;
    assert!(compressed.len() < APP_JS.len() * 200 / 4, "{} bytes", compressed.len());
    Ok(())
}

#[tokio::test]
async fn dev_sign_in_is_404_unless_enabled() -> TestResult {
    let assets = Assets::new()?;
    let web = web(&assets, "http://127.0.0.1:9".to_owned(), false).await?;
    let client = client()?;
    let response =
        client.post(format!("http://{web}/dev/token")).json(&serde_json::json!({"user": "alice"})).send().await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let config: serde_json::Value = client.get(format!("http://{web}/config.json")).send().await?.json().await?;
    assert_eq!(config, serde_json::json!({"dev_sign_in": false}));
    Ok(())
}

#[tokio::test]
async fn dev_sign_in_mints_tokens_the_api_accepts() -> TestResult {
    let assets = Assets::new()?;
    let web = web(&assets, "http://127.0.0.1:9".to_owned(), true).await?;
    let client = client()?;
    let auth = ordexa_platform::auth::Hs256Tokens::new(SECRET.as_bytes())?;

    let config: serde_json::Value = client.get(format!("http://{web}/config.json")).send().await?.json().await?;
    assert_eq!(config, serde_json::json!({"dev_sign_in": true}));

    for (user, admin) in [("alice", false), ("staff", true)] {
        let response = client
            .post(format!("http://{web}/dev/token"))
            .json(&serde_json::json!({"user": user, "admin": admin}))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await?;
        let token = body["token"].as_str().ok_or("no token in the answer")?;
        let actor = auth.verify(token).map_err(|e| format!("the API refuses the token: {e}"))?;
        assert_eq!(actor.subject, user);
        assert_eq!(actor.is_admin, admin);
    }

    let bad_user =
        client.post(format!("http://{web}/dev/token")).json(&serde_json::json!({"user": "not a name!"})).send().await?;
    assert_eq!(bad_user.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_user.headers()["content-type"], "application/problem+json");

    let malformed = client
        .post(format!("http://{web}/dev/token"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    Ok(())
}

#[test]
fn the_router_refuses_a_folder_without_index_html_and_a_bad_upstream() -> TestResult {
    let assets = Assets::new()?;
    let empty = assets.dir.join("assets");
    let missing = ordexa_web::router(WebConfig {
        assets_dir: empty.clone(),
        api_upstream: "http://127.0.0.1:8081".to_owned(),
        dev_sign_in: None,
    });
    assert!(matches!(missing, Err(WebError::MissingIndex(dir)) if dir == empty));
    let bad = ordexa_web::router(WebConfig {
        assets_dir: assets.dir.clone(),
        api_upstream: "ftp://api".to_owned(),
        dev_sign_in: None,
    });
    assert!(matches!(bad, Err(WebError::BadUpstream(_))));
    Ok(())
}

//! Who may do what, and how bad input is refused, against a real PostgreSQL.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{SECRET, TestApp, address, expect_problem, expect_status, order_body};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ordexa_testkit::TestResult;
use reqwest::Method;
use serde_json::{Value, json};

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap_or_default()
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() -> TestResult {
    let app = TestApp::start().await?;
    let url = format!("{}/api/v1/orders", app.base);
    let valid_claims = json!({"sub": "alice", "iat": now(), "exp": now() + 600});
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(valid_claims.to_string())
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("not bearer", Some("Basic YWxpY2U6cHc=".to_owned())),
        ("garbage", Some("Bearer not.a.token".to_owned())),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, SECRET, &json!({"sub": "alice", "iat": now() - 7200, "exp": now() - 3600}))
            )),
        ),
        (
            "forged",
            Some(format!("Bearer {}", sign(Algorithm::HS256, b"someone-elses-secret-someone-else", &valid_claims))),
        ),
        ("wrong algorithm", Some(format!("Bearer {}", sign(Algorithm::HS512, SECRET, &valid_claims)))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("no exp", Some(format!("Bearer {}", sign(Algorithm::HS256, SECRET, &json!({"sub": "alice"}))))),
        ("no sub", Some(format!("Bearer {}", sign(Algorithm::HS256, SECRET, &json!({"exp": now() + 600}))))),
    ];
    for (case, header) in cases {
        let mut request = app.client.post(&url).json(&order_body());
        if let Some(h) = header {
            request = request.header("Authorization", h);
        }
        let response = request.send().await?;
        assert_eq!(response.headers().get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]), "{case}");
        let problem = expect_problem(response, 401).await.map_err(|e| format!("{case}: {e:?}"))?;
        assert!(!problem["detail"].as_str().unwrap_or_default().is_empty(), "{case}");
    }
    assert_eq!(app.count("orders").await?, 0);
    app.finish().await
}

#[tokio::test]
async fn users_see_only_their_orders_and_only_admins_fulfil() -> TestResult {
    let app = TestApp::start().await?;
    let order = app.place_order("alice").await?;
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap_or_default());

    expect_status(app.request(Method::GET, &path, "alice").send().await?, 200).await?;
    expect_problem(app.request(Method::GET, &path, "bob").send().await?, 404).await?;
    expect_status(app.admin_request(Method::GET, &path).send().await?, 200).await?;

    // Another user can neither change nor cancel it: to them it does not exist.
    let patch = json!({"shipping_address": address()});
    expect_problem(app.request(Method::PATCH, &path, "bob").json(&patch).send().await?, 404).await?;
    expect_problem(app.request(Method::POST, &format!("{path}/cancel"), "bob").send().await?, 404).await?;

    // Customers cannot fulfil, not even their own order; staff can.
    for action in ["confirm", "ship", "deliver"] {
        expect_problem(app.request(Method::POST, &format!("{path}/{action}"), "alice").send().await?, 403).await?;
    }
    expect_status(app.admin_request(Method::POST, &format!("{path}/confirm")).send().await?, 200).await?;
    // The owner may cancel a CONFIRMED order.
    let cancelled: Value =
        expect_status(app.request(Method::POST, &format!("{path}/cancel"), "alice").send().await?, 200)
            .await?
            .json()
            .await?;
    assert_eq!((cancelled["status"].as_str(), cancelled["version"].as_i64()), (Some("CANCELLED"), Some(3)));

    // Catalog changes are for staff.
    let product = json!({"sku": "TEA-GREEN", "name": "Green tea", "unit_price": 800, "currency": "EUR"});
    expect_problem(app.request(Method::POST, "/api/v1/products", "alice").json(&product).send().await?, 403).await?;
    expect_status(app.admin_request(Method::POST, "/api/v1/products").json(&product).send().await?, 201).await?;
    expect_problem(app.admin_request(Method::POST, "/api/v1/products").json(&product).send().await?, 409).await?;
    let listed: Value =
        expect_status(app.request(Method::GET, "/api/v1/products", "alice").send().await?, 200).await?.json().await?;
    assert!(listed["items"].as_array().is_some_and(|items| items.iter().any(|p| p["sku"] == "TEA-GREEN")));
    app.finish().await
}

/// (case, body, expected status, field pointer named in `errors`, if any)
fn bad_creates() -> Vec<(&'static str, Value, u16, Option<&'static str>)> {
    let item = |sku: &str, quantity: i64| json!({"sku": sku, "quantity": quantity});
    let with_items = |items: Value| json!({"items": items, "shipping_address": address()});
    let mut bad_address = address();
    bad_address["country"] = json!("Britain");
    vec![
        ("no items", with_items(json!([])), 422, Some("/items")),
        ("zero quantity", with_items(json!([item("MUG-CERAMIC", 0)])), 422, Some("/items/0/quantity")),
        ("negative quantity", with_items(json!([item("MUG-CERAMIC", -3)])), 422, Some("/items/0/quantity")),
        ("huge quantity", with_items(json!([item("MUG-CERAMIC", 1_000_000)])), 422, Some("/items/0/quantity")),
        (
            "duplicate sku",
            with_items(json!([item("MUG-CERAMIC", 1), item("MUG-CERAMIC", 2)])),
            422,
            Some("/items/1/sku"),
        ),
        ("malformed sku", with_items(json!([item("no spaces allowed", 1)])), 422, Some("/items/0/sku")),
        ("unknown sku", with_items(json!([item("NO-SUCH-SKU", 1)])), 422, None),
        (
            "quantity as text",
            with_items(json!([{"sku": "MUG-CERAMIC", "quantity": "two"}])),
            422,
            Some("/items/0/quantity"),
        ),
        (
            "client-set price",
            with_items(json!([{"sku": "MUG-CERAMIC", "quantity": 1, "unit_price": 1}])),
            422,
            Some("/items/0/unit_price"),
        ),
        (
            "unknown field",
            json!({"items": [item("MUG-CERAMIC", 1)], "shipping_address": address(), "total": 1}),
            422,
            Some("/total"),
        ),
        ("missing address", json!({"items": [item("MUG-CERAMIC", 1)]}), 422, Some("/")),
        (
            "bad country",
            json!({"items": [item("MUG-CERAMIC", 1)], "shipping_address": bad_address}),
            422,
            Some("/shipping_address/country"),
        ),
    ]
}

#[tokio::test]
async fn every_invalid_create_is_refused_with_a_problem_naming_the_field() -> TestResult {
    let app = TestApp::start().await?;
    for (case, body, status, field) in bad_creates() {
        let response = app.request(Method::POST, "/api/v1/orders", "alice").json(&body).send().await?;
        let problem = expect_problem(response, status).await.map_err(|e| format!("{case}: {e:?}"))?;
        if let Some(field) = field {
            let fields: Vec<&str> =
                problem["errors"].as_array().into_iter().flatten().filter_map(|e| e["field"].as_str()).collect();
            assert!(fields.contains(&field), "{case}: expected an error on {field}, got {problem}");
        }
    }
    assert_eq!(app.count("orders").await?, 0);
    assert_eq!(app.committed_event_count().await?, 0);
    app.finish().await
}

#[tokio::test]
async fn inactive_skus_and_mixed_currencies_are_refused() -> TestResult {
    let app = TestApp::start().await?;
    let retire =
        json!({"sku": "MUG-CERAMIC", "name": "Ceramic mug", "unit_price": 1200, "currency": "EUR", "active": false});
    expect_status(app.admin_request(Method::PUT, "/api/v1/products/MUG-CERAMIC").json(&retire).send().await?, 200)
        .await?;
    let body = json!({"items": [{"sku": "MUG-CERAMIC", "quantity": 1}], "shipping_address": address()});
    let problem =
        expect_problem(app.request(Method::POST, "/api/v1/orders", "alice").json(&body).send().await?, 422).await?;
    assert!(problem["detail"].as_str().unwrap_or_default().contains("MUG-CERAMIC"), "{problem}");

    let dollars = json!({"sku": "MUG-US", "name": "US mug", "unit_price": 1500, "currency": "USD"});
    expect_status(app.admin_request(Method::POST, "/api/v1/products").json(&dollars).send().await?, 201).await?;
    let mixed = json!({"items": [{"sku": "MUG-US", "quantity": 1}, {"sku": "FRENCH-PRESS", "quantity": 1}], "shipping_address": address()});
    let problem =
        expect_problem(app.request(Method::POST, "/api/v1/orders", "alice").json(&mixed).send().await?, 422).await?;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("USD") && detail.contains("EUR"), "{problem}");
    assert_eq!(app.count("orders").await?, 0);
    app.finish().await
}

#[tokio::test]
async fn malformed_requests_get_400_413_415_and_bad_products_422() -> TestResult {
    let app = TestApp::start().await?;
    let create = || app.request(Method::POST, "/api/v1/orders", "alice");
    expect_problem(create().header("content-type", "application/json").body("{\"items\": [").send().await?, 400)
        .await?;
    expect_problem(create().header("content-type", "text/plain").body(order_body().to_string()).send().await?, 415)
        .await?;
    let huge = json!({"items": [], "shipping_address": address(), "padding": "x".repeat(200 * 1024)});
    expect_problem(create().json(&huge).send().await?, 413).await?;
    expect_problem(create().header("Idempotency-Key", "k".repeat(300)).json(&order_body()).send().await?, 400).await?;
    expect_problem(app.request(Method::GET, "/api/v1/orders/not-a-uuid", "alice").send().await?, 400).await?;
    expect_problem(app.request(Method::GET, "/api/v1/orders?limit=0", "alice").send().await?, 422).await?;
    expect_problem(app.request(Method::GET, "/api/v1/orders?limit=101", "alice").send().await?, 422).await?;
    expect_problem(app.admin_request(Method::GET, "/api/v1/orders?status=LOST").send().await?, 422).await?;
    expect_problem(app.request(Method::GET, "/api/v1/nothing-here", "alice").send().await?, 404).await?;

    let order = app.place_order("alice").await?;
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap_or_default());
    let patch = |if_match: &str| {
        app.request(Method::PATCH, &path, "alice")
            .header("If-Match", if_match.to_owned())
            .json(&json!({"shipping_address": address()}))
    };
    expect_problem(patch("3").send().await?, 400).await?;
    expect_problem(patch("W/\"1\"").send().await?, 412).await?;
    expect_problem(app.request(Method::PATCH, &path, "alice").json(&json!({})).send().await?, 422).await?;
    expect_status(patch("\"1\"").send().await?, 200).await?;

    let bad_product = json!({"sku": "BAD SKU", "name": "", "unit_price": -5, "currency": "euro"});
    let problem =
        expect_problem(app.admin_request(Method::POST, "/api/v1/products").json(&bad_product).send().await?, 422)
            .await?;
    let fields: Vec<&str> =
        problem["errors"].as_array().into_iter().flatten().filter_map(|e| e["field"].as_str()).collect();
    for field in ["/sku", "/name", "/unit_price", "/currency"] {
        assert!(fields.contains(&field), "expected an error on {field}: {problem}");
    }
    let mismatch = json!({"sku": "OTHER", "name": "x", "unit_price": 5, "currency": "EUR"});
    expect_problem(app.admin_request(Method::PUT, "/api/v1/products/MUG-CERAMIC").json(&mismatch).send().await?, 422)
        .await?;
    let missing = json!({"sku": "NOPE", "name": "x", "unit_price": 5, "currency": "EUR"});
    expect_problem(app.admin_request(Method::PUT, "/api/v1/products/NOPE").json(&missing).send().await?, 404).await?;
    app.finish().await
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() -> TestResult {
    let app = TestApp::start().await?;
    let get = |path: &str| app.client.get(format!("{}{path}", app.base)).send();
    expect_status(get("/healthz").await?, 200).await?;
    let ready: Value = expect_status(get("/readyz").await?, 200).await?.json().await?;
    assert_eq!((ready["status"].as_str(), ready["role"].as_str()), (Some("ready"), Some("api")));
    app.place_order("alice").await?;
    let metrics = expect_status(get("/metrics").await?, 200).await?.text().await?;
    assert!(metrics.contains("http_requests_total") && metrics.contains("route=\"/api/v1/orders\""), "{metrics}");

    let doc: Value = expect_status(get("/api/v1/openapi.json").await?, 200).await?.json().await?;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    for path in ["/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/orders/{id}/confirm", "/api/v1/products/{sku}"] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    // The structural check belongs to an independent validator (PyPI's openapi-spec-validator,
    // installed by `make prereqs`).
    let file = std::env::temp_dir().join(format!("ordexa-openapi-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, doc.to_string())?;
    let validator = std::env::var("ORDEXA_OPENAPI_VALIDATOR").unwrap_or_else(|_| "openapi-spec-validator".to_owned());
    let output = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run {validator} (install it with `make prereqs`): {e}"))?;
    std::fs::remove_file(&file)?;
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    app.finish().await
}

#[tokio::test]
async fn every_rejection_is_a_problem_including_the_ones_axum_would_make() -> TestResult {
    let app = TestApp::start().await?;
    let order = app.place_order("alice").await?;
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap_or_default());
    // Query strings the typed extractors used to refuse in plain text, and values outside the
    // documented bounds: 422 naming the parameter.
    for (query, field) in [
        ("/api/v1/orders?limit=-1", "/limit"),
        ("/api/v1/orders?limit=abc", "/limit"),
        ("/api/v1/orders?limit=", "/limit"),
        ("/api/v1/orders?page_token=not+base64!", "/page_token"),
        (&format!("{path}?min_version=9223372036854775808"), "/min_version"),
        (&format!("{path}?min_version=2147483648"), "/min_version"),
        (&format!("{path}?min_version=0"), "/min_version"),
    ] {
        let problem = expect_problem(app.request(Method::GET, query, "alice").send().await?, 422)
            .await
            .map_err(|e| format!("{query}: {e:?}"))?;
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
    // A path segment that is no order id, in any of the forms the document does not name.
    for id in ["not-a-uuid", "0191a7c27e1b70008000000000000001", "%FF%FE"] {
        expect_problem(app.request(Method::GET, &format!("/api/v1/orders/{id}"), "alice").send().await?, 400).await?;
    }
    expect_problem(app.admin_request(Method::PUT, "/api/v1/products/bad%20sku").json(&order_body()).send().await?, 400)
        .await?;
    // Unknown routes, inside and outside the API, and methods a route does not take.
    expect_problem(app.request(Method::GET, "/nothing-here", "alice").send().await?, 404).await?;
    expect_problem(app.request(Method::GET, "/api/v1/orders/x/y/z", "alice").send().await?, 404).await?;
    let response = app.request(Method::DELETE, "/api/v1/orders", "alice").send().await?;
    let allow = response.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    expect_problem(response, 405).await?;
    assert!(allow.contains("GET") && allow.contains("POST"), "Allow: {allow}");
    // A body that is not JSON, too large, or JSON of the wrong shape.
    let create = || app.request(Method::POST, "/api/v1/orders", "alice");
    expect_problem(create().send().await?, 415).await?;
    expect_problem(create().header("content-type", "application/json").body("[").send().await?, 400).await?;
    expect_problem(create().header("content-type", "application/json").body("[]").send().await?, 422).await?;
    // null is not a value of a field the document says is an object.
    let null_address = json!({"shipping_address": null});
    let problem =
        expect_problem(app.request(Method::PATCH, &path, "alice").json(&null_address).send().await?, 422).await?;
    assert_eq!(problem["errors"][0]["field"], "/shipping_address", "{problem}");
    // Text PostgreSQL cannot store is refused as invalid, never looked up (which failed with a 500).
    let nul = json!({"items": [{"sku": "MUG\u{0}CERAMIC", "quantity": 1}], "shipping_address": address()});
    expect_problem(create().json(&nul).send().await?, 422).await?;
    // JSON does not tell 2 from 2.0.
    let body = json!({"items": [{"sku": "MUG-CERAMIC", "quantity": 2.0}], "shipping_address": address()});
    expect_status(create().json(&body).send().await?, 201).await?;
    // A weak or empty If-Match never matches, but only a request that is otherwise valid learns it.
    let weak = |body: Value| app.request(Method::PATCH, &path, "alice").header("If-Match", "W/\"1\"").json(&body);
    expect_problem(weak(json!({"shipping_address": address()})).send().await?, 412).await?;
    expect_problem(weak(json!({"items": [{"sku": "MUG-CERAMIC", "quantity": 0}]})).send().await?, 422).await?;
    let empty = app.request(Method::POST, &format!("{path}/cancel"), "alice").header("If-Match", "");
    expect_problem(empty.send().await?, 412).await?;
    app.finish().await
}

#[tokio::test]
async fn rules_the_document_cannot_state_have_problem_types_of_their_own() -> TestResult {
    let app = TestApp::start().await?;
    let kind = |problem: &Value| problem["type"].as_str().unwrap_or_default().rsplit('/').next().map(str::to_owned);
    let create = |body: Value| app.request(Method::POST, "/api/v1/orders", "alice").json(&body);
    let with_items = |items: Value| json!({"items": items, "shipping_address": address()});
    for (items, expected) in [
        (json!([{"sku": "NO-SUCH-SKU", "quantity": 1}]), "unknown-sku"),
        (json!([{"sku": "MUG-CERAMIC", "quantity": 1}, {"sku": "MUG-CERAMIC", "quantity": 1}]), "duplicate-sku"),
        (json!([{"sku": "MUG-CERAMIC", "quantity": 0}]), "validation"),
    ] {
        let problem = expect_problem(create(with_items(items)).send().await?, 422).await?;
        assert_eq!(kind(&problem).as_deref(), Some(expected), "{problem}");
    }
    let reused = |body: Value| create(body).header("Idempotency-Key", "same-key");
    expect_status(reused(order_body()).send().await?, 201).await?;
    let other = with_items(json!([{"sku": "MUG-CERAMIC", "quantity": 5}]));
    let problem = expect_problem(reused(other).send().await?, 422).await?;
    assert_eq!(kind(&problem).as_deref(), Some("idempotency-key-reused"));
    let product = json!({"sku": "OTHER", "name": "x", "unit_price": 5, "currency": "EUR"});
    let problem = expect_problem(
        app.admin_request(Method::PUT, "/api/v1/products/MUG-CERAMIC").json(&product).send().await?,
        422,
    )
    .await?;
    assert_eq!(kind(&problem).as_deref(), Some("sku-mismatch"));
    app.finish().await
}

//! A real API on a real PostgreSQL database of its own, for one test.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::time::Duration;

use ordexa_api::{AppState, Auth};
use ordexa_store::Store;
use ordexa_testkit as kit;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use sqlx::PgPool;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub auth: Auth,
    pub pool: PgPool,
    admin_pool: PgPool,
    database: String,
}

impl TestApp {
    /// A fresh database (migrated, with the development catalog) and an API serving it on an
    /// ephemeral port.
    pub async fn start() -> Result<TestApp, kit::Failure> {
        let admin_pool = kit::postgres().await?;
        let database = kit::unique_name("ordexa_test");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).execute(&admin_pool).await?;
        let url = kit::with_database(&kit::database_url()?, &database);
        let pool = ordexa_store::connect(&url, 60).await?;
        ordexa_store::migrate(&pool).await?;
        let store = Store::new(pool.clone());
        store.seed_dev_catalog().await?;
        let auth = Auth::new(SECRET)?;
        let app = ordexa_api::router(AppState::new(store, auth.clone()), ordexa_api::DEFAULT_BODY_LIMIT);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(ordexa_api::serve(listener, app, std::future::pending()));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(TestApp { base, client, auth, pool, admin_pool, database })
    }

    /// Drops the test's database. Skipped when a test fails, which leaves it for inspection
    /// (`make infra-reset` clears those).
    pub async fn finish(self) -> kit::TestResult {
        self.pool.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {} WITH (FORCE)", self.database)))
            .execute(&self.admin_pool)
            .await?;
        Ok(())
    }

    /// Another empty database on the same server: (url, name).
    pub async fn empty_database(&self) -> Result<(String, String), kit::Failure> {
        let name = kit::unique_name("ordexa_test");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&self.admin_pool).await?;
        Ok((kit::with_database(&kit::database_url()?, &name), name))
    }

    pub async fn drop_database(&self, name: &str) -> kit::TestResult {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
            .execute(&self.admin_pool)
            .await?;
        Ok(())
    }

    pub fn token(&self, user: &str, admin: bool) -> String {
        self.auth.mint(user, admin, Duration::from_secs(600)).unwrap_or_default()
    }

    pub fn request(&self, method: Method, path: &str, user: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(self.token(user, false))
    }

    pub fn admin_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(self.token("staff", true))
    }

    /// Places a valid order for `user` and returns its JSON.
    pub async fn place_order(&self, user: &str) -> Result<Value, kit::Failure> {
        let response = self.request(Method::POST, "/api/v1/orders", user).json(&order_body()).send().await?;
        let response = expect_status(response, 201).await?;
        Ok(response.json().await?)
    }

    /// The outbox as (aggregate_version, event_type, payload) of one order, in insertion order.
    pub async fn outbox_of(&self, order_id: &str) -> Result<Vec<(i64, String, Value)>, kit::Failure> {
        let id = uuid::Uuid::parse_str(order_id)?;
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT aggregate_version, event_type, payload::text FROM outbox WHERE aggregate_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|(v, t, p)| Ok((v, t, serde_json::from_str(&p)?))).collect()
    }

    pub async fn count(&self, table: &str) -> Result<i64, kit::Failure> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await?)
    }
}

pub fn address() -> Value {
    json!({"name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "London", "postal_code": "N1 7GU", "country": "GB"})
}

pub fn order_body() -> Value {
    json!({"items": [{"sku": "COFFEE-BEANS-1KG", "quantity": 2}, {"sku": "MUG-CERAMIC", "quantity": 1}], "shipping_address": address()})
}

/// Fails with the response body when the status is not the expected one.
pub async fn expect_status(response: Response, expected: u16) -> Result<Response, kit::Failure> {
    if response.status().as_u16() == expected {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Err(format!("expected HTTP {expected}, got {status}: {body}").into())
}

/// Asserts an RFC 9457 problem response with the given status and returns its JSON.
pub async fn expect_problem(response: Response, expected: u16) -> Result<Value, kit::Failure> {
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let response = expect_status(response, expected).await?;
    assert_eq!(content_type, "application/problem+json");
    let problem: Value = response.json().await?;
    assert_eq!(problem["status"], expected);
    assert!(problem["type"].as_str().is_some_and(|t| t.starts_with("https://ordexa.io/problems/")), "{problem}");
    assert!(problem["title"].is_string() && problem["detail"].is_string(), "{problem}");
    Ok(problem)
}

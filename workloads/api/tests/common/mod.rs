//! A real API on a real PostgreSQL database of its own, for one test, with the whole read
//! path running: a relay publishing its outbox to topics of its own, and a projector writing
//! them into a Cassandra keyspace of its own, so reads see what commands wrote.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::sync::Arc;
use std::time::Duration;

use ordexa_api::AppState;
use ordexa_platform::auth::Hs256Tokens;
use ordexa_platform::{Health, Shutdown, ShutdownTrigger};
use ordexa_store::Store;
use ordexa_testkit as kit;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use sqlx::PgPool;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub auth: Hs256Tokens,
    pub pool: PgPool,
    pub reads: Arc<ordexa_readmodel::ReadModel>,
    admin_pool: PgPool,
    database: String,
    keyspace: String,
    topic: String,
    stop_pipeline: ShutdownTrigger,
}

/// One committed event, wherever it is now: still in the outbox or already on the topic.
#[derive(Debug)]
pub struct CommittedEvent {
    pub version: i64,
    pub event_type: String,
    pub payload: Value,
    pub traceparent: Option<String>,
}

/// How a [`TestApp`] is started; [`TestApp::start`] takes the defaults.
pub struct Options {
    /// The longest a read waits for the projection.
    pub read_wait: Duration,
    /// The API's request limits.
    pub limits: ordexa_api::Limits,
    /// Run the relay and the projector (without them, nothing committed is ever projected).
    pub pipeline: bool,
    /// The Cassandra nodes the API reads from, when not the real ones (an address where no
    /// Cassandra answers: the read side starts unconnected and keeps trying).
    pub read_model_nodes: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            read_wait: Duration::from_secs(10),
            // Tests of other things must not fail because a loaded machine (a Cassandra warming
            // up after the outage test, parallel builds) makes a burst of commands take longer
            // than the production default: the limits have tests of their own.
            limits: ordexa_api::Limits { request_timeout: Duration::from_secs(60), ..ordexa_api::Limits::default() },
            pipeline: true,
            read_model_nodes: None,
        }
    }
}

impl TestApp {
    /// A fresh database (migrated, with the development catalog), topics and keyspace, a relay
    /// and a projector, and an API serving them on an ephemeral port.
    pub async fn start() -> Result<TestApp, kit::Failure> {
        Self::start_with(Options::default()).await
    }

    /// [`TestApp::start`], with reads waiting at most `read_wait` for the projection.
    pub async fn start_with_read_wait(read_wait: Duration) -> Result<TestApp, kit::Failure> {
        Self::start_with(Options { read_wait, ..Options::default() }).await
    }

    pub async fn start_with(options: Options) -> Result<TestApp, kit::Failure> {
        let admin_pool = kit::postgres().await?;
        let database = kit::unique_name("ordexa_test");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).execute(&admin_pool).await?;
        let url = kit::with_database(&kit::database_url()?, &database);
        let pool = ordexa_store::connect(&url, 60).await?;
        ordexa_store::migrate(&pool).await?;
        let store = Store::new(pool.clone());
        store.seed_dev_catalog().await?;
        let auth = Hs256Tokens::new(SECRET)?;

        let bootstrap = kit::kafka_bootstrap()?;
        let prefix = format!("{}.", kit::unique_name("apitest"));
        ordexa_topics::ensure_topics(&bootstrap, &prefix, 3, 1).await?;
        let topic = ordexa_topics::orders_topic(&prefix);
        let keyspace = kit::unique_name("ordexa_test");
        let session = ordexa_readmodel::connect(&kit::cassandra_nodes()?).await?;
        ordexa_readmodel::apply_schema(&session, &keyspace, &ordexa_readmodel::Replication::Simple(1)).await?;
        let reads = Arc::new(ordexa_readmodel::ReadModel::new(session, &keyspace).await?);
        let (stop_pipeline, shutdown) = Shutdown::new();
        if options.pipeline {
            let relay = ordexa_relay::RelayConfig {
                database_url: url.clone(),
                kafka_bootstrap: bootstrap.clone(),
                topic_prefix: prefix.clone(),
                batch_size: 1000,
                poll_interval: Duration::from_millis(500),
                batches_in_flight: 4,
                vacuum_every: ordexa_relay::DEFAULT_VACUUM_EVERY,
                transactional_id: None,
            };
            tokio::spawn(ordexa_relay::run(relay, Health::new("starting"), shutdown.clone()));
            let projector = ordexa_projector::ProjectorConfig {
                kafka_bootstrap: bootstrap,
                group_id: ordexa_projector::ProjectorConfig::default_group(&prefix),
                topic_prefix: prefix,
                batch_size: 500,
                concurrency: 64,
            };
            tokio::spawn(ordexa_projector::run(projector, reads.clone(), Health::new("starting"), shutdown.clone()));
        }

        // The API reads through a session of its own, as `ordexa api` does: its requests time
        // out after the API's read-model timeout.
        let target = ordexa_api::ReadModelTarget {
            nodes: match options.read_model_nodes {
                Some(nodes) => nodes,
                None => kit::cassandra_nodes()?,
            },
            keyspace: keyspace.clone(),
            request_timeout: ordexa_api::DEFAULT_READ_MODEL_TIMEOUT,
        };
        let read_side = ordexa_api::ReadSide::connect_in_background(target, shutdown).await;
        let state = AppState::with_read_side(store, read_side, auth.clone()).with_read_wait(options.read_wait);
        let app = ordexa_api::router(state, options.limits);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(ordexa_api::serve(listener, app, std::future::pending()));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(TestApp { base, client, auth, pool, reads, admin_pool, database, keyspace, topic, stop_pipeline })
    }

    /// Drops the test's database. Skipped when a test fails, which leaves it for inspection
    /// (`make infra-reset` clears those).
    pub async fn finish(self) -> kit::TestResult {
        self.stop_pipeline.fire();
        self.reads.session().query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", self.keyspace), &[]).await?;
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

    /// Waits until the read model serves `order_id` at `version` (or later).
    /// Retries the API's own bounded wait (a 503) for up to 30 s: the projector's first
    /// group join can take longer than one wait.
    pub async fn projected(&self, order_id: &str, version: i64) -> Result<Value, kit::Failure> {
        let path = format!("/api/v1/orders/{order_id}?min_version={version}");
        let started = std::time::Instant::now();
        loop {
            let response = self.admin_request(Method::GET, &path).send().await?;
            if response.status() != 503 || started.elapsed() > Duration::from_secs(30) {
                return Ok(expect_status(response, 200).await?.json().await?);
            }
        }
    }

    /// Every event committed for `order_id`, in version order: the rows still in the outbox
    /// plus those the relay already published and deleted (read in that order, so a row moving
    /// between the two meanwhile is seen at least once; copies are merged by `event_id`).
    pub async fn events_of(&self, order_id: &str) -> Result<Vec<CommittedEvent>, kit::Failure> {
        let mut by_id = std::collections::BTreeMap::new();
        for event in self.committed_events().await? {
            if event.payload["order_id"] == order_id {
                by_id.insert(event.payload["event_id"].as_str().unwrap_or_default().to_owned(), event);
            }
        }
        let mut events: Vec<CommittedEvent> = by_id.into_values().collect();
        events.sort_by_key(|e| e.version);
        Ok(events)
    }

    /// How many distinct events were committed, outbox and topic together.
    pub async fn committed_event_count(&self) -> Result<usize, kit::Failure> {
        let ids: std::collections::HashSet<String> = self
            .committed_events()
            .await?
            .into_iter()
            .map(|e| e.payload["event_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        Ok(ids.len())
    }

    async fn committed_events(&self) -> Result<Vec<CommittedEvent>, kit::Failure> {
        let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT aggregate_version, event_type, payload::text, headers->>'traceparent' FROM outbox ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for (version, event_type, payload, traceparent) in rows {
            out.push(CommittedEvent { version, event_type, payload: serde_json::from_str(&payload)?, traceparent });
        }
        for message in kit::read_topic(&self.topic).await? {
            let payload: Value = serde_json::from_slice(&message.payload)?;
            out.push(CommittedEvent {
                version: payload["version"].as_i64().unwrap_or_default(),
                event_type: message.header("type").unwrap_or_default().to_owned(),
                traceparent: message.header("traceparent").map(str::to_owned),
                payload,
            });
        }
        Ok(out)
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

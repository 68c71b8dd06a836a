//! Connections to the real servers that integration tests run against.
//!
//! The servers are the ones `make infra-up` starts; `eval "$(make -s infra-env)"` (which
//! `make test` does for you) exports their addresses. A test that needs a server and finds
//! its variable unset fails with a message saying so: integration tests are never skipped.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Why a real server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} is not set; start the servers with `make infra-up` and run `eval \"$(make -s infra-env)\"`")]
    MissingVariable(&'static str),
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Postgres { url: String, source: sqlx::Error },
    #[error("cannot create a Kafka {role} for {bootstrap}: {source}")]
    Kafka { role: &'static str, bootstrap: String, source: rdkafka::error::KafkaError },
    #[error("cannot connect to Cassandra at {nodes:?}: {source}")]
    Cassandra { nodes: Vec<String>, source: Box<scylla::errors::NewSessionError> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn var(name: &'static str) -> Result<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(Error::MissingVariable(name))
}

/// `ORDEXA_DATABASE_URL`
pub fn database_url() -> Result<String> {
    var("ORDEXA_DATABASE_URL")
}

/// `ORDEXA_KAFKA_BOOTSTRAP`
pub fn kafka_bootstrap() -> Result<String> {
    var("ORDEXA_KAFKA_BOOTSTRAP")
}

/// `ORDEXA_CASSANDRA_NODES`, split on commas.
pub fn cassandra_nodes() -> Result<Vec<String>> {
    Ok(var("ORDEXA_CASSANDRA_NODES")?.split(',').map(|n| n.trim().to_owned()).collect())
}

/// A small pool on the write-model database.
pub async fn postgres() -> Result<PgPool> {
    let url = database_url()?;
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .map_err(|source| Error::Postgres { url, source })
}

fn kafka_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("socket.timeout.ms", "10000");
    config
}

/// An admin client for topic management.
pub fn kafka_admin() -> Result<AdminClient<DefaultClientContext>> {
    let bootstrap = kafka_bootstrap()?;
    kafka_config(&bootstrap).create().map_err(|source| Error::Kafka { role: "admin client", bootstrap, source })
}

/// An idempotent producer configured the way the relay publishes.
pub fn kafka_producer() -> Result<FutureProducer> {
    let bootstrap = kafka_bootstrap()?;
    kafka_config(&bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .create()
        .map_err(|source| Error::Kafka { role: "producer", bootstrap, source })
}

/// A consumer in its own fresh group, reading committed messages from the earliest offset.
pub fn kafka_consumer() -> Result<StreamConsumer> {
    let bootstrap = kafka_bootstrap()?;
    kafka_config(&bootstrap)
        .set("group.id", format!("ordexa-test-{}", uuid::Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|source| Error::Kafka { role: "consumer", bootstrap, source })
}

/// A CQL session on the read-model cluster.
pub async fn cassandra() -> Result<Session> {
    let nodes = cassandra_nodes()?;
    SessionBuilder::new()
        .known_nodes(&nodes)
        .connection_timeout(Duration::from_secs(10))
        .build()
        .await
        .map_err(|source| Error::Cassandra { nodes, source: Box::new(source) })
}

/// A name no other test run uses, for topics, keyspaces and tables.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// What an integration test returns: any error, reported by its message and its causes
/// (a test's `Err` is printed with `Debug`, which would hide the message a person needs).
pub struct Failure(Box<dyn std::error::Error + Send + Sync>);

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure(err.into())
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, "\n  caused by: {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

/// The result type of integration tests.
pub type TestResult = Result<(), Failure>;

/// A database of its own on the local server, for one test.
pub struct TestDatabase {
    pub url: String,
    pub name: String,
    admin: PgPool,
}

impl TestDatabase {
    /// Creates an empty database with a unique name.
    pub async fn create() -> Result<TestDatabase, Failure> {
        let admin = postgres().await?;
        let name = unique_name("ordexa_test");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await?;
        Ok(TestDatabase { url: with_database(&database_url()?, &name), name, admin })
    }

    /// Drops it. Not called when a test fails, which leaves the data for inspection
    /// (`make infra-reset` clears such leftovers).
    pub async fn drop_database(self) -> Result<(), Failure> {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {} WITH (FORCE)", self.name)))
            .execute(&self.admin)
            .await?;
        Ok(())
    }
}

/// The same server's URL with another database name.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let root = base.rsplit_once('/').map(|(root, _)| root).unwrap_or(base);
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

/// One message read back from a topic.
#[derive(Debug, Clone)]
pub struct ConsumedMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// The broker's CreateTime, in ms since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl ConsumedMessage {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Every message of `topic`, from offset 0 up to the high watermarks at the time of the call,
/// in partition then offset order.
pub async fn read_topic(topic: &str) -> Result<Vec<ConsumedMessage>, Failure> {
    use rdkafka::Message;
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Headers;

    let consumer = kafka_consumer()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("topic {topic} does not exist").into());
    }
    let mut remaining = std::collections::HashMap::new();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in &partitions {
        let (_, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10))?;
        if high > 0 {
            remaining.insert(*p, high);
            assignment.add_partition_offset(topic, *p, rdkafka::Offset::Beginning)?;
        }
    }
    let mut out = Vec::new();
    if remaining.is_empty() {
        return Ok(out);
    }
    consumer.assign(&assignment)?;
    // The last offsets of a partition may hold no message a consumer receives (the markers of
    // the relay's transactions, aborted messages): a partition is done once the consumer's
    // position reached the high watermark, not once a message at high - 1 arrived.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !remaining.is_empty() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("reading {topic} stalled; still expecting {remaining:?}").into());
        }
        match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            Ok(message) => {
                let message = message?;
                let headers = message
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(ConsumedMessage {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers,
                    timestamp_ms: message.timestamp().to_millis(),
                });
                if let Some(high) = remaining.get(&message.partition())
                    && message.offset() + 1 >= *high
                {
                    remaining.remove(&message.partition());
                }
            }
            Err(_quiet) => {
                for element in consumer.position()?.elements() {
                    if let (rdkafka::Offset::Offset(position), Some(high)) =
                        (element.offset(), remaining.get(&element.partition()))
                        && position >= *high
                    {
                        remaining.remove(&element.partition());
                    }
                }
            }
        }
    }
    out.sort_by_key(|m| (m.partition, m.offset));
    Ok(out)
}

/// What [`check_order_stream`] found in a topic.
#[derive(Debug, Default)]
pub struct StreamReport {
    /// Distinct (order, version) events.
    pub events: usize,
    /// Messages that repeat an earlier one exactly.
    pub duplicates: usize,
    /// The highest version seen per order id.
    pub latest: std::collections::HashMap<String, i64>,
}

/// Checks the order-event contract on a topic's messages (in partition, offset order): the key
/// is the payload's `order_id`; within a partition an order's new versions arrive as 1, 2, 3, …
/// with no gap and never backwards; a message carrying a version already seen must be an exact
/// repeat of the earlier message (same bytes, same `event_id` header).
pub fn check_order_stream(messages: &[ConsumedMessage]) -> Result<StreamReport, Failure> {
    let mut report = StreamReport::default();
    let mut seen: std::collections::HashMap<(String, i64), &ConsumedMessage> = std::collections::HashMap::new();
    let mut partition_of: std::collections::HashMap<String, i32> = std::collections::HashMap::new();
    for m in messages {
        let event: serde_json::Value = serde_json::from_slice(&m.payload)
            .map_err(|e| format!("p{} o{}: payload is not JSON: {e}", m.partition, m.offset))?;
        let order = event["order_id"].as_str().ok_or_else(|| format!("p{} o{}: no order_id", m.partition, m.offset))?;
        let version = event["version"].as_i64().ok_or_else(|| format!("p{} o{}: no version", m.partition, m.offset))?;
        if m.key.as_deref() != Some(order) {
            return Err(format!("p{} o{}: key {:?} is not the order id {order}", m.partition, m.offset, m.key).into());
        }
        if let Some(p) = partition_of.insert(order.to_owned(), m.partition)
            && p != m.partition
        {
            return Err(format!("order {order} appears in partitions {p} and {}", m.partition).into());
        }
        let latest = report.latest.get(order).copied().unwrap_or(0);
        if version == latest + 1 {
            report.latest.insert(order.to_owned(), version);
            report.events += 1;
            seen.insert((order.to_owned(), version), m);
        } else if version <= latest {
            let first = seen.get(&(order.to_owned(), version)).ok_or("a repeated version was never seen")?;
            if first.payload != m.payload || first.header("event_id") != m.header("event_id") {
                return Err(format!(
                    "order {order} v{version} at p{} o{} differs from its first delivery at o{}",
                    m.partition, m.offset, first.offset
                )
                .into());
            }
            report.duplicates += 1;
        } else {
            return Err(format!(
                "order {order}: v{version} at p{} o{} follows v{latest} (gap or reordering)",
                m.partition, m.offset
            )
            .into());
        }
    }
    Ok(report)
}

/// A valid shipping address whose first line is `line1`, for orders placed by tests.
pub fn shipping_address(line1: &str) -> ordexa_domain::ShippingAddress {
    ordexa_domain::ShippingAddress {
        name: "Ada Lovelace".into(),
        line1: line1.into(),
        line2: None,
        city: "London".into(),
        postal_code: "N1 7GU".into(),
        region: None,
        country: "GB".into(),
    }
}

/// Runs `infra/<server>.sh <action>` for the local servers (`start`, `stop`, or `kill`: SIGKILL,
/// as a crash). A test that stops or kills a shared server must be the only test in its binary
/// (cargo runs test binaries one after another).
pub fn server_script(server: &str, action: &str) -> Result<(), Failure> {
    let script = format!("{}/../../infra/{server}.sh", env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("bash").arg(&script).arg(action).status()?;
    if !status.success() {
        return Err(format!("infra/{server}.sh {action} failed: {status}").into());
    }
    Ok(())
}

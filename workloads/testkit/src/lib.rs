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

/// A consumer in its own fresh group, reading from the earliest offset.
pub fn kafka_consumer() -> Result<StreamConsumer> {
    let bootstrap = kafka_bootstrap()?;
    kafka_config(&bootstrap)
        .set("group.id", format!("ordexa-test-{}", uuid::Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
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

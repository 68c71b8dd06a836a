//! `ordexa`'s command line: one subcommand per workload role. Every flag has an `ORDEXA_*`
//! environment fallback, named in the platform's configuration contract
//! ([`ordexa_platform::env`]); that is how the operator configures pods.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ordexa_platform::env;
use ordexa_platform::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "ordexa", version, about = "Ordexa ordering system workloads")]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub role: Role,
}

#[derive(Debug, Subcommand)]
pub enum Role {
    /// Serve the REST API.
    Api(ApiArgs),
    /// Publish the transactional outbox to Kafka.
    Relay(RelayArgs),
    /// Create (or grow) the orders topic and its dead-letter topic.
    Topics(TopicsArgs),
    /// Project order events from Kafka into the Cassandra read model.
    Projector(ProjectorArgs),
    /// Inspect and replay dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Inspect the outbox: the rows Kafka refused for good.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Compare the write model with the read model order by order; report, and with --repair
    /// rewrite, every order whose read-model rows differ. Exits non-zero while any differs.
    Reconcile(ReconcileArgs),
    /// Apply the PostgreSQL migrations (safe to run from several processes at once).
    Migrate(MigrateArgs),
    /// Create the Cassandra keyspace and tables (versioned; safe to run from several processes).
    CassandraSchema(CassandraSchemaArgs),
    /// Serve the web frontend and forward /api to the API.
    Web(WebArgs),
    /// Run api, relay and projector in one process for local development (applies migrations,
    /// the development catalog, topics and the Cassandra schema first).
    Dev(DevArgs),
    /// Mint a development JWT for the API.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// postgres://… URL of the write model.
    #[arg(long, env = env::DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct JwtArgs {
    /// HS256 secret for bearer tokens (at least 32 bytes).
    #[arg(long, env = env::JWT_SECRET, hide_env_values = true)]
    pub jwt_secret: String,
}

#[derive(Debug, Args)]
pub struct CassandraArgs {
    /// Cassandra contact points, host:port[,host:port…].
    #[arg(long, env = env::CASSANDRA_NODES, value_delimiter = ',', required = true)]
    pub cassandra_nodes: Vec<String>,
    /// Keyspace of the read model.
    #[arg(long, env = env::CASSANDRA_KEYSPACE, default_value = "ordexa")]
    pub cassandra_keyspace: String,
}

#[derive(Debug, Args)]
pub struct CassandraSchemaArgs {
    #[command(flatten)]
    pub cassandra: CassandraArgs,
    /// Replication of the keyspace: a replica count (SimpleStrategy) or dc:count[,dc:count…]
    /// (NetworkTopologyStrategy). An existing keyspace is altered to match.
    #[arg(long, env = env::CASSANDRA_REPLICATION_FACTOR, default_value = "1", value_parser = parse_replication)]
    pub replication: ordexa_readmodel::Replication,
}

fn parse_replication(raw: &str) -> Result<ordexa_readmodel::Replication, String> {
    ordexa_readmodel::Replication::parse(raw).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct ProjectorTuning {
    /// Consumer group of the projectors (default: `<prefix>projector`).
    #[arg(long, env = env::PROJECTOR_GROUP)]
    pub projector_group: Option<String>,
    /// Most messages projected and committed together.
    #[arg(long, env = env::PROJECTOR_BATCH_SIZE, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub projector_batch_size: u32,
    /// Most Cassandra writes in flight.
    #[arg(long, env = env::PROJECTOR_CONCURRENCY, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub projector_concurrency: u32,
}

impl ProjectorTuning {
    pub fn config(&self, kafka: &KafkaArgs) -> ordexa_projector::ProjectorConfig {
        ordexa_projector::ProjectorConfig {
            kafka_bootstrap: kafka.kafka_bootstrap.clone(),
            topic_prefix: kafka.topic_prefix.clone(),
            group_id: self
                .projector_group
                .clone()
                .unwrap_or_else(|| ordexa_projector::ProjectorConfig::default_group(&kafka.topic_prefix)),
            batch_size: self.projector_batch_size as usize,
            concurrency: self.projector_concurrency as usize,
        }
    }
}

#[derive(Debug, Args)]
pub struct ProjectorArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
    #[command(flatten)]
    pub tuning: ProjectorTuning,
    /// Listen address of /healthz, /readyz and /metrics.
    #[arg(long, env = env::HTTP_ADDR, default_value = "127.0.0.1:8083")]
    pub http_addr: SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the dead letters: position, key, error, source and time.
    List {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Print one dead letter's headers and value.
    Show {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// partition:offset in the dead-letter topic.
        position: ordexa_projector::dlq::Position,
    },
    /// Re-drive dead letters to the topic they came from (after the fix that makes them
    /// projectable has been deployed).
    Replay {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// partition:offset of each dead letter to replay.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        positions: Vec<ordexa_projector::dlq::Position>,
        /// Replay every dead letter in the topic.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
    /// Rewrite each differing order's read-model rows from the write model.
    #[arg(long)]
    pub repair: bool,
    /// How long a difference may last before it counts: orders changed just now are still being
    /// projected.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Orders read from PostgreSQL per page.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub page_size: i64,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Outbox rows Kafka refused for good (too large, invalid), which the relay moved aside so
    /// that the rows after them went on.
    #[command(subcommand)]
    Dead(DeadLetterCommand),
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List them: id, order, version, size, reason, time.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Show at most this many, oldest first.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Print one of them with its event.
    Show {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Its id (as `list` shows).
        id: i64,
    },
    /// Move them back into the outbox, to be published again (after what changed since, e.g. a
    /// larger `max.message.bytes` on the topic).
    Retry {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The ids to retry.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<i64>,
        /// Retry every dead letter.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
    #[command(flatten)]
    pub tuning: ProjectorTuning,
    #[command(flatten)]
    pub relay: RelayTuning,
    /// Listen address of the API.
    #[arg(long, env = env::HTTP_ADDR, default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,
    /// Listen address of the relay's /healthz, /readyz and /metrics.
    #[arg(long, env = env::DEV_RELAY_ADDR, default_value = "127.0.0.1:8082")]
    pub relay_addr: SocketAddr,
    /// Listen address of the projector's /healthz, /readyz and /metrics.
    #[arg(long, env = env::DEV_PROJECTOR_ADDR, default_value = "127.0.0.1:8083")]
    pub projector_addr: SocketAddr,
    /// Partitions of the topics created at start-up.
    #[arg(long, env = env::TOPIC_PARTITIONS, default_value_t = 6)]
    pub partitions: i32,
    #[command(flatten)]
    pub limits: ApiLimits,
    /// How long an Idempotency-Key is kept; older keys are purged. At least 1m.
    #[arg(long, env = env::IDEMPOTENCY_KEY_TTL, default_value = "24h", value_parser = parse_idempotency_key_ttl)]
    pub idempotency_key_ttl: Duration,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
    /// How long a read waits for the read model to reach a version the client asked for.
    #[arg(long, env = env::READ_WAIT, default_value = "2s", value_parser = humantime::parse_duration)]
    pub read_wait: Duration,
    /// Listen address.
    #[arg(long, env = env::HTTP_ADDR, default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,
    /// Largest PostgreSQL connection pool.
    #[arg(long, env = env::DATABASE_MAX_CONNECTIONS, default_value_t = 16)]
    pub database_max_connections: u32,
    #[command(flatten)]
    pub limits: ApiLimits,
    /// How long an Idempotency-Key is kept (a retry with it returns the first response); older
    /// keys are purged. At least 1m.
    #[arg(long, env = env::IDEMPOTENCY_KEY_TTL, default_value = "24h", value_parser = parse_idempotency_key_ttl)]
    pub idempotency_key_ttl: Duration,
}

/// The bounds every API request is held to.
#[derive(Debug, Args)]
pub struct ApiLimits {
    /// Largest accepted request body, in bytes.
    #[arg(long, env = env::BODY_LIMIT, default_value_t = ordexa_api::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Longest time one API request may take; longer ones are answered 503 `timeout` (with
    /// Retry-After). Must exceed --read-wait.
    #[arg(long, env = env::REQUEST_TIMEOUT, default_value = "10s", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,
    /// Most API requests worked on at once; more are answered 503 `overloaded` (with
    /// Retry-After) at once.
    #[arg(long, env = env::MAX_IN_FLIGHT, default_value_t = ordexa_api::DEFAULT_MAX_IN_FLIGHT, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,
    /// Longest time one Cassandra request of the API may take; a read model that does not
    /// answer within it makes reads answer 503 `read-model-unavailable`.
    #[arg(long, env = env::READ_MODEL_TIMEOUT, default_value = "2s", value_parser = parse_positive_duration)]
    pub read_model_timeout: Duration,
}

impl ApiLimits {
    pub fn limits(&self) -> ordexa_api::Limits {
        ordexa_api::Limits {
            body_limit: self.body_limit,
            request_timeout: self.request_timeout,
            max_in_flight: usize::try_from(self.max_in_flight).unwrap_or(usize::MAX),
        }
    }
}

fn parse_positive_duration(raw: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw) {
        Ok(d) if d.is_zero() => Err("must be longer than 0s".to_owned()),
        Ok(d) => Ok(d),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_idempotency_key_ttl(raw: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw) {
        Ok(d) if d < Duration::from_secs(60) => {
            Err("must be at least 1m: clients retry a create for longer than that".to_owned())
        }
        Ok(d) => Ok(d),
        Err(err) => Err(err.to_string()),
    }
}

#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port…].
    #[arg(long, env = env::KAFKA_BOOTSTRAP)]
    pub kafka_bootstrap: String,
    /// Prefix of the system's topic names.
    #[arg(long, env = env::TOPIC_PREFIX, default_value = ordexa_topics::DEFAULT_PREFIX)]
    pub topic_prefix: String,
}

#[derive(Debug, Args)]
pub struct RelayTuning {
    /// Outbox rows claimed and produced together.
    #[arg(long, env = env::RELAY_BATCH_SIZE, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub relay_batch_size: i64,
    /// Fallback poll when no notification arrives.
    #[arg(long, env = env::RELAY_POLL_INTERVAL, default_value = "1s", value_parser = humantime::parse_duration)]
    pub relay_poll_interval: Duration,
    /// Batches queued on Kafka and not yet acknowledged, at most; the next batch is claimed while
    /// earlier ones are in flight (1: one batch at a time).
    #[arg(long, env = env::RELAY_BATCHES_IN_FLIGHT, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub relay_batches_in_flight: u16,
    /// Rows deleted between the relay's VACUUMs of the outbox, so that new rows reuse the space of
    /// published ones (0: never; autovacuum alone, which may look only once a minute).
    #[arg(long, env = env::RELAY_VACUUM_EVERY, default_value_t = ordexa_relay::DEFAULT_VACUUM_EVERY)]
    pub relay_vacuum_every: u64,
    /// The producer's Kafka `transactional.id`, shared by the system's relays so that each new
    /// leader fences the ones before it (default: `<prefix>relay`).
    #[arg(long, env = env::RELAY_TRANSACTIONAL_ID)]
    pub relay_transactional_id: Option<String>,
}

impl RelayTuning {
    pub fn config(&self, database: &DatabaseArgs, kafka: &KafkaArgs) -> ordexa_relay::RelayConfig {
        ordexa_relay::RelayConfig {
            database_url: database.database_url.clone(),
            kafka_bootstrap: kafka.kafka_bootstrap.clone(),
            topic_prefix: kafka.topic_prefix.clone(),
            batch_size: self.relay_batch_size,
            poll_interval: self.relay_poll_interval,
            batches_in_flight: usize::from(self.relay_batches_in_flight),
            vacuum_every: self.relay_vacuum_every,
            transactional_id: self.relay_transactional_id.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct RelayArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub tuning: RelayTuning,
    /// Listen address of /healthz, /readyz and /metrics.
    #[arg(long, env = env::HTTP_ADDR, default_value = "127.0.0.1:8082")]
    pub http_addr: SocketAddr,
}

#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Partitions of each topic (existing topics grow to it; they never shrink).
    #[arg(long, env = env::TOPIC_PARTITIONS, default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor of newly created topics.
    #[arg(long, env = env::TOPIC_REPLICATION_FACTOR, default_value_t = 1)]
    pub replication_factor: i32,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Also load the development catalog (existing products are kept).
    #[arg(long)]
    pub seed_dev: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// The user the token speaks for (its `sub`).
    #[arg(long)]
    pub user: String,
    /// Grant the admin role.
    #[arg(long)]
    pub admin: bool,
    /// How long the token is valid, e.g. 30m, 12h, 7days.
    #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

#[derive(Debug, Args)]
pub struct WebArgs {
    /// Listen address.
    #[arg(long, env = env::HTTP_ADDR, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Base URL of the API that /api/ is forwarded to.
    #[arg(long, env = env::API_UPSTREAM, default_value = "http://127.0.0.1:8081")]
    pub api_upstream: String,
    /// The built frontend: index.html and assets/ (`make frontend` builds it).
    #[arg(long, env = env::WEB_ASSETS, default_value = "frontend/dist")]
    pub assets_dir: std::path::PathBuf,
    /// Development only: hand out tokens at POST /dev/token (needs the JWT secret).
    #[arg(long, env = env::DEV_SIGN_IN, action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new())]
    pub dev_sign_in: bool,
    /// HS256 secret the development tokens are signed with.
    #[arg(long, env = env::JWT_SECRET, hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn api(extra: &[&str]) -> Result<ApiArgs, clap::Error> {
        let base =
            ["ordexa", "api", "--database-url", "postgres://x/y", "--jwt-secret", "s", "--cassandra-nodes", "c:9042"];
        match Cli::try_parse_from(base.iter().chain(extra)) {
            Ok(Cli { role: Role::Api(args), .. }) => Ok(args),
            Ok(other) => panic!("parsed as another role: {other:?}"),
            Err(err) => Err(err),
        }
    }

    #[test]
    fn the_api_bounds_have_defaults_and_refuse_values_that_cannot_work() -> Result<(), clap::Error> {
        let defaults = api(&[])?;
        assert_eq!(defaults.limits.request_timeout, Duration::from_secs(10));
        assert_eq!(defaults.limits.max_in_flight, ordexa_api::DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(defaults.idempotency_key_ttl, Duration::from_secs(24 * 60 * 60));
        let set = api(&["--request-timeout", "30s", "--max-in-flight", "64", "--idempotency-key-ttl", "7days"])?;
        assert_eq!(set.limits.limits().max_in_flight, 64);
        assert_eq!(set.idempotency_key_ttl, Duration::from_secs(7 * 24 * 60 * 60));
        for refused in [
            &["--idempotency-key-ttl", "30s"][..],
            &["--request-timeout", "0s"],
            &["--max-in-flight", "0"],
            &["--read-model-timeout", "0ms"],
        ] {
            assert!(api(refused).is_err(), "{refused:?} was accepted");
        }
        Ok(())
    }
}

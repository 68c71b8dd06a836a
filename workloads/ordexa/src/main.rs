//! `ordexa`: one binary for every workload role, chosen by subcommand. Every flag has an
//! `ORDEXA_*` environment fallback, which is how the operator configures pods.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "ordexa", version, about = "Ordexa ordering system workloads")]
struct Cli {
    /// Log line format.
    #[arg(long, env = "ORDEXA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Role {
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
struct DatabaseArgs {
    /// postgres://… URL of the write model.
    #[arg(long, env = "ORDEXA_DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

#[derive(Debug, Args)]
struct JwtArgs {
    /// HS256 secret for bearer tokens (at least 32 bytes).
    #[arg(long, env = "ORDEXA_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
}

#[derive(Debug, Args)]
struct CassandraArgs {
    /// Cassandra contact points, host:port[,host:port…].
    #[arg(long, env = "ORDEXA_CASSANDRA_NODES", value_delimiter = ',', required = true)]
    cassandra_nodes: Vec<String>,
    /// Keyspace of the read model.
    #[arg(long, env = "ORDEXA_CASSANDRA_KEYSPACE", default_value = "ordexa")]
    cassandra_keyspace: String,
}

impl CassandraArgs {
    async fn read_model(&self) -> Result<std::sync::Arc<ordexa_readmodel::ReadModel>, Error> {
        let session = ordexa_readmodel::connect(&self.cassandra_nodes).await?;
        Ok(std::sync::Arc::new(ordexa_readmodel::ReadModel::new(session, &self.cassandra_keyspace).await?))
    }
}

#[derive(Debug, Args)]
struct CassandraSchemaArgs {
    #[command(flatten)]
    cassandra: CassandraArgs,
    /// Replication of the keyspace: a replica count (SimpleStrategy) or dc:count[,dc:count…]
    /// (NetworkTopologyStrategy). An existing keyspace is altered to match.
    #[arg(long, env = "ORDEXA_CASSANDRA_REPLICATION_FACTOR", default_value = "1", value_parser = parse_replication)]
    replication: ordexa_readmodel::Replication,
}

fn parse_replication(raw: &str) -> Result<ordexa_readmodel::Replication, String> {
    ordexa_readmodel::Replication::parse(raw).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
struct ProjectorTuning {
    /// Consumer group of the projectors (default: `<prefix>projector`).
    #[arg(long, env = "ORDEXA_PROJECTOR_GROUP")]
    projector_group: Option<String>,
    /// Most messages projected and committed together.
    #[arg(long, env = "ORDEXA_PROJECTOR_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    projector_batch_size: u32,
    /// Most Cassandra writes in flight.
    #[arg(long, env = "ORDEXA_PROJECTOR_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    projector_concurrency: u32,
}

impl ProjectorTuning {
    fn config(&self, kafka: &KafkaArgs) -> ordexa_projector::ProjectorConfig {
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
struct ProjectorArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    cassandra: CassandraArgs,
    #[command(flatten)]
    tuning: ProjectorTuning,
    /// Listen address of /healthz, /readyz and /metrics.
    #[arg(long, env = "ORDEXA_HTTP_ADDR", default_value = "127.0.0.1:8083")]
    http_addr: SocketAddr,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
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
struct DevArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    jwt: JwtArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    cassandra: CassandraArgs,
    #[command(flatten)]
    tuning: ProjectorTuning,
    /// Listen address of the API.
    #[arg(long, env = "ORDEXA_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    http_addr: SocketAddr,
    /// Listen address of the relay's /healthz, /readyz and /metrics.
    #[arg(long, env = "ORDEXA_DEV_RELAY_ADDR", default_value = "127.0.0.1:8082")]
    relay_addr: SocketAddr,
    /// Listen address of the projector's /healthz, /readyz and /metrics.
    #[arg(long, env = "ORDEXA_DEV_PROJECTOR_ADDR", default_value = "127.0.0.1:8083")]
    projector_addr: SocketAddr,
    /// Partitions of the topics created at start-up.
    #[arg(long, env = "ORDEXA_TOPIC_PARTITIONS", default_value_t = 6)]
    partitions: i32,
}

#[derive(Debug, Args)]
struct ApiArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    jwt: JwtArgs,
    #[command(flatten)]
    cassandra: CassandraArgs,
    /// How long a read waits for the read model to reach a version the client asked for.
    #[arg(long, env = "ORDEXA_READ_WAIT", default_value = "2s", value_parser = humantime::parse_duration)]
    read_wait: Duration,
    /// Listen address.
    #[arg(long, env = "ORDEXA_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    http_addr: SocketAddr,
    /// Largest PostgreSQL connection pool.
    #[arg(long, env = "ORDEXA_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    database_max_connections: u32,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "ORDEXA_BODY_LIMIT", default_value_t = ordexa_api::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
}

#[derive(Debug, Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port…].
    #[arg(long, env = "ORDEXA_KAFKA_BOOTSTRAP")]
    kafka_bootstrap: String,
    /// Prefix of the system's topic names.
    #[arg(long, env = "ORDEXA_TOPIC_PREFIX", default_value = ordexa_domain::DEFAULT_TOPIC_PREFIX)]
    topic_prefix: String,
}

#[derive(Debug, Args)]
struct RelayArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Listen address of /healthz, /readyz and /metrics.
    #[arg(long, env = "ORDEXA_HTTP_ADDR", default_value = "127.0.0.1:8082")]
    http_addr: SocketAddr,
    /// Outbox rows claimed and produced together.
    #[arg(long, env = "ORDEXA_RELAY_BATCH_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    batch_size: i64,
    /// Fallback poll when no notification arrives.
    #[arg(long, env = "ORDEXA_RELAY_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Batches queued on Kafka and not yet acknowledged, at most; the next batch is claimed while
    /// earlier ones are in flight (1: one batch at a time).
    #[arg(long, env = "ORDEXA_RELAY_BATCHES_IN_FLIGHT", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    batches_in_flight: u16,
    /// Rows deleted between the relay's VACUUMs of the outbox, so that new rows reuse the space of
    /// published ones (0: never; autovacuum alone, which may look only once a minute).
    #[arg(long, env = "ORDEXA_RELAY_VACUUM_EVERY", default_value_t = ordexa_relay::DEFAULT_VACUUM_EVERY)]
    vacuum_every: u64,
}

#[derive(Debug, Args)]
struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Partitions of each topic (existing topics grow to it; they never shrink).
    #[arg(long, env = "ORDEXA_TOPIC_PARTITIONS", default_value_t = 6)]
    partitions: i32,
    /// Replication factor of newly created topics.
    #[arg(long, env = "ORDEXA_TOPIC_REPLICATION_FACTOR", default_value_t = 1)]
    replication_factor: i32,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Also load the development catalog (existing products are kept).
    #[arg(long)]
    seed_dev: bool,
}

#[derive(Debug, Args)]
struct TokenArgs {
    #[command(flatten)]
    jwt: JwtArgs,
    /// The user the token speaks for (its `sub`).
    #[arg(long)]
    user: String,
    /// Grant the admin role.
    #[arg(long)]
    admin: bool,
    /// How long the token is valid, e.g. 30m, 12h, 7days.
    #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

#[derive(Debug, Args)]
struct WebArgs {
    /// Listen address.
    #[arg(long, env = "ORDEXA_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Base URL of the API that /api/ is forwarded to.
    #[arg(long, env = "ORDEXA_API_UPSTREAM", default_value = "http://127.0.0.1:8081")]
    api_upstream: String,
    /// The built frontend: index.html and assets/ (`make frontend` builds it).
    #[arg(long, env = "ORDEXA_WEB_ASSETS", default_value = "frontend/dist")]
    assets_dir: std::path::PathBuf,
    /// Development only: hand out tokens at POST /dev/token (needs the JWT secret).
    #[arg(long, env = "ORDEXA_DEV_SIGN_IN", action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new())]
    dev_sign_in: bool,
    /// HS256 secret the development tokens are signed with.
    #[arg(long, env = "ORDEXA_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Web(#[from] ordexa_web::WebError),
    #[error(transparent)]
    Store(#[from] ordexa_store::StoreError),
    #[error(transparent)]
    Auth(#[from] ordexa_api::auth::AuthConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Relay(#[from] ordexa_relay::RelayError),
    #[error(transparent)]
    Topics(#[from] ordexa_relay::topics::TopicError),
    #[error(transparent)]
    ReadModel(#[from] ordexa_readmodel::ReadModelError),
    #[error(transparent)]
    Projector(#[from] ordexa_projector::ProjectorError),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

async fn run(role: Role) -> Result<(), Error> {
    match role {
        Role::Api(args) => api(args).await,
        Role::Migrate(args) => {
            let pool = ordexa_store::connect(&args.database.database_url, 2).await?;
            ordexa_store::migrate(&pool).await?;
            tracing::info!("migrations applied");
            if args.seed_dev {
                let added = ordexa_store::Store::new(pool).seed_dev_catalog().await?;
                tracing::info!(added, "development catalog seeded");
            }
            Ok(())
        }
        Role::Token(args) => {
            let auth = ordexa_api::Auth::new(args.jwt.jwt_secret.as_bytes())?;
            println!("{}", auth.mint(&args.user, args.admin, args.ttl)?);
            Ok(())
        }
        Role::Relay(args) => relay(args).await,
        Role::Topics(args) => {
            let outcomes = ordexa_relay::topics::ensure_topics(
                &args.kafka.kafka_bootstrap,
                &args.kafka.topic_prefix,
                args.partitions,
                args.replication_factor,
            )
            .await?;
            for outcome in outcomes {
                tracing::info!(?outcome, "topic ready");
            }
            Ok(())
        }
        Role::Projector(args) => projector(args).await,
        Role::CassandraSchema(args) => {
            let session = ordexa_readmodel::connect(&args.cassandra.cassandra_nodes).await?;
            let outcome =
                ordexa_readmodel::apply_schema(&session, &args.cassandra.cassandra_keyspace, &args.replication).await?;
            tracing::info!(keyspace = %args.cassandra.cassandra_keyspace, ?outcome, "cassandra schema current");
            Ok(())
        }
        Role::Dlq(command) => dlq(command).await,
        Role::Web(args) => web(args).await,
        Role::Dev(args) => dev(args).await,
    }
}

async fn api(args: ApiArgs) -> Result<(), Error> {
    let auth = ordexa_api::Auth::new(args.jwt.jwt_secret.as_bytes())?;
    let pool = ordexa_store::connect(&args.database.database_url, args.database_max_connections).await?;
    let reads = args.cassandra.read_model().await?;
    let state = ordexa_api::AppState::new(ordexa_store::Store::new(pool), reads, auth).with_read_wait(args.read_wait);
    let app = ordexa_api::router(state, args.body_limit);
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| Error::Listen { addr: args.http_addr, source })?;
    tracing::info!(addr = %args.http_addr, "api listening");
    let mut shutdown = ordexa_runtime::Shutdown::on_signals();
    ordexa_api::serve(listener, app, async move { shutdown.wait().await }).await.map_err(Error::Serve)?;
    tracing::info!("api stopped");
    Ok(())
}

async fn projector(args: ProjectorArgs) -> Result<(), Error> {
    let config = args.tuning.config(&args.kafka);
    let model = args.cassandra.read_model().await?;
    let shutdown = ordexa_runtime::Shutdown::on_signals();
    let health = ordexa_runtime::Health::new("starting");
    let ops = ordexa_runtime::ops_router("projector", health.clone());
    let server = ordexa_runtime::spawn_ops_server(args.http_addr, ops, shutdown.clone())
        .await
        .map_err(|source| Error::Listen { addr: args.http_addr, source })?;
    tracing::info!(addr = %args.http_addr, "projector starting");
    ordexa_projector::run(config, model, health, shutdown).await?;
    join_ops_server(server).await?;
    tracing::info!("projector stopped");
    Ok(())
}

async fn join_ops_server(server: tokio::task::JoinHandle<std::io::Result<()>>) -> Result<(), Error> {
    match server.await {
        Ok(result) => result.map_err(Error::Serve),
        Err(err) => {
            tracing::warn!(error = %err, "ops server task failed");
            Ok(())
        }
    }
}

async fn dlq(command: DlqCommand) -> Result<(), Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match command {
        DlqCommand::List { kafka, limit } => {
            let topic = ordexa_domain::dlq_topic_name(&kafka.topic_prefix);
            let letters = ordexa_projector::dlq::list(&kafka.kafka_bootstrap, &topic, limit).await?;
            writeln!(out, "{} dead letter(s) in {topic}", letters.len()).map_err(Error::Stdout)?;
            for d in &letters {
                writeln!(
                    out,
                    "{}\tkey={}\tsource={}\tat={}\terror={}",
                    d.position,
                    d.key_text(),
                    d.source(),
                    d.header(ordexa_projector::dlq_headers::DEAD_LETTERED_AT).unwrap_or_default(),
                    d.header(ordexa_projector::dlq_headers::ERROR).unwrap_or_default()
                )
                .map_err(Error::Stdout)?;
            }
        }
        DlqCommand::Show { kafka, position } => {
            let topic = ordexa_domain::dlq_topic_name(&kafka.topic_prefix);
            let d = ordexa_projector::dlq::show(&kafka.kafka_bootstrap, &topic, position).await?;
            writeln!(out, "position: {topic}/{}\nkey: {}", d.position, d.key_text()).map_err(Error::Stdout)?;
            for (name, value) in &d.headers {
                writeln!(out, "header {name}: {}", String::from_utf8_lossy(value)).map_err(Error::Stdout)?;
            }
            let value = d.value.as_deref().unwrap_or_default();
            let pretty = serde_json::from_slice::<serde_json::Value>(value)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(value).into_owned());
            writeln!(out, "value:\n{pretty}").map_err(Error::Stdout)?;
        }
        DlqCommand::Replay { kafka, positions, all } => {
            let topic = ordexa_domain::dlq_topic_name(&kafka.topic_prefix);
            let letters = if all {
                ordexa_projector::dlq::list(&kafka.kafka_bootstrap, &topic, usize::MAX).await?
            } else {
                let mut letters = Vec::new();
                for position in positions {
                    letters.push(ordexa_projector::dlq::show(&kafka.kafka_bootstrap, &topic, position).await?);
                }
                letters
            };
            let source = ordexa_domain::topic_name(&kafka.topic_prefix);
            let replayed = ordexa_projector::dlq::replay(&kafka.kafka_bootstrap, &topic, &letters, &source).await?;
            writeln!(out, "replayed {replayed} dead letter(s) from {topic}").map_err(Error::Stdout)?;
        }
    }
    Ok(())
}

/// Everything the local system needs, in one process: the schema steps, then api, relay and
/// projector until Ctrl-C.
async fn dev(args: DevArgs) -> Result<(), Error> {
    let pool = ordexa_store::connect(&args.database.database_url, 16).await?;
    ordexa_store::migrate(&pool).await?;
    let store = ordexa_store::Store::new(pool);
    let added = store.seed_dev_catalog().await?;
    tracing::info!(added, "migrations applied, development catalog seeded");
    ordexa_relay::topics::ensure_topics(&args.kafka.kafka_bootstrap, &args.kafka.topic_prefix, args.partitions, 1)
        .await?;
    let session = ordexa_readmodel::connect(&args.cassandra.cassandra_nodes).await?;
    let replication = ordexa_readmodel::Replication::Simple(1);
    ordexa_readmodel::apply_schema(&session, &args.cassandra.cassandra_keyspace, &replication).await?;
    let reads =
        std::sync::Arc::new(ordexa_readmodel::ReadModel::new(session, &args.cassandra.cassandra_keyspace).await?);

    let shutdown = ordexa_runtime::Shutdown::on_signals();
    let relay_health = ordexa_runtime::Health::new("starting");
    let projector_health = ordexa_runtime::Health::new("starting");
    let mut servers = Vec::new();
    for (role, addr, health) in
        [("relay", args.relay_addr, &relay_health), ("projector", args.projector_addr, &projector_health)]
    {
        let ops = ordexa_runtime::ops_router(role, health.clone());
        servers.push(
            ordexa_runtime::spawn_ops_server(addr, ops, shutdown.clone())
                .await
                .map_err(|source| Error::Listen { addr, source })?,
        );
    }
    let relay_config = ordexa_relay::RelayConfig {
        database_url: args.database.database_url.clone(),
        kafka_bootstrap: args.kafka.kafka_bootstrap.clone(),
        topic_prefix: args.kafka.topic_prefix.clone(),
        batch_size: 1000,
        poll_interval: Duration::from_secs(1),
        batches_in_flight: 4,
        vacuum_every: ordexa_relay::DEFAULT_VACUUM_EVERY,
    };
    let relay = tokio::spawn(ordexa_relay::run(relay_config, relay_health, shutdown.clone()));
    let projector_config = args.tuning.config(&args.kafka);
    let projector =
        tokio::spawn(ordexa_projector::run(projector_config, reads.clone(), projector_health, shutdown.clone()));

    let auth = ordexa_api::Auth::new(args.jwt.jwt_secret.as_bytes())?;
    let app = ordexa_api::router(ordexa_api::AppState::new(store, reads, auth), ordexa_api::DEFAULT_BODY_LIMIT);
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| Error::Listen { addr: args.http_addr, source })?;
    tracing::info!(api = %args.http_addr, relay = %args.relay_addr, projector = %args.projector_addr, "ordexa dev running");
    let mut api_shutdown = shutdown.clone();
    ordexa_api::serve(listener, app, async move { api_shutdown.wait().await }).await.map_err(Error::Serve)?;
    match relay.await {
        Ok(result) => result?,
        Err(err) => tracing::warn!(error = %err, "relay task failed"),
    }
    match projector.await {
        Ok(result) => result?,
        Err(err) => tracing::warn!(error = %err, "projector task failed"),
    }
    for server in servers {
        join_ops_server(server).await?;
    }
    tracing::info!("ordexa dev stopped");
    Ok(())
}

async fn relay(args: RelayArgs) -> Result<(), Error> {
    let config = ordexa_relay::RelayConfig {
        database_url: args.database.database_url,
        kafka_bootstrap: args.kafka.kafka_bootstrap,
        topic_prefix: args.kafka.topic_prefix,
        batch_size: args.batch_size,
        poll_interval: args.poll_interval,
        batches_in_flight: usize::from(args.batches_in_flight),
        vacuum_every: args.vacuum_every,
    };
    let shutdown = ordexa_runtime::Shutdown::on_signals();
    let health = ordexa_runtime::Health::new("starting");
    let ops = ordexa_runtime::ops_router("relay", health.clone());
    let server = ordexa_runtime::spawn_ops_server(args.http_addr, ops, shutdown.clone())
        .await
        .map_err(|source| Error::Listen { addr: args.http_addr, source })?;
    tracing::info!(addr = %args.http_addr, topic = %config.topic(), "relay starting");
    ordexa_relay::run(config, health, shutdown).await?;
    join_ops_server(server).await?;
    tracing::info!("relay stopped");
    Ok(())
}

async fn web(args: WebArgs) -> Result<(), Error> {
    let dev_sign_in = if args.dev_sign_in {
        let secret = args.jwt_secret.ok_or(ordexa_web::WebError::DevSignInWithoutSecret)?;
        tracing::warn!("development sign-in is on: anyone who reaches this server can get a token");
        Some(ordexa_api::Auth::new(secret.as_bytes()).map_err(ordexa_web::WebError::DevSignIn)?)
    } else {
        None
    };
    let config = ordexa_web::WebConfig { assets_dir: args.assets_dir, api_upstream: args.api_upstream, dev_sign_in };
    let upstream = config.api_upstream.clone();
    let app = ordexa_web::router(config)?;
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| Error::Listen { addr: args.http_addr, source })?;
    tracing::info!(addr = %args.http_addr, %upstream, "web listening");
    let mut shutdown = ordexa_runtime::Shutdown::on_signals();
    ordexa_web::serve(listener, app, async move { shutdown.wait().await }).await.map_err(Error::Serve)?;
    tracing::info!("web stopped");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init(),
    }
    // Install the metrics recorder before anything records: metrics recorded earlier are lost.
    let _ = ordexa_runtime::prometheus();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.spawn(ordexa_runtime::metrics_upkeep());
    match runtime.block_on(run(cli.role)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "ordexa failed");
            std::process::ExitCode::FAILURE
        }
    }
}

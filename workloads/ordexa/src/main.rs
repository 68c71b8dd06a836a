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
    Projector,
    /// Apply the PostgreSQL migrations (safe to run from several processes at once).
    Migrate(MigrateArgs),
    /// Create the Cassandra keyspace and tables.
    CassandraSchema,
    /// Serve the web frontend and forward /api to the API.
    Web,
    /// Run api, relay and projector in one process for local development.
    Dev,
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
struct ApiArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    jwt: JwtArgs,
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
    /// How long one message may take to reach Kafka before its batch is retried.
    #[arg(long, env = "ORDEXA_RELAY_DELIVERY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    delivery_timeout: Duration,
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

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("the `{0}` role is not built yet")]
    RoleNotBuilt(&'static str),
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
        Role::Projector => Err(Error::RoleNotBuilt("projector")),
        Role::CassandraSchema => Err(Error::RoleNotBuilt("cassandra-schema")),
        Role::Web => Err(Error::RoleNotBuilt("web")),
        Role::Dev => Err(Error::RoleNotBuilt("dev")),
    }
}

async fn api(args: ApiArgs) -> Result<(), Error> {
    let auth = ordexa_api::Auth::new(args.jwt.jwt_secret.as_bytes())?;
    let pool = ordexa_store::connect(&args.database.database_url, args.database_max_connections).await?;
    let state = ordexa_api::AppState::new(ordexa_store::Store::new(pool), auth);
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

async fn relay(args: RelayArgs) -> Result<(), Error> {
    let config = ordexa_relay::RelayConfig {
        database_url: args.database.database_url,
        kafka_bootstrap: args.kafka.kafka_bootstrap,
        topic_prefix: args.kafka.topic_prefix,
        batch_size: args.batch_size,
        poll_interval: args.poll_interval,
        delivery_timeout: args.delivery_timeout,
    };
    let shutdown = ordexa_runtime::Shutdown::on_signals();
    let health = ordexa_runtime::Health::new("starting");
    let ops = ordexa_runtime::ops_router("relay", health.clone());
    let server = ordexa_runtime::spawn_ops_server(args.http_addr, ops, shutdown.clone())
        .await
        .map_err(|source| Error::Listen { addr: args.http_addr, source })?;
    tracing::info!(addr = %args.http_addr, topic = %config.topic(), "relay starting");
    ordexa_relay::run(config, health, shutdown).await?;
    match server.await {
        Ok(result) => result.map_err(Error::Serve)?,
        Err(err) => tracing::warn!(error = %err, "ops server task failed"),
    }
    tracing::info!("relay stopped");
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

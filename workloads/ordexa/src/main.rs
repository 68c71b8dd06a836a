//! `ordexa`: one binary for every workload role, chosen by subcommand (`cli`).

use std::net::SocketAddr;

use clap::Parser;
use ordexa::cli::{
    ApiArgs, CassandraArgs, Cli, DeadLetterCommand, DevArgs, DlqCommand, OutboxCommand, ProjectorArgs, ReconcileArgs,
    RelayArgs, Role, WebArgs,
};

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Web(#[from] ordexa_web::WebError),
    #[error(transparent)]
    Store(#[from] ordexa_store::StoreError),
    #[error(transparent)]
    Auth(#[from] ordexa_platform::auth::TokenConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Relay(#[from] ordexa_relay::RelayError),
    #[error(transparent)]
    Topics(#[from] ordexa_topics::TopicError),
    #[error(transparent)]
    ReadModel(#[from] ordexa_readmodel::ReadModelError),
    #[error(transparent)]
    Projector(#[from] ordexa_projector::ProjectorError),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("no dead letter with id {0} in the outbox (see `ordexa outbox dead list`)")]
    NoSuchDeadLetter(i64),
    #[error(transparent)]
    Reconcile(#[from] ordexa_projector::reconcile::ReconcileError),
    #[error("{0} order(s) differ between the write model and the read model")]
    ReadModelDiffers(u64),
    #[error("{0}")]
    Config(String),
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
            let auth = ordexa_platform::auth::Hs256Tokens::new(args.jwt.jwt_secret.as_bytes())?;
            println!("{}", auth.mint(&args.user, args.admin, args.ttl)?);
            Ok(())
        }
        Role::Relay(args) => relay(args).await,
        Role::Topics(args) => {
            let outcomes = ordexa_topics::ensure_topics(
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
        Role::Outbox(OutboxCommand::Dead(command)) => outbox_dead_letters(command).await,
        Role::Reconcile(args) => reconcile(args).await,
        Role::Web(args) => web(args).await,
        Role::Dev(args) => dev(args).await,
    }
}

/// The read model the role reads or writes, with its statements prepared.
async fn read_model(args: &CassandraArgs) -> Result<std::sync::Arc<ordexa_readmodel::ReadModel>, Error> {
    let session = ordexa_readmodel::connect(&args.cassandra_nodes).await?;
    Ok(std::sync::Arc::new(ordexa_readmodel::ReadModel::new(session, &args.cassandra_keyspace).await?))
}

/// The API needs PostgreSQL to start; Cassandra it connects to in the background when it does
/// not answer yet (reads answer 503 until then, commands work).
async fn api(args: ApiArgs) -> Result<(), Error> {
    if args.limits.request_timeout <= args.read_wait {
        return Err(Error::Config(format!(
            "--request-timeout ({:?}) must be longer than --read-wait ({:?}), or every read that waits times out",
            args.limits.request_timeout, args.read_wait
        )));
    }
    let auth = ordexa_platform::auth::Hs256Tokens::new(args.jwt.jwt_secret.as_bytes())?;
    let pool = ordexa_store::connect(&args.database.database_url, args.database_max_connections).await?;
    let store = ordexa_store::Store::new(pool);
    let shutdown = ordexa_platform::Shutdown::on_signals();
    let target = ordexa_api::ReadModelTarget {
        nodes: args.cassandra.cassandra_nodes.clone(),
        keyspace: args.cassandra.cassandra_keyspace.clone(),
        request_timeout: args.limits.read_model_timeout,
    };
    let reads = ordexa_api::ReadSide::connect_in_background(target, shutdown.clone()).await;
    let state = ordexa_api::AppState::with_read_side(store.clone(), reads, auth).with_read_wait(args.read_wait);
    let app = ordexa_api::router(state, args.limits.limits());
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| Error::Listen { addr: args.http_addr, source })?;
    let purge = ordexa_api::IdempotencyPurge::new(store, args.idempotency_key_ttl);
    let purge = tokio::spawn(purge.run(shutdown.clone()));
    tracing::info!(addr = %args.http_addr, "api listening");
    let mut api_shutdown = shutdown;
    ordexa_api::serve(listener, app, async move { api_shutdown.wait().await }).await.map_err(Error::Serve)?;
    if let Err(err) = purge.await {
        tracing::warn!(error = %err, "idempotency purge task failed");
    }
    tracing::info!("api stopped");
    Ok(())
}

async fn projector(args: ProjectorArgs) -> Result<(), Error> {
    let config = args.tuning.config(&args.kafka);
    let model = read_model(&args.cassandra).await?;
    let shutdown = ordexa_platform::Shutdown::on_signals();
    let health = ordexa_platform::Health::new("starting");
    let ops = ordexa_platform::ops_router("projector", health.clone());
    let server = ordexa_platform::spawn_ops_server(args.http_addr, ops, shutdown.clone())
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
            let topic = ordexa_topics::dlq_topic(&kafka.topic_prefix);
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
            let topic = ordexa_topics::dlq_topic(&kafka.topic_prefix);
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
            let topic = ordexa_topics::dlq_topic(&kafka.topic_prefix);
            let letters = if all {
                ordexa_projector::dlq::list(&kafka.kafka_bootstrap, &topic, usize::MAX).await?
            } else {
                let mut letters = Vec::new();
                for position in positions {
                    letters.push(ordexa_projector::dlq::show(&kafka.kafka_bootstrap, &topic, position).await?);
                }
                letters
            };
            let source = ordexa_topics::orders_topic(&kafka.topic_prefix);
            let replayed = ordexa_projector::dlq::replay(&kafka.kafka_bootstrap, &topic, &letters, &source).await?;
            writeln!(out, "replayed {replayed} dead letter(s) from {topic}").map_err(Error::Stdout)?;
        }
    }
    Ok(())
}

async fn reconcile(args: ReconcileArgs) -> Result<(), Error> {
    let store = ordexa_store::Store::new(ordexa_store::connect(&args.database.database_url, 4).await?);
    let model = read_model(&args.cassandra).await?;
    let options =
        ordexa_projector::reconcile::Options { repair: args.repair, settle: args.settle, page: args.page_size };
    let report = ordexa_projector::reconcile::reconcile(&store, &model, options).await?;
    for difference in &report.differences {
        println!("{difference}");
    }
    println!(
        "reconcile: {} orders checked, {} differ from the write model, {} repaired",
        report.checked,
        report.differences.len(),
        report.repaired
    );
    let left = report.differences.len() as u64 - report.repaired;
    if left > 0 { Err(Error::ReadModelDiffers(left)) } else { Ok(()) }
}

async fn outbox_dead_letters(command: DeadLetterCommand) -> Result<(), Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match command {
        DeadLetterCommand::List { database, limit } => {
            let pool = ordexa_store::connect(&database.database_url, 1).await?;
            let letters = ordexa_store::outbox::dead_letters(&pool, limit).await?;
            writeln!(out, "{} dead letter(s) in the outbox", letters.len()).map_err(Error::Stdout)?;
            for d in &letters {
                writeln!(
                    out,
                    "{}\torder={}\tversion={}\ttype={}\tbytes={}\tat={}\treason={}",
                    d.id,
                    d.aggregate_id,
                    d.aggregate_version,
                    d.event_type,
                    d.payload_bytes,
                    d.dead_lettered_at.to_rfc3339(),
                    d.reason
                )
                .map_err(Error::Stdout)?;
            }
        }
        DeadLetterCommand::Show { database, id } => {
            let pool = ordexa_store::connect(&database.database_url, 1).await?;
            let Some((d, payload)) = ordexa_store::outbox::dead_letter(&pool, id).await? else {
                return Err(Error::NoSuchDeadLetter(id));
            };
            writeln!(
                out,
                "id: {}\norder: {}\nversion: {}\ntype: {}\nevent id: {}\nwritten: {}\nrefused: {}\nreason: {}\nbytes: {}\nevent:\n{payload}",
                d.id,
                d.aggregate_id,
                d.aggregate_version,
                d.event_type,
                d.event_id,
                d.created_at.to_rfc3339(),
                d.dead_lettered_at.to_rfc3339(),
                d.reason,
                d.payload_bytes
            )
            .map_err(Error::Stdout)?;
        }
        DeadLetterCommand::Retry { database, ids, all } => {
            let pool = ordexa_store::connect(&database.database_url, 1).await?;
            let moved = ordexa_store::outbox::retry_dead_letters(&pool, (!all).then_some(ids.as_slice())).await?;
            writeln!(out, "moved {moved} dead letter(s) back into the outbox").map_err(Error::Stdout)?;
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
    ordexa_topics::ensure_topics(&args.kafka.kafka_bootstrap, &args.kafka.topic_prefix, args.partitions, 1).await?;
    let session = ordexa_readmodel::connect(&args.cassandra.cassandra_nodes).await?;
    let replication = ordexa_readmodel::Replication::Simple(1);
    ordexa_readmodel::apply_schema(&session, &args.cassandra.cassandra_keyspace, &replication).await?;
    let reads =
        std::sync::Arc::new(ordexa_readmodel::ReadModel::new(session, &args.cassandra.cassandra_keyspace).await?);

    let shutdown = ordexa_platform::Shutdown::on_signals();
    let relay_health = ordexa_platform::Health::new("starting");
    let projector_health = ordexa_platform::Health::new("starting");
    let mut servers = Vec::new();
    for (role, addr, health) in
        [("relay", args.relay_addr, &relay_health), ("projector", args.projector_addr, &projector_health)]
    {
        let ops = ordexa_platform::ops_router(role, health.clone());
        servers.push(
            ordexa_platform::spawn_ops_server(addr, ops, shutdown.clone())
                .await
                .map_err(|source| Error::Listen { addr, source })?,
        );
    }
    let relay_config = args.relay.config(&args.database, &args.kafka);
    let relay = tokio::spawn(ordexa_relay::run(relay_config, relay_health, shutdown.clone()));
    let projector_config = args.tuning.config(&args.kafka);
    let projector = tokio::spawn(ordexa_projector::run(projector_config, reads, projector_health, shutdown.clone()));

    let auth = ordexa_platform::auth::Hs256Tokens::new(args.jwt.jwt_secret.as_bytes())?;
    let purge =
        tokio::spawn(ordexa_api::IdempotencyPurge::new(store.clone(), args.idempotency_key_ttl).run(shutdown.clone()));
    // The API's reads get a session of their own, whose requests time out like `ordexa api`'s.
    let target = ordexa_api::ReadModelTarget {
        nodes: args.cassandra.cassandra_nodes.clone(),
        keyspace: args.cassandra.cassandra_keyspace.clone(),
        request_timeout: args.limits.read_model_timeout,
    };
    let read_side = ordexa_api::ReadSide::connect_in_background(target, shutdown.clone()).await;
    let app = ordexa_api::router(ordexa_api::AppState::with_read_side(store, read_side, auth), args.limits.limits());
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| Error::Listen { addr: args.http_addr, source })?;
    tracing::info!(api = %args.http_addr, relay = %args.relay_addr, projector = %args.projector_addr, "ordexa dev running");
    let mut api_shutdown = shutdown.clone();
    ordexa_api::serve(listener, app, async move { api_shutdown.wait().await }).await.map_err(Error::Serve)?;
    if let Err(err) = purge.await {
        tracing::warn!(error = %err, "idempotency purge task failed");
    }
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
    let config = args.tuning.config(&args.database, &args.kafka);
    let topic = ordexa_topics::orders_topic(&config.topic_prefix);
    let shutdown = ordexa_platform::Shutdown::on_signals();
    let health = ordexa_platform::Health::new("starting");
    let ops = ordexa_platform::ops_router("relay", health.clone());
    let server = ordexa_platform::spawn_ops_server(args.http_addr, ops, shutdown.clone())
        .await
        .map_err(|source| Error::Listen { addr: args.http_addr, source })?;
    tracing::info!(addr = %args.http_addr, %topic, "relay starting");
    ordexa_relay::run(config, health, shutdown).await?;
    join_ops_server(server).await?;
    tracing::info!("relay stopped");
    Ok(())
}

async fn web(args: WebArgs) -> Result<(), Error> {
    let dev_sign_in = if args.dev_sign_in {
        let secret = args.jwt_secret.ok_or(ordexa_web::WebError::DevSignInWithoutSecret)?;
        tracing::warn!("development sign-in is on: anyone who reaches this server can get a token");
        Some(ordexa_platform::auth::Hs256Tokens::new(secret.as_bytes()).map_err(ordexa_web::WebError::DevSignIn)?)
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
    let mut shutdown = ordexa_platform::Shutdown::on_signals();
    ordexa_web::serve(listener, app, async move { shutdown.wait().await }).await.map_err(Error::Serve)?;
    tracing::info!("web stopped");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    ordexa_platform::telemetry::init_tracing(cli.log_format);
    // Install the metrics recorder before anything records: metrics recorded earlier are lost.
    let _ = ordexa_platform::prometheus();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.spawn(ordexa_platform::metrics_upkeep());
    match runtime.block_on(run(cli.role)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "ordexa failed");
            std::process::ExitCode::FAILURE
        }
    }
}

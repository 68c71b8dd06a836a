//! `ordexa-operator`: reconciles `OrderingSystem` resources (`run`) and prints its CRD (`crd`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use kube::api::ListParams;
use kube::{Api, Client};
use ordexa_operator::controller::{self, Context};
use ordexa_operator::crd::{self, OrderingSystem};
use ordexa_operator::leader::{LeaderError, LeaseLock, Timing};
use ordexa_platform::telemetry::{LogFormat, init_tracing};
use ordexa_platform::{Health, Shutdown, env};

#[derive(Debug, Parser)]
#[command(name = "ordexa-operator", version, about = "Ordexa Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller (in the cluster, or against the current kubeconfig).
    Run(RunArgs),
    /// Print the OrderingSystem CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Listen address of /metrics, /healthz and /readyz.
    #[arg(long, env = env::OPERATOR_METRICS_ADDR, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Take a Lease before reconciling, so that several replicas are safe.
    #[arg(long, env = env::OPERATOR_LEADER_ELECTION, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = env::OPERATOR_LEASE_NAME, default_value = "ordexa-operator")]
    lease_name: String,
    /// Namespace of the Lease (in a pod: its own namespace, from the downward API).
    #[arg(long, env = env::POD_NAMESPACE, default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events (in a pod: its name).
    #[arg(long, env = env::POD_NAME)]
    identity: Option<String>,
    /// Watch only this namespace (the default is every namespace).
    #[arg(long, env = env::OPERATOR_WATCH_NAMESPACE)]
    watch_namespace: Option<String>,
    /// Log format.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("could not render the CRD: {0}")]
    Crd(#[from] serde_yaml::Error),
    #[error("could not create the Kubernetes client (is KUBECONFIG set, or is this a pod?): {0}")]
    Client(#[source] kube::Error),
    #[error(
        "the OrderingSystem CRD is not served by the API server ({0}); install it: ordexa-operator crd | kubectl apply -f -"
    )]
    CrdMissing(#[source] kube::Error),
    #[error("failed to listen on {addr} (--metrics-addr): {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("leader election: {0}")]
    Leader(#[from] Box<LeaderError>),
    #[error("tokio runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => print_crd(),
        Command::Run(args) => {
            init_tracing(args.log_format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(Error::from)
                .and_then(|rt| rt.block_on(run(args)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ordexa-operator: {err}");
            tracing::error!(error = %err, "ordexa-operator failed");
            ExitCode::FAILURE
        }
    }
}

fn print_crd() -> Result<(), Error> {
    print!("{}", crd::crd_yaml()?);
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), Error> {
    let shutdown = Shutdown::on_signals();
    let stopped = |mut shutdown: Shutdown| async move { shutdown.wait().await };
    let stop_rx = shutdown.clone();

    // Ready once connected: a standby is ready to take over.
    let health = Health::new("connecting to the Kubernetes API server");
    let ops = ordexa_platform::ops_router("operator", health.clone());
    let server = ordexa_platform::spawn_ops_server(args.metrics_addr, ops, shutdown.clone())
        .await
        .map_err(|source| Error::Listen { addr: args.metrics_addr, source })?;

    let client = Client::try_default().await.map_err(Error::Client)?;
    let systems: Api<OrderingSystem> = match &args.watch_namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    systems.list(&ListParams::default().limit(1)).await.map_err(Error::CrdMissing)?;
    // A standby replica is healthy and ready to take over; readiness means "connected".
    health.ready();

    let identity = args.identity.clone().unwrap_or_else(|| format!("ordexa-operator-{}", std::process::id()));
    let lock = args
        .leader_election
        .then(|| LeaseLock::new(client.clone(), &args.lease_namespace, &args.lease_name, &identity, Timing::default()));
    if let Some(lock) = &lock {
        tracing::info!(lease = %args.lease_name, namespace = %args.lease_namespace, %identity, "waiting for the leader Lease");
        tokio::select! {
            acquired = lock.acquire() => acquired.map_err(Box::new)?,
            () = stopped(stop_rx.clone()) => return Ok(()),
        }
    }

    let ctx = Arc::new(Context::new(client, Some(identity)));
    let controller = tokio::spawn(controller::run(ctx, args.watch_namespace.clone(), stopped(stop_rx.clone())));
    let outcome = match &lock {
        Some(lock) => {
            tokio::select! {
                lost = lock.hold() => Err(lost),
                () = stopped(stop_rx.clone()) => Ok(()),
            }
        }
        None => {
            stopped(stop_rx.clone()).await;
            Ok(())
        }
    };
    if outcome.is_err() {
        // Lost leadership: stop at once; the pod restarts and campaigns again.
        controller.abort();
    } else if let Err(err) = controller.await {
        tracing::warn!(error = %err, "controller task ended abnormally");
    }
    if let (Some(lock), Ok(())) = (&lock, &outcome) {
        lock.release().await;
    }
    if outcome.is_ok() {
        // The server stops on the same signal; let it finish its responses.
        let _ = server.await;
    } else {
        server.abort();
    }
    outcome.map_err(|lost| Error::Leader(Box::new(lost)))
}

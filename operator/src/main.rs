//! `ordexa-operator`: reconciles `OrderingSystem` resources (`run`) and prints its CRD (`crd`).
//!
//! The CRD types and reconcilers arrive with the operator issue; until then each subcommand
//! says it is not built and exits non-zero.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "ordexa-operator", version, about = "Ordexa Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Command {
    /// Run the controller.
    Run,
    /// Print the OrderingSystem CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("`ordexa-operator {0}` is not built yet")]
    NotBuilt(&'static str),
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run => Err(Error::NotBuilt("run")),
        Command::Crd => Err(Error::NotBuilt("crd")),
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "ordexa-operator failed");
            std::process::ExitCode::FAILURE
        }
    }
}

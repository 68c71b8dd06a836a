//! `ordexa`: one binary for every workload role, chosen by subcommand.
//!
//! The roles are filled in by the issues that build them; until a role exists its subcommand
//! says so and exits non-zero, so nothing mistakes the skeleton for a running service.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "ordexa", version, about = "Ordexa ordering system workloads")]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Role {
    /// Serve the REST API (commands on PostgreSQL, queries on Cassandra).
    Api,
    /// Publish the transactional outbox to Kafka.
    Relay,
    /// Project order events from Kafka into the Cassandra read model.
    Projector,
    /// Apply the PostgreSQL migrations.
    Migrate,
    /// Create the Cassandra keyspace and tables.
    CassandraSchema,
    /// Serve the web frontend and forward /api to the API.
    Web,
    /// Run api, relay and projector in one process for local development.
    Dev,
    /// Mint a development JWT.
    Token,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Relay => "relay",
            Role::Projector => "projector",
            Role::Migrate => "migrate",
            Role::CassandraSchema => "cassandra-schema",
            Role::Web => "web",
            Role::Dev => "dev",
            Role::Token => "token",
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("the `{0}` role is not built yet")]
    RoleNotBuilt(&'static str),
}

fn run(cli: Cli) -> Result<(), Error> {
    Err(Error::RoleNotBuilt(cli.role.name()))
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "ordexa failed");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `ordexa-bench`: the measuring half of Ordexa's benchmarks. The scripts in `bench/` prepare the
//! servers and call one subcommand each; every subcommand drives the real `ordexa` binary (and
//! pgbench, and Debezium) as black boxes and writes one Markdown table and one JSON file.

mod api;
mod e2e;
mod events;
mod kafka;
mod load;
mod pgbench;
mod proc;
mod relay;
mod stats;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ordexa-bench", about = "Ordexa's benchmarks (run through bench/*.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The API's create next to pgbench running the same transaction, at rising rates.
    Api(api::ApiArgs),
    /// The relay and Debezium side by side: drain, commit → Kafka at a fixed load, memory; the relay's ceilings.
    Relay(relay::RelayArgs),
    /// The projector's drain next to the raw driver; api + relay + projector: commit → visible, memory.
    E2e(e2e::E2eArgs),
    /// Print the outbox writer's pgbench script (the store's INSERT_SQL).
    OutboxScript,
}

/// Runs `body` unless Ctrl-C comes first, so that the caller's clean-up (topics, keyspaces,
/// databases of the run) happens either way.
pub async fn interruptible<T>(body: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::select! {
        result = body => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Api(args) => api::run(args).await,
        Command::Relay(args) => relay::run(args).await,
        Command::E2e(args) => e2e::run(args).await,
        Command::OutboxScript => {
            print!("{}", pgbench::outbox_script());
            Ok(())
        }
    }
}

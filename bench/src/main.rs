//! `ordexa-bench`: Ordexa's benchmark tools. `bench/api.sh` (behind `make bench-api`) and
//! `bench/relay.sh` (behind `make bench-relay`) drive them; see `bench/README.md`.
//!
//! - `api-load`: open-loop load on `POST /api/v1/orders` at rising rates.
//! - `pgbench-ladder`: the same SQL transaction through `pgbench` at the same rates.
//! - `compare`: both, interleaved rate by rate (what `make bench-api` runs).
//! - `report`: both ladders side by side, as Markdown.
//! - `relay`: the outbox relay draining a backlog, under steady load, and its two ceilings
//!   (what `make bench-relay` runs); `relay-report` renders it, `relay-cleanup` removes the
//!   run's topics.
//! - `e2e`: the projector draining a preloaded topic next to its ceiling (the same writes
//!   without Kafka), and api + relay + projector under open-loop creates: commit → visible in
//!   Cassandra, a burst and its catch-up, memory (what `make bench-e2e` runs); `e2e-report`
//!   renders it (Markdown and an SVG chart), `e2e-cleanup` removes the run's topics and keyspaces.

mod compare;
mod e2e;
mod ladder;
mod load;
mod pgbench;
mod procfs;
mod relay;
mod report;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ordexa-bench", version, about = "Ordexa benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open-loop load on POST /api/v1/orders at rising rates.
    ApiLoad(load::ApiLoadArgs),
    /// The API's create transaction through pgbench at rising rates, plus a closed-loop run.
    PgbenchLadder(pgbench::PgbenchArgs),
    /// Both ladders interleaved rate by rate against the same server.
    Compare(compare::CompareArgs),
    /// Write the pgbench script and its variables without running anything.
    PgbenchScript(ScriptArgs),
    /// Render both ladders as a Markdown report.
    Report(report::ReportArgs),
    /// The outbox relay: drain a backlog, steady load, and the producer and SQL ceilings.
    Relay(relay::RelayArgs),
    /// Render a relay run as a Markdown report.
    RelayReport(relay::report::RelayReportArgs),
    /// Delete a relay run's topics (every topic with its `bench…` prefix).
    RelayCleanup(relay::CleanupArgs),
    /// The projector's drain next to its ceiling; api + relay + projector: commit → visible, burst, memory.
    E2e(e2e::E2eArgs),
    /// Render an end-to-end run as Markdown and an SVG chart.
    E2eReport(e2e::report::E2eReportArgs),
    /// Delete an end-to-end run's topics and keyspaces.
    E2eCleanup(e2e::E2eCleanupArgs),
}

#[derive(Debug, Args)]
struct ScriptArgs {
    /// Where to write the script; its `-D` variables are printed.
    #[arg(long)]
    out: PathBuf,
    /// How many distinct users the transactions spread over.
    #[arg(long, default_value_t = workload::DEFAULT_USERS)]
    users: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ApiLoad(args) => load::run(args),
        Command::PgbenchLadder(args) => pgbench::run(args),
        Command::Compare(args) => compare::run(args),
        Command::PgbenchScript(args) => pgbench::write_script(&args.out, args.users).map(|vars| {
            for (name, value) in vars {
                println!("-D {name}={value}");
            }
        }),
        Command::Report(args) => report::run(args),
        Command::Relay(args) => relay::run(args),
        Command::RelayReport(args) => relay::report::run(args),
        Command::RelayCleanup(args) => relay::cleanup(args),
        Command::E2e(args) => e2e::run(args),
        Command::E2eReport(args) => e2e::report::run(args),
        Command::E2eCleanup(args) => e2e::cleanup(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ordexa-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

//! `compare`: the API ladder and the pgbench ladder interleaved rate by rate, so both sides of
//! each rate meet the same machine — the same storage latency, the same neighbours, tables of
//! the same size. Which side goes first alternates from rate to rate, so a drift during the run
//! favours neither. Each ladder stops on its own rule; pgbench's closed-loop run comes last.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::ladder::{self, LadderArgs, Progress};
use crate::load::{self, ApiArgs, ApiSide};
use crate::pgbench::{PgArgs, PgbenchSide};

/// The setting that marks ladders run by `compare`.
pub const INTERLEAVED: &str = "interleaved with";

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    ladder: LadderArgs,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    pg: PgArgs,
    /// Where to write the API ladder as JSON.
    #[arg(long)]
    api_json: PathBuf,
    /// Where to write the pgbench ladder as JSON.
    #[arg(long)]
    pgbench_json: PathBuf,
}

pub fn run(args: CompareArgs) -> Result<()> {
    args.ladder.check()?;
    load::runtime(args.api.client_threads)?.block_on(async {
        let api = ApiSide::connect(args.ladder.clone(), args.api.clone()).await?;
        let pg = Arc::new(PgbenchSide::prepare(args.ladder.clone(), args.pg.clone())?);
        let pause = Duration::from_secs_f64(args.ladder.pause);
        let mut api_progress = Progress::new("api", args.ladder.stop_after);
        let mut pg_progress = Progress::new("pgbench", args.ladder.stop_after);
        for (i, &rate) in args.ladder.rates.iter().enumerate() {
            if api_progress.done() && pg_progress.done() {
                break;
            }
            let api_first = i % 2 == 0;
            for api_turn in [api_first, !api_first] {
                if api_turn && !api_progress.done() {
                    api_progress.push(api.step(rate).await?);
                    tokio::time::sleep(pause).await;
                } else if !api_turn && !pg_progress.done() {
                    let side = Arc::clone(&pg);
                    let step =
                        tokio::task::spawn_blocking(move || side.step(Some(rate))).await.context("pgbench step")??;
                    pg_progress.push(step);
                    tokio::time::sleep(pause).await;
                }
            }
        }
        let closed_loop = if args.pg.no_closed_loop {
            None
        } else {
            let side = Arc::clone(&pg);
            let step = tokio::task::spawn_blocking(move || side.step(None)).await.context("pgbench step")??;
            eprintln!("{}", ladder::step_line("pgbench closed loop", &step));
            Some(step)
        };
        let mut api_ladder = api.finish(api_progress.steps);
        api_ladder
            .settings
            .insert(INTERLEAVED.to_owned(), "pgbench, rate by rate, alternating which goes first".to_owned());
        api_ladder.save(&args.api_json)?;
        let pg = Arc::try_unwrap(pg).map_err(|_| anyhow::anyhow!("the pgbench side is still in use"))?;
        let mut pg_ladder = pg.finish(pg_progress.steps, closed_loop)?;
        pg_ladder
            .settings
            .insert(INTERLEAVED.to_owned(), "the API, rate by rate, alternating which goes first".to_owned());
        pg_ladder.save(&args.pgbench_json)?;
        Ok(())
    })
}

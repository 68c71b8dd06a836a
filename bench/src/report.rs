//! `report`: the HTTP ladder and the pgbench ladder side by side, as Markdown.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::ladder::{DISTURBED_CORES, Ladder, Step};
use crate::procfs::{self, Memory};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The api-load results (JSON).
    #[arg(long)]
    api: PathBuf,
    /// The pgbench-ladder results (JSON).
    #[arg(long)]
    pgbench: PathBuf,
    /// The goal for API rate / pgbench rate.
    #[arg(long, default_value_t = 0.8)]
    goal: f64,
    #[command(flatten)]
    facts: RunFacts,
}

/// What every result file states about its run, given by the script that ran it.
#[derive(Debug, Clone, Args)]
pub struct RunFacts {
    /// Where to write the Markdown.
    #[arg(long)]
    pub out: PathBuf,
    /// The commit measured.
    #[arg(long)]
    pub commit: String,
    /// The working tree had changes not in the commit.
    #[arg(long)]
    pub dirty: bool,
    /// `SELECT version()` of the server.
    #[arg(long)]
    pub pg_version: String,
    /// When the run started, as the report states it (default: now).
    #[arg(long)]
    pub date: Option<String>,
    /// Extra `key=value` facts about the run (server settings...).
    #[arg(long = "setting")]
    pub settings: Vec<String>,
}

impl RunFacts {
    pub fn date(&self) -> String {
        self.date.clone().unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string())
    }

    pub fn short_commit(&self) -> String {
        self.commit.chars().take(12).collect()
    }

    pub fn dirty_note(&self) -> &'static str {
        if self.dirty { " (working tree dirty: uncommitted changes were measured)" } else { " (clean tree)" }
    }

    /// The `## Machine` section: the machine, the server, the settings, the commit and the date,
    /// then `sharing` (how the processes under test share the machine).
    pub fn machine_section(&self, out: &mut String, date: &str, sharing: &str) -> Result<()> {
        let machine = procfs::machine();
        writeln!(out, "## Machine\n")?;
        writeln!(out, "- CPU: {} × {}", machine.cores, machine.cpu_model)?;
        writeln!(out, "- memory: {}", machine.memory)?;
        writeln!(out, "- kernel: {}; OS: {}", machine.kernel, machine.os)?;
        writeln!(out, "- PostgreSQL: {}", self.pg_version)?;
        for setting in &self.settings {
            if let Some((key, value)) = setting.split_once('=') {
                writeln!(out, "- {key}: {value}")?;
            }
        }
        writeln!(out, "- commit: `{}`{}", self.commit, self.dirty_note())?;
        writeln!(out, "- date: {date}")?;
        writeln!(out, "- {sharing}\n")?;
        Ok(())
    }

    /// Writes the report to `--out` and prints it.
    pub fn write(&self, text: &str) -> Result<()> {
        if let Some(dir) = self.out.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&self.out, text).with_context(|| format!("writing {}", self.out.display()))?;
        println!("{text}");
        Ok(())
    }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

pub fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".to_owned())
}

fn cores(step: &Step, name: &str) -> String {
    step.cpu.as_ref().and_then(|c| c.cores_used.get(name)).map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".to_owned())
}

/// Cores busy with anything but the processes under test (other work on the machine, the
/// kernel's softirq time): a large value means the run was disturbed.
fn other_cores(step: &Step) -> String {
    step.other_cores().map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".to_owned())
}

fn disturbance(out: &mut String, api: &Ladder, pg: &Ladder) -> Result<()> {
    let steps = |l: &'static str, ladder: &Ladder| -> Vec<(String, f64)> {
        ladder
            .steps
            .iter()
            .map(|s| (format!("{l} {:.0}/s", s.target_rate), s.other_cores()))
            .chain(ladder.closed_loop.iter().map(|s| (format!("{l} closed loop"), s.other_cores())))
            .filter_map(|(name, o)| o.map(|o| (name, o)))
            .collect()
    };
    let all: Vec<(String, f64)> = steps("api", api).into_iter().chain(steps("pgbench", pg)).collect();
    let (min, max) = all.iter().fold((f64::MAX, 0.0f64), |(lo, hi), (_, o)| (lo.min(*o), hi.max(*o)));
    if all.is_empty() {
        return Ok(());
    }
    write!(
        out,
        "Other work on the machine during the measured windows (\"other cores\": busy time not charged to the \
         processes under test, e.g. the idle Kafka and Cassandra servers): {min:.2}–{max:.2} cores."
    )?;
    let disturbed: Vec<&str> = all.iter().filter(|(_, o)| *o > DISTURBED_CORES).map(|(n, _)| n.as_str()).collect();
    if !disturbed.is_empty() {
        write!(
            out,
            " **Disturbed (more than {DISTURBED_CORES} cores of other work): {}.** Those rows understate what the \
             code can do; rerun on a quiet machine.",
            disturbed.join(", ")
        )?;
    }
    writeln!(out, "\n")?;
    Ok(())
}

/// CPU time per request (µs) of each process group at a step: what decides where a shared
/// machine runs out.
fn per_request(step: &Step) -> Vec<(String, f64)> {
    match &step.cpu {
        Some(cpu) if step.achieved_rate > 0.0 => {
            cpu.cores_used.iter().map(|(name, cores)| (name.clone(), cores * 1e6 / step.achieved_rate)).collect()
        }
        _ => Vec::new(),
    }
}

fn cpu_per_request(out: &mut String, api: Option<&Step>, pg: Option<&Step>) -> Result<()> {
    let describe = |step: &Step| {
        let parts: Vec<String> = per_request(step).iter().map(|(n, us)| format!("{n} {us:.0} µs")).collect();
        let total: f64 = per_request(step).iter().map(|(_, us)| us).sum();
        format!("{} (total {total:.0} µs) at {:.0}/s", parts.join(", "), step.target_rate)
    };
    if let (Some(a), Some(p)) = (api, pg) {
        writeln!(
            out,
            "CPU time per request at each side's highest sustained rate — API side: {}; pgbench side: {}.\n",
            describe(a),
            describe(p)
        )?;
    }
    Ok(())
}

fn errors(step: &Step) -> String {
    if step.errors == 0 {
        return "0".to_owned();
    }
    let kinds: Vec<String> = step.error_kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("{} ({})", step.errors, kinds.join(", "))
}

fn table(out: &mut String, ladder: &Ladder, api: bool) -> Result<()> {
    let (own, own_name) = if api { ("api", "api cores") } else { ("pgbench", "pgbench cores") };
    let driver = if api { "load generator" } else { "pgbench" };
    if api {
        writeln!(
            out,
            "| target /s | achieved /s | p50 ms | p90 ms | p99 ms | max ms | start lag p99 ms | errors | CPU busy | \
             {own_name} | postgres cores | load-gen cores | other cores | api peak RSS MiB | sustained |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|:---:|")?;
    } else {
        writeln!(
            out,
            "| target /s | achieved /s | p50 ms | p90 ms | p99 ms | max ms | schedule lag p99 ms | errors | CPU busy | \
             {own_name} | postgres cores | other cores | sustained |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|:---:|")?;
    }
    let rows = ladder.steps.iter().map(|s| (s, false)).chain(ladder.closed_loop.iter().map(|s| (s, true)));
    for (step, closed) in rows {
        let l = step.latency.as_ref();
        let target = if closed { "closed loop".to_owned() } else { format!("{:.0}", step.target_rate) };
        let busy = step.cpu.as_ref().map(|c| format!("{:.0} %", c.machine_busy_pct)).unwrap_or_else(|| "–".into());
        let sustained = match (closed, step.sustained) {
            (true, _) => "(ref)",
            (false, true) => "yes",
            (false, false) => "**no**",
        };
        let sustained = if step.repeated { format!("{sustained} (repeated)") } else { sustained.to_owned() };
        write!(
            out,
            "| {target} | {:.1} | {} | {} | {} | {} | {} | {} | {busy} | {} | {} |",
            step.achieved_rate,
            ms(l.map(|l| l.p50_ms)),
            ms(l.map(|l| l.p90_ms)),
            ms(l.map(|l| l.p99_ms)),
            ms(l.map(|l| l.max_ms)),
            ms(step.start_lag.as_ref().map(|l| l.p99_ms)),
            errors(step),
            cores(step, own),
            cores(step, "postgres"),
        )?;
        if api {
            write!(out, " {} |", cores(step, driver))?;
        }
        write!(out, " {} |", other_cores(step))?;
        if api {
            write!(out, " {} |", step.api_rss_peak_kib.map(mib).unwrap_or_else(|| "–".into()))?;
        }
        writeln!(out, " {sustained} |")?;
    }
    Ok(())
}

fn settings(out: &mut String, ladder: &Ladder) -> Result<()> {
    for (key, value) in &ladder.settings {
        writeln!(out, "- {key}: {value}")?;
    }
    writeln!(out, "- warm-up {} s, then {} s measured, per rate", ladder.warmup_s, ladder.duration_s)?;
    Ok(())
}

fn memory_line(label: &str, memory: Option<Memory>) -> String {
    match memory {
        Some(m) => format!("{label}: VmRSS {} MiB, VmHWM {} MiB", mib(m.vm_rss_kib), mib(m.vm_hwm_kib)),
        None => format!("{label}: not sampled"),
    }
}

pub fn render(api: &Ladder, pg: &Ladder, args: &ReportArgs, date: &str) -> Result<String> {
    let facts = &args.facts;
    let api_best = api.highest_sustained();
    let pg_best = pg.highest_sustained();
    let ratio = match (api_best, pg_best) {
        (Some(a), Some(p)) if p.target_rate > 0.0 => Some(a.target_rate / p.target_rate),
        _ => None,
    };
    let mut out = String::new();
    writeln!(out, "# API write benchmark: POST /api/v1/orders vs pgbench\n")?;
    writeln!(out, "{date} · commit `{}`{} · `make bench-api`\n", facts.short_commit(), facts.dirty_note())?;

    writeln!(out, "## Result\n")?;
    let rate = |s: Option<&Step>| s.map(|s| format!("{:.0}/s", s.target_rate)).unwrap_or_else(|| "none".into());
    let lat = |s: Option<&Step>| {
        s.and_then(|s| s.latency.as_ref())
            .map(|l| format!("p50 {:.2} ms, p99 {:.2} ms", l.p50_ms, l.p99_ms))
            .unwrap_or_else(|| "–".into())
    };
    writeln!(out, "| | highest sustained rate | latency there |")?;
    writeln!(out, "|---|---:|---|")?;
    writeln!(out, "| API, `POST /api/v1/orders` | **{}** | {} |", rate(api_best), lat(api_best))?;
    writeln!(out, "| pgbench, the same SQL transaction | **{}** | {} |", rate(pg_best), lat(pg_best))?;
    if let Some(closed) = &pg.closed_loop {
        writeln!(
            out,
            "| pgbench closed loop (no rate limit, reference) | {:.0}/s achieved | {} |",
            closed.achieved_rate,
            lat(Some(closed))
        )?;
    }
    writeln!(out)?;
    match ratio {
        Some(r) => writeln!(
            out,
            "**Ratio API / pgbench = {r:.2}** (goal ≥ {}: {}). Both rates are steps of the same ladder, so the ratio is \
             only as fine as the ladder.\n",
            args.goal,
            if r >= args.goal { "met" } else { "**not met**" }
        )?,
        None => writeln!(out, "**Ratio: not defined** — one side sustained no rate of the ladder.\n")?,
    }
    cpu_per_request(&mut out, api_best, pg_best)?;
    let hwm = api.api_memory_after.map(|m| m.vm_hwm_kib);
    let at_best = api_best.and_then(|s| s.api_rss_peak_kib).map(mib).unwrap_or_else(|| "–".into());
    writeln!(
        out,
        "API memory: peak VmRSS **{at_best} MiB** at the highest sustained rate; peak resident (VmHWM) over the whole \
         ladder, overload steps included, **{} MiB**; {}; {}.\n",
        hwm.map(mib).unwrap_or_else(|| "–".into()),
        memory_line("idle before the load", api.api_memory_idle),
        memory_line("after the ladder", api.api_memory_after),
    )?;
    writeln!(out, "Sustained means: {}.\n", api.rule.describe())?;
    disturbance(&mut out, api, pg)?;

    let sharing = format!(
        "everything on this one machine: the load generator (or pgbench), the API and PostgreSQL share its {} \
         cores; \"CPU busy\" is the whole machine over the measured window, the \"cores\" columns are what each \
         process (PostgreSQL: postmaster and backends) used, \"other cores\" the rest of the busy time (other \
         work on the machine, kernel time not charged to these processes).",
        procfs::cores()
    );
    facts.machine_section(&mut out, date, &sharing)?;

    writeln!(out, "## API ladder\n")?;
    table(&mut out, api, true)?;
    writeln!(out)?;
    settings(&mut out, api)?;
    writeln!(out)?;

    writeln!(out, "## pgbench ladder\n")?;
    table(&mut out, pg, false)?;
    writeln!(out)?;
    settings(&mut out, pg)?;
    writeln!(out)?;

    writeln!(out, "## Reading it\n")?;
    if api.settings.contains_key(crate::compare::INTERLEAVED) {
        writeln!(
            out,
            "- The two ladders ran interleaved against the same server and database: at each rate the API step and \
             the pgbench step ran one after the other (which went first alternated from rate to rate), so both sides \
             of a rate met the same machine, storage latency and table sizes. The API stayed up, idle, during \
             pgbench's steps."
        )?;
    }
    writeln!(
        out,
        "- Latency is measured from each request's scheduled start: for the API, from the instant the fixed-interval \
         schedule said to send it (so a stall is charged to every request queued behind it); for pgbench, the \
         per-transaction log's time, which under `--rate` includes the schedule lag.\n\
         - \"achieved\" counts successful responses (commits) that completed inside the measured window.\n\
         - \"start lag\" (API) is how late the load generator actually sent after the scheduled time; a large value \
         means the generator itself was starved of CPU, and it is already inside the latency.\n\
         - Differences between the two sides that remain: the API's arrivals are evenly spaced, pgbench's are \
         Poisson (burstier, which if anything flatters the API); pgbench makes the ids and the idempotency key on \
         the server and stores a fixed (real-sized) event payload and response body; the API does the HTTP, JSON, \
         JWT and pricing work on top, on the same cores.\n"
    )?;
    if let Some(script) = &pg.script {
        writeln!(out, "<details><summary>The pgbench script</summary>\n\n```sql\n{}```\n\n</details>", script)?;
    }
    Ok(out)
}

pub fn run(args: ReportArgs) -> Result<()> {
    let api = Ladder::load(&args.api)?;
    let pg = Ladder::load(&args.pgbench)?;
    let date = args.facts.date();
    let text = render(&api, &pg, &args, &date)?;
    args.facts.write(&text)
}

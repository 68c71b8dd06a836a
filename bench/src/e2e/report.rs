//! `e2e-report`: an end-to-end run (JSON) as Markdown, with its chart as an SVG next to it.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::live::{Level, Live};
use super::pipeline::{self, Ended, PipelineLadder};
use super::{E2eRun, ProjectorDrain};
use crate::ladder::Latency;
use crate::procfs::CpuUsage;
use crate::relay::{Throughput, median};
use crate::report::{RunFacts, mib};

#[derive(Debug, Args)]
pub struct E2eReportArgs {
    /// The `e2e` run's results (JSON).
    #[arg(long)]
    json: PathBuf,
    /// Goal: projector drain rate / ceiling.
    #[arg(long, default_value_t = 0.8)]
    goal_ratio: f64,
    /// Goal: seconds for the projector to catch up after the burst.
    #[arg(long, default_value_t = 60.0)]
    goal_burst_s: f64,
    #[command(flatten)]
    facts: RunFacts,
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "–".to_owned())
}

fn lat(l: &Option<Latency>) -> String {
    l.as_ref()
        .map(|l| format!("{:.1} / {:.1} / {:.1} / {:.1}", l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms))
        .unwrap_or_else(|| "–".to_owned())
}

fn cores(cpu: &Option<CpuUsage>, name: &str) -> String {
    opt(cpu.as_ref().and_then(|c| c.cores_used.get(name).copied()), 2)
}

fn range(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    if values.len() < 2 { format!("{max:.0}") } else { format!("{min:.0}–{max:.0}") }
}

/// The goal for a level's p99 (commit → visible), ms.
fn level_goal(fraction: f64) -> Option<f64> {
    if (fraction - 0.5).abs() < 1e-9 {
        Some(100.0)
    } else if (fraction - 0.75).abs() < 1e-9 {
        Some(500.0)
    } else {
        None
    }
}

/// The load was reached: ≥ 95 % of the target achieved, no errors.
fn reached(level: &Level) -> bool {
    level.achieved_rate >= 0.95 * level.target_rate && level.errors == 0
}

pub fn render(run: &E2eRun, args: &E2eReportArgs, svg_name: &str) -> Result<String> {
    let facts = &args.facts;
    let date = facts.date();
    let mut out = String::new();
    writeln!(out, "# End-to-end benchmark: the projector's drain and commit → visible in Cassandra\n")?;
    writeln!(out, "{date} · commit `{}`{} · `make bench-e2e`\n", facts.short_commit(), facts.dirty_note())?;
    writeln!(out, "![drain rates and commit → visible latency]({svg_name})\n")?;

    // --- result ------------------------------------------------------------------------------
    writeln!(out, "## Result\n")?;
    writeln!(out, "| goal | measured | verdict |\n|---|---|---|")?;
    let p_rates: Vec<f64> = run.drains.iter().map(|d| d.throughput.rate).collect();
    let c_rates: Vec<f64> = run.ceilings.iter().map(|t| t.rate).collect();
    if !p_rates.is_empty() && !c_rates.is_empty() {
        let (p, c) = (median(&p_rates), median(&c_rates));
        writeln!(
            out,
            "| projector drain ≥ {:.1} × the ceiling | projector **{p:.0}** events/s ({}), ceiling **{c:.0}** events/s \
             ({}), median of {} rounds: **ratio {:.2}** | {} |",
            args.goal_ratio,
            range(&p_rates),
            range(&c_rates),
            p_rates.len(),
            p / c,
            met(p / c >= args.goal_ratio)
        )?;
    }
    if let Some(live) = &run.live {
        for level in &live.levels {
            let Some(goal) = level_goal(level.fraction) else { continue };
            let Some(v) = &level.visible_after_response else { continue };
            let verdict = if !reached(level) {
                "**not shown**: the load was not reached".to_owned()
            } else {
                met(v.p99_ms < goal).to_owned()
            };
            writeln!(
                out,
                "| commit → visible p99 < {goal:.0} ms at {:.0} % ({:.0}/s) | **p99 {:.1} ms**, p50 {:.1} ms after the 201 \
                 response ({} sampled orders; from created_at: {}) at {:.0}/s achieved | {verdict} |",
                level.fraction * 100.0,
                level.target_rate,
                v.p99_ms,
                v.p50_ms,
                v.count,
                level
                    .visible_after_created
                    .as_ref()
                    .map(|c| format!("p50 {:.1} ms, p99 {:.1} ms", c.p50_ms, c.p99_ms))
                    .unwrap_or_else(|| "–".to_owned()),
                level.achieved_rate
            )?;
        }
        if let Some(b) = &live.burst {
            writeln!(
                out,
                "| a {:.0}-s burst at {:.0}× drains in < {:.0} s | asked {:.0}/s, **achieved {:.0}/s** ({} errors); projector \
                 caught up **{:.1} s** after the burst (group lag 0 after {:.1} s) | {}{} |",
                b.seconds,
                b.fraction,
                args.goal_burst_s,
                b.target_rate,
                b.achieved_rate,
                b.errors,
                b.caught_up_s,
                b.lag_zero_s,
                met(b.lag_zero_s < args.goal_burst_s),
                if reached(b) { "" } else { " (for the rate achieved, not the rate asked)" }
            )?;
        }
        let hwm = |name: &str| live.memory.get(name).map(|m| format!("{} MiB", mib(m.vm_hwm_kib)));
        writeln!(
            out,
            "| resident memory under load (VmHWM, no goal set) | api {}, relay {}, projector {}; projector draining \
             {} events: {} | – |",
            hwm("api").unwrap_or_else(|| "–".into()),
            hwm("relay").unwrap_or_else(|| "–".into()),
            hwm("projector").unwrap_or_else(|| "–".into()),
            run.drains.first().map(|d| d.throughput.events).unwrap_or(0),
            run.drains
                .iter()
                .filter_map(|d| d.memory.map(|m| m.vm_hwm_kib))
                .max()
                .map(|k| format!("{} MiB", mib(k)))
                .unwrap_or_else(|| "–".into())
        )?;
    }
    writeln!(out)?;
    if let Some(live) = &run.live {
        writeln!(out, "{}\n", base_line(live))?;
    }
    load_section(&mut out, run)?;

    // --- drain -------------------------------------------------------------------------------
    if !run.drains.is_empty() {
        drain_section(&mut out, run)?;
    }
    if let Some(live) = &run.live {
        live_section(&mut out, live)?;
    }

    facts.machine_section(
        &mut out,
        &date,
        "everything on this one machine: PostgreSQL, Kafka, Cassandra, the workloads under test and the bench tool \
         share its cores; the cores columns are what each process used, \"other\" the rest of the busy time (other \
         work on the machine, kernel time not charged to these processes).",
    )?;
    writeln!(out, "## Settings\n")?;
    for (k, v) in &run.settings {
        writeln!(out, "- {k}: {v}")?;
    }
    writeln!(
        out,
        "- event payloads: {}–{} bytes, mean {:.0}; preload into the topic took {:.1} s",
        run.payload_bytes.0, run.payload_bytes.2, run.payload_bytes.1, run.preload_s
    )?;
    writeln!(out)?;
    writeln!(out, "## How to read this\n")?;
    writeln!(
        out,
        "- **Ratio** = median projector drain rate / median ceiling rate. The projector's rate runs from its process \
         start (connecting to Cassandra, preparing statements, joining the group) to the moment its \
         `ordexa_projector_events_total` counted every event; the ceiling's set-up is not counted. The ceiling writes \
         exactly what `ReadModel::apply` writes, with the projector's concurrency as a sliding window, from events \
         decoded beforehand: what the projector would do if Kafka, JSON decoding and schema validation, and its \
         batch-by-batch lockstep cost nothing.\n\
         - **Commit → visible** is measured per sampled order by polling Cassandra directly (`orders_by_id`, the \
         table `GET /api/v1/orders/{{id}}` reads). *After the response*: from the moment the 201 arrived at the \
         client (the commit happened before it, so this slightly understates); *after created_at*: from the \
         timestamp the API took before its transaction (so this includes the create's own latency and overstates). \
         The poll interval adds up to one interval plus one query to every figure. The projector's own \
         `ordexa_projector_delay_seconds` (now − occurred_at at the write, a rolling window of the exporter) is shown \
         for reference.\n\
         - **Catch-up** is from the end of a load's schedule until the projector had counted every order committed \
         in PostgreSQL (`SELECT count(*) FROM orders`), and until its group's committed offsets matched the topic's \
         high watermarks (lag 0).\n\
         - A measurement with more than 0.5 cores of other work was repeated once, marked \"(repeated)\". Other \
         engineers build on this machine; `loadavg` before each phase is recorded."
    )?;
    if run.live.as_ref().is_some_and(|l| l.ladder.is_some()) {
        writeln!(
            out,
            "- **The live loads' base** is measured in the same run, with api, relay and projector running against \
             the same servers as the loads that follow: the highest step of a short ladder of open-loop creates that \
             held. bench-api gives the API the machine to itself (with PostgreSQL only); here relay, Kafka, \
             projector and Cassandra take their share of the same cores, so the two rates answer different \
             questions, and both are stated. A step holds when its creates pass bench-api's sustain rule *and* the \
             projector kept up (it had counted every committed order shortly after the step, and every sampled order \
             became visible), so a rate the API takes but the read side falls behind on does not count."
        )?;
    }
    writeln!(out)?;
    Ok(out)
}

/// What the live loads are fractions of, and the API-alone rate next to it.
fn base_line(live: &Live) -> String {
    let alone = match live.api_alone_rate {
        Some(rate) => format!("API alone (bench-api, {}): {rate:.0}/s", live.api_alone_source),
        None => "API alone (bench-api): not given".to_owned(),
    };
    let Some(ladder) = &live.ladder else {
        let source = if live.api_alone_source.is_empty() { "given" } else { live.api_alone_source.as_str() };
        return format!(
            "The live loads are fractions of the API's highest sustained create rate, **{:.0}/s** ({source}), not \
             measured in this run.",
            live.api_rate
        );
    };
    match ladder.sustained_rate() {
        Some(rate) => {
            let share = live.api_alone_rate.map(|a| format!(": the pipeline sustains {:.0} % of it", 100.0 * rate / a));
            let bound = if ladder.ended == Ended::NoStepFailed { "; a lower bound, no step failed" } else { "" };
            format!(
                "The live loads are fractions of the **highest sustained create rate with the pipeline, measured in \
                 this run: {rate:.0}/s** (a ladder of {} steps, under Live{bound}). For reference, {alone}{}.",
                ladder.steps.len(),
                share.unwrap_or_default()
            )
        }
        None => format!(
            "**No live loads were run**: the pipeline sustained none of the {} rates its ladder tried (under Live). \
             For reference, {alone}.",
            ladder.steps.len()
        ),
    }
}

fn load_section(out: &mut String, run: &E2eRun) -> Result<()> {
    writeln!(out, "## Load on the machine\n")?;
    writeln!(
        out,
        "`/proc/loadavg` (1, 5, 15 min) at the start of the run: **{}**; at the end: **{}**.",
        run.loadavg_start, run.loadavg_end
    )?;
    let mut disturbed = Vec::new();
    for (i, (d, c)) in run.drains.iter().zip(&run.ceilings).enumerate() {
        for (what, t) in [("projector drain", &d.throughput), ("ceiling", c)] {
            if let Some(o) = t.cpu.as_ref().map(CpuUsage::other_cores).filter(|o| *o > crate::ladder::DISTURBED_CORES) {
                disturbed.push(format!("round {} {what} ({o:.2} cores)", i + 1));
            }
        }
    }
    if let Some(live) = &run.live {
        let ladder = live.ladder.iter().flat_map(|l| l.steps.iter()).map(|s| ("ladder ", &s.level));
        for (what, l) in ladder.chain(live.levels.iter().chain(live.burst.iter()).map(|l| ("", l))) {
            if l.disturbed() {
                let o = l.cpu.as_ref().map(CpuUsage::other_cores).unwrap_or_default();
                disturbed.push(format!("{what}{:.0}/s ({o:.2} cores)", l.target_rate));
            }
        }
    }
    if !run.repeated_rounds.is_empty() {
        writeln!(out, " Drain rounds repeated because other work disturbed them: {:?}.", run.repeated_rounds)?;
    }
    if disturbed.is_empty() {
        writeln!(out, " No measured window had more than 0.5 cores of other work.\n")?;
    } else {
        writeln!(
            out,
            " **Still disturbed (more than 0.5 cores of other work) in the figures reported: {}.** Those understate \
             what the code can do.\n",
            disturbed.join(", ")
        )?;
    }
    Ok(())
}

fn drain_row(out: &mut String, label: &str, t: &Throughput, who: &str, extra: &str) -> Result<()> {
    let other = opt(t.cpu.as_ref().map(CpuUsage::other_cores), 2);
    let busy = t.cpu.as_ref().map(|c| format!("{:.0} %", c.machine_busy_pct)).unwrap_or_else(|| "–".into());
    writeln!(
        out,
        "| {label} | {:.0} | {:.2} | {} | {busy} | {} | {} | {} | {} | {other} | {:.0} % | {extra} |",
        t.rate,
        t.seconds,
        opt(t.events_per_cpu_s(who), 0),
        cores(&t.cpu, who),
        cores(&t.cpu, "cassandra"),
        cores(&t.cpu, "kafka"),
        if who == "bench" { "–".to_owned() } else { cores(&t.cpu, "bench") },
        t.busy_before_pct
    )?;
    Ok(())
}

fn drain_section(out: &mut String, run: &E2eRun) -> Result<()> {
    writeln!(out, "## Drain rounds\n")?;
    writeln!(
        out,
        "| round | events/s | seconds | events per CPU-second (projector / bench) | CPU busy | cores: projector or \
         ceiling | cassandra | kafka | bench | other | busy before | notes |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")?;
    for (i, (d, c)) in run.drains.iter().zip(&run.ceilings).enumerate() {
        let round = u32::try_from(i + 1).unwrap_or(0);
        let repeated = if run.repeated_rounds.contains(&round) { " (repeated)" } else { "" };
        let notes = format!(
            "first event after {} s; group lag 0 {:.2} s after the last; peak VmRSS {} MiB; {} rows; exit: {}",
            opt(d.first_event_s, 2),
            d.lag_zero_after_s,
            mib(d.rss_peak_kib),
            d.orders_rows,
            d.exit
        );
        drain_row(out, &format!("{round}{repeated}: projector"), &d.throughput, "projector", &notes)?;
        drain_row(
            out,
            &format!("{round}{repeated}: ceiling"),
            c,
            "bench",
            &format!("ratio {:.2}; set-up {} s (not counted)", d.throughput.rate / c.rate, opt(c.setup_s, 2)),
        )?;
    }
    writeln!(out)?;
    if let Some(d) = median_drain(&run.drains) {
        let cpu_us = d.throughput.cpu_s.get("projector").map(|s| s * 1e6 / d.throughput.events as f64);
        writeln!(
            out,
            "Projector CPU per event (median round): {} µs. Events projected in each second of that drain: {}.\n",
            opt(cpu_us, 1),
            d.per_second.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )?;
        writeln!(out, "Its own metrics at the end:\n\n```")?;
        for line in &d.metrics {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "```\n")?;
    }
    Ok(())
}

fn median_drain(drains: &[ProjectorDrain]) -> Option<&ProjectorDrain> {
    let mut sorted: Vec<&ProjectorDrain> = drains.iter().collect();
    sorted.sort_by(|a, b| a.throughput.rate.total_cmp(&b.throughput.rate));
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

fn ladder_section(out: &mut String, ladder: &PipelineLadder) -> Result<()> {
    writeln!(out, "### Highest sustained rate with the pipeline\n")?;
    match ladder.sustained_rate() {
        Some(rate) => writeln!(
            out,
            "Highest sustained rate with the pipeline, measured in this run: **{rate:.0}/s** ({} steps in {:.0} s; {}).\n",
            ladder.steps.len(),
            ladder.took_s,
            ladder.ended.describe()
        )?,
        None => writeln!(
            out,
            "**No step held** ({} steps in {:.0} s; {}), so the loads and the burst were not run.\n",
            ladder.steps.len(),
            ladder.took_s,
            ladder.ended.describe()
        )?,
    }
    writeln!(
        out,
        "From {:.0}/s ({}), × {} up while every step held (÷ down while none had), then up to {} steps halving the \
         gap, at most {} steps; {} s measured after {} s of warm-up each, open loop against the same api, relay and \
         projector as the loads below. A step holds when {}.\n",
        ladder.plan.start,
        ladder.start_from,
        ladder.plan.factor,
        ladder.plan.refine,
        ladder.plan.max_steps,
        ladder.seconds,
        ladder.warmup_s,
        pipeline::describe_rule(&ladder.rule, ladder.max_caught_up_s)
    )?;
    writeln!(
        out,
        "| step | asked /s | achieved /s | errors | create p50 / p99 ms | visible after the 201 p50 / p99 ms | caught up \
         s | CPU busy | held? |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---|---|---:|---:|---|")?;
    let sustained = ladder.sustained_rate();
    for (i, step) in ladder.steps.iter().enumerate() {
        let l = &step.level;
        let held = if !step.held {
            format!("no: {}", ladder.why_not(step).join("; "))
        } else if sustained == Some(l.target_rate) {
            "**yes** (the highest that held)".to_owned()
        } else {
            "yes".to_owned()
        };
        writeln!(
            out,
            "| {}{} | {:.0} | {:.1} | {} | {} | {} | {:.2} | {} | {held} |",
            i + 1,
            if l.repeated { " (repeated)" } else { "" },
            l.target_rate,
            l.achieved_rate,
            l.errors,
            p50_p99(&l.api_latency),
            p50_p99(&l.visible_after_response),
            l.caught_up_s,
            l.cpu.as_ref().map(|c| format!("{:.0} %", c.machine_busy_pct)).unwrap_or_else(|| "–".into()),
        )?;
    }
    writeln!(out)?;
    Ok(())
}

fn p50_p99(l: &Option<Latency>) -> String {
    l.as_ref().map(|l| format!("{:.1} / {:.1}", l.p50_ms, l.p99_ms)).unwrap_or_else(|| "–".to_owned())
}

/// One row per load and the burst.
fn loads_table(out: &mut String, live: &Live) -> Result<()> {
    writeln!(
        out,
        "| load | asked /s | achieved /s | errors | create latency | visible after the 201 | visible after created_at | \
         sampled (not visible) | projector delay summary | caught up s | lag 0 s | CPU busy | api | relay | projector | \
         postgres | kafka | cassandra | bench | other | loadavg before |"
    )?;
    writeln!(
        out,
        "|---|---:|---:|---:|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )?;
    for l in live.levels.iter().chain(live.burst.iter()) {
        let label = if l.burst {
            format!("burst {:.0}× for {:.0} s", l.fraction, l.seconds)
        } else {
            format!("{:.0} %{}", l.fraction * 100.0, if l.repeated { " (repeated)" } else { "" })
        };
        let errors = if l.error_kinds.is_empty() {
            l.errors.to_string()
        } else {
            format!(
                "{} ({})",
                l.errors,
                l.error_kinds.iter().map(|(k, v)| format!("{v} × {k}")).collect::<Vec<_>>().join(", ")
            )
        };
        writeln!(
            out,
            "| {label} | {:.0} | {:.1} | {errors} | {} | {} | {} | {} ({}) | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} \
             | {} | {} | {} | {} |",
            l.target_rate,
            l.achieved_rate,
            lat(&l.api_latency),
            lat(&l.visible_after_response),
            lat(&l.visible_after_created),
            l.sampled,
            l.not_visible,
            lat(&l.projector_delay),
            l.caught_up_s,
            l.lag_zero_s,
            l.cpu.as_ref().map(|c| format!("{:.0} %", c.machine_busy_pct)).unwrap_or_else(|| "–".into()),
            cores(&l.cpu, "api"),
            cores(&l.cpu, "relay"),
            cores(&l.cpu, "projector"),
            cores(&l.cpu, "postgres"),
            cores(&l.cpu, "kafka"),
            cores(&l.cpu, "cassandra"),
            cores(&l.cpu, "bench"),
            opt(l.cpu.as_ref().map(CpuUsage::other_cores), 2),
            l.loadavg_before
        )?;
    }
    Ok(())
}

fn live_section(out: &mut String, live: &Live) -> Result<()> {
    writeln!(out, "## Live: api + relay + projector under open-loop creates\n")?;
    writeln!(out, "{} Latencies in ms as p50 / p90 / p99 / max.\n", base_line(live))?;
    if let Some(ladder) = &live.ladder {
        ladder_section(out, ladder)?;
        writeln!(out, "### Loads\n")?;
    }
    if live.levels.is_empty() && live.burst.is_none() {
        writeln!(out, "No loads were run.\n")?;
    } else {
        loads_table(out, live)?;
        writeln!(out)?;
    }
    writeln!(out, "### Resident memory\n")?;
    writeln!(out, "| workload | idle VmRSS MiB | peak VmRSS sampled per load (MiB) | VmHWM at the end MiB |")?;
    writeln!(out, "|---|---:|---|---:|")?;
    for name in ["api", "relay", "projector"] {
        let peaks = live
            .levels
            .iter()
            .chain(live.burst.iter())
            .map(|l| {
                format!("{:.0}/s: {}", l.target_rate, l.rss_peak_kib.get(name).map(|k| mib(*k)).unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("; ");
        writeln!(
            out,
            "| {name} | {} | {peaks} | **{}** |",
            live.memory_idle.get(name).map(|m| mib(m.vm_rss_kib)).unwrap_or_else(|| "–".into()),
            live.memory.get(name).map(|m| mib(m.vm_hwm_kib)).unwrap_or_else(|| "–".into())
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{} orders committed in PostgreSQL over the live phase, {} rows in the read model's orders_by_id at the end. \
         Exits (SIGTERM): {}.\n",
        live.orders_committed,
        live.orders_projected,
        live.exits.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    )?;
    Ok(())
}

pub fn run(args: E2eReportArgs) -> Result<()> {
    let run = E2eRun::load(&args.json)?;
    let svg_path = args.facts.out.with_extension("svg");
    let svg_name = svg_path.file_name().and_then(|n| n.to_str()).context("the chart's file name")?.to_owned();
    let title = format!(
        "Ordexa end to end · {} · commit {}",
        args.facts.date(),
        args.facts.short_commit().chars().take(7).collect::<String>()
    );
    let svg = super::svg::chart(&run, &title);
    if let Some(dir) = svg_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&svg_path, svg).with_context(|| format!("writing {}", svg_path.display()))?;
    let text = render(&run, &args, &svg_name)?;
    args.facts.write(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::pipeline::Plan;
    use crate::ladder::SustainRule;
    use crate::report::RunFacts;

    fn args() -> E2eReportArgs {
        E2eReportArgs {
            json: PathBuf::from("e2e.json"),
            goal_ratio: 0.8,
            goal_burst_s: 60.0,
            facts: RunFacts {
                out: PathBuf::from("e2e.md"),
                commit: "0123456789abcdef".to_owned(),
                dirty: false,
                pg_version: "PostgreSQL 15".to_owned(),
                date: Some("2026-11-27 10:00 UTC".to_owned()),
                settings: Vec::new(),
            },
        }
    }

    fn level(fraction: f64, rate: f64, achieved: f64, p99: f64, caught_up_s: f64) -> Level {
        let lat = Latency { count: 100, p50_ms: 10.0, p90_ms: 20.0, p99_ms: p99, max_ms: p99, mean_ms: 12.0 };
        Level {
            fraction,
            target_rate: rate,
            achieved_rate: achieved,
            seconds: 15.0,
            scheduled: (rate * 15.0) as u64,
            api_latency: Some(lat.clone()),
            visible_after_response: Some(lat),
            caught_up_s,
            ..Level::default()
        }
    }

    fn ladder(levels: Vec<Level>) -> PipelineLadder {
        let rule = SustainRule::new(200.0);
        PipelineLadder {
            rule,
            max_caught_up_s: 2.0,
            plan: Plan { start: 260.0, factor: 1.25, refine: 2, max_steps: 8 },
            start_from: "20 % of the API-alone rate, 1300/s".to_owned(),
            warmup_s: 3.0,
            seconds: 15.0,
            budget_s: 200.0,
            steps: levels.into_iter().map(|l| pipeline::judge(&rule, 2.0, l)).collect(),
            ended: Ended::Bracketed,
            took_s: 95.0,
        }
    }

    #[test]
    fn a_measured_base_is_stated_with_its_ladder_and_the_api_alone_next_to_it() -> Result<()> {
        let steps = vec![
            level(0.0, 260.0, 260.0, 90.0, 0.2),
            level(0.0, 325.0, 325.0, 150.0, 0.3),
            level(0.0, 405.0, 370.0, 900.0, 3.5),
            level(0.0, 365.0, 364.0, 180.0, 0.5),
        ];
        let live = Live {
            api_rate: 365.0,
            api_alone_rate: Some(1300.0),
            api_alone_source: "bench/results/api-2026-11-26-d48a5cb.md".to_owned(),
            ladder: Some(ladder(steps)),
            levels: vec![level(0.5, 182.5, 182.5, 40.0, 0.1)],
            ..Live::default()
        };
        let text = render(&E2eRun { live: Some(live), ..E2eRun::default() }, &args(), "e2e.svg")?;
        assert!(
            text.contains("highest sustained create rate with the pipeline, measured in this run: 365/s**"),
            "{text}"
        );
        assert!(text.contains("API alone (bench-api, bench/results/api-2026-11-26-d48a5cb.md): 1300/s"), "{text}");
        assert!(text.contains("| 4 | 365 | 364.0 | 0 | 10.0 / 180.0 | 10.0 / 180.0 | 0.50 | – | **yes** (the highest"));
        assert!(text.contains("| 3 | 405 | 370.0 | 0 | 10.0 / 900.0 | 10.0 / 900.0 | 3.50 | – | no: achieved 91 %"));
        assert!(text.contains("commit → visible p99 < 100 ms at 50 % (182/s)"), "{text}");
        Ok(())
    }

    #[test]
    fn a_given_base_and_a_ladder_that_never_held_are_said_so() -> Result<()> {
        let given = Live { api_rate: 1300.0, api_alone_rate: Some(1300.0), ..Live::default() };
        let text = render(&E2eRun { live: Some(given), ..E2eRun::default() }, &args(), "e2e.svg")?;
        assert!(text.contains("highest sustained create rate, **1300/s** (given), not measured in this run"), "{text}");
        assert!(!text.contains("### Highest sustained rate with the pipeline"));

        let failed = Live {
            api_alone_rate: Some(1300.0),
            api_alone_source: "x.md".to_owned(),
            ladder: Some(ladder(vec![level(0.0, 260.0, 200.0, 900.0, 0.2)])),
            ..Live::default()
        };
        let text = render(&E2eRun { live: Some(failed), ..E2eRun::default() }, &args(), "e2e.svg")?;
        assert!(text.contains("**No live loads were run**"), "{text}");
        assert!(text.contains("No loads were run."), "{text}");
        Ok(())
    }
}

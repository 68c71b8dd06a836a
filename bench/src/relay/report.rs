//! `relay-report`: a relay run (JSON) as Markdown.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::outbox::WriterResult;
use super::{LoadSecond, RelayRun, Throughput};
use crate::procfs::CpuUsage;
use crate::report::{RunFacts, mib, ms};

#[derive(Debug, Args)]
pub struct RelayReportArgs {
    /// The `relay` run's results (JSON).
    #[arg(long)]
    json: PathBuf,
    /// Goal: relay rate / the lower ceiling.
    #[arg(long, default_value_t = 0.8)]
    goal_ratio: f64,
    /// Goal: p99 of CreateTime − commit under the steady load, ms.
    #[arg(long, default_value_t = 50.0)]
    goal_p99_ms: f64,
    /// Goal: the steady load of the latency goal, as a fraction of the drain rate.
    #[arg(long, default_value_t = 0.5)]
    goal_load_fraction: f64,
    /// Goal: the relay's peak resident memory, MB (10^6 bytes).
    #[arg(long, default_value_t = 50.0)]
    goal_rss_mb: f64,
    #[command(flatten)]
    facts: RunFacts,
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn num(v: f64) -> String {
    // Thousands separated by a thin space are hard to copy; plain digits, rounded.
    format!("{v:.0}")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "–".to_owned())
}

fn group(t: &Throughput, name: &str) -> Option<f64> {
    t.cpu.as_ref().and_then(|c| c.cores_used.get(name).copied())
}

fn cpu_row(out: &mut String, label: &str, t: &Throughput) -> Result<()> {
    let cores = |n: &str| opt(group(t, n), 2);
    let secs = |n: &str| opt(t.cpu_s.get(n).copied(), 2);
    let busy = t.cpu.as_ref().map(|c| format!("{:.0} %", c.machine_busy_pct)).unwrap_or_else(|| "–".into());
    let other = opt(t.cpu.as_ref().map(CpuUsage::other_cores), 2);
    writeln!(
        out,
        "| {label} | {:.2} | {} | {busy} | {} ({}) | {} ({}) | {} ({}) | {} ({}) | {other} | {:.0} % |",
        t.seconds,
        num(t.rate),
        cores("relay"),
        secs("relay"),
        cores("postgres"),
        secs("postgres"),
        cores("kafka"),
        secs("kafka"),
        cores("bench"),
        secs("bench"),
        t.busy_before_pct,
    )?;
    Ok(())
}

/// The highest rate a window's CPU cost per event allows on the machine's cores.
struct CpuBound {
    relay_us: f64,
    postgres_us: f64,
    kafka_us: f64,
    us_per_event: f64,
    cores: usize,
    rate: f64,
}

/// The drain's CPU per event (relay, PostgreSQL and Kafka together) and the rate at which that
/// cost fills every core; `None` without CPU figures.
fn cpu_bound(t: &Throughput) -> Option<CpuBound> {
    let cores = t.cpu.as_ref()?.cores;
    if t.events == 0 || cores == 0 {
        return None;
    }
    let per_event = |group: &str| 1e6 * t.cpu_s.get(group).copied().unwrap_or(0.0) / t.events as f64;
    let (relay_us, postgres_us, kafka_us) = (per_event("relay"), per_event("postgres"), per_event("kafka"));
    let us_per_event = relay_us + postgres_us + kafka_us;
    (us_per_event > 0.0).then(|| CpuBound {
        relay_us,
        postgres_us,
        kafka_us,
        us_per_event,
        cores,
        rate: 1e6 * cores as f64 / us_per_event,
    })
}

/// The steady load's CPU per committed event, every process together (writing, storing, relaying,
/// reading back), its parts, and the events per second that cost fills every core at.
fn steady_cost(t: &Throughput) -> Option<(f64, String, f64)> {
    let cores = t.cpu.as_ref()?.cores;
    if t.events == 0 || cores == 0 {
        return None;
    }
    let per_event = |group: &str| 1e6 * t.cpu_s.get(group).copied().unwrap_or(0.0) / t.events as f64;
    let groups =
        [("postgres", "PostgreSQL"), ("relay", "relay"), ("kafka", "Kafka"), ("bench", "the bench tool's writer")];
    let us: f64 = groups.iter().map(|(g, _)| per_event(g)).sum();
    let parts = groups.iter().map(|(g, name)| format!("{name} {:.1}", per_event(g))).collect::<Vec<_>>().join(", ");
    (us > 0.0).then(|| (us, parts, 1e6 * cores as f64 / us))
}

/// Both goals in one run: the steady load a relay draining at exactly the goal's share of the
/// lower ceiling is tested at, and the cores it needs at this run's steady cost per event, in all
/// and without the relay process's own share.
struct BothGoals {
    load: f64,
    cores: f64,
    cores_without_relay: f64,
}

fn both_goals(steady: &Throughput, lower_rate: f64, goal_ratio: f64, load_fraction: f64) -> Option<BothGoals> {
    let (us, _, _) = steady_cost(steady)?;
    let relay_us = steady.events_per_cpu_s("relay").map_or(0.0, |rate| 1e6 / rate);
    let load = goal_ratio * lower_rate * load_fraction;
    (load > 0.0).then(|| BothGoals { load, cores: load * us / 1e6, cores_without_relay: load * (us - relay_us) / 1e6 })
}

/// The share of the events per second asked the steady writer must reach for the latency goal
/// to be judged.
const LOAD_REACHED: f64 = 0.95;

/// Why the steady load cannot show the latency goal: the writer committed less than 95 % of the
/// events per second asked, or some of its transactions failed or were not attempted. `None`
/// when the load was reached.
fn load_shortfall(writer: &WriterResult) -> Option<String> {
    // Written so that a rate that is not a number is not reached either.
    let reached = writer.achieved_rate >= LOAD_REACHED * writer.target_rate;
    if !reached {
        Some(format!(
            "the writer reached only {:.0} of the {:.0} events/s asked",
            writer.achieved_rate, writer.target_rate
        ))
    } else if writer.errors > 0 {
        Some(format!(
            "{} of the writer's {} transactions failed or were not attempted",
            writer.errors, writer.scheduled
        ))
    } else {
        None
    }
}

/// "1 event each", "26 events each".
fn events_each(n: u64) -> String {
    if n == 1 { "1 event each".to_owned() } else { format!("{n} events each") }
}

/// The element whose `rate` is the median (the lower middle of an even count).
fn median_of<T>(items: &[T], rate: impl Fn(&T) -> f64) -> Option<&T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

/// `min–max` of the rates, or the one rate.
fn range<T>(items: &[T], rate: impl Fn(&T) -> f64) -> String {
    let rates: Vec<f64> = items.iter().map(rate).collect();
    let (min, max) = rates.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    if rates.len() < 2 { String::new() } else { format!(" ({}–{})", num(min), num(max)) }
}

pub fn render(run: &RelayRun, args: &RelayReportArgs, date: &str) -> Result<String> {
    let facts = &args.facts;
    let drain_run = median_of(&run.drains, |d| d.throughput.rate).context("the run has no drain")?;
    let drain = &drain_run.throughput;
    let producer = median_of(&run.producer_ceilings, |t| t.rate).context("the run has no producer ceiling")?;
    let sql = median_of(&run.sql_ceilings, |t| t.rate).context("the run has no SQL ceiling")?;
    let (lower_name, lower) = if producer.rate <= sql.rate { ("producer", producer) } else { ("SQL", sql) };
    let ratio = if lower.rate > 0.0 { drain.rate / lower.rate } else { 0.0 };
    let rounds = run.drains.len();
    let steady = &run.steady;
    let hwm_kib = run
        .drains
        .iter()
        .filter_map(|d| d.relay_memory)
        .chain(steady.relay_memory)
        .map(|m| m.vm_hwm_kib)
        .max()
        .unwrap_or(0);
    let drain_rss_peak_kib = run.drains.iter().map(|d| d.relay_rss_peak_kib).max().unwrap_or(0);
    let rss_peak_kib = drain_rss_peak_kib.max(steady.relay_rss_peak_kib);
    let hwm_mb = hwm_kib as f64 * 1024.0 / 1e6;
    let p99 = steady.latency.as_ref().map(|l| l.p99_ms);
    let writer = &steady.writer;
    let shortfall = load_shortfall(writer);

    let mut out = String::new();
    writeln!(out, "# Relay benchmark: the outbox to Kafka\n")?;
    writeln!(out, "{date} · commit `{}`{} · `make bench-relay`\n", facts.short_commit(), facts.dirty_note())?;

    writeln!(out, "## Result\n")?;
    writeln!(
        out,
        "Each line is the median of {rounds} rounds (the range over the rounds in brackets); a round is one drain, \
         then one of each ceiling, so all three meet the same machine state.\n"
    )?;
    writeln!(out, "| | events/s | seconds | events per CPU-second |")?;
    writeln!(out, "|---|---:|---:|---|")?;
    writeln!(
        out,
        "| **relay**: one `ordexa relay` (release) draining {} outbox rows, from its process start (first batch \
         published after {} s) to the last row published | **{}**{} | {:.2} | {} of the relay process |",
        drain.events,
        opt(drain_run.first_batch_s, 2),
        num(drain.rate),
        range(&run.drains, |d| d.throughput.rate),
        drain.seconds,
        opt(drain.events_per_cpu_s("relay"), 0)
    )?;
    writeln!(
        out,
        "| ceiling 1 — producer: `ordexa_relay::producer` sending the same messages from memory, batches of the same \
         size with as many in flight as the relay's (its set-up, {} s until a first message was delivered, not counted) | {}{} | {:.2} | \
         {} of the producer's process |",
        opt(producer.setup_s, 2),
        num(producer.rate),
        range(&run.producer_ceilings, |t| t.rate),
        producer.seconds,
        opt(producer.events_per_cpu_s("bench"), 0)
    )?;
    writeln!(
        out,
        "| ceiling 2 — SQL: the relay's claim (`ordexa_relay::CLAIM_SQL`) on one session and its \
         `DELETE … WHERE id = ANY` on another, arranged as the relay arranges them but without Kafka, on a fresh \
         identical backlog (connecting, {} s, not counted) | {}{} | {:.2} | {} of PostgreSQL |",
        opt(sql.setup_s, 3),
        num(sql.rate),
        range(&run.sql_ceilings, |t| t.rate),
        sql.seconds,
        opt(sql.events_per_cpu_s("postgres"), 0)
    )?;
    writeln!(out)?;
    writeln!(out, "| goal | measured | |")?;
    writeln!(out, "|---|---|---|")?;
    writeln!(
        out,
        "| relay / min(ceilings) ≥ {} | **{ratio:.2}** (relay {} / {lower_name} ceiling {} events/s) | {} |",
        args.goal_ratio,
        num(drain.rate),
        num(lower.rate),
        met(ratio >= args.goal_ratio)
    )?;
    if let Some(after) = drain_run.rate_after_first_batch {
        let ratio = if lower.rate > 0.0 { after / lower.rate } else { 0.0 };
        writeln!(
            out,
            "| the same, the relay timed from its first published batch ({} s), as the ceilings are timed after \
             their set-up | {ratio:.2} (relay {} / {lower_name} ceiling {} events/s) | {} on this basis |",
            opt(drain_run.first_batch_s, 2),
            num(after),
            num(lower.rate),
            met(ratio >= args.goal_ratio)
        )?;
    }
    writeln!(
        out,
        "| p99 of Kafka CreateTime − commit < {} ms at {:.0} % of the drain rate ({:.0} events/s) | **{} ms** (p50 {} \
         ms, max {} ms) at {:.0} events/s in {:.0} commits/s of {}{} | {} |",
        args.goal_p99_ms,
        if drain.rate > 0.0 { 100.0 * writer.target_rate / drain.rate } else { 0.0 },
        writer.target_rate,
        ms(p99),
        ms(steady.latency.as_ref().map(|l| l.p50_ms)),
        ms(steady.latency.as_ref().map(|l| l.max_ms)),
        writer.achieved_rate,
        writer.commit_rate(),
        events_each(writer.events_per_commit()),
        shortfall.as_ref().map(|why| format!(" (**{why}**)")).unwrap_or_default(),
        if shortfall.is_some() {
            "**not shown**: the load was not reached"
        } else {
            met(p99.is_some_and(|p| p < args.goal_p99_ms) && steady.missing == 0)
        }
    )?;
    writeln!(
        out,
        "| relay resident memory < {} MB | peak **{} MiB** ({hwm_mb:.1} MB, VmHWM over the whole run) | {} |",
        args.goal_rss_mb,
        mib(hwm_kib),
        met(hwm_kib > 0 && hwm_mb < args.goal_rss_mb)
    )?;
    writeln!(out)?;

    // Where the relay's time goes, per batch: its work is the claim, the produce and the
    // delete, one after the other.
    let serial = if producer.rate > 0.0 && sql.rate > 0.0 { 1.0 / (1.0 / producer.rate + 1.0 / sql.rate) } else { 0.0 };
    let batch = run.settings.get("relay batch size (ORDEXA_RELAY_BATCH_SIZE)").map(String::as_str).unwrap_or("?");
    writeln!(out, "### Where the relay's time goes\n")?;
    writeln!(
        out,
        "| per batch of {batch}, median rounds | batches | p50 ms | p90 ms | p99 ms | max ms | mean ms | wall time / batches, ms |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for (label, t) in [
        ("relay (`ordexa_relay_batch_seconds`: claim, produce, await, delete; batches overlap)", drain),
        ("SQL ceiling (claim, read, delete; batches overlap)", sql),
        ("producer ceiling (queue the batch, await every delivery report; batches overlap)", producer),
    ] {
        let b = t.batch_ms.as_ref();
        writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} | {:.2} |",
            t.batches,
            ms(b.map(|b| b.p50_ms)),
            ms(b.map(|b| b.p90_ms)),
            ms(b.map(|b| b.p99_ms)),
            ms(b.map(|b| b.max_ms)),
            ms(b.map(|b| b.mean_ms)),
            if t.batches > 0 { 1000.0 * t.seconds / t.batches as f64 } else { 0.0 },
        )?;
    }
    writeln!(out)?;
    let p50 = |t: &Throughput| t.batch_ms.as_ref().map(|b| b.p50_ms).unwrap_or(0.0);
    writeln!(
        out,
        "A relay that does a batch's SQL half and its Kafka half one after the other, with no overlap, can go no \
         faster than 1 / (1/{} + 1/{}) = **{} events/s** ({:.2} of the lower ceiling); this relay reached {:.0} % \
         of that. Its median batch took {:.2} ms; the SQL half alone {:.2} ms, the Kafka half alone {:.2} ms, \
         together {:.2} ms.\n",
        num(sql.rate),
        num(producer.rate),
        num(serial),
        if lower.rate > 0.0 { serial / lower.rate } else { 0.0 },
        if serial > 0.0 { 100.0 * drain.rate / serial } else { 0.0 },
        p50(drain),
        p50(sql),
        p50(producer),
        p50(sql) + p50(producer),
    )?;

    writeln!(out, "## CPU\n")?;
    writeln!(
        out,
        "| window | seconds | events/s | CPU busy | relay cores (CPU s) | postgres cores (CPU s) | kafka cores (CPU s) | \
         bench tool cores (CPU s) | other cores | busy before |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    cpu_row(&mut out, "relay drain (median round)", drain)?;
    let steady_t = Throughput {
        events: writer.events_committed(),
        seconds: steady.window_s,
        rate: writer.achieved_rate,
        batches: 0,
        batch_ms: None,
        setup_s: None,
        cpu_s: steady.cpu_s.clone(),
        cpu: steady.cpu.clone(),
        busy_before_pct: steady.busy_before_pct,
    };
    cpu_row(&mut out, "steady load (writer's schedule)", &steady_t)?;
    cpu_row(&mut out, "producer ceiling (median; the producer runs in the bench tool)", producer)?;
    cpu_row(&mut out, "SQL ceiling (median)", sql)?;
    writeln!(out)?;
    writeln!(
        out,
        "Relay CPU per event: {} µs draining, {} µs under the steady load. Startup (process start to the first \
         published batch): {} s.\n",
        opt(drain.events_per_cpu_s("relay").map(|r| 1e6 / r), 1),
        opt(steady_t.events_per_cpu_s("relay").map(|r| 1e6 / r), 1),
        opt(drain_run.first_batch_s, 2),
    )?;
    if !run.kafka_warmup_us_per_message.is_empty() {
        let passes: Vec<String> = run.kafka_warmup_us_per_message.iter().map(|us| format!("{us:.1}")).collect();
        writeln!(
            out,
            "Kafka warm-up before the first round: the broker's CPU per message in each pass, {} µs.\n",
            passes.join(", ")
        )?;
    }
    if let Some(bound) = cpu_bound(drain) {
        writeln!(
            out,
            "What the machine can carry: the drain spent {:.1} µs of CPU per event (relay {:.1}, PostgreSQL {:.1}, \
             Kafka {:.1}); at that cost its {} cores, 100 % busy, carry at most **{} events/s**, {:.2} of the lower \
             ceiling (each ceiling alone had the whole machine for one half of the work).\n",
            bound.us_per_event,
            bound.relay_us,
            bound.postgres_us,
            bound.kafka_us,
            bound.cores,
            num(bound.rate),
            if lower.rate > 0.0 { bound.rate / lower.rate } else { 0.0 },
        )?;
    }

    if let Some((us, parts, carry)) = steady_cost(&steady_t) {
        writeln!(
            out,
            "What the machine can carry under the steady load: each committed event cost {us:.1} µs of CPU in all \
             ({parts}); at that cost {} cores, 100 % busy, carry at most **{} events/s**, {:.2} of the {} events/s \
             asked. Below 1, no relay could keep up on this machine.\n",
            steady_t.cpu.as_ref().map_or(0, |c| c.cores),
            num(carry),
            if writer.target_rate > 0.0 { carry / writer.target_rate } else { 0.0 },
            num(writer.target_rate),
        )?;
    }
    if let Some(both) = both_goals(&steady_t, lower.rate, args.goal_ratio, args.goal_load_fraction) {
        writeln!(
            out,
            "Both goals in one run: a relay draining at {} of the lower ceiling ({} events/s) is tested at **{} \
             events/s**. At this run's steady cost per event, that load needs **{:.2} cores** of the machine's {}; \
             PostgreSQL, Kafka and the writer alone, without the relay process, {:.2}.\n",
            args.goal_ratio,
            num(args.goal_ratio * lower.rate),
            num(both.load),
            both.cores,
            steady_t.cpu.as_ref().map_or(0, |c| c.cores),
            both.cores_without_relay,
        )?;
    }

    writeln!(out, "## Rounds\n")?;
    writeln!(
        out,
        "| round | relay events/s | producer ceiling | SQL ceiling | relay / min(ceilings) | the same from its first \
         batch | other cores (drain / producer / SQL) | relay exit |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---|---|")?;
    for (i, d) in run.drains.iter().enumerate() {
        let p = run.producer_ceilings.get(i).map(|t| t.rate).unwrap_or(0.0);
        let q = run.sql_ceilings.get(i).map(|t| t.rate).unwrap_or(0.0);
        let lower = p.min(q);
        let other = |t: Option<&Throughput>| opt(t.and_then(|t| t.cpu.as_ref()).map(CpuUsage::other_cores), 2);
        let round = u32::try_from(i + 1).unwrap_or(u32::MAX);
        writeln!(
            out,
            "| {round}{} | {} | {} | {} | {} | {} | {} / {} / {} | {} |",
            if run.repeated_rounds.contains(&round) { " (repeated)" } else { "" },
            num(d.throughput.rate),
            num(p),
            num(q),
            if lower > 0.0 { format!("{:.2}", d.throughput.rate / lower) } else { "–".into() },
            opt(d.rate_after_first_batch.filter(|_| lower > 0.0).map(|r| r / lower), 2),
            other(Some(&d.throughput)),
            other(run.producer_ceilings.get(i)),
            other(run.sql_ceilings.get(i)),
            d.relay_exit
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "A round in which any measurement saw more than {} cores of other work is run once more (\"repeated\"); \
         other cores still above that in the table mean the machine was not quiet: rerun.\n",
        crate::ladder::DISTURBED_CORES
    )?;

    writeln!(out, "## The median drain, second by second\n")?;
    let seconds: Vec<String> = drain_run.per_second.iter().map(|n| n.to_string()).collect();
    writeln!(out, "Events published in each second from the relay's start: {}.\n", seconds.join(", "))?;
    writeln!(
        out,
        "In every round the topic gained exactly one message per row and the outbox was left empty. The relay's own \
         metrics at the end of this drain:\n\n```\n{}\n```\n",
        drain_run.relay_metrics.join("\n")
    )?;

    writeln!(out, "## Steady load\n")?;
    let l = steady.latency.as_ref();
    writeln!(out, "| | |\n|---|---|")?;
    let n = writer.events_per_commit();
    writeln!(
        out,
        "| writer: asked | **{:.0} events/s** ({:.0} % of the drain rate) in transactions of {}: {:.0} commits/s |",
        writer.target_rate,
        if drain.rate > 0.0 { 100.0 * writer.target_rate / drain.rate } else { 0.0 },
        if n == 1 { "1 event".to_owned() } else { format!("{n} events, each of a different order") },
        writer.target_commit_rate(),
    )?;
    if !steady.events_per_commit_basis.is_empty() {
        writeln!(out, "| writer: events per transaction | {n} ({}) |", steady.events_per_commit_basis)?;
    }
    writeln!(
        out,
        "| writer: reached | **{:.0} events/s** ({:.0} % of what was asked) in {:.0} commits/s over the {:.1} s \
         schedule: {} of {} transactions committed, {} events (last commit at {:.1} s); {} errors{} |",
        writer.achieved_rate,
        if writer.target_rate > 0.0 { 100.0 * writer.achieved_rate / writer.target_rate } else { 0.0 },
        writer.commit_rate(),
        writer.duration_s,
        writer.committed,
        writer.scheduled,
        writer.events_committed(),
        writer.elapsed_s,
        writer.errors,
        if writer.error_kinds.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                writer.error_kinds.iter().map(|(k, n)| format!("{n} × {k}")).collect::<Vec<_>>().join("; ")
            )
        }
    )?;
    writeln!(
        out,
        "| writer: scheduled start → COMMIT returned, per transaction | p50 {} ms, p99 {} ms, max {} ms ({} \
         connections) |",
        ms(writer.commit_latency.as_ref().map(|l| l.p50_ms)),
        ms(writer.commit_latency.as_ref().map(|l| l.p99_ms)),
        ms(writer.commit_latency.as_ref().map(|l| l.max_ms)),
        writer.connections
    )?;
    writeln!(
        out,
        "| **Kafka CreateTime − commit**, each event from its own transaction's commit | p50 {} ms, p90 {} ms, **p99 \
         {} ms**, max {} ms, mean {} ms over {} events |",
        ms(l.map(|l| l.p50_ms)),
        ms(l.map(|l| l.p90_ms)),
        ms(l.map(|l| l.p99_ms)),
        ms(l.map(|l| l.max_ms)),
        ms(l.map(|l| l.mean_ms)),
        steady.matched
    )?;
    writeln!(
        out,
        "| CreateTime before the recorded commit time | {} events (smallest difference {} ms), counted as 0 |",
        steady.negative,
        ms(steady.latency_min_ms)
    )?;
    writeln!(
        out,
        "| read back | {} matched, {} missing, {} duplicates, {} not the writer's; the relay had published everything \
         {:.2} s after the schedule ended |",
        steady.matched, steady.missing, steady.duplicates, steady.foreign, steady.catch_up_s
    )?;
    writeln!(
        out,
        "| relay memory | peak VmRSS sampled {} MiB (drains {} MiB, steady {} MiB); VmHWM {} MiB (every relay \
         process of the run); this relay's VmRSS before stopping {} MiB; exit: {} |",
        mib(rss_peak_kib),
        mib(drain_rss_peak_kib),
        mib(steady.relay_rss_peak_kib),
        mib(hwm_kib),
        steady.relay_memory.map(|m| mib(m.vm_rss_kib)).unwrap_or_else(|| "–".into()),
        steady.relay_exit
    )?;
    if steady.relay_batches > 0 {
        writeln!(
            out,
            "| relay batches | {} during the load, {:.1} events each on average |",
            steady.relay_batches,
            steady.matched as f64 / steady.relay_batches as f64
        )?;
    }
    writeln!(out)?;
    if steady.wait_samples > 0 {
        writeln!(
            out,
            "What the database's active sessions were doing during the load ({} samples, 50 ms apart; average \
             sessions in each state):\n",
            steady.wait_samples
        )?;
        wait_table(&mut out, steady.wait_samples, &steady.wait_events)?;
    }
    if !steady.timeline.is_empty() {
        timeline_table(&mut out, &steady.timeline, args.goal_p99_ms)?;
    }

    if !run.writer_ceilings.is_empty() {
        writeln!(out, "## The write side's commit ceiling\n")?;
        writeln!(
            out,
            "The writer's transactions with one event each, closed loop (every connection commits back to back), \
             with the relay stopped. The outbox's `AFTER INSERT … FOR EACH STATEMENT` trigger NOTIFYs the relay \
             only while it waits for rows (it then holds an advisory lock; migration 0005): first with a session \
             holding that lock, as a waiting relay does, so that every commit notifies; then with the trigger as \
             while the relay publishes, when no commit notifies; then with the trigger disabled.\n"
        )?;
        writeln!(
            out,
            "| trigger | connections | commits/s | commit p50 ms | commit p99 ms | CPU busy | postgres cores | main waits (average sessions) |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|")?;
        for c in &run.writer_ceilings {
            let mut waits: Vec<(&String, &u64)> = c.wait_events.iter().collect();
            waits.sort_by(|a, b| b.1.cmp(a.1));
            let top: Vec<String> = waits
                .iter()
                .take(3)
                .map(|(k, n)| format!("{k} {:.1}", **n as f64 / c.wait_samples.max(1) as f64))
                .collect();
            writeln!(
                out,
                "| {} | {} | **{}** | {} | {} | {} | {} | {} |",
                super::writer_case(c.notify, c.relay_waiting),
                c.connections,
                num(c.rate),
                ms(c.commit_latency.as_ref().map(|l| l.p50_ms)),
                ms(c.commit_latency.as_ref().map(|l| l.p99_ms)),
                c.cpu.as_ref().map(|u| format!("{:.0} %", u.machine_busy_pct)).unwrap_or_else(|| "–".into()),
                opt(c.cpu.as_ref().and_then(|u| u.cores_used.get("postgres").copied()), 2),
                top.join("; ")
            )?;
        }
        writeln!(out)?;
        for c in run.writer_ceilings.iter().filter(|c| !c.object_locks.is_empty()) {
            writeln!(
                out,
                "Object locks (`pg_locks`, locktype `object`) half-way through the run ({}): {}.\n",
                super::writer_case(c.notify, c.relay_waiting),
                c.object_locks.join("; ")
            )?;
        }
    }

    let sharing = format!(
        "everything on this one machine: the relay, PostgreSQL, Kafka and the bench tool (backlog loader, writer, \
         reader, and in ceiling 1 the producer itself) share its {} cores; \"CPU busy\" is the whole machine over \
         the window, the \"cores\" columns what each process used (PostgreSQL: postmaster and backends), \"other \
         cores\" the rest of the busy time (other work on the machine, Cassandra, kernel time not charged to these \
         processes).",
        crate::procfs::cores()
    );
    facts.machine_section(&mut out, date, &sharing)?;
    writeln!(out, "## Settings\n")?;
    for (key, value) in &run.settings {
        writeln!(out, "- {key}: {value}")?;
    }
    let (min, mean, max) = run.payload_bytes;
    writeln!(out, "- event payload: {min}–{max} bytes, mean {mean:.0}")?;
    writeln!(out, "- backlog COPY: {:.2} s\n", run.backlog_load_s)?;

    writeln!(out, "## Reading it\n")?;
    writeln!(
        out,
        "- **Drain rate** runs from the `ordexa relay` process's start (exec, connections, leadership, producer set-up \
         included) to the moment its `ordexa_relay_published_total` reached the backlog (read every few ms, so the end \
         is late by at most one read). The relay commits each batch's delete after Kafka acknowledged the batch, so \
         that counter counts rows both published and removed.\n\
         - **Ceilings** are the relay's two halves, each alone and as fast as the relay's own way of doing it allows: \
         ceiling 1 queues a batch, awaits every delivery report, then the next batch (no database); ceiling 2 claims, \
         reads and deletes batch after batch in transactions on one session (no Kafka). Both start from the same \
         state as the drain (a topic with the same partitions made at the start of the run; the same rows COPYed \
         into an emptied outbox, VACUUM ANALYZE, CHECKPOINT). Their set-up is not counted — a new idempotent \
         producer can wait up to 500 ms (a librdkafka retry timer) for its producer id, which would be noise in a \
         2 s window — while the relay's rate includes its whole start-up, so the ratio is, if anything, unfair to \
         the relay by its start-up time.\n\
         - **Latency** is each event's Kafka message timestamp (CreateTime: set by the relay's producer when the \
         relay hands the message over, in whole milliseconds) minus the writer's wall-clock time right after its \
         COMMIT returned. Same machine, same clock, so no clock skew; but the row is visible to the relay a little \
         before the writer sees COMMIT return, and CreateTime is truncated to the millisecond, so a few differences \
         come out slightly below 0 (counted as 0). CreateTime is before Kafka's acknowledgement, so the time to \
         durable in Kafka is this plus one produce round trip (about the per-batch producer time above).\n\
         - The steady load is asked in **events** per second. The writer commits them N to a transaction, each \
         event of a different order (the store's exact outbox INSERT, with `synchronous_commit` as the server has \
         it; see the settings), rather than whole order commands, so that as much of the machine as possible is \
         left to the relay; its events are real order lives too, each order's versions far apart in the schedule. \
         Real order commands commit one event each, but a PostgreSQL that flushes its WAL at every commit makes \
         far fewer commits per second than the relay moves events on \
         this machine (the write side's commit ceiling above), so with `auto` N is the smallest number that keeps \
         the commits per second within a fraction of that ceiling; N = 1 is the store's one event per transaction. \
         The relay \
         does not see how events were grouped: it claims rows in id order whatever transaction wrote them. What \
         changes for it is that it finds N rows at a time. Every event's latency runs from its own transaction's commit time, which the N events share. \
         When the writer reaches less than 95 % of the events per second asked (or any of its transactions fails \
         or is not attempted), the latency is still every committed event's, but at the lower rate it did reach; \
         the load goal is then not shown.\n\
         - \"Lock: object\" in the wait tables is a heavyweight lock on an object; when commits notify it is \
         PostgreSQL's lock on `pg_database, objid 0`, which every transaction that sent a NOTIFY takes before its \
         commit record and holds until the commit is flushed (`PreCommit_Notify` in `src/backend/commands/async.c`), \
         so that notifications enter the queue in commit order. Such commits therefore happen one at a time, each \
         waiting for its own WAL flush; that is why writers notify only while the relay waits.\n"
    )?;
    Ok(out)
}

/// The steady load second by second, and which background work the slow seconds had in common.
fn timeline_table(out: &mut String, timeline: &[LoadSecond], goal_ms: f64) -> Result<()> {
    writeln!(
        out,
        "Second by second, by each event's commit time (background work: share of the samples, 50 ms apart, that \
         saw an autovacuum worker on the database, or the checkpointer checkpointing; WAL waits: sessions waiting \
         on the WAL, on average):\n"
    )?;
    writeln!(out, "| second | events | p50 ms | p99 ms | max ms | autovacuum | checkpoint | WAL waits |")?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for s in timeline {
        let slow = if s.p99_ms > goal_ms { "**" } else { "" };
        writeln!(
            out,
            "| {} | {} | {:.1} | {slow}{:.1}{slow} | {:.1} | {} | {} | {:.2} |",
            s.second,
            s.events,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            share(s.autovacuum, s.samples),
            share(s.checkpoint, s.samples),
            s.wal_waits
        )?;
    }
    writeln!(out, "\n{}\n", slow_seconds(timeline, goal_ms))?;
    Ok(())
}

/// How many seconds had a p99 over the goal, and how often autovacuum and a checkpoint were
/// seen in those seconds against the others.
fn slow_seconds(timeline: &[LoadSecond], goal_ms: f64) -> String {
    let (slow, rest): (Vec<&LoadSecond>, Vec<&LoadSecond>) = timeline.iter().partition(|s| s.p99_ms > goal_ms);
    let seen = |seconds: &[&LoadSecond], what: fn(&LoadSecond) -> u64| {
        let (n, of) = seconds.iter().fold((0, 0), |(n, of), s| (n + what(s), of + s.samples));
        share(n, of)
    };
    format!(
        "Seconds with p99 over {goal_ms} ms: **{} of {}**. Autovacuum was seen in {} of their samples ({} in the \
         other seconds'); a checkpoint in {} ({}).",
        slow.len(),
        timeline.len(),
        seen(&slow, |s| s.autovacuum),
        seen(&rest, |s| s.autovacuum),
        seen(&slow, |s| s.checkpoint),
        seen(&rest, |s| s.checkpoint),
    )
}

/// `n` of `of` samples as a whole percentage, or "–" when there were none.
fn share(n: u64, of: u64) -> String {
    if of == 0 { "–".to_owned() } else { format!("{:.0} %", 100.0 * n as f64 / of as f64) }
}

fn wait_table(out: &mut String, samples: u64, events: &std::collections::BTreeMap<String, u64>) -> Result<()> {
    let mut rows: Vec<(&String, &u64)> = events.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1));
    writeln!(out, "| state | average sessions |")?;
    writeln!(out, "|---|---:|")?;
    for (what, n) in rows {
        writeln!(out, "| {what} | {:.2} |", *n as f64 / samples.max(1) as f64)?;
    }
    writeln!(out)?;
    Ok(())
}

pub fn run(args: RelayReportArgs) -> Result<()> {
    let run = RelayRun::load(&args.json)?;
    let date = args.facts.date();
    let text = render(&run, &args, &date)?;
    args.facts.write(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::Latency;
    use crate::relay::{Drain, Steady};
    use crate::report::RunFacts;

    fn args() -> RelayReportArgs {
        RelayReportArgs {
            json: PathBuf::from("relay.json"),
            goal_ratio: 0.8,
            goal_p99_ms: 50.0,
            goal_load_fraction: 0.5,
            goal_rss_mb: 50.0,
            facts: RunFacts {
                out: PathBuf::from("relay.md"),
                commit: "0123456789abcdef".to_owned(),
                dirty: false,
                pg_version: "PostgreSQL 15".to_owned(),
                date: Some("2026-11-27 10:00 UTC".to_owned()),
                settings: Vec::new(),
            },
        }
    }

    /// `events` over two cores, with the CPU seconds of each process group.
    fn on_two_cores(events: u64, cpu_s: &[(&str, f64)]) -> Throughput {
        Throughput {
            events,
            cpu_s: cpu_s.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
            cpu: Some(CpuUsage { cores: 2, ..CpuUsage::default() }),
            ..Throughput::default()
        }
    }

    #[test]
    fn the_cpu_bound_is_the_cores_over_the_cpu_per_event() {
        let drain = on_two_cores(200_000, &[("relay", 2.0), ("postgres", 1.6), ("kafka", 0.4), ("bench", 9.0)]);
        let bound = cpu_bound(&drain).expect("a bound");
        // 4.0 CPU-s over 200,000 events: 20 µs each (the bench tool's own CPU is not the relay's).
        assert!((bound.us_per_event - 20.0).abs() < 1e-9);
        assert!((bound.relay_us - 10.0).abs() < 1e-9);
        assert!((bound.rate - 100_000.0).abs() < 1e-6);
        assert!(cpu_bound(&Throughput { cpu: None, ..drain.clone() }).is_none());
        assert!(cpu_bound(&Throughput { events: 0, ..drain }).is_none());
    }

    #[test]
    fn the_steady_cost_counts_every_process_and_the_writer_too() {
        let steady =
            on_two_cores(100_000, &[("relay", 1.0), ("postgres", 4.0), ("kafka", 0.5), ("bench", 0.5), ("other", 7.0)]);
        let (us, parts, carry) = steady_cost(&steady).expect("a cost");
        // 6.0 CPU-s of the four named groups over 100,000 events: 60 µs each; 2 cores carry 33,333/s.
        assert!((us - 60.0).abs() < 1e-9);
        assert!((carry - 2e6 / 60.0).abs() < 1e-6);
        assert_eq!(parts, "PostgreSQL 40.0, relay 10.0, Kafka 5.0, the bench tool's writer 5.0");
        assert!(steady_cost(&Throughput { events: 0, ..steady }).is_none());
    }

    #[test]
    fn both_goals_price_the_load_a_relay_at_the_goal_would_face() {
        let steady = on_two_cores(100_000, &[("relay", 1.0), ("postgres", 4.0), ("kafka", 0.5), ("bench", 0.5)]);
        // A relay at 0.8 of a 100,000 events/s ceiling is tested at half of 80,000: 40,000/s at
        // 60 µs each needs 2.4 cores, 2.0 of them for everything but the relay (50 µs).
        let both = both_goals(&steady, 100_000.0, 0.8, 0.5).expect("a price");
        assert!((both.load - 40_000.0).abs() < 1e-6);
        assert!((both.cores - 2.4).abs() < 1e-9);
        assert!((both.cores_without_relay - 2.0).abs() < 1e-9);
        assert!(both_goals(&steady, 0.0, 0.8, 0.5).is_none());
        assert!(both_goals(&Throughput { events: 0, ..steady }, 100_000.0, 0.8, 0.5).is_none());
    }

    fn writer(asked: f64, achieved: f64, n: u64, errors: u64) -> WriterResult {
        let duration_s = 30.0;
        let committed = (achieved / n as f64 * duration_s).round() as u64;
        WriterResult {
            target_rate: asked,
            duration_s,
            events_per_commit: n,
            scheduled: (asked / n as f64 * duration_s).round() as u64,
            committed,
            achieved_rate: (committed * n) as f64 / duration_s,
            errors,
            ..WriterResult::default()
        }
    }

    /// A run like the 2026-11-26 ones (drain 67176 events/s) with this steady writer.
    fn run(writer: WriterResult, basis: &str) -> RelayRun {
        let t = |rate: f64| Throughput { events: 200_000, seconds: 200_000.0 / rate, rate, ..Throughput::default() };
        let events = writer.events_committed();
        let latency = Latency { count: events, p50_ms: 4.0, p90_ms: 8.0, p99_ms: 17.5, max_ms: 70.0, mean_ms: 4.5 };
        RelayRun {
            drains: vec![Drain { throughput: t(67_176.0), ..Drain::default() }],
            producer_ceilings: vec![t(185_284.0)],
            sql_ceilings: vec![t(118_913.0)],
            steady: Steady {
                writer,
                latency: Some(latency),
                matched: events,
                events_per_commit_basis: basis.to_owned(),
                ..Steady::default()
            },
            ..RelayRun::default()
        }
    }

    #[test]
    fn the_load_is_reached_at_95_percent_of_the_events_asked_and_no_errors() {
        let at = |achieved: f64, errors: u64| WriterResult {
            target_rate: 1000.0,
            achieved_rate: achieved,
            errors,
            scheduled: 30_000,
            ..WriterResult::default()
        };
        assert_eq!(load_shortfall(&at(1000.0, 0)), None);
        assert_eq!(load_shortfall(&at(950.0, 0)), None);
        assert_eq!(
            load_shortfall(&at(949.0, 0)).as_deref(),
            Some("the writer reached only 949 of the 1000 events/s asked")
        );
        assert_eq!(
            load_shortfall(&at(1000.0, 3)).as_deref(),
            Some("3 of the writer's 30000 transactions failed or were not attempted")
        );
        assert!(load_shortfall(&at(f64::NAN, 0)).is_some());
    }

    #[test]
    fn events_grouped_in_commits_reach_the_load_and_say_so() -> Result<()> {
        let basis =
            "auto: the smallest N with 33588/N ≤ 1314 commits/s, 50 % of the 2629 commits/s the writer can make";
        let text = render(&run(writer(33_588.0, 33_588.0, 26, 0), basis), &args(), "2026-11-27 10:00 UTC")?;
        assert!(
            text.contains(
                "| p99 of Kafka CreateTime − commit < 50 ms at 50 % of the drain rate (33588 events/s) | **17.50 ms** \
                 (p50 4.00 ms, max 70.00 ms) at 33588 events/s in 1292 commits/s of 26 events each | met |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| writer: asked | **33588 events/s** (50 % of the drain rate) in transactions of 26 events, each of a \
                 different order: 1292 commits/s |"
            ),
            "{text}"
        );
        assert!(text.contains(&format!("| writer: events per transaction | 26 ({basis}) |")), "{text}");
        assert!(
            text.contains(
                "| writer: reached | **33588 events/s** (100 % of what was asked) in 1292 commits/s over the 30.0 s \
                 schedule: 38755 of 38755 transactions committed, 1007630 events"
            ),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn one_event_per_commit_short_of_the_rate_is_not_shown() -> Result<()> {
        let text = render(&run(writer(33_588.0, 2467.0, 1, 0), ""), &args(), "2026-11-27 10:00 UTC")?;
        assert!(
            text.contains(
                "at 2467 events/s in 2467 commits/s of 1 event each (**the writer reached only 2467 of the 33588 \
                 events/s asked**) | **not shown**: the load was not reached |"
            ),
            "{text}"
        );
        // A run from before the knob says nothing of how N was chosen.
        assert!(!text.contains("writer: events per transaction"), "{text}");

        let text = render(&run(writer(33_588.0, 33_588.0, 26, 12), "given"), &args(), "2026-11-27 10:00 UTC")?;
        assert!(
            text.contains(
                "(**12 of the writer's 38755 transactions failed or were not attempted**) | **not shown**: the load \
                 was not reached |"
            ),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn slow_seconds_are_counted_with_the_background_work_they_saw() {
        let second = |p99_ms, samples, autovacuum, checkpoint| LoadSecond {
            p99_ms,
            samples,
            autovacuum,
            checkpoint,
            ..LoadSecond::default()
        };
        let timeline =
            [second(10.0, 20, 0, 0), second(80.0, 20, 20, 5), second(51.0, 20, 10, 0), second(50.0, 20, 2, 0)];
        let text = slow_seconds(&timeline, 50.0);
        assert!(text.contains("**2 of 4**"), "{text}");
        assert!(text.contains("seen in 75 % of their samples (5 % in the other"), "{text}");
        assert!(text.contains("a checkpoint in 12 % (0 %)"), "{text}");
        assert!(slow_seconds(&[], 50.0).contains("**0 of 0**. Autovacuum was seen in – of their samples (–"));
    }
}

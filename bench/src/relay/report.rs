//! `relay-report`: a relay run (JSON) as Markdown.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::{RelayRun, Throughput};
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
    let writer_short = writer.achieved_rate < 0.95 * writer.target_rate || writer.errors > 0;

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
         size awaited one by one (its set-up, {} s until a first message was delivered, not counted) | {}{} | {:.2} | \
         {} of the producer's process |",
        opt(producer.setup_s, 2),
        num(producer.rate),
        range(&run.producer_ceilings, |t| t.rate),
        producer.seconds,
        opt(producer.events_per_cpu_s("bench"), 0)
    )?;
    writeln!(
        out,
        "| ceiling 2 — SQL: the relay's claim (`… ORDER BY id LIMIT n FOR UPDATE`) and `DELETE … WHERE id = ANY` \
         alone, on a fresh identical backlog (connecting, {} s, not counted) | {}{} | {:.2} | {} of PostgreSQL |",
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
    writeln!(
        out,
        "| p99 of Kafka CreateTime − commit < {} ms at {:.0} % of the drain rate | **{} ms** (p50 {} ms, max {} ms) at \
         {:.0} commits/s{} | {} |",
        args.goal_p99_ms,
        if drain.rate > 0.0 { 100.0 * writer.target_rate / drain.rate } else { 0.0 },
        ms(p99),
        ms(steady.latency.as_ref().map(|l| l.p50_ms)),
        ms(steady.latency.as_ref().map(|l| l.max_ms)),
        writer.achieved_rate,
        if writer_short {
            format!(
                " (**the writer reached only {:.0} of the {:.0}/s asked**)",
                writer.achieved_rate, writer.target_rate
            )
        } else {
            String::new()
        },
        if writer_short {
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
        ("relay (`ordexa_relay_batch_seconds`: claim, produce, await, delete, commit)", drain),
        ("SQL ceiling (claim, read, delete, commit)", sql),
        ("producer ceiling (queue the batch, await every delivery report)", producer),
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
        events: writer.committed,
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

    writeln!(out, "## Rounds\n")?;
    writeln!(
        out,
        "| round | relay events/s | producer ceiling | SQL ceiling | relay / min(ceilings) | other cores (drain / \
         producer / SQL) | relay exit |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---|---|")?;
    for (i, d) in run.drains.iter().enumerate() {
        let p = run.producer_ceilings.get(i).map(|t| t.rate).unwrap_or(0.0);
        let q = run.sql_ceilings.get(i).map(|t| t.rate).unwrap_or(0.0);
        let lower = p.min(q);
        let other = |t: Option<&Throughput>| opt(t.and_then(|t| t.cpu.as_ref()).map(CpuUsage::other_cores), 2);
        let round = u32::try_from(i + 1).unwrap_or(u32::MAX);
        writeln!(
            out,
            "| {round}{} | {} | {} | {} | {} | {} / {} / {} | {} |",
            if run.repeated_rounds.contains(&round) { " (repeated)" } else { "" },
            num(d.throughput.rate),
            num(p),
            num(q),
            if lower > 0.0 { format!("{:.2}", d.throughput.rate / lower) } else { "–".into() },
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
    writeln!(
        out,
        "| writer | {:.0}/s asked ({:.0} % of the drain rate), {} of {} transactions committed ({:.0}/s over the \
         {:.1} s schedule; last commit at {:.1} s), {} errors{} |",
        writer.target_rate,
        if drain.rate > 0.0 { 100.0 * writer.target_rate / drain.rate } else { 0.0 },
        writer.committed,
        writer.scheduled,
        writer.achieved_rate,
        writer.duration_s,
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
        "| writer: scheduled start → COMMIT returned | p50 {} ms, p99 {} ms, max {} ms ({} connections) |",
        ms(writer.commit_latency.as_ref().map(|l| l.p50_ms)),
        ms(writer.commit_latency.as_ref().map(|l| l.p99_ms)),
        ms(writer.commit_latency.as_ref().map(|l| l.max_ms)),
        writer.connections
    )?;
    writeln!(
        out,
        "| **Kafka CreateTime − commit** | p50 {} ms, p90 {} ms, **p99 {} ms**, max {} ms, mean {} ms over {} events |",
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

    if !run.writer_ceilings.is_empty() {
        writeln!(out, "## The write side's commit ceiling\n")?;
        writeln!(
            out,
            "The same one-event transactions, closed loop (every connection commits back to back), with the relay \
             stopped: first with the outbox's `AFTER INSERT … FOR EACH STATEMENT` trigger that NOTIFYs the relay \
             (migration 0002, as deployed), then with that trigger disabled.\n"
        )?;
        writeln!(
            out,
            "| NOTIFY trigger | connections | commits/s | commit p50 ms | commit p99 ms | CPU busy | postgres cores | main waits (average sessions) |"
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
                if c.notify { "on (as deployed)" } else { "off" },
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
                "Object locks (`pg_locks`, locktype `object`) half-way through the run with the trigger {}: {}.\n",
                if c.notify { "on" } else { "off" },
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
         - The steady writer commits one event per transaction (the store's exact outbox INSERT, with \
         `synchronous_commit` as the server has it) rather than the whole order command, so that as much of the \
         machine as possible is left to the relay; its events are real order lives too, each order's versions far \
         apart in the schedule. When it cannot commit at the rate asked, the latency is still every committed \
         event's, but at the lower rate it did reach; the load goal is then not shown.\n\
         - \"Lock: object\" in the wait tables is a heavyweight lock on an object; with the NOTIFY trigger it is \
         PostgreSQL's lock on `pg_database, objid 0`, which every transaction that sent a NOTIFY takes before its \
         commit record and holds until the commit is flushed (`PreCommit_Notify` in `src/backend/commands/async.c`), \
         so that notifications enter the queue in commit order. Such commits therefore happen one at a time, each \
         waiting for its own WAL flush.\n"
    )?;
    Ok(out)
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

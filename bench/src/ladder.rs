//! What both ladders (HTTP and pgbench) produce: one [`Step`] per target rate, judged by one
//! [`SustainRule`], so the two sides are compared on the same terms.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::procfs::{CpuUsage, Memory};

/// When a step counts as sustained.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SustainRule {
    /// Achieved rate at least this fraction of the target.
    pub min_achieved_fraction: f64,
    /// p99 latency (measured from the scheduled send time) at most this.
    pub p99_bound_ms: f64,
}

impl SustainRule {
    pub fn new(p99_bound_ms: f64) -> Self {
        SustainRule { min_achieved_fraction: 0.95, p99_bound_ms }
    }

    /// The rate a step is held to: its target, or what was actually offered when that was less
    /// (pgbench's Poisson arrivals put ±√N transactions into a window by chance).
    pub fn expected_rate(step: &Step) -> f64 {
        if step.offered_rate > 0.0 { step.target_rate.min(step.offered_rate) } else { step.target_rate }
    }

    pub fn holds(&self, step: &Step) -> bool {
        step.achieved_rate >= self.min_achieved_fraction * Self::expected_rate(step)
            && step.errors == 0
            && step.latency.as_ref().is_some_and(|l| l.p99_ms <= self.p99_bound_ms)
    }

    pub fn describe(&self) -> String {
        format!(
            "achieved ≥ {:.0} % of the target rate (of the rate actually offered in the window, when pgbench's \
             random arrivals offered less), 0 errors, and p99 latency ≤ {} ms (latency measured from each \
             request's scheduled start, so queueing behind a slow response counts)",
            self.min_achieved_fraction * 100.0,
            self.p99_bound_ms
        )
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// A histogram of microseconds, from 1 µs to 10 minutes at 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")
}

pub fn record(hist: &mut Histogram<u64>, micros: u64) {
    hist.saturating_record(micros.max(1));
}

pub fn latency(hist: &Histogram<u64>) -> Option<Latency> {
    if hist.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Some(Latency {
        count: hist.len(),
        p50_ms: ms(hist.value_at_quantile(0.50)),
        p90_ms: ms(hist.value_at_quantile(0.90)),
        p99_ms: ms(hist.value_at_quantile(0.99)),
        max_ms: ms(hist.max()),
        mean_ms: hist.mean() / 1000.0,
    })
}

/// One rate of a ladder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Requests (transactions) per second asked for.
    pub target_rate: f64,
    /// Successful responses (commits) per second completed inside the measured window.
    pub achieved_rate: f64,
    /// Requests scheduled inside the measured window.
    pub scheduled: u64,
    /// `scheduled` per second: the target for evenly spaced arrivals, near it for random ones.
    #[serde(default)]
    pub offered_rate: f64,
    /// Of those, how many failed (any non-success, timeout, or refusal by the in-flight cap).
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Latency of the successful requests scheduled inside the window, from their scheduled time.
    pub latency: Option<Latency>,
    /// How late the requests actually started after their scheduled time (generator or pgbench
    /// schedule lag); part of `latency` already.
    pub start_lag: Option<Latency>,
    /// CPU use during the measured window.
    pub cpu: Option<CpuUsage>,
    /// The API's resident memory: the peak VmRSS seen during the step.
    pub api_rss_peak_kib: Option<u64>,
    /// How busy the machine was (0–100 %) just before the step, with nothing under load.
    #[serde(default)]
    pub busy_before_pct: Option<f64>,
    /// The first try of this step was disturbed by other work on the machine and was repeated.
    #[serde(default)]
    pub repeated: bool,
    pub sustained: bool,
}

/// Above this many cores of other work during its window, a step counts as disturbed.
pub const DISTURBED_CORES: f64 = 0.5;

impl Step {
    /// Cores busy during the window with anything but the processes under test (other work on
    /// the machine, kernel time not charged to them).
    pub fn other_cores(&self) -> Option<f64> {
        self.cpu.as_ref().map(CpuUsage::other_cores)
    }

    pub fn disturbed(&self) -> bool {
        self.other_cores().is_some_and(|o| o > DISTURBED_CORES)
    }
}

/// A whole ladder and how it was run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ladder {
    /// `api` or `pgbench`.
    pub tool: String,
    pub rule: SustainRule,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Settings worth stating next to the numbers (connections, caps, arrival process, ...).
    pub settings: BTreeMap<String, String>,
    pub steps: Vec<Step>,
    /// The API's memory before the load, and after the whole ladder.
    pub api_memory_idle: Option<Memory>,
    pub api_memory_after: Option<Memory>,
    /// pgbench only: a closed-loop run (no rate limit) for reference.
    pub closed_loop: Option<Step>,
    /// pgbench only: the script it ran.
    pub script: Option<String>,
}

impl Ladder {
    /// The highest target rate that was sustained.
    pub fn highest_sustained(&self) -> Option<&Step> {
        self.steps.iter().filter(|s| s.sustained).max_by(|a, b| a.target_rate.total_cmp(&b.target_rate))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }

    pub fn load(path: &Path) -> Result<Ladder> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// What every ladder is run with.
#[derive(Debug, Clone, clap::Args)]
pub struct LadderArgs {
    /// Target rates per second, run in this order.
    #[arg(long, value_delimiter = ',', default_value = "100,200,400,800")]
    pub rates: Vec<u32>,
    /// Seconds measured at each rate.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load at each rate before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// The p99 bound of the sustain rule, in milliseconds.
    #[arg(long, default_value_t = 200.0)]
    pub p99_bound_ms: f64,
    /// Stop a ladder after this many consecutive steps that were not sustained.
    #[arg(long, default_value_t = 2)]
    pub stop_after: usize,
    /// Seconds of quiet between steps.
    #[arg(long, default_value_t = 1.0)]
    pub pause: f64,
    /// Distinct users the requests (transactions) spread over.
    #[arg(long, default_value_t = crate::workload::DEFAULT_USERS)]
    pub users: u32,
    /// The PostgreSQL postmaster's process id: its and its backends' CPU use are recorded.
    #[arg(long)]
    pub pg_pid: Option<u32>,
    #[command(flatten)]
    pub quiet: QuietArgs,
}

impl LadderArgs {
    pub fn check(&self) -> Result<()> {
        if self.rates.is_empty() || self.rates.contains(&0) {
            anyhow::bail!("--rates needs one or more rates above 0");
        }
        if self.users == 0 || self.duration <= 0.0 || self.warmup < 0.0 {
            anyhow::bail!("--users and --duration must be above 0, --warmup at least 0");
        }
        Ok(())
    }

    pub fn rule(&self) -> SustainRule {
        SustainRule::new(self.p99_bound_ms)
    }
}

/// The steps of one ladder so far, and whether it should stop.
#[derive(Debug)]
pub struct Progress {
    tool: &'static str,
    stop_after: usize,
    misses: usize,
    pub steps: Vec<Step>,
}

impl Progress {
    pub fn new(tool: &'static str, stop_after: usize) -> Self {
        Progress { tool, stop_after, misses: 0, steps: Vec::new() }
    }

    pub fn push(&mut self, step: Step) {
        eprintln!("{}", step_line(self.tool, &step));
        self.misses = if step.sustained { 0 } else { self.misses + 1 };
        self.steps.push(step);
        if self.done() {
            eprintln!("[{}] {} steps in a row not sustained; this ladder stops", self.tool, self.misses);
        }
    }

    pub fn done(&self) -> bool {
        self.misses >= self.stop_after.max(1)
    }
}

/// Before each step: wait (a bounded time) for other work on the machine to calm down.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct QuietArgs {
    /// Before each step, wait until the machine is at most this busy (percent of all cores)...
    #[arg(long, default_value_t = 30.0)]
    pub quiet_below_pct: f64,
    /// ...for at most this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub quiet_wait: f64,
}

impl QuietArgs {
    pub fn wait(&self) -> f64 {
        crate::procfs::wait_for_quiet(self.quiet_below_pct, std::time::Duration::from_secs_f64(self.quiet_wait))
    }
}

/// A one-line summary of a step for the console.
pub fn step_line(tool: &str, step: &Step) -> String {
    let (p50, p99) = step.latency.as_ref().map(|l| (l.p50_ms, l.p99_ms)).unwrap_or((f64::NAN, f64::NAN));
    let cpu = step.cpu.as_ref().map(|c| format!("{:.0}%", c.machine_busy_pct)).unwrap_or_else(|| "-".to_owned());
    format!(
        "[{tool}] target {:>6.0}/s  achieved {:>7.1}/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {:>5}  cpu {:>4}  {}",
        step.target_rate,
        step.achieved_rate,
        p50,
        p99,
        step.errors,
        cpu,
        if step.sustained { "sustained" } else { "NOT sustained" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(target: f64, achieved: f64, errors: u64, p99: f64) -> Step {
        Step {
            target_rate: target,
            achieved_rate: achieved,
            scheduled: 100,
            offered_rate: 0.0,
            errors,
            error_kinds: BTreeMap::new(),
            latency: Some(Latency { count: 100, p50_ms: 1.0, p90_ms: 2.0, p99_ms: p99, max_ms: p99, mean_ms: 1.0 }),
            start_lag: None,
            cpu: None,
            api_rss_peak_kib: None,
            busy_before_pct: None,
            repeated: false,
            sustained: false,
        }
    }

    #[test]
    fn the_rule_needs_rate_no_errors_and_a_bounded_p99() {
        let rule = SustainRule::new(200.0);
        assert!(rule.holds(&step(100.0, 96.0, 0, 150.0)));
        assert!(!rule.holds(&step(100.0, 94.0, 0, 150.0)));
        assert!(!rule.holds(&step(100.0, 100.0, 1, 150.0)));
        assert!(!rule.holds(&step(100.0, 100.0, 0, 201.0)));
    }

    #[test]
    fn percentiles_come_out_in_milliseconds() -> Result<()> {
        let mut hist = histogram()?;
        for us in 1..=1000u64 {
            record(&mut hist, us * 1000);
        }
        let l = latency(&hist).context("not empty")?;
        assert!((l.p50_ms - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99_ms - 990.0).abs() < 1.0, "{l:?}");
        Ok(())
    }
}

//! What a process costs, read from /proc: CPU time (utime + stime) and resident memory, sampled
//! in the background so a window can be cut out afterwards by wall-clock time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

/// Linux reports CPU time in clock ticks of 1/100 s on every platform the bench runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Milliseconds since the Unix epoch, the clock Kafka's timestamps and pgbench's log use.
pub fn now_ms() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1000.0
}

/// CPU seconds (user + system) `pid` has used, all its threads included; `None` once it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

/// CPU seconds of `pid` and its direct children (a PostgreSQL postmaster and its backends).
pub fn cpu_seconds_with_children(pid: u32) -> f64 {
    let mut total = cpu_seconds(pid).unwrap_or(0.0);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let parent = std::fs::read_to_string(format!("/proc/{child}/stat")).ok().and_then(|s| {
                s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
            });
            if parent == Some(pid) {
                total += cpu_seconds(child).unwrap_or(0.0);
            }
        }
    }
    total
}

/// Resident memory of `pid` now and at its peak (VmRSS, VmHWM), in MiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    pub rss_mib: f64,
    pub peak_mib: f64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
    };
    Some(Memory { rss_mib: field("VmRSS:")? / 1024.0, peak_mib: field("VmHWM:")? / 1024.0 })
}

/// One reading: wall clock (ms since the epoch), CPU seconds so far.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at_ms: f64,
    pub cpu_s: f64,
}

/// Samples a process's CPU time every 10 ms on a thread of its own until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn start(pid: u32, with_children: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let cpu = if with_children { Some(cpu_seconds_with_children(pid)) } else { cpu_seconds(pid) };
                let Some(cpu_s) = cpu else { break };
                samples.push(Sample { at_ms: now_ms(), cpu_s });
                std::thread::sleep(Duration::from_millis(if with_children { 50 } else { 10 }));
            }
            samples
        });
        Self { stop, thread }
    }

    pub fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        Samples(self.thread.join().unwrap_or_default())
    }
}

pub struct Samples(Vec<Sample>);

impl Samples {
    /// CPU seconds used at wall-clock time `at_ms`, interpolated between the samples around it.
    pub fn cpu_at(&self, at_ms: f64) -> f64 {
        let s = &self.0;
        let Some(i) = s.iter().position(|x| x.at_ms >= at_ms) else { return s.last().map_or(0.0, |x| x.cpu_s) };
        if i == 0 {
            return s[0].cpu_s;
        }
        let (a, b) = (s[i - 1], s[i]);
        a.cpu_s + (b.cpu_s - a.cpu_s) * (at_ms - a.at_ms) / (b.at_ms - a.at_ms).max(1e-9)
    }

    /// CPU seconds used between two wall-clock times.
    pub fn cpu_between(&self, from_ms: f64, to_ms: f64) -> f64 {
        (self.cpu_at(to_ms) - self.cpu_at(from_ms)).max(0.0)
    }
}

//! What `/proc` says about the machine and the processes under test: CPU time (to tell a
//! saturated machine from a slow program) and resident memory.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

/// Jiffies of the whole machine and of named process groups at one instant.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    total: u64,
    idle: u64,
    /// Per group, the jiffies of each of its processes: a process that exits between two
    /// snapshots then only loses its own share instead of lowering the group's sum.
    groups: BTreeMap<String, BTreeMap<u32, u64>>,
}

/// CPU use between two snapshots.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuUsage {
    /// How busy the whole machine was, 0–100 % of all its cores.
    pub machine_busy_pct: f64,
    /// Cores the machine has.
    pub cores: usize,
    /// Cores each process group used on average (1.0 = one core fully busy).
    pub cores_used: BTreeMap<String, f64>,
}

impl CpuUsage {
    /// Cores busy with anything but the named groups (other work on the machine, kernel time
    /// not charged to them): a large value means the window was disturbed.
    pub fn other_cores(&self) -> f64 {
        let busy = self.machine_busy_pct / 100.0 * self.cores as f64;
        (busy - self.cores_used.values().sum::<f64>()).max(0.0)
    }
}

/// A process group to account: one process, or a process and its direct children (the
/// PostgreSQL postmaster and its backends).
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub pid: u32,
    pub with_children: bool,
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Clock ticks per second of `/proc` CPU times (USER_HZ), from `getconf CLK_TCK`; 100 (what
/// Linux uses on every common architecture) when that cannot be asked.
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

/// `(utime + stime, ppid)` of a process, or `None` when it is gone.
fn process_stat(pid: u32) -> Option<(u64, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name sits in parentheses and may contain spaces; the fields follow it.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime, ppid))
}

fn machine_jiffies() -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total, idle))
}

fn group_jiffies(group: &Group) -> BTreeMap<u32, u64> {
    let mut ticks = BTreeMap::new();
    if let Some((own, _)) = process_stat(group.pid) {
        ticks.insert(group.pid, own);
    }
    if !group.with_children {
        return ticks;
    }
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some((t, ppid)) = process_stat(pid)
                && ppid == group.pid
            {
                ticks.insert(pid, t);
            }
        }
    }
    ticks
}

impl CpuSnapshot {
    pub fn take(groups: &[Group]) -> Self {
        let (total, idle) = machine_jiffies().unwrap_or((0, 0));
        let groups = groups.iter().map(|g| (g.name.clone(), group_jiffies(g))).collect();
        CpuSnapshot { total, idle, groups }
    }

    /// Jiffies `name` used from `self` (earlier) to `later`: per process, so one that exited in
    /// between is missing only its own time; one that started in between counts from its start.
    fn group_delta(&self, later: &CpuSnapshot, name: &str) -> u64 {
        let before = self.groups.get(name);
        later.groups.get(name).map_or(0, |after| {
            after
                .iter()
                .map(|(pid, ticks)| ticks.saturating_sub(before.and_then(|b| b.get(pid)).copied().unwrap_or(0)))
                .sum()
        })
    }

    /// CPU seconds each group used from `self` (earlier) to `later`. A group whose process
    /// started after `self` counts from its start.
    pub fn cpu_seconds_until(&self, later: &CpuSnapshot) -> BTreeMap<String, f64> {
        let hz = clock_ticks_per_second() as f64;
        later.groups.keys().map(|name| (name.clone(), self.group_delta(later, name) as f64 / hz)).collect()
    }

    /// Usage from `self` (earlier) to `later`. Process jiffies and machine jiffies share a unit
    /// (USER_HZ), so cores used = process jiffies / (machine jiffies / cores).
    pub fn usage_until(&self, later: &CpuSnapshot) -> CpuUsage {
        let cores = cores();
        let total = later.total.saturating_sub(self.total);
        let idle = later.idle.saturating_sub(self.idle);
        if total == 0 {
            return CpuUsage { cores, ..CpuUsage::default() };
        }
        let per_core = total as f64 / cores as f64;
        let cores_used =
            later.groups.keys().map(|name| (name.clone(), self.group_delta(later, name) as f64 / per_core)).collect();
        CpuUsage { machine_busy_pct: 100.0 * (total - idle.min(total)) as f64 / total as f64, cores, cores_used }
    }
}

/// How busy the whole machine is over the next second, 0–100 %.
pub fn busy_over_a_second() -> f64 {
    let before = CpuSnapshot::take(&[]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    before.usage_until(&CpuSnapshot::take(&[])).machine_busy_pct
}

/// Waits until the machine is at most `max_busy_pct` busy over a second (other work on a shared
/// machine would disturb the measurement), for at most `max_wait`. Returns the last reading.
pub fn wait_for_quiet(max_busy_pct: f64, max_wait: std::time::Duration) -> f64 {
    let deadline = std::time::Instant::now() + max_wait;
    let mut warned = false;
    loop {
        let busy = busy_over_a_second();
        if busy <= max_busy_pct || std::time::Instant::now() >= deadline {
            if busy > max_busy_pct {
                eprintln!("[bench] the machine is still {busy:.0} % busy; measuring anyway (see \"other cores\")");
            }
            return busy;
        }
        if !warned {
            eprintln!("[bench] the machine is {busy:.0} % busy with other work; waiting for it to calm down");
            warned = true;
        }
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Resident set size now.
    pub vm_rss_kib: u64,
    /// The high-water mark of the resident set since the process started.
    pub vm_hwm_kib: u64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Memory { vm_rss_kib: field("VmRSS:")?, vm_hwm_kib: field("VmHWM:")? })
}

/// Samples a process's resident memory every `interval` on the tokio runtime, keeping the
/// highest VmRSS seen, until dropped.
pub struct RssSampler {
    peak_kib: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32, interval: std::time::Duration) -> Self {
        let peak_kib = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let peak = std::sync::Arc::clone(&peak_kib);
        let task = tokio::spawn(async move {
            loop {
                if let Some(mem) = memory(pid) {
                    peak.fetch_max(mem.vm_rss_kib, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(interval).await;
            }
        });
        RssSampler { peak_kib, task }
    }

    /// The highest VmRSS seen so far, in KiB (0 before the first sample).
    pub fn peak_kib(&self) -> u64 {
        self.peak_kib.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The machine, as the report states it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub os: String,
}

pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".to_owned());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
        .unwrap_or_default();
    Machine { cores: cores(), cpu_model, memory, kernel, os }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_visible() {
        let pid = std::process::id();
        assert!(process_stat(pid).is_some());
        assert!(memory(pid).is_some_and(|m| m.vm_rss_kib > 0 && m.vm_hwm_kib >= m.vm_rss_kib));
        let before = CpuSnapshot::take(&[Group { name: "self".into(), pid, with_children: false }]);
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let usage = before.usage_until(&CpuSnapshot::take(&[Group { name: "self".into(), pid, with_children: false }]));
        assert!(usage.machine_busy_pct >= 0.0 && usage.machine_busy_pct <= 100.0);
    }
}

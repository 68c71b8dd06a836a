//! The workloads under test: `ordexa api`, `ordexa relay` and `ordexa projector` (the release
//! build) as real processes, started and stopped by the benchmark, and what their `/metrics` say.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::relay::process::{log_tail, metric};

/// A running `ordexa <role>`; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Workload {
    pub role: String,
    child: Child,
    pub addr: String,
    client: reqwest::Client,
    log: PathBuf,
    pid_file: PathBuf,
}

pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Workload {
    /// Starts `ordexa <role>` with only the `ORDEXA_*` variables given here (and
    /// `ORDEXA_HTTP_ADDR` on a free loopback port); its other knobs keep their defaults. Its log
    /// goes to `<work_dir>/<name>.log`, its pid to `<work_dir>/<name>.pid` (for the script's
    /// clean-up should this process die first).
    pub fn start(ordexa: &Path, role: &str, name: &str, env: &[(&str, String)], work_dir: &Path) -> Result<Self> {
        let log = work_dir.join(format!("{name}.log"));
        let pid_file = work_dir.join(format!("{name}.pid"));
        Self::start_logged(ordexa, role, env, log, pid_file)
    }

    /// [`Workload::start`] with the log and pid file where the caller wants them.
    pub fn start_logged(
        ordexa: &Path,
        role: &str,
        env: &[(&str, String)],
        log: PathBuf,
        pid_file: PathBuf,
    ) -> Result<Self> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(ordexa);
        command.arg(role);
        for (key, _) in std::env::vars() {
            if key.starts_with("ORDEXA_") {
                command.env_remove(key);
            }
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .env("ORDEXA_HTTP_ADDR", &addr)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {} {role}", ordexa.display()))?;
        std::fs::write(&pid_file, child.id().to_string())?;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        Ok(Workload { role: role.to_owned(), child, addr, client, log, pid_file })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Fails when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("ordexa {} exited ({status}); its log ends:\n{}", self.role, self.log_tail(20));
        }
        Ok(())
    }

    /// `/metrics` as text, or `None` while it does not answer.
    pub async fn metrics(&self) -> Option<String> {
        let response = self.client.get(format!("http://{}/metrics", self.addr)).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    /// One unlabelled metric (0 while it has not appeared yet), or `None` while `/metrics`
    /// does not answer.
    pub async fn counter(&self, name: &str) -> Option<f64> {
        self.metrics().await.map(|text| metric(&text, name).unwrap_or(0.0))
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let url = format!("http://{}/readyz", self.addr);
            if let Ok(response) = self.client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            self.check_alive()?;
            if tokio::time::Instant::now() >= deadline {
                bail!("ordexa {} was not ready within {timeout:?}; its log ends:\n{}", self.role, self.log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `/metrics` every `every` until the counter `name` reaches `target`, recording
    /// `(seconds since since, value)` at each answer; fails after `timeout` or when the process
    /// exits.
    pub async fn wait_counter(
        &mut self,
        name: &str,
        target: u64,
        since: tokio::time::Instant,
        every: Duration,
        timeout: Duration,
        samples: &mut Vec<(f64, u64)>,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(value) = self.counter(name).await {
                let value = value as u64;
                samples.push((since.elapsed().as_secs_f64(), value));
                if value >= target {
                    return Ok(());
                }
            }
            self.check_alive()?;
            if tokio::time::Instant::now() >= deadline {
                let last = samples.last().map(|s| s.1).unwrap_or(0);
                bail!("ordexa {}: {name} reached {last} of {target} in {timeout:?}", self.role);
            }
            tokio::time::sleep(every).await;
        }
    }

    /// SIGTERM, then waits (up to `grace`) for the exit; SIGKILL after that.
    pub fn stop(mut self, grace: Duration) -> Result<ExitStatus> {
        let status = self.stop_inner(grace);
        let _ = std::fs::remove_file(&self.pid_file);
        status
    }

    fn stop_inner(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.child.id());
        }
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        bail!("ordexa {} did not stop within {grace:?} of SIGTERM and was killed ({status})", self.role);
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop_inner(Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Stops a workload and says how it exited.
pub fn stop(workload: Workload) -> String {
    let role = workload.role.clone();
    let exit = match workload.stop(Duration::from_secs(15)) {
        Ok(status) => status.to_string(),
        Err(err) => format!("{err:#}"),
    };
    eprintln!("[e2e] {role} stopped: {exit}");
    exit
}

/// The quantiles of a summary metric (`name{quantile="q"} v`), in milliseconds, with its count.
pub fn summary_ms(text: &str, name: &str) -> Option<crate::ladder::Latency> {
    let q = |quantile: &str| metric(text, &format!("{name}{{quantile=\"{quantile}\"}}")).map(|s| s * 1000.0);
    let count = metric(text, &format!("{name}_count"))?;
    let sum = metric(text, &format!("{name}_sum"))?;
    Some(crate::ladder::Latency {
        count: count as u64,
        p50_ms: q("0.5")?,
        p90_ms: q("0.9")?,
        p99_ms: q("0.99")?,
        max_ms: q("1")?,
        mean_ms: if count > 0.0 { 1000.0 * sum / count } else { 0.0 },
    })
}

//! The relay under test: one `ordexa relay` process (the release build), started and stopped
//! by the benchmark, and what its `/metrics` says.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How the relay is run.
#[derive(Debug, Clone)]
pub struct RelaySpec {
    pub ordexa: PathBuf,
    pub database_url: String,
    pub kafka_bootstrap: String,
    pub topic_prefix: String,
    pub batch_size: i64,
    pub rust_log: String,
    /// Its log, and a file with its process id (for the script's clean-up if this one dies).
    pub log: PathBuf,
    pub pid_file: PathBuf,
}

/// A running relay; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct RelayProcess {
    child: Child,
    metrics_url: String,
    client: reqwest::Client,
    pid_file: PathBuf,
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn signal(pid: u32, name: &str) -> Result<()> {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status()?;
    if !status.success() {
        bail!("kill -{name} {pid} failed");
    }
    Ok(())
}

impl RelayProcess {
    pub fn start(spec: &RelaySpec) -> Result<Self> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log = File::create(&spec.log).with_context(|| format!("creating {}", spec.log.display()))?;
        let mut command = Command::new(&spec.ordexa);
        command.arg("relay");
        // Only what is set here: the relay's other knobs keep their defaults.
        for (key, _) in std::env::vars() {
            if key.starts_with("ORDEXA_") {
                command.env_remove(key);
            }
        }
        let child = command
            .env("ORDEXA_DATABASE_URL", &spec.database_url)
            .env("ORDEXA_KAFKA_BOOTSTRAP", &spec.kafka_bootstrap)
            .env("ORDEXA_TOPIC_PREFIX", &spec.topic_prefix)
            .env("ORDEXA_HTTP_ADDR", &addr)
            .env("ORDEXA_RELAY_BATCH_SIZE", spec.batch_size.to_string())
            .env("RUST_LOG", &spec.rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} relay", spec.ordexa.display()))?;
        std::fs::write(&spec.pid_file, child.id().to_string())?;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        Ok(RelayProcess {
            child,
            metrics_url: format!("http://{addr}/metrics"),
            client,
            pid_file: spec.pid_file.clone(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the relay has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the relay exited ({status}); see its log");
        }
        Ok(())
    }

    /// `/metrics` as text, or `None` while it does not answer.
    pub async fn metrics(&self) -> Option<String> {
        let response = self.client.get(&self.metrics_url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    /// `ordexa_relay_published_total`, or `None` while `/metrics` does not answer. The counter
    /// only appears once the first batch is published; before that it is 0.
    pub async fn published(&self) -> Option<u64> {
        self.metrics().await.map(|text| metric(&text, "ordexa_relay_published_total").unwrap_or(0.0) as u64)
    }

    /// Polls `/metrics` every `every` until `published_total` reaches `target`, recording
    /// `(seconds since `since`, published)` at each answer; fails after `timeout` or when the
    /// relay exits.
    pub async fn wait_published(
        &mut self,
        target: u64,
        since: tokio::time::Instant,
        every: Duration,
        timeout: Duration,
        samples: &mut Vec<(f64, u64)>,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(published) = self.published().await {
                samples.push((since.elapsed().as_secs_f64(), published));
                if published >= target {
                    return Ok(());
                }
            }
            self.check_alive()?;
            if tokio::time::Instant::now() >= deadline {
                let last = samples.last().map(|s| s.1).unwrap_or(0);
                bail!("the relay published {last} of {target} events in {timeout:?}");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Waits until the relay says it leads (`ordexa_relay_leader` 1): connected, holding the
    /// leader lock, ready to publish.
    pub async fn wait_leading(&mut self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(text) = self.metrics().await
                && metric(&text, "ordexa_relay_leader") == Some(1.0)
            {
                return Ok(());
            }
            self.check_alive()?;
            if tokio::time::Instant::now() >= deadline {
                bail!("the relay did not lead within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
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
        signal(self.child.id(), "TERM")?;
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        bail!("the relay did not stop within {grace:?} of SIGTERM and was killed ({status})");
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop_inner(Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// The value of an unlabelled metric (`name value`) in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Every line of a metric family (`name...`), for the record.
pub fn metric_lines(text: &str, name: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with(name)).map(str::to_owned).collect()
}

/// The last lines of the relay's log, for an error message.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_by_exact_name() {
        let text = "# TYPE ordexa_relay_published_total counter\nordexa_relay_published_total 2000\n\
                    ordexa_relay_published_total_other 5\nordexa_relay_batch_seconds{quantile=\"0.5\"} 0.01\n";
        assert_eq!(metric(text, "ordexa_relay_published_total"), Some(2000.0));
        assert_eq!(metric(text, "ordexa_relay_leader"), None);
        assert_eq!(metric_lines(text, "ordexa_relay_batch_seconds").len(), 1);
    }
}

//! The relay under test: one `ordexa relay` process (the release build), started and stopped
//! by the benchmark, and what its `/metrics` says.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::e2e::process::Workload;

/// How the relay is run.
#[derive(Debug, Clone)]
pub struct RelaySpec {
    pub ordexa: PathBuf,
    pub database_url: String,
    pub kafka_bootstrap: String,
    pub topic_prefix: String,
    pub batch_size: i64,
    pub batches_in_flight: usize,
    pub vacuum_every: u64,
    pub rust_log: String,
    /// Its log, and a file with its process id (for the script's clean-up if this one dies).
    pub log: PathBuf,
    pub pid_file: PathBuf,
}

/// A running relay; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct RelayProcess {
    workload: Workload,
}

const PUBLISHED: &str = "ordexa_relay_published_total";

impl RelayProcess {
    pub fn start(spec: &RelaySpec) -> Result<Self> {
        // Only what is set here: the relay's other knobs keep their defaults.
        let env = [
            ("ORDEXA_DATABASE_URL", spec.database_url.clone()),
            ("ORDEXA_KAFKA_BOOTSTRAP", spec.kafka_bootstrap.clone()),
            ("ORDEXA_TOPIC_PREFIX", spec.topic_prefix.clone()),
            ("ORDEXA_RELAY_BATCH_SIZE", spec.batch_size.to_string()),
            ("ORDEXA_RELAY_BATCHES_IN_FLIGHT", spec.batches_in_flight.to_string()),
            ("ORDEXA_RELAY_VACUUM_EVERY", spec.vacuum_every.to_string()),
            ("RUST_LOG", spec.rust_log.clone()),
        ];
        let workload = Workload::start_logged(&spec.ordexa, "relay", &env, spec.log.clone(), spec.pid_file.clone())?;
        Ok(RelayProcess { workload })
    }

    pub fn pid(&self) -> u32 {
        self.workload.pid()
    }

    /// Fails when the relay has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        self.workload.check_alive()
    }

    /// `/metrics` as text, or `None` while it does not answer.
    pub async fn metrics(&self) -> Option<String> {
        self.workload.metrics().await
    }

    /// `ordexa_relay_published_total`, or `None` while `/metrics` does not answer. The counter
    /// only appears once the first batch is published; before that it is 0.
    pub async fn published(&self) -> Option<u64> {
        self.workload.counter(PUBLISHED).await.map(|v| v as u64)
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
        self.workload.wait_counter(PUBLISHED, target, since, every, timeout, samples).await
    }

    /// Waits until this relay holds the leader lock (`ordexa_relay_leader 1`).
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
    pub fn stop(self, grace: Duration) -> Result<ExitStatus> {
        self.workload.stop(grace)
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

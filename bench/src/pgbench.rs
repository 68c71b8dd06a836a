//! pgbench as the bench's SQL load generator: its scripts, its runs, its per-transaction logs.
//!
//! With `--rate`, pgbench schedules transactions as a Poisson process and its log charges each
//! one from its scheduled start, so its latency is free of coordinated omission.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The outbox writer's script: the store's own outbox insert (`ordexa_store::outbox::INSERT_SQL`,
/// its `$n` bound to pgbench variables), one row per transaction, as a command writes it. The
/// order id encodes the pgbench client, a per-client counter and the phase
/// (`cccccccc-pppp-7000-8000-nnnnnnnnnnnn`), so a message read back from Kafka names the
/// transaction, and so its commit time in pgbench's log.
pub fn outbox_script() -> String {
    let mut insert = ordexa_store::outbox::INSERT_SQL.to_owned();
    // Highest first, so `$1` does not match the start of `$10`.
    for (n, var) in ["event_id", "order_id", "version", "event_type", "schema_version", "payload", "headers"]
        .iter()
        .enumerate()
        .rev()
    {
        insert = insert.replace(&format!("${}", n + 1), &format!(":{var}"));
    }
    let id = |variant: &str| {
        format!(
            "lpad(to_hex(:client_id::int), 8, '0') || '-' || lpad(to_hex(:phase::int), 4, '0') || '-7000-{variant}-' \
             || lpad(to_hex(:n::bigint), 12, '0')"
        )
    };
    format!("\\set n :n + 1\nSELECT {} AS order_id, {} AS event_id \\gset\n{insert};\n", id("8000"), id("9000"))
}

/// The `-D` variables of [`outbox_script`]: a real `order.created` event as the payload.
pub fn outbox_vars(phase: u32) -> Result<Vec<(String, String)>> {
    Ok(vec![
        ("phase".into(), phase.to_string()),
        ("n".into(), "0".into()),
        ("version".into(), "1".into()),
        ("event_type".into(), "order.created".into()),
        ("schema_version".into(), ordexa_domain::EVENT_SCHEMA_VERSION.to_string()),
        ("payload".into(), crate::events::created_payload()?),
        ("headers".into(), serde_json::json!({"traceparent": crate::events::TRACEPARENT}).to_string()),
    ])
}

/// Maps an order id made by [`outbox_script`] back to (phase, client, transaction number), the
/// number as pgbench's log counts a client's transactions (from 1).
pub fn decode_order_id(id: &str) -> Option<(u32, u32, u64)> {
    let mut parts = id.split('-');
    let client = u32::from_str_radix(parts.next()?, 16).ok()?;
    let phase = u32::from_str_radix(parts.next()?, 16).ok()?;
    let n = u64::from_str_radix(parts.nth(2)?, 16).ok()?;
    Some((phase, client, n))
}

/// How pgbench runs: connections, and either a rate for some seconds or a number of
/// transactions per client as fast as it can.
pub struct Run<'a> {
    pub url: &'a str,
    pub script: &'a Path,
    pub vars: &'a [(String, String)],
    pub clients: u32,
    pub rate: Option<f64>,
    pub seconds: Option<f64>,
    pub transactions: Option<u64>,
    /// Where the per-transaction logs go (`pgbench_log.*`); none: no log.
    pub log_dir: Option<&'a Path>,
    /// Extra server settings for pgbench's sessions (PGOPTIONS).
    pub options: &'a str,
}

impl Run<'_> {
    /// Runs pgbench to its end and returns its report.
    pub fn run(&self) -> Result<String> {
        let mut cmd = Command::new(pgbench());
        cmd.args(["-n", "-M", "prepared", "-j", "2"]).arg("-c").arg(self.clients.to_string());
        cmd.arg("-f").arg(self.script).env("PGOPTIONS", self.options);
        if let Some(rate) = self.rate {
            cmd.arg("-R").arg(format!("{rate}"));
        }
        if let Some(seconds) = self.seconds {
            cmd.arg("-T").arg(format!("{}", seconds.ceil().max(1.0) as u64));
        }
        if let Some(t) = self.transactions {
            cmd.arg("-t").arg(t.to_string());
        }
        if let Some(dir) = self.log_dir {
            std::fs::create_dir_all(dir)?;
            cmd.arg("-l").arg(format!("--log-prefix={}/pgbench_log", dir.display()));
        }
        for (name, value) in self.vars {
            cmd.arg("-D").arg(format!("{name}={value}"));
        }
        let out = cmd.arg(self.url).output().context("running pgbench")?;
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!("pgbench failed: {}{}", report, String::from_utf8_lossy(&out.stderr));
        }
        Ok(report)
    }
}

fn pgbench() -> PathBuf {
    let debian = Path::new("/usr/lib/postgresql/15/bin/pgbench");
    if debian.exists() { debian.to_owned() } else { PathBuf::from("pgbench") }
}

/// One line of pgbench's per-transaction log.
#[derive(Debug, Clone, Copy)]
pub struct Transaction {
    pub client: u32,
    pub number: u64,
    /// From its scheduled start to its end, µs (None: failed or skipped).
    pub latency_us: Option<u64>,
    /// When it ended (its COMMIT returned), ms since the epoch.
    pub end_ms: f64,
}

/// Reads every `pgbench_log.*` file in `dir`:
/// `client_id transaction_no time script_no time_epoch time_us [schedule_lag]`.
pub fn read_log(dir: &Path) -> Result<Vec<Transaction>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if !path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("pgbench_log")) {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let parsed = (|| {
                Some(Transaction {
                    client: f.first()?.parse().ok()?,
                    number: f.get(1)?.parse().ok()?,
                    latency_us: f.get(2)?.parse().ok(),
                    end_ms: f.get(4)?.parse::<f64>().ok()? * 1000.0 + f.get(5)?.parse::<f64>().ok()? / 1000.0,
                })
            })();
            all.push(parsed.with_context(|| format!("unreadable pgbench log line {line:?}"))?);
        }
    }
    Ok(all)
}

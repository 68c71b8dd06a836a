//! `pgbench-ladder`: the API's create transaction, statement for statement, through `pgbench`
//! against the same server, at the same rising open-loop rates, judged by the same rule; then
//! one closed-loop run (no rate limit) for reference.
//!
//! pgbench's `--rate` schedules transactions as a Poisson process and charges each one from its
//! scheduled start (the per-transaction log's `time` includes the schedule lag), so its latency
//! is free of coordinated omission like the HTTP load's.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::ladder::{self, Ladder, LadderArgs, Progress, Step};
use crate::procfs::{CpuSnapshot, CpuUsage, Group};
use crate::workload;

/// The pgbench side's own options.
#[derive(Debug, Clone, Args)]
pub struct PgArgs {
    /// postgres://… URL of the database to run against (migrated, with the development catalog).
    #[arg(long, env = "ORDEXA_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The pgbench program.
    #[arg(long, default_value = "pgbench")]
    pgbench: PathBuf,
    /// Seconds pgbench keeps running after the window, so transactions scheduled at its end finish.
    #[arg(long, default_value_t = 2.0)]
    tail: f64,
    /// Database connections (pgbench -c); the API's pool size makes the comparison fair.
    #[arg(long, default_value_t = 16)]
    clients: u32,
    /// pgbench threads (-j).
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Skip the closed-loop reference run.
    #[arg(long)]
    pub no_closed_loop: bool,
    /// Where the script and pgbench's per-transaction logs go.
    #[arg(long)]
    work_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct PgbenchArgs {
    #[command(flatten)]
    ladder: LadderArgs,
    #[command(flatten)]
    pg: PgArgs,
    /// Where to write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A UUIDv7 made on the server (PostgreSQL 15 has no uuidv7()): a random UUID whose first 48
/// bits become the Unix time in milliseconds and whose version nibble becomes 7.
const UUID_V7_SQL: &str = "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing \
     substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), \
     'hex')::uuid";

/// A PostgreSQL array literal of text elements, each quoted.
fn text_array<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> =
        values.into_iter().map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{{{}}}", quoted.join(","))
}

fn number_array<T: ToString>(values: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = values.into_iter().map(|v| v.to_string()).collect();
    format!("{{{}}}", items.join(","))
}

/// The script and the `-D` variables carrying the values the API binds as parameters.
pub fn script(users: u32) -> Result<(String, Vec<(String, String)>)> {
    let (order, event) = workload::sample_order(0, &workload::user_id(1))?;
    let items = &order.items;
    let vars = vec![
        ("skus".to_owned(), text_array(items.iter().map(|i| i.sku.as_str()))),
        ("status".to_owned(), order.status.as_str().to_owned()),
        ("currency".to_owned(), order.currency.as_str().to_owned()),
        ("total".to_owned(), order.total.to_string()),
        ("shipping_address".to_owned(), serde_json::to_string(&order.shipping_address)?),
        ("version".to_owned(), order.version.to_string()),
        ("line_nos".to_owned(), number_array(1..=items.len())),
        ("names".to_owned(), text_array(items.iter().map(|i| i.name.as_str()))),
        ("quantities".to_owned(), number_array(items.iter().map(|i| i.quantity))),
        ("unit_prices".to_owned(), number_array(items.iter().map(|i| i.unit_price))),
        ("line_totals".to_owned(), number_array(items.iter().map(|i| i.line_total))),
        ("event_type".to_owned(), event.event_type.as_str().to_owned()),
        ("schema_version".to_owned(), ordexa_domain::EVENT_SCHEMA_VERSION.to_string()),
        ("payload".to_owned(), serde_json::to_string(&event)?),
        (
            "headers".to_owned(),
            serde_json::json!({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}).to_string(),
        ),
        ("response_body".to_owned(), serde_json::to_string(&order)?),
    ];
    let payload_bytes = vars.iter().find(|(n, _)| n == "payload").map(|(_, v)| v.len()).unwrap_or(0);
    let body_bytes = vars.iter().find(|(n, _)| n == "response_body").map(|(_, v)| v.len()).unwrap_or(0);
    let text = format!(
        r"-- The SQL transaction of ordexa_store::Store::create_order (workloads/store/src/orders.rs),
-- statement for statement. Run with -M prepared (sqlx prepares and caches its statements
-- too); the values the API binds are pgbench variables (-D), so they travel as parameters and
-- PostgreSQL parses them on every execution, as it does the API's. The event payload
-- ({payload_bytes} bytes) and the stored response ({body_bytes} bytes) are a real serialized
-- order.created event and order of this workload. Ids are made on the server: the
-- Idempotency-Key with gen_random_uuid(), the order and event ids as UUIDv7 like the API's.
\set uid random(1, {users})
BEGIN;
INSERT INTO idempotency_keys (user_id, key, request_hash)
  SELECT 'bench-user-' || :uid, k, sha256(convert_to(k, 'UTF8')) FROM (SELECT gen_random_uuid()::text AS k) AS fresh
  ON CONFLICT DO NOTHING
  RETURNING user_id, key AS idem_key, {UUID_V7_SQL} AS order_id, {UUID_V7_SQL} AS event_id \gset
SELECT sku, name, unit_price, currency, active FROM products WHERE sku = ANY(:skus::text[]);
INSERT INTO orders (id, user_id, status, currency, total, shipping_address, version, created_at, updated_at)
  VALUES (:order_id, :user_id, :status, :currency, :total, :shipping_address, :version, clock_timestamp(), clock_timestamp());
INSERT INTO order_items (order_id, line_no, sku, name, quantity, unit_price, line_total)
  SELECT :order_id::uuid, * FROM UNNEST(:line_nos::int[], :skus::text[], :names::text[], :quantities::int[], :unit_prices::bigint[], :line_totals::bigint[]);
INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, schema_version, payload, headers)
  VALUES (:event_id, :order_id, :version, :event_type, :schema_version, :payload, :headers);
UPDATE idempotency_keys SET response_status = 201, response_body = :response_body, order_id = :order_id
  WHERE user_id = :user_id AND key = :idem_key;
COMMIT;
"
    );
    Ok((text, vars))
}

pub fn write_script(path: &Path, users: u32) -> Result<Vec<(String, String)>> {
    let (text, vars) = script(users)?;
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(vars)
}

/// One line of pgbench's per-transaction log.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Transaction {
    /// When it completed, µs since the Unix epoch.
    done_us: u64,
    /// From its scheduled start to its end (includes the schedule lag under --rate); `None`
    /// when it failed or was skipped.
    latency_us: Option<u64>,
    schedule_lag_us: Option<u64>,
}

/// `client_id transaction_no time script_no time_epoch time_us [schedule_lag [retries]]`
fn parse_log_line(line: &str) -> Option<Transaction> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 6 {
        return None;
    }
    let epoch: u64 = fields[4].parse().ok()?;
    let micros: u64 = fields[5].parse().ok()?;
    Some(Transaction {
        done_us: epoch * 1_000_000 + micros,
        latency_us: fields[2].parse().ok(),
        schedule_lag_us: fields.get(6).and_then(|v| v.parse().ok()),
    })
}

fn read_logs(dir: &Path, prefix: &str) -> Result<Vec<Transaction>> {
    let mut transactions = Vec::new();
    let mut unreadable = 0usize;
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(&format!("{prefix}."))) {
            continue;
        }
        let text = fs::read_to_string(entry.path()).with_context(|| format!("reading {}", entry.path().display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse_log_line(line) {
                Some(t) => transactions.push(t),
                None => unreadable += 1,
            }
        }
    }
    if unreadable > 0 {
        bail!("{unreadable} lines of pgbench's {prefix}.* logs could not be read");
    }
    Ok(transactions)
}

/// Judges a run's log over the window that starts `warmup` after the first scheduled start.
fn summarize(transactions: &[Transaction], target: f64, warmup: f64, duration: f64) -> Result<Step> {
    let scheduled_of = |t: &Transaction| t.latency_us.map(|l| t.done_us.saturating_sub(l));
    let Some(first) = transactions.iter().filter_map(scheduled_of).min() else {
        bail!("pgbench completed no transaction");
    };
    let window_start = first + (warmup * 1e6) as u64;
    let window_end = window_start + (duration * 1e6) as u64;
    let in_window = |us: u64| us >= window_start && us < window_end;
    let mut latency = ladder::histogram()?;
    let mut lag = ladder::histogram()?;
    let (mut ok_in_window, mut scheduled, mut errors) = (0u64, 0u64, 0u64);
    for t in transactions {
        match (t.latency_us, scheduled_of(t)) {
            (Some(latency_us), Some(start)) => {
                if in_window(t.done_us) {
                    ok_in_window += 1;
                }
                if in_window(start) {
                    scheduled += 1;
                    ladder::record(&mut latency, latency_us);
                    if let Some(l) = t.schedule_lag_us {
                        ladder::record(&mut lag, l);
                    }
                }
            }
            _ if in_window(t.done_us) => {
                scheduled += 1;
                errors += 1;
            }
            _ => {}
        }
    }
    let mut error_kinds = BTreeMap::new();
    if errors > 0 {
        error_kinds.insert("failed or skipped transactions".to_owned(), errors);
    }
    Ok(Step {
        target_rate: target,
        achieved_rate: ok_in_window as f64 / duration,
        scheduled,
        offered_rate: scheduled as f64 / duration,
        errors,
        error_kinds,
        latency: ladder::latency(&latency),
        start_lag: ladder::latency(&lag),
        cpu: None,
        api_rss_peak_kib: None,
        busy_before_pct: None,
        repeated: false,
        sustained: false,
    })
}

struct Run {
    transactions: Vec<Transaction>,
    cpu: CpuUsage,
    failure: Option<String>,
}

/// pgbench, ready to run the create transaction at any rate.
pub struct PgbenchSide {
    ladder: LadderArgs,
    args: PgArgs,
    script_path: PathBuf,
    vars: Vec<(String, String)>,
}

impl PgbenchSide {
    /// Writes the script into the work folder.
    pub fn prepare(ladder: LadderArgs, args: PgArgs) -> Result<Self> {
        fs::create_dir_all(&args.work_dir).with_context(|| format!("creating {}", args.work_dir.display()))?;
        let script_path = args.work_dir.join("create_order.sql");
        let vars = write_script(&script_path, ladder.users)?;
        eprintln!("[pgbench] sustain rule: {}", ladder.rule().describe());
        Ok(PgbenchSide { ladder, args, script_path, vars })
    }

    /// Waits for a quiet machine, then runs pgbench at `rate` (closed loop without one); a step
    /// disturbed by other work on the machine is repeated once.
    pub fn step(&self, rate: Option<u32>) -> Result<Step> {
        let step = self.quiet_step(rate)?;
        if !step.disturbed() {
            return Ok(step);
        }
        eprintln!(
            "[pgbench] {} was disturbed by {:.2} cores of other work; repeating it once",
            rate.map(|r| format!("{r}/s")).unwrap_or_else(|| "the closed loop".to_owned()),
            step.other_cores().unwrap_or_default()
        );
        let mut step = self.quiet_step(rate)?;
        step.repeated = true;
        Ok(step)
    }

    fn quiet_step(&self, rate: Option<u32>) -> Result<Step> {
        let busy_before = self.ladder.quiet.wait();
        let name = rate.map(|r| format!("rate{r}")).unwrap_or_else(|| "closed".to_owned());
        let run = self.run_pgbench(&name, rate)?;
        let mut step = self.step_of(run, rate.map(f64::from).unwrap_or(0.0));
        step.busy_before_pct = Some(busy_before);
        Ok(step)
    }

    fn run_pgbench(&self, name: &str, rate: Option<u32>) -> Result<Run> {
        let (ladder, args) = (&self.ladder, &self.args);
        // Logs of an earlier step of the same name would be read as this one's.
        for entry in fs::read_dir(&args.work_dir)?.flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(&format!("{name}."))) {
                fs::remove_file(entry.path())?;
            }
        }
        let seconds = (ladder.warmup + ladder.duration + args.tail).ceil() as u64;
        let mut command = Command::new(&args.pgbench);
        command
            .arg("--no-vacuum")
            .args(["--protocol", "prepared"])
            .args(["--client", &args.clients.to_string()])
            .args(["--jobs", &args.threads.to_string()])
            .args(["--time", &seconds.to_string()])
            .arg("--log")
            .arg(format!("--log-prefix={}", args.work_dir.join(name).display()))
            .arg("--file")
            .arg(&self.script_path);
        if let Some(rate) = rate {
            command.args(["--rate", &rate.to_string()]);
        }
        for (var, value) in &self.vars {
            command.arg("--define").arg(format!("{var}={value}"));
        }
        command.arg(&args.database_url).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = command.spawn().with_context(|| format!("starting {}", args.pgbench.display()))?;

        let mut groups = vec![Group { name: "pgbench".into(), pid: child.id(), with_children: false }];
        if let Some(pid) = ladder.pg_pid {
            groups.push(Group { name: "postgres".into(), pid, with_children: true });
        }
        // Connections take a few milliseconds; the window starts after the warm-up.
        std::thread::sleep(Duration::from_secs_f64(ladder.warmup + 0.05));
        let before = CpuSnapshot::take(&groups);
        std::thread::sleep(Duration::from_secs_f64(ladder.duration));
        let cpu = before.usage_until(&CpuSnapshot::take(&groups));

        let output = child.wait_with_output().context("waiting for pgbench")?;
        let failure = (!output.status.success()).then(|| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            format!("pgbench exited with {}: {}", output.status, tail.join(" | "))
        });
        let transactions = read_logs(&args.work_dir, name)?;
        Ok(Run { transactions, cpu, failure })
    }

    fn step_of(&self, run: Run, target: f64) -> Step {
        let mut step = match summarize(&run.transactions, target, self.ladder.warmup, self.ladder.duration) {
            Ok(step) => step,
            Err(err) => Step {
                target_rate: target,
                achieved_rate: 0.0,
                scheduled: 0,
                offered_rate: 0.0,
                errors: 1,
                error_kinds: BTreeMap::from([(err.to_string(), 1)]),
                latency: None,
                start_lag: None,
                cpu: None,
                api_rss_peak_kib: None,
                busy_before_pct: None,
                repeated: false,
                sustained: false,
            },
        };
        if let Some(failure) = run.failure {
            eprintln!("[pgbench] {failure}");
            step.errors += 1;
            *step.error_kinds.entry(failure).or_default() += 1;
        }
        step.cpu = Some(run.cpu);
        step.sustained = target > 0.0 && self.ladder.rule().holds(&step);
        step
    }

    pub fn finish(self, steps: Vec<Step>, closed_loop: Option<Step>) -> Result<Ladder> {
        let mut settings = BTreeMap::new();
        settings.insert("arrivals".to_owned(), "Poisson process at the rate (pgbench --rate), open loop".to_owned());
        settings.insert(
            "connections".to_owned(),
            format!("{} (pgbench -c), {} threads (-j)", self.args.clients, self.args.threads),
        );
        settings.insert("query protocol".to_owned(), "prepared (-M prepared)".to_owned());
        settings.insert("users".to_owned(), self.ladder.users.to_string());
        let result = Ladder {
            tool: "pgbench".to_owned(),
            rule: self.ladder.rule(),
            warmup_s: self.ladder.warmup,
            duration_s: self.ladder.duration,
            settings,
            steps,
            api_memory_idle: None,
            api_memory_after: None,
            closed_loop,
            script: Some(fs::read_to_string(&self.script_path)?),
        };
        match result.highest_sustained() {
            Some(step) => eprintln!("[pgbench] highest sustained rate: {}/s", step.target_rate),
            None => eprintln!("[pgbench] no rate was sustained"),
        }
        Ok(result)
    }
}

pub fn run(args: PgbenchArgs) -> Result<()> {
    args.ladder.check()?;
    let side = PgbenchSide::prepare(args.ladder.clone(), args.pg.clone())?;
    let mut progress = Progress::new("pgbench", args.ladder.stop_after);
    for &rate in &args.ladder.rates {
        progress.push(side.step(Some(rate))?);
        if progress.done() {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(args.ladder.pause));
    }
    let closed_loop = if args.pg.no_closed_loop {
        None
    } else {
        let step = side.step(None)?;
        eprintln!("{}", ladder::step_line("pgbench closed loop", &step));
        Some(step)
    };
    let result = side.finish(progress.steps, closed_loop)?;
    if let Some(path) = &args.json {
        result.save(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_with_and_without_a_schedule_lag() {
        assert_eq!(
            parse_log_line("3 17 2345 0 1764150000 250000 120"),
            Some(Transaction { done_us: 1_764_150_000_250_000, latency_us: Some(2345), schedule_lag_us: Some(120) })
        );
        assert_eq!(
            parse_log_line("0 1 999 0 1764150000 5"),
            Some(Transaction { done_us: 1_764_150_000_000_005, latency_us: Some(999), schedule_lag_us: None })
        );
        let failed = parse_log_line("0 2 failed 0 1764150000 5 0");
        assert_eq!(failed.map(|t| t.latency_us), Some(None));
        assert_eq!(parse_log_line("garbage"), None);
    }

    #[test]
    fn the_window_starts_after_the_warmup() -> Result<()> {
        // One transaction every 10 ms for 3 s, each taking 1 ms.
        let base = 1_000_000_000_000u64;
        let transactions: Vec<Transaction> = (0..300u64)
            .map(|i| Transaction {
                done_us: base + i * 10_000 + 1_000,
                latency_us: Some(1_000),
                schedule_lag_us: Some(0),
            })
            .collect();
        let step = summarize(&transactions, 100.0, 1.0, 2.0)?;
        assert_eq!(step.scheduled, 200);
        assert!((step.achieved_rate - 100.0).abs() < 1.0, "{}", step.achieved_rate);
        assert_eq!(step.errors, 0);
        Ok(())
    }

    #[test]
    fn the_script_names_every_variable_it_is_given() -> Result<()> {
        let (text, vars) = script(10)?;
        for (name, value) in &vars {
            assert!(text.contains(&format!(":{name}")), "{name} unused");
            assert!(!value.is_empty());
        }
        assert!(text.contains("random(1, 10)"));
        Ok(())
    }
}

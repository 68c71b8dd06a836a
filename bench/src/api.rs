//! `make bench-api`: the API's create next to pgbench running the *same* transaction.
//!
//! The pgbench script is not written by hand: one create is sent to an API whose sessions log
//! every statement (`log_statement=all`), and the script is that transaction as PostgreSQL
//! received it, statement for statement, its parameters bound to pgbench variables. Ids that
//! must be unique (every uuid parameter, the Idempotency-Key) are drawn fresh per transaction by
//! one `SELECT gen_random_uuid() …` before `BEGIN`, pgbench's only statement of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use crate::load::{self, Step, Target};
use crate::pgbench;
use crate::stats::{self, Table, num, ratio};
use crate::workload::{Workload, free_addr, run_ordexa};

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The `ordexa` binary under test.
    #[arg(long)]
    ordexa: String,
    /// A fresh database, migrated with the development catalog.
    #[arg(long)]
    database_url: String,
    /// The PostgreSQL server's log file (read to capture the API's transaction).
    #[arg(long)]
    pg_log: PathBuf,
    #[arg(long)]
    cassandra_nodes: String,
    /// A keyspace of the run's own (created here, dropped by the script).
    #[arg(long)]
    keyspace: String,
    /// Rates to climb, per second; each side stops after its first rate not sustained.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The API's pool, and pgbench's connections.
    #[arg(long, default_value_t = 16)]
    pool: u32,
    #[arg(long, default_value_t = 200.0)]
    p99_bound_ms: f64,
    #[arg(long)]
    work_dir: PathBuf,
    /// Result path without extension (`.md` and `.json` are written).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Serialize)]
struct Report {
    rates: Vec<f64>,
    api: Vec<Step>,
    pgbench: Vec<Step>,
    api_highest_sustained: f64,
    pgbench_highest_sustained: f64,
    script: String,
}

pub async fn run(args: ApiArgs) -> Result<()> {
    let result = crate::interruptible(measure(&args)).await;
    let session = ordexa_readmodel::connect(std::slice::from_ref(&args.cassandra_nodes)).await?;
    session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", args.keyspace), ()).await?;
    result
}

async fn measure(args: &ApiArgs) -> Result<()> {
    std::fs::create_dir_all(&args.work_dir)?;
    let secret = uuid::Uuid::new_v4().simple().to_string().repeat(2);
    let nodes = args.cassandra_nodes.as_str();
    run_ordexa(
        &args.ordexa,
        &["cassandra-schema", "--cassandra-keyspace", &args.keyspace],
        &[("ORDEXA_CASSANDRA_NODES", nodes)],
    )?;
    let token = run_ordexa(&args.ordexa, &["token", "--user", "bench-user"], &[("ORDEXA_JWT_SECRET", &secret)])?;
    let http = reqwest::Client::new();
    let api = |name: &str, url: &str| -> Result<Workload> {
        let env = [
            ("ORDEXA_DATABASE_URL", url.to_owned()),
            ("ORDEXA_JWT_SECRET", secret.clone()),
            ("ORDEXA_HTTP_ADDR", free_addr()?),
            ("ORDEXA_CASSANDRA_NODES", nodes.to_owned()),
            ("ORDEXA_CASSANDRA_KEYSPACE", args.keyspace.clone()),
            ("ORDEXA_DATABASE_MAX_CONNECTIONS", args.pool.to_string()),
            ("RUST_LOG", "info".to_owned()),
        ];
        Workload::spawn(name, &args.ordexa, &["api"], &env, &args.work_dir.join(format!("{name}.log")))
    };

    // 1. One create through an API whose sessions log their statements.
    let sep = if args.database_url.contains('?') { '&' } else { '?' };
    let mut capture = api("api-capture", &format!("{}{sep}options=-c%20log_statement%3Dall", args.database_url))?;
    capture.ready(&http, std::time::Duration::from_secs(60)).await?;
    let log_from = std::fs::metadata(&args.pg_log).map(|m| m.len()).unwrap_or(0);
    let key = uuid::Uuid::new_v4().to_string();
    let target = Target {
        url: format!("http://{}/api/v1/orders", capture.addr.clone().unwrap_or_default()),
        token: token.clone(),
        body: crate::events::create_body(),
    };
    let response = http
        .post(&target.url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("idempotency-key", &key)
        .body(target.body.clone())
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::CREATED {
        bail!("the first create answered {}: {}", response.status(), response.text().await?);
    }
    capture.stop()?;
    let log = read_from(&args.pg_log, log_from)?;
    let (script, vars) = pgbench_script(&captured_transaction(&log)?, &key)?;
    let script_path = args.work_dir.join("create.sql");
    std::fs::write(&script_path, &script)?;

    // 2. The ladder: at each rate the API, then pgbench, so both meet the same machine state.
    let mut server = api("api", &args.database_url)?;
    server.ready(&http, std::time::Duration::from_secs(60)).await?;
    let target = Target { url: format!("http://{}/api/v1/orders", server.addr.clone().unwrap_or_default()), ..target };
    let (mut api_steps, mut pg_steps) = (Vec::new(), Vec::new());
    for &rate in &args.rates {
        let api_on = api_steps.last().is_none_or(|s: &Step| s.sustained(args.p99_bound_ms));
        let pg_on = pg_steps.last().is_none_or(|s: &Step| s.sustained(args.p99_bound_ms));
        if !api_on && !pg_on {
            break;
        }
        if api_on {
            let step = load::open_loop(&http, &target, rate, args.warmup, args.seconds, 512, None).await?;
            eprintln!(
                "[bench] api {rate}/s: {:.0}/s, p99 {:.1} ms, {} errors",
                step.achieved, step.latency.p99_ms, step.errors
            );
            api_steps.push(step);
        }
        if pg_on {
            let step = pgbench_step(args, &script_path, &vars, rate)?;
            eprintln!(
                "[bench] pgbench {rate}/s: {:.0}/s, p99 {:.1} ms, {} errors",
                step.achieved, step.latency.p99_ms, step.errors
            );
            pg_steps.push(step);
        }
    }
    server.stop()?;

    let highest =
        |steps: &[Step]| steps.iter().filter(|s| s.sustained(args.p99_bound_ms)).map(|s| s.rate).fold(0.0, f64::max);
    let report = Report {
        rates: args.rates.clone(),
        api_highest_sustained: highest(&api_steps),
        pgbench_highest_sustained: highest(&pg_steps),
        api: api_steps,
        pgbench: pg_steps,
        script,
    };
    let mut table = Table::new(&[
        "rate/s",
        "API achieved/s",
        "API p50 ms",
        "API p99 ms",
        "pgbench achieved/s",
        "pgbench p50 ms",
        "pgbench p99 ms",
    ]);
    let cells = |s: Option<&Step>| match s {
        Some(s) => [
            num(s.achieved) + if s.errors > 0 { " (errors)" } else { "" },
            num(s.latency.p50_ms),
            num(s.latency.p99_ms),
        ],
        None => ["–".into(), "–".into(), "–".into()],
    };
    for (i, rate) in args.rates.iter().enumerate().take(report.api.len().max(report.pgbench.len())) {
        let mut row = vec![num(*rate)];
        row.extend(cells(report.api.get(i)));
        row.extend(cells(report.pgbench.get(i)));
        table.row(row);
    }
    let facts = vec![
        format!(
            "highest sustained rate (≥ 95 % achieved, no error, p99 ≤ {} ms): API **{}/s**, pgbench **{}/s**, ratio **{}** (goal ≥ 0.8)",
            args.p99_bound_ms,
            report.api_highest_sustained,
            report.pgbench_highest_sustained,
            ratio(report.api_highest_sustained, report.pgbench_highest_sustained)
        ),
        format!(
            "{} s measured per rate after {} s of warm-up; API pool = pgbench connections = {}",
            args.seconds, args.warmup, args.pool
        ),
        "latency from each request's scheduled start (open loop; pgbench `-R` logs the same)".into(),
    ];
    let notes =
        vec![format!("The pgbench script, captured from the API's own transaction:\n\n```sql\n{}```", report.script)];
    stats::write(&args.out, "API create vs pgbench, same transaction", &facts, &table, &notes, &report)
}

fn read_from(path: &Path, offset: u64) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(bytes.get(usize::try_from(offset)?..).unwrap_or_default()).into_owned())
}

/// A statement as PostgreSQL logged it, with its parameters (`None` for NULL).
#[derive(Debug)]
struct Statement {
    sql: String,
    params: Vec<Option<String>>,
}

/// The transaction (BEGIN … COMMIT) of the session that inserted the idempotency key.
fn captured_transaction(log: &str) -> Result<Vec<Statement>> {
    // Records start with `<timestamp> [<pid>] `; continuation lines belong to the record above.
    let mut records: Vec<(String, String)> = Vec::new();
    for line in log.lines() {
        let pid = line
            .split_once(" [")
            .and_then(|(ts, rest)| (ts.len() >= 19 && ts.as_bytes()[4] == b'-').then(|| rest.split_once("] "))?);
        match (pid, records.last_mut()) {
            (Some((pid, rest)), _) => records.push((pid.to_owned(), rest.to_owned())),
            (None, Some(last)) => {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            (None, None) => {}
        }
    }
    let message = |r: &str, tag: &str| r.split_once(tag).map(|(_, m)| m.trim().to_owned());
    let at = records
        .iter()
        .position(|(_, r)| {
            message(r, "LOG:").is_some_and(|m| m.starts_with("execute") && m.contains("INSERT INTO idempotency_keys"))
        })
        .context("the API's create did not show in PostgreSQL's log (log_statement=all)")?;
    let pid = records[at].0.clone();
    let mine: Vec<&String> = records.iter().filter(|(p, _)| *p == pid).map(|(_, r)| r).collect();
    let at = mine.iter().position(|r| std::ptr::eq(*r, &records[at].1)).context("lost the create")?;
    let begin = mine[..at]
        .iter()
        .rposition(|r| message(r, "LOG:").as_deref() == Some("statement: BEGIN"))
        .context("no BEGIN")?;
    let mut statements = Vec::new();
    for (i, record) in mine.iter().enumerate().skip(begin + 1) {
        let Some(m) = message(record, "LOG:") else { continue };
        if m == "statement: COMMIT" {
            return Ok(statements);
        }
        let Some(sql) = m.strip_prefix("execute ").and_then(|s| s.split_once(": ")).map(|(_, sql)| sql.to_owned())
        else {
            bail!("unexpected statement in the create's transaction: {m}");
        };
        let params = match mine.get(i + 1).and_then(|r| message(r, "DETAIL:")) {
            Some(d) if d.starts_with("parameters: ") => parse_params(&d["parameters: ".len()..])?,
            _ => Vec::new(),
        };
        statements.push(Statement { sql, params });
    }
    bail!("the create's transaction did not commit in the captured log")
}

/// `$1 = 'a''b', $2 = NULL` → [Some("a'b"), None].
fn parse_params(text: &str) -> Result<Vec<Option<String>>> {
    let mut params = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (_, after) = rest.split_once(" = ").context("parameter list")?;
        if let Some(r) = after.strip_prefix("NULL") {
            params.push(None);
            rest = r;
        } else {
            let mut chars = after.char_indices().skip(1).peekable();
            let mut value = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                        chars.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                }
                value.push(c);
            }
            params.push(Some(value));
            rest = &after[end.context("unterminated parameter")?..];
        }
        rest = rest.trim_start_matches(", ");
    }
    Ok(params)
}

/// The pgbench script of the captured transaction and its `-D` variables.
fn pgbench_script(statements: &[Statement], key: &str) -> Result<(String, Vec<(String, String)>)> {
    let mut fresh: HashMap<String, String> = HashMap::new();
    let mut vars = Vec::new();
    let mut body = String::new();
    for (i, st) in statements.iter().enumerate() {
        let mut sql = st.sql.clone();
        for (n, value) in st.params.iter().enumerate().rev() {
            let replacement = match value {
                None => "NULL".to_owned(),
                Some(v) if v == key => ":fresh_key".to_owned(),
                Some(v) if uuid::Uuid::parse_str(v).is_ok() => {
                    let next = format!("fresh_{}", fresh.len() + 1);
                    format!(":{}::uuid", fresh.entry(v.clone()).or_insert(next))
                }
                Some(v) => {
                    let name = format!("s{}p{}", i + 1, n + 1);
                    vars.push((name.clone(), v.clone()));
                    format!(":{name}")
                }
            };
            sql = sql.replace(&format!("${}", n + 1), &replacement);
        }
        body += &format!("{sql};\n");
    }
    let mut draws: Vec<&String> = fresh.values().collect();
    draws.sort();
    let select: Vec<String> = std::iter::once("gen_random_uuid()::text AS fresh_key".to_owned())
        .chain(draws.iter().map(|v| format!("gen_random_uuid() AS {v}")))
        .collect();
    let script = format!("SELECT {} \\gset\nBEGIN;\n{body}COMMIT;\n", select.join(", "));
    Ok((script, vars))
}

/// pgbench at `rate` for warm-up + seconds (+1 s so the last scheduled ones run), judged on the
/// transactions scheduled in the measured window.
fn pgbench_step(args: &ApiArgs, script: &Path, vars: &[(String, String)], rate: f64) -> Result<Step> {
    let dir = args.work_dir.join(format!("pgbench-{rate}"));
    let _ = std::fs::remove_dir_all(&dir);
    pgbench::Run {
        url: &args.database_url,
        script,
        vars,
        clients: args.pool,
        rate: Some(rate),
        seconds: Some(args.warmup + args.seconds + 1.0),
        transactions: None,
        log_dir: Some(&dir),
        options: "",
    }
    .run()?;
    let log = pgbench::read_log(&dir)?;
    let scheduled = |t: &pgbench::Transaction| t.end_ms - t.latency_us.unwrap_or(0) as f64 / 1000.0;
    let first = log.iter().map(scheduled).fold(f64::INFINITY, f64::min);
    let (from, to) = (first + args.warmup * 1000.0, first + (args.warmup + args.seconds) * 1000.0);
    let window: Vec<_> = log.iter().filter(|t| (from..to).contains(&scheduled(t))).collect();
    let ok: Vec<u64> = window.iter().filter_map(|t| t.latency_us).collect();
    Ok(Step {
        rate,
        achieved: ok.len() as f64 / args.seconds,
        errors: (window.len() - ok.len()) as u64,
        latency: stats::latency(ok)?,
    })
}

//! Latency summaries and the result files: one Markdown table and one JSON document per run.

use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Summarizes latencies given in microseconds (3 significant digits).
pub fn latency(values_us: impl IntoIterator<Item = u64>) -> Result<Latency> {
    let mut h = Histogram::<u64>::new(3)?;
    for v in values_us {
        h.record(v.max(1))?;
    }
    if h.is_empty() {
        return Ok(Latency::default());
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(Latency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    })
}

/// A Markdown table: a header row and rows of cells.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        out += &line(
            &self
                .header
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---" } else { "---:" }.to_owned())
                .collect::<Vec<_>>(),
        );
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

/// Writes `<out>.md` (a title, the run's facts, the table, notes) and `<out>.json`.
pub fn write(
    out: &Path,
    title: &str,
    facts: &[String],
    table: &Table,
    notes: &[String],
    json: &impl Serialize,
) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut md = format!("# {title}\n\n");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    md += &format!(
        "- {when}; {cores} cores, load average (1, 5, 15 min) at the end: {}\n",
        load.split(' ').take(3).collect::<Vec<_>>().join(", ")
    );
    for fact in facts {
        md += &format!("- {fact}\n");
    }
    md += &format!("\n{}", table.markdown());
    if !notes.is_empty() {
        md += "\n";
        for note in notes {
            md += &format!("{note}\n\n");
        }
    }
    let md_path = out.with_extension("md");
    std::fs::write(&md_path, md.trim_end().to_owned() + "\n")
        .with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = out.with_extension("json");
    std::fs::write(&json_path, serde_json::to_string_pretty(json)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    eprintln!("[bench] results: {} and {}", md_path.display(), json_path.display());
    Ok(())
}

/// A figure with one decimal, or with none past 100.
pub fn num(v: f64) -> String {
    if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// A ratio, as the goals state it.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}", a / b) } else { "–".to_owned() }
}

//! The run's chart as a hand-written SVG: drain rates next to the ceiling (left), commit →
//! visible latency p50/p99 per load level on a log scale with the goals (right).

use std::fmt::Write as _;

use super::E2eRun;
use super::live::Live;
use crate::relay::median;

const W: f64 = 1000.0;
const H: f64 = 480.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 380.0;
const PROJECTOR: &str = "#2f6db5";
const CEILING: &str = "#9aa5b1";
const P50: &str = "#3f9c5a";
const P99: &str = "#d9822b";

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn text(out: &mut String, x: f64, y: f64, size: u32, anchor: &str, body: &str) {
    let _ = writeln!(
        out,
        r##"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" font-family="sans-serif" fill="#222">{}</text>"##,
        esc(body)
    );
}

fn rect(out: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str) {
    let _ = writeln!(out, r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{fill}"/>"#, h.max(0.0));
}

fn line(out: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str, dash: bool) {
    let dash = if dash { r#" stroke-dasharray="6 4""# } else { "" };
    let _ = writeln!(
        out,
        r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="1.5"{dash}/>"#
    );
}

/// A "nice" upper bound for a linear axis.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|&m| m >= v).unwrap_or(10.0 * magnitude)
}

pub fn chart(run: &E2eRun, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">"#);
    rect(&mut out, 0.0, 0.0, W, H, "#ffffff");
    text(&mut out, W / 2.0, 26.0, 17, "middle", title);
    drain_panel(&mut out, run, 70.0, 330.0);
    latency_panel(&mut out, run, 500.0, 960.0);
    out.push_str("</svg>\n");
    out
}

fn drain_panel(out: &mut String, run: &E2eRun, left: f64, right: f64) {
    text(out, (left + right) / 2.0, 52.0, 14, "middle", "Drain of the preloaded events (events/s)");
    let projector: Vec<f64> = run.drains.iter().map(|d| d.throughput.rate).collect();
    let ceiling: Vec<f64> = run.ceilings.iter().map(|t| t.rate).collect();
    if projector.is_empty() || ceiling.is_empty() {
        text(out, (left + right) / 2.0, (TOP + BOTTOM) / 2.0, 13, "middle", "no drain measured");
        return;
    }
    let (p, c) = (median(&projector), median(&ceiling));
    let top = nice_max(projector.iter().chain(&ceiling).copied().fold(0.0, f64::max) * 1.1);
    let y = |v: f64| BOTTOM - (BOTTOM - TOP) * v / top;
    for i in 0..=5 {
        let v = top * f64::from(i) / 5.0;
        line(out, (left, y(v)), (right, y(v)), "#e4e4e4", false);
        text(out, left - 6.0, y(v) + 4.0, 11, "end", &format!("{v:.0}"));
    }
    let bar = (right - left) / 5.0;
    for (i, (label, value, all, color)) in
        [("projector", p, &projector, PROJECTOR), ("ceiling (same writes, no Kafka)", c, &ceiling, CEILING)]
            .into_iter()
            .enumerate()
    {
        let x = left + bar * (1.0 + 2.0 * i as f64);
        rect(out, x, y(value), bar, BOTTOM - y(value), color);
        text(out, x + bar / 2.0, y(value) - 6.0, 12, "middle", &format!("{value:.0}"));
        for v in all.iter() {
            let _ = writeln!(
                out,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="none" stroke="#222"/>"##,
                x + bar / 2.0,
                y(*v)
            );
        }
        text(out, x + bar / 2.0, BOTTOM + 18.0, 11, "middle", label.split(" (").next().unwrap_or(label));
        if let Some((_, rest)) = label.split_once(" (") {
            text(out, x + bar / 2.0, BOTTOM + 32.0, 10, "middle", &format!("({rest}"));
        }
    }
    line(out, (left, BOTTOM), (right, BOTTOM), "#222", false);
    text(
        out,
        (left + right) / 2.0,
        BOTTOM + 52.0,
        12,
        "middle",
        &format!("median of {} rounds (circles: each round); ratio {:.2} (goal ≥ 0.8)", projector.len(), p / c),
    );
}

/// One load's bars: its label, (p50, p99) and the p99 goal, ms.
type Bars = (String, Option<(f64, f64)>, Option<f64>);

fn latency_panel(out: &mut String, run: &E2eRun, left: f64, right: f64) {
    text(out, (left + right) / 2.0, 52.0, 14, "middle", "Commit → visible in Cassandra (ms, log scale)");
    let Some(live) = &run.live else {
        text(out, (left + right) / 2.0, (TOP + BOTTOM) / 2.0, 13, "middle", "no live phase measured");
        return;
    };
    let mut groups: Vec<Bars> = live
        .levels
        .iter()
        .map(|l| {
            let goal = if (l.fraction - 0.5).abs() < 1e-9 {
                Some(100.0)
            } else if (l.fraction - 0.75).abs() < 1e-9 {
                Some(500.0)
            } else {
                None
            };
            (
                format!("{:.0} % ({:.0}/s)", l.fraction * 100.0, l.target_rate),
                l.visible_after_response.as_ref().map(|v| (v.p50_ms, v.p99_ms)),
                goal,
            )
        })
        .collect();
    if let Some(b) = &live.burst {
        groups.push((
            format!("burst ({:.0}/s got)", b.achieved_rate),
            b.visible_after_response.as_ref().map(|v| (v.p50_ms, v.p99_ms)),
            None,
        ));
    }
    let max = groups.iter().filter_map(|g| g.1.map(|v| v.1)).fold(1000.0, f64::max);
    let decades = max.log10().ceil().max(3.0) as i32;
    let y = |v: f64| BOTTOM - (BOTTOM - TOP) * (v.max(1.0).log10() / f64::from(decades));
    for d in 0..=decades {
        let v = 10f64.powi(d);
        line(out, (left, y(v)), (right, y(v)), "#e4e4e4", false);
        text(out, left - 6.0, y(v) + 4.0, 11, "end", &format!("{v:.0}"));
    }
    let slot = (right - left) / groups.len().max(1) as f64;
    let bar = slot / 4.0;
    for (i, (label, values, goal)) in groups.iter().enumerate() {
        let x = left + slot * i as f64 + slot / 2.0 - bar;
        if let Some((p50, p99)) = values {
            for (j, (v, color)) in [(*p50, P50), (*p99, P99)].into_iter().enumerate() {
                let bx = x + bar * j as f64;
                rect(out, bx, y(v), bar - 2.0, BOTTOM - y(v), color);
                text(out, bx + bar / 2.0, y(v) - 5.0, 10, "middle", &format!("{v:.0}"));
            }
        } else {
            text(out, x + bar, BOTTOM - 10.0, 11, "middle", "–");
        }
        if let Some(goal) = goal {
            line(out, (x - 6.0, y(*goal)), (x + 2.0 * bar + 4.0, y(*goal)), "#c0392b", true);
            text(out, x + 2.0 * bar + 6.0, y(*goal) + 4.0, 10, "start", &format!("p99 goal {goal:.0}"));
        }
        text(out, x + bar, BOTTOM + 18.0, 11, "middle", label);
    }
    line(out, (left, BOTTOM), (right, BOTTOM), "#222", false);
    let legend_y = BOTTOM + 44.0;
    rect(out, left + 60.0, legend_y - 10.0, 12.0, 12.0, P50);
    text(out, left + 78.0, legend_y, 12, "start", "p50");
    rect(out, left + 130.0, legend_y - 10.0, 12.0, 12.0, P99);
    text(out, left + 148.0, legend_y, 12, "start", "p99 (201 response → row in orders_by_id)");
    for (i, caption) in base_caption(live).iter().enumerate() {
        text(out, (left + right) / 2.0, legend_y + 20.0 + 14.0 * i as f64, 11, "middle", caption);
    }
}

/// What the loads are fractions of (two lines): the rate measured with the pipeline, and the
/// API alone for reference; or the given rate.
fn base_caption(live: &Live) -> [String; 2] {
    let alone = live.api_alone_rate.map(|r| format!("{r:.0}/s")).unwrap_or_else(|| "not given".to_owned());
    match &live.ladder {
        Some(_) => [
            format!("load as a fraction of the highest rate sustained with the pipeline, {:.0}/s", live.api_rate),
            format!("(measured in this run; API alone, bench-api: {alone})"),
        ],
        None => [
            format!("load as a fraction of the API's highest sustained rate, {:.0}/s", live.api_rate),
            "(given, not measured in this run)".to_owned(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::pipeline::{Ended, PipelineLadder, Plan};
    use crate::ladder::SustainRule;

    #[test]
    fn nice_bounds_round_up() {
        assert_eq!(nice_max(7300.0), 10000.0);
        assert_eq!(nice_max(1900.0), 2000.0);
        assert_eq!(nice_max(2100.0), 2500.0);
        assert_eq!(nice_max(0.0), 1.0);
    }

    #[test]
    fn the_caption_states_the_measured_base_and_the_api_alone() {
        let given = Live { api_rate: 1300.0, api_alone_rate: Some(1300.0), ..Live::default() };
        assert_eq!(base_caption(&given)[0], "load as a fraction of the API's highest sustained rate, 1300/s");
        let ladder = PipelineLadder {
            rule: SustainRule::new(200.0),
            max_caught_up_s: 2.0,
            plan: Plan { start: 260.0, factor: 1.25, refine: 2, max_steps: 8 },
            start_from: String::new(),
            warmup_s: 3.0,
            seconds: 15.0,
            budget_s: 200.0,
            steps: Vec::new(),
            ended: Ended::Bracketed,
            took_s: 0.0,
        };
        let measured = Live { api_rate: 430.0, ladder: Some(ladder), ..given };
        let caption = base_caption(&measured);
        assert!(caption[0].ends_with("sustained with the pipeline, 430/s"), "{caption:?}");
        assert!(caption[1].contains("API alone, bench-api: 1300/s"), "{caption:?}");
        let svg = chart(&E2eRun { live: Some(measured), ..E2eRun::default() }, "t");
        assert!(svg.contains("430/s") && svg.contains("1300/s"));
    }

    #[test]
    fn an_empty_run_still_draws() {
        let svg = chart(&E2eRun::default(), "t & <x>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &amp; &lt;x&gt;"));
    }
}

//! The highest create rate the whole pipeline sustains, measured in the run itself: a short ladder
//! of open-loop create steps against `ordexa api` + `ordexa relay` + `ordexa projector` (the live
//! set-up, the same processes the loads then run against). Each step is judged on the create side
//! by bench-api's [`SustainRule`] and on the read side by whether the projector kept up; the
//! sustained rate is the highest step that held, and the live loads and the burst are fractions
//! of it.
//!
//! Only the pure parts live here (which rate next, a step's verdict, the choice); `live.rs` runs
//! the steps.

use serde::{Deserialize, Serialize};

use super::live::Level;
use crate::ladder::{Step, SustainRule};

/// How the ladder's rates are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The first rate asked for, per second.
    pub start: f64,
    /// Up the ladder while every step holds: × this; down while none has held: ÷ this.
    pub factor: f64,
    /// Once a held and a failed step bracket the rate, this many more steps halve the gap.
    pub refine: u32,
    /// At most this many steps in all.
    pub max_steps: usize,
}

/// What the plan says after the steps so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Ask(f64),
    Done(Ended),
}

/// Why a ladder ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ended {
    /// A held and a failed step bracket the rate, refined as far as the plan goes.
    #[default]
    Bracketed,
    /// The step limit came before any step failed: the sustained rate is only a lower bound.
    NoStepFailed,
    /// Not one step held, down to the lowest rate tried.
    NoStepHeld,
    /// The time budget ran out before the plan ended.
    Budget,
}

impl Ended {
    pub fn describe(self) -> &'static str {
        match self {
            Ended::Bracketed => "a held and a failed step bracket the rate, refined as far as the plan goes",
            Ended::NoStepFailed => {
                "the step limit came before any step failed, so the sustained rate is only a lower bound"
            }
            Ended::NoStepHeld => "no step held, down to the lowest rate tried",
            Ended::Budget => "the time budget ran out before the plan ended (the bracket may be coarser)",
        }
    }
}

/// A rate as asked: whole numbers, multiples of 5 from 100/s up.
pub fn round_rate(rate: f64) -> f64 {
    if rate >= 100.0 { (rate / 5.0).round() * 5.0 } else { rate.round().max(1.0) }
}

impl Plan {
    /// The next rate to ask for, given each step so far as (rate asked, held), in the order run.
    ///
    /// Up by `factor` while every step held; down by `factor` while none has; once both exist,
    /// `refine` steps at the middle between the highest held rate below the lowest failed one and
    /// that failed one. Ends early when a rate would repeat or rounding leaves nothing between.
    pub fn next(&self, steps: &[(f64, bool)]) -> Next {
        let Some(&(last, _)) = steps.last() else { return Next::Ask(round_rate(self.start)) };
        let failed = steps.iter().filter(|s| !s.1).map(|s| s.0).min_by(f64::total_cmp);
        let held = steps.iter().filter(|s| s.1 && failed.is_none_or(|f| s.0 < f)).map(|s| s.0).max_by(f64::total_cmp);
        let ended = match (held, failed) {
            (_, None) => Ended::NoStepFailed,
            (None, Some(_)) => Ended::NoStepHeld,
            (Some(_), Some(_)) => Ended::Bracketed,
        };
        if steps.len() >= self.max_steps {
            return Next::Done(ended);
        }
        let next = match (held, failed) {
            (_, None) => round_rate(last * self.factor),
            (None, Some(f)) => round_rate(f / self.factor),
            (Some(h), Some(f)) => {
                if self.refinements(steps) >= self.refine {
                    return Next::Done(ended);
                }
                let middle = round_rate((h + f) / 2.0);
                if middle <= h || middle >= f {
                    return Next::Done(ended);
                }
                middle
            }
        };
        if steps.iter().any(|s| s.0 == next) { Next::Done(ended) } else { Next::Ask(next) }
    }

    /// Steps run after the first held and the first failed step both existed.
    fn refinements(&self, steps: &[(f64, bool)]) -> u32 {
        let (mut any_held, mut any_failed) = (false, false);
        for (i, &(_, held)) in steps.iter().enumerate() {
            any_held |= held;
            any_failed |= !held;
            if any_held && any_failed {
                return u32::try_from(steps.len() - 1 - i).unwrap_or(u32::MAX);
            }
        }
        0
    }
}

/// One step of the ladder: everything measured, as for a live load, and the verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LadderStep {
    pub level: Level,
    /// The create side held the sustain rule (rate, errors, p99), as bench-api judges a step.
    pub creates_held: bool,
    /// The projector kept up: every committed order projected within the bound after the
    /// schedule's end, and every sampled order seen in Cassandra.
    pub kept_up: bool,
    pub held: bool,
}

/// A live load as a step of bench-api's ladder, for the [`SustainRule`]: the create side only.
pub fn as_step(level: &Level) -> Step {
    Step {
        target_rate: level.target_rate,
        achieved_rate: level.achieved_rate,
        scheduled: level.scheduled,
        offered_rate: if level.seconds > 0.0 { level.scheduled as f64 / level.seconds } else { 0.0 },
        errors: level.errors,
        error_kinds: level.error_kinds.clone(),
        latency: level.api_latency.clone(),
        start_lag: None,
        cpu: level.cpu.clone(),
        api_rss_peak_kib: level.rss_peak_kib.get("api").copied(),
        busy_before_pct: Some(level.busy_before_pct),
        repeated: level.repeated,
        sustained: false,
    }
}

/// Judges a measured step: the rule on the creates, and the projector's catch-up.
pub fn judge(rule: &SustainRule, max_caught_up_s: f64, level: Level) -> LadderStep {
    let creates_held = rule.holds(&as_step(&level));
    let kept_up = level.caught_up_s <= max_caught_up_s && level.not_visible == 0;
    LadderStep { creates_held, kept_up, held: creates_held && kept_up, level }
}

/// When a step holds, in words.
pub fn describe_rule(rule: &SustainRule, max_caught_up_s: f64) -> String {
    format!(
        "its creates pass bench-api's sustain rule (achieved ≥ {:.0} % of the asked rate, 0 errors, create p99 ≤ {} ms \
         measured from each request's scheduled start) and the projector kept up (it had counted every committed \
         order at most {max_caught_up_s} s after the step's schedule ended, and every sampled order was seen in \
         Cassandra)",
        rule.min_achieved_fraction * 100.0,
        rule.p99_bound_ms
    )
}

/// The whole ladder: how it was run, its steps, and why it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineLadder {
    pub rule: SustainRule,
    /// A step's projector must have caught up at most this long after its schedule ended.
    pub max_caught_up_s: f64,
    pub plan: Plan,
    /// Where `plan.start` came from (a fraction of the API-alone rate, or given).
    pub start_from: String,
    pub warmup_s: f64,
    pub seconds: f64,
    /// No new step starts after this many seconds of ladder.
    pub budget_s: f64,
    pub steps: Vec<LadderStep>,
    pub ended: Ended,
    /// Seconds the whole ladder took, quiet waits and catch-ups included.
    pub took_s: f64,
}

impl PipelineLadder {
    /// Each step so far as (rate asked, held), for [`Plan::next`].
    pub fn asked(&self) -> Vec<(f64, bool)> {
        self.steps.iter().map(|s| (s.level.target_rate, s.held)).collect()
    }

    /// The highest step that held.
    pub fn sustained(&self) -> Option<&LadderStep> {
        self.steps.iter().filter(|s| s.held).max_by(|a, b| a.level.target_rate.total_cmp(&b.level.target_rate))
    }

    pub fn sustained_rate(&self) -> Option<f64> {
        self.sustained().map(|s| s.level.target_rate)
    }

    /// Why a step did not hold (empty when it held), for the report and the console.
    pub fn why_not(&self, step: &LadderStep) -> Vec<String> {
        let mut why = Vec::new();
        let s = as_step(&step.level);
        let expected = SustainRule::expected_rate(&s);
        if s.achieved_rate < self.rule.min_achieved_fraction * expected {
            why.push(format!(
                "achieved {:.0} % of the rate",
                100.0 * s.achieved_rate / expected.max(f64::MIN_POSITIVE)
            ));
        }
        if s.errors > 0 {
            why.push(format!("{} errors", s.errors));
        }
        match &s.latency {
            Some(l) if l.p99_ms > self.rule.p99_bound_ms => {
                why.push(format!("create p99 {:.0} ms > {:.0} ms", l.p99_ms, self.rule.p99_bound_ms));
            }
            Some(_) => {}
            None => why.push("no create succeeded".to_owned()),
        }
        if step.level.caught_up_s > self.max_caught_up_s {
            why.push(format!("caught up {:.1} s > {:.1} s", step.level.caught_up_s, self.max_caught_up_s));
        }
        if step.level.not_visible > 0 {
            why.push(format!("{} sampled orders never visible", step.level.not_visible));
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::Latency;

    const PLAN: Plan = Plan { start: 260.0, factor: 1.25, refine: 2, max_steps: 8 };

    /// Runs the plan against a pipeline that holds every rate up to `capacity`.
    fn run(plan: &Plan, capacity: f64) -> (Vec<(f64, bool)>, Ended) {
        let mut steps = Vec::new();
        loop {
            match plan.next(&steps) {
                Next::Ask(rate) => steps.push((rate, rate <= capacity)),
                Next::Done(ended) => return (steps, ended),
            }
        }
    }

    fn rates(steps: &[(f64, bool)]) -> Vec<f64> {
        steps.iter().map(|s| s.0).collect()
    }

    fn level(rate: f64, achieved: f64, errors: u64, p99: f64, caught_up_s: f64) -> Level {
        Level {
            target_rate: rate,
            achieved_rate: achieved,
            seconds: 15.0,
            scheduled: (rate * 15.0) as u64,
            errors,
            api_latency: Some(Latency { count: 100, p50_ms: 5.0, p90_ms: 9.0, p99_ms: p99, max_ms: p99, mean_ms: 5.0 }),
            caught_up_s,
            ..Level::default()
        }
    }

    #[test]
    fn rates_are_rounded_to_whole_numbers_and_fives_above_100() {
        assert_eq!(round_rate(406.25), 405.0);
        assert_eq!(round_rate(408.0), 410.0);
        assert_eq!(round_rate(61.4), 61.0);
        assert_eq!(round_rate(0.2), 1.0);
    }

    #[test]
    fn the_ladder_climbs_until_a_step_fails_then_halves_the_gap() {
        let (steps, ended) = run(&PLAN, 450.0);
        assert_eq!(rates(&steps), [260.0, 325.0, 405.0, 505.0, 455.0, 430.0]);
        assert_eq!(ended, Ended::Bracketed);
        assert_eq!(steps.iter().filter(|s| s.1).map(|s| s.0).fold(0.0, f64::max), 430.0);
    }

    #[test]
    fn a_failing_first_step_walks_down_until_one_holds() {
        let (steps, ended) = run(&PLAN, 200.0);
        assert_eq!(rates(&steps), [260.0, 210.0, 170.0, 190.0, 200.0]);
        assert_eq!(ended, Ended::Bracketed);
    }

    #[test]
    fn the_step_limit_ends_a_ladder_that_never_fails_as_a_lower_bound() {
        let (steps, ended) = run(&Plan { max_steps: 3, ..PLAN }, 10_000.0);
        assert_eq!(rates(&steps), [260.0, 325.0, 405.0]);
        assert_eq!(ended, Ended::NoStepFailed);
    }

    #[test]
    fn nothing_held_ends_at_the_step_limit_or_at_one_per_second() {
        let (steps, ended) = run(&PLAN, 0.0);
        assert_eq!(steps.len(), 8);
        assert_eq!(ended, Ended::NoStepHeld);
        let (steps, ended) = run(&Plan { start: 3.0, factor: 2.0, refine: 2, max_steps: 8 }, 0.0);
        assert_eq!(rates(&steps), [3.0, 2.0, 1.0]);
        assert_eq!(ended, Ended::NoStepHeld);
    }

    #[test]
    fn refining_stops_when_rounding_leaves_no_rate_between() {
        let (steps, ended) = run(&Plan { start: 100.0, factor: 1.05, refine: 5, max_steps: 20 }, 106.0);
        assert_eq!(rates(&steps), [100.0, 105.0, 110.0]);
        assert_eq!(ended, Ended::Bracketed);
    }

    #[test]
    fn a_step_holds_only_when_the_creates_hold_and_the_projector_keeps_up() {
        let rule = SustainRule::new(200.0);
        let ok = judge(&rule, 2.0, level(400.0, 399.0, 0, 150.0, 0.4));
        assert!(ok.creates_held && ok.kept_up && ok.held);
        for (what, l) in [
            ("rate", level(400.0, 370.0, 0, 150.0, 0.4)),
            ("errors", level(400.0, 399.0, 3, 150.0, 0.4)),
            ("p99", level(400.0, 399.0, 0, 250.0, 0.4)),
        ] {
            let s = judge(&rule, 2.0, l);
            assert!(!s.creates_held && s.kept_up && !s.held, "{what}");
        }
        let behind = judge(&rule, 2.0, level(400.0, 399.0, 0, 150.0, 2.5));
        assert!(behind.creates_held && !behind.kept_up && !behind.held);
        let lost = judge(&rule, 2.0, Level { not_visible: 1, ..level(400.0, 399.0, 0, 150.0, 0.4) });
        assert!(!lost.kept_up && !lost.held);
    }

    #[test]
    fn the_sustained_rate_is_the_highest_step_that_held_and_failures_say_why() {
        let rule = SustainRule::new(200.0);
        let mut ladder = PipelineLadder {
            rule,
            max_caught_up_s: 2.0,
            plan: PLAN,
            start_from: String::new(),
            warmup_s: 3.0,
            seconds: 15.0,
            budget_s: 200.0,
            steps: Vec::new(),
            ended: Ended::Bracketed,
            took_s: 0.0,
        };
        assert_eq!(ladder.sustained_rate(), None);
        let rule_text = describe_rule(&rule, 2.0);
        assert!(rule_text.contains("≥ 95 %") && rule_text.contains("p99 ≤ 200 ms") && rule_text.contains("2 s"));
        for l in [
            level(260.0, 260.0, 0, 90.0, 0.2),
            level(325.0, 325.0, 0, 140.0, 0.3),
            level(405.0, 380.0, 12, 900.0, 3.5),
            level(365.0, 364.0, 0, 180.0, 0.9),
        ] {
            ladder.steps.push(judge(&rule, 2.0, l));
        }
        assert_eq!(ladder.sustained_rate(), Some(365.0));
        assert_eq!(ladder.asked(), [(260.0, true), (325.0, true), (405.0, false), (365.0, true)]);
        assert!(ladder.why_not(&ladder.steps[0]).is_empty());
        assert_eq!(
            ladder.why_not(&ladder.steps[2]),
            ["achieved 94 % of the rate", "12 errors", "create p99 900 ms > 200 ms", "caught up 3.5 s > 2.0 s"]
        );
    }
}

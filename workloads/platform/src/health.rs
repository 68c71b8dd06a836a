//! A role's health: readiness with a reason a person can act on, and liveness that reflects
//! progress.
//!
//! Liveness. A role marks itself [`Health::busy`] while work waits for it (rows claimed, a batch
//! taken) and reports each completed [`Health::step`] — a success, or a failed attempt it will
//! retry. It is live unless work has waited for longer than the stall limit without a single
//! step: a task stuck on a call that never returns, not one retrying against a server that is
//! down (restarting it would not bring the server back). Kubernetes restarts a pod whose
//! `/healthz` fails.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long work may wait without a step before the role counts as stuck, unless told otherwise.
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(60);

/// Whether a role can do its work right now, and whether it is making progress.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<Mutex<State>>,
    stall_limit: Duration,
}

#[derive(Debug)]
struct State {
    ready: Result<(), String>,
    /// Since when work has waited, if it does.
    busy_since: Option<Instant>,
    last_step: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Health::new("starting")
    }
}

impl Health {
    /// Not ready, for `reason`, until [`Health::ready`] is called; idle.
    pub fn new(reason: &str) -> Self {
        let state = State { ready: Err(reason.to_owned()), busy_since: None, last_step: Instant::now() };
        Health { inner: Arc::new(Mutex::new(state)), stall_limit: DEFAULT_STALL_LIMIT }
    }

    /// The same health with another stall limit.
    pub fn with_stall_limit(mut self, limit: Duration) -> Self {
        self.stall_limit = limit;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn ready(&self) {
        self.state().ready = Ok(());
    }

    pub fn not_ready(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut state = self.state();
        if state.ready.as_ref().err() != Some(&reason) {
            tracing::warn!(%reason, "not ready");
        }
        state.ready = Err(reason);
    }

    pub fn check(&self) -> Result<(), String> {
        self.state().ready.clone()
    }

    /// Work waits for this role (no-op when it already did).
    pub fn busy(&self) {
        let mut state = self.state();
        if state.busy_since.is_none() {
            state.busy_since = Some(Instant::now());
            state.last_step = Instant::now();
        }
    }

    /// A step of work completed: a success, or an attempt that failed and will be retried.
    pub fn step(&self) {
        self.state().last_step = Instant::now();
    }

    /// No work waits.
    pub fn idle(&self) {
        self.state().busy_since = None;
    }

    /// Live unless work has waited longer than the stall limit without a step.
    pub fn live(&self) -> Result<(), String> {
        let state = self.state();
        match state.busy_since {
            Some(_) if state.last_step.elapsed() > self.stall_limit => Err(format!(
                "work has waited {} s without a step (limit {} s)",
                state.last_step.elapsed().as_secs(),
                self.stall_limit.as_secs()
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reports_the_latest_reason() {
        let health = Health::new("starting");
        assert_eq!(health.check(), Err("starting".to_owned()));
        health.ready();
        assert_eq!(health.check(), Ok(()));
        health.not_ready("kafka unreachable");
        assert_eq!(health.check(), Err("kafka unreachable".to_owned()));
    }

    #[test]
    fn busy_work_without_a_step_past_the_limit_is_not_live() {
        let health = Health::new("starting").with_stall_limit(Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(health.live(), Ok(()), "idle: nothing waits, so nothing is stuck");
        health.busy();
        assert_eq!(health.live(), Ok(()), "just became busy");
        std::thread::sleep(Duration::from_millis(40));
        assert!(health.live().is_err(), "busy for 40 ms without a step");
        health.step();
        assert_eq!(health.live(), Ok(()), "a step (even a failed attempt) shows it is not stuck");
        std::thread::sleep(Duration::from_millis(40));
        health.idle();
        assert_eq!(health.live(), Ok(()), "idle again");
    }
}

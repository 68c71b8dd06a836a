//! Readiness with a reason a person can act on.

use std::sync::{Arc, Mutex};

/// Whether a role can do its work right now, and if not, why.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<Mutex<Result<(), String>>>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new("starting")
    }
}

impl Health {
    /// Not ready, for `reason`, until [`Health::ready`] is called.
    pub fn new(reason: &str) -> Self {
        Health { inner: Arc::new(Mutex::new(Err(reason.to_owned()))) }
    }

    pub fn ready(&self) {
        self.set(Ok(()));
    }

    pub fn not_ready(&self, reason: impl Into<String>) {
        let reason = reason.into();
        if self.check().as_ref().err() != Some(&reason) {
            tracing::warn!(%reason, "not ready");
        }
        self.set(Err(reason));
    }

    fn set(&self, state: Result<(), String>) {
        match self.inner.lock() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        match self.inner.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
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
}

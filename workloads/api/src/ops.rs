//! The API's readiness: it can take commands, which need PostgreSQL only. Cassandra is left
//! out on purpose: while it is down, reads answer 503 `read-model-unavailable` quickly, but
//! orders can still be placed, changed and cancelled — a readiness that followed Cassandra
//! would take every API pod out of its Service and stop those too.

use std::time::Duration;

use ordexa_platform::ops::Readiness;

use crate::AppState;

/// PostgreSQL answers within a second.
impl Readiness for AppState {
    async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(Duration::from_secs(1), self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(format!("postgres: {err}")),
            Err(_) => Err("postgres did not answer within 1s".to_owned()),
        }
    }
}

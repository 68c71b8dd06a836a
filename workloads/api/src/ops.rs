//! The API's readiness: its dependencies answer.

use std::time::Duration;

use ordexa_platform::ops::Readiness;

use crate::AppState;

/// PostgreSQL and Cassandra each answer within a second.
impl Readiness for AppState {
    async fn check(&self) -> Result<(), String> {
        let limit = Duration::from_secs(1);
        let (postgres, cassandra) = tokio::join!(
            tokio::time::timeout(limit, self.store.ping()),
            tokio::time::timeout(limit, self.reads.ping())
        );
        let mut failures = Vec::new();
        match postgres {
            Ok(Ok(())) => {}
            Ok(Err(err)) => failures.push(format!("postgres: {err}")),
            Err(_) => failures.push("postgres did not answer within 1s".to_owned()),
        }
        match cassandra {
            Ok(Ok(())) => {}
            Ok(Err(err)) => failures.push(format!("cassandra: {err}")),
            Err(_) => failures.push("cassandra did not answer within 1s".to_owned()),
        }
        if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
    }
}

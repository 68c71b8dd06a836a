//! The API's handle on the read model. Reads need Cassandra; commands do not, so the API
//! starts, serves commands and stays ready while Cassandra is unreachable — at start-up too:
//! [`ReadSide::connect_in_background`] keeps trying while the rest of the API serves.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ordexa_platform::Shutdown;
use ordexa_readmodel::{ReadModel, ReadModelError};

use crate::problem::ApiError;

/// The read model, once connected.
#[derive(Clone, Debug, Default)]
pub struct ReadSide {
    model: Arc<OnceLock<Arc<ReadModel>>>,
}

/// How to reach the read model.
#[derive(Clone, Debug)]
pub struct ReadModelTarget {
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// Each Cassandra request fails after this long (retries included), so a read against a
    /// node that stopped answering ends in a 503 within it.
    pub request_timeout: Duration,
}

impl ReadSide {
    /// A read side that is connected already.
    pub fn connected(model: Arc<ReadModel>) -> Self {
        let side = ReadSide::default();
        let _ = side.model.set(model);
        side
    }

    /// The read model, or 503 `read-model-unavailable` while it is not connected.
    pub fn model(&self) -> Result<&ReadModel, ApiError> {
        self.model.get().map(Arc::as_ref).ok_or_else(|| {
            ApiError::ReadModelUnavailable("the read model is unavailable: not connected to Cassandra yet".to_owned())
        })
    }

    pub fn is_connected(&self) -> bool {
        self.model.get().is_some()
    }

    /// Connects to `target` now if it answers; otherwise returns at once, not connected, and
    /// keeps trying in the background (capped backoff) until it succeeds or `shutdown` fires.
    /// Once connected, the driver reconnects by itself after outages.
    pub async fn connect_in_background(target: ReadModelTarget, shutdown: Shutdown) -> Self {
        let side = ReadSide::default();
        match open(&target).await {
            Ok(model) => {
                let _ = side.model.set(Arc::new(model));
            }
            Err(err) => {
                tracing::warn!(error = %err, "the read model is unavailable; serving commands, reads answer 503 until it connects");
                tokio::spawn(keep_connecting(side.clone(), target, shutdown));
            }
        }
        side
    }
}

async fn open(target: &ReadModelTarget) -> Result<ReadModel, ReadModelError> {
    let session = ordexa_readmodel::connect_with_request_timeout(&target.nodes, target.request_timeout).await?;
    ReadModel::new(session, &target.keyspace).await
}

async fn keep_connecting(side: ReadSide, target: ReadModelTarget, mut shutdown: Shutdown) {
    let mut attempt = 0;
    while !shutdown.is_fired() {
        shutdown.sleep(ordexa_platform::backoff_delay(attempt)).await;
        attempt = attempt.saturating_add(1);
        match open(&target).await {
            Ok(model) => {
                let _ = side.model.set(Arc::new(model));
                tracing::info!(attempt, "connected to the read model");
                return;
            }
            Err(err) => tracing::warn!(error = %err, attempt, "the read model is still unavailable"),
        }
    }
}

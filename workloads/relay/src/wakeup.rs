//! How the leader learns of new rows (talks to PostgreSQL): LISTEN/NOTIFY while it waits, and a
//! fallback poll for a missed notification.
//!
//! Writers notify only while the leader waits (migration 0005): the leader holds the idle lock
//! ([`IDLE_LOCK_KEY`]) exclusively only while it waits, and a writer's insert notifies only when
//! it cannot take that lock shared. A writer in progress that did not notify keeps the leader
//! from taking the lock, so the leader claims again by itself and finds its rows once it commits.

use std::time::Duration;

use ordexa_platform::Shutdown;
use ordexa_store::outbox::{IDLE_LOCK_KEY, NOTIFY_CHANNEL};
use sqlx::PgConnection;
use sqlx::postgres::{PgListener, PgPool};

use crate::{RelayError, leader};

/// A listener on the outbox trigger's channel.
pub(crate) async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

/// Takes (`true`; whether it got it) or releases the idle lock on the leader's session. It is
/// taken only when no writer holds it shared, i.e. none is in progress that did not notify.
pub(crate) async fn set_idle(conn: &mut PgConnection, idle: bool) -> Result<bool, RelayError> {
    let sql = if idle { "SELECT pg_try_advisory_lock($1)" } else { "SELECT pg_advisory_unlock($1)" };
    leader::bounded(sqlx::query_scalar(sql).bind(IDLE_LOCK_KEY).fetch_one(&mut *conn)).await
}

/// Waits for a NOTIFY, the fallback poll, or shutdown, whichever comes first. A listener that
/// fails (its connection lost and not back yet) waits out the fallback poll rather than
/// returning at once, so the relay does not spin on it.
pub(crate) async fn wait_for_rows(listener: Option<&mut PgListener>, poll: Duration, shutdown: &mut Shutdown) {
    match listener {
        Some(listener) => {
            let failed = tokio::select! {
                received = listener.recv() => received.err(),
                () = tokio::time::sleep(poll) => None,
                () = shutdown.wait() => None,
            };
            if let Some(err) = failed {
                tracing::debug!(error = %err, "LISTEN failed; it reconnects on the next wait");
                shutdown.sleep(poll).await;
            }
        }
        None => shutdown.sleep(poll).await,
    }
}

//! Leadership (talks to PostgreSQL): one replica publishes, holding a session-level advisory
//! lock on a dedicated connection; the others stand by and take over when its session ends (a
//! crash or `kill -9` closes the session and frees the lock at once).

use sqlx::{Connection, PgConnection};

use crate::claim;

/// The advisory lock key the publishing replica holds ("ordexa relay" in ASCII, as an i64).
const LEADER_LOCK_KEY: i64 = 0x6f72_6465_7861_726c;

/// A dedicated session holding the leader lock, prepared for claims, or `None` when another
/// replica leads.
pub(crate) async fn acquire(url: &str) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let acquired: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK_KEY).fetch_one(&mut conn).await?;
    if acquired {
        claim::prepare_session(&mut conn).await?;
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

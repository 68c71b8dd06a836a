//! Leadership (talks to PostgreSQL): one replica publishes, holding a session-level advisory lock
//! on a dedicated session; the others stand by and take the lock when that session ends.
//!
//! Bounded failover. A crash or `kill -9` closes the session and frees the lock at once. A leader
//! that is stopped (SIGSTOP, a frozen node) or cut off keeps its session open, so the server is
//! told to end it: the leader's session ends after [`LEADER_IDLE_TIMEOUT`] without a statement
//! (`idle_session_timeout`; a working leader sends one at least every [`HEARTBEAT`]), an open
//! transaction after the same time idle, and a peer that stops acknowledging TCP after about ten
//! seconds (server-side keepalives and `tcp_user_timeout`). Standbys try the lock every poll, so a
//! new leader takes over within about [`LEADER_IDLE_TIMEOUT`] plus one poll. The old leader's
//! Kafka producer is fenced by the new one's (`batch`), so when it wakes it publishes nothing.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::{RelayError, claim};

/// The advisory lock key the publishing replica holds ("ordexa relay" in ASCII, as an i64).
const LEADER_LOCK_KEY: i64 = 0x6f72_6465_7861_726c;

/// How long the server keeps a leader's idle session (or idle open transaction) before it ends
/// it, freeing the lock.
pub(crate) const LEADER_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a leader that waits (for Kafka, for rows) sends a statement on its session.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(3);
/// How long the relay waits for any one statement before it gives the session up.
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection options for the relay's sessions: server-side timeouts so that no statement, lock
/// wait or idle transaction lasts long, and keepalives so that the server notices a peer that is
/// gone; for the leader's session also the idle timeout that ends a stopped leader's term.
pub(crate) fn session_options(url: &str, leader: bool) -> Result<PgConnectOptions, sqlx::Error> {
    let mut options = vec![
        ("statement_timeout", format!("{}s", STATEMENT_TIMEOUT.as_secs())),
        ("lock_timeout", "10s".to_owned()),
        ("idle_in_transaction_session_timeout", format!("{}s", LEADER_IDLE_TIMEOUT.as_secs())),
        ("tcp_keepalives_idle", "5".to_owned()),
        ("tcp_keepalives_interval", "2".to_owned()),
        ("tcp_keepalives_count", "3".to_owned()),
        ("tcp_user_timeout", "10000".to_owned()),
    ];
    if leader {
        options.push(("idle_session_timeout", format!("{}s", LEADER_IDLE_TIMEOUT.as_secs())));
    }
    Ok(PgConnectOptions::from_str(url)?.options(options))
}

/// A dedicated session holding the leader lock, prepared for claims, or `None` when another
/// replica leads.
pub(crate) async fn acquire(url: &str) -> Result<Option<PgConnection>, RelayError> {
    let mut conn = bounded(PgConnection::connect_with(&session_options(url, true)?)).await?;
    let acquired: bool =
        bounded(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK_KEY).fetch_one(&mut conn))
            .await?;
    if acquired {
        claim::prepare_session(&mut conn).await?;
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

/// Keeps the leader's session from counting as idle.
pub(crate) async fn heartbeat(conn: &mut PgConnection) -> Result<(), RelayError> {
    bounded(sqlx::query("SELECT 1").execute(&mut *conn)).await?;
    Ok(())
}

/// Runs a statement on a relay session, giving up after [`STATEMENT_TIMEOUT`]: a server that is
/// cut off never answers, and the session must then be given up (with the leadership it holds).
pub(crate) async fn bounded<T>(statement: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, RelayError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, statement).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(RelayError::SessionTimeout(STATEMENT_TIMEOUT)),
    }
}

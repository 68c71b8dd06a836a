//! The relay's own `VACUUM` of the outbox (talks to PostgreSQL), so that new rows reuse the space
//! of published ones instead of growing the table.
//!
//! A deleted row's space is reused only once a vacuum has recorded it free, and autovacuum looks
//! at each database at most once a minute (`autovacuum_naptime`); in between, every row written
//! goes to a new page at the table's end. The leader knows when rows die, so it vacuums every
//! `vacuum_every` deleted rows (`docs/adr/`: the relay vacuums the outbox).
//!
//! `SKIP_LOCKED`: when autovacuum is at the table already, this round is left to it. `TRUNCATE
//! false`: returning empty end pages to the file system takes a lock that stops every writer and
//! the claims, for space the next rows would take again; autovacuum still does it. Only the
//! table's or the database's owner (or a superuser) may vacuum; for any other role this logs
//! once and stops, leaving the outbox to autovacuum. A failed vacuum is logged and the session
//! opened afresh for the next one; publishing never waits for a vacuum.

use std::time::Instant;

use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

const VACUUM_SQL: &str = "VACUUM (SKIP_LOCKED, TRUNCATE false) outbox";
/// Whether this session's role may `VACUUM` the outbox: PostgreSQL lets the table's owner or the
/// database's (or a superuser, who has every role's privileges) do it, and for anyone else skips
/// the table with a warning instead of failing.
const MAY_VACUUM_SQL: &str = "SELECT pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE') \
     FROM pg_class c, pg_database d WHERE c.oid = 'outbox'::regclass AND d.datname = current_database()";

/// Starts the vacuum's task; it counts the rows the deleter reports on the returned sender and
/// ends when that sender is dropped.
pub(crate) fn spawn(url: String, every: u64) -> mpsc::UnboundedSender<u64> {
    let (deleted, counts) = mpsc::unbounded_channel::<u64>();
    tokio::spawn(vacuum_outbox(url, every, counts));
    deleted
}

/// Vacuums each time `every` more rows were deleted, one vacuum at a time; rows deleted while
/// one runs count towards the next.
async fn vacuum_outbox(url: String, every: u64, mut deleted: mpsc::UnboundedReceiver<u64>) {
    let mut since: u64 = 0;
    let mut session: Option<PgConnection> = None;
    while let Some(rows) = deleted.recv().await {
        since += rows;
        while let Ok(rows) = deleted.try_recv() {
            since += rows;
        }
        if since < every {
            continue;
        }
        let conn = match session.as_mut() {
            Some(conn) => conn,
            None => match vacuum_session(&url).await {
                Ok(Some(conn)) => session.insert(conn),
                Ok(None) => {
                    tracing::warn!(
                        "this role does not own the outbox, so it may not VACUUM it; deleted rows wait for autovacuum"
                    );
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot open a session to vacuum the outbox; trying again later");
                    continue;
                }
            },
        };
        let started = Instant::now();
        match sqlx::query(VACUUM_SQL).execute(&mut *conn).await {
            Ok(_) => {
                let elapsed = started.elapsed();
                metrics::counter!("ordexa_relay_vacuums_total").increment(1);
                metrics::histogram!("ordexa_relay_vacuum_seconds").record(elapsed.as_secs_f64());
                tracing::debug!(rows = since, elapsed_ms = elapsed.as_millis() as u64, "outbox vacuumed");
                since = 0;
            }
            Err(err) => {
                tracing::warn!(error = %err, "vacuuming the outbox failed; trying again later");
                session = None;
            }
        }
    }
    if let Some(conn) = session {
        let _ = conn.close().await;
    }
}

/// A session for the vacuum, or `None` when its role may not vacuum the outbox.
async fn vacuum_session(url: &str) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let allowed: bool = sqlx::query_scalar(MAY_VACUUM_SQL).fetch_one(&mut conn).await?;
    if allowed {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

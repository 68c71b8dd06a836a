//! The deleter (talks to PostgreSQL): removes published batches from the outbox, in order, on a
//! session of its own while the leader's session goes on claiming; moves the rows Kafka refused
//! for good to the dead letters; and tells the vacuum how many rows each delete removed.

use std::collections::VecDeque;
use std::time::Instant;

use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

use crate::batch::Refused;
use crate::{RelayError, leader, vacuum};

/// See `sql/delete.sql`.
const DELETE_SQL: &str = include_str!("../sql/delete.sql");
/// See `sql/dead_letter.sql`.
const DEAD_LETTER_SQL: &str = include_str!("../sql/dead_letter.sql");
/// The deleter session's setting: its commits do not wait for the WAL to reach disk. A delete
/// lost in a PostgreSQL crash only leaves published rows in the outbox, to be published again
/// (exact repeats, as after a relay crash); under a write load, deletes then need not queue for
/// WAL flushes behind every writer's commit.
const SESSION_SQL: &str = "SET synchronous_commit = off";

/// A batch whose transaction committed, to be removed from the outbox.
pub(crate) struct Published {
    /// Every row of the batch.
    pub ids: Vec<i64>,
    /// The rows of it Kafka refused for good: moved to the dead letters, not deleted.
    pub refused: Vec<Refused>,
    /// When the leader claimed it: the batch's latency is counted once it is removed.
    pub claimed: Instant,
}

/// Deletes acknowledged batches in order on its own session.
pub(crate) struct Deleter {
    /// The process id of the deleter's session, which the claim's snapshot leaves out: the
    /// deleter writes no outbox rows, so a claim need not wait for its transactions.
    pub pid: i32,
    requests: mpsc::UnboundedSender<Published>,
    done: mpsc::UnboundedReceiver<Result<Published, sqlx::Error>>,
    /// Sent, not yet reported done: still in the outbox, so never claimed again meanwhile.
    pub pending: VecDeque<Vec<i64>>,
}

impl Deleter {
    /// Opens the deleter's session (and, when `vacuum_every` > 0, the vacuum's task); both end
    /// with this term's `Deleter`.
    pub async fn connect(url: &str, vacuum_every: u64) -> Result<Self, RelayError> {
        let mut conn = PgConnection::connect_with(&leader::session_options(url, false)?).await?;
        sqlx::query(SESSION_SQL).execute(&mut conn).await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await?;
        let (requests, mut rx) = mpsc::unbounded_channel::<Published>();
        let (tx, done) = mpsc::unbounded_channel();
        let vacuum = (vacuum_every > 0).then(|| vacuum::spawn(url.to_owned(), vacuum_every));
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                let result = remove(&mut conn, &batch).await;
                if let (Ok(rows), Some(vacuum)) = (&result, &vacuum) {
                    let _ = vacuum.send(*rows);
                }
                let result = result.map(|_| batch);
                let failed = result.is_err();
                if tx.send(result).is_err() || failed {
                    break;
                }
            }
            let _ = conn.close().await;
        });
        Ok(Deleter { pid, requests, done, pending: VecDeque::new() })
    }

    pub fn remove(&mut self, batch: Published) {
        self.pending.push_back(batch.ids.clone());
        // A closed channel means the task stopped on an error, which `finished` reports.
        let _ = self.requests.send(batch);
    }

    /// The next batch deleted, in order; never while none is pending.
    pub async fn finished(&mut self) -> Result<(), RelayError> {
        if self.pending.is_empty() {
            return std::future::pending().await;
        }
        match self.done.recv().await {
            Some(Ok(batch)) => {
                self.pending.pop_front();
                count_published(&batch);
                Ok(())
            }
            Some(Err(err)) => Err(err.into()),
            None => Err(RelayError::DeleterStopped),
        }
    }
}

/// Moves the refused rows of `batch` to the dead letters and deletes the others; the number of
/// rows that left the outbox.
async fn remove(conn: &mut PgConnection, batch: &Published) -> Result<u64, sqlx::Error> {
    let mut removed = 0;
    for refused in &batch.refused {
        removed += sqlx::query(DEAD_LETTER_SQL)
            .bind(&[refused.row][..])
            .bind(&refused.reason)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        tracing::warn!(row = refused.row, reason = %refused.reason, "outbox row moved to the dead letters");
        metrics::counter!("ordexa_relay_dead_letters_total").increment(1);
    }
    let published: Vec<i64> =
        batch.ids.iter().copied().filter(|id| !batch.refused.iter().any(|r| r.row == *id)).collect();
    removed += sqlx::query(DELETE_SQL).bind(&published).execute(&mut *conn).await?.rows_affected();
    Ok(removed)
}

/// Counts a batch published and removed.
fn count_published(batch: &Published) {
    let elapsed = batch.claimed.elapsed();
    let published = batch.ids.len() - batch.refused.len();
    metrics::counter!("ordexa_relay_published_total").increment(published as u64);
    metrics::histogram!("ordexa_relay_batch_seconds").record(elapsed.as_secs_f64());
    tracing::debug!(rows = published, elapsed_ms = elapsed.as_millis() as u64, "batch published");
}

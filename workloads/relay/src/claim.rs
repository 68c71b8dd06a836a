//! The claim (talks to PostgreSQL; [`Claims`] and [`Snapshot`] are pure): which outbox rows the
//! leader takes next, in id order, so that no committed row is ever skipped.
//!
//! Why id order is enough. Within one order the write side's row lock serialises commands, so an
//! order's outbox rows commit in version order and get increasing ids. Across orders, commit
//! order differs from id order: a row with a lower id can commit after a higher one was claimed.
//! Each claim therefore records what its snapshot saw in progress, and rows below the highest id
//! claimed stay reachable until every transaction that could still commit one has ended.

use std::collections::VecDeque;

use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

use crate::{RelayError, leader};

/// See `sql/claim.sql`. An unnamed statement, so planned for its values: `$2` becomes an index
/// bound and `$3` a hashed set.
const CLAIM_SQL: &str = include_str!("../sql/claim.sql");
/// See `sql/snapshot.sql`.
const SNAPSHOT_SQL: &str = include_str!("../sql/snapshot.sql");
/// The claiming session's setting: a claim takes a transaction id but writes nothing, so its
/// commit need not wait for the WAL to reach disk.
const SESSION_SQL: &str = "SET synchronous_commit = off";
/// How every claim transaction starts: the claim and the snapshot statement must share one
/// snapshot. Explicit in each transaction, never a session default, which a pooler in transaction
/// mode would not carry over.
const BEGIN_SQL: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ";

/// Applies the claiming session's setting to the leader's session.
pub(crate) async fn prepare_session(conn: &mut PgConnection) -> Result<(), RelayError> {
    leader::bounded(sqlx::query(SESSION_SQL).execute(&mut *conn)).await?;
    Ok(())
}

/// Checks, on the leader's session, what the ordering proof assumes of the database: that a
/// claim transaction runs at repeatable read, and that the outbox's id sequence hands out ids one
/// at a time (a cache of more than one lets a session draw ids ahead of its transaction id, which
/// breaks the proof of migration 0004). [`RelayError::Unsafe`] says what is wrong and how to
/// fix it.
pub(crate) async fn verify_assumptions(conn: &mut PgConnection) -> Result<(), RelayError> {
    let cache: Option<i64> = leader::bounded(
        sqlx::query_scalar("SELECT seqcache FROM pg_sequence WHERE seqrelid = 'outbox_id_seq'::regclass")
            .fetch_optional(&mut *conn),
    )
    .await?;
    match cache {
        Some(1) => {}
        Some(n) => {
            return Err(RelayError::Unsafe(format!(
                "the sequence outbox_id_seq caches {n} ids per session; the claim needs 1 (ALTER SEQUENCE outbox_id_seq CACHE 1)"
            )));
        }
        None => return Err(RelayError::Unsafe("the sequence outbox_id_seq is missing; run `ordexa migrate`".into())),
    }
    let mut tx = leader::bounded(conn.begin_with(BEGIN_SQL)).await?;
    let isolation: String =
        leader::bounded(sqlx::query_scalar("SELECT current_setting('transaction_isolation')").fetch_one(&mut *tx))
            .await?;
    leader::bounded(tx.commit()).await?;
    if isolation != "repeatable read" {
        return Err(RelayError::Unsafe(format!(
            "a claim transaction runs at {isolation}, not repeatable read (is a pooler rewriting transactions?)"
        )));
    }
    Ok(())
}

/// One claimed outbox row.
#[derive(Debug, Clone)]
pub(crate) struct OutboxRow {
    pub id: i64,
    pub aggregate_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    pub traceparent: Option<String>,
}

/// Where the next claim starts, for one leadership term.
///
/// `settled`: every row with an id at or below it that is, or will ever be, visible has been
/// claimed in this term. A claim returns the lowest visible rows above `settled` that are not
/// claimed yet, so after it every row its snapshot saw up to the highest id it returned is
/// claimed. A row at or below that id it did not see must have been written by a transaction
/// its snapshot saw in progress: the row's id was drawn before that highest row's, hence before
/// the snapshot, and a writer's transaction has its transaction id before it draws an outbox id
/// (the id column's default takes the transaction id first: migration 0004). So once every one
/// of those transactions has ended, a later claim
/// sees all their rows; if that claim also reached the highest id (it came back short, or
/// returned rows up to that id), everything up to it is claimed and `settled` moves there.
///
/// A claim whose snapshot saw nothing in progress (but the deleter, which writes no rows)
/// settles at once. Until a claim settles, claims skip the rows in flight above `settled` by id,
/// so a row committing late, below ids already claimed, is still found. During a drain, and
/// under a steady load of short transactions, claims thus start right after the last rows
/// claimed instead of reading every row in flight again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    pub(crate) settled: i64,
    /// Claims not settled yet, oldest first: the highest id each returned and the transactions
    /// its snapshot saw in progress.
    waiting: VecDeque<(i64, Vec<i64>)>,
}

/// What a claim's snapshot saw in progress (see `sql/snapshot.sql`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Transactions that may still commit rows the claim did not see, sorted.
    running: Vec<i64>,
}

impl Snapshot {
    /// From the statement's `running` list, without the deleter's transaction: `deleter` is a
    /// 32-bit `xid`, the list 64-bit ids whose low 32 bits are the `xid`.
    fn new(mut running: Vec<i64>, deleter: Option<i64>) -> Self {
        if let Some(deleter) = deleter {
            running.retain(|x| x & 0xffff_ffff != deleter);
        }
        running.sort_unstable();
        running.dedup();
        Snapshot { running }
    }

    fn finished(&self, earlier: &[i64]) -> bool {
        earlier.iter().all(|x| self.running.binary_search(x).is_err())
    }
}

/// Unsettled claims kept at most; beyond, the oldest are forgotten (a long transaction in
/// progress holds them all back), which only keeps `settled` where it is longer.
const WAITING_CLAIMS: usize = 64;

impl Claims {
    /// After a claim that returned rows up to `highest` (`full`: as many as it asked for), its
    /// snapshot having seen `snapshot` in progress. A claim that returned nothing says nothing.
    pub(crate) fn after_claim(&mut self, highest: i64, full: bool, snapshot: &Snapshot) {
        self.waiting.push_back((highest, snapshot.running.clone()));
        if self.waiting.len() > WAITING_CLAIMS {
            self.waiting.pop_front();
        }
        for (claimed, running) in &self.waiting {
            let reached = !full || highest >= *claimed;
            if reached && *claimed > self.settled && snapshot.finished(running) {
                self.settled = *claimed;
            }
        }
        let settled = self.settled;
        self.waiting.retain(|(claimed, _)| *claimed > settled);
    }

    /// The claimed ids a claim must still skip: those above `settled`.
    pub(crate) fn excluded<'a>(&self, claimed: impl Iterator<Item = &'a i64>) -> Vec<i64> {
        claimed.copied().filter(|id| *id > self.settled).collect()
    }
}

/// Runs the claim on the leader session: up to `limit` rows not claimed yet, in id order,
/// skipping `excluded` ([`Claims::excluded`] of every row claimed in this term and still in the
/// outbox), and moves `claims` on. `deleter` is the process id of the deleter's session.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    claims: &mut Claims,
    limit: i64,
    excluded: &[i64],
    deleter: i32,
) -> Result<Vec<OutboxRow>, RelayError> {
    let mut tx = leader::bounded(conn.begin_with(BEGIN_SQL)).await?;
    let results = leader::bounded(
        sqlx::query(CLAIM_SQL).bind(limit).bind(claims.settled).bind(excluded).persistent(false).fetch_all(&mut *tx),
    )
    .await?;
    let rows = results
        .iter()
        .map(|r| {
            Ok(OutboxRow {
                id: r.try_get("id")?,
                aggregate_id: r.try_get("aggregate_id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                schema_version: r.try_get("schema_version")?,
                payload: r.try_get("payload")?,
                traceparent: r.try_get("traceparent")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // A claim that returned nothing says nothing about settling, and takes no transaction id.
    let mut snapshot = None;
    if let Some(highest) = rows.last().map(|r| r.id) {
        let r = leader::bounded(sqlx::query(SNAPSHOT_SQL).bind(deleter).fetch_one(&mut *tx)).await?;
        let seen = Snapshot::new(r.try_get("running")?, r.try_get("deleter")?);
        claims.after_claim(highest, i64::try_from(rows.len()).is_ok_and(|n| n >= limit), &seen);
        snapshot = Some(seen);
    }
    leader::bounded(tx.commit()).await?;
    tracing::trace!(
        rows = rows.len(),
        lowest = rows.first().map(|r| r.id),
        highest = rows.last().map(|r| r.id),
        ?snapshot,
        settled = claims.settled,
        excluded = excluded.len(),
        "claimed"
    );
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(running: &[i64]) -> Snapshot {
        Snapshot::new(running.to_vec(), None)
    }

    #[test]
    fn a_quiet_claim_settles_at_once_and_never_backwards() {
        let mut claims = Claims::default();
        claims.after_claim(1000, true, &seen(&[]));
        assert_eq!(claims.settled, 1000);
        claims.after_claim(900, false, &seen(&[]));
        assert_eq!(claims.settled, 1000, "a late row below does not move it back");
        claims.after_claim(2000, true, &seen(&[]));
        assert_eq!(claims.settled, 2000);
    }

    #[test]
    fn a_claim_settles_once_what_its_snapshot_saw_running_has_ended() {
        let mut claims = Claims::default();
        claims.after_claim(1000, true, &seen(&[70, 71]));
        assert_eq!(claims.settled, 0, "70 or 71 may still commit a row below 1000");
        claims.after_claim(2000, true, &seen(&[71, 80]));
        assert_eq!(claims.settled, 0, "71 is still running");
        claims.after_claim(3000, true, &seen(&[90]));
        assert_eq!(claims.settled, 2000, "70, 71 and 80 ended before this claim, which reached past 2000");
        claims.after_claim(3500, false, &seen(&[]));
        assert_eq!(claims.settled, 3500);
    }

    #[test]
    fn a_claim_settles_only_what_it_reached() {
        let mut claims = Claims::default();
        claims.after_claim(1000, true, &seen(&[70]));
        // 70 ended and committed late rows, so this full claim returned rows only up to 600.
        claims.after_claim(600, true, &seen(&[]));
        assert_eq!(claims.settled, 600, "rows between 600 and 1000 may be visible and unclaimed");
        claims.after_claim(1100, true, &seen(&[]));
        assert_eq!(claims.settled, 1100);
        let mut short = Claims::default();
        short.after_claim(1000, true, &seen(&[70]));
        short.after_claim(600, false, &seen(&[]));
        assert_eq!(short.settled, 1000, "a short claim returned every visible row not claimed");
    }

    #[test]
    fn the_deleters_transaction_is_not_waited_for() {
        let epoch = 3_i64 << 32;
        let snapshot = Snapshot::new(vec![epoch + 12, epoch + 9, epoch + 12], Some(9));
        assert_eq!(snapshot.running, vec![epoch + 12]);
        let mut claims = Claims::default();
        claims.after_claim(500, true, &Snapshot::new(vec![epoch + 9], Some(9)));
        assert_eq!(claims.settled, 500);
    }

    #[test]
    fn unsettled_claims_are_bounded() {
        let mut claims = Claims::default();
        for n in 1..=200 {
            claims.after_claim(n * 10, true, &seen(&[1]));
        }
        assert_eq!(claims.waiting.len(), WAITING_CLAIMS);
        assert_eq!(claims.settled, 0);
    }

    #[test]
    fn claims_skip_by_id_only_what_is_above_the_settled_bound() {
        let claims = Claims { settled: 1000, waiting: VecDeque::new() };
        let claimed = [998, 999, 1000, 1001, 1500];
        assert_eq!(claims.excluded(claimed.iter()), vec![1001, 1500]);
        assert_eq!(Claims::default().excluded(claimed.iter()), claimed.to_vec());
    }

    #[test]
    fn the_claim_statement_reads_what_the_relay_decodes() {
        for column in ["id", "aggregate_id", "event_id", "event_type", "schema_version", "payload", "traceparent"] {
            assert!(CLAIM_SQL.contains(column), "{column}");
        }
        assert!(CLAIM_SQL.trim_end().ends_with("ORDER BY id\nLIMIT $1"));
        for column in ["running", "deleter"] {
            assert!(SNAPSHOT_SQL.contains(column), "{column}");
        }
    }
}

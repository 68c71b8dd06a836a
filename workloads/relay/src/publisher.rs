//! One leadership term (talks to PostgreSQL and Kafka): the leader claims batches in id order and
//! queues them in one Kafka transaction, up to `batches_in_flight` batches or until a claim comes
//! back short, then commits the transaction and hands its batches to the deleter, which removes
//! them while the next transaction's claims run.
//!
//! Refusals. Kafka refuses a whole record batch when one message makes it too large, and reports
//! the error on every message of it. A refusal that names one row moves that row to the dead
//! letters; one that names several makes them suspects, and the next term sends with a careful
//! producer (one message per record batch) until each suspect is either published or refused
//! alone.
//!
//! Order. Every message of an order goes to one partition, queued in id order, and consumers read
//! committed transactions only, in the order they were committed. An aborted transaction (Kafka
//! outage, a refused message, a fenced producer) leaves nothing visible, and the next term starts
//! again from the oldest row not removed, so each order's events arrive in version order; a crash
//! between a commit and the removal publishes the batch again: at least once, every later copy
//! an exact repeat of the first.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ordexa_platform::{Health, Shutdown};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use sqlx::PgConnection;
use sqlx::postgres::PgListener;

use crate::batch::{self, Acknowledgements, BatchProducer, Event};
use crate::claim::{self, Claims, OutboxRow};
use crate::deleter::{Deleter, Published};
use crate::{RelayConfig, RelayError, leader, wakeup};

/// How soon the leader claims again after a claim that came back short while removals are
/// pending: from the first to the longest pause, doubling after each claim that found nothing.
const SHORT_POLL: Duration = Duration::from_millis(2);
const LONGEST_POLL: Duration = Duration::from_millis(20);
/// How long a commit may take before the relay reports not ready.
const STALL_AFTER: Duration = Duration::from_secs(5);
/// How long one commit call waits for Kafka before it returns (and is called again).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an abort waits for Kafka.
const ABORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping relay waits for the open transaction to commit before it leaves its rows
/// in the outbox (to be published again by whoever leads next).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A batch queued in the open transaction.
struct InFlight {
    ids: Vec<i64>,
    claimed: Instant,
    acknowledgements: Acknowledgements,
}

/// How a term ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The relay is stopping.
    Shutdown,
    /// Kafka refused rows that each stood alone; they are dead letters now. The next term goes on
    /// with the same producer.
    DeadLettered(usize),
    /// Kafka refused record batches of several rows; they are suspects, and the next term sends
    /// with a careful producer.
    Isolate(usize),
    /// Every suspect was published or refused alone: the next term sends with an ordinary
    /// producer again.
    Isolated,
}

/// The state of one leadership term. Dropped at the term's end: the rows it did not remove stay
/// in the outbox, to be published again by whoever leads next.
pub(crate) struct Term<'a> {
    /// The leader's session: claims, the idle lock, heartbeats.
    conn: &'a mut PgConnection,
    /// Transactional, initialised for this leader.
    producer: &'a Arc<BatchProducer>,
    /// Whether the producer sends one message per record batch.
    careful: bool,
    /// Rows refused in record batches of several; kept across terms by the caller.
    suspects: &'a mut HashSet<i64>,
    topic: &'a str,
    config: &'a RelayConfig,
    listener: Option<&'a mut PgListener>,
    health: &'a Health,
    deleter: Deleter,
    /// The batches queued in the open transaction, oldest first; none: no transaction is open.
    open: Vec<InFlight>,
    claims: Claims,
    /// Whether the outbox may hold rows not claimed yet: false once a claim came back short,
    /// true again after a pause, a notification or the fallback poll.
    more: bool,
    /// After a claim that came back short, how long until the next claim (unless notified).
    pause: Duration,
    /// When to claim again: a fixed time, not restarted by every removal that wakes the loop.
    poll_at: tokio::time::Instant,
    /// Whether the session holds the idle lock (writers then notify).
    idle: bool,
}

impl<'a> Term<'a> {
    /// Starts a term on the leader's session `conn`: checks what the ordering proof assumes and
    /// opens the deleter's session.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        conn: &'a mut PgConnection,
        producer: &'a Arc<BatchProducer>,
        careful: bool,
        suspects: &'a mut HashSet<i64>,
        topic: &'a str,
        config: &'a RelayConfig,
        listener: Option<&'a mut PgListener>,
        health: &'a Health,
    ) -> Result<Term<'a>, RelayError> {
        claim::verify_assumptions(conn).await?;
        let deleter = Deleter::connect(&config.database_url, config.vacuum_every).await?;
        Ok(Term {
            conn,
            producer,
            careful,
            suspects,
            topic,
            config,
            listener,
            health,
            deleter,
            open: Vec::with_capacity(config.batches_in_flight.max(1)),
            claims: Claims::default(),
            more: true,
            pause: SHORT_POLL,
            poll_at: tokio::time::Instant::now(),
            idle: false,
        })
    }

    /// Publishes until `shutdown` fires (after the grace for the open transaction), Kafka refuses
    /// rows (see [`End`]), or an error ends the term.
    pub async fn publish(mut self, shutdown: &mut Shutdown) -> Result<End, RelayError> {
        let result = self.lead(shutdown).await;
        if self.idle {
            // Only a database error leaves it held, after which the session closes; but a session
            // that goes on must not keep making every writer notify.
            let released = wakeup::set_idle(self.conn, false).await;
            return released.and(result);
        }
        result
    }

    async fn lead(&mut self, shutdown: &mut Shutdown) -> Result<End, RelayError> {
        let depth = self.config.batches_in_flight.max(1);
        loop {
            if shutdown.is_fired() {
                self.finish().await?;
                return Ok(End::Shutdown);
            }
            if self.careful && self.suspects.is_empty() && self.open.is_empty() {
                return Ok(End::Isolated);
            }
            if self.more && self.open.len() < depth && self.deleter.pending.len() < depth {
                self.claim_and_queue().await?;
                continue;
            }
            if !self.open.is_empty() {
                if let Some(end) = self.commit().await? {
                    return Ok(end);
                }
                continue;
            }
            if self.deleter.pending.is_empty() {
                self.health.ready();
                self.health.idle();
                self.wait_for_rows(shutdown).await?;
                self.more = true;
                continue;
            }
            // Removals pending, nothing to claim yet: wait for one, the next claim, or shutdown.
            let (more, poll_at) = (self.more, self.poll_at);
            tokio::select! {
                removed = self.deleter.finished() => {
                    removed?;
                    self.health.step();
                }
                () = tokio::time::sleep_until(poll_at), if !more => self.more = true,
                () = shutdown.wait() => {}
            }
        }
    }

    /// Claims the next batch and queues it in the open transaction (beginning one if none is).
    async fn claim_and_queue(&mut self) -> Result<(), RelayError> {
        let claimed = Instant::now();
        let excluded = self.claims.excluded(self.open.iter().map(|b| &b.ids).chain(&self.deleter.pending).flatten());
        let rows =
            claim::claim(self.conn, &mut self.claims, self.config.batch_size, &excluded, self.deleter.pid).await?;
        self.more = i64::try_from(rows.len()).is_ok_and(|n| n >= self.config.batch_size);
        self.pause = if rows.is_empty() { (self.pause * 2).min(LONGEST_POLL) } else { SHORT_POLL };
        self.poll_at = tokio::time::Instant::now() + self.pause;
        if rows.is_empty() {
            return Ok(());
        }
        self.health.busy();
        if self.idle {
            wakeup::set_idle(self.conn, false).await?;
            self.idle = false;
        }
        if self.open.is_empty() {
            self.producer.begin_transaction()?;
        }
        match queue(self.producer, self.topic, rows, claimed) {
            Ok(batch) => self.open.push(batch),
            // The transaction failed while this batch was being queued (a message of an earlier
            // batch was refused): stop claiming; the commit finds the failure and aborts.
            Err(err) if !self.open.is_empty() => {
                tracing::debug!(error = %err, "queueing stopped: the open transaction failed");
                self.more = false;
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }

    /// Waits for Kafka's report on every message of the open transaction, keeping the leader's
    /// session alive meanwhile, then commits it and hands its batches to the deleter. A
    /// transaction with a failed message is aborted ([`Term::abort`]), which ends the term; a
    /// commit that timed out stays open, to be committed again.
    async fn commit(&mut self) -> Result<Option<End>, RelayError> {
        let started = Instant::now();
        let mut failure = None;
        for batch in &mut self.open {
            let acknowledged = loop {
                tokio::select! {
                    acknowledged = batch.acknowledgements.wait() => break acknowledged,
                    () = tokio::time::sleep(leader::HEARTBEAT) => {
                        leader::heartbeat(self.conn).await?;
                        // Waiting on Kafka, not stuck: liveness counts the heartbeat as a step.
                        self.health.step();
                        stalled(self.health, started);
                    }
                }
            };
            if let Err(err) = acknowledged {
                failure = Some(err.to_string());
                break;
            }
        }
        self.health.step();
        if let Some(why) = failure {
            return self.abort(why).await.map(Some);
        }
        let result = self.blocking(started, |producer| producer.commit_transaction(COMMIT_TIMEOUT)).await?;
        match result {
            Ok(()) => {
                for batch in self.open.drain(..) {
                    let refused = batch.acknowledgements.refused();
                    for id in &batch.ids {
                        self.suspects.remove(id);
                    }
                    self.deleter.remove(Published { ids: batch.ids, refused, claimed: batch.claimed });
                }
                self.health.ready();
                Ok(None)
            }
            Err(KafkaError::Transaction(err)) if err.txn_requires_abort() => {
                self.abort(err.to_string()).await.map(Some)
            }
            Err(err) if self.producer.client().fatal_error().is_some() => Err(err.into()),
            // Kafka is slow or away: the transaction stays open and is committed again.
            Err(err) => {
                self.health.not_ready(format!("Kafka has not committed the open transaction: {err}"));
                Ok(None)
            }
        }
    }

    /// Runs a blocking producer call on a thread of its own, sending heartbeats on the leader's
    /// session meanwhile so that it does not count as idle.
    async fn blocking<T: Send + 'static>(
        &mut self,
        started: Instant,
        call: impl FnOnce(&BatchProducer) -> Result<T, KafkaError> + Send + 'static,
    ) -> Result<Result<T, KafkaError>, RelayError> {
        let producer = Arc::clone(self.producer);
        let mut running = tokio::task::spawn_blocking(move || call(&producer));
        loop {
            tokio::select! {
                done = &mut running => return Ok(done?),
                () = tokio::time::sleep(leader::HEARTBEAT) => {
                    leader::heartbeat(self.conn).await?;
                    // Waiting on Kafka, not stuck: liveness counts the heartbeat as a step.
                    self.health.step();
                    stalled(self.health, started);
                }
            }
        }
    }

    /// Aborts the open transaction; moves the rows Kafka refused alone to the dead letters, or
    /// makes the rows it refused together suspects. Always ends the term: rows of the aborted
    /// transaction may lie below the settled bound, so only a new term, starting from the oldest
    /// row in the outbox, claims them.
    async fn abort(&mut self, why: String) -> Result<End, RelayError> {
        self.blocking(Instant::now(), |producer| producer.abort_transaction(ABORT_TIMEOUT)).await??;
        let mut refused = Vec::new();
        for mut batch in self.open.drain(..) {
            // Every report is in once the abort returned; wait briefly all the same.
            let _ = tokio::time::timeout(Duration::from_secs(2), batch.acknowledgements.wait()).await;
            refused.extend(batch.acknowledgements.refused());
        }
        if refused.is_empty() {
            return Err(RelayError::Aborted(why));
        }
        let count = refused.len();
        if count > 1 && !self.careful {
            // A record batch of several rows was refused: which of them is too large is unknown.
            self.suspects.extend(refused.iter().map(|r| r.row));
            return Ok(End::Isolate(count));
        }
        for row in &refused {
            self.suspects.remove(&row.row);
        }
        let ids = refused.iter().map(|r| r.row).collect();
        self.deleter.remove(Published { ids, refused, claimed: Instant::now() });
        while !self.deleter.pending.is_empty() {
            self.deleter.finished().await?;
        }
        Ok(End::DeadLettered(count))
    }

    /// With nothing claimed: waits to be notified when every writer that did not notify has
    /// ended, else looks again shortly. Never longer than a heartbeat, so the leader's session
    /// does not count as idle.
    async fn wait_for_rows(&mut self, shutdown: &mut Shutdown) -> Result<(), RelayError> {
        let poll = self.config.poll_interval.min(leader::HEARTBEAT);
        match self.listener.as_deref_mut() {
            // The claim made while holding the lock found nothing: wait to be notified.
            Some(listener) if self.idle => {
                wakeup::wait_for_rows(Some(listener), poll, shutdown).await;
                wakeup::set_idle(self.conn, false).await?;
                self.idle = false;
            }
            Some(listener) => {
                if wakeup::set_idle(self.conn, true).await? {
                    // Every writer that did not notify has ended: claim once more before
                    // waiting. Notifications received so far are older than that claim.
                    self.idle = true;
                    while listener.next_buffered().is_some() {}
                } else {
                    // Writers in progress will not notify; look again shortly.
                    let rest = self.poll_at.saturating_duration_since(tokio::time::Instant::now());
                    shutdown.sleep(rest).await;
                }
            }
            None => wakeup::wait_for_rows(None, poll, shutdown).await,
        }
        Ok(())
    }

    /// On shutdown: commits the open transaction if Kafka does so within [`SHUTDOWN_GRACE`] and
    /// removes its batches; otherwise aborts it and leaves its rows in the outbox.
    async fn finish(&mut self) -> Result<(), RelayError> {
        if !self.open.is_empty() {
            let producer = Arc::clone(self.producer);
            let committed = tokio::task::spawn_blocking(move || producer.commit_transaction(SHUTDOWN_GRACE)).await?;
            match committed {
                Ok(()) => {
                    for batch in self.open.drain(..) {
                        let refused = batch.acknowledgements.refused();
                        self.deleter.remove(Published { ids: batch.ids, refused, claimed: batch.claimed });
                    }
                }
                Err(err) => {
                    tracing::info!(error = %err, "stopping with the open transaction uncommitted; its rows stay in the outbox");
                    let producer = Arc::clone(self.producer);
                    let _ = tokio::task::spawn_blocking(move || producer.abort_transaction(ABORT_TIMEOUT)).await;
                    self.open.clear();
                }
            }
        }
        while !self.deleter.pending.is_empty() {
            self.deleter.finished().await?;
        }
        Ok(())
    }
}

/// Reports not ready once the open transaction has waited longer than [`STALL_AFTER`].
fn stalled(health: &Health, since: Instant) {
    if since.elapsed() >= STALL_AFTER {
        health.not_ready(format!("Kafka has not committed the open transaction for {} s", since.elapsed().as_secs()));
    }
}

/// Queues every row of a batch on the producer, in id order, without waiting.
fn queue(
    producer: &BatchProducer,
    topic: &str,
    rows: Vec<OutboxRow>,
    claimed: Instant,
) -> Result<InFlight, RelayError> {
    let events = rows.iter().map(|row| Event {
        row: row.id,
        aggregate_id: row.aggregate_id,
        event_id: row.event_id,
        event_type: &row.event_type,
        schema_version: row.schema_version,
        payload: &row.payload,
        traceparent: row.traceparent.as_deref(),
    });
    let acknowledgements = batch::queue(producer, topic, events)?;
    Ok(InFlight { ids: rows.iter().map(|r| r.id).collect(), claimed, acknowledgements })
}

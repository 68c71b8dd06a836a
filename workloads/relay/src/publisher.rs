//! One leadership term (talks to PostgreSQL and Kafka): the leader claims a batch, queues it on
//! the producer and, without waiting, claims and queues the next, up to `batches_in_flight`
//! batches; batches are acknowledged in the order they were queued, and each is handed to the
//! deleter once Kafka took every message of it.
//!
//! Why overlapping batches keep each order's events in order: every message of an order goes to
//! one partition, queued in id order. Messages never time out inside the producer, and an error
//! that could leave a gap is fatal (`batch`), so what one producer delivers to a partition is a
//! prefix of what it queued there. After any failure the relay starts again from the oldest row
//! it has not deleted, so a partition holds interleavings of prefixes of the same id-ordered
//! sequence, in which the first copy of every message comes in id order; every later copy is an
//! exact repeat. A crash between Kafka's acknowledgement and the delete republishes the batch:
//! at least once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ordexa_platform::{Health, Shutdown};
use sqlx::PgConnection;
use sqlx::postgres::PgListener;

use crate::batch::{self, Acknowledgements, BatchProducer, Event};
use crate::claim::{self, Claims, OutboxRow};
use crate::deleter::{Deleter, Published};
use crate::{RelayConfig, RelayError, wakeup};

/// How soon the leader claims again after a claim, while it may not wait for a notification
/// (batches in flight, or writers in progress): from the first to the longest pause, doubling
/// after each claim that found nothing.
const SHORT_POLL: Duration = Duration::from_millis(2);
const LONGEST_POLL: Duration = Duration::from_millis(20);
/// How long the oldest batch may wait for Kafka before the relay reports not ready.
const STALL_AFTER: Duration = Duration::from_secs(5);
/// How long a stopping relay waits for the batches in flight before it leaves them in the
/// outbox (to be published again by whoever leads next).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A batch queued on the producer, waiting for Kafka's acknowledgements.
struct InFlight {
    ids: Vec<i64>,
    claimed: Instant,
    queued: Instant,
    stalled: bool,
    acknowledgements: Acknowledgements,
}

/// What the leader waits for while batches are in flight.
enum Wake {
    Acknowledged(Result<(), RelayError>),
    Deleted(Result<(), RelayError>),
    Stalled,
    Poll,
    Shutdown,
}

/// The state of one leadership term. Dropped at the term's end: the rows it did not delete stay
/// in the outbox, to be published again by whoever leads next.
pub(crate) struct Term<'a> {
    /// The leader's session: claims, and the idle lock.
    conn: &'a mut PgConnection,
    producer: &'a BatchProducer,
    topic: &'a str,
    config: &'a RelayConfig,
    listener: Option<&'a mut PgListener>,
    health: &'a Health,
    deleter: Deleter,
    in_flight: VecDeque<InFlight>,
    claims: Claims,
    /// Whether the outbox may hold rows not claimed yet: false once a claim came back short,
    /// true again after a pause, a notification or the fallback poll.
    more: bool,
    /// After a claim that came back short, how long until the next claim (unless notified).
    pause: Duration,
    /// When to claim again: a fixed time, not restarted by every acknowledgement or delete that
    /// wakes the loop meanwhile.
    poll_at: tokio::time::Instant,
    /// Whether the session holds the idle lock (writers then notify).
    idle: bool,
}

impl<'a> Term<'a> {
    /// Starts a term on the leader's session `conn`: opens the deleter's session.
    pub async fn start(
        conn: &'a mut PgConnection,
        producer: &'a BatchProducer,
        topic: &'a str,
        config: &'a RelayConfig,
        listener: Option<&'a mut PgListener>,
        health: &'a Health,
    ) -> Result<Term<'a>, RelayError> {
        let deleter = Deleter::connect(&config.database_url, config.vacuum_every).await?;
        Ok(Term {
            conn,
            producer,
            topic,
            config,
            listener,
            health,
            deleter,
            in_flight: VecDeque::with_capacity(config.batches_in_flight.max(1)),
            claims: Claims::default(),
            more: true,
            pause: SHORT_POLL,
            poll_at: tokio::time::Instant::now(),
            idle: false,
        })
    }

    /// Publishes until `shutdown` fires (then `Ok`, after the grace for batches in flight) or an
    /// error ends the term.
    pub async fn publish(mut self, shutdown: &mut Shutdown) -> Result<(), RelayError> {
        let result = self.lead(shutdown).await;
        if self.idle {
            // Only a database error leaves it held, after which the session closes; but a session
            // that goes on must not keep making every writer notify.
            let released = wakeup::set_idle(self.conn, false).await;
            return result.and(released.map(|_| ()).map_err(RelayError::from));
        }
        result
    }

    async fn lead(&mut self, shutdown: &mut Shutdown) -> Result<(), RelayError> {
        let depth = self.config.batches_in_flight.max(1);
        loop {
            if shutdown.is_fired() {
                return self.finish().await;
            }
            if self.more && self.in_flight.len() < depth && self.deleter.pending.len() < depth {
                self.claim_and_queue().await?;
                continue;
            }
            if self.in_flight.is_empty() && self.deleter.pending.is_empty() {
                self.health.ready();
                self.wait_for_rows(shutdown).await?;
                self.more = true;
                continue;
            }
            let wake = self.next_wake(shutdown).await;
            self.handle(wake)?;
        }
    }

    /// Claims the next batch and queues it on the producer.
    async fn claim_and_queue(&mut self) -> Result<(), RelayError> {
        let claimed = Instant::now();
        let excluded =
            self.claims.excluded(self.in_flight.iter().map(|b| &b.ids).chain(&self.deleter.pending).flatten());
        let rows =
            claim::claim(self.conn, &mut self.claims, self.config.batch_size, &excluded, self.deleter.pid).await?;
        self.more = i64::try_from(rows.len()).is_ok_and(|n| n >= self.config.batch_size);
        self.pause = if rows.is_empty() { (self.pause * 2).min(LONGEST_POLL) } else { SHORT_POLL };
        self.poll_at = tokio::time::Instant::now() + self.pause;
        if !rows.is_empty() {
            if self.idle {
                wakeup::set_idle(self.conn, false).await?;
                self.idle = false;
            }
            let batch = queue(self.producer, self.topic, rows, claimed)?;
            self.in_flight.push_back(batch);
        }
        Ok(())
    }

    /// With nothing in flight: waits to be notified when every writer that did not notify has
    /// ended, else looks again shortly.
    async fn wait_for_rows(&mut self, shutdown: &mut Shutdown) -> Result<(), RelayError> {
        let poll = self.config.poll_interval;
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

    /// Waits for the oldest batch's acknowledgements, a delete, the stall alarm, the next claim
    /// or shutdown.
    async fn next_wake(&mut self, shutdown: &mut Shutdown) -> Wake {
        // The stall alarm: when the oldest batch has waited too long and is not reported yet.
        let stall_at = self
            .in_flight
            .front()
            .filter(|b| !b.stalled)
            .map(|b| tokio::time::Instant::from_std(b.queued + STALL_AFTER));
        let more = self.more;
        let poll_at = self.poll_at;
        tokio::select! {
            acknowledged = acknowledgements(self.in_flight.front_mut()) => Wake::Acknowledged(acknowledged),
            deleted = self.deleter.finished() => Wake::Deleted(deleted),
            () = sleep_until(stall_at) => Wake::Stalled,
            () = tokio::time::sleep_until(poll_at), if !more => Wake::Poll,
            () = shutdown.wait() => Wake::Shutdown,
        }
    }

    fn handle(&mut self, wake: Wake) -> Result<(), RelayError> {
        match wake {
            Wake::Acknowledged(acknowledged) => {
                acknowledged?;
                if let Some(batch) = self.in_flight.pop_front() {
                    self.deleter.delete(Published { ids: batch.ids, claimed: batch.claimed });
                }
            }
            Wake::Deleted(deleted) => {
                deleted?;
                self.health.ready();
            }
            Wake::Stalled => {
                if let Some(oldest) = self.in_flight.front_mut() {
                    oldest.stalled = true;
                }
                self.health.not_ready(format!(
                    "Kafka has not acknowledged the oldest batch in flight for {} s",
                    STALL_AFTER.as_secs()
                ));
            }
            Wake::Poll => self.more = true,
            Wake::Shutdown => {}
        }
        Ok(())
    }

    /// On shutdown: waits up to [`SHUTDOWN_GRACE`] for the batches in flight, oldest first, and
    /// deletes those Kafka acknowledged; the rest stay in the outbox.
    async fn finish(&mut self) -> Result<(), RelayError> {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while let Some(mut batch) = self.in_flight.pop_front() {
            match tokio::time::timeout_at(deadline, batch.acknowledgements.wait()).await {
                Ok(acknowledged) => {
                    acknowledged?;
                    self.deleter.delete(Published { ids: batch.ids, claimed: batch.claimed });
                }
                Err(_) => {
                    tracing::info!(
                        batches = self.in_flight.len() + 1,
                        "stopping with batches unacknowledged; they stay in the outbox"
                    );
                    break;
                }
            }
        }
        while !self.deleter.pending.is_empty() {
            self.deleter.finished().await?;
        }
        Ok(())
    }
}

/// Whether Kafka took every message of the oldest batch; never without a batch in flight.
async fn acknowledgements(oldest: Option<&mut InFlight>) -> Result<(), RelayError> {
    match oldest {
        Some(batch) => batch.acknowledgements.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
        aggregate_id: row.aggregate_id,
        event_id: row.event_id,
        event_type: &row.event_type,
        schema_version: row.schema_version,
        payload: &row.payload,
        traceparent: row.traceparent.as_deref(),
    });
    let acknowledgements = batch::queue(producer, topic, events)?;
    Ok(InFlight {
        ids: rows.iter().map(|r| r.id).collect(),
        claimed,
        queued: Instant::now(),
        stalled: false,
        acknowledgements,
    })
}

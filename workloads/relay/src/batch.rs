//! A producer whose delivery reports are counted per batch.
//!
//! The relay needs one answer per batch: did Kafka take every message of it? A future per message
//! (rdkafka's `FutureProducer`) costs a channel per message and wakes the waiting task from the
//! producer's polling thread once per message. Here every message of a batch carries the same
//! shared counter; the polling thread counts the reports down and wakes the relay once, when the
//! last one arrives, with the first error any message of the batch got.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::oneshot;
use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use uuid::Uuid;

use crate::{OutboxRow, RelayError};

/// The relay's producer: a polling thread runs the delivery reports, counted per batch.
pub type BatchProducer = ThreadedProducer<BatchContext>;

/// Counts each batch's delivery reports (see the module documentation).
pub struct BatchContext;

impl ClientContext for BatchContext {}

impl ProducerContext for BatchContext {
    type DeliveryOpaque = Arc<Tally>;

    fn delivery(&self, result: &DeliveryResult<'_>, tally: Arc<Tally>) {
        tally.report(result.as_ref().err().map(|(err, _)| err));
    }
}

/// One batch's reports still to come and the first error among those already in. Every message
/// of the batch holds it; when the last report arrives, the outcome goes to [`Acknowledgements`].
/// Should the producer drop messages without a report, the sender goes with the last of them
/// and the batch learns its reports were lost.
pub struct Tally {
    remaining: AtomicUsize,
    first_error: Mutex<Option<KafkaError>>,
    done: Mutex<Option<oneshot::Sender<Result<(), KafkaError>>>>,
}

impl Tally {
    fn new(messages: usize, done: oneshot::Sender<Result<(), KafkaError>>) -> Arc<Self> {
        Arc::new(Tally {
            remaining: AtomicUsize::new(messages),
            first_error: Mutex::new(None),
            done: Mutex::new(Some(done)),
        })
    }

    /// Ends the batch with `err` now, whatever reports are still to come (they then go unheard):
    /// some of its messages could not be queued.
    fn abort(&self, err: KafkaError) {
        if let Some(done) = self.done.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = done.send(Err(err));
        }
    }

    fn report(&self, error: Option<&KafkaError>) {
        if let Some(err) = error {
            self.first_error.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| err.clone());
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let outcome = match self.first_error.lock().unwrap_or_else(PoisonError::into_inner).take() {
                Some(err) => Err(err),
                None => Ok(()),
            };
            if let Some(done) = self.done.lock().unwrap_or_else(PoisonError::into_inner).take() {
                // The batch may have been abandoned (an error elsewhere, a shutdown): nobody waits.
                let _ = done.send(outcome);
            }
        }
    }
}

/// One outbox event as the contract's Kafka message: key = order id, the event's headers.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub aggregate_id: Uuid,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub payload: &'a str,
    pub traceparent: Option<&'a str>,
}

/// A batch queued on the producer: resolves once Kafka reported on every message of it.
pub struct Acknowledgements {
    messages: usize,
    outcome: oneshot::Receiver<Result<(), KafkaError>>,
}

impl Acknowledgements {
    /// Waits until Kafka reported on every message: `Ok` if it took all of them, else the first
    /// error. Cancel-safe: waiting again after a timeout goes on waiting for the same reports.
    pub async fn wait(&mut self) -> Result<(), RelayError> {
        match (&mut self.outcome).await {
            Ok(outcome) => Ok(outcome?),
            Err(oneshot::Canceled) => Err(RelayError::ReportsLost(self.messages)),
        }
    }
}

/// Queues `events` on the producer, in order, without waiting for Kafka. On an error the
/// messages queued before it stay queued, and the caller publishes the batch again.
pub fn queue<'a>(
    producer: &BatchProducer,
    topic: &str,
    events: impl ExactSizeIterator<Item = Event<'a>>,
) -> Result<Acknowledgements, RelayError> {
    let (tally, acknowledgements) = expect(events.len());
    if let Some(tally) = tally {
        send(producer, topic, events, &tally)?;
    }
    Ok(acknowledgements)
}

/// The tally for a batch of `messages` (none for an empty batch, acknowledged at once) and the
/// acknowledgements it resolves.
fn expect(messages: usize) -> (Option<Arc<Tally>>, Acknowledgements) {
    let (done, outcome) = oneshot::channel();
    let tally = if messages == 0 {
        let _ = done.send(Ok(()));
        None
    } else {
        Some(Tally::new(messages, done))
    };
    (tally, Acknowledgements { messages, outcome })
}

/// Produces each event with `tally` as its delivery opaque; stops at the first message the
/// producer refuses.
fn send<'a>(
    producer: &BatchProducer,
    topic: &str,
    events: impl Iterator<Item = Event<'a>>,
    tally: &Arc<Tally>,
) -> Result<(), KafkaError> {
    let mut key_text = Uuid::encode_buffer();
    let mut event_id_text = Uuid::encode_buffer();
    let mut version = SchemaVersion::default();
    for event in events {
        let key = event.aggregate_id.hyphenated().encode_lower(&mut key_text);
        let event_id = event.event_id.hyphenated().encode_lower(&mut event_id_text);
        let mut headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header { key: "event_id", value: Some(&*event_id) })
            .insert(Header { key: "type", value: Some(event.event_type) })
            .insert(Header { key: "schema_version", value: Some(version.text(event.schema_version)) });
        if let Some(traceparent) = event.traceparent {
            headers = headers.insert(Header { key: "traceparent", value: Some(traceparent) });
        }
        let record = BaseRecord::with_opaque_to(topic, Arc::clone(tally))
            .key(key.as_bytes())
            .payload(event.payload.as_bytes())
            .headers(headers);
        producer.send(record).map_err(|(err, _)| err)?;
    }
    Ok(())
}

/// Queues claimed batches on the producer from a thread of its own, in the order they are handed
/// over, so that the leader claims the next batch while this one is being queued.
///
/// Once a batch could not be queued whole, every later batch of this feeder fails without a
/// message queued, and so do those left when the feeder is dropped: what one feeder queues on a
/// partition is a prefix of the id-ordered sequence it was handed, which keeps each order's
/// events in order (see the crate documentation).
pub struct Feeder {
    jobs: std::sync::mpsc::Sender<Job>,
    stop: Arc<AtomicBool>,
}

struct Job {
    rows: Vec<OutboxRow>,
    tally: Arc<Tally>,
}

impl Feeder {
    pub fn start(producer: Arc<BatchProducer>, topic: String) -> Result<Self, RelayError> {
        let (jobs, handed) = std::sync::mpsc::channel::<Job>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new().name("relay-feeder".into()).spawn(move || {
            let mut failed: Option<KafkaError> = None;
            for job in handed {
                if failed.is_none() && stopped.load(Ordering::Acquire) {
                    failed = Some(KafkaError::Canceled);
                }
                if let Some(err) = &failed {
                    job.tally.abort(err.clone());
                    continue;
                }
                if let Err(err) = send(&producer, &topic, job.rows.iter().map(OutboxRow::event), &job.tally) {
                    tracing::warn!(error = %err, "the producer refused a message; the batch fails and no later one is queued");
                    job.tally.abort(err.clone());
                    failed = Some(err);
                }
            }
        })?;
        Ok(Feeder { jobs, stop })
    }

    /// Hands `rows` over to be queued after every batch handed over before. The acknowledgements
    /// resolve once Kafka reported on every message, or with an error if the batch could not be
    /// queued whole (or the feeder stopped first: [`RelayError::ReportsLost`]).
    pub fn feed(&self, rows: Vec<OutboxRow>) -> Acknowledgements {
        let (tally, acknowledgements) = expect(rows.len());
        if let Some(tally) = tally {
            // Should the thread be gone, the job (with the batch's last tally) is dropped here and
            // the acknowledgements report the batch lost.
            let _ = self.jobs.send(Job { rows, tally });
        }
        acknowledgements
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The schema version as header text, formatted once for a run of events of the same version.
#[derive(Default)]
struct SchemaVersion {
    number: Option<i32>,
    text: String,
}

impl SchemaVersion {
    fn text(&mut self, number: i32) -> &str {
        if self.number != Some(number) {
            self.number = Some(number);
            self.text = number.to_string();
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::Producer;
    use rdkafka::types::RDKafkaErrorCode;

    fn tally(messages: usize) -> (Arc<Tally>, oneshot::Receiver<Result<(), KafkaError>>) {
        let (done, outcome) = oneshot::channel();
        (Tally::new(messages, done), outcome)
    }

    #[test]
    fn a_batch_is_acknowledged_on_its_last_report_only() {
        let (tally, mut outcome) = tally(3);
        tally.report(None);
        tally.report(None);
        assert_eq!(outcome.try_recv().ok().flatten(), None, "one report still to come");
        tally.report(None);
        assert_eq!(outcome.try_recv().ok().flatten(), Some(Ok(())));
    }

    #[test]
    fn a_batch_fails_with_the_first_error_after_every_report() {
        let (tally, mut outcome) = tally(3);
        let first = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let second = KafkaError::MessageProduction(RDKafkaErrorCode::Fatal);
        tally.report(Some(&first));
        assert_eq!(outcome.try_recv().ok().flatten(), None, "the batch waits for all its reports");
        tally.report(Some(&second));
        tally.report(None);
        assert_eq!(outcome.try_recv().ok().flatten(), Some(Err(first)));
    }

    #[test]
    fn reports_dropped_by_the_producer_are_reported_lost() {
        let (tally, mut outcome) = tally(2);
        tally.report(None);
        drop(tally); // the producer dropped the last message without a report
        assert!(outcome.try_recv().is_err(), "the sender went with the tally");
    }

    #[test]
    fn the_schema_version_text_follows_the_number() {
        let mut version = SchemaVersion::default();
        assert_eq!(version.text(1), "1");
        assert_eq!(version.text(1), "1");
        assert_eq!(version.text(12), "12");
    }

    fn row(id: i64, payload: String) -> OutboxRow {
        OutboxRow {
            id,
            aggregate_id: Uuid::from_u128(id as u128),
            event_id: Uuid::from_u128(1000 + id as u128),
            event_type: "order.created".into(),
            schema_version: 1,
            payload,
            traceparent: None,
        }
    }

    /// A feeder on a producer whose broker never answers.
    fn feeder() -> Result<(Arc<BatchProducer>, Feeder), RelayError> {
        let config = crate::RelayConfig {
            database_url: String::new(),
            kafka_bootstrap: "127.0.0.1:9".into(),
            topic_prefix: "feeder-test.".into(),
            batch_size: 10,
            poll_interval: std::time::Duration::from_secs(1),
            batches_in_flight: 4,
        };
        let producer = Arc::new(crate::producer(&config)?);
        let feeder = Feeder::start(Arc::clone(&producer), config.topic())?;
        Ok((producer, feeder))
    }

    /// The outcome of a batch, waiting up to 10 s for it.
    fn outcome_of(mut acknowledgements: Acknowledgements) -> Option<Result<(), KafkaError>> {
        for _ in 0..1000 {
            if let Ok(Some(outcome)) = acknowledgements.outcome.try_recv() {
                return Some(outcome);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    /// No broker is needed: librdkafka refuses a message over `message.max.bytes` when it is
    /// produced, and keeps the others queued until a broker answers.
    #[test]
    fn after_a_batch_fails_to_queue_no_later_batch_is_queued() -> Result<(), Box<dyn std::error::Error>> {
        let (producer, feeder) = feeder()?;
        let small = || "{}".to_owned();
        let first = feeder.feed(vec![row(1, small()), row(2, small()), row(3, "x".repeat(2_000_000)), row(4, small())]);
        let second = feeder.feed(vec![row(5, small())]);
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(outcome_of(first), Some(Err(too_large.clone())), "the batch fails at its refused message");
        assert_eq!(outcome_of(second), Some(Err(too_large)), "a later batch fails with it");
        assert_eq!(producer.in_flight_count(), 2, "only the messages before the refused one were queued");
        drop(feeder);
        Ok(())
    }

    #[test]
    fn batches_left_to_a_dropped_feeder_are_not_queued() -> Result<(), Box<dyn std::error::Error>> {
        let (producer, feeder) = feeder()?;
        feeder.stop.store(true, Ordering::Release);
        let left = feeder.feed(vec![row(1, "{}".to_owned())]);
        assert_eq!(outcome_of(left), Some(Err(KafkaError::Canceled)));
        assert_eq!(producer.in_flight_count(), 0);
        let empty = feeder.feed(Vec::new());
        assert_eq!(outcome_of(empty), Some(Ok(())), "an empty batch is acknowledged at once");
        Ok(())
    }
}

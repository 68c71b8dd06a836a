//! The relay's producer (talks to Kafka): transactional, with delivery reports counted per
//! batch and the rows Kafka refuses for good named.
//!
//! Fencing. Every replica uses the same `transactional.id` (one per system, from the topic
//! prefix), and a leader initialises its producer's transactions when its term starts. That
//! fences every earlier producer with the id: a leader that was stopped or cut off and wakes after
//! another took over gets its produce and commit requests refused, and the transaction it had
//! open is aborted by Kafka, so consumers reading committed messages never see it.
//!
//! One answer per batch. A future per message (rdkafka's `FutureProducer`) costs a channel per
//! message and wakes the waiting task from the producer's polling thread once per message. Here
//! every message of a batch carries the same shared tally; the polling thread counts the reports
//! down and wakes the relay once, when the last one arrives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::oneshot;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use uuid::Uuid;

use crate::RelayError;

/// The relay's producer: a polling thread runs the delivery reports, counted per batch.
pub(crate) type BatchProducer = ThreadedProducer<BatchContext>;

/// How long [`init`] waits for Kafka to fence earlier producers and hand out a producer id.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A transactional producer with `transactional_id`; acks from all in-sync replicas, idempotent
/// (implied by transactions), compressed. A `careful` one sends each message in a record batch
/// of its own, so that a batch Kafka refuses names exactly one row (see `publisher`).
pub(crate) fn producer(bootstrap: &str, transactional_id: &str, careful: bool) -> Result<BatchProducer, RelayError> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "2")
        .set("batch.num.messages", if careful { "1" } else { "10000" })
        // Careful: nothing else in flight behind a refused record batch, so an abort has only
        // queued messages to purge.
        .set("max.in.flight.requests.per.connection", if careful { "1" } else { "5" })
        // The same key → partition mapping as Kafka's Java clients.
        .set("partitioner", "murmur2_random");
    Ok(BatchProducer::from_config_and_context(&client, BatchContext)?)
}

/// Initialises `producer`'s transactions, fencing every earlier producer with its id.
pub(crate) async fn init(producer: &Arc<BatchProducer>) -> Result<(), RelayError> {
    let producer = Arc::clone(producer);
    tokio::task::spawn_blocking(move || producer.init_transactions(INIT_TIMEOUT)).await??;
    Ok(())
}

/// Whether Kafka refuses this message for good, whatever is retried: it is larger than the
/// producer, broker or topic allows, or a record Kafka finds invalid. Such a row is moved to the
/// dead letters instead of stopping every row after it. Errors about the topic as a whole (an
/// ACL, a missing topic) are not: every row would fail alike, so the relay waits, not ready.
pub(crate) fn refused_for_good(err: &KafkaError) -> bool {
    matches!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidRecord))
}

/// Counts each batch's delivery reports (see the module documentation).
pub(crate) struct BatchContext;

impl ClientContext for BatchContext {}

impl ProducerContext for BatchContext {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Box<Delivery>) {
        delivery.tally.report(delivery.row, result.as_ref().err().map(|(err, _)| err));
    }
}

/// What each message carries to its delivery report: its batch's tally and its outbox row.
pub(crate) struct Delivery {
    tally: Arc<Tally>,
    row: i64,
}

/// One batch's reports still to come, the first error among those already in, and the rows
/// refused for good. Every message of the batch holds it; when the last report arrives, the
/// outcome goes to [`Acknowledgements`]. Should the producer drop messages without a report, the
/// sender goes with the last of them and the batch learns its reports were lost.
pub(crate) struct Tally {
    remaining: AtomicUsize,
    first_error: Mutex<Option<KafkaError>>,
    refused: Mutex<Vec<Refused>>,
    done: Mutex<Option<oneshot::Sender<Result<(), KafkaError>>>>,
}

/// An outbox row Kafka refused for good, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub row: i64,
    pub reason: String,
}

impl Tally {
    fn new(messages: usize, done: oneshot::Sender<Result<(), KafkaError>>) -> Arc<Self> {
        Arc::new(Tally {
            remaining: AtomicUsize::new(messages),
            first_error: Mutex::new(None),
            refused: Mutex::new(Vec::new()),
            done: Mutex::new(Some(done)),
        })
    }

    /// Counts one message's report. The first error wakes the waiting relay at once: the
    /// transaction cannot commit, and messages queued after a failed one may never be reported
    /// until the transaction is aborted.
    fn report(&self, row: i64, error: Option<&KafkaError>) {
        if let Some(err) = error {
            self.first_error.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| err.clone());
            if refused_for_good(err) {
                let reason = format!("Kafka refused the message for good: {err}");
                self.refused.lock().unwrap_or_else(PoisonError::into_inner).push(Refused { row, reason });
            }
            if let Some(done) = self.done.lock().unwrap_or_else(PoisonError::into_inner).take() {
                let _ = done.send(Err(err.clone()));
            }
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
pub(crate) struct Event<'a> {
    /// The outbox row's id.
    pub row: i64,
    pub aggregate_id: Uuid,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub payload: &'a str,
    pub traceparent: Option<&'a str>,
}

/// A batch queued on the producer: resolves once Kafka reported on every message of it.
pub(crate) struct Acknowledgements {
    messages: usize,
    tally: Option<Arc<Tally>>,
    outcome: oneshot::Receiver<Result<(), KafkaError>>,
}

impl Acknowledgements {
    /// The rows of the batch Kafka refused for good, among the reports in so far.
    pub fn refused(&self) -> Vec<Refused> {
        self.tally
            .as_ref()
            .map(|t| t.refused.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default()
    }

    /// Waits until Kafka reported on every message: `Ok` if it took all of them, else the first
    /// error. Cancel-safe: waiting again after a timeout goes on waiting for the same reports.
    pub async fn wait(&mut self) -> Result<(), RelayError> {
        match (&mut self.outcome).await {
            Ok(outcome) => Ok(outcome?),
            Err(oneshot::Canceled) => Err(RelayError::ReportsLost(self.messages)),
        }
    }
}

/// Queues `events` on the producer, in order, without waiting for Kafka. A message the producer
/// refuses for good at once (larger than it may send) is reported refused, not queued; on any
/// other error the messages queued before it stay queued, and the caller aborts the transaction.
pub(crate) fn queue<'a>(
    producer: &BatchProducer,
    topic: &str,
    events: impl ExactSizeIterator<Item = Event<'a>>,
) -> Result<Acknowledgements, RelayError> {
    let messages = events.len();
    let (done, outcome) = oneshot::channel();
    if messages == 0 {
        let _ = done.send(Ok(()));
        return Ok(Acknowledgements { messages, tally: None, outcome });
    }
    let tally = Tally::new(messages, done);
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
        let delivery = Box::new(Delivery { tally: Arc::clone(&tally), row: event.row });
        let record = BaseRecord::with_opaque_to(topic, delivery)
            .key(key.as_bytes())
            .payload(event.payload.as_bytes())
            .headers(headers);
        if let Err((err, _)) = producer.send(record) {
            if !refused_for_good(&err) {
                return Err(err.into());
            }
            // Never queued, so no report comes: count it here.
            tally.report(event.row, Some(&err));
        }
    }
    Ok(Acknowledgements { messages, tally: Some(tally), outcome })
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
    use rdkafka::types::RDKafkaErrorCode;

    fn tally(messages: usize) -> (Arc<Tally>, oneshot::Receiver<Result<(), KafkaError>>) {
        let (done, outcome) = oneshot::channel();
        (Tally::new(messages, done), outcome)
    }

    #[test]
    fn a_batch_is_acknowledged_on_its_last_report_only() {
        let (tally, mut outcome) = tally(3);
        tally.report(1, None);
        tally.report(2, None);
        assert_eq!(outcome.try_recv().ok().flatten(), None, "one report still to come");
        tally.report(3, None);
        assert_eq!(outcome.try_recv().ok().flatten(), Some(Ok(())));
    }

    #[test]
    fn a_batch_fails_at_its_first_error_and_names_the_refused_rows() {
        let (tally, mut outcome) = tally(3);
        let first = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let second = KafkaError::MessageProduction(RDKafkaErrorCode::Fatal);
        tally.report(1, Some(&first));
        assert_eq!(outcome.try_recv().ok().flatten(), Some(Err(first)), "no need to wait for the other reports");
        tally.report(2, Some(&second));
        tally.report(3, None);
        let refused = tally.refused.lock().map(|r| r.clone()).unwrap_or_default();
        assert_eq!(
            refused.iter().map(|r| r.row).collect::<Vec<_>>(),
            [1],
            "only the too-large message is refused for good"
        );
    }

    #[test]
    fn reports_dropped_by_the_producer_are_reported_lost() {
        let (tally, mut outcome) = tally(2);
        tally.report(1, None);
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
}

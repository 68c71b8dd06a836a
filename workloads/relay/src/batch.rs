//! The relay's producer (talks to Kafka), whose delivery reports are counted per batch.
//!
//! The relay needs one answer per batch: did Kafka take every message of it? A future per message
//! (rdkafka's `FutureProducer`) costs a channel per message and wakes the waiting task from the
//! producer's polling thread once per message. Here every message of a batch carries the same
//! shared counter; the polling thread counts the reports down and wakes the relay once, when the
//! last one arrives, with the first error any message of the batch got.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::oneshot;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use uuid::Uuid;

use crate::RelayError;

/// The relay's producer: a polling thread runs the delivery reports, counted per batch.
pub(crate) type BatchProducer = ThreadedProducer<BatchContext>;

/// An idempotent, gapless producer: retries keep per-partition order, and an error that would
/// leave a gap is fatal rather than silent, so the relay rebuilds the producer and republishes.
pub(crate) fn producer(bootstrap: &str) -> Result<BatchProducer, RelayError> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("enable.gapless.guarantee", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "2")
        .set("batch.num.messages", "10000")
        // The same key → partition mapping as Kafka's Java clients.
        .set("partitioner", "murmur2_random")
        // Never give up on a message: a timed-out message could leave a gap that a later batch
        // fills past. While Kafka is away the relay waits, not ready, and goes on when it is back.
        .set("message.timeout.ms", "0");
    Ok(BatchProducer::from_config_and_context(&client, BatchContext)?)
}

/// Asks Kafka, in the background, for the topic's partitions and their leaders, so that the first
/// batch after a start need not wait for them. Best effort: should Kafka not answer, the producer
/// finds them itself once it does.
///
/// It asks twice. The idempotent producer cannot send before it has a producer id, which it
/// requests when a metadata answer arrives while it has a connection to a broker it knows by id,
/// else when its 500 ms retry timer fires. The first answer comes over the bootstrap connection,
/// which librdkafka then closes, opening one to the broker the answer names; the second answer
/// comes over that one (`docs/adr/`: the producer id at start).
pub(crate) fn warm_up(producer: &Arc<BatchProducer>, topic: &str) {
    let (producer, topic) = (Arc::clone(producer), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        for _ in 0..2 {
            match producer.client().fetch_metadata(Some(&topic), WARM_UP_TIMEOUT) {
                Ok(metadata) => {
                    let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
                    tracing::debug!(topic, partitions, "the topic's partitions are known");
                }
                Err(err) => {
                    tracing::debug!(topic, error = %err, "cannot fetch the topic's partitions yet");
                    return;
                }
            }
        }
    });
}

/// How long [`warm_up`] waits for Kafka.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts each batch's delivery reports (see the module documentation).
pub(crate) struct BatchContext;

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
pub(crate) struct Tally {
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
pub(crate) struct Event<'a> {
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
pub(crate) fn queue<'a>(
    producer: &BatchProducer,
    topic: &str,
    events: impl ExactSizeIterator<Item = Event<'a>>,
) -> Result<Acknowledgements, RelayError> {
    let messages = events.len();
    let (done, outcome) = oneshot::channel();
    if messages == 0 {
        let _ = done.send(Ok(()));
        return Ok(Acknowledgements { messages, outcome });
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
        let record = BaseRecord::with_opaque_to(topic, Arc::clone(&tally))
            .key(key.as_bytes())
            .payload(event.payload.as_bytes())
            .headers(headers);
        producer.send(record).map_err(|(err, _)| err)?;
    }
    Ok(Acknowledgements { messages, outcome })
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
}

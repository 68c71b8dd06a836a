//! Dead letters (talks to Kafka): a record the projector cannot apply goes to
//! `<prefix>orders.dlq` with its original key, value and headers, plus headers naming the error,
//! the source topic/partition/offset, the attempt count and the time.

use std::time::Duration;

use ordexa_platform::{Health, Shutdown, backoff_delay};
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Header names the projector adds to a dead letter.
pub mod dlq_headers {
    pub const ERROR: &str = "dlq.error";
    pub const SOURCE_TOPIC: &str = "dlq.source.topic";
    pub const SOURCE_PARTITION: &str = "dlq.source.partition";
    pub const SOURCE_OFFSET: &str = "dlq.source.offset";
    pub const ATTEMPTS: &str = "dlq.attempts";
    pub const DEAD_LETTERED_AT: &str = "dlq.dead_lettered_at";
    /// Set by `ordexa dlq replay` on the re-driven record: `<dlq topic>/<partition>:<offset>`.
    pub const REPLAYED_FROM: &str = "dlq.replayed_from";
    pub const ALL: [&str; 7] =
        [ERROR, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, ATTEMPTS, DEAD_LETTERED_AT, REPLAYED_FROM];
}

/// Produces `message` to the dead-letter topic and waits for Kafka's acknowledgement, retrying
/// until it lands. Returns false when a shutdown interrupted it.
pub(crate) async fn dead_letter(
    message: &OwnedMessage,
    error: &str,
    attempts: u32,
    producer: &FutureProducer,
    dlq_topic: &str,
    health: &Health,
    shutdown: &mut Shutdown,
) -> bool {
    let attempts = attempts.to_string();
    tracing::warn!(partition = message.partition(), offset = message.offset(), %error, "dead letter");
    let mut attempt = 0u32;
    loop {
        let now = ordexa_domain::now_micros().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let (partition, offset) = (message.partition().to_string(), message.offset().to_string());
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in original.iter().filter(|h| !dlq_headers::ALL.contains(&h.key)) {
                headers = headers.insert(Header { key: h.key, value: h.value });
            }
        }
        let added = [
            (dlq_headers::ERROR, error),
            (dlq_headers::SOURCE_TOPIC, message.topic()),
            (dlq_headers::SOURCE_PARTITION, partition.as_str()),
            (dlq_headers::SOURCE_OFFSET, offset.as_str()),
            (dlq_headers::ATTEMPTS, attempts.as_str()),
            (dlq_headers::DEAD_LETTERED_AT, now.as_str()),
        ];
        for (key, value) in added {
            headers = headers.insert(Header { key, value: Some(value) });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(dlq_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        match producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => {
                metrics::counter!("ordexa_projector_dead_letters_total").increment(1);
                return true;
            }
            Err((err, _)) => {
                metrics::counter!("ordexa_projector_errors_total", "stage" => "dead_letter").increment(1);
                health.not_ready(format!("cannot write to the dead-letter topic {dlq_topic}: {err}"));
                shutdown.sleep(backoff_delay(attempt)).await;
                if shutdown.is_fired() {
                    return false;
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

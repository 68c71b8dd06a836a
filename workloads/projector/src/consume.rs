//! The projector's loop (talks to Kafka and Cassandra): takes a batch, writes it, dead-letters
//! what cannot be written, commits its offsets — only after its writes succeeded.
//!
//! Transient failures (Cassandra away, timeouts) pause the consumer's partitions and retry the
//! batch with capped, jittered backoff for as long as they last; the consumer keeps polling
//! meanwhile, so it never exceeds `max.poll.interval.ms` and keeps its partitions. A write that
//! fails for good is retried [`PERMANENT_FAILURE_ATTEMPTS`] times, then its event goes to the dead
//! letters. Liveness: the loop reports each attempt as a step (`ordexa_platform::Health`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ordexa_domain::OrderEvent;
use ordexa_platform::{Health, Shutdown, backoff_delay};
use ordexa_readmodel::{ReadModel, ReadModelError};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, Statistics, TopicPartitionList};

use crate::dead_letter::dead_letter;
use crate::{
    FailureKind, IDLE_AFTER, PERMANENT_FAILURE_ATTEMPTS, ProjectorConfig, ProjectorError, decode, failure_kind,
};

/// The consumer of the projector's group. Its local queue is bounded (a few MB of prefetched
/// messages, not librdkafka's default of up to a gigabyte), so a drain of a large backlog keeps
/// the process small.
fn consumer(config: &ProjectorConfig) -> Result<StreamConsumer<LagReporter>, ProjectorError> {
    let consumer: StreamConsumer<LagReporter> = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("statistics.interval.ms", "5000")
        .set("queued.min.messages", "2000")
        .set("queued.max.messages.kbytes", "8192")
        .set("fetch.max.bytes", "4194304")
        .set("max.partition.fetch.bytes", "1048576")
        .create_with_context(LagReporter)?;
    consumer.subscribe(&[&config.topic()])?;
    Ok(consumer)
}

/// Runs the projector until `shutdown` fires. Failures are retried; only a shutdown (or a
/// configuration error at start-up) ends it.
pub async fn run(
    config: ProjectorConfig,
    model: Arc<ReadModel>,
    health: Health,
    mut shutdown: Shutdown,
) -> Result<(), ProjectorError> {
    if config.batch_size == 0 || config.concurrency == 0 {
        return Err(ProjectorError::Config("batch size and concurrency must be at least 1".to_owned()));
    }
    let mut projector = Projector {
        consumer: consumer(&config)?,
        producer: crate::producer(&config.kafka_bootstrap)?,
        dlq_topic: config.dlq_topic(),
        model,
        config,
        health,
        carried: VecDeque::new(),
        paused: false,
    };
    tracing::info!(topic = %projector.config.topic(), group = %projector.config.group_id,
        keyspace = projector.model.keyspace(), "projector consuming");
    projector.health.ready();
    projector.consume(&mut shutdown).await;
    tracing::info!("projector stopping");
    projector.consumer.unsubscribe();
    Ok(())
}

/// What [`Projector::next_batch`] found.
enum Next {
    Batch(Vec<OwnedMessage>),
    Idle,
    Failed(rdkafka::error::KafkaError),
    Shutdown,
}

/// The projector's state.
struct Projector {
    consumer: StreamConsumer<LagReporter>,
    producer: FutureProducer,
    dlq_topic: String,
    model: Arc<ReadModel>,
    config: ProjectorConfig,
    health: Health,
    /// Messages received while the partitions were paused: the next batch starts with them.
    carried: VecDeque<OwnedMessage>,
    /// Whether the consumer's partitions are paused.
    paused: bool,
}

impl Projector {
    async fn consume(&mut self, shutdown: &mut Shutdown) {
        let mut kafka_failures = 0u32;
        loop {
            let batch = match self.next_batch(shutdown).await {
                Next::Shutdown => return,
                Next::Idle => {
                    kafka_failures = 0;
                    self.health.idle();
                    self.health.ready();
                    continue;
                }
                Next::Failed(err) => {
                    metrics::counter!("ordexa_projector_errors_total", "stage" => "consume").increment(1);
                    self.health.not_ready(format!("cannot consume from Kafka: {err}"));
                    tracing::warn!(error = %err, "consume failed");
                    shutdown.sleep(backoff_delay(kafka_failures)).await;
                    kafka_failures = kafka_failures.saturating_add(1);
                    continue;
                }
                Next::Batch(batch) => batch,
            };
            kafka_failures = 0;
            self.health.busy();
            if !self.project(&batch, shutdown).await {
                return; // shut down before the batch was done: its offsets stay uncommitted
            }
            self.commit(&batch);
            self.health.step();
            self.health.ready();
        }
    }

    /// The next batch: the messages carried over first, then what the consumer has at once, up
    /// to the batch size; waits for a first message up to [`IDLE_AFTER`].
    async fn next_batch(&mut self, shutdown: &mut Shutdown) -> Next {
        let mut batch: Vec<OwnedMessage> = Vec::new();
        while batch.len() < self.config.batch_size {
            match self.carried.pop_front() {
                Some(message) => batch.push(message),
                None => break,
            }
        }
        if batch.is_empty() {
            let first = tokio::select! {
                () = shutdown.wait() => return Next::Shutdown,
                received = tokio::time::timeout(IDLE_AFTER, self.consumer.recv()) => received,
            };
            match first {
                Err(_idle) => return Next::Idle,
                Ok(Err(err)) => return Next::Failed(err),
                Ok(Ok(message)) => batch.push(message.detach()),
            }
        }
        while batch.len() < self.config.batch_size {
            match tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                _ => break,
            }
        }
        Next::Batch(batch)
    }

    /// Writes the batch's events and dead-letters its poison and its events that fail for good.
    /// Returns false when a shutdown interrupted it.
    async fn project(&mut self, batch: &[OwnedMessage], shutdown: &mut Shutdown) -> bool {
        let mut pending: Vec<(usize, OrderEvent)> = Vec::with_capacity(batch.len());
        for (i, message) in batch.iter().enumerate() {
            match decode(message.key(), message.payload()) {
                Ok(event) => pending.push((i, event)),
                Err(why) => {
                    let error = why.to_string();
                    let sent = dead_letter(message, &error, 1, &self.producer, &self.dlq_topic, &self.health, shutdown);
                    if !sent.await {
                        return false;
                    }
                }
            }
        }
        let mut refusals: HashMap<usize, u32> = HashMap::new();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let results = apply_all(&self.model, &pending, self.config.concurrency).await;
            self.health.step();
            let mut retry = Vec::new();
            let mut first_error = None;
            let mut done: Vec<Option<(usize, OrderEvent)>> = pending.into_iter().map(Some).collect();
            for (position, result) in results {
                let Some((i, event)) = done[position].take() else { continue };
                match result {
                    Ok(()) => {
                        metrics::counter!("ordexa_projector_events_total").increment(1);
                        let delay = (chrono::Utc::now() - event.occurred_at).num_microseconds().unwrap_or(i64::MAX);
                        metrics::histogram!("ordexa_projector_delay_seconds").record(delay as f64 / 1e6);
                    }
                    Err(err) if failure_kind(&err) == FailureKind::Permanent => {
                        let refused = refusals.entry(i).or_insert(0);
                        *refused += 1;
                        if *refused >= PERMANENT_FAILURE_ATTEMPTS {
                            let error = format!("the read model refuses the event: {err}");
                            let sent = dead_letter(
                                &batch[i],
                                &error,
                                *refused,
                                &self.producer,
                                &self.dlq_topic,
                                &self.health,
                                shutdown,
                            );
                            if !sent.await {
                                return false;
                            }
                        } else {
                            first_error.get_or_insert(err);
                            retry.push((i, event));
                        }
                    }
                    Err(err) => {
                        first_error.get_or_insert(err);
                        retry.push((i, event));
                    }
                }
            }
            if let Some(err) = first_error {
                metrics::counter!("ordexa_projector_errors_total", "stage" => "cassandra")
                    .increment(retry.len() as u64);
                self.health.not_ready(format!("cannot write the read model: {err}"));
                tracing::warn!(error = %err, failed = retry.len(), attempt, "read model writes failed; retrying");
                if !self.wait_paused(backoff_delay(attempt), shutdown).await {
                    return false;
                }
                attempt = attempt.saturating_add(1);
            }
            pending = retry;
        }
        self.resume();
        true
    }

    /// Waits `delay` with the consumer's partitions paused, polling meanwhile so that it keeps
    /// its place in the group; messages that still arrive are carried to the next batch. Returns
    /// false when a shutdown interrupted it.
    async fn wait_paused(&mut self, delay: Duration, shutdown: &mut Shutdown) -> bool {
        if !self.paused {
            match self.consumer.assignment().and_then(|assigned| self.consumer.pause(&assigned)) {
                Ok(()) => self.paused = true,
                Err(err) => tracing::warn!(error = %err, "cannot pause the partitions; polling goes on"),
            }
        }
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                () = shutdown.wait() => return false,
                () = tokio::time::sleep_until(until) => return true,
                received = self.consumer.recv() => match received {
                    Ok(message) => self.carried.push_back(message.detach()),
                    Err(err) => tracing::debug!(error = %err, "consume error while paused"),
                },
            }
        }
    }

    fn resume(&mut self) {
        if self.paused {
            match self.consumer.assignment().and_then(|assigned| self.consumer.resume(&assigned)) {
                Ok(()) => self.paused = false,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot resume the partitions; trying again after the next batch")
                }
            }
        }
    }

    /// Commits the offsets after the batch's last message of each partition.
    fn commit(&self, batch: &[OwnedMessage]) {
        let consumer = &self.consumer;
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for m in batch {
            let entry = next.entry((m.topic().to_owned(), m.partition())).or_insert(0);
            *entry = (*entry).max(m.offset() + 1);
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if let Err(err) = list.add_partition_offset(&topic, partition, Offset::Offset(offset)) {
                tracing::warn!(error = %err, "cannot build the offset list");
                return;
            }
        }
        // Every message below these offsets was applied by this consumer, from the offset its
        // partitions were assigned at; a commit that fails (Kafka away, a rebalance) only makes
        // the next owner replay, which rewrites identical cells.
        if let Err(err) = consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(error = %err, "offset commit failed; the batch will be projected again");
        }
    }
}

/// Applies every event with at most `concurrency` in flight: a sliding window, so one slow write
/// holds back only its own slot, not a whole group. Each result comes with its event's position
/// in `events`.
async fn apply_all(
    model: &ReadModel,
    events: &[(usize, OrderEvent)],
    concurrency: usize,
) -> Vec<(usize, Result<(), ReadModelError>)> {
    let mut results = Vec::with_capacity(events.len());
    let mut queued = events.iter().enumerate();
    let mut in_flight = FuturesUnordered::new();
    for (position, (_, event)) in queued.by_ref().take(concurrency) {
        in_flight.push(apply_one(model, position, event));
    }
    while let Some(done) = in_flight.next().await {
        results.push(done);
        if let Some((position, (_, event))) = queued.next() {
            in_flight.push(apply_one(model, position, event));
        }
    }
    results
}

async fn apply_one(model: &ReadModel, position: usize, event: &OrderEvent) -> (usize, Result<(), ReadModelError>) {
    (position, model.apply(event).await)
}

/// Reports consumer lag per partition (the high watermark minus the committed offset) from
/// librdkafka's periodic statistics.
pub struct LagReporter;

impl ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                // Partition -1 is librdkafka's internal "unassigned" bucket; -1 lag means unknown.
                if partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!("ordexa_projector_lag", "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for LagReporter {}

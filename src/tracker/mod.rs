//! The window tracker: consumes the inbound topic in a consumer group, keeps each contact's
//! windows, and writes window events and state. Time is each partition's log time (append
//! times, and ticks appended to idle partitions), so output depends on the log alone. Per
//! batch, exactly once: events, routed records, state and offsets in one transaction; or
//! at-least-once: events (and routed records) acknowledged first, then state, then offsets —
//! so a crash can only repeat work, with the same deterministic ids, never lose it.

mod book;
mod clock;
mod consumer;
mod gauges;
mod input;
#[cfg(test)]
mod mock_tests;
mod output;
pub mod records;
pub(crate) mod restore;
#[cfg(test)]
mod tests;
mod transaction;
mod unusable;

pub use book::{Book, Contacts, EmittedEvent, Outbox};
pub use input::{TYPE_ALIAS, TYPE_FORWARDED, TYPE_MOVED, TYPE_TICK};
pub use records::{read_state_record, Contact, TYPE_STATE};

use clock::*;
use consumer::*;
use output::*;
use unusable::Undecodable;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

use crate::config::{GroupProtocol, KafkaSettings, ProcessingGuarantee, TrackerSettings};
use crate::domain::UnixSeconds;
use crate::kafka::Publisher;
use crate::metrics::{KafkaOperation, Metrics};

/// Most records handled in one batch (one round of acknowledgements and one commit). A
/// transaction costs several round trips whatever its size, so its size sets the exactly-once
/// rate: 2,000 held the tracker at ~12 k events/s here, 8,000 doubled that (`BENCHMARKS.md`
/// section 8). Batches only take what is already fetched, so they are small when traffic is.
const MAX_BATCH: usize = 8000;
/// How long a failed transactional producer may take to be replaced.
const RENEW_DEADLINE: Duration = Duration::from_secs(180);
/// How long at-least-once output is retried before the tracker rebuilds its partitions from
/// Kafka instead: well inside the group's `max.poll.interval.ms` (5 minutes), after which the
/// partitions would belong to another member.
const OUTPUT_RETRY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a tick may stay unseen before another is appended.
const TICK_RETRY: Duration = Duration::from_secs(1);
/// How long the state restore of an assignment may take before the tracker gives up.
const RESTORE_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("cannot create the tracker's Kafka consumer: {0}")]
    Consumer(KafkaError),
    #[error("cannot subscribe to {topic}: {source}")]
    Subscribe { topic: String, source: KafkaError },
    #[error(transparent)]
    Restore(#[from] restore::RestoreError),
    #[error("the consumer failed: {0}")]
    Consume(KafkaError),
    #[error("cannot start the tracker's transactional producer: {0}")]
    Transactions(KafkaError),
    #[error(transparent)]
    Fenced(#[from] transaction::TransactionError),
    #[error("cannot rewind to the committed offsets: {0}")]
    Rewind(KafkaError),
    #[error("cannot read the committed offset of inbound partition {partition}: {source}")]
    Committed { partition: i32, source: KafkaError },
    #[error("the tracker's producer failed: {0}")]
    Output(String),
}

pub struct Tracker {
    consumer: StreamConsumer<RebalanceContext>,
    publisher: Arc<Publisher>,
    output: Output,
    kafka: KafkaSettings,
    book: Book,
    metrics: Arc<Metrics>,
    restored: Arc<AtomicBool>,
    print_events: bool,
    rebalances: mpsc::Receiver<RebalanceEvent>,
    pending_rebalances: Vec<RebalanceEvent>,
    assigned: HashSet<i32>,
    /// Per partition, bumped whenever it is assigned or revoked: a record fetched under an
    /// older assignment of its partition is not processed (its new owner, or this member's
    /// restart from the committed offset, handles it). Partitions that stay with this member
    /// through an incremental rebalance keep their epoch and their fetched records.
    epochs: HashMap<i32, u64>,
    /// Per assigned partition, the latest append time among the records processed since it
    /// was assigned: the only clock timers fire by, so output depends on the log alone.
    clocks: HashMap<i32, UnixSeconds>,
    /// When a tick was last appended to a partition, so one is in flight at a time.
    ticks_sent: HashMap<i32, Instant>,
    last_gauges: Instant,
}

impl Tracker {
    pub fn new(
        kafka: &KafkaSettings,
        settings: TrackerSettings,
        publisher: Arc<Publisher>,
        metrics: Arc<Metrics>,
        print_events: bool,
    ) -> Result<Self, TrackerError> {
        let (sender, rebalances) = mpsc::channel();
        let context = RebalanceContext {
            topic: kafka.topics.inbound.clone(),
            events: Mutex::new(sender),
        };
        let mut config = crate::kafka::base_config(kafka);
        if let Some(instance) = &settings.group_instance_id {
            config.set("group.instance.id", instance);
        }
        config
            .set("group.id", &settings.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        match settings.group_protocol {
            GroupProtocol::Classic => config
                .set(
                    "session.timeout.ms",
                    settings.session_timeout.as_millis().to_string(),
                )
                .set("heartbeat.interval.ms", "1000")
                .set("partition.assignment.strategy", "cooperative-sticky"),
            // The broker assigns and sets the timeouts; librdkafka refuses them client-side.
            GroupProtocol::Consumer => config.set("group.protocol", "consumer"),
        };
        let consumer: StreamConsumer<RebalanceContext> = config
            .create_with_context(context)
            .map_err(TrackerError::Consumer)?;
        let output = match settings.processing_guarantee {
            ProcessingGuarantee::AtLeastOnce => Output::AtLeastOnce(
                crate::kafka::tracker_producer(kafka)
                    .map_err(|e| TrackerError::Output(e.to_string()))?,
            ),
            ProcessingGuarantee::ExactlyOnce => {
                let id = transactional_id(&settings);
                tracing::info!(transactional_id = id, "exactly-once output");
                Output::ExactlyOnce(
                    transaction::Transactions::new(kafka, &id)
                        .map_err(TrackerError::Transactions)?,
                )
            }
        };
        Ok(Self {
            consumer,
            publisher,
            output,
            kafka: kafka.clone(),
            book: Book::new(settings.windows),
            metrics,
            restored: Arc::new(AtomicBool::new(false)),
            print_events,
            rebalances,
            pending_rebalances: Vec::new(),
            assigned: HashSet::new(),
            epochs: HashMap::new(),
            clocks: HashMap::new(),
            ticks_sent: HashMap::new(),
            last_gauges: Instant::now(),
        })
    }

    /// True once every assigned partition's state is restored (what /readyz reports).
    pub fn restored_flag(&self) -> Arc<AtomicBool> {
        self.restored.clone()
    }

    pub async fn run(mut self, stop: CancellationToken) -> Result<(), TrackerError> {
        let topic = self.kafka.topics.inbound.clone();
        self.consumer
            .subscribe(&[&topic])
            .map_err(|source| TrackerError::Subscribe {
                topic: topic.clone(),
                source,
            })?;
        tracing::info!(topic, "tracker subscribed");
        let mut batch = Vec::new();
        loop {
            let wait = self.time_to_next_timer();
            tokio::select! {
                _ = stop.cancelled() => break,
                received = self.consumer.recv() => {
                    let first = received.map(|m| detach(&m, 0));
                    self.collect_batch(first, &mut batch)?;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            self.handle_rebalances().await?;
            let mut outbox = Outbox::default();
            let mut undecodable = Vec::new();
            let mut offsets: HashMap<i32, i64> = HashMap::new();
            let wall = UnixSeconds::now();
            for record in batch.drain(..) {
                // Fetched before a rebalance: its partition's new owner handles it.
                if record.epoch != self.epoch_of(record.partition)
                    || !self.assigned.contains(&record.partition)
                {
                    continue;
                }
                offsets.insert(record.partition, record.offset + 1);
                if let Some(arrival) = record.arrival {
                    self.metrics
                        .input_lag
                        .set((wall.0 - arrival.0).max(0) as f64);
                }
                // Every record, ticks included, moves its partition's clock; whatever fell
                // due before it was appended happens before it is applied.
                let clock = self.advance_clock(record.partition, record.arrival);
                if let Some(clock) = clock {
                    self.book
                        .tick_partition(record.partition, clock, &mut outbox);
                }
                let Some(value) = record.value else {
                    continue;
                };
                // Only a record without a timestamp (pre-0.10 format) falls back to our clock.
                let now = clock.unwrap_or(wall);
                let arrival = record.arrival.unwrap_or(now).min(now);
                let applied = match &record.key {
                    Some(key) => self.book.apply_record(
                        record.partition,
                        key,
                        &value,
                        arrival,
                        now,
                        &mut outbox,
                    ),
                    None => input::check_json(&value),
                };
                if applied.is_err() {
                    undecodable.push(Undecodable {
                        partition: record.partition,
                        offset: record.offset,
                        contact: record.key,
                    });
                }
            }
            let durable = if matches!(self.output, Output::ExactlyOnce(_)) {
                self.write_transaction(&outbox, &offsets).await?
            } else {
                match self.write(&outbox, &stop).await? {
                    Written::Acknowledged => {
                        self.commit(&offsets);
                        true
                    }
                    // Stopping with the input's offsets uncommitted: whoever next owns the
                    // partitions reads these records again and reports them then; reporting
                    // them here too would count them twice.
                    Written::Interrupted => false,
                    // Long enough that the group may have moved the partitions on: start
                    // again from what Kafka holds rather than write on.
                    Written::GaveUp => {
                        self.rewind().await?;
                        false
                    }
                }
            };
            // Only now: a batch that was rewound is read again, and its records are reported
            // when that batch is written.
            if durable {
                unusable::report(&outbox, &undecodable, &self.metrics);
            }
            self.request_ticks(wall).await;
            self.update_gauges(false);
        }
        self.update_gauges(true);
        tracing::info!("tracker stopped");
        Ok(())
    }

    /// Adds whatever the consumer already has buffered, without waiting for more.
    fn collect_batch(
        &mut self,
        first: Result<Inbound, KafkaError>,
        batch: &mut Vec<Inbound>,
    ) -> Result<(), TrackerError> {
        match first {
            Ok(record) => batch.push(record),
            Err(error) => {
                self.metrics.kafka_error(KafkaOperation::Consume);
                tracing::warn!(%error, "consumer error");
                return Ok(());
            }
        }
        // Tag with the assignment in force when the record was returned.
        self.drain_rebalance_news();
        if let Some(last) = batch.last_mut() {
            last.epoch = self.epoch_of(last.partition);
        }
        while batch.len() < MAX_BATCH {
            let Some(next) = self
                .consumer
                .recv()
                .now_or_never()
                .map(|r| r.map(|m| detach(&m, 0)))
            else {
                break;
            };
            self.drain_rebalance_news();
            match next {
                Ok(mut record) => {
                    record.epoch = self.epoch_of(record.partition);
                    batch.push(record);
                }
                Err(error) => {
                    self.metrics.kafka_error(KafkaOperation::Consume);
                    tracing::warn!(%error, "consumer error");
                    break;
                }
            }
        }
        Ok(())
    }

    fn drain_rebalance_news(&mut self) {
        // Only note that a rebalance happened; the work is done in `handle_rebalances`.
        while let Ok(event) = self.rebalances.try_recv() {
            let (RebalanceEvent::Assigned(partitions) | RebalanceEvent::Revoked(partitions)) =
                &event;
            for partition in partitions {
                *self.epochs.entry(*partition).or_default() += 1;
            }
            self.pending_rebalances.push(event);
        }
    }

    fn epoch_of(&self, partition: i32) -> u64 {
        self.epochs.get(&partition).copied().unwrap_or_default()
    }

    async fn handle_rebalances(&mut self) -> Result<(), TrackerError> {
        self.drain_rebalance_news();
        let news: Vec<RebalanceEvent> = self.pending_rebalances.drain(..).collect();
        for event in news {
            match event {
                RebalanceEvent::Revoked(partitions) => {
                    for partition in &partitions {
                        self.book.drop_partition(*partition);
                        self.assigned.remove(partition);
                        self.clocks.remove(partition);
                        self.ticks_sent.remove(partition);
                    }
                    tracing::info!(?partitions, "partitions revoked; their state dropped");
                }
                RebalanceEvent::Assigned(partitions) => {
                    self.restored.store(false, Ordering::Relaxed);
                    self.restore(&partitions).await?;
                    self.assigned.extend(partitions.iter().copied());
                }
            }
        }
        Ok(())
    }

    async fn restore(&mut self, partitions: &[i32]) -> Result<(), TrackerError> {
        let missing: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !self.book.has_partition(*p))
            .collect();
        if missing.is_empty() {
            // An incremental rebalance that brought nothing new: nothing to read.
            self.restored.store(true, Ordering::Relaxed);
            return Ok(());
        }
        if matches!(self.output, Output::ExactlyOnce(_)) {
            // A previous owner's transaction still pending would otherwise be missing from
            // the restore but count in the offsets once it commits.
            self.committed_offsets(&missing)?;
        }
        self.read_state(missing).await
    }

    /// Rebuilds partitions the book does not hold from the state topic.
    async fn read_state(&mut self, missing: Vec<i32>) -> Result<(), TrackerError> {
        let partitions = missing.clone();
        let started = Instant::now();
        let kafka = self.kafka.clone();
        let restored = tokio::task::spawn_blocking(move || {
            restore::read_partitions(
                &kafka,
                &kafka.topics.window_state,
                &missing,
                RESTORE_DEADLINE,
            )
        })
        .await
        .map_err(|_| TrackerError::Consume(KafkaError::Canceled))
        .and_then(|r| r.map_err(TrackerError::from))?;
        let mut contacts = 0;
        for (partition, state) in restored {
            tracing::debug!(partition, contacts = state.len(), "partition restored");
            contacts += state.len();
            self.book.restore_partition(partition, state);
        }
        let elapsed = started.elapsed();
        self.metrics.restore_duration.observe(elapsed.as_secs_f64());
        tracing::info!(
            ?partitions,
            contacts,
            elapsed_ms = elapsed.as_millis() as u64,
            "state restored"
        );
        self.restored.store(true, Ordering::Relaxed);
        Ok(())
    }
}

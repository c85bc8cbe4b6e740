//! The window tracker: consumes the inbound topic in a consumer group, keeps each contact's
//! windows, and writes window events and state. Time is each partition's log time (append
//! times, and ticks appended to idle partitions), so output depends on the log alone. Per
//! batch, exactly once: events, routed records, state and offsets in one transaction; or
//! at-least-once: events (and routed records) acknowledged first, then state, then offsets —
//! so a crash can only repeat work, with the same deterministic ids, never lose it.

mod book;
mod input;
pub mod records;
pub(crate) mod restore;
#[cfg(test)]
mod tests;
mod transaction;

pub use book::{Book, EmittedEvent, Outbox};
pub use input::{TYPE_ALIAS, TYPE_FORWARDED, TYPE_MOVED, TYPE_TICK};
pub use records::{read_state_record, Contact, TYPE_STATE};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::{GroupProtocol, KafkaSettings, ProcessingGuarantee, TrackerSettings};
use crate::domain::{ContactKey, UnixSeconds};
use crate::kafka::{OutboundRecord, Publisher, CLOUDEVENT_HEADERS};
use crate::metrics::{KafkaOperation, Metrics};

/// Most records handled in one batch (one round of acknowledgements and one commit).
const MAX_BATCH: usize = 2000;
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
    #[error("the tracker's producer failed: {0}")]
    Output(String),
}

enum RebalanceEvent {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// Rebalance callbacks run inside the consumer's poll, on our task, before any record of a
/// newly assigned partition is returned; they only pass the news on.
struct RebalanceContext {
    topic: String,
    events: Mutex<mpsc::Sender<RebalanceEvent>>,
}

impl RebalanceContext {
    fn send(&self, event: RebalanceEvent) {
        if let Ok(sender) = self.events.lock() {
            let _ = sender.send(event);
        }
    }

    fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.send(RebalanceEvent::Revoked(self.partitions(list)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.send(RebalanceEvent::Assigned(self.partitions(list)));
        }
    }
}

/// One inbound record, detached from the consumer's buffer.
struct Inbound {
    partition: i32,
    offset: i64,
    key: Option<ContactKey>,
    value: Option<serde_json::Value>,
    /// It had a value that is not JSON this tracker can read.
    undecodable: bool,
    arrival: Option<UnixSeconds>,
    /// Its partition's assignment epoch when the record was returned.
    epoch: u64,
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
                crate::kafka::producer(kafka).map_err(|e| TrackerError::Output(e.to_string()))?,
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
                if record.undecodable {
                    // Never silently: an operator must see that an input was skipped.
                    self.metrics.kafka_error(KafkaOperation::Decode);
                    tracing::error!(
                        partition = record.partition,
                        offset = record.offset,
                        contact = record.key.as_ref().map(ContactKey::as_str),
                        "skipping an inbound record that is not readable JSON"
                    );
                }
                let (Some(key), Some(value)) = (record.key, record.value) else {
                    continue;
                };
                // Only a record without a timestamp (pre-0.10 format) falls back to our clock.
                let now = clock.unwrap_or(wall);
                let arrival = record.arrival.unwrap_or(now).min(now);
                self.book
                    .apply_record(record.partition, &key, value, arrival, now, &mut outbox);
            }
            for (contact, record_type) in outbox.unreadable.drain(..) {
                self.metrics.kafka_error(KafkaOperation::Decode);
                tracing::error!(contact = %contact, record_type, "skipping a routing record that cannot be read");
            }
            for (contact, implausible) in outbox.rejected.drain(..) {
                self.metrics
                    .rejected_inputs
                    .get_or_create(&crate::metrics::ReasonLabels {
                        reason: implausible.reason(),
                    })
                    .inc();
                tracing::warn!(contact = %contact, reason = implausible.reason(), "inbound item not applied: its timestamp cannot be right");
            }
            if matches!(self.output, Output::ExactlyOnce(_)) {
                self.write_transaction(&outbox, &offsets).await?;
            } else {
                match self.write(&outbox, &stop).await? {
                    Written::Acknowledged => self.commit(&offsets),
                    Written::Interrupted => {}
                    // Long enough that the group may have moved the partitions on: start
                    // again from what Kafka holds rather than write on.
                    Written::GaveUp => self.rewind().await?,
                }
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

    fn advance_clock(&mut self, partition: i32, at: Option<UnixSeconds>) -> Option<UnixSeconds> {
        let clock = match (self.clocks.get(&partition).copied(), at) {
            (Some(clock), Some(at)) => clock.max(at),
            (clock, at) => clock.or(at)?,
        };
        self.clocks.insert(partition, clock);
        Some(clock)
    }

    /// Appends a tick to each assigned partition whose next timer is due by the wall clock
    /// but not by the partition's own: once the tick comes back, every record appended
    /// before it has been processed, and its append time fires the timer. A paused or
    /// lagging tracker thus never closes a window that a record in its backlog extended.
    async fn request_ticks(&mut self, wall: UnixSeconds) {
        let mut due = Vec::new();
        for &partition in &self.assigned {
            let Some(at) = self.book.next_timer_of(partition) else {
                continue;
            };
            let behind = self.clocks.get(&partition).is_none_or(|clock| *clock < at);
            let in_flight = self
                .ticks_sent
                .get(&partition)
                .is_some_and(|sent| sent.elapsed() < TICK_RETRY);
            if at <= wall && behind && !in_flight {
                due.push(partition);
            }
        }
        if due.is_empty() {
            return;
        }
        let payloads: Vec<(i32, Vec<u8>)> = due
            .iter()
            .map(|partition| (*partition, tick_record(*partition, wall)))
            .collect();
        let records: Vec<OutboundRecord<'_>> = payloads
            .iter()
            .map(|(partition, payload)| OutboundRecord {
                topic: &self.kafka.topics.inbound,
                key: None,
                payload: Some(payload),
                partition: Some(*partition),
                headers: CLOUDEVENT_HEADERS,
            })
            .collect();
        match self.publisher.publish_all(&records).await {
            Ok(()) => {
                for partition in due {
                    self.ticks_sent.insert(partition, Instant::now());
                }
            }
            Err(error) => {
                // Timers wait; the next round asks again.
                self.metrics.kafka_error(KafkaOperation::Publish);
                tracing::warn!(%error, "cannot append clock ticks");
            }
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

    /// Until a partition's next timer is due by the wall clock (to append its tick), or until
    /// an unanswered tick may be repeated; at most a second, to notice rebalances.
    fn time_to_next_timer(&self) -> Duration {
        let mut wait = Duration::from_secs(1);
        for partition in &self.assigned {
            let Some(at) = self.book.next_timer_of(*partition) else {
                continue;
            };
            let due = UNIX_EPOCH + Duration::from_secs(at.0.max(0) as u64);
            let until_due = due
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            let until_retry = self
                .ticks_sent
                .get(partition)
                .map_or(Duration::ZERO, |sent| {
                    TICK_RETRY.saturating_sub(sent.elapsed())
                });
            wait = wait.min(until_due.max(until_retry));
        }
        wait
    }

    /// Writes a batch's output in the order that makes a crash harmless, retrying until Kafka
    /// takes it: state that ran ahead of what Kafka holds must not be left behind. Returns
    /// false only when shutdown interrupted it (the input's offsets must then stay uncommitted).
    async fn write(
        &mut self,
        outbox: &Outbox,
        stop: &CancellationToken,
    ) -> Result<Written, TrackerError> {
        let Output::AtLeastOnce(producer) = &self.output else {
            return Ok(Written::Acknowledged);
        };
        if outbox.is_empty() {
            return Ok(Written::Acknowledged);
        }
        let timeout = self.kafka.publish_timeout;
        let (first, states) = output_records(&self.kafka.topics, outbox);
        match publish_until_acknowledged(producer, timeout, &first, &self.metrics, stop).await? {
            Written::Acknowledged => {}
            other => return Ok(other),
        }
        self.note_emitted(outbox);
        tracing::debug!(
            events = outbox.events.len(),
            routed = outbox.routed.len(),
            states = outbox.states.len(),
            "batch output acknowledged; writing state"
        );
        publish_until_acknowledged(producer, timeout, &states, &self.metrics, stop).await
    }

    /// Exactly once: the batch's output and its input's offsets in one transaction. An
    /// aborted transaction leaves the book ahead of Kafka, so the assigned partitions are
    /// rebuilt from what Kafka committed and their input is read again.
    async fn write_transaction(
        &mut self,
        outbox: &Outbox,
        offsets: &HashMap<i32, i64>,
    ) -> Result<(), TrackerError> {
        if outbox.is_empty() && offsets.is_empty() {
            return Ok(());
        }
        let Output::ExactlyOnce(transactions) = &self.output else {
            return Ok(());
        };
        let (mut records, states) = output_records(&self.kafka.topics, outbox);
        records.extend(states);
        let result = match (self.offset_list(offsets), self.consumer.group_metadata()) {
            (Ok(list), Some(group)) => transactions.commit(&records, &list, &group).await,
            (Err(error), _) => Err(transaction::TransactionError::Aborted(error.to_string())),
            (_, None) => Err(transaction::TransactionError::Aborted(
                "no consumer group metadata yet".into(),
            )),
        };
        match result {
            Ok(()) => {
                self.note_emitted(outbox);
                Ok(())
            }
            Err(transaction::TransactionError::Aborted(reason)) => {
                self.metrics.kafka_error(KafkaOperation::Transaction);
                tracing::warn!(%reason, "transaction aborted; rebuilding the assigned partitions from Kafka");
                self.rewind().await
            }
            Err(transaction::TransactionError::Failed(error)) => {
                self.metrics.kafka_error(KafkaOperation::Transaction);
                tracing::warn!(%error, "transactional producer failed; renewing it and rebuilding the assigned partitions");
                self.renew_producer().await?;
                self.rewind().await
            }
            Err(fenced) => {
                self.metrics.kafka_error(KafkaOperation::Transaction);
                Err(fenced.into())
            }
        }
    }

    /// A new transactional producer, retried while the coordinator is unavailable (a broker
    /// restarting) for up to a few minutes.
    async fn renew_producer(&mut self) -> Result<(), TrackerError> {
        let Output::ExactlyOnce(transactions) = &mut self.output else {
            return Ok(());
        };
        let started = Instant::now();
        loop {
            match transactions.renew() {
                Ok(()) => return Ok(()),
                Err(error) if started.elapsed() < RENEW_DEADLINE => {
                    tracing::warn!(%error, "cannot renew the transactional producer yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(error) => return Err(TrackerError::Transactions(error)),
            }
        }
    }

    /// Forgets every assigned partition's state and reads it again from the state topic,
    /// then moves the consumer back to the committed offsets.
    async fn rewind(&mut self) -> Result<(), TrackerError> {
        let partitions: Vec<i32> = self.assigned.iter().copied().collect();
        for partition in &partitions {
            self.book.drop_partition(*partition);
            self.clocks.remove(partition);
            self.ticks_sent.remove(partition);
            *self.epochs.entry(*partition).or_default() += 1;
        }
        // Committed offsets first: fetching them waits out a pending transaction, so the
        // state read next matches them.
        let committed = self.committed_offsets(&partitions)?;
        self.read_state(partitions).await?;
        let topic = self.kafka.topics.inbound.clone();
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(offset) => Offset::Offset(offset),
                _ => Offset::Beginning,
            };
            self.consumer
                .seek(&topic, element.partition(), offset, Duration::from_secs(10))
                .map_err(TrackerError::Rewind)?;
        }
        Ok(())
    }

    /// The group's committed offsets of the inbound partitions. Under read_committed this
    /// waits until no transaction of an earlier owner is pending on them (KIP-447), so what
    /// is restored afterwards matches the offsets.
    fn committed_offsets(&self, partitions: &[i32]) -> Result<TopicPartitionList, TrackerError> {
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            list.add_partition(&self.kafka.topics.inbound, *partition);
        }
        tokio::task::block_in_place(|| {
            self.consumer
                .committed_offsets(list, Duration::from_secs(60))
        })
        .map_err(TrackerError::Rewind)
    }

    fn offset_list(&self, offsets: &HashMap<i32, i64>) -> Result<TopicPartitionList, KafkaError> {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            list.add_partition_offset(
                &self.kafka.topics.inbound,
                *partition,
                Offset::Offset(*offset),
            )?;
        }
        Ok(list)
    }

    /// Metrics and printing for events Kafka now holds.
    fn note_emitted(&self, outbox: &Outbox) {
        let now = epoch_seconds_f64();
        for event in &outbox.events {
            self.metrics.window_event(event.type_name);
            if let Some(due) = event.due {
                self.metrics
                    .timer_lateness
                    .observe((now - due.0 as f64).max(0.0));
            }
            if self.print_events {
                println!("{}", String::from_utf8_lossy(&event.payload));
            }
        }
    }

    fn commit(&self, offsets: &HashMap<i32, i64>) {
        if offsets.is_empty() {
            return;
        }
        let Ok(list) = self.offset_list(offsets) else {
            return;
        };
        if let Err(error) = self.consumer.commit(&list, CommitMode::Async) {
            // The next batch's commit covers these offsets too.
            self.metrics.kafka_error(KafkaOperation::Commit);
            tracing::warn!(%error, "offset commit failed");
        }
    }

    fn update_gauges(&mut self, force: bool) {
        if !force && self.last_gauges.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.last_gauges = Instant::now();
        for (kind, open) in self.book.open_windows() {
            self.metrics
                .open_windows
                .get_or_create(&crate::metrics::WindowLabels {
                    window: kind.as_str(),
                })
                .set(open);
        }
        self.metrics
            .tracked_contacts
            .set(self.book.contact_count() as i64);
    }
}

fn detach(message: &rdkafka::message::BorrowedMessage<'_>, epoch: u64) -> Inbound {
    let parsed = message
        .payload()
        .map(serde_json::from_slice::<serde_json::Value>);
    Inbound {
        partition: message.partition(),
        offset: message.offset(),
        key: message
            .key()
            .map(|k| ContactKey::from_raw(&String::from_utf8_lossy(k))),
        undecodable: matches!(parsed, Some(Err(_))),
        value: parsed.and_then(Result::ok),
        arrival: message
            .timestamp()
            .to_millis()
            .map(|ms| UnixSeconds(ms.div_euclid(1000))),
        epoch,
    }
}

/// How the tracker writes its output: one guarantee, chosen at start.
enum Output {
    /// Every batch's output and offsets in one transaction.
    ExactlyOnce(transaction::Transactions),
    /// Output published, then offsets committed, through the tracker's own idempotent
    /// producer, never replaced, so a contact's state records cannot land out of order
    /// (retries of an old producer after those of a new one). A producer that fails for
    /// good stops the tracker.
    AtLeastOnce(FutureProducer),
}

enum Written {
    Acknowledged,
    /// Shutting down: what was not acknowledged is redone after restart, since the offsets
    /// of its input are not committed.
    Interrupted,
    /// Not acknowledged within [`OUTPUT_RETRY_DEADLINE`].
    GaveUp,
}

async fn publish_until_acknowledged(
    producer: &FutureProducer,
    timeout: Duration,
    records: &[OutboundRecord<'_>],
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<Written, TrackerError> {
    if records.is_empty() {
        return Ok(Written::Acknowledged);
    }
    let started = Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        match crate::kafka::publish_all(producer, records, timeout).await {
            Ok(()) => return Ok(Written::Acknowledged),
            Err(error) => {
                metrics.kafka_error(KafkaOperation::Publish);
                if let Some((_, reason)) = producer.client().fatal_error() {
                    return Err(TrackerError::Output(reason));
                }
                tracing::error!(%error, records = records.len(), "tracker output not acknowledged; retrying");
                if stop.is_cancelled() {
                    return Ok(Written::Interrupted);
                }
                if started.elapsed() > OUTPUT_RETRY_DEADLINE {
                    return Ok(Written::GaveUp);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Routed records and events, then state records (written once those are acknowledged when
/// there is no transaction).
fn output_records<'a>(
    topics: &'a crate::config::Topics,
    outbox: &'a Outbox,
) -> (Vec<OutboundRecord<'a>>, Vec<OutboundRecord<'a>>) {
    let mut first = Vec::with_capacity(outbox.routed.len() + outbox.events.len());
    for (key, payload) in &outbox.routed {
        first.push(OutboundRecord {
            topic: &topics.inbound,
            key: Some(key.as_str()),
            payload: Some(payload),
            partition: None,
            headers: CLOUDEVENT_HEADERS,
        });
    }
    for event in &outbox.events {
        first.push(OutboundRecord {
            topic: &topics.window_events,
            key: Some(event.key.as_str()),
            payload: Some(&event.payload),
            partition: None,
            headers: CLOUDEVENT_HEADERS,
        });
    }
    let states = outbox
        .states
        .iter()
        .map(|(partition, key, value)| OutboundRecord {
            topic: &topics.window_state,
            key: Some(key.as_str()),
            payload: value.as_deref(),
            partition: Some(*partition),
            headers: if value.is_some() {
                CLOUDEVENT_HEADERS
            } else {
                &[]
            },
        })
        .collect();
    (first, states)
}

/// Stable across restarts of a static member (a restart fences its predecessor's open
/// transaction at once); unique otherwise.
fn transactional_id(settings: &TrackerSettings) -> String {
    let instance = settings.group_instance_id.clone().unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{nanos:x}", std::process::id())
    });
    format!("{}.{instance}", settings.group_id)
}

/// A tick: no key, no contact, only its append time matters.
fn tick_record(partition: i32, wall: UnixSeconds) -> Vec<u8> {
    let id = format!("tick:{partition}:{}", wall.0);
    records::routing_record(
        &ContactKey::from_raw(&format!("~tick:{partition}")),
        TYPE_TICK,
        &id,
        wall,
        serde_json::json!({}),
    )
}

fn epoch_seconds_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

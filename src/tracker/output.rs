//! Writing a batch's output: in one transaction (exactly once), or events before state
//! before offsets (at least once), and rebuilding from Kafka when a write fails.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::TrackerSettings;
use crate::kafka::{OutboundRecord, CLOUDEVENT_HEADERS};
use crate::metrics::{KafkaOperation, Metrics};

use super::*;

/// How the tracker writes its output: one guarantee, chosen at start.
pub(super) enum Output {
    /// Every batch's output and offsets in one transaction.
    ExactlyOnce(transaction::Transactions),
    /// Output published, then offsets committed, through the tracker's own idempotent
    /// producer, never replaced, so a contact's state records cannot land out of order
    /// (retries of an old producer after those of a new one). A producer that fails for
    /// good stops the tracker.
    AtLeastOnce(FutureProducer),
}

pub(super) enum Written {
    Acknowledged,
    /// Shutting down: what was not acknowledged is redone after restart, since the offsets
    /// of its input are not committed.
    Interrupted,
    /// Not acknowledged within [`OUTPUT_RETRY_DEADLINE`].
    GaveUp,
}

pub(super) async fn publish_until_acknowledged(
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
pub(super) fn output_records<'a>(
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
pub(super) fn transactional_id(settings: &TrackerSettings) -> String {
    let instance = settings.group_instance_id.clone().unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{nanos:x}", std::process::id())
    });
    format!("{}.{instance}", settings.group_id)
}

impl Tracker {
    /// Writes a batch's output in the order that makes a crash harmless, retrying until Kafka
    /// takes it: state that ran ahead of what Kafka holds must not be left behind. Returns
    /// false only when shutdown interrupted it (the input's offsets must then stay uncommitted).
    pub(super) async fn write(
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
    /// rebuilt from what Kafka committed and their input is read again. True once the batch
    /// is committed (or had nothing to commit); false when it was rewound.
    pub(super) async fn write_transaction(
        &mut self,
        outbox: &Outbox,
        offsets: &HashMap<i32, i64>,
    ) -> Result<bool, TrackerError> {
        if outbox.is_empty() && offsets.is_empty() {
            return Ok(true);
        }
        let Output::ExactlyOnce(transactions) = &self.output else {
            return Ok(true);
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
                Ok(true)
            }
            Err(transaction::TransactionError::Aborted(reason)) => {
                self.metrics.kafka_error(KafkaOperation::Transaction);
                tracing::warn!(%reason, "transaction aborted; rebuilding the assigned partitions from Kafka");
                self.rewind().await?;
                Ok(false)
            }
            Err(transaction::TransactionError::Failed(error)) => {
                self.metrics.kafka_error(KafkaOperation::Transaction);
                tracing::warn!(%error, "transactional producer failed; renewing it and rebuilding the assigned partitions");
                self.renew_producer().await?;
                self.rewind().await?;
                Ok(false)
            }
            Err(fenced) => {
                self.metrics.kafka_error(KafkaOperation::Transaction);
                Err(fenced.into())
            }
        }
    }

    /// A new transactional producer, retried while the coordinator is unavailable (a broker
    /// restarting) for up to a few minutes.
    pub(super) async fn renew_producer(&mut self) -> Result<(), TrackerError> {
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
    pub(super) async fn rewind(&mut self) -> Result<(), TrackerError> {
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
                // Nothing committed yet: from the start, as `auto.offset.reset` says.
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
    pub(super) fn committed_offsets(
        &self,
        partitions: &[i32],
    ) -> Result<TopicPartitionList, TrackerError> {
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            list.add_partition(&self.kafka.topics.inbound, *partition);
        }
        let committed = tokio::task::block_in_place(|| {
            self.consumer
                .committed_offsets(list, Duration::from_secs(60))
        })
        .map_err(TrackerError::Rewind)?;
        // A partition answered with an error has no offset to trust, and the wait for a
        // pending transaction may not have happened: reading from its start instead would
        // repeat every event it ever caused.
        for element in committed.elements() {
            element.error().map_err(|source| TrackerError::Committed {
                partition: element.partition(),
                source,
            })?;
        }
        Ok(committed)
    }

    pub(super) fn offset_list(
        &self,
        offsets: &HashMap<i32, i64>,
    ) -> Result<TopicPartitionList, KafkaError> {
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

    pub(super) fn commit(&self, offsets: &HashMap<i32, i64>) {
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
}

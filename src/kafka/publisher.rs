//! Publishing: the shared producers, replaced after failures, and one request's records.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::cloudevent::CONTENT_TYPE;
use crate::config::KafkaSettings;

use super::*;

/// The producers every component writes through. After a failed publish they are replaced
/// by fresh ones (at most once per `REPLACE_AFTER`): an idempotent producer can be left in a
/// state it never leaves (a fatal error, or a broker that lost its producer-id state in a
/// restart and rejects the old session's sequence numbers), and a new session costs at most a
/// duplicate, which the deterministic event ids make harmless.
///
/// Two producers with the same guarantees (acks=all, idempotence) and different lingers: a
/// publish goes through the immediate one (`linger.ms=0`) while it has at most
/// `IMMEDIATE_MAX_RECORDS` records in flight, and through the batching one (`linger.ms=1`)
/// otherwise. A lone webhook is then sent at once, and under load the immediate producer
/// never has more records in flight than idempotence allows produce requests per partition
/// (5), past which librdkafka spins (see [`batching_producer`]). A publish's records all go
/// through one producer, in order; publishes that run at the same time have no order between
/// them anyway.
pub struct Publisher {
    settings: KafkaSettings,
    current: std::sync::Mutex<(Producers, std::time::Instant)>,
    /// Records handed to the immediate producer and not yet acknowledged (or failed).
    immediate_in_flight: AtomicUsize,
}

#[derive(Clone)]
struct Producers {
    immediate: FutureProducer,
    batching: FutureProducer,
}

impl Producers {
    fn new(settings: &KafkaSettings) -> Result<Self, SetupError> {
        Ok(Self {
            immediate: producer(settings)?,
            batching: batching_producer(settings)?,
        })
    }
}

/// How long a producer whose queue is full is left to send before it is offered more.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Least time between two producer replacements.
const REPLACE_AFTER: Duration = Duration::from_secs(2);

/// Most records in flight through the immediate producer: below idempotence's 5 produce
/// requests per partition even if they all share one partition.
const IMMEDIATE_MAX_RECORDS: usize = 4;

/// A reservation of records on the immediate producer, released when dropped.
struct ImmediateSlot<'a> {
    in_flight: &'a AtomicUsize,
    records: usize,
}

impl Drop for ImmediateSlot<'_> {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.records, Ordering::AcqRel);
    }
}

impl Publisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, SetupError> {
        let producers = Producers::new(settings)?;
        Ok(Self {
            settings: settings.clone(),
            current: std::sync::Mutex::new((producers, std::time::Instant::now())),
            immediate_in_flight: AtomicUsize::new(0),
        })
    }

    fn producers(&self) -> Producers {
        match self.current.lock() {
            Ok(guard) => guard.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// The batching producer, for what needs a client rather than a publish (metadata).
    pub fn current(&self) -> FutureProducer {
        self.producers().batching
    }

    fn reserve_immediate(&self, records: usize) -> Option<ImmediateSlot<'_>> {
        let mut in_flight = self.immediate_in_flight.load(Ordering::Acquire);
        loop {
            if in_flight + records > IMMEDIATE_MAX_RECORDS {
                return None;
            }
            match self.immediate_in_flight.compare_exchange_weak(
                in_flight,
                in_flight + records,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(ImmediateSlot {
                        in_flight: &self.immediate_in_flight,
                        records,
                    })
                }
                Err(now) => in_flight = now,
            }
        }
    }

    /// See [`publish_all`]; a failure also retires the producers.
    pub async fn publish_all(&self, records: &[OutboundRecord<'_>]) -> Result<(), PublishError> {
        let producers = self.producers();
        let slot = self.reserve_immediate(records.len());
        let producer = match slot {
            Some(_) => &producers.immediate,
            None => &producers.batching,
        };
        let result = publish_all(producer, records, self.settings.publish_timeout).await;
        drop(slot);
        match &result {
            Ok(()) => {}
            // The broker's limit, not the producer's state: a new producer would not help.
            Err(PublishError::Refused(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge,
            ))) => {
                tracing::error!(
                    max_record_bytes = self.settings.max_record_bytes,
                    "the broker refused a record as too large: raise the topic's max.message.bytes \
                     (and the broker's message.max.bytes) to at least max_record_bytes"
                );
            }
            Err(_) => self.replace(&producers),
        }
        result
    }

    fn replace(&self, failed: &Producers) {
        let Ok(mut guard) = self.current.lock() else {
            return;
        };
        let (producers, since) = &*guard;
        // Another request already replaced them, or it is too soon to churn again.
        if producers.immediate.client().native_ptr() != failed.immediate.client().native_ptr()
            || since.elapsed() < REPLACE_AFTER
        {
            return;
        }
        match Producers::new(&self.settings) {
            Ok(fresh) => {
                for producer in [&failed.immediate, &failed.batching] {
                    if let Some(reason) = producer.client().fatal_error() {
                        tracing::error!(?reason, "Kafka producer failed fatally");
                    }
                }
                tracing::warn!("replacing the Kafka producers after a failed publish");
                let retired = std::mem::replace(&mut *guard, (fresh, std::time::Instant::now()));
                // Destroying a producer waits for its queue; keep that off the async threads.
                tokio::task::spawn_blocking(move || drop(retired));
            }
            Err(error) => tracing::error!(%error, "cannot create new Kafka producers"),
        }
    }

    pub fn flush(&self, timeout: Duration) {
        let producers = self.producers();
        let deadline = std::time::Instant::now() + timeout;
        flush(&producers.immediate, timeout);
        flush(
            &producers.batching,
            deadline.saturating_duration_since(std::time::Instant::now()),
        );
    }
}

/// One record to publish: its key, its serialized CloudEvent, and extra headers.
pub struct OutboundRecord<'a> {
    pub topic: &'a str,
    pub key: Option<&'a str>,
    /// `None` writes a tombstone (a null value), which compaction uses to forget the key.
    pub payload: Option<&'a [u8]>,
    /// `None` lets the partitioner choose from the key.
    pub partition: Option<i32>,
    pub headers: &'a [(&'a str, &'a str)],
}

impl OutboundRecord<'_> {
    fn to_future_record(&self) -> FutureRecord<'_, str, [u8]> {
        let mut headers = OwnedHeaders::new_with_capacity(1 + self.headers.len());
        for (key, value) in self.headers {
            headers = headers.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let mut record = FutureRecord::to(self.topic).headers(headers);
        if let Some(payload) = self.payload {
            record = record.payload(payload);
        }
        if let Some(key) = self.key {
            record = record.key(key);
        }
        if let Some(partition) = self.partition {
            record = record.partition(partition);
        }
        record
    }
}

/// Header of every CloudEvent record (structured mode).
pub const CLOUDEVENT_HEADERS: &[(&str, &str)] = &[("content-type", CONTENT_TYPE)];

/// Sends every record and waits until Kafka acknowledged all of them, or fails within
/// `timeout`. Records may still land after a failure; deterministic ids make that harmless.
pub async fn publish_all(
    producer: &FutureProducer,
    records: &[OutboundRecord<'_>],
    timeout: Duration,
) -> Result<(), PublishError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let deliveries = enqueue_all(producer, records, deadline, timeout).await?;
    // In order: each wait is for the oldest record not yet acknowledged, so a batch costs one
    // pass over its deliveries rather than a poll of every pending future per wake-up.
    for delivery in deliveries {
        match tokio::time::timeout_at(deadline, delivery).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err((error, _)))) => return Err(PublishError::Refused(error)),
            Ok(Err(_)) => return Err(PublishError::Refused(KafkaError::Canceled)),
            Err(_) => return Err(PublishError::TimedOut(timeout)),
        }
    }
    Ok(())
}

/// Hands every record to the producer's queue, in order, waiting while the queue is full;
/// returns their deliveries. A transaction needs no more: committing it waits for every
/// record and fails if any failed.
pub async fn enqueue_all(
    producer: &FutureProducer,
    records: &[OutboundRecord<'_>],
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Vec<DeliveryFuture>, PublishError> {
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        loop {
            match producer.send_result(record.to_future_record()) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(PublishError::TimedOut(timeout));
                    }
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((error, _)) => return Err(PublishError::Refused(error)),
            }
        }
    }
    Ok(deliveries)
}

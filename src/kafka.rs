//! The Kafka edge: producer settings that make a 200 mean "durably stored", topic creation
//! at start, and the reachability probe behind /readyz.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::cloudevent::CONTENT_TYPE;
use crate::config::KafkaSettings;

/// Both the receiver and the tracker pick partitions from keys; they must agree with each
/// other and with Java clients, so the partitioner is fixed rather than left to defaults.
const PARTITIONER: &str = "murmur2_random";

/// The partition [`PARTITIONER`] gives a key: Kafka's murmur2 (the Java client's default),
/// for readers that must know where a key lives without having seen it.
pub fn partition_for_key(key: &str, partitions: i32) -> i32 {
    let hash = murmur2::murmur2(key.as_bytes(), murmur2::KAFKA_SEED) & 0x7fff_ffff;
    let partitions = u32::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(hash % partitions).unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot reach Kafka at {brokers}: {source}")]
    Unreachable { brokers: String, source: KafkaError },
    #[error("cannot create Kafka client: {0}")]
    Client(KafkaError),
    #[error("cannot create topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error(
        "topic {inbound} has {inbound_partitions} partitions but {state} has {state_partitions}; \
         they must match because the tracker keeps each inbound partition's state in the state \
         partition of the same number"
    )]
    PartitionMismatch {
        inbound: String,
        inbound_partitions: usize,
        state: String,
        state_partitions: usize,
    },
    #[error("topic {0} is missing after creation")]
    Missing(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Kafka did not acknowledge within {0:?}")]
    TimedOut(Duration),
    #[error("Kafka refused a record: {0}")]
    Refused(KafkaError),
}

/// Settings shared by every client this program creates; the operator's own properties
/// (security, tuning) are applied over them.
pub fn base_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("socket.keepalive.enable", "true")
        .set("log_level", "4");
    apply_properties(&mut config, settings);
    config
}

fn apply_properties(config: &mut ClientConfig, settings: &KafkaSettings) {
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
}

/// acks=all and idempotence: a record acknowledged once is stored once, even across retries.
/// Those two are set last so no property can weaken the promise behind a 200.
pub fn producer(settings: &KafkaSettings) -> Result<FutureProducer, SetupError> {
    producer_config(settings)
        .create()
        .map_err(SetupError::Client)
}

fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let timeout_ms = settings
        .publish_timeout
        .as_millis()
        .clamp(1, i32::MAX as u128)
        .to_string();
    let mut config = base_config(settings);
    config
        // Each webhook waits for its acks; lingering would add to every request's latency,
        // and records still batch on their own while a request is in flight (measured:
        // 10x the throughput of linger.ms=2 at one request at a time, 1.3x at 64).
        .set("linger.ms", "0")
        .set("message.max.bytes", settings.max_record_bytes.to_string())
        .set("partitioner", PARTITIONER)
        .set("message.timeout.ms", &timeout_ms)
        .set("request.timeout.ms", &timeout_ms);
    apply_properties(&mut config, settings);
    config.set("acks", "all").set("enable.idempotence", "true");
    config
}

/// The tracker's exactly-once producer: the same settings as [`producer`], plus a
/// transactional id. A crashed instance's open transaction blocks read_committed readers of
/// its partitions until the broker aborts it, hence the short transaction timeout.
pub fn transactional_producer(
    settings: &KafkaSettings,
    transactional_id: &str,
) -> Result<FutureProducer, KafkaError> {
    let mut config = producer_config(settings);
    config
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "10000")
        .create()
}

/// The producer every component writes through. After a failed publish it is replaced by a
/// fresh one (at most once per [`REPLACE_AFTER`]): an idempotent producer can be left in a
/// state it never leaves (a fatal error, or a broker that lost its producer-id state in a
/// restart and rejects the old session's sequence numbers), and a new session costs at most a
/// duplicate, which the deterministic event ids make harmless.
pub struct Publisher {
    settings: KafkaSettings,
    current: std::sync::Mutex<(FutureProducer, std::time::Instant)>,
}

/// Least time between two producer replacements.
const REPLACE_AFTER: Duration = Duration::from_secs(2);

impl Publisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, SetupError> {
        let producer = producer(settings)?;
        Ok(Self {
            settings: settings.clone(),
            current: std::sync::Mutex::new((producer, std::time::Instant::now())),
        })
    }

    pub fn current(&self) -> FutureProducer {
        match self.current.lock() {
            Ok(guard) => guard.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// See [`publish_all`]; a failure also retires the producer that failed.
    pub async fn publish_all(&self, records: &[OutboundRecord<'_>]) -> Result<(), PublishError> {
        let producer = self.current();
        let result = publish_all(&producer, records, self.settings.publish_timeout).await;
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
            Err(_) => self.replace(&producer),
        }
        result
    }

    fn replace(&self, failed: &FutureProducer) {
        let Ok(mut guard) = self.current.lock() else {
            return;
        };
        let (producer, since) = &*guard;
        // Another request already replaced it, or it is too soon to churn again.
        if producer.client().native_ptr() != failed.client().native_ptr()
            || since.elapsed() < REPLACE_AFTER
        {
            return;
        }
        match self::producer(&self.settings) {
            Ok(fresh) => {
                if let Some(reason) = failed.client().fatal_error() {
                    tracing::error!(?reason, "Kafka producer failed fatally");
                }
                tracing::warn!("replacing the Kafka producer after a failed publish");
                let retired = std::mem::replace(&mut *guard, (fresh, std::time::Instant::now()));
                // Destroying a producer waits for its queue; keep that off the async threads.
                tokio::task::spawn_blocking(move || drop(retired));
            }
            Err(error) => tracing::error!(%error, "cannot create a new Kafka producer"),
        }
    }

    pub fn flush(&self, timeout: Duration) {
        flush(&self.current(), timeout);
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
    let sends = records.iter().map(|record| async move {
        producer
            .send(record.to_future_record(), Timeout::After(timeout))
            .await
            .map(|_| ())
            .map_err(|(error, _)| PublishError::Refused(error))
    });
    match tokio::time::timeout(timeout, try_join_all(sends)).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(PublishError::TimedOut(timeout)),
    }
}

fn admin(settings: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, SetupError> {
    base_config(settings).create().map_err(SetupError::Client)
}

/// Partition counts of the topics that exist, by name.
pub async fn partition_counts(
    settings: &KafkaSettings,
    timeout: Duration,
) -> Result<HashMap<String, usize>, SetupError> {
    let client = admin(settings)?;
    let brokers = settings.brokers.clone();
    tokio::task::spawn_blocking(move || {
        let metadata = client
            .inner()
            .fetch_metadata(None, timeout)
            .map_err(|source| SetupError::Unreachable {
                brokers: brokers.clone(),
                source,
            })?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_owned(), t.partitions().len()))
            .collect())
    })
    .await
    .map_err(|e| SetupError::CreateTopic {
        topic: String::new(),
        reason: e.to_string(),
    })?
}

enum TopicKind {
    Inbound,
    Compacted,
    Plain,
}

/// Creates whichever of the four topics are missing (the state topic compacted), then
/// refuses to go on if the inbound and state topics disagree on partitions.
pub async fn ensure_topics(settings: &KafkaSettings) -> Result<(), SetupError> {
    let wait = Duration::from_secs(10);
    let existing = partition_counts(settings, wait).await?;
    let topics = &settings.topics;
    let wanted = [
        (&topics.inbound, TopicKind::Inbound),
        (&topics.window_events, TopicKind::Plain),
        (&topics.window_state, TopicKind::Compacted),
        (&topics.deadletter, TopicKind::Plain),
    ];
    let max_message_bytes = settings.max_record_bytes.to_string();
    let new_topics: Vec<NewTopic> = wanted
        .iter()
        .filter(|(name, _)| !existing.contains_key(name.as_str()))
        .map(|(name, kind)| {
            // Meta's bodies reach 3 MB; brokers refuse records over 1 MB unless told otherwise.
            let topic = NewTopic::new(
                name,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
            .set("max.message.bytes", &max_message_bytes);
            match kind {
                TopicKind::Compacted => topic.set("cleanup.policy", "compact"),
                // The tracker's clock: one broker's time, rising with each partition's log,
                // whichever receiver wrote the record and however its clock was set.
                TopicKind::Inbound => topic.set("message.timestamp.type", "LogAppendTime"),
                TopicKind::Plain => topic,
            }
        })
        .collect();
    if !new_topics.is_empty() {
        let client = admin(settings)?;
        let options = AdminOptions::new()
            .operation_timeout(Some(wait))
            .request_timeout(Some(wait));
        let results = client
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| SetupError::CreateTopic {
                topic: "(all)".into(),
                reason: e.to_string(),
            })?;
        for result in results {
            match result {
                Ok(_) => {}
                // Another instance created it first: that is what we wanted.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(SetupError::CreateTopic {
                        topic,
                        reason: code.to_string(),
                    })
                }
            }
        }
    }
    check_partitions(settings).await
}

async fn check_partitions(settings: &KafkaSettings) -> Result<(), SetupError> {
    let topics = &settings.topics;
    // Metadata of freshly created topics can take a moment to appear.
    let mut last = HashMap::new();
    for _ in 0..50 {
        last = partition_counts(settings, Duration::from_secs(10)).await?;
        let all_there = [
            &topics.inbound,
            &topics.window_events,
            &topics.window_state,
            &topics.deadletter,
        ]
        .iter()
        .all(|t| last.get(t.as_str()).is_some_and(|n| *n > 0));
        if all_there {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let inbound = *last
        .get(&topics.inbound)
        .ok_or_else(|| SetupError::Missing(topics.inbound.clone()))?;
    let state = *last
        .get(&topics.window_state)
        .ok_or_else(|| SetupError::Missing(topics.window_state.clone()))?;
    if inbound != state {
        return Err(SetupError::PartitionMismatch {
            inbound: topics.inbound.clone(),
            inbound_partitions: inbound,
            state: topics.window_state.clone(),
            state_partitions: state,
        });
    }
    Ok(())
}

/// Reachability as /readyz reports it, refreshed in the background.
#[derive(Clone, Default)]
pub struct Reachability(Arc<AtomicBool>);

impl Reachability {
    pub fn is_reachable(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, reachable: bool) {
        self.0.store(reachable, Ordering::Relaxed);
    }
}

/// Asks the brokers for metadata every couple of seconds until `stop` fires.
pub async fn probe_reachability(
    publisher: Arc<Publisher>,
    reachability: Reachability,
    metrics: Arc<crate::metrics::Metrics>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let client = publisher.current();
        let reachable = tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok()
        })
        .await
        .unwrap_or(false);
        if !reachable {
            metrics.kafka_error(crate::metrics::KafkaOperation::Metadata);
        }
        reachability.set(reachable);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Waits for queued records to be delivered, bounded, before the process exits.
pub fn flush(producer: &FutureProducer, timeout: Duration) {
    if let Err(error) = producer.flush(Timeout::After(timeout)) {
        tracing::warn!(%error, "producer did not flush every record before shutdown");
    }
}

//! Rebuilding assigned partitions' contacts from the compacted state topic before any of
//! their input is processed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::book::Contacts;
use super::records::read_state_record;
use crate::config::KafkaSettings;
use crate::domain::ContactKey;
use crate::kafka::base_config;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot read state topic {topic}: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("state topic {topic} partition {partition} did not reach its end within {waited:?}")]
    Stalled {
        topic: String,
        partition: i32,
        waited: Duration,
    },
    #[error(
        "state topic {topic} partition {partition} still has a transaction open after {waited:?}"
    )]
    TransactionOpen {
        topic: String,
        partition: i32,
        waited: Duration,
    },
}

/// Partition EOF is how a restore knows it is done, not an error to log; librdkafka's own
/// connection errors are reported once at warn level.
pub struct RestoreContext;

impl ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let end_of_partition = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !end_of_partition {
            tracing::warn!(%error, reason, "state restore consumer");
        }
    }
}

impl ConsumerContext for RestoreContext {}

pub type Restored = HashMap<i32, Contacts>;

/// What every reader of the state topic (a restore, the API's view) is: a consumer that
/// assigns its partitions itself, commits nothing, and is told where a partition ends.
pub(crate) fn state_reader_config(kafka: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut config = base_config(kafka);
    config
        // Never an aborted or unfinished transaction's records, whatever the properties say.
        .set("isolation.level", "read_committed")
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        // Reading a whole topic, the local queue fills faster than it drains, and librdkafka
        // then pauses that partition's fetching for this long (1 s by default): a quarter of
        // a 1 M contact restore was spent in those pauses (BENCHMARKS.md section 8).
        .set("fetch.queue.backoff.ms", "10");
    config
}

/// Reads every given partition of the state topic from its start to its current end; the
/// last record of a key wins, a tombstone forgets it. A transaction still open on a partition
/// is waited for first (see [`wait_for_open_transactions`]). Blocking: run it off the async
/// threads.
pub fn read_partitions(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: &[i32],
    deadline: Duration,
) -> Result<Restored, RestoreError> {
    let failed = |source| RestoreError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let started = Instant::now();
    wait_for_open_transactions(kafka, topic, partitions, started + deadline)?;
    // One reader per core, each with its own consumer, over a share of the partitions: a reader
    // decodes and indexes every record of its partitions on its own thread (1 M contacts on 2
    // cores: 6.5-9.5 s with one reader, 5.5-7.7 s with two; BENCHMARKS.md section 8).
    let readers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(partitions.len())
        .max(1);
    let shares: Vec<Vec<i32>> = (0..readers)
        .map(|reader| {
            partitions
                .iter()
                .copied()
                .skip(reader)
                .step_by(readers)
                .collect()
        })
        .collect();
    let results: Vec<Result<Restored, RestoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| scope.spawn(|| read_to_end(kafka, topic, share, started, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(failed(KafkaError::Canceled)))
            })
            .collect()
    });
    let mut restored = Restored::new();
    for result in results {
        restored.extend(result?);
    }
    Ok(restored)
}

/// Reads `partitions` of the state topic from their start to the end their fetches report.
fn read_to_end(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: &[i32],
    started: Instant,
    deadline: Duration,
) -> Result<Restored, RestoreError> {
    let failed = |source| RestoreError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let consumer: BaseConsumer<RestoreContext> = state_reader_config(kafka, "windowkeeper-restore")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create_with_context(RestoreContext)
        .map_err(failed)?;
    let mut restored: Restored = partitions
        .iter()
        .map(|p| (*p, Contacts::default()))
        .collect();
    if partitions.is_empty() {
        return Ok(restored);
    }
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(failed)?;
    }
    consumer.assign(&assignment).map_err(failed)?;
    // The end of each partition is where a fetch reports it (partition EOF: the high
    // watermark, or the last stable offset under read_committed), not an offset asked for
    // beforehand: the last offsets of a compacted or transactional topic can be records no
    // consumer is ever handed (compacted-away updates, transaction markers), so "read until
    // offset N" could wait forever, and the fetch's own answer costs no extra round trip.
    let mut unfinished: HashSet<i32> = partitions.iter().copied().collect();
    while !unfinished.is_empty() {
        if started.elapsed() > deadline {
            let partition = unfinished.iter().next().copied().unwrap_or_default();
            return Err(RestoreError::Stalled {
                topic: topic.to_owned(),
                partition,
                waited: deadline,
            });
        }
        let message = match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                unfinished.remove(&partition);
                continue;
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                return Err(failed(KafkaError::MessageConsumptionFatal(code)))
            }
            // Transient (a broker restarting, a connection lost): librdkafka reconnects on
            // its own, and the deadline bounds the wait.
            Some(Err(error)) => {
                tracing::debug!(%error, "restore consumer: transient error");
                continue;
            }
            Some(Ok(message)) => message,
        };
        let partition = message.partition();
        if let (Some(key), Some(contacts)) = (message.key(), restored.get_mut(&partition)) {
            let key = ContactKey::from_raw(&String::from_utf8_lossy(key));
            match message.payload() {
                None => {
                    contacts.remove(key.as_str());
                }
                Some(value) => match read_state_record(value) {
                    Some(contact) => {
                        contacts.insert(&key, contact);
                    }
                    // Keep what we had: an unreadable record must not erase a contact.
                    None => {
                        tracing::warn!(contact = %key, partition, "skipping unreadable state record")
                    }
                },
            }
        }
    }
    Ok(restored)
}

/// Returns once no transaction is open on any of `partitions`: each one's last stable offset
/// (where a read_committed fetch ends) has reached its high watermark.
///
/// Reading only to the last stable offset is not enough. The previous owner's last batch may
/// be committed while its commit markers are still being written: Kafka writes them partition
/// by partition, and the group's offsets (which the tracker waits for before restoring) can
/// become visible before the state records do. A restore that ended before those records would
/// hold windows the previous owner already closed, and close them again. A transaction that
/// will never commit (its producer crashed) is aborted by the broker within the producer's
/// transaction timeout, so the wait is bounded by it.
fn wait_for_open_transactions(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: &[i32],
    deadline: Instant,
) -> Result<(), RestoreError> {
    let failed = |source| RestoreError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    // The same query answers with the last stable offset or the high watermark, depending on
    // the asking client's isolation level.
    let client = |isolation: &str| -> Result<BaseConsumer<RestoreContext>, RestoreError> {
        base_config(kafka)
            .set("isolation.level", isolation)
            .create_with_context(RestoreContext)
            .map_err(failed)
    };
    let committed = client("read_committed")?;
    let uncommitted = client("read_uncommitted")?;
    let end = |consumer: &BaseConsumer<RestoreContext>, partition| {
        consumer
            .fetch_watermarks(topic, partition, QUERY_TIMEOUT)
            .map(|(_, end)| end)
    };
    let started = Instant::now();
    let mut open: Vec<i32> = partitions.to_vec();
    // The partitions first found with a transaction open, for the one log line about the wait.
    let mut waited_for: Option<Vec<i32>> = None;
    loop {
        open.retain(|&partition| {
            match (end(&committed, partition), end(&uncommitted, partition)) {
                (Ok(stable), Ok(high)) => stable < high,
                // A broker restarting: asked again below, within the deadline.
                (Err(error), _) | (_, Err(error)) => {
                    tracing::debug!(%error, partition, "state topic offsets not answered yet");
                    true
                }
            }
        });
        let Some(&partition) = open.first() else {
            if let Some(partitions) = waited_for {
                tracing::info!(
                    ?partitions,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "state partitions had a transaction open; restoring now that it ended"
                );
            }
            return Ok(());
        };
        waited_for.get_or_insert_with(|| open.clone());
        if Instant::now() > deadline {
            return Err(RestoreError::TransactionOpen {
                topic: topic.to_owned(),
                partition,
                waited: started.elapsed(),
            });
        }
        tracing::debug!(?open, "state partitions with a transaction open; waiting");
        std::thread::sleep(OPEN_TRANSACTION_POLL);
    }
}

/// How long one offsets query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often partitions with an open transaction are asked again.
const OPEN_TRANSACTION_POLL: Duration = Duration::from_millis(100);

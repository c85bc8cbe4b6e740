//! Rebuilding assigned partitions' contacts from the compacted state topic before any of
//! their input is processed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

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

/// Reads every given partition of the state topic from its start to its current end; the
/// last record of a key wins, a tombstone forgets it. Blocking: run it off the async threads.
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
    let consumer: BaseConsumer<RestoreContext> = base_config(kafka)
        .set("group.id", "windowkeeper-restore")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        // Reading a whole topic, the local queue fills faster than it drains, and librdkafka
        // then pauses that partition's fetching for this long (1 s by default): a quarter of
        // a 1 M contact restore was spent in those pauses (BENCHMARKS.md section 8).
        .set("fetch.queue.backoff.ms", "10")
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
    let started = Instant::now();
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

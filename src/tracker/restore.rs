//! Rebuilding assigned partitions' contacts from the compacted state topic before any of
//! their input is processed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::records::{read_state_record, Contact};
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

pub type Restored = HashMap<i32, HashMap<ContactKey, Contact>>;

/// Reads every given partition of the state topic from its start to its current end; the
/// last record of a key wins, a tombstone forgets it. Blocking: run it off the async threads.
pub fn read_partitions(
    brokers: &str,
    topic: &str,
    partitions: &[i32],
    deadline: Duration,
) -> Result<Restored, RestoreError> {
    let kafka = |source| RestoreError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let consumer: BaseConsumer = base_config(brokers)
        .set("group.id", "windowkeeper-restore")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .map_err(kafka)?;
    let mut restored: Restored = partitions.iter().map(|p| (*p, HashMap::new())).collect();
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(kafka)?;
        if high > low {
            ends.insert(partition, high);
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .map_err(kafka)?;
        }
    }
    if ends.is_empty() {
        return Ok(restored);
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let started = Instant::now();
    while !ends.is_empty() {
        if started.elapsed() > deadline {
            let partition = ends.keys().next().copied().unwrap_or_default();
            return Err(RestoreError::Stalled {
                topic: topic.to_owned(),
                partition,
                waited: deadline,
            });
        }
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = result.map_err(kafka)?;
        let partition = message.partition();
        if let (Some(key), Some(contacts)) = (message.key(), restored.get_mut(&partition)) {
            let key = ContactKey::from_raw(&String::from_utf8_lossy(key));
            match message.payload() {
                None => {
                    contacts.remove(&key);
                }
                Some(value) => match read_state_record(value) {
                    Some(contact) => {
                        contacts.insert(key, contact);
                    }
                    // Keep what we had: an unreadable record must not erase a contact.
                    None => {
                        tracing::warn!(contact = %key, partition, "skipping unreadable state record")
                    }
                },
            }
        }
        if ends
            .get(&partition)
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&partition);
        }
    }
    Ok(restored)
}

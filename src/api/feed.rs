//! Keeps the [`StateView`] current from the compacted state topic. Every instance reads every
//! partition from its start, outside any consumer group and without committing offsets, with
//! `read_committed` so it sees exactly what the tracker's transactions committed. A partition
//! counts as restored at the first end of it the fetches report; after that the view follows
//! within one fetch wait (50 ms) of each commit.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::view::StateView;
use crate::config::KafkaSettings;
use crate::domain::ContactKey;
use crate::metrics::Metrics;
use crate::tracker::records::{read_state_record, Contact};
use crate::tracker::restore::{state_reader_config, RestoreContext};

/// Records parsed outside the lock, then applied under it in one go.
const BATCH: usize = 2048;

#[derive(Debug, thiserror::Error)]
#[error("cannot follow state topic {topic}: {source}")]
pub struct FeedError {
    topic: String,
    source: KafkaError,
}

/// Follows the state topic into `view` until `stop`. Blocking: run it on its own thread.
pub fn follow(
    kafka: &KafkaSettings,
    partitions: i32,
    view: Arc<RwLock<StateView>>,
    metrics: &Metrics,
    stop: CancellationToken,
) -> Result<(), FeedError> {
    let topic = kafka.topics.window_state.clone();
    let failed = |source| FeedError {
        topic: topic.clone(),
        source,
    };
    let consumer: BaseConsumer<RestoreContext> =
        state_reader_config(kafka, "windowkeeper-api-view")
            .set("fetch.wait.max.ms", "50")
            .create_with_context(RestoreContext)
            .map_err(failed)?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(&topic, partition, Offset::Beginning)
            .map_err(failed)?;
    }
    consumer.assign(&assignment).map_err(failed)?;
    let mut batch: Vec<(ContactKey, Option<Contact>)> = Vec::with_capacity(BATCH);
    let mut ends: Vec<i32> = Vec::new();
    while !stop.is_cancelled() {
        let mut wait = Duration::from_millis(100);
        while batch.len() < BATCH {
            let Some(polled) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            match polled {
                Ok(message) => {
                    let Some(key) = message.key() else { continue };
                    let key = ContactKey::from_raw(&String::from_utf8_lossy(key));
                    match message.payload() {
                        None => batch.push((key, None)),
                        Some(value) => match read_state_record(value) {
                            Some(contact) => batch.push((key, Some(contact))),
                            None => {
                                tracing::warn!(contact = %key, "API view: skipping an unreadable state record")
                            }
                        },
                    }
                }
                Err(KafkaError::PartitionEOF(partition)) => ends.push(partition),
                Err(KafkaError::MessageConsumptionFatal(code)) => {
                    return Err(failed(KafkaError::MessageConsumptionFatal(code)))
                }
                // Transient: librdkafka reconnects on its own.
                Err(error) => tracing::debug!(%error, "API view consumer: transient error"),
            }
        }
        if batch.is_empty() && ends.is_empty() {
            continue;
        }
        let Ok(mut view) = view.write() else {
            // Only a panic while holding the lock poisons it; nothing sensible remains.
            return Ok(());
        };
        for (key, contact) in batch.drain(..) {
            match contact {
                Some(contact) => view.upsert(key, &contact),
                None => view.remove(&key),
            }
        }
        for partition in ends.drain(..) {
            view.mark_restored(partition);
        }
        metrics
            .api_view_contacts
            .set(i64::try_from(view.len()).unwrap_or(i64::MAX));
    }
    Ok(())
}

//! Topic creation at start, and the partition-count check between inbound and state.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::config::KafkaSettings;

use super::*;

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

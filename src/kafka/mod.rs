//! The Kafka edge: producer settings that make a 200 mean "durably stored", topic creation
//! at start, and the reachability probe behind /readyz.
//!
//! - `clients`: settings, partitioner, producers.
//! - `publisher`: the shared producer and publishing with acknowledgements.
//! - `topics`: creating topics and checking their partitions.
//! - `readiness`: the reachability probe.

use std::time::Duration;

use rdkafka::error::KafkaError;

mod clients;
mod publisher;
mod readiness;
mod topics;

pub use clients::*;
pub use publisher::*;
pub use readiness::*;
pub use topics::*;

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

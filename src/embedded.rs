//! The embedded broker of `windowkeeper run`: librdkafka's in-process mock cluster, so a
//! newcomer sees the whole data path without installing Kafka. It keeps nothing across
//! restarts and is not for production.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::config::Topics;

pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster and creates the topics (the mock has no CreateTopics API).
    pub fn start(topics: &Topics, partitions: i32) -> Result<Self, String> {
        let cluster = MockCluster::new(1).map_err(|e| e.to_string())?;
        for topic in [
            &topics.inbound,
            &topics.window_events,
            &topics.window_state,
            &topics.deadletter,
        ] {
            cluster
                .create_topic(topic, partitions, 1)
                .map_err(|e| format!("{topic}: {e}"))?;
        }
        Ok(Self { cluster })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

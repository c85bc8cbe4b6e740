//! Reachability as /readyz reports it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::Producer;

use super::*;

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

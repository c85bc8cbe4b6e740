//! The consumer's side: rebalance news passed from librdkafka's callbacks to the tracker's
//! task, and inbound records detached from the consumer's buffer.

use std::sync::mpsc;
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;

use crate::domain::{ContactKey, UnixSeconds};

pub(super) enum RebalanceEvent {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// Rebalance callbacks run inside the consumer's poll, on our task, before any record of a
/// newly assigned partition is returned; they only pass the news on.
pub(super) struct RebalanceContext {
    pub(super) topic: String,
    pub(super) events: Mutex<mpsc::Sender<RebalanceEvent>>,
}

impl RebalanceContext {
    fn send(&self, event: RebalanceEvent) {
        if let Ok(sender) = self.events.lock() {
            let _ = sender.send(event);
        }
    }

    fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.send(RebalanceEvent::Revoked(self.partitions(list)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.send(RebalanceEvent::Assigned(self.partitions(list)));
        }
    }
}

/// One inbound record, detached from the consumer's buffer.
pub(super) struct Inbound {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: Option<ContactKey>,
    /// As written: decoded in one pass when it is applied.
    pub(super) value: Option<Vec<u8>>,
    pub(super) arrival: Option<UnixSeconds>,
    /// Its partition's assignment epoch when the record was returned.
    pub(super) epoch: u64,
}

pub(super) fn detach(message: &rdkafka::message::BorrowedMessage<'_>, epoch: u64) -> Inbound {
    Inbound {
        partition: message.partition(),
        offset: message.offset(),
        key: message
            .key()
            .map(|k| ContactKey::from_raw(&String::from_utf8_lossy(k))),
        value: message.payload().map(<[u8]>::to_vec),
        arrival: message
            .timestamp()
            .to_millis()
            .map(|ms| UnixSeconds(ms.div_euclid(1000))),
        epoch,
    }
}

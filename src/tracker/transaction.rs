//! Exactly-once output: a batch's window events, routed records, state records and the
//! consumed offsets of its input go to Kafka in one transaction. The consumer group's metadata
//! travels with the offsets (KIP-447), so a member that lost its partitions to a rebalance —
//! a zombie — cannot commit for them any more.

use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::TopicPartitionList;

use crate::config::KafkaSettings;
use crate::kafka::{enqueue_all, transactional_producer, OutboundRecord, PublishError};

/// A coordinator that takes longer than this to answer is treated as a failed transaction.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// The transaction was aborted (or never began): nothing of it is visible to
    /// read_committed consumers, and its input must be processed again.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// The producer failed for good (e.g. the coordinator lost its transaction state in a
    /// broker crash): a new producer with the same id resolves the open transaction first.
    #[error("transactional producer failed: {0}")]
    Failed(KafkaError),
    /// A newer instance took over this transactional id or this group membership: this
    /// instance must write no more.
    #[error("fenced by a newer instance: {0}")]
    Fenced(KafkaError),
}

pub struct Transactions {
    producer: FutureProducer,
    settings: KafkaSettings,
    id: String,
}

impl Transactions {
    /// Creates the producer and fences any earlier producer with the same id (its open
    /// transaction is aborted). Blocking: call it off the async threads or at start.
    pub fn new(settings: &KafkaSettings, transactional_id: &str) -> Result<Self, KafkaError> {
        let producer = transactional_producer(settings, transactional_id)?;
        producer.init_transactions(CALL_TIMEOUT)?;
        Ok(Self {
            producer,
            settings: settings.clone(),
            id: transactional_id.to_owned(),
        })
    }

    /// Replaces a failed producer by a new one with the same transactional id; its
    /// `init_transactions` completes or aborts whatever the old one left open, so no record
    /// of the old one can land after the new one's.
    pub fn renew(&mut self) -> Result<(), KafkaError> {
        let producer = transactional_producer(&self.settings, &self.id)?;
        tokio::task::block_in_place(|| producer.init_transactions(CALL_TIMEOUT))?;
        self.producer = producer;
        Ok(())
    }

    /// Writes `records` and commits `offsets` for the group, atomically. On any error the
    /// transaction is aborted; only a fenced or fatally failed producer is `Fatal`.
    pub async fn commit(
        &self,
        records: &[OutboundRecord<'_>],
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TransactionError> {
        self.producer
            .begin_transaction()
            .map_err(|e| self.classify(e))?;
        let timeout = self.settings.publish_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        // Deliveries are not awaited one by one: the commit below waits for every record, and
        // fails (the transaction is then aborted) if any of them failed.
        if let Err(error) = enqueue_all(&self.producer, records, deadline, timeout).await {
            let reason = match error {
                PublishError::Refused(e) if is_fatal(&e) => return Err(self.classify(e)),
                other => other.to_string(),
            };
            return Err(self.abort(reason));
        }
        let finish = || {
            if offsets.count() > 0 {
                retrying(|| {
                    self.producer
                        .send_offsets_to_transaction(offsets, group, CALL_TIMEOUT)
                })?;
            }
            retrying(|| self.producer.commit_transaction(CALL_TIMEOUT))
        };
        // The calls wait for the coordinator; keep the runtime's other tasks moving.
        match tokio::task::block_in_place(finish) {
            Ok(()) => Ok(()),
            Err(error) if is_fatal(&error) || is_fenced(&error) => Err(self.classify(error)),
            Err(error) => Err(self.abort(error.to_string())),
        }
    }

    fn abort(&self, reason: String) -> TransactionError {
        match tokio::task::block_in_place(|| self.producer.abort_transaction(CALL_TIMEOUT)) {
            Ok(()) => TransactionError::Aborted(reason),
            Err(error) => self.classify(error),
        }
    }

    fn classify(&self, error: KafkaError) -> TransactionError {
        if is_fenced(&error) {
            TransactionError::Fenced(error)
        } else if is_fatal(&error) {
            TransactionError::Failed(error)
        } else {
            TransactionError::Aborted(error.to_string())
        }
    }
}

fn is_fenced(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::{
        FencedInstanceId, InvalidProducerEpoch, ProducerFenced, TransactionalIdAuthorizationFailed,
    };
    error.rdkafka_error_code().is_some_and(|code| {
        matches!(
            code,
            ProducerFenced
                | InvalidProducerEpoch
                | FencedInstanceId
                | TransactionalIdAuthorizationFailed
        )
    })
}

/// A call librdkafka says may be repeated (a timeout, a coordinator moving) is, a few times;
/// aborting instead could undo a commit that went through.
fn retrying(call: impl Fn() -> Result<(), KafkaError>) -> Result<(), KafkaError> {
    let mut attempts = 0;
    loop {
        match call() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => e.is_fatal(),
        _ => false,
    }
}

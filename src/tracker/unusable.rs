//! Every inbound record the tracker cannot use, as a typed event: each one's log line sits
//! beside its metric here, so none is skipped silently and none is reported two ways. A
//! batch's are reported only once its output is durable ([`report`]): a batch that is
//! rewound is read again, and would otherwise be counted twice.

use super::Outbox;
use crate::domain::ContactKey;
use crate::metrics::{KafkaOperation, Metrics, ReasonLabels};
use crate::window::sanity::Implausible;

/// An inbound record that is not readable JSON, held until its batch is written.
pub(super) struct Undecodable {
    pub partition: i32,
    pub offset: i64,
    pub contact: Option<ContactKey>,
}

/// Counts and logs a batch's unusable records; call it once the batch's output is durable.
pub(super) fn report(outbox: &Outbox, undecodable: &[Undecodable], metrics: &Metrics) {
    for record in undecodable {
        Unusable::UndecodableRecord {
            partition: record.partition,
            offset: record.offset,
            contact: record.contact.as_ref(),
        }
        .emit(metrics);
    }
    for (contact, record_type) in &outbox.unreadable {
        Unusable::UnreadableRouting {
            contact,
            record_type,
        }
        .emit(metrics);
    }
    for (contact, reason) in &outbox.rejected {
        Unusable::Implausible {
            contact,
            reason: *reason,
        }
        .emit(metrics);
    }
}

enum Unusable<'a> {
    /// An inbound record whose value is not readable JSON.
    UndecodableRecord {
        partition: i32,
        offset: i64,
        contact: Option<&'a ContactKey>,
    },
    /// One of the tracker's own routing records that cannot be read, or one cut off in a
    /// routing loop: the state it carries is lost with it.
    UnreadableRouting {
        contact: &'a ContactKey,
        record_type: &'static str,
    },
    /// An item whose Meta timestamp cannot be right: never applied to a window.
    Implausible {
        contact: &'a ContactKey,
        reason: Implausible,
    },
}

impl Unusable<'_> {
    fn emit(&self, metrics: &Metrics) {
        match self {
            Self::UndecodableRecord {
                partition,
                offset,
                contact,
            } => {
                metrics.kafka_error(KafkaOperation::Decode);
                tracing::error!(
                    partition,
                    offset,
                    contact = contact.map(ContactKey::as_str),
                    "skipping an inbound record that is not readable JSON"
                );
            }
            Self::UnreadableRouting {
                contact,
                record_type,
            } => {
                metrics.kafka_error(KafkaOperation::Decode);
                tracing::error!(contact = %contact, record_type, "skipping a routing record that cannot be read");
            }
            Self::Implausible { contact, reason } => {
                metrics
                    .rejected_inputs
                    .get_or_create(&ReasonLabels {
                        reason: reason.reason(),
                    })
                    .inc();
                tracing::warn!(contact = %contact, reason = reason.reason(), "inbound item not applied: its timestamp cannot be right");
            }
        }
    }
}

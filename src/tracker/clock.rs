//! Each partition's clock: the log's append times, and tick records appended to idle
//! partitions whose timers are due.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::domain::{ContactKey, UnixSeconds};
use crate::kafka::{OutboundRecord, CLOUDEVENT_HEADERS};
use crate::metrics::KafkaOperation;

use super::*;

/// A tick: no key, no contact, only its append time matters.
pub(super) fn tick_record(partition: i32, wall: UnixSeconds) -> Vec<u8> {
    let id = format!("tick:{partition}:{}", wall.0);
    records::routing_record(
        &ContactKey::from_raw(&format!("~tick:{partition}")),
        TYPE_TICK,
        &id,
        wall,
        serde_json::json!({}),
    )
}

pub(super) fn epoch_seconds_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Tracker {
    pub(super) fn advance_clock(
        &mut self,
        partition: i32,
        at: Option<UnixSeconds>,
    ) -> Option<UnixSeconds> {
        let clock = match (self.clocks.get(&partition).copied(), at) {
            (Some(clock), Some(at)) => clock.max(at),
            (clock, at) => clock.or(at)?,
        };
        self.clocks.insert(partition, clock);
        Some(clock)
    }

    /// Appends a tick to each assigned partition whose next timer is due by the wall clock
    /// but not by the partition's own: once the tick comes back, every record appended
    /// before it has been processed, and its append time fires the timer. A paused or
    /// lagging tracker thus never closes a window that a record in its backlog extended.
    pub(super) async fn request_ticks(&mut self, wall: UnixSeconds) {
        let mut due = Vec::new();
        for &partition in &self.assigned {
            let Some(at) = self.book.next_timer_of(partition) else {
                continue;
            };
            let behind = self.clocks.get(&partition).is_none_or(|clock| *clock < at);
            let in_flight = self
                .ticks_sent
                .get(&partition)
                .is_some_and(|sent| sent.elapsed() < TICK_RETRY);
            if at <= wall && behind && !in_flight {
                due.push(partition);
            }
        }
        if due.is_empty() {
            return;
        }
        let payloads: Vec<(i32, Vec<u8>)> = due
            .iter()
            .map(|partition| (*partition, tick_record(*partition, wall)))
            .collect();
        let records: Vec<OutboundRecord<'_>> = payloads
            .iter()
            .map(|(partition, payload)| OutboundRecord {
                topic: &self.kafka.topics.inbound,
                key: None,
                payload: Some(payload),
                partition: Some(*partition),
                headers: CLOUDEVENT_HEADERS,
            })
            .collect();
        match self.publisher.publish_all(&records).await {
            Ok(()) => {
                for partition in due {
                    self.ticks_sent.insert(partition, Instant::now());
                }
            }
            Err(error) => {
                // Timers wait; the next round asks again.
                self.metrics.kafka_error(KafkaOperation::Publish);
                tracing::warn!(%error, "cannot append clock ticks");
            }
        }
    }

    /// Until a partition's next timer is due by the wall clock (to append its tick), or until
    /// an unanswered tick may be repeated; at most a second, to notice rebalances.
    pub(super) fn time_to_next_timer(&self) -> Duration {
        let mut wait = Duration::from_secs(1);
        for partition in &self.assigned {
            let Some(at) = self.book.next_timer_of(*partition) else {
                continue;
            };
            let due = UNIX_EPOCH + Duration::from_secs(at.0.max(0) as u64);
            let until_due = due
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            let until_retry = self
                .ticks_sent
                .get(partition)
                .map_or(Duration::ZERO, |sent| {
                    TICK_RETRY.saturating_sub(sent.elapsed())
                });
            wait = wait.min(until_due.max(until_retry));
        }
        wait
    }
}

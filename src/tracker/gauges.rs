//! Metrics and printing for what Kafka now holds, and the periodic gauges.

use std::time::{Duration, Instant};

use super::*;

impl Tracker {
    /// Metrics and printing for events Kafka now holds.
    pub(super) fn note_emitted(&self, outbox: &Outbox) {
        let now = epoch_seconds_f64();
        for event in &outbox.events {
            self.metrics.window_event(event.type_name);
            if let Some(due) = event.due {
                self.metrics
                    .timer_lateness
                    .observe((now - due.0 as f64).max(0.0));
            }
            if self.print_events {
                println!("{}", String::from_utf8_lossy(&event.payload));
            }
        }
    }

    pub(super) fn update_gauges(&mut self, force: bool) {
        if !force && self.last_gauges.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.last_gauges = Instant::now();
        for (kind, open) in self.book.open_windows() {
            self.metrics
                .open_windows
                .get_or_create(&crate::metrics::WindowLabels {
                    window: kind.as_str(),
                })
                .set(open);
        }
        self.metrics
            .tracked_contacts
            .set(self.book.contact_count() as i64);
    }
}

//! The customer service window: customer messages open and extend it, Meta's 131047
//! closes it.

use super::*;

impl ContactWindows {
    pub(super) fn on_customer_message(
        &mut self,
        id: &MessageId,
        at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        let expires_at = at.plus(cfg.service_window_secs);
        // Not newer than what we know (a duplicate, a reordered older message, or one that
        // Meta's 131047 already outdated), or its window would be over on arrival.
        if at <= self.inbound_floor || expires_at <= now {
            return;
        }
        self.inbound_floor = at;
        self.last_inbound_message_id = Some(StoredMessageId::new(id));
        if self.service.is_open() {
            let expires_at = expires_at.max(self.service.expires_at);
            self.move_end(WindowKind::CustomerService, expires_at, now, cfg);
        } else {
            self.open(
                WindowKind::CustomerService,
                at,
                expires_at,
                false,
                now,
                cfg,
                out,
            );
        }
    }

    pub(super) fn on_re_engagement_failed(
        &mut self,
        at: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        if self.service.is_open() {
            if at < self.inbound_floor {
                // A customer message newer than the failed send reopened the window.
                return;
            }
            let ended_at = at.min(self.service.expires_at);
            self.close(
                WindowKind::CustomerService,
                ended_at,
                CloseReason::MetaReported,
                cfg,
                out,
            );
        }
        // Remembered even with nothing open: older messages that arrive later must not open a
        // window Meta has already declared closed.
        self.inbound_floor = self.inbound_floor.max(at);
    }
}

//! The free entry point window and the offer before it: referrals, replies, and Meta's
//! stated end.

use super::*;

impl ContactWindows {
    pub(super) fn on_referral(
        &mut self,
        referral_at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        let entry_point = self.entry_point_mut();
        entry_point.referral_at = entry_point.referral_at.max(referral_at);
        // The reply may have been processed before the message it answers: then the offer
        // was taken up before we knew of it, and only the FEP remains to open.
        if let Some(reply_at) = self.remembered_reply(referral_at, cfg) {
            self.on_reply(reply_at, referral_at, now, cfg, out);
            return;
        }
        self.offer_entry(referral_at, now, cfg, out);
    }

    /// Opens the free entry offer of a referral at `referral_at`, or moves the open offer's end
    /// to this newer referral's reply deadline.
    pub(super) fn offer_entry(
        &mut self,
        referral_at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        // Nothing to offer while an FEP runs: the reply is free anyway.
        if self.entry_point().entry.is_open() {
            return;
        }
        let expires_at = referral_at.plus(cfg.reply_window_secs());
        if expires_at <= now {
            return; // late: the offer was over before we learned of it
        }
        let offer = self.entry_point().offer;
        if offer.is_open() {
            if expires_at > offer.expires_at {
                self.move_end(WindowKind::FreeEntryOffer, expires_at, now, cfg);
            }
            return;
        }
        // Offer identities only grow, as FEP identities do: a referral older than the last
        // offer, arriving late, belongs to an offer already announced or already over.
        if offer.status != Status::Never && referral_at <= offer.opened_at {
            return;
        }
        self.open(
            WindowKind::FreeEntryOffer,
            referral_at,
            expires_at,
            false,
            now,
            cfg,
            out,
        );
    }

    /// The FEP began at `at`: an open offer was taken up.
    pub(super) fn convert_offer(
        &mut self,
        at: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        let offer = self.entry_point().offer;
        if !offer.is_open() {
            return;
        }
        let ended_at = at.clamp(offer.opened_at, offer.expires_at);
        self.close(
            WindowKind::FreeEntryOffer,
            ended_at,
            CloseReason::Converted,
            cfg,
            out,
        );
    }

    pub(super) fn on_business_send(
        &mut self,
        at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        self.remember_send(at, now, cfg);
        if let Some(referral_at) = known(self.entry_point().referral_at) {
            if answers(referral_at, at, cfg) {
                self.on_reply(at, referral_at, now, cfg, out);
            }
        }
    }

    /// A business send at `reply_at` that lies within the reply window of the referral at
    /// `referral_at`.
    pub(super) fn on_reply(
        &mut self,
        reply_at: UnixSeconds,
        referral_at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        let entry = self.entry_point().entry;
        let expires_at = reply_at.plus(cfg.free_entry_window_secs);
        match entry.status {
            Status::Open => {
                let earlier_reply_to_same_referral = !entry.expires_at_from_meta
                    && entry.opened_at >= referral_at
                    && reply_at < entry.opened_at;
                if earlier_reply_to_same_referral {
                    // The FEP really began at this reply; its announced identity stays.
                    let expires_at = expires_at.min(entry.expires_at);
                    self.move_end(WindowKind::FreeEntryPoint, expires_at, now, cfg);
                }
                return;
            }
            Status::Closed(_) | Status::Missed => {
                let referral_used = entry.opened_at >= referral_at;
                let inside_previous = reply_at < entry.expires_at;
                if referral_used || inside_previous {
                    return;
                }
            }
            Status::Never => {}
        }
        self.convert_offer(reply_at, cfg, out);
        if expires_at > now {
            self.open(
                WindowKind::FreeEntryPoint,
                reply_at,
                expires_at,
                false,
                now,
                cfg,
                out,
            );
        } else {
            self.entry_point_mut().entry = Window {
                opened_at: reply_at,
                expires_at,
                status: Status::Missed,
                ..Window::default()
            };
        }
    }

    /// Meta stated the FEP's end on a `sent` status at `sent_at`.
    pub(super) fn on_meta_fep_expiry(
        &mut self,
        sent_at: UnixSeconds,
        expires_at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        let entry = self.entry_point().entry;
        if expires_at <= sent_at {
            return; // not a window
        }
        if entry.is_open() {
            if expires_at <= entry.opened_at {
                return; // the end of an earlier FEP
            }
            // Meta's word replaces our estimate; among Meta's, the latest end wins so the
            // result does not depend on the order statuses arrive in.
            let expires_at = if entry.expires_at_from_meta {
                expires_at.max(entry.expires_at)
            } else {
                expires_at
            };
            self.entry_point_mut().entry.expires_at_from_meta = true;
            self.move_end(WindowKind::FreeEntryPoint, expires_at, now, cfg);
            return;
        }
        // FEP identities only grow: an FEP never opens at or before one we already know of,
        // which keeps every announced identity unique.
        let newer_than_known = entry.status == Status::Never || sent_at > entry.opened_at;
        if !newer_than_known {
            return;
        }
        self.convert_offer(sent_at, cfg, out);
        if expires_at <= now {
            self.entry_point_mut().entry = Window {
                opened_at: sent_at,
                expires_at,
                status: Status::Missed,
                expires_at_from_meta: true,
                ..Window::default()
            };
            return;
        }
        self.open(
            WindowKind::FreeEntryPoint,
            sent_at,
            expires_at,
            true,
            now,
            cfg,
            out,
        );
    }

    pub(super) fn remember_send(&mut self, at: UnixSeconds, now: UnixSeconds, cfg: &WindowConfig) {
        let memory = cfg.memory_secs();
        let useful = |send: UnixSeconds| send != NEVER && send.plus(memory) > now;
        if !useful(at) {
            return;
        }
        if !useful(self.earliest_send_at) {
            self.earliest_send_at = if useful(self.latest_send_at) {
                self.latest_send_at.min(at)
            } else {
                at
            };
        } else if at < self.earliest_send_at {
            self.earliest_send_at = at;
        }
        self.latest_send_at = self.latest_send_at.max(at);
    }

    /// The earliest remembered send that answers a referral at `referral_at`. Only the earliest
    /// and latest sends are remembered: exact unless several sends came before the referral
    /// message was processed, and then the FEP opens at the latest one.
    pub(super) fn remembered_reply(
        &self,
        referral_at: UnixSeconds,
        cfg: &WindowConfig,
    ) -> Option<UnixSeconds> {
        [self.earliest_send_at, self.latest_send_at]
            .into_iter()
            .filter_map(known)
            .find(|&send| answers(referral_at, send, cfg))
    }
}

/// Does a business send at `sent_at` answer the referral at `referral_at`?
pub(super) fn answers(referral_at: UnixSeconds, sent_at: UnixSeconds, cfg: &WindowConfig) -> bool {
    referral_at <= sent_at && sent_at < referral_at.plus(cfg.reply_window_secs())
}

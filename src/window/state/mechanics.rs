//! What every window kind shares: opening, moving the end, warnings, closing, ticking.

use super::*;

impl ContactWindows {
    pub(super) fn window(&self, kind: WindowKind) -> &Window {
        match kind {
            WindowKind::CustomerService => &self.service,
            WindowKind::FreeEntryPoint => &self.entry_point().entry,
            WindowKind::FreeEntryOffer => &self.entry_point().offer,
        }
    }

    pub(super) fn entry_point(&self) -> &EntryPoint {
        self.entry_point.as_deref().unwrap_or(&NO_ENTRY_POINT)
    }

    /// Allocates the entry point's memory: only for a change that makes it differ from
    /// [`EntryPoint::NONE`].
    pub(super) fn entry_point_mut(&mut self) -> &mut EntryPoint {
        allocated(&mut self.entry_point)
    }

    pub(super) fn parts(&mut self, kind: WindowKind) -> Parts<'_> {
        let merged = self.merged.as_deref_mut().map(|m| m.of_mut(kind));
        let window = match kind {
            WindowKind::CustomerService => &mut self.service,
            WindowKind::FreeEntryPoint => &mut allocated(&mut self.entry_point).entry,
            WindowKind::FreeEntryOffer => &mut allocated(&mut self.entry_point).offer,
        };
        Parts {
            window,
            merged,
            message_id: &self.last_inbound_message_id,
        }
    }

    #[allow(clippy::too_many_arguments)] // each is a distinct fact of the new window
    pub(super) fn open(
        &mut self,
        kind: WindowKind,
        opened_at: UnixSeconds,
        expires_at: UnixSeconds,
        expires_at_from_meta: bool,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        let parts = self.parts(kind);
        *parts.window = Window {
            opened_at,
            expires_at,
            leads_done: leads_passed(expires_at, now, cfg),
            status: Status::Open,
            expires_at_from_meta,
        };
        let mut emitter = Emitter {
            kind,
            expires_at,
            message_id: parts.message_id,
            out,
        };
        emitter.emit(EventType::Opened, opened_at);
    }

    /// Moves an open window's end and re-arms its warnings: every lead whose time is still
    /// ahead of `now` under the new end is warned (again) before it.
    pub(super) fn move_end(
        &mut self,
        kind: WindowKind,
        expires_at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
    ) {
        let parts = self.parts(kind);
        if parts.window.expires_at == expires_at {
            return;
        }
        let leads_done = leads_passed(expires_at, now, cfg);
        parts.window.expires_at = expires_at;
        parts.window.leads_done = leads_done;
        for identity in parts.merged.into_iter().flatten() {
            identity.leads_done = leads_done;
        }
    }

    pub(super) fn close(
        &mut self,
        kind: WindowKind,
        ended_at: UnixSeconds,
        reason: CloseReason,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        let parts = self.parts(kind);
        parts.window.status = Status::Closed(reason);
        parts.window.expires_at = ended_at;
        // Warnings not sent by now never will be; marking them done makes the state after a
        // missed stretch of ticks equal to the state after ticking through it.
        parts.window.leads_done = cfg.lead_count();
        let mut emitter = Emitter {
            kind,
            expires_at: ended_at,
            message_id: parts.message_id,
            out,
        };
        let closed = EventType::Closed { reason };
        emitter.emit(closed, parts.window.opened_at);
        if let Some(merged) = parts.merged {
            for identity in merged.drain(..) {
                emitter.emit(closed, identity.opened_at);
            }
        }
        if self.merged.as_deref().is_some_and(Merged::is_empty) {
            self.merged = None;
        }
    }

    pub(super) fn tick_kind(
        &mut self,
        kind: WindowKind,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        match self.next_due(kind, cfg) {
            Some(due) if due <= now => {}
            _ => return,
        }
        let expires_at = self.window(kind).expires_at;
        if now >= expires_at {
            self.close(kind, expires_at, CloseReason::Expired, cfg, out);
            return;
        }
        let parts = self.parts(kind);
        let mut emitter = Emitter {
            kind,
            expires_at,
            message_id: parts.message_id,
            out,
        };
        let window = parts.window;
        emitter.due_warnings(window.opened_at, &mut window.leads_done, now, cfg);
        for identity in parts.merged.into_iter().flatten() {
            emitter.due_warnings(identity.opened_at, &mut identity.leads_done, now, cfg);
        }
    }

    pub(super) fn next_due(&self, kind: WindowKind, cfg: &WindowConfig) -> Option<UnixSeconds> {
        let window = self.window(kind);
        if !window.is_open() {
            return None;
        }
        let expires_at = window.expires_at;
        let merged = self
            .merged_identities(kind)
            .map(|identity| identity.leads_done);
        let due = std::iter::once(window.leads_done)
            .chain(merged)
            .filter_map(|leads_done| next_warning(expires_at, leads_done, cfg))
            .fold(expires_at, UnixSeconds::min);
        Some(due)
    }

    pub(super) fn merged_identities(
        &self,
        kind: WindowKind,
    ) -> impl Iterator<Item = &MergedIdentity> {
        let merged = self.merged.as_deref().map_or(&[][..], |m| m.of(kind));
        merged.iter()
    }
}

fn allocated(entry_point: &mut Option<Box<EntryPoint>>) -> &mut EntryPoint {
    entry_point.get_or_insert_with(|| Box::new(EntryPoint::NONE))
}

/// How many leads' warning times (`expires_at - lead`) are not ahead of `now`.
pub(super) fn leads_passed(expires_at: UnixSeconds, now: UnixSeconds, cfg: &WindowConfig) -> u8 {
    let mut passed = 0u8;
    while let Some(lead) = cfg.lead(passed) {
        if expires_at.minus(lead) > now {
            break;
        }
        passed += 1;
    }
    passed
}

/// The instant the next warning of an identity is due, if any is left.
pub(super) fn next_warning(
    expires_at: UnixSeconds,
    leads_done: u8,
    cfg: &WindowConfig,
) -> Option<UnixSeconds> {
    cfg.lead(leads_done).map(|lead| expires_at.minus(lead))
}

/// Builds the events of one window; borrows only what the events copy.
pub(super) struct Emitter<'a> {
    pub(super) kind: WindowKind,
    pub(super) expires_at: UnixSeconds,
    pub(super) message_id: &'a Option<StoredMessageId>,
    pub(super) out: &'a mut Vec<WindowEvent>,
}

impl Emitter<'_> {
    pub(super) fn emit(&mut self, event: EventType, opened_at: UnixSeconds) {
        self.out.push(WindowEvent {
            event,
            window: self.kind,
            opened_at,
            expires_at: self.expires_at,
            last_inbound_message_id: self.message_id.as_ref().map(StoredMessageId::to_message_id),
        });
    }

    /// Warnings whose time came, for one identity; the caller knows the window is still open.
    pub(super) fn due_warnings(
        &mut self,
        opened_at: UnixSeconds,
        leads_done: &mut u8,
        now: UnixSeconds,
        cfg: &WindowConfig,
    ) {
        while let Some(lead) = cfg.lead(*leads_done) {
            if self.expires_at.minus(lead) > now {
                break;
            }
            self.emit(EventType::Closing { lead_secs: lead }, opened_at);
            *leads_done += 1;
        }
    }
}

/// Mutable access to one kind's window and its merged identities, next to the shared message
/// id the events carry.
pub(super) struct Parts<'a> {
    pub(super) window: &'a mut Window,
    pub(super) merged: Option<&'a mut Vec<MergedIdentity>>,
    pub(super) message_id: &'a Option<StoredMessageId>,
}

//! One contact's windows and the transitions between them.

use serde::{Deserialize, Serialize};

use crate::domain::{MessageId, UnixSeconds};

mod record;

use self::record::StateRecord;
use super::config::WindowConfig;
use super::event::{CloseReason, EventType, WindowEvent, WindowKind, WindowView};

/// "No such instant" in the packed fields: it sorts below every real instant, so a floor that
/// was never set lets everything through. Keeping these fields at 8 bytes instead of the 16 of
/// `Option<UnixSeconds>` is what keeps the per-contact state small.
const NEVER: UnixSeconds = UnixSeconds(i64::MIN);

/// What the tracker feeds in, already classified by the normalizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A customer message or user-initiated call that opens or refreshes the CSW. `referral`:
    /// the message carried a Click-to-WhatsApp `referral`.
    CustomerMessage {
        id: MessageId,
        at: UnixSeconds,
        referral: bool,
    },
    /// A `sent` status of a business message to this customer. `fep_expires_at`:
    /// `conversation.expiration_timestamp` when `pricing.type == "free_entry_point"`, Meta's
    /// word on the FEP's end.
    BusinessSent {
        id: MessageId,
        at: UnixSeconds,
        fep_expires_at: Option<UnixSeconds>,
    },
    /// A `failed` status with error 131047: Meta says the CSW is closed.
    ReEngagementFailed { at: UnixSeconds },
}

impl Input {
    /// Meta's timestamp of the item.
    pub fn at(&self) -> UnixSeconds {
        match self {
            Self::CustomerMessage { at, .. }
            | Self::BusinessSent { at, .. }
            | Self::ReEngagementFailed { at } => *at,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Status {
    #[default]
    Never,
    Open,
    Closed(CloseReason),
    /// FEP only: a window the data proves existed but whose end had passed before we learned of
    /// it. It was never announced; it is remembered so that it is not opened later.
    Missed,
}

/// The latest window of one kind. After it closes, its instants stay as memory: the FEP rules
/// need to know when the previous FEP ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    opened_at: UnixSeconds,
    expires_at: UnixSeconds,
    /// How many leads (largest first) are done: warned, or skipped because their time had
    /// already passed when the end was last set.
    leads_done: u8,
    status: Status,
    /// FEP only: `expires_at` came from Meta's `expiration_timestamp`.
    expires_at_from_meta: bool,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            opened_at: NEVER,
            expires_at: NEVER,
            leads_done: 0,
            status: Status::Never,
            expires_at_from_meta: false,
        }
    }
}

impl Window {
    fn is_open(&self) -> bool {
        self.status == Status::Open
    }
}

/// A window announced under the customer's old id and merged into this one by a move: it shares
/// the surviving window's end but keeps its own identity and warning progress, so that it still
/// gets its own `closing` and `closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MergedIdentity {
    opened_at: UnixSeconds,
    leads_done: u8,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Merged {
    customer_service: Vec<MergedIdentity>,
    free_entry_point: Vec<MergedIdentity>,
    free_entry_offer: Vec<MergedIdentity>,
}

impl Merged {
    fn of_mut(&mut self, kind: WindowKind) -> &mut Vec<MergedIdentity> {
        match kind {
            WindowKind::CustomerService => &mut self.customer_service,
            WindowKind::FreeEntryPoint => &mut self.free_entry_point,
            WindowKind::FreeEntryOffer => &mut self.free_entry_offer,
        }
    }

    fn of(&self, kind: WindowKind) -> &[MergedIdentity] {
        match kind {
            WindowKind::CustomerService => &self.customer_service,
            WindowKind::FreeEntryPoint => &self.free_entry_point,
            WindowKind::FreeEntryOffer => &self.free_entry_offer,
        }
    }

    fn is_empty(&self) -> bool {
        WindowKind::ALL.iter().all(|&kind| self.of(kind).is_empty())
    }
}

/// Everything the rules remember about one contact. See the module documentation for the rules.
/// Serialized through [`StateRecord`](record::StateRecord), a readable JSON shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StateRecord", into = "StateRecord")]
pub struct ContactWindows {
    service: Window,
    entry: Window,
    /// The free entry offer: open while a reply to the newest referral would still open an FEP.
    offer: Window,
    /// Customer messages stamped at or before this no longer open or extend the CSW: the newest
    /// message that counted, or Meta's newest 131047 report, whichever is later. While the CSW
    /// is open it is exactly the last inbound message's timestamp.
    inbound_floor: UnixSeconds,
    /// The newest referral message.
    referral_at: UnixSeconds,
    /// The earliest and latest business sends still worth remembering, for a referral message
    /// that arrives after the reply that answered it.
    earliest_send_at: UnixSeconds,
    latest_send_at: UnixSeconds,
    last_inbound_message_id: Option<MessageId>,
    /// Windows merged in by a move; `None` in all but that rare case, so no allocation.
    merged: Option<Box<Merged>>,
}

impl Default for ContactWindows {
    fn default() -> Self {
        Self {
            service: Window::default(),
            entry: Window::default(),
            offer: Window::default(),
            inbound_floor: NEVER,
            referral_at: NEVER,
            earliest_send_at: NEVER,
            latest_send_at: NEVER,
            last_inbound_message_id: None,
            merged: None,
        }
    }
}

/// How many leads' warning times (`expires_at - lead`) are not ahead of `now`.
fn leads_passed(expires_at: UnixSeconds, now: UnixSeconds, cfg: &WindowConfig) -> u8 {
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
fn next_warning(
    expires_at: UnixSeconds,
    leads_done: u8,
    cfg: &WindowConfig,
) -> Option<UnixSeconds> {
    cfg.lead(leads_done).map(|lead| expires_at.minus(lead))
}

fn known(at: UnixSeconds) -> Option<UnixSeconds> {
    (at != NEVER).then_some(at)
}

/// Builds the events of one window; borrows only what the events copy.
struct Emitter<'a> {
    kind: WindowKind,
    expires_at: UnixSeconds,
    message_id: &'a Option<MessageId>,
    out: &'a mut Vec<WindowEvent>,
}

impl Emitter<'_> {
    fn emit(&mut self, event: EventType, opened_at: UnixSeconds) {
        self.out.push(WindowEvent {
            event,
            window: self.kind,
            opened_at,
            expires_at: self.expires_at,
            last_inbound_message_id: self.message_id.clone(),
        });
    }

    /// Warnings whose time came, for one identity; the caller knows the window is still open.
    fn due_warnings(
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
struct Parts<'a> {
    window: &'a mut Window,
    merged: Option<&'a mut Vec<MergedIdentity>>,
    message_id: &'a Option<MessageId>,
}

impl ContactWindows {
    /// Applies one input at `now`. What was already due at `now` is emitted first (as `tick`
    /// would), so the input meets the state as it stands at `now`: a message arriving after the
    /// window ended but before the tracker ticked opens a new window rather than reviving the old.
    pub fn apply(
        &mut self,
        input: &Input,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        self.tick(now, cfg, out);
        match input {
            Input::CustomerMessage { id, at, referral } => {
                self.on_customer_message(id, *at, now, cfg, out);
                if *referral {
                    self.on_referral(*at, now, cfg, out);
                }
            }
            Input::BusinessSent {
                at, fep_expires_at, ..
            } => match fep_expires_at {
                Some(expires_at) => self.on_meta_fep_expiry(*at, *expires_at, now, cfg, out),
                None => self.on_business_send(*at, now, cfg, out),
            },
            Input::ReEngagementFailed { at } => self.on_re_engagement_failed(*at, cfg, out),
        }
        // An end moved to the past (Meta's FEP expiration, an earlier reply) closes at once.
        self.tick(now, cfg, out);
    }

    /// Emits everything due at `now`: warnings whose time came while their window is still
    /// open, and the close of every window whose end passed. A window that ended while nobody
    /// ticked gets only its `closed`; its pending warnings are skipped.
    pub fn tick(&mut self, now: UnixSeconds, cfg: &WindowConfig, out: &mut Vec<WindowEvent>) {
        for kind in WindowKind::ALL {
            self.tick_kind(kind, now, cfg, out);
        }
    }

    /// The earliest instant at which `tick` would emit something; `None` when nothing is open.
    pub fn next_deadline(&self, cfg: &WindowConfig) -> Option<UnixSeconds> {
        WindowKind::ALL
            .into_iter()
            .filter_map(|kind| self.next_due(kind, cfg))
            .min()
    }

    /// True when no window is open and nothing remembered can change a decision any more: every
    /// remembered instant is older than one CSW plus one FEP length. Any input the forgotten
    /// memory would have stopped is then too late to open anything anyway.
    pub fn is_forgettable(&self, now: UnixSeconds, cfg: &WindowConfig) -> bool {
        self.forgettable_at(cfg).is_some_and(|at| at <= now)
    }

    /// When [`Self::is_forgettable`] becomes true if nothing else happens: `None` while a window
    /// is open (its own deadlines come first).
    pub fn forgettable_at(&self, cfg: &WindowConfig) -> Option<UnixSeconds> {
        if WindowKind::ALL
            .into_iter()
            .any(|kind| self.window(kind).is_open())
        {
            return None;
        }
        let memory = cfg.memory_secs();
        [
            self.inbound_floor,
            self.referral_at,
            self.earliest_send_at,
            self.latest_send_at,
            self.entry.expires_at,
        ]
        .into_iter()
        .filter_map(known)
        .map(|at| at.plus(memory))
        .max()
        .or(Some(UnixSeconds(i64::MIN)))
    }

    /// Takes over the state the same customer had under an old id (the BSUID changed).
    ///
    /// A kind open only on one side continues as it was. When both sides have an open window of
    /// the same kind, one window remains, ending at the later end, but each identity that was
    /// announced keeps its own warnings and gets its own `closed`.
    pub fn absorb(
        &mut self,
        mut old: ContactWindows,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        self.tick(now, cfg, out);
        old.tick(now, cfg, out);
        let take_their_message_id = match (self.service.is_open(), old.service.is_open()) {
            (false, true) => true,
            (true, true) => old.inbound_floor > self.inbound_floor,
            _ => self.last_inbound_message_id.is_none(),
        };
        for kind in WindowKind::ALL {
            self.absorb_window(kind, &mut old, now, cfg);
        }
        if take_their_message_id {
            self.last_inbound_message_id = old.last_inbound_message_id.take();
        }
        self.inbound_floor = self.inbound_floor.max(old.inbound_floor);
        self.referral_at = self.referral_at.max(old.referral_at);
        self.earliest_send_at = match (known(self.earliest_send_at), known(old.earliest_send_at)) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(NEVER),
        };
        self.latest_send_at = self.latest_send_at.max(old.latest_send_at);
        self.tick(now, cfg, out);
    }

    /// The latest customer service window, open or closed; `None` before the first one.
    pub fn customer_service(&self) -> Option<WindowView> {
        self.view(WindowKind::CustomerService)
    }

    /// The latest announced free entry point window, open or closed.
    pub fn free_entry_point(&self) -> Option<WindowView> {
        self.view(WindowKind::FreeEntryPoint)
    }

    /// The latest free entry offer, open or closed.
    pub fn free_entry_offer(&self) -> Option<WindowView> {
        self.view(WindowKind::FreeEntryOffer)
    }

    /// Whether a window of `kind` is open (as of the last `tick`).
    pub fn is_open(&self, kind: WindowKind) -> bool {
        self.window(kind).is_open()
    }

    /// The latest announced window of `kind`, open or closed.
    pub fn latest(&self, kind: WindowKind) -> Option<WindowView> {
        self.view(kind)
    }

    /// Identities of windows of this kind announced under an old id and merged by a move.
    pub fn merged_opened_at(&self, kind: WindowKind) -> impl Iterator<Item = UnixSeconds> + '_ {
        self.merged_identities(kind)
            .map(|identity| identity.opened_at)
    }

    fn view(&self, kind: WindowKind) -> Option<WindowView> {
        let window = self.window(kind);
        let close_reason = match window.status {
            Status::Open => None,
            Status::Closed(reason) => Some(reason),
            Status::Never | Status::Missed => return None,
        };
        Some(WindowView {
            window: kind,
            open: close_reason.is_none(),
            opened_at: window.opened_at,
            expires_at: window.expires_at,
            expires_at_from_meta: window.expires_at_from_meta,
            last_inbound_message_id: self.last_inbound_message_id.clone(),
            close_reason,
        })
    }

    // ----- customer service window -----

    fn on_customer_message(
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
        self.last_inbound_message_id = Some(id.clone());
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

    fn on_re_engagement_failed(
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

    // ----- free entry point window -----

    fn on_referral(
        &mut self,
        referral_at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        self.referral_at = self.referral_at.max(referral_at);
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
    fn offer_entry(
        &mut self,
        referral_at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        // Nothing to offer while an FEP runs: the reply is free anyway.
        if self.entry.is_open() {
            return;
        }
        let expires_at = referral_at.plus(cfg.reply_window_secs());
        if expires_at <= now {
            return; // late: the offer was over before we learned of it
        }
        let offer = self.offer;
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
    fn convert_offer(&mut self, at: UnixSeconds, cfg: &WindowConfig, out: &mut Vec<WindowEvent>) {
        let offer = self.offer;
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

    fn on_business_send(
        &mut self,
        at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        self.remember_send(at, now, cfg);
        if let Some(referral_at) = known(self.referral_at) {
            if answers(referral_at, at, cfg) {
                self.on_reply(at, referral_at, now, cfg, out);
            }
        }
    }

    /// A business send at `reply_at` that lies within the reply window of the referral at
    /// `referral_at`.
    fn on_reply(
        &mut self,
        reply_at: UnixSeconds,
        referral_at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        let entry = self.entry;
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
            self.entry = Window {
                opened_at: reply_at,
                expires_at,
                status: Status::Missed,
                ..Window::default()
            };
        }
    }

    /// Meta stated the FEP's end on a `sent` status at `sent_at`.
    fn on_meta_fep_expiry(
        &mut self,
        sent_at: UnixSeconds,
        expires_at: UnixSeconds,
        now: UnixSeconds,
        cfg: &WindowConfig,
        out: &mut Vec<WindowEvent>,
    ) {
        let entry = self.entry;
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
            self.entry.expires_at_from_meta = true;
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
            self.entry = Window {
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

    fn remember_send(&mut self, at: UnixSeconds, now: UnixSeconds, cfg: &WindowConfig) {
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
    fn remembered_reply(
        &self,
        referral_at: UnixSeconds,
        cfg: &WindowConfig,
    ) -> Option<UnixSeconds> {
        [self.earliest_send_at, self.latest_send_at]
            .into_iter()
            .filter_map(known)
            .find(|&send| answers(referral_at, send, cfg))
    }

    // ----- shared window mechanics -----

    fn window(&self, kind: WindowKind) -> &Window {
        match kind {
            WindowKind::CustomerService => &self.service,
            WindowKind::FreeEntryPoint => &self.entry,
            WindowKind::FreeEntryOffer => &self.offer,
        }
    }

    fn parts(&mut self, kind: WindowKind) -> Parts<'_> {
        let merged = self.merged.as_deref_mut().map(|m| m.of_mut(kind));
        let window = match kind {
            WindowKind::CustomerService => &mut self.service,
            WindowKind::FreeEntryPoint => &mut self.entry,
            WindowKind::FreeEntryOffer => &mut self.offer,
        };
        Parts {
            window,
            merged,
            message_id: &self.last_inbound_message_id,
        }
    }

    #[allow(clippy::too_many_arguments)] // each is a distinct fact of the new window
    fn open(
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
    fn move_end(
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

    fn close(
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

    fn tick_kind(
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

    fn next_due(&self, kind: WindowKind, cfg: &WindowConfig) -> Option<UnixSeconds> {
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

    fn merged_identities(&self, kind: WindowKind) -> impl Iterator<Item = &MergedIdentity> {
        let merged = self.merged.as_deref().map_or(&[][..], |m| m.of(kind));
        merged.iter()
    }

    // ----- moves -----

    fn absorb_window(
        &mut self,
        kind: WindowKind,
        old: &mut ContactWindows,
        now: UnixSeconds,
        cfg: &WindowConfig,
    ) {
        let theirs = *old.window(kind);
        let their_merged = old
            .parts(kind)
            .merged
            .map(std::mem::take)
            .unwrap_or_default();
        let ours = *self.window(kind);
        match (ours.is_open(), theirs.is_open()) {
            (true, true) => self.merge_open(kind, theirs, their_merged, now, cfg),
            (false, true) => {
                *self.parts(kind).window = theirs;
                self.add_merged(kind, their_merged);
            }
            (false, false) => {
                // Keep the memory of the later window; it is what the FEP rules consult.
                let theirs_later = theirs.status != Status::Never
                    && (ours.status == Status::Never || theirs.opened_at > ours.opened_at);
                if theirs_later {
                    *self.parts(kind).window = theirs;
                }
            }
            (true, false) => {}
        }
    }

    /// Both ids had an open window of this kind: one window remains, ending at the later end;
    /// the old identities ride along so each still gets its warnings and its `closed`.
    fn merge_open(
        &mut self,
        kind: WindowKind,
        theirs: Window,
        their_merged: Vec<MergedIdentity>,
        now: UnixSeconds,
        cfg: &WindowConfig,
    ) {
        let ours = *self.window(kind);
        let expires_at = ours.expires_at.max(theirs.expires_at);
        let their_leads_done = if theirs.expires_at == expires_at {
            None
        } else {
            Some(leads_passed(expires_at, now, cfg))
        };
        self.move_end(kind, expires_at, now, cfg);
        self.parts(kind).window.expires_at_from_meta |= theirs.expires_at_from_meta;
        let main = MergedIdentity {
            opened_at: theirs.opened_at,
            leads_done: theirs.leads_done,
        };
        let identities = std::iter::once(main)
            .chain(their_merged)
            .map(|identity| MergedIdentity {
                leads_done: their_leads_done.unwrap_or(identity.leads_done),
                ..identity
            })
            .collect();
        self.add_merged(kind, identities);
    }

    fn add_merged(&mut self, kind: WindowKind, identities: Vec<MergedIdentity>) {
        let main = self.window(kind).opened_at;
        for identity in identities {
            let known_already = identity.opened_at == main
                || self
                    .merged_identities(kind)
                    .any(|m| m.opened_at == identity.opened_at);
            if !known_already {
                self.merged
                    .get_or_insert_with(Box::default)
                    .of_mut(kind)
                    .push(identity);
            }
        }
    }
}

/// Does a business send at `sent_at` answer the referral at `referral_at`?
fn answers(referral_at: UnixSeconds, sent_at: UnixSeconds, cfg: &WindowConfig) -> bool {
    referral_at <= sent_at && sent_at < referral_at.plus(cfg.reply_window_secs())
}

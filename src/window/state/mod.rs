//! One contact's windows and the transitions between them.

use serde::{Deserialize, Serialize};

use crate::domain::{MessageId, UnixSeconds};

mod entry;
mod mechanics;
mod moves;
mod record;
mod service;
mod stored_id;

use self::mechanics::*;

use self::record::StateRecord;
use self::stored_id::StoredMessageId;
use super::config::WindowConfig;
use super::event::{CloseReason, EventType, WindowEvent, WindowKind, WindowSummary, WindowView};

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

impl Window {
    const NEVER_OPENED: Self = Self {
        opened_at: NEVER,
        expires_at: NEVER,
        leads_done: 0,
        status: Status::Never,
        expires_at_from_meta: false,
    };
}

impl Default for Window {
    fn default() -> Self {
        Self::NEVER_OPENED
    }
}

/// The free entry point window, the offer before it and the newest referral. Only contacts
/// that came through a Click-to-WhatsApp ad have any of it, so it lives behind one allocation
/// made when it is first set; `None` and "all never" are the same state, and only `None` is
/// ever stored for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntryPoint {
    entry: Window,
    /// The free entry offer: open while a reply to the newest referral would still open an FEP.
    offer: Window,
    /// The newest referral message.
    referral_at: UnixSeconds,
}

impl EntryPoint {
    const NONE: Self = Self {
        entry: Window::NEVER_OPENED,
        offer: Window::NEVER_OPENED,
        referral_at: NEVER,
    };
}

static NO_ENTRY_POINT: EntryPoint = EntryPoint::NONE;

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
/// Serialized through `record::StateRecord`, a readable JSON shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StateRecord", into = "StateRecord")]
pub struct ContactWindows {
    service: Window,
    /// `None` for most contacts; see [`EntryPoint`].
    entry_point: Option<Box<EntryPoint>>,
    /// Customer messages stamped at or before this no longer open or extend the CSW: the newest
    /// message that counted, or Meta's newest 131047 report, whichever is later. While the CSW
    /// is open it is exactly the last inbound message's timestamp.
    inbound_floor: UnixSeconds,
    /// The earliest and latest business sends still worth remembering, for a referral message
    /// that arrives after the reply that answered it.
    earliest_send_at: UnixSeconds,
    latest_send_at: UnixSeconds,
    last_inbound_message_id: Option<StoredMessageId>,
    /// Windows merged in by a move; `None` in all but that rare case, so no allocation.
    merged: Option<Box<Merged>>,
}

impl Default for ContactWindows {
    fn default() -> Self {
        Self {
            service: Window::default(),
            entry_point: None,
            inbound_floor: NEVER,
            earliest_send_at: NEVER,
            latest_send_at: NEVER,
            last_inbound_message_id: None,
            merged: None,
        }
    }
}

fn known(at: UnixSeconds) -> Option<UnixSeconds> {
    (at != NEVER).then_some(at)
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
            self.entry_point().referral_at,
            self.earliest_send_at,
            self.latest_send_at,
            self.entry_point().entry.expires_at,
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
        if old.entry_point().referral_at > self.entry_point().referral_at {
            self.entry_point_mut().referral_at = old.entry_point().referral_at;
        }
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

    /// [`Self::latest`] without the message id, which costs a string to rebuild.
    pub fn latest_summary(&self, kind: WindowKind) -> Option<WindowSummary> {
        let window = self.window(kind);
        let close_reason = match window.status {
            Status::Open => None,
            Status::Closed(reason) => Some(reason),
            Status::Never | Status::Missed => return None,
        };
        Some(WindowSummary {
            open: close_reason.is_none(),
            opened_at: window.opened_at,
            expires_at: window.expires_at,
            close_reason,
        })
    }

    fn view(&self, kind: WindowKind) -> Option<WindowView> {
        let summary = self.latest_summary(kind)?;
        Some(WindowView {
            window: kind,
            open: summary.open,
            opened_at: summary.opened_at,
            expires_at: summary.expires_at,
            expires_at_from_meta: self.window(kind).expires_at_from_meta,
            last_inbound_message_id: self
                .last_inbound_message_id
                .as_ref()
                .map(StoredMessageId::to_message_id),
            close_reason: summary.close_reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Most contacts never meet a Click-to-WhatsApp ad: they must not pay for its windows, and
    /// equal states must be equal however they were reached (live or read back).
    #[test]
    fn the_entry_point_is_allocated_only_when_a_referral_sets_it() {
        let cfg = WindowConfig::new(100, 300, [50], false);
        let mut out = Vec::new();
        let mut state = ContactWindows::default();
        let message = |at: i64, referral: bool| Input::CustomerMessage {
            id: MessageId::new(format!("wamid.{at}")),
            at: UnixSeconds(at),
            referral,
        };
        let send = |at: i64| Input::BusinessSent {
            id: MessageId::new(format!("wamid.out.{at}")),
            at: UnixSeconds(at),
            fep_expires_at: None,
        };
        for (input, now) in [(message(10, false), 10), (send(20), 20)] {
            state.apply(&input, UnixSeconds(now), &cfg, &mut out);
        }
        state.tick(UnixSeconds(500), &cfg, &mut out);
        assert!(state.entry_point.is_none(), "no referral, no entry point");
        let read_back: ContactWindows =
            serde_json::from_value(serde_json::to_value(&state).expect("serializes"))
                .expect("reads back");
        assert_eq!(read_back, state);
        assert!(read_back.entry_point.is_none());

        state.apply(&message(600, true), UnixSeconds(600), &cfg, &mut out);
        assert!(state.entry_point.is_some(), "the referral is remembered");
        let read_back: ContactWindows =
            serde_json::from_value(serde_json::to_value(&state).expect("serializes"))
                .expect("reads back");
        assert_eq!(read_back, state);
    }
}

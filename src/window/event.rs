//! What the rules emit, and the read-only views of a contact's windows.

use serde::{Deserialize, Serialize};

use crate::domain::{MessageId, UnixSeconds};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    CustomerService,
    FreeEntryPoint,
    /// The 24 hours in which a reply to a referral message still opens a free entry point.
    FreeEntryOffer,
}

impl WindowKind {
    pub const ALL: [Self; 3] = [
        Self::CustomerService,
        Self::FreeEntryPoint,
        Self::FreeEntryOffer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerService => "customer_service",
            Self::FreeEntryPoint => "free_entry_point",
            Self::FreeEntryOffer => "free_entry_offer",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The window reached its end.
    Expired,
    /// Meta rejected a send with 131047: the CSW was closed although the state said open.
    MetaReported,
    /// A free entry offer whose reply opened the free entry point window.
    Converted,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::MetaReported => "meta_reported",
            Self::Converted => "converted",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Opened,
    Closing { lead_secs: i64 },
    Closed { reason: CloseReason },
}

impl EventType {
    /// The short name used in ids: `opened`, `closing`, `closed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Closing { .. } => "closing",
            Self::Closed { .. } => "closed",
        }
    }
}

/// One window event, before the tracker wraps it in a CloudEvent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowEvent {
    pub event: EventType,
    pub window: WindowKind,
    /// The window's identity: with the contact and the kind it names the window for good.
    pub opened_at: UnixSeconds,
    /// The end as known when the event was emitted; on `closed` the instant it ended.
    pub expires_at: UnixSeconds,
    pub last_inbound_message_id: Option<MessageId>,
}

impl WindowEvent {
    /// Deterministic id material, `<window>:<opened_at>:<event>[:<lead>:<expires_at>]`; the
    /// caller prefixes the contact key. A replay re-emits the same suffix; a warning re-armed
    /// after an extension carries the new end, so it gets a new one.
    pub fn id_suffix(&self) -> String {
        let base = format!(
            "{}:{}:{}",
            self.window.as_str(),
            self.opened_at.0,
            self.event.name()
        );
        match self.event {
            EventType::Closing { lead_secs } => {
                format!("{base}:{lead_secs}:{}", self.expires_at.0)
            }
            EventType::Opened | EventType::Closed { .. } => base,
        }
    }

    /// The CloudEvents `type`.
    pub fn type_name(&self) -> &'static str {
        match self.event {
            EventType::Opened => "whatsapp.window.opened",
            EventType::Closing { .. } => "whatsapp.window.closing",
            EventType::Closed { .. } => "whatsapp.window.closed",
        }
    }

    /// `lead_seconds` of the event data (only on `closing`).
    pub fn lead_seconds(&self) -> Option<i64> {
        match self.event {
            EventType::Closing { lead_secs } => Some(lead_secs),
            _ => None,
        }
    }

    /// `close_reason` of the event data (only on `closed`).
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.event {
            EventType::Closed { reason } => Some(reason),
            _ => None,
        }
    }
}

/// The latest window of one kind, as the state topic last showed it, without the message id an
/// event carries: what the API's read view keeps of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSummary {
    pub open: bool,
    pub opened_at: UnixSeconds,
    /// The end while open; once closed, when it closed.
    pub expires_at: UnixSeconds,
    pub close_reason: Option<CloseReason>,
}

/// The latest announced window of one kind, open or already closed, as the state record and
/// the metrics show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowView {
    pub window: WindowKind,
    pub open: bool,
    pub opened_at: UnixSeconds,
    /// The end while open; once closed, the instant it closed.
    pub expires_at: UnixSeconds,
    /// The FEP's end came from Meta's `expiration_timestamp` rather than our own count.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expires_at_from_meta: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_inbound_message_id: Option<MessageId>,
    /// Why it closed; `None` while open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<CloseReason>,
}

impl WindowView {
    pub fn is_open(&self) -> bool {
        self.open
    }
}

//! The JSON shape of [`ContactWindows`] on the compacted state topic: field names that explain
//! themselves, instants as integer Unix seconds named `*_at`, absent memory left out.
//!
//! ```json
//! {
//!   "customer_service": {"state": "open", "opened_at": 1795250000, "expires_at": 1795336400,
//!                        "closing_leads_done": 0},
//!   "last_inbound_message_id": "wamid.HBgL...",
//!   "inbound_floor_at": 1795250000,
//!   "free_entry_point": {"state": "closed", "opened_at": 1795000000, "expires_at": 1795259200,
//!                        "expires_at_from_meta": true, "closing_leads_done": 1},
//!   "referral_at": 1794999000,
//!   "earliest_business_send_at": 1795000000,
//!   "latest_business_send_at": 1795000000
//! }
//! ```

use serde::{Deserialize, Serialize};

use crate::domain::{MessageId, UnixSeconds};

use super::{
    known, ContactWindows, EntryPoint, Merged, MergedIdentity, Status, StoredMessageId, Window,
    NEVER,
};
use crate::window::CloseReason;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StateRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_service: Option<WindowRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_inbound_message_id: Option<MessageId>,
    /// Customer messages stamped at or before this no longer open or extend the CSW: the newest
    /// message counted, or Meta's newest 131047 report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inbound_floor_at: Option<UnixSeconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    free_entry_point: Option<WindowRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    free_entry_offer: Option<WindowRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    referral_at: Option<UnixSeconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    earliest_business_send_at: Option<UnixSeconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latest_business_send_at: Option<UnixSeconds>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WindowState {
    Open,
    Closed,
    /// An FEP whose end had passed before it could be announced; kept so it is not opened later.
    Missed,
}

#[derive(Debug, Serialize, Deserialize)]
struct WindowRecord {
    state: WindowState,
    opened_at: UnixSeconds,
    expires_at: UnixSeconds,
    /// Closing leads, largest first, already warned or skipped for this window.
    #[serde(default)]
    closing_leads_done: u8,
    #[serde(default, skip_serializing_if = "is_false")]
    expires_at_from_meta: bool,
    /// Why a closed window closed; records written before reasons were kept read as `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    close_reason: Option<CloseReason>,
    /// Windows announced under the customer's previous id that continue as this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    merged_windows: Vec<MergedRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MergedRecord {
    opened_at: UnixSeconds,
    #[serde(default)]
    closing_leads_done: u8,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl WindowRecord {
    fn from_window(window: &Window, merged: &[MergedIdentity]) -> Option<Self> {
        let (state, close_reason) = match window.status {
            Status::Never => return None,
            Status::Open => (WindowState::Open, None),
            Status::Closed(reason) => (WindowState::Closed, Some(reason)),
            Status::Missed => (WindowState::Missed, None),
        };
        Some(Self {
            state,
            opened_at: window.opened_at,
            expires_at: window.expires_at,
            closing_leads_done: window.leads_done,
            expires_at_from_meta: window.expires_at_from_meta,
            close_reason,
            merged_windows: merged
                .iter()
                .map(|identity| MergedRecord {
                    opened_at: identity.opened_at,
                    closing_leads_done: identity.leads_done,
                })
                .collect(),
        })
    }

    fn into_window(self) -> (Window, Vec<MergedIdentity>) {
        let status = match self.state {
            WindowState::Open => Status::Open,
            WindowState::Closed => {
                Status::Closed(self.close_reason.unwrap_or(CloseReason::Expired))
            }
            WindowState::Missed => Status::Missed,
        };
        let window = Window {
            opened_at: self.opened_at,
            expires_at: self.expires_at,
            leads_done: self.closing_leads_done,
            status,
            expires_at_from_meta: self.expires_at_from_meta,
        };
        let merged = self
            .merged_windows
            .into_iter()
            .map(|m| MergedIdentity {
                opened_at: m.opened_at,
                leads_done: m.closing_leads_done,
            })
            .collect();
        (window, merged)
    }
}

impl From<ContactWindows> for StateRecord {
    fn from(state: ContactWindows) -> Self {
        let merged = state.merged.as_deref();
        let service_merged = merged.map_or(&[][..], |m| &m.customer_service[..]);
        let entry_merged = merged.map_or(&[][..], |m| &m.free_entry_point[..]);
        let offer_merged = merged.map_or(&[][..], |m| &m.free_entry_offer[..]);
        Self {
            customer_service: WindowRecord::from_window(&state.service, service_merged),
            free_entry_point: WindowRecord::from_window(&state.entry_point().entry, entry_merged),
            free_entry_offer: WindowRecord::from_window(&state.entry_point().offer, offer_merged),
            inbound_floor_at: known(state.inbound_floor),
            referral_at: known(state.entry_point().referral_at),
            earliest_business_send_at: known(state.earliest_send_at),
            latest_business_send_at: known(state.latest_send_at),
            last_inbound_message_id: state
                .last_inbound_message_id
                .as_ref()
                .map(StoredMessageId::to_message_id),
        }
    }
}

impl From<StateRecord> for ContactWindows {
    fn from(record: StateRecord) -> Self {
        let (service, service_merged) = record
            .customer_service
            .map(WindowRecord::into_window)
            .unwrap_or_default();
        let (entry, entry_merged) = record
            .free_entry_point
            .map(WindowRecord::into_window)
            .unwrap_or_default();
        let (offer, offer_merged) = record
            .free_entry_offer
            .map(WindowRecord::into_window)
            .unwrap_or_default();
        let merged = Merged {
            customer_service: service_merged,
            free_entry_point: entry_merged,
            free_entry_offer: offer_merged,
        };
        let entry_point = EntryPoint {
            entry,
            offer,
            referral_at: record.referral_at.unwrap_or(NEVER),
        };
        ContactWindows {
            service,
            entry_point: (entry_point != EntryPoint::NONE).then(|| Box::new(entry_point)),
            inbound_floor: record.inbound_floor_at.unwrap_or(NEVER),
            earliest_send_at: record.earliest_business_send_at.unwrap_or(NEVER),
            latest_send_at: record.latest_business_send_at.unwrap_or(NEVER),
            last_inbound_message_id: record
                .last_inbound_message_id
                .as_ref()
                .map(StoredMessageId::new),
            merged: (!merged.is_empty()).then(|| Box::new(merged)),
        }
    }
}

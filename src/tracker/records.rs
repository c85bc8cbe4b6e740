//! The records the tracker writes: window events, the per-contact state record (its changelog
//! and downstream's current view), and the routing records it sends itself.

use serde::{Deserialize, Serialize};

use crate::cloudevent::CloudEvent;
use crate::domain::{ContactKey, CustomerId, MessageId, UnixSeconds, UserId, WaId};
use crate::window::{
    CloseReason, ContactWindows, EventType, Marketing, MarketingPreference, PreferenceSource,
    WindowEvent, WindowKind, WindowView,
};

pub const TRACKER_SOURCE: &str = "/windowkeeper/tracker";
pub const TYPE_STATE: &str = "whatsapp.window.state";
pub const TYPE_MARKETING_CHANGED: &str = "whatsapp.contact.marketing_preference_changed";

/// The ids a contact key stands for.
pub struct KeyParts<'a> {
    pub phone_number_id: &'a str,
    pub user_id: Option<UserId>,
    pub wa_id: Option<WaId>,
}

/// The ids a key names: the BSUID's key carries the phone number the contact was last seen
/// with (`known_wa_id`), a phone number's key only that number.
pub fn key_parts<'a>(key: &'a ContactKey, known_wa_id: Option<&WaId>) -> KeyParts<'a> {
    match key.split() {
        Some((pnid, CustomerId::User(user_id))) => KeyParts {
            phone_number_id: pnid,
            user_id: Some(user_id),
            wa_id: known_wa_id.cloned(),
        },
        Some((pnid, CustomerId::Phone(wa_id))) => KeyParts {
            phone_number_id: pnid,
            user_id: None,
            wa_id: Some(wa_id),
        },
        None => KeyParts {
            phone_number_id: key.as_str().split(':').next().unwrap_or_default(),
            user_id: None,
            wa_id: None,
        },
    }
}

#[derive(Serialize)]
struct WindowEventData<'a> {
    phone_number_id: &'a str,
    user_id: Option<&'a UserId>,
    wa_id: Option<&'a WaId>,
    window: WindowKind,
    #[serde(serialize_with = "rfc3339")]
    opened_at: UnixSeconds,
    #[serde(serialize_with = "rfc3339")]
    expires_at: UnixSeconds,
    last_inbound_message_id: Option<&'a MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lead_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    close_reason: Option<CloseReason>,
}

fn rfc3339<S: serde::Serializer>(at: &UnixSeconds, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339())
}

/// The instant an event stands for: when it opened, when the warning was due, when it closed.
pub fn event_time(event: &WindowEvent, now: UnixSeconds) -> UnixSeconds {
    match event.event {
        EventType::Opened => event.opened_at,
        EventType::Closing { lead_secs } => event.expires_at.minus(lead_secs),
        EventType::Closed {
            reason: CloseReason::Expired | CloseReason::Converted,
        } => event.expires_at,
        EventType::Closed {
            reason: CloseReason::MetaReported,
        } => now,
    }
}

/// Deterministic: a replay of the same inputs re-emits the same id.
pub fn window_event_id(key: &ContactKey, event: &WindowEvent) -> String {
    format!("{}:{}", key.as_str(), event.id_suffix())
}

pub fn window_event(
    key: &ContactKey,
    wa_id: Option<&WaId>,
    event: &WindowEvent,
    now: UnixSeconds,
) -> Vec<u8> {
    let parts = key_parts(key, wa_id);
    let data = WindowEventData {
        phone_number_id: parts.phone_number_id,
        user_id: parts.user_id.as_ref(),
        wa_id: parts.wa_id.as_ref(),
        window: event.window,
        opened_at: event.opened_at,
        expires_at: event.expires_at,
        last_inbound_message_id: event.last_inbound_message_id.as_ref(),
        lead_seconds: match event.event {
            EventType::Closing { lead_secs } => Some(lead_secs),
            _ => None,
        },
        close_reason: match event.event {
            EventType::Closed { reason } => Some(reason),
            _ => None,
        },
    };
    let id = window_event_id(key, event);
    let envelope = CloudEvent::new(
        id.as_str(),
        TRACKER_SOURCE,
        event.type_name(),
        key.as_str(),
        Some(event_time(event, now)),
        data,
    );
    serialize(&envelope)
}

#[derive(Serialize)]
struct MarketingEventData<'a> {
    phone_number_id: &'a str,
    user_id: Option<&'a UserId>,
    wa_id: Option<&'a WaId>,
    #[serde(flatten)]
    preference: MarketingOut,
}

/// The preference as downstream reads it: `since` in RFC 3339 like every other instant.
#[derive(Serialize)]
struct MarketingOut {
    marketing: Marketing,
    #[serde(serialize_with = "rfc3339")]
    since: UnixSeconds,
    source: PreferenceSource,
}

impl From<MarketingPreference> for MarketingOut {
    fn from(p: MarketingPreference) -> Self {
        Self {
            marketing: p.marketing,
            since: p.since,
            source: p.source,
        }
    }
}

/// Deterministic: the contact, the deciding timestamp and the new value.
pub fn marketing_event_id(key: &ContactKey, preference: &MarketingPreference) -> String {
    format!(
        "{}:marketing:{}:{}",
        key.as_str(),
        preference.since.0,
        preference.marketing.as_str()
    )
}

pub fn marketing_event(
    key: &ContactKey,
    wa_id: Option<&WaId>,
    preference: &MarketingPreference,
) -> Vec<u8> {
    let parts = key_parts(key, wa_id);
    let data = MarketingEventData {
        phone_number_id: parts.phone_number_id,
        user_id: parts.user_id.as_ref(),
        wa_id: parts.wa_id.as_ref(),
        preference: (*preference).into(),
    };
    let id = marketing_event_id(key, preference);
    serialize(&CloudEvent::new(
        id.as_str(),
        TRACKER_SOURCE,
        TYPE_MARKETING_CHANGED,
        key.as_str(),
        Some(preference.since),
        data,
    ))
}

/// One contact as the tracker keeps it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Contact {
    pub windows: ContactWindows,
    /// The marketing preference; `None` until one is stated (opted in). Kept when the windows
    /// are forgotten.
    /// Boxed: rare, and every contact would otherwise pay for its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketing: Option<Box<MarketingPreference>>,
    /// The phone-number id seen with this BSUID, so a status naming only the phone number
    /// can be routed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<WaId>,
    /// Inputs for this key belong to another key until `until`. Boxed: rare, and every
    /// contact would otherwise pay for its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Box<Alias>>,
    /// The deadline this contact has an entry for in the timer heap; not part of its state.
    #[serde(skip)]
    pub armed: Armed,
}

/// A contact's armed deadline, if any: an `Option<UnixSeconds>` in 8 bytes instead of 16,
/// there being one per contact. No deadline is ever the earliest representable instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Armed(UnixSeconds);

impl Armed {
    pub const NONE: Self = Self(UnixSeconds(i64::MIN));

    pub fn at(deadline: UnixSeconds) -> Self {
        debug_assert!(deadline != Self::NONE.0, "not a deadline");
        Self(deadline)
    }

    pub fn get(self) -> Option<UnixSeconds> {
        (self != Self::NONE).then_some(self.0)
    }
}

impl Default for Armed {
    fn default() -> Self {
        Self::NONE
    }
}

impl PartialEq for Contact {
    /// Equal state; where its timer stands is bookkeeping, not state.
    fn eq(&self, other: &Self) -> bool {
        self.windows == other.windows
            && self.marketing == other.marketing
            && self.wa_id == other.wa_id
            && self.alias == other.alias
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    pub target: ContactKey,
    pub until: UnixSeconds,
    /// Set when a user id change made this alias: state moved here by an older change
    /// follows it on to the newer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<UnixSeconds>,
}

impl Contact {
    pub fn marketing(&self) -> Option<&MarketingPreference> {
        self.marketing.as_deref()
    }

    /// Applies a statement of the preference (see [`MarketingPreference::apply`]).
    pub fn apply_marketing(&mut self, statement: MarketingPreference) {
        let mut current = self.marketing().copied();
        MarketingPreference::apply(&mut current, statement);
        if current != self.marketing().copied() {
            self.marketing = current.map(Box::new);
        }
    }

    pub fn alias_target(&self, now: UnixSeconds) -> Option<&ContactKey> {
        self.alias
            .as_ref()
            .filter(|a| a.until > now)
            .map(|a| &a.target)
    }
}

/// A window as downstream services read it from the state topic.
#[derive(Serialize)]
struct WindowStateOut {
    open: bool,
    #[serde(serialize_with = "rfc3339")]
    opened_at: UnixSeconds,
    /// The end while open; once closed, when it closed.
    #[serde(serialize_with = "rfc3339")]
    expires_at: UnixSeconds,
    last_inbound_message_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    close_reason: Option<CloseReason>,
}

impl From<WindowView> for WindowStateOut {
    fn from(view: WindowView) -> Self {
        Self {
            open: view.open,
            opened_at: view.opened_at,
            expires_at: view.expires_at,
            last_inbound_message_id: view.last_inbound_message_id,
            close_reason: view.close_reason,
        }
    }
}

#[derive(Serialize)]
struct StateViewOut<'a> {
    phone_number_id: &'a str,
    user_id: Option<&'a UserId>,
    wa_id: Option<&'a WaId>,
    customer_service: Option<WindowStateOut>,
    free_entry_point: Option<WindowStateOut>,
    free_entry_offer: Option<WindowStateOut>,
    marketing: Option<MarketingOut>,
    #[serde(serialize_with = "rfc3339")]
    updated_at: UnixSeconds,
    /// Everything the tracker needs to carry on after a restart.
    tracker: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
struct StateViewIn {
    tracker: Contact,
}

pub fn state_record(key: &ContactKey, contact: &Contact, now: UnixSeconds) -> Vec<u8> {
    let parts = key_parts(key, contact.wa_id.as_ref());
    // Serialized once: it is both the record's restore data and what its id is derived from.
    let tracked = serde_json::value::to_raw_value(contact).unwrap_or_default();
    let data = StateViewOut {
        phone_number_id: parts.phone_number_id,
        user_id: parts.user_id.as_ref(),
        wa_id: parts.wa_id.as_ref(),
        customer_service: contact.windows.customer_service().map(Into::into),
        free_entry_point: contact.windows.free_entry_point().map(Into::into),
        free_entry_offer: contact.windows.free_entry_offer().map(Into::into),
        marketing: contact.marketing().copied().map(Into::into),
        updated_at: now,
        tracker: &tracked,
    };
    // Distinct states written in the same second get distinct ids; the same state, the same id.
    let digest = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(tracked.get().as_bytes())[..8])
    };
    let id = format!("{}:state:{}:{digest}", key.as_str(), now.0);
    serialize(&CloudEvent::new(
        id.as_str(),
        TRACKER_SOURCE,
        TYPE_STATE,
        key.as_str(),
        Some(now),
        data,
    ))
}

/// Reads back a state record; `None` for anything that is not one (it is skipped).
pub fn read_state_record(value: &[u8]) -> Option<Contact> {
    tracker_field(value).or_else(|| {
        CloudEvent::<StateViewIn>::from_slice(value)
            .ok()
            .map(|e| e.data.tracker)
    })
}

/// The restore data of a record as [`state_record`] writes it, read without reading the rest:
/// `tracker` is the last field of `data`, itself the last field, so the record ends
/// `"tracker":{…}}}`. Three quarters of a record is the view for downstream readers, and
/// skipping it nearly halves what a restore spends decoding. `None` for any other shape,
/// which [`read_state_record`] then reads whole. In JSON that bare key can only be a key: a
/// quote inside a string is escaped. What precedes it is not checked: only this program
/// writes the state topic, and Kafka checksums its records.
fn tracker_field(value: &[u8]) -> Option<Contact> {
    const ENVELOPE: &[u8] = br#"{"specversion":"1.0","#;
    const KEY: &[u8] = br#""tracker":"#;
    if !value.starts_with(ENVELOPE) {
        return None;
    }
    let at = value.windows(KEY.len()).rposition(|w| w == KEY)?;
    let rest = &value[at + KEY.len()..];
    let mut contacts = serde_json::Deserializer::from_slice(rest).into_iter::<Contact>();
    let contact = contacts.next()?.ok()?;
    let tail = &rest[contacts.byte_offset()..];
    let closes_data_and_envelope = tail.iter().filter(|b| !b.is_ascii_whitespace()).eq(b"}}");
    closes_data_and_envelope.then_some(contact)
}

/// A record the tracker routes to another key through the inbound topic.
pub fn routing_record<T: Serialize>(
    key: &ContactKey,
    event_type: &str,
    id: &str,
    now: UnixSeconds,
    data: T,
) -> Vec<u8> {
    serialize(&CloudEvent::new(
        id,
        TRACKER_SOURCE,
        event_type,
        key.as_str(),
        Some(now),
        data,
    ))
}

fn serialize<T: Serialize>(event: &CloudEvent<'_, T>) -> Vec<u8> {
    // Room for a whole state record up front, instead of growing the buffer field by field.
    let mut out = Vec::with_capacity(1024);
    // Serializing plain structs of strings and integers into memory cannot fail.
    match event.write_to(&mut out) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageId;
    use crate::window::{Input, Marketing, PreferenceSource, WindowConfig};

    fn full_read(value: &[u8]) -> Option<Contact> {
        CloudEvent::<StateViewIn>::from_slice(value)
            .ok()
            .map(|e| e.data.tracker)
    }

    fn contacts() -> Vec<Contact> {
        let cfg = WindowConfig::new(100, 300, [50], false);
        let mut windows = crate::window::ContactWindows::default();
        let message = Input::CustomerMessage {
            id: MessageId::new("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUJDMDAwMDAwMDAwMDAwMDAxAA=="),
            at: UnixSeconds(1_000),
            referral: true,
        };
        windows.apply(&message, UnixSeconds(1_000), &cfg, &mut Vec::new());
        let full = Contact {
            windows,
            marketing: Some(Box::new(MarketingPreference {
                marketing: Marketing::OptedOut,
                since: UnixSeconds(990),
                source: PreferenceSource::UserPreferences,
            })),
            wa_id: Some(WaId::new("16505551234")),
            alias: Some(Box::new(Alias {
                target: ContactKey::from_raw("1:US.1"),
                until: UnixSeconds(5_000),
                changed_at: Some(UnixSeconds(900)),
            })),
            armed: Armed::NONE,
        };
        vec![Contact::default(), full]
    }

    #[test]
    fn the_restore_data_is_read_from_the_tail_of_a_state_record() {
        let key = ContactKey::from_raw("106540352242922:US.13491208655302741918");
        for contact in contacts() {
            let record = state_record(&key, &contact, UnixSeconds(1_000));
            assert_eq!(
                tracker_field(&record).as_ref(),
                Some(&contact),
                "fast path taken"
            );
            assert_eq!(read_state_record(&record), full_read(&record));
            assert_eq!(read_state_record(&record), Some(contact));
        }
    }

    #[test]
    fn any_other_shape_is_read_whole_or_refused() {
        let key = ContactKey::from_raw("1:US.1");
        let contact = contacts().pop().expect("a contact");
        let record = state_record(&key, &contact, UnixSeconds(1_000));
        let value: serde_json::Value = serde_json::from_slice(&record).expect("JSON");
        // Fields in another order, and pretty-printed: the tail is not `"tracker":{…}}}`.
        let mut reordered = value.clone();
        let tracker = reordered["data"]
            .as_object_mut()
            .and_then(|data| data.remove("tracker"))
            .expect("tracker");
        let data = reordered["data"].as_object_mut().expect("data");
        let rest = std::mem::take(data);
        data.insert("tracker".into(), tracker);
        data.extend(rest);
        for other in [
            serde_json::to_vec(&reordered).expect("serializes"),
            serde_json::to_vec_pretty(&value).expect("serializes"),
        ] {
            assert_eq!(tracker_field(&other), None);
            assert_eq!(read_state_record(&other).as_ref(), Some(&contact));
        }
        // A tail that only looks right: more follows the contact.
        let mut trailing = record.clone();
        trailing.truncate(trailing.len() - 1);
        trailing.extend_from_slice(b",\"more\":1}");
        assert_eq!(tracker_field(&trailing), None);
        assert_eq!(read_state_record(&trailing).as_ref(), Some(&contact));
        assert_eq!(
            read_state_record(b"{\"specversion\":\"1.0\",\"tracker\":1}}"),
            None
        );
    }
}

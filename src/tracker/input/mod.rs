//! What the tracker reads from the inbound topic, decoded into what the window rules need.
//! Decoding is lenient: an item the rules don't care about, or can't read, is `Ignored`, never
//! an error that would stall a partition.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{customer_placed_call, ContactKey, MessageId, UnixSeconds, WaId};
use crate::ingest::normalize::InboundType;
use crate::window::sanity::Implausible;
use crate::window::{
    message_opens_window, ContactWindows, Input, Marketing, MarketingPreference, PreferenceSource,
    WindowConfig,
};

/// Records the tracker itself routes through the inbound topic, to reach the partition that
/// owns another key. Downstream consumers of the inbound topic can ignore them.
pub const TYPE_MOVED: &str = "windowkeeper.contact.moved";
pub const TYPE_ALIAS: &str = "windowkeeper.contact.alias";
pub const TYPE_FORWARDED: &str = "windowkeeper.contact.forwarded";
/// A record a tracker appends to an idle partition whose timers are due: its append time
/// moves the partition's clock, so timers fire at the same place in the log in every run.
pub const TYPE_TICK: &str = "windowkeeper.clock.tick";

/// Error code of a failed send that proves the customer service window is closed.
const RE_ENGAGEMENT_ERROR: i64 = 131_047;
/// Error code of a failed marketing send: the customer stopped marketing messages.
const MARKETING_STOPPED_ERROR: i64 = 131_050;
/// The `user_preferences` category that decides marketing templates.
const MARKETING_CATEGORY: &str = "marketing_messages";
/// A forwarded record that keeps being forwarded is a routing loop; stop it.
pub const MAX_FORWARD_HOPS: u8 = 4;

/// What one inbound item states about its contact, for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// For the window rules.
    Window(Input),
    /// For the marketing preference.
    Marketing(MarketingPreference),
}

impl Statement {
    /// Meta's timestamp of the item.
    pub fn at(&self) -> UnixSeconds {
        match self {
            Self::Window(input) => input.at(),
            Self::Marketing(preference) => preference.since,
        }
    }
}

#[derive(Debug)]
pub enum TrackerInput {
    /// Something for the rules, plus the ids it names.
    Rules {
        input: Statement,
        wa_id: Option<WaId>,
    },
    /// The customer's BSUID changed: move the state from this key to `to`.
    /// `at`: when the change happened (Meta's timestamp), which orders several changes.
    UserIdChanged {
        to: ContactKey,
        wa_id: Option<WaId>,
        at: Option<UnixSeconds>,
    },
    /// State of the same customer under an old key, arriving at its new key.
    Moved(MovedState),
    /// Inputs for this (wa_id) key belong to `target` (the BSUID key).
    Alias { target: ContactKey },
    /// An inbound event re-routed from an aliased key.
    Forwarded { event: Box<Value>, hops: u8 },
    /// Nothing the windows care about.
    Ignored,
    /// An item whose timestamp is not a whole number of seconds: never applied, counted.
    Rejected(Implausible),
    /// One of the tracker's own routing records (this type) that cannot be read: never
    /// dropped quietly, since the state it carries is lost with it.
    Unreadable(&'static str),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MovedState {
    pub from: ContactKey,
    pub windows: ContactWindows,
    #[serde(default)]
    pub wa_id: Option<WaId>,
    /// Set when a user id change caused the move: its time decides which of several
    /// changes is the newest, whatever order they are delivered in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<UnixSeconds>,
    /// The marketing preference travels with the windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketing: Option<MarketingPreference>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AliasData {
    pub target: ContactKey,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedData {
    pub hops: u8,
    pub event: Value,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize, Default)]
struct Data {
    #[serde(default)]
    phone_number_id: Option<String>,
    #[serde(default)]
    display_phone_number: Option<String>,
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    call: Option<Value>,
    #[serde(default)]
    user_id_update: Option<Value>,
    /// The webhook field of a pass-through item, and the item itself.
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    value: Option<Value>,
}

/// Decodes one inbound CloudEvent (already parsed JSON).
pub fn decode(event: Value, cfg: &WindowConfig) -> TrackerInput {
    let Ok(envelope) = serde_json::from_value::<Envelope>(event) else {
        return TrackerInput::Ignored;
    };
    match envelope.event_type.as_str() {
        TYPE_MOVED => serde_json::from_value(envelope.data)
            .map_or(TrackerInput::Unreadable(TYPE_MOVED), TrackerInput::Moved),
        TYPE_ALIAS => serde_json::from_value::<AliasData>(envelope.data)
            .map_or(TrackerInput::Unreadable(TYPE_ALIAS), |a| {
                TrackerInput::Alias { target: a.target }
            }),
        TYPE_FORWARDED => serde_json::from_value::<ForwardedData>(envelope.data).map_or(
            TrackerInput::Unreadable(TYPE_FORWARDED),
            |f| TrackerInput::Forwarded {
                event: Box::new(f.event),
                hops: f.hops,
            },
        ),
        other => match InboundType::parse(other) {
            Some(inbound) => {
                let data: Data = serde_json::from_value(envelope.data).unwrap_or_default();
                decode_inbound(inbound, data, cfg)
            }
            // A type from a newer producer, or another tool's record: not ours to judge.
            None => TrackerInput::Ignored,
        },
    }
}

fn decode_inbound(event_type: InboundType, data: Data, cfg: &WindowConfig) -> TrackerInput {
    let preference = data.field.as_deref() == Some("user_preferences");
    let item = match event_type {
        InboundType::MessageReceived => data.message.as_ref(),
        InboundType::CallReceived => data.call.as_ref(),
        InboundType::StatusUpdated => data.status.as_ref(),
        InboundType::ChangeOther if preference => data
            .value
            .as_ref()
            .filter(|v| v.get("category").and_then(Value::as_str) == Some(MARKETING_CATEGORY)),
        _ => None,
    };
    // Milliseconds, fractions, text: nothing a window could be judged by.
    if item.is_some_and(|item| timestamp(item).is_none()) {
        return TrackerInput::Rejected(Implausible::Unreadable);
    }
    let wa_id = data.wa_id.as_deref().map(WaId::new);
    let rules = |input: Option<Statement>, wa_id: Option<WaId>| match input {
        Some(input) => TrackerInput::Rules { input, wa_id },
        None => TrackerInput::Ignored,
    };
    let window = |input: Option<Input>| input.map(Statement::Window);
    match event_type {
        InboundType::MessageReceived => {
            let Some(message) = data.message else {
                return TrackerInput::Ignored;
            };
            if let Some(new_user_id) = changed_user_id(&message) {
                let at = timestamp(&message);
                return moved_to(data.phone_number_id.as_deref(), new_user_id, wa_id, at);
            }
            rules(window(customer_message(&message, cfg)), wa_id)
        }
        InboundType::CallReceived => rules(
            window(
                data.call
                    .as_ref()
                    .and_then(|call| user_call(call, data.display_phone_number.as_deref())),
            ),
            wa_id,
        ),
        InboundType::StatusUpdated => rules(data.status.as_ref().and_then(business_status), wa_id),
        InboundType::ChangeOther if preference => {
            rules(data.value.as_ref().and_then(marketing_preference), wa_id)
        }
        InboundType::ContactUserIdChanged => {
            let current = data
                .user_id_update
                .as_ref()
                .and_then(|u| u.pointer("/user_id/current"))
                .and_then(Value::as_str);
            match current {
                Some(current) => {
                    let update_wa_id = data
                        .user_id_update
                        .as_ref()
                        .and_then(|u| u.get("wa_id"))
                        .and_then(Value::as_str)
                        .map(WaId::new);
                    let at = data.user_id_update.as_ref().and_then(timestamp);
                    moved_to(
                        data.phone_number_id.as_deref(),
                        current,
                        update_wa_id.or(wa_id),
                        at,
                    )
                }
                None => TrackerInput::Ignored,
            }
        }
        _ => TrackerInput::Ignored,
    }
}

fn moved_to(
    phone_number_id: Option<&str>,
    new_user_id: &str,
    wa_id: Option<WaId>,
    at: Option<UnixSeconds>,
) -> TrackerInput {
    match phone_number_id {
        Some(pnid) => TrackerInput::UserIdChanged {
            to: ContactKey::from_raw(&format!("{pnid}:{new_user_id}")),
            wa_id,
            at,
        },
        None => TrackerInput::Ignored,
    }
}

fn timestamp(item: &Value) -> Option<UnixSeconds> {
    item.get("timestamp").and_then(UnixSeconds::parse_meta)
}

fn item_id(item: &Value) -> Option<MessageId> {
    item.get("id").and_then(Value::as_str).map(MessageId::new)
}

/// `system` messages of type `user_changed_user_id` carry the new BSUID.
fn changed_user_id(message: &Value) -> Option<&str> {
    let system = message.get("system")?;
    (message.get("type").and_then(Value::as_str) == Some("system")
        && system.get("type").and_then(Value::as_str) == Some("user_changed_user_id"))
    .then(|| system.get("user_id").and_then(Value::as_str))
    .flatten()
}

fn customer_message(message: &Value, cfg: &WindowConfig) -> Option<Input> {
    let message_type = message
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if !message_opens_window(message_type, cfg) {
        return None;
    }
    Some(Input::CustomerMessage {
        id: item_id(message)?,
        at: timestamp(message)?,
        referral: message.get("referral").is_some_and(Value::is_object),
    })
}

/// A call the customer placed opens the window, answered or not.
fn user_call(call: &Value, business_number: Option<&str>) -> Option<Input> {
    let text = |field: &str| call.get(field).and_then(Value::as_str);
    let event = text("event").unwrap_or("connect");
    // `terminate` of the same call repeats it; only its start counts.
    if !customer_placed_call(text("direction"), text("from"), business_number)
        || event == "terminate"
    {
        return None;
    }
    Some(Input::CustomerMessage {
        id: item_id(call)?,
        at: timestamp(call)?,
        referral: false,
    })
}

fn business_status(status: &Value) -> Option<Statement> {
    let at = timestamp(status)?;
    match status.get("status").and_then(Value::as_str)? {
        "sent" => {
            let free_entry =
                status.pointer("/pricing/type").and_then(Value::as_str) == Some("free_entry_point");
            let fep_expires_at = free_entry
                .then(|| status.pointer("/conversation/expiration_timestamp"))
                .flatten()
                .and_then(UnixSeconds::parse_meta);
            Some(Statement::Window(Input::BusinessSent {
                id: item_id(status)?,
                at,
                fep_expires_at,
            }))
        }
        "failed" => {
            let errors = status.get("errors").and_then(Value::as_array)?;
            let has = |code: i64| {
                errors
                    .iter()
                    .any(|e| e.get("code").and_then(Value::as_i64) == Some(code))
            };
            if has(RE_ENGAGEMENT_ERROR) {
                Some(Statement::Window(Input::ReEngagementFailed { at }))
            } else if has(MARKETING_STOPPED_ERROR) {
                Some(Statement::Marketing(MarketingPreference {
                    marketing: Marketing::OptedOut,
                    since: at,
                    source: PreferenceSource::Error131050,
                }))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A `user_preferences` item of the marketing category: `stop` or `resume`.
fn marketing_preference(item: &Value) -> Option<Statement> {
    let marketing = match item.get("value").and_then(Value::as_str)? {
        "stop" => Marketing::OptedOut,
        "resume" => Marketing::OptedIn,
        _ => return None,
    };
    Some(Statement::Marketing(MarketingPreference {
        marketing,
        since: timestamp(item)?,
        source: PreferenceSource::UserPreferences,
    }))
}

#[cfg(test)]
mod tests;

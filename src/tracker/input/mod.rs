//! What the tracker reads from the inbound topic, decoded into what the window rules need.
//! Decoding is lenient: an item the rules don't care about, or can't read, is `Ignored`, never
//! an error that would stall a partition.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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
    /// An inbound event re-routed from an aliased key, as it was written.
    Forwarded { event: Box<RawValue>, hops: u8 },
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

/// A re-routed inbound event. The event travels as it was written, so its new owner reads
/// exactly what the receiver wrote.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedData<'a> {
    pub hops: u8,
    #[serde(borrow)]
    pub event: &'a RawValue,
}

/// The envelope, read in one pass over the record: `data` is only delimited here, and read
/// into the type its `type` names.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Data<'a> {
    #[serde(default, borrow)]
    phone_number_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    display_phone_number: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    wa_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Item<'a>>,
    #[serde(default, borrow)]
    status: Option<Item<'a>>,
    #[serde(default, borrow)]
    call: Option<&'a RawValue>,
    #[serde(default, borrow)]
    user_id_update: Option<&'a RawValue>,
    /// The webhook field of a pass-through item, and the item itself.
    #[serde(default, borrow)]
    field: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
}

/// A message or status item: the fields the rules read, each kept as written so that a field
/// of an unexpected type only goes unread, as with any JSON value, and never fails the item.
#[derive(Deserialize, Default)]
struct Item<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(default, rename = "type", borrow)]
    item_type: Option<&'a RawValue>,
    #[serde(default, borrow)]
    referral: Option<&'a RawValue>,
    #[serde(default, borrow)]
    system: Option<&'a RawValue>,
    #[serde(default, borrow)]
    status: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pricing: Option<&'a RawValue>,
    #[serde(default, borrow)]
    conversation: Option<&'a RawValue>,
    #[serde(default, borrow)]
    errors: Option<&'a RawValue>,
}

/// The record's value is not JSON.
#[derive(Debug, PartialEq, Eq)]
pub struct NotJson;

/// Decodes one inbound record's value, a CloudEvent, in one pass: no tree of the whole record
/// is built, only the fields the rules read.
pub fn decode<'a>(value: &'a [u8], cfg: &WindowConfig) -> Result<TrackerInput, NotJson> {
    let envelope = match serde_json::from_slice::<Envelope<'a>>(value) {
        Ok(envelope) => envelope,
        // JSON of another shape is not ours to judge; only what is not JSON at all is unusable.
        Err(_) => return check_json(value).map(|()| TrackerInput::Ignored),
    };
    let data = envelope.data.map_or("null", RawValue::get);
    Ok(match envelope.event_type.as_ref() {
        TYPE_MOVED => serde_json::from_str(data)
            .map_or(TrackerInput::Unreadable(TYPE_MOVED), TrackerInput::Moved),
        TYPE_ALIAS => serde_json::from_str::<AliasData>(data)
            .map_or(TrackerInput::Unreadable(TYPE_ALIAS), |a| {
                TrackerInput::Alias { target: a.target }
            }),
        TYPE_FORWARDED => serde_json::from_str::<ForwardedData>(data).map_or(
            TrackerInput::Unreadable(TYPE_FORWARDED),
            |f| TrackerInput::Forwarded {
                event: f.event.to_owned(),
                hops: f.hops,
            },
        ),
        other => match InboundType::parse(other) {
            Some(inbound) => {
                let data: Data = serde_json::from_str(data).unwrap_or_default();
                decode_inbound(inbound, data, cfg)
            }
            // A type from a newer producer, or another tool's record: not ours to judge.
            None => TrackerInput::Ignored,
        },
    })
}

/// A record without a key is not applied; only a value that is not JSON is worth reporting.
pub(super) fn check_json(value: &[u8]) -> Result<(), NotJson> {
    serde_json::from_slice::<IgnoredAny>(value)
        .map(|_| ())
        .map_err(|_| NotJson)
}

/// A raw field read as `T`: a JSON string as text, a whole item as a tree (only for the rare
/// ones: calls, user id updates, preferences). A field of another type reads as absent.
fn read<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

fn tree(raw: Option<&RawValue>) -> Option<Value> {
    read(raw)
}

fn text<'a>(raw: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    read(raw)
}

/// Meta's timestamp field, as [`UnixSeconds::parse_meta`] reads it, without building a tree
/// for the usual string.
fn stamp(raw: Option<&RawValue>) -> Option<UnixSeconds> {
    match text(raw) {
        Some(text) => UnixSeconds::parse_meta_text(&text),
        None => tree(raw).and_then(|v| UnixSeconds::parse_meta(&v)),
    }
}

fn decode_inbound(event_type: InboundType, data: Data, cfg: &WindowConfig) -> TrackerInput {
    let preference = data.field.as_deref() == Some("user_preferences");
    let call = tree(data.call);
    let preference_item = match event_type {
        InboundType::ChangeOther if preference => tree(data.value)
            .filter(|v| v.get("category").and_then(Value::as_str) == Some(MARKETING_CATEGORY)),
        _ => None,
    };
    // Milliseconds, fractions, text: nothing a window could be judged by.
    let unreadable_time = match event_type {
        InboundType::MessageReceived => data.message.as_ref().map(|m| stamp(m.timestamp)),
        InboundType::StatusUpdated => data.status.as_ref().map(|s| stamp(s.timestamp)),
        InboundType::CallReceived => call.as_ref().map(timestamp),
        InboundType::ChangeOther => preference_item.as_ref().map(timestamp),
        _ => None,
    };
    if unreadable_time.is_some_and(|at| at.is_none()) {
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
                let at = stamp(message.timestamp);
                return moved_to(data.phone_number_id.as_deref(), &new_user_id, wa_id, at);
            }
            rules(window(customer_message(&message, cfg)), wa_id)
        }
        InboundType::CallReceived => rules(
            window(
                call.as_ref()
                    .and_then(|call| user_call(call, data.display_phone_number.as_deref())),
            ),
            wa_id,
        ),
        InboundType::StatusUpdated => rules(data.status.as_ref().and_then(business_status), wa_id),
        InboundType::ChangeOther if preference => rules(
            preference_item.as_ref().and_then(marketing_preference),
            wa_id,
        ),
        InboundType::ContactUserIdChanged => {
            let update = tree(data.user_id_update);
            let current = update
                .as_ref()
                .and_then(|u| u.pointer("/user_id/current"))
                .and_then(Value::as_str);
            match current {
                Some(current) => {
                    let update_wa_id = update
                        .as_ref()
                        .and_then(|u| u.get("wa_id"))
                        .and_then(Value::as_str)
                        .map(WaId::new);
                    let at = update.as_ref().and_then(timestamp);
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
fn changed_user_id<'a>(message: &Item<'a>) -> Option<Cow<'a, str>> {
    #[derive(Deserialize)]
    struct System<'a> {
        #[serde(default, rename = "type", borrow)]
        system_type: Option<&'a RawValue>,
        #[serde(default, borrow)]
        user_id: Option<&'a RawValue>,
    }
    if text(message.item_type).as_deref() != Some("system") {
        return None;
    }
    let system: System<'a> = serde_json::from_str(message.system?.get()).ok()?;
    (text(system.system_type).as_deref() == Some("user_changed_user_id"))
        .then(|| text(system.user_id))
        .flatten()
}

fn customer_message(message: &Item<'_>, cfg: &WindowConfig) -> Option<Input> {
    let message_type = text(message.item_type);
    if !message_opens_window(message_type.as_deref().unwrap_or("unknown"), cfg) {
        return None;
    }
    Some(Input::CustomerMessage {
        id: text(message.id).map(MessageId::new)?,
        at: stamp(message.timestamp)?,
        referral: message.referral.is_some_and(|r| r.get().starts_with('{')),
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

fn business_status(status: &Item<'_>) -> Option<Statement> {
    let at = stamp(status.timestamp)?;
    match text(status.status)?.as_ref() {
        "sent" => {
            let free_entry = tree(status.pricing)
                .is_some_and(|p| p.get("type").and_then(Value::as_str) == Some("free_entry_point"));
            let fep_expires_at = free_entry
                .then(|| tree(status.conversation))
                .flatten()
                .and_then(|c| {
                    c.get("expiration_timestamp")
                        .and_then(UnixSeconds::parse_meta)
                });
            Some(Statement::Window(Input::BusinessSent {
                id: text(status.id).map(MessageId::new)?,
                at,
                fep_expires_at,
            }))
        }
        "failed" => {
            let errors = tree(status.errors)?;
            let errors = errors.as_array()?;
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

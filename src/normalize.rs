//! Meta webhook body -> one CloudEvent per item.
//!
//! No `serde_json::Value` tree is built. A first pass reads body, entries and changes in one
//! go and keeps each change's `value` as borrowed raw text ([`RawValue`]); a second pass reads
//! a modeled value once, keeping each item as raw text; then the few fields that decide key,
//! id and time are read from each item, and the item is copied into its event byte for byte,
//! exactly as Meta sent it (escapes, number spelling and key order included).
//!
//! Nothing is dropped and nothing inside the body can fail the call: a level that has a key
//! it does not know, a duplicated key, or a known key of the wrong type is passed through whole
//! as one `whatsapp.change.other` (`data.part` says which level), in addition to the events for
//! whatever inside it could be understood; an item whose key, id or time fields have the wrong
//! type becomes a `whatsapp.change.other` carrying that item. Only a body that is not JSON, not
//! an object, or not `"object": "whatsapp_business_account"` is refused ([`NormalizeError`]);
//! an object key of the body, an entry or a change that is not valid text (a lone surrogate
//! escape) counts as not JSON.

use std::borrow::Cow;
use std::fmt;
use std::io;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cloudevent::{waba_source, CloudEvent};
use crate::domain::{ContactKey, CustomerId, PhoneNumberId, UnixSeconds, UserId, WaId};
use crate::signature::VerifiedBody;

/// The only `object` this service accepts.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// The CloudEvent `type` of an inbound event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InboundType {
    MessageReceived,
    StatusUpdated,
    CallReceived,
    ContactUserIdChanged,
    ChangeOther,
}

impl InboundType {
    pub const ALL: [Self; 5] = [
        Self::MessageReceived,
        Self::StatusUpdated,
        Self::CallReceived,
        Self::ContactUserIdChanged,
        Self::ChangeOther,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageReceived => "whatsapp.message.received",
            Self::StatusUpdated => "whatsapp.status.updated",
            Self::CallReceived => "whatsapp.call.received",
            Self::ContactUserIdChanged => "whatsapp.contact.user_id_changed",
            Self::ChangeOther => "whatsapp.change.other",
        }
    }

    pub fn parse(type_name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == type_name)
    }
}

impl fmt::Display for InboundType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record for the inbound topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    /// Kafka key: `<phone_number_id>:<customer>` or `waba:<waba id>`.
    pub key: ContactKey,
    pub event_type: InboundType,
    /// CloudEvent id: deterministic, so a retried webhook gives the same ids.
    pub id: String,
    /// The serialized CloudEvent (structured JSON mode).
    pub payload: Vec<u8>,
}

/// Why a verified body was refused as a whole. Everything else inside a body is passed on.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("body is not JSON")]
    NotJson,
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("body's \"object\" is not \"whatsapp_business_account\"")]
    WrongObject,
    /// Cannot happen with the types written here (strings and raw JSON); kept typed rather than
    /// panicking or dropping the body.
    #[error("could not encode a CloudEvent: {0}")]
    Encode(#[source] serde_json::Error),
}

impl NormalizeError {
    /// Machine-friendly reason, for the dead-letter record's header.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson => "not_json",
            Self::NotAnObject => "not_an_object",
            Self::WrongObject => "wrong_object",
            Self::Encode(_) => "encode_failed",
        }
    }
}

/// Turns a verified webhook body into one event per item (see the module docs for the rules).
pub fn normalize(body: &VerifiedBody) -> Result<Vec<InboundEvent>, NormalizeError> {
    // JSON is UTF-8; checking once up front lets every level below borrow `&str`.
    let text = std::str::from_utf8(body.as_bytes()).map_err(|_| NormalizeError::NotJson)?;

    let mut de = serde_json::Deserializer::from_str(text);
    let parts = match BodySeed
        .deserialize(&mut de)
        .and_then(|p| de.end().map(|()| p))
    {
        Ok(parts) => parts,
        Err(_) => return Err(classify_refused(text)),
    };
    let is_whatsapp = parts
        .object
        .and_then(|raw| parse_text(raw).ok())
        .is_some_and(|t| matches!(t, Text::Str(s) if s == WHATSAPP_OBJECT));
    if !is_whatsapp {
        return Err(NormalizeError::WrongObject);
    }

    let mut out = Emitter {
        text,
        events: Vec::new(),
        error: None,
    };
    // Meta always sends `entry`; a body without one still goes on, whole.
    if parts.stray || parts.entries.is_none() {
        out.pass_body();
    }
    for (index, entry) in parts.entries.into_iter().flatten().enumerate() {
        out.entry(index, entry);
    }
    match out.error {
        Some(e) => Err(NormalizeError::Encode(e)),
        None => Ok(out.events),
    }
}

/// Tells `not_json` from `not_an_object` for a body whose top level could not be walked.
fn classify_refused(text: &str) -> NormalizeError {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) | Err(_) => NormalizeError::NotJson,
        Ok(_) => NormalizeError::NotAnObject,
    }
}

/// Which level a pass-through carries, written as `data.part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Body,
    Entry,
    Change,
    Value,
    Item,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::Entry => "entry",
            Self::Change => "change",
            Self::Value => "value",
            Self::Item => "item",
        }
    }
}

/// What the event's surroundings say: the entry's WABA, the change's field and metadata.
#[derive(Clone, Copy)]
struct Scope<'s> {
    waba_id: &'s str,
    source: &'s str,
    entry_time: Option<UnixSeconds>,
    field: Option<&'s str>,
    phone_number_id: Option<&'s str>,
    display_phone_number: Option<&'s str>,
}

impl<'s> Scope<'s> {
    fn new(waba_id: &'s str, source: &'s str, entry_time: Option<UnixSeconds>) -> Self {
        Self {
            waba_id,
            source,
            entry_time,
            field: None,
            phone_number_id: None,
            display_phone_number: None,
        }
    }

    fn with_field(self, field: &'s str) -> Self {
        Self {
            field: Some(field),
            ..self
        }
    }
}

/// The customer an item is about.
#[derive(Clone, Copy, Default)]
struct Who<'s> {
    user_id: Option<&'s str>,
    wa_id: Option<&'s str>,
    profile_name: Option<&'s str>,
}

/// One event about to be written.
struct Draft<'s> {
    event_type: InboundType,
    /// `None`: derive it from a hash of what is passed through.
    id: Option<String>,
    who: Who<'s>,
    time: Option<UnixSeconds>,
    /// Name of the `data` member carrying `item`.
    item_key: &'static str,
    part: Option<Part>,
    item: &'s RawValue,
}

/// What kind of item a modeled array holds.
#[derive(Clone, Copy)]
enum Kind {
    Message,
    Status,
    Call,
    UserIdUpdate,
    Echo,
    Preference,
}

/// The item arrays of each modeled field, by the key they have in `value`.
fn modeled_arrays(field: &str) -> Option<&'static [(&'static str, Kind)]> {
    Some(match field {
        "messages" => &[("messages", Kind::Message), ("statuses", Kind::Status)],
        "calls" => &[("calls", Kind::Call)],
        "user_id_update" => &[("user_id_update", Kind::UserIdUpdate)],
        "smb_message_echoes" => &[("message_echoes", Kind::Echo)],
        // Opt-outs are about one customer: keyed to that contact, item by item.
        "user_preferences" => &[("user_preferences", Kind::Preference)],
        _ => return None,
    })
}

/// Most item arrays a modeled field has (`messages` has two).
const MAX_ARRAYS: usize = 2;

struct Emitter<'t> {
    /// The whole body, to find a level again when it has to be passed on whole.
    text: &'t str,
    events: Vec<InboundEvent>,
    error: Option<serde_json::Error>,
}

impl<'t> Emitter<'t> {
    fn pass_body(&mut self) {
        // `text` was just read as JSON, so this does not fail.
        if let Ok(whole) = serde_json::from_str::<&RawValue>(self.text) {
            let source = waba_source("");
            self.pass_through(&Scope::new("", &source, None), Part::Body, whole);
        }
    }

    /// Passes `entry[index]`, or `entry[index].changes[change]`, on whole. The first pass kept
    /// no raw text for these levels (it would have meant reading them twice); they are found
    /// again here, which only malformed bodies pay for.
    fn pass_level(&mut self, scope: &Scope<'_>, index: usize, change: Option<usize>) {
        let text = self.text;
        let found = locate_entry(text, index).and_then(|entry| match change {
            None => Some(entry),
            Some(j) => locate_change(entry, j),
        });
        match found {
            Some(raw) => {
                let part = if change.is_some() {
                    Part::Change
                } else {
                    Part::Entry
                };
                self.pass_through(scope, part, raw);
            }
            // Not reachable for text the first pass read; if it were, the body goes whole.
            None => self.pass_body(),
        }
    }

    fn entry(&mut self, index: usize, entry: Element<EntryParts<'t>>) {
        let Element::Object(entry) = entry else {
            let source = waba_source("");
            self.pass_level(&Scope::new("", &source, None), index, None);
            return;
        };
        let mut stray = entry.stray;
        let waba_id = match entry.id.map(parse_text) {
            Some(Ok(Text::Str(s))) => s,
            None => Cow::Borrowed(""),
            Some(_) => {
                stray = true;
                Cow::Borrowed("")
            }
        };
        let entry_time = match entry.time.map(parse_text) {
            Some(Ok(t)) => match t.stamp() {
                Ok(stamp) => stamp.and_then(rfc3339_instant),
                Err(Bad) => {
                    stray = true;
                    None
                }
            },
            Some(Err(_)) => {
                stray = true;
                None
            }
            None => None,
        };
        // An entry without `changes` is passed on whole too: nothing Meta sends is lost.
        stray |= entry.changes.is_none();
        let source = waba_source(&waba_id);
        let scope = Scope::new(&waba_id, &source, entry_time);
        if stray {
            self.pass_level(&scope, index, None);
        }
        for (j, change) in entry.changes.into_iter().flatten().enumerate() {
            self.change(scope, index, j, change);
        }
    }

    fn change(
        &mut self,
        scope: Scope<'_>,
        index: usize,
        j: usize,
        change: Element<ChangeParts<'t>>,
    ) {
        let Element::Object(change) = change else {
            self.pass_level(&scope, index, Some(j));
            return;
        };
        let field = match change.field.map(parse_text) {
            Some(Ok(Text::Str(s))) => s,
            // Without a field name nothing inside can be modeled: the change goes on whole.
            _ => {
                self.pass_level(&scope, index, Some(j));
                return;
            }
        };
        let scope = scope.with_field(&field);
        let Some(value) = change.value else {
            self.pass_level(&scope, index, Some(j));
            return;
        };
        if change.stray {
            self.pass_level(&scope, index, Some(j));
        }
        match modeled_arrays(&field) {
            Some(arrays) => self.modeled_value(scope, arrays, value),
            None => self.unmodeled_value(scope, value),
        }
    }

    /// A field this service does not model: one event with the whole value.
    fn unmodeled_value(&mut self, scope: Scope<'_>, value: &RawValue) {
        // Only to fill `phone_number_id` in `data` when the value happens to name one.
        let mut metadata = None;
        let _ = for_each_member(value.get(), false, |key, member| {
            if &*key == "metadata" && metadata.is_none() {
                metadata = Some(member);
            }
        });
        let metadata = metadata.and_then(parse_object::<MetadataPeek<'_>>);
        // A fresh binding: the scope now also borrows from this value.
        let mut scope = Scope { ..scope };
        if let Some(m) = &metadata {
            scope.phone_number_id = m.phone_number_id.string().ok().flatten();
            scope.display_phone_number = m.display_phone_number.string().ok().flatten();
        }
        self.pass_through(&scope, Part::Value, value);
    }

    fn modeled_value(
        &mut self,
        scope: Scope<'_>,
        arrays: &[(&'static str, Kind)],
        value: &RawValue,
    ) {
        let mut de = serde_json::Deserializer::from_str(value.get());
        let Ok(parts) = (ValueSeed { arrays }).deserialize(&mut de) else {
            self.pass_through(&scope, Part::Value, value);
            return;
        };
        let ValueParts {
            metadata,
            contacts,
            lists,
            mut stray,
        } = parts;

        let metadata = match metadata.map(parse_object::<MetadataPeek<'_>>) {
            Some(Some(m)) => Some(m),
            Some(None) => {
                stray = true;
                None
            }
            None => None,
        };
        let mut scope = Scope { ..scope };
        if let Some(m) = &metadata {
            match (m.phone_number_id.string(), m.display_phone_number.string()) {
                (Ok(pnid), Ok(display)) => {
                    scope.phone_number_id = pnid;
                    scope.display_phone_number = display;
                }
                _ => stray = true,
            }
        }

        let mut known = Vec::new();
        if let Some(raw) = contacts {
            match elements(raw) {
                Some(list) => {
                    known.reserve(list.len());
                    for c in list {
                        match parse_object::<ContactPeek<'_>>(c)
                            .ok_or(Bad)
                            .and_then(Contact::from_peek)
                        {
                            Ok(contact) => known.push(contact),
                            Err(Bad) => stray = true,
                        }
                    }
                }
                None => stray = true,
            }
        }

        for (list, (_, kind)) in lists.into_iter().zip(arrays) {
            let Some(list) = list else { continue };
            let Some(items) = list else {
                stray = true;
                continue;
            };
            for (index, item) in items.into_iter().enumerate() {
                self.item(&scope, &known, *kind, index, item);
            }
        }

        if stray {
            self.pass_through(&scope, Part::Value, value);
        }
    }

    fn item(
        &mut self,
        scope: &Scope<'_>,
        contacts: &[Contact<'_>],
        kind: Kind,
        index: usize,
        raw: &RawValue,
    ) {
        let cx = ItemCx {
            scope,
            contacts,
            index,
        };
        match kind {
            Kind::Message => self.peeked::<MessagePeek<'_>>(cx, raw),
            Kind::Status => self.peeked::<StatusPeek<'_>>(cx, raw),
            Kind::Call => self.peeked::<CallPeek<'_>>(cx, raw),
            Kind::UserIdUpdate => self.peeked::<UserIdUpdatePeek<'_>>(cx, raw),
            Kind::Echo => self.peeked::<EchoPeek<'_>>(cx, raw),
            Kind::Preference => self.peeked::<PreferencePeek<'_>>(cx, raw),
        }
    }

    /// Reads the fields `P` needs from an item and emits its event, or passes the item on
    /// when it is not an object or a field has the wrong type.
    fn peeked<'r, P: Peek<'r>>(&mut self, cx: ItemCx<'_, '_>, raw: &'r RawValue) {
        let peek = parse_object::<P>(raw);
        match peek.as_ref().ok_or(Bad).and_then(|p| p.draft(&cx, raw)) {
            Ok(draft) => self.emit(cx.scope, draft),
            Err(Bad) => self.pass_through(cx.scope, Part::Item, raw),
        }
    }

    /// A `whatsapp.change.other` carrying `raw` whole under `data.value`.
    fn pass_through(&mut self, scope: &Scope<'_>, part: Part, raw: &RawValue) {
        self.emit(
            scope,
            Draft {
                event_type: InboundType::ChangeOther,
                id: None,
                who: Who::default(),
                time: scope.entry_time,
                item_key: "value",
                part: Some(part),
                item: raw,
            },
        );
    }

    fn emit(&mut self, scope: &Scope<'_>, draft: Draft<'_>) {
        let key = match (
            scope.phone_number_id,
            CustomerId::pick(
                draft.who.user_id.map(UserId::new),
                draft.who.wa_id.map(WaId::new),
            ),
        ) {
            (Some(pnid), Some(customer)) => ContactKey::new(&PhoneNumberId::new(pnid), &customer),
            _ => ContactKey::for_account(scope.waba_id),
        };
        let id = match draft.id {
            Some(id) => id,
            None => hashed_id(scope, draft.part, draft.item_key, draft.item),
        };
        let data = InboundData {
            scope,
            who: draft.who,
            part: draft.part,
            item_key: draft.item_key,
            item: draft.item,
        };
        let event = CloudEvent::new(
            id.as_str(),
            scope.source,
            draft.event_type.as_str(),
            key.as_str(),
            draft.time,
            data,
        );
        // Envelope and data keys take a few hundred bytes beyond the item itself.
        let mut payload = Vec::with_capacity(draft.item.get().len() + 512);
        if let Err(e) = event.write_to(&mut payload) {
            self.error.get_or_insert(e);
            return;
        }
        repair_lone_surrogates(&mut payload);
        self.events.push(InboundEvent {
            key,
            event_type: draft.event_type,
            id,
            payload,
        });
    }
}

/// `data` of every inbound event.
struct InboundData<'s> {
    scope: &'s Scope<'s>,
    who: Who<'s>,
    part: Option<Part>,
    item_key: &'static str,
    item: &'s RawValue,
}

impl Serialize for InboundData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("data", 8 + usize::from(self.part.is_some()))?;
        st.serialize_field("waba_id", self.scope.waba_id)?;
        st.serialize_field("phone_number_id", &self.scope.phone_number_id)?;
        st.serialize_field("display_phone_number", &self.scope.display_phone_number)?;
        st.serialize_field("wa_id", &self.who.wa_id)?;
        st.serialize_field("user_id", &self.who.user_id)?;
        st.serialize_field("profile_name", &self.who.profile_name)?;
        st.serialize_field("field", &self.scope.field)?;
        if let Some(part) = self.part {
            st.serialize_field("part", part.as_str())?;
        }
        st.serialize_field(self.item_key, self.item)?;
        st.end()
    }
}

/// `<field>:<32 hex>` (or `<part>:` when there is no field): the first 128 bits of SHA-256 over
/// the WABA id, the phone number id, the part (or, for an item lacking its own id, its kind)
/// and the canonical JSON of `item`, separated by NULs. The number id and part keep equal JSON
/// from different numbers or levels apart. Canonical = parsed, object keys sorted, serde_json's
/// compact form, so it is the same for a retry however Meta spelled the bytes.
/// Rewrites every `\uXXXX` escape of an unpaired UTF-16 surrogate as `\ufffd`, in place (the
/// same six bytes long). Items are copied byte for byte, and JSON's grammar lets a lone
/// surrogate through, but strict parsers (serde_json among them, so the tracker too) refuse
/// it: an event carrying one could not be read downstream. Everything else stays Meta's bytes.
fn repair_lone_surrogates(json: &mut [u8]) {
    const REPLACEMENT: &[u8; 6] = br"\ufffd";
    let unit_at = |json: &[u8], at: usize| -> Option<u16> {
        let hex = std::str::from_utf8(json.get(at..at + 4)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    };
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            i += 1;
            continue;
        }
        // Outside `\uXXXX`, an escape is the backslash and one character (`\\` included).
        let Some(unit) = (json.get(i + 1) == Some(&b'u'))
            .then(|| unit_at(json, i + 2))
            .flatten()
        else {
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF => {
                let low = (json.get(i + 6) == Some(&b'\\') && json.get(i + 7) == Some(&b'u'))
                    .then(|| unit_at(json, i + 8))
                    .flatten();
                if matches!(low, Some(0xDC00..=0xDFFF)) {
                    i += 12;
                } else {
                    json[i..i + 6].copy_from_slice(REPLACEMENT);
                    i += 6;
                }
            }
            0xDC00..=0xDFFF => {
                json[i..i + 6].copy_from_slice(REPLACEMENT);
                i += 6;
            }
            _ => i += 6,
        }
    }
}

fn hashed_id(
    scope: &Scope<'_>,
    part: Option<Part>,
    item_key: &'static str,
    item: &RawValue,
) -> String {
    let mut hasher = HashWriter(Sha256::new());
    hasher.0.update(scope.waba_id.as_bytes());
    hasher.0.update([0]);
    hasher
        .0
        .update(scope.phone_number_id.unwrap_or("").as_bytes());
    hasher.0.update([0]);
    hasher
        .0
        .update(part.map_or(item_key, Part::as_str).as_bytes());
    hasher.0.update([0]);
    let canonical = serde_json::from_str::<Value>(item.get())
        .ok()
        .and_then(|v| serde_json::to_writer(&mut hasher, &Canonical(&v)).ok());
    if canonical.is_none() {
        // Text serde_json reads raw but will not decode (a lone surrogate escape): the exact
        // bytes are still deterministic for a retry.
        hasher.0.update(item.get().as_bytes());
    }
    let digest = hasher.0.finalize();
    let prefix = scope
        .field
        .unwrap_or_else(|| part.map_or(item_key, Part::as_str));
    format!("{prefix}:{}", hex::encode(&digest[..16]))
}

struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serializes a `Value` with object keys sorted whatever map type serde_json was built with.
struct Canonical<'v>(&'v Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut members: Vec<_> = map.iter().collect();
                members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut m = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    m.serialize_entry(k, &Canonical(v))?;
                }
                m.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Canonical(v))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

/// An RFC 3339 `time` exists only for years 0000..=9999.
fn rfc3339_instant(stamp: &str) -> Option<UnixSeconds> {
    const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    stamp
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| (MIN..=MAX).contains(s))
        .map(UnixSeconds)
}

// ---------------------------------------------------------------------------------------------
// Contacts and the customer of an item.

/// A `value.contacts[]` entry.
struct Contact<'a> {
    user_id: Option<Cow<'a, str>>,
    wa_id: Option<Cow<'a, str>>,
    profile_name: Option<Cow<'a, str>>,
}

impl<'a> Contact<'a> {
    fn from_peek(peek: ContactPeek<'a>) -> Result<Self, Bad> {
        let profile_name = match peek.profile {
            Nested::Absent | Nested::Null => None,
            Nested::Obj(p) => p.name.into_string()?,
            Nested::Other => return Err(Bad),
        };
        Ok(Self {
            user_id: peek.user_id.into_string()?,
            wa_id: peek.wa_id.into_string()?,
            profile_name,
        })
    }

    fn matches(&self, user_id: Option<&str>, wa_id: Option<&str>) -> bool {
        (user_id.is_some() && self.user_id.as_deref() == user_id)
            || (wa_id.is_some() && self.wa_id.as_deref() == wa_id)
    }
}

/// Completes the item's ids and profile name from the matching contact. Meta usually lists
/// contacts in item order, so the search starts at the item's own index: a batch of a
/// thousand stays linear.
fn resolve<'s>(
    contacts: &'s [Contact<'_>],
    index: usize,
    user_id: Option<&'s str>,
    wa_id: Option<&'s str>,
) -> Who<'s> {
    let mut who = Who {
        user_id,
        wa_id,
        profile_name: None,
    };
    if contacts.is_empty() || (user_id.is_none() && wa_id.is_none()) {
        return who;
    }
    let start = index % contacts.len();
    let found = contacts[start..]
        .iter()
        .chain(&contacts[..start])
        .find(|c| c.matches(user_id, wa_id));
    if let Some(c) = found {
        who.user_id = who.user_id.or(c.user_id.as_deref());
        who.wa_id = who.wa_id.or(c.wa_id.as_deref());
        who.profile_name = c.profile_name.as_deref();
    }
    who
}

/// Meta gives a reaction and its removal the same wamid: the time and emoji tell them
/// apart.
fn message_id(
    prefix: &str,
    wamid: &str,
    kind: Option<&str>,
    stamp: Option<&str>,
    emoji: Option<&str>,
) -> String {
    if kind == Some("reaction") {
        format!(
            "{prefix}:{wamid}:reaction:{}:{}",
            stamp.unwrap_or(""),
            emoji.unwrap_or("")
        )
    } else {
        format!("{prefix}:{wamid}")
    }
}

/// `reaction.emoji`, checked on every message so a wrong type is caught whatever the `type`.
fn reaction_emoji<'s>(reaction: &'s Nested<ReactionPeek<'_>>) -> Result<Option<&'s str>, Bad> {
    match reaction {
        Nested::Absent | Nested::Null => Ok(None),
        Nested::Obj(r) => r.emoji.string(),
        Nested::Other => Err(Bad),
    }
}

fn item_time(stamp: Option<&str>) -> Option<UnixSeconds> {
    stamp.and_then(rfc3339_instant)
}

// ---------------------------------------------------------------------------------------------
// What is read from each item. Every field is lenient (`Text`), and a field of the wrong type
// turns the item into a pass-through (`Bad`) instead of an error.

/// What an item's event is made from besides the item itself.
#[derive(Clone, Copy)]
struct ItemCx<'c, 's> {
    scope: &'c Scope<'s>,
    contacts: &'c [Contact<'c>],
    /// The item's position in its array: where its contact most likely is.
    index: usize,
}

/// The fields of one kind of item that decide its event.
trait Peek<'a>: Deserialize<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad>;
}

/// A field the normalizer reads had a type it cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bad;

#[derive(Deserialize, Default)]
#[serde(default)]
struct MessagePeek<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    timestamp: Text<'a>,
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow)]
    from: Text<'a>,
    #[serde(borrow)]
    from_user_id: Text<'a>,
    #[serde(borrow)]
    reaction: Nested<ReactionPeek<'a>>,
}

impl<'a> Peek<'a> for MessagePeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        let kind = self.kind.string()?;
        let emoji = reaction_emoji(&self.reaction)?;
        let id = self
            .id
            .string()?
            .map(|wamid| message_id("message", wamid, kind, stamp, emoji));
        Ok(Draft {
            event_type: InboundType::MessageReceived,
            id,
            who: resolve(
                cx.contacts,
                cx.index,
                self.from_user_id.string()?,
                self.from.string()?,
            ),
            time: item_time(stamp),
            item_key: "message",
            part: None,
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReactionPeek<'a> {
    #[serde(borrow)]
    emoji: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StatusPeek<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    status: Text<'a>,
    #[serde(borrow)]
    timestamp: Text<'a>,
    #[serde(borrow)]
    recipient_id: Text<'a>,
    #[serde(borrow)]
    recipient_user_id: Text<'a>,
    /// Group messages: one status per participant for the same wamid and status.
    #[serde(borrow)]
    recipient_participant_id: Text<'a>,
}

impl<'a> Peek<'a> for StatusPeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        let participant = self.recipient_participant_id.string()?;
        let id = match (self.id.string()?, self.status.string()?) {
            (Some(wamid), Some(status)) => Some(match participant {
                Some(p) => format!("status:{wamid}:{status}:{p}"),
                None => format!("status:{wamid}:{status}"),
            }),
            _ => None,
        };
        Ok(Draft {
            event_type: InboundType::StatusUpdated,
            id,
            who: resolve(
                cx.contacts,
                cx.index,
                self.recipient_user_id.string()?,
                self.recipient_id.string()?,
            ),
            time: item_time(stamp),
            item_key: "status",
            part: None,
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CallPeek<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    event: Text<'a>,
    #[serde(borrow)]
    timestamp: Text<'a>,
    #[serde(borrow)]
    direction: Text<'a>,
    #[serde(borrow)]
    from: Text<'a>,
    #[serde(borrow)]
    to: Text<'a>,
    #[serde(borrow)]
    from_user_id: Text<'a>,
    #[serde(borrow)]
    to_user_id: Text<'a>,
}

impl<'a> Peek<'a> for CallPeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        let from = self.from.string()?;
        let to = self.to.string()?;
        // The customer is the caller unless the business placed the call. Without a
        // direction, a call from the business's own number is business-initiated.
        let business_initiated = !crate::domain::customer_placed_call(
            self.direction.string()?,
            from,
            cx.scope.display_phone_number,
        );
        let (from_user_id, to_user_id) = (self.from_user_id.string()?, self.to_user_id.string()?);
        let (user_id, wa_id) = if business_initiated {
            (to_user_id, to)
        } else {
            (from_user_id, from)
        };
        let id = match (self.id.string()?, self.event.string()?) {
            (Some(call), Some(event)) => Some(format!("call:{call}:{event}")),
            _ => None,
        };
        Ok(Draft {
            event_type: InboundType::CallReceived,
            id,
            who: resolve(cx.contacts, cx.index, user_id, wa_id),
            time: item_time(stamp),
            item_key: "call",
            part: None,
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserIdUpdatePeek<'a> {
    #[serde(borrow)]
    wa_id: Text<'a>,
    #[serde(borrow)]
    timestamp: Text<'a>,
    #[serde(borrow)]
    user_id: Nested<UserIdPair<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserIdPair<'a> {
    #[serde(borrow)]
    previous: Text<'a>,
    #[serde(borrow)]
    current: Text<'a>,
}

impl<'a> Peek<'a> for UserIdUpdatePeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        let (previous, current) = match &self.user_id {
            Nested::Absent | Nested::Null => (None, None),
            Nested::Obj(pair) => (pair.previous.string()?, pair.current.string()?),
            Nested::Other => return Err(Bad),
        };
        let id = match (cx.scope.phone_number_id, previous, current) {
            (Some(pnid), Some(previous), Some(current)) => {
                Some(format!("user_id_update:{pnid}:{previous}:{current}"))
            }
            _ => None,
        };
        // Keyed by the previous id: that is where the contact's state lives until the move.
        let mut who = resolve(cx.contacts, cx.index, previous, self.wa_id.string()?);
        if previous.is_none() {
            // A contact matched on wa_id must not lend its (probably new) user id to the key.
            who.user_id = None;
        }
        Ok(Draft {
            event_type: InboundType::ContactUserIdChanged,
            id,
            who,
            time: item_time(stamp),
            item_key: "user_id_update",
            part: None,
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EchoPeek<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    timestamp: Text<'a>,
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow)]
    to: Text<'a>,
    #[serde(borrow)]
    to_user_id: Text<'a>,
    #[serde(borrow)]
    reaction: Nested<ReactionPeek<'a>>,
}

impl<'a> Peek<'a> for EchoPeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        let kind = self.kind.string()?;
        let emoji = reaction_emoji(&self.reaction)?;
        let id = self
            .id
            .string()?
            .map(|wamid| message_id("echo", wamid, kind, stamp, emoji));
        Ok(Draft {
            event_type: InboundType::ChangeOther,
            id,
            who: resolve(
                cx.contacts,
                cx.index,
                self.to_user_id.string()?,
                self.to.string()?,
            ),
            time: item_time(stamp),
            item_key: "message_echo",
            part: None,
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PreferencePeek<'a> {
    #[serde(borrow)]
    wa_id: Text<'a>,
    #[serde(borrow)]
    user_id: Text<'a>,
    #[serde(borrow)]
    timestamp: Text<'a>,
}

impl<'a> Peek<'a> for PreferencePeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        Ok(Draft {
            event_type: InboundType::ChangeOther,
            id: None,
            who: resolve(
                cx.contacts,
                cx.index,
                self.user_id.string()?,
                self.wa_id.string()?,
            ),
            time: item_time(stamp),
            item_key: "value",
            part: Some(Part::Item),
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ContactPeek<'a> {
    #[serde(borrow)]
    wa_id: Text<'a>,
    #[serde(borrow)]
    user_id: Text<'a>,
    #[serde(borrow)]
    profile: Nested<ProfilePeek<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProfilePeek<'a> {
    #[serde(borrow)]
    name: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MetadataPeek<'a> {
    #[serde(borrow)]
    phone_number_id: Text<'a>,
    #[serde(borrow)]
    display_phone_number: Text<'a>,
}

// ---------------------------------------------------------------------------------------------
// Lenient leaves and raw walking.

/// A JSON value read where a string (or, for timestamps, an integer) is expected; any other
/// type is recorded instead of failing the whole item.
#[derive(Debug, Default, PartialEq)]
enum Text<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(String),
    Other,
}

impl<'a> Text<'a> {
    /// A string field: absent and `null` are `None`; any other type is `Bad`.
    fn string(&self) -> Result<Option<&str>, Bad> {
        match self {
            Self::Absent | Self::Null => Ok(None),
            Self::Str(s) => Ok(Some(s)),
            Self::Int(_) | Self::Other => Err(Bad),
        }
    }

    fn into_string(self) -> Result<Option<Cow<'a, str>>, Bad> {
        match self {
            Self::Absent | Self::Null => Ok(None),
            Self::Str(s) => Ok(Some(s)),
            Self::Int(_) | Self::Other => Err(Bad),
        }
    }

    /// A timestamp: Meta sends decimal strings, some producers integers.
    fn stamp(&self) -> Result<Option<&str>, Bad> {
        match self {
            Self::Absent | Self::Null => Ok(None),
            Self::Str(s) => Ok(Some(s)),
            Self::Int(s) => Ok(Some(s)),
            Self::Other => Err(Bad),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor(std::marker::PhantomData))
    }
}

struct TextVisitor<'a>(std::marker::PhantomData<Text<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Owned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Text::Int(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Text::Int(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Text::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Text::Other)
    }
}

/// A JSON value read where an object is expected.
#[derive(Default)]
enum Nested<T> {
    #[default]
    Absent,
    Null,
    Obj(T),
    Other,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NestedVisitor(std::marker::PhantomData))
    }
}

struct NestedVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NestedVisitor<T> {
    type Value = Nested<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Nested::Obj)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Nested::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Nested::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Nested::Null)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Nested::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Nested::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Nested::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Nested::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Nested::Other)
    }
}

fn parse_text(raw: &RawValue) -> serde_json::Result<Text<'_>> {
    serde_json::from_str(raw.get())
}

/// `None` unless `raw` is an object with the fields `T` expects. The check on the first byte
/// matters: serde's derived structs also accept an array, reading fields by position.
fn parse_object<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    if !raw.get().trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// The elements of a JSON array, unparsed; `None` when `raw` is not an array.
fn elements(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

/// Calls `f` with each member of the JSON object in `json`, values unparsed, duplicates
/// included (a `Value` or a derived struct would hide or refuse them). `whole_input` also
/// refuses trailing text after the object.
fn for_each_member<'a, F>(json: &'a str, whole_input: bool, f: F) -> serde_json::Result<()>
where
    F: FnMut(Cow<'a, str>, &'a RawValue),
{
    let mut de = serde_json::Deserializer::from_str(json);
    MembersSeed(f).deserialize(&mut de)?;
    if whole_input {
        de.end()?;
    }
    Ok(())
}

struct MembersSeed<F>(F);

impl<'de, F> DeserializeSeed<'de> for MembersSeed<F>
where
    F: FnMut(Cow<'de, str>, &'de RawValue),
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F> Visitor<'de> for MembersSeed<F>
where
    F: FnMut(Cow<'de, str>, &'de RawValue),
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            (self.0)(key, value);
        }
        Ok(())
    }
}

/// An object key, borrowed unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

// ---------------------------------------------------------------------------------------------
// The first pass: body, entries and changes are read in one go (a level read as raw text and
// then parsed again would be scanned once per level), keeping each change's `value` as raw
// text for the second pass.

/// Visitor methods for the JSON types a visitor does not expect: the value is consumed and
/// `$other` returned.
macro_rules! otherwise {
    ($other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

/// An array element where an object is expected.
enum Element<T> {
    Object(T),
    /// Anything else; found again by position when it is passed on.
    Other,
}

struct BodyParts<'a> {
    object: Option<&'a RawValue>,
    /// `None`: no `entry`, or not an array.
    entries: Option<Vec<Element<EntryParts<'a>>>>,
    /// A key other than `object` and `entry`, or one of them twice.
    stray: bool,
}

struct EntryParts<'a> {
    id: Option<&'a RawValue>,
    time: Option<&'a RawValue>,
    /// `None`: no `changes`, or not an array.
    changes: Option<Vec<Element<ChangeParts<'a>>>>,
    stray: bool,
}

struct ChangeParts<'a> {
    field: Option<&'a RawValue>,
    value: Option<&'a RawValue>,
    stray: bool,
}

/// Stores `value` in `slot` unless the key was seen before (then `stray`).
fn first<T>(slot: &mut Option<T>, stray: &mut bool, value: T) {
    if slot.is_some() {
        *stray = true;
    } else {
        *slot = Some(value);
    }
}

struct BodySeed;

impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = BodyParts<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed {
    type Value = BodyParts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = None;
        let mut entries = None;
        let mut stray = false;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "object" => first(&mut object, &mut stray, map.next_value()?),
                "entry" => first(
                    &mut entries,
                    &mut stray,
                    map.next_value_seed(ArrayOf(EntrySeed))?,
                ),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    stray = true;
                }
            }
        }
        Ok(BodyParts {
            object,
            entries: entries.flatten(),
            stray,
        })
    }
}

#[derive(Clone, Copy)]
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Element<EntryParts<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Element<EntryParts<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        let mut time = None;
        let mut changes = None;
        let mut stray = false;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "id" => first(&mut id, &mut stray, map.next_value()?),
                "time" => first(&mut time, &mut stray, map.next_value()?),
                "changes" => first(
                    &mut changes,
                    &mut stray,
                    map.next_value_seed(ArrayOf(ChangeSeed))?,
                ),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    stray = true;
                }
            }
        }
        Ok(Element::Object(EntryParts {
            id,
            time,
            changes: changes.flatten(),
            stray,
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Element::Other)
    }

    otherwise!(Element::Other);
}

#[derive(Clone, Copy)]
struct ChangeSeed;

impl<'de> DeserializeSeed<'de> for ChangeSeed {
    type Value = Element<ChangeParts<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChangeSeed {
    type Value = Element<ChangeParts<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut field = None;
        let mut value = None;
        let mut stray = false;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "field" => first(&mut field, &mut stray, map.next_value()?),
                "value" => first(&mut value, &mut stray, map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    stray = true;
                }
            }
        }
        Ok(Element::Object(ChangeParts {
            field,
            value,
            stray,
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Element::Other)
    }

    otherwise!(Element::Other);
}

/// An array of what `S` reads; `None` for any other JSON value.
struct ArrayOf<S>(S);

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for ArrayOf<S> {
    type Value = Option<Vec<S::Value>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for ArrayOf<S> {
    type Value = Option<Vec<S::Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(element) = seq.next_element_seed(self.0)? {
            out.push(element);
        }
        Ok(Some(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(None)
    }

    otherwise!(None);
}

/// An array element kept as raw text.
#[derive(Clone, Copy)]
struct RawSeed;

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = &'de RawValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        <&'de RawValue>::deserialize(d)
    }
}

/// A modeled change's value, read once: the item arrays come out as raw items.
struct ValueParts<'a> {
    metadata: Option<&'a RawValue>,
    contacts: Option<&'a RawValue>,
    /// Per modeled array: absent, `Some(None)` when not an array, else its items.
    lists: [Option<Option<Vec<&'a RawValue>>>; MAX_ARRAYS],
    /// A key not modeled (e.g. `errors`) or a duplicate: the value also goes on whole.
    stray: bool,
}

struct ValueSeed<'k> {
    arrays: &'k [(&'static str, Kind)],
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ValueParts<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ValueParts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut product = None;
        let mut metadata = None;
        let mut contacts = None;
        let mut lists = std::array::from_fn(|_| None);
        let mut stray = false;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "messaging_product" => {
                    first(&mut product, &mut stray, map.next_value::<IgnoredAny>()?)
                }
                "metadata" => first(&mut metadata, &mut stray, map.next_value()?),
                "contacts" => first(&mut contacts, &mut stray, map.next_value()?),
                other => match self.arrays.iter().position(|(name, _)| *name == other) {
                    Some(i) => first(
                        &mut lists[i],
                        &mut stray,
                        map.next_value_seed(ArrayOf(RawSeed))?,
                    ),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                        stray = true;
                    }
                },
            }
        }
        Ok(ValueParts {
            metadata,
            contacts,
            lists,
            stray,
        })
    }
}

/// `entry[index]` as raw text, the same one the first pass read (the first `entry` key).
fn locate_entry(text: &str, index: usize) -> Option<&RawValue> {
    let mut entries = None;
    for_each_member(text, true, |key, raw| {
        if &*key == "entry" && entries.is_none() {
            entries = Some(raw);
        }
    })
    .ok()?;
    elements(entries?)?.get(index).copied()
}

/// `changes[index]` of an entry, as raw text.
fn locate_change(entry: &RawValue, index: usize) -> Option<&RawValue> {
    let mut changes = None;
    for_each_member(entry.get(), false, |key, raw| {
        if &*key == "changes" && changes.is_none() {
            changes = Some(raw);
        }
    })
    .ok()?;
    elements(changes?)?.get(index).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn lone_surrogate_escapes_are_repaired_and_pairs_kept() {
        let fix = |text: &str| {
            let mut bytes = text.as_bytes().to_vec();
            super::repair_lone_surrogates(&mut bytes);
            String::from_utf8(bytes).expect("utf8")
        };
        assert_eq!(fix(r#""a\ud800b""#), r#""a\ufffdb""#);
        assert_eq!(fix(r#""\udc00""#), r#""\ufffd""#);
        assert_eq!(fix(r#""\ud800\u0041""#), r#""\ufffd\u0041""#);
        assert_eq!(fix(r#""\ud800""#), r#""\ufffd""#);
        // A valid pair (an emoji), an escaped backslash before a `u`, and plain escapes stay.
        for kept in [
            r#""\ud83d\udc4d""#,
            r#""\\ud800""#,
            r#""\n\"\u00e9""#,
            r#""\uD83D\uDC4D""#,
        ] {
            assert_eq!(fix(kept), kept);
        }
        let repaired = fix(r#"{"body":"x\ud800y","e":"\ud83d\udc4d"}"#);
        let value: serde_json::Value = serde_json::from_str(&repaired).expect("strict parse");
        assert_eq!(value["body"], "x\u{fffd}y");
        assert_eq!(value["e"], "\u{1f44d}");
    }

    use super::*;
    use crate::signature::{sign, verify, AppSecrets};
    use bytes::Bytes;
    use proptest::prelude::*;
    use serde_json::json;

    fn verified(body: &[u8]) -> VerifiedBody {
        let secrets = AppSecrets::new(vec!["unit".into()]).expect("secret");
        let header = sign(b"unit", body);
        verify(
            &secrets,
            Some(header.as_bytes()),
            Bytes::copy_from_slice(body),
        )
        .expect("verifies")
    }

    fn run(body: &[u8]) -> Result<Vec<InboundEvent>, NormalizeError> {
        normalize(&verified(body))
    }

    fn events(body: &Value) -> Vec<(InboundType, String, String, Value)> {
        let bytes = serde_json::to_vec(body).expect("json");
        run(&bytes)
            .expect("normalizes")
            .into_iter()
            .map(|e| {
                let v: Value = serde_json::from_slice(&e.payload).expect("payload");
                (e.event_type, e.key.as_str().to_string(), e.id, v)
            })
            .collect()
    }

    fn webhook(changes: Value) -> Value {
        json!({"object": WHATSAPP_OBJECT, "entry": [{"id": "W", "changes": changes}]})
    }

    fn meta() -> Value {
        json!({"display_phone_number": "15550001111", "phone_number_id": "P"})
    }

    #[test]
    fn refuses_what_is_not_a_whatsapp_webhook() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "not_json"),
            (b"\xff\xfe{}", "not_json"),
            (b"{\"object\":", "not_json"),
            (b"{} trailing", "not_json"),
            (b"[]", "not_an_object"),
            (b"\"whatsapp_business_account\"", "not_an_object"),
            (b"42", "not_an_object"),
            (b"null", "not_an_object"),
            (b"{}", "wrong_object"),
            (b"{\"object\":\"page\",\"entry\":[]}", "wrong_object"),
            (b"{\"object\":7}", "wrong_object"),
            (
                br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"\ud800":1}]}]}"#,
                "not_json",
            ),
        ];
        for (body, reason) in cases {
            let err = run(body).expect_err("refused");
            assert_eq!(err.reason(), *reason, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn inbound_types_round_trip() {
        for t in InboundType::ALL {
            assert_eq!(InboundType::parse(t.as_str()), Some(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(InboundType::parse("whatsapp.window.opened"), None);
    }

    #[test]
    fn empty_entry_list_gives_nothing() {
        assert!(events(&json!({"object": WHATSAPP_OBJECT, "entry": []})).is_empty());
    }

    #[test]
    fn body_level_surprises_pass_the_body_on_whole() {
        for body in [
            json!({"object": WHATSAPP_OBJECT}),
            json!({"object": WHATSAPP_OBJECT, "entry": {"id": "W"}}),
            json!({"object": WHATSAPP_OBJECT, "entry": [], "extra": 1}),
        ] {
            let got = events(&body);
            assert_eq!(got.len(), 1, "{body}");
            let (t, key, id, v) = &got[0];
            assert_eq!(*t, InboundType::ChangeOther);
            assert_eq!(key, "waba:");
            assert!(id.starts_with("body:"), "{id}");
            assert_eq!(v["data"]["part"], "body");
            assert_eq!(v["data"]["value"], body);
        }
        // The items of a body with an unknown top-level key still get their own events.
        let mut body = webhook(json!([{"field": "messages", "value": {
            "metadata": meta(), "messages": [{"id": "m1", "from": "C", "type": "text"}]}}]));
        body["future"] = json!(true);
        let types: Vec<_> = events(&body).into_iter().map(|e| e.0).collect();
        assert_eq!(
            types,
            [InboundType::ChangeOther, InboundType::MessageReceived]
        );
    }

    #[test]
    fn duplicated_keys_never_hide_anything() {
        // Duplicated `changes`: the entry goes on whole, the first list is still modeled.
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":"m1","from":"C"}]}}],"changes":[]}]}"#;
        let got = run(body).expect("normalizes");
        let summary: Vec<_> = got.iter().map(|e| (e.event_type, e.id.as_str())).collect();
        assert_eq!(summary[1], (InboundType::MessageReceived, "message:m1"));
        assert_eq!(summary[0].0, InboundType::ChangeOther);
        assert!(summary[0].1.starts_with("entry:"));
        // Duplicated key inside an item: the item is passed on rather than guessed at.
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messages":[{"id":"m1","id":"m2"}]}}]}]}"#;
        let got = run(body).expect("normalizes");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event_type, InboundType::ChangeOther);
        let v: Value = serde_json::from_slice(&got[0].payload).expect("json");
        assert_eq!(v["data"]["part"], "item");
        assert!(std::str::from_utf8(&got[0].payload)
            .expect("utf-8")
            .contains(r#"{"id":"m1","id":"m2"}"#));
    }

    #[test]
    fn arrays_are_not_items_or_metadata() {
        // serde's derive would read `["x"]` as a struct with fields by position.
        let got = events(&webhook(json!([{"field": "messages", "value": {
            "metadata": ["P", "15550001111"],
            "messages": [["m1", "1795250000"], []],
        }}])));
        let summary: Vec<_> = got
            .iter()
            .map(|(t, k, _, v)| (*t, k.as_str(), v["data"]["part"].clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (InboundType::ChangeOther, "waba:W", json!("item")),
                (InboundType::ChangeOther, "waba:W", json!("item")),
                (InboundType::ChangeOther, "waba:W", json!("value")),
            ]
        );
        assert_eq!(got[2].3["data"]["phone_number_id"], Value::Null);
    }

    #[test]
    fn wrong_types_in_read_fields_pass_the_item_on() {
        for item in [
            json!({"id": 5, "from": "C"}),
            json!({"id": "m", "from": ["C"]}),
            json!({"id": "m", "timestamp": 1.5}),
            json!({"id": "m", "type": "text", "reaction": "up"}),
            json!({"id": "m", "type": "reaction", "reaction": {"emoji": 1}}),
        ] {
            let got = events(&webhook(json!([{"field": "messages", "value": {
                "metadata": meta(), "messages": [item.clone()]}}])));
            assert_eq!(got.len(), 1, "{item}");
            assert_eq!(got[0].0, InboundType::ChangeOther, "{item}");
            assert_eq!(got[0].3["data"]["value"], item);
        }
        // Null is as good as absent, and integer timestamps are accepted.
        let got = events(&webhook(json!([{"field": "messages", "value": {
            "metadata": meta(), "messages": [{"id": "m", "from": null, "from_user_id": "U", "timestamp": 1_795_250_000}]}}])));
        assert_eq!(got[0].0, InboundType::MessageReceived);
        assert_eq!(got[0].1, "P:U");
        assert_eq!(got[0].3["time"], "2026-11-21T08:33:20Z");
    }

    #[test]
    fn time_only_when_rfc3339_can_say_it() {
        for (stamp, time) in [
            (json!("1795250000"), Some("2026-11-21T08:33:20Z")),
            (json!(" 0 "), Some("1970-01-01T00:00:00Z")),
            (json!("253402300800"), None),
            (json!("-62167219201"), None),
            (json!("soon"), None),
            (json!("99999999999999999999999"), None),
        ] {
            let got = events(&webhook(json!([{"field": "messages", "value": {
                "metadata": meta(), "messages": [{"id": "m", "from": "C", "timestamp": stamp}]}}])));
            assert_eq!(got[0].0, InboundType::MessageReceived);
            assert_eq!(
                got[0].3.get("time").and_then(Value::as_str),
                time,
                "{stamp}"
            );
        }
    }

    #[test]
    fn contacts_fill_in_whatever_order_they_come() {
        let got = events(&webhook(json!([{"field": "messages", "value": {
            "metadata": meta(),
            "contacts": [
                {"profile": {"name": "Second"}, "user_id": "U2", "wa_id": "2"},
                {"profile": {"name": "First"}, "user_id": "U1", "wa_id": "1"},
            ],
            "messages": [{"id": "a", "from": "1"}, {"id": "b", "from_user_id": "U2"}],
        }}])));
        assert_eq!(got[0].1, "P:U1");
        assert_eq!(got[0].3["data"]["profile_name"], "First");
        assert_eq!(got[1].1, "P:U2");
        assert_eq!(got[1].3["data"]["wa_id"], "2");
        assert_eq!(got[1].3["data"]["profile_name"], "Second");
    }

    #[test]
    fn no_customer_or_no_number_keys_by_account() {
        let got = events(&webhook(json!([
            {"field": "messages", "value": {"metadata": meta(), "messages": [{"id": "a"}]}},
            {"field": "messages", "value": {"messages": [{"id": "b", "from": "C"}]}},
        ])));
        assert_eq!(got[0].1, "waba:W");
        assert_eq!(got[1].1, "waba:W");
        assert_eq!(got[1].3["data"]["wa_id"], "C");
        assert_eq!(got[1].3["data"]["phone_number_id"], Value::Null);
    }

    #[test]
    fn call_direction_decides_the_customer() {
        let got = events(&webhook(json!([{"field": "calls", "value": {
            "metadata": meta(),
            "calls": [
                {"id": "c1", "event": "connect", "from": "15550001111", "to": "C"},
                {"id": "c2", "event": "connect", "from": "C", "to": "15550001111"},
                {"id": "c3", "event": "connect", "from": "C", "to": "B", "to_user_id": "UB",
                 "direction": "business_initiated"},
            ],
        }}])));
        let keys: Vec<_> = got.iter().map(|e| (e.1.as_str(), e.2.as_str())).collect();
        assert_eq!(
            keys,
            [
                ("P:C", "call:c1:connect"),
                ("P:C", "call:c2:connect"),
                ("P:UB", "call:c3:connect")
            ]
        );
    }

    #[test]
    fn user_id_update_without_previous_falls_back_to_wa_id() {
        let got = events(&webhook(json!([{"field": "user_id_update", "value": {
            "metadata": meta(),
            "contacts": [{"user_id": "NEW", "wa_id": "1"}],
            "user_id_update": [{"wa_id": "1", "user_id": {"current": "NEW"}}],
        }}])));
        assert_eq!(got[0].0, InboundType::ContactUserIdChanged);
        assert_eq!(got[0].1, "P:1");
        assert_eq!(got[0].3["data"]["user_id"], Value::Null);
        assert!(got[0].2.starts_with("user_id_update:"));
    }

    #[test]
    fn pretty_printed_bodies_read_the_same() {
        let body = webhook(json!([{"field": "messages", "value": {
            "metadata": meta(), "messages": [{"id": "m", "from": "C"}]}}]));
        let pretty = serde_json::to_vec_pretty(&body).expect("json");
        let got = run(&pretty).expect("normalizes");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event_type, InboundType::MessageReceived);
        assert_eq!(got[0].id, "message:m");
    }

    #[test]
    fn undecodable_escapes_pass_through_repaired() {
        // A lone surrogate: JSON's grammar allows it, a strict parser does not. It passes
        // through as U+FFFD so every event stays readable; ids stay deterministic.
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":"m","from":"C","text":{"body":"\ud800"}}]}},{"field":"other","value":{"x":"\udfff"}}]}]}"#;
        let got = run(body).expect("normalizes");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, "message:m");
        assert!(got[1].id.starts_with("other:"));
        assert!(std::str::from_utf8(&got[1].payload)
            .expect("utf-8")
            .contains(r#"{"x":"\ufffd"}"#));
        for event in &got {
            serde_json::from_slice::<Value>(&event.payload).expect("strictly parseable");
        }
        assert_eq!(run(body).expect("again")[1].id, got[1].id);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        ".{0,4}",
                        prop::sample::select(vec![
                            "entry",
                            "changes",
                            "id",
                            "field",
                            "value",
                            "messages",
                            "statuses",
                            "metadata",
                            "contacts",
                            "from",
                            "timestamp",
                            "type",
                        ])
                        .prop_map(String::from),
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        // No failure files: the shrunk case is printed, and the checkout stays clean.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(events) = run(&body) {
                for e in events {
                    prop_assert!(serde_json::from_slice::<Value>(&e.payload).is_ok());
                }
            }
        }

        #[test]
        fn arbitrary_json_never_panics(value in arb_json(), entry in arb_json()) {
            let result = run(&serde_json::to_vec(&value).expect("json"));
            let expected = match &value {
                Value::Object(m) if m.get("object") == Some(&json!(WHATSAPP_OBJECT)) => None,
                Value::Object(_) => Some("wrong_object"),
                _ => Some("not_an_object"),
            };
            prop_assert_eq!(result.err().map(|e| e.reason()), expected);
            // The same value made into a WhatsApp body, to reach the levels below.
            let body = json!({"object": WHATSAPP_OBJECT, "entry": [entry]});
            let got = run(&serde_json::to_vec(&body).expect("json"));
            prop_assert!(got.is_ok());
            for e in got.into_iter().flatten() {
                let v: Value = serde_json::from_slice(&e.payload).expect("payload is JSON");
                prop_assert_eq!(&v["subject"], &json!(e.key.as_str()));
                prop_assert_eq!(&v["id"], &json!(e.id));
            }
        }
    }
}

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
use crate::ingest::signature::VerifiedBody;

/// Visitor methods for the scalar JSON types a visitor does not expect (not `null`): the
/// value is consumed and `$other` returned.
macro_rules! otherwise_scalars {
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
    };
}

/// Visitor methods for the JSON types a visitor does not expect, `null` included.
macro_rules! otherwise {
    ($other:expr) => {
        otherwise_scalars!($other);

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

mod contacts;
mod emit;
mod ids;
mod lenient;
mod peek;
mod seeds;
mod surrogates;
#[cfg(test)]
mod tests;

use contacts::*;
use emit::*;
use ids::*;
use lenient::*;
use peek::*;
use seeds::*;
use surrogates::*;

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

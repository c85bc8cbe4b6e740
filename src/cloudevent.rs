//! CloudEvents 1.0 in structured JSON mode: the envelope of every record windowkeeper writes.
//!
//! One generic type serves both directions: the normalizer and the window tracker serialize a
//! `CloudEvent<'_, TheirData>`, and a consumer reads an incoming record as
//! `CloudEvent<'_, &RawValue>` (envelope parsed, data left as borrowed text) or
//! `CloudEvent<'_, serde_json::Value>`.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::UnixSeconds;

/// Kafka `content-type` header value for a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// The `datacontenttype` of every event windowkeeper writes.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// `source` of the events made from one WhatsApp Business Account's webhooks.
pub fn waba_source(waba_id: &str) -> String {
    format!("/whatsapp/business-accounts/{waba_id}")
}

/// The only `specversion` there is; (de)serializes as the string `"1.0"`, and any other
/// version is refused when reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecVersion {
    #[default]
    #[serde(rename = "1.0")]
    V1_0,
}

/// A CloudEvent with `data` of type `T`. String attributes are `Cow` so writing borrows and
/// reading borrows whenever the JSON text has no escapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent<'a, T> {
    pub specversion: SpecVersion,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub event_type: Cow<'a, str>,
    /// The contact key, the same as the Kafka key.
    #[serde(borrow)]
    pub subject: Cow<'a, str>,
    /// RFC 3339 in UTC with a `Z`; omitted when the instant is unknown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "time_ser",
        deserialize_with = "time_de"
    )]
    pub time: Option<UnixSeconds>,
    /// Absent means JSON (CloudEvents JSON format, 3.1).
    #[serde(borrow, default = "json_content_type")]
    pub datacontenttype: Cow<'a, str>,
    pub data: T,
}

impl<'a, T> CloudEvent<'a, T> {
    /// An event with JSON `data`.
    pub fn new(
        id: impl Into<Cow<'a, str>>,
        source: impl Into<Cow<'a, str>>,
        event_type: impl Into<Cow<'a, str>>,
        subject: impl Into<Cow<'a, str>>,
        time: Option<UnixSeconds>,
        data: T,
    ) -> Self {
        Self {
            specversion: SpecVersion::V1_0,
            id: id.into(),
            source: source.into(),
            event_type: event_type.into(),
            subject: subject.into(),
            time,
            datacontenttype: Cow::Borrowed(DATA_CONTENT_TYPE),
            data,
        }
    }

    /// The JSON record value.
    pub fn to_vec(&self) -> serde_json::Result<Vec<u8>>
    where
        T: Serialize,
    {
        serde_json::to_vec(self)
    }

    /// Appends the JSON record value to `out` (lets a caller size the buffer once).
    pub fn write_to(&self, out: &mut Vec<u8>) -> serde_json::Result<()>
    where
        T: Serialize,
    {
        serde_json::to_writer(out, self)
    }

    /// Reads a record value, borrowing from `bytes` where it can. Use `T = &RawValue` to leave
    /// `data` unparsed, or `serde_json::Value` to parse it.
    pub fn from_slice(bytes: &'a [u8]) -> serde_json::Result<Self>
    where
        T: Deserialize<'a>,
    {
        serde_json::from_slice(bytes)
    }

    /// Detaches the envelope from the buffer it was read from.
    pub fn into_owned(self) -> CloudEvent<'static, T>
    where
        T: 'static,
    {
        CloudEvent {
            specversion: self.specversion,
            id: Cow::Owned(self.id.into_owned()),
            source: Cow::Owned(self.source.into_owned()),
            event_type: Cow::Owned(self.event_type.into_owned()),
            subject: Cow::Owned(self.subject.into_owned()),
            time: self.time,
            datacontenttype: Cow::Owned(self.datacontenttype.into_owned()),
            data: self.data,
        }
    }
}

fn json_content_type() -> Cow<'static, str> {
    Cow::Borrowed(DATA_CONTENT_TYPE)
}

fn time_ser<S: Serializer>(time: &Option<UnixSeconds>, s: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(t) => s.serialize_str(&t.to_rfc3339()),
        None => s.serialize_none(),
    }
}

fn time_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UnixSeconds>, D::Error> {
    let text: Option<Cow<'de, str>> = Option::deserialize(d)?;
    match text {
        None => Ok(None),
        Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(UnixSeconds(t.timestamp())))
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;
    use serde_json::{json, Value};

    #[test]
    fn serializes_structured_mode() {
        let event = CloudEvent::new(
            "message:wamid.X",
            waba_source("102290129340398"),
            "whatsapp.message.received",
            "106540352242922:US.1",
            Some(UnixSeconds(1_795_250_000)),
            json!({"k": "v"}),
        );
        let value: Value = serde_json::from_slice(&event.to_vec().expect("json")).expect("parse");
        assert_eq!(
            value,
            json!({
                "specversion": "1.0",
                "id": "message:wamid.X",
                "source": "/whatsapp/business-accounts/102290129340398",
                "type": "whatsapp.message.received",
                "subject": "106540352242922:US.1",
                "time": "2026-11-21T08:33:20Z",
                "datacontenttype": "application/json",
                "data": {"k": "v"}
            })
        );
    }

    #[test]
    fn time_is_omitted_when_unknown() {
        let event = CloudEvent::new("i", "/s", "t", "k", None, json!(null));
        let mut out = Vec::new();
        event.write_to(&mut out).expect("json");
        let value: Value = serde_json::from_slice(&out).expect("parse");
        assert!(value.get("time").is_none());
    }

    #[test]
    fn reads_back_borrowed_and_owned() {
        let event = CloudEvent::new(
            "a",
            "/s",
            "t",
            "k",
            Some(UnixSeconds(17)),
            json!({"x": [1, 2]}),
        );
        let bytes = event.to_vec().expect("json");
        let raw: CloudEvent<'_, &RawValue> = CloudEvent::from_slice(&bytes).expect("read");
        assert!(matches!(raw.id, Cow::Borrowed("a")));
        assert_eq!(raw.time, Some(UnixSeconds(17)));
        assert_eq!(raw.data.get(), r#"{"x":[1,2]}"#);
        let parsed: CloudEvent<'_, Value> = CloudEvent::from_slice(&bytes).expect("read");
        let owned: CloudEvent<'static, Value> = parsed.into_owned();
        assert_eq!(owned, event);
    }

    #[test]
    fn refuses_other_spec_versions_and_defaults_content_type() {
        let other =
            br#"{"specversion":"0.3","id":"a","source":"/s","type":"t","subject":"k","data":1}"#;
        assert!(CloudEvent::<'_, Value>::from_slice(other).is_err());
        let bare = br#"{"specversion":"1.0","id":"a","source":"/s","type":"t","subject":"k","time":"2026-11-21T09:33:20+01:00","data":1}"#;
        let event = CloudEvent::<'_, Value>::from_slice(bare).expect("read");
        assert_eq!(event.datacontenttype, DATA_CONTENT_TYPE);
        assert_eq!(event.time, Some(UnixSeconds(1_795_250_000)));
    }
}

//! Identifiers and instants shared along the data path. Newtypes keep a phone number id from
//! being passed where a customer id is expected, and keep Meta's Unix seconds apart from
//! durations.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An instant as Meta stamps it: whole seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixSeconds(pub i64);

impl UnixSeconds {
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp())
    }

    /// Meta sends timestamps as decimal strings; some producers send numbers.
    pub fn parse_meta(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::String(s) => Self::parse_meta_text(s),
            serde_json::Value::Number(n) => n.as_i64().map(Self),
            _ => None,
        }
    }

    /// A timestamp sent as a string: decimal seconds, surrounding spaces allowed.
    pub fn parse_meta_text(text: &str) -> Option<Self> {
        text.trim().parse().ok().map(Self)
    }

    pub fn plus(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds))
    }

    pub fn minus(self, seconds: i64) -> Self {
        Self(self.0.saturating_sub(seconds))
    }

    /// RFC 3339 in UTC with a `Z` suffix and whole seconds, as every event carries it.
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp(self.0, 0) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            None => self.0.to_string(),
        }
    }
}

impl fmt::Display for UnixSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Box<str>);

        impl $name {
            pub fn new(value: impl Into<Box<str>>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The business number's id (`metadata.phone_number_id`).
    PhoneNumberId
);
string_id!(
    /// A customer's phone-number based id (`wa_id`, `from`, `recipient_id`).
    WaId
);
string_id!(
    /// A business-scoped user id (BSUID), e.g. `US.13491208655302741918`.
    UserId
);
string_id!(
    /// Meta's id of a message (`wamid....`) or call (`wacid....`).
    MessageId
);

/// Who the customer is: the BSUID when the payload has one, else the phone-number id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CustomerId {
    User(UserId),
    Phone(WaId),
}

impl CustomerId {
    pub fn pick(user_id: Option<UserId>, wa_id: Option<WaId>) -> Option<Self> {
        user_id.map(Self::User).or(wa_id.map(Self::Phone))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::User(u) => u.as_str(),
            Self::Phone(w) => w.as_str(),
        }
    }

    /// Reads a customer id someone typed or sent us: a `wa_id` (digits) or a BSUID (a
    /// two-letter country code, then one to three dot-separated alphanumeric parts, as in
    /// `US.13491208655302741918` or the parent form `US.ENT.…`). `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        if is_digits(raw) {
            return Some(Self::Phone(WaId::new(raw)));
        }
        if !is_bsuid(raw) {
            return None;
        }
        let (country, rest) = raw.split_once('.')?;
        let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
        let parts_ok = rest.split('.').count() <= 3
            && rest.split('.').all(|part| {
                (1..=128).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        (country_ok && parts_ok).then(|| Self::User(UserId::new(raw)))
    }
}

/// The one rule that tells the two kinds of customer id apart: a BSUID has a dot after its
/// country code (`US.1349…`); a `wa_id` is digits. Keys written by this program are read back
/// with it; [`CustomerId::parse`] adds the full format check for ids people send.
pub fn is_bsuid(customer: &str) -> bool {
    customer.contains('.')
}

impl PhoneNumberId {
    /// Reads a business number's id as Meta writes it: digits only. `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        is_digits(raw).then(|| Self::new(raw))
    }
}

/// 1 to 32 ASCII digits: Meta's numeric ids and phone numbers, with room to spare.
fn is_digits(raw: &str) -> bool {
    (1..=32).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit())
}

/// The Kafka key of everything about one contact: `<phone_number_id>:<customer id>`.
/// Shared (`Arc`) because the tracker holds every key twice: in its index and in its timers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactKey(std::sync::Arc<str>);

impl ContactKey {
    pub fn new(phone_number_id: &PhoneNumberId, customer: &CustomerId) -> Self {
        Self(format!("{}:{}", phone_number_id.as_str(), customer.as_str()).into())
    }

    /// Items that name no business number or no customer (account updates, template
    /// status) still need a stable key so they keep their order; they use the WABA id.
    pub fn for_account(waba_id: &str) -> Self {
        Self(format!("waba:{waba_id}").into())
    }

    pub fn from_raw(raw: &str) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For a BSUID's key, the key of a phone number the contact was seen with,
    /// `<phone_number_id>:<wa_id>`: where inputs naming only that number arrive and are sent
    /// on to the BSUID. `None` for any other key.
    pub fn phone_alias(&self, wa_id: &WaId) -> Option<Self> {
        match self.split()? {
            (pnid, CustomerId::User(_)) => {
                Some(Self::from_raw(&format!("{pnid}:{}", wa_id.as_str())))
            }
            _ => None,
        }
    }

    /// `<phone_number_id>:<customer>` split in two; `None` for keys of another shape
    /// (`waba:<id>`, which [`Self::for_account`] makes, has no customer).
    pub fn split(&self) -> Option<(&str, CustomerId)> {
        let (pnid, customer) = self.0.split_once(':')?;
        if customer.is_empty() {
            return None;
        }
        let customer = if is_bsuid(customer) {
            CustomerId::User(UserId::new(customer))
        } else {
            CustomerId::Phone(WaId::new(customer))
        };
        Some((pnid, customer))
    }
}

impl fmt::Display for ContactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether the customer placed a call: Meta's `direction` says so when present (anything but
/// `BUSINESS_INITIATED`); without one, a call from the business's own number is the
/// business's. The one rule for both the normalizer (whose contact a call is) and the tracker
/// (whether it opens the window).
pub fn customer_placed_call(
    direction: Option<&str>,
    from: Option<&str>,
    business_number: Option<&str>,
) -> bool {
    match direction {
        Some(direction) => !direction.eq_ignore_ascii_case("BUSINESS_INITIATED"),
        None => from.is_none() || from != business_number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_key_prefers_bsuid() {
        let pnid = PhoneNumberId::new("106540352242922");
        let customer = CustomerId::pick(
            Some(UserId::new("US.13491208655302741918")),
            Some(WaId::new("16505551234")),
        )
        .expect("a customer");
        assert_eq!(
            ContactKey::new(&pnid, &customer).as_str(),
            "106540352242922:US.13491208655302741918"
        );
        let phone_only =
            CustomerId::pick(None, Some(WaId::new("16505551234"))).expect("a customer");
        assert_eq!(
            ContactKey::new(&pnid, &phone_only).as_str(),
            "106540352242922:16505551234"
        );
    }

    #[test]
    fn customer_ids_are_wa_ids_or_bsuids_and_nothing_else() {
        for raw in [
            "16505551234",
            "US.13491208655302741918",
            "US.ENT.123",
            "BR.a1.b2",
        ] {
            assert!(CustomerId::parse(raw).is_some(), "{raw}");
        }
        assert!(matches!(
            CustomerId::parse("US.1"),
            Some(CustomerId::User(_))
        ));
        assert!(matches!(
            CustomerId::parse("155"),
            Some(CustomerId::Phone(_))
        ));
        let too_long = "1".repeat(33);
        for raw in [
            "",
            "us.1",
            "US.",
            "US..1",
            "USA.1",
            "US.1.2.3.4",
            "+155",
            "15 5",
            "US.1-2",
            too_long.as_str(),
        ] {
            assert!(CustomerId::parse(raw).is_none(), "{raw:?}");
        }
        assert!(PhoneNumberId::parse("106540352242922").is_some());
        assert!(PhoneNumberId::parse("10654x").is_none());
    }

    #[test]
    fn meta_timestamps_parse_from_strings_and_numbers() {
        assert_eq!(
            UnixSeconds::parse_meta(&serde_json::json!("1795250000")),
            Some(UnixSeconds(1_795_250_000))
        );
        assert_eq!(
            UnixSeconds::parse_meta(&serde_json::json!(17)),
            Some(UnixSeconds(17))
        );
        assert_eq!(UnixSeconds::parse_meta(&serde_json::json!("soon")), None);
        assert_eq!(
            UnixSeconds(1_795_250_000).to_rfc3339(),
            "2026-11-21T08:33:20Z"
        );
    }
}

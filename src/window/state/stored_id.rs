//! The last inbound message id as the state keeps it. Meta's wamids are `wamid.` and standard
//! base64; kept decoded they take three quarters of the bytes, and every contact keeps one.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::domain::MessageId;

const WAMID_PREFIX: &str = "wamid.";
/// The first byte says how the rest is kept.
const AS_TEXT: u8 = 0;
const AS_DECODED_WAMID: u8 = 1;

#[derive(Clone, PartialEq, Eq)]
pub(super) struct StoredMessageId(Box<[u8]>);

impl StoredMessageId {
    pub(super) fn new(id: &MessageId) -> Self {
        let text = id.as_str();
        let decoded = text
            .strip_prefix(WAMID_PREFIX)
            .and_then(|encoded| Some((encoded, STANDARD.decode(encoded).ok()?)))
            // Only where encoding the bytes again gives back exactly what Meta sent.
            .filter(|(encoded, bytes)| STANDARD.encode(bytes) == *encoded);
        let (tag, bytes) = match &decoded {
            Some((_, bytes)) => (AS_DECODED_WAMID, &bytes[..]),
            None => (AS_TEXT, text.as_bytes()),
        };
        let mut stored = Vec::with_capacity(1 + bytes.len());
        stored.push(tag);
        stored.extend_from_slice(bytes);
        Self(stored.into_boxed_slice())
    }

    pub(super) fn to_message_id(&self) -> MessageId {
        MessageId::new(self.to_string())
    }
}

impl fmt::Display for StoredMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_first() {
            Some((&AS_DECODED_WAMID, bytes)) => {
                f.write_str(WAMID_PREFIX)?;
                f.write_str(&STANDARD.encode(bytes))
            }
            // Stored from a `str`, so valid UTF-8.
            Some((_, text)) => f.write_str(&String::from_utf8_lossy(text)),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for StoredMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(text: &str) -> (String, usize) {
        let stored = StoredMessageId::new(&MessageId::new(text));
        (stored.to_message_id().as_str().to_owned(), stored.0.len())
    }

    #[test]
    fn a_meta_wamid_is_kept_decoded_and_given_back_exactly() {
        let wamid = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUJDMDAwMDAwMDAwMDAwMDAwAA==";
        let (back, stored) = round_trip(wamid);
        assert_eq!(back, wamid);
        assert!(stored < wamid.len() * 3 / 4 + 2, "{stored} bytes kept");
    }

    #[test]
    fn anything_else_is_kept_as_text() {
        for text in [
            "",
            "wamid.",
            "wamid.not base64!",
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUJDMDAw", // unpadded
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUJDMDAx==", // non-canonical last bits
            "wacid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUJDMDAwAA==",
            "ünïcödé",
        ] {
            assert_eq!(round_trip(text).0, text);
        }
    }

    proptest! {
        #[test]
        fn every_id_comes_back_as_it_was_given(text in ".{0,80}", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(round_trip(&text).0, text);
            let wamid = format!("{WAMID_PREFIX}{}", STANDARD.encode(&bytes));
            prop_assert_eq!(round_trip(&wamid).0, wamid);
        }
    }
}

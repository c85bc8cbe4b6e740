//! `windowkeeper::ingest::normalize::normalize` on arbitrary bytes. A `VerifiedBody` can only come from
//! `verify`, so the input is signed with a fixed secret and verified first (which must pass).
//!
//! Checked besides "no panic": every event's payload is a JSON object, a CloudEvent 1.0 whose
//! `id` is the event's id, whose `type` is the event's type, and whose `subject` is the event's
//! Kafka key; normalizing the same body twice gives the same events (ids are deterministic).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use windowkeeper::ingest::normalize::normalize;
use windowkeeper::ingest::signature::{sign, verify, AppSecrets};

const SECRET: &str = "fuzz-app-secret";

fuzz_target!(|data: &[u8]| {
    let secrets = AppSecrets::new(vec![SECRET.to_owned()]).expect("secret");
    let body = Bytes::copy_from_slice(data);
    let header = sign(SECRET.as_bytes(), &body);
    let verified = verify(&secrets, Some(header.as_bytes()), body).expect("own signature verifies");
    let Ok(events) = normalize(&verified) else {
        return;
    };
    // Known findings (tests/fuzz_regressions.rs) whose class a run may skip to look for others:
    // WK_FUZZ_ALLOW_LONE_SURROGATES=1 (a lone UTF-16 surrogate escape in a passed-through item)
    // and WK_FUZZ_ALLOW_NUMBER_RANGE=1 (a number no f64 holds, e.g. 1e999).
    let allow_surrogates = std::env::var_os("WK_FUZZ_ALLOW_LONE_SURROGATES").is_some();
    let allow_numbers = std::env::var_os("WK_FUZZ_ALLOW_NUMBER_RANGE").is_some();
    for event in &events {
        let value: serde_json::Value = match serde_json::from_slice(&event.payload) {
            Ok(value) => value,
            Err(error)
                if (allow_surrogates
                    && (error.to_string().contains("surrogate")
                        || error.to_string().contains("hex escape")))
                    || (allow_numbers && error.to_string().contains("number out of range")) =>
            {
                continue
            }
            Err(error) => panic!("payload is JSON: {error:?}"),
        };
        let object = value.as_object().expect("payload is a JSON object");
        assert_eq!(
            object.get("specversion").and_then(|v| v.as_str()),
            Some("1.0")
        );
        assert_eq!(
            object.get("id").and_then(|v| v.as_str()),
            Some(event.id.as_str())
        );
        assert_eq!(
            object.get("type").and_then(|v| v.as_str()),
            Some(event.event_type.as_str())
        );
        assert_eq!(
            object.get("subject").and_then(|v| v.as_str()),
            Some(event.key.as_str()),
            "subject and Kafka key differ"
        );
    }
    let again = normalize(&verified).expect("second normalize");
    assert_eq!(events, again, "normalize is not deterministic");
});

//! Inputs found by the cargo-fuzz targets in fuzz/ (see BENCHMARKS.md, "Fuzzing"), kept as
//! regression tests on the public API: sign with a fixed secret, `verify`, `normalize`.

use bytes::Bytes;
use windowkeeper::ingest::normalize::normalize;
use windowkeeper::ingest::signature::{sign, verify, AppSecrets};

const SECRET: &str = "fuzz-app-secret";

fn normalized_payloads(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let secrets = AppSecrets::new(vec![SECRET.to_owned()]).expect("secret");
    let header = sign(SECRET.as_bytes(), body);
    let verified = verify(
        &secrets,
        Some(header.as_bytes()),
        Bytes::copy_from_slice(body),
    )
    .expect("own signature verifies");
    normalize(&verified)
        .ok()
        .map(|events| events.into_iter().map(|e| e.payload).collect())
}

/// fuzz/normalize, crash-da05fd04f0d48eb109f77a4e0afcf369acdaf325 (found in the first 10 s):
/// the CTWA referral fixture with `referral.body` = "Summer succulents a\ud800e!" — a lone
/// UTF-16 surrogate escape. The body is accepted as a WhatsApp webhook (200, published), but
/// the CloudEvent written for the message was not parseable by serde_json ("unexpected end of
/// hex escape"): items are copied through raw (`RawValue` only skims escapes), while a strict
/// parse rejects a lone surrogate. Consumers that parse the event strictly (serde_json,
/// windowkeeper's own tracker) could not read it. Fixed: unpaired surrogate escapes are
/// rewritten as `\ufffd` in the event, the rest of Meta's bytes untouched.
const LONE_SURROGATE_IN_REFERRAL: &str = r#"{"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}, "contacts": [{"profile": {"name": "Ravi Kumar"}, "user_id": "IN.884422117733", "wa_id": "919876543210"}], "messages": [{"id": "wamid.HBgLOTE5ODc2NTQzMjEwFQIAEhgUM0FBRDAwMDAwMDAwMDAwMDAwMQA=", "timestamp": "1747625000", "type": "text", "from_user_id": "IN.884422117733", "from": "919876543210", "text": {"body": "Can I get more info about this?"}, "referral": {"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726", "source_type": "ad", "body": "Summer succulents a\ud800e!", "headline": "Chat with us", "media_type": "image", "image_url": "https://example.invalid/ad.jpg", "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a", "welcome_message": {"text": "Hi there! Let us know how we can help!"}}}]}}]}]}"#;

/// The same defect, smallest form: a text message whose body is a lone surrogate escape.
const LONE_SURROGATE_IN_TEXT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"user_id":"US.13491208655302741918","wa_id":"16505551234"}],"messages":[{"id":"wamid.LONE","timestamp":"1795250000","type":"text","from_user_id":"US.13491208655302741918","from":"16505551234","text":{"body":"\ud800"}}]}}]}]}"#;

/// Every CloudEvent normalize emits must be JSON that a strict parser reads; a body that
/// cannot give such events belongs on the dead-letter topic instead (or the escape must be
/// repaired), not on the inbound topic.
fn assert_events_parse(name: &str, body: &str) {
    let Some(payloads) = normalized_payloads(body.as_bytes()) else {
        return; // refused as a whole: dead-lettered, which is fine
    };
    for payload in payloads {
        if let Err(error) = serde_json::from_slice::<serde_json::Value>(&payload) {
            panic!(
                "{name}: normalize emitted a CloudEvent serde_json cannot parse ({error}):\n{}",
                String::from_utf8_lossy(&payload)
            );
        }
    }
}

#[test]
fn lone_surrogate_in_referral_gives_parseable_events() {
    assert_events_parse("referral", LONE_SURROGATE_IN_REFERRAL);
}

#[test]
fn lone_surrogate_in_text_gives_parseable_events() {
    assert_events_parse("text", LONE_SURROGATE_IN_TEXT);
}

/// fuzz/normalize on `0ede620` (after the surrogate repair),
/// crash-c6785d45dcfbffedccfb357fb9f6c455e23038da: a status item whose pricing carries
/// `"pricing_model": 1e999`. The number is valid JSON grammar and `RawValue` skims it, so the
/// body is accepted (200, published) with the item copied byte for byte, but serde_json refuses
/// the event ("number out of range"): no finite f64 holds it. windowkeeper's tracker parses
/// inbound events with serde_json and dropped such a record silently (bench/repro-unparseable-
/// events.sh: the customer's window never opened). Fixed: serde_json reads numbers with
/// arbitrary precision (kept as their text), and the tracker logs and counts
/// (`kafka_errors{operation="decode"}`) any record it still cannot read.
const NUMBER_OUT_OF_RANGE_IN_STATUS: &str = r#"{"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {"mersaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}, "statuses": [{"id": "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJPVVQwMQA=", "status": "sent", "timesn": {"id": "c0ffee01", "expiration_timestamp": "1225868317", "origin": {"type": "service"}}, "pricing-0": {"billable": true, "pricing_model": 1e999, "type": "regulAr", "category": "service"}}, {"id": "wVVQwMQA=", "status": "read", "timest55555555555555555555t_participant_id": "BR.5566778899"}]}}]}]}"#;

/// The same defect, smallest form: a text message with an extra field `"n": 1e999`.
const NUMBER_OUT_OF_RANGE_IN_TEXT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"user_id":"US.13491208655302741918","wa_id":"16505551234"}],"messages":[{"id":"wamid.HUGE","timestamp":"1795250000","type":"text","from_user_id":"US.13491208655302741918","from":"16505551234","text":{"body":"hi","n":1e999}}]}}]}]}"#;

#[test]
fn number_out_of_range_in_status_gives_parseable_events() {
    assert_events_parse("status", NUMBER_OUT_OF_RANGE_IN_STATUS);
}

#[test]
fn number_out_of_range_in_text_gives_parseable_events() {
    assert_events_parse("text", NUMBER_OUT_OF_RANGE_IN_TEXT);
}

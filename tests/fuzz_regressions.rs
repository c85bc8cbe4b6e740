//! Inputs found by the cargo-fuzz targets in fuzz/ (see BENCHMARKS.md, "Fuzzing"), kept as
//! regression tests on the public API: `sign`, `verify`, `normalize`. Each input is a WhatsApp
//! webhook, so it must be accepted and give its events (a refusal would dead-letter a real
//! message); each event must be read the way windowkeeper's tracker reads it (serde_json) and
//! carry the value that once broke it, repaired or kept as Meta sent it.

mod common;

use bytes::Bytes;
use serde_json::Value;
use windowkeeper::ingest::normalize::{normalize, InboundType};
use windowkeeper::ingest::signature::{verify, AppSecrets};

use common::{sign, SECRET};

/// An event: its type, its payload as written, and that payload parsed.
struct Event {
    event_type: InboundType,
    payload: String,
    json: Value,
}

/// The receiver's path for `body`: signed, verified, normalized. A refusal fails the test; so
/// does an event serde_json cannot parse.
fn accepted_events(name: &str, body: &str) -> Vec<Event> {
    let secrets = AppSecrets::new(vec![SECRET.to_owned()]).expect("secret");
    let header = sign(body.as_bytes());
    let verified = verify(
        &secrets,
        Some(header.as_bytes()),
        Bytes::copy_from_slice(body.as_bytes()),
    )
    .expect("own signature verifies");
    let events = normalize(&verified).unwrap_or_else(|error| {
        panic!("{name}: a WhatsApp webhook was refused ({error}): it would be dead-lettered")
    });
    events
        .into_iter()
        .map(|event| {
            let payload = String::from_utf8_lossy(&event.payload).into_owned();
            let json = serde_json::from_slice::<Value>(&event.payload).unwrap_or_else(|error| {
                panic!(
                    "{name}: normalize emitted a CloudEvent serde_json cannot parse ({error}):\n{payload}"
                )
            });
            Event {
                event_type: event.event_type,
                payload,
                json,
            }
        })
        .collect()
}

/// The one event of a single-message body, which must be a received message.
fn the_message(name: &str, body: &str) -> Event {
    let mut events = accepted_events(name, body);
    let types: Vec<InboundType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [InboundType::MessageReceived],
        "{name}: one message event expected"
    );
    events.remove(0)
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

#[test]
fn lone_surrogate_in_referral_gives_parseable_events() {
    let event = the_message("referral", LONE_SURROGATE_IN_REFERRAL).json;
    let message = &event["data"]["message"];
    assert_eq!(
        message["referral"]["body"], "Summer succulents a\u{fffd}e!",
        "the lone surrogate is replaced by U+FFFD, the rest of the text kept:\n{event:#}"
    );
    assert_eq!(message["text"]["body"], "Can I get more info about this?");
}

#[test]
fn lone_surrogate_in_text_gives_parseable_events() {
    let event = the_message("text", LONE_SURROGATE_IN_TEXT).json;
    assert_eq!(
        event["data"]["message"]["text"]["body"], "\u{fffd}",
        "the lone surrogate is replaced by U+FFFD:\n{event:#}"
    );
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
    let events = accepted_events("status", NUMBER_OUT_OF_RANGE_IN_STATUS);
    let statuses: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type == InboundType::StatusUpdated)
        .collect();
    let ids: Vec<&Value> = statuses.iter().map(|e| &e.json["id"]).collect();
    assert_eq!(
        ids,
        [
            "status:wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJPVVQwMQA=:sent",
            "status:wVVQwMQA=:read"
        ],
        "both status items give their event"
    );
    let sent = statuses[0];
    assert!(
        sent.json["data"]["status"]["pricing-0"]["pricing_model"].is_number(),
        "{:#}",
        sent.json
    );
    assert!(
        sent.payload.contains(r#""pricing_model": 1e999,"#),
        "the number is kept as Meta wrote it:\n{}",
        sent.payload
    );
}

#[test]
fn number_out_of_range_in_text_gives_parseable_events() {
    let event = the_message("text", NUMBER_OUT_OF_RANGE_IN_TEXT);
    let text = &event.json["data"]["message"]["text"];
    assert_eq!(text["body"], "hi");
    assert!(text["n"].is_number(), "{:#}", event.json);
    assert!(
        event.payload.contains(r#""n":1e999}"#),
        "the number is kept as Meta wrote it:\n{}",
        event.payload
    );
}

//! Unit tests of the normalizer.

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
use crate::ingest::signature::{sign, verify, AppSecrets};
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

/// Random bytes, and WhatsApp bodies with a few random edits (a byte replaced, inserted or
/// removed): none makes normalize panic, and every event of a body it accepts is JSON. Random
/// bytes alone are all refused, so the run counts the accepted bodies: a run in which few
/// were accepted did not test the events.
#[test]
fn arbitrary_bytes_never_panic() {
    use std::cell::Cell;

    use proptest::test_runner::{TestError, TestRunner};

    macro_rules! fixture {
        ($name:literal) => {
            &include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/",
                $name
            ))[..]
        };
    }
    let bodies: Vec<&'static [u8]> = vec![
        fixture!("text-message.json"),
        fixture!("batch-three-contacts.json"),
        fixture!("statuses-all-kinds.json"),
        fixture!("ctwa-referral-message.json"),
        fixture!("malformed-parts.json"),
        fixture!("user-call.json"),
    ];
    // (where, which byte, 0 replace / 1 insert / 2 remove): mostly text, often JSON's own
    // bytes, sometimes any byte.
    let edit = (
        any::<prop::sample::Index>(),
        prop_oneof![
            3 => prop::sample::select(b"abcxyzABCXYZ0123456789 _.+".to_vec()),
            1 => prop::sample::select(b"\"\\{}[],:-eEu".to_vec()),
            1 => any::<u8>(),
        ],
        0u8..3,
    );
    let edited = (
        prop::sample::select(bodies),
        prop::collection::vec(edit, 1..3),
    )
        .prop_map(|(body, edits)| {
            let mut body = body.to_vec();
            for (at, byte, kind) in edits {
                let i = at.index(body.len() + 1);
                match kind {
                    0 if i < body.len() => body[i] = byte,
                    2 if i < body.len() => {
                        body.remove(i);
                    }
                    _ => body.insert(i, byte),
                }
            }
            body
        });
    let strategy = prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        4 => edited,
    ];

    let (tried, accepted) = (Cell::new(0u32), Cell::new(0u32));
    let mut runner = TestRunner::new(ProptestConfig {
        // No failure files: the shrunk case is printed, and the checkout stays clean.
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |body| {
        tried.set(tried.get() + 1);
        if let Ok(events) = run(&body) {
            accepted.set(accepted.get() + 1);
            for e in events {
                prop_assert!(
                    serde_json::from_slice::<Value>(&e.payload).is_ok(),
                    "an event that is not JSON: {}",
                    String::from_utf8_lossy(&e.payload)
                );
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, body)) => panic!(
            "{reason}\nminimal failing body: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(TestError::Abort(reason)) => panic!("{reason}"),
    }
    assert!(
        accepted.get() * 4 >= tried.get(),
        "only {} of {} bodies were accepted: their events were hardly checked",
        accepted.get(),
        tried.get()
    );
}

proptest! {
    // No failure files: the shrunk case is printed, and the checkout stays clean.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

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

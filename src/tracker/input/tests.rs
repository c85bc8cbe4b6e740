//! Unit tests of input.

use super::*;
use serde_json::json;

fn cfg() -> WindowConfig {
    WindowConfig {
        service_window_secs: 86_400,
        free_entry_window_secs: 259_200,
        closing_leads_secs: vec![3600],
        reactions_open_window: false,
    }
}

/// The record as the receiver writes it, decoded; these tests only write JSON.
fn decode(record: Value, cfg: &WindowConfig) -> TrackerInput {
    super::decode(&serde_json::to_vec(&record).expect("JSON"), cfg).expect("decodable")
}

#[test]
fn only_a_value_that_is_not_json_is_undecodable() {
    let decode = |bytes: &[u8]| super::decode(bytes, &cfg());
    assert_eq!(decode(b"{\"type\": ").err(), Some(NotJson));
    assert_eq!(decode(b"not json").err(), Some(NotJson));
    for other_json in [
        &b"[1, 2]"[..],
        b"null",
        b"{\"no\": \"type\"}",
        b"{\"type\": 5}",
    ] {
        assert!(matches!(decode(other_json), Ok(TrackerInput::Ignored)));
    }
}

#[test]
fn a_field_of_an_unexpected_type_goes_unread_without_failing_the_item() {
    // A numeric id: the message cannot be told apart from others, so it opens nothing.
    let numeric_id = decode(
        event(
            "whatsapp.message.received",
            json!({"message": {"id": 7, "timestamp": "100", "type": "text"}}),
        ),
        &cfg(),
    );
    assert!(matches!(numeric_id, TrackerInput::Ignored));
    // A referral that is not an object is no referral; the message still opens the window.
    let odd_referral = decode(
        event(
            "whatsapp.message.received",
            json!({"message": {"id": "m", "timestamp": 100, "type": "text", "referral": "x",
                               "extra": {"deep": [1, {"a": null}]}}}),
        ),
        &cfg(),
    );
    assert!(matches!(
        odd_referral,
        TrackerInput::Rules {
            input: Statement::Window(Input::CustomerMessage {
                at: UnixSeconds(100),
                referral: false,
                ..
            }),
            ..
        }
    ));
    // A timestamp with a fraction is unreadable, whatever its JSON type.
    for stamp in [json!("100.5"), json!(100.5), json!(true)] {
        let input = decode(
            event(
                "whatsapp.message.received",
                json!({"message": {"id": "m", "timestamp": stamp, "type": "text"}}),
            ),
            &cfg(),
        );
        assert!(
            matches!(input, TrackerInput::Rejected(Implausible::Unreadable)),
            "{stamp}"
        );
    }
}

fn event(event_type: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "type": event_type, "id": "x", "data": data})
}

#[test]
fn text_message_opens() {
    let input = decode(
        event(
            "whatsapp.message.received",
            json!({"phone_number_id": "1", "user_id": "US.1", "wa_id": "155",
                   "message": {"id": "wamid.A", "timestamp": "100", "type": "text"}}),
        ),
        &cfg(),
    );
    assert!(matches!(
        input,
        TrackerInput::Rules {
            input: Statement::Window(Input::CustomerMessage {
                at: UnixSeconds(100),
                referral: false,
                ..
            }),
            ..
        }
    ));
}

#[test]
fn reaction_and_system_are_not_openers() {
    for t in ["reaction", "system", "revoke"] {
        let input = decode(
            event(
                "whatsapp.message.received",
                json!({"message": {"id": "m", "timestamp": "1", "type": t}}),
            ),
            &cfg(),
        );
        assert!(matches!(input, TrackerInput::Ignored), "{t}");
    }
}

#[test]
fn failed_131047_is_a_correction_and_other_failures_are_not() {
    let failed = |code: i64| {
        decode(
            event(
                "whatsapp.status.updated",
                json!({"status": {"id": "w", "status": "failed", "timestamp": "5", "errors": [{"code": code}]}}),
            ),
            &cfg(),
        )
    };
    assert!(matches!(
        failed(131_047),
        TrackerInput::Rules {
            input: Statement::Window(Input::ReEngagementFailed { .. }),
            ..
        }
    ));
    assert!(matches!(failed(131_026), TrackerInput::Ignored));
}

#[test]
fn free_entry_point_sent_status_carries_the_authoritative_end() {
    let input = decode(
        event(
            "whatsapp.status.updated",
            json!({"status": {"id": "w", "status": "sent", "timestamp": "5",
                   "conversation": {"expiration_timestamp": "99"},
                   "pricing": {"type": "free_entry_point"}}}),
        ),
        &cfg(),
    );
    assert!(matches!(
        input,
        TrackerInput::Rules {
            input: Statement::Window(Input::BusinessSent {
                fep_expires_at: Some(UnixSeconds(99)),
                ..
            }),
            ..
        }
    ));
}

#[test]
fn user_id_changes_name_the_new_key() {
    let input = decode(
        event(
            "whatsapp.contact.user_id_changed",
            json!({"phone_number_id": "7", "user_id_update": {"wa_id": "155", "user_id": {"previous": "US.1", "current": "US.2"}}}),
        ),
        &cfg(),
    );
    let TrackerInput::UserIdChanged { to, .. } = input else {
        panic!("move")
    };
    assert_eq!(to.as_str(), "7:US.2");
    let input = decode(
        event(
            "whatsapp.message.received",
            json!({"phone_number_id": "7", "message": {"id": "s", "timestamp": "1", "type": "system",
                   "system": {"type": "user_changed_user_id", "user_id": "US.3"}}}),
        ),
        &cfg(),
    );
    let TrackerInput::UserIdChanged { to, .. } = input else {
        panic!("move")
    };
    assert_eq!(to.as_str(), "7:US.3");
}

#[test]
fn business_initiated_calls_and_call_ends_open_nothing() {
    for (direction, ev) in [
        ("BUSINESS_INITIATED", "connect"),
        ("USER_INITIATED", "terminate"),
    ] {
        let input = decode(
            event(
                "whatsapp.call.received",
                json!({"call": {"id": "c", "timestamp": "1", "direction": direction, "event": ev}}),
            ),
            &cfg(),
        );
        assert!(matches!(input, TrackerInput::Ignored));
    }
}

/// Without a `direction`, the caller's number decides, as it does for the normalizer.
#[test]
fn a_call_without_direction_opens_only_when_the_customer_placed_it() {
    let call = |from: &str| {
        decode(
            event(
                "whatsapp.call.received",
                json!({"display_phone_number": "15550001111",
                       "call": {"id": "c", "timestamp": "1", "event": "connect", "from": from}}),
            ),
            &cfg(),
        )
    };
    assert!(matches!(call("16505551234"), TrackerInput::Rules { .. }));
    assert!(matches!(call("15550001111"), TrackerInput::Ignored));
}

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

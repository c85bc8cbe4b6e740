//! The tracker's routing and bookkeeping without a broker: records in, records out.
//! One file on purpose: each test feeds records through the book the way Kafka would and
//! reads what comes out, and they share the same few record builders.

use serde_json::{json, Value};

use super::book::{Book, Outbox};
use super::input::{TYPE_ALIAS, TYPE_FORWARDED, TYPE_MOVED};
use super::records::{read_state_record, Contact};
use crate::domain::{ContactKey, UnixSeconds};
use crate::window::WindowConfig;

const PARTITION: i32 = 0;
const T0: i64 = 1_795_250_000;

fn cfg() -> WindowConfig {
    WindowConfig::new(60, 120, [10], false)
}

fn key(raw: &str) -> ContactKey {
    ContactKey::from_raw(raw)
}

fn message(at: i64, wamid: &str, referral: bool) -> Value {
    let mut message = json!({"id": wamid, "timestamp": at.to_string(), "type": "text"});
    if referral {
        message["referral"] = json!({"source_type": "ad"});
    }
    json!({"specversion": "1.0", "type": "whatsapp.message.received", "id": wamid, "data": {
        "phone_number_id": "100", "wa_id": "15550001", "user_id": "US.1", "message": message}})
}

fn failed_131047(at: i64) -> Value {
    json!({"specversion": "1.0", "type": "whatsapp.status.updated", "id": "s", "data": {
        "phone_number_id": "100", "wa_id": "15550001",
        "status": {"id": "wamid.OUT", "status": "failed", "timestamp": at.to_string(), "errors": [{"code": 131047}]}}})
}

fn event_types(out: &Outbox) -> Vec<&'static str> {
    out.events
        .iter()
        .map(|e| e.type_name.trim_start_matches("whatsapp.window."))
        .collect()
}

fn routed(out: &Outbox, event_type: &str) -> Vec<(ContactKey, Value)> {
    out.routed
        .iter()
        .filter_map(|(k, payload)| {
            let value: Value = serde_json::from_slice(payload).ok()?;
            (value["type"] == event_type).then(|| (k.clone(), value))
        })
        .collect()
}

/// One inbound record that reached the receiver at `at` and is processed at once.
fn feed(book: &mut Book, key: &ContactKey, value: Value, at: i64) -> Outbox {
    let mut out = Outbox::default();
    apply(book, key, value, at, &mut out);
    out
}

/// One record applied as Kafka would hand it over: its value's bytes.
fn apply(book: &mut Book, key: &ContactKey, value: Value, at: i64, out: &mut Outbox) {
    let bytes = serde_json::to_vec(&value).expect("JSON");
    book.apply_record(
        PARTITION,
        key,
        &bytes,
        UnixSeconds(at),
        UnixSeconds(at),
        out,
    )
    .expect("decodable");
}

/// Feeds every routed record back in, as Kafka would deliver it to the key's partition.
fn deliver_routed(book: &mut Book, out: Outbox, now: i64) -> Outbox {
    let mut next = Outbox::default();
    for (target, payload) in out.routed {
        book.apply_record(
            PARTITION,
            &target,
            &payload,
            UnixSeconds(now),
            UnixSeconds(now),
            &mut next,
        )
        .expect("routed JSON");
    }
    next
}

#[test]
fn a_message_opens_a_window_writes_state_and_aliases_the_phone_number() {
    let mut book = Book::new(cfg());
    let mut out = Outbox::default();
    let bsuid = key("100:US.1");
    book.apply_record(
        PARTITION,
        &bsuid,
        &serde_json::to_vec(&message(T0, "wamid.A", false)).expect("JSON"),
        UnixSeconds(T0),
        UnixSeconds(T0),
        &mut out,
    )
    .expect("decodable");
    assert_eq!(event_types(&out), ["opened"]);
    let aliases = routed(&out, TYPE_ALIAS);
    assert_eq!(aliases.len(), 1);
    assert_eq!(aliases[0].0.as_str(), "100:15550001");
    assert_eq!(aliases[0].1["data"]["target"], "100:US.1");
    let (_, state_key, state) = &out.states[0];
    assert_eq!(state_key, &bsuid);
    let contact = read_state_record(state.as_deref().expect("a state record")).expect("readable");
    assert!(contact.windows.customer_service().is_some_and(|v| v.open));
    assert_eq!(contact.wa_id.as_ref().map(|w| w.as_str()), Some("15550001"));
}

#[test]
fn a_duplicate_changes_nothing_and_writes_nothing() {
    let mut book = Book::new(cfg());
    let bsuid = key("100:US.1");
    feed(&mut book, &bsuid, message(T0, "wamid.A", false), T0);
    let again = feed(&mut book, &bsuid, message(T0, "wamid.A", false), T0 + 5);
    assert!(again.is_empty(), "duplicate produced output");
}

#[test]
fn a_failed_send_naming_only_the_phone_number_closes_the_bsuid_window() {
    let mut book = Book::new(cfg());
    let bsuid = key("100:US.1");
    let phone = key("100:15550001");
    let out = feed(&mut book, &bsuid, message(T0, "wamid.A", false), T0);
    // The alias reaches the phone number's key.
    let after_alias = deliver_routed(&mut book, out, T0 + 1);
    assert!(after_alias.events.is_empty());
    assert!(book
        .contact(PARTITION, &phone)
        .is_some_and(|c| c.alias.is_some()));
    // A 131047 failure keyed by the phone number is forwarded whole to the BSUID.
    let out = feed(&mut book, &phone, failed_131047(T0 + 2), T0 + 2);
    let forwarded = routed(&out, TYPE_FORWARDED);
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].0, bsuid);
    assert_eq!(
        forwarded[0].1["data"]["event"]["data"]["status"]["status"],
        "failed"
    );
    let closed = deliver_routed(&mut book, out, T0 + 2);
    assert_eq!(event_types(&closed), ["closed"]);
    let payload: Value = serde_json::from_slice(&closed.events[0].payload).expect("json");
    assert_eq!(payload["data"]["close_reason"], "meta_reported");
}

#[test]
fn a_user_id_change_moves_the_window_and_leaves_a_forwarding_stub() {
    let mut book = Book::new(cfg());
    let old = key("100:US.1");
    let new = key("100:US.2");
    feed(&mut book, &old, message(T0, "wamid.A", false), T0);
    let change = json!({"specversion": "1.0", "type": "whatsapp.contact.user_id_changed", "id": "u", "data": {
        "phone_number_id": "100", "user_id_update": {"wa_id": "15550001", "user_id": {"previous": "US.1", "current": "US.2"}}}});
    let out = feed(&mut book, &old, change, T0 + 1);
    let moved = routed(&out, TYPE_MOVED);
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].0, new);
    assert!(
        book.contact(PARTITION, &old)
            .is_some_and(|c| c.alias.is_some()),
        "old key forwards"
    );
    let mut arrived = deliver_routed(&mut book, out, T0 + 1);
    assert!(arrived.events.is_empty(), "a move announces nothing new");
    assert!(book
        .contact(PARTITION, &new)
        .is_some_and(|c| c.windows.customer_service().is_some_and(|v| v.open)));
    // A straggler for the old id is forwarded to the new one and extends the window there.
    let straggler = feed(&mut book, &old, message(T0 + 20, "wamid.B", false), T0 + 20);
    assert_eq!(routed(&straggler, TYPE_FORWARDED).len(), 1);
    arrived = deliver_routed(&mut book, straggler, T0 + 20);
    assert!(arrived.events.is_empty());
    // The window closes once, under the new key, at the straggler's end.
    let mut later = Outbox::default();
    book.tick(UnixSeconds(T0 + 20 + 50), &mut later);
    book.tick(UnixSeconds(T0 + 20 + 60), &mut later);
    assert_eq!(event_types(&later), ["closing", "closed"]);
    assert!(later.events.iter().all(|e| e.key == new));
}

#[test]
fn restored_state_closes_overdue_windows_without_their_warnings() {
    let mut book = Book::new(cfg());
    let bsuid = key("100:US.1");
    let out = feed(&mut book, &bsuid, message(T0, "wamid.A", false), T0);
    let state = out
        .states
        .last()
        .and_then(|(_, _, v)| v.clone())
        .expect("state");
    let contact: Contact = read_state_record(&state).expect("readable");

    // A new tracker restores it long after the window's end.
    let mut restarted = Book::new(cfg());
    restarted.restore_partition(PARTITION, [(bsuid.clone(), contact)].into_iter().collect());
    let mut out = Outbox::default();
    restarted.tick(UnixSeconds(T0 + 3600), &mut out);
    assert_eq!(event_types(&out), ["closed"]);
    // Nothing left to remember: the contact is forgotten with a tombstone.
    assert!(out
        .states
        .iter()
        .any(|(_, k, v)| k == &bsuid && v.is_none()));
    assert!(restarted.contact(PARTITION, &bsuid).is_none());
}

#[test]
fn forwarding_loops_are_cut() {
    let mut book = Book::new(cfg());
    let event = json!({"specversion": "1.0", "type": TYPE_FORWARDED, "id": "f", "data": {"hops": 99, "event": message(T0, "wamid.A", false)}});
    let out = feed(&mut book, &key("100:US.1"), event, T0);
    assert!(out.is_empty());
    assert_eq!(out.unreadable.len(), 1, "the dropped record is reported");
}

#[test]
fn a_dropped_partition_is_forgotten() {
    let mut book = Book::new(cfg());
    let bsuid = key("100:US.1");
    let mut out = Outbox::default();
    book.apply_record(
        3,
        &bsuid,
        &serde_json::to_vec(&message(T0, "wamid.A", false)).expect("JSON"),
        UnixSeconds(T0),
        UnixSeconds(T0),
        &mut out,
    )
    .expect("decodable");
    assert_eq!(book.contact_count(), 1);
    book.drop_partition(3);
    assert_eq!(book.contact_count(), 0);
    let mut out = Outbox::default();
    book.tick(UnixSeconds(T0 + 3600), &mut out);
    assert!(out.is_empty(), "timers of a revoked partition do not fire");
}

#[test]
fn late_arrival_is_judged_by_when_the_receiver_took_it() {
    let mut book = Book::new(cfg());
    let bsuid = key("100:US.1");
    let mut out = Outbox::default();
    // Received on time, processed after the window's end (tracker was down): it opened, and
    // closes at once — nothing is forgotten.
    book.apply_record(
        PARTITION,
        &bsuid,
        &serde_json::to_vec(&message(T0, "wamid.A", false)).expect("JSON"),
        UnixSeconds(T0 + 1),
        UnixSeconds(T0 + 600),
        &mut out,
    )
    .expect("decodable");
    assert_eq!(event_types(&out), ["opened", "closed"]);
    // Received after its window would have ended: opens nothing.
    let out = feed(
        &mut book,
        &key("100:US.9"),
        message(T0, "wamid.Z", false),
        T0 + 61,
    );
    assert!(out.events.is_empty());
}

#[test]
fn a_closed_contact_is_forgotten_with_a_tombstone_once_nothing_can_matter() {
    let mut book = Book::new(cfg());
    let bsuid = key("100:US.1");
    feed(&mut book, &bsuid, message(T0, "wamid.A", false), T0);
    let mut out = Outbox::default();
    for second in T0..T0 + 60 {
        book.tick(UnixSeconds(second + 1), &mut out);
    }
    assert_eq!(event_types(&out), ["closing", "closed"]);
    assert_eq!(
        book.contact_count(),
        1,
        "remembered after the close: a duplicate must not reopen"
    );
    // The timer for forgetting fires without any new input.
    let forget_at = book.next_timer().expect("a timer to forget the contact");
    let mut out = Outbox::default();
    book.tick(forget_at, &mut out);
    assert_eq!(book.contact_count(), 0);
    assert!(
        matches!(out.states.as_slice(), [(_, k, None)] if k == &bsuid),
        "one tombstone"
    );
    assert!(book.next_timer().is_none());
}

#[test]
fn a_timestamp_in_milliseconds_is_refused_and_does_not_poison_the_contact() {
    let mut book = Book::new(cfg());
    let sheena = key("100:US.1");
    let out = feed(
        &mut book,
        &sheena,
        message(T0 * 1000, "wamid.MS", false),
        T0,
    );
    assert!(out.events.is_empty() && out.states.is_empty());
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].1.reason(), "timestamp_ahead");
    // The next message opens the window as if the refused one had never come.
    let out = feed(
        &mut book,
        &sheena,
        message(T0 + 1, "wamid.OK", false),
        T0 + 1,
    );
    assert_eq!(event_types(&out), ["opened"]);
    assert!(out.rejected.is_empty());
}

#[test]
fn an_unreadable_routing_record_is_reported_not_dropped_quietly() {
    let mut book = Book::new(cfg());
    for record_type in [TYPE_MOVED, TYPE_ALIAS, TYPE_FORWARDED] {
        let garbled =
            json!({"specversion": "1.0", "type": record_type, "id": "r", "data": {"windows": 7}});
        let out = feed(&mut book, &key("100:US.1"), garbled, T0);
        assert_eq!(out.unreadable.len(), 1, "{record_type}");
        assert_eq!(out.unreadable[0].1, record_type);
        assert!(out.events.is_empty() && out.states.is_empty());
    }
}

fn user_id_changed(from: &str, to: &str, at: i64) -> Value {
    json!({"specversion": "1.0", "type": "whatsapp.contact.user_id_changed", "id": format!("u{to}"), "data": {
        "phone_number_id": "100", "wa_id": "15550001",
        "user_id_update": {"wa_id": "15550001", "user_id": {"previous": from, "current": to}, "timestamp": at.to_string()}}})
}

/// Applies records as Kafka would: each in turn, and whatever they route is delivered next
/// (before later input). Returns every window event type emitted, by key.
fn run_to_quiet(
    book: &mut Book,
    inputs: Vec<(ContactKey, Value)>,
    at: i64,
) -> Vec<(String, String)> {
    let mut emitted = Vec::new();
    let mut queue: std::collections::VecDeque<(ContactKey, Value)> = inputs.into();
    let mut steps = 0;
    while let Some((key, value)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 100, "routing does not settle");
        let out = feed(book, &key, value, at);
        for event in &out.events {
            emitted.push((event.key.as_str().to_owned(), event.type_name.to_owned()));
        }
        for (target, payload) in out.routed {
            queue.push_back((
                target,
                serde_json::from_slice(&payload).expect("routed JSON"),
            ));
        }
    }
    emitted
}

use proptest::prelude::*;

proptest! {
    /// A -> B, then B -> C (and A -> C directly in some runs), delivered in any order and
    /// interleaved with the message that opened the window: the window ends under C, once.
    #[test]
    fn user_id_changes_in_any_order_end_at_the_newest_id(
        order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        skip_direct in proptest::bool::ANY,
    ) {
        let (a, b, c) = (key("100:US.A"), key("100:US.B"), key("100:US.C"));
        let all = [
            (a.clone(), message(T0, "wamid.A1", false)),
            (a.clone(), user_id_changed("US.A", "US.B", T0 + 1)),
            (b.clone(), user_id_changed("US.B", "US.C", T0 + 2)),
            (a.clone(), user_id_changed("US.A", "US.C", T0 + 2)),
        ];
        let inputs: Vec<(ContactKey, Value)> = order
            .iter()
            .filter(|i| !(skip_direct && **i == 3))
            .map(|i| all[*i].clone())
            .collect();
        let mut book = Book::new(cfg());
        let emitted = run_to_quiet(&mut book, inputs, T0 + 3);
        let opened = emitted.iter().filter(|(_, t)| t == "whatsapp.window.opened").count();
        prop_assert!(opened <= 1, "{emitted:?}");
        let open_under = |k: &ContactKey| {
            book.contact(PARTITION, k)
                .and_then(|c| c.windows.customer_service())
                .is_some_and(|w| w.is_open())
        };
        prop_assert!(open_under(&c), "window not under the newest id: {emitted:?}");
        prop_assert!(!open_under(&a) && !open_under(&b), "{emitted:?}");
    }
}

#[test]
fn a_timestamp_that_is_not_whole_seconds_is_counted_and_never_applied() {
    let mut book = Book::new(cfg());
    let sheena = key("100:US.1");
    for bad in [json!("1795250000.5"), json!("soon"), json!(1_795_250_000.5)] {
        let mut value = message(T0, "wamid.BAD", false);
        value["data"]["message"]["timestamp"] = bad.clone();
        let out = feed(&mut book, &sheena, value, T0);
        assert!(out.events.is_empty(), "{bad}");
        assert_eq!(out.rejected.len(), 1, "{bad}");
        assert_eq!(out.rejected[0].1.reason(), "timestamp_unreadable");
    }
}

// ----- marketing preference -----

fn preference(value: &str, at: i64) -> Value {
    json!({"specversion": "1.0", "type": "whatsapp.change.other", "id": "p", "data": {
        "phone_number_id": "100", "wa_id": "15550001", "user_id": "US.1",
        "field": "user_preferences", "part": "item",
        "value": {"wa_id": "15550001", "user_id": "US.1", "category": "marketing_messages",
                  "value": value, "timestamp": at, "detail": "User requested"}}})
}

fn failed_131050(at: i64) -> Value {
    json!({"specversion": "1.0", "type": "whatsapp.status.updated", "id": "s", "data": {
        "phone_number_id": "100", "wa_id": "15550001", "user_id": "US.1",
        "status": {"id": "wamid.OUT", "status": "failed", "timestamp": at.to_string(),
                   "recipient_user_id": "US.1", "errors": [{"code": 131050}]}}})
}

fn marketing_changes(out: &Outbox) -> Vec<(String, String, String)> {
    out.events
        .iter()
        .filter(|e| e.type_name == "whatsapp.contact.marketing_preference_changed")
        .map(|e| {
            let v: Value = serde_json::from_slice(&e.payload).expect("JSON");
            let text = |field: &str| v["data"][field].as_str().unwrap_or_default().to_owned();
            (text("marketing"), text("since"), text("source"))
        })
        .collect()
}

#[test]
fn a_stop_is_announced_once_and_a_resume_undoes_it() {
    let mut book = Book::new(cfg());
    let bsuid = key("100:US.1");
    let out = feed(&mut book, &bsuid, preference("stop", T0), T0);
    assert_eq!(
        marketing_changes(&out),
        [(
            "opted_out".into(),
            "2026-11-21T08:33:20Z".into(),
            "user_preferences".into()
        )]
    );
    let (_, _, state) = &out.states[0];
    let contact = read_state_record(state.as_deref().expect("state")).expect("readable");
    assert!(contact.marketing.is_some());
    let again = feed(&mut book, &bsuid, preference("stop", T0), T0 + 1);
    assert!(again.is_empty(), "a retried stop changes nothing");
    let older = feed(&mut book, &bsuid, preference("resume", T0 - 5), T0 + 2);
    assert!(marketing_changes(&older).is_empty(), "older than the stop");
    let resumed = feed(&mut book, &bsuid, preference("resume", T0 + 3), T0 + 3);
    assert_eq!(marketing_changes(&resumed)[0].0, "opted_in");
}

#[test]
fn a_failed_marketing_send_131050_opts_the_contact_out() {
    let mut book = Book::new(cfg());
    let bsuid = key("100:US.1");
    let out = feed(&mut book, &bsuid, failed_131050(T0), T0);
    assert_eq!(marketing_changes(&out)[0].0, "opted_out");
    assert_eq!(marketing_changes(&out)[0].2, "error_131050");
    assert!(event_types(&out).iter().all(|t| !t.starts_with("opened")));
}

#[test]
fn the_preference_outlives_forgotten_windows() {
    let mut book = Book::new(cfg());
    let bsuid = key("100:US.1");
    feed(&mut book, &bsuid, message(T0, "wamid.A", false), T0);
    feed(&mut book, &bsuid, preference("stop", T0 + 1), T0 + 1);
    let mut out = Outbox::default();
    for _ in 0..10 {
        let Some(at) = book.next_timer() else { break };
        book.tick(at, &mut out);
    }
    assert!(book.next_timer().is_none(), "nothing left to wait for");
    let contact = book.contact(PARTITION, &bsuid).expect("kept");
    assert_eq!(contact.windows, Default::default(), "windows forgotten");
    assert!(contact.marketing.is_some());
    let last_state = out.states.last().expect("a state record");
    assert!(last_state.2.is_some(), "rewritten, not tombstoned");
}

#[test]
fn the_preference_follows_a_user_id_change() {
    let mut book = Book::new(cfg());
    let old = key("100:US.1");
    let new = key("100:US.2");
    feed(&mut book, &old, preference("stop", T0), T0);
    let change = json!({"specversion": "1.0", "type": "whatsapp.contact.user_id_changed", "id": "u", "data": {
        "phone_number_id": "100", "user_id_update": {"wa_id": "15550001", "user_id": {"previous": "US.1", "current": "US.2"}}}});
    let out = feed(&mut book, &old, change, T0 + 1);
    let arrived = deliver_routed(&mut book, out, T0 + 1);
    assert_eq!(
        marketing_changes(&arrived)[0].0,
        "opted_out",
        "the new id is now opted out"
    );
    assert!(book
        .contact(PARTITION, &new)
        .is_some_and(|c| c.marketing.is_some()));
}

/// The open-window gauge is kept as contacts change, not counted; it must always equal a
/// count, through opens, moves, closes, forgetting and a dropped partition.
#[test]
fn kept_open_window_counts_equal_a_recount() {
    let mut book = Book::new(cfg());
    let check = |book: &Book| assert_eq!(book.open_windows(), book.recount_open_windows());
    for n in 0..5 {
        let customer = key(&format!("100:US.{n}"));
        feed(
            &mut book,
            &customer,
            message(T0 + n, &format!("wamid.{n}"), n % 2 == 0),
            T0 + n,
        );
        check(&book);
    }
    let change = json!({"specversion": "1.0", "type": "whatsapp.contact.user_id_changed", "id": "u", "data": {
        "phone_number_id": "100", "user_id_update": {"wa_id": "15550001", "user_id": {"previous": "US.1", "current": "US.9"}}}});
    let out = feed(&mut book, &key("100:US.1"), change, T0 + 6);
    check(&book);
    deliver_routed(&mut book, out, T0 + 6);
    check(&book);
    assert!(book.open_windows()[0].1 > 0);
    let mut out = Outbox::default();
    for second in T0..T0 + 400 {
        book.tick(UnixSeconds(second), &mut out);
        check(&book);
    }
    assert_eq!(book.open_windows().map(|(_, n)| n), [0, 0, 0]);
    feed(
        &mut book,
        &key("100:US.3"),
        message(T0 + 401, "wamid.x", false),
        T0 + 401,
    );
    check(&book);
    book.drop_partition(PARTITION);
    check(&book);
}

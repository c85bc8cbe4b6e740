//! Deterministic output: the window events are a function of the inbound topic alone. A live
//! tracker is paused, killed and joined by a second member while webhooks come in; a fresh
//! tracker in a new group, with empty state, then replays the inbound topic from the start
//! and must emit the same window events — same ids, same types, same order per contact.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

/// Per contact, the window events in topic order: (id, type).
fn per_contact(records: &[Record]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut contacts: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for event in records.iter().map(Record::json) {
        contacts
            .entry(event["subject"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push((
                event["id"].as_str().unwrap_or_default().to_owned(),
                event["type"].as_str().unwrap_or_default().to_owned(),
            ));
    }
    contacts
}

/// Every customer has had a window, and every window that opened has closed.
fn all_closed(records: &[Record], customers: &[String]) -> bool {
    let contacts = per_contact(records);
    customers.iter().all(|c| {
        contacts.get(c).is_some_and(|events| {
            let count = |wanted: &str| events.iter().filter(|(_, t)| t == wanted).count();
            let opened = count("whatsapp.window.opened");
            opened > 0 && opened == count("whatsapp.window.closed")
        })
    })
}

/// Customer `n` writes again: an extension of its window.
async fn write_again(url: &str, n: usize) {
    let customer = format!("US.66{n:04}");
    let body = text_webhook("66", &customer, &format!("wamid.R{n}b"), now());
    assert_eq!(post_signed(url, &body).await.status(), 200);
}

/// A `sent` status of the business's message to `customer`.
fn business_reply(pnid: &str, customer: &str, wamid: &str, at: i64) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"{pnid}","display_phone_number":"1"}},"statuses":[{{"id":"{wamid}","status":"sent","timestamp":"{at}","recipient_user_id":"{customer}"}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

/// The customer stops marketing messages.
fn marketing_stop(pnid: &str, customer: &str, at: i64) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"user_preferences","value":{{"metadata":{{"phone_number_id":"{pnid}","display_phone_number":"1"}},"user_preferences":[{{"user_id":"{customer}","category":"marketing_messages","value":"stop","timestamp":{at}}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_tracker_replaying_the_inbound_topic_emits_the_same_window_events() {
    let broker = Broker::shared();
    let prefix = unique_prefix("replay");
    let names = topics(&prefix);
    let receiver =
        App::spawn_ready(AppOptions::new("receiver", &broker.bootstrap(), &prefix)).await;
    let tracker = |group: &str, events: &str, state: &str| {
        App::spawn(
            AppOptions::new("tracker", &broker.bootstrap(), &prefix)
                .arg("--service-window", "8s")
                .arg("--free-entry-window", "10s")
                .arg("--closing-lead", "3s")
                .arg("--session-timeout", "6s")
                .arg("--group-id", group)
                .arg("--topic-window-events", events)
                .arg("--topic-window-state", state),
        )
    };
    let live_group = format!("{prefix}.live");
    let live = || tracker(&live_group, &names.events, &names.state);
    let mut first = live();
    first.wait_ready(Duration::from_secs(60)).await;

    // 30 customers, one every 300 ms; every third writes again 2 s later (an extension).
    // Every fifth comes from an ad (a free entry offer), the next from an ad answered by the
    // business a moment later (offer converted, a free entry point opens), the next opts out
    // of marketing.
    let customers: Vec<String> = (0..30).map(|n| format!("66:US.66{n:04}")).collect();
    let url = receiver.webhook_url();
    let load = tokio::spawn(async move {
        let mut extensions = Vec::new();
        for n in 0..30 {
            let customer = format!("US.66{n:04}");
            let mut first = text_webhook("66", &customer, &format!("wamid.R{n}"), now());
            if n % 5 < 2 {
                first = from_an_ad(first);
            }
            let status = post_signed(&url, &first).await.status();
            assert_eq!(status, 200);
            let follow_up = match n % 5 {
                1 => Some(business_reply(
                    "66",
                    &customer,
                    &format!("wamid.S{n}"),
                    now(),
                )),
                2 => Some(marketing_stop("66", &customer, now())),
                _ => None,
            };
            if let Some(body) = follow_up {
                tokio::time::sleep(Duration::from_millis(100)).await;
                assert_eq!(post_signed(&url, &body).await.status(), 200);
            }
            if n % 3 == 0 {
                extensions.push((tokio::time::Instant::now() + Duration::from_secs(2), n));
            }
            while let Some((due, m)) = extensions.first().copied() {
                if due > tokio::time::Instant::now() {
                    break;
                }
                extensions.remove(0);
                write_again(&url, m).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for (due, m) in extensions {
            tokio::time::sleep_until(due).await;
            write_again(&url, m).await;
        }
    });

    // Paused across some warnings, killed, then a second member joins and leaves.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.proc.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    first.proc.signal("-CONT");
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.proc.kill();
    let mut first = live();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut second = live();
    tokio::time::sleep(Duration::from_secs(4)).await;
    second.stop_cleanly(Duration::from_secs(30));
    load.await.expect("load");

    read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(90),
        |r| all_closed(r, &customers),
    );
    first.stop_cleanly(Duration::from_secs(30));
    let live_events = per_contact(&read_to_end(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(60),
    ));

    // A fresh tracker: new group, empty state, its own output topics.
    let replay_events_topic = format!("{prefix}.replay-events");
    let mut replay = tracker(
        &format!("{prefix}.replay"),
        &replay_events_topic,
        &format!("{prefix}.replay-state"),
    );
    replay.wait_ready(Duration::from_secs(60)).await;
    read_until(
        &broker.bootstrap(),
        &replay_events_topic,
        Duration::from_secs(90),
        |r| all_closed(r, &customers),
    );
    replay.stop_cleanly(Duration::from_secs(30));
    let replayed = per_contact(&read_to_end(
        &broker.bootstrap(),
        &replay_events_topic,
        Duration::from_secs(60),
    ));

    let differing: Vec<&String> = customers
        .iter()
        .filter(|c| live_events.get(*c) != replayed.get(*c))
        .collect();
    assert!(
        differing.is_empty(),
        "{} of {} contacts differ, e.g. {:?}:\nlive:   {:#?}\nreplay: {:#?}",
        differing.len(),
        customers.len(),
        differing.first(),
        differing.first().and_then(|c| live_events.get(*c)),
        differing.first().and_then(|c| replayed.get(*c)),
    );
    assert_eq!(live_events.len(), replayed.len(), "the same contacts");
    // The other kinds of output were there to be compared.
    let types: std::collections::BTreeSet<&str> = live_events
        .values()
        .flatten()
        .map(|(id, event_type)| {
            if id.contains(":free_entry_offer:") {
                "offer"
            } else if id.contains(":free_entry_point:") {
                "entry"
            } else {
                event_type.as_str()
            }
        })
        .collect();
    for expected in [
        "offer",
        "entry",
        "whatsapp.contact.marketing_preference_changed",
    ] {
        assert!(types.contains(expected), "no {expected} in {types:?}");
    }
}

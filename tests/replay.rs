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

fn all_closed(records: &[Record], customers: &[String]) -> bool {
    let contacts = per_contact(records);
    customers.iter().all(|c| {
        contacts
            .get(c)
            .is_some_and(|events| events.iter().any(|(_, t)| t == "whatsapp.window.closed"))
    })
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
    let customers: Vec<String> = (0..30).map(|n| format!("66:US.66{n:04}")).collect();
    let url = receiver.webhook_url();
    let load = tokio::spawn(async move {
        let mut extensions = Vec::new();
        for n in 0..30 {
            let customer = format!("US.66{n:04}");
            let status = post_signed(
                &url,
                &text_webhook("66", &customer, &format!("wamid.R{n}"), now()),
            )
            .await
            .status();
            assert_eq!(status, 200);
            if n % 3 == 0 {
                extensions.push((tokio::time::Instant::now() + Duration::from_secs(2), n));
            }
            while let Some((due, m)) = extensions.first().copied() {
                if due > tokio::time::Instant::now() {
                    break;
                }
                extensions.remove(0);
                let customer = format!("US.66{m:04}");
                let status = post_signed(
                    &url,
                    &text_webhook("66", &customer, &format!("wamid.R{m}b"), now()),
                )
                .await
                .status();
                assert_eq!(status, 200);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for (due, m) in extensions {
            tokio::time::sleep_until(due).await;
            let customer = format!("US.66{m:04}");
            let status = post_signed(
                &url,
                &text_webhook("66", &customer, &format!("wamid.R{m}b"), now()),
            )
            .await
            .status();
            assert_eq!(status, 200);
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
}

//! The tracker end to end against a real Apache Kafka broker (scripts/kafka), with windows of
//! seconds: events arrive in order with the right instants, duplicates change nothing, a crash or a
//! departing group member never loses or repeats a close, and Meta's corrections and id changes are
//! followed.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const SHORT: [&str; 4] = ["--service-window", "6s", "--closing-lead", "2s"];

fn short_args(options: AppOptions<'_>) -> AppOptions<'_> {
    options.arg(SHORT[0], SHORT[1]).arg(SHORT[2], SHORT[3])
}

/// `windowkeeper run` on the shared broker with windows of seconds, once ready.
async fn short_run(broker: &Broker, prefix: &str) -> App {
    App::spawn_ready(short_args(AppOptions::new(
        "run",
        &broker.bootstrap(),
        prefix,
    )))
    .await
}

fn events_of(records: &[Record]) -> Vec<Value> {
    records.iter().map(Record::json).collect()
}

fn types_for(events: &[Value], subject: &str, window: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["subject"] == subject && e["data"]["window"] == window)
        .map(|e| {
            e["type"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("whatsapp.window.")
                .to_owned()
        })
        .collect()
}

fn count_closed(records: &[Record], subject: &str) -> usize {
    events_of(records)
        .iter()
        .filter(|e| e["subject"] == subject && e["type"] == "whatsapp.window.closed")
        .count()
}

/// `windowkeeper run` with `options`, once Sheena's customer service window has opened at
/// the returned instant.
async fn run_with_sheena_window(
    broker: &Broker,
    names: &TopicNames,
    options: AppOptions<'_>,
) -> (App, i64) {
    let app = App::spawn_ready(options).await;
    let at = now();
    post_fixture(&app, "text-message.json", at).await;
    read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(20),
        |r| !r.is_empty(),
    );
    (app, at)
}

const SHEENA: &str = "106540352242922:US.13491208655302741918";

#[tokio::test(flavor = "multi_thread")]
async fn window_opens_warns_and_closes_on_time() {
    let broker = Broker::shared();
    let prefix = unique_prefix("csw");
    let names = topics(&prefix);
    let mut app = short_run(&broker, &prefix).await;

    let sent_at = now();
    let body = with_timestamps(&fixture("text-message.json"), sent_at);
    assert_eq!(post_signed(&app.webhook_url(), &body).await.status(), 200);
    // Meta's retry of the same webhook a moment later changes nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(post_signed(&app.webhook_url(), &body).await.status(), 200);

    let records = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(40),
        |r| count_closed(r, SHEENA) >= 1,
    );
    let events = events_of(&records);
    assert_eq!(
        types_for(&events, SHEENA, "customer_service"),
        ["opened", "closing", "closed"],
        "{events:#?}"
    );
    let opened = &events[0];
    assert_eq!(
        opened["data"]["opened_at"],
        windowkeeper::domain::UnixSeconds(sent_at).to_rfc3339()
    );
    assert_eq!(
        opened["data"]["expires_at"],
        windowkeeper::domain::UnixSeconds(sent_at + 6).to_rfc3339()
    );
    assert_eq!(opened["data"]["wa_id"], "16505551234");
    assert_eq!(opened["data"]["user_id"], "US.13491208655302741918");
    let closing = events
        .iter()
        .find(|e| e["type"] == "whatsapp.window.closing")
        .expect("closing");
    assert_eq!(closing["data"]["lead_seconds"], 2);
    assert_eq!(
        closing["time"],
        windowkeeper::domain::UnixSeconds(sent_at + 4).to_rfc3339()
    );
    let closed = events
        .iter()
        .find(|e| e["type"] == "whatsapp.window.closed")
        .expect("closed");
    assert_eq!(closed["data"]["close_reason"], "expired");
    assert_eq!(
        closed["time"],
        windowkeeper::domain::UnixSeconds(sent_at + 6).to_rfc3339()
    );
    validate_events(&events);

    // Stdout of `run` carries every event as one JSON line.
    let printed: Vec<Value> = app
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(printed.len(), 3, "{}", app.stdout());
    app.assert_no_error_lines();

    // The state topic holds the contact's current state, validated too.
    let states = read_until(
        &broker.bootstrap(),
        &names.state,
        Duration::from_secs(10),
        |r| !r.is_empty(),
    );
    let state_events: Vec<Value> = states
        .iter()
        .filter(|r| r.payload.is_some())
        .map(Record::json)
        .collect();
    assert!(!state_events.is_empty());
    validate_events(&state_events);
    app.stop_cleanly(Duration::from_secs(30));
}

/// A tracker killed mid-window and restarted after the window's end closes it, once.
#[tokio::test(flavor = "multi_thread")]
async fn crash_and_restart_closes_exactly_once() {
    let broker = Broker::shared();
    let prefix = unique_prefix("crash");
    let names = topics(&prefix);
    let receiver =
        App::spawn_ready(AppOptions::new("receiver", &broker.bootstrap(), &prefix)).await;
    // Static membership: the restarted instance takes its partitions back at once.
    let instance = |o: AppOptions<'static>| o.arg("--group-instance-id", "tracker-0");
    let mut tracker = App::spawn_ready(instance(short_args(AppOptions::new(
        "tracker",
        &broker.bootstrap(),
        &prefix,
    ))))
    .await;

    let body = with_timestamps(&fixture("text-message.json"), now());
    assert_eq!(
        post_signed(&receiver.webhook_url(), &body).await.status(),
        200
    );
    let opened = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(20),
        |r| !r.is_empty(),
    );
    assert_eq!(opened.len(), 1, "opened before the crash");
    tracker.proc.kill();

    tokio::time::sleep(Duration::from_secs(8)).await;
    let restarted = App::spawn_ready(instance(short_args(AppOptions::new(
        "tracker",
        &broker.bootstrap(),
        &prefix,
    ))))
    .await;
    let records = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
        |r| count_closed(r, SHEENA) >= 1,
    );
    // Give a duplicate time to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let records = read_all(&broker.bootstrap(), &names.events, Duration::from_secs(3))
        .into_iter()
        .chain(records)
        .collect::<Vec<_>>();
    let events = events_of(&records);
    let closed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "whatsapp.window.closed")
        .collect();
    let distinct: std::collections::HashSet<&str> =
        closed.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(
        distinct.len(),
        1,
        "one window, one close: {events:#?}\n{}",
        restarted.stderr()
    );
    // The warning's time passed while the tracker was down and the window is over: skipped.
    assert!(
        events
            .iter()
            .all(|e| e["type"] != "whatsapp.window.closing"),
        "{events:#?}"
    );
}

/// Two trackers share the partitions; when one leaves, the other closes its windows, once.
/// With the classic protocol (cooperative-sticky).
#[tokio::test(flavor = "multi_thread")]
async fn group_member_leaving_hands_over_without_double_close() {
    member_leaving_hands_over("classic").await;
}

/// With KIP-848, the broker-driven protocol of Kafka 4.
#[tokio::test(flavor = "multi_thread")]
async fn group_member_leaving_hands_over_with_the_consumer_protocol() {
    member_leaving_hands_over("consumer").await;
}

async fn member_leaving_hands_over(protocol: &'static str) {
    let broker = Broker::shared();
    let prefix = unique_prefix(&format!("group-{protocol}"));
    let names = topics(&prefix);
    let receiver = App::spawn_ready(
        AppOptions::new("receiver", &broker.bootstrap(), &prefix).arg("--partitions", "4"),
    )
    .await;
    let tracker = || {
        AppOptions::new("tracker", &broker.bootstrap(), &prefix)
            .arg("--partitions", "4")
            .arg("--service-window", "12s")
            .arg("--closing-lead", "3s")
            .arg("--group-protocol", protocol)
    };
    let mut first = App::spawn(tracker());
    let mut second = App::spawn(tracker());
    first.wait_ready(Duration::from_secs(60)).await;
    second.wait_ready(Duration::from_secs(60)).await;
    // Let the group settle with both members.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let at = now();
    let customers: Vec<String> = (0..8).map(|n| format!("US.77{n:04}")).collect();
    for customer in &customers {
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"55","display_phone_number":"1"}},"messages":[{{"id":"wamid.G{customer}","timestamp":"{at}","type":"text","from_user_id":"{customer}","text":{{"body":"hi"}}}}]}}}}]}}]}}"#
        );
        assert_eq!(
            post_signed(&receiver.webhook_url(), body.as_bytes())
                .await
                .status(),
            200
        );
    }
    let opened = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
        |r| r.len() >= 8,
    );
    assert_eq!(opened.len(), 8);
    first.stop_cleanly(Duration::from_secs(30));

    let records = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(60),
        |r| {
            customers
                .iter()
                .all(|c| count_closed(r, &format!("55:{c}")) >= 1)
        },
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records: Vec<Record> = read_all(&broker.bootstrap(), &names.events, Duration::from_secs(3))
        .into_iter()
        .chain(records)
        .collect();
    for customer in &customers {
        let subject = format!("55:{customer}");
        let ids: std::collections::HashSet<String> = events_of(&records)
            .iter()
            .filter(|e| e["subject"] == subject.as_str() && e["type"] == "whatsapp.window.closed")
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect();
        if ids.len() != 1 {
            let states = read_all(&broker.bootstrap(), &names.state, Duration::from_secs(3));
            let inbound = read_all(&broker.bootstrap(), &names.inbound, Duration::from_secs(3));
            let summary = |records: &[Record]| {
                records
                    .iter()
                    .map(|r| {
                        format!(
                            "p{} {:?} {}",
                            r.partition,
                            r.key,
                            r.payload.as_ref().map_or(0, Vec::len)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "{subject} closed {} times\nstate topic:\n{}\ninbound:\n{}\nfirst:\n{}\nsecond:\n{}",
                ids.len(),
                summary(&states),
                summary(&inbound),
                first.stderr(),
                second.stderr()
            );
        }
    }
    let _ = second.proc.terminate(Duration::from_secs(30));
}

/// Meta reports the window closed (131047) for a status that names only the phone number:
/// routed to the BSUID's state, which closes at once. A referral plus a reply opens the FEP.
#[tokio::test(flavor = "multi_thread")]
async fn meta_correction_and_free_entry_point() {
    let broker = Broker::shared();
    let prefix = unique_prefix("meta");
    let names = topics(&prefix);
    let (app, at) = run_with_sheena_window(
        &broker,
        &names,
        AppOptions::new("run", &broker.bootstrap(), &prefix)
            .arg("--service-window", "60s")
            .arg("--free-entry-window", "90s")
            .arg("--closing-lead", "5s"),
    )
    .await;
    // Give the phone-number alias a moment to be in place, then the failed status arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    post_fixture(&app, "failed-131047-status.json", at + 1).await;
    // Referral message then the business's reply: a free entry point window opens.
    post_fixture(&app, "ctwa-referral-message.json", at).await;
    let reply = String::from_utf8(with_timestamps(
        &fixture("fep-reply-sent-status.json"),
        at + 2,
    ))
    .expect("utf8")
    .replace(
        "\"expiration_timestamp\": \"1795509800\"",
        &format!("\"expiration_timestamp\": \"{}\"", at + 2 + 90),
    );
    assert_eq!(
        post_signed(&app.webhook_url(), reply.as_bytes())
            .await
            .status(),
        200
    );

    let ravi = "106540352242922:IN.884422117733";
    let records = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
        |r| {
            count_closed(r, SHEENA) >= 1
                && events_of(r)
                    .iter()
                    .any(|e| e["subject"] == ravi && e["data"]["window"] == "free_entry_point")
        },
    );
    let events = events_of(&records);
    let closed = events
        .iter()
        .find(|e| e["subject"] == SHEENA && e["type"] == "whatsapp.window.closed")
        .expect("closed by Meta");
    assert_eq!(
        closed["data"]["close_reason"], "meta_reported",
        "{events:#?}"
    );
    let fep = events
        .iter()
        .find(|e| e["subject"] == ravi && e["data"]["window"] == "free_entry_point")
        .expect("fep opened");
    assert_eq!(fep["type"], "whatsapp.window.opened");
    assert_eq!(
        fep["data"]["expires_at"],
        windowkeeper::domain::UnixSeconds(at + 92).to_rfc3339()
    );
    // The referral's offer opened with the message and was taken up by the reply.
    assert_eq!(
        types_for(&events, ravi, "free_entry_offer"),
        ["opened", "closed"],
        "{events:#?}"
    );
    let offer_closed = events
        .iter()
        .find(|e| {
            e["subject"] == ravi
                && e["data"]["window"] == "free_entry_offer"
                && e["type"] == "whatsapp.window.closed"
        })
        .expect("offer closed");
    assert_eq!(offer_closed["data"]["close_reason"], "converted");
    assert_eq!(
        offer_closed["data"]["expires_at"],
        windowkeeper::domain::UnixSeconds(at + 2).to_rfc3339()
    );
    validate_events(&events);
}

/// The customer's BSUID changes: the open window follows to the new id and closes there once.
#[tokio::test(flavor = "multi_thread")]
async fn user_id_change_moves_the_window() {
    let broker = Broker::shared();
    let prefix = unique_prefix("move");
    let names = topics(&prefix);
    let (app, at) = run_with_sheena_window(
        &broker,
        &names,
        AppOptions::new("run", &broker.bootstrap(), &prefix)
            .arg("--service-window", "8s")
            .arg("--closing-lead", "2s"),
    )
    .await;
    post_fixture(&app, "user-id-update.json", at + 1).await;
    let new_key = "106540352242922:US.99887766554433221100";
    let records = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(40),
        |r| count_closed(r, new_key) >= 1 || count_closed(r, SHEENA) >= 1,
    );
    let events = events_of(&records);
    assert_eq!(
        count_closed(&records, SHEENA),
        0,
        "the old id's window moved: {events:#?}"
    );
    assert_eq!(count_closed(&records, new_key), 1, "{events:#?}");
    let closed = events
        .iter()
        .find(|e| e["type"] == "whatsapp.window.closed")
        .expect("closed");
    assert_eq!(closed["data"]["user_id"], "US.99887766554433221100");
    assert_eq!(
        closed["data"]["opened_at"],
        windowkeeper::domain::UnixSeconds(at).to_rfc3339()
    );
}

/// A tracker paused (SIGSTOP) across a window's end, while the receiver accepts a message
/// that extends the window: once resumed it closes the window at the extended end, once, and
/// never at the original end — the extension was appended before that end.
#[tokio::test(flavor = "multi_thread")]
async fn paused_tracker_never_closes_a_window_its_backlog_extended() {
    let broker = Broker::shared();
    let prefix = unique_prefix("pause");
    let names = topics(&prefix);
    let receiver =
        App::spawn_ready(AppOptions::new("receiver", &broker.bootstrap(), &prefix)).await;
    let mut tracker = App::spawn_ready(short_args(AppOptions::new(
        "tracker",
        &broker.bootstrap(),
        &prefix,
    )))
    .await;

    let first = now();
    let message = |at: i64, wamid: &str| {
        with_wamid(with_timestamps(&fixture("text-message.json"), at), wamid)
    };
    let post = |body: Vec<u8>| {
        let url = receiver.webhook_url();
        async move { post_signed(&url, &body).await.status() }
    };
    assert_eq!(post(message(first, "P1")).await, 200);
    // The window has opened by then (the tracker is ready and idle).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tracker.proc.signal("-STOP");
    // The customer writes again before the first window's warning is due (first + 4).
    let second = now();
    assert!(second < first + 4, "the test itself was too slow");
    assert_eq!(post(message(second, "P2")).await, 200);
    // Resume well after both ends.
    let resume_at = second + 6 + 4;
    tokio::time::sleep(Duration::from_secs((resume_at - now()).max(0) as u64)).await;
    tracker.proc.signal("-CONT");

    read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
        |r| count_closed(r, SHEENA) >= 1,
    );
    tracker.stop_cleanly(Duration::from_secs(30));
    let events = events_of(&read_to_end(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
    ));
    // One window: opened once, closed once at the extended end. (Its warning is skipped
    // when the tracker resumes after the window is over, as after any downtime.)
    let types = types_for(&events, SHEENA, "customer_service");
    assert_eq!(
        types.iter().filter(|t| *t == "opened").count(),
        1,
        "{events:#?}"
    );
    let closed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "whatsapp.window.closed")
        .collect();
    assert_eq!(closed.len(), 1, "{events:#?}");
    assert_eq!(
        closed[0]["time"],
        windowkeeper::domain::UnixSeconds(second + 6).to_rfc3339(),
        "closed at the extended end, not at the original one"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["type"] == "whatsapp.window.closing")
            .all(|e| e["data"]["expires_at"] == closed[0]["time"]),
        "{events:#?}"
    );
}

/// `--processing-guarantee at-least-once` (brokers without transactions): the same window,
/// through the tracker's own idempotent producer and plain offset commits.
#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_opens_warns_and_closes() {
    let broker = Broker::shared();
    let prefix = unique_prefix("alo");
    let names = topics(&prefix);
    let options = short_args(AppOptions::new("run", &broker.bootstrap(), &prefix))
        .arg("--processing-guarantee", "at-least-once");
    let (mut app, _) = run_with_sheena_window(&broker, &names, options).await;
    read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
        |r| count_closed(r, SHEENA) >= 1,
    );
    app.stop_cleanly(Duration::from_secs(30));
    let events = events_of(&read_to_end(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
    ));
    assert_eq!(
        types_for(&events, SHEENA, "customer_service"),
        ["opened", "closing", "closed"],
        "{events:#?}"
    );
    app.assert_no_error_lines();
}

/// A timestamp in milliseconds (and one that is not a number) is never applied: counted by
/// reason, and the contact's next message opens its window as if they had never come.
#[tokio::test(flavor = "multi_thread")]
async fn implausible_timestamps_are_counted_and_do_not_poison_the_contact() {
    let broker = Broker::shared();
    let prefix = unique_prefix("sanity");
    let names = topics(&prefix);
    let mut app = short_run(&broker, &prefix).await;
    let at = now();
    let milliseconds = with_wamid(
        with_timestamps(&fixture("text-message.json"), at * 1000),
        "MS",
    );
    assert_eq!(
        post_signed(&app.webhook_url(), &milliseconds)
            .await
            .status(),
        200
    );
    let text = String::from_utf8(with_wamid(fixture("text-message.json"), "TEXT"))
        .expect("utf-8")
        .replace("\"timestamp\": \"1795250000\"", "\"timestamp\": \"soon\"");
    assert_eq!(
        post_signed(&app.webhook_url(), text.as_bytes())
            .await
            .status(),
        200
    );
    let good = with_wamid(with_timestamps(&fixture("text-message.json"), at), "OK");
    assert_eq!(post_signed(&app.webhook_url(), &good).await.status(), 200);

    let records = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(20),
        |r| !r.is_empty(),
    );
    let opened = &events_of(&records)[0];
    assert_eq!(opened["type"], "whatsapp.window.opened");
    assert_eq!(
        opened["data"]["opened_at"],
        windowkeeper::domain::UnixSeconds(at).to_rfc3339()
    );
    // Counted just after the commit that made the event visible: wait for the counts.
    let counted = |metrics: &str| {
        ["timestamp_ahead", "timestamp_unreadable"]
            .iter()
            .all(|reason| {
                metrics.contains(&format!(
                    "windowkeeper_rejected_inputs_total{{reason=\"{reason}\"}}"
                ))
            })
    };
    let metrics = app.metrics_when(Duration::from_secs(10), counted).await;
    for reason in ["timestamp_ahead", "timestamp_unreadable"] {
        assert!(
            metrics.contains(&format!(
                "windowkeeper_rejected_inputs_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason} counted once:\n{metrics}"
        );
    }
    app.stop_cleanly(Duration::from_secs(30));
}

/// Two BSUID changes, A -> B then B -> C, delivered in reverse order: the window that opened
/// under A ends under C, opened once and closed once.
#[tokio::test(flavor = "multi_thread")]
async fn user_id_changes_delivered_in_reverse_order_end_at_the_newest_id() {
    let broker = Broker::shared();
    let prefix = unique_prefix("reverse");
    let names = topics(&prefix);
    let mut app = short_run(&broker, &prefix).await;
    let at = now();
    post_fixture(&app, "text-message.json", at).await;
    let change = |previous: &str, current: &str, at: i64| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"user_id_update","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"user_id_update":[{{"wa_id":"16505551234","user_id":{{"previous":"{previous}","current":"{current}"}},"timestamp":"{at}"}}]}}}}]}}]}}"#
        )
    };
    let (a, b, c) = ("US.13491208655302741918", "US.B2", "US.C3");
    for body in [change(b, c, at + 2), change(a, b, at + 1)] {
        assert_eq!(
            post_signed(&app.webhook_url(), body.as_bytes())
                .await
                .status(),
            200
        );
    }
    let newest = format!("106540352242922:{c}");
    read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
        |r| count_closed(r, &newest) >= 1,
    );
    app.stop_cleanly(Duration::from_secs(30));
    let records = read_to_end(&broker.bootstrap(), &names.events, Duration::from_secs(30));
    let events = events_of(&records);
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind && e["data"]["window"] == "customer_service")
            .count()
    };
    assert_eq!(count("whatsapp.window.opened"), 1, "{events:#?}");
    assert_eq!(count("whatsapp.window.closed"), 1, "{events:#?}");
    assert_eq!(count_closed(&records, &newest), 1, "{events:#?}");
}

/// A second member joining takes partitions from the first without the first re-reading
/// the state of the partitions it keeps (incremental rebalancing).
#[tokio::test(flavor = "multi_thread")]
async fn a_member_joining_moves_only_the_partitions_that_change_owner() {
    for protocol in ["classic", "consumer"] {
        let broker = Broker::shared();
        let prefix = unique_prefix(&format!("join-{protocol}"));
        let tracker = || {
            App::spawn(
                AppOptions::new("tracker", &broker.bootstrap(), &prefix)
                    .arg("--partitions", "4")
                    .arg("--group-protocol", protocol),
            )
        };
        let mut first = tracker();
        first.wait_ready(Duration::from_secs(60)).await;
        let mut second = tracker();
        second.wait_ready(Duration::from_secs(60)).await;
        // Let the rebalance finish on both sides.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let restores = |app: &App| {
            app.stderr()
                .lines()
                .filter(|l| l.contains("state restored"))
                .count()
        };
        assert_eq!(
            restores(&first),
            1,
            "{protocol}: the first member restored again:\n{}",
            first.stderr()
        );
        assert!(
            first.stderr().contains("partitions revoked"),
            "{protocol}: the first member gave partitions away:\n{}",
            first.stderr()
        );
        second.stop_cleanly(Duration::from_secs(30));
        first.stop_cleanly(Duration::from_secs(30));
    }
}

/// The previous owner's last batch is committed but its commit markers are not all written
/// when the next owner restores (Kafka writes them partition by partition, and the group's
/// offsets can show before the state records do). The restore waits for the state topic's open
/// transaction instead of ending before it: the window that batch holds is known to the new
/// owner, which closes it once.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_waits_for_a_transaction_still_open_on_the_state_topic() {
    use rdkafka::producer::{BaseRecord, Producer};
    use windowkeeper::domain::{ContactKey, MessageId, UnixSeconds};
    use windowkeeper::kafka::partition_for_key;
    use windowkeeper::tracker::records::{state_record, Contact};
    use windowkeeper::window::{ContactWindows, Input, WindowConfig};

    let broker = Broker::shared();
    let prefix = unique_prefix("open-txn");
    let names = topics(&prefix);
    // Creates the topics.
    let mut app = App::spawn_ready(short_args(AppOptions::new(
        "tracker",
        &broker.bootstrap(),
        &prefix,
    )))
    .await;
    app.stop_cleanly(Duration::from_secs(30));

    // A window opened just now, as the previous owner's last batch recorded it.
    let customer = "US.13491208655302741918";
    let key = ContactKey::from_raw(&format!("106540352242922:{customer}"));
    let opened = now();
    let config = WindowConfig::new(10, 259_200, [2], false);
    let mut windows = ContactWindows::default();
    let input = Input::CustomerMessage {
        id: MessageId::new("wamid.open-transaction"),
        at: UnixSeconds(opened),
        referral: false,
    };
    windows.apply(&input, UnixSeconds(opened), &config, &mut Vec::new());
    let contact = Contact {
        windows,
        ..Contact::default()
    };
    let value = state_record(&key, &contact, UnixSeconds(opened));
    let producer = transactional_producer(&broker.bootstrap(), &format!("{prefix}.previous-owner"));
    producer.begin_transaction().expect("begin");
    producer
        .send(
            BaseRecord::to(&names.state)
                .key(key.as_str())
                .payload(&value)
                .partition(partition_for_key(key.as_str(), 3)),
        )
        .map_err(|(error, _)| error)
        .expect("state record queued");
    producer.flush(Duration::from_secs(30)).expect("written");

    // The next owner starts while the transaction is open, and it is committed once that
    // owner has its partitions: when it says it waits, or (wrongly) that it restored.
    let mut app = App::spawn(short_args(AppOptions::new(
        "tracker",
        &broker.bootstrap(),
        &prefix,
    )));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !["transaction open; waiting", "state restored"]
        .iter()
        .any(|line| app.stderr().contains(line))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no restore began:\n{}",
            app.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    producer
        .commit_transaction(Duration::from_secs(30))
        .expect("commit");
    app.wait_ready(Duration::from_secs(60)).await;

    let subject = key.as_str();
    let records = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
        |records| count_closed(records, subject) >= 1,
    );
    app.stop_cleanly(Duration::from_secs(30));
    assert!(
        app.stderr()
            .contains("state partitions had a transaction open; restoring now that it ended"),
        "the restore says it waited:\n{}",
        app.stderr()
    );
    // (Its warning is skipped if the window ended before the restore did.)
    let types = types_for(&events_of(&records), subject, "customer_service");
    assert!(
        types == ["closing", "closed"] || types == ["closed"],
        "the restored window closed once: {types:?}\n{}",
        app.stderr()
    );
}

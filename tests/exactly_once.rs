//! Exactly once, as a `read_committed` consumer of the window events sees it: every window
//! opened and closed exactly once (records counted, not distinct ids) while a tracker is
//! killed under load, a second one joins and leaves, and the broker itself restarts.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::sync::Mutex;

#[tokio::test(flavor = "multi_thread")]
async fn each_window_event_once_across_kill_join_leave_and_broker_restart() {
    let mut broker = Broker::own();
    let prefix = unique_prefix("eos");
    let names = topics(&prefix);
    let receiver = App::spawn_ready(
        AppOptions::new("receiver", &broker.bootstrap(), &prefix).arg("--publish-timeout", "3s"),
    )
    .await;
    let tracker = || {
        App::spawn(
            AppOptions::new("tracker", &broker.bootstrap(), &prefix)
                .arg("--service-window", "10s")
                .arg("--closing-lead", "3s")
                .arg("--session-timeout", "6s"),
        )
    };
    let mut first = tracker();
    first.wait_ready(Duration::from_secs(60)).await;

    // Four clients, each with a new customer every 100 ms for about 14 s; Meta retries
    // whatever is refused.
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 120;
    // (contact key, came from an ad: a free entry offer opens beside the window)
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, bool)>::new()));
    let mut load = Vec::new();
    for client_number in 0..CLIENTS {
        let acknowledged = acknowledged.clone();
        let url = receiver.webhook_url();
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..PER_CLIENT {
                let customer = format!("US.9{client_number}{n:04}");
                // Meta retries the same payload: a retry is a duplicate, never a newer message.
                let mut body = text_webhook("88", &customer, &format!("wamid.X{customer}"), now());
                if n % 4 == 0 {
                    body = from_an_ad(body);
                }
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let status = client
                        .post(&url)
                        .header("x-hub-signature-256", sign(&body))
                        .body(body.clone())
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    if matches!(status, Ok(200)) {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{customer} never accepted");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                acknowledged
                    .lock()
                    .await
                    .push((format!("88:{customer}"), n % 4 == 0));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    // Killed twice under load: the second time while it restores or catches up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.proc.kill();
    let mut first = tracker();
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.proc.kill();
    let mut first = tracker();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut second = tracker();
    tokio::time::sleep(Duration::from_secs(4)).await;
    second.stop_cleanly(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.restart();
    for client in load {
        client.await.expect("load");
    }
    let customers = acknowledged.lock().await.clone();
    assert_eq!(customers.len(), CLIENTS * PER_CLIENT);

    // Until every window has closed, then stop the tracker so nothing more can come.
    let closed_all = |records: &[Record]| {
        let mut closed: HashMap<String, usize> = HashMap::new();
        for event in records.iter().map(Record::json) {
            if event["type"] == "whatsapp.window.closed" {
                *closed
                    .entry(event["subject"].as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
        }
        customers.iter().all(|(c, from_ad)| {
            let windows = 1 + usize::from(*from_ad);
            closed.get(c).copied().unwrap_or_default() >= windows
        })
    };
    read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(120),
        closed_all,
    );
    first.stop_cleanly(Duration::from_secs(30));
    let records = read_to_end(&broker.bootstrap(), &names.events, Duration::from_secs(60));

    let mut counts: HashMap<(String, String, String), usize> = HashMap::new();
    for event in records.iter().map(Record::json) {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let key = (
            text(&event["subject"]),
            text(&event["data"]["window"]),
            text(&event["type"]),
        );
        *counts.entry(key).or_default() += 1;
    }
    let mut wrong = Vec::new();
    for (customer, from_ad) in &customers {
        let windows: &[&str] = if *from_ad {
            &["customer_service", "free_entry_offer"]
        } else {
            &["customer_service"]
        };
        for window in windows {
            for (kind, allowed) in [
                ("whatsapp.window.opened", 1..=1),
                ("whatsapp.window.closing", 0..=1),
                ("whatsapp.window.closed", 1..=1),
            ] {
                let n = counts
                    .get(&(customer.clone(), (*window).to_owned(), kind.to_owned()))
                    .copied()
                    .unwrap_or_default();
                if !allowed.contains(&n) {
                    wrong.push(format!("{customer} {window} {kind} x{n}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} windows not exactly once: {:?}\nfirst tracker:\n{}",
        wrong.len(),
        customers.len(),
        &wrong[..wrong.len().min(10)],
        first.stderr()
    );
}

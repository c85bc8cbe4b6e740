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

/// The test's windows last 10 s; a message whose 200 came this long after its first attempt may
/// have been stored after its window was already over.
const MAY_ARRIVE_LATE: Duration = Duration::from_secs(8);

#[derive(Clone)]
struct Acknowledged {
    contact: String,
    /// A free entry offer opens beside the window.
    from_ad: bool,
    late: bool,
}

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
    let acknowledged = Arc::new(Mutex::new(Vec::<Acknowledged>::new()));
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
                let first_sent = Instant::now();
                let deadline = first_sent + Duration::from_secs(60);
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
                acknowledged.lock().await.push(Acknowledged {
                    contact: format!("88:{customer}"),
                    from_ad: n % 4 == 0,
                    late: first_sent.elapsed() >= MAY_ARRIVE_LATE,
                });
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
        customers.iter().filter(|c| !c.late).all(|c| {
            let windows = 1 + usize::from(c.from_ad);
            closed.get(&c.contact).copied().unwrap_or_default() >= windows
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
    for customer in &customers {
        let windows: &[&str] = if customer.from_ad {
            &["customer_service", "free_entry_offer"]
        } else {
            &["customer_service"]
        };
        for window in windows {
            let count = |kind: &str| {
                counts
                    .get(&(
                        customer.contact.clone(),
                        (*window).to_owned(),
                        format!("whatsapp.window.{kind}"),
                    ))
                    .copied()
                    .unwrap_or_default()
            };
            let (opened, closing, closed) = (count("opened"), count("closing"), count("closed"));
            // A message stored once its window was already over opens nothing (the late rule).
            let expected = if customer.late { 0..=1 } else { 1..=1 };
            if !expected.contains(&opened) || closed != opened || closing > opened {
                wrong.push(format!(
                    "{} {window}: opened x{opened}, closing x{closing}, closed x{closed}{}",
                    customer.contact,
                    if customer.late { " (late)" } else { "" }
                ));
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

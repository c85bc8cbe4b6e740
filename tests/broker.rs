//! What only a real Apache Kafka broker can show: the state topic really compacts and a
//! restore after compaction gives the same windows, transactions are available, a broker
//! restart under load loses no acknowledged webhook, and static membership hands a restarted
//! tracker its partitions back at once.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::Value;
use tokio::sync::Mutex;

const SHEENA: &str = "106540352242922:US.13491208655302741918";

fn events_for(records: &[Record], subject: &str) -> Vec<Value> {
    records
        .iter()
        .map(Record::json)
        .filter(|e| e["subject"] == subject)
        .collect()
}

/// The state topic, created before windowkeeper starts (it keeps existing topics) with
/// segments that roll every half second and a cleaner that compacts at once.
async fn create_fast_compacting_topics(bootstrap: &str, names: &TopicNames) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let state = NewTopic::new(&names.state, 3, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "500")
        .set("min.cleanable.dirty.ratio", "0.001")
        .set("delete.retention.ms", "100");
    let inbound = NewTopic::new(&names.inbound, 3, TopicReplication::Fixed(1));
    for result in admin
        .create_topics(&[state, inbound], &AdminOptions::new())
        .await
        .expect("create topics")
    {
        result.expect("topic created");
    }
}

/// Records a fresh read of the topic returns, and the offsets written, per partition.
fn read_counts(bootstrap: &str, topic: &str) -> HashMap<i32, (usize, i64)> {
    let records = read_all(bootstrap, topic, Duration::from_secs(3));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "windowkeeper-tests")
        .create()
        .expect("consumer");
    (0..3)
        .map(|partition| {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(5))
                .expect("watermarks");
            let read = records.iter().filter(|r| r.partition == partition).count();
            (partition, (read, high))
        })
        .collect()
}

/// Many updates of one contact's window; once the broker has compacted them away, a new
/// tracker restores the window from what is left and closes it exactly when the live one
/// would have, once, without reopening it.
#[tokio::test(flavor = "multi_thread")]
async fn state_topic_compacts_and_restore_after_compaction_gives_the_same_window() {
    let broker = Broker::shared();
    let prefix = unique_prefix("compact");
    let names = topics(&prefix);
    create_fast_compacting_topics(&broker.bootstrap(), &names).await;
    let options = || {
        AppOptions::new("run", &broker.bootstrap(), &prefix)
            .arg("--service-window", "20s")
            .arg("--closing-lead", "3s")
    };
    let mut app = App::spawn_ready(options()).await;

    // Each message extends the window, so each is a new state record of the same key; keep
    // writing until the broker has compacted some away (fewer records than offsets).
    let started = Instant::now();
    let mut last_at = 0;
    let mut sent = 0;
    let compacted = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the state topic never compacted: {:?}",
            read_counts(&broker.bootstrap(), &names.state)
        );
        for _ in 0..5 {
            last_at = now();
            // A new wamid for each, or it would be Meta's retry of the same message.
            let body = with_wamid(
                with_timestamps(&fixture("text-message.json"), last_at),
                &format!("C{sent}"),
            );
            assert_eq!(post_signed(&app.webhook_url(), &body).await.status(), 200);
            sent += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let counts = read_counts(&broker.bootstrap(), &names.state);
        if counts.values().any(|(read, high)| (*read as i64) < *high) {
            break counts;
        }
    };
    let written: i64 = compacted.values().map(|(_, high)| high).sum();
    assert!(
        written >= 5,
        "every extension writes state: {compacted:?} after {sent} messages"
    );

    // A crash, and a new tracker that has only the compacted topic to go by.
    app.proc.kill();
    let mut restarted = App::spawn_ready(options()).await;
    read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(60),
        |r| {
            events_for(r, SHEENA)
                .iter()
                .any(|e| e["type"] == "whatsapp.window.closed")
        },
    );
    // Then stop the tracker, so that everything it will ever write is counted.
    restarted.stop_cleanly(Duration::from_secs(30));
    let records = read_to_end(&broker.bootstrap(), &names.events, WAIT_LONG);
    let events = events_for(&records, SHEENA);
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        ONE_WINDOW,
        "one window over the crash and the compaction:\n{events:#?}\n{}",
        restarted.stderr()
    );
    let closed = &events[2];
    assert_eq!(
        closed["time"],
        windowkeeper::domain::UnixSeconds(last_at + 20).to_rfc3339(),
        "the restored window ends where the last message put it"
    );
}

/// The broker offers transactions: a committed one is seen by a read_committed consumer, an
/// aborted one is not.
#[tokio::test(flavor = "multi_thread")]
async fn transactions_commit_and_abort() {
    let broker = Broker::shared();
    let topic = format!("{}.transactions", unique_prefix("txn"));
    let producer = transactional_producer(&broker.bootstrap(), &format!("{topic}.producer"));
    let send_in_transaction = |value: &str, commit: bool| {
        producer.begin_transaction().expect("begin");
        producer
            .send(BaseRecord::<str, str>::to(&topic).key("k").payload(value))
            .map_err(|(e, _)| e)
            .expect("send");
        if commit {
            producer
                .commit_transaction(Duration::from_secs(30))
                .expect("commit");
        } else {
            producer
                .abort_transaction(Duration::from_secs(30))
                .expect("abort");
        }
    };
    send_in_transaction("committed", true);
    send_in_transaction("aborted", false);
    send_in_transaction("marker", true);

    let records = read_until(&broker.bootstrap(), &topic, Duration::from_secs(30), |r| {
        r.iter().any(|x| x.payload.as_deref() == Some(b"marker"))
    });
    let values: Vec<String> = records
        .iter()
        .filter_map(|r| r.payload.as_deref())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert_eq!(values, ["committed", "marker"]);
}

/// The broker is killed (SIGKILL) and restarted on its data directory while webhooks keep
/// coming from several clients that retry like Meta: every webhook that got a 200 is on the
/// topic afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_under_load_loses_no_acknowledged_webhook() {
    let mut broker = Broker::own();
    let prefix = unique_prefix("restart");
    let names = topics(&prefix);
    let mut app = App::spawn_ready(
        AppOptions::new("receiver", &broker.bootstrap(), &prefix).arg("--publish-timeout", "2s"),
    )
    .await;

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop_at = Instant::now() + Duration::from_secs(25);
    let url = app.webhook_url();
    let mut clients = Vec::new();
    for client in 0..4 {
        let acknowledged = acknowledged.clone();
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            let mut refused = 0;
            while Instant::now() < stop_at {
                let wamid = format!("wamid.LOAD{client}x{n}");
                let body = text_webhook("77", &format!("US.{client}{n:05}"), &wamid, 1_795_250_000);
                // Meta retries a refused webhook until it gets a 200.
                loop {
                    match reqwest::Client::new()
                        .post(&url)
                        .header("x-hub-signature-256", sign(&body))
                        .body(body.clone())
                        .send()
                        .await
                        .map(|r| r.status())
                    {
                        Ok(status) if status == 200 => break,
                        _ => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                acknowledged.lock().await.push(format!("message:{wamid}"));
                n += 1;
            }
            refused
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before_kill = acknowledged.lock().await.len();
    broker.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart();
    let mut refused = 0;
    for client in clients {
        refused += client.await.expect("client task");
    }
    let acknowledged = acknowledged.lock().await.clone();
    assert!(before_kill > 0, "load was running before the kill");
    assert!(refused > 0, "the outage was seen by the clients");
    assert!(
        acknowledged.len() > before_kill,
        "webhooks were acknowledged after the restart"
    );

    // Every acknowledgement came before this read's ends were asked.
    let records = read_to_end(&broker.bootstrap(), &names.inbound, WAIT_LONG);
    let mut on_topic: HashMap<String, usize> = HashMap::new();
    for record in &records {
        if let Some(id) = record.json()["id"].as_str() {
            *on_topic.entry(id.to_owned()).or_default() += 1;
        }
    }
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !on_topic.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged webhooks are not on the topic, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        missing.first()
    );
    app.stop_cleanly(Duration::from_secs(30));
}

const WAIT_LONG: Duration = Duration::from_secs(60);

/// Static membership: a tracker restarted under the same `--group-instance-id` is handed its
/// partitions back at once, not after its predecessor's session times out (30 s here).
#[tokio::test(flavor = "multi_thread")]
async fn static_membership_hands_a_restarted_tracker_its_partitions_back() {
    let broker = Broker::shared();
    let prefix = unique_prefix("static");
    let tracker = || {
        App::spawn(
            AppOptions::new("tracker", &broker.bootstrap(), &prefix)
                .arg("--group-instance-id", "tracker-0")
                .arg("--session-timeout", "30s"),
        )
    };
    let mut first = tracker();
    first.wait_ready(Duration::from_secs(60)).await;
    // Give the group time to settle and the member to heartbeat as assigned.
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.proc.kill();

    let restarted_at = Instant::now();
    let mut second = tracker();
    second.wait_ready(Duration::from_secs(60)).await;
    let took = restarted_at.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the restarted instance waited {took:?} for its partitions, as if it were a new member"
    );
    assert!(
        second.stderr().contains("state restored"),
        "{}",
        second.stderr()
    );
    second.stop_cleanly(Duration::from_secs(30));
}

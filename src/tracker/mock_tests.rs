//! The tracker's loop against librdkafka's in-process mock cluster, which can be told to
//! fail a request: what a batch whose write fails leaves behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Tracker, TYPE_ALIAS};
use crate::config::{GroupProtocol, KafkaSettings, ProcessingGuarantee, Topics, TrackerSettings};
use crate::domain::UnixSeconds;
use crate::kafka::{OutboundRecord, Publisher, CLOUDEVENT_HEADERS};
use crate::metrics::{KafkaOperation, Metrics, OperationLabels, ReasonLabels, TypeLabels};
use crate::window::WindowConfig;

fn kafka_errors(metrics: &Metrics, operation: KafkaOperation) -> u64 {
    metrics
        .kafka_errors
        .get_or_create(&OperationLabels {
            operation: operation.as_str(),
        })
        .get()
}

fn rejected(metrics: &Metrics, reason: &'static str) -> u64 {
    metrics
        .rejected_inputs
        .get_or_create(&ReasonLabels { reason })
        .get()
}

fn opened(metrics: &Metrics) -> u64 {
    metrics
        .window_events
        .get_or_create(&TypeLabels {
            r#type: "whatsapp.window.opened".into(),
        })
        .get()
}

async fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publish(publisher: &Publisher, topic: &str, records: &[(&str, Vec<u8>)]) {
    let records: Vec<OutboundRecord<'_>> = records
        .iter()
        .map(|(key, payload)| OutboundRecord {
            topic,
            key: Some(key),
            payload: Some(payload),
            partition: None,
            headers: CLOUDEVENT_HEADERS,
        })
        .collect();
    publisher.publish_all(&records).await.expect("published");
}

fn message(customer: &str, timestamp: &str) -> Vec<u8> {
    let event = json!({"specversion": "1.0", "type": "whatsapp.message.received",
        "id": format!("message:wamid.{customer}"), "data": {"phone_number_id": "100",
        "wa_id": customer, "message": {"id": format!("wamid.{customer}"),
        "timestamp": timestamp, "type": "text"}}});
    serde_json::to_vec(&event).expect("JSON")
}

/// The first transaction aborts, so its batch is read and applied again: each record the
/// tracker cannot use is still counted once, when the batch that holds it commits.
#[tokio::test(flavor = "multi_thread")]
async fn a_rewound_batch_counts_its_unusable_records_once() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let topics = Topics {
        inbound: "inbound".into(),
        window_events: "window-events".into(),
        window_state: "window-state".into(),
        deadletter: "deadletter".into(),
    };
    for topic in [
        &topics.inbound,
        &topics.window_events,
        &topics.window_state,
        &topics.deadletter,
    ] {
        cluster.create_topic(topic, 1, 1).expect("topic");
    }
    let kafka = KafkaSettings {
        brokers: cluster.bootstrap_servers(),
        properties: Vec::new(),
        max_record_bytes: 1 << 20,
        topics: topics.clone(),
        partitions: 1,
        replication_factor: 1,
        publish_timeout: Duration::from_secs(10),
    };
    let publisher = Arc::new(Publisher::new(&kafka).expect("publisher"));
    let garbled_alias =
        json!({"specversion": "1.0", "type": TYPE_ALIAS, "id": "r", "data": {"windows": 7}});
    publish(
        &publisher,
        &topics.inbound,
        &[
            ("100:15550001", b"{not JSON".to_vec()),
            (
                "100:15550001",
                serde_json::to_vec(&garbled_alias).expect("JSON"),
            ),
            ("100:15550001", message("15550001", "soon")),
        ],
    )
    .await;
    // A permanent error on the first EndTxn: the commit fails and the transaction is aborted.
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_REQUEST],
    );

    let metrics = Arc::new(Metrics::new());
    let settings = TrackerSettings {
        windows: WindowConfig::new(60, 120, [10], false),
        group_id: "tracker".into(),
        group_instance_id: None,
        // Long: a rebalance would restart the partition from its start (below), a re-read
        // this test does not expect.
        session_timeout: Duration::from_secs(30),
        group_protocol: GroupProtocol::Classic,
        processing_guarantee: ProcessingGuarantee::ExactlyOnce,
    };
    let tracker =
        Tracker::new(&kafka, settings, publisher.clone(), metrics.clone(), false).expect("tracker");
    let stop = CancellationToken::new();
    let running = tokio::spawn(tracker.run(stop.clone()));

    wait_until(
        "the first transaction aborted",
        Duration::from_secs(30),
        || kafka_errors(&metrics, KafkaOperation::Transaction) > 0,
    )
    .await;
    // The mock keeps no offsets sent in a transaction, so the rewind goes back to the
    // partition's start: to these same records. This one lies behind them: once its window is
    // counted as opened (after its batch committed), they have been applied again.
    let now = UnixSeconds::now().0.to_string();
    publish(
        &publisher,
        &topics.inbound,
        &[("100:15550002", message("15550002", &now))],
    )
    .await;
    wait_until(
        "the later batch committed and the unusable records counted",
        Duration::from_secs(30),
        || {
            opened(&metrics) > 0
                && kafka_errors(&metrics, KafkaOperation::Decode) >= 2
                && rejected(&metrics, "timestamp_unreadable") > 0
        },
    )
    .await;

    assert_eq!(kafka_errors(&metrics, KafkaOperation::Transaction), 1);
    assert_eq!(
        kafka_errors(&metrics, KafkaOperation::Decode),
        2,
        "the record that is not JSON and the unreadable routing record, once each"
    );
    assert_eq!(rejected(&metrics, "timestamp_unreadable"), 1);
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the tracker stops");
    assert!(matches!(stopped, Ok(Ok(()))), "the tracker stops cleanly");
}

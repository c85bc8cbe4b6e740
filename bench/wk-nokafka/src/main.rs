//! windowkeeper's webhook path with Kafka taken out, for bench/http-compare.sh.
//!
//! windowkeeper has no mode without Kafka, so this harness rebuilds the receiver's POST path
//! from the crate's public API: the same HTTP serve loop (`windowkeeper::http::serve`, with the
//! receiver's limits), axum routing, the same bounded body read, a concurrency slot,
//! `windowkeeper::ingest::signature::verify` and `windowkeeper::ingest::normalize::normalize` (which builds
//! every serialized CloudEvent), and then 200 instead of publishing. What it does NOT include:
//! the publish (librdkafka produce + waiting for acks=all) and the metrics/tracing calls.
//!
//! Usage: wk-nokafka 127.0.0.1:PORT APP_SECRET [--publish BROKERS TOPIC LINGER_MS]
//!
//! With `--publish` (an experiment for BENCHMARKS.md, not a mode of windowkeeper) the events are
//! published before the 200 through `windowkeeper::kafka::publish_all` with the receiver's
//! producer settings (acks=all, idempotence, murmur2_random) except `linger.ms`, to measure
//! what the receiver's fixed linger.ms=2 costs in latency and throughput.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use windowkeeper::http::{serve, ServeLimits};
use windowkeeper::kafka::{publish_all, OutboundRecord, CLOUDEVENT_HEADERS};
use windowkeeper::ingest::normalize::normalize;
use windowkeeper::ingest::signature::{verify, AppSecrets};

const MAX_BODY: usize = 4 * 1024 * 1024;

struct Shared {
    secrets: AppSecrets,
    slots: Semaphore,
    publish: Option<(FutureProducer, String)>,
}

async fn read_limited(body: Body, max: usize) -> Option<Bytes> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        if buffer.len() + chunk.len() > max {
            return None;
        }
        buffer.extend_from_slice(&chunk);
    }
    Some(buffer.freeze())
}

async fn webhook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> StatusCode {
    let Ok(_slot) = shared.slots.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    let Ok(Some(raw)) =
        tokio::time::timeout(Duration::from_secs(10), read_limited(body, MAX_BODY)).await
    else {
        return StatusCode::PAYLOAD_TOO_LARGE;
    };
    let signature = headers.get("x-hub-signature-256").map(|v| v.as_bytes());
    let Ok(verified) = verify(&shared.secrets, signature, raw) else {
        return StatusCode::UNAUTHORIZED;
    };
    match normalize(&verified) {
        Ok(events) => {
            let Some((producer, topic)) = &shared.publish else {
                std::hint::black_box(&events);
                return StatusCode::OK;
            };
            let records: Vec<OutboundRecord<'_>> = events
                .iter()
                .map(|event| OutboundRecord {
                    topic,
                    key: Some(event.key.as_str()),
                    payload: Some(&event.payload),
                    partition: None,
                    headers: CLOUDEVENT_HEADERS,
                })
                .collect();
            match publish_all(producer, &records, Duration::from_secs(10)).await {
                Ok(()) => StatusCode::OK,
                Err(_) => StatusCode::SERVICE_UNAVAILABLE,
            }
        }
        Err(_) => StatusCode::OK,
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8092".to_owned());
    let secret = args.next().expect("APP_SECRET argument");
    let publish = (args.next().as_deref() == Some("--publish")).then(|| {
        let brokers = args.next().expect("BROKERS");
        let topic = args.next().expect("TOPIC");
        let linger = args.next().expect("LINGER_MS");
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("broker.address.family", "v4")
            .set("socket.keepalive.enable", "true")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", &linger)
            .set("message.timeout.ms", "10000")
            .set("request.timeout.ms", "10000")
            .create()
            .expect("producer");
        eprintln!("publishing to {topic} on {brokers} with linger.ms={linger}");
        (producer, topic)
    });
    let shared = Arc::new(Shared {
        secrets: AppSecrets::new(vec![secret]).expect("secret"),
        slots: Semaphore::new(512),
        publish,
    });
    let router = Router::new()
        .route("/webhook", post(webhook))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("wk-nokafka listening on {addr}");
    serve(
        listener,
        router,
        ServeLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(1),
        },
        CancellationToken::new(),
    )
    .await;
}

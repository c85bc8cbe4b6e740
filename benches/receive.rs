//! The receiver's per-request CPU work: signature verification and normalization into
//! serialized CloudEvents (no HTTP, no Kafka).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use windowkeeper::ingest::normalize::normalize;
use windowkeeper::ingest::signature::{sign, verify, AppSecrets};

const SECRET: &str = "bench-app-secret";
const TEXT_MESSAGE: &[u8] = include_bytes!("../tests/fixtures/text-message.json");
const CTWA_MESSAGE: &[u8] = include_bytes!("../tests/fixtures/ctwa-referral-message.json");
const THREE_CONTACTS: &[u8] = include_bytes!("../tests/fixtures/batch-three-contacts.json");
const SEVEN_STATUSES: &[u8] = include_bytes!("../tests/fixtures/statuses-all-kinds.json");

/// One change carrying `n` messages from `n` customers, with their `contacts[]`: the largest
/// batch Meta documents.
fn batch(n: usize) -> Vec<u8> {
    let contacts: Vec<Value> = (0..n)
        .map(|i| {
            json!({"profile": {"name": format!("Customer {i}")},
                   "user_id": format!("US.{i:010}"), "wa_id": format!("1650{i:07}")})
        })
        .collect();
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            json!({"from": format!("1650{i:07}"), "from_user_id": format!("US.{i:010}"),
                   "id": format!("wamid.BULK{i:06}"),
                   "timestamp": (1_795_250_000 + i).to_string(), "type": "text",
                   "text": {"body": format!("message number {i}")}})
        })
        .collect();
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": contacts,
            "messages": messages,
        }}]}],
    }))
    .expect("json")
}

fn receive(c: &mut Criterion) {
    let secrets = AppSecrets::new(vec![SECRET.to_string()]).expect("secret");
    let cases = [
        ("text_message", Bytes::from_static(TEXT_MESSAGE), 1),
        ("ctwa_message_1kb", Bytes::from_static(CTWA_MESSAGE), 1),
        ("three_contacts_1kb", Bytes::from_static(THREE_CONTACTS), 3),
        ("seven_statuses_2kb", Bytes::from_static(SEVEN_STATUSES), 7),
        ("batch_1000_messages", Bytes::from(batch(1000)), 1000),
    ];
    let mut group = c.benchmark_group("verify_normalize");
    for (name, body, events) in &cases {
        let header = sign(SECRET.as_bytes(), body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let verified = verify(&secrets, Some(header.as_bytes()), black_box(body.clone()))
                    .expect("verifies");
                let out = normalize(&verified).expect("normalizes");
                assert_eq!(out.len(), *events);
                out
            })
        });
    }
    group.finish();

    // The two halves of the typical case, to see where the time goes.
    let body = Bytes::from_static(TEXT_MESSAGE);
    let header = sign(SECRET.as_bytes(), &body);
    let verified = verify(&secrets, Some(header.as_bytes()), body.clone()).expect("verifies");
    let mut group = c.benchmark_group("text_message");
    group.bench_function("verify", |b| {
        b.iter(|| verify(&secrets, Some(header.as_bytes()), black_box(body.clone())))
    });
    group.bench_function("normalize", |b| b.iter(|| normalize(black_box(&verified))));
    group.finish();
}

criterion_group!(benches, receive);
criterion_main!(benches);

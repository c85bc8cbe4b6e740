//! The broker's ingest ceiling for the receiver's records, without HTTP (bench/receiver-peers.sh).
//!
//! It writes exactly what `windowkeeper receiver` writes for the benchmark body: the body is
//! signed, verified and normalized once with windowkeeper's own `sign`, `verify` and
//! `normalize`, and the resulting records (same topic shape, key, CloudEvent value and
//! `content-type` header) are published again and again. The producer settings are the
//! receiver's, literally: the command line is parsed by windowkeeper's own `Cli` as a
//! `receiver` command, `CommonArgs::kafka` builds the `KafkaSettings`, `ensure_topics` creates
//! the topics, `Publisher::new` makes the producer (`windowkeeper::kafka::producer`: acks=all,
//! idempotence, linger, partitioner, timeouts) — nothing here sets a Kafka property of its
//! own, except through `--kafka-property` like the receiver.
//!
//! Two loads, each for `--duration` after one `--warmup` at 16 requests:
//!
//! - requests, at each of `--concurrencies`: C tasks, each sends one "request" (every record
//!   of the body, through `Publisher::publish_all`, the receiver's own call) and waits for its
//!   acknowledgement before the next, as the receiver's "200 only after the ack". Latency is
//!   that of `publish_all`.
//! - pipelined (`--pipelined`): records enqueued without waiting, up to `--window` records
//!   unacknowledged at once: the most records per second this producer and broker take.
//!   Latency is from enqueue to delivery report.
//!
//! Prints one tab-separated row per load in bench/lib.sh's results.tsv columns
//! (target, concurrency, requests, rps, p50_ms, p99_ms, codes, server_cpu_s, broker_cpu_s);
//! "requests" of the pipelined row are records, its concurrency is "max", its codes are
//! `ok=N err=M`. CPU is user+system from /proc (this process with librdkafka's threads, and
//! `--broker-pid` if given).
//!
//! Usage: ingest-ceiling --brokers HOST:PORT --prefix P --secret S --body FILE
//!   [--name ceiling] [--duration 10s] [--warmup 2s] [--concurrencies 1,16,64] [--pipelined]
//!   [--window 20000] [--partitions 12] [--broker-pid PID] [--kafka-property K=V]...

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::producer::FutureRecord;
use windowkeeper::config::{Cli, Command};
use windowkeeper::ingest::normalize::{normalize, InboundEvent};
use windowkeeper::ingest::signature::{sign, verify, AppSecrets};
use windowkeeper::kafka::{ensure_topics, OutboundRecord, Publisher, CLOUDEVENT_HEADERS};

struct Args {
    brokers: String,
    prefix: String,
    secret: String,
    body: String,
    name: String,
    duration: Duration,
    warmup: Duration,
    concurrencies: Vec<usize>,
    pipelined: bool,
    window: usize,
    partitions: String,
    broker_pid: Option<u32>,
    properties: Vec<String>,
}

fn parse_duration(text: &str) -> Duration {
    if let Some(ms) = text.strip_suffix("ms") {
        Duration::from_millis(ms.parse().expect("duration in ms"))
    } else if let Some(s) = text.strip_suffix('s') {
        Duration::from_secs_f64(s.parse().expect("duration in s"))
    } else {
        Duration::from_secs_f64(text.parse().expect("duration"))
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        brokers: String::new(),
        prefix: "ceiling".to_owned(),
        secret: String::new(),
        body: String::new(),
        name: "ceiling".to_owned(),
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        concurrencies: vec![1, 16, 64],
        pipelined: false,
        window: 20_000,
        partitions: "12".to_owned(),
        broker_pid: None,
        properties: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => args.brokers = value(),
            "--prefix" => args.prefix = value(),
            "--secret" => args.secret = value(),
            "--body" => args.body = value(),
            "--name" => args.name = value(),
            "--duration" => args.duration = parse_duration(&value()),
            "--warmup" => args.warmup = parse_duration(&value()),
            "--concurrencies" => {
                args.concurrencies = value()
                    .split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().expect("concurrency"))
                    .collect()
            }
            "--pipelined" => args.pipelined = true,
            "--window" => args.window = value().parse().expect("window"),
            "--partitions" => args.partitions = value(),
            "--broker-pid" => args.broker_pid = Some(value().parse().expect("pid")),
            "--kafka-property" => args.properties.push(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!args.brokers.is_empty(), "--brokers is required");
    assert!(!args.secret.is_empty(), "--secret is required");
    assert!(!args.body.is_empty(), "--body is required");
    args
}

/// CPU seconds (user + system, all threads) of a process so far.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 2)..]
        .split(' ')
        .collect();
    // fields[0] is /proc's field 3; utime and stime are fields 14 and 15. USER_HZ is 100 on Linux.
    let ticks: u64 = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    ticks as f64 / 100.0
}

struct Cpu {
    own: f64,
    broker: f64,
}

fn cpu_now(args: &Args) -> Cpu {
    Cpu {
        own: cpu_seconds("self"),
        broker: args
            .broker_pid
            .map_or(f64::NAN, |pid| cpu_seconds(&pid.to_string())),
    }
}

fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

struct Outcome {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// C tasks, each publishing one request's records and awaiting their acknowledgement before
/// the next, until `duration` has passed.
async fn requests(
    publisher: &Arc<Publisher>,
    topic: &Arc<str>,
    events: &Arc<Vec<InboundEvent>>,
    concurrency: usize,
    duration: Duration,
) -> Outcome {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let publisher = Arc::clone(publisher);
            let topic = Arc::clone(topic);
            let events = Arc::clone(events);
            tokio::spawn(async move {
                let records: Vec<OutboundRecord<'_>> = events
                    .iter()
                    .map(|event| OutboundRecord {
                        topic: &topic,
                        key: Some(event.key.as_str()),
                        payload: Some(&event.payload),
                        partition: None,
                        headers: CLOUDEVENT_HEADERS,
                    })
                    .collect();
                let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::new());
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match publisher.publish_all(&records).await {
                        Ok(()) => {
                            ok += 1;
                            latencies.push(micros(sent.elapsed()));
                        }
                        Err(error) => {
                            failed += 1;
                            eprintln!("publish failed: {error}");
                        }
                    }
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    let mut outcome = Outcome {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (ok, failed, latencies) = task.await.expect("request task");
        outcome.ok += ok;
        outcome.failed += failed;
        outcome.latencies_us.extend(latencies);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// Records enqueued back to back, at most `window` unacknowledged, until `duration` has passed;
/// then the outstanding ones are awaited (and counted, with their time).
async fn pipelined(
    publisher: &Publisher,
    topic: &str,
    events: &[InboundEvent],
    window: usize,
    duration: Duration,
) -> Outcome {
    let producer = publisher.current();
    let started = Instant::now();
    let deadline = started + duration;
    let mut pending = FuturesUnordered::new();
    let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::new());
    let mut next = 0usize;
    while Instant::now() < deadline {
        while pending.len() < window {
            let event = &events[next % events.len()];
            next += 1;
            let record = FutureRecord::<str, [u8]>::to(topic)
                .key(event.key.as_str())
                .payload(&event.payload)
                .headers(header_list());
            match producer.send_result(record) {
                Ok(delivery) => {
                    let sent = Instant::now();
                    pending.push(async move { (sent, delivery.await) });
                }
                // The local queue is full: let deliveries make room.
                Err(_) => break,
            }
        }
        match pending.next().await {
            Some((sent, Ok(Ok(_)))) => {
                ok += 1;
                latencies.push(micros(sent.elapsed()));
            }
            Some(_) => failed += 1,
            None => tokio::task::yield_now().await,
        }
    }
    while let Some(result) = pending.next().await {
        match result {
            (sent, Ok(Ok(_))) => {
                ok += 1;
                latencies.push(micros(sent.elapsed()));
            }
            _ => failed += 1,
        }
    }
    Outcome {
        ok,
        failed,
        elapsed: started.elapsed(),
        latencies_us: latencies,
    }
}

/// The same headers `OutboundRecord` writes: `CLOUDEVENT_HEADERS`.
fn header_list() -> rdkafka::message::OwnedHeaders {
    let mut headers = rdkafka::message::OwnedHeaders::new_with_capacity(CLOUDEVENT_HEADERS.len());
    for (key, value) in CLOUDEVENT_HEADERS {
        headers = headers.insert(rdkafka::message::Header {
            key,
            value: Some(*value),
        });
    }
    headers
}

fn row(target: &str, concurrency: &str, mut outcome: Outcome, before: Cpu, after: Cpu, codes: String) {
    outcome.latencies_us.sort_unstable();
    let seconds = outcome.elapsed.as_secs_f64();
    println!(
        "{target}\t{concurrency}\t{}\t{:.2}\t{:.3}\t{:.3}\t{codes}\t{:.2}\t{:.2}",
        outcome.ok,
        outcome.ok as f64 / seconds,
        percentile_ms(&outcome.latencies_us, 0.50),
        percentile_ms(&outcome.latencies_us, 0.99),
        after.own - before.own,
        after.broker - before.broker,
    );
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut argv: Vec<String> = [
        "windowkeeper",
        "receiver",
        "--kafka-brokers",
        &args.brokers,
        "--app-secret",
        &args.secret,
        "--verify-token",
        "ceiling",
        "--partitions",
        &args.partitions,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for kind in ["inbound", "window-events", "window-state", "deadletter"] {
        argv.push(format!("--topic-{kind}"));
        argv.push(format!("{}.{kind}", args.prefix));
    }
    for property in &args.properties {
        argv.push("--kafka-property".to_owned());
        argv.push(property.clone());
    }
    let cli = Cli::parse_from(argv);
    let Command::Receiver(receiver) = cli.command else {
        unreachable!("parsed as a receiver command")
    };
    let settings = receiver.common.kafka(None).expect("Kafka settings");
    ensure_topics(&settings).await.expect("topics");
    let publisher = Arc::new(Publisher::new(&settings).expect("producer"));
    let topic: Arc<str> = Arc::from(settings.topics.inbound.as_str());

    let body = Bytes::from(std::fs::read(&args.body).expect("body file"));
    let secrets = AppSecrets::new(vec![args.secret.clone()]).expect("secret");
    let signature = sign(args.secret.as_bytes(), &body);
    let verified = verify(&secrets, Some(signature.as_bytes()), body).expect("signature");
    let events = Arc::new(normalize(&verified).expect("normalize"));
    for event in events.iter() {
        eprintln!(
            "record: topic {topic} key {} value {} bytes",
            event.key.as_str(),
            event.payload.len()
        );
    }

    let warm = requests(&publisher, &topic, &events, 16, args.warmup).await;
    eprintln!("warm-up: {} requests, {} failed", warm.ok, warm.failed);

    for &concurrency in &args.concurrencies {
        let before = cpu_now(&args);
        let outcome = requests(&publisher, &topic, &events, concurrency, args.duration).await;
        let after = cpu_now(&args);
        let codes = if outcome.failed == 0 {
            format!("200={}", outcome.ok)
        } else {
            format!("200={} 503={}", outcome.ok, outcome.failed)
        };
        row(&args.name, &concurrency.to_string(), outcome, before, after, codes);
    }
    if args.pipelined {
        let before = cpu_now(&args);
        let outcome = pipelined(&publisher, &topic, &events, args.window, args.duration).await;
        let after = cpu_now(&args);
        let codes = format!("ok={} err={}", outcome.ok, outcome.failed);
        let name = match args.name.split_once(".r") {
            Some((program, round)) => format!("{program}-max.r{round}"),
            None => format!("{}-max", args.name),
        };
        row(&name, "max", outcome, before, after, codes);
    }
    publisher.flush(Duration::from_secs(10));
}

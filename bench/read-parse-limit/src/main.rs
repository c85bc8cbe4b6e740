//! Two small Kafka readers for bench/tracker-peers.sh.
//!
//! `read-parse-limit limit BROKERS TOPIC GROUP N`: the tracker's limit. Joins consumer group
//! GROUP on TOPIC (the inbound topic) with the tracker's consumer settings, reads records and
//! parses each value into a `serde_json::Value` (owned, as the tracker's first decoding step
//! does), picks `type` and `data.message.timestamp`, and nothing else: no state, no output,
//! no offset commits. Exits after N `whatsapp.message.received` records with a readable
//! timestamp (the inbound topic of the bench holds exactly those). A plain `BaseConsumer` poll loop on one thread
//! (the tracker uses rdkafka's `StreamConsumer` under tokio).
//!
//! `read-parse-limit count BROKERS TOPIC N`: the harness's completion counter. Waits for TOPIC
//! to exist, assigns all its partitions from the beginning (no group), reads with
//! `isolation.level=read_committed` and counts records whose value contains
//! `whatsapp.window.opened` (no parsing). Exits once it has counted N.
//!
//! `read-parse-limit copy BROKERS SOURCE DESTINATION`: the harness's fresh input. Creates
//! DESTINATION with SOURCE's partition count and `message.timestamp.type=LogAppendTime` (as
//! windowkeeper creates its inbound topic) and copies every record of SOURCE (as of the start)
//! into the same partition, key, value and headers as they are (acks=all, idempotent). Each
//! start of a program reads its own copy: the tracker appends records of its own (contact
//! aliases) to the topic it reads, which later starts must not see.
//!
//! All print `KEY EPOCH_SECONDS [...]` lines on stdout: `start`, `assigned` (limit: the first
//! assignment), `first` (the first record read / counted; the limit adds its CPU seconds),
//! `progress` (every second) and `done EPOCH RECORDS CPU_SECONDS [...]`, CPU being this
//! process's user + system time from /proc/self/stat.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::Value;

const OPENED: &[u8] = b"whatsapp.window.opened";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// User + system CPU seconds of this process (all threads) so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(tail) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = tail.split_whitespace().collect();
    // fields[0] is stat field 3; utime is field 14, stime 15.
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or_default();
    // SC_CLK_TCK is 100 on Linux.
    ticks / 100.0
}

struct Context {
    assigned: AtomicBool,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(list) if list.count() > 0)
            && !self.assigned.swap(true, Ordering::SeqCst)
        {
            say(&format!("assigned {:.3}", now()));
        }
    }
}

/// What the tracker's consumer sets (src/kafka/clients.rs `base_config`, src/tracker/mod.rs),
/// fetch settings and isolation level left at librdkafka's defaults as there
/// (isolation.level=read_committed).
fn limit(brokers: &str, topic: &str, group: &str, n: u64) -> Result<(), String> {
    let consumer: BaseConsumer<Context> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("socket.keepalive.enable", "true")
        .set("log_level", "4")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .create_with_context(Context {
            assigned: AtomicBool::new(false),
        })
        .map_err(|e| format!("consumer: {e}"))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| format!("subscribe: {e}"))?;
    let (mut records, mut received, mut other) = (0u64, 0u64, 0u64);
    let mut first = false;
    let mut last_progress = Instant::now();
    while received < n {
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = result.map_err(|e| format!("consume: {e}"))?;
        records += 1;
        if !first {
            first = true;
            say(&format!("first {:.3} {:.2}", now(), cpu_seconds()));
        }
        let event: Option<Value> = message
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok());
        let at = event.as_ref().and_then(|e| {
            (e.get("type")?.as_str()? == "whatsapp.message.received")
                .then(|| {
                    e.pointer("/data/message/timestamp")?
                        .as_str()?
                        .parse::<u64>()
                        .ok()
                })
                .flatten()
        });
        if at.is_some() {
            received += 1;
        } else {
            other += 1;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            say(&format!("progress {:.3} {received}", now()));
        }
    }
    say(&format!(
        "done {:.3} {received} {:.2} records={records} other={other}",
        now(),
        cpu_seconds()
    ));
    Ok(())
}

fn count(brokers: &str, topic: &str, n: u64) -> Result<(), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "4")
        .set("group.id", "tracker-peers-counter")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    // Wait for the topic (the program under test creates it).
    let partitions = loop {
        if let Some(p) = partition_count(&consumer, topic) {
            break p;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, i32::try_from(p).unwrap_or(0), Offset::Beginning)
            .map_err(|e| format!("assign: {e}"))?;
    }
    consumer.assign(&list).map_err(|e| format!("assign: {e}"))?;
    say(&format!("assigned {:.3} {partitions}", now()));
    let (mut opened, mut records) = (0u64, 0u64);
    let mut per_partition: HashMap<i32, u64> = HashMap::new();
    let mut last_progress = Instant::now();
    while opened < n {
        if let Some(result) = consumer.poll(Duration::from_millis(100)) {
            let message = result.map_err(|e| format!("consume: {e}"))?;
            records += 1;
            let is_opened = message
                .payload()
                .is_some_and(|p| p.windows(OPENED.len()).any(|w| w == OPENED));
            if is_opened {
                if opened == 0 {
                    say(&format!("first {:.3}", now()));
                }
                opened += 1;
                *per_partition.entry(message.partition()).or_default() += 1;
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            say(&format!("progress {:.3} {opened}", now()));
        }
    }
    say(&format!(
        "done {:.3} {opened} {:.2} records={records} partitions_with_output={}",
        now(),
        cpu_seconds(),
        per_partition.len()
    ));
    Ok(())
}

/// Runs a future to completion on this thread (the admin client's only).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = TaskContext::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// SOURCE's partition count, from the broker's metadata (None while it does not exist).
fn partition_count(consumer: &BaseConsumer<impl ConsumerContext>, topic: &str) -> Option<usize> {
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|&p| p > 0)
}

fn copy(brokers: &str, source: &str, destination: &str) -> Result<(), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "4")
        .set("group.id", "tracker-peers-copy")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let partitions = partition_count(&consumer, source).ok_or(format!("no topic {source}"))?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "4")
        .create()
        .map_err(|e| format!("admin: {e}"))?;
    let topic = NewTopic::new(
        destination,
        i32::try_from(partitions).unwrap_or(1),
        TopicReplication::Fixed(1),
    )
    .set("message.timestamp.type", "LogAppendTime");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in
        block_on(admin.create_topics([&topic], &options)).map_err(|e| format!("create: {e}"))?
    {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("create {name}: {code}")),
        }
    }
    let mut ends = HashMap::new();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        let p = i32::try_from(p).unwrap_or(0);
        let (low, high) = consumer
            .fetch_watermarks(source, p, Duration::from_secs(10))
            .map_err(|e| format!("watermarks: {e}"))?;
        if high > low {
            ends.insert(p, high);
            list.add_partition_offset(source, p, Offset::Beginning)
                .map_err(|e| format!("assign: {e}"))?;
        }
    }
    consumer.assign(&list).map_err(|e| format!("assign: {e}"))?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "4")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .map_err(|e| format!("producer: {e}"))?;
    let mut copied = 0u64;
    while !ends.is_empty() {
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            producer.poll(Duration::ZERO);
            continue;
        };
        let message = result.map_err(|e| format!("consume: {e}"))?;
        let partition = message.partition();
        if ends
            .get(&partition)
            .is_some_and(|&end| message.offset() < end)
        {
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(destination).partition(partition);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            if let Some(headers) = message.headers() {
                record = record.headers(headers.detach());
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(format!("produce: {e}")),
                }
            }
            copied += 1;
            producer.poll(Duration::ZERO);
        }
        if ends
            .get(&partition)
            .is_some_and(|&end| message.offset() + 1 >= end)
        {
            ends.remove(&partition);
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| format!("flush: {e}"))?;
    say(&format!("done {:.3} {copied} {:.2}", now(), cpu_seconds()));
    Ok(())
}

fn main() -> ExitCode {
    say(&format!("start {:.3}", now()));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parse_n = |s: &str| s.parse::<u64>().map_err(|e| format!("N: {e}"));
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["limit", brokers, topic, group, n] => {
            parse_n(n).and_then(|n| limit(brokers, topic, group, n))
        }
        ["count", brokers, topic, n] => parse_n(n).and_then(|n| count(brokers, topic, n)),
        ["copy", brokers, source, destination] => copy(brokers, source, destination),
        _ => Err(
            "usage: read-parse-limit limit BROKERS TOPIC GROUP N | count BROKERS TOPIC N | copy BROKERS SOURCE DESTINATION".into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("read-parse-limit: {error}");
            ExitCode::FAILURE
        }
    }
}

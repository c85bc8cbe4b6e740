//! The send-decision API in process (no HTTP, no Kafka): memory the read view adds per
//! contact, and the time of one answer (view lookup + decision, and with the JSON body) among
//! 1 M contacts, by BSUID and by wa_id.
//!
//! `cargo bench --bench api` (1 M contacts); `CONTACTS=200000 cargo bench --bench api`.
//!
//! The same binary makes the data of `bench/api-latency.sh`, so the contacts asked about over
//! HTTP are exactly the ones loaded:
//!
//! - `api load --brokers HOST:PORT --topic TOPIC [--contacts N]` writes one state record
//!   (`tracker::records::state_record`) per contact into the state topic, keyed and
//!   partitioned as the tracker does;
//! - `api targets --base URL [--contacts N] [--count M] [--unknown-per-mille U]
//!   [--wa-id-per-mille W]` prints M GET requests in vegeta's `http` target format for random
//!   contacts among the N loaded: W in 1000 by wa_id instead of BSUID, U in 1000 for contacts
//!   that were never loaded;
//! - `api ask [--contacts N]` prints the URL path of the last contact loaded.
//!
//! Contact `n` (0-based): business number `106540352242922`, BSUID `US.` + 20 digits, wa_id
//! 11 digits, both derived from `n` one-to-one; a customer service window opened by a message
//! (62-character wamid) at most an hour before the load; every 10th contact opted out of
//! marketing.

mod common;

use common::{live_bytes, meta_wamid, Counting};

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use windowkeeper::api::decision::decide;
use windowkeeper::api::pricing::PricingRules;
use windowkeeper::api::view::StateView;
use windowkeeper::domain::{ContactKey, CustomerId, MessageId, PhoneNumberId, UnixSeconds, WaId};
use windowkeeper::kafka::partition_for_key;
use windowkeeper::tracker::records::{state_record, Contact};
use windowkeeper::tracker::{Book, Contacts};
use windowkeeper::window::{
    ContactWindows, Input, Marketing, MarketingPreference, PreferenceSource, WindowConfig,
};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PHONE_NUMBER_ID: &str = "106540352242922";
const PARTITIONS: i32 = 12;

/// `US.` and 20 digits: `n` times an odd constant is one-to-one on u64, and every u64 has at
/// most 20 digits.
fn bsuid(n: u64) -> String {
    format!("US.{:020}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// 11 digits starting with 1: `n` times a number prime to 10 is one-to-one modulo 10^10.
fn wa_id(n: u64) -> String {
    format!("1{:010}", n.wrapping_mul(2_654_435_761) % 10_000_000_000)
}

fn key(n: u64) -> ContactKey {
    ContactKey::from_raw(&format!("{PHONE_NUMBER_ID}:{}", bsuid(n)))
}

/// Contact `n` as the tracker would keep it at `now`.
fn contact(n: u64, now: i64, cfg: &WindowConfig) -> Contact {
    let at = UnixSeconds(now - 60 - (n % 3600) as i64);
    let mut windows = ContactWindows::default();
    let input = Input::CustomerMessage {
        id: MessageId::new(meta_wamid(n)),
        at,
        referral: false,
    };
    windows.apply(&input, at, cfg, &mut Vec::new());
    let marketing = (n % 10 == 0).then(|| MarketingPreference {
        marketing: Marketing::OptedOut,
        since: at.minus(86_400),
        source: PreferenceSource::UserPreferences,
    });
    Contact {
        windows,
        marketing: marketing.map(Box::new),
        wa_id: Some(WaId::new(wa_id(n))),
        ..Contact::default()
    }
}

/// splitmix64: the same sequence on every run, no dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn number(args: &[String], name: &str, default: u64) -> u64 {
    match arg(args, name) {
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} wants a number, not {v}")),
        None => std::env::var(name.trim_start_matches("--").to_uppercase())
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("load") => load(&args),
        Some("targets") => targets(&args),
        Some("ask") => {
            let contacts = number(&args, "--contacts", 1_000_000);
            println!(
                "/v1/contacts/{PHONE_NUMBER_ID}/{}",
                bsuid(contacts.saturating_sub(1))
            );
        }
        _ => in_process(number(&args, "--contacts", 1_000_000)),
    }
}

/// Writes contacts 0..N as state records, each on the partition the tracker would use.
fn load(args: &[String]) {
    let brokers = arg(args, "--brokers").expect("--brokers HOST:PORT");
    let topic = arg(args, "--topic").expect("--topic TOPIC");
    let contacts = number(args, "--contacts", 1_000_000);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        // As the tracker writes its state records.
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "200000")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("a producer");
    let metadata = producer
        .client()
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .expect("the state topic's metadata");
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| panic!("{topic} has no partitions: does it exist?"));
    let partitions = i32::try_from(partitions).expect("partition count");
    let cfg = WindowConfig::default();
    let now = UnixSeconds::now().0;
    let started = Instant::now();
    let mut bytes = 0usize;
    for n in 0..contacts {
        let key = key(n);
        let value = state_record(&key, &contact(n, now, &cfg), UnixSeconds(now));
        bytes += value.len();
        let partition = partition_for_key(key.as_str(), partitions);
        let mut record = BaseRecord::to(&topic)
            .key(key.as_str())
            .payload(&value)
            .partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => panic!("producing contact {n}: {error}"),
            }
        }
        producer.poll(Duration::ZERO);
        if n > 0 && n % 200_000 == 0 {
            eprintln!("{n} records queued");
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .expect("every record acknowledged");
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "wrote {contacts} state records to {topic} ({partitions} partitions): {:.0} MB, average {} B, {elapsed:.1} s",
        bytes as f64 / 1e6,
        bytes / contacts.max(1) as usize
    );
}

/// vegeta `http` targets: `GET URL`, a blank line between targets.
fn targets(args: &[String]) {
    use std::io::Write;
    let base = arg(args, "--base").expect("--base http://HOST:PORT");
    let contacts = number(args, "--contacts", 1_000_000);
    let count = number(args, "--count", 100_000);
    let unknown = number(args, "--unknown-per-mille", 10);
    let by_wa_id = number(args, "--wa-id-per-mille", 300);
    let mut random = Random(number(args, "--seed", 1));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for _ in 0..count {
        let n = if random.below(1000) < unknown {
            contacts + random.below(1_000_000_000)
        } else {
            random.below(contacts)
        };
        let customer = if random.below(1000) < by_wa_id {
            wa_id(n)
        } else {
            bsuid(n)
        };
        writeln!(out, "GET {base}/v1/contacts/{PHONE_NUMBER_ID}/{customer}\n").expect("stdout");
    }
}

fn in_process(contacts: u64) {
    let cfg = WindowConfig::default();
    let now = UnixSeconds::now().0;
    println!("api bench: {contacts} contacts, {PARTITIONS} partitions");

    // The view, filled as the feed fills it: a key allocated per record, the contact parsed
    // (here: built) and dropped once the view took what it keeps.
    let before = live_bytes();
    let started = Instant::now();
    let mut view = StateView::new(PARTITIONS);
    for n in 0..contacts {
        view.upsert(key(n), &contact(n, now, &cfg));
    }
    for p in 0..PARTITIONS {
        view.mark_restored(p);
    }
    let view_bytes = live_bytes() - before;
    println!(
        "memory of the API's view: {:.0} bytes per contact ({:.1} MB for {} contacts; filled in {:.2} s)",
        view_bytes as f64 / view.len() as f64,
        view_bytes as f64 / 1e6,
        view.len(),
        started.elapsed().as_secs_f64()
    );

    // For comparison: the tracker's own book of the same contacts (a tracker that owns every
    // partition holds both).
    if std::env::var("API_BENCH_BOOK").map_or(true, |v| v != "0") {
        let before = live_bytes();
        let mut partitions: HashMap<i32, Contacts> = HashMap::new();
        for n in 0..contacts {
            let key = key(n);
            partitions
                .entry(partition_for_key(key.as_str(), PARTITIONS))
                .or_default()
                .insert(&key, contact(n, now, &cfg));
        }
        let mut book = Book::new(cfg.clone());
        for (partition, contacts) in partitions {
            book.restore_partition(partition, contacts);
        }
        let book_bytes = live_bytes() - before;
        println!(
            "for comparison, the tracker's book of the same contacts: {:.0} bytes per contact ({} contacts)",
            book_bytes as f64 / book.contact_count() as f64,
            book.contact_count()
        );
        // The tracker refreshes its open-window gauges from every contact every 5 s, on a
        // runtime worker that also serves the API: a stall that answers queued behind it see.
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let started = Instant::now();
                black_box(book.open_windows());
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "the tracker's open-window count over the book (its gauge refresh): median {:.1} ms, max {:.1} ms of 5",
            times[2], times[4]
        );
    }

    // Questions about random loaded contacts, cycled, so the lookups miss the caches as a
    // server's would.
    let pnid = PhoneNumberId::new(PHONE_NUMBER_ID);
    let rules = PricingRules::built_in();
    let mut random = Random(7);
    let picks: Vec<u64> = (0..4096).map(|_| random.below(contacts)).collect();
    let by_bsuid: Vec<CustomerId> = picks
        .iter()
        .map(|n| CustomerId::parse(&bsuid(*n)).expect("a BSUID"))
        .collect();
    let by_wa_id: Vec<CustomerId> = picks
        .iter()
        .map(|n| CustomerId::parse(&wa_id(*n)).expect("a wa_id"))
        .collect();
    for customer in by_bsuid.iter().chain(&by_wa_id) {
        let facts = view.lookup(&pnid, customer, UnixSeconds(now));
        assert!(matches!(facts, Ok(Some(_))), "{customer:?} is loaded");
    }

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    let mut group = criterion.benchmark_group(format!("api_{}k_contacts", contacts / 1000));
    for (name, customers) in [("by_bsuid", &by_bsuid), ("by_wa_id", &by_wa_id)] {
        group.bench_function(format!("lookup_decide_{name}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % customers.len();
                let now = UnixSeconds::now();
                let facts = view.lookup(&pnid, &customers[i], now).expect("restored");
                black_box(decide(&pnid, &customers[i], facts.as_ref(), now, &rules))
            })
        });
    }
    group.bench_function("lookup_decide_json_by_bsuid", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % by_bsuid.len();
            let now = UnixSeconds::now();
            let facts = view.lookup(&pnid, &by_bsuid[i], now).expect("restored");
            let decision = decide(&pnid, &by_bsuid[i], facts.as_ref(), now, &rules);
            black_box(serde_json::to_vec(&decision).expect("JSON"))
        })
    });
    group.finish();
    criterion.final_summary();
}

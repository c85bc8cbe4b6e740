//! Tracker at scale, in process (no broker): memory per tracked contact, inbound records per
//! second through the book (JSON decode + rules + state record encode), restore of the state
//! records, and the timer sweep when a second's worth of windows, or all of them, end at once.
//!
//! `cargo bench --bench tracker` (1 M contacts); `CONTACTS=10000000 cargo bench --bench tracker`.

mod common;

use common::{live_bytes, meta_wamid, Counting};

use std::collections::HashMap;
use std::time::Instant;

use windowkeeper::domain::{ContactKey, UnixSeconds};
use windowkeeper::tracker::{read_state_record, Book, Contacts, Outbox};
use windowkeeper::window::WindowConfig;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const T0: i64 = 1_795_250_000;
const PARTITIONS: i32 = 12;

/// An inbound record as the receiver writes it: a wamid as long as Meta's (62 characters),
/// a BSUID and a wa_id.
fn inbound(n: usize, at: i64) -> Vec<u8> {
    let wamid = meta_wamid(n as u64);
    format!(
        r#"{{"specversion":"1.0","id":"message:{wamid}","source":"/whatsapp/business-accounts/1","type":"whatsapp.message.received","subject":"106540352242922:US.{n:020}","time":"2026-11-21T08:33:20Z","datacontenttype":"application/json","data":{{"waba_id":"1","phone_number_id":"106540352242922","display_phone_number":"15550783881","wa_id":"1{n:010}","user_id":"US.{n:020}","profile_name":"A","field":"messages","message":{{"id":"{wamid}","timestamp":"{at}","type":"text","from_user_id":"US.{n:020}","from":"1{n:010}","text":{{"body":"hi"}}}}}}}}"#
    )
    .into_bytes()
}

fn key(n: usize) -> ContactKey {
    ContactKey::from_raw(&format!("106540352242922:US.{n:020}"))
}

/// State records as `(partition, key, value)`, the bytes of all of them in one buffer.
#[derive(Default)]
struct StateRecords {
    bytes: Vec<u8>,
    /// Partition, and where the key ends and the value ends in `bytes`.
    index: Vec<(i32, usize, usize)>,
}

impl StateRecords {
    fn push(&mut self, partition: i32, key: &str, value: &[u8]) {
        self.bytes.extend_from_slice(key.as_bytes());
        let key_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.index.push((partition, key_end, self.bytes.len()));
    }

    fn iter(&self) -> impl Iterator<Item = (i32, &str, &[u8])> {
        let starts = std::iter::once(0).chain(self.index.iter().map(|&(_, _, end)| end));
        self.index
            .iter()
            .zip(starts)
            .map(|(&(partition, key_end, end), start)| {
                let key = std::str::from_utf8(&self.bytes[start..key_end]).unwrap_or_default();
                (partition, key, &self.bytes[key_end..end])
            })
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn value_bytes(&self) -> usize {
        self.iter().map(|(_, _, value)| value.len()).sum()
    }

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.index.capacity() * std::mem::size_of::<(i32, usize, usize)>()
    }
}

fn main() {
    let contacts: usize = std::env::var("CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // Windows of a day; leads of 1 h.
    let cfg = WindowConfig::new(86_400, 259_200, [3600], false);
    println!("tracker bench: {contacts} contacts, {PARTITIONS} partitions");

    // Inbound records through the book: parse, rules, event + state encoding.
    let before = live_bytes();
    let mut book = Book::new(cfg.clone());
    // Kept for the restore step in one buffer: a million separate records held on the heap
    // would change how fast the allocator serves the book, and a key shared with the book would
    // be counted as the records'.
    let mut state_records = StateRecords::default();
    let keep_states = contacts <= 1_000_000;
    let started = Instant::now();
    let mut events = 0usize;
    for n in 0..contacts {
        let record = inbound(n, T0 + (n % 3600) as i64);
        let mut out = Outbox::default();
        let partition = (n % PARTITIONS as usize) as i32;
        if let Err(error) = book.apply_record(
            partition,
            &key(n),
            &record,
            UnixSeconds(T0 + 3600),
            UnixSeconds(T0 + 3600),
            &mut out,
        ) {
            panic!("bench record: {error:?}");
        }
        events += out.events.len();
        if keep_states {
            for (p, k, v) in out.states {
                if let Some(v) = v {
                    state_records.push(p, k.as_str(), &v);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "inbound records through the book: {:.0}/s ({events} window events, {:.2} s)",
        contacts as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    let state_bytes = state_records.heap_bytes() as isize;
    let live = live_bytes() - before - state_bytes;
    println!(
        "memory per tracked contact (state, key, timers, index): {:.0} bytes ({} contacts)",
        live as f64 / book.contact_count() as f64,
        book.contact_count()
    );

    // Restore: decode every state record and rebuild the book (the broker fetch not counted).
    if keep_states {
        let average = state_records.value_bytes() / state_records.len().max(1);
        let started = Instant::now();
        let decoded = state_records
            .iter()
            .filter_map(|(_, _, value)| read_state_record(value))
            .count();
        println!(
            "decode only, {decoded} state records: {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        let mut partitions: HashMap<i32, Contacts> = HashMap::new();
        for (partition, key, value) in state_records.iter() {
            if let Some(contact) = read_state_record(value) {
                partitions
                    .entry(partition)
                    .or_default()
                    .insert(&ContactKey::from_raw(key), contact);
            }
        }
        let mut restored = Book::new(cfg.clone());
        for (partition, contacts) in partitions {
            restored.restore_partition(partition, contacts);
        }
        let elapsed = started.elapsed();
        println!(
            "restore of {} state records (avg {average} B): {:.2} s ({:.0} records/s)",
            state_records.len(),
            elapsed.as_secs_f64(),
            state_records.len() as f64 / elapsed.as_secs_f64()
        );
        drop(restored);
    }
    drop(state_records);

    // Timers: message times are spread over an hour, so each second ~contacts/3600 warnings
    // come due; then every window's end at once (the worst case after downtime). The large
    // sweeps go a partition at a time, as the tracker ticks them, each outbox dropped once
    // counted: at 10 M contacts one outbox of everything would not fit in memory.
    let sweep = |book: &mut Book, now: i64| {
        let mut events = 0;
        for partition in 0..PARTITIONS {
            let mut out = Outbox::default();
            book.tick_partition(partition, UnixSeconds(now), &mut out);
            events += out.events.len();
        }
        events
    };
    let warn_second = T0 + 86_400 - 3600 + 1800;
    sweep(&mut book, warn_second - 1);
    let mut out = Outbox::default();
    let started = Instant::now();
    book.tick(UnixSeconds(warn_second), &mut out);
    println!(
        "timer sweep, one second's deadlines ({} warnings): {:.2} ms",
        out.events.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    drop(out);
    let started = Instant::now();
    let events = sweep(&mut book, T0 + 86_400 + 3600 + 1);
    println!(
        "timer sweep, every window due at once ({events} events): {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

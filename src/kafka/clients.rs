//! Client settings: the fixed partitioner, the settings every client shares, and the
//! producers that make an acknowledgement mean "durably stored".

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;

use crate::config::KafkaSettings;

use super::*;

/// Both the receiver and the tracker pick partitions from keys; they must agree with each
/// other and with Java clients, so the partitioner is fixed rather than left to defaults.
const PARTITIONER: &str = "murmur2_random";

/// The partition `PARTITIONER` gives a key: Kafka's murmur2 (the Java client's default),
/// for readers that must know where a key lives without having seen it.
pub fn partition_for_key(key: &str, partitions: i32) -> i32 {
    let hash = murmur2::murmur2(key.as_bytes(), murmur2::KAFKA_SEED) & 0x7fff_ffff;
    let partitions = u32::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(hash % partitions).unwrap_or(0)
}

/// Settings shared by every client this program creates; the operator's own properties
/// (security, tuning) are applied over them.
pub fn base_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("socket.keepalive.enable", "true")
        .set("log_level", "4");
    apply_properties(&mut config, settings);
    config
}

fn apply_properties(config: &mut ClientConfig, settings: &KafkaSettings) {
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
}

/// acks=all and idempotence: a record acknowledged once is stored once, even across retries.
/// Those two are set last so no property can weaken the promise behind a 200.
///
/// `linger.ms=0`: a record is sent as soon as it is queued, for the least latency when few
/// records are in flight (see [`batching_producer`] for the rest).
pub fn producer(settings: &KafkaSettings) -> Result<FutureProducer, SetupError> {
    producer_config(settings, &[("linger.ms", IMMEDIATE_LINGER_MS)])
        .create()
        .map_err(SetupError::Client)
}

/// The tracker's at-least-once output: [`producer`]'s settings, compressed (see
/// [`TRACKER_OUTPUT`]).
pub fn tracker_producer(settings: &KafkaSettings) -> Result<FutureProducer, SetupError> {
    producer_config(settings, TRACKER_OUTPUT)
        .create()
        .map_err(SetupError::Client)
}

/// The tracker writes whole batches at once (events, state records of about 1 KB of JSON each),
/// so its batches compress well: lz4 cut the bytes the broker stores and serves, and a
/// restore fetches (`BENCHMARKS.md` section 8). The receiver's requests are too small to gain.
const TRACKER_OUTPUT: &[(&str, &str)] = &[
    ("linger.ms", IMMEDIATE_LINGER_MS),
    ("compression.type", "lz4"),
];

/// The same settings as [`producer`] but `linger.ms=1`, for when many records are in flight.
/// With `linger.ms=0` and idempotence, once a partition has its 5 produce requests in flight
/// (the most idempotence allows) librdkafka's broker thread keeps waking up at once to send the
/// records queued behind them and cannot: it spins on the CPU until a response arrives. On a
/// busy machine that steals CPU from everything else, the broker included, and requests wait
/// tens of milliseconds. A 1 ms linger gathers those records into one request instead.
pub fn batching_producer(settings: &KafkaSettings) -> Result<FutureProducer, SetupError> {
    producer_config(settings, &[("linger.ms", BATCHING_LINGER_MS)])
        .create()
        .map_err(SetupError::Client)
}

const IMMEDIATE_LINGER_MS: &str = "0";
const BATCHING_LINGER_MS: &str = "1";

/// `tuning`: settings of this producer's use, under the operator's own properties.
fn producer_config(settings: &KafkaSettings, tuning: &[(&str, &str)]) -> ClientConfig {
    let timeout_ms = settings
        .publish_timeout
        .as_millis()
        .clamp(1, i32::MAX as u128)
        .to_string();
    let mut config = base_config(settings);
    config
        // Each webhook waits for its acks: lingering adds to a lone request's latency
        // (measured: linger.ms=0 made 5x the requests/s of linger.ms=1 at one request at a
        // time), so the receiver lingers only when many records are in flight (`Publisher`).
        .set("message.max.bytes", settings.max_record_bytes.to_string())
        .set("partitioner", PARTITIONER)
        .set("message.timeout.ms", &timeout_ms)
        .set("request.timeout.ms", &timeout_ms);
    for (key, value) in tuning {
        config.set(*key, *value);
    }
    apply_properties(&mut config, settings);
    config.set("acks", "all").set("enable.idempotence", "true");
    config
}

/// The tracker's exactly-once producer: the same settings as [`producer`], plus a
/// transactional id. A crashed instance's open transaction blocks read_committed readers of
/// its partitions until the broker aborts it, hence the short transaction timeout.
pub fn transactional_producer(
    settings: &KafkaSettings,
    transactional_id: &str,
) -> Result<FutureProducer, KafkaError> {
    let mut config = producer_config(settings, TRACKER_OUTPUT);
    config
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "10000")
        .create()
}

/// Waits for queued records to be delivered, bounded, before the process exits.
pub fn flush(producer: &FutureProducer, timeout: Duration) {
    if let Err(error) = producer.flush(Timeout::After(timeout)) {
        tracing::warn!(%error, "producer did not flush every record before shutdown");
    }
}

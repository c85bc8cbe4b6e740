//! Test helpers: a real Apache Kafka broker (started by `scripts/kafka`), the real
//! windowkeeper binary, and a real Kafka consumer to read what it wrote. Every process started here is killed when its handle is
//! dropped, also when a test fails.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub const SECRET: &str = "test-app-secret";
/// The event types of one window with one closing lead, in order.
pub const ONE_WINDOW: [&str; 3] = [
    "whatsapp.window.opened",
    "whatsapp.window.closing",
    "whatsapp.window.closed",
];
pub const VERIFY_TOKEN: &str = "test-verify-token";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A process that is killed when dropped.
pub struct Proc {
    child: Option<Child>,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or_default()
    }

    /// SIGKILL: a crash, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal by name (`-STOP`, `-CONT`, `-TERM`) with `kill`.
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(name)
                .arg(child.id().to_string())
                .status();
        }
    }

    /// SIGTERM, then wait for a clean exit; returns the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        self.signal("-TERM");
        let mut child = self.child.take()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                if status.code().is_none() {
                    // Killed by a signal: say which, since the exit code cannot.
                    eprintln!("windowkeeper ended by {status}");
                }
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("windowkeeper still running after {within:?}: killed");
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Waits for the process to exit on its own; its exit code, or `None` if still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// An Apache Kafka broker started through `scripts/kafka`, the same command a person uses.
pub struct Broker {
    pub port: u16,
    bootstrap: String,
    /// None for the shared broker: it belongs to the test binary, not to one test.
    proc: Option<Proc>,
    dir: Option<tempfile::TempDir>,
}

/// The test binary's broker: it lives as long as the binary, whose exit closes the broker's
/// standard input, which stops it (`--exit-with-stdin`), also when a test fails or panics.
struct SharedBroker {
    bootstrap: String,
    _stdin: std::process::ChildStdin,
}

static SHARED: std::sync::OnceLock<SharedBroker> = std::sync::OnceLock::new();

impl Broker {
    /// The broker this test binary shares between its tests (each test uses its own topics
    /// and groups), or the existing cluster named by `KAFKA_BOOTSTRAP`.
    pub fn shared() -> Self {
        let bootstrap = match std::env::var("KAFKA_BOOTSTRAP") {
            Ok(existing) if !existing.is_empty() => existing,
            _ => {
                SHARED
                    .get_or_init(|| {
                        let port = free_port();
                        let (mut child, bootstrap) = spawn_kafka(port, None);
                        let stdin = child.stdin.take().expect("broker stdin is piped");
                        // Dropping the handle without killing: the broker outlives this call.
                        std::mem::forget(child);
                        SharedBroker {
                            bootstrap,
                            _stdin: stdin,
                        }
                    })
                    .bootstrap
                    .clone()
            }
        };
        Self {
            port: port_of(&bootstrap),
            bootstrap,
            proc: None,
            dir: None,
        }
    }

    /// A broker of the test's own, for tests that stop or restart it: its data directory
    /// survives `restart`. Always a new process, even with `KAFKA_BOOTSTRAP` set.
    pub fn own() -> Self {
        let dir = tempfile::tempdir().expect("broker data dir");
        let (child, bootstrap) = spawn_kafka(free_port(), Some(dir.path()));
        Self {
            port: port_of(&bootstrap),
            bootstrap,
            proc: Some(Proc {
                child: Some(child),
                name: "kafka".into(),
            }),
            dir: Some(dir),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    /// SIGKILL: the broker crashes (its own broker only).
    pub fn kill(&mut self) {
        self.own_proc().kill();
    }

    /// Stops the broker if it runs and starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.own_proc().kill();
        let dir = self.dir.as_ref().map(|d| d.path().to_path_buf());
        let (child, _) = spawn_kafka(self.port, dir.as_deref());
        self.proc = Some(Proc {
            child: Some(child),
            name: "kafka".into(),
        });
    }

    fn own_proc(&mut self) -> &mut Proc {
        self.proc
            .as_mut()
            .expect("only a broker of the test's own (Broker::own) can be stopped")
    }
}

/// The port of the first address of a bootstrap list.
fn port_of(bootstrap: &str) -> u16 {
    bootstrap
        .split(',')
        .next()
        .and_then(|first| first.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_default()
}

/// Starts `scripts/kafka` and waits for its `bootstrap:` line. A first start that fails
/// (a port taken between choosing and binding it) is tried again on new ports.
fn spawn_kafka(port: u16, dir: Option<&Path>) -> (Child, String) {
    let restart = dir.is_some_and(|d| d.join("ports").exists());
    let mut port = port;
    for _ in 0..2 {
        match try_spawn_kafka(port, dir) {
            Ok(started) => return started,
            Err(log) if !restart => {
                eprintln!("broker start failed, trying other ports:\n{log}");
                if let Some(dir) = dir {
                    let _ = std::fs::remove_dir_all(dir);
                    let _ = std::fs::create_dir_all(dir);
                }
                port = free_port();
            }
            Err(log) => panic!("scripts/kafka printed no bootstrap line; its log:\n{log}"),
        }
    }
    try_spawn_kafka(port, dir)
        .unwrap_or_else(|log| panic!("scripts/kafka printed no bootstrap line; its log:\n{log}"))
}

fn try_spawn_kafka(port: u16, dir: Option<&Path>) -> Result<(Child, String), String> {
    use std::io::BufRead;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka");
    let log = std::env::temp_dir().join(format!("windowkeeper-kafka-{port}.log"));
    let log_file = std::fs::File::create(&log).expect("broker log file");
    let mut command = Command::new(&script);
    command.args([
        "--port",
        &port.to_string(),
        "--heap",
        "384m",
        "--exit-with-stdin",
    ]);
    if let Some(dir) = dir {
        command.arg("--dir").arg(dir);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = child.stdout.take().expect("broker stdout is piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(address) = line.strip_prefix("bootstrap: ") {
                let _ = sender.send(address.to_owned());
            }
        }
    });
    // Generous: the first start on a machine may fetch the jars.
    match receiver.recv_timeout(Duration::from_secs(180)) {
        Ok(bootstrap) => Ok((child, bootstrap)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::fs::read_to_string(&log).unwrap_or_default())
        }
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_windowkeeper")
}

/// Where a process's output goes when `TEST_KEEP_LOGS` names a directory: a folder per process
/// that outlives the test, so the log of a process the test replaced is still there to read
/// after a failure. Without it, output lives and dies with the process's temporary directory.
fn log_dir(command: &str) -> Option<PathBuf> {
    static SPAWNED: AtomicUsize = AtomicUsize::new(0);
    let root = PathBuf::from(std::env::var_os("TEST_KEEP_LOGS")?);
    let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
    let dir = root.join(format!("{}-{n:02}-{command}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log directory");
    Some(dir)
}

/// A running windowkeeper process.
pub struct App {
    pub proc: Proc,
    pub listen: u16,
    pub admin: u16,
    pub api: u16,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

pub struct AppOptions<'a> {
    pub command: &'a str,
    pub brokers: Option<String>,
    pub extra: Vec<String>,
    pub env: Vec<(String, String)>,
    pub topic_prefix: String,
}

impl<'a> AppOptions<'a> {
    pub fn new(command: &'a str, brokers: &str, topic_prefix: &str) -> Self {
        Self {
            command,
            brokers: Some(brokers.to_owned()),
            extra: Vec::new(),
            env: Vec::new(),
            topic_prefix: topic_prefix.to_owned(),
        }
    }

    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.extra.push(flag.to_owned());
        self.extra.push(value.to_owned());
        self
    }
}

pub struct TopicNames {
    pub inbound: String,
    pub events: String,
    pub state: String,
    pub deadletter: String,
}

pub fn topics(prefix: &str) -> TopicNames {
    TopicNames {
        inbound: format!("{prefix}.inbound"),
        events: format!("{prefix}.window-events"),
        state: format!("{prefix}.window-state"),
        deadletter: format!("{prefix}.deadletter"),
    }
}

impl App {
    pub fn spawn(options: AppOptions<'_>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listen = free_port();
        let admin = free_port();
        let api = free_port();
        let names = topics(&options.topic_prefix);
        let mut args: Vec<String> = vec![options.command.to_owned()];
        // Defaults for the test, unless the test sets the flag itself.
        let mut flag = |f: &str, v: String| {
            if !options.extra.iter().any(|a| a == f) {
                args.push(f.to_owned());
                args.push(v);
            }
        };
        flag("--admin-listen", format!("127.0.0.1:{admin}"));
        if let Some(brokers) = &options.brokers {
            flag("--kafka-brokers", brokers.clone());
        }
        flag("--topic-inbound", names.inbound);
        flag("--topic-window-events", names.events);
        flag("--topic-window-state", names.state);
        flag("--topic-deadletter", names.deadletter);
        if options.command != "tracker" {
            flag("--listen", format!("127.0.0.1:{listen}"));
            flag("--app-secret", SECRET.to_owned());
            flag("--verify-token", VERIFY_TOKEN.to_owned());
        }
        if options.command != "receiver" {
            flag("--api-listen", format!("127.0.0.1:{api}"));
        }
        flag("--partitions", "3".to_owned());
        args.extend(options.extra.iter().cloned());
        let logs = log_dir(options.command).unwrap_or_else(|| dir.path().to_owned());
        let stdout_path = logs.join("stdout.log");
        let stderr_path = logs.join("stderr.log");
        let mut command = Command::new(binary());
        command
            .args(&args)
            .env(
                "WINDOWKEEPER_LOG",
                std::env::var("TEST_WINDOWKEEPER_LOG")
                    .unwrap_or_else(|_| "info,windowkeeper=debug,rdkafka=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
        for (k, v) in &options.env {
            command.env(k, v);
        }
        let child = command.spawn().expect("windowkeeper starts");
        Self {
            proc: Proc {
                child: Some(child),
                name: "windowkeeper".into(),
            },
            listen,
            admin,
            api,
            stdout_path,
            stderr_path,
            _dir: dir,
        }
    }

    /// Spawns and waits for /readyz, as most tests need.
    pub async fn spawn_ready(options: AppOptions<'_>) -> Self {
        let mut app = Self::spawn(options);
        app.wait_ready(Duration::from_secs(60)).await;
        app
    }

    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/webhook", self.listen)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    /// The send-decision API's base URL.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }

    /// The admin listener's Prometheus scrape.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The scrape once `ready` holds for it, or the last one after `within`: counters move
    /// just after the work they count.
    pub async fn metrics_when(&self, within: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let metrics = self.metrics().await;
            if ready(&metrics) || Instant::now() > deadline {
                return metrics;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// A normal start and run logs nothing at ERROR level.
    pub fn assert_no_error_lines(&self) {
        let stderr = self.stderr();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert!(
            errors.is_empty(),
            "ERROR lines in a normal run:\n{}",
            errors.join("\n")
        );
    }

    /// SIGTERM and a clean exit (code 0) within `within`, or the test fails with the log.
    pub fn stop_cleanly(&mut self, within: Duration) {
        let code = self.proc.terminate(within);
        assert_eq!(
            code,
            Some(0),
            "windowkeeper did not exit cleanly:\n{}",
            self.stderr()
        );
    }

    /// Waits for /readyz to answer 200.
    pub async fn wait_ready(&mut self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if !self.proc.is_running() {
                panic!("windowkeeper exited early:\n{}", self.stderr());
            }
            if let Ok(r) = client.get(self.admin_url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "windowkeeper not ready within {within:?}:\n{}",
            self.stderr()
        );
    }
}

/// Reads a fixture shipped with the tests.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Replaces every `"timestamp": "<digits>"` with `at` (as Meta's string seconds), so a test
/// can make an old fixture describe a live window.
pub fn with_timestamps(body: &[u8], at: i64) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    let needle = "\"timestamp\": \"";
    while let Some(i) = rest.find(needle) {
        out.push_str(&rest[..i + needle.len()]);
        rest = &rest[i + needle.len()..];
        let end = rest.find('"').unwrap_or(0);
        out.push_str(&at.to_string());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.into_bytes()
}

/// A fixture's body with every `wamid.` id made distinct by `tag` (a new message, not Meta's
/// retry of the same one).
pub fn with_wamid(body: Vec<u8>, tag: &str) -> Vec<u8> {
    String::from_utf8_lossy(&body)
        .replace("wamid.", &format!("wamid.{tag}"))
        .into_bytes()
}

/// A signed-ready webhook with one text message from the BSUID `customer` to business
/// number `phone_number_id`, stamped `at`.
pub fn text_webhook(phone_number_id: &str, customer: &str, wamid: &str, at: i64) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"{phone_number_id}","display_phone_number":"1"}},"messages":[{{"id":"{wamid}","timestamp":"{at}","type":"text","from_user_id":"{customer}","text":{{"body":"hi"}}}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

/// The same message, sent from a Click-to-WhatsApp ad.
pub fn from_an_ad(body: Vec<u8>) -> Vec<u8> {
    String::from_utf8_lossy(&body)
        .replace(
            r#""type":"text","#,
            r#""type":"text","referral":{"source_type":"ad","source_id":"9"},"#,
        )
        .into_bytes()
}

pub fn sign(body: &[u8]) -> String {
    windowkeeper::ingest::signature::sign(SECRET.as_bytes(), body)
}

pub async fn post_signed(url: &str, body: &[u8]) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(body))
        .body(body.to_vec())
        .send()
        .await
        .expect("POST reaches the receiver")
}

/// Posts a fixture with every `timestamp` set to `at`, signed, and expects the 200.
pub async fn post_fixture(app: &App, name: &str, at: i64) {
    let status = post_signed(&app.webhook_url(), &with_timestamps(&fixture(name), at))
        .await
        .status();
    assert_eq!(status, 200, "posting {name}:\n{}", app.stderr());
}

#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub headers: HashMap<String, String>,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        self.payload
            .as_deref()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Reads a topic from the start until `want(records)` says enough or `within` passes.
pub fn read_until(
    brokers: &str,
    topic: &str,
    within: Duration,
    want: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer = test_consumer(brokers);
    let deadline = Instant::now() + within;
    let mut assigned = false;
    let mut records = Vec::new();
    while Instant::now() < deadline {
        if !assigned {
            let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            let Some(meta) = metadata
                .topics()
                .first()
                .filter(|t| !t.partitions().is_empty())
            else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            let mut list = TopicPartitionList::new();
            for p in meta.partitions() {
                list.add_partition_offset(topic, p.id(), Offset::Beginning)
                    .expect("partition");
            }
            consumer.assign(&list).expect("assign");
            assigned = true;
        }
        if want(&records) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            records.push(to_record(&m));
        }
    }
    records
}

fn to_record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let mut headers = HashMap::new();
    if let Some(h) = m.headers() {
        for header in h.iter() {
            headers.insert(
                header.key.to_owned(),
                String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
            );
        }
    }
    Record {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        payload: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// A transactional producer of the test's own, its transactions initialised.
pub fn transactional_producer(
    brokers: &str,
    transactional_id: &str,
) -> ThreadedProducer<DefaultProducerContext> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("transactional.id", transactional_id)
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    producer
}

/// A read_committed consumer that assigns partitions itself (the group id only names it).
fn test_consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "windowkeeper-tests")
        .set("enable.auto.commit", "false")
        .set("broker.address.family", "v4")
        .create()
        .expect("test consumer")
}

/// Reads every partition of a topic from its start to the end it has now (its high
/// watermarks, asked first): every record acknowledged (or committed) before the call is in
/// the result. Positions, not offsets of records, say when an end is reached: the last
/// offsets of a transactional topic are markers no consumer is handed.
pub fn read_to_end(brokers: &str, topic: &str, within: Duration) -> Vec<Record> {
    let consumer = test_consumer(brokers);
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut list = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(partition.id(), high);
        list.add_partition_offset(topic, partition.id(), Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&list).expect("assign");
    let deadline = Instant::now() + within;
    let mut records = Vec::new();
    loop {
        let positions = consumer.position().expect("positions");
        let reached = ends.iter().all(|(partition, end)| {
            *end == 0
                || matches!(
                    positions.find_partition(topic, *partition).map(|p| p.offset()),
                    Some(Offset::Offset(at)) if at >= *end
                )
        });
        if reached {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} was not read to its end {ends:?} within {within:?}"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            records.push(to_record(&m));
        }
    }
}

/// Reads a topic for a while and returns everything (for "nothing was published" checks).
pub fn read_all(brokers: &str, topic: &str, settle: Duration) -> Vec<Record> {
    read_until(brokers, topic, settle, |_| false)
}

pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("t{}.{test}", nanos % 1_000_000)
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Validates answers against the OpenAPI document's own component schemas.
pub struct OpenApi {
    pub decision: jsonschema::Validator,
    pub error: jsonschema::Validator,
}

impl OpenApi {
    pub fn load() -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml");
        let document: serde_json::Value =
            serde_norway::from_str(&text).expect("openapi.yaml parses");
        assert_eq!(document["openapi"], "3.1.0");
        // The whole document is the schema's root, so the components' own `#/components/...`
        // references resolve; the document's other keys are not schema keywords.
        let validator = |component: &str| {
            let mut schema = document.clone();
            schema["$schema"] =
                serde_json::Value::from("https://json-schema.org/draft/2020-12/schema");
            schema["$ref"] = serde_json::Value::from(format!("#/components/schemas/{component}"));
            jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("{component} schema: {e}"))
        };
        let error_component = document["components"]["schemas"]
            .as_object()
            .expect("components")
            .keys()
            .find(|k| k.to_lowercase().contains("error"))
            .expect("an error schema")
            .clone();
        Self {
            decision: validator("ContactDecision"),
            error: validator(&error_component),
        }
    }

    pub fn check(&self, status: u16, body: &serde_json::Value) {
        let validator = if status == 200 {
            &self.decision
        } else {
            &self.error
        };
        if let Err(error) = validator.validate(body) {
            panic!("a {status} answer does not match openapi.yaml: {error}\n{body:#}");
        }
    }
}

/// Validates CloudEvents against their JSON Schemas in `schemas/` (`<type>.json`), each schema
/// compiled once; panics with the first event that does not match.
pub fn validate_events<'a>(events: impl IntoIterator<Item = &'a serde_json::Value>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut validators: HashMap<String, jsonschema::Validator> = HashMap::new();
    for event in events {
        let event_type = event["type"].as_str().expect("type").to_owned();
        let validator = validators.entry(event_type.clone()).or_insert_with(|| {
            let text = std::fs::read_to_string(dir.join(format!("{event_type}.json")))
                .unwrap_or_else(|e| panic!("schema for {event_type}: {e}"));
            let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
            jsonschema::validator_for(&schema).expect("valid schema")
        });
        if let Err(error) = validator.validate(event) {
            panic!("{event_type} does not match its schema: {error}\n{event:#}");
        }
    }
}

//! Command line and environment. Every flag also reads `WINDOWKEEPER_<FLAG>`; the two Meta
//! settings also read `META_APP_SECRET` / `META_VERIFY_TOKEN`. Validation turns flags into
//! typed settings so the rest of the program never sees a raw string it has to re-check.
//!
//! Longer than most files on purpose: every flag sits beside its validation and its typed
//! setting, so `--help`, the README's table (checked by a test) and the checks stay in step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ingest::signature::AppSecrets;
use crate::window::WindowConfig;

#[derive(Debug, Parser)]
#[command(
    name = "windowkeeper",
    version,
    about = "WhatsApp webhooks to Kafka, with messaging window tracking"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receiver and tracker in one process; with no --kafka-brokers, on an embedded broker.
    Run(RunArgs),
    /// The HTTP webhook receiver only.
    Receiver(ReceiverCommand),
    /// The window tracker only.
    Tracker(TrackerCommand),
    /// Print the X-Hub-Signature-256 header value for FILE (or stdin).
    Sign(SignArgs),
    /// Ask the send-decision API about a contact and answer in words.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub receiver: ReceiverArgs,
    #[command(flatten)]
    pub tracker: TrackerArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ReceiverCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub receiver: ReceiverArgs,
}

#[derive(Debug, Args)]
pub struct TrackerCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub tracker: TrackerArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// The send-decision API, served wherever a tracker runs.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Address of the send-decision API (GET /v1/contacts/{phone_number_id}/{customer}).
    #[arg(long, env = "WINDOWKEEPER_API_LISTEN", default_value = "0.0.0.0:8081")]
    pub api_listen: SocketAddr,
    /// Meta's pricing rules with effective dates (JSON), replacing the built-in ones.
    #[arg(long, env = "WINDOWKEEPER_PRICING_RULES")]
    pub pricing_rules: Option<PathBuf>,
    /// Bearer tokens the API accepts, one a line (several for rotation); without it the API is open.
    #[arg(long, env = "WINDOWKEEPER_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The business number's id (metadata.phone_number_id).
    pub phone_number_id: String,
    /// The customer: a BSUID (US.1349…) or a wa_id (phone number digits).
    pub customer: String,
    /// Base URL of the send-decision API.
    #[arg(
        long,
        env = "WINDOWKEEPER_API",
        default_value = "http://127.0.0.1:8081"
    )]
    pub api: String,
    /// Bearer token, when the API requires one.
    #[arg(long, env = "WINDOWKEEPER_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Meta app secret used to sign.
    #[arg(long, env = "WINDOWKEEPER_APP_SECRET", hide_env_values = true)]
    pub app_secret: Option<String>,
    /// File to sign; stdin when absent.
    pub file: Option<PathBuf>,
}

/// How the tracker's consumer group assigns partitions. Both move only the partitions that
/// change owner, so a member joining does not make every member re-read its state.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GroupProtocol {
    /// The classic protocol with cooperative-sticky assignment (any Kafka since 2.4).
    Classic,
    /// KIP-848, where the broker assigns (Kafka 4.0 or newer); the session timeout and
    /// heartbeat then come from the broker's `group.consumer.*` settings.
    Consumer,
}

/// What the tracker promises about its output.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Events, state and consumed offsets in one Kafka transaction per batch.
    ExactlyOnce,
    /// For brokers without transactions: a crash can repeat events, with the same ids.
    AtLeastOnce,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "WINDOWKEEPER_ADMIN_LISTEN",
        default_value = "0.0.0.0:9464"
    )]
    pub admin_listen: SocketAddr,
    /// Kafka bootstrap servers (comma-separated).
    #[arg(long, env = "WINDOWKEEPER_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Extra Kafka client property, KEY=VALUE (repeatable), e.g. security.protocol=SASL_SSL.
    #[arg(long = "kafka-property", env = "WINDOWKEEPER_KAFKA_PROPERTY", value_parser = parse_property)]
    pub kafka_property: Vec<(String, String)>,
    /// File of Kafka client properties, KEY=VALUE a line (# comments); keeps SASL passwords off the command line.
    #[arg(long, env = "WINDOWKEEPER_KAFKA_CONFIG")]
    pub kafka_config: Option<PathBuf>,
    /// Topic of normalized inbound events.
    #[arg(
        long,
        env = "WINDOWKEEPER_TOPIC_INBOUND",
        default_value = "whatsapp.inbound.v1"
    )]
    pub topic_inbound: String,
    /// Topic of window events.
    #[arg(
        long,
        env = "WINDOWKEEPER_TOPIC_WINDOW_EVENTS",
        default_value = "whatsapp.window-events.v1"
    )]
    pub topic_window_events: String,
    /// Compacted topic of each contact's current window state.
    #[arg(
        long,
        env = "WINDOWKEEPER_TOPIC_WINDOW_STATE",
        default_value = "whatsapp.window-state.v1"
    )]
    pub topic_window_state: String,
    /// Topic of signed payloads that could not be understood.
    #[arg(
        long,
        env = "WINDOWKEEPER_TOPIC_DEADLETTER",
        default_value = "whatsapp.deadletter.v1"
    )]
    pub topic_deadletter: String,
    /// Partitions of the topics it creates.
    #[arg(long, env = "WINDOWKEEPER_PARTITIONS", default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=10000))]
    pub partitions: i32,
    /// Replication factor of the topics it creates.
    #[arg(long, env = "WINDOWKEEPER_REPLICATION_FACTOR", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=32))]
    pub replication_factor: i32,
    /// How long a publish may wait for Kafka's acknowledgement before the request gets 503.
    #[arg(long, env = "WINDOWKEEPER_PUBLISH_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub publish_timeout: Duration,
    /// Log format.
    #[arg(
        long,
        env = "WINDOWKEEPER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct ReceiverArgs {
    /// Webhook HTTP listener.
    #[arg(long, env = "WINDOWKEEPER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Meta app secret; repeat or comma-separate for rotation (also META_APP_SECRET).
    #[arg(
        long,
        env = "WINDOWKEEPER_APP_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub app_secret: Vec<String>,
    /// File with app secrets, one a line.
    #[arg(long, env = "WINDOWKEEPER_APP_SECRET_FILE")]
    pub app_secret_file: Option<PathBuf>,
    /// Token of the GET verification handshake (also META_VERIFY_TOKEN).
    #[arg(long, env = "WINDOWKEEPER_VERIFY_TOKEN", hide_env_values = true)]
    pub verify_token: Option<String>,
    /// Largest accepted POST body, in bytes.
    #[arg(long, env = "WINDOWKEEPER_MAX_BODY", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: usize,
    /// Most webhook requests handled at once; more wait briefly, then get 503.
    #[arg(
        long,
        env = "WINDOWKEEPER_MAX_CONCURRENT_REQUESTS",
        default_value_t = 512
    )]
    pub max_concurrent_requests: usize,
    /// Most body bytes buffered across all requests at once; more wait briefly, then get 503.
    #[arg(
        long,
        env = "WINDOWKEEPER_MAX_BUFFERED_BYTES",
        default_value_t = 268_435_456
    )]
    pub max_buffered_bytes: usize,
    /// Most open client connections; further connections are closed at once.
    #[arg(long, env = "WINDOWKEEPER_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Time a client gets to send its headers, and then its body.
    #[arg(long, env = "WINDOWKEEPER_CLIENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub client_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct TrackerArgs {
    /// Customer service window length.
    #[arg(long, env = "WINDOWKEEPER_SERVICE_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub service_window: Duration,
    /// Free entry point window length.
    #[arg(long, env = "WINDOWKEEPER_FREE_ENTRY_WINDOW", default_value = "72h", value_parser = parse_duration)]
    pub free_entry_window: Duration,
    /// Warnings before a window closes, e.g. 4h,1h,15m.
    #[arg(long, env = "WINDOWKEEPER_CLOSING_LEAD", value_delimiter = ',', default_value = "1h", value_parser = parse_duration)]
    pub closing_lead: Vec<Duration>,
    /// Whether reactions open or refresh the customer service window.
    #[arg(long, env = "WINDOWKEEPER_REACTIONS_OPEN_WINDOW", default_value_t = false, action = clap::ArgAction::Set)]
    pub reactions_open_window: bool,
    /// How long the group waits for a silent tracker before giving its partitions to others
    /// (classic protocol; with `consumer` the broker's setting applies).
    #[arg(long, env = "WINDOWKEEPER_SESSION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub session_timeout: Duration,
    /// Consumer group protocol: classic (cooperative-sticky) or consumer (KIP-848, Kafka 4+).
    #[arg(
        long,
        env = "WINDOWKEEPER_GROUP_PROTOCOL",
        value_enum,
        default_value = "classic"
    )]
    pub group_protocol: GroupProtocol,
    /// exactly-once (Kafka transactions) or at-least-once (brokers without transactions).
    #[arg(
        long,
        env = "WINDOWKEEPER_PROCESSING_GUARANTEE",
        value_enum,
        default_value = "exactly-once"
    )]
    pub processing_guarantee: ProcessingGuarantee,
    /// Tracker consumer group.
    #[arg(
        long,
        env = "WINDOWKEEPER_GROUP_ID",
        default_value = "windowkeeper-tracker"
    )]
    pub group_id: String,
    /// Static group membership (e.g. the pod name): a restarted instance gets its partitions
    /// back at once instead of after the session timeout.
    #[arg(long, env = "WINDOWKEEPER_GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,
}

fn parse_property(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err("expected KEY=VALUE".into()),
    }
}

/// `--max-body`'s default; the record limit of processes that receive no webhooks.
pub const DEFAULT_MAX_BODY: usize = 4_194_304;

/// A record is at most the body (dead letter) or one item of it plus its envelope.
pub fn record_limit(max_body: usize) -> usize {
    max_body.saturating_add(64 * 1024).max(1_000_000)
}

/// Durations as `90s`, `15m`, `24h`, `3d` (and combinations humantime accepts).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("{e} (use e.g. 90s, 15m, 24h, 3d)"))?;
    if value.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(value)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--kafka-brokers (or WINDOWKEEPER_KAFKA_BROKERS) is required")]
    MissingBrokers,
    #[error("an app secret is required: --app-secret, --app-secret-file, WINDOWKEEPER_APP_SECRET or META_APP_SECRET")]
    MissingSecret,
    #[error("a verify token is required: --verify-token, WINDOWKEEPER_VERIFY_TOKEN or META_VERIFY_TOKEN")]
    MissingVerifyToken,
    #[error("cannot read --app-secret-file {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid app secret: {0}")]
    InvalidSecret(String),
    #[error("--max-body must be at least 1 byte")]
    ZeroMaxBody,
    #[error("--{0} must be at least 1")]
    ZeroLimit(&'static str),
    #[error("cannot read --kafka-config {path}: {source}")]
    KafkaConfigFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--kafka-config {path} line {line}: expected KEY=VALUE")]
    KafkaConfigLine { path: PathBuf, line: usize },
    #[error("--max-buffered-bytes must be at least --max-body")]
    BufferBelowBody,
    #[error("--closing-lead {lead:?} is not shorter than the window it warns about ({window:?})")]
    LeadTooLong { lead: Duration, window: Duration },
    #[error("--pricing-rules {0}")]
    PricingRules(#[from] crate::api::pricing::PricingError),
    #[error(transparent)]
    ApiTokens(#[from] crate::api::TokenFileError),
}

/// Validated API settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    pub rules: std::sync::Arc<crate::api::pricing::PricingRules>,
    pub tokens: Option<std::sync::Arc<crate::api::ApiTokens>>,
}

impl ApiArgs {
    pub fn settings(&self) -> Result<ApiSettings, ConfigError> {
        let rules = match &self.pricing_rules {
            Some(path) => crate::api::pricing::PricingRules::from_file(path)?,
            None => crate::api::pricing::PricingRules::built_in(),
        };
        let tokens = self
            .api_token_file
            .as_deref()
            .map(crate::api::ApiTokens::from_file)
            .transpose()?;
        Ok(ApiSettings {
            listen: self.api_listen,
            rules: std::sync::Arc::new(rules),
            tokens: tokens.map(std::sync::Arc::new),
        })
    }
}

/// Where the Kafka-facing parts connect and what they name.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    /// Extra client properties (security, tuning), applied to every client.
    pub properties: Vec<(String, String)>,
    /// Largest record it writes: a whole body on the dead-letter topic, or one item with its
    /// envelope. Producers and created topics are sized to accept it.
    pub max_record_bytes: usize,
    pub topics: Topics,
    pub partitions: i32,
    pub replication_factor: i32,
    pub publish_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Topics {
    pub inbound: String,
    pub window_events: String,
    pub window_state: String,
    pub deadletter: String,
}

impl CommonArgs {
    pub fn topics(&self) -> Topics {
        Topics {
            inbound: self.topic_inbound.clone(),
            window_events: self.topic_window_events.clone(),
            window_state: self.topic_window_state.clone(),
            deadletter: self.topic_deadletter.clone(),
        }
    }

    pub fn kafka(&self, embedded_brokers: Option<&str>) -> Result<KafkaSettings, ConfigError> {
        let brokers = self
            .kafka_brokers
            .clone()
            .filter(|b| !b.trim().is_empty())
            .or_else(|| embedded_brokers.map(str::to_owned))
            .ok_or(ConfigError::MissingBrokers)?;
        let mut properties = Vec::new();
        if let Some(path) = &self.kafka_config {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::KafkaConfigFile {
                    path: path.clone(),
                    source,
                })?;
            for (index, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let property = parse_property(line).map_err(|_| ConfigError::KafkaConfigLine {
                    path: path.clone(),
                    line: index + 1,
                })?;
                properties.push(property);
            }
        }
        // Flags after the file: the command line wins.
        properties.extend(self.kafka_property.iter().cloned());
        Ok(KafkaSettings {
            brokers,
            properties,
            max_record_bytes: record_limit(DEFAULT_MAX_BODY),
            topics: self.topics(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            publish_timeout: self.publish_timeout,
        })
    }
}

/// Validated receiver settings.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    pub listen: SocketAddr,
    pub secrets: AppSecrets,
    pub verify_token: VerifyToken,
    pub max_body: usize,
    pub max_concurrent_requests: usize,
    pub max_buffered_bytes: usize,
    pub max_connections: usize,
    pub client_timeout: Duration,
}

/// The handshake token; `Debug` never shows it.
#[derive(Clone)]
pub struct VerifyToken(String);

impl VerifyToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// Constant-time so the token cannot be probed byte by byte.
    pub fn matches(&self, candidate: &str) -> bool {
        use sha2::Digest;
        use subtle::ConstantTimeEq;
        // Hashing first makes the comparison independent of the lengths too.
        let ours = sha2::Sha256::digest(self.0.as_bytes());
        let theirs = sha2::Sha256::digest(candidate.as_bytes());
        ours.as_slice().ct_eq(theirs.as_slice()).into()
    }
}

impl std::fmt::Debug for VerifyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyToken(<redacted>)")
    }
}

fn env_fallback(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl ReceiverArgs {
    pub fn settings(&self) -> Result<ReceiverSettings, ConfigError> {
        let mut secrets: Vec<String> = self
            .app_secret
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(path) = &self.app_secret_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                path: path.clone(),
                source,
            })?;
            secrets.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        }
        if secrets.is_empty() {
            if let Some(fallback) = env_fallback("META_APP_SECRET") {
                secrets.extend(
                    fallback
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
        }
        if secrets.is_empty() {
            return Err(ConfigError::MissingSecret);
        }
        let secrets =
            AppSecrets::new(secrets).map_err(|e| ConfigError::InvalidSecret(e.to_string()))?;
        let verify_token = self
            .verify_token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| env_fallback("META_VERIFY_TOKEN"))
            .ok_or(ConfigError::MissingVerifyToken)?;
        if self.max_body == 0 {
            return Err(ConfigError::ZeroMaxBody);
        }
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::ZeroLimit("max-concurrent-requests"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroLimit("max-connections"));
        }
        if self.max_buffered_bytes < self.max_body {
            return Err(ConfigError::BufferBelowBody);
        }
        Ok(ReceiverSettings {
            listen: self.listen,
            secrets,
            verify_token: VerifyToken::new(verify_token),
            max_body: self.max_body,
            max_concurrent_requests: self.max_concurrent_requests,
            max_buffered_bytes: self.max_buffered_bytes,
            max_connections: self.max_connections,
            client_timeout: self.client_timeout,
        })
    }
}

/// Validated tracker settings.
#[derive(Debug, Clone)]
pub struct TrackerSettings {
    pub windows: WindowConfig,
    pub group_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout: Duration,
    pub group_protocol: GroupProtocol,
    pub processing_guarantee: ProcessingGuarantee,
}

impl TrackerArgs {
    pub fn settings(&self) -> Result<TrackerSettings, ConfigError> {
        let shortest = self.service_window.min(self.free_entry_window);
        if let Some(lead) = self.closing_lead.iter().find(|lead| **lead >= shortest) {
            return Err(ConfigError::LeadTooLong {
                lead: *lead,
                window: shortest,
            });
        }
        Ok(TrackerSettings {
            windows: WindowConfig::new(
                whole_seconds(self.service_window),
                whole_seconds(self.free_entry_window),
                self.closing_lead.iter().map(|d| whole_seconds(*d)),
                self.reactions_open_window,
            ),
            group_id: self.group_id.clone(),
            group_instance_id: self
                .group_instance_id
                .clone()
                .filter(|id| !id.trim().is_empty()),
            session_timeout: self.session_timeout,
            group_protocol: self.group_protocol,
            processing_guarantee: self.processing_guarantee,
        })
    }
}

fn whole_seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX).max(1)
}

#[cfg(test)]
mod tests;

//! Every metric the program exports, registered in one place so the dashboard and alert rules
//! can be checked against a single list. Call sites record typed outcomes, never free strings.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What became of one webhook request.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// POST published and acknowledged: 200.
    Accepted,
    /// Signed but not understood; raw body on the dead-letter topic: 200.
    DeadLettered,
    /// Signature missing, malformed or wrong: 401.
    Unauthorized,
    /// Body over --max-body: 413.
    TooLarge,
    /// Client too slow sending its body: 408.
    ClientTimeout,
    /// Kafka unavailable, slow, or the receiver at its concurrency bound: 503.
    Unavailable,
    /// GET handshake answered: 200.
    Verified,
    /// GET handshake refused: 403.
    Forbidden,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::DeadLettered => "dead_lettered",
            Self::Unauthorized => "unauthorized",
            Self::TooLarge => "too_large",
            Self::ClientTimeout => "client_timeout",
            Self::Unavailable => "unavailable",
            Self::Verified => "verified",
            Self::Forbidden => "forbidden",
        }
    }
}

/// What became of one send-decision query.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum QueryOutcome {
    /// Answered for a contact with state: 200.
    Known,
    /// Answered for a contact nothing is known about: 200.
    Unknown,
    /// A malformed id: 400.
    Malformed,
    /// Missing or wrong bearer token: 401.
    Unauthorized,
    /// The contact's partition is still being read: 503.
    Restoring,
}

impl QueryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Known => "known",
            Self::Unknown => "unknown",
            Self::Malformed => "malformed",
            Self::Unauthorized => "unauthorized",
            Self::Restoring => "restoring",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum SignatureFailure {
    Missing,
    Malformed,
    Mismatch,
}

impl SignatureFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Mismatch => "mismatch",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub r#type: String,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum KafkaOperation {
    Publish,
    Consume,
    Commit,
    Metadata,
    /// A consumed record that could not be read.
    Decode,
    /// A tracker transaction that was aborted or failed.
    Transaction,
}

impl KafkaOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Consume => "consume",
            Self::Commit => "commit",
            Self::Metadata => "metadata",
            Self::Decode => "decode",
            Self::Transaction => "transaction",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabels {
    pub window: &'static str,
}

pub struct Metrics {
    pub requests: Family<OutcomeLabels, Counter>,
    pub signature_failures: Family<ReasonLabels, Counter>,
    pub publish_duration: Histogram,
    pub events_published: Family<TypeLabels, Counter>,
    pub kafka_errors: Family<OperationLabels, Counter>,
    pub open_windows: Family<WindowLabels, Gauge>,
    pub window_events: Family<TypeLabels, Counter>,
    pub rejected_inputs: Family<ReasonLabels, Counter>,
    pub restore_duration: Histogram,
    pub input_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub timer_lateness: Histogram,
    pub tracked_contacts: Gauge,
    pub api_queries: Family<OutcomeLabels, Counter>,
    pub api_query_duration: Histogram,
    pub api_view_contacts: Gauge,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `metric` and hands back the handle the program records through.
fn register<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("windowkeeper");
        let requests = register(
            &mut registry,
            "webhook_requests",
            "Webhook requests by outcome",
            Family::<OutcomeLabels, Counter>::default(),
        );
        let signature_failures = register(
            &mut registry,
            "signature_failures",
            "POSTs refused because X-Hub-Signature-256 was missing, malformed or wrong",
            Family::<ReasonLabels, Counter>::default(),
        );
        let publish_duration = register(
            &mut registry,
            "publish_duration_seconds",
            "Time from a verified POST to Kafka acknowledging all of its events",
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        );
        let events_published = register(
            &mut registry,
            "events_published",
            "Inbound events acknowledged by Kafka, by CloudEvent type",
            Family::<TypeLabels, Counter>::default(),
        );
        let kafka_errors = register(
            &mut registry,
            "kafka_errors",
            "Kafka operations that failed",
            Family::<OperationLabels, Counter>::default(),
        );
        let open_windows = register(
            &mut registry,
            "open_windows",
            "Windows open now, by kind",
            Family::<WindowLabels, Gauge>::default(),
        );
        let window_events = register(
            &mut registry,
            "window_events",
            "Window events emitted and acknowledged, by type",
            Family::<TypeLabels, Counter>::default(),
        );
        let rejected_inputs = register(
            &mut registry,
            "rejected_inputs",
            "Inbound items never applied to a window (a timestamp that cannot be right), by reason",
            Family::<ReasonLabels, Counter>::default(),
        );
        let restore_duration = register(
            &mut registry,
            "restore_duration_seconds",
            "Time to restore assigned partitions' state from the state topic",
            Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        );
        let input_lag = register(
            &mut registry,
            "input_lag_seconds",
            "Age of the newest inbound record the tracker processed, when processed",
            Gauge::<f64, std::sync::atomic::AtomicU64>::default(),
        );
        let timer_lateness = register(
            &mut registry,
            "timer_lateness_seconds",
            "How long after its deadline a warning or close was emitted",
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 60.0]),
        );
        let tracked_contacts = register(
            &mut registry,
            "tracked_contacts",
            "Keys the tracker holds state for: contacts and phone-number aliases",
            Gauge::default(),
        );
        let api_queries = register(
            &mut registry,
            "api_queries",
            "Send-decision queries by outcome",
            Family::<OutcomeLabels, Counter>::default(),
        );
        let api_query_duration = register(
            &mut registry,
            "api_query_duration_seconds",
            "Time to answer a send-decision query, from request to response",
            Histogram::new([
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
            ]),
        );
        let api_view_contacts = register(
            &mut registry,
            "api_view_contacts",
            "Keys in the send-decision API's read view of the state topic",
            Gauge::default(),
        );
        Self {
            requests,
            signature_failures,
            publish_duration,
            events_published,
            kafka_errors,
            open_windows,
            window_events,
            rejected_inputs,
            restore_duration,
            input_lag,
            timer_lateness,
            tracked_contacts,
            api_queries,
            api_query_duration,
            api_view_contacts,
            registry,
        }
    }

    pub fn request(&self, outcome: Outcome) {
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn signature_failure(&self, reason: SignatureFailure) {
        self.signature_failures
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    pub fn api_query(&self, outcome: QueryOutcome, seconds: f64) {
        self.api_queries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
        self.api_query_duration.observe(seconds);
    }

    pub fn kafka_error(&self, operation: KafkaOperation) {
        self.kafka_errors
            .get_or_create(&OperationLabels {
                operation: operation.as_str(),
            })
            .inc();
    }

    pub fn event_published(&self, event_type: &str) {
        self.events_published
            .get_or_create(&TypeLabels {
                r#type: event_type.to_owned(),
            })
            .inc();
    }

    pub fn window_event(&self, event_type: &str) {
        self.window_events
            .get_or_create(&TypeLabels {
                r#type: event_type.to_owned(),
            })
            .inc();
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metric_names() {
        let metrics = Metrics::new();
        metrics.request(Outcome::Accepted);
        metrics.signature_failure(SignatureFailure::Mismatch);
        let text = metrics.render();
        assert!(
            text.contains("windowkeeper_webhook_requests_total{outcome=\"accepted\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("windowkeeper_signature_failures_total{reason=\"mismatch\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE windowkeeper_publish_duration_seconds histogram"),
            "{text}"
        );
    }
}

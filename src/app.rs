//! Starting and stopping the services: bind, create topics, serve, and on SIGTERM/SIGINT stop
//! accepting, let in-flight work finish, and flush what Kafka has not yet acknowledged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Readiness};
use crate::config::{
    ApiArgs, ApiSettings, CommonArgs, ConfigError, KafkaSettings, LogFormat, ReceiverArgs,
    TrackerArgs,
};
use crate::http::{serve, ServeLimits};
use crate::ingest::receiver::Receiver;
use crate::kafka::{self, Reachability, SetupError};
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kafka(#[from] SetupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the embedded broker: {0}")]
    Embedded(String),
    #[error("tracker failed: {0}")]
    Tracker(String),
}

impl StartError {
    /// 2 for what the operator must fix in the configuration, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Bind { .. } => 2,
            // A client Kafka refuses to create is a configuration mistake (e.g. a bad property).
            Self::Kafka(SetupError::PartitionMismatch { .. } | SetupError::Client(_)) => 2,
            _ => 1,
        }
    }
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WINDOWKEEPER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests running several apps in one process) is harmless.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Resolves when the process is asked to stop.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested; finishing in-flight work");
}

/// What to start in one process.
pub struct Plan<'a> {
    pub common: &'a CommonArgs,
    pub receiver: Option<&'a ReceiverArgs>,
    pub tracker: Option<&'a TrackerArgs>,
    /// The send-decision API, served beside a tracker.
    pub api: Option<&'a ApiArgs>,
    /// Bootstrap servers of an embedded broker, when `run` started one.
    pub embedded_brokers: Option<String>,
    /// Where `run` prints window events (stdout), if anywhere.
    pub print_window_events: bool,
}

/// Serves the send-decision API from a read view of the state topic that a thread of its own
/// keeps current. A view that cannot follow the topic stops the process, as a failed tracker
/// does: stale answers are worse than none.
async fn start_api(
    settings: ApiSettings,
    listener: TcpListener,
    kafka_settings: &KafkaSettings,
    metrics: Arc<Metrics>,
    failure: Arc<std::sync::Mutex<Option<String>>>,
    stop: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(), StartError> {
    let state_topic = kafka_settings.topics.window_state.clone();
    let partitions = kafka::partition_counts(kafka_settings, Duration::from_secs(10))
        .await?
        .get(&state_topic)
        .copied()
        .ok_or(SetupError::Missing(state_topic))?;
    let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
    let view = Arc::new(std::sync::RwLock::new(crate::api::view::StateView::new(
        partitions,
    )));
    let feed_settings = kafka_settings.clone();
    let feed_view = view.clone();
    let feed_metrics = metrics.clone();
    let feed_stop = stop.clone();
    let failed = stop.clone();
    tasks.spawn(async move {
        let followed = tokio::task::spawn_blocking(move || {
            crate::api::feed::follow(
                &feed_settings,
                partitions,
                feed_view,
                &feed_metrics,
                feed_stop.clone(),
            )
        })
        .await;
        let error = match followed {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(panicked) => panicked.to_string(),
        };
        tracing::error!(%error, "send-decision API view stopped");
        if let Ok(mut slot) = failure.lock() {
            *slot = Some(error);
        }
        failed.cancel();
    });
    if settings.tokens.is_none() && !settings.listen.ip().is_loopback() {
        tracing::warn!(
            addr = %settings.listen,
            "the send-decision API answers anyone who can reach it (its answers carry phone numbers); set --api-token-file"
        );
    }
    let router = crate::api::router(crate::api::ApiState {
        view,
        rules: settings.rules,
        tokens: settings.tokens,
        metrics,
    });
    let limits = ServeLimits {
        header_timeout: Duration::from_secs(5),
        max_connections: 1024,
        drain_timeout: Duration::from_secs(2),
    };
    tracing::info!(addr = %settings.listen, "send-decision API up");
    tasks.spawn(serve(listener, router, limits, stop.clone()));
    Ok(())
}

/// Runs the planned services until `stop` fires; returns once everything is drained.
pub async fn run(plan: Plan<'_>, stop: CancellationToken) -> Result<(), StartError> {
    let receiver_settings = plan.receiver.map(ReceiverArgs::settings).transpose()?;
    let tracker_settings = plan.tracker.map(TrackerArgs::settings).transpose()?;
    let api_settings = plan.api.map(ApiArgs::settings).transpose()?;
    let mut kafka_settings: KafkaSettings = plan.common.kafka(plan.embedded_brokers.as_deref())?;
    if let Some(receiver) = &receiver_settings {
        kafka_settings.max_record_bytes = crate::config::record_limit(receiver.max_body);
    }

    let admin_listener = bind(plan.common.admin_listen).await?;
    let webhook_listener = match &receiver_settings {
        Some(settings) => Some(bind(settings.listen).await?),
        None => None,
    };
    let api_listener = match &api_settings {
        Some(settings) => Some(bind(settings.listen).await?),
        None => None,
    };

    kafka::ensure_topics(&kafka_settings).await?;
    let publisher = Arc::new(kafka::Publisher::new(&kafka_settings)?);
    let metrics = Arc::new(Metrics::new());
    let reachability = Reachability::default();
    reachability.set(true);

    let mut tasks = JoinSet::new();
    tasks.spawn(kafka::probe_reachability(
        publisher.clone(),
        reachability.clone(),
        metrics.clone(),
        stop.clone(),
    ));

    // A tracker that fails stops the process with a non-zero exit: its partitions must go to
    // a member that works.
    let tracker_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let tracker_restored = match tracker_settings {
        Some(settings) => {
            let tracker = crate::tracker::Tracker::new(
                &kafka_settings,
                settings,
                publisher.clone(),
                metrics.clone(),
                plan.print_window_events,
            )
            .map_err(|e| StartError::Tracker(e.to_string()))?;
            let restored = tracker.restored_flag();
            let stop = stop.clone();
            let failed = stop.clone();
            let failure = tracker_failure.clone();
            tasks.spawn(async move {
                if let Err(error) = tracker.run(stop).await {
                    tracing::error!(%error, "tracker stopped");
                    if let Ok(mut slot) = failure.lock() {
                        *slot = Some(error.to_string());
                    }
                    failed.cancel();
                }
            });
            Some(restored)
        }
        None => None,
    };

    if let (Some(settings), Some(listener)) = (api_settings, api_listener) {
        start_api(
            settings,
            listener,
            &kafka_settings,
            metrics.clone(),
            tracker_failure.clone(),
            stop.clone(),
            &mut tasks,
        )
        .await?;
    }

    let readiness = Readiness {
        kafka: reachability,
        tracker_restored,
    };
    let admin_limits = ServeLimits {
        header_timeout: Duration::from_secs(5),
        max_connections: 64,
        drain_timeout: Duration::from_secs(2),
    };
    tasks.spawn(serve(
        admin_listener,
        admin::router(metrics.clone(), readiness),
        admin_limits,
        stop.clone(),
    ));
    tracing::info!(addr = %plan.common.admin_listen, "admin listener up");

    if let (Some(settings), Some(listener)) = (receiver_settings, webhook_listener) {
        let receiver = Arc::new(Receiver::new(
            &settings,
            publisher.clone(),
            kafka_settings.topics.clone(),
            metrics.clone(),
        ));
        let limits = ServeLimits {
            header_timeout: settings.client_timeout,
            max_connections: settings.max_connections,
            // In-flight requests may be waiting on Kafka for up to the publish timeout.
            drain_timeout: kafka_settings.publish_timeout + Duration::from_secs(2),
        };
        tracing::info!(addr = %settings.listen, "webhook listener up");
        tasks.spawn(serve(listener, receiver.router(), limits, stop.clone()));
    }

    while tasks.join_next().await.is_some() {}
    publisher.flush(Duration::from_secs(10));
    tracing::info!("stopped");
    match tracker_failure.lock().ok().and_then(|mut slot| slot.take()) {
        Some(error) => Err(StartError::Tracker(error)),
        None => Ok(()),
    }
}

//! The admin listener: /metrics, /healthz, /readyz. Nothing here echoes configuration, so no
//! secret can leak through it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::kafka::Reachability;
use crate::metrics::Metrics;

/// What /readyz checks. The tracker part is present only where a tracker runs.
#[derive(Clone)]
pub struct Readiness {
    pub kafka: Reachability,
    pub tracker_restored: Option<Arc<AtomicBool>>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.kafka.is_reachable()
            && self
                .tracker_restored
                .as_ref()
                .is_none_or(|restored| restored.load(Ordering::Relaxed))
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

pub fn router(metrics: Arc<Metrics>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AdminState { metrics, readiness })
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn ready(State(state): State<AdminState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else if !state.readiness.kafka.is_reachable() {
        (StatusCode::SERVICE_UNAVAILABLE, "kafka unreachable\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "restoring window state\n")
    }
}

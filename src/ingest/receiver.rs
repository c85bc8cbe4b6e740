//! The webhook endpoint: GET handshake, POST verify -> normalize -> publish -> 200.
//! A 200 is a promise that Kafka holds every event of the request, so it is sent only after
//! every acknowledgement; anything short of that is a 503 Meta will retry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::{ReceiverSettings, Topics, VerifyToken};
use crate::ingest::normalize::{normalize, InboundEvent};
use crate::ingest::signature::{verify, AppSecrets, SignatureError, VerifiedBody};
use crate::kafka::{OutboundRecord, Publisher, CLOUDEVENT_HEADERS};
use crate::metrics::{Metrics, Outcome, SignatureFailure};

/// Meta retries with decreasing frequency; a short hint keeps the first retry close.
const RETRY_AFTER_SECONDS: &str = "5";
/// Header of a dead-letter record saying why the body could not be understood.
pub const DEADLETTER_REASON_HEADER: &str = "reason";
/// How long a request waits for a free slot before it is told to come back.
const SLOT_WAIT: Duration = Duration::from_secs(2);

pub struct Receiver {
    secrets: AppSecrets,
    verify_token: VerifyToken,
    publisher: Arc<Publisher>,
    topics: Topics,
    max_body: usize,
    client_timeout: Duration,
    slots: Semaphore,
    /// Body bytes that may be buffered at once, in KiB permits: bounds memory however large
    /// the concurrent bodies are.
    body_budget: Semaphore,
    metrics: Arc<Metrics>,
    next_request_id: AtomicU64,
}

impl Receiver {
    pub fn new(
        settings: &ReceiverSettings,
        publisher: Arc<Publisher>,
        topics: Topics,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            secrets: settings.secrets.clone(),
            verify_token: settings.verify_token.clone(),
            publisher,
            topics,
            max_body: settings.max_body,
            client_timeout: settings.client_timeout,
            slots: Semaphore::new(settings.max_concurrent_requests),
            body_budget: Semaphore::new(kib(settings.max_buffered_bytes) as usize),
            metrics,
            next_request_id: AtomicU64::new(1),
        }
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/webhook", get(handshake).post(webhook))
            .with_state(self)
    }
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription check. No signature here: Meta does not sign the GET.
async fn handshake(
    State(receiver): State<Arc<Receiver>>,
    query: Result<Query<Handshake>, QueryRejection>,
) -> Response {
    let accepted = query.ok().and_then(|Query(h)| {
        let token_ok = h
            .verify_token
            .is_some_and(|t| receiver.verify_token.matches(&t));
        (h.mode.as_deref() == Some("subscribe") && token_ok)
            .then_some(h.challenge.unwrap_or_default())
    });
    match accepted {
        Some(challenge) => {
            receiver.metrics.request(Outcome::Verified);
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                challenge,
            )
                .into_response()
        }
        None => {
            receiver.metrics.request(Outcome::Forbidden);
            tracing::info!("verification handshake refused");
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

async fn webhook(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = receiver.next_request_id.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("webhook", request_id);
    let outcome = receiver.handle_post(&headers, body).instrument(span).await;
    receiver.metrics.request(outcome);
    respond(outcome)
}

fn respond(outcome: Outcome) -> Response {
    let status = match outcome {
        Outcome::Accepted | Outcome::DeadLettered | Outcome::Verified => StatusCode::OK,
        Outcome::Unauthorized => StatusCode::UNAUTHORIZED,
        Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Outcome::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
        Outcome::Forbidden => StatusCode::FORBIDDEN,
        Outcome::Unavailable => {
            let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
            return response;
        }
    };
    status.into_response()
}

enum BodyError {
    TooLarge,
    /// The client hung up or sent a broken chunked encoding.
    Broken,
}

impl Receiver {
    async fn handle_post(&self, headers: &HeaderMap, body: Body) -> Outcome {
        // The bound on concurrent requests is also the bound on buffered bodies.
        let Ok(Ok(_slot)) = tokio::time::timeout(SLOT_WAIT, self.slots.acquire()).await else {
            tracing::warn!("at the concurrent request bound; asking Meta to retry");
            return Outcome::Unavailable;
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            tracing::info!(
                declared,
                max = self.max_body,
                "body over --max-body refused unread"
            );
            return Outcome::TooLarge;
        }
        // Reserve what the body may take: its declared length, or the most it may be.
        let reserve = kib(declared.map_or(self.max_body, |len| len as usize));
        let Ok(Ok(_budget)) =
            tokio::time::timeout(SLOT_WAIT, self.body_budget.acquire_many(reserve)).await
        else {
            tracing::warn!("at the buffered body bound; asking Meta to retry");
            return Outcome::Unavailable;
        };
        let raw = match tokio::time::timeout(self.client_timeout, read_limited(body, self.max_body))
            .await
        {
            Ok(Ok(raw)) => raw,
            Ok(Err(BodyError::TooLarge)) => return Outcome::TooLarge,
            Ok(Err(BodyError::Broken)) | Err(_) => {
                tracing::info!("client too slow sending its body");
                return Outcome::ClientTimeout;
            }
        };
        let signature = headers
            .get("x-hub-signature-256")
            .map(HeaderValue::as_bytes);
        let verified = match verify(&self.secrets, signature, raw) {
            Ok(verified) => verified,
            Err(error) => {
                self.metrics.signature_failure(failure_kind(&error));
                tracing::warn!(%error, "webhook refused: signature");
                return Outcome::Unauthorized;
            }
        };
        match normalize(&verified) {
            Ok(events) => self.publish_events(&events).await,
            Err(error) => {
                self.dead_letter(&verified, error.reason(), &error.to_string())
                    .await
            }
        }
    }

    async fn publish_events(&self, events: &[InboundEvent]) -> Outcome {
        let records: Vec<OutboundRecord<'_>> = events
            .iter()
            .map(|event| OutboundRecord {
                topic: &self.topics.inbound,
                key: Some(event.key.as_str()),
                payload: Some(&event.payload),
                partition: None,
                headers: CLOUDEVENT_HEADERS,
            })
            .collect();
        let started = Instant::now();
        match self.publisher.publish_all(&records).await {
            Ok(()) => {
                self.metrics
                    .publish_duration
                    .observe(started.elapsed().as_secs_f64());
                for event in events {
                    self.metrics.event_published(event.event_type.as_str());
                }
                tracing::debug!(events = events.len(), "webhook published");
                Outcome::Accepted
            }
            Err(error) => {
                self.metrics
                    .kafka_error(crate::metrics::KafkaOperation::Publish);
                tracing::error!(%error, events = events.len(), "publish failed; answering 503");
                Outcome::Unavailable
            }
        }
    }

    async fn dead_letter(&self, body: &VerifiedBody, reason: &str, detail: &str) -> Outcome {
        let headers = [
            (DEADLETTER_REASON_HEADER, reason),
            ("reason-detail", detail),
        ];
        let record = OutboundRecord {
            topic: &self.topics.deadletter,
            key: None,
            payload: Some(body.as_bytes()),
            partition: None,
            headers: &headers,
        };
        match self.publisher.publish_all(&[record]).await {
            Ok(()) => {
                tracing::warn!(
                    reason,
                    "signed body not understood; kept on the dead-letter topic"
                );
                Outcome::DeadLettered
            }
            Err(error) => {
                self.metrics
                    .kafka_error(crate::metrics::KafkaOperation::Publish);
                tracing::error!(%error, "dead-letter publish failed; answering 503");
                Outcome::Unavailable
            }
        }
    }
}

/// Whole KiB, rounded up, as semaphore permits.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .max(1)
}

fn failure_kind(error: &SignatureError) -> SignatureFailure {
    match error {
        SignatureError::Missing => SignatureFailure::Missing,
        SignatureError::Mismatch => SignatureFailure::Mismatch,
        _ => SignatureFailure::Malformed,
    }
}

/// Reads at most `max` bytes; stops reading as soon as the body proves larger.
async fn read_limited(body: Body, max: usize) -> Result<Bytes, BodyError> {
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Broken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_tells_meta_when_to_retry() {
        let response = respond(Outcome::Unavailable);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], RETRY_AFTER_SECONDS);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_cut_off() {
        let body = Body::from(vec![b'x'; 11]);
        assert!(matches!(
            read_limited(body, 10).await,
            Err(BodyError::TooLarge)
        ));
        let body = Body::from(vec![b'x'; 10]);
        assert!(matches!(read_limited(body, 10).await, Ok(b) if b.len() == 10));
    }
}

//! The send-decision API (specification, section 5): "may I write to this contact now, with
//! what, at what cost?" answered from a read view of the compacted state topic.
//!
//! - [`pricing`]: Meta's pricing rules as data with effective dates.
//! - [`decision`]: the answer, a pure function of a contact's facts, the rules and the instant.
//! - [`view`]: every contact of the state topic, with aliases resolved (no Kafka).
//! - [`feed`]: the Kafka edge that keeps the view current.
//! - this file: the HTTP edge (bearer tokens, status codes, metrics).

pub mod decision;
pub mod feed;
pub mod pricing;
pub mod view;

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use subtle::ConstantTimeEq;

use self::pricing::PricingRules;
use self::view::StateView;
use crate::domain::{CustomerId, PhoneNumberId, UnixSeconds};
use crate::metrics::{Metrics, QueryOutcome};

/// The bearer tokens the API accepts (several, for rotation). `Debug` never shows them.
pub struct ApiTokens(Vec<Box<[u8]>>);

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiTokens({} configured)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read --api-token-file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("--api-token-file {path} holds no token")]
    Empty { path: String },
}

impl ApiTokens {
    /// One token a line; blank lines and surrounding spaces are ignored.
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let tokens: Vec<Box<[u8]>> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| line.as_bytes().into())
            .collect();
        if tokens.is_empty() {
            return Err(TokenFileError::Empty { path: shown });
        }
        Ok(Self(tokens))
    }

    /// Compares with every token in constant time, so neither a match nor its position shows
    /// in the timing.
    fn accepts(&self, presented: &[u8]) -> bool {
        let mut matched = subtle::Choice::from(0);
        for token in &self.0 {
            matched |= token.as_ref().ct_eq(presented);
        }
        matched.into()
    }
}

#[derive(Clone)]
pub struct ApiState {
    pub view: Arc<RwLock<StateView>>,
    pub rules: Arc<PricingRules>,
    pub tokens: Option<Arc<ApiTokens>>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/contacts/{phone_number_id}/{customer}", get(contact))
        .with_state(state)
}

async fn contact(
    State(state): State<ApiState>,
    UrlPath((phone_number_id, customer)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = answer(&state, &phone_number_id, &customer, &headers);
    state
        .metrics
        .api_query(outcome, started.elapsed().as_secs_f64());
    response
}

fn answer(
    state: &ApiState,
    phone_number_id: &str,
    customer: &str,
    headers: &HeaderMap,
) -> (QueryOutcome, Response) {
    if let Some(tokens) = &state.tokens {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
        if !presented.is_some_and(|token| tokens.accepts(token)) {
            let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return (QueryOutcome::Unauthorized, response);
        }
    }
    let Some(phone_number_id) = PhoneNumberId::parse(phone_number_id) else {
        return (
            QueryOutcome::Malformed,
            error(
                StatusCode::BAD_REQUEST,
                "phone_number_id must be Meta's numeric id (digits only)",
            ),
        );
    };
    let Some(customer) = CustomerId::parse(customer) else {
        return (
            QueryOutcome::Malformed,
            error(
                StatusCode::BAD_REQUEST,
                "customer must be a wa_id (digits) or a BSUID such as US.13491208655302741918",
            ),
        );
    };
    let now = UnixSeconds::now();
    let looked_up = match state.view.read() {
        Ok(view) => view.lookup(&phone_number_id, &customer, now),
        Err(_) => {
            return (
                QueryOutcome::Restoring,
                unavailable("state view unavailable"),
            )
        }
    };
    let facts = match looked_up {
        Ok(facts) => facts,
        Err(not_restored) => {
            return (
                QueryOutcome::Restoring,
                unavailable(&format!(
                    "the state of partition {} is still being restored",
                    not_restored.partition
                )),
            )
        }
    };
    let outcome = if facts.is_some() {
        QueryOutcome::Known
    } else {
        QueryOutcome::Unknown
    };
    let decision = decision::decide(
        &phone_number_id,
        &customer,
        facts.as_ref(),
        now,
        &state.rules,
    );
    (outcome, json(StatusCode::OK, &decision))
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    // Serializing plain structs of strings and booleans cannot fail.
    let body = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

fn unavailable(message: &str) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_whole_values_only() {
        let tokens = ApiTokens(vec![b"alpha".as_slice().into(), b"beta".as_slice().into()]);
        assert!(tokens.accepts(b"alpha"));
        assert!(tokens.accepts(b"beta"));
        for wrong in [&b"alph"[..], b"alphaa", b"", b"gamma"] {
            assert!(!tokens.accepts(wrong));
        }
        assert_eq!(format!("{tokens:?}"), "ApiTokens(2 configured)");
    }
}

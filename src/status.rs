//! `windowkeeper status PNID CUSTOMER`: asks the send-decision API and says the answer in a
//! short paragraph a person understands. The wording is a pure function of the answer and
//! the moment it was given (`as_of`), so it is tested without a server.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::api::decision::{ContactDecision, TemplateDecision, WindowOut};
use crate::config::StatusArgs;
use crate::domain::{CustomerId, PhoneNumberId};
use crate::window::{Marketing, PreferenceSource};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{0:?} is not a phone_number_id (digits only)")]
    BadPhoneNumberId(String),
    #[error("{0:?} is neither a wa_id (digits) nor a BSUID (such as US.13491208655302741918)")]
    BadCustomer(String),
    #[error("--api {0:?} is not an http:// URL")]
    BadUrl(String),
    #[error("cannot reach the send-decision API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the send-decision API answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the send-decision API answered something unreadable: {0}")]
    Unreadable(String),
}

impl StatusError {
    /// 2 for what the person typed, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadPhoneNumberId(_) | Self::BadCustomer(_) | Self::BadUrl(_) => 2,
            _ => 1,
        }
    }
}

/// Asks the API and returns the paragraph to print.
pub async fn status(args: &StatusArgs) -> Result<String, StatusError> {
    let decision = ask(args).await?;
    Ok(describe(&decision))
}

async fn ask(args: &StatusArgs) -> Result<ContactDecision, StatusError> {
    let pnid = PhoneNumberId::parse(&args.phone_number_id)
        .ok_or_else(|| StatusError::BadPhoneNumberId(args.phone_number_id.clone()))?;
    let customer = CustomerId::parse(&args.customer)
        .ok_or_else(|| StatusError::BadCustomer(args.customer.clone()))?;
    let base = args.api.trim_end_matches('/');
    let url = format!("{base}/v1/contacts/{}/{}", pnid.as_str(), customer.as_str());
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| StatusError::BadUrl(args.api.clone()))?;
    if uri.scheme_str() != Some("http") {
        return Err(StatusError::BadUrl(args.api.clone()));
    }
    let mut request = hyper::Request::get(uri);
    if let Some(token) = args.api_token.as_deref().filter(|t| !t.is_empty()) {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|_| StatusError::BadUrl(args.api.clone()))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let unreachable = |reason: String| StatusError::Unreachable {
        url: base.to_owned(),
        reason,
    };
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| unreachable("no answer within 10 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
        return Err(StatusError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    serde_json::from_slice(&body).map_err(|e| StatusError::Unreadable(e.to_string()))
}

fn instant(rfc3339: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// "14:05 UTC", or "14:05 UTC on 2026-12-02" when not on the day of `as_of`; then how far
/// from `as_of`: "in 3 h 12 min", "2 d 1 h ago".
fn when(at: &str, as_of: &str) -> String {
    let (Some(at), Some(now)) = (instant(at), instant(as_of)) else {
        return at.to_owned();
    };
    let clock = if at.date_naive() == now.date_naive() {
        at.format("%H:%M UTC").to_string()
    } else {
        at.format("%H:%M UTC on %Y-%m-%d").to_string()
    };
    let seconds = (at - now).num_seconds();
    let span = span(seconds.unsigned_abs());
    if seconds.abs() < 60 {
        format!("{clock} (now)")
    } else if seconds > 0 {
        format!("{clock} (in {span})")
    } else {
        format!("{clock} ({span} ago)")
    }
}

fn span(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes} min"),
        (0, _) => format!("{hours} h {minutes} min"),
        _ => format!("{days} d {hours} h"),
    }
}

fn day(at: &str) -> String {
    instant(at).map_or_else(|| at.to_owned(), |t| t.format("%Y-%m-%d").to_string())
}

/// The answer in words: free-form, then templates, then free entry point news.
pub fn describe(d: &ContactDecision) -> String {
    let mut text = String::new();
    let free_form = &d.send.free_form;
    let service = d.windows.customer_service.as_ref();
    match (free_form.until.as_deref(), service) {
        (Some(until), _) if free_form.allowed => {
            let cost = if free_form.charged { "charged" } else { "free" };
            text.push_str(&format!(
                "Free-form messages allowed until {}, {cost}.",
                when(until, &d.as_of)
            ));
        }
        (_, Some(WindowOut { expires_at, .. })) => text.push_str(&format!(
            "No free-form messages: the customer service window closed at {}.",
            when(expires_at, &d.as_of)
        )),
        _ if d.known => text
            .push_str("No free-form messages: the customer has not written in the last 24 hours."),
        _ => text.push_str(
            "No free-form messages: nothing is known about this contact (no message from them).",
        ),
    }
    let t = &d.send.template;
    let template = |name: &str, decision: &TemplateDecision| {
        let verdict = match (decision.allowed, decision.charged) {
            (false, _) => "blocked",
            (true, true) => "charged",
            (true, false) => "free",
        };
        format!("{name} {verdict}")
    };
    text.push_str(&format!(
        " Templates: {}, {}, {}",
        template("utility", &t.utility),
        template("authentication", &t.authentication),
        template("marketing", &t.marketing),
    ));
    match (
        d.marketing,
        d.marketing_since.as_deref(),
        d.marketing_source,
    ) {
        (Marketing::OptedOut, Some(since), Some(PreferenceSource::Error131050)) => {
            text.push_str(&format!(
                " — Meta reported on {} that the customer stopped marketing messages.",
                day(since)
            ))
        }
        (Marketing::OptedOut, Some(since), _) => {
            text.push_str(&format!(" — the customer opted out on {}.", day(since)))
        }
        _ => text.push('.'),
    }
    if let Some(entry) = d.windows.free_entry_point.as_ref().filter(|w| w.open) {
        text.push_str(&format!(
            " A free entry point window is open until {}: sends are free.",
            when(&entry.expires_at, &d.as_of)
        ));
    }
    if let Some(offer) = d.windows.free_entry_offer.as_ref().filter(|w| w.open) {
        text.push_str(&format!(
            " Reply before {} to open a free entry point window.",
            when(&offer.expires_at, &d.as_of)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::decision::{decide, ContactFacts, WindowSummary};
    use crate::api::pricing::PricingRules;
    use crate::domain::UnixSeconds;
    use crate::window::MarketingPreference;

    const NOW: i64 = 1_796_115_600; // 2026-12-01T09:00:00Z

    fn window(opened_at: i64, expires_at: i64, open: bool) -> Option<WindowSummary> {
        Some(WindowSummary {
            open,
            opened_at: UnixSeconds(opened_at),
            expires_at: UnixSeconds(expires_at),
            close_reason: (!open).then_some(crate::window::CloseReason::Expired),
        })
    }

    fn say(facts: Option<ContactFacts>) -> String {
        describe(&decide(
            &PhoneNumberId::new("106540352242922"),
            &CustomerId::parse("US.1").expect("id"),
            facts.as_ref(),
            UnixSeconds(NOW),
            &PricingRules::built_in(),
        ))
    }

    #[test]
    fn an_open_window_with_an_opted_out_customer() {
        let facts = ContactFacts {
            windows: [
                window(NOW - 3600, NOW + 3 * 3600 + 12 * 60, true),
                None,
                None,
            ],
            marketing: Some(MarketingPreference {
                marketing: Marketing::OptedOut,
                since: UnixSeconds(NOW - 86_400),
                source: PreferenceSource::UserPreferences,
            }),
            ..ContactFacts::default()
        };
        assert_eq!(
            say(Some(facts)),
            "Free-form messages allowed until 12:12 UTC (in 3 h 12 min), charged. Templates: \
             utility charged, authentication charged, marketing blocked — the customer opted \
             out on 2026-11-30."
        );
    }

    #[test]
    fn a_closed_window_and_a_running_free_entry_point() {
        let facts = ContactFacts {
            windows: [
                window(NOW - 90_000, NOW - 3600, false),
                window(NOW - 7200, NOW + 2 * 86_400, true),
                None,
            ],
            ..ContactFacts::default()
        };
        assert_eq!(
            say(Some(facts)),
            "No free-form messages: the customer service window closed at 08:00 UTC (1 h 0 min \
             ago). Templates: utility free, authentication free, marketing free. A free entry \
             point window is open until 09:00 UTC on 2026-12-03 (in 2 d 0 h): sends are free."
        );
    }

    #[test]
    fn an_unknown_contact() {
        assert_eq!(
            say(None),
            "No free-form messages: nothing is known about this contact (no message from \
             them). Templates: utility charged, authentication charged, marketing charged."
        );
    }

    #[test]
    fn an_open_offer_is_a_call_to_reply() {
        let facts = ContactFacts {
            windows: [
                window(NOW - 60, NOW + 86_340, true),
                None,
                window(NOW - 60, NOW + 86_340, true),
            ],
            ..ContactFacts::default()
        };
        assert!(say(Some(facts)).ends_with(
            " Reply before 08:59 UTC on 2026-12-02 (in 23 h 59 min) to open a free entry point window."
        ));
    }
}

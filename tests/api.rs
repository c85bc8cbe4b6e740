//! The send-decision API end to end against Apache Kafka: any instance answers for any
//! contact, answers follow emitted events within a second, every failure path of SPEC
//! section 5 has its status code, and every answer matches `schemas/openapi.yaml`.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use windowkeeper::api::pricing::PricingRules;
use windowkeeper::api::view::StateView;
use windowkeeper::api::{router, ApiState};
use windowkeeper::kafka::partition_for_key;
use windowkeeper::metrics::Metrics;

const PNID: &str = "106540352242922";

async fn query(base: &str, pnid: &str, customer: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{base}/v1/contacts/{pnid}/{customer}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("API reachable");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Polls until `accept` takes an answer; returns it and how long that took.
async fn answer_when(
    base: &str,
    customer: &str,
    within: Duration,
    accept: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let (status, body) = query(base, PNID, customer, None).await;
        if status == 200 && accept(&body) {
            return (body, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "no such answer within {within:?}; last: {status} {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Customers whose keys cover every partition of a 3-partition topic, two each.
fn customers_on_every_partition() -> Vec<(String, i32)> {
    let mut found = Vec::new();
    for n in 0.. {
        let customer = format!("US.77{n:06}");
        let partition = partition_for_key(&format!("{PNID}:{customer}"), 3);
        if found.iter().filter(|(_, p)| *p == partition).count() < 2 {
            found.push((customer, partition));
        }
        if found.len() == 6 {
            break;
        }
    }
    found
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The partitions a tracker restored, from its log ("state restored partitions=[0, 2]").
fn restored_partitions(app: &App) -> BTreeSet<i32> {
    strip_ansi(&app.stderr())
        .lines()
        .filter(|line| line.contains("state restored"))
        .filter_map(|line| {
            let start = line.find("partitions=[")? + "partitions=[".len();
            let end = start + line[start..].find(']')?;
            Some(line[start..end].to_owned())
        })
        .flat_map(|list| {
            list.split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_trackers_each_answer_for_contacts_the_other_owns() {
    let broker = Broker::shared();
    let prefix = unique_prefix("api-two");
    let names = topics(&prefix);
    let group = format!("{prefix}.group");
    let receiver =
        App::spawn_ready(AppOptions::new("receiver", &broker.bootstrap(), &prefix)).await;
    let first = App::spawn_ready(
        AppOptions::new("tracker", &broker.bootstrap(), &prefix).arg("--group-id", &group),
    )
    .await;
    let second = App::spawn_ready(
        AppOptions::new("tracker", &broker.bootstrap(), &prefix).arg("--group-id", &group),
    )
    .await;
    // The second member takes partitions from the first (a cooperative hand-over).
    let deadline = Instant::now() + Duration::from_secs(60);
    while restored_partitions(&second).is_empty() {
        assert!(
            Instant::now() < deadline,
            "second tracker never got partitions"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let owned_by_second = restored_partitions(&second);
    assert!(owned_by_second.len() < 3, "the first tracker kept some");

    let at = now();
    let customers = customers_on_every_partition();
    for (customer, _) in &customers {
        let body = text_webhook(PNID, customer, &format!("wamid.{customer}"), at);
        assert_eq!(
            post_signed(&receiver.webhook_url(), &body).await.status(),
            200
        );
    }
    read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(30),
        |records| records.len() >= customers.len(),
    );
    let openapi = OpenApi::load();
    let (mut asked_first_for_seconds, mut asked_second_for_firsts) = (0, 0);
    for (customer, partition) in &customers {
        let (owner_is_second, other) = if owned_by_second.contains(partition) {
            asked_first_for_seconds += 1;
            (true, &first)
        } else {
            asked_second_for_firsts += 1;
            (false, &second)
        };
        let (answer, _) = answer_when(&other.api_url(), customer, Duration::from_secs(5), |a| {
            a["known"] == true
        })
        .await;
        openapi.check(200, &answer);
        assert_eq!(
            answer["user_id"],
            customer.as_str(),
            "owner second: {owner_is_second}"
        );
        assert_eq!(answer["send"]["free_form"]["allowed"], true);
        assert_eq!(
            answer["windows"]["customer_service"]["expires_at"],
            windowkeeper::domain::UnixSeconds(at + 86_400).to_rfc3339()
        );
    }
    assert!(asked_first_for_seconds > 0 && asked_second_for_firsts > 0);
    for app in [&first, &second] {
        app.assert_no_error_lines();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_follow_each_emitted_event_within_a_second() {
    let broker = Broker::shared();
    let prefix = unique_prefix("api-follow");
    let names = topics(&prefix);
    let app = App::spawn_ready(
        AppOptions::new("run", &broker.bootstrap(), &prefix)
            .arg("--service-window", "20s")
            .arg("--closing-lead", "5s"),
    )
    .await;
    let api = app.api_url();
    let openapi = OpenApi::load();
    let sheena = "US.13491208655302741918";
    let (unknown_status, unknown) = query(&api, PNID, sheena, None).await;
    openapi.check(unknown_status, &unknown);
    assert_eq!(unknown["known"], false);
    assert_eq!(unknown["send"]["free_form"]["allowed"], false);

    // The customer writes: the window opens.
    let at = now();
    post_fixture(&app, "text-message.json", at).await;
    let seen = |event_type: &'static str| {
        move |records: &[Record]| records.iter().any(|r| r.json()["type"] == event_type)
    };
    read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(20),
        seen("whatsapp.window.opened"),
    );
    let (open, took) = answer_when(&api, sheena, Duration::from_secs(5), |a| {
        a["send"]["free_form"]["allowed"] == true
    })
    .await;
    assert!(
        took < Duration::from_secs(1),
        "window shown {took:?} after its event"
    );
    openapi.check(200, &open);
    // Asked by phone number, the BSUID's answer.
    let (by_phone, _) = answer_when(&api, "16505551234", Duration::from_secs(5), |a| {
        a["known"] == true
    })
    .await;
    assert_eq!(by_phone["user_id"], sheena);

    // The customer opts out of marketing.
    let stop = String::from_utf8(fixture("user-preferences.json"))
        .expect("utf8")
        .replace(
            "\"timestamp\": 1795250800",
            &format!("\"timestamp\": {}", at + 1),
        );
    assert_eq!(
        post_signed(&app.webhook_url(), stop.as_bytes())
            .await
            .status(),
        200
    );
    let events = read_until(
        &broker.bootstrap(),
        &names.events,
        Duration::from_secs(20),
        seen("whatsapp.contact.marketing_preference_changed"),
    );
    let (opted_out, took) = answer_when(&api, sheena, Duration::from_secs(5), |a| {
        a["marketing"] == "opted_out"
    })
    .await;
    assert!(
        took < Duration::from_secs(1),
        "opt-out shown {took:?} after its event"
    );
    openapi.check(200, &opted_out);
    assert_eq!(opted_out["send"]["template"]["marketing"]["allowed"], false);
    assert_eq!(opted_out["marketing_source"], "user_preferences");
    let change = events
        .iter()
        .map(Record::json)
        .find(|e| e["type"] == "whatsapp.contact.marketing_preference_changed")
        .expect("announced");
    validate_events([&change]);
    assert_eq!(change["data"]["marketing"], "opted_out");

    // The person's view of the same answer.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_windowkeeper"))
        .args(["status", PNID, sheena, "--api", &api])
        .output()
        .expect("status runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.starts_with("Free-form messages allowed until "),
        "{text}"
    );
    assert!(
        text.contains("marketing blocked — the customer opted out on "),
        "{text}"
    );

    // The window ends: closed in the answer at once, whatever the tracker's progress.
    let (closed, _) = answer_when(&api, sheena, Duration::from_secs(40), |a| {
        a["send"]["free_form"]["allowed"] == false
    })
    .await;
    openapi.check(200, &closed);
    assert_eq!(
        closed["windows"]["customer_service"]["close_reason"],
        "expired"
    );
    app.assert_no_error_lines();
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_ids_and_paths_get_their_status_codes() {
    let broker = Broker::shared();
    let prefix = unique_prefix("api-codes");
    let dir = tempfile::tempdir().expect("dir");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "old-token\n\nnew-token\n").expect("token file");
    let app = App::spawn_ready(
        AppOptions::new("tracker", &broker.bootstrap(), &prefix)
            .arg("--api-token-file", tokens.to_str().expect("path")),
    )
    .await;
    let api = app.api_url();
    let openapi = OpenApi::load();
    for token in [None, Some("wrong-token"), Some("new-tokenx")] {
        let (status, body) = query(&api, PNID, "16505551234", token).await;
        assert_eq!(status, 401, "{token:?}");
        openapi.check(status, &body);
    }
    for token in ["old-token", "new-token"] {
        let (status, body) = query(&api, PNID, "16505551234", Some(token)).await;
        assert_eq!(status, 200);
        openapi.check(status, &body);
    }
    for (pnid, customer) in [
        ("1065x", "16505551234"),
        (PNID, "us.123"),
        (PNID, "US."),
        (PNID, "+16505551234"),
        (PNID, &"1".repeat(33)),
    ] {
        let (status, body) = query(&api, pnid, customer, Some("new-token")).await;
        assert_eq!(status, 400, "{pnid}/{customer}");
        openapi.check(status, &body);
    }
    let other = reqwest::get(format!("{api}/v1/contacts/{PNID}"))
        .await
        .expect("reachable");
    assert_eq!(other.status(), 404);
    let metrics = app.metrics().await;
    for outcome in ["unauthorized", "unknown", "malformed"] {
        assert!(
            metrics.contains(&format!(
                "windowkeeper_api_queries_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome}"
        );
    }
    assert!(!metrics.contains("new-token") && !app.stderr().contains("new-token"));
}

/// A partition the view has not read to its end yet: 503 with Retry-After, for that
/// partition's contacts only.
#[tokio::test(flavor = "multi_thread")]
async fn a_contact_whose_state_is_not_restored_gets_503() {
    let mut view = StateView::new(3);
    let waiting = "US.13491208655302741918";
    let waiting_partition = partition_for_key(&format!("{PNID}:{waiting}"), 3);
    for partition in (0..3).filter(|p| *p != waiting_partition) {
        view.mark_restored(partition);
    }
    let ready = (0..)
        .map(|n| format!("1650555{n:04}"))
        .find(|c| partition_for_key(&format!("{PNID}:{c}"), 3) != waiting_partition)
        .expect("a customer on another partition");
    let state = ApiState {
        view: Arc::new(RwLock::new(view)),
        rules: Arc::new(PricingRules::built_in()),
        tokens: None,
        metrics: Arc::new(Metrics::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(windowkeeper::http::serve(
        listener,
        router(state),
        windowkeeper::http::ServeLimits {
            header_timeout: Duration::from_secs(5),
            max_connections: 8,
            drain_timeout: Duration::from_secs(1),
        },
        stop.clone(),
    ));
    let openapi = OpenApi::load();
    let response = reqwest::get(format!("{base}/v1/contacts/{PNID}/{waiting}"))
        .await
        .expect("reachable");
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    openapi.check(503, &response.json::<Value>().await.expect("JSON"));
    let (status, body) = query(&base, PNID, &ready, None).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["known"], false);
    stop.cancel();
    let _ = server.await;
}

#[test]
fn bad_pricing_rules_and_token_files_are_one_line_errors_with_exit_2() {
    let dir = tempfile::tempdir().expect("dir");
    let bad_rules = dir.path().join("rules.json");
    std::fs::write(
        &bad_rules,
        r#"{"rules": [{"effective_from": "soon", "free_inside": {}}]}"#,
    )
    .expect("write");
    let empty_tokens = dir.path().join("tokens");
    std::fs::write(&empty_tokens, "\n  \n").expect("write");
    let missing = dir.path().join("missing.json");
    for (flag, path, expected) in [
        ("--pricing-rules", &bad_rules, "RFC 3339"),
        ("--pricing-rules", &missing, "cannot read"),
        ("--api-token-file", &empty_tokens, "holds no token"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_windowkeeper"))
            .args(["tracker", "--kafka-brokers", "127.0.0.1:1", flag])
            .arg(path)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{flag}: {stderr}");
        assert!(stderr.contains(expected), "{flag}: {stderr}");
    }
}

/// The checks above can fail: the OpenAPI validators refuse what the document forbids.
#[test]
fn the_openapi_validators_refuse_what_the_document_forbids() {
    let openapi = OpenApi::load();
    let good = serde_json::to_value(windowkeeper::api::decision::decide(
        &windowkeeper::domain::PhoneNumberId::new(PNID),
        &windowkeeper::domain::CustomerId::parse("16505551234").expect("id"),
        None,
        windowkeeper::domain::UnixSeconds(now()),
        &PricingRules::built_in(),
    ))
    .expect("JSON");
    assert!(openapi.decision.validate(&good).is_ok());
    let mut extra = good.clone();
    extra["surprise"] = Value::from(1);
    let mut wrong_type = good.clone();
    wrong_type["known"] = Value::from("no");
    let mut bad_window = good.clone();
    bad_window["windows"]["customer_service"] = serde_json::json!({"open": "yes"});
    let mut missing = good;
    missing["send"]
        .as_object_mut()
        .expect("send")
        .remove("template");
    for bad in [extra, wrong_type, bad_window, missing] {
        assert!(openapi.decision.validate(&bad).is_err(), "{bad:#}");
    }
    assert!(openapi
        .error
        .validate(&serde_json::json!({"message": "x"}))
        .is_err());
}

/// Schemathesis generates requests from `schemas/openapi.yaml` (its examples, the boundaries
/// of every pattern, random ids) and checks every answer against the document: status codes,
/// content types, bodies. `./scripts/test` installs it and sets `SCHEMATHESIS`.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_answer_the_document_does_not_allow() {
    let st = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| {
        panic!("SCHEMATHESIS is not set: run ./scripts/test, or point it at a schemathesis `st`")
    });
    let broker = Broker::shared();
    let prefix = unique_prefix("api-fuzz");
    let app = App::spawn_ready(AppOptions::new("tracker", &broker.bootstrap(), &prefix)).await;
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.yaml");
    // Schemathesis keeps a cache in its working directory.
    let workdir = tempfile::tempdir().expect("dir");
    let output = std::process::Command::new(&st)
        .current_dir(workdir.path())
        .arg("run")
        .arg(&spec)
        .args([
            "--url",
            &app.api_url(),
            "--checks",
            "all",
            "--max-examples",
            "200",
        ])
        .args(["--seed", "1"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{st}: {e}"));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    app.assert_no_error_lines();
}

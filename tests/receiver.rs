//! The receiver against a real Apache Kafka broker (scripts/kafka): handshake, signatures,
//! publishing, dead letters, limits, and a broker outage answered with 503 and recovered from
//! without loss.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn receiver_end_to_end() {
    let broker = Broker::shared();
    let prefix = unique_prefix("recv");
    let names = topics(&prefix);
    let mut app = App::spawn_ready(AppOptions::new("receiver", &broker.bootstrap(), &prefix)).await;
    let client = reqwest::Client::new();

    // GET handshake: right token echoes the challenge as text; anything else is 403.
    let ok = client
        .get(format!(
            "{}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444",
            app.webhook_url()
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(ok.status(), 200);
    assert!(ok.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/plain"));
    assert_eq!(ok.text().await.expect("body"), "1158201444");
    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        &format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
        "",
    ] {
        let refused = client
            .get(format!("{}?{query}", app.webhook_url()))
            .send()
            .await
            .expect("GET");
        assert_eq!(refused.status(), 403, "query {query:?}");
    }

    // Signature failures: 401, nothing published.
    let body = fixture("text-message.json");
    let missing = client
        .post(app.webhook_url())
        .body(body.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(missing.status(), 401);
    for bad in [
        "sha256=zz",
        "md5=abc",
        "sha256=",
        &windowkeeper::ingest::signature::sign(b"other-secret", &body),
    ] {
        let refused = client
            .post(app.webhook_url())
            .header("x-hub-signature-256", bad)
            .body(body.clone())
            .send()
            .await
            .expect("POST");
        assert_eq!(refused.status(), 401, "signature {bad:?}");
    }

    // Too large: 413 from the declared length alone — the body is never sent, let alone read.
    assert!(raw_exchange(app.listen, "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 4194305\r\nX-Hub-Signature-256: sha256=00\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 413"));
    // Chunked, without a length: cut off once it passes the limit.
    let limited = App::spawn(
        AppOptions::new("receiver", &broker.bootstrap(), &prefix).arg("--max-body", "1000"),
    );
    let mut limited = limited;
    limited.wait_ready(Duration::from_secs(60)).await;
    let chunk = "x".repeat(600);
    let chunked = format!("POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n");
    assert!(raw_exchange(limited.listen, &chunked)
        .await
        .starts_with("HTTP/1.1 413"));
    drop(limited);

    // Wrong path / method.
    assert_eq!(
        client
            .get(app.admin_url("/nope"))
            .send()
            .await
            .expect("GET")
            .status(),
        404
    );
    assert_eq!(
        client
            .put(app.webhook_url())
            .send()
            .await
            .expect("PUT")
            .status(),
        405
    );

    // None of the refused requests published anything. A marker message sent after them from
    // the contact of the refused body is keyed alike, so it lands on the same partition, behind
    // anything they had published; once it is read, both topics are read to their ends.
    let marker = with_wamid(body.clone(), "MARKER.");
    assert_eq!(post_signed(&app.webhook_url(), &marker).await.status(), 200);
    let is_marker = |r: &Record| {
        r.json()["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("message:wamid.MARKER."))
    };
    read_until(&broker.bootstrap(), &names.inbound, WAIT, |r| {
        r.iter().any(is_marker)
    });
    let inbound = read_to_end(&broker.bootstrap(), &names.inbound, WAIT);
    assert!(
        inbound.iter().any(is_marker),
        "the marker was not read within {WAIT:?}:\n{}",
        app.stderr()
    );
    let published: Vec<String> = inbound
        .iter()
        .filter(|r| !is_marker(r))
        .map(|r| format!("{} {}", r.json()["id"], r.json()["subject"]))
        .collect();
    assert!(
        published.is_empty(),
        "refused requests published to the inbound topic: {published:?}"
    );
    let dead = read_to_end(&broker.bootstrap(), &names.deadletter, WAIT);
    assert!(
        dead.is_empty(),
        "refused requests published to the dead-letter topic: {:?}",
        dead.iter()
            .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()))
            .collect::<Vec<_>>()
    );

    // A batch of three contacts on two business numbers: three events, keyed by contact.
    let batch = fixture("batch-three-contacts.json");
    assert_eq!(post_signed(&app.webhook_url(), &batch).await.status(), 200);
    // The same text twice (Meta's retry): same id.
    assert_eq!(post_signed(&app.webhook_url(), &body).await.status(), 200);
    assert_eq!(post_signed(&app.webhook_url(), &body).await.status(), 200);
    // Unicode escapes verify over the raw bytes.
    let escaped = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"9","display_phone_number":"1"},"messages":[{"id":"wamid.ESC","timestamp":"1795250000","type":"text","from":"15550001","text":{"body":"caf\u00e9 \/ ok"}}]}}]}]}"#;
    assert_eq!(post_signed(&app.webhook_url(), escaped).await.status(), 200);

    // Every answer was a 200, so every event is on the topic: read to its end.
    let inbound: Vec<Record> = read_to_end(&broker.bootstrap(), &names.inbound, WAIT)
        .into_iter()
        .filter(|r| !is_marker(r))
        .collect();
    assert_eq!(inbound.len(), 6, "3 batch + 2 text + 1 escaped");
    let keys: HashSet<_> = inbound.iter().filter_map(|r| r.key.clone()).collect();
    for key in [
        "106540352242922:BR.5566778899",
        "106540352242922:CN.1029384756",
        "209876543210987:US.13491208655302741918",
        "106540352242922:US.13491208655302741918",
        "9:15550001",
    ] {
        assert!(keys.contains(key), "key {key} in {keys:?}");
    }
    for record in &inbound {
        assert_eq!(
            record.headers.get("content-type").map(String::as_str),
            Some("application/cloudevents+json")
        );
        let event = record.json();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["subject"].as_str(), record.key.as_deref());
    }
    let text_ids: Vec<_> = inbound
        .iter()
        .map(|r| r.json())
        .filter(|e| e["subject"] == "106540352242922:US.13491208655302741918")
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(text_ids.len(), 2);
    assert_eq!(
        text_ids[0], text_ids[1],
        "a retried webhook yields the same id"
    );
    let escaped_event = inbound
        .iter()
        .map(|r| r.json())
        .find(|e| e["subject"] == "9:15550001")
        .expect("escaped");
    assert_eq!(
        escaped_event["data"]["message"]["text"]["body"],
        "café / ok"
    );

    // Signed but not understood: dead letter with a reason header, then 200.
    assert_eq!(
        post_signed(&app.webhook_url(), b"not json at all")
            .await
            .status(),
        200
    );
    assert_eq!(
        post_signed(&app.webhook_url(), br#"{"object":"page","entry":[]}"#)
            .await
            .status(),
        200
    );
    let dead = read_to_end(&broker.bootstrap(), &names.deadletter, WAIT);
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .any(|r| r.payload.as_deref() == Some(&b"not json at all"[..])),
        "{dead:?}"
    );
    assert!(
        dead.iter().all(|r| r.headers.contains_key("reason")),
        "{dead:?}"
    );

    // Metrics name outcomes and never show a secret.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("windowkeeper_webhook_requests_total{outcome=\"accepted\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("windowkeeper_signature_failures_total{reason=\"missing\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("windowkeeper_events_published_total"),
        "{metrics}"
    );
    assert!(!metrics.contains(SECRET) && !app.stderr().contains(SECRET));
    assert!(!app.stderr().contains(VERIFY_TOKEN));
    assert_eq!(
        client
            .get(app.admin_url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );

    // SIGTERM: a clean exit.
    app.stop_cleanly(Duration::from_secs(30));
}

/// The broker dies mid-run: the receiver answers 503 with Retry-After, and once the broker is
/// back, Meta's retries succeed; every event that got a 200 is in the topic.
#[tokio::test(flavor = "multi_thread")]
async fn broker_outage_gives_503_then_recovers_without_loss() {
    let mut broker = Broker::own();
    let prefix = unique_prefix("outage");
    let names = topics(&prefix);
    let app = App::spawn_ready(
        AppOptions::new("receiver", &broker.bootstrap(), &prefix).arg("--publish-timeout", "3s"),
    )
    .await;

    let body_for = |n: usize| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"42","display_phone_number":"1"}},"messages":[{{"id":"wamid.OUTAGE{n}","timestamp":"1795250000","type":"text","from":"1555{n:04}","text":{{"body":"hi"}}}}]}}}}]}}]}}"#
        )
        .into_bytes()
    };
    let mut accepted = Vec::new();
    for n in 0..5 {
        assert_eq!(
            post_signed(&app.webhook_url(), &body_for(n)).await.status(),
            200
        );
        accepted.push(format!("message:wamid.OUTAGE{n}"));
    }

    broker.kill();
    let down = post_signed(&app.webhook_url(), &body_for(5)).await;
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
    // Readiness follows Kafka's reachability.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(app.admin_url("/readyz"))
            .await
            .expect("readyz")
            .status();
        if ready == 503 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz stayed {ready} with the broker down"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    broker.restart();
    // Meta retries until it gets a 200.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let status = post_signed(&app.webhook_url(), &body_for(5)).await.status();
        if status == 200 {
            accepted.push("message:wamid.OUTAGE5".into());
            break;
        }
        assert_eq!(status, 503);
        assert!(
            std::time::Instant::now() < deadline,
            "receiver never recovered:\n{}",
            app.stderr()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for n in 6..8 {
        assert_eq!(
            post_signed(&app.webhook_url(), &body_for(n)).await.status(),
            200
        );
        accepted.push(format!("message:wamid.OUTAGE{n}"));
    }

    let records = read_until(&broker.bootstrap(), &names.inbound, WAIT, |r| {
        let ids: HashSet<String> = r
            .iter()
            .filter_map(|x| x.json()["id"].as_str().map(str::to_owned))
            .collect();
        accepted.iter().all(|id| ids.contains(id))
    });
    let ids: HashSet<String> = records
        .iter()
        .filter_map(|x| x.json()["id"].as_str().map(str::to_owned))
        .collect();
    for id in &accepted {
        assert!(ids.contains(id), "{id} got 200 but is not in the topic");
    }
}

/// Meta's bodies reach 3 MB: a large message and a large dead letter are both stored.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_up_to_max_body_are_stored() {
    let broker = Broker::shared();
    let prefix = unique_prefix("large");
    let names = topics(&prefix);
    let app = App::spawn_ready(AppOptions::new("receiver", &broker.bootstrap(), &prefix)).await;
    let text = "x".repeat(3_000_000);
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"7","display_phone_number":"1"}},"messages":[{{"id":"wamid.LARGE","timestamp":"1795250000","type":"text","from":"15550009","text":{{"body":"{text}"}}}}]}}}}]}}]}}"#
    );
    assert_eq!(
        post_signed(&app.webhook_url(), body.as_bytes())
            .await
            .status(),
        200,
        "{}",
        app.stderr()
    );
    let not_json = vec![b'#'; 2_500_000];
    assert_eq!(
        post_signed(&app.webhook_url(), &not_json).await.status(),
        200,
        "{}",
        app.stderr()
    );
    let inbound = read_until(
        &broker.bootstrap(),
        &names.inbound,
        Duration::from_secs(30),
        |r| !r.is_empty(),
    );
    assert_eq!(
        inbound
            .first()
            .map(|r| r.json()["data"]["message"]["text"]["body"]
                .as_str()
                .map(str::len)),
        Some(Some(3_000_000))
    );
    let dead = read_until(
        &broker.bootstrap(),
        &names.deadletter,
        Duration::from_secs(30),
        |r| !r.is_empty(),
    );
    assert_eq!(
        dead.first().and_then(|r| r.payload.as_ref()).map(Vec::len),
        Some(2_500_000)
    );
}

/// Writes `request` as is and returns what the server answers.
async fn raw_exchange(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// A client that sends headers and then stalls is cut off; the listener keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off() {
    let broker = Broker::shared();
    let prefix = unique_prefix("slow");
    let app = App::spawn_ready(
        AppOptions::new("receiver", &broker.bootstrap(), &prefix).arg("--client-timeout", "2s"),
    )
    .await;
    // Headers never finished.
    let started = std::time::Instant::now();
    let answer = raw_exchange(app.listen, "POST /webhook HTTP/1.1\r\nHost: x\r\n").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A body that never arrives.
    let answer = raw_exchange(
        app.listen,
        "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let ok = reqwest::get(format!(
        "{}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=x",
        app.webhook_url()
    ))
    .await
    .expect("still serving");
    assert_eq!(ok.status(), 200);
}

/// At the concurrency bound, a request waits briefly, then is told to come back.
#[tokio::test(flavor = "multi_thread")]
async fn concurrency_bound_answers_503_with_retry_after() {
    use tokio::io::AsyncWriteExt;
    let broker = Broker::shared();
    let prefix = unique_prefix("bound");
    let app = App::spawn_ready(
        AppOptions::new("receiver", &broker.bootstrap(), &prefix)
            .arg("--max-concurrent-requests", "1")
            .arg("--client-timeout", "20s"),
    )
    .await;
    // A client that announced a body and sends it slowly holds the only slot.
    let mut holder = tokio::net::TcpStream::connect(("127.0.0.1", app.listen))
        .await
        .expect("connect");
    holder
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = post_signed(&app.webhook_url(), &fixture("text-message.json")).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    drop(holder);
    // The slot is free again once the slow client is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while post_signed(&app.webhook_url(), &fixture("text-message.json"))
        .await
        .status()
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "{}", app.stderr());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Inbound and state topics with different partition counts: refuse to start, clearly.
#[tokio::test(flavor = "multi_thread")]
async fn mismatched_partition_counts_refuse_to_start() {
    let broker = Broker::shared();
    let first = unique_prefix("mismatch");
    let mut app = App::spawn_ready(
        AppOptions::new("receiver", &broker.bootstrap(), &first).arg("--partitions", "3"),
    )
    .await;
    app.stop_cleanly(Duration::from_secs(30));
    // A second deployment shares the state topic but creates its inbound topic with 5.
    let existing_state = topics(&first).state;
    let mut second = App::spawn(
        AppOptions::new("receiver", &broker.bootstrap(), &unique_prefix("other"))
            .arg("--partitions", "5")
            .arg("--topic-window-state", &existing_state),
    );
    let code = second.proc.wait_exit(Duration::from_secs(60));
    let stderr = second.stderr();
    assert_eq!(code, Some(2), "refused as a configuration error:\n{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("windowkeeper: error:"))
        .unwrap_or_default();
    assert!(
        error.contains("has 5 partitions") && error.contains("has 3"),
        "{stderr}"
    );
}

#[test]
fn config_errors_are_one_line_and_exit_2() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(binary());
        command
            .args(args)
            .env_remove("META_APP_SECRET")
            .env_remove("META_VERIFY_TOKEN");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("runs")
    };
    let missing_secret = run(
        &[
            "receiver",
            "--kafka-brokers",
            "127.0.0.1:1",
            "--verify-token",
            "t",
        ],
        &[],
    );
    assert_eq!(missing_secret.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing_secret.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("app secret"), "{stderr}");

    let bad_duration = run(
        &[
            "tracker",
            "--kafka-brokers",
            "x",
            "--service-window",
            "forever",
        ],
        &[],
    );
    assert_eq!(bad_duration.status.code(), Some(2));

    let no_brokers = run(&["tracker"], &[]);
    assert_eq!(no_brokers.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_brokers.stderr).contains("--kafka-brokers"));

    // META_APP_SECRET is read too: the error is now about the verify token.
    let from_meta_env = run(
        &["receiver", "--kafka-brokers", "x"],
        &[("META_APP_SECRET", "s")],
    );
    assert_eq!(from_meta_env.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&from_meta_env.stderr).contains("verify token"));
}

#[test]
fn sign_prints_the_header_value() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("body.json");
    std::fs::write(&file, b"{\"a\":1}").expect("write");
    let out = std::process::Command::new(binary())
        .args(["sign", "--app-secret", "s3cret"])
        .arg(&file)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        printed,
        windowkeeper::ingest::signature::sign(b"s3cret", b"{\"a\":1}")
    );
    assert!(printed.starts_with("sha256=") && printed.len() == 7 + 64);
}

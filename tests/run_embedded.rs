//! A newcomer's first run: `windowkeeper run` with no broker configured starts the embedded
//! broker, says so, prints a command that posts a signed sample and one that asks the
//! send-decision API about that customer, and prints every window event on stdout; SIGTERM
//! stops it with exit 0.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn run_without_a_broker_shows_a_window_open_warn_and_close() {
    let mut options = AppOptions::new("run", "unused", &unique_prefix("embedded"))
        .arg("--service-window", "6s")
        .arg("--closing-lead", "2s");
    options.brokers = None;
    let mut app = App::spawn_ready(options).await;

    let stderr = app.stderr();
    assert!(
        stderr.contains("EMBEDDED Kafka-protocol broker"),
        "{stderr}"
    );
    assert!(stderr.contains("keeps nothing across restarts"), "{stderr}");
    assert!(stderr.contains("bootstrap servers: 127.0.0.1:"), "{stderr}");
    app.assert_no_error_lines();
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{}/webhook", app.listen)),
        "{stderr}"
    );

    // The printed command, run as a newcomer would paste it: no windowkeeper on the PATH (as
    // after `cargo run`), the secret in the environment.
    let command = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("ts=$(date +%s)"))
        .expect("a ready-to-paste command")
        .to_owned();
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(&command)
        .env("WINDOWKEEPER_APP_SECRET", SECRET)
        .output()
        .expect("bash runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "200",
        "{output:?}"
    );

    // The sample ends with the status command to try; pasted, it answers in words.
    let lines: Vec<&str> = stderr.lines().collect();
    let post_at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("ts=$(date +%s)"))
        .expect("the sample");
    let status = lines
        .get(post_at + 2)
        .filter(|l| l.contains(" status 106540352242922 US.13491208655302741918 --api "))
        .unwrap_or_else(|| panic!("the status command right after the sample:\n{stderr}"))
        .trim()
        .to_owned();
    let answer = loop {
        let output = std::process::Command::new("bash")
            .arg("-c")
            .arg(&status)
            .output()
            .expect("bash runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.starts_with("Free-form messages allowed until ") {
            break text;
        }
        assert!(
            !app.stdout().contains("whatsapp.window.closed"),
            "the window closed before the status command saw it open: {text} {output:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(answer.contains("Templates: "), "{answer}");

    let deadline = Instant::now() + Duration::from_secs(40);
    let events = loop {
        let lines: Vec<Value> = app
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.iter().any(|e| e["type"] == "whatsapp.window.closed") || Instant::now() > deadline
        {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ONE_WINDOW, "{}", app.stderr());
    assert!(
        !app.stderr().contains(SECRET),
        "the secret is never printed"
    );
    app.stop_cleanly(Duration::from_secs(30));
}

//! The README is part of the product: its examples, flags, metrics and commands must be true
//! of the code.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

fn json_blocks(text: &str) -> Vec<Value> {
    text.split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .map(|block| {
            serde_json::from_str(block)
                .unwrap_or_else(|e| panic!("README json block: {e}\n{block}"))
        })
        .collect()
}

#[test]
fn every_event_example_matches_its_schema() {
    let blocks = json_blocks(&readme());
    let examples: Vec<&Value> = blocks
        .iter()
        .filter(|b| b["specversion"] == "1.0")
        .collect();
    let types: BTreeSet<&str> = examples.iter().filter_map(|e| e["type"].as_str()).collect();
    for expected in [
        "whatsapp.message.received",
        "whatsapp.status.updated",
        "whatsapp.call.received",
        "whatsapp.contact.user_id_changed",
        "whatsapp.change.other",
        "whatsapp.window.opened",
        "whatsapp.window.closing",
        "whatsapp.window.closed",
        "whatsapp.contact.marketing_preference_changed",
    ] {
        assert!(
            types.contains(expected),
            "README has an example of {expected}"
        );
    }
    // The send-decision API's example answer, against the OpenAPI document.
    let answers: Vec<&Value> = blocks.iter().filter(|b| b.get("send").is_some()).collect();
    assert_eq!(answers.len(), 1, "README has one example answer of the API");
    common::OpenApi::load().check(200, answers[0]);
    // The pricing rules example is a file `--pricing-rules` accepts.
    for rules in blocks.iter().filter(|b| b.get("rules").is_some()) {
        windowkeeper::api::pricing::PricingRules::parse(&rules.to_string())
            .unwrap_or_else(|e| panic!("README pricing rules example: {e}"));
    }
    common::validate_events(examples);
}

#[test]
fn every_flag_is_documented_with_its_env_var_and_default() {
    let text = readme();
    for command in ["run", "sign"] {
        let help = std::process::Command::new(env!("CARGO_BIN_EXE_windowkeeper"))
            .args([command, "--help"])
            .output()
            .expect("help");
        let help = String::from_utf8_lossy(&help.stdout);
        for line in help
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("--") && !l.starts_with("--help"))
        {
            let flag = line.split_whitespace().next().expect("flag");
            assert!(
                text.contains(&format!("`{flag}`")),
                "README documents {flag}"
            );
        }
        for default in help
            .split("[default: ")
            .skip(1)
            .filter_map(|d| d.split(']').next())
        {
            assert!(
                text.contains(&format!("`{default}`")),
                "README states the default {default}"
            );
        }
        for env in help
            .split("[env: ")
            .skip(1)
            .filter_map(|d| d.split(['=', ']']).next())
        {
            assert!(text.contains(&format!("`{env}`")), "README names {env}");
        }
    }
}

#[test]
fn every_metric_in_the_table_is_exported_and_every_exported_metric_is_in_the_table() {
    let text = readme();
    let rendered = windowkeeper::metrics::Metrics::new().render();
    let exported: BTreeSet<String> = rendered
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let documented: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("| `windowkeeper_"))
        .filter_map(|l| l.split('`').next())
        .map(|name| format!("windowkeeper_{}", name.trim_end_matches("_total")))
        .collect();
    assert_eq!(documented, exported, "README metrics table vs /metrics");
}

#[test]
fn the_first_screen_has_the_two_commands_and_ci_runs_the_test_one() {
    let text = readme();
    let first_screen: String = text.lines().take(30).collect::<Vec<_>>().join("\n");
    assert!(
        first_screen.contains("cargo run --release -- run"),
        "{first_screen}"
    );
    assert!(first_screen.contains("./scripts/test"), "{first_screen}");
    let ci = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"))
        .expect(".ci/run");
    assert!(
        ci.contains("./scripts/test"),
        "CI runs the README's test command"
    );
}

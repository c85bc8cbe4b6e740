//! Unit tests of config.

use super::*;

#[test]
fn durations_take_the_documented_forms() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(259_200)));
    assert!(parse_duration("soon").is_err());
    assert!(parse_duration("0s").is_err());
}

#[test]
fn verify_token_compares_whole_values() {
    let token = VerifyToken::new("s3cret".into());
    assert!(token.matches("s3cret"));
    assert!(!token.matches("s3cre"));
    assert!(!token.matches("s3cret "));
    assert_eq!(format!("{token:?}"), "VerifyToken(<redacted>)");
}

#[test]
fn kafka_properties_come_from_a_file_then_flags() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("client.properties");
    std::fs::write(
        &file,
        "# managed Kafka\nsecurity.protocol=SASL_SSL\n\nsasl.mechanism = PLAIN\n",
    )
    .expect("write");
    let cli = Cli::try_parse_from([
        "windowkeeper",
        "tracker",
        "--kafka-brokers",
        "b:9092",
        "--kafka-config",
        file.to_str().expect("utf8 path"),
        "--kafka-property",
        "sasl.mechanism=SCRAM-SHA-512",
    ])
    .expect("parses");
    let Command::Tracker(t) = cli.command else {
        panic!("tracker")
    };
    let kafka = t.common.kafka(None).expect("valid");
    assert_eq!(
        kafka.properties,
        [
            ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
            ("sasl.mechanism".to_owned(), "PLAIN".to_owned()),
            ("sasl.mechanism".to_owned(), "SCRAM-SHA-512".to_owned()),
        ]
    );
    std::fs::write(&file, "no equals sign\n").expect("write");
    assert!(matches!(
        t.common.kafka(None),
        Err(ConfigError::KafkaConfigLine { line: 1, .. })
    ));
    assert!(
        Cli::try_parse_from(["windowkeeper", "tracker", "--kafka-property", "novalue"]).is_err()
    );
}

#[test]
fn app_secrets_rotate_from_flags_commas_and_a_file() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("secrets");
    std::fs::write(&file, "third\n\n  fourth  \n").expect("write");
    let cli = Cli::try_parse_from([
        "windowkeeper",
        "receiver",
        "--app-secret",
        "first,second",
        "--app-secret",
        "fifth",
        "--app-secret-file",
        file.to_str().expect("utf8 path"),
        "--verify-token",
        "t",
    ])
    .expect("parses");
    let Command::Receiver(r) = cli.command else {
        panic!("receiver")
    };
    let settings = r.receiver.settings().expect("valid");
    assert_eq!(settings.secrets.len(), 5);
    // Every one of them verifies; the Debug form shows none of them.
    for secret in ["first", "second", "fifth", "third", "fourth"] {
        let header = crate::ingest::signature::sign(secret.as_bytes(), b"{}");
        let verified = crate::ingest::signature::verify(
            &settings.secrets,
            Some(header.as_bytes()),
            bytes::Bytes::from_static(b"{}"),
        );
        assert!(verified.is_ok(), "{secret}");
    }
    let shown = format!("{settings:?}");
    assert!(
        !shown.contains("first") && !shown.contains("fourth") && !shown.contains("\"t\""),
        "{shown}"
    );
}

#[test]
fn leads_must_fit_inside_the_windows() {
    let cli = Cli::try_parse_from([
        "windowkeeper",
        "tracker",
        "--service-window",
        "6s",
        "--closing-lead",
        "6s",
    ])
    .expect("parses");
    let Command::Tracker(t) = cli.command else {
        panic!("tracker")
    };
    assert!(matches!(
        t.tracker.settings(),
        Err(ConfigError::LeadTooLong { .. })
    ));
}

//! Prints the inbound events windowkeeper would publish for a webhook body, one JSON line each
//! with its Kafka key: `cargo run --example normalize -- tests/fixtures/text-message.json`.

use std::process::ExitCode;

use windowkeeper::ingest::normalize::normalize;
use windowkeeper::ingest::signature::{sign, verify, AppSecrets};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: normalize FILE");
        return ExitCode::from(2);
    };
    let body = match std::fs::read(&path) {
        Ok(body) => body,
        Err(error) => {
            eprintln!("cannot read {path}: {error}");
            return ExitCode::from(2);
        }
    };
    // Sign with a throwaway secret: the only way to a verified body is through verification.
    let secret = "example";
    let header = sign(secret.as_bytes(), &body);
    let verified = AppSecrets::new(vec![secret.to_owned()])
        .map_err(|e| e.to_string())
        .and_then(|secrets| {
            verify(&secrets, Some(header.as_bytes()), body.into()).map_err(|e| e.to_string())
        });
    let events = verified.and_then(|v| normalize(&v).map_err(|e| format!("{e} ({})", e.reason())));
    match events {
        Ok(events) => {
            for event in events {
                println!(
                    "key={}\t{}",
                    event.key,
                    String::from_utf8_lossy(&event.payload)
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(1)
        }
    }
}

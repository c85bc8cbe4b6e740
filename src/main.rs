use std::io::Read;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use windowkeeper::app::{self, Plan, StartError};
use windowkeeper::config::{Cli, Command, SignArgs};
use windowkeeper::embedded::EmbeddedBroker;

/// Small allocations by the million (records, keys, JSON): mimalloc serves them in a fraction
/// of glibc's time and without its fragmentation stalls.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2.
    let cli = Cli::parse();
    if let Command::Sign(args) = &cli.command {
        return sign(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("windowkeeper: error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    if let Command::Status(args) = &cli.command {
        return match runtime.block_on(windowkeeper::status::status(args)) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("windowkeeper: error: {error}");
                ExitCode::from(error.exit_code())
            }
        };
    }
    match runtime.block_on(start(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("windowkeeper: error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn start(command: Command) -> Result<(), StartError> {
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        app::shutdown_signal().await;
        on_signal.cancel();
    });
    match &command {
        Command::Run(args) => {
            app::init_logging(args.common.log_format);
            // Kept alive until `run` returns: dropping it stops the broker.
            let embedded = match &args.common.kafka_brokers {
                Some(_) => None,
                None => Some(start_embedded(args)?),
            };
            let plan = Plan {
                common: &args.common,
                receiver: Some(&args.receiver),
                tracker: Some(&args.tracker),
                api: Some(&args.api),
                embedded_brokers: embedded.as_ref().map(EmbeddedBroker::bootstrap_servers),
                print_window_events: true,
            };
            app::run(plan, stop).await
        }
        Command::Receiver(args) => {
            app::init_logging(args.common.log_format);
            let plan = Plan {
                common: &args.common,
                receiver: Some(&args.receiver),
                tracker: None,
                api: None,
                embedded_brokers: None,
                print_window_events: false,
            };
            app::run(plan, stop).await
        }
        Command::Tracker(args) => {
            app::init_logging(args.common.log_format);
            let plan = Plan {
                common: &args.common,
                receiver: None,
                tracker: Some(&args.tracker),
                api: Some(&args.api),
                embedded_brokers: None,
                print_window_events: false,
            };
            app::run(plan, stop).await
        }
        Command::Sign(_) | Command::Status(_) => Ok(()),
    }
}

fn start_embedded(args: &windowkeeper::config::RunArgs) -> Result<EmbeddedBroker, StartError> {
    let broker = EmbeddedBroker::start(&args.common.topics(), args.common.partitions)
        .map_err(StartError::Embedded)?;
    let listen = args.receiver.listen;
    let port = listen.port();
    eprintln!("windowkeeper: no --kafka-brokers given; started an EMBEDDED Kafka-protocol broker in this process.");
    eprintln!("windowkeeper: it keeps nothing across restarts and is for trying windowkeeper out, not for production.");
    eprintln!(
        "windowkeeper: bootstrap servers: {}",
        broker.bootstrap_servers()
    );
    eprintln!("windowkeeper: webhook URL: http://127.0.0.1:{port}/webhook");
    {
        // The secret itself is never printed; the command reads it from the environment. The
        // binary's own path, because after `cargo run` no `windowkeeper` is on the PATH.
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "windowkeeper".into());
        eprintln!("windowkeeper: in another terminal, with WINDOWKEEPER_APP_SECRET set to the same app secret, post a signed sample:");
        eprintln!(
            "  ts=$(date +%s); body=$(printf '{}' \"$ts\" \"$ts\"); curl -sS -w '%{{http_code}}\\n' -X POST http://127.0.0.1:{port}/webhook \
             -H 'Content-Type: application/json' \
             -H \"X-Hub-Signature-256: $(printf %s \"$body\" | {exe} sign --app-secret \"$WINDOWKEEPER_APP_SECRET\")\" \
             --data-binary \"$body\"",
            SAMPLE_BODY_FORMAT,
        );
        let api_port = args.api.api_listen.port();
        eprintln!(
            "windowkeeper: then ask whether you may write to that customer, and at what cost:"
        );
        eprintln!(
            "  {exe} status 106540352242922 US.13491208655302741918 --api http://127.0.0.1:{api_port}"
        );
    }
    Ok(broker)
}

/// A customer text; `%s` becomes the send time (as Meta stamps it) when the command runs, so
/// the window it opens is live even with windows of seconds.
const SAMPLE_BODY_FORMAT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"user_id":"US.13491208655302741918","wa_id":"16505551234"}],"messages":[{"id":"wamid.SAMPLE%s","timestamp":"%s","type":"text","from_user_id":"US.13491208655302741918","from":"16505551234","text":{"body":"Hello"}}]}}]}]}"#;

fn sign(args: &SignArgs) -> ExitCode {
    let Some(secret) = args
        .app_secret
        .clone()
        .or_else(|| std::env::var("META_APP_SECRET").ok())
    else {
        eprintln!("windowkeeper: error: --app-secret (or WINDOWKEEPER_APP_SECRET / META_APP_SECRET) is required");
        return ExitCode::from(2);
    };
    let body = match &args.file {
        Some(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
        None => {
            let mut buffer = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buffer)
                .map(|_| buffer)
                .map_err(|e| format!("cannot read stdin: {e}"))
        }
    };
    match body {
        Ok(body) => {
            println!(
                "{}",
                windowkeeper::ingest::signature::sign(secret.as_bytes(), &body)
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("windowkeeper: error: {message}");
            ExitCode::from(2)
        }
    }
}

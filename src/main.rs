//! `myriam`: the gateway server (`myriam serve`, the default).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use myriam::cli::{Script, SignedBody, Simulation};
use myriam::config::Settings;
use myriam::startup::Application;

#[derive(Debug, Parser)]
#[command(name = "myriam", version, about = "BP Émondage call-handling gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default). Configuration comes from the environment and `.env`.
    Serve,
    /// Explain why an X-Twilio-Signature does or does not match (token from `TWILIO_AUTH_TOKEN`).
    VerifySignature(VerifyArgs),
    /// Play a whole call against a running gateway, as Twilio would.
    Simulate(SimulateArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("body").args(["param", "form_body", "json_body_file"])))]
struct VerifyArgs {
    /// The full URL Twilio requested (as configured in Twilio, query included).
    #[arg(long)]
    url: String,
    /// The X-Twilio-Signature header value.
    #[arg(long)]
    signature: String,
    /// A POST parameter, taken literally and split at the first `=` (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    param: Vec<String>,
    /// The raw urlencoded POST body.
    #[arg(long, value_name = "STRING")]
    form_body: Option<String>,
    /// A JSON body, checked against `bodySHA256` in the URL.
    #[arg(long, value_name = "PATH")]
    json_body_file: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// Where the gateway listens.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// The URL Twilio signs (`PUBLIC_BASE_URL`), when it differs from --base-url.
    #[arg(long)]
    public_url: Option<String>,
    /// The built-in script's language.
    #[arg(long, value_parser = ["fr", "en"], default_value = "fr")]
    language: String,
    /// One answer per line (blank line = silence) instead of the built-in script.
    #[arg(long, value_name = "FILE")]
    answers: Option<std::path::PathBuf>,
    /// The caller ID.
    #[arg(long, default_value = "+15145550199")]
    from: String,
    /// The gateway's SQLite file, to print the stored lead (default: `DATABASE_PATH`).
    #[arg(long, value_name = "PATH")]
    database: Option<std::path::PathBuf>,
}

const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::VerifySignature(args) => verify_signature(&args),
        Command::Simulate(args) => simulate(args),
    }
}

fn verify_signature(args: &VerifyArgs) -> ExitCode {
    let source = match myriam::secrets::EnvSource::load(std::path::Path::new(".env"), false) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("myriam: {error}");
            return ExitCode::from(USAGE);
        }
    };
    let Some(token) = source
        .get("TWILIO_AUTH_TOKEN")
        .filter(|t| !t.trim().is_empty())
    else {
        eprintln!("myriam: TWILIO_AUTH_TOKEN is not set");
        return ExitCode::from(USAGE);
    };
    let body = if let Some(path) = &args.json_body_file {
        match std::fs::read(path) {
            Ok(bytes) => SignedBody::Json(bytes),
            Err(error) => {
                eprintln!("myriam: cannot read {}: {error}", path.display());
                return ExitCode::from(USAGE);
            }
        }
    } else if let Some(form) = &args.form_body {
        SignedBody::Form(form.clone())
    } else {
        let mut params = Vec::new();
        for p in &args.param {
            let Some((name, value)) = p.split_once('=') else {
                eprintln!("myriam: --param expects NAME=VALUE");
                return ExitCode::from(USAGE);
            };
            params.push((name.to_owned(), value.to_owned()));
        }
        SignedBody::Params(params)
    };
    let verdict = myriam::cli::verify_signature(token.trim(), &args.url, &body, &args.signature);
    print!("{}", verdict.report);
    if verdict.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn simulate(args: SimulateArgs) -> ExitCode {
    let script = match &args.answers {
        Some(path) => match Script::from_file(path, &args.from) {
            Ok(script) => script,
            Err(error) => {
                eprintln!("myriam: cannot read {}: {error}", path.display());
                return ExitCode::from(USAGE);
            }
        },
        None if args.language == "en" => Script::english(),
        None => Script::french(),
    };
    let simulation = Simulation {
        base_url: args.base_url,
        public_url: args.public_url,
        script,
        database: args.database,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("myriam: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(myriam::cli::simulate(&simulation)) {
        Ok(dialogue) => {
            print!("{dialogue}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("myriam: simulate failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> ExitCode {
    // Settings first: a refused start prints names only, before any logging exists.
    let mut settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("myriam: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Development without TWILIO_AUTH_TOKEN: a generated, development-only signing key (never in
    // production, whose guard has already refused a missing token).
    let dev_key = match myriam::dev_token::apply(&mut settings) {
        Ok(path) => path,
        Err(error) => {
            eprintln!("myriam: cannot create the development Twilio signing key: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Sentry wants to be initialised before the async runtime starts.
    let telemetry = match myriam::telemetry::init(&settings) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("myriam: {error}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &settings.warnings {
        tracing::warn!(environment = %settings.environment, "{warning}");
    }
    if let Some(path) = &dev_key {
        tracing::warn!(
            environment = %settings.environment,
            key_file = %path.display(),
            "TWILIO_AUTH_TOKEN is not set: Twilio signatures are checked against a generated development-only key (`myriam simulate` run from this directory uses it); production requires TWILIO_AUTH_TOKEN"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        // Handlers first, so a signal that arrives while starting up drains instead of killing.
        let signal = ShutdownSignal::install()?;
        let environment = settings.environment;
        let app = Application::build(settings).await?;
        let lifecycle = app.lifecycle();
        tokio::spawn(async move {
            signal.received().await;
            tracing::info!("shutdown signal received");
            lifecycle.shutdown();
        });
        tracing::info!(
            addr = %app.local_addr(),
            metrics_addr = ?app.metrics_addr(),
            %environment,
            sentry = telemetry.sentry_enabled,
            version = env!("CARGO_PKG_VERSION"),
            "myriam listening"
        );
        app.run_until_stopped().await?;
        anyhow::Ok(())
    });
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("myriam: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (orchestrators) or SIGINT / Ctrl-C (developers), registered when installed.
struct ShutdownSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

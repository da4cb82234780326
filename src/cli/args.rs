//! The command line of `myriam`: `serve` (the default), `verify-signature`, `simulate`,
//! `operator` and `healthcheck`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::dev::{Script, SignedBody, Simulation};
use super::health::HealthcheckArgs;
use super::operator::OperatorArgs;

#[derive(Debug, Parser)]
#[command(name = "myriam", version = crate::build_info::LONG_VERSION, about = "BP Émondage call-handling gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default). Configuration comes from the environment and `.env`.
    Serve,
    /// Explain why an X-Twilio-Signature does or does not match (token from `TWILIO_AUTH_TOKEN`).
    VerifySignature(VerifyArgs),
    /// Play a whole call against a running gateway, as Twilio would.
    Simulate(SimulateArgs),
    /// Manage console operators and API tokens (in the store the gateway uses).
    Operator(OperatorArgs),
    /// Ask a running gateway's `/readyz`; exit 0 when ready, 1 otherwise (the image's
    /// HEALTHCHECK: no curl needed).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("body").args(["param", "form_body", "json_body_file"])))]
pub struct VerifyArgs {
    /// The full URL Twilio requested (as configured in Twilio, query included).
    #[arg(long)]
    pub url: String,
    /// The X-Twilio-Signature header value.
    #[arg(long)]
    pub signature: String,
    /// A POST parameter, taken literally and split at the first `=` (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    pub param: Vec<String>,
    /// The raw urlencoded POST body.
    #[arg(long, value_name = "STRING")]
    pub form_body: Option<String>,
    /// A JSON body, checked against `bodySHA256` in the URL.
    #[arg(long, value_name = "PATH")]
    pub json_body_file: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Where the gateway listens.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// The URL Twilio signs (`PUBLIC_BASE_URL`), when it differs from --base-url.
    #[arg(long)]
    pub public_url: Option<String>,
    /// The built-in script's language.
    #[arg(long, value_parser = ["fr", "en"], default_value = "fr")]
    pub language: String,
    /// One answer per line (blank line = silence) instead of the built-in script.
    #[arg(long, value_name = "FILE")]
    pub answers: Option<std::path::PathBuf>,
    /// The caller ID.
    #[arg(long, default_value = "+15145550199")]
    pub from: String,
    /// The gateway's SQLite file, to print the stored lead (default: `DATABASE_PATH`).
    #[arg(long, value_name = "PATH")]
    pub database: Option<std::path::PathBuf>,
    /// How a transfer to the office line ends (Twilio's `DialCallStatus`).
    #[arg(long, value_parser = ["no-answer", "busy", "failed", "completed"], default_value = "no-answer")]
    pub dial_status: String,
}

const USAGE: u8 = 2;

/// Runs the command `cli` names.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => super::serve::serve(),
        Command::VerifySignature(args) => verify_signature(&args),
        Command::Simulate(args) => simulate(args),
        Command::Operator(args) => super::operator::run(args),
        Command::Healthcheck(args) => super::health::run(&args),
    }
}

fn verify_signature(args: &VerifyArgs) -> ExitCode {
    let source = match crate::secrets::EnvSource::load(std::path::Path::new(".env"), false) {
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
    let verdict = super::dev::verify_signature(token.trim(), &args.url, &body, &args.signature);
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
        dial_status: args.dial_status,
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
    match runtime.block_on(super::dev::simulate(&simulation)) {
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

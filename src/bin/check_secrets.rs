//! `check_secrets`: the environment-variable catalogue judged against this environment.
//!
//! Prints every catalogued variable (name, group, required or optional, present / missing /
//! placeholder / malformed) and a one-line verdict. Never prints a value, nor any part or length of
//! one. Exit 0 when every required variable is usable, 1 otherwise, 2 on usage errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use myriam::environment::Environment;
use myriam::secrets::{EnvSource, Group, Report, Skips, Status};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EnvArg {
    Production,
    Development,
    Test,
}

#[derive(Debug, Parser)]
#[command(
    name = "check_secrets",
    version,
    about = "Checks every catalogued environment variable; never prints a value"
)]
struct Args {
    /// Make the Vapi group optional (IVR-only deployments).
    #[arg(long)]
    skip_vapi: bool,
    /// Make the Supabase group optional (embedded SQLite store).
    #[arg(long)]
    skip_supabase: bool,
    /// Read this file instead of `.env` (the real environment still wins).
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Judge for this environment instead of `ENVIRONMENT`.
    #[arg(long, value_enum)]
    environment: Option<EnvArg>,
    /// Print the catalogue as the README's Markdown table and exit.
    #[arg(long, hide = true)]
    markdown: bool,
}

const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.markdown {
        print!("{}", myriam::secrets::markdown_table());
        return ExitCode::SUCCESS;
    }
    let source = match &args.env_file {
        Some(path) => EnvSource::load(path, true),
        None => EnvSource::load(std::path::Path::new(".env"), false),
    };
    let source = match source {
        Ok(source) => source,
        Err(error) => {
            eprintln!("check_secrets: {error}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let environment = match args.environment {
        Some(EnvArg::Production) => Environment::Production,
        Some(EnvArg::Development) => Environment::Development,
        Some(EnvArg::Test) => Environment::Test,
        None => match Environment::from_value(source.get("ENVIRONMENT")) {
            Ok(env) => env,
            Err(error) => {
                eprintln!("check_secrets: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut skips = Skips::implied_by(&source);
    if args.skip_vapi {
        skips = skips.with(Group::Vapi);
    }
    if args.skip_supabase {
        skips = skips.with(Group::Supabase);
    }
    let report = Report::new(&source, environment, &skips);

    if args.json {
        let out = json!({
            "environment": report.environment,
            "ok": report.is_ok(),
            "skipped_groups": report.skipped_groups,
            "summary": {
                "present": report.count(Status::Present),
                "missing": report.count(Status::Missing),
                "placeholder": report.count(Status::Placeholder),
                "malformed": report.count(Status::Malformed),
            },
            "failing": report.failures().map(|c| c.name).collect::<Vec<_>>(),
            "variables": report.variables,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("plain JSON values")
        );
    } else {
        let skipped: Vec<&str> = report.skipped_groups.iter().map(|g| g.as_str()).collect();
        println!(
            "check_secrets — environment: {}{}",
            report.environment,
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" (optional groups: {})", skipped.join(", "))
            }
        );
        print!("{}", report.table());
        println!("{}", report.verdict());
    }
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

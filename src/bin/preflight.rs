//! `preflight`: every check CI runs, in order, with a summary table.
//!
//! Steps: check-secrets, fmt, clippy, tests, migrations, workflows, security, frontend, e2e.
//! Exit 0 only when every step that ran passed; 1 when one failed; 2 on usage errors.

use std::process::ExitCode;

use clap::Parser;
use myriam::preflight::{self, Options, Step};

#[derive(Debug, Parser)]
#[command(
    name = "preflight",
    version,
    about = "Runs every check CI runs, in order"
)]
struct Args {
    /// Report the frontend step as skipped when a frontend exists.
    #[arg(long)]
    skip_frontend: bool,
    /// Report the end-to-end step as skipped when a frontend exists.
    #[arg(long)]
    skip_e2e: bool,
    /// Skip `cargo deny check` (its advisory database needs network).
    #[arg(long)]
    skip_security: bool,
    /// Skip the coverage step (it runs the whole suite again, instrumented).
    #[arg(long)]
    skip_coverage: bool,
    /// Vapi variables become optional and tests needing a hosted Vapi account are skipped.
    #[arg(long)]
    skip_vapi: bool,
    /// Supabase variables become optional and tests needing a hosted Supabase project are skipped.
    #[arg(long)]
    skip_supabase: bool,
    /// Run this step only: check-secrets, fmt, clippy, tests, migrations, workflows, security,
    /// frontend or e2e.
    #[arg(long, value_name = "STEP")]
    only: Option<Step>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let root = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("preflight: cannot read the current directory: {error}");
            return ExitCode::from(2);
        }
    };
    let options = Options {
        skip_frontend: args.skip_frontend,
        skip_e2e: args.skip_e2e,
        skip_security: args.skip_security,
        skip_coverage: args.skip_coverage,
        skip_vapi: args.skip_vapi,
        skip_supabase: args.skip_supabase,
        only: args.only,
        root,
    };
    let results = preflight::run(&options);
    print!("{}", preflight::summary(&results));
    if preflight::all_passed(&results) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

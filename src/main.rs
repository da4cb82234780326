//! `myriam`: the gateway server (`myriam serve`, the default) and the developer subcommands; the
//! command line lives in [`myriam::cli`].

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    myriam::cli::run(myriam::cli::Cli::parse())
}

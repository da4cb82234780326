//! The `myriam` command line: `serve` ([`serve`]), the developer subcommands `verify-signature` and
//! `simulate` ([`dev`]), `operator` and `healthcheck`, parsed by [`args`].

mod args;
mod dev;
mod health;
mod operator;
mod serve;

pub use args::{Cli, Command, SimulateArgs, VerifyArgs, run};
pub use dev::{Script, SignedBody, Simulation, Verification, simulate, verify_signature};
pub use health::HealthcheckArgs;
pub use operator::{OperatorArgs, OperatorCommand, TokenCommand};

//! `myriam operator …`: console operators and API tokens, against the store the gateway uses
//! (`STORE`, `DATABASE_PATH` or Supabase). Passwords are read from standard input (not echoed on a
//! terminal, asked twice there); a new API token is printed once on standard output.

use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command as Process, ExitCode, Stdio};

use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};

use crate::config::Settings;
use crate::operators::{self, NewPassword, OperatorError};
use crate::store::AnyStore;
use crate::store::console::{ConsoleStore, Email, Role};

#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    #[command(subcommand)]
    pub command: OperatorCommand,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; the password is read from standard input (not echoed on a terminal).
    Add {
        email: String,
        #[arg(long, value_parser = ["admin", "staff"], default_value = "staff")]
        role: String,
    },
    /// List operators: e-mail, role, active or disabled.
    List,
    /// Disable an operator and end their sessions.
    Disable { email: String },
    /// Enable a disabled operator again.
    Enable { email: String },
    /// Set a new password (from standard input) and end the operator's sessions.
    ResetPassword { email: String },
    /// Set the operator's own phone (a North American number), where a callback (Rappeler)
    /// rings first; `--clear` removes it.
    SetPhone {
        email: String,
        #[arg(required_unless_present = "clear")]
        number: Option<String>,
        #[arg(long, conflicts_with = "number")]
        clear: bool,
    },
    /// API tokens for `/api/v1` (`Authorization: Bearer`).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and stored only as a digest.
    Create {
        name: String,
        #[arg(long, value_parser = ["admin", "staff"], default_value = "staff")]
        role: String,
        /// The operator the token belongs to: disabling them disables it; an admin token needs
        /// an admin.
        #[arg(long)]
        operator: String,
        /// Days until the token expires (none: until revoked).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=3650))]
        expires_days: Option<u16>,
    },
    /// List tokens: name, role, operator, created, expires, last used, state.
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

/// Why an operator command failed (printed, never with a secret).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("cannot read the password: {0}")]
    Read(std::io::Error),
    #[error("the two passwords differ")]
    Mismatch,
}

fn stty(arg: &str) {
    let _ = Process::new("stty")
        .arg(arg)
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn read_line(input: &mut impl BufRead) -> Result<SecretString, CommandError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(CommandError::Read)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    line.clear();
    Ok(SecretString::from(password))
}

/// The new password: one line of standard input; on a terminal, asked twice without echo.
fn read_password() -> Result<NewPassword, CommandError> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let password = if stdin.is_terminal() {
        let ask = |prompt: &str, input: &mut std::io::StdinLock<'_>| {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
            stty("-echo");
            let line = read_line(input);
            stty("echo");
            eprintln!();
            line
        };
        let first = ask("Mot de passe / password: ", &mut input)?;
        let second = ask("Encore / again: ", &mut input)?;
        if first.expose_secret() != second.expose_secret() {
            return Err(CommandError::Mismatch);
        }
        first
    } else {
        read_line(&mut input)?
    };
    NewPassword::try_from(password).map_err(|e| CommandError::Operator(e.into()))
}

fn email(raw: &str) -> Result<Email, CommandError> {
    Email::try_from(raw).map_err(|e| CommandError::Usage(format!("{raw:?}: {e}")))
}

fn role(raw: &str) -> Result<Role, CommandError> {
    Role::try_from(raw).map_err(|e| CommandError::Usage(e.to_string()))
}

async fn execute(store: &AnyStore, command: OperatorCommand) -> Result<String, CommandError> {
    Ok(match command {
        OperatorCommand::Add {
            email: raw,
            role: r,
        } => {
            let (email, role) = (email(&raw)?, role(&r)?);
            let password = read_password()?;
            let operator = operators::add(store, email, role, &password).await?;
            format!("operator {} added ({})\n", operator.email, role.as_str())
        }
        OperatorCommand::List => {
            let mut out = String::new();
            for o in store.operators().await.map_err(OperatorError::from)? {
                let state = if o.disabled { "disabled" } else { "active" };
                let phone = o
                    .phone
                    .as_deref()
                    .and_then(|p| crate::domain::PhoneNumber::try_from(p).ok())
                    .map_or_else(|| "-".to_owned(), |p| p.readable());
                out.push_str(&[o.email.as_str(), o.role.as_str(), state, &phone].join("\t"));
                out.push('\n');
            }
            out
        }
        OperatorCommand::Disable { email: raw } => {
            operators::set_disabled(store, &email(&raw)?, true).await?;
            format!("operator {raw} disabled; their sessions are ended\n")
        }
        OperatorCommand::Enable { email: raw } => {
            operators::set_disabled(store, &email(&raw)?, false).await?;
            format!("operator {raw} enabled\n")
        }
        OperatorCommand::ResetPassword { email: raw } => {
            let email = email(&raw)?;
            let password = read_password()?;
            operators::reset_password(store, &email, &password).await?;
            format!("password of {email} changed; their sessions are ended\n")
        }
        OperatorCommand::SetPhone {
            email: raw,
            number,
            clear: _,
        } => {
            let email = email(&raw)?;
            let phone = number
                .map(|n| {
                    crate::domain::PhoneNumber::try_from(n.as_str()).map_err(|_| {
                        CommandError::Usage(format!(
                            "{n:?} is not a valid North American phone number"
                        ))
                    })
                })
                .transpose()?;
            let cli = operators::Principal {
                actor: "cli".to_owned(),
                role: Role::Admin,
                session: None,
                client: None,
            };
            operators::set_phone(store, &cli, &email, phone.as_ref()).await?;
            match phone {
                Some(p) => format!("phone of {email} set to {}\n", p.readable()),
                None => format!("phone of {email} cleared\n"),
            }
        }
        OperatorCommand::Token(TokenCommand::Create {
            name,
            role: r,
            operator,
            expires_days,
        }) => {
            let owner = email(&operator)?;
            let spec = operators::TokenSpec {
                name: &name,
                role: role(&r)?,
                owner: &owner,
                lifetime: expires_days
                    .map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400)),
            };
            let token = operators::create_token(store, &spec).await?;
            eprintln!("API token {name:?} created; it is shown once, keep it now:");
            format!("{}\n", token.expose_secret())
        }
        OperatorCommand::Token(TokenCommand::List) => token_list(store).await?,
        OperatorCommand::Token(TokenCommand::Revoke { name }) => {
            operators::revoke_token(store, &name).await?;
            format!("API token {name:?} revoked\n")
        }
    })
}

/// `token list`: one line a token (tab-separated), times in UTC, `-` for none.
async fn token_list(store: &AnyStore) -> Result<String, CommandError> {
    let day = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| {
            t.to_offset(time::UtcOffset::UTC)
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]Z"
                ))
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned())
    };
    let operators = store.operators().await.map_err(OperatorError::from)?;
    let now = time::OffsetDateTime::now_utc();
    let mut out = String::from("name\trole\toperator\tcreated\texpires\tlast_used\tstate\n");
    for t in store.api_tokens().await.map_err(OperatorError::from)? {
        let owner = t
            .operator_id
            .and_then(|id| operators.iter().find(|o| o.id == id));
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else if owner.is_some_and(|o| o.disabled) {
            "operator-disabled"
        } else {
            "active"
        };
        let line = [
            t.name.as_str(),
            t.role.as_str(),
            owner.map_or("-", |o| o.email.as_str()),
            &day(t.created_at),
            &day(t.expires_at),
            &day(t.last_used_at),
            state,
        ]
        .join("\t");
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// Runs one `myriam operator …` command.
pub fn run(args: OperatorArgs) -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("myriam: {error}");
            return ExitCode::FAILURE;
        }
    };
    let store = match AnyStore::open(&settings) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("myriam: cannot open the store: {error}");
            return ExitCode::FAILURE;
        }
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
    match runtime.block_on(execute(&store, args.command)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("myriam: {error}");
            ExitCode::FAILURE
        }
    }
}

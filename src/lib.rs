//! Myriam: the call-handling gateway of BP Émondage.
//!
//! Twilio sends calls; the gateway verifies every request, bridges the caller's audio to a Vapi
//! assistant (or runs its own speech IVR), drives a six-question lead qualification in Québec French,
//! and stores leads and calls in Supabase or an embedded SQLite file.
//!
//! # Module map
//!
//! - [`config`]: `Environment`, typed [`config::Settings`] with secrets as `SecretString`, the
//!   runtime secrets guard.
//! - [`dev_token`]: the development-only Twilio signing key that lets `make run` take a call.
//! - [`secrets`]: the one catalogue of environment variables, read by `config` and `check_secrets`.
//! - [`build_info`]: the version and the git revision the binary was built from.
//! - [`client_addr`]: the client's address behind a trusted proxy (`TRUSTED_PROXIES`).
//! - [`startup`]: [`startup::Application`]: router, listeners (port 0 in tests), shutdown and drain.
//! - [`telemetry`]: tracing, Sentry, the Prometheus recorder.
//! - [`domain`]: newtypes parsed at the edge (`PhoneNumber`, `LeadId`, `LeadStatus`, `Language`).
//! - [`qualification`]: the six-question state machine, its parsers and prompts.
//! - [`text`]: folding and matching what callers say.
//! - [`twilio`]: request signatures, TwiML, the verified-webhook extractor.
//! - [`ivr`]: the speech IVR over TwiML, idempotent per call.
//! - [`vapi`]: Vapi Server-URL messages, their authentication and answers.
//! - [`store`]: SQLite, Supabase and the durable outbox; [`store::console`] what the console stores.
//! - [`operators`]: console operators, Argon2id passwords, sessions, API tokens, login throttling.
//! - [`console`]: the operators' console (HTML pages) and the JSON API `/api/v1`.
//! - [`callback`]: a lead called back from the console through Twilio (operator first, press 1).
//! - [`routes`]: thin HTTP handlers.
//! - [`cli`]: the `verify-signature` and `simulate` developer subcommands.
//! - [`bridge`]: the Twilio ⇄ Vapi audio relay.
//! - [`preflight`]: the steps behind the `preflight` binary.
//!
//! See `docs/ARCHITECTURE.md` for the bird's-eye view and the invariants.

pub mod alerts;
pub mod bridge;
pub mod build_info;
pub mod callback;
pub mod calls;
pub mod cli;
pub mod client_addr;
pub mod config;
pub mod console;
pub mod dev_token;
pub mod domain;
pub mod environment;
pub mod erasure;
pub mod ivr;
pub mod lifecycle;
pub mod locks;
pub mod metrics;
pub mod operators;
pub mod preflight;
pub mod qualification;
pub mod redact;
pub mod routes;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod twilio;
pub mod vapi;

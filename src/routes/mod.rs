//! Thin HTTP handlers. Each parses its input into domain types and delegates.

pub mod error;
pub mod health;
pub mod media;
pub mod twilio;
pub mod vapi;

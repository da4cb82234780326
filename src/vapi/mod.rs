//! Vapi: Server-URL messages, their authentication, and the gateway's answers to them.

pub mod auth;
pub mod client;
pub mod extract;
pub mod messages;
pub mod server;

pub use auth::VapiAuth;
pub use extract::{VapiRejection, VapiRequest};
pub use messages::ServerMessage;

//! The Twilio ⇄ Vapi media bridge: one task per call.
//!
//! `relay` is the audio path, generic over `Sink`/`Stream`. The WebSocket route, the Vapi
//! connection, the session registry and the drain build on it.

pub mod leg;
pub mod relay;
pub mod session;

pub use relay::{Ending, RelayStats, WsFrame, relay};

//! `GET /twilio/media`: the Media Stream WebSocket. [`TwilioHandshake`] checks the handshake's
//! `X-Twilio-Signature` (over the `wss://` URL under `PUBLIC_BASE_URL`, no parameters) before the
//! upgrade is answered; axum's WebSocket upgrade (tokio-tungstenite) then runs with the Twilio
//! leg's limits, and the call runs in [`crate::bridge::session`], tracked for the drain. The
//! signature is the same for every call, so the session also checks the per-call token of `start`
//! before it does anything.

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

use crate::bridge::session::Bridge;
use crate::bridge::{leg, session};
use crate::twilio::TwilioHandshake;

pub async fn media(
    State(bridge): State<Bridge>,
    _verified: TwilioHandshake,
    upgrade: WebSocketUpgrade,
) -> Response {
    let tracker = bridge.lifecycle.tracker().clone();
    // Frames are a few hundred bytes: small buffers keep memory per call low, and a peer that
    // stops reading cannot grow the write buffer past its cap.
    let limits = leg::config(leg::TWILIO_MAX_MESSAGE);
    upgrade
        .read_buffer_size(limits.read_buffer_size)
        .write_buffer_size(limits.write_buffer_size)
        .max_write_buffer_size(limits.max_write_buffer_size)
        .max_message_size(leg::TWILIO_MAX_MESSAGE)
        .max_frame_size(leg::TWILIO_MAX_MESSAGE)
        .on_failed_upgrade(|error| tracing::debug!(%error, "Media Stream upgrade failed"))
        .on_upgrade(move |socket| tracker.track_future(session::run(bridge, socket)))
}

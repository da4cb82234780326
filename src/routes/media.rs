//! `GET /twilio/media`: the Media Stream WebSocket. The handshake's `X-Twilio-Signature` is checked
//! (over the `wss://` URL under `PUBLIC_BASE_URL`, no parameters) before the upgrade is answered,
//! through axum's WebSocket upgrade (tokio-tungstenite) with the Twilio leg's limits; the call then
//! runs in [`crate::bridge::session`], tracked for the drain. The signature is the same for every
//! call, so the session also checks the per-call token of `start` before it does anything.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::bridge::{leg, session};
use crate::metrics::names::TWILIO_SIGNATURE_REJECTIONS as REJECTIONS;
use crate::startup::AppState;
use crate::twilio::WebhookAuth;
use crate::twilio::signature::{self, SignatureError};
use crate::twilio::webhook::public_url;

fn refuse(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

/// The `wss://` URL Twilio signed for this handshake.
fn stream_url(state: &AppState, headers: &HeaderMap, target: &str) -> String {
    if let Some(base) = &state.settings.public_base_url {
        return base.websocket(target);
    }
    let http = public_url(None, headers, target);
    http.strip_prefix("https://")
        .map(|rest| format!("wss://{rest}"))
        .or_else(|| {
            http.strip_prefix("http://")
                .map(|rest| format!("ws://{rest}"))
        })
        .unwrap_or(http)
}

pub async fn media(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    match &state.twilio_auth {
        WebhookAuth::Bypass(_) => {}
        WebhookAuth::Enforce(None) => {
            metrics::counter!(REJECTIONS, "reason" => "no_token").increment(1);
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "TWILIO_AUTH_TOKEN is not set; signatures cannot be checked",
            );
        }
        WebhookAuth::Enforce(Some(token)) => {
            let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
            let url = stream_url(&state, &headers, target);
            let sig = headers
                .get("x-twilio-signature")
                .and_then(|v| v.to_str().ok());
            if let Err(error) = signature::verify_form(token.expose_secret(), &url, &[], sig) {
                metrics::counter!(REJECTIONS, "reason" => error.reason()).increment(1);
                tracing::warn!(checked_url = %url, reason = error.reason(), "Media Stream handshake refused");
                return match error {
                    SignatureError::Missing => {
                        refuse(StatusCode::UNAUTHORIZED, "missing X-Twilio-Signature")
                    }
                    _ => refuse(StatusCode::FORBIDDEN, "invalid X-Twilio-Signature"),
                };
            }
        }
    }
    let tracker = state.lifecycle.tracker().clone();
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
        .on_upgrade(move |socket| tracker.track_future(session::run(state, socket)))
}

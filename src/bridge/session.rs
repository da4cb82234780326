//! One bridged call: the Twilio Media Stream socket, the Vapi call and its socket, the relay, and
//! what the call row records. Any failure before or during the call closes the Twilio stream, so
//! Twilio requests the `<Connect action>` (`/twilio/stream-ended`) and the IVR continues the lead at
//! its current step.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use secrecy::ExposeSecret;

use super::relay::{Ending, WsFrame, relay};
use super::ws::WsConn;
use super::ws::handshake::{self, ClientIo, ServerIo};
use crate::domain::{CallSid, ConversationMode, LeadId};
use crate::startup::AppState;
use crate::store::{CallUpdate, Store as _};
use crate::twilio::media::{MediaFrame, StreamStart};
use crate::vapi::client::CallContext;

/// Metric: calls being bridged now.
pub const LIVE_CALLS: &str = "myriam_bridge_live_calls";
/// Metric: bridge sessions that fell back to the IVR, by reason.
pub const FAILURES: &str = "myriam_bridge_failures_total";

/// Read buffer of each call's sockets. Frames are a few hundred bytes (Twilio `media` messages
/// ~330, Vapi audio 160–743); a larger message grows it for as long as it takes to read.
pub const SOCKET_BUFFER: usize = 1024;

/// Largest Twilio Media Stream message accepted (Twilio's are under 1 KiB); a larger one ends the
/// stream instead of growing the call's memory.
pub const TWILIO_MAX_MESSAGE: usize = 64 * 1024;

/// Largest Vapi message accepted: about two minutes of µ-law audio in one frame.
pub const VAPI_MAX_MESSAGE: usize = 1024 * 1024;

/// How long Twilio has to send `start` after the socket opens.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits for Twilio's `start` frame (after `connected`).
async fn read_start(socket: &mut TwilioSocket) -> Option<StreamStart> {
    let wait = async {
        while let Some(frame) = socket.next().await {
            if let WsFrame::Text(text) = frame {
                match MediaFrame::parse(&text) {
                    Ok(MediaFrame::Start(start)) => return Some(start),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "malformed frame before start"),
                }
            }
        }
        None
    };
    tokio::time::timeout(START_TIMEOUT, wait)
        .await
        .ok()
        .flatten()
}

async fn record(state: &AppState, sid: &CallSid, edit: impl FnOnce(&mut CallUpdate)) {
    let mut update = CallUpdate::new(sid.clone());
    edit(&mut update);
    if let Err(error) = state.store.upsert_call(&update).await {
        tracing::error!(%error, "cannot record the bridge state of a call");
    }
}

/// Closes the Twilio stream so Twilio asks `/twilio/stream-ended`, which continues in the IVR.
async fn fall_back(
    state: &AppState,
    socket: TwilioSocket,
    sid: Option<&CallSid>,
    reason: &'static str,
) {
    metrics::counter!(FAILURES, "reason" => reason).increment(1);
    tracing::warn!(reason, "bridge unavailable; the call continues in the IVR");
    if let Some(sid) = sid {
        record(state, sid, |u| {
            u.mode = Some(ConversationMode::Ivr);
            u.mode_reason = Some(reason.to_owned());
        })
        .await;
    }
    let mut socket = socket;
    let _ = socket.send(WsFrame::Close).await;
}

/// The Twilio Media Stream socket of a call.
pub type TwilioSocket = WsConn<ServerIo>;

type VapiSocket = WsConn<ClientIo>;

/// Opens the Vapi call's socket (bearer auth, small buffers, no Nagle) before `deadline`.
async fn connect(
    vapi: &crate::vapi::client::VapiClient,
    url: &secrecy::SecretString,
    deadline: Instant,
) -> Option<VapiSocket> {
    let bearer = secrecy::SecretString::from(format!("Bearer {}", vapi.key().expose_secret()));
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500));
    let headers = [("Authorization", bearer.expose_secret())];
    let connecting = handshake::connect(
        url.expose_secret(),
        &headers,
        SOCKET_BUFFER,
        VAPI_MAX_MESSAGE,
    );
    match tokio::time::timeout(left, connecting).await {
        Ok(Ok(socket)) => Some(socket),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot open the Vapi call's socket");
            None
        }
        Err(_) => {
            tracing::warn!("opening the Vapi call's socket timed out");
            None
        }
    }
}

/// Runs one bridged call from the upgraded Twilio socket to its end.
pub async fn run(state: AppState, mut socket: TwilioSocket) {
    let Ok(permit) = state.call_permits.clone().try_acquire_owned() else {
        return fall_back(&state, socket, None, "capacity").await;
    };
    let Some(start) = read_start(&mut socket).await else {
        return fall_back(&state, socket, None, "no_start").await;
    };
    let sid = start
        .custom_parameters
        .get("call_sid")
        .or(start.call_sid.as_ref())
        .and_then(|s| CallSid::try_from(s.as_str()).ok());
    let lead_id = start
        .custom_parameters
        .get("lead_id")
        .and_then(|l| LeadId::try_from(l.as_str()).ok());
    let (Some(sid), Some(lead_id)) = (sid, lead_id) else {
        return fall_back(&state, socket, None, "bad_parameters").await;
    };
    let Some(vapi) = state.vapi.clone() else {
        return fall_back(&state, socket, Some(&sid), "vapi_not_configured").await;
    };
    let Ok(Some(lead)) = state.store.get_lead(lead_id).await else {
        return fall_back(&state, socket, Some(&sid), "unknown_lead").await;
    };
    let deadline = Instant::now() + crate::vapi::client::CREATE_CALL_DEADLINE;
    let context = CallContext {
        lead_id: lead.id.to_string(),
        call_sid: sid.to_string(),
        caller_number: lead.offered_phone.as_ref().map(|p| p.as_e164().to_owned()),
        language: lead.language.as_str().to_owned(),
    };
    let created = match vapi.create_call(&context).await {
        Ok(created) => created,
        Err(error) => {
            if let crate::vapi::client::CreateCallError::Rejected { status, message } = &error {
                // Vapi refusing (not timing out) is a configuration problem an operator must see.
                // Its message may quote what we sent, so it is scrubbed.
                tracing::error!(
                    status,
                    message = %crate::redact::scrub(message),
                    "Vapi refused to create the call; check VAPI_ASSISTANT_ID and VAPI_PRIVATE_KEY"
                );
            }
            return fall_back(&state, socket, Some(&sid), error.reason()).await;
        }
    };
    let Some(vapi_socket) = connect(&vapi, &created.websocket_url, deadline).await else {
        return fall_back(&state, socket, Some(&sid), "vapi_socket_failed").await;
    };
    record(&state, &sid, |u| {
        u.vapi_call_id = Some(created.id.clone());
        u.mode = Some(ConversationMode::Bridge);
    })
    .await;

    metrics::gauge!(LIVE_CALLS).increment(1.0);
    let hard_stop = state.lifecycle.hard_stop_token();
    let (ending, relayed) = relay(socket, vapi_socket, &start.stream_sid, &hard_stop).await;
    metrics::gauge!(LIVE_CALLS).decrement(1.0);
    tracing::info!(
        ending = ending.reason(),
        frames_up = relayed.frames_up,
        frames_down = relayed.frames_down,
        "bridged call ended"
    );
    match ending {
        Ending::VapiLost => {
            metrics::counter!(FAILURES, "reason" => "vapi_lost").increment(1);
            record(&state, &sid, |u| {
                u.mode = Some(ConversationMode::Ivr);
                u.mode_reason = Some("vapi_lost".to_owned());
            })
            .await;
        }
        Ending::AssistantEnded {
            reason: Some(reason),
        } => {
            record(&state, &sid, |u| u.ended_reason = Some(reason)).await;
        }
        Ending::AssistantEnded { reason: None } | Ending::CallerHungUp | Ending::Cancelled => {}
    }
    drop(permit);
}

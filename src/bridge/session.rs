//! One bridged call: the Twilio Media Stream socket, the Vapi call and its socket, the relay, and
//! what the call row records. Any failure before or during the call closes the Twilio stream, so
//! Twilio requests the `<Connect action>` (`/twilio/stream-ended`) and the IVR continues the lead at
//! its current step.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use secrecy::ExposeSecret;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::relay::{Ending, WsFrame, relay};
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
/// ~330, Vapi audio 160–743); a larger message takes several reads. The WebSocket library zeroes
/// this much before every read, and its default is 128 KiB.
pub const SOCKET_BUFFER: usize = 1024;

/// Largest Twilio Media Stream message accepted (Twilio's are under 1 KiB); a larger one ends the
/// stream instead of growing the call's memory.
pub const TWILIO_MAX_MESSAGE: usize = 64 * 1024;

/// Largest Vapi message accepted: about two minutes of µ-law audio in one frame.
pub const VAPI_MAX_MESSAGE: usize = 1024 * 1024;

/// How long Twilio has to send `start` after the socket opens.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// A WebSocket message type the relay can carry: converted in place, no adaptor futures.
trait WsMessage: Sized {
    /// `None` for control frames the WebSocket library answers itself (ping, pong).
    fn into_frame(self) -> Option<WsFrame>;
    fn from_frame(frame: WsFrame) -> Self;
}

impl WsMessage for Message {
    fn into_frame(self) -> Option<WsFrame> {
        match self {
            Message::Text(t) => Some(WsFrame::Text(t.as_str().to_owned())),
            Message::Binary(b) => Some(WsFrame::Binary(b)),
            Message::Close(_) => Some(WsFrame::Close),
            Message::Ping(_) | Message::Pong(_) => None,
        }
    }

    fn from_frame(frame: WsFrame) -> Self {
        match frame {
            WsFrame::Text(t) => Message::Text(t.into()),
            WsFrame::Binary(b) => Message::Binary(b),
            WsFrame::Close => Message::Close(None),
        }
    }
}

impl WsMessage for tungstenite::Message {
    fn into_frame(self) -> Option<WsFrame> {
        match self {
            tungstenite::Message::Text(t) => Some(WsFrame::Text(t.as_str().to_owned())),
            tungstenite::Message::Binary(b) => Some(WsFrame::Binary(b)),
            tungstenite::Message::Close(_) => Some(WsFrame::Close),
            _ => None,
        }
    }

    fn from_frame(frame: WsFrame) -> Self {
        match frame {
            WsFrame::Text(t) => tungstenite::Message::Text(t.into()),
            WsFrame::Binary(b) => tungstenite::Message::Binary(b),
            WsFrame::Close => tungstenite::Message::Close(None),
        }
    }
}

/// One leg of the bridge: a WebSocket (axum's for Twilio, tokio-tungstenite's for Vapi) seen as a
/// stream and sink of [`WsFrame`]s. A read error ends the stream: the WebSocket libraries end it
/// after an error anyway.
struct Leg<S>(S);

impl<S, M, E> Stream for Leg<S>
where
    S: Stream<Item = Result<M, E>> + Unpin,
    M: WsMessage,
{
    type Item = WsFrame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WsFrame>> {
        loop {
            match ready!(self.0.poll_next_unpin(cx)) {
                Some(Ok(message)) => {
                    if let Some(frame) = message.into_frame() {
                        return Poll::Ready(Some(frame));
                    }
                }
                Some(Err(_)) | None => return Poll::Ready(None),
            }
        }
    }
}

impl<S, M, E> Sink<WsFrame> for Leg<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M> + Unpin,
    M: WsMessage,
{
    type Error = S::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: WsFrame) -> Result<(), S::Error> {
        self.0.start_send_unpin(M::from_frame(frame))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_close_unpin(cx)
    }
}

/// Waits for Twilio's `start` frame (after `connected`).
async fn read_start(socket: &mut WebSocket) -> Option<StreamStart> {
    let wait = async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
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
    socket: WebSocket,
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
    let _ = socket.send(Message::Close(None)).await;
}

type VapiSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the Vapi call's socket (bearer auth, small buffers, no Nagle) before `deadline`.
async fn connect(
    vapi: &crate::vapi::client::VapiClient,
    url: &secrecy::SecretString,
    deadline: Instant,
) -> Option<VapiSocket> {
    let mut request = url.expose_secret().into_client_request().ok()?;
    if let Ok(auth) = format!("Bearer {}", vapi.key().expose_secret()).parse() {
        request.headers_mut().insert("authorization", auth);
    }
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500));
    let config = tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(VAPI_MAX_MESSAGE))
        .max_frame_size(Some(VAPI_MAX_MESSAGE));
    let (socket, _) = tokio::time::timeout(
        left,
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    )
    .await
    .ok()?
    .ok()?;
    Some(socket)
}

/// Runs one bridged call from the upgraded Twilio socket to its end.
pub async fn run(state: AppState, mut socket: WebSocket) {
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
    let (ending, relayed) =
        relay(Leg(socket), Leg(vapi_socket), &start.stream_sid, &hard_stop).await;
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

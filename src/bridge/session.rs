//! One bridged call: the Twilio Media Stream socket, the Vapi call and its socket, the relay, and
//! what the call row records. Any failure before or during the call closes the Twilio stream, so
//! Twilio requests the `<Connect action>` (`/twilio/stream-ended`) and the IVR continues the lead at
//! its current step.

use std::sync::{Arc, OnceLock};

use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use axum::extract::ws::WebSocket;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_rustls::rustls;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::leg::{self, Fault, Leg};
use super::relay::{Ending, WsFrame, relay};
use crate::calls::BridgeCapacity;
use crate::config::Settings;
use crate::domain::{CallSid, ConversationMode};
use crate::environment::Environment;
use crate::lifecycle::Lifecycle;
use crate::metrics::names;
use crate::store::{AnyStore, CallUpdate, Store as _};
use crate::twilio::media::{MediaFrame, StreamStart};
use crate::twilio::stream_token::{self, StreamClaim, StreamTokens};
use crate::vapi::client::{CallContext, CreateCallError, VapiClient};

/// What a bridged call needs from the application, and nothing more.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub store: AnyStore,
    /// Set when Vapi is configured (`VAPI_PRIVATE_KEY` and `VAPI_ASSISTANT_ID`).
    pub vapi: Option<VapiClient>,
    /// Issues and checks the token that ties a Media Stream to its call.
    pub stream_tokens: StreamTokens,
    /// One permit per bridged call (`MAX_CONCURRENT_CALLS`).
    pub call_permits: Arc<Semaphore>,
    /// `TWILIO_ACCOUNT_SID`: a stream from another account is refused.
    pub account_sid: Option<String>,
    /// Production: Vapi's socket only over `wss://`.
    pub require_tls: bool,
    pub lifecycle: Lifecycle,
}

impl Bridge {
    pub fn new(settings: &Settings, store: AnyStore, lifecycle: Lifecycle) -> Self {
        let vapi = match (&settings.vapi.private_key, &settings.vapi.assistant_id) {
            (Some(key), Some(assistant)) => Some(VapiClient::new(
                settings.vapi.base_url.as_str(),
                key.clone(),
                assistant.clone(),
                crate::vapi::client::CREATE_CALL_DEADLINE,
            )),
            _ => None,
        };
        Self {
            store,
            vapi,
            stream_tokens: StreamTokens::new(settings.twilio.auth_token.as_ref()),
            call_permits: Arc::new(Semaphore::new(settings.max_concurrent_calls)),
            account_sid: settings.twilio.account_sid.clone(),
            require_tls: settings.environment == Environment::Production,
            lifecycle,
        }
    }

    /// What decides whether a new call is bridged, as of now.
    pub fn capacity(&self) -> BridgeCapacity {
        BridgeCapacity {
            vapi_configured: self.vapi.is_some(),
            draining: self.lifecycle.is_draining(),
            permit_free: self.call_permits.available_permits() > 0,
        }
    }
}

/// How long Twilio has to send `start` after the socket opens.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Most frames read while waiting for `start` (Twilio sends `connected`, then `start`).
const MAX_FRAMES_BEFORE_START: usize = 8;

/// The Twilio Media Stream socket of a call.
pub type TwilioSocket = Leg<WebSocket>;

/// The Vapi call's socket.
pub type VapiSocket = Leg<WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>>;

/// Waits for Twilio's `start` frame (after `connected`), within [`START_TIMEOUT`] and a few frames.
async fn read_start(socket: &mut TwilioSocket) -> Option<StreamStart> {
    let wait = async {
        let mut frames = 0;
        while let Some(frame) = socket.next().await {
            frames += 1;
            if let WsFrame::Text(text) = frame {
                match MediaFrame::parse(&text) {
                    Ok(MediaFrame::Start(start)) => return Some(start),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "malformed frame before start"),
                }
            }
            if frames >= MAX_FRAMES_BEFORE_START {
                break;
            }
        }
        None
    };
    tokio::time::timeout(START_TIMEOUT, wait)
        .await
        .ok()
        .flatten()
}

async fn record(state: &Bridge, sid: &CallSid, edit: impl FnOnce(&mut CallUpdate)) {
    let mut update = CallUpdate::new(sid.clone());
    edit(&mut update);
    if let Err(error) = state.store.upsert_call(&update).await {
        tracing::error!(%error, "cannot record the bridge state of a call");
    }
}

/// Counts a peer cut off for breaking a limit.
fn count_fault(leg_name: &'static str, fault: Option<Fault>) {
    if let Some(fault) = fault {
        metrics::counter!(names::MEDIA_SOCKET_FAULTS, "leg" => leg_name, "fault" => fault.label())
            .increment(1);
        tracing::warn!(
            leg = leg_name,
            code = fault.code,
            reason = fault.reason,
            "WebSocket peer cut off"
        );
    }
}

/// Closes a stream that is not admitted: no Vapi call, no row written, no permit taken. Twilio
/// still asks `/twilio/stream-ended`, which continues a genuine call in the IVR.
async fn refuse(mut socket: TwilioSocket, reason: &'static str) {
    count_fault("twilio", socket.fault());
    metrics::counter!(names::MEDIA_STREAM_REFUSALS, "reason" => reason).increment(1);
    tracing::warn!(reason, "Media Stream refused");
    if socket.fault().is_none() {
        socket.set_fault(Fault::REFUSED);
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(WsFrame::Close)).await;
}

/// How long the last frame to a refused or failed stream may take.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Closes the Twilio stream so Twilio asks `/twilio/stream-ended`, which continues in the IVR.
async fn fall_back(state: &Bridge, mut socket: TwilioSocket, sid: &CallSid, reason: &'static str) {
    metrics::counter!(names::BRIDGE_FAILURES, "reason" => reason).increment(1);
    tracing::warn!(reason, "bridge unavailable; the call continues in the IVR");
    record(state, sid, |u| {
        u.mode = Some(ConversationMode::Ivr);
        u.mode_reason = Some(reason.to_owned());
    })
    .await;
    let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(WsFrame::Close)).await;
}

/// Call statuses after which no stream can belong to the call.
const ENDED_STATUSES: &[&str] = &["completed", "busy", "failed", "no-answer", "canceled"];

/// Admits a stream only when its token is genuine, unexpired and unused, it names the call the
/// token was issued for, it comes from our account, and that call is waiting for a bridge. The
/// single use is recorded in the store (one key per call), so it holds across instances.
async fn admit(state: &Bridge, start: &StreamStart) -> Result<StreamClaim, &'static str> {
    let token = start
        .custom_parameters
        .get(stream_token::PARAMETER)
        .ok_or("missing_token")?;
    let claim = state
        .stream_tokens
        .verify(token, stream_token::now())
        .map_err(stream_token::TokenError::reason)?;
    if start.call_sid.as_deref() != Some(claim.call_sid.as_str()) {
        return Err("call_mismatch");
    }
    let claimed = [
        (stream_token::CALL_SID_PARAMETER, claim.call_sid.to_string()),
        (stream_token::LEAD_ID_PARAMETER, claim.lead_id.to_string()),
    ];
    for (name, value) in claimed {
        if start
            .custom_parameters
            .get(name)
            .is_some_and(|v| *v != value)
        {
            return Err("call_mismatch");
        }
    }
    if let Some(ours) = &state.account_sid {
        if start.account_sid.as_deref() != Some(ours.as_str()) {
            return Err("wrong_account");
        }
    }
    let call = state
        .store
        .get_call(&claim.call_sid)
        .await
        .map_err(|_| "store_unavailable")?
        .ok_or("not_waiting")?
        .fields;
    let waiting = call.lead_id == Some(claim.lead_id)
        && call.mode == Some(ConversationMode::Bridge)
        && call.vapi_call_id.is_none()
        && call.mode_reason.is_none()
        && !call
            .status
            .as_deref()
            .is_some_and(|s| ENDED_STATUSES.contains(&s));
    if !waiting {
        return Err("not_waiting");
    }
    let key = format!("media-stream:{}", claim.call_sid);
    // Confirmed by the shared store, or refused: a token must not open two streams on two
    // instances while Supabase is away (the caller then continues in the IVR).
    match state.store.claim_once(&key).await {
        Ok(true) => Ok(claim),
        Ok(false) => Err("already_used"),
        Err(_) => Err("store_unavailable"),
    }
}

/// The TLS client configuration of the Vapi socket: the webpki root certificates.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// Opens a Vapi call's socket with tokio-tungstenite: `request` from
/// [`VapiClient::socket_request`], the Vapi leg's limits, no Nagle, `wss://` checked against
/// `tls` (the webpki roots in production).
pub async fn open_vapi_socket(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    tls: Arc<rustls::ClientConfig>,
) -> Result<VapiSocket, tokio_tungstenite::tungstenite::Error> {
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(leg::config(leg::VAPI_MAX_MESSAGE)),
        true,
        Some(Connector::Rustls(tls)),
    )
    .await?;
    Ok(Leg::new(socket))
}

/// Why the Vapi socket could not be opened: a bounded reason.
async fn connect(
    vapi: &VapiClient,
    url: &secrecy::SecretString,
    require_tls: bool,
    deadline: Instant,
) -> Result<VapiSocket, &'static str> {
    let request = vapi.socket_request(url, require_tls).map_err(|error| {
        tracing::error!(%error, "Vapi's socket URL is not used");
        "vapi_untrusted_socket_url"
    })?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500));
    match tokio::time::timeout(left, open_vapi_socket(request, tls_config())).await {
        Ok(Ok(socket)) => Ok(socket),
        Ok(Err(error)) => {
            // tungstenite's errors do not quote the URL (which carries Vapi's call token).
            tracing::warn!(error = %crate::redact::scrub(&error.to_string()), "cannot open the Vapi call's socket");
            Err("vapi_socket_failed")
        }
        Err(_) => {
            tracing::warn!("opening the Vapi call's socket timed out");
            Err("vapi_socket_failed")
        }
    }
}

/// Logs why Vapi would not create the call, at the level its cause deserves.
fn log_create_error(error: &CreateCallError) {
    // Vapi's message may quote what we sent, so it is scrubbed.
    match error {
        CreateCallError::Rejected { status, message } => tracing::error!(
            status,
            message = %crate::redact::scrub(message),
            "Vapi refused to create the call (a configuration problem): check VAPI_ASSISTANT_ID and VAPI_PRIVATE_KEY"
        ),
        CreateCallError::Outage { status, message } => tracing::error!(
            status,
            message = %crate::redact::scrub(message),
            "Vapi failed to create the call (an outage on Vapi's side); calls go to the IVR meanwhile"
        ),
        _ => {}
    }
}

/// A call ready to relay: both sockets open, the call admitted and recorded, its permit held.
struct Ready {
    socket: TwilioSocket,
    vapi_socket: VapiSocket,
    stream_sid: String,
    sid: CallSid,
    permit: OwnedSemaphorePermit,
}

/// Everything before the relay: `start`, admission, the permit, the Vapi call and its socket. `None`
/// when the stream was refused or fell back to the IVR (the Twilio stream is closed then).
async fn prepare(state: &Bridge, socket: WebSocket) -> Option<Ready> {
    let mut socket = Leg::new(socket);
    let Some(start) = read_start(&mut socket).await else {
        refuse(socket, "no_start").await;
        return None;
    };
    let claim = match admit(state, &start).await {
        Ok(claim) => claim,
        Err(reason) => {
            refuse(socket, reason).await;
            return None;
        }
    };
    let sid = claim.call_sid;
    crate::telemetry::set_call_context(Some(sid.as_str()), Some(claim.lead_id));
    // The permit is taken only for an admitted stream: a stranger's socket never holds one.
    let Ok(permit) = state.call_permits.clone().try_acquire_owned() else {
        fall_back(state, socket, &sid, "capacity").await;
        return None;
    };
    let Some(vapi) = state.vapi.clone() else {
        fall_back(state, socket, &sid, "vapi_not_configured").await;
        return None;
    };
    let Ok(Some(lead)) = state.store.get_lead(claim.lead_id).await else {
        fall_back(state, socket, &sid, "unknown_lead").await;
        return None;
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
            log_create_error(&error);
            fall_back(state, socket, &sid, error.reason()).await;
            return None;
        }
    };
    let vapi_socket =
        match connect(&vapi, &created.websocket_url, state.require_tls, deadline).await {
            Ok(vapi_socket) => vapi_socket,
            Err(reason) => {
                fall_back(state, socket, &sid, reason).await;
                return None;
            }
        };
    record(state, &sid, |u| {
        u.vapi_call_id = Some(created.id.clone());
        u.mode = Some(ConversationMode::Bridge);
    })
    .await;
    Some(Ready {
        socket,
        vapi_socket,
        stream_sid: start.stream_sid,
        sid,
        permit,
    })
}

/// What the call row records of how the relay ended.
async fn record_ending(state: &Bridge, sid: &CallSid, ending: Ending) {
    match ending {
        Ending::VapiLost => {
            metrics::counter!(names::BRIDGE_FAILURES, "reason" => "vapi_lost").increment(1);
            record(state, sid, |u| {
                u.mode = Some(ConversationMode::Ivr);
                u.mode_reason = Some("vapi_lost".to_owned());
            })
            .await;
        }
        Ending::AssistantEnded {
            reason: Some(reason),
        } => {
            record(state, sid, |u| u.ended_reason = Some(reason)).await;
        }
        Ending::AssistantEnded { reason: None } | Ending::CallerHungUp | Ending::Cancelled => {}
    }
}

/// Runs one bridged call from the upgraded Twilio socket to its end.
///
/// The set-up (store reads, Vapi's REST API, the WebSocket and TLS handshakes) and the final record
/// run in boxed futures: they are large, and inline they would size every call's task for its
/// whole life, when only the relay's state is needed while the call lasts (measured in
/// `docs/PERFORMANCE.md`).
pub async fn run(state: Bridge, socket: WebSocket) {
    let Some(Ready {
        mut socket,
        mut vapi_socket,
        stream_sid,
        sid,
        permit,
    }) = Box::pin(prepare(&state, socket)).await
    else {
        return;
    };
    metrics::gauge!(names::BRIDGE_LIVE_CALLS).increment(1.0);
    let hard_stop = state.lifecycle.hard_stop_token();
    let (ending, relayed) = relay(&mut socket, &mut vapi_socket, &stream_sid, &hard_stop).await;
    metrics::gauge!(names::BRIDGE_LIVE_CALLS).decrement(1.0);
    count_fault("twilio", socket.fault());
    count_fault("vapi", vapi_socket.fault());
    tracing::info!(
        ending = ending.reason(),
        frames_up = relayed.frames_up,
        frames_down = relayed.frames_down,
        "bridged call ended"
    );
    Box::pin(record_ending(&state, &sid, ending)).await;
    drop((socket, vapi_socket, permit));
}

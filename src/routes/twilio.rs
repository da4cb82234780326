//! Twilio webhooks. Each handler turns the verified form into a domain type on its first line and
//! delegates to [`crate::ivr`].

use crate::{redact, telemetry};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::config::CallMode;
use crate::domain::CallSid;
use crate::ivr::{self, BridgeTarget, GatherResult, IncomingCall, StatusCallback};
use crate::startup::AppState;
use crate::store::StoreError;
use crate::twilio::twiml::TwiML;
use crate::twilio::{TwilioForm, TwilioRejection};

/// A handler failure: a rejection (4xx, plain text) or a store failure (opaque 500, logged once).
#[derive(Debug)]
pub enum TwilioError {
    Rejected(TwilioRejection),
    Store(StoreError),
}

impl From<TwilioRejection> for TwilioError {
    fn from(r: TwilioRejection) -> Self {
        TwilioError::Rejected(r)
    }
}

impl From<StoreError> for TwilioError {
    fn from(e: StoreError) -> Self {
        TwilioError::Store(e)
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        match self {
            TwilioError::Rejected(r) => r.into_response(),
            TwilioError::Store(error) => {
                tracing::error!(%error, "store failure while answering Twilio");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
            }
        }
    }
}

fn call_sid(form: &TwilioForm) -> Result<CallSid, TwilioRejection> {
    let raw = form
        .get("CallSid")
        .ok_or(TwilioRejection::BadRequest("missing CallSid"))?;
    CallSid::try_from(raw).map_err(|_| TwilioRejection::BadRequest("malformed CallSid"))
}

impl TryFrom<&TwilioForm> for IncomingCall {
    type Error = TwilioRejection;

    fn try_from(form: &TwilioForm) -> Result<Self, Self::Error> {
        let owned = |name: &str| form.get(name).map(str::to_owned);
        Ok(IncomingCall {
            call_sid: call_sid(form)?,
            account_sid: owned("AccountSid")
                .ok_or(TwilioRejection::BadRequest("missing AccountSid"))?,
            from: owned("From"),
            to: owned("To"),
            call_status: owned("CallStatus"),
            direction: owned("Direction"),
        })
    }
}

impl TryFrom<&TwilioForm> for GatherResult {
    type Error = TwilioRejection;

    fn try_from(form: &TwilioForm) -> Result<Self, Self::Error> {
        Ok(GatherResult {
            call_sid: call_sid(form)?,
            speech: form.get("SpeechResult").map(str::to_owned),
            digits: form.get("Digits").map(str::to_owned),
            turn: form.query_value("turn").and_then(|t| t.parse().ok()),
            silence: form
                .query_value("silence")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        })
    }
}

impl TryFrom<&TwilioForm> for StatusCallback {
    type Error = TwilioRejection;

    fn try_from(form: &TwilioForm) -> Result<Self, Self::Error> {
        Ok(StatusCallback {
            call_sid: call_sid(form)?,
            call_status: form
                .get("CallStatus")
                .ok_or(TwilioRejection::BadRequest("missing CallStatus"))?
                .to_owned(),
            duration: form
                .get("CallDuration")
                .or_else(|| form.get("Duration"))
                .and_then(|d| d.parse().ok()),
            recording_url: form.get("RecordingUrl").map(str::to_owned),
            sequence_number: form.get("SequenceNumber").map(str::to_owned),
        })
    }
}

/// Bridge to Vapi when `CALL_MODE` allows it, Vapi and `PUBLIC_BASE_URL` are configured, the
/// instance is not draining and a call permit is free; otherwise the IVR answers.
fn bridge_target(state: &AppState) -> Option<BridgeTarget> {
    if state.settings.call_mode == CallMode::Ivr {
        return None;
    }
    let base = state.settings.public_base_url.as_ref()?;
    state.vapi.as_ref()?;
    if state.lifecycle.is_draining() || state.call_permits.available_permits() == 0 {
        return None;
    }
    Some(BridgeTarget {
        stream_url: base.websocket("/twilio/media"),
        action_url: base.join("/twilio/stream-ended"),
        tokens: state.stream_tokens.clone(),
    })
}

/// `POST /twilio/voice`: an incoming call.
pub async fn voice(State(state): State<AppState>, form: TwilioForm) -> Result<TwiML, TwilioError> {
    let call = IncomingCall::try_from(&form)?;
    telemetry::set_call_context(Some(call.call_sid.as_str()), None);
    tracing::info!(
        call_sid = %call.call_sid,
        from = %redact::Phone(call.from.as_deref().unwrap_or_default()),
        to = %redact::Phone(call.to.as_deref().unwrap_or_default()),
        "incoming call"
    );
    if let Some(ours) = &state.settings.twilio.account_sid {
        if &call.account_sid != ours {
            return Err(TwilioRejection::WrongAccount.into());
        }
    }
    let _guard = state.locks.lock(&format!("call:{}", call.call_sid)).await;
    let bridge = bridge_target(&state);
    Ok(ivr::incoming_call(&state.store, &state.settings, &call, bridge.as_ref()).await?)
}

/// `POST /twilio/gather`: the caller's answer (`SpeechResult`, or `Digits`).
pub async fn gather(State(state): State<AppState>, form: TwilioForm) -> Result<TwiML, TwilioError> {
    let result = GatherResult::try_from(&form)?;
    telemetry::set_call_context(Some(result.call_sid.as_str()), None);
    let _guard = state.locks.lock(&format!("call:{}", result.call_sid)).await;
    Ok(ivr::gather(&state.store, &state.settings, &state.locks, &result).await?)
}

/// `POST /twilio/status`: call status callbacks. Answers 204.
pub async fn status(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<StatusCode, TwilioError> {
    let callback = StatusCallback::try_from(&form)?;
    telemetry::set_call_context(Some(callback.call_sid.as_str()), None);
    tracing::info!(call_sid = %callback.call_sid, status = %callback.call_status, "call status");
    let _guard = state
        .locks
        .lock(&format!("call:{}", callback.call_sid))
        .await;
    ivr::status(&state.store, &state.locks, &callback).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /twilio/stream-ended`: the `<Connect action>` after a Media Stream closes.
pub async fn stream_ended(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<TwiML, TwilioError> {
    let sid = call_sid(&form)?;
    telemetry::set_call_context(Some(sid.as_str()), None);
    let _guard = state.locks.lock(&format!("call:{sid}")).await;
    Ok(ivr::stream_ended(&state.store, &state.settings, &sid, "stream_ended").await?)
}

//! Twilio webhooks. Each handler turns the verified form into a domain type on its first line and
//! delegates to [`crate::ivr`].

use axum::extract::State;
use axum::http::StatusCode;

use super::error::TwilioError;
use crate::calls;
use crate::domain::CallSid;
use crate::ivr::{self, GatherAction, GatherResult, IncomingCall, StatusCallback};
use crate::state::AppState;
use crate::twilio::twiml::TwiML;
use crate::twilio::{TwilioForm, TwilioRejection};
use crate::{redact, telemetry};

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
            action: GatherAction::from_query(|name| form.query_value(name)),
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
    let bridge = calls::bridge_target(
        &state.settings,
        state.bridge.capacity(),
        &state.bridge.stream_tokens,
    );
    Ok(ivr::incoming_call(&state.calls, &state.settings, &call, bridge.as_ref()).await?)
}

/// `POST /twilio/gather`: the caller's answer (`SpeechResult`, or `Digits`).
pub async fn gather(State(state): State<AppState>, form: TwilioForm) -> Result<TwiML, TwilioError> {
    let result = GatherResult::try_from(&form)?;
    telemetry::set_call_context(Some(result.call_sid.as_str()), None);
    Ok(ivr::gather(&state.calls, &state.settings, &result).await?)
}

/// `POST /twilio/status`: call status callbacks. Answers 204.
pub async fn status(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<StatusCode, TwilioError> {
    let callback = StatusCallback::try_from(&form)?;
    telemetry::set_call_context(Some(callback.call_sid.as_str()), None);
    tracing::info!(call_sid = %callback.call_sid, status = %callback.call_status, "call status");
    ivr::status(&state.calls, &callback).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /twilio/stream-ended`: the `<Connect action>` after a Media Stream closes.
pub async fn stream_ended(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<TwiML, TwilioError> {
    let sid = call_sid(&form)?;
    telemetry::set_call_context(Some(sid.as_str()), None);
    Ok(ivr::stream_ended(&state.calls, &state.settings, &sid, "stream_ended").await?)
}

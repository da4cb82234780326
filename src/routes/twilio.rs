//! Twilio webhooks. Each handler turns the verified form into a domain type on its first line and
//! delegates to [`crate::ivr`].

use axum::extract::State;
use axum::http::StatusCode;

use super::error::TwilioError;
use crate::domain::{CallSid, LeadId};
use crate::ivr::{
    self, DialResult, GatherAction, GatherResult, IncomingCall, RecordingResult, StatusCallback,
};
use crate::state::AppState;
use crate::store::Alerts as _;
use crate::twilio::twiml::TwiML;
use crate::twilio::{TwilioForm, TwilioRejection};
use crate::{callback, calls};
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
            // A held answer comes back through `<Redirect>`, carried in the query.
            speech: form
                .get("SpeechResult")
                .or_else(|| form.query_value("speech"))
                .map(str::to_owned),
            digits: form
                .get("Digits")
                .or_else(|| form.query_value("digits"))
                .map(str::to_owned),
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

impl TryFrom<&TwilioForm> for DialResult {
    type Error = TwilioRejection;

    fn try_from(form: &TwilioForm) -> Result<Self, Self::Error> {
        Ok(DialResult {
            call_sid: call_sid(form)?,
            dial_call_status: form
                .get("DialCallStatus")
                .ok_or(TwilioRejection::BadRequest("missing DialCallStatus"))?
                .to_owned(),
            bridged: form.get("DialBridged").map(|b| b == "true"),
            duration: form.get("DialCallDuration").and_then(|d| d.parse().ok()),
        })
    }
}

impl TryFrom<&TwilioForm> for RecordingResult {
    type Error = TwilioRejection;

    fn try_from(form: &TwilioForm) -> Result<Self, Self::Error> {
        let owned = |name: &str| form.get(name).map(str::to_owned);
        Ok(RecordingResult {
            call_sid: call_sid(form)?,
            recording_sid: owned("RecordingSid"),
            recording_url: owned("RecordingUrl"),
            duration: form.get("RecordingDuration").and_then(|d| d.parse().ok()),
            status: owned("RecordingStatus"),
        })
    }
}

/// A message status callback (`POST /twilio/sms-status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsStatus {
    pub message_sid: String,
    pub status: String,
    pub error_code: Option<i64>,
}

impl TryFrom<&TwilioForm> for SmsStatus {
    type Error = TwilioRejection;

    fn try_from(form: &TwilioForm) -> Result<Self, Self::Error> {
        let sid = form
            .get("MessageSid")
            .or_else(|| form.get("SmsSid"))
            .ok_or(TwilioRejection::BadRequest("missing MessageSid"))?;
        if !(sid.len() == 34 && (sid.starts_with("SM") || sid.starts_with("MM"))) {
            return Err(TwilioRejection::BadRequest("malformed MessageSid"));
        }
        Ok(SmsStatus {
            message_sid: sid.to_owned(),
            status: form
                .get("MessageStatus")
                .or_else(|| form.get("SmsStatus"))
                .ok_or(TwilioRejection::BadRequest("missing MessageStatus"))?
                .to_owned(),
            error_code: form.get("ErrorCode").and_then(|c| c.parse().ok()),
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

/// `POST /twilio/dial-done`: the `<Dial action>` of a transfer to the office line.
pub async fn dial_done(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<TwiML, TwilioError> {
    let result = DialResult::try_from(&form)?;
    telemetry::set_call_context(Some(result.call_sid.as_str()), None);
    Ok(ivr::dial_done(&state.calls, &state.settings, &result).await?)
}

/// `POST /twilio/voicemail`: the `<Record action>` of a voicemail.
pub async fn voicemail(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<TwiML, TwilioError> {
    let result = RecordingResult::try_from(&form)?;
    telemetry::set_call_context(Some(result.call_sid.as_str()), None);
    Ok(ivr::voicemail_done(&state.calls, &state.settings, &result).await?)
}

/// `POST /twilio/recording-status`: a voicemail's recording is ready, or was empty. Answers 204.
pub async fn recording_status(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<StatusCode, TwilioError> {
    let result = RecordingResult::try_from(&form)?;
    telemetry::set_call_context(Some(result.call_sid.as_str()), None);
    tracing::info!(call_sid = %result.call_sid, status = ?result.status, "voicemail recording");
    ivr::recording_status(&state.calls, &result).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /twilio/handoff`: where a bridged call is redirected when the assistant hands the caller
/// to a person.
pub async fn handoff(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<TwiML, TwilioError> {
    let sid = call_sid(&form)?;
    telemetry::set_call_context(Some(sid.as_str()), None);
    Ok(ivr::handoff(&state.calls, &state.settings, &sid).await?)
}

/// `POST /twilio/sms-status`: an SMS alert's delivery status (forward only). Answers 204.
pub async fn sms_status(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<StatusCode, TwilioError> {
    let status = SmsStatus::try_from(&form)?;
    let recorded = state
        .store
        .record_delivery(&status.message_sid, &status.status, status.error_code)
        .await?;
    tracing::info!(
        message_sid = %status.message_sid,
        status = %status.status,
        error_code = ?status.error_code,
        recorded,
        "SMS alert status"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// A console callback's step: the call and the lead its signed URL names (`?lead=`).
fn callback_step(form: &TwilioForm) -> Result<(CallSid, LeadId), TwilioRejection> {
    let sid = call_sid(form)?;
    let lead = form
        .query_value("lead")
        .and_then(|l| LeadId::try_from(l).ok())
        .ok_or(TwilioRejection::BadRequest("missing or malformed lead"))?;
    Ok((sid, lead))
}

fn our_account(state: &AppState, form: &TwilioForm) -> Result<(), TwilioRejection> {
    match (&state.settings.twilio.account_sid, form.get("AccountSid")) {
        (Some(ours), Some(theirs)) if ours != theirs => Err(TwilioRejection::WrongAccount),
        _ => Ok(()),
    }
}

/// `POST /twilio/callback/answer?lead=…`: the operator answered a console callback.
pub async fn callback_answer(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<TwiML, TwilioError> {
    our_account(&state, &form)?;
    let (sid, lead) = callback_step(&form)?;
    telemetry::set_call_context(Some(sid.as_str()), Some(lead));
    Ok(callback::answer(&state.store, &state.settings, &sid, lead).await?)
}

/// `POST /twilio/callback/press?lead=…`: the operator's key (or none: the timeout).
pub async fn callback_press(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<TwiML, TwilioError> {
    our_account(&state, &form)?;
    let (sid, lead) = callback_step(&form)?;
    telemetry::set_call_context(Some(sid.as_str()), Some(lead));
    Ok(callback::press(
        &state.store,
        &state.settings,
        &sid,
        lead,
        form.get("Digits"),
    )
    .await?)
}

/// `POST /twilio/callback/dial?lead=…`: the `<Dial action>` of a callback (`DialCallStatus`).
pub async fn callback_dial(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<TwiML, TwilioError> {
    our_account(&state, &form)?;
    let (sid, lead) = callback_step(&form)?;
    let result = DialResult::try_from(&form)?;
    Ok(callback::dial_done(
        &state.store,
        &state.settings,
        &sid,
        lead,
        result.outcome(),
        result.duration,
    )
    .await?)
}

/// `POST /twilio/callback/status?lead=…`: the callback's status callbacks. Answers 204.
pub async fn callback_status(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<StatusCode, TwilioError> {
    our_account(&state, &form)?;
    let (sid, lead) = callback_step(&form)?;
    let status = StatusCallback::try_from(&form)?;
    tracing::info!(call_sid = %sid, status = %status.call_status, "callback status");
    callback::status(
        &state.store,
        &sid,
        lead,
        &status.call_status,
        status.duration,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

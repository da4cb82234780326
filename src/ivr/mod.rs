//! The speech IVR: the qualification machine spoken through TwiML `<Gather>` and `<Say>`.
//!
//! Idempotent by construction: every `<Gather action>` carries the conversation length it was
//! rendered at (`turn`) and the silences so far (`silence`). A request whose `turn` is not the
//! lead's current conversation length is a retry (or late): nothing is applied and the current
//! state is rendered again, which is exactly what was answered the first time. So a retried webhook
//! never advances the call twice.

mod render;

pub use render::{GatherAction, render_current};
use render::{ask, connect, goodbye};

use crate::calls::{BridgeTarget, Calls, Change, NewCall, StatusReport, is_terminal};
use crate::config::Settings;
use crate::domain::{CallSid, ConversationMode, LeadStatus};
use crate::metrics::Progress;
use crate::qualification::{Field, Lead, Turn, machine, prompts};
use crate::redact;
use crate::store::{CallUpdate, Store as _, StoreError};
use crate::twilio::twiml::{TwiML, Verb};

/// Silences re-prompted before Myriam says goodbye.
pub const MAX_SILENCES: u32 = 2;

/// What an incoming call tells us (`POST /twilio/voice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub call_sid: CallSid,
    pub account_sid: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub call_status: Option<String>,
    pub direction: Option<String>,
}

fn myriam_says(lead: &mut Lead, text: String) {
    let field = lead.current_field();
    lead.conversation.push(Turn::myriam(field, text));
}

/// `POST /twilio/voice`: a new call gets a lead and either the bridge (`<Connect>`) or the IVR's
/// first question; a retry gets the same TwiML.
pub async fn incoming_call(
    calls: &Calls,
    settings: &Settings,
    call: &IncomingCall,
    bridge: Option<&BridgeTarget>,
) -> Result<TwiML, StoreError> {
    let _call_lock = calls.lock_call(&call.call_sid).await;
    let store = calls.store();
    let lead = if let Some(lead) = store.find_lead_by_call(&call.call_sid).await? {
        lead
    } else {
        let new = NewCall {
            call_sid: Some(call.call_sid.clone()),
            from: call.from.clone(),
            to: call.to.clone(),
            direction: call.direction.clone(),
            status: call.call_status.clone(),
            mode: Some(if bridge.is_some() {
                ConversationMode::Bridge
            } else {
                ConversationMode::Ivr
            }),
            vapi_call_id: None,
        };
        let lead = calls.start(&new).await?;
        if bridge.is_some() {
            // Read back for the stored creation time the stream token counts from.
            store.get_lead(lead.id).await?.unwrap_or(lead)
        } else {
            lead
        }
    };
    Ok(match bridge {
        Some(target) if !lead.status.is_final() => connect(&lead, &call.call_sid, target),
        _ => render_current(&lead, settings),
    })
}

/// A `<Gather>` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherResult {
    pub call_sid: CallSid,
    pub speech: Option<String>,
    pub digits: Option<String>,
    /// What the action URL was rendered with.
    pub action: GatherAction,
}

/// `POST /twilio/gather`: applies the answer once and says what comes next.
pub async fn gather(
    calls: &Calls,
    settings: &Settings,
    result: &GatherResult,
) -> Result<TwiML, StoreError> {
    let _call_lock = calls.lock_call(&result.call_sid).await;
    let Some(found) = calls.store().find_lead_by_call(&result.call_sid).await? else {
        // A call we have no record of: start a fresh qualification instead of failing the caller.
        let new = NewCall {
            call_sid: Some(result.call_sid.clone()),
            status: Some("in-progress".to_owned()),
            mode: Some(ConversationMode::Ivr),
            ..NewCall::default()
        };
        let lead = calls.start(&new).await?;
        return Ok(render_current(&lead, settings));
    };
    crate::telemetry::set_call_context(Some(result.call_sid.as_str()), Some(found.id));
    calls
        .change_lead(found, |lead| answer(lead, settings, result))
        .await
}

/// Applies one `<Gather>` result to the freshest lead: a retry changes nothing, a silence is
/// re-prompted (twice, then a goodbye), an answer goes through the qualification machine.
fn answer(lead: &mut Lead, settings: &Settings, result: &GatherResult) -> Change<TwiML> {
    if lead.status.is_final() || result.action.turn != Some(lead.conversation.len()) {
        // Retried, late or forged: apply nothing, answer what stands.
        return Change::new(render_current(lead, settings));
    }
    let answer = result
        .speech
        .as_deref()
        .or(result.digits.as_deref())
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let Some(answer) = answer else {
        let silence = result.action.silence + 1;
        if silence > MAX_SILENCES {
            lead.status = LeadStatus::Abandonne;
            let message = prompts::abandon(lead);
            myriam_says(lead, message.clone());
            return Change::new(goodbye(lead, &message, settings)).saved_if(true);
        }
        let field = lead.current_field().unwrap_or(Field::NomComplet);
        let message = format!(
            "{} {}",
            prompts::no_speech(lead.language),
            prompts::question_for(lead, field)
        );
        return Change::new(ask(lead, &message, silence, settings));
    };
    let asked = lead.current_field();
    let outcome = machine::process_response(lead, answer, &[]);
    tracing::info!(
        lead_id = %lead.id,
        field = asked.map(Field::as_str),
        status = ?outcome.status,
        answer = %redact::Personal(answer),
        reply = %redact::Personal(&outcome.message),
        "IVR answer processed"
    );
    let twiml = if outcome.ends_call() {
        goodbye(lead, &outcome.message, settings)
    } else {
        ask(lead, &outcome.message, 0, settings)
    };
    let progress = vec![Progress::of(asked, lead, &outcome)];
    Change::new(twiml).saved_if(true).counting(progress)
}

/// A status callback (`POST /twilio/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    pub call_sid: CallSid,
    pub call_status: String,
    pub duration: Option<u32>,
    pub recording_url: Option<String>,
    pub sequence_number: Option<String>,
}

/// Upserts the call (its status never backwards); an ended call whose lead is incomplete marks it
/// `abandonne`. A callback delivered twice changes nothing.
pub async fn status(calls: &Calls, callback: &StatusCallback) -> Result<(), StoreError> {
    let _call_lock = calls.lock_call(&callback.call_sid).await;
    let mut update = CallUpdate::new(callback.call_sid.clone());
    update.duration = callback.duration;
    update.recording_url.clone_from(&callback.recording_url);
    calls
        .report_status(StatusReport {
            update,
            status: Some(callback.call_status.clone()),
            ends_call: is_terminal(&callback.call_status),
            from_bridged_side: false,
            failed: callback.call_status == "failed",
            idempotency_key: Some(format!(
                "twilio-status:{}:{}:{}",
                callback.call_sid,
                callback.call_status,
                callback.sequence_number.as_deref().unwrap_or("-")
            )),
        })
        .await
}

/// `POST /twilio/stream-ended` (`<Connect action>`): continue in IVR mode at the lead's current
/// step when the qualification is not finished, else hang up.
pub async fn stream_ended(
    calls: &Calls,
    settings: &Settings,
    call_sid: &CallSid,
    reason: &str,
) -> Result<TwiML, StoreError> {
    let _call_lock = calls.lock_call(call_sid).await;
    let store = calls.store();
    let Some(lead) = store.find_lead_by_call(call_sid).await? else {
        return Ok(TwiML::new().verb(Verb::Hangup));
    };
    if lead.status.is_final() {
        return Ok(TwiML::new().verb(Verb::Hangup));
    }
    // Keep the bridge's own reason (vapi_timeout, vapi_lost …) when it recorded one.
    let known = store
        .get_call(call_sid)
        .await?
        .and_then(|c| c.fields.mode_reason);
    let mut update = CallUpdate::new(call_sid.clone());
    update.mode = Some(ConversationMode::Ivr);
    update.mode_reason = Some(known.unwrap_or_else(|| reason.to_owned()));
    store.upsert_call(&update).await?;
    Ok(render_current(&lead, settings))
}

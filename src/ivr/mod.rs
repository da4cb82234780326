//! The speech IVR: the qualification machine spoken through TwiML `<Gather>` and `<Say>`.
//!
//! Idempotent by construction: every `<Gather action>` carries the conversation length it was
//! rendered at (`turn`) and the silences so far (`silence`). A request whose `turn` is not the
//! lead's current conversation length is a retry (or late): nothing is applied and the current
//! state is rendered again, which is exactly what was answered the first time. So a retried webhook
//! never advances the call twice.

mod render;

pub use render::{
    DIAL_TIMEOUT_SECS, GatherAction, VOICEMAIL_MAX_SECS, render_current, render_hand_off,
};
use render::{ask, connect, goodbye, voicemail_goodbye};

use crate::calls::{
    self, BridgeTarget, Calls, Change, HandOff, NewCall, StatusReport, is_terminal,
};
use crate::config::Settings;
use crate::domain::{CallSid, ConversationMode, LeadStatus};
use crate::metrics::Progress;
use crate::qualification::parsing::is_person_key;
use crate::qualification::{Field, Lead, OutcomeStatus, Turn, machine, prompts};
use crate::redact;
use crate::store::{CallUpdate, Store as _, StoreError};
use crate::twilio::twiml::{TwiML, Verb};

/// Silences re-prompted before Myriam says goodbye.
pub const MAX_SILENCES: u32 = 2;

/// How many times an answer is held (`<Pause>` then `<Redirect>` back through the load balancer)
/// while the instance it reaches is behind on the call, before that instance answers from what it
/// knows.
pub const MAX_HOLDS: u32 = 10;

/// The pause, in seconds, before a held answer is sent again.
pub const HOLD_PAUSE_SECS: u32 = 1;

/// The answer reached an instance that is behind on the call: it does not know the call, or its
/// copy of the lead is older than the `<Gather>` the caller answered (`turn` past its
/// conversation). That happens while Supabase is unreachable (each instance knows only what it
/// wrote) and until the outbox of the instance that took the previous answer has replayed. The
/// caller is kept on the line and the same answer is sent again through the load balancer, to
/// reach the instance that knows (or this one, once it does). `None` once held [`MAX_HOLDS`]
/// times.
fn hold(settings: &Settings, result: &GatherResult) -> Option<TwiML> {
    if result.action.held >= MAX_HOLDS || result.action.turn.is_none() {
        return None;
    }
    tracing::info!(
        call_sid = %result.call_sid,
        held = result.action.held,
        "this instance is behind on the call; holding the caller's answer"
    );
    crate::metrics::ivr_answer_held();
    let url = result.action.held_url(
        result.speech.as_deref(),
        result.digits.as_deref(),
        settings.public_base_url.as_ref(),
    );
    Some(
        TwiML::new()
            .verb(Verb::Pause(HOLD_PAUSE_SECS))
            .verb(Verb::Redirect(url)),
    )
}

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
    // Insert-or-get by CallSid (`Store::start_call`): a retry gets the call's lead, in the same
    // one round trip a new call takes.
    let lead = {
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
        let lead = calls.start(&new, calls::greeting(settings)).await?;
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
    let found = calls
        .lead_for_answer(&result.call_sid, result.action.turn)
        .await?;
    let Some((found, mark)) = found else {
        if let Some(held) = hold(settings, result) {
            return Ok(held);
        }
        // A call nobody has a record of: start a fresh qualification instead of failing the
        // caller.
        let new = NewCall {
            call_sid: Some(result.call_sid.clone()),
            status: Some("in-progress".to_owned()),
            mode: Some(ConversationMode::Ivr),
            ..NewCall::default()
        };
        let lead = calls.start(&new, calls::greeting(settings)).await?;
        return Ok(render_current(&lead, settings));
    };
    crate::telemetry::set_call_context(Some(result.call_sid.as_str()), Some(found.id));
    match calls
        .answer_call(&result.call_sid, found, mark, |lead| {
            answer(lead, settings, result)
        })
        .await
    {
        Err(StoreError::Erased(_)) => {
            // The caller was erased while the call went on: from here it is a new caller's
            // call, with a lead of its own.
            let new = NewCall {
                call_sid: Some(result.call_sid.clone()),
                status: Some("in-progress".to_owned()),
                mode: Some(ConversationMode::Ivr),
                ..NewCall::default()
            };
            let lead = calls.start(&new, calls::greeting(settings)).await?;
            Ok(render_current(&lead, settings))
        }
        other => other,
    }
}

/// Applies one `<Gather>` result to the freshest lead: a retry changes nothing, a silence is
/// re-prompted (twice, then a goodbye), an answer goes through the qualification machine.
fn answer(lead: &mut Lead, settings: &Settings, result: &GatherResult) -> Change<TwiML> {
    let ahead = result
        .action
        .turn
        .is_some_and(|turn| turn > lead.conversation.len());
    if ahead && !lead.status.is_final() {
        if let Some(held) = hold(settings, result) {
            return Change::new(held);
        }
    }
    let current = result.action.turn == Some(lead.conversation.len());
    if current && calls::abandoned_by_call_end(lead) && answer_of(result).is_some() {
        // Given during the call, processed after its end: applied as if it came first.
        return calls::late_answer(lead, |lead| open_answer(lead, settings, result));
    }
    if current && lead.status == LeadStatus::Qualifie && lead.awaiting_text_consent() {
        return text_consent(lead, settings, result);
    }
    if lead.status.is_final() || !current {
        // Retried, late or forged: apply nothing, answer what stands.
        return Change::new(render_current(lead, settings));
    }
    open_answer(lead, settings, result)
}

/// The answer to « Voulez-vous recevoir un texto de confirmation? »: only a clear yes (or the
/// key one) gets the SMS; a no, an unclear answer or a silence gets none. Recorded on the lead
/// (the caller's consent), then goodbye; the save raises the confirmation alert
/// ([`calls::AlertPolicy::alerts_for`]).
fn text_consent(lead: &mut Lead, settings: &Settings, result: &GatherResult) -> Change<TwiML> {
    let answer = answer_of(result);
    let yes =
        answer.is_some_and(|a| a == "1" || crate::qualification::parsing::yes_no(a) == Some(true));
    if let Some(answer) = answer {
        let mut turn = Turn::caller(None, answer.to_owned(), true);
        turn.note = Some(crate::qualification::Note::TextConsent(yes));
        lead.conversation.push(turn);
    }
    let message = prompts::text_goodbye(lead.language, yes).to_owned();
    myriam_says(lead, message.clone());
    tracing::info!(lead_id = %lead.id, consent = yes, "text confirmation answered");
    Change::new(goodbye(lead, &message, settings)).saved_if(true)
}

/// The caller's answer (speech, else keys), trimmed; `None` for a silence.
fn answer_of(result: &GatherResult) -> Option<&str> {
    result
        .speech
        .as_deref()
        .or(result.digits.as_deref())
        .map(str::trim)
        .filter(|a| !a.is_empty())
}

/// Applies a `<Gather>` result to an open lead at the turn it was asked at.
fn open_answer(lead: &mut Lead, settings: &Settings, result: &GatherResult) -> Change<TwiML> {
    let Some(answer) = answer_of(result) else {
        let silence = result.action.silence + 1;
        if silence > MAX_SILENCES {
            lead.status = LeadStatus::Abandonne;
            let message = prompts::abandon(lead);
            myriam_says(lead, message.clone());
            return Change::new(goodbye(lead, &message, settings)).saved_if(true);
        }
        // What Myriam waits for: the field's question, or the family name, or the read-back.
        let message = format!(
            "{} {}",
            prompts::no_speech(lead.language),
            machine::pending_question(lead)
        );
        return Change::new(ask(lead, &message, silence, settings));
    };
    let asked = lead.current_field();
    if result.speech.is_none() && result.digits.as_deref().is_some_and(is_person_key) {
        // The key 0: a person, whatever the step.
        lead.conversation
            .push(Turn::caller(asked, answer.to_owned(), false));
        let target = calls::hand_off_target(settings);
        calls::hand_off(lead, target);
        tracing::info!(lead_id = %lead.id, status = %lead.status, "caller pressed 0 for a person");
        crate::metrics::hand_off("key", target.label());
        return Change::new(render_current(lead, settings)).saved_if(true);
    }
    let options = machine::Options {
        disclosure: settings.office.disclosure,
    };
    let outcome = machine::process_response_with(lead, answer, &[], options);
    tracing::info!(
        lead_id = %lead.id,
        field = asked.map(Field::as_str),
        status = ?outcome.status,
        answer = %redact::Personal(answer),
        reply = %redact::Personal(&outcome.message),
        "IVR answer processed"
    );
    if outcome.status == OutcomeStatus::HumanRequested {
        let target = calls::hand_off_target(settings);
        calls::hand_off(lead, target);
        tracing::info!(lead_id = %lead.id, status = %lead.status, "caller asked for a person");
        crate::metrics::hand_off("speech", target.label());
        return Change::new(render_current(lead, settings)).saved_if(true);
    }
    let ask_text = outcome.status == OutcomeStatus::Complete
        && lead.status == LeadStatus::Qualifie
        && settings.office.caller_sms.is_some()
        && lead.telephone.is_some();
    let twiml = if ask_text {
        // `CALLER_SMS=1`: one last question, whose answer decides the caller's SMS.
        let question = prompts::text_question(lead.language);
        let mut turn = Turn::myriam(None, question.to_owned());
        turn.note = Some(crate::qualification::Note::TextAsked);
        lead.conversation.push(turn);
        ask(
            lead,
            &format!("{} {question}", outcome.message),
            0,
            settings,
        )
    } else if outcome.ends_call() {
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
    if lead.status.is_handed_off() {
        // The assistant handed the caller to people and the redirect did not take over the call:
        // the stream's end brings the caller to the transfer or the voicemail here.
        let mut update = CallUpdate::new(call_sid.clone());
        update.mode_reason = Some(calls::HANDED_OFF.to_owned());
        store.upsert_call(&update).await?;
        return Ok(render_current(&lead, settings));
    }
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

/// The `<Dial action>` request: how the transfer to the office line ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialResult {
    pub call_sid: CallSid,
    /// `DialCallStatus`: `completed`, `answered`, `busy`, `no-answer`, `failed`, `canceled`.
    pub dial_call_status: String,
    /// `DialBridged`: whether the parties were connected, when Twilio says.
    pub bridged: Option<bool>,
    /// `DialCallDuration`, seconds.
    pub duration: Option<u32>,
}

impl DialResult {
    /// The outcome recorded on the call: `answered` when a person took it (`DialBridged=true`,
    /// or a completed dial Twilio did not say was unbridged), else Twilio's status.
    pub fn outcome(&self) -> &'static str {
        match (self.dial_call_status.as_str(), self.bridged) {
            (_, Some(true)) | ("completed" | "answered", None) => "answered",
            ("busy", _) => "busy",
            ("no-answer", _) => "no-answer",
            ("canceled", _) => "canceled",
            _ => "failed",
        }
    }
}

/// `POST /twilio/dial-done`: records the transfer's outcome on the call. Answered: the caller
/// spoke with the office, hang up. Anything else: voicemail (the lead becomes `rappel`). A repeat
/// of the request records the same and answers the same.
pub async fn dial_done(
    calls: &Calls,
    settings: &Settings,
    result: &DialResult,
) -> Result<TwiML, StoreError> {
    let _call_lock = calls.lock_call(&result.call_sid).await;
    let outcome = result.outcome();
    let mut update = CallUpdate::new(result.call_sid.clone());
    update.dial_status = Some(outcome.to_owned());
    update.dial_duration = result.duration;
    calls.store().upsert_call(&update).await?;
    tracing::info!(call_sid = %result.call_sid, outcome, "transfer ended");
    crate::metrics::transfer_ended(outcome);
    let Some(found) = calls.store().find_lead_by_call(&result.call_sid).await? else {
        return Ok(TwiML::new().verb(Verb::Hangup));
    };
    if outcome == "answered" {
        return Ok(TwiML::new().verb(Verb::Hangup));
    }
    let no_answer = HandOff::Voicemail(prompts::VoicemailReason::NoAnswer);
    calls
        .change_lead(found, |lead| {
            if lead.status == LeadStatus::Qualifie {
                // A qualified lead keeps its status; the caller still reaches the voicemail.
                return Change::new(render_hand_off(lead, no_answer, settings));
            }
            let changed = calls::hand_off(lead, no_answer);
            Change::new(render_current(lead, settings)).saved_if(changed)
        })
        .await
}

/// The voicemail's `<Record action>` or its recording status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingResult {
    pub call_sid: CallSid,
    pub recording_sid: Option<String>,
    pub recording_url: Option<String>,
    pub duration: Option<u32>,
    /// `RecordingStatus` of the status callback (`completed`, `absent`); the action has none.
    pub status: Option<String>,
}

fn recording_update(result: &RecordingResult) -> CallUpdate {
    let mut update = CallUpdate::new(result.call_sid.clone());
    update.recording_sid.clone_from(&result.recording_sid);
    update.recording_url.clone_from(&result.recording_url);
    update.recording_duration = result.duration;
    update.recording_status.clone_from(&result.status);
    update
}

/// `POST /twilio/voicemail` (`<Record action>`): stores the recording on the call and says
/// goodbye. Twilio does not request it for an empty recording; the TwiML's next verbs say goodbye.
pub async fn voicemail_done(
    calls: &Calls,
    settings: &Settings,
    result: &RecordingResult,
) -> Result<TwiML, StoreError> {
    let _call_lock = calls.lock_call(&result.call_sid).await;
    calls.store().upsert_call(&recording_update(result)).await?;
    let lead = calls.store().find_lead_by_call(&result.call_sid).await?;
    Ok(match lead {
        Some(lead) => voicemail_goodbye(&lead, settings),
        None => TwiML::new().verb(Verb::Hangup),
    })
}

/// `POST /twilio/recording-status`: the recording is ready (`completed`, with its URL and
/// length) or was empty (`absent`: the lead stays a callback request).
pub async fn recording_status(calls: &Calls, result: &RecordingResult) -> Result<(), StoreError> {
    let _call_lock = calls.lock_call(&result.call_sid).await;
    crate::metrics::voicemail_recorded(result.status.as_deref().unwrap_or("unknown"));
    calls.store().upsert_call(&recording_update(result)).await
}

/// `POST /twilio/handoff`: the TwiML a bridged call is redirected to when the assistant hands the
/// caller to a person. The lead was handed off before the redirect; a call whose lead was not
/// (a redirect sent by hand) is handed off now.
pub async fn handoff(
    calls: &Calls,
    settings: &Settings,
    call_sid: &CallSid,
) -> Result<TwiML, StoreError> {
    let _call_lock = calls.lock_call(call_sid).await;
    let Some(found) = calls.store().find_lead_by_call(call_sid).await? else {
        return Ok(TwiML::new().verb(Verb::Hangup));
    };
    let mut update = CallUpdate::new(call_sid.clone());
    update.mode_reason = Some(calls::HANDED_OFF.to_owned());
    calls.store().upsert_call(&update).await?;
    calls
        .change_lead(found, |lead| {
            let target = calls::hand_off_target(settings);
            if lead.status == LeadStatus::Qualifie {
                // Qualified, then asked for a person: put through without a status change.
                return Change::new(render_hand_off(lead, target, settings));
            }
            let changed = !lead.status.is_handed_off() && calls::hand_off(lead, target);
            Change::new(render_current(lead, settings)).saved_if(changed)
        })
        .await
}

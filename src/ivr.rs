//! The speech IVR: the qualification machine spoken through TwiML `<Gather>` and `<Say>`.
//!
//! Idempotent by construction: every `<Gather action>` carries the conversation length it was
//! rendered at (`turn`) and the silences so far (`silence`). A request whose `turn` is not the
//! lead's current conversation length is a retry (or late): nothing is applied and the current
//! state is rendered again, which is exactly what was answered the first time. So a retried webhook
//! never advances the call twice.

use crate::calls::{BridgeTarget, Calls, Change, NewCall, StatusReport, is_terminal};
use crate::config::{PublicBaseUrl, Settings, Voices};
use crate::domain::{CallSid, ConversationMode, Language, LeadStatus};
use crate::metrics::Progress;
use crate::qualification::{Field, Lead, Speaker, Turn, machine, prompts};
use crate::redact;
use crate::store::{CallUpdate, Store as _, StoreError};
use crate::twilio::stream_token;
use crate::twilio::twiml::{Gather, Say, TwiML, Verb};

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

/// The state a `<Gather action>` URL carries: the conversation length it was rendered at and the
/// silences so far. Written here and read back here, so the two never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GatherAction {
    pub turn: Option<usize>,
    pub silence: u32,
}

impl GatherAction {
    /// Where `<Gather>` posts: absolute under `PUBLIC_BASE_URL`, else relative to the document.
    pub fn url(turn: usize, silence: u32, base: Option<&PublicBaseUrl>) -> String {
        let path = format!("/twilio/gather?turn={turn}&silence={silence}");
        base.map_or_else(|| path.clone(), |b| b.join(&path))
    }

    /// Reads the action back from the query's `turn` and `silence` (`query` gives a value by name).
    pub fn from_query<'a>(query: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            turn: query("turn").and_then(|t| t.parse().ok()),
            silence: query("silence").and_then(|s| s.parse().ok()).unwrap_or(0),
        }
    }
}

/// Recognition hints for the field being asked.
fn hints(field: Option<Field>, language: Language) -> Vec<String> {
    let words: &[&str] = match (field, language) {
        (Some(Field::TypeService), Language::Fr) => &[
            "élagage",
            "émondage",
            "abattage",
            "essouchement",
            "souche",
            "haie",
            "tempête",
            "plantation",
            "évaluation",
        ],
        (Some(Field::TypeService), Language::En) => &[
            "pruning",
            "tree removal",
            "stump",
            "hedge",
            "storm",
            "planting",
            "assessment",
        ],
        (Some(Field::Urgence), Language::Fr) => &["oui", "non", "urgent", "pas urgent"],
        (Some(Field::Urgence), Language::En) => &["yes", "no", "urgent", "not urgent"],
        (Some(Field::Telephone), Language::Fr) => &["oui", "non", "c'est ça"],
        (Some(Field::Telephone), Language::En) => &["yes", "no", "that's right"],
        _ => &[],
    };
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn say(text: &str, language: Language, voices: &Voices) -> Say {
    Say {
        text: text.to_owned(),
        language,
        voice: voices.for_language(language).to_owned(),
    }
}

/// `message` then a `<Gather>` for the next answer.
fn ask(lead: &Lead, message: &str, silence: u32, settings: &Settings) -> TwiML {
    TwiML::new().verb(Verb::Gather(Gather {
        action: GatherAction::url(
            lead.conversation.len(),
            silence,
            settings.public_base_url.as_ref(),
        ),
        language: lead.language,
        hints: hints(lead.current_field(), lead.language),
        action_on_empty_result: true,
        timeout: 6,
        say: vec![say(message, lead.language, &settings.twilio.voices)],
    }))
}

/// `message` then hang up.
fn goodbye(lead: &Lead, message: &str, settings: &Settings) -> TwiML {
    TwiML::new()
        .verb(Verb::Say(say(
            message,
            lead.language,
            &settings.twilio.voices,
        )))
        .verb(Verb::Hangup)
}

fn last_myriam_line(lead: &Lead) -> Option<&str> {
    lead.conversation
        .iter()
        .rev()
        .find(|t| t.speaker == Speaker::Myriam)
        .map(|t| t.text.as_str())
}

/// What the call looks like now: the last thing Myriam said, asked again or with a goodbye.
pub fn render_current(lead: &Lead, settings: &Settings) -> TwiML {
    let message = last_myriam_line(lead).map_or_else(
        || match lead.current_field() {
            Some(Field::NomComplet) | None => prompts::opening(lead.language),
            Some(field) => prompts::question_for(lead, field),
        },
        str::to_owned,
    );
    if lead.status.is_final() {
        goodbye(lead, &message, settings)
    } else {
        ask(lead, &message, 0, settings)
    }
}

fn myriam_says(lead: &mut Lead, text: String) {
    let field = lead.current_field();
    lead.conversation.push(Turn::myriam(field, text));
}

/// `<Connect action><Stream url><Parameter lead_id/><Parameter call_sid/><Parameter token/>`: the
/// token is signed, expiring and single-use (see [`crate::twilio::stream_token`]).
fn connect(lead: &Lead, call_sid: &CallSid, target: &BridgeTarget) -> TwiML {
    // The lead's creation time makes a retry's token (and TwiML) the same as the first answer's.
    let issued = lead
        .created_at
        .map_or_else(stream_token::now, time::OffsetDateTime::unix_timestamp);
    let token = target.tokens.issue(call_sid, lead.id, issued);
    TwiML::new().verb(Verb::Connect {
        action: Some(target.action_url.clone()),
        stream: crate::twilio::twiml::Stream {
            url: target.stream_url.clone(),
            parameters: stream_token::parameters(call_sid, lead.id, token),
        },
    })
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

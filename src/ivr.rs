//! The speech IVR: the qualification machine spoken through TwiML `<Gather>` and `<Say>`.
//!
//! Idempotent by construction: every `<Gather action>` carries the conversation length it was
//! rendered at (`turn`) and the silences so far (`silence`). A request whose `turn` is not the
//! lead's current conversation length is a retry (or late): nothing is applied and the current
//! state is rendered again, which is exactly what was answered the first time. So a retried webhook
//! never advances the call twice.

use crate::config::{PublicBaseUrl, Settings};
use crate::domain::{CallSid, ConversationMode, Language, LeadId, LeadStatus, PhoneNumber};
use crate::locks::KeyedLocks;
use crate::metrics::CallOutcome;
use crate::qualification::{Field, Lead, Speaker, Turn, machine, prompts};
use crate::redact;
use crate::store::{AnyStore, CallUpdate, Store, StoreError};
use crate::twilio::stream_token::{self, StreamTokens};
use crate::twilio::twiml::{Gather, Say, TwiML, Verb, Voices};

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

/// Where `<Gather>` posts: absolute under `PUBLIC_BASE_URL`, else relative to the document.
pub fn gather_action(base: Option<&PublicBaseUrl>, turn: usize, silence: u32) -> String {
    let path = format!("/twilio/gather?turn={turn}&silence={silence}");
    base.map_or_else(|| path.clone(), |b| b.join(&path))
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
        action: gather_action(
            settings.public_base_url.as_ref(),
            lead.conversation.len(),
            silence,
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

/// Creates the lead and the call of a new call; the caller ID is offered as the phone number.
async fn create_call(store: &AnyStore, call: &IncomingCall) -> Result<Lead, StoreError> {
    let offered = call
        .from
        .as_deref()
        .and_then(|f| PhoneNumber::try_from(f).ok());
    let mut lead = Lead::new(LeadId::new()).with_offered_phone(offered);
    let opening = prompts::opening(lead.language);
    myriam_says(&mut lead, opening);
    store.upsert_lead(&lead).await?;
    let mut update = CallUpdate::new(call.call_sid.clone());
    update.lead_id = Some(lead.id);
    update.from_number.clone_from(&call.from);
    update.to_number.clone_from(&call.to);
    update.direction.clone_from(&call.direction);
    update.status.clone_from(&call.call_status);
    update.mode = Some(ConversationMode::Ivr);
    store.upsert_call(&update).await?;
    Ok(lead)
}

/// Where a bridged call's audio goes: the `<Stream url>` and the `<Connect action>`.
#[derive(Debug, Clone)]
pub struct BridgeTarget {
    pub stream_url: String,
    pub action_url: String,
    /// Issues the `<Parameter name="token">` that binds the stream to its call.
    pub tokens: StreamTokens,
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
            parameters: vec![
                ("lead_id".to_owned(), lead.id.to_string()),
                ("call_sid".to_owned(), call_sid.to_string()),
                (stream_token::PARAMETER.to_owned(), token),
            ],
        },
    })
}

/// `POST /twilio/voice`: a new call gets a lead and either the bridge (`<Connect>`) or the IVR's
/// first question; a retry gets the same TwiML.
pub async fn incoming_call(
    store: &AnyStore,
    settings: &Settings,
    call: &IncomingCall,
    bridge: Option<&BridgeTarget>,
) -> Result<TwiML, StoreError> {
    let lead = if let Some(lead) = store.find_lead_by_call(&call.call_sid).await? {
        lead
    } else {
        let lead = create_call(store, call).await?;
        if bridge.is_some() {
            let mut update = CallUpdate::new(call.call_sid.clone());
            update.mode = Some(ConversationMode::Bridge);
            store.upsert_call(&update).await?;
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
    /// The `turn` and `silence` the action URL was rendered with.
    pub turn: Option<usize>,
    pub silence: u32,
}

/// `POST /twilio/gather`: applies the answer once and says what comes next.
pub async fn gather(
    store: &AnyStore,
    settings: &Settings,
    locks: &KeyedLocks,
    result: &GatherResult,
) -> Result<TwiML, StoreError> {
    let Some(found) = store.find_lead_by_call(&result.call_sid).await? else {
        // A call we have no record of: start a fresh qualification instead of failing the caller.
        let call = IncomingCall {
            call_sid: result.call_sid.clone(),
            account_sid: String::new(),
            from: None,
            to: None,
            call_status: Some("in-progress".to_owned()),
            direction: None,
        };
        let lead = create_call(store, &call).await?;
        return Ok(render_current(&lead, settings));
    };
    // Vapi and status callbacks may touch the same lead: one change at a time, on fresh data.
    let _lead_lock = locks.lock(&lead_key(found.id)).await;
    crate::telemetry::set_call_context(Some(result.call_sid.as_str()), Some(found.id));
    let mut lead = store.get_lead(found.id).await?.unwrap_or(found);
    if lead.status.is_final() || result.turn != Some(lead.conversation.len()) {
        // Retried, late or forged: apply nothing, answer what stands.
        return Ok(render_current(&lead, settings));
    }
    let answer = result
        .speech
        .as_deref()
        .or(result.digits.as_deref())
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let Some(answer) = answer else {
        let silence = result.silence + 1;
        if silence > MAX_SILENCES {
            lead.status = LeadStatus::Abandonne;
            let message = prompts::abandon(&lead);
            myriam_says(&mut lead, message.clone());
            store.upsert_lead(&lead).await?;
            return Ok(goodbye(&lead, &message, settings));
        }
        let field = lead.current_field().unwrap_or(Field::NomComplet);
        let message = format!(
            "{} {}",
            prompts::no_speech(lead.language),
            prompts::question_for(&lead, field)
        );
        return Ok(ask(&lead, &message, silence, settings));
    };
    let asked = lead.current_field();
    let outcome = machine::process_response(&mut lead, answer, &[]);
    tracing::info!(
        lead_id = %lead.id,
        field = asked.map(Field::as_str),
        status = ?outcome.status,
        answer = %redact::Personal(answer),
        reply = %redact::Personal(&outcome.message),
        "IVR answer processed"
    );
    store.upsert_lead(&lead).await?;
    crate::metrics::Progress::of(asked, &lead, &outcome).record();
    Ok(if outcome.ends_call() {
        goodbye(&lead, &outcome.message, settings)
    } else {
        ask(&lead, &outcome.message, 0, settings)
    })
}

/// Status progression: a callback never moves a call back to an earlier status.
pub fn status_rank(status: &str) -> u8 {
    match status {
        "initiated" => 1,
        "ringing" => 2,
        "in-progress" | "answered" => 3,
        "completed" | "busy" | "failed" | "no-answer" | "canceled" => 4,
        // queued, and anything Twilio adds later: lowest, so it never overrides a known status.
        _ => 0,
    }
}

/// The rank of the statuses that end a call.
pub const TERMINAL_RANK: u8 = 4;

fn is_terminal(status: &str) -> bool {
    status_rank(status) == TERMINAL_RANK
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

/// The lock key of a lead, shared by every path that changes it.
pub fn lead_key(id: crate::domain::LeadId) -> String {
    format!("lead:{id}")
}

/// Marks the lead `abandonne` unless it is already qualified or abandoned, under its lock; returns
/// the lead's final status.
pub async fn abandon_if_incomplete(
    store: &AnyStore,
    locks: &KeyedLocks,
    lead: Lead,
) -> Result<LeadStatus, StoreError> {
    let _lead_lock = locks.lock(&lead_key(lead.id)).await;
    let mut lead = store.get_lead(lead.id).await?.unwrap_or(lead);
    if !lead.status.is_final() {
        lead.status = LeadStatus::Abandonne;
        store.upsert_lead(&lead).await?;
    }
    Ok(lead.status)
}

/// The lock every path that moves a call's status takes (Twilio status callbacks and Vapi call
/// updates), so that a call is counted as ended exactly once.
pub fn call_status_key(sid: &CallSid) -> String {
    format!("call-status:{sid}")
}

/// After a call's status became terminal for the first time: marks an incomplete lead `abandonne`
/// and counts the call in `myriam_calls_total{mode,outcome}`.
pub async fn finish_call(
    store: &AnyStore,
    locks: &KeyedLocks,
    sid: &CallSid,
    mode: Option<ConversationMode>,
    failed: bool,
) -> Result<(), StoreError> {
    let status = match store.find_lead_by_call(sid).await? {
        Some(lead) => Some(abandon_if_incomplete(store, locks, lead).await?),
        None => None,
    };
    let outcome = match status {
        _ if failed => CallOutcome::Error,
        None => CallOutcome::Error,
        Some(LeadStatus::Qualifie) => CallOutcome::Qualifie,
        Some(_) => CallOutcome::Abandonne,
    };
    crate::metrics::call_ended(mode.unwrap_or(ConversationMode::Ivr), outcome);
    Ok(())
}

/// Upserts the call; an ended call whose lead is incomplete marks it `abandonne`.
pub async fn status(
    store: &AnyStore,
    locks: &KeyedLocks,
    callback: &StatusCallback,
) -> Result<(), StoreError> {
    let key = format!(
        "twilio-status:{}:{}:{}",
        callback.call_sid,
        callback.call_status,
        callback.sequence_number.as_deref().unwrap_or("-")
    );
    let _call_lock = locks.lock(&call_status_key(&callback.call_sid)).await;
    if store.event_processed(&key).await? {
        return Ok(());
    }
    let current = store.get_call(&callback.call_sid).await?;
    let current_rank = current
        .as_ref()
        .and_then(|c| c.fields.status.as_deref())
        .map_or(0, status_rank);
    let mut update = CallUpdate::new(callback.call_sid.clone());
    if status_rank(&callback.call_status) >= current_rank {
        update.status = Some(callback.call_status.clone());
    }
    update.duration = callback.duration;
    update.recording_url.clone_from(&callback.recording_url);
    store.upsert_call(&update).await?;
    if is_terminal(&callback.call_status) {
        if current_rank == TERMINAL_RANK {
            // Already ended (a duplicate or a later terminal status): the lead is settled and the
            // call counted.
            if let Some(lead) = store.find_lead_by_call(&callback.call_sid).await? {
                abandon_if_incomplete(store, locks, lead).await?;
            }
        } else {
            let mode = current.as_ref().and_then(|c| c.fields.mode);
            let failed = callback.call_status == "failed";
            finish_call(store, locks, &callback.call_sid, mode, failed).await?;
        }
    }
    store.record_event(&key).await?;
    Ok(())
}

/// `POST /twilio/stream-ended` (`<Connect action>`): continue in IVR mode at the lead's current
/// step when the qualification is not finished, else hang up.
pub async fn stream_ended(
    store: &AnyStore,
    settings: &Settings,
    call_sid: &CallSid,
    reason: &str,
) -> Result<TwiML, StoreError> {
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

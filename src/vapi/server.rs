//! What the gateway answers to each Vapi Server-URL message.
//!
//! Tool calls run the same qualification machine as the IVR. A tool call's id is its idempotency
//! key: the answer and the one-line result are stored on the lead's conversation, so a replayed
//! tool call gets the same result and never advances the lead twice.
//!
//! With `CALLER_SMS=1`, the answer that qualifies the lead does not end the call yet, as in the
//! IVR: its result asks « Voulez-vous recevoir un texto de confirmation? » (`is_complete` false,
//! `missing` `["texto_confirmation"]`), and the next answer is the caller's consent, recorded the
//! same way (a clear yes or the key 1; anything else is a no), with the goodbye and
//! `is_complete` true. The save raises the confirmation SMS through the alerts' outbox.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::messages::{CallEnd, CallRef, TOOL_NAME, TRANSFER_TOOL_NAME, ToolCall};
use crate::calls::{self, Calls, Change, HandOff, NewCall, StatusReport};
use crate::config::Settings;
use crate::domain::{CallSid, ConversationMode, LeadId, LeadStatus};
use crate::metrics::Progress;
use crate::qualification::{
    Field, Lead, Note, Outcome, OutcomeStatus, Speaker, Turn, machine, parsing, prompts,
};
use crate::store::{AnyStore, CallUpdate, Store, StoreError};
use crate::twilio::rest::TwilioRest;

/// The lead a message is about: by Vapi call id, then `variableValues.lead_id`, then the Twilio
/// CallSid in `phoneCallProviderId`.
pub async fn find_lead(store: &AnyStore, call: &CallRef) -> Result<Option<Lead>, StoreError> {
    if let Some(vapi_id) = &call.vapi_call_id {
        if let Some(record) = store.find_call_by_vapi_id(vapi_id).await? {
            if let Some(lead_id) = record.fields.lead_id {
                if let Some(lead) = store.get_lead(lead_id).await? {
                    return Ok(Some(lead));
                }
            }
        }
    }
    if let Some(id) = call
        .lead_id
        .as_deref()
        .and_then(|l| LeadId::try_from(l).ok())
    {
        if let Some(lead) = store.get_lead(id).await? {
            return Ok(Some(lead));
        }
    }
    if let Some(sid) = call
        .twilio_call_sid
        .as_deref()
        .and_then(|s| CallSid::try_from(s).ok())
    {
        return store.find_lead_by_call(&sid).await;
    }
    Ok(None)
}

/// The answer the assistant passed to the tool (`reponse`; `response` and `answer` accepted).
/// The field the assistant names with the answer (`champ`), when it saves one out of turn or
/// corrects one already saved.
fn field_of(call: &ToolCall) -> Option<Field> {
    let name = ["champ", "field"]
        .iter()
        .find_map(|k| call.arguments.get(*k))
        .and_then(Value::as_str)?;
    Field::ALL.into_iter().find(|f| f.as_str() == name.trim())
}

/// What `missing` names while the text question waits for its answer.
pub const TEXT_PENDING: &str = "texto_confirmation";

/// The outcome as the tool's one-line result, with the fields still missing (`missing`) after
/// the documented keys; `text_pending`: the text question waits for its answer.
fn tool_result(outcome: &Outcome, lead: &Lead, text_pending: bool) -> Option<String> {
    let json = serde_json::to_string(outcome).ok()?;
    let mut missing: Vec<&str> = machine::missing(lead).iter().map(|f| f.as_str()).collect();
    if text_pending {
        missing.push(TEXT_PENDING);
    }
    let missing = serde_json::to_string(&missing).ok()?;
    let body = json.strip_suffix('}')?;
    Some(format!("{body},\"missing\":{missing}}}"))
}

fn answer_of(call: &ToolCall) -> Option<&str> {
    ["reponse", "réponse", "response", "answer"]
        .iter()
        .find_map(|k| call.arguments.get(*k))
        .and_then(Value::as_str)
}

/// The result already returned for this tool call, if it was processed before.
fn replayed(lead: &Lead, tool_call_id: &str) -> Option<String> {
    let at = lead.conversation.iter().position(|t| {
        t.speaker == Speaker::Caller && t.tool_call_id.as_deref() == Some(tool_call_id)
    })?;
    lead.conversation.get(at + 1).and_then(|t| t.result.clone())
}

fn error_result(id: &str, error: &str) -> Value {
    json!({ "toolCallId": id, "error": error })
}

/// What answering tool calls needs besides the lead: the settings (hours, transfer line,
/// disclosure) and Twilio's REST API to redirect a call handed to a person.
#[derive(Debug, Clone, Copy)]
pub struct ToolContext<'a> {
    pub settings: &'a Settings,
    pub twilio: Option<&'a TwilioRest>,
}

/// How long a tool call waits, re-reading, for the lead or for an earlier answer the history
/// says was given (another instance's save that missed its deadline and is still on its way to
/// Supabase), before applying the missing answers itself from the history. Well within Vapi's
/// tool timeout (`server.timeoutSeconds`, 20 s by default).
pub const EARLIER_ANSWER_WAIT: Duration = Duration::from_secs(3);

/// The pause between two re-reads while waiting.
const REREAD_EVERY: Duration = Duration::from_millis(100);

/// Whether the lead holds the answer of the tool call `id` (its turns carry the id).
fn holds_tool_call(lead: &Lead, id: &str) -> bool {
    lead.conversation
        .iter()
        .any(|t| t.tool_call_id.as_deref() == Some(id))
}

/// The earlier tool calls the lead does not hold yet.
fn missing_earlier<'a>(lead: &Lead, earlier: &'a [ToolCall]) -> Vec<&'a ToolCall> {
    earlier
        .iter()
        .filter(|c| is_known_tool(&c.name) && !holds_tool_call(lead, &c.id))
        .collect()
}

/// The call's lead, re-read every [`REREAD_EVERY`] up to [`EARLIER_ANSWER_WAIT`] while it is
/// unknown here or lacks an earlier answer of `earlier`: another instance may have answered and
/// still be saving. Returns what is known at the end (the missing answers are then applied from
/// the history, see [`apply_tool_calls`]).
async fn lead_with_earlier_answers(
    store: &AnyStore,
    call: &CallRef,
    earlier: &[ToolCall],
) -> Result<Option<Lead>, StoreError> {
    let started = Instant::now();
    let mut lead = find_lead(store, call).await?;
    loop {
        let complete = lead
            .as_ref()
            .is_some_and(|l| missing_earlier(l, earlier).is_empty());
        if complete || started.elapsed() >= EARLIER_ANSWER_WAIT {
            if !complete {
                tracing::warn!(
                    found = lead.is_some(),
                    waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "an earlier answer of this call is not on its lead yet"
                );
            }
            return Ok(lead);
        }
        tokio::time::sleep(REREAD_EVERY).await;
        lead = match &lead {
            Some(known) => store.get_lead(known.id).await?.or(lead),
            None => find_lead(store, call).await?,
        };
    }
}

/// `tool-calls`: one result per call, in order; errors as `results[].error` (Vapi ignores non-200).
/// A `transfer_to_human` call hands the lead to people and redirects the live Twilio call to
/// `/twilio/handoff` (transfer or voicemail); Twilio then stops the Media Stream.
///
/// `earlier` are the call's earlier tool calls the history shows answered: each must be on the
/// lead before this one is applied (else an answer could land in the field the missing one was
/// for). The lead is re-read while one is missing ([`EARLIER_ANSWER_WAIT`]); still missing, it
/// is applied first from the history's own arguments, under its own tool-call id, so the
/// instance whose save is late finds it done.
pub async fn tool_calls(
    calls: &Calls,
    context: ToolContext<'_>,
    call: &CallRef,
    tool_calls: &[ToolCall],
    earlier: &[ToolCall],
) -> Result<Value, StoreError> {
    let mark = calls.read_mark();
    let found = match lead_with_earlier_answers(calls.store(), call, earlier).await? {
        Some(found) => Some(found),
        // Not found: erased while its call went on, it goes on as a new caller's.
        None => restart_erased(calls, context.settings, call).await?,
    };
    let (results, hand_off) = match found {
        Some(found) => {
            match calls
                .change_lead_read(found, mark, |lead| {
                    let caught_up = catch_up(lead, context.settings, earlier);
                    let change = apply_tool_calls(lead, context.settings, tool_calls);
                    let save = change.save || caught_up;
                    change.saved_if(save)
                })
                .await
            {
                Err(StoreError::Erased(_)) => {
                    let fresh = new_caller(calls, context.settings, call).await?;
                    calls
                        .change_lead(fresh, |lead| {
                            apply_tool_calls(lead, context.settings, tool_calls)
                        })
                        .await?
                }
                other => other?,
            }
        }
        None => (
            tool_calls
                .iter()
                .map(|tool_call| {
                    if is_known_tool(&tool_call.name) {
                        error_result(
                            &tool_call.id,
                            "unknown lead: no call, lead_id or CallSid of this call is known",
                        )
                    } else {
                        unknown_tool(&tool_call.id)
                    }
                })
                .collect(),
            None,
        ),
    };
    if let Some(target) = hand_off {
        redirect_to_people(calls, context, call, target).await?;
    }
    Ok(json!({ "results": results }))
}

/// Applies the earlier answers the lead lacks, in their order, from the history's arguments
/// (their results were already returned to Vapi; their progress was counted where they were
/// answered). Returns whether one was applied.
fn catch_up(lead: &mut Lead, settings: &Settings, earlier: &[ToolCall]) -> bool {
    let missing: Vec<ToolCall> = missing_earlier(lead, earlier)
        .into_iter()
        .cloned()
        .collect();
    if missing.is_empty() {
        return false;
    }
    tracing::warn!(
        lead_id = %lead.id,
        count = missing.len(),
        "earlier answers applied from the call's history"
    );
    apply_tool_calls(lead, settings, &missing).save
}

/// Marks the call handed off (so its stream's end is not a bridge failure, nor the call's end)
/// and redirects it to the hand-off TwiML. Should the redirect fail, the gateway's next
/// `/twilio/stream-ended` serves the same TwiML when the stream closes.
async fn redirect_to_people(
    calls: &Calls,
    context: ToolContext<'_>,
    call: &CallRef,
    target: HandOff,
) -> Result<(), StoreError> {
    crate::metrics::hand_off("assistant", target.label());
    let Some(sid) = call_sid_of(calls.store(), call).await? else {
        tracing::warn!("hand-off asked for a call this gateway does not know; nothing to redirect");
        return Ok(());
    };
    let mut update = CallUpdate::new(sid.clone());
    update.mode_reason = Some(calls::HANDED_OFF.to_owned());
    calls.store().upsert_call(&update).await?;
    let (Some(twilio), Some(base)) = (context.twilio, &context.settings.public_base_url) else {
        tracing::warn!(
            call_sid = %sid,
            "cannot redirect the call (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN or PUBLIC_BASE_URL unset)"
        );
        return Ok(());
    };
    match twilio
        .redirect_call(sid.as_str(), &base.join("/twilio/handoff"))
        .await
    {
        Ok(()) => tracing::info!(call_sid = %sid, to = target.label(), "call redirected to people"),
        Err(error) => tracing::error!(call_sid = %sid, %error, "call redirect failed"),
    }
    Ok(())
}

fn is_known_tool(name: &str) -> bool {
    name == TOOL_NAME || name == TRANSFER_TOOL_NAME
}

fn unknown_tool(id: &str) -> Value {
    error_result(
        id,
        &format!("unknown tool; this server handles {TOOL_NAME} and {TRANSFER_TOOL_NAME}"),
    )
}

/// The result of `transfer_to_human`: what is happening, for the assistant to say nothing more.
fn hand_off_result(lead: &Lead, target: HandOff) -> String {
    let (status, instruction) = match target {
        HandOff::Transfer => (
            "transfer",
            "L'appel est transféré à l'équipe de BP Émondage. Ne dites plus rien.",
        ),
        HandOff::Voicemail(_) => (
            "voicemail",
            "L'appel passe à la boîte vocale de l'équipe, qui rappellera. Ne dites plus rien.",
        ),
    };
    json!({ "status": status, "lead_status": lead.status, "message": instruction }).to_string()
}

/// Applies each tool call to the freshest lead, in order; a replayed one gets its stored result.
/// Also says where a caller who asked for a person goes, when one did (first time only).
fn apply_tool_calls(
    lead: &mut Lead,
    settings: &Settings,
    tool_calls: &[ToolCall],
) -> Change<(Vec<Value>, Option<HandOff>)> {
    let mut changed = false;
    let mut progress = Vec::new();
    let mut results = Vec::with_capacity(tool_calls.len());
    let mut handed = None;
    for tool_call in tool_calls {
        if !is_known_tool(&tool_call.name) {
            results.push(unknown_tool(&tool_call.id));
            continue;
        }
        if let Some(result) = replayed(lead, &tool_call.id) {
            results.push(json!({ "toolCallId": tool_call.id, "result": result }));
            continue;
        }
        if tool_call.name == TRANSFER_TOOL_NAME {
            let target = calls::hand_off_target(settings);
            let field = lead.current_field();
            let mut asked = Turn::caller(field, TRANSFER_TOOL_NAME.to_owned(), false);
            asked.tool_call_id = Some(tool_call.id.clone());
            lead.conversation.push(asked);
            if calls::hand_off(lead, target) {
                handed = Some(target);
            } else if lead.status == LeadStatus::Qualifie {
                // Qualified, then asked for a person: the lead stays qualified, the call is
                // still put through.
                handed = Some(target);
                lead.conversation
                    .push(Turn::myriam(field, calls::hand_off_line(lead, target)));
            } else {
                // Already handed off: the same line again.
                let line = lead
                    .conversation
                    .iter()
                    .rev()
                    .find(|t| t.speaker == Speaker::Myriam)
                    .map(|t| t.text.clone())
                    .unwrap_or_default();
                lead.conversation.push(Turn::myriam(field, line));
            }
            let result = hand_off_result(lead, target);
            if let Some(myriam) = lead.conversation.last_mut() {
                myriam.tool_call_id = Some(tool_call.id.clone());
                myriam.result = Some(result.clone());
            }
            tracing::info!(lead_id = %lead.id, status = %lead.status, "assistant handed the caller to people");
            changed = true;
            results.push(json!({ "toolCallId": tool_call.id, "result": result }));
            continue;
        }
        let Some(answer) = answer_of(tool_call) else {
            results.push(error_result(&tool_call.id, "missing argument: reponse"));
            continue;
        };
        crate::telemetry::set_call_context(None, Some(lead.id));
        if settings.office.caller_sms.is_some()
            && lead.status == LeadStatus::Qualifie
            && lead.awaiting_text_consent()
            && field_of(tool_call).is_none()
        {
            let Some(result) = text_consent(lead, answer, &tool_call.id) else {
                results.push(error_result(&tool_call.id, "internal error"));
                continue;
            };
            changed = true;
            results.push(json!({ "toolCallId": tool_call.id, "result": result }));
            continue;
        }
        let (result, counted) = answer_tool_call(lead, settings, tool_call, answer);
        progress.push(counted);
        // serde_json writes no line breaks: the one-line string Vapi requires. An `Outcome` always
        // serialises; should it not, the tool call gets an error and nothing is claimed done.
        let Some(result) = result else {
            results.push(error_result(&tool_call.id, "internal error"));
            continue;
        };
        changed = true;
        results.push(json!({ "toolCallId": tool_call.id, "result": result }));
    }
    Change::new((results, handed))
        .saved_if(changed)
        .counting(progress)
}

/// Applies one answer of `enregistrer_reponse` (`champ` names its field, else the question
/// asked) and tags its turns with the tool call's id. Returns the one-line result (`None`: it
/// could not be written) and the progress to count.
fn answer_tool_call(
    lead: &mut Lead,
    settings: &Settings,
    tool_call: &ToolCall,
    answer: &str,
) -> (Option<String>, Progress) {
    let asked = lead.current_field();
    let options = machine::Options {
        disclosure: settings.office.disclosure,
    };
    let named = field_of(tool_call);
    let process = |lead: &mut Lead| match named {
        Some(field) => machine::process_field(lead, field, answer, &[], options),
        None => machine::process_response_with(lead, answer, &[], options),
    };
    let late = calls::abandoned_by_call_end(lead);
    let mut outcome = if late {
        // Given during the call, processed after its end: applied as if it came first.
        calls::late_answer(lead, process)
    } else {
        process(lead)
    };
    tracing::info!(
        lead_id = %lead.id,
        tool_call_id = %tool_call.id,
        status = ?outcome.status,
        reponse = %crate::redact::Personal(answer),
        "Vapi tool call processed"
    );
    let counted = Progress::of(asked, lead, &outcome);
    // `CALLER_SMS=1`, as the IVR: one last question on a live call whose caller confirmed a
    // number and has not answered it yet.
    let ask_text = !late
        && outcome.status == OutcomeStatus::Complete
        && lead.status == LeadStatus::Qualifie
        && settings.office.caller_sms.is_some()
        && lead.telephone.is_some()
        && !text_answered(lead);
    let question = prompts::text_question(lead.language);
    if ask_text {
        outcome.is_complete = false;
        outcome.message = format!("{} {question}", outcome.message);
    }
    let Some(result) = tool_result(&outcome, lead, ask_text) else {
        return (None, counted);
    };
    if let [.., caller, myriam] = &mut lead.conversation[..] {
        caller.tool_call_id = Some(tool_call.id.clone());
        myriam.tool_call_id = Some(tool_call.id.clone());
        myriam.result = Some(result.clone());
    }
    if ask_text {
        // Myriam's last line waits for the consent ([`Lead::awaiting_text_consent`]).
        let mut turn = Turn::myriam(None, question.to_owned());
        turn.note = Some(Note::TextAsked);
        turn.tool_call_id = Some(tool_call.id.clone());
        lead.conversation.push(turn);
        tracing::info!(lead_id = %lead.id, "text confirmation asked");
    }
    (Some(result), counted)
}

/// The caller already answered the text question (yes or no).
fn text_answered(lead: &Lead) -> bool {
    lead.conversation
        .iter()
        .any(|t| matches!(t.note, Some(Note::TextConsent(_))))
}

/// The answer to « Voulez-vous recevoir un texto de confirmation? », as the IVR takes it: only a
/// clear yes (or the key 1) is a yes. Records the consent on the lead (the save raises the
/// confirmation SMS, [`calls::AlertPolicy::alerts_for`]) and Myriam's goodbye; the result ends
/// the call (`is_complete`).
fn text_consent(lead: &mut Lead, answer: &str, tool_call_id: &str) -> Option<String> {
    let answer = answer.trim();
    let yes = answer == "1" || parsing::yes_no(answer) == Some(true);
    let mut turn = Turn::caller(None, answer.to_owned(), true);
    turn.note = Some(Note::TextConsent(yes));
    turn.tool_call_id = Some(tool_call_id.to_owned());
    lead.conversation.push(turn);
    let message = prompts::text_goodbye(lead.language, yes).to_owned();
    let outcome = Outcome {
        success: true,
        status: OutcomeStatus::Complete,
        next_step: None,
        field_updated: None,
        is_complete: true,
        message: message.clone(),
        lead_data: Some(lead.data()),
    };
    let result = tool_result(&outcome, lead, false);
    let mut said = Turn::myriam(None, message);
    said.tool_call_id = Some(tool_call_id.to_owned());
    said.result.clone_from(&result);
    lead.conversation.push(said);
    tracing::info!(lead_id = %lead.id, consent = yes, "text confirmation answered");
    result
}

/// A new lead for a call whose caller was erased while it went on: the call goes on as a new
/// caller's (the call row is created again, pointing at the new lead).
async fn new_caller(
    calls: &Calls,
    settings: &Settings,
    call: &CallRef,
) -> Result<Lead, StoreError> {
    let new = NewCall {
        call_sid: call
            .twilio_call_sid
            .as_deref()
            .and_then(|s| CallSid::try_from(s).ok()),
        from: call.customer_number.clone(),
        direction: Some("inbound".to_owned()),
        mode: Some(ConversationMode::Bridge),
        vapi_call_id: call.vapi_call_id.clone(),
        ..NewCall::default()
    };
    calls.start(&new, calls::greeting(settings)).await
}

/// The call names a lead (`variableValues.lead_id`) an erasure removed: a new lead for the call.
async fn restart_erased(
    calls: &Calls,
    settings: &Settings,
    call: &CallRef,
) -> Result<Option<Lead>, StoreError> {
    let Some(id) = call
        .lead_id
        .as_deref()
        .and_then(|l| LeadId::try_from(l).ok())
    else {
        return Ok(None);
    };
    if !calls.is_erased(id).await? {
        return Ok(None);
    }
    new_caller(calls, settings, call).await.map(Some)
}

/// `assistant-request` (numbers owned by Vapi): a lead (and a call when the CallSid is known), then
/// the assistant with the lead id in `variableValues`.
pub async fn assistant_request(
    calls: &Calls,
    settings: &Settings,
    call: &CallRef,
) -> Result<Value, StoreError> {
    let Some(assistant_id) = &settings.vapi.assistant_id else {
        return Ok(json!({
            "error": "Désolée, notre réceptionniste n'est pas disponible pour le moment. Merci de rappeler plus tard."
        }));
    };
    let lead = if let Some(lead) = find_lead(calls.store(), call).await? {
        lead
    } else {
        let new = NewCall {
            call_sid: call
                .twilio_call_sid
                .as_deref()
                .and_then(|s| CallSid::try_from(s).ok()),
            from: call.customer_number.clone(),
            direction: Some("inbound".to_owned()),
            mode: Some(ConversationMode::Bridge),
            vapi_call_id: call.vapi_call_id.clone(),
            ..NewCall::default()
        };
        calls.start(&new, calls::greeting(settings)).await?
    };
    Ok(json!({
        "assistantId": assistant_id,
        "assistantOverrides": { "variableValues": {
            "lead_id": lead.id.to_string(),
            "language": lead.language.as_str(),
            "caller_number": call.customer_number.clone().unwrap_or_default(),
        }}
    }))
}

/// Vapi's call status in Twilio's words, so both rank the same way.
fn twilio_status(vapi_status: &str) -> &str {
    match vapi_status {
        "scheduled" | "queued" => "queued",
        "ringing" => "ringing",
        "in-progress" | "forwarding" => "in-progress",
        "ended" => "completed",
        other => other,
    }
}

/// The Twilio call a Vapi message is about.
async fn call_sid_of(store: &AnyStore, call: &CallRef) -> Result<Option<CallSid>, StoreError> {
    if let Some(vapi_id) = &call.vapi_call_id {
        if let Some(record) = store.find_call_by_vapi_id(vapi_id).await? {
            return Ok(Some(record.fields.call_sid));
        }
    }
    Ok(call
        .twilio_call_sid
        .as_deref()
        .and_then(|s| CallSid::try_from(s).ok()))
}

/// `status-update` and `end-of-call-report`: update the call; an ended call with an incomplete lead
/// makes it `abandonne`. A Twilio call the bridge handed to the IVR goes on after Vapi's side ends:
/// its end is Twilio's status callback's to report.
pub async fn call_update(
    calls: &Calls,
    call: &CallRef,
    status: Option<&str>,
    end: &CallEnd,
) -> Result<Value, StoreError> {
    let Some(sid) = call_sid_of(calls.store(), call).await? else {
        tracing::debug!("Vapi call update for a call this gateway does not know");
        return Ok(json!({}));
    };
    let mut update = CallUpdate::new(sid);
    update.vapi_call_id.clone_from(&call.vapi_call_id);
    update.ended_reason.clone_from(&end.ended_reason);
    update.duration = end.duration_seconds;
    update.transcript.clone_from(&end.transcript);
    update.vapi_recording_url.clone_from(&end.recording_url);
    update.vapi_summary.clone_from(&end.summary);
    update.vapi_structured_data.clone_from(&end.structured_data);
    if !end.turns.is_empty() {
        update.vapi_turns = Some(
            end.turns
                .iter()
                .map(|t| crate::store::VapiTurn {
                    speaker: if t.caller { "caller" } else { "assistant" }.to_owned(),
                    text: t.text.clone(),
                    at_ms: t.at_ms,
                })
                .collect(),
        );
    }
    calls
        .report_status(StatusReport {
            update,
            status: status.map(|s| twilio_status(s).to_owned()),
            ends_call: status == Some("ended") || end.ended_reason.is_some(),
            from_bridged_side: true,
            failed: false,
            idempotency_key: None,
        })
        .await?;
    Ok(json!({}))
}

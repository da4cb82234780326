//! What the gateway answers to each Vapi Server-URL message.
//!
//! Tool calls run the same qualification machine as the IVR. A tool call's id is its idempotency
//! key: the answer and the one-line result are stored on the lead's conversation, so a replayed
//! tool call gets the same result and never advances the lead twice.

use serde_json::{Value, json};

use super::messages::{CallEnd, CallRef, TOOL_NAME, ToolCall};
use crate::config::Settings;
use crate::domain::{CallSid, LeadId, PhoneNumber};
use crate::ivr::{
    TERMINAL_RANK, abandon_if_incomplete, call_status_key, finish_call, lead_key, status_rank,
};
use crate::locks::KeyedLocks;
use crate::qualification::{Lead, Speaker, Turn, machine, prompts};
use crate::store::{AnyStore, CallUpdate, Store, StoreError};

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

/// `tool-calls`: one result per call, in order; errors as `results[].error` (Vapi ignores non-200).
pub async fn tool_calls(
    store: &AnyStore,
    locks: &KeyedLocks,
    call: &CallRef,
    calls: &[ToolCall],
) -> Result<Value, StoreError> {
    let found = find_lead(store, call).await?;
    // The IVR and status callbacks may touch the same lead: one change at a time, on fresh data.
    let _lead_lock = match &found {
        Some(lead) => Some(locks.lock(&lead_key(lead.id)).await),
        None => None,
    };
    let mut lead = match found {
        Some(lead) => Some(store.get_lead(lead.id).await?.unwrap_or(lead)),
        None => None,
    };
    let mut changed = false;
    let mut progress = Vec::new();
    let mut results = Vec::with_capacity(calls.len());
    for tool_call in calls {
        if tool_call.name != TOOL_NAME {
            results.push(error_result(
                &tool_call.id,
                &format!("unknown tool; this server handles {TOOL_NAME}"),
            ));
            continue;
        }
        let Some(lead) = lead.as_mut() else {
            results.push(error_result(
                &tool_call.id,
                "unknown lead: no call, lead_id or CallSid of this call is known",
            ));
            continue;
        };
        if let Some(result) = replayed(lead, &tool_call.id) {
            results.push(json!({ "toolCallId": tool_call.id, "result": result }));
            continue;
        }
        let Some(answer) = answer_of(tool_call) else {
            results.push(error_result(&tool_call.id, "missing argument: reponse"));
            continue;
        };
        crate::telemetry::set_call_context(None, Some(lead.id));
        let asked = lead.current_field();
        let outcome = machine::process_response(lead, answer, &[]);
        tracing::info!(
            lead_id = %lead.id,
            tool_call_id = %tool_call.id,
            status = ?outcome.status,
            reponse = %crate::redact::Personal(answer),
            "Vapi tool call processed"
        );
        progress.push(crate::metrics::Progress::of(asked, lead, &outcome));
        // serde_json writes no line breaks: the one-line string Vapi requires.
        let result =
            serde_json::to_string(&outcome).map_err(|e| StoreError::Local(e.to_string()))?;
        let len = lead.conversation.len();
        if let [.., caller, myriam] = &mut lead.conversation[..] {
            caller.tool_call_id = Some(tool_call.id.clone());
            myriam.tool_call_id = Some(tool_call.id.clone());
            myriam.result = Some(result.clone());
        }
        debug_assert!(len >= 2);
        changed = true;
        results.push(json!({ "toolCallId": tool_call.id, "result": result }));
    }
    if changed {
        if let Some(lead) = &lead {
            store.upsert_lead(lead).await?;
        }
    }
    progress
        .into_iter()
        .for_each(crate::metrics::Progress::record);
    Ok(json!({ "results": results }))
}

/// `assistant-request` (numbers owned by Vapi): a lead (and a call when the CallSid is known), then
/// the assistant with the lead id in `variableValues`.
pub async fn assistant_request(
    store: &AnyStore,
    settings: &Settings,
    call: &CallRef,
) -> Result<Value, StoreError> {
    let Some(assistant_id) = &settings.vapi.assistant_id else {
        return Ok(json!({
            "error": "Désolée, notre réceptionniste n'est pas disponible pour le moment. Merci de rappeler plus tard."
        }));
    };
    let lead = if let Some(lead) = find_lead(store, call).await? {
        lead
    } else {
        let offered = call
            .customer_number
            .as_deref()
            .and_then(|n| PhoneNumber::try_from(n).ok());
        let mut lead = Lead::new(LeadId::new()).with_offered_phone(offered);
        lead.conversation.push(Turn::myriam(
            lead.current_field(),
            prompts::opening(lead.language),
        ));
        store.upsert_lead(&lead).await?;
        if let Some(sid) = call
            .twilio_call_sid
            .as_deref()
            .and_then(|s| CallSid::try_from(s).ok())
        {
            let mut update = CallUpdate::new(sid);
            update.lead_id = Some(lead.id);
            update.vapi_call_id.clone_from(&call.vapi_call_id);
            update.from_number.clone_from(&call.customer_number);
            update.mode = Some(crate::domain::ConversationMode::Bridge);
            update.direction = Some("inbound".to_owned());
            store.upsert_call(&update).await?;
        }
        lead
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

async fn end_lead_if_incomplete(
    store: &AnyStore,
    locks: &KeyedLocks,
    call: &CallRef,
) -> Result<(), StoreError> {
    if let Some(lead) = find_lead(store, call).await? {
        abandon_if_incomplete(store, locks, lead).await?;
    }
    Ok(())
}

/// `status-update` and `end-of-call-report`: update the call; an ended call with an incomplete lead
/// makes it `abandonne`.
pub async fn call_update(
    store: &AnyStore,
    locks: &KeyedLocks,
    call: &CallRef,
    status: Option<&str>,
    end: &CallEnd,
) -> Result<Value, StoreError> {
    let Some(sid) = call_sid_of(store, call).await? else {
        tracing::debug!("Vapi call update for a call this gateway does not know");
        return Ok(json!({}));
    };
    let _call_lock = locks.lock(&call_status_key(&sid)).await;
    let current = store.get_call(&sid).await?;
    let current_rank = current
        .as_ref()
        .and_then(|c| c.fields.status.as_deref())
        .map_or(0, status_rank);
    let mut update = CallUpdate::new(sid.clone());
    update.vapi_call_id.clone_from(&call.vapi_call_id);
    if let Some(status) = status.map(twilio_status) {
        if status_rank(status) >= current_rank {
            update.status = Some(status.to_owned());
        }
    }
    update.ended_reason.clone_from(&end.ended_reason);
    update.duration = end.duration_seconds;
    update.transcript.clone_from(&end.transcript);
    update.recording_url.clone_from(&end.recording_url);
    store.upsert_call(&update).await?;
    // A Twilio call the bridge handed to the IVR goes on after Vapi's side ends: its end is
    // Twilio's status callback's to report.
    let handed_to_ivr =
        current.as_ref().and_then(|c| c.fields.mode) == Some(crate::domain::ConversationMode::Ivr);
    let ended = (status == Some("ended") || end.ended_reason.is_some()) && !handed_to_ivr;
    if ended {
        if current_rank == TERMINAL_RANK {
            end_lead_if_incomplete(store, locks, call).await?;
        } else {
            if update.status.is_none() {
                // An end-of-call-report without a status still ends the call.
                let mut ended = CallUpdate::new(sid.clone());
                ended.status = Some("completed".to_owned());
                store.upsert_call(&ended).await?;
            }
            let mode = current.as_ref().and_then(|c| c.fields.mode);
            finish_call(store, locks, &sid, mode, false).await?;
        }
    }
    Ok(json!({}))
}

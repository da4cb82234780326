//! Vapi Server-URL messages, parsed once at the edge into [`ServerMessage`].
//!
//! Vapi changes its payloads often: parsing is lenient (unknown fields ignored, unknown types kept
//! as [`ServerMessage::Other`]), and tool-call arguments are accepted in every shape seen in the
//! wild: `function.arguments` as an object or a JSON string, flattened `parameters` / `arguments`,
//! from `toolCallList`, `toolWithToolCallList` or the legacy `toolCalls`.

use serde_json::{Map, Value};

/// The tool the assistant calls with each answer.
pub const TOOL_NAME: &str = "enregistrer_reponse";

/// The tool the assistant calls when the caller asks for a person.
pub const TRANSFER_TOOL_NAME: &str = "transfer_to_human";

/// One tool call from the assistant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Map<String, Value>,
}

/// How to find the lead a message is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallRef {
    /// `message.call.id`.
    pub vapi_call_id: Option<String>,
    /// `assistantOverrides.variableValues.lead_id` (or `artifact.variableValues.lead_id`).
    pub lead_id: Option<String>,
    /// `call.phoneCallProviderId`: the Twilio CallSid, for calls Vapi places through Twilio.
    pub twilio_call_sid: Option<String>,
    /// `call.customer.number` (or `message.customer.number`).
    pub customer_number: Option<String>,
}

/// One turn of the call's transcript (`artifact.messages[]` of role `bot` or `user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// The caller said it (`user`); otherwise the assistant (`bot`, `assistant`).
    pub caller: bool,
    pub text: String,
    /// `secondsFromStart` in milliseconds.
    pub at_ms: Option<u64>,
}

/// Most turns kept from one report, and the longest text kept of one turn (characters).
pub const MAX_TURNS: usize = 500;
pub const MAX_TURN_CHARS: usize = 4_000;
/// Longest summary kept (characters); the structured data is kept up to this many bytes of JSON.
pub const MAX_SUMMARY_CHARS: usize = 8_000;
pub const MAX_STRUCTURED_BYTES: usize = 32 * 1024;

/// End-of-call facts worth storing. Every part is optional: a partial report keeps what it has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallEnd {
    pub ended_reason: Option<String>,
    pub duration_seconds: Option<u32>,
    pub transcript: Option<String>,
    pub recording_url: Option<String>,
    /// `analysis.summary` (or the legacy top-level `summary`).
    pub summary: Option<String>,
    /// `analysis.structuredData` when it is a JSON object (or the legacy top-level one).
    pub structured_data: Option<Value>,
    /// `artifact.messages` (or the legacy top-level `messages`), bot and user turns only.
    pub turns: Vec<Turn>,
}

/// A Vapi Server-URL message.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    ToolCalls {
        call: CallRef,
        calls: Vec<ToolCall>,
        /// The earlier tool calls of the call that the history says were answered with a result
        /// (not an error), in the order they were made: their answers must already be on the lead.
        earlier: Vec<ToolCall>,
    },
    AssistantRequest {
        call: CallRef,
    },
    StatusUpdate {
        call: CallRef,
        status: String,
        ended_reason: Option<String>,
    },
    EndOfCallReport {
        call: CallRef,
        end: CallEnd,
    },
    /// Any other type (logged and acknowledged).
    Other {
        kind: String,
    },
}

/// Why a body is not a Vapi message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the body is not JSON")]
    NotJson,
    #[error("the body has no message.type")]
    NoType,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn owned(v: &Value, path: &[&str]) -> Option<String> {
    str_at(v, path).map(str::to_owned)
}

fn call_ref(message: &Value) -> CallRef {
    let variables = |root: &[&str]| {
        let mut path = root.to_vec();
        path.push("lead_id");
        owned(message, &path)
    };
    CallRef {
        vapi_call_id: owned(message, &["call", "id"]),
        lead_id: variables(&["call", "assistantOverrides", "variableValues"])
            .or_else(|| variables(&["assistant", "variableValues"]))
            .or_else(|| variables(&["artifact", "variableValues"]))
            .or_else(|| variables(&["call", "metadata"])),
        twilio_call_sid: owned(message, &["call", "phoneCallProviderId"]),
        customer_number: owned(message, &["call", "customer", "number"])
            .or_else(|| owned(message, &["customer", "number"])),
    }
}

/// Arguments as an object whether they came as an object or a JSON string.
fn arguments(value: Option<&Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default(),
        _ => Map::new(),
    }
}

fn tool_call(element: &Value) -> Option<ToolCall> {
    let id = owned(element, &["id"])?;
    let (name, args) = if let Some(function) = element.get("function") {
        (
            owned(function, &["name"]),
            arguments(
                function
                    .get("arguments")
                    .or_else(|| function.get("parameters")),
            ),
        )
    } else {
        (
            owned(element, &["name"]),
            arguments(
                element
                    .get("parameters")
                    .or_else(|| element.get("arguments")),
            ),
        )
    };
    Some(ToolCall {
        id,
        name: name.unwrap_or_default(),
        arguments: args,
    })
}

fn tool_calls(message: &Value) -> Vec<ToolCall> {
    let mut out: Vec<ToolCall> = Vec::new();
    let mut push = |call: ToolCall| {
        if !out.iter().any(|c| c.id == call.id) {
            out.push(call);
        }
    };
    for element in message
        .get("toolCallList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = tool_call(element) {
            push(c);
        }
    }
    for element in message
        .get("toolWithToolCallList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = element.get("toolCall").and_then(tool_call) {
            push(c);
        }
    }
    for element in message
        .get("toolCalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = tool_call(element) {
            push(c);
        }
    }
    out
}

fn truncated(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Bot and user turns of a message list, in order; system prompts and tool calls are left out.
fn turns(message: &Value) -> Vec<Turn> {
    let list = message
        .get("artifact")
        .and_then(|a| a.get("messages"))
        .and_then(Value::as_array)
        .or_else(|| message.get("messages").and_then(Value::as_array));
    list.into_iter()
        .flatten()
        .filter_map(|m| {
            let caller = match str_at(m, &["role"])? {
                "user" => true,
                "bot" | "assistant" => false,
                _ => return None,
            };
            let text = str_at(m, &["message"]).or_else(|| str_at(m, &["content"]))?;
            let at_ms = m
                .get("secondsFromStart")
                .and_then(Value::as_f64)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let ms = (s * 1000.0).round().min(1e15) as u64;
                    ms
                });
            Some(Turn {
                caller,
                text: truncated(text, MAX_TURN_CHARS),
                at_ms,
            })
        })
        .take(MAX_TURNS)
        .collect()
}

fn structured_data(message: &Value) -> Option<Value> {
    let data = message
        .get("analysis")
        .and_then(|a| a.get("structuredData"))
        .or_else(|| message.get("structuredData"))?;
    // An object with something in it, not too large to show; a string holding JSON is read too.
    let data = match data {
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
        other => other.clone(),
    };
    (data.as_object().is_some_and(|o| !o.is_empty())
        && data.to_string().len() <= MAX_STRUCTURED_BYTES)
        .then_some(data)
}

/// The call's message history as Vapi sends it with a tool call: `artifact.messages` (roles
/// `tool_calls` with `toolCalls[]`, `tool_call_result` with `toolCallId` and `result`), else the
/// OpenAI-formatted copy (`assistant` with `tool_calls[]`, `tool` with `tool_call_id` and
/// `content`), else the legacy top-level `messages`.
fn history(message: &Value) -> impl Iterator<Item = &Value> {
    [
        &["artifact", "messages"][..],
        &["artifact", "messagesOpenAIFormatted"][..],
        &["messages"][..],
        &["messagesOpenAIFormatted"][..],
    ]
    .into_iter()
    .find_map(|path| {
        let mut cur = message;
        for key in path {
            cur = cur.get(key)?;
        }
        cur.as_array().filter(|a| !a.is_empty())
    })
    .into_iter()
    .flatten()
}

/// Whether a result the history holds is one of this gateway's results (a JSON object), rather
/// than an error (Vapi records `results[].error` as plain text; the assistant then asks again).
fn is_answered(result: &Value) -> bool {
    let text = match result {
        Value::String(s) => s.as_str(),
        Value::Object(_) => return true,
        _ => return false,
    };
    serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object())
}

/// The earlier tool calls (not in `current`) the history shows answered with a result, in order.
fn answered_earlier(message: &Value, current: &[ToolCall]) -> Vec<ToolCall> {
    let mut made: Vec<ToolCall> = Vec::new();
    let mut answered: Vec<String> = Vec::new();
    for entry in history(message) {
        let role = str_at(entry, &["role"]).unwrap_or_default();
        for list in ["toolCalls", "tool_calls"] {
            for element in entry
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(call) = tool_call(element) {
                    if !made.iter().any(|c| c.id == call.id) {
                        made.push(call);
                    }
                }
            }
        }
        if matches!(role, "tool_call_result" | "tool") {
            let id = owned(entry, &["toolCallId"]).or_else(|| owned(entry, &["tool_call_id"]));
            let result = entry.get("result").or_else(|| entry.get("content"));
            if let (Some(id), Some(result)) = (id, result) {
                if is_answered(result) {
                    answered.push(id);
                }
            }
        }
    }
    made.into_iter()
        .filter(|c| answered.contains(&c.id) && !current.iter().any(|n| n.id == c.id))
        .collect()
}

fn call_end(message: &Value) -> CallEnd {
    let duration = message
        .get("durationSeconds")
        .and_then(Value::as_f64)
        .or_else(|| {
            message
                .get("call")
                .and_then(|c| c.get("duration"))
                .and_then(Value::as_f64)
        })
        .or_else(|| {
            let start = str_at(message, &["startedAt"])?;
            let end = str_at(message, &["endedAt"])?;
            let fmt = time::format_description::well_known::Rfc3339;
            let d = time::OffsetDateTime::parse(end, &fmt).ok()?
                - time::OffsetDateTime::parse(start, &fmt).ok()?;
            Some(d.as_seconds_f64())
        })
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(|d| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let secs = d.round().min(f64::from(u32::MAX)) as u32;
            secs
        });
    CallEnd {
        ended_reason: owned(message, &["endedReason"]),
        duration_seconds: duration,
        transcript: owned(message, &["artifact", "transcript"])
            .or_else(|| owned(message, &["transcript"])),
        recording_url: owned(message, &["artifact", "recording", "mono", "combinedUrl"])
            .or_else(|| owned(message, &["artifact", "recordingUrl"]))
            .or_else(|| owned(message, &["recordingUrl"])),
        summary: str_at(message, &["analysis", "summary"])
            .or_else(|| str_at(message, &["summary"]))
            .map(|s| truncated(s, MAX_SUMMARY_CHARS)),
        structured_data: structured_data(message),
        turns: turns(message),
    }
}

impl ServerMessage {
    /// Parses a webhook body: `{"message": {"type": …, …}}`.
    pub fn parse(body: &[u8]) -> Result<Self, MessageError> {
        let root: Value = serde_json::from_slice(body).map_err(|_| MessageError::NotJson)?;
        let message = root.get("message").unwrap_or(&root);
        let kind = str_at(message, &["type"]).ok_or(MessageError::NoType)?;
        Ok(match kind {
            "tool-calls" => {
                let calls = tool_calls(message);
                let earlier = answered_earlier(message, &calls);
                ServerMessage::ToolCalls {
                    call: call_ref(message),
                    calls,
                    earlier,
                }
            }
            "assistant-request" => ServerMessage::AssistantRequest {
                call: call_ref(message),
            },
            "status-update" => ServerMessage::StatusUpdate {
                call: call_ref(message),
                status: owned(message, &["status"]).unwrap_or_default(),
                ended_reason: owned(message, &["endedReason"]),
            },
            "end-of-call-report" => ServerMessage::EndOfCallReport {
                call: call_ref(message),
                end: call_end(message),
            },
            other => ServerMessage::Other {
                kind: other.chars().take(64).collect(),
            },
        })
    }

    /// The message type, for logs and metrics.
    pub fn kind(&self) -> &str {
        match self {
            ServerMessage::ToolCalls { .. } => "tool-calls",
            ServerMessage::AssistantRequest { .. } => "assistant-request",
            ServerMessage::StatusUpdate { .. } => "status-update",
            ServerMessage::EndOfCallReport { .. } => "end-of-call-report",
            ServerMessage::Other { kind } => kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: &Value) -> ServerMessage {
        ServerMessage::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn tool_calls_in_every_shape() {
        let message = json!({"message": {
            "type": "tool-calls",
            "call": {"id": "vapi-1", "phoneCallProviderId": "CA0123456789abcdef0123456789abcdef",
                     "assistantOverrides": {"variableValues": {"lead_id": "L-1"}},
                     "customer": {"number": "+15145550199"}},
            "toolCallList": [
                {"id": "t1", "type": "function", "function": {"name": "enregistrer_reponse", "arguments": "{\"reponse\":\"Jean\"}"}},
                {"id": "t2", "type": "function", "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "oui"}}},
                {"id": "t3", "name": "enregistrer_reponse", "parameters": {"reponse": "H2X 1Y4"}}
            ],
            "toolWithToolCallList": [
                {"type": "function", "toolCall": {"id": "t1", "function": {"name": "enregistrer_reponse", "arguments": "{}"}}},
                {"type": "function", "toolCall": {"id": "t4", "name": "autre", "arguments": {"x": 1}}}
            ]
        }});
        let ServerMessage::ToolCalls { call, calls, .. } = parse(&message) else {
            panic!("tool-calls");
        };
        assert_eq!(call.vapi_call_id.as_deref(), Some("vapi-1"));
        assert_eq!(call.lead_id.as_deref(), Some("L-1"));
        assert_eq!(
            call.twilio_call_sid.as_deref(),
            Some("CA0123456789abcdef0123456789abcdef")
        );
        let ids: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["t1", "t2", "t3", "t4"],
            "deduplicated across lists, in order"
        );
        assert_eq!(calls[0].arguments["reponse"], "Jean");
        assert_eq!(calls[1].arguments["reponse"], "oui");
        assert_eq!(calls[2].arguments["reponse"], "H2X 1Y4");
        assert_eq!(calls[3].name, "autre");
    }

    #[test]
    fn earlier_answered_tool_calls_come_from_the_history() {
        let history = json!([
            {"role": "bot", "message": "Votre nom?"},
            {"role": "tool_calls", "toolCalls": [
                {"id": "t1", "type": "function", "function": {"name": "enregistrer_reponse", "arguments": "{\"reponse\":\"Jean\"}"}}]},
            {"role": "tool_call_result", "toolCallId": "t1", "name": "enregistrer_reponse", "result": "{\"success\":true}"},
            {"role": "tool_calls", "toolCalls": [
                {"id": "t2", "type": "function", "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "oui"}}}]},
            {"role": "tool_call_result", "toolCallId": "t2", "result": "unknown lead: no call"},
            {"role": "tool_calls", "toolCalls": [
                {"id": "t3", "type": "function", "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "oui"}}}]},
            {"role": "tool_call_result", "toolCallId": "t3", "result": "{\"success\":true}"},
            {"role": "tool_calls", "toolCalls": [
                {"id": "t4", "type": "function", "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "H2X"}}}]}
        ]);
        let current = json!([{"id": "t4", "type": "function",
            "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "H2X"}}}]);
        for message in [
            json!({"message": {"type": "tool-calls", "toolCallList": current, "artifact": {"messages": history}}}),
            json!({"message": {"type": "tool-calls", "toolCallList": current, "messages": history}}),
        ] {
            let ServerMessage::ToolCalls { earlier, .. } = parse(&message) else {
                panic!("tool-calls");
            };
            let ids: Vec<&str> = earlier.iter().map(|c| c.id.as_str()).collect();
            assert_eq!(
                ids,
                ["t1", "t3"],
                "answered, not errors, not the current one"
            );
            assert_eq!(earlier[0].arguments["reponse"], "Jean");
        }
        // The OpenAI-formatted copy.
        let ServerMessage::ToolCalls { earlier, .. } = parse(&json!({"message": {
        "type": "tool-calls", "toolCallList": current,
        "artifact": {"messagesOpenAIFormatted": [
            {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                "function": {"name": "enregistrer_reponse", "arguments": "{\"reponse\":\"Jean\"}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "{\"success\":true}"}
        ]}}})) else {
            panic!("tool-calls");
        };
        assert_eq!(earlier.len(), 1);
        assert_eq!(earlier[0].arguments["reponse"], "Jean");
    }

    #[test]
    fn end_of_call_report_prefers_artifact_and_computes_duration() {
        let ServerMessage::EndOfCallReport { end, .. } = parse(&json!({"message": {
            "type": "end-of-call-report",
            "endedReason": "customer-ended-call",
            "startedAt": "2026-11-22T10:00:00Z", "endedAt": "2026-11-22T10:02:05.400Z",
            "artifact": {"transcript": "AI: Bonjour\nUser: Allo",
                         "recording": {"mono": {"combinedUrl": "https://rec/1.wav"}}},
            "recordingUrl": "https://legacy"
        }})) else {
            panic!("eocr");
        };
        assert_eq!(
            end,
            CallEnd {
                ended_reason: Some("customer-ended-call".into()),
                duration_seconds: Some(125),
                transcript: Some("AI: Bonjour\nUser: Allo".into()),
                recording_url: Some("https://rec/1.wav".into()),
                ..CallEnd::default()
            }
        );
    }

    #[test]
    fn end_of_call_report_keeps_the_summary_the_structured_data_and_the_turns() {
        let ServerMessage::EndOfCallReport { end, .. } = parse(&json!({"message": {
            "type": "end-of-call-report", "endedReason": "assistant-ended-call",
            "artifact": {"messages": [
                {"role": "system", "message": "Tu es Myriam", "secondsFromStart": 0},
                {"role": "bot", "message": "Bonjour!", "secondsFromStart": 0.52},
                {"role": "user", "message": " Allo ", "secondsFromStart": 3.1},
                {"role": "tool_calls", "toolCalls": []},
                {"role": "user", "message": ""},
                {"role": "user", "message": "oui", "secondsFromStart": "x"}
            ]},
            "analysis": {"summary": "Demande d'abattage.", "structuredData": {"urgent": true}}
        }})) else {
            panic!("eocr");
        };
        assert_eq!(end.summary.as_deref(), Some("Demande d'abattage."));
        assert_eq!(end.structured_data, Some(json!({"urgent": true})));
        assert_eq!(
            end.turns,
            vec![
                Turn {
                    caller: false,
                    text: "Bonjour!".into(),
                    at_ms: Some(520)
                },
                Turn {
                    caller: true,
                    text: "Allo".into(),
                    at_ms: Some(3100)
                },
                Turn {
                    caller: true,
                    text: "oui".into(),
                    at_ms: None
                },
            ]
        );
        // Partial or odd analyses: what is usable is kept, the rest left out.
        for (analysis, summary, data) in [
            (json!({}), None, None),
            (json!(null), None, None),
            (json!({"summary": 3, "structuredData": []}), None, None),
            (
                json!({"structuredData": "{\"a\": 1}"}),
                None,
                Some(json!({"a": 1})),
            ),
            (json!({"structuredData": {}}), None, None),
            (json!({"summary": "  "}), None, None),
        ] {
            let ServerMessage::EndOfCallReport { end, .. } = parse(&json!({"message": {
                "type": "end-of-call-report", "analysis": analysis
            }})) else {
                panic!("eocr");
            };
            assert_eq!((end.summary, end.structured_data), (summary, data));
            assert!(end.turns.is_empty());
        }
    }

    #[test]
    fn unknown_types_and_bad_bodies() {
        assert_eq!(
            parse(&json!({"message": {"type": "speech-update", "status": "started"}})),
            ServerMessage::Other {
                kind: "speech-update".into()
            }
        );
        assert_eq!(
            ServerMessage::parse(b"not json"),
            Err(MessageError::NotJson)
        );
        assert_eq!(
            ServerMessage::parse(b"{\"message\":{}}"),
            Err(MessageError::NoType)
        );
    }

    proptest::proptest! {
        #[test]
        fn no_body_panics_the_parser(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            let _ = ServerMessage::parse(&body);
        }

        #[test]
        fn no_json_shape_panics_the_parser(text in "\\PC{0,512}") {
            let body = format!("{{\"message\":{{\"type\":\"tool-calls\",\"toolCallList\":[{{\"id\":\"x\",\"function\":{{\"arguments\":{}}}}}]}}}}", serde_json::to_string(&text).unwrap());
            let _ = ServerMessage::parse(body.as_bytes());
        }
    }
}

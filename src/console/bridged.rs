//! A bridged call on the lead page: what Vapi sent at the end of the call (its end-of-call
//! report) — the ended reason in French, its recording as a link (a URL at Vapi, not a voicemail:
//! the voicemail plays through the gateway's proxy), the summary, the structured data as a
//! definition list and the transcript as turns.

use std::fmt::Write as _;

use serde_json::Value;

use super::html::{Esc, local_time};
use crate::store::{CallRecord, VapiTurn};

/// Vapi's `endedReason` in French. Vapi's list is long and grows: unknown values get a group
/// (an error at Vapi, the assistant could not start) or "autre raison"; the code itself is shown
/// beside the label for support.
pub fn ended_reason_label(reason: &str) -> &'static str {
    match reason {
        "customer-ended-call" => "l'appelant a raccroché",
        "assistant-ended-call"
        | "assistant-said-end-call-phrase"
        | "assistant-ended-call-after-message-spoken"
        | "assistant-ended-call-with-hangup-task" => "Myriam a terminé l'appel",
        "assistant-forwarded-call" => "transféré par Myriam",
        "silence-timed-out" => "silence trop long",
        "exceeded-max-duration" => "durée maximale atteinte",
        "manually-canceled" => "annulé manuellement",
        "customer-did-not-answer" => "pas de réponse",
        "customer-busy" => "occupé",
        "voicemail" => "boîte vocale",
        "phone-call-provider-closed-websocket" => "la ligne téléphonique a coupé",
        "call.in-progress.twilio-completed-call" => "terminé par Twilio",
        "twilio-failed-to-connect-call" => "Twilio n'a pas pu établir l'appel",
        "worker-shutdown" => "serveur de Vapi arrêté",
        r if r.starts_with("assistant-request") => "l'assistante n'a pas pu démarrer",
        r if r.contains("error") || r.contains("fault") => "erreur chez Vapi",
        _ => "autre raison",
    }
}

/// The ended reason as a page shows it: the French label and the code.
pub fn ended_reason_html(reason: Option<&str>) -> String {
    reason.map_or_else(
        || "—".to_owned(),
        |r| {
            format!(
                r#"{} <span class="muted">({})</span>"#,
                ended_reason_label(r),
                Esc(r)
            )
        },
    )
}

/// Vapi's recording as a link (never a player: the proxy only plays Twilio voicemails).
pub fn recording_link(url: Option<&str>) -> String {
    match url {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => format!(
            r#"<a href="{}" rel="noreferrer noopener">enregistrement chez Vapi</a>"#,
            Esc(u)
        ),
        Some(u) => Esc(u).to_string(),
        None => "—".to_owned(),
    }
}

/// `field_name` → `field name`.
fn key_label(key: &str) -> String {
    key.replace(['_', '-'], " ")
}

/// One value of the structured data: text, oui/non, numbers, lists, nested lists (bounded depth).
fn value_html(value: &Value, depth: usize) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::Bool(true) => "oui".to_owned(),
        Value::Bool(false) => "non".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.trim().is_empty() => "—".to_owned(),
        Value::String(s) => Esc(s).to_string(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => items
            .iter()
            .map(|i| value_html(i, depth + 1))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(_) if depth < 3 => definition_list(value, depth + 1),
        other => format!("<code>{}</code>", Esc(&other.to_string())),
    }
}

/// A JSON object as `<dl>`: its keys in Vapi's order.
fn definition_list(value: &Value, depth: usize) -> String {
    let Some(object) = value.as_object() else {
        return value_html(value, depth);
    };
    let mut out = String::from(r#"<dl class="fields">"#);
    for (key, v) in object {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            Esc(&key_label(key)),
            value_html(v, depth)
        );
    }
    out.push_str("</dl>");
    out
}

/// `m:ss` from the start of the call.
fn offset(at_ms: Option<u64>) -> String {
    at_ms.map_or_else(String::new, |ms| {
        let s = ms / 1000;
        format!(r#"<span class="muted">{}:{:02}</span> "#, s / 60, s % 60)
    })
}

fn turns_html(turns: &[VapiTurn]) -> String {
    let mut out = String::from(r#"<ol class="conversation">"#);
    for t in turns {
        let who = if t.speaker == "caller" {
            "Appelant"
        } else {
            "Myriam"
        };
        let _ = write!(
            out,
            "<li>{}<strong>{who}</strong> : {}</li>",
            offset(t.at_ms),
            Esc(&t.text)
        );
    }
    out.push_str("</ol>");
    out
}

/// The section of one call Vapi handled, or nothing when Vapi sent nothing about it.
pub fn call_section(call: &CallRecord, n: usize) -> String {
    let f = &call.fields;
    let from_vapi = f.vapi_call_id.is_some()
        || f.vapi_summary.is_some()
        || f.vapi_turns.is_some()
        || f.vapi_structured_data.is_some()
        || f.vapi_recording_url.is_some();
    if !from_vapi && f.transcript.is_none() {
        return String::new();
    }
    let mut body = format!(
        r#"<section class="bridged" aria-labelledby="h-bridged-{n}"><h3 id="h-bridged-{n}">Appel avec Myriam (Vapi) {}</h3><dl class="fields"><dt>Fin de l'appel</dt><dd>{}</dd><dt>Enregistrement</dt><dd>{}</dd></dl>"#,
        call.created_at.map(local_time).unwrap_or_default(),
        ended_reason_html(f.ended_reason.as_deref()),
        recording_link(f.vapi_recording_url.as_deref()),
    );
    if let Some(summary) = &f.vapi_summary {
        let _ = write!(body, "<h4>Résumé</h4><p>{}</p>", Esc(summary));
    }
    if let Some(data) = &f.vapi_structured_data {
        let _ = write!(
            body,
            "<h4>Données structurées</h4>{}",
            definition_list(data, 0)
        );
    }
    match (&f.vapi_turns, &f.transcript) {
        (Some(turns), _) if !turns.is_empty() => {
            let _ = write!(body, "<h4>Transcription</h4>{}", turns_html(turns));
        }
        (_, Some(transcript)) => {
            let _ = write!(
                body,
                r#"<h4>Transcription</h4><pre class="transcript">{}</pre>"#,
                Esc(transcript)
            );
        }
        _ => {}
    }
    body.push_str("</section>");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_data_is_a_definition_list_escaped() {
        let html = definition_list(
            &serde_json::json!({"type_service": "abattage", "urgent": true, "arbres": 2,
                                "note": "<b>", "lieux": ["cour", "rue"], "vide": null,
                                "adresse": {"ville": "Laval"}}),
            0,
        );
        for part in [
            "<dt>type service</dt><dd>abattage</dd>",
            "<dt>urgent</dt><dd>oui</dd>",
            "<dt>arbres</dt><dd>2</dd>",
            "<dt>note</dt><dd>&lt;b&gt;</dd>",
            "<dt>lieux</dt><dd>cour, rue</dd>",
            "<dt>vide</dt><dd>—</dd>",
            r#"<dt>adresse</dt><dd><dl class="fields"><dt>ville</dt><dd>Laval</dd></dl></dd>"#,
        ] {
            assert!(html.contains(part), "{part} in {html}");
        }
    }

    #[test]
    fn ended_reasons_in_french() {
        assert_eq!(
            ended_reason_label("customer-ended-call"),
            "l'appelant a raccroché"
        );
        assert_eq!(
            ended_reason_label("pipeline-error-openai-llm-failed"),
            "erreur chez Vapi"
        );
        assert_eq!(ended_reason_label("something-new"), "autre raison");
        assert!(ended_reason_html(Some("<x>")).contains("&lt;x&gt;"));
    }
}

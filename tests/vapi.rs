//! `POST /vapi/webhook` over real HTTP: both authentication schemes per environment, every message
//! type, both tool-call argument shapes, replays, and bad input.

mod helpers;

use helpers::{TestApp, spawn_app_with};
use myriam::config::Settings;
use myriam::domain::{CallSid, LeadId, LeadStatus, PhoneNumber};
use myriam::environment::Environment;
use myriam::qualification::Lead;
use myriam::store::{CallUpdate, Store};
use myriam::vapi::auth::hmac_signature;
use secrecy::SecretString;
use serde_json::{Value, json};

const SECRET: &str = "vapi-shared-secret-for-tests";

fn production(s: &mut Settings) {
    s.environment = Environment::Production;
    s.vapi.server_secret = Some(SecretString::from(SECRET.to_owned()));
    s.vapi.assistant_id = Some("0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b".to_owned());
}

enum Auth<'a> {
    Secret(&'a str),
    Bearer(&'a str),
    Hmac { secret: &'a str, timestamp: i64 },
    None,
}

async fn post(app: &TestApp, body: &str, auth: Auth<'_>) -> (u16, String) {
    let mut request = app
        .client
        .post(app.url("/vapi/webhook"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    request = match auth {
        Auth::Secret(s) => request.header("x-vapi-secret", s),
        Auth::Bearer(s) => request.header("authorization", format!("Bearer {s}")),
        Auth::Hmac { secret, timestamp } => {
            let ts = timestamp.to_string();
            request
                .header("x-timestamp", &ts)
                .header("x-signature", hmac_signature(secret, &ts, body.as_bytes()))
        }
        Auth::None => request,
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn send(app: &TestApp, message: &Value) -> Value {
    let (status, body) = post(app, &message.to_string(), Auth::Secret(SECRET)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn both_authentication_schemes_per_environment() {
    let app = spawn_app_with(production).await;
    let body = json!({"message": {"type": "speech-update", "status": "started"}}).to_string();
    assert_eq!(
        post(&app, &body, Auth::Secret(SECRET)).await,
        (200, "{}".to_owned())
    );
    assert_eq!(post(&app, &body, Auth::Bearer(SECRET)).await.0, 200);
    assert_eq!(
        post(
            &app,
            &body,
            Auth::Hmac {
                secret: SECRET,
                timestamp: now()
            }
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &app,
            &body,
            Auth::Hmac {
                secret: SECRET,
                timestamp: now() * 1000
            }
        )
        .await
        .0,
        200,
        "milliseconds accepted"
    );
    assert_eq!(
        post(&app, &body, Auth::None).await,
        (401, "missing x-vapi-secret or x-signature\n".to_owned())
    );
    assert_eq!(
        post(&app, &body, Auth::Secret("wrong")).await,
        (403, "invalid credentials\n".to_owned())
    );
    assert_eq!(
        post(
            &app,
            &body,
            Auth::Hmac {
                secret: "wrong",
                timestamp: now()
            }
        )
        .await
        .0,
        403
    );
    assert_eq!(
        post(
            &app,
            &body,
            Auth::Hmac {
                secret: SECRET,
                timestamp: now() - 600
            }
        )
        .await,
        (
            403,
            "x-timestamp is missing, malformed or too far from now\n".to_owned()
        )
    );

    let test_env = spawn_app_with(|_| {}).await;
    assert_eq!(
        post(&test_env, &body, Auth::None).await.0,
        200,
        "test bypasses"
    );
    let dev_open = spawn_app_with(|s| s.environment = Environment::Development).await;
    assert_eq!(
        post(&dev_open, &body, Auth::None).await.0,
        200,
        "development without a secret"
    );
    let dev_closed = spawn_app_with(|s| {
        production(s);
        s.environment = Environment::Development;
    })
    .await;
    assert_eq!(
        post(&dev_closed, &body, Auth::None).await.0,
        401,
        "development with a secret"
    );
}

#[tokio::test]
async fn bad_bodies() {
    let app = spawn_app_with(production).await;
    assert_eq!(
        post(&app, "{not json", Auth::Secret(SECRET)).await,
        (400, "the body is not JSON\n".to_owned())
    );
    assert_eq!(
        post(&app, "{\"message\":{}}", Auth::Secret(SECRET)).await.0,
        400
    );
    let big = format!(
        "{{\"message\":{{\"type\":\"transcript\",\"transcript\":\"{}\"}}}}",
        "a".repeat(1024 * 1024)
    );
    assert_eq!(post(&app, &big, Auth::Secret(SECRET)).await.0, 413);
    // Just under the limit is fine (end-of-call reports are large).
    let large = format!(
        "{{\"message\":{{\"type\":\"transcript\",\"transcript\":\"{}\"}}}}",
        "a".repeat(900 * 1024)
    );
    assert_eq!(post(&app, &large, Auth::Secret(SECRET)).await.0, 200);
}

/// A lead and its call, as the Twilio side creates them; returns (lead id, call sid).
async fn lead_with_call(app: &TestApp, n: u32, vapi_id: &str) -> (String, String) {
    let sid = format!("CA{n:032x}");
    let call = CallSid::try_from(sid.as_str()).unwrap();
    let lead = Lead::new(LeadId::new())
        .with_offered_phone(Some(PhoneNumber::try_from("+15145550199").unwrap()));
    app.store.save_lead(&lead).await.unwrap();
    let mut update = CallUpdate::new(call);
    update.lead_id = Some(lead.id);
    update.vapi_call_id = Some(vapi_id.to_owned());
    update.status = Some("in-progress".to_owned());
    app.store.upsert_call(&update).await.unwrap();
    (lead.id.to_string(), sid)
}

fn tool_calls(call: &Value, calls: &Value) -> Value {
    json!({"message": {"type": "tool-calls", "call": call, "toolCallList": calls}})
}

fn result_of(v: &Value, i: usize) -> Value {
    serde_json::from_str(v["results"][i]["result"].as_str().expect("a string result")).unwrap()
}

#[tokio::test]
async fn tool_calls_run_the_qualification_in_both_argument_shapes_and_replays_change_nothing() {
    // Test environment: Twilio requests need no signature here, Vapi ones carry the secret anyway.
    let app =
        spawn_app_with(|s| s.vapi.server_secret = Some(SecretString::from(SECRET.to_owned())))
            .await;
    let (lead_id, _) = lead_with_call(&app, 1, "vapi-call-1").await;
    let call = json!({"id": "vapi-call-1"});

    // Arguments as a JSON string.
    let first = send(
        &app,
        &tool_calls(&call, &json!([{"id": "tc-1", "type": "function",
            "function": {"name": "enregistrer_reponse", "arguments": "{\"reponse\":\"je m'appelle Marie-Ève Côté\"}"}}])),
    )
    .await;
    assert_eq!(first["results"][0]["toolCallId"], "tc-1");
    let outcome = result_of(&first, 0);
    assert_eq!(outcome["status"], "continue");
    assert_eq!(outcome["field_updated"], "nom_complet");
    assert_eq!(outcome["next_step"], 2);
    assert_eq!(outcome["lead_data"]["id"], lead_id);
    assert!(
        !first["results"][0]["result"]
            .as_str()
            .unwrap()
            .contains('\n'),
        "one line"
    );

    // Replayed: the same result, and the lead does not move.
    let replay = send(
        &app,
        &tool_calls(&call, &json!([{"id": "tc-1", "type": "function",
            "function": {"name": "enregistrer_reponse", "arguments": "{\"reponse\":\"je m'appelle Marie-Ève Côté\"}"}}])),
    )
    .await;
    assert_eq!(replay, first);

    // Arguments as an object, through toolWithToolCallList, found by lead_id.
    let by_lead = json!({"message": {"type": "tool-calls",
        "call": {"assistantOverrides": {"variableValues": {"lead_id": lead_id}}},
        "toolWithToolCallList": [{"type": "function", "toolCall":
            {"id": "tc-2", "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "oui c'est ça"}}}}]}});
    let second = send(&app, &by_lead).await;
    assert_eq!(result_of(&second, 0)["field_updated"], "telephone");

    // The flattened shape, found by the Twilio CallSid.
    let sid = format!("CA{:032x}", 1);
    let mut answers = vec![
        "4567 boulevard Saint-Laurent Montréal H2X 1Y4",
        "abattage",
        "un érable mort près de la maison",
    ];
    for (i, answer) in answers.drain(..).enumerate() {
        let v = send(
            &app,
            &tool_calls(&json!({"phoneCallProviderId": sid}),
                &json!([{"id": format!("tc-{}", i + 3), "name": "enregistrer_reponse", "parameters": {"reponse": answer}}])),
        )
        .await;
        assert_eq!(result_of(&v, 0)["status"], "continue", "{v}");
    }
    let done = send(
        &app,
        &tool_calls(&call, &json!([{"id": "tc-6", "type": "function",
            "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "oui c'est urgent"}}}])),
    )
    .await;
    let outcome = result_of(&done, 0);
    assert_eq!(outcome["status"], "complete");
    assert_eq!(outcome["is_complete"], true);
    assert_eq!(outcome["lead_data"]["type_service"], "abattage");
    assert_eq!(outcome["lead_data"]["urgence"], true);

    let lead = app
        .store
        .find_lead_by_call(&CallSid::try_from(sid.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.status, LeadStatus::Qualifie);
    assert_eq!(
        lead.conversation.len(),
        6 * 2,
        "six answers and replies, none doubled"
    );
}

#[tokio::test]
async fn unknown_tools_and_leads_are_errors_with_http_200() {
    let app = spawn_app_with(production).await;
    let (lead_id, _) = lead_with_call(&app, 2, "vapi-call-2").await;
    let v = send(
        &app,
        &json!({"message": {"type": "tool-calls",
            "call": {"assistantOverrides": {"variableValues": {"lead_id": lead_id}}},
            "toolCallList": [
                {"id": "a", "type": "function", "function": {"name": "transferCall", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "enregistrer_reponse", "arguments": "{}"}}
            ]}}),
    )
    .await;
    assert_eq!(v["results"][0]["toolCallId"], "a");
    assert!(
        v["results"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown tool")
    );
    assert_eq!(v["results"][1]["error"], "missing argument: reponse");

    let unknown = send(
        &app,
        &tool_calls(
            &json!({"id": "vapi-nobody"}),
            &json!([{"id": "c", "type": "function",
            "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "Jean"}}}]),
        ),
    )
    .await;
    assert!(
        unknown["results"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown lead")
    );
}

#[tokio::test]
async fn assistant_request_creates_the_lead_and_names_the_assistant() {
    let app = spawn_app_with(production).await;
    let sid = format!("CA{:032x}", 3);
    let v = send(
        &app,
        &json!({"message": {"type": "assistant-request",
            "call": {"id": "vapi-call-3", "phoneCallProviderId": sid, "customer": {"number": "+14185550142"}}}}),
    )
    .await;
    assert_eq!(v["assistantId"], "0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b");
    let vars = &v["assistantOverrides"]["variableValues"];
    assert_eq!(vars["caller_number"], "+14185550142");
    assert_eq!(vars["language"], "fr");
    let lead = app
        .store
        .find_lead_by_call(&CallSid::try_from(sid.as_str()).unwrap())
        .await
        .unwrap()
        .expect("lead created with its call");
    assert_eq!(vars["lead_id"], lead.id.to_string());
    assert_eq!(lead.offered_phone.unwrap().as_e164(), "+14185550142");
    let call = app
        .store
        .find_call_by_vapi_id("vapi-call-3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.fields.call_sid.as_str(), sid);

    // Without an assistant configured, Vapi is told what to say instead.
    let bare = spawn_app_with(|s| {
        production(s);
        s.vapi.assistant_id = None;
    })
    .await;
    let v = send(
        &bare,
        &json!({"message": {"type": "assistant-request", "call": {"id": "x"}}}),
    )
    .await;
    assert!(v["error"].as_str().unwrap().starts_with("Désolée"));
}

#[tokio::test]
async fn status_updates_and_the_end_of_call_report_update_the_call() {
    let app = spawn_app_with(production).await;
    let (_, sid) = lead_with_call(&app, 4, "vapi-call-4").await;
    let call = json!({"id": "vapi-call-4"});
    assert_eq!(
        send(
            &app,
            &json!({"message": {"type": "status-update", "status": "in-progress", "call": call}})
        )
        .await,
        json!({})
    );
    send(
        &app,
        &json!({"message": {"type": "status-update", "status": "ended", "endedReason": "customer-ended-call", "call": call}}),
    )
    .await;
    send(
        &app,
        &json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call", "call": call,
            "startedAt": "2026-11-22T10:00:00Z", "endedAt": "2026-11-22T10:01:30Z",
            "artifact": {"transcript": "AI: Bonjour\nUser: Allo", "recording": {"mono": {"combinedUrl": "https://rec/4.wav"}}},
            "analysis": {}}}),
    )
    .await;
    // A late status never moves the call back.
    send(
        &app,
        &json!({"message": {"type": "status-update", "status": "ringing", "call": call}}),
    )
    .await;

    let sid = CallSid::try_from(sid.as_str()).unwrap();
    let record = app.store.get_call(&sid).await.unwrap().unwrap();
    assert_eq!(record.fields.status.as_deref(), Some("completed"));
    assert_eq!(
        record.fields.ended_reason.as_deref(),
        Some("customer-ended-call")
    );
    assert_eq!(record.fields.duration, Some(90));
    assert_eq!(
        record.fields.transcript.as_deref(),
        Some("AI: Bonjour\nUser: Allo")
    );
    assert_eq!(
        record.fields.vapi_recording_url.as_deref(),
        Some("https://rec/4.wav")
    );
    assert_eq!(record.fields.recording_url, None, "not a voicemail");
    assert_eq!(record.fields.vapi_call_id.as_deref(), Some("vapi-call-4"));
    let lead = app.store.find_lead_by_call(&sid).await.unwrap().unwrap();
    assert_eq!(
        lead.status,
        LeadStatus::Abandonne,
        "ended before the six answers"
    );
}

/// Vapi's end-of-call report is processed before the tool call carrying the caller's last answer
/// (both sent as the caller hangs up): the answer, given during the call, still qualifies the
/// lead; an answer to a lead Myriam abandoned herself is not applied. (On 5521a52 the lead stayed
/// `abandonne` and the last answer got the callback offer.)
#[tokio::test]
async fn a_last_tool_call_processed_after_the_end_of_call_report_still_qualifies() {
    use myriam::qualification::Turn;
    let app = spawn_app_with(production).await;
    let (lead_id, sid) = lead_with_call(&app, 5, "vapi-call-5").await;
    let id = LeadId::try_from(lead_id.as_str()).unwrap();
    // The opening line, as `Calls::start` writes it.
    let mut lead = app.store.get_lead(id).await.unwrap().unwrap();
    lead.conversation.push(Turn::myriam(
        None,
        "Bonjour, quel est votre nom complet?".to_owned(),
    ));
    assert_eq!(
        app.store.save_lead(&lead).await.unwrap(),
        myriam::store::Saved::Applied
    );
    let call = json!({"id": "vapi-call-5", "phoneCallProviderId": sid});
    let answers = [
        "je m'appelle Marie-Ève Côté",
        "oui c'est ça",
        "4567 boulevard Saint-Laurent Montréal H2X 1Y4",
        "de l'élagage",
        "un gros érable penche vers la maison",
        "non ça peut attendre",
    ];
    let tool = |i: usize| {
        tool_calls(
            &call,
            &json!([{"id": format!("tc-{i}"), "type": "function",
                "function": {"name": "enregistrer_reponse", "arguments": {"reponse": answers[i]}}}]),
        )
    };
    for i in 0..5 {
        send(&app, &tool(i)).await;
    }
    send(
        &app,
        &json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call",
            "call": call, "artifact": {"transcript": "AI: Bonjour"}, "analysis": {}}}),
    )
    .await;
    let ended = app.store.get_lead(id).await.unwrap().unwrap();
    assert_eq!(ended.status, LeadStatus::Abandonne, "the end came first");
    let last = send(&app, &tool(5)).await;
    assert_eq!(result_of(&last, 0)["status"], "complete");
    let lead = app.store.get_lead(id).await.unwrap().unwrap();
    assert_eq!(lead.status, LeadStatus::Qualifie);
    assert_eq!(lead.conversation.len(), ended.conversation.len() + 2);
    // Replayed: the stored result, nothing more.
    let replay = send(&app, &tool(5)).await;
    assert_eq!(replay["results"][0]["result"], last["results"][0]["result"]);
    assert_eq!(
        app.store.get_lead(id).await.unwrap().unwrap().conversation,
        lead.conversation
    );

    // Myriam abandoned this one herself (four refused names): no more answers.
    let (given_up_lead, given_up_call) = lead_with_call(&app, 6, "vapi-call-6").await;
    let other = json!({"id": "vapi-call-6", "phoneCallProviderId": given_up_call});
    for i in 0..4 {
        send(
            &app,
            &tool_calls(
                &other,
                &json!([{"id": format!("bad-{i}"), "type": "function",
                    "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "1234"}}}]),
            ),
        )
        .await;
    }
    let other_id = LeadId::try_from(given_up_lead.as_str()).unwrap();
    let given_up = app.store.get_lead(other_id).await.unwrap().unwrap();
    assert_eq!(given_up.status, LeadStatus::Abandonne);
    let after = send(
        &app,
        &tool_calls(
            &other,
            &json!([{"id": "late", "type": "function",
                "function": {"name": "enregistrer_reponse", "arguments": {"reponse": "Jean Tremblay"}}}]),
        ),
    )
    .await;
    assert_eq!(result_of(&after, 0)["status"], "validation_error");
    let still = app.store.get_lead(other_id).await.unwrap().unwrap();
    assert_eq!(still.status, LeadStatus::Abandonne);
    assert!(still.nom_complet.is_none(), "not applied");
}

#[tokio::test]
async fn the_assistant_can_save_any_field_at_any_time_and_is_told_what_is_missing() {
    let app =
        spawn_app_with(|s| s.vapi.server_secret = Some(SecretString::from(SECRET.to_owned())))
            .await;
    let (_, _) = lead_with_call(&app, 29, "vapi-call-29").await;
    let call = json!({"id": "vapi-call-29"});
    let save = |id: &str, args: Value| {
        tool_calls(
            &call,
            &json!([{"id": id, "type": "function",
                "function": {"name": "enregistrer_reponse", "arguments": args}}]),
        )
    };

    // The address, before the name was even asked for.
    let v = send(
        &app,
        &save(
            "s-1",
            json!({"reponse": "45 rue King Ouest, Sherbrooke", "champ": "adresse_complete"}),
        ),
    )
    .await;
    let outcome = result_of(&v, 0);
    assert_eq!(outcome["status"], "continue", "{outcome}");
    assert_eq!(outcome["field_updated"], "adresse_complete");
    assert_eq!(outcome["next_step"], 1);
    assert_eq!(
        outcome["lead_data"]["adresse_complete"],
        "45 rue King Ouest, Sherbrooke"
    );
    assert_eq!(
        outcome["missing"],
        json!([
            "nom_complet",
            "telephone",
            "type_service",
            "description",
            "urgence"
        ])
    );
    assert!(
        v["results"][0]["result"]
            .as_str()
            .unwrap()
            .starts_with(r#"{"success":"#),
        "the documented keys first"
    );

    // A whole story in one answer, then a correction of a field already saved.
    let v = send(
        &app,
        &save(
            "s-2",
            json!({"reponse": "c'est Julie Tremblay, j'ai un arbre tombé sur ma maison"}),
        ),
    )
    .await;
    let outcome = result_of(&v, 0);
    assert_eq!(outcome["lead_data"]["nom_complet"], "Julie Tremblay");
    assert_eq!(outcome["lead_data"]["type_service"], "urgence_tempete");
    assert_eq!(outcome["missing"], json!(["telephone", "urgence"]));

    let v = send(
        &app,
        &save(
            "s-3",
            json!({"reponse": "54 rue King Ouest, Sherbrooke", "champ": "adresse_complete"}),
        ),
    )
    .await;
    let outcome = result_of(&v, 0);
    assert_eq!(
        outcome["lead_data"]["adresse_complete"],
        "54 rue King Ouest, Sherbrooke"
    );
    assert!(
        outcome["message"]
            .as_str()
            .unwrap()
            .starts_with("C'est corrigé, merci."),
        "{outcome}"
    );
}

/// Issue 27 §4: a signed end-of-call report (HMAC) through the real webhook stores what Vapi sent
/// — transcript as turns, summary, structured data, ended reason, recording — and the lead page
/// and the API's lead show it (the recording as a link, not as a voicemail). Later partial or
/// malformed reports are accepted (200) and lose nothing. (On the previous code the summary,
/// structured data and turns were dropped and the recording became a voicemail player.)
#[tokio::test]
#[allow(clippy::too_many_lines)] // the report, the page, the API, then the bad reports
async fn the_end_of_call_report_is_shown_on_the_lead_page_and_in_the_api() {
    use helpers::console::{add_operator, get, login};
    let app =
        spawn_app_with(|s| s.vapi.server_secret = Some(SecretString::from(SECRET.to_owned())))
            .await;
    let (lead_id, sid) = lead_with_call(&app, 70, "vapi-call-70").await;
    let recording = "https://storage.vapi.ai/0199a-call-70-mono.wav";
    let report = json!({"message": {
        "type": "end-of-call-report", "endedReason": "silence-timed-out",
        "call": {"id": "vapi-call-70"},
        "startedAt": "2026-11-22T10:00:00Z", "endedAt": "2026-11-22T10:01:05Z",
        "artifact": {
            "transcript": "AI: Bonjour, vous parlez à Myriam.\nUser: Allo, c'est Julie Tremblay.",
            "messages": [
                {"role": "system", "message": "Tu es Myriam", "time": 1, "secondsFromStart": 0},
                {"role": "bot", "message": "Bonjour, vous parlez à Myriam.", "secondsFromStart": 0.4},
                {"role": "user", "message": "Allo, c'est Julie Tremblay.", "secondsFromStart": 3.2},
                {"role": "tool_calls", "toolCalls": [{"id": "tc-1"}], "secondsFromStart": 4},
                {"role": "tool_call_result", "result": "{}", "secondsFromStart": 4.5},
                {"role": "bot", "message": "Merci <Julie>, à quelle adresse?", "secondsFromStart": 65.9}
            ],
            "recording": {"mono": {"combinedUrl": recording}}
        },
        "analysis": {
            "summary": "Julie Tremblay veut faire abattre un érable; l'adresse manque.",
            "structuredData": {"nom_complet": "Julie Tremblay", "type_service": "abattage",
                               "urgence": true, "adresse_complete": null},
            "successEvaluation": "false"
        }
    }})
    .to_string();
    let (status, body) = post(
        &app,
        &report,
        Auth::Hmac {
            secret: SECRET,
            timestamp: now(),
        },
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "{}"));

    // Later reports, partial or malformed: accepted, and what was stored stays.
    for bad in [
        json!({"message": {"type": "end-of-call-report", "call": {"id": "vapi-call-70"}}}),
        json!({"message": {"type": "end-of-call-report", "call": {"id": "vapi-call-70"},
            "analysis": null, "artifact": {"messages": "nope", "recording": 3}}}),
        json!({"message": {"type": "end-of-call-report", "call": {"id": "vapi-call-70"},
            "analysis": {"summary": 42, "structuredData": ["a"]},
            "artifact": {"messages": [{"role": "bot"}, {"message": "x"}, 7]}}}),
    ] {
        let (status, body) = post(
            &app,
            &bad.to_string(),
            Auth::Hmac {
                secret: SECRET,
                timestamp: now(),
            },
        )
        .await;
        assert_eq!(status, 200, "{bad}: {body}");
    }
    let record = app
        .store
        .get_call(&CallSid::try_from(sid.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    let f = &record.fields;
    assert_eq!(f.ended_reason.as_deref(), Some("silence-timed-out"));
    assert_eq!(f.vapi_recording_url.as_deref(), Some(recording));
    assert_eq!(f.recording_url, None);
    assert_eq!(
        f.vapi_summary.as_deref(),
        Some("Julie Tremblay veut faire abattre un érable; l'adresse manque.")
    );
    assert_eq!(
        f.vapi_structured_data.as_ref().unwrap()["type_service"],
        "abattage"
    );
    let turns = f.vapi_turns.as_ref().expect("turns");
    assert_eq!(turns.len(), 3, "{turns:?}");
    assert_eq!(
        (turns[1].speaker.as_str(), turns[1].at_ms),
        ("caller", Some(3200))
    );

    // The lead page.
    add_operator(
        &app,
        "staff@bp-emondage.test",
        myriam::store::console::Role::Staff,
    )
    .await;
    let session = login(&app, "staff@bp-emondage.test").await;
    let page = get(
        &app,
        &format!("/console/leads/{lead_id}"),
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    for part in [
        "Appel avec Myriam (Vapi)",
        "silence trop long",
        "<h4>Résumé</h4><p>Julie Tremblay veut faire abattre un érable; l&#39;adresse manque.</p>",
        "<h4>Données structurées</h4>",
        "<dt>nom complet</dt><dd>Julie Tremblay</dd>",
        "<dt>type service</dt><dd>abattage</dd>",
        "<dt>urgence</dt><dd>oui</dd>",
        "<dt>adresse complete</dt><dd>—</dd>",
        r#"<span class="muted">0:00</span> <strong>Myriam</strong> : Bonjour, vous parlez à Myriam.</li>"#,
        r#"<span class="muted">0:03</span> <strong>Appelant</strong> : Allo, c&#39;est Julie Tremblay.</li>"#,
        r#"<span class="muted">1:05</span> <strong>Myriam</strong> : Merci &lt;Julie&gt;, à quelle adresse?</li>"#,
        &format!(r#"<a href="{recording}" rel="noreferrer noopener">enregistrement chez Vapi</a>"#),
    ] {
        assert!(page.contains(part), "{part:?} missing from the lead page");
    }
    assert!(
        !page.contains("<audio"),
        "Vapi's recording is not a voicemail"
    );
    assert!(
        !page.contains("Tu es Myriam"),
        "system prompts are not turns"
    );

    // The API's lead.
    let detail: Value = get(
        &app,
        &format!("/api/v1/leads/{lead_id}"),
        Some(&session.cookie),
    )
    .await
    .json()
    .await
    .unwrap();
    let call = &detail["calls"][0];
    assert_eq!(call["ended_reason"], "silence-timed-out");
    assert_eq!(call["has_recording"], false, "no voicemail");
    assert_eq!(call["vapi_recording_url"], recording);
    assert_eq!(
        call["vapi_summary"],
        "Julie Tremblay veut faire abattre un érable; l'adresse manque."
    );
    assert_eq!(call["vapi_structured_data"]["urgence"], true);
    assert_eq!(call["vapi_turns"].as_array().unwrap().len(), 3);
    assert_eq!(call["vapi_turns"][0]["speaker"], "assistant");
    assert_eq!(call["vapi_turns"][1]["text"], "Allo, c'est Julie Tremblay.");
}

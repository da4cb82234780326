//! The JSON API `/api/v1` over real HTTP: 401 problem+json without credentials, Bearer tokens
//! (revocable, role-bound), the session cookie with the CSRF header, `ETag` / `If-Match` (428, 412),
//! CSV, erasure on SQLite and on Supabase through a real PostgREST, and the `OpenAPI` document
//! checked against what the router serves.

mod helpers;

use futures_util::StreamExt as _;
use helpers::console::{add_operator, client, login, plant_lead};
use helpers::supabase::SupabaseStack;
use helpers::{TestApp, spawn_app, spawn_app_with};
use myriam::config::StoreKind;
use myriam::operators;
use myriam::store::console::{ConsoleStore, Role};
use myriam::store::{CallUpdate, Store};
use secrecy::{ExposeSecret, SecretString};

/// A token owned by `owner@bp.example`, an operator of the token's role (added if need be).
async fn token(app: &TestApp, name: &str, role: Role) -> String {
    let owner = myriam::store::console::Email::try_from(
        format!("owner-{}@bp.example", role.as_str()).as_str(),
    )
    .unwrap();
    if app.store.operator_by_email(&owner).await.unwrap().is_none() {
        add_operator(app, owner.as_str(), role).await;
    }
    let spec = operators::TokenSpec {
        name,
        role,
        owner: &owner,
        lifetime: None,
    };
    operators::create_token(&app.store, &spec)
        .await
        .unwrap()
        .expose_secret()
        .to_owned()
}

fn bearer(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    client()
        .request(method, app.url(path))
        .header("authorization", format!("Bearer {token}"))
}

async fn problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

#[tokio::test]
async fn no_credentials_no_data() {
    let app = spawn_app().await;
    plant_lead(
        &app.store,
        "Anne Roy",
        "438 555 0102",
        "7 chemin des Érables, Québec",
        false,
    )
    .await;
    for path in [
        "/api/v1/leads",
        "/api/v1/leads/export.csv",
        "/api/v1/leads/00000000-0000-0000-0000-000000000001",
    ] {
        let response = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = problem(response, 401).await;
        assert!(!body.to_string().contains("Anne"));
    }
    for bad in [
        "Bearer myr_not-a-token",
        "Bearer not-even-prefixed",
        "Basic YTpi",
    ] {
        let response = client()
            .get(app.url("/api/v1/leads"))
            .header("authorization", bad)
            .send()
            .await
            .unwrap();
        problem(response, 401).await;
    }
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one client's session with the API, read top to bottom
async fn tokens_list_and_read_leads_and_revoked_tokens_stop_working() {
    let app = spawn_app().await;
    let lead = plant_lead(
        &app.store,
        "Marie-Ève Côté",
        "514 555 0101",
        "12 rue Saint-Denis, Montréal",
        true,
    )
    .await;
    let mut call = CallUpdate::new("CA0123456789abcdef0123456789abcdef".try_into().unwrap());
    call.lead_id = Some(lead.id);
    call.duration = Some(61);
    call.recording_url = Some("https://api.twilio.com/secret-recording".to_owned());
    app.store.upsert_call(&call).await.unwrap();
    let token = token(&app, "ci", Role::Staff).await;
    assert!(token.starts_with("myr_") && token.len() > 40);
    let list: serde_json::Value = bearer(
        &app,
        reqwest::Method::GET,
        "/api/v1/leads?urgent=true&limit=10",
        &token,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(list["leads"][0]["id"], lead.id.to_string());
    assert_eq!(list["leads"][0]["telephone"], "+15145550101");
    assert_eq!(list["leads"][0]["suivi"], "nouveau");
    assert!(list["next_cursor"].is_null());
    let response = bearer(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/leads/{}", lead.id),
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"v0\"");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let detail: serde_json::Value = response.json().await.unwrap();
    assert_eq!(detail["lead"]["nom_complet"], "Marie-Ève Côté");
    assert_eq!(detail["calls"][0]["duration"], 61);
    assert_eq!(detail["calls"][0]["has_recording"], true);
    assert!(
        !detail.to_string().contains("secret-recording"),
        "Twilio media URLs stay private"
    );
    let missing = bearer(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/leads/{}", myriam::domain::LeadId::new()),
        &token,
    )
    .send()
    .await
    .unwrap();
    problem(missing, 404).await;
    let bad = bearer(
        &app,
        reqwest::Method::GET,
        "/api/v1/leads?suivi=bogus",
        &token,
    )
    .send()
    .await
    .unwrap();
    problem(bad, 400).await;
    // The API is strict where the pages' forms are lenient.
    for query in [
        "to=",
        "urgent=oui",
        &format!("q={}", "a".repeat(101)),
        "limit=201",
        "limit=x",
    ] {
        let strict = bearer(
            &app,
            reqwest::Method::GET,
            &format!("/api/v1/leads?{query}"),
            &token,
        )
        .send()
        .await
        .unwrap();
        problem(strict, 400).await;
    }
    let bad_json = bearer(
        &app,
        reqwest::Method::PUT,
        &format!("/api/v1/leads/{}/suivi", lead.id),
        &token,
    )
    .header("if-match", "\"v0\"")
    .header("content-type", "application/json")
    .body("{not json")
    .send()
    .await
    .unwrap();
    problem(bad_json, 400).await;
    // Staff tokens cannot erase.
    let erase = bearer(&app, reqwest::Method::POST, "/api/v1/erasures", &token)
        .json(&serde_json::json!({"phone": "514 555 0101", "confirm": "EFFACER"}))
        .send()
        .await
        .unwrap();
    problem(erase, 403).await;
    assert!(app.store.get_lead(lead.id).await.unwrap().is_some());
    // Revoked: refused.
    operators::revoke_token(&app.store, "ci").await.unwrap();
    let after = bearer(&app, reqwest::Method::GET, "/api/v1/leads", &token)
        .send()
        .await
        .unwrap();
    problem(after, 401).await;
}

#[tokio::test]
async fn follow_up_changes_need_if_match_and_refuse_stale_versions() {
    let app = spawn_app().await;
    let lead = plant_lead(
        &app.store,
        "Luc Ouellet",
        "438 555 0102",
        "45 avenue du Parc, Laval",
        false,
    )
    .await;
    let token = token(&app, "crm", Role::Staff).await;
    let path = format!("/api/v1/leads/{}/suivi", lead.id);
    let body = serde_json::json!({"suivi": "contacte", "note": "Laissé un message"});
    let no_match = bearer(&app, reqwest::Method::PUT, &path, &token)
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(no_match, 428).await;
    let ok = bearer(&app, reqwest::Method::PUT, &path, &token)
        .header("if-match", "\"v0\"")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["etag"], "\"v1\"");
    let changed: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(
        (changed["suivi"].as_str(), changed["version"].as_i64()),
        (Some("contacte"), Some(1))
    );
    let stale = bearer(&app, reqwest::Method::PUT, &path, &token)
        .header("if-match", "\"v0\"")
        .json(&serde_json::json!({"suivi": "perdu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.headers()["etag"], "\"v1\"");
    let body = problem(stale, 412).await;
    assert_eq!(body["current_version"], 1);
    let current = app.store.follow_up(lead.id).await.unwrap().unwrap();
    assert_eq!(
        current.note.as_deref(),
        Some("Laissé un message"),
        "not overwritten"
    );
    assert_eq!(current.by.as_deref(), Some("token:crm"));
    let invalid = bearer(&app, reqwest::Method::PUT, &path, &token)
        .header("if-match", "\"v1\"")
        .json(&serde_json::json!({"suivi": "qualifie"}))
        .send()
        .await
        .unwrap();
    problem(invalid, 400).await;
}

#[tokio::test]
async fn the_session_cookie_works_for_the_api_with_the_csrf_header_on_writes() {
    let app = spawn_app().await;
    add_operator(&app, "staff@bp.example", Role::Staff).await;
    let lead = plant_lead(
        &app.store,
        "Luc Ouellet",
        "438 555 0102",
        "45 avenue du Parc, Laval",
        false,
    )
    .await;
    let session = login(&app, "staff@bp.example").await;
    let list = client()
        .get(app.url("/api/v1/leads"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200, "reads need no CSRF header");
    let path = format!("/api/v1/leads/{}/suivi", lead.id);
    let put = |csrf: Option<&str>| {
        let mut request = client()
            .put(app.url(&path))
            .header("cookie", &session.cookie)
            .header("if-match", "\"v0\"")
            .json(&serde_json::json!({"suivi": "planifie"}));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    problem(put(None).await.unwrap(), 403).await;
    problem(put(Some("forged")).await.unwrap(), 403).await;
    assert_eq!(put(Some(&session.csrf)).await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_api_exports_csv_and_erases_a_caller_in_sqlite() {
    let app = spawn_app().await;
    let gone = plant_lead(
        &app.store,
        "Marie-Ève Côté",
        "514 555 0101",
        "12 rue Saint-Denis, Montréal",
        true,
    )
    .await;
    let kept = plant_lead(
        &app.store,
        "Anne Roy",
        "438 555 0102",
        "7 chemin des Érables, Québec",
        false,
    )
    .await;
    let admin = token(&app, "dpo", Role::Admin).await;
    let csv = bearer(
        &app,
        reqwest::Method::GET,
        "/api/v1/leads/export.csv",
        &admin,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("\u{feff}\"Identifiant\";"));
    assert_eq!(text.matches("\r\n").count(), 3, "{text}");
    let unconfirmed = bearer(&app, reqwest::Method::POST, "/api/v1/erasures", &admin)
        .json(&serde_json::json!({"phone": "514 555 0101", "confirm": "yes"}))
        .send()
        .await
        .unwrap();
    problem(unconfirmed, 400).await;
    let erased = bearer(&app, reqwest::Method::POST, "/api/v1/erasures", &admin)
        .json(&serde_json::json!({"phone": "514 555 0101", "confirm": "EFFACER"}))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 200);
    let result: serde_json::Value = erased.json().await.unwrap();
    assert_eq!(result["lead_ids"], serde_json::json!([gone.id.to_string()]));
    assert!(app.store.get_lead(gone.id).await.unwrap().is_none());
    assert!(app.store.get_lead(kept.id).await.unwrap().is_some());
    let audit = app.store.audit_log(10).await.unwrap();
    assert!(audit.iter().any(
        |e| e.actor == "token:dpo" && e.target.as_deref() == Some(gone.id.to_string().as_str())
    ));
    assert!(!format!("{audit:?}").contains("5550101"));
}

#[tokio::test]
async fn erasure_leaves_no_row_in_supabase_through_real_postgrest() {
    let stack = SupabaseStack::start();
    let dir = tempfile::tempdir().unwrap();
    let (url, key, db) = (
        stack.url.clone(),
        stack.service_key.clone(),
        dir.path().join("outbox.db"),
    );
    let app = spawn_app_with(move |s| {
        s.store.kind = StoreKind::Supabase;
        s.store.supabase_url = Some(url.parse().unwrap());
        s.store.supabase_service_role_key = Some(SecretString::from(key));
        s.store.database_path = db;
    })
    .await;
    let gone = plant_lead(
        &app.store,
        "Marie-Ève Côté",
        "514 555 0101",
        "12 rue Saint-Denis, Montréal",
        true,
    )
    .await;
    plant_lead(
        &app.store,
        "Anne Roy",
        "438 555 0102",
        "7 chemin des Érables, Québec",
        false,
    )
    .await;
    let sid = "CA0123456789abcdef0123456789abcdef";
    let mut call = CallUpdate::new(sid.try_into().unwrap());
    call.lead_id = Some(gone.id);
    call.from_number = Some("+15145550101".to_owned());
    app.store.upsert_call(&call).await.unwrap();
    app.store
        .record_event(&format!("twilio:{sid}:status:completed"))
        .await
        .unwrap();
    assert_eq!(stack.psql("select count(*) from bp.leads"), "2");
    let admin = token(&app, "dpo", Role::Admin).await;
    let erased = bearer(&app, reqwest::Method::POST, "/api/v1/erasures", &admin)
        .json(&serde_json::json!({"phone": "+15145550101", "confirm": "EFFACER"}))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 200);
    for query in [
        "select count(*) from bp.leads where telephone = '+15145550101' or offered_phone = '+15145550101'",
        "select count(*) from bp.calls where from_number = '+15145550101'",
        "select count(*) from bp.processed_events",
    ] {
        assert_eq!(stack.psql(query), "0", "{query}");
    }
    assert_eq!(stack.psql("select count(*) from bp.leads"), "1");
    assert_eq!(
        stack.psql("select action || ' ' || actor from bp.audit_log where action = 'erase'"),
        "erase token:dpo"
    );
    assert_eq!(stack.psql("select count(*) from bp.audit_log where detail like '%5550101%' or target like '%5550101%'"), "0");
}

/// Every operation the document names is served (a real answer, not the router's 404 or a 405),
/// and every `/api/v1` route the router serves is documented.
#[tokio::test]
async fn the_openapi_document_matches_the_routes_served() {
    let app = spawn_app().await;
    let admin = token(&app, "doc", Role::Admin).await;
    let response = client()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: serde_json::Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
            let concrete = path.replace("{id}", &myriam::domain::LeadId::new().to_string());
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = bearer(&app, method.clone(), &concrete, &admin)
                .header("if-match", "\"v0\"")
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let kind = answer
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_ne!(status, 405, "{method} {path}");
            assert!(
                status != 404 || kind.as_deref() == Some("application/problem+json"),
                "{method} {path} is not served"
            );
        }
    }
    documented.sort();
    let mut served = vec![
        "GET /api/v1/leads",
        "GET /api/v1/leads/export.csv",
        "GET /api/v1/leads/{id}",
        "PUT /api/v1/leads/{id}/suivi",
        "POST /api/v1/erasures",
        "GET /api/v1/stats",
    ];
    served.sort_unstable();
    assert_eq!(documented, served);
    // And an undocumented method on a documented path is not served.
    let delete = bearer(&app, reqwest::Method::DELETE, "/api/v1/leads", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_die_with_their_operator_are_rate_limited_and_record_their_last_use() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("api.db");
    let path = db.clone();
    // A small budget, refilled slowly: the burst is spent and then refused however slowly this
    // machine serves it (600 then 10/s in production).
    assert_eq!(
        myriam::config::ApiRate::default(),
        myriam::config::ApiRate {
            burst: 600,
            per_second: 10.0
        }
    );
    let limit = myriam::config::ApiRate {
        burst: 40,
        per_second: 0.05,
    };
    let app = spawn_app_with(move |s| {
        s.store.database_path = path;
        s.api_rate = limit;
    })
    .await;
    let sql = |statement: &str| {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute(statement, [])
            .unwrap();
    };
    let used = |name: &str| -> Option<String> {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT last_used_at FROM api_tokens WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    };
    let staff = token(&app, "staff-bot", Role::Staff).await;
    assert_eq!(used("staff-bot"), None);
    let ok = bearer(&app, reqwest::Method::GET, "/api/v1/leads", &staff)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(used("staff-bot").is_some(), "the use is recorded");

    // Expired: refused like an unknown token.
    sql("UPDATE api_tokens SET expires_at = '2026-01-01T00:00:00.000Z' WHERE name = 'staff-bot'");
    let expired = bearer(&app, reqwest::Method::GET, "/api/v1/leads", &staff)
        .send()
        .await
        .unwrap();
    problem(expired, 401).await;
    sql("UPDATE api_tokens SET expires_at = NULL WHERE name = 'staff-bot'");

    // Disabling the operator disables the token; enabling them brings it back.
    let owner = myriam::store::console::Email::try_from("owner-staff@bp.example").unwrap();
    operators::set_disabled(&app.store, &owner, true)
        .await
        .unwrap();
    let disabled = bearer(&app, reqwest::Method::GET, "/api/v1/leads", &staff)
        .send()
        .await
        .unwrap();
    problem(disabled, 401).await;
    operators::set_disabled(&app.store, &owner, false)
        .await
        .unwrap();

    // A burst beyond the token's budget gets 429 with Retry-After; another token is not affected.
    // An invalid filter: refused (400) after authentication, without a query.
    let attempts = (0..limit.burst * 2)
        .map(|_| bearer(&app, reqwest::Method::GET, "/api/v1/leads?status=x", &staff).send());
    let answers: Vec<reqwest::Response> = futures_util::stream::iter(attempts)
        .buffer_unordered(64)
        .map(Result::unwrap)
        .collect()
        .await;
    assert!(
        answers
            .iter()
            .all(|r| r.status() == 400 || r.status() == 429),
        "only answers or refusals"
    );
    let served = answers.iter().filter(|r| r.status() == 400).count();
    assert!(
        (usize::try_from(limit.burst).unwrap() - 10..=usize::try_from(limit.burst).unwrap() + 2)
            .contains(&served),
        "the burst allowance is served, no more: {served}"
    );
    let limited = answers.into_iter().find(|r| r.status() == 429);
    let limited = limited.expect("the burst was limited");
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body = problem(limited, 429).await;
    assert!(body.to_string().contains("too many requests"), "{body}");
    let other = token(&app, "other-bot", Role::Staff).await;
    let fine = bearer(&app, reqwest::Method::GET, "/api/v1/leads", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), 200);
}

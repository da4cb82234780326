//! The business dashboard over real HTTP: `/console/tableau` (numbers in its tables, SVG charts,
//! the GET form, CSV per table), `GET /api/v1/stats` (the same numbers as JSON, in the `OpenAPI`
//! document), and a clear 400 for every bad period.

mod helpers;

use helpers::console::{add_operator, client, get, login, plant_lead};
use helpers::store_suite::sid;
use helpers::{TestApp, spawn_app_with};
use myriam::domain::{BusinessHours, ConversationMode, LeadId, LeadStatus};
use myriam::operators;
use myriam::qualification::Lead;
use myriam::store::console::Role;
use myriam::store::{CallUpdate, Store};
use secrecy::ExposeSecret;

/// A gateway whose office is always closed (every call is after hours), with three leads today:
/// a qualified urgent one by Vapi, one abandoned before the first answer by the IVR, and a
/// qualified one with no call.
async fn planted() -> TestApp {
    let app = spawn_app_with(|s| {
        s.office.hours = BusinessHours::parse("closed", "America/Toronto").unwrap();
    })
    .await;
    let urgent = plant_lead(
        &app.store,
        "Anne Roy",
        "438 555 0102",
        "7 chemin des Érables, Québec",
        true,
    )
    .await;
    let mut call = CallUpdate::new(sid(1));
    call.lead_id = Some(urgent.id);
    call.mode = Some(ConversationMode::Bridge);
    call.direction = Some("inbound".to_owned());
    app.store.upsert_call(&call).await.unwrap();
    let mut gone = Lead::new(LeadId::new());
    gone.status = LeadStatus::Abandonne;
    let mut call = CallUpdate::new(sid(2));
    call.mode = Some(ConversationMode::Ivr);
    call.direction = Some("inbound".to_owned());
    app.store.start_call(&gone, &call).await.unwrap();
    plant_lead(
        &app.store,
        "Luc Gagnon",
        "514 555 0199",
        "12 rue Principale, Laval",
        false,
    )
    .await;
    app
}

fn today() -> String {
    let hours = BusinessHours::parse("closed", "America/Toronto").unwrap();
    let d = hours.local_date(time::OffsetDateTime::now_utc()).unwrap();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

async fn api(app: &TestApp, query: &str) -> reqwest::Response {
    use myriam::store::console::ConsoleStore as _;
    // A token belongs to an operator (issue 26): the dashboard's reader is one.
    let owner = myriam::store::console::Email::try_from("stats-reader@bp.example").unwrap();
    if app.store.operator_by_email(&owner).await.unwrap().is_none() {
        add_operator(app, owner.as_str(), Role::Staff).await;
    }
    let name = uuid::Uuid::new_v4().to_string();
    let spec = operators::TokenSpec {
        name: &name,
        role: Role::Staff,
        owner: &owner,
        lifetime: None,
    };
    let token = operators::create_token(&app.store, &spec).await.unwrap();
    client()
        .get(app.url(&format!("/api/v1/stats{query}")))
        .header("authorization", format!("Bearer {}", token.expose_secret()))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_api_answers_the_days_numbers() {
    let app = planted().await;
    let response = client().get(app.url("/api/v1/stats")).send().await.unwrap();
    assert_eq!(response.status(), 401);

    let response = api(&app, "?period=day").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["period"]["kind"], "day");
    assert_eq!(body["period"]["from"], today());
    assert_eq!(body["period"]["to"], today());
    assert_eq!(body["period"]["timezone"], "America/Toronto");
    let totals = &body["totals"];
    assert_eq!(totals["calls"], 2, "{body}");
    assert_eq!(totals["leads"], 3);
    assert_eq!(totals["qualified"], 2);
    assert_eq!(totals["conversion"], 1.0);
    assert_eq!(totals["urgent"], 1);
    assert_eq!(totals["after_hours"], 2);
    assert_eq!(totals["overdue"], 0);
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["date"], today());
    assert_eq!(
        (days[0]["bridge"].as_u64(), days[0]["ivr"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(days[0]["abandonne"], 1);
    let funnel = body["funnel"].as_array().unwrap();
    assert_eq!(funnel.len(), 6);
    assert_eq!(funnel[0]["field"], "nom_complet");
    assert_eq!(funnel[0]["answered"], 2);
    assert_eq!(funnel[0]["hung_up"], 1);
    assert_eq!(funnel[5]["answered"], 2);

    // The default period: this week, seven local days.
    let body: serde_json::Value = api(&app, "").await.json().await.unwrap();
    assert_eq!(body["period"]["kind"], "week");
    assert_eq!(body["days"].as_array().unwrap().len(), 7);
    assert_eq!(body["totals"]["calls"], 2);
    // A custom period without today: nothing.
    let body: serde_json::Value = api(&app, "?from=2026-01-01&to=2026-01-31")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["period"]["kind"], "custom");
    assert_eq!(body["days"].as_array().unwrap().len(), 31);
    assert_eq!(body["totals"]["calls"], 0);
    assert_eq!(body["totals"]["conversion"], serde_json::Value::Null);

    for bad in [
        "?period=year",
        "?period=day&date=2026-02-30",
        "?period=day&date=tomorrow",
        "?period=custom&from=2026-12-01",
        "?from=2026-12-05&to=2026-12-01",
        "?from=2026-01-01&to=2026-12-31",
        "?period=day&date=1066-10-14",
        "?to=",
        "?period=",
    ] {
        let response = api(&app, bad).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }

    let doc: serde_json::Value = client()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = &doc["paths"]["/api/v1/stats"]["get"];
    assert!(op.is_object(), "stats in the OpenAPI document");
    assert!(op["responses"]["200"].is_object() && op["responses"]["400"].is_object());
}

#[tokio::test]
async fn the_page_shows_the_numbers_charts_and_csv() {
    let app = planted().await;
    let response = get(&app, "/console/tableau", None).await;
    assert_eq!(response.status(), 303, "signed-out: to the login");

    add_operator(&app, "staff@bp.example", Role::Staff).await;
    let session = login(&app, "staff@bp.example").await;
    let response = get(&app, "/console/tableau?period=day", Some(&session.cookie)).await;
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("<h1>Tableau de bord</h1>"));
    assert!(html.contains("<dt>Appels</dt><dd>2</dd>"), "{html}");
    assert!(html.contains("<dt>Leads</dt><dd>3</dd>"));
    assert!(html.contains("<dt>Conversion (qualifiés ÷ appels)</dt><dd>100,0 %</dd>"));
    assert!(html.contains("<dt>Appels hors heures</dt><dd>2</dd>"));
    // The calls table: today, 2 calls, 1 Vapi, 1 IVR, 0 transfers, 0 voicemails, 0 fr… 2 after hours.
    let row = format!(
        r#"<tr><th scope="row">{}</th><td>2</td><td>1</td><td>1</td><td>0</td><td>0</td>"#,
        today()
    );
    assert!(html.contains(&row), "{row} in {html}");
    // The funnel: 2 answered the name, 1 hung up there.
    assert!(
        html.contains(
            r#"<tr><th scope="row">Nom</th><td>2</td><td>1</td><td>0</td><td>0</td></tr>"#
        )
    );
    // Seven sections; the SMS alerts' has none to draw today (a sentence instead).
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 6);
    assert!(html.contains("Aucune alerte SMS pour cette période."));
    assert!(!html.contains("<script>") && !html.contains("style="));
    assert!(html.contains(r#"<form method="get" action="/console/tableau""#));
    assert!(html.contains(r#"<option value="day" selected>"#));
    assert!(
        html.contains(r#"href="/console/tableau""#),
        "in the navigation"
    );

    let response = get(
        &app,
        "/console/tableau.csv?table=calls&period=day",
        Some(&session.cookie),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let csv = response.text().await.unwrap();
    assert!(
        csv.starts_with("\u{feff}\"Jour\";\"Appels\";\"Vapi\";\"RVI\""),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("\"{}\";\"2\";\"1\";\"1\";\"0\";\"0\"", today())),
        "{csv}"
    );
    let csv = get(
        &app,
        "/console/tableau.csv?table=funnel&period=day",
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(csv.contains("\"Nom\";\"2\";\"1\";\"0\";\"0\""), "{csv}");

    for bad in [
        "/console/tableau?period=year",
        "/console/tableau?period=day&date=2026-02-30",
        "/console/tableau.csv?table=secrets&period=day",
        "/console/tableau.csv",
    ] {
        let response = get(&app, bad, Some(&session.cookie)).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
    // The form sends every field, empty ones included.
    let response = get(
        &app,
        "/console/tableau?period=week&date=&from=&to=",
        Some(&session.cookie),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn phone_numbers_read_as_people_say_them_and_call_on_a_tap() {
    let app = spawn_app_with(|_| {}).await;
    let montreal = plant_lead(
        &app.store,
        "Anne Roy",
        "514 555 0199",
        "7 chemin des Érables, Québec",
        false,
    )
    .await;
    plant_lead(
        &app.store,
        "Jim Beam",
        "+1 876 555 0142",
        "1 King Street, Kingston",
        false,
    )
    .await;
    add_operator(&app, "staff@bp.example", Role::Staff).await;
    let session = login(&app, "staff@bp.example").await;
    let list = get(&app, "/console/leads", Some(&session.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(r#"<a href="tel:+15145550199">514 555-0199</a>"#),
        "{list}"
    );
    // Jamaica shares the country code: shown with it, as dialled from here.
    assert!(
        list.contains(r#"<a href="tel:+18765550142">+1 876-555-0142</a>"#),
        "{list}"
    );
    let page = get(
        &app,
        &format!("/console/leads/{}", montreal.id),
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        page.contains(r#"<a href="tel:+15145550199">514 555-0199</a>"#),
        "{page}"
    );
}

#[tokio::test]
async fn conversation_turns_carry_their_time_and_old_turns_still_read() {
    use myriam::qualification::{Field, Turn};

    // A turn stored before timestamps: no `at`, still read.
    let old: Turn = serde_json::from_str(
        r#"{"speaker":"caller","field":"nom_complet","text":"Luc","accepted":true}"#,
    )
    .unwrap();
    assert_eq!(old.at, None);
    let before = time::OffsetDateTime::now_utc();
    let said = Turn::caller(Some(Field::Telephone), "514 555 0199".to_owned(), true);
    let after = time::OffsetDateTime::now_utc();
    let at = said.at.expect("a new turn is stamped");
    assert!(before <= at && at <= after);
    assert!(serde_json::to_string(&said).unwrap().contains("\"at\":\""));

    let app = spawn_app_with(|_| {}).await;
    let mut lead = Lead::new(LeadId::new());
    lead.conversation = vec![old, said];
    app.store.save_lead(&lead).await.unwrap();
    let stored = app.store.get_lead(lead.id).await.unwrap().unwrap();
    assert_eq!(
        stored.conversation, lead.conversation,
        "the time survives the store"
    );

    add_operator(&app, "staff@bp.example", Role::Staff).await;
    let session = login(&app, "staff@bp.example").await;
    let page = get(
        &app,
        &format!("/console/leads/{}", lead.id),
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    let local = at.to_offset(myriam::console::html::montreal_offset(at));
    let shown = format!(
        r#"<time datetime="{}">{:02}:{:02}:{:02}</time>"#,
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        local.hour(),
        local.minute(),
        local.second()
    );
    assert!(page.contains(&shown), "{shown} in {page}");
    assert!(
        page.contains("<li><strong>Appelant</strong> : Luc</li>"),
        "{page}"
    );
}

/// The SMS alerts' section of the dashboard's HTML: from its heading to the end of its card.
fn alerts_section(html: &str) -> &str {
    let start = html
        .find(r#"<section class="card" aria-labelledby="alertes">"#)
        .unwrap_or_else(|| panic!("the SMS section in {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</section>").unwrap() + "</section>".len()]
}

async fn dashboard_html(app: &TestApp, cookie: &str) -> String {
    let response = get(app, "/console/tableau?period=day", Some(cookie)).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_period_without_sms_alerts_says_so_instead_of_an_empty_chart() {
    let app = planted().await;
    add_operator(&app, "staff@bp.example", Role::Staff).await;
    let session = login(&app, "staff@bp.example").await;

    // No alert today: a sentence, no axes; the table is still there, with its headers.
    let html = dashboard_html(&app, &session.cookie).await;
    let section = alerts_section(&html);
    assert!(
        section.contains(r#"<p class="muted empty">Aucune alerte SMS pour cette période.</p>"#),
        "{section}"
    );
    assert!(!section.contains("<svg"), "no empty chart: {section}");
    assert!(
        section.contains(
            r#"<table><caption>Alertes SMS</caption><thead><tr><th scope="col">État</th><th scope="col">Code</th><th scope="col">Nombre</th></tr></thead><tbody></tbody></table>"#
        ),
        "{section}"
    );
    assert!(section.contains("Télécharger en CSV"), "{section}");

    // An alert today: its chart and its row, and no such sentence.
    let lead = plant_lead(
        &app.store,
        "Lise Gagnon",
        "514 555 0177",
        "12 rue King Ouest, Sherbrooke",
        true,
    )
    .await;
    let lead = app.store.get_lead(lead.id).await.unwrap().unwrap();
    let saved = myriam::store::Alerts::save_lead_with_alerts(
        &app.store,
        &lead,
        &[myriam::store::NewAlert::new(
            lead.id,
            myriam::store::AlertEvent::Qualified,
            "+15145550101",
        )],
    )
    .await
    .unwrap();
    assert_eq!(saved, myriam::store::Saved::Applied);
    let html = dashboard_html(&app, &session.cookie).await;
    let section = alerts_section(&html);
    assert!(!section.contains("Aucune alerte SMS"), "{section}");
    assert!(
        section.contains(r#"<svg class="chart""#),
        "the chart: {section}"
    );
    assert!(
        !section.contains("<tbody></tbody>") && section.contains("<td>1</td></tr></tbody>"),
        "its row: {section}"
    );
}

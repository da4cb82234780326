//! The operators' console over real HTTP (SQLite store): sign-in, cookie and headers, one error
//! message, throttling, CSRF, roles, expired and revoked sessions, the leads list, a lead and its
//! follow-up (stale edit refused), CSV export, live updates, erasure and the audit log.

mod helpers;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use helpers::console::{
    PASSWORD, add_operator, csrf_of, get, login, plant_lead, post_form, post_login, post_login_from,
};
use helpers::{TestApp, spawn_app_with};
use myriam::store::console::{AuditAction, ConsoleStore, FollowUp, Role};
use myriam::store::{CallUpdate, Store};

/// A gateway on a SQLite file the test can also open.
async fn app() -> (TestApp, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("console.db");
    let path = db.clone();
    let app = spawn_app_with(move |s| {
        s.store.database_path = path;
        s.telemetry.prometheus_port = Some(0);
    })
    .await;
    add_operator(&app, "admin@bp.example", Role::Admin).await;
    add_operator(&app, "staff@bp.example", Role::Staff).await;
    (app, db, dir)
}

fn sql(db: &PathBuf, statement: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(statement).unwrap();
}

fn count(db: &PathBuf, query: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(query, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_the_login_page() {
    let (app, _, _dir) = app().await;
    for path in [
        "/console",
        "/console/leads",
        "/console/leads/00000000-0000-0000-0000-000000000001",
        "/console/leads/export.csv",
        "/console/audit",
        "/console/erase",
        "/console/events",
    ] {
        let response = get(&app, path, None).await;
        assert_eq!(response.status(), 303, "{path}");
        let to = response.headers()["location"].to_str().unwrap();
        assert!(
            to == "/console/login" || to == "/console/leads",
            "{path} → {to}"
        );
    }
    let forged = get(&app, "/console/leads", Some("myriam_session=forged")).await;
    assert_eq!(forged.status(), 303);
    let response = get(&app, "/console/login", None).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<label for="email">Courriel</label>"#));
    assert!(html.contains(r#"autocomplete="current-password""#));
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_pages_carry_the_security_headers() {
    let (app, _, _dir) = app().await;
    let response = post_login(&app, "Admin@BP.example", PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console/leads");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("myriam_session="), "{cookie}");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP outside production: {cookie}"
    );
    let session = login(&app, "admin@bp.example").await;
    let page = get(&app, "/console/leads", Some(&session.cookie)).await;
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<html lang="fr-CA">"#));
    assert!(html.contains(r#"name="viewport""#));
    // The only script is the static file: no inline script, no inline handler.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains(r#"<script src="/console/static/console.js" defer></script>"#));
    assert!(!html.contains("onclick") && !html.contains("style="));
    let js = get(&app, "/console/static/console.js", None).await;
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.text().await.unwrap().contains("EventSource"));
    let css = get(&app, "/console/static/console.css", None).await;
    assert!(css.text().await.unwrap().contains("tr.urgent"));
    let icon = get(&app, "/console/static/favicon.svg", None).await;
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert_eq!(icon.headers()["cache-control"], "public, max-age=300");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let (app, _, _dir) = app().await;
    add_operator(&app, "gone@bp.example", Role::Staff).await;
    myriam::operators::set_disabled(
        &app.store,
        &myriam::store::console::Email::try_from("gone@bp.example").unwrap(),
        true,
    )
    .await
    .unwrap();
    let mut answers = Vec::new();
    for (email, password) in [
        ("nobody@bp.example", PASSWORD),
        ("staff@bp.example", "wrong-password-123"),
        ("gone@bp.example", PASSWORD),
        ("not an e-mail", PASSWORD),
    ] {
        let response = post_login(&app, email, password).await;
        assert_eq!(response.status(), 401, "{email}");
        assert!(response.headers().get("set-cookie").is_none());
        answers.push(response.text().await.unwrap());
    }
    assert!(answers[0].contains("Courriel ou mot de passe invalide."));
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "one message for all"
    );
    let audit = app.store.audit_log(10).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == AuditAction::LoginFailed)
            .count(),
        4
    );
    assert!(
        audit.iter().all(|e| e.actor != "nobody@bp.example"),
        "an unknown e-mail is not recorded"
    );
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_email_and_address_and_per_address() {
    let (app, db, _dir) = app().await;
    for _ in 0..5 {
        let r = post_login(&app, "staff@bp.example", "wrong-password-123").await;
        assert_eq!(r.status(), 401);
    }
    // Even the right password waits now, from this address.
    let throttled = post_login(&app, "staff@bp.example", PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    let retry: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(
        throttled
            .text()
            .await
            .unwrap()
            .contains("Trop de tentatives")
    );
    // Persisted in the store, so every instance sees it.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM login_failures WHERE key LIKE 'pair:%:127.0.0.1'"
        ),
        5
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM login_failures WHERE key LIKE 'email:%'"
        ),
        5
    );
    // Another e-mail from the same address is still allowed, until the address's budget is spent.
    assert!(!login(&app, "admin@bp.example").await.cookie.is_empty());
    for i in 0..15 {
        let r = post_login(&app, &format!("x{i}@bp.example"), "wrong-password-123").await;
        assert_eq!(r.status(), 401);
    }
    let by_address = post_login(&app, "admin@bp.example", PASSWORD).await;
    assert_eq!(by_address.status(), 429);
    assert!(by_address.headers().contains_key("retry-after"));
    // The window passes (failures aged in the store): allowed again.
    sql(
        &db,
        "UPDATE login_failures SET at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-16 minutes')",
    );
    assert_eq!(
        post_login(&app, "staff@bp.example", PASSWORD)
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn someone_elses_failures_never_lock_an_operator_out_and_the_admin_is_told() {
    let (app, db, _dir) = app().await;
    let attacker = IpAddr::from([127, 0, 0, 66]);
    let office = IpAddr::from([127, 0, 0, 7]);
    // Someone guesses at the admin's password from an address of theirs until it is locked …
    for _ in 0..5 {
        let r = post_login_from(&app, attacker, "admin@bp.example", "wrong-password-123").await;
        assert_eq!(r.status(), 401);
    }
    let locked = post_login_from(&app, attacker, "admin@bp.example", PASSWORD).await;
    assert_eq!(locked.status(), 429, "the guesser's own address is locked");
    // … and from a few more addresses, each below its own limits.
    for k in 0..4u8 {
        let r = post_login_from(
            &app,
            IpAddr::from([127, 0, 1, k]),
            "admin@bp.example",
            "wrong-password-123",
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    // The admin, from the office: slowed down, never locked out.
    let started = std::time::Instant::now();
    let r = post_login_from(&app, office, "admin@bp.example", PASSWORD).await;
    assert_eq!(r.status(), 303, "the admin gets in from a new address");
    let waited = started.elapsed();
    assert!(
        waited >= myriam::operators::email_delay(9),
        "an e-mail under attack is slowed down: {waited:?}"
    );
    assert!(waited < Duration::from_secs(9), "{waited:?}");

    // The admin is told: one audit entry for the operator and the window, counting the failures,
    // and a metric.
    let admin_id: String = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT id FROM operators WHERE email = 'admin@bp.example'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let audit = app.store.audit_log(50).await.unwrap();
    let guessed: Vec<_> = audit
        .iter()
        .filter(|e| e.action == AuditAction::AccountGuessed)
        .collect();
    assert_eq!(guessed.len(), 1, "{audit:?}");
    assert_eq!(guessed[0].target.as_deref(), Some(admin_id.as_str()));
    assert_eq!(guessed[0].count, 5, "failures 5 to 9 of the window");
    assert_eq!(
        guessed[0].detail.as_deref(),
        Some("failures=9 window=15min")
    );
    let metrics = app.scrape_metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("myriam_console_account_guessed_total"))
        .unwrap_or_else(|| panic!("no guessing metric:\n{metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= 1.0, "{line}");
    // Every entry of a login names the address it came from.
    let login = audit
        .iter()
        .find(|e| e.action == AuditAction::Login)
        .unwrap();
    assert_eq!(login.client.as_deref(), Some("127.0.0.7"));
    assert!(
        audit
            .iter()
            .filter(|e| e.action == AuditAction::LoginFailed)
            .all(|e| e.client.as_deref().is_some_and(|c| c.starts_with("127.0."))),
        "{audit:?}"
    );
}

#[tokio::test]
async fn concurrent_attempts_cannot_all_pass_the_throttle() {
    let (app, db, _dir) = app().await;
    let from = IpAddr::from([127, 0, 0, 9]);
    let attempts =
        (0..12).map(|_| post_login_from(&app, from, "staff@bp.example", "wrong-password-123"));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        checked <= myriam::operators::MAX_FAILURES_PER_PAIR,
        "at most five passwords checked for one e-mail from one address: {statuses:?}"
    );
    assert!(
        count(
            &db,
            "SELECT count(*) FROM login_failures WHERE key LIKE 'pair:%'"
        ) <= 12
    );
}

#[tokio::test]
async fn throttled_attempts_are_one_audit_entry_the_log_pages_and_old_failures_go() {
    let (app, db, _dir) = app().await;
    let from = IpAddr::from([127, 0, 0, 11]);
    for _ in 0..5 {
        post_login_from(&app, from, "staff@bp.example", "wrong-password-123").await;
    }
    for _ in 0..40 {
        let r = post_login_from(&app, from, "staff@bp.example", "wrong-password-123").await;
        assert_eq!(r.status(), 429);
    }
    let audit = app.store.audit_log(500).await.unwrap();
    let throttled: Vec<_> = audit
        .iter()
        .filter(|e| e.action == AuditAction::LoginThrottled)
        .collect();
    assert_eq!(
        throttled.len(),
        1,
        "one entry per key and window: {audit:?}"
    );
    assert_eq!(throttled[0].count, 40);
    assert_eq!(throttled[0].client.as_deref(), Some("127.0.0.11"));
    assert!(
        throttled[0]
            .target
            .as_deref()
            .is_some_and(|t| t.starts_with("pair:") && t.ends_with(":127.0.0.11")),
        "{throttled:?}"
    );

    // Failures that can no longer count are pruned on the next failure.
    sql(
        &db,
        "INSERT INTO login_failures (key, at) VALUES ('ip:192.0.2.1', \
         strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-20 minutes'))",
    );
    post_login(&app, "staff@bp.example", "wrong-password-123").await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM login_failures WHERE key = 'ip:192.0.2.1'"
        ),
        0
    );

    // The log pages: 250 more entries, every one reachable from the first page by "older".
    for i in 0..250 {
        sql(
            &db,
            &format!(
                "INSERT INTO audit_log (actor, action, target) VALUES ('admin@bp.example', 'export', 'n{i}')"
            ),
        );
    }
    let session = login(&app, "admin@bp.example").await;
    let mut path = "/console/audit".to_owned();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page = get(&app, &path, Some(&session.cookie)).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        seen.extend(
            (0..250)
                .filter(|i| html.contains(&format!("<td>n{i}</td>")))
                .map(|i| i.to_string()),
        );
        let Some(at) = html.find("/console/audit?before=") else {
            assert!(
                html.contains("login_throttled"),
                "the oldest page ends the log"
            );
            break;
        };
        let rest = &html[at..];
        path = rest[..rest.find('"').unwrap()].to_owned();
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 250, "every entry is on a page");
    let first = get(&app, "/console/audit", Some(&session.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(first.contains("<td>127.0.0.1</td>"), "the address column");
    assert_eq!(
        get(&app, "/console/audit?before=x", Some(&session.cookie))
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn cross_site_posts_are_refused_the_login_included() {
    let (app, _, _dir) = app().await;
    let host = app.addr.to_string();
    let login_with = |headers: Vec<(&'static str, String)>| {
        let mut request = helpers::console::client()
            .post(app.url("/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(helpers::console::form(&[
                ("email", "admin@bp.example"),
                ("password", PASSWORD),
            ]));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    for headers in [
        vec![("origin", "https://evil.example".to_owned())],
        vec![
            ("origin", "null".to_owned()),
            ("sec-fetch-site", "cross-site".to_owned()),
        ],
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![
            ("origin", format!("http://{host}")),
            ("sec-fetch-site", "same-site".to_owned()),
        ],
    ] {
        let r = login_with(headers.clone()).await.unwrap();
        assert_eq!(r.status(), 403, "{headers:?}");
        assert!(r.headers().get("set-cookie").is_none());
        assert!(r.text().await.unwrap().contains("Le formulaire a expiré"));
    }
    let same = login_with(vec![
        ("origin", format!("http://{host}")),
        ("sec-fetch-site", "same-origin".to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(same.status(), 303, "the console's own form");
    // What Chromium sends for the console's form (its pages are `Referrer-Policy: no-referrer`).
    let chromium = login_with(vec![
        ("origin", "null".to_owned()),
        ("sec-fetch-site", "same-origin".to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(
        chromium.status(),
        303,
        "Origin: null from the console's own page"
    );

    // Every other POST too, even with the session's CSRF token.
    let session = login(&app, "admin@bp.example").await;
    let lead = plant_lead(
        &app.store,
        "Luc Ouellet",
        "438 555 0102",
        "45 avenue du Parc, Laval",
        false,
    )
    .await;
    let r = helpers::console::client()
        .post(app.url(&format!("/console/leads/{}/suivi", lead.id)))
        .header("cookie", &session.cookie)
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(helpers::console::form(&[
            ("csrf", session.csrf.as_str()),
            ("version", "0"),
            ("suivi", "contacte"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        app.store.follow_up(lead.id).await.unwrap().unwrap().version,
        0
    );
}

#[tokio::test]
async fn state_changing_forms_need_the_session_csrf_token() {
    let (app, _, _dir) = app().await;
    let lead = plant_lead(
        &app.store,
        "Luc Ouellet",
        "438 555 0102",
        "45 avenue du Parc, Laval",
        false,
    )
    .await;
    let session = login(&app, "admin@bp.example").await;
    let path = format!("/console/leads/{}/suivi", lead.id);
    for form in [
        vec![("version", "0"), ("suivi", "contacte")],
        vec![("csrf", "forged"), ("version", "0"), ("suivi", "contacte")],
    ] {
        let r = post_form(&app, &path, &session.cookie, &form).await;
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("Le formulaire a expiré"));
    }
    let r = post_form(&app, "/console/logout", &session.cookie, &[]).await;
    assert_eq!(r.status(), 403);
    let r = post_form(
        &app,
        "/console/erase",
        &session.cookie,
        &[("phone", "438 555 0102"), ("confirm", "EFFACER")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        app.store.follow_up(lead.id).await.unwrap().unwrap().version,
        0
    );
    assert!(app.store.get_lead(lead.id).await.unwrap().is_some());
}

#[tokio::test]
async fn staff_cannot_reach_the_admin_pages() {
    let (app, _, _dir) = app().await;
    let session = login(&app, "staff@bp.example").await;
    for path in ["/console/audit", "/console/erase"] {
        let r = get(&app, path, Some(&session.cookie)).await;
        assert_eq!(r.status(), 403, "{path}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("réservée aux administrateurs")
        );
    }
    let r = post_form(
        &app,
        "/console/erase",
        &session.cookie,
        &[
            ("csrf", &session.csrf),
            ("phone", "438 555 0102"),
            ("confirm", "EFFACER"),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    let leads = get(&app, "/console/leads", Some(&session.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !leads.contains("/console/audit"),
        "no admin links for staff"
    );
}

#[tokio::test]
async fn idle_absolute_and_revoked_sessions_end() {
    let (app, db, _dir) = app().await;
    let idle = login(&app, "staff@bp.example").await;
    sql(
        &db,
        "UPDATE operator_sessions SET last_seen_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-31 minutes')",
    );
    assert_eq!(
        get(&app, "/console/leads", Some(&idle.cookie))
            .await
            .status(),
        303
    );

    let old = login(&app, "staff@bp.example").await;
    sql(
        &db,
        "UPDATE operator_sessions SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-13 hours') WHERE revoked_at IS NULL",
    );
    assert_eq!(
        get(&app, "/console/leads", Some(&old.cookie))
            .await
            .status(),
        303
    );

    let live = login(&app, "staff@bp.example").await;
    let out = post_form(
        &app,
        "/console/logout",
        &live.cookie,
        &[("csrf", &live.csrf)],
    )
    .await;
    assert_eq!(out.status(), 303);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie is refused by the server, not only forgotten by the browser.
    assert_eq!(
        get(&app, "/console/leads", Some(&live.cookie))
            .await
            .status(),
        303
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM operator_sessions WHERE revoked_at IS NULL"
        ),
        0
    );

    // Disabling an operator ends their sessions.
    let again = login(&app, "staff@bp.example").await;
    myriam::operators::set_disabled(
        &app.store,
        &myriam::store::console::Email::try_from("staff@bp.example").unwrap(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        get(&app, "/console/leads", Some(&again.cookie))
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn the_list_filters_searches_pages_and_marks_urgent_leads() {
    let (app, _, _dir) = app().await;
    let calm = plant_lead(
        &app.store,
        "Anne Roy",
        "514 555 0101",
        "7 chemin des Érables, Québec",
        false,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let urgent = plant_lead(
        &app.store,
        "Luc Ouellet",
        "438 555 0102",
        "45 avenue du Parc, Laval",
        true,
    )
    .await;
    let session = login(&app, "staff@bp.example").await;
    let html = get(&app, "/console/leads", Some(&session.cookie))
        .await
        .text()
        .await
        .unwrap();
    let (u, c) = (
        html.find(&format!("lead-{}", urgent.id)).unwrap(),
        html.find(&format!("lead-{}", calm.id)).unwrap(),
    );
    assert!(u < c, "newest first");
    assert!(html.contains(&format!(r#"<tr id="lead-{}" class="urgent">"#, urgent.id)));
    assert!(html.contains("URGENT"));
    assert!(html.contains(r#"data-live="/console/events?""#));
    for (query, present, absent) in [
        ("q=Érables", &calm, &urgent),
        ("q=438+555", &urgent, &calm),
        ("urgent=true", &urgent, &calm),
        ("urgent=false", &calm, &urgent),
    ] {
        let html = get(
            &app,
            &format!("/console/leads?{query}"),
            Some(&session.cookie),
        )
        .await
        .text()
        .await
        .unwrap();
        assert!(html.contains(&present.id.to_string()), "{query}");
        assert!(!html.contains(&absent.id.to_string()), "{query}");
    }
    let first = get(&app, "/console/leads?limit=1", Some(&session.cookie))
        .await
        .text()
        .await
        .unwrap();
    let start = first.find("cursor=").expect("a next page link") + "cursor=".len();
    let cursor = &first[start..start + first[start..].find('"').unwrap()];
    let second = get(
        &app,
        &format!("/console/leads?limit=1&cursor={cursor}"),
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(second.contains(&calm.id.to_string()) && !second.contains(&urgent.id.to_string()));
    assert!(!second.contains("data-live"), "a later page is a snapshot");
    let bad = get(&app, "/console/leads?status=bogus", Some(&session.cookie)).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_lead_shows_its_fields_and_calls_and_a_stale_follow_up_is_refused() {
    let (app, _, _dir) = app().await;
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
    call.mode = Some(myriam::domain::ConversationMode::Ivr);
    call.mode_reason = Some("vapi_unavailable".to_owned());
    call.status = Some("completed".to_owned());
    call.duration = Some(93);
    app.store.upsert_call(&call).await.unwrap();
    let alice = login(&app, "staff@bp.example").await;
    let bob = login(&app, "admin@bp.example").await;
    let path = format!("/console/leads/{}", lead.id);
    let page = get(&app, &path, Some(&alice.cookie)).await;
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    for text in [
        "Marie-Ève Côté",
        "+15145550101",
        "12 rue Saint-Denis",
        "l&#39;abattage",
        "URGENT",
        "Qualifié",
        "vapi_unavailable",
        "93 s",
    ] {
        assert!(html.contains(text), "{text}");
    }
    // Both opened the form at version 0; Alice saves first, Bob's save is refused.
    let form = |s: &helpers::console::Session, suivi: &'static str, note: &'static str| {
        vec![
            ("csrf".to_owned(), s.csrf.clone()),
            ("version".to_owned(), "0".to_owned()),
            ("suivi".to_owned(), suivi.to_owned()),
            ("note".to_owned(), note.to_owned()),
        ]
    };
    let post = |s: helpers::console::Session, f: Vec<(String, String)>| {
        let app = &app;
        let path = format!("{path}/suivi");
        async move {
            helpers::console::client()
                .post(app.url(&path))
                .header("cookie", &s.cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(helpers::console::form(&f))
                .send()
                .await
                .unwrap()
        }
    };
    let saved = post(alice.clone(), form(&alice, "planifie", "Jeudi 9 h")).await;
    assert_eq!(saved.status(), 303);
    let refused = post(bob.clone(), form(&bob, "perdu", "")).await;
    assert_eq!(refused.status(), 412);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("Quelqu&#39;un d&#39;autre a modifié ce lead"),
        "{html}"
    );
    assert!(html.contains("Jeudi 9 h"), "the current state is shown");
    let state = app.store.follow_up(lead.id).await.unwrap().unwrap();
    assert_eq!((state.suivi, state.version), (FollowUp::Planifie, 1));
    assert_eq!(state.by.as_deref(), Some("staff@bp.example"));
    let audit = app.store.audit_log(20).await.unwrap();
    let change = audit
        .iter()
        .find(|e| e.action == AuditAction::FollowUpChanged)
        .unwrap();
    assert_eq!(change.target.as_deref(), Some(lead.id.to_string().as_str()));
    assert_eq!(change.detail.as_deref(), Some("suivi=planifie version=1"));
    assert_eq!(
        get(&app, "/console/leads/not-a-uuid", Some(&alice.cookie))
            .await
            .status(),
        404
    );
    assert_eq!(
        get(
            &app,
            &format!("/console/leads/{}", myriam::domain::LeadId::new()),
            Some(&alice.cookie)
        )
        .await
        .status(),
        404
    );
}

#[tokio::test]
async fn csv_export_is_utf8_with_bom_french_headers_and_the_filter() {
    let (app, _, _dir) = app().await;
    let urgent = plant_lead(
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
    let session = login(&app, "staff@bp.example").await;
    let response = get(
        &app,
        "/console/leads/export.csv?urgent=true&q=C%C3%B4t%C3%A9",
        Some(&session.cookie),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("leads.csv")
    );
    let bytes = response.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "UTF-8 byte-order mark");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "header and the one matching lead: {text}");
    assert!(lines[0].starts_with(r#""Identifiant";"Créé le";"Nom complet";"Téléphone";"Adresse""#));
    assert!(lines[1].starts_with(&format!(r#""{}";"#, urgent.id)));
    for cell in [
        r#""Marie-Ève Côté""#,
        r#""'+15145550101""#,
        r#""abattage""#,
        r#""oui""#,
        r#""Qualifié""#,
        r#""À traiter""#,
    ] {
        assert!(lines[1].contains(cell), "{cell} in {}", lines[1]);
    }
    let audit = app.store.audit_log(5).await.unwrap();
    let export = audit
        .iter()
        .find(|e| e.action == AuditAction::Export)
        .unwrap();
    assert_eq!(
        export.detail.as_deref(),
        Some("rows=1 filter=urgent,search")
    );
}

#[tokio::test]
async fn a_new_lead_reaches_an_open_list_by_server_sent_events() {
    let (app, _, _dir) = app().await;
    let session = login(&app, "staff@bp.example").await;
    let response = get(&app, "/console/events?urgent=true", Some(&session.cookie)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut response = response;
    tokio::time::sleep(Duration::from_millis(200)).await;
    plant_lead(
        &app.store,
        "Anne Roy",
        "438 555 0102",
        "7 chemin des Érables, Québec",
        false,
    )
    .await;
    let lead = plant_lead(
        &app.store,
        "Luc Ouellet",
        "514 555 0103",
        "45 avenue du Parc, Laval",
        true,
    )
    .await;
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: lead") && seen.contains(&lead.id.to_string()) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen}");
    assert!(seen.contains(r#"class=\"urgent\""#), "{seen}");
    assert!(
        !seen.contains("Anne Roy"),
        "the filter applies to live updates: {seen}"
    );
}

#[tokio::test]
async fn an_admin_erases_a_caller_after_typed_confirmation_and_nothing_is_left() {
    let (app, db, _dir) = app().await;
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
    let sid = "CA0123456789abcdef0123456789abcdef";
    let mut call = CallUpdate::new(sid.try_into().unwrap());
    call.lead_id = Some(gone.id);
    call.from_number = Some("+15145550101".to_owned());
    app.store.upsert_call(&call).await.unwrap();
    app.store
        .record_event(&format!("twilio:{sid}:status:completed"))
        .await
        .unwrap();
    sql(
        &db,
        &format!(
            "INSERT INTO outbox (entity, op) VALUES ('lead:{}', '{{}}'); \
                  INSERT INTO dead_letters (entity, op, enqueued_at, attempts, error) VALUES ('call:x', '{{\"from_number\":\"+15145550101\"}}', 'now', 3, 'rejected')",
            gone.id
        ),
    );
    let admin = login(&app, "admin@bp.example").await;
    let form = get(&app, "/console/erase", Some(&admin.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(form.contains(r#"<label for="confirm">Tapez EFFACER pour confirmer</label>"#));
    let csrf = csrf_of(&form);
    let unconfirmed = post_form(
        &app,
        "/console/erase",
        &admin.cookie,
        &[
            ("csrf", &csrf),
            ("phone", "514 555 0101"),
            ("confirm", "oui"),
        ],
    )
    .await;
    assert_eq!(unconfirmed.status(), 400);
    assert!(
        app.store.get_lead(gone.id).await.unwrap().is_some(),
        "nothing erased without confirmation"
    );
    let done = post_form(
        &app,
        "/console/erase",
        &admin.cookie,
        &[
            ("csrf", &csrf),
            ("phone", "(514) 555-0101"),
            ("confirm", "EFFACER"),
        ],
    )
    .await;
    assert_eq!(done.status(), 200);
    let page = done.text().await.unwrap();
    assert!(
        page.contains(
            "1 lead(s), 1 appel(s), 1 événement(s), 1 écriture(s) en attente, 1 lettre(s) mortes et 0 alerte(s) SMS effacés"
        ),
        "{page}"
    );
    for query in [
        "SELECT count(*) FROM leads WHERE telephone = '+15145550101'",
        "SELECT count(*) FROM calls WHERE from_number = '+15145550101'",
        "SELECT count(*) FROM processed_events",
        "SELECT count(*) FROM outbox",
        "SELECT count(*) FROM dead_letters",
    ] {
        assert_eq!(count(&db, query), 0, "{query}");
    }
    assert!(app.store.get_lead(kept.id).await.unwrap().is_some());
    // The audit log names the ids, never the number or the name.
    let audit = get(&app, "/console/audit", Some(&admin.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(audit.contains("erase") && audit.contains(&gone.id.to_string()));
    for personal in ["+1514", "5550101", "Côté", "Saint-Denis", "Anne Roy"] {
        assert!(!audit.contains(personal), "{personal} in the audit page");
    }
    assert!(audit.contains("login") && audit.contains("admin@bp.example"));
}

/// Whether `needle` occurs in the raw bytes of the database or its WAL.
fn in_raw_files(db: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db.display());
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn an_erased_callers_bytes_are_gone_from_the_database_file_and_its_wal() {
    let (app, db, _dir) = app().await;
    let name = "Gédéon Xyzzy-Ouimet";
    let address = "42 rue des Quenouilles, Rimouski";
    let gone = plant_lead(&app.store, name, "418 555 0177", address, true).await;
    plant_lead(
        &app.store,
        "Anne Roy",
        "438 555 0102",
        "7 chemin des Érables, Québec",
        false,
    )
    .await;
    let mut call = CallUpdate::new("CA0123456789abcdef0123456789abcd77".try_into().unwrap());
    call.lead_id = Some(gone.id);
    call.from_number = Some("+14185550177".to_owned());
    app.store.upsert_call(&call).await.unwrap();
    sql(&db, "PRAGMA wal_checkpoint(TRUNCATE)");
    for needle in [name, address, "+14185550177"] {
        assert!(
            !in_raw_files(&db, needle).is_empty(),
            "{needle} is in the file before the erasure (the grep works)"
        );
    }

    let admin = login(&app, "admin@bp.example").await;
    let done = post_form(
        &app,
        "/console/erase",
        &admin.cookie,
        &[
            ("csrf", &admin.csrf),
            ("phone", "418 555 0177"),
            ("confirm", "EFFACER"),
        ],
    )
    .await;
    assert_eq!(done.status(), 200);
    assert!(app.store.get_lead(gone.id).await.unwrap().is_none());
    // Whatever the gateway left in the WAL, after a checkpoint the bytes are in neither file.
    sql(&db, "PRAGMA wal_checkpoint(TRUNCATE)");
    for needle in [name, address, "+14185550177", "4185550177"] {
        assert_eq!(
            in_raw_files(&db, needle),
            Vec::<String>::new(),
            "{needle} is still in the raw files"
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM leads WHERE nom_complet = 'Anne Roy'"
        ),
        1,
        "the other caller is kept"
    );
}

#[tokio::test]
async fn sixty_changes_between_two_polls_all_reach_an_open_stream_and_streams_are_capped() {
    let (app, _, _dir) = app().await;
    let session = login(&app, "staff@bp.example").await;
    let mut response = get(&app, "/console/events", Some(&session.cookie)).await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let lead = plant_lead(
            &app.store,
            &format!(
                "Client {}{}",
                char::from(b'A' + u8::try_from(i / 26).unwrap()),
                char::from(b'a' + u8::try_from(i % 26).unwrap())
            ),
            &format!("514 555 {:04}", 1000 + i),
            "45 avenue du Parc, Laval",
            false,
        )
        .await;
        ids.push(lead.id.to_string());
    }
    let mut seen = String::new();
    let all = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if ids.iter().all(|id| seen.contains(id.as_str())) {
                return true;
            }
        }
        false
    })
    .await;
    let missing = ids.iter().filter(|id| !seen.contains(id.as_str())).count();
    assert_eq!(all, Ok(true), "{missing} of 60 changes never arrived");

    // Three more streams for this session are fine, a fifth is refused; another session is not.
    let mut open = vec![response];
    for _ in 1..myriam::console::live::MAX_PER_SESSION {
        let r = get(&app, "/console/events", Some(&session.cookie)).await;
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let refused = get(&app, "/console/events", Some(&session.cookie)).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Trop de listes ouvertes")
    );
    let other = login(&app, "admin@bp.example").await;
    assert_eq!(
        get(&app, "/console/events", Some(&other.cookie))
            .await
            .status(),
        200
    );
    // A closed stream gives its place back.
    drop(open.pop());
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let r = get(&app, "/console/events", Some(&session.cookie)).await;
            if r.status() == 200 {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(again.is_ok(), "the place came back");
}

/// What `response` sent until `needle` showed up (`None`: not within `within`).
async fn stream_until(
    response: &mut reqwest::Response,
    needle: &str,
    within: Duration,
) -> Option<String> {
    let mut seen = String::new();
    tokio::time::timeout(within, async {
        while let Ok(Some(chunk)) = response.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(needle) {
                return Some(seen);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// One poller per instance: 1 000 open streams (the caps raised through the settings) cost one
/// look at the store per interval — one query for the changes and one for every stream's
/// session — counted on the store itself, and every stream gets the change; a stream with a
/// filter gets only its leads, a search its matches. (With a poll per stream, as before, the
/// same interval cost two queries per stream: 2 000.)
#[tokio::test]
async fn a_thousand_open_streams_cost_one_store_poll_per_interval() {
    const STREAMS: usize = 1_000;
    let poll = Duration::from_millis(500);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db");
    let app = spawn_app_with(move |s| {
        s.store.database_path = path;
        s.live.poll = poll;
        s.live.max_streams = STREAMS + 2;
        s.live.max_per_session = STREAMS + 2;
    })
    .await;
    add_operator(&app, "staff@bp.example", Role::Staff).await;
    let session = login(&app, "staff@bp.example").await;
    let myriam::store::AnyStore::Sqlite(store) = &app.store else {
        panic!("a SQLite store")
    };
    // One client, its connections opened 50 at a time (a burst of 1 000 SYNs overflows the
    // loopback's queue and they wait for a retransmit).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let open = |path: &'static str| {
        let request = client
            .get(app.url(path))
            .header("cookie", session.cookie.clone());
        async move { request.send().await.unwrap() }
    };
    let mut streams: Vec<reqwest::Response> =
        futures_util::StreamExt::collect(futures_util::StreamExt::buffer_unordered(
            futures_util::stream::iter((0..STREAMS).map(|_| open("/console/events"))),
            50,
        ))
        .await;
    assert!(streams.iter().all(|r| r.status() == 200));
    let mut urgent = open("/console/events?urgent=true").await;
    let mut searched = open("/console/events?q=Tremblay").await;
    assert_eq!(urgent.status(), 200);
    assert_eq!(searched.status(), 200);
    // The cap holds.
    assert_eq!(open("/console/events").await.status(), 503);

    // Quiet: only the poller asks the store.
    tokio::time::sleep(poll * 2).await;
    let (ops, started) = (store.operations(), std::time::Instant::now());
    tokio::time::sleep(poll * 10).await;
    let used = store.operations() - ops;
    let intervals = u64::try_from(started.elapsed().as_millis() / poll.as_millis()).unwrap() + 1;
    eprintln!(
        "{} streams: {used} store operations in {intervals} intervals of {poll:?}",
        STREAMS + 2
    );
    assert!(
        used <= 2 * intervals,
        "{used} store operations in {intervals} intervals with {} streams open",
        STREAMS + 2
    );
    assert!(used >= 2 * (intervals - 2), "the poller polls: {used}");

    // A change reaches every stream; the filtered ones get theirs only.
    let other_lead = plant_lead(
        &app.store,
        "Anne Roy",
        "438 555 0102",
        "7 chemin des Érables, Québec",
        false,
    )
    .await;
    let urgent_lead = plant_lead(
        &app.store,
        "Julie Tremblay",
        "514 555 0103",
        "45 avenue du Parc, Laval",
        true,
    )
    .await;
    let (other_lead, urgent_lead) = (other_lead.id.to_string(), urgent_lead.id.to_string());
    let reached = futures_util::future::join_all(
        streams
            .iter_mut()
            .map(|r| stream_until(r, &urgent_lead, Duration::from_secs(20))),
    )
    .await;
    let everything = reached
        .iter()
        .flatten()
        .filter(|s| s.contains(&other_lead))
        .count();
    assert_eq!(everything, STREAMS, "both changes reached every stream");
    // The other_lead lead was written first: had the filtered streams sent it, it came before.
    for response in [&mut urgent, &mut searched] {
        let seen = stream_until(response, &urgent_lead, Duration::from_secs(10))
            .await
            .expect("the urgent Tremblay lead");
        assert!(!seen.contains(&other_lead), "{seen}");
    }
}

//! The server skeleton: health routes, request ids, limits, metrics, graceful shutdown and drain.

mod helpers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use helpers::{spawn_app, spawn_app_with};
use myriam::config::Settings;
use myriam::startup::{AppState, Lifecycle, router};
use myriam::store::AnyStore;
use secrecy::SecretString;
use tower::ServiceExt as _;

#[tokio::test]
async fn healthz_answers_ok_with_version_and_a_request_id() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn a_caller_request_id_is_propagated() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "twilio-retry-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "twilio-retry-42");
}

#[tokio::test]
async fn readyz_reports_ready_with_the_environment() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["environment"], "test");
    assert_eq!(body["draining"], false);
    assert_eq!(
        body["store"],
        serde_json::json!({"kind": "sqlite", "ok": true})
    );
}

#[tokio::test]
async fn readyz_stays_ready_but_reports_an_unreachable_supabase() {
    let app = spawn_app_with(|s| {
        s.store.supabase_url = Some("http://127.0.0.1:9".parse().unwrap());
        s.store.supabase_service_role_key = Some(SecretString::from("sb_secret_x".to_owned()));
    })
    .await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "writes still become durable in the outbox"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["store"],
        serde_json::json!({
            "kind": "supabase", "ok": true,
            "supabase": {
                "ok": false, "error": "unavailable", "outbox_depth": 0,
                "outbox_oldest_age_secs": null, "outbox_max_age_secs": 300, "outbox_stale": false,
                "refusing": false
            }
        })
    );
}

#[tokio::test]
async fn readyz_fails_once_the_outbox_is_older_than_its_bound() {
    let app = spawn_app_with(|s| {
        s.store.supabase_url = Some("http://127.0.0.1:9".parse().unwrap());
        s.store.supabase_service_role_key = Some(SecretString::from("sb_secret_x".to_owned()));
        s.telemetry.readyz_max_outbox_age = std::time::Duration::from_secs(1);
    })
    .await;
    // A call arrives while Supabase is down: its lead and call rows wait in the outbox.
    let voice = app
        .client
        .post(app.url("/twilio/voice"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            "AccountSid=AC0123456789abcdef0123456789abcdef&CallSid=CA0123456789abcdef0123456789abcdef\
             &From=%2B15145550142&To=%2B14505550100\
             &CallStatus=ringing&Direction=inbound",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(voice.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "a fresh outbox is fine");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["store"]["ok"], true, "writes are still durable");
    assert_eq!(body["store"]["supabase"]["outbox_stale"], true);
    // The call's start (lead and call row, insert-or-get by CallSid) is one queued write.
    assert!(body["store"]["supabase"]["outbox_depth"].as_u64().unwrap() >= 1);
    assert!(
        body["store"]["supabase"]["outbox_oldest_age_secs"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn readyz_is_503_while_draining() {
    let lifecycle = Lifecycle::default();
    let settings = Settings::for_tests();
    let state = AppState::new(
        settings.clone(),
        AnyStore::open(&settings).unwrap(),
        lifecycle.clone(),
    );
    lifecycle.shutdown();
    let response = router(state)
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bytes = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["status"], "draining");
    assert_eq!(body["draining"], true);
}

#[tokio::test]
async fn unknown_routes_are_404_and_oversized_bodies_413() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "not found\n");

    let big = vec![b'a'; myriam::startup::MAX_BODY_BYTES + 1];
    let response = app
        .client
        .post(app.url("/healthz"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_on_their_own_listener() {
    let app = spawn_app_with(|s| s.telemetry.prometheus_port = Some(0)).await;
    let metrics_addr = app.metrics_addr.expect("metrics listener bound");
    assert_ne!(metrics_addr.port(), app.addr.port());
    for _ in 0..3 {
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app
        .client
        .get(app.url("/no/such/path"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let response = app
        .client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let count_line = text
        .lines()
        .find(|l| {
            l.starts_with("myriam_http_requests_total{")
                && l.contains(r#"route="/readyz""#)
                && l.contains(r#"status="200""#)
                && l.contains(r#"method="GET""#)
        })
        .unwrap_or_else(|| panic!("no readyz counter in:\n{text}"));
    let count: f64 = count_line.rsplit(' ').next().unwrap().parse().unwrap();
    // Other tests in this process share the recorder, so at least our three.
    assert!(count >= 3.0, "{count_line}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("myriam_http_requests_total{")
                && l.contains(r#"route="unmatched""#)
                && l.contains(r#"status="404""#)),
        "404s are counted under a bounded route label:\n{text}"
    );
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
    assert!(
        text.contains(r#"myriam_http_request_duration_seconds_bucket{route="/readyz",method="GET",le="0.005"}"#),
        "latency histogram with buckets:\n{text}"
    );
    assert!(text.contains("myriam_build_info{"), "{text}");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_waits_for_tracked_tasks() {
    let app = spawn_app().await;
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let token = app.lifecycle.shutdown_token();
    app.lifecycle.tracker().spawn(async move {
        token.cancelled().await;
        // A call finishing its goodbye after the signal.
        tokio::time::sleep(Duration::from_millis(300)).await;
        flag.store(true, Ordering::SeqCst);
    });
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    app.lifecycle.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(5), app.server)
        .await
        .expect("server stops within the drain timeout")
        .expect("server task did not panic");
    assert!(result.is_ok(), "{result:?}");
    assert!(
        finished.load(Ordering::SeqCst),
        "run_until_stopped returned before the tracked task finished"
    );
    let after = reqwest::Client::new()
        .get(format!("http://{}/healthz", app.addr))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "still accepting after shutdown: {after:?}");
}

#[tokio::test]
async fn drain_gives_up_after_the_timeout() {
    let app = spawn_app_with(|s| s.drain_timeout = Duration::from_millis(200)).await;
    app.lifecycle.tracker().spawn(async {
        // A task that ignores the token.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    app.lifecycle.shutdown();
    tokio::time::timeout(Duration::from_secs(3), app.server)
        .await
        .expect("drain timeout bounds shutdown")
        .unwrap()
        .unwrap();
}

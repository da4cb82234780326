//! The client's address behind a proxy (`TRUSTED_PROXIES`, `CLIENT_IP_HEADER`), over real HTTP:
//! the login throttle counts the client a trusted proxy names, not the proxy; an untrusted peer's
//! headers change nothing; a malformed header is ignored and counted, never a 500; HSTS and the
//! `__Host-` cookie when the console is served over https. The test client plays the proxy (it
//! connects from loopback); `tests/proxy.rs` puts a real nginx in front.

mod helpers;

use helpers::console::{PASSWORD, add_operator, client, form};
use helpers::{TestApp, spawn_app_with};
use myriam::client_addr::{ClientIpHeader, ClientIpPolicy};
use myriam::config::PublicBaseUrl;
use myriam::store::console::Role;

async fn app(policy: Option<ClientIpPolicy>, https: bool) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let app = spawn_app_with(move |s| {
        s.store.database_path = db;
        s.telemetry.prometheus_port = Some(0);
        if let Some(policy) = policy {
            s.client_ip = policy;
        }
        if https {
            s.public_base_url = Some(PublicBaseUrl::new("https://gw.bp-emondage.test"));
        }
    })
    .await;
    add_operator(&app, "admin@bp.example", Role::Admin).await;
    add_operator(&app, "staff@bp.example", Role::Staff).await;
    (app, dir)
}

fn behind_loopback_proxy() -> ClientIpPolicy {
    ClientIpPolicy {
        trusted: "127.0.0.1/32, ::1".parse().unwrap(),
        header: ClientIpHeader::XForwardedFor,
    }
}

async fn login_via(
    app: &TestApp,
    forwarded_for: Option<&str>,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let mut request = client()
        .post(app.url("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("email", email), ("password", password)]));
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn bad_logins_from_one_client_behind_the_proxy_never_lock_out_another() {
    let (app, _dir) = app(Some(behind_loopback_proxy()), false).await;
    // Client A guesses 25 times, with a spoofed leftmost value the proxy would keep.
    for i in 0..25 {
        let r = login_via(
            &app,
            Some("6.6.6.6, 198.51.100.10"),
            &format!("guess{i}@bp.example"),
            "wrong-password-123",
        )
        .await;
        assert!(
            [401, 429].contains(&r.status().as_u16()),
            "attempt {i}: {}",
            r.status()
        );
    }
    // Client A is throttled now ...
    let a = login_via(
        &app,
        Some("198.51.100.10"),
        "nobody@bp.example",
        "wrong-password-123",
    )
    .await;
    assert_eq!(a.status(), 429, "client A's own budget is spent");
    // ... but client B, behind the same proxy, signs in.
    let b = login_via(&app, Some("203.0.113.20"), "admin@bp.example", PASSWORD).await;
    assert_eq!(b.status(), 303, "client B is not locked out by client A");
    assert!(
        b.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("myriam_session=")
    );
    // So does staff from a third address (IPv6; counted by its /64).
    let c = login_via(&app, Some("2001:db8:5:6::7"), "staff@bp.example", PASSWORD).await;
    assert_eq!(c.status(), 303);
}

#[tokio::test]
async fn an_untrusted_peer_cannot_pick_its_address() {
    // Nobody trusted (the default): the TCP peer is the client, whatever X-Forwarded-For says.
    let (app, _dir) = app(None, false).await;
    for i in 0..20 {
        let spoofed = format!("198.51.100.{i}");
        let r = login_via(
            &app,
            Some(&spoofed),
            &format!("guess{i}@bp.example"),
            "wrong-password-123",
        )
        .await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    let r = login_via(&app, Some("203.0.113.99"), "admin@bp.example", PASSWORD).await;
    assert_eq!(
        r.status(),
        429,
        "a fresh spoofed X-Forwarded-For must not escape the peer's throttle"
    );
}

#[tokio::test]
async fn a_malformed_header_is_ignored_and_counted() {
    let (app, _dir) = app(Some(behind_loopback_proxy()), false).await;
    for bad in [
        "not-an-address",
        "198.51.100.1,,",
        "999.0.0.1",
        "1.2.3.4, <script>",
    ] {
        let r = login_via(&app, Some(bad), "staff@bp.example", "wrong-password-123").await;
        assert_eq!(r.status(), 401, "{bad}: the login is judged, never a 500");
    }
    let r = login_via(&app, Some("garbage"), "staff@bp.example", PASSWORD).await;
    // The e-mail's five failures came from the proxy's own address (the header was ignored):
    // throttled, not a server error.
    assert!([303, 429].contains(&r.status().as_u16()), "{}", r.status());
    let metrics = app.scrape_metrics().await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("myriam_client_ip_header_malformed_total")
                && l.contains("header=\"x-forwarded-for\"")
        })
        .unwrap_or_else(|| panic!("counter missing:\n{metrics}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 5.0, "{line}");
}

#[tokio::test]
async fn https_consoles_send_hsts_and_a_host_only_secure_cookie() {
    let (gw, _dir) = app(None, true).await;
    let page = client().get(gw.url("/console/login")).send().await.unwrap();
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let r = login_via(&gw, None, "admin@bp.example", PASSWORD).await;
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-myriam_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(r.headers().contains_key("strict-transport-security"));

    // Plain http in development: no HSTS (it would pin a workstation's localhost to https).
    let (plain, _dir) = app(None, false).await;
    let page = client()
        .get(plain.url("/console/login"))
        .send()
        .await
        .unwrap();
    assert!(!page.headers().contains_key("strict-transport-security"));
}

//! The shipped nginx configuration (`deploy/nginx/myriam.conf`) in front of a production gateway,
//! over TLS with a throwaway CA and a certificate for a test host name (resolved to loopback by the
//! clients here, never by editing the machine): Twilio webhooks signed for the public https URL
//! pass (a forged one does not), a Media Stream over `wss://` bridges a call with every frame
//! intact, the console signs in and receives a live update, `/metrics` is not reachable, and one
//! client's bad logins never lock out another behind the same proxy.
//!
//! Clients connect from distinct loopback addresses (127.0.0.2, 127.0.0.3): nginx sees them as
//! different peers, the gateway sees only nginx (127.0.0.1, its one trusted proxy).

mod helpers;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use helpers::console::{PASSWORD, add_operator, form, plant_lead};
use helpers::fake_vapi::{Behaviour, FakeVapi};
use helpers::{TestApp, spawn_app_with, twiml_parameter};
use myriam::client_addr::{ClientIpHeader, ClientIpPolicy};
use myriam::config::{CallMode, PublicBaseUrl};
use myriam::environment::Environment;
use myriam::store::console::Role;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const HOST: &str = "gw.myriam.test";
const TOKEN: &str = "5e1f0c2d9a8b7c6d5e4f3a2b1c0d9e8f";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl command line is installed (scripts/install-tools.sh)");
    assert!(status.success(), "openssl {args:?}");
}

/// A throwaway CA and a certificate it signed for [`HOST`]; returns the CA's PEM.
fn certificates(dir: &Path) -> Vec<u8> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Myriam test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={HOST}"),
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        format!("subjectAltName=DNS:{HOST}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    std::fs::read(dir.join("ca.pem")).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx running `deploy/nginx/myriam.conf`, with only what differs on this machine replaced:
/// the ports, the upstream's address, the host name and the certificate's paths.
struct Nginx {
    child: Child,
    https: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, upstream: SocketAddr) -> Self {
        let shipped = std::fs::read_to_string("deploy/nginx/myriam.conf").unwrap();
        let (plain_port, https_port) = (free_port(), free_port());
        let mut conf = shipped.clone();
        for (from, to) in [
            ("server 127.0.0.1:8080;", format!("server {upstream};")),
            ("listen 80;", format!("listen 127.0.0.1:{plain_port};")),
            ("listen [::]:80;", String::new()),
            (
                "listen 443 ssl;",
                format!("listen 127.0.0.1:{https_port} ssl;"),
            ),
            ("listen [::]:443 ssl;", String::new()),
            (
                "/etc/letsencrypt/live/gateway.example.com/fullchain.pem",
                dir.join("server.pem").display().to_string(),
            ),
            (
                "/etc/letsencrypt/live/gateway.example.com/privkey.pem",
                dir.join("server.key").display().to_string(),
            ),
            ("gateway.example.com", HOST.to_owned()),
        ] {
            assert!(
                conf.contains(from),
                "deploy/nginx/myriam.conf has no `{from}`"
            );
            conf = conf.replace(from, &to);
        }
        std::fs::write(dir.join("myriam.conf"), conf).unwrap();
        let temp = dir.join("temp");
        std::fs::create_dir_all(&temp).unwrap();
        let d = dir.display();
        // The `http` block a distribution's nginx.conf has, pointed at this directory.
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/temp/body;\n\
                 proxy_temp_path {d}/temp/proxy;\n  fastcgi_temp_path {d}/temp/fastcgi;\n\
                 uwsgi_temp_path {d}/temp/uwsgi;\n  scgi_temp_path {d}/temp/scgi;\n\
                 include {d}/myriam.conf;\n}}\n"
            ),
        )
        .unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is installed (scripts/install-tools.sh: nginx-light)");
        let check = Command::new(nginx)
            .args(["-t", "-p"])
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "nginx -t refused the configuration:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let https = SocketAddr::from(([127, 0, 0, 1], https_port));
        for _ in 0..200 {
            if std::net::TcpStream::connect(https).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child,
            https,
            dir: dir.to_owned(),
        }
    }

    fn public(&self) -> String {
        format!("https://{HOST}:{}", self.https.port())
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser or Twilio: trusts the throwaway CA, resolves [`HOST`] to nginx, connects from
/// `from` (a loopback address of its own).
fn client(ca: &[u8], nginx: &Nginx, from: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
        .resolve(HOST, nginx.https)
        .local_address(IpAddr::V4(from))
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .build()
        .unwrap()
}

async fn gateway(
    environment: Environment,
    vapi: &FakeVapi,
    public: String,
    db: PathBuf,
    bind: SocketAddr,
) -> TestApp {
    let base = vapi.base.clone();
    spawn_app_with(move |s| {
        s.bind_addr = bind;
        s.environment = environment;
        s.store.database_path = db;
        s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.public_base_url = Some(PublicBaseUrl::new(&public));
        s.call_mode = CallMode::Bridge;
        s.vapi.private_key = Some(SecretString::from(
            "7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42".to_owned(),
        ));
        s.vapi.assistant_id = Some("0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b".to_owned());
        s.vapi.base_url = base.parse().unwrap();
        s.telemetry.prometheus_port = Some(0);
        s.client_ip = ClientIpPolicy {
            trusted: "127.0.0.1/32".parse().unwrap(),
            header: ClientIpHeader::XForwardedFor,
        };
    })
    .await
}

/// A gateway in `environment` behind its own nginx, and what a test needs to reach it.
struct Setup {
    _dir: tempfile::TempDir,
    ca: Vec<u8>,
    vapi: FakeVapi,
    nginx: Nginx,
    app: TestApp,
    public: String,
}

async fn setup(environment: Environment) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path());
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    // nginx needs the gateway's address and the gateway its public URL (nginx's port): the
    // gateway's port is chosen first, nginx started on it, then the gateway bound to it.
    let upstream = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let nginx = Nginx::start(dir.path(), upstream);
    let public = nginx.public();
    let app = gateway(
        environment,
        &vapi,
        public.clone(),
        dir.path().join("myriam.db"),
        upstream,
    )
    .await;
    add_operator(&app, "staff@bp.example", Role::Staff).await;
    Setup {
        _dir: dir,
        ca,
        vapi,
        nginx,
        app,
        public,
    }
}

/// `POST /twilio/voice` through nginx, signed over the public https URL with a query nginx must
/// pass untouched; returns the status and the TwiML. `forged`: a signature made with another key.
async fn voice(s: &Setup, twilio: &reqwest::Client, sid: &str, forged: bool) -> (u16, String) {
    let target = "/twilio/voice?src=pstn%2Fqc&n=a%20b";
    let params = [
        ("AccountSid", ACCOUNT),
        ("CallSid", sid),
        ("CallStatus", "ringing"),
        ("From", "+15145550199"),
        ("To", "+14505550100"),
    ];
    let signed_url = format!("{}{target}", s.public);
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let key = if forged {
        "00000000000000000000000000000000"
    } else {
        TOKEN
    };
    let signature = myriam::twilio::signature::sign(
        key,
        &myriam::twilio::signature::signed_data(&signed_url, &owned),
    );
    let response = twilio
        .post(&signed_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", &signature)
        .body(form(&params))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

type WssSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `wss://HOST:port/twilio/media` through nginx, signed (or not) like Twilio's handshake.
async fn media_stream(s: &Setup, signed: bool) -> Result<WssSocket, String> {
    let stream_url = format!("wss://{HOST}:{}/twilio/media", s.nginx.https.port());
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in pem_certificates(&s.ca) {
        roots.add(cert).unwrap();
    }
    let tls = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            stream_url.as_str(),
        )
        .unwrap();
    let key = if signed {
        TOKEN
    } else {
        "00000000000000000000000000000000"
    };
    request.headers_mut().insert(
        "x-twilio-signature",
        myriam::twilio::signature::sign(key, &stream_url)
            .parse()
            .unwrap(),
    );
    let tcp = tokio::net::TcpStream::connect(s.nginx.https).await.unwrap();
    tokio_tungstenite::client_async_tls_with_config(
        request,
        tcp,
        None,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
    )
    .await
    .map(|(socket, _)| socket)
    .map_err(|e| e.to_string())
}

async fn login(
    s: &Setup,
    from: Ipv4Addr,
    email: &str,
    password: &str,
    spoof: Option<&str>,
) -> reqwest::Response {
    let mut request = client(&s.ca, &s.nginx, from)
        .post(format!("{}/console/login", s.public))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &s.public)
        .body(form(&[("email", email), ("password", password)]));
    if let Some(value) = spoof {
        request = request.header("x-forwarded-for", value);
    }
    request.send().await.unwrap()
}

/// Production behind the shipped nginx: webhooks signed for the https URL, the signed `wss://`
/// handshake, the console (HSTS, `__Host-` cookie, a live update), no `/metrics`, and the lockout
/// that is gone.
#[tokio::test]
#[allow(clippy::too_many_lines)] // one production gateway, every path through the proxy in turn
async fn production_behind_nginx_with_tls() {
    let s = setup(Environment::Production).await;
    let twilio = client(&s.ca, &s.nginx, Ipv4Addr::new(127, 0, 0, 2));

    // --- Twilio's webhook, signed over the public https URL ----------------------------------------
    let sid = format!("CA{:032x}", 7);
    let (status, _) = voice(&s, &twilio, &sid, true).await;
    assert_eq!(status, 403, "a forged signature is refused");
    let (status, twiml) = voice(&s, &twilio, &sid, false).await;
    assert_eq!(status, 200, "{twiml}\n{}", s.nginx.error_log());
    let stream_url = format!("wss://{HOST}:{}/twilio/media", s.nginx.https.port());
    assert!(
        twiml.contains(&format!("<Stream url=\"{stream_url}\">")),
        "{twiml}"
    );
    // The Media Stream's handshake through nginx, checked against the public wss:// URL.
    let forged = media_stream(&s, false).await.unwrap_err();
    assert!(forged.contains("403"), "{forged}");
    media_stream(&s, true).await.unwrap_or_else(|e| {
        panic!(
            "signed wss handshake through nginx: {e}\n{}",
            s.nginx.error_log()
        )
    });

    // --- the console: sign in, then a live update through nginx's unbuffered SSE location ------
    let from = Ipv4Addr::new(127, 0, 0, 3);
    let signed_in = login(&s, from, "staff@bp.example", PASSWORD, None).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(
        signed_in.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let set_cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.starts_with("__Host-myriam_session=") && set_cookie.contains("; Secure"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let staff = client(&s.ca, &s.nginx, from);
    let mut events = staff
        .get(format!("{}/console/events", s.public))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lead = plant_lead(
        &s.app.store,
        "Julie Tremblay",
        "819 555 0142",
        "45 rue King Ouest, Sherbrooke",
        true,
    )
    .await;
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = events.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: lead") && seen.contains(&lead.id.to_string()) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "live update through nginx: {seen}");

    // --- /metrics is not served through the proxy ---------------------------------------------
    let metrics = staff
        .get(format!("{}/metrics", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 404);
    assert!(!metrics.text().await.unwrap().contains("myriam_"));

    // --- one client's bad logins never lock out another behind the same proxy -----------------
    let guesser = Ipv4Addr::new(127, 0, 0, 4);
    for i in 0..25 {
        // A spoofed value: nginx appends the real peer after it, and that is what counts.
        let spoof = format!("198.51.100.{i}");
        let r = login(
            &s,
            guesser,
            &format!("guess{i}@bp.example"),
            "wrong-password-123",
            Some(&spoof),
        )
        .await;
        assert!([401, 429].contains(&r.status().as_u16()), "{}", r.status());
    }
    let again = login(
        &s,
        guesser,
        "staff@bp.example",
        PASSWORD,
        Some("203.0.113.77"),
    )
    .await;
    assert_eq!(
        again.status(),
        429,
        "the guesser is throttled, spoofing or not"
    );
    let other = login(
        &s,
        Ipv4Addr::new(127, 0, 0, 5),
        "staff@bp.example",
        PASSWORD,
        None,
    )
    .await;
    assert_eq!(other.status(), 303, "another client still signs in");
}

/// A Media Stream over `wss://` through nginx bridges a call with every frame intact. The gateway
/// runs in development here: signatures are enforced the same way, but its Vapi leg may use the
/// local fake's `ws://` (production's leg requires `wss://` to Vapi's own hosts).
#[tokio::test]
async fn a_media_stream_through_nginx_keeps_every_frame() {
    const FRAMES: u32 = 100;
    let s = setup(Environment::Development).await;
    let twilio = client(&s.ca, &s.nginx, Ipv4Addr::new(127, 0, 0, 2));
    let sid = format!("CA{:032x}", 8);
    let (status, twiml) = voice(&s, &twilio, &sid, false).await;
    assert_eq!(status, 200, "{twiml}");
    let socket = media_stream(&s, true)
        .await
        .unwrap_or_else(|e| panic!("wss handshake through nginx: {e}\n{}", s.nginx.error_log()));
    let (mut tx, mut rx) = socket.split();
    tx.send(Message::Text(r#"{"event":"connected"}"#.into()))
        .await
        .unwrap();
    let start = json!({"event": "start", "streamSid": "MZ8",
        "start": {"streamSid": "MZ8", "callSid": sid, "accountSid": ACCOUNT,
            "customParameters": {"call_sid": sid, "lead_id": twiml_parameter(&twiml, "lead_id"),
                                 "token": twiml_parameter(&twiml, "token")}}});
    tx.send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(5), rx.next()).await
        {
            let Message::Text(text) = message else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["event"] == "media" {
                got.push(
                    base64::engine::general_purpose::STANDARD
                        .decode(v["media"]["payload"].as_str().unwrap())
                        .unwrap(),
                );
                if got.len() == FRAMES as usize {
                    break;
                }
            }
        }
        got
    });
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..FRAMES {
        tick.tick().await;
        let media = json!({"event": "media", "streamSid": "MZ8",
            "media": {"track": "inbound", "chunk": i.to_string(), "timestamp": "0",
                      "payload": base64::engine::general_purpose::STANDARD.encode(frame_audio(i))}});
        tx.send(Message::Text(media.to_string().into()))
            .await
            .unwrap();
    }
    let got = reader.await.unwrap();
    let expected: Vec<Vec<u8>> = (0..FRAMES).map(frame_audio).collect();
    assert_eq!(got.len(), expected.len(), "frames back through nginx");
    assert!(got == expected, "every frame intact and in order");
    assert_eq!(s.vapi.creates(), 1, "one Vapi call for the stream");
    let _ = tx
        .send(Message::Text(
            r#"{"event":"stop","streamSid":"MZ8"}"#.into(),
        ))
        .await;
}

fn frame_audio(i: u32) -> Vec<u8> {
    let [a, b, ..] = i.to_le_bytes();
    (0..160u8).map(|k| k ^ a ^ b.rotate_left(3)).collect()
}

fn pem_certificates(pem: &[u8]) -> Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>> {
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(Result::unwrap)
        .collect()
}

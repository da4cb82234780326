//! Shared test helpers: a gateway on port 0, and the built binaries run in a clean environment.
#![allow(dead_code)] // each test file uses a different part of this module

pub mod console;
pub mod console_suite;
pub mod delay_proxy;
pub mod fake_twilio;
pub mod fake_vapi;
pub mod ivr;
pub mod live;
pub mod process;
pub mod sms;
pub mod store_suite;
pub mod supabase;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use myriam::config::Settings;
use myriam::startup::{Application, Lifecycle};
use tokio::task::JoinHandle;

/// A gateway running in this process on a random loopback port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub lifecycle: Lifecycle,
    pub server: JoinHandle<std::io::Result<()>>,
    pub client: reqwest::Client,
    pub store: myriam::store::AnyStore,
}

impl TestApp {
    pub fn state_store(&self) -> &myriam::store::AnyStore {
        &self.store
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The Prometheus text of the metrics listener (`PROMETHEUS_PORT` must be set, e.g. to 0).
    pub async fn scrape_metrics(&self) -> String {
        let addr = self.metrics_addr.expect("metrics listener bound");
        self.client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// POSTs `fields` as a form (unsigned: test settings skip Twilio signatures); status and body.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        post_form(&self.client, &self.url(path), fields).await
    }
}

/// POSTs `fields` to `url` as a form; status and body.
pub async fn post_form(
    client: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let response = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Builds and starts the gateway with test settings, tweaked by `customise`.
pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::for_tests();
    customise(&mut settings);
    let app = Application::build(settings).await.expect("build app");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let lifecycle = app.lifecycle();
    let store = app.store();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        metrics_addr,
        lifecycle,
        server,
        client: reqwest::Client::new(),
        store,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A command for one of the crate's binaries with an empty environment (PATH and HOME kept so
/// cargo and friends resolve), run from `dir` so no developer `.env` leaks in.
pub fn bin(path: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(path);
    cmd.env_clear().current_dir(dir);
    for keep in [
        "PATH",
        "HOME",
        "RUSTUP_HOME",
        "CARGO_HOME",
        "RUSTUP_TOOLCHAIN",
        // Under `make coverage` the binaries write their profiles where the coverage run says.
        "LLVM_PROFILE_FILE",
    ] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run binary");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Panics when any 8-character window of `secret` appears in `haystack`: not even part of a secret
/// may leak.
pub fn assert_no_part_of(secret: &str, haystack: &str, what: &str) {
    // Documented prefixes are public; the rest of the value is what must never show.
    let secret = ["sb_secret_", "sk-ant-", "sk-", "https://"]
        .iter()
        .find_map(|p| secret.strip_prefix(p))
        .unwrap_or(secret);
    let chars: Vec<char> = secret.chars().collect();
    let window = 8.min(chars.len());
    for start in 0..=chars.len() - window {
        let part: String = chars[start..start + window].iter().collect();
        assert!(
            !haystack.contains(&part),
            "{what} contains part of a planted secret ({part:?}):\n{haystack}"
        );
    }
}

/// Distinctive, well-formed values for every secret, so a leak cannot hide behind a common string.
pub const PLANTED: &[(&str, &str)] = &[
    ("TWILIO_AUTH_TOKEN", "d1e5e15ec2e7ba5eba11f00dcafe7357"),
    ("VAPI_PRIVATE_KEY", "7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42"),
    ("VAPI_SERVER_SECRET", "Qu3b3c-Emondage-Vapi-Hush-91f3"),
    (
        "SUPABASE_SERVICE_ROLE_KEY",
        "sb_secret_PlantedServiceRoleKeyZq81Wv",
    ),
    (
        "SENTRY_DSN",
        "https://f0f0beefc0de4a7b@sentry-ingest.invalid/4242",
    ),
    ("OPENAI_API_KEY", "sk-plantedOpenAiKeyMnb7Q2"),
    ("ANTHROPIC_API_KEY", "sk-ant-plantedAnthropicKeyTy6"),
];

/// A production configuration that passes the guard, with the planted secrets.
pub fn production_env(cmd: &mut Command) -> &mut Command {
    cmd.env("ENVIRONMENT", "production")
        .env("PUBLIC_BASE_URL", "https://myriam.bp-emondage.test")
        .env("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
        .env("VAPI_ASSISTANT_ID", "0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b")
        .env("SUPABASE_URL", "https://bp-emondage.supabase.test");
    for (name, value) in PLANTED {
        cmd.env(name, value);
    }
    cmd
}

/// The first SMS alert of the lead of `call` in the SQLite file `db`, once it is sent (a gateway
/// process writes it; this reads the same file).
pub async fn first_alert_sent(
    db: &Path,
    call: &str,
    within: std::time::Duration,
) -> myriam::store::AlertRecord {
    use myriam::store::{Alerts as _, Store as _};
    let store = myriam::store::sqlite::SqliteStore::open(db).unwrap();
    let lead = store
        .find_lead_by_call(&myriam::domain::CallSid::try_from(call).unwrap())
        .await
        .unwrap()
        .unwrap();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let alerts = store.alerts_of_lead(lead.id).await.unwrap();
        if alerts[0].status == myriam::store::AlertStatus::Sent {
            return alerts[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{alerts:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The value of a `<Parameter name="…">` in `twiml` (the Media Stream's parameters).
pub fn twiml_parameter(twiml: &str, name: &str) -> String {
    let needle = format!("<Parameter name=\"{name}\" value=\"");
    let start = twiml
        .find(&needle)
        .unwrap_or_else(|| panic!("{name} in {twiml}"))
        + needle.len();
    twiml[start..start + twiml[start..].find('"').unwrap()].to_owned()
}

/// A Twilio-like client's Media Stream socket.
pub type MediaSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/twilio/media` on `addr` as Twilio does: the handshake, `connected`, then `start`.
pub async fn open_media_stream(
    addr: SocketAddr,
    start: tokio_tungstenite::tungstenite::Message,
) -> MediaSocket {
    use futures_util::SinkExt as _;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/twilio/media"))
        .await
        .unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.into(),
        ))
        .await
        .unwrap();
    socket.send(start).await.unwrap();
    socket
}

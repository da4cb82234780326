//! Typed settings read once at startup, and the runtime secrets guard.
//!
//! Every variable is described in [`crate::secrets::CATALOGUE`]; this module turns an
//! [`EnvSource`] into [`Settings`]. Secrets become [`SecretString`] at once, and every error names
//! the variable, never its value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::client_addr::{ClientIpHeader, ClientIpPolicy, TrustedProxies};
use crate::domain::{BusinessHours, HoursError, Language};
use crate::environment::{Environment, InvalidEnvironment};
use crate::secrets::{self, EnvFileError, EnvSource, Report, Skips, Status};

/// The voices Myriam speaks with (configurable: `TWILIO_VOICE_FR`, `TWILIO_VOICE_EN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voices {
    pub fr: String,
    pub en: String,
}

impl Default for Voices {
    fn default() -> Self {
        Self {
            fr: "Polly.Gabrielle-Neural".to_owned(),
            en: "Polly.Joanna-Neural".to_owned(),
        }
    }
}

impl Voices {
    pub fn for_language(&self, language: Language) -> &str {
        match language {
            Language::Fr => &self.fr,
            Language::En => &self.en,
        }
    }
}

/// How the gateway talks to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMode {
    /// Bridge to Vapi when it is configured and healthy, else IVR.
    Auto,
    Bridge,
    Ivr,
}

/// Which store holds leads and calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Supabase when `SUPABASE_URL` and `SUPABASE_SERVICE_ROLE_KEY` are set, else SQLite.
    Auto,
    Sqlite,
    Supabase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct TwilioSettings {
    pub account_sid: Option<String>,
    pub auth_token: Option<SecretString>,
    /// `BP_TWILIO_TEST_MODE=1`: signatures not checked (development only).
    pub test_mode: bool,
    /// `<Say>` voices (`TWILIO_VOICE_FR`, `TWILIO_VOICE_EN`).
    pub voices: Voices,
    /// `TWILIO_API_BASE_URL`: Twilio's REST API (SMS alerts, call redirects).
    pub api_base_url: Url,
}

/// Who sends SMS alerts (`TWILIO_SMS_FROM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsSender {
    /// A Twilio number (E.164): the `From` field.
    Number(String),
    /// A Messaging Service (`MG…`): the `MessagingServiceSid` field.
    Service(String),
}

/// Which qualified leads raise an alert (`ALERT_ON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertOn {
    /// Urgent qualified leads and urgent callers in after-hours voicemail.
    #[default]
    Urgent,
    /// Every qualified lead, and urgent voicemails.
    All,
}

/// SMS alerts to staff. `None` in [`OfficeSettings::alerts`] when `ALERT_SMS_TO` is unset.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `ALERT_SMS_TO`, E.164 numbers.
    pub recipients: Vec<String>,
    pub sender: SmsSender,
    pub on: AlertOn,
    /// `ALERT_LEASE_SECS`: how long a claim holds an alert being sent.
    pub lease: Duration,
}

/// The people side: transfer line, business hours, alerts, the disclosure.
#[derive(Debug, Clone)]
pub struct OfficeSettings {
    /// `TRANSFER_NUMBER` (E.164); `None`: voicemail only.
    pub transfer_number: Option<String>,
    /// `BUSINESS_HOURS` in `BUSINESS_TIMEZONE`.
    pub hours: BusinessHours,
    /// `CALL_DISCLOSURE` (on by default).
    pub disclosure: bool,
    pub alerts: Option<AlertSettings>,
}

impl Default for OfficeSettings {
    fn default() -> Self {
        Self {
            transfer_number: None,
            hours: BusinessHours::default(),
            disclosure: true,
            alerts: None,
        }
    }
}

/// `PUBLIC_BASE_URL` exactly as configured (trailing `/` removed): the scheme, host (its case
/// kept), optional port and path prefix that Twilio signs. Never normalised by a URL parser, which
/// would break signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBaseUrl(String);

impl PublicBaseUrl {
    pub fn new(raw: &str) -> Self {
        Self(raw.trim().trim_end_matches('/').to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL Twilio requested: this base plus the raw request target (`/path?query`).
    pub fn join(&self, path_and_query: &str) -> String {
        format!("{}{}", self.0, path_and_query)
    }

    /// The WebSocket form (`https` → `wss`, `http` → `ws`) of `join(path)`.
    pub fn websocket(&self, path: &str) -> String {
        let joined = self.join(path);
        if let Some(rest) = joined.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = joined.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            joined
        }
    }
}

#[derive(Debug, Clone)]
pub struct VapiSettings {
    pub private_key: Option<SecretString>,
    pub assistant_id: Option<String>,
    pub server_secret: Option<SecretString>,
    pub base_url: Url,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub kind: StoreKind,
    pub database_path: PathBuf,
    pub supabase_url: Option<Url>,
    pub supabase_service_role_key: Option<SecretString>,
    pub supabase_schema: String,
}

#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    pub sentry_dsn: Option<SecretString>,
    pub prometheus_port: Option<u16>,
    /// `/metrics` on `BIND_ADDR`'s IP behind this bearer token; without it, on loopback only.
    pub metrics_token: Option<SecretString>,
    pub log_format: LogFormat,
    pub rust_log: Option<String>,
    /// `LOG_PII=1`: personal data unmasked in logs (never in production; Sentry always scrubs).
    pub log_pii: bool,
    /// `/readyz` fails when the oldest outbox entry is older than this.
    pub readyz_max_outbox_age: Duration,
}

/// The console's live updates (`/console/events`): one poller per instance every `poll`, feeding
/// at most `max_streams` open streams, `max_per_session` per session. Fixed in production (the
/// defaults); tests change them.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub poll: Duration,
    pub max_streams: usize,
    pub max_per_session: usize,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            max_streams: 200,
            max_per_session: 4,
        }
    }
}

/// The longest call the assistant allows (`maxDurationSeconds` in `docs/vapi-assistant.json`).
pub const MAX_CALL_SECS: u64 = 900;

/// `DRAIN_TIMEOUT_SECS` when unset: a bridged call that started just before the shutdown may run
/// to [`MAX_CALL_SECS`] and still say goodbye, so a rolling deploy never cuts a call short.
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = MAX_CALL_SECS + 30;

/// Everything the gateway reads from its environment. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub bind_addr: SocketAddr,
    pub public_base_url: Option<PublicBaseUrl>,
    /// How the client's address is read behind a proxy (`TRUSTED_PROXIES`, `CLIENT_IP_HEADER`).
    pub client_ip: ClientIpPolicy,
    pub call_mode: CallMode,
    pub max_concurrent_calls: usize,
    pub drain_timeout: Duration,
    pub twilio: TwilioSettings,
    pub office: OfficeSettings,
    pub vapi: VapiSettings,
    pub store: StoreSettings,
    pub telemetry: TelemetrySettings,
    pub live: LiveSettings,
    /// Problems the development guard found, logged once telemetry is up. Names only.
    pub warnings: Vec<String>,
}

/// Why settings could not be loaded. Names variables, never values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Environment(#[from] InvalidEnvironment),
    #[error(transparent)]
    EnvFile(#[from] EnvFileError),
    #[error("{name} is malformed: {expected}")]
    Malformed {
        name: &'static str,
        expected: &'static str,
    },
    #[error(transparent)]
    Hours(#[from] HoursError),
    #[error("{name} is set but {needs}")]
    Incomplete {
        name: &'static str,
        needs: &'static str,
    },
    #[error("{name}=1 is refused in production: {why}")]
    RefusedInProduction {
        name: &'static str,
        why: &'static str,
    },
    #[error("{}", guard_message(.problems))]
    Guard {
        problems: Vec<(&'static str, Status, Option<&'static str>)>,
    },
}

fn guard_message(problems: &[(&'static str, Status, Option<&'static str>)]) -> String {
    let mut msg = format!(
        "refusing to start in production: {} variable(s) not usable (names only, values are never shown):",
        problems.len()
    );
    for (name, status, detail) in problems {
        msg.push_str("\n  - ");
        msg.push_str(name);
        msg.push_str(": ");
        msg.push_str(status.as_str());
        if let Some(d) = detail {
            msg.push_str(" (");
            msg.push_str(d);
            msg.push(')');
        }
    }
    msg.push_str("\nrun `check_secrets` for the full table");
    msg
}

/// Reads values through the catalogue: present and well-formed values only.
struct Reader<'a> {
    source: &'a EnvSource,
    report: Report,
}

impl Reader<'_> {
    /// The value when the catalogue judged it usable; placeholders and malformed values read as unset
    /// (the guard has already refused production, and warned in development).
    fn usable(&self, name: &'static str) -> Option<&str> {
        let check = self
            .report
            .variables
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the environment catalogue"));
        (check.status == Status::Present)
            .then(|| self.source.get(name))
            .flatten()
    }

    fn secret(&self, name: &'static str) -> Option<SecretString> {
        debug_assert!(
            secrets::spec(name).secret,
            "{name} is not catalogued as secret"
        );
        self.usable(name).map(|v| SecretString::from(v.to_owned()))
    }

    fn text(&self, name: &'static str) -> Option<String> {
        self.usable(name).map(str::to_owned)
    }

    /// A value the server must interpret: malformed is an error in every environment.
    fn strict(&self, name: &'static str) -> Result<Option<&str>, ConfigError> {
        let check = self
            .report
            .variables
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the environment catalogue"));
        match check.status {
            Status::Malformed => Err(ConfigError::Malformed {
                name,
                expected: check.detail.unwrap_or("see the catalogue"),
            }),
            Status::Present => Ok(self.source.get(name)),
            Status::Missing | Status::Placeholder => Ok(None),
        }
    }

    fn strict_parse<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError> {
        self.strict(name)?
            .map(|v| {
                v.parse::<T>().map_err(|_| ConfigError::Malformed {
                    name,
                    expected: "a value of the documented shape",
                })
            })
            .transpose()
    }

    fn url(&self, name: &'static str) -> Option<Url> {
        self.usable(name).and_then(|v| Url::parse(v).ok())
    }
}

/// The runtime secrets guard: production refuses any unusable required (or malformed) variable,
/// development returns warnings (names only), test is silent.
fn guard(
    environment: Environment,
    report: &Report,
    test_mode: bool,
) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    match environment {
        Environment::Production => {
            let problems: Vec<_> = report
                .failures()
                .map(|c| (c.name, c.status, c.detail))
                .collect();
            if !problems.is_empty() {
                return Err(ConfigError::Guard { problems });
            }
        }
        Environment::Development => {
            let mut unset = Vec::new();
            for c in &report.variables {
                let production_required = secrets::spec(c.name).required_in_production;
                match c.status {
                    Status::Placeholder => {
                        warnings.push(format!("{} holds a placeholder; it is ignored", c.name));
                    }
                    Status::Malformed => warnings.push(format!(
                        "{} is malformed ({}); it is ignored",
                        c.name,
                        c.detail.unwrap_or("unexpected shape")
                    )),
                    Status::Missing if production_required => unset.push(c.name),
                    _ => {}
                }
            }
            if !unset.is_empty() {
                warnings.push(format!(
                    "not set (fine for development, production would refuse to start): {}",
                    unset.join(", ")
                ));
            }
            if test_mode {
                warnings.push(
                    "BP_TWILIO_TEST_MODE=1: Twilio signatures are NOT checked; never use this outside a workstation"
                        .to_owned(),
                );
            }
        }
        Environment::Test => {}
    }
    Ok(warnings)
}

/// `LOG_PII=1` unmasks callers' personal data in logs: never in production.
fn log_pii(requested: bool, environment: Environment) -> Result<bool, ConfigError> {
    if requested && environment == Environment::Production {
        return Err(ConfigError::RefusedInProduction {
            name: "LOG_PII",
            why: "callers' personal data must not reach production logs",
        });
    }
    Ok(requested)
}

/// `TWILIO_*`: the account, the signature bypass (already limited to development), the voices and
/// the REST API's base URL.
fn twilio_settings(reader: &Reader<'_>, test_mode: bool) -> TwilioSettings {
    TwilioSettings {
        account_sid: reader.text("TWILIO_ACCOUNT_SID"),
        auth_token: reader.secret("TWILIO_AUTH_TOKEN"),
        test_mode,
        voices: Voices {
            fr: reader
                .text("TWILIO_VOICE_FR")
                .unwrap_or_else(|| Voices::default().fr),
            en: reader
                .text("TWILIO_VOICE_EN")
                .unwrap_or_else(|| Voices::default().en),
        },
        api_base_url: reader
            .url("TWILIO_API_BASE_URL")
            .unwrap_or_else(|| Url::parse("https://api.twilio.com").expect("static URL")),
    }
}

/// `TRANSFER_NUMBER`, `BUSINESS_HOURS`/`BUSINESS_TIMEZONE`, `CALL_DISCLOSURE` and the alerts.
/// Business hours are parsed here so that a malformed value stops the start with the part that
/// is wrong (these values are not secrets).
fn office(reader: &Reader<'_>) -> Result<OfficeSettings, ConfigError> {
    let hours = BusinessHours::parse(
        reader
            .source
            .get("BUSINESS_HOURS")
            .unwrap_or(crate::domain::DEFAULT_HOURS),
        reader
            .source
            .get("BUSINESS_TIMEZONE")
            .unwrap_or(crate::domain::DEFAULT_TIMEZONE),
    )?;
    let transfer_number = reader.strict("TRANSFER_NUMBER")?.map(str::to_owned);
    let disclosure = reader
        .strict("CALL_DISCLOSURE")?
        .is_none_or(|v| flag(Some(v)));
    let on = match reader.strict("ALERT_ON")? {
        Some("all") => AlertOn::All,
        _ => AlertOn::Urgent,
    };
    let sender = reader.strict("TWILIO_SMS_FROM")?.map(|v| {
        if v.starts_with("MG") {
            SmsSender::Service(v.to_owned())
        } else {
            SmsSender::Number(v.to_owned())
        }
    });
    let alerts = match reader.strict("ALERT_SMS_TO")? {
        None => None,
        Some(list) => {
            let Some(sender) = sender else {
                return Err(ConfigError::Incomplete {
                    name: "ALERT_SMS_TO",
                    needs: "TWILIO_SMS_FROM (the number or Messaging Service that sends the alerts) is not",
                });
            };
            if reader.usable("TWILIO_ACCOUNT_SID").is_none()
                || reader.usable("TWILIO_AUTH_TOKEN").is_none()
            {
                return Err(ConfigError::Incomplete {
                    name: "ALERT_SMS_TO",
                    needs: "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the Messages API credentials) are not both usable",
                });
            }
            let mut recipients: Vec<String> =
                list.split(',').map(|n| n.trim().to_owned()).collect();
            recipients.dedup();
            Some(AlertSettings {
                recipients,
                sender,
                on,
                lease: Duration::from_secs(
                    reader.strict_parse("ALERT_LEASE_SECS")?.unwrap_or(60u64),
                ),
            })
        }
    };
    Ok(OfficeSettings {
        transfer_number,
        hours,
        disclosure,
        alerts,
    })
}

/// `TRUSTED_PROXIES` and `CLIENT_IP_HEADER`: unset trusts nobody.
fn client_ip_policy(reader: &Reader<'_>) -> Result<ClientIpPolicy, ConfigError> {
    Ok(ClientIpPolicy {
        trusted: reader
            .strict_parse::<TrustedProxies>("TRUSTED_PROXIES")?
            .unwrap_or_default(),
        header: reader
            .strict_parse::<ClientIpHeader>("CLIENT_IP_HEADER")?
            .unwrap_or(ClientIpHeader::XForwardedFor),
    })
}

fn flag(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true"))
}

impl Settings {
    /// Reads the process environment over `.env` (when present) and applies the runtime guard.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_source(&EnvSource::load(Path::new(".env"), false)?)
    }

    /// Builds settings from `source` and applies the runtime guard for its environment:
    /// production refuses unusable required variables, development warns, test is silent.
    ///
    /// # Panics
    /// Only on a programming error: a name read here that is missing from the catalogue.
    pub fn from_source(source: &EnvSource) -> Result<Self, ConfigError> {
        let environment = Environment::from_value(source.get("ENVIRONMENT"))?;
        let report = Report::new(source, environment, &Skips::implied_by(source));
        // Values the server must interpret fail everywhere; the rest follow the guard.
        let reader = Reader { source, report };
        let mut bind_addr: SocketAddr = reader
            .strict_parse("BIND_ADDR")?
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        if let Some(port) = reader.strict_parse::<u16>("PORT")? {
            bind_addr.set_port(port);
        }
        let call_mode = match reader.strict("CALL_MODE")? {
            Some("bridge") => CallMode::Bridge,
            Some("ivr") => CallMode::Ivr,
            _ => CallMode::Auto,
        };
        let store_kind = match reader.strict("STORE")? {
            Some("sqlite") => StoreKind::Sqlite,
            Some("supabase") => StoreKind::Supabase,
            _ => StoreKind::Auto,
        };
        let log_format = match reader.strict("LOG_FORMAT")? {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            _ if environment == Environment::Production => LogFormat::Json,
            _ => LogFormat::Pretty,
        };
        let max_concurrent_calls = reader
            .strict_parse("MAX_CONCURRENT_CALLS")?
            .unwrap_or(200usize);
        let drain_timeout = Duration::from_secs(
            reader
                .strict_parse("DRAIN_TIMEOUT_SECS")?
                .unwrap_or(DEFAULT_DRAIN_TIMEOUT_SECS),
        );
        let prometheus_port = reader.strict_parse("PROMETHEUS_PORT")?;
        let test_mode = flag(reader.strict("BP_TWILIO_TEST_MODE")?);
        let log_pii = log_pii(flag(reader.strict("LOG_PII")?), environment)?;
        let readyz_max_outbox_age = Duration::from_secs(
            reader
                .strict_parse("READYZ_MAX_OUTBOX_AGE_SECS")?
                .unwrap_or(300u64),
        );
        let office = office(&reader)?;
        let client_ip = client_ip_policy(&reader)?;
        // Test switches: read by the test suite, validated here so a typo is caught.
        reader.strict("BP_SKIP_VAPI_TESTS")?;
        reader.strict("BP_SKIP_SUPABASE_TESTS")?;

        let mut warnings = guard(environment, &reader.report, test_mode)?;
        if log_pii && environment == Environment::Development {
            warnings.push(
                "LOG_PII=1: callers' personal data is logged unmasked; never use this outside a workstation"
                    .to_owned(),
            );
        }

        Ok(Settings {
            environment,
            bind_addr,
            public_base_url: reader
                .text("PUBLIC_BASE_URL")
                .map(|raw| PublicBaseUrl::new(&raw)),
            client_ip,
            call_mode,
            max_concurrent_calls,
            drain_timeout,
            twilio: twilio_settings(
                &reader,
                test_mode && environment == Environment::Development,
            ),
            office,
            vapi: VapiSettings {
                private_key: reader.secret("VAPI_PRIVATE_KEY"),
                assistant_id: reader.text("VAPI_ASSISTANT_ID"),
                server_secret: reader.secret("VAPI_SERVER_SECRET"),
                base_url: reader
                    .url("VAPI_BASE_URL")
                    .unwrap_or_else(|| Url::parse("https://api.vapi.ai").expect("static URL")),
            },
            store: StoreSettings {
                kind: store_kind,
                database_path: reader
                    .text("DATABASE_PATH")
                    .map_or_else(|| PathBuf::from("data/myriam.db"), PathBuf::from),
                supabase_url: reader.url("SUPABASE_URL"),
                supabase_service_role_key: reader.secret("SUPABASE_SERVICE_ROLE_KEY"),
                supabase_schema: reader
                    .text("SUPABASE_SCHEMA")
                    .unwrap_or_else(|| "bp".to_owned()),
            },
            telemetry: TelemetrySettings {
                sentry_dsn: reader.secret("SENTRY_DSN"),
                prometheus_port,
                metrics_token: reader.secret("METRICS_TOKEN"),
                log_format,
                rust_log: reader.text("RUST_LOG"),
                log_pii,
                readyz_max_outbox_age,
            },
            live: LiveSettings::default(),
            warnings,
        })
    }

    /// Whether the console is reached over https: in production (always behind a TLS proxy), or
    /// whenever `PUBLIC_BASE_URL` is https. Cookies then get `Secure` and the `__Host-` prefix,
    /// and answers `Strict-Transport-Security`.
    pub fn secure_transport(&self) -> bool {
        self.environment == Environment::Production
            || self
                .public_base_url
                .as_ref()
                .is_some_and(|u| u.as_str().starts_with("https://"))
    }

    /// Settings for tests: `ENVIRONMENT=test`, loopback on port 0, a fresh SQLite file in the
    /// temporary directory, the office open around the clock, nothing external configured.
    ///
    /// # Panics
    /// Never: the fixed test configuration is valid (a unit test proves it).
    pub fn for_tests() -> Self {
        let db = std::env::temp_dir().join(format!("myriam-test-{}.db", uuid::Uuid::new_v4()));
        Self::from_source(&EnvSource::from_pairs([
            ("ENVIRONMENT", "test"),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("DRAIN_TIMEOUT_SECS", "5"),
            ("DATABASE_PATH", db.to_str().expect("temp paths are UTF-8")),
            // Open around the clock, so no test depends on when it runs; tests of the hours
            // set their own.
            ("BUSINESS_HOURS", "mon-sun 00:00-24:00"),
        ]))
        .expect("test settings are valid")
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const TOKEN: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e7aa";

    fn source(pairs: &[(&str, &str)]) -> EnvSource {
        EnvSource::from_pairs(pairs.iter().copied())
    }

    fn production_ok() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ENVIRONMENT", "production"),
            ("PUBLIC_BASE_URL", "https://gw.bp-emondage.example"),
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_AUTH_TOKEN", TOKEN),
            ("CALL_MODE", "ivr"),
            ("STORE", "sqlite"),
        ]
    }

    #[test]
    fn unset_environment_means_production() {
        assert_eq!(
            Environment::from_value(source(&[]).get("ENVIRONMENT")),
            Ok(Environment::Production)
        );
    }

    #[test]
    fn unknown_environment_lists_the_allowed_values() {
        let err = Settings::from_source(&source(&[("ENVIRONMENT", "staging")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ENVIRONMENT has an unsupported value; allowed values: production, development, test"
        );
    }

    #[test]
    fn production_guard_names_every_problem_and_no_value() {
        let mut pairs = production_ok();
        pairs.retain(|(k, _)| *k != "PUBLIC_BASE_URL");
        pairs.push(("TWILIO_ACCOUNT_SID", "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
        pairs.push(("TWILIO_AUTH_TOKEN", "nothex-nothex-nothex-nothex-1234"));
        let err = Settings::from_source(&source(&pairs)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("PUBLIC_BASE_URL: missing"), "{msg}");
        assert!(msg.contains("TWILIO_ACCOUNT_SID: placeholder"), "{msg}");
        assert!(
            msg.contains("TWILIO_AUTH_TOKEN: malformed (expected 32 hexadecimal characters)"),
            "{msg}"
        );
        assert!(!msg.contains("nothex"), "{msg}");
    }

    #[test]
    fn production_with_everything_starts_and_debug_hides_secrets() {
        let settings = Settings::from_source(&source(&production_ok())).unwrap();
        assert_eq!(settings.environment, Environment::Production);
        assert_eq!(settings.telemetry.log_format, LogFormat::Json);
        assert_eq!(settings.call_mode, CallMode::Ivr);
        assert_eq!(
            settings.twilio.auth_token.as_ref().unwrap().expose_secret(),
            TOKEN
        );
        let debug = format!("{settings:?}");
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(!debug.contains("5ec7e75e"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }

    #[test]
    fn development_warns_and_ignores_placeholders() {
        let settings = Settings::from_source(&source(&[
            ("ENVIRONMENT", "development"),
            ("TWILIO_AUTH_TOKEN", "your_auth_token"),
            ("BP_TWILIO_TEST_MODE", "1"),
        ]))
        .unwrap();
        assert!(settings.twilio.auth_token.is_none());
        assert!(settings.twilio.test_mode);
        let all = settings.warnings.join("\n");
        assert!(
            all.contains("TWILIO_AUTH_TOKEN holds a placeholder"),
            "{all}"
        );
        assert!(
            all.contains("not set (fine for development, production would refuse to start): PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID,"),
            "{all}"
        );
        assert!(all.contains("BP_TWILIO_TEST_MODE=1"), "{all}");
        assert!(!all.contains("your_auth_token"), "{all}");
    }

    #[test]
    fn test_environment_is_silent_and_test_mode_only_counts_in_development() {
        let settings = Settings::from_source(&source(&[
            ("ENVIRONMENT", "test"),
            ("BP_TWILIO_TEST_MODE", "1"),
        ]))
        .unwrap();
        assert!(settings.warnings.is_empty());
        assert!(!settings.twilio.test_mode);
        let mut prod = production_ok();
        prod.push(("BP_TWILIO_TEST_MODE", "1"));
        assert!(
            !Settings::from_source(&source(&prod))
                .unwrap()
                .twilio
                .test_mode
        );
    }

    #[test]
    fn log_pii_is_refused_in_production_and_warned_about_in_development() {
        let mut prod = production_ok();
        prod.push(("LOG_PII", "1"));
        let error = Settings::from_source(&source(&prod))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("LOG_PII=1 is refused in production"),
            "{error}"
        );
        let dev =
            Settings::from_source(&source(&[("ENVIRONMENT", "development"), ("LOG_PII", "1")]))
                .unwrap();
        assert!(dev.telemetry.log_pii);
        assert!(
            dev.warnings.iter().any(|w| w.starts_with("LOG_PII=1")),
            "{:?}",
            dev.warnings
        );
        let prod_off = Settings::from_source(&source(&production_ok())).unwrap();
        assert!(!prod_off.telemetry.log_pii);
        assert_eq!(
            prod_off.telemetry.readyz_max_outbox_age,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn port_overrides_bind_addr_and_bad_numbers_fail_everywhere() {
        let s = Settings::from_source(&source(&[
            ("ENVIRONMENT", "test"),
            ("BIND_ADDR", "0.0.0.0:8080"),
            ("PORT", "9999"),
        ]))
        .unwrap();
        assert_eq!(s.bind_addr, "0.0.0.0:9999".parse().unwrap());
        for (name, value) in [
            ("PORT", "http"),
            ("BIND_ADDR", "localhost"),
            ("LOG_FORMAT", "xml"),
            ("MAX_CONCURRENT_CALLS", "0"),
        ] {
            let err = Settings::from_source(&source(&[("ENVIRONMENT", "test"), (name, value)]))
                .unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{name} is malformed")),
                "{err}"
            );
        }
    }

    #[test]
    fn office_defaults_and_a_clear_error_for_malformed_hours() {
        let settings = Settings::from_source(&source(&[("ENVIRONMENT", "test")])).unwrap();
        assert!(settings.office.disclosure);
        assert_eq!(settings.office.transfer_number, None);
        assert!(settings.office.alerts.is_none());
        assert_eq!(settings.office.hours.describe(), "mon-fri 07:00-17:00");
        assert_eq!(settings.office.hours.timezone_name(), "America/Toronto");
        assert_eq!(
            settings.twilio.api_base_url.as_str(),
            "https://api.twilio.com/"
        );

        for (name, value, expected) in [
            (
                "BUSINESS_HOURS",
                "mon-fry 07:00-17:00",
                "unknown day \"fry\"",
            ),
            ("BUSINESS_HOURS", "mon-fri 17:00-07:00", "cross midnight"),
            ("BUSINESS_TIMEZONE", "America/Montréal", "unknown time zone"),
        ] {
            let err =
                Settings::from_source(&source(&[("ENVIRONMENT", "production"), (name, value)]))
                    .unwrap_err()
                    .to_string();
            assert!(err.contains(name) && err.contains(expected), "{err}");
        }
        let err = Settings::from_source(&source(&[
            ("ENVIRONMENT", "test"),
            ("TRANSFER_NUMBER", "450-555-0100"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("TRANSFER_NUMBER is malformed: expected an E.164 number"),
            "{err}"
        );
    }

    #[test]
    fn alerts_need_a_sender_and_the_account() {
        let base = [
            ("ENVIRONMENT", "test"),
            ("ALERT_SMS_TO", "+15145550101, +14385550102"),
        ];
        let err = Settings::from_source(&source(&base))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ALERT_SMS_TO is set but TWILIO_SMS_FROM"),
            "{err}"
        );
        let mut pairs = base.to_vec();
        pairs.push(("TWILIO_SMS_FROM", "MG0123456789abcdef0123456789abcdef"));
        let err = Settings::from_source(&source(&pairs))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
            "{err}"
        );
        pairs.push(("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"));
        pairs.push(("TWILIO_AUTH_TOKEN", TOKEN));
        pairs.push(("ALERT_ON", "all"));
        pairs.push(("ALERT_LEASE_SECS", "5"));
        let settings = Settings::from_source(&source(&pairs)).unwrap();
        let alerts = settings.office.alerts.unwrap();
        assert_eq!(alerts.recipients, ["+15145550101", "+14385550102"]);
        assert_eq!(
            alerts.sender,
            SmsSender::Service("MG0123456789abcdef0123456789abcdef".to_owned())
        );
        assert_eq!(alerts.on, AlertOn::All);
        assert_eq!(alerts.lease, Duration::from_secs(5));
        pairs.retain(|(k, _)| *k != "TWILIO_SMS_FROM");
        pairs.push(("TWILIO_SMS_FROM", "+14505550000"));
        pairs.push(("CALL_DISCLOSURE", "0"));
        let settings = Settings::from_source(&source(&pairs)).unwrap();
        assert_eq!(
            settings.office.alerts.unwrap().sender,
            SmsSender::Number("+14505550000".to_owned())
        );
        assert!(!settings.office.disclosure);
    }
}

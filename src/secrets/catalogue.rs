//! The catalogue itself: every variable ([`VarSpec`]) with its [`Group`] and [`Shape`], and
//! [`spec`] to find one by name.

use std::fmt;

use serde::Serialize;

/// Which part of the system a variable configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Server,
    Office,
    Twilio,
    Vapi,
    Supabase,
    Observability,
    Ai,
}

impl Group {
    pub const ALL: [Group; 7] = [
        Group::Server,
        Group::Office,
        Group::Twilio,
        Group::Vapi,
        Group::Supabase,
        Group::Observability,
        Group::Ai,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Server => "server",
            Group::Office => "office",
            Group::Twilio => "twilio",
            Group::Vapi => "vapi",
            Group::Supabase => "supabase",
            Group::Observability => "observability",
            Group::Ai => "ai",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shape a value must have. Each check returns a static description of what was expected,
/// never anything derived from the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One of a fixed set of words (case-sensitive).
    OneOf(&'static [&'static str]),
    /// `0`, `1`, `true` or `false`.
    Flag,
    /// A TCP port, `0..=65535`.
    Port,
    /// `IP:port`.
    SocketAddr,
    /// An absolute URL; `https` required in production. No query or fragment.
    Url,
    /// A Sentry DSN: an https URL (http allowed outside production) with a public key and a project id.
    SentryDsn,
    /// `AC` followed by 32 hexadecimal characters.
    TwilioAccountSid,
    /// 32 hexadecimal characters.
    TwilioAuthToken,
    /// A UUID, `8-4-4-4-12` hexadecimal digits.
    Uuid,
    /// A Supabase secret key (`sb_secret_…`) or a legacy `service_role` JWT.
    SupabaseSecretKey,
    /// A SQL identifier: a letter or `_`, then letters, digits or `_`.
    Identifier,
    /// An integer `>= 1`.
    PositiveInt,
    /// An integer `>= 0`.
    NonNegativeInt,
    /// An API key starting with the given prefix.
    Prefixed(&'static str),
    /// Any non-empty text without surrounding white space.
    Text,
    /// A phone number in E.164 (`+` and 8 to 15 digits).
    E164,
    /// Comma-separated E.164 numbers.
    E164List,
    /// An E.164 number or a Twilio Messaging Service SID (`MG` + 32 hexadecimal characters).
    SmsSender,
    /// Business hours, e.g. `mon-fri 07:00-17:00; sat 08:00-12:00`.
    BusinessHours,
    /// An IANA time zone name, e.g. `America/Toronto`.
    TimeZone,
    /// Comma-separated IP addresses or CIDR networks.
    CidrList,
}

/// One catalogued environment variable.
#[derive(Debug, Clone, Copy)]
pub struct VarSpec {
    pub name: &'static str,
    pub group: Group,
    /// Required when `ENVIRONMENT=production` (unless its group is skipped).
    pub required_in_production: bool,
    /// A secret: only ever read into a `SecretString`, never shown.
    pub secret: bool,
    pub shape: Shape,
    /// The default the gateway uses when the variable is unset, for documentation.
    pub default: Option<&'static str>,
    /// What the variable means, for the README and `check_secrets`.
    pub meaning: &'static str,
}

const ENVIRONMENTS: &[&str] = &["production", "development", "test"];
const ALERT_ON: &[&str] = &["urgent", "all"];

/// Every environment variable of DESIGN.md section 7, in the order the README lists them.
pub static CATALOGUE: &[VarSpec] = &[
    VarSpec {
        name: "ENVIRONMENT",
        group: Group::Server,
        required_in_production: false,
        secret: false,
        shape: Shape::OneOf(ENVIRONMENTS),
        default: Some("production"),
        meaning: "production, development or test; unset means production (fail closed)",
    },
    VarSpec {
        name: "BIND_ADDR",
        group: Group::Server,
        required_in_production: false,
        secret: false,
        shape: Shape::SocketAddr,
        default: Some("127.0.0.1:8080"),
        meaning: "address the HTTP server binds",
    },
    VarSpec {
        name: "PORT",
        group: Group::Server,
        required_in_production: false,
        secret: false,
        shape: Shape::Port,
        default: None,
        meaning: "when set, replaces the port of BIND_ADDR (platforms that assign a port)",
    },
    VarSpec {
        name: "PUBLIC_BASE_URL",
        group: Group::Server,
        required_in_production: true,
        secret: false,
        shape: Shape::Url,
        default: None,
        meaning: "public https URL Twilio and Vapi reach; signatures are checked against it",
    },
    VarSpec {
        name: "CALL_MODE",
        group: Group::Server,
        required_in_production: false,
        secret: false,
        shape: Shape::OneOf(&["auto", "bridge", "ivr"]),
        default: Some("auto"),
        meaning: "auto (bridge to Vapi when configured, else IVR), bridge or ivr",
    },
    VarSpec {
        name: "MAX_CONCURRENT_CALLS",
        group: Group::Server,
        required_in_production: false,
        secret: false,
        shape: Shape::PositiveInt,
        default: Some("200"),
        meaning: "bridged calls at once; calls over the limit get the IVR",
    },
    VarSpec {
        name: "TRUSTED_PROXIES",
        group: Group::Server,
        required_in_production: false,
        secret: false,
        shape: Shape::CidrList,
        default: None,
        meaning: "the proxies in front of the gateway (addresses or CIDR networks, comma-separated); only a request from one of them has its client address read from CLIENT_IP_HEADER. Unset: trust nobody, the TCP peer is the client",
    },
    VarSpec {
        name: "CLIENT_IP_HEADER",
        group: Group::Server,
        required_in_production: false,
        secret: false,
        shape: Shape::OneOf(crate::client_addr::ClientIpHeader::NAMES),
        default: Some("x-forwarded-for"),
        meaning: "where a trusted proxy writes the client's address: x-forwarded-for (the rightmost address that is not a trusted proxy; nginx), x-real-ip (Railway), fly-client-ip (Fly.io), cf-connecting-ip (Cloudflare)",
    },
    VarSpec {
        name: "DRAIN_TIMEOUT_SECS",
        group: Group::Server,
        required_in_production: false,
        secret: false,
        shape: Shape::NonNegativeInt,
        default: Some("930"),
        meaning: "seconds a shutdown waits for live calls and the outbox (the longest call, 900 s, and 30 s to say goodbye)",
    },
    VarSpec {
        name: "CALL_DISCLOSURE",
        group: Group::Office,
        required_in_production: false,
        secret: false,
        shape: Shape::Flag,
        default: Some("1"),
        meaning: "1: the first sentence of every call says it is a virtual assistant and may be recorded",
    },
    VarSpec {
        name: "TRANSFER_NUMBER",
        group: Group::Office,
        required_in_production: false,
        secret: false,
        shape: Shape::E164,
        default: None,
        meaning: "office line (E.164) a caller who asks for a person is handed to in business hours; unset: voicemail only",
    },
    VarSpec {
        name: "BUSINESS_NUMBER",
        group: Group::Office,
        required_in_production: false,
        secret: false,
        shape: Shape::E164,
        default: None,
        meaning: "the Twilio number callers dial (E.164): the caller ID of a callback (Rappeler); unset: no callbacks from the console",
    },
    VarSpec {
        name: "BUSINESS_HOURS",
        group: Group::Office,
        required_in_production: false,
        secret: false,
        shape: Shape::BusinessHours,
        default: Some("mon-fri 07:00-17:00"),
        meaning: "when the office answers, e.g. `mon-fri 07:00-18:00; sat 08:00-12:00`",
    },
    VarSpec {
        name: "BUSINESS_TIMEZONE",
        group: Group::Office,
        required_in_production: false,
        secret: false,
        shape: Shape::TimeZone,
        default: Some("America/Toronto"),
        meaning: "IANA time zone of BUSINESS_HOURS",
    },
    VarSpec {
        name: "ALERT_SMS_TO",
        group: Group::Office,
        required_in_production: false,
        secret: false,
        shape: Shape::E164List,
        default: None,
        meaning: "staff numbers (comma-separated E.164) that get an SMS for urgent leads; unset: no alerts",
    },
    VarSpec {
        name: "ALERT_LEASE_SECS",
        group: Group::Office,
        required_in_production: false,
        secret: false,
        shape: Shape::PositiveInt,
        default: Some("60"),
        meaning: "seconds an instance holds an SMS alert it is sending; after a crash another instance takes it then",
    },
    VarSpec {
        name: "CALLER_SMS",
        group: Group::Office,
        required_in_production: false,
        secret: false,
        shape: Shape::Flag,
        default: Some("0"),
        meaning: "1: a caller whose lead is qualified gets one confirmation SMS on the number they confirmed (needs TWILIO_SMS_FROM)",
    },
    VarSpec {
        name: "ALERT_ON",
        group: Group::Office,
        required_in_production: false,
        secret: false,
        shape: Shape::OneOf(ALERT_ON),
        default: Some("urgent"),
        meaning: "urgent: alert on urgent qualified leads and urgent voicemails; all: every qualified lead too",
    },
    VarSpec {
        name: "TWILIO_ACCOUNT_SID",
        group: Group::Twilio,
        required_in_production: true,
        secret: false,
        shape: Shape::TwilioAccountSid,
        default: None,
        meaning: "the Twilio account whose webhooks are accepted",
    },
    VarSpec {
        name: "TWILIO_AUTH_TOKEN",
        group: Group::Twilio,
        required_in_production: true,
        secret: true,
        shape: Shape::TwilioAuthToken,
        default: None,
        meaning: "key of the X-Twilio-Signature HMAC; unset in development, a generated development-only key (dev-twilio-auth-token next to DATABASE_PATH) is used",
    },
    VarSpec {
        name: "BP_TWILIO_TEST_MODE",
        group: Group::Twilio,
        required_in_production: false,
        secret: false,
        shape: Shape::Flag,
        default: Some("0"),
        meaning: "1 skips Twilio signature checks in development only (loud warning)",
    },
    VarSpec {
        name: "TWILIO_VOICE_FR",
        group: Group::Twilio,
        required_in_production: false,
        secret: false,
        shape: Shape::Text,
        default: Some("Polly.Gabrielle-Neural"),
        meaning: "voice of <Say> in French (fr-CA)",
    },
    VarSpec {
        name: "TWILIO_VOICE_EN",
        group: Group::Twilio,
        required_in_production: false,
        secret: false,
        shape: Shape::Text,
        default: Some("Polly.Joanna-Neural"),
        meaning: "voice of <Say> in English (en-US)",
    },
    VarSpec {
        name: "TWILIO_SMS_FROM",
        group: Group::Twilio,
        required_in_production: false,
        secret: false,
        shape: Shape::SmsSender,
        default: None,
        meaning: "sender of SMS alerts: an E.164 Twilio number or a Messaging Service SID (MG…)",
    },
    VarSpec {
        name: "TWILIO_API_BASE_URL",
        group: Group::Twilio,
        required_in_production: false,
        secret: false,
        shape: Shape::Url,
        default: Some("https://api.twilio.com"),
        meaning: "Twilio REST API (SMS alerts, redirecting a bridged call); tests point it at a fake",
    },
    VarSpec {
        name: "VAPI_PRIVATE_KEY",
        group: Group::Vapi,
        required_in_production: true,
        secret: true,
        shape: Shape::Uuid,
        default: None,
        meaning: "Vapi private API key, used to create calls",
    },
    VarSpec {
        name: "VAPI_ASSISTANT_ID",
        group: Group::Vapi,
        required_in_production: true,
        secret: false,
        shape: Shape::Uuid,
        default: None,
        meaning: "the Vapi assistant that speaks as Myriam",
    },
    VarSpec {
        name: "VAPI_SERVER_SECRET",
        group: Group::Vapi,
        required_in_production: true,
        secret: true,
        shape: Shape::Text,
        default: None,
        meaning: "shared secret (x-vapi-secret) or HMAC key authenticating Vapi callbacks",
    },
    VarSpec {
        name: "VAPI_BASE_URL",
        group: Group::Vapi,
        required_in_production: false,
        secret: false,
        shape: Shape::Url,
        default: Some("https://api.vapi.ai"),
        meaning: "Vapi REST API base; tests point it at a local fake",
    },
    VarSpec {
        name: "BP_SKIP_VAPI_TESTS",
        group: Group::Vapi,
        required_in_production: false,
        secret: false,
        shape: Shape::Flag,
        default: Some("0"),
        meaning: "1 skips tests that need a real hosted Vapi account",
    },
    VarSpec {
        name: "STORE",
        group: Group::Supabase,
        required_in_production: false,
        secret: false,
        shape: Shape::OneOf(&["auto", "sqlite", "supabase"]),
        default: Some("auto"),
        meaning: "auto (Supabase when configured, else SQLite), sqlite or supabase",
    },
    VarSpec {
        name: "DATABASE_PATH",
        group: Group::Supabase,
        required_in_production: false,
        secret: false,
        shape: Shape::Text,
        default: Some("data/myriam.db"),
        meaning: "embedded SQLite file (also the Supabase outbox)",
    },
    VarSpec {
        name: "SUPABASE_URL",
        group: Group::Supabase,
        required_in_production: true,
        secret: false,
        shape: Shape::Url,
        default: None,
        meaning: "Supabase project URL; the gateway calls {SUPABASE_URL}/rest/v1",
    },
    VarSpec {
        name: "SUPABASE_SERVICE_ROLE_KEY",
        group: Group::Supabase,
        required_in_production: true,
        secret: true,
        shape: Shape::SupabaseSecretKey,
        default: None,
        meaning: "sb_secret_… key or legacy service_role JWT",
    },
    VarSpec {
        name: "SUPABASE_SCHEMA",
        group: Group::Supabase,
        required_in_production: false,
        secret: false,
        shape: Shape::Identifier,
        default: Some("bp"),
        meaning: "schema holding leads and calls",
    },
    VarSpec {
        name: "BP_SKIP_SUPABASE_TESTS",
        group: Group::Supabase,
        required_in_production: false,
        secret: false,
        shape: Shape::Flag,
        default: Some("0"),
        meaning: "1 skips tests that need a real hosted Supabase project (never the local PostgREST ones)",
    },
    VarSpec {
        name: "SENTRY_DSN",
        group: Group::Observability,
        required_in_production: false,
        secret: true,
        shape: Shape::SentryDsn,
        default: None,
        meaning: "Sentry project DSN; errors and panics are reported when set",
    },
    VarSpec {
        name: "PROMETHEUS_PORT",
        group: Group::Observability,
        required_in_production: false,
        secret: false,
        shape: Shape::Port,
        default: None,
        meaning: "when set, /metrics is served on this port: on loopback, or on BIND_ADDR's IP when METRICS_TOKEN is set",
    },
    VarSpec {
        name: "METRICS_TOKEN",
        group: Group::Observability,
        required_in_production: false,
        secret: true,
        shape: Shape::Text,
        default: None,
        meaning: "when set, /metrics listens on BIND_ADDR's IP and answers only `Authorization: Bearer` with this token",
    },
    VarSpec {
        name: "LOG_FORMAT",
        group: Group::Observability,
        required_in_production: false,
        secret: false,
        shape: Shape::OneOf(&["json", "pretty"]),
        default: Some("pretty (json in production)"),
        meaning: "log output format",
    },
    VarSpec {
        name: "RUST_LOG",
        group: Group::Observability,
        required_in_production: false,
        secret: false,
        shape: Shape::Text,
        default: Some("info"),
        meaning: "tracing filter directives",
    },
    VarSpec {
        name: "LOG_PII",
        group: Group::Observability,
        required_in_production: false,
        secret: false,
        shape: Shape::Flag,
        default: Some("0"),
        meaning: "1 logs callers' personal data unmasked, for local debugging; refused in production",
    },
    VarSpec {
        name: "READYZ_MAX_OUTBOX_AGE_SECS",
        group: Group::Observability,
        required_in_production: false,
        secret: false,
        shape: Shape::NonNegativeInt,
        default: Some("300"),
        meaning: "/readyz fails when the oldest write waiting for Supabase is older than this",
    },
    VarSpec {
        name: "OPENAI_API_KEY",
        group: Group::Ai,
        required_in_production: false,
        secret: true,
        shape: Shape::Prefixed("sk-"),
        default: None,
        meaning: "used by the Vapi assistant's model, not by the gateway",
    },
    VarSpec {
        name: "ANTHROPIC_API_KEY",
        group: Group::Ai,
        required_in_production: false,
        secret: true,
        shape: Shape::Prefixed("sk-ant-"),
        default: None,
        meaning: "used by the Vapi assistant's model, not by the gateway",
    },
];

/// Looks a variable up in the catalogue.
///
/// # Panics
/// When `name` is not catalogued: that is a programming error caught by every test that loads settings.
pub fn spec(name: &str) -> &'static VarSpec {
    CATALOGUE
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the environment catalogue"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use base64::Engine as _;

    use crate::environment::Environment;
    use crate::secrets::shapes::check_supabase_key;
    use crate::secrets::*;

    fn env(pairs: &[(&str, &str)]) -> EnvSource {
        EnvSource::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn catalogue_names_are_unique_and_cover_design_section_7() {
        let names: BTreeSet<_> = CATALOGUE.iter().map(|v| v.name).collect();
        assert_eq!(names.len(), CATALOGUE.len(), "duplicate name in catalogue");
        for name in [
            "ENVIRONMENT",
            "BIND_ADDR",
            "PORT",
            "PUBLIC_BASE_URL",
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "BP_TWILIO_TEST_MODE",
            "CALL_MODE",
            "VAPI_PRIVATE_KEY",
            "VAPI_ASSISTANT_ID",
            "VAPI_SERVER_SECRET",
            "VAPI_BASE_URL",
            "STORE",
            "DATABASE_PATH",
            "SUPABASE_URL",
            "SUPABASE_SERVICE_ROLE_KEY",
            "SUPABASE_SCHEMA",
            "SENTRY_DSN",
            "PROMETHEUS_PORT",
            "METRICS_TOKEN",
            "LOG_FORMAT",
            "RUST_LOG",
            "MAX_CONCURRENT_CALLS",
            "DRAIN_TIMEOUT_SECS",
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "BP_SKIP_VAPI_TESTS",
            "BP_SKIP_SUPABASE_TESTS",
            "TRANSFER_NUMBER",
            "BUSINESS_NUMBER",
            "BUSINESS_HOURS",
            "BUSINESS_TIMEZONE",
            "ALERT_SMS_TO",
            "TWILIO_SMS_FROM",
            "ALERT_ON",
            "TWILIO_API_BASE_URL",
            "CALL_DISCLOSURE",
            "ALERT_LEASE_SECS",
            "CALLER_SMS",
        ] {
            assert!(names.contains(name), "{name} missing from catalogue");
        }
    }

    #[test]
    fn placeholders_are_recognised_case_insensitively() {
        for p in [
            "placeholder",
            "PLACEHOLDER_TOKEN",
            "changeme",
            "ChangeMe123",
            "xxx",
            "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "your_auth_token",
            "your-project",
            "https://your-project.supabase.co",
            "<token>",
            "https://<project>.supabase.co",
            "test_token",
            "Dummy",
        ] {
            assert!(is_placeholder(p), "{p} should be a placeholder");
        }
        for real in [
            "0123456789abcdef0123456789abcdef",
            "https://api.vapi.ai",
            "a<b",
            "bp",
            "sb_secret_abcDEF123",
        ] {
            assert!(!is_placeholder(real), "{real} is not a placeholder");
        }
    }

    #[test]
    fn shapes_accept_good_values_and_name_the_expectation() {
        let p = Environment::Production;
        assert!(
            Shape::TwilioAccountSid
                .check("AC0123456789abcdef0123456789abcdef", p)
                .is_ok()
        );
        assert_eq!(
            Shape::TwilioAccountSid.check("AB0123456789abcdef0123456789abcdef", p),
            Err("expected AC followed by 32 hexadecimal characters")
        );
        assert!(Shape::TwilioAuthToken.check(&"f".repeat(32), p).is_ok());
        assert!(Shape::TwilioAuthToken.check(&"g".repeat(32), p).is_err());
        assert!(
            Shape::Uuid
                .check("123e4567-e89b-12d3-a456-426614174000", p)
                .is_ok()
        );
        assert!(
            Shape::Uuid
                .check("123e4567e89b12d3a456426614174000", p)
                .is_err()
        );
        assert!(Shape::Url.check("https://gw.example.com", p).is_ok());
        assert_eq!(
            Shape::Url.check("http://gw.example.com", p),
            Err("expected an https:// URL in production")
        );
        assert!(
            Shape::Url
                .check("http://127.0.0.1:9", Environment::Development)
                .is_ok()
        );
        assert!(Shape::Url.check("not a url", p).is_err());
        assert!(Shape::Port.check("65535", p).is_ok());
        assert!(Shape::Port.check("65536", p).is_err());
        assert!(Shape::SocketAddr.check("0.0.0.0:8080", p).is_ok());
        assert!(Shape::SocketAddr.check("localhost", p).is_err());
        assert!(Shape::PositiveInt.check("0", p).is_err());
        assert!(Shape::NonNegativeInt.check("0", p).is_ok());
        assert!(Shape::Identifier.check("bp", p).is_ok());
        assert!(Shape::Identifier.check("bp; drop", p).is_err());
        assert!(
            Shape::SentryDsn
                .check("https://abc123@o1.ingest.sentry.io/42", p)
                .is_ok()
        );
        assert!(
            Shape::SentryDsn
                .check("https://o1.ingest.sentry.io/42", p)
                .is_err()
        );
        assert!(Shape::Text.check(" padded", p).is_err());
    }

    #[test]
    fn supabase_keys_accept_secret_keys_and_service_role_jwts_only() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = |role: &str| {
            format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"HS256","typ":"JWT"}"#),
                b64(&format!(r#"{{"role":"{role}","iat":1}}"#))
            )
        };
        assert!(check_supabase_key("sb_secret_AbC-12_x").is_ok());
        assert!(check_supabase_key(&jwt("service_role")).is_ok());
        assert!(check_supabase_key(&jwt("anon")).is_err());
        assert!(check_supabase_key("sb_publishable_abc").is_err());
        assert!(check_supabase_key("a.b").is_err());
    }

    #[test]
    fn production_requires_groups_unless_skipped_or_implied() {
        let source = env(&[]);
        let report = Report::new(&source, Environment::Production, &Skips::none());
        let failing: Vec<_> = report.failures().map(|c| c.name).collect();
        assert_eq!(
            failing,
            [
                "PUBLIC_BASE_URL",
                "TWILIO_ACCOUNT_SID",
                "TWILIO_AUTH_TOKEN",
                "VAPI_PRIVATE_KEY",
                "VAPI_ASSISTANT_ID",
                "VAPI_SERVER_SECRET",
                "SUPABASE_URL",
                "SUPABASE_SERVICE_ROLE_KEY"
            ]
        );
        let implied = Skips::implied_by(&env(&[("CALL_MODE", "ivr"), ("STORE", "sqlite")]));
        let report = Report::new(&source, Environment::Production, &implied);
        let failing: Vec<_> = report.failures().map(|c| c.name).collect();
        assert_eq!(
            failing,
            ["PUBLIC_BASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]
        );
        let dev = Report::new(&source, Environment::Development, &Skips::none());
        assert!(dev.is_ok(), "nothing is required outside production");
    }

    #[test]
    fn malformed_optional_values_fail_but_optional_placeholders_do_not() {
        let source = env(&[("PROMETHEUS_PORT", "nine"), ("OPENAI_API_KEY", "your_key")]);
        let report = Report::new(&source, Environment::Development, &Skips::none());
        let failing: Vec<_> = report.failures().map(|c| (c.name, c.status)).collect();
        assert_eq!(failing, [("PROMETHEUS_PORT", Status::Malformed)]);
    }

    #[test]
    fn empty_is_missing_with_a_note() {
        let c = check_var(
            spec("TWILIO_AUTH_TOKEN"),
            &env(&[("TWILIO_AUTH_TOKEN", "  ")]),
            Environment::Production,
            &Skips::none(),
        );
        assert_eq!(
            (c.status, c.detail, c.required),
            (Status::Missing, Some("empty"), true)
        );
    }
}

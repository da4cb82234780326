//! What a well-formed value of each [`Shape`] looks like, and the placeholder detector. The checks
//! answer with a static description of the expected shape, never the value.

use base64::Engine as _;

use super::catalogue::Shape;
use crate::environment::Environment;

/// Words people leave in config files instead of real values (matched case-insensitively).
const PLACEHOLDER_WORDS: &[&str] = &[
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "your_",
    "your-",
    "test_token",
    "dummy",
];

/// True when `value` is one of the usual stand-ins for a real value.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    if lower.starts_with("xxx") || lower.contains("xxxx") {
        return true;
    }
    if let (Some(open), Some(close)) = (lower.find('<'), lower.rfind('>')) {
        if open < close {
            return true;
        }
    }
    PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w))
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `+` then 8 to 15 digits, the first not 0.
pub(crate) fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && is_hex(p))
}

fn check_url(value: &str, environment: Environment, need_user: bool) -> Result<(), &'static str> {
    let url = url::Url::parse(value).map_err(|_| "expected an absolute URL")?;
    match url.scheme() {
        "https" => {}
        "http" if environment != Environment::Production => {}
        _ if environment == Environment::Production => {
            return Err("expected an https:// URL in production");
        }
        _ => return Err("expected an http:// or https:// URL"),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("expected a URL with a host");
    }
    if need_user {
        if url.username().is_empty() {
            return Err("expected a DSN with a public key before '@'");
        }
        if url.path().trim_matches('/').is_empty() {
            return Err("expected a DSN ending with a project id");
        }
    } else if url.query().is_some() || url.fragment().is_some() {
        return Err("expected a URL without query or fragment");
    }
    Ok(())
}

pub(super) fn check_supabase_key(value: &str) -> Result<(), &'static str> {
    if value.starts_with("sb_publishable_") {
        return Err("expected a secret key, not a publishable key");
    }
    if let Some(rest) = value.strip_prefix("sb_secret_") {
        return if !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            Ok(())
        } else {
            Err("expected sb_secret_ followed by letters, digits, '_' or '-'")
        };
    }
    let parts: Vec<&str> = value.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err("expected an sb_secret_… key or a service_role JWT");
    }
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|_| "expected a JWT whose payload is base64url")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|_| "expected a JWT whose payload is JSON")?;
    match claims.get("role").and_then(serde_json::Value::as_str) {
        Some("service_role") => Ok(()),
        _ => Err("expected a JWT whose role claim is service_role (is this the anon key?)"),
    }
}

impl Shape {
    /// Checks a non-empty, non-placeholder value. The error says what was expected.
    pub fn check(self, value: &str, environment: Environment) -> Result<(), &'static str> {
        if value.trim() != value {
            return Err("has leading or trailing white space");
        }
        match self {
            Shape::OneOf(words) => words
                .contains(&value)
                .then_some(())
                .ok_or("expected one of the documented words"),
            Shape::Flag => matches!(value, "0" | "1" | "true" | "false")
                .then_some(())
                .ok_or("expected 0, 1, true or false"),
            Shape::Port => value
                .parse::<u16>()
                .map(drop)
                .map_err(|_| "expected a port number 0-65535"),
            Shape::SocketAddr => value
                .parse::<std::net::SocketAddr>()
                .map(drop)
                .map_err(|_| "expected IP:port, e.g. 127.0.0.1:8080"),
            Shape::Url => check_url(value, environment, false),
            Shape::SentryDsn => check_url(value, environment, true),
            Shape::TwilioAccountSid => {
                (value.len() == 34 && value.starts_with("AC") && is_hex(&value[2..]))
                    .then_some(())
                    .ok_or("expected AC followed by 32 hexadecimal characters")
            }
            Shape::TwilioAuthToken => (value.len() == 32 && is_hex(value))
                .then_some(())
                .ok_or("expected 32 hexadecimal characters"),
            Shape::Uuid => is_uuid(value)
                .then_some(())
                .ok_or("expected a UUID (8-4-4-4-12 hexadecimal digits)"),
            Shape::SupabaseSecretKey => check_supabase_key(value),
            Shape::Identifier => {
                let mut bytes = value.bytes();
                let first_ok = bytes
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
                (first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                    .then_some(())
                    .ok_or("expected a SQL identifier (letters, digits, '_')")
            }
            Shape::PositiveInt => match value.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(()),
                _ => Err("expected a whole number of at least 1"),
            },
            Shape::NonNegativeInt => value
                .parse::<u64>()
                .map(drop)
                .map_err(|_| "expected a whole number of at least 0"),
            Shape::Prefixed(prefix) => (value.starts_with(prefix) && value.len() > prefix.len())
                .then_some(())
                .ok_or(match prefix {
                    "sk-ant-" => "expected a key starting with sk-ant-",
                    _ => "expected a key starting with sk-",
                }),
            Shape::Text => Ok(()),
            Shape::E164 => is_e164(value)
                .then_some(())
                .ok_or("expected an E.164 number, e.g. +15145550100"),
            Shape::E164List => (value.split(',').all(|n| is_e164(n.trim())))
                .then_some(())
                .ok_or("expected comma-separated E.164 numbers, e.g. +15145550100,+14385550199"),
            Shape::SmsSender => (is_e164(value)
                || (value.len() == 34 && value.starts_with("MG") && is_hex(&value[2..])))
            .then_some(())
            .ok_or("expected an E.164 number or a Messaging Service SID (MG + 32 hexadecimal characters)"),
            Shape::BusinessHours => crate::domain::BusinessHours::parse(
                value,
                crate::domain::DEFAULT_TIMEZONE,
            )
            .map(drop)
            .map_err(|_| "expected e.g. mon-fri 07:00-17:00; sat 08:00-12:00 (the server's error says which part)"),
            Shape::TimeZone => crate::domain::BusinessHours::parse(
                crate::domain::DEFAULT_HOURS,
                value,
            )
            .map(drop)
            .map_err(|_| "expected an IANA time zone name, e.g. America/Toronto"),
            Shape::CidrList => value
                .parse::<crate::client_addr::TrustedProxies>()
                .map(drop)
                .map_err(|_| "expected comma-separated addresses or CIDR networks, e.g. 127.0.0.1/32,10.0.0.0/8"),
        }
    }

    /// What the shape expects, for documentation.
    pub fn describe(self) -> String {
        match self {
            Shape::OneOf(words) => words.join(" \\| "),
            Shape::Flag => "0 or 1".to_owned(),
            Shape::Port => "port".to_owned(),
            Shape::SocketAddr => "IP:port".to_owned(),
            Shape::Url => "URL (https in production)".to_owned(),
            Shape::SentryDsn => "Sentry DSN".to_owned(),
            Shape::TwilioAccountSid => "AC + 32 hex".to_owned(),
            Shape::TwilioAuthToken => "32 hex".to_owned(),
            Shape::Uuid => "UUID".to_owned(),
            Shape::SupabaseSecretKey => "sb_secret_… or service_role JWT".to_owned(),
            Shape::Identifier => "SQL identifier".to_owned(),
            Shape::PositiveInt => "integer ≥ 1".to_owned(),
            Shape::NonNegativeInt => "integer ≥ 0".to_owned(),
            Shape::Prefixed(p) => format!("{p}…"),
            Shape::Text => "text".to_owned(),
            Shape::E164 => "E.164 number".to_owned(),
            Shape::E164List => "E.164 numbers, comma-separated".to_owned(),
            Shape::SmsSender => "E.164 number or MG… SID".to_owned(),
            Shape::BusinessHours => "days HH:MM-HH:MM; …".to_owned(),
            Shape::TimeZone => "IANA time zone".to_owned(),
            Shape::CidrList => "addresses or CIDR networks, comma-separated".to_owned(),
        }
    }
}

//! Authenticating Vapi Server-URL requests, per environment (DESIGN §5): the shared secret in
//! `x-vapi-secret` (or `Authorization: Bearer`), or Vapi's HMAC credential: `x-signature` = hex
//! HMAC-SHA256 over `"{x-timestamp}.{raw body}"`, the timestamp within five minutes (seconds or
//! milliseconds). Every comparison is constant-time.

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Settings;
use crate::environment::Environment;

/// How far a signed timestamp may be from now.
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone)]
pub enum VapiAuth {
    /// Production always; development when `VAPI_SERVER_SECRET` is set.
    Enforce(Option<SecretString>),
    /// Test, or development without a secret.
    Bypass(&'static str),
}

impl VapiAuth {
    pub fn from_settings(settings: &Settings) -> Self {
        match (settings.environment, &settings.vapi.server_secret) {
            (Environment::Test, _) => VapiAuth::Bypass("ENVIRONMENT=test"),
            (Environment::Development, None) => {
                VapiAuth::Bypass("development without VAPI_SERVER_SECRET")
            }
            (_, secret) => VapiAuth::Enforce(secret.clone()),
        }
    }
}

/// Why a Vapi request is refused. The reason is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VapiAuthError {
    #[error("missing x-vapi-secret or x-signature")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    #[error("x-timestamp is missing, malformed or too far from now")]
    Stale,
    #[error("VAPI_SERVER_SECRET is not set; Vapi requests cannot be checked")]
    NoSecret,
}

impl VapiAuthError {
    pub fn reason(self) -> &'static str {
        match self {
            VapiAuthError::Missing => "missing",
            VapiAuthError::Invalid => "invalid",
            VapiAuthError::Stale => "stale",
            VapiAuthError::NoSecret => "no_secret",
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The HMAC Vapi sends for `body` at `timestamp`.
///
/// # Panics
/// Never: HMAC accepts keys of any length.
pub fn hmac_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut hex = String::with_capacity(64);
    for b in mac.finalize().into_bytes() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Checks a request; `now` is the current Unix time in seconds.
pub fn verify(
    auth: &VapiAuth,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), VapiAuthError> {
    let secret = match auth {
        VapiAuth::Bypass(_) => return Ok(()),
        VapiAuth::Enforce(None) => return Err(VapiAuthError::NoSecret),
        VapiAuth::Enforce(Some(secret)) => secret.expose_secret(),
    };
    if let Some(signature) = header(headers, "x-signature") {
        let timestamp = header(headers, "x-timestamp").ok_or(VapiAuthError::Stale)?;
        let value: i64 = timestamp.parse().map_err(|_| VapiAuthError::Stale)?;
        // Vapi does not say whether it sends seconds or milliseconds: accept both.
        let seconds = if value > 1_000_000_000_000 {
            value / 1000
        } else {
            value
        };
        if now.abs_diff(seconds) > MAX_SKEW_SECS.unsigned_abs() {
            return Err(VapiAuthError::Stale);
        }
        let signature = signature.strip_prefix("sha256=").unwrap_or(signature);
        let expected = hmac_signature(secret, timestamp, body);
        return if eq(
            expected.as_bytes(),
            signature.to_ascii_lowercase().as_bytes(),
        ) {
            Ok(())
        } else {
            Err(VapiAuthError::Invalid)
        };
    }
    let presented = header(headers, "x-vapi-secret").or_else(|| {
        header(headers, "authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::trim))
    });
    match presented {
        None => Err(VapiAuthError::Missing),
        Some(p) if eq(p.as_bytes(), secret.as_bytes()) => Ok(()),
        Some(_) => Err(VapiAuthError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const NOW: i64 = 1_800_000_000;

    fn enforce() -> VapiAuth {
        VapiAuth::Enforce(Some(SecretString::from("s3cret-vapi".to_owned())))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn shared_secret_and_bearer() {
        let body = b"{}";
        assert_eq!(
            verify(
                &enforce(),
                &headers(&[("x-vapi-secret", "s3cret-vapi")]),
                body,
                NOW
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &enforce(),
                &headers(&[("authorization", "Bearer s3cret-vapi")]),
                body,
                NOW
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &enforce(),
                &headers(&[("x-vapi-secret", "s3cret-vapX")]),
                body,
                NOW
            ),
            Err(VapiAuthError::Invalid)
        );
        assert_eq!(
            verify(&enforce(), &headers(&[]), body, NOW),
            Err(VapiAuthError::Missing)
        );
    }

    #[test]
    fn hmac_with_timestamp_in_seconds_or_milliseconds() {
        let body = br#"{"message":{"type":"status-update"}}"#;
        let ts = NOW.to_string();
        let sig = hmac_signature("s3cret-vapi", &ts, body);
        assert_eq!(
            verify(
                &enforce(),
                &headers(&[("x-signature", &sig), ("x-timestamp", &ts)]),
                body,
                NOW
            ),
            Ok(())
        );
        let ms = (NOW * 1000 + 250).to_string();
        let sig_ms = format!("sha256={}", hmac_signature("s3cret-vapi", &ms, body));
        assert_eq!(
            verify(
                &enforce(),
                &headers(&[("x-signature", &sig_ms), ("x-timestamp", &ms)]),
                body,
                NOW + 10
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &enforce(),
                &headers(&[("x-signature", &sig), ("x-timestamp", &ts)]),
                b"{}",
                NOW
            ),
            Err(VapiAuthError::Invalid),
            "the body is signed"
        );
        assert_eq!(
            verify(
                &enforce(),
                &headers(&[("x-signature", &sig), ("x-timestamp", &ts)]),
                body,
                NOW + 301
            ),
            Err(VapiAuthError::Stale)
        );
        assert_eq!(
            verify(&enforce(), &headers(&[("x-signature", &sig)]), body, NOW),
            Err(VapiAuthError::Stale)
        );
        assert_eq!(
            verify(
                &enforce(),
                &headers(&[("x-signature", &sig), ("x-timestamp", "soon")]),
                body,
                NOW
            ),
            Err(VapiAuthError::Stale)
        );
    }

    #[test]
    fn bypass_and_missing_secret() {
        assert_eq!(
            verify(&VapiAuth::Bypass("test"), &headers(&[]), b"", NOW),
            Ok(())
        );
        assert_eq!(
            verify(
                &VapiAuth::Enforce(None),
                &headers(&[("x-vapi-secret", "x")]),
                b"",
                NOW
            ),
            Err(VapiAuthError::NoSecret)
        );
    }
}

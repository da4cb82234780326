//! `X-Twilio-Signature`: the algorithm every official Twilio SDK agrees on.
//!
//! `base64(HMAC-SHA1(auth token, URL + Σ sorted(name + value)))`, parameters sorted by name in byte
//! order (case-sensitive), repeated names contributing their de-duplicated values in sorted order,
//! no separators. The URL is tried exactly as received first, then with the port removed, then with
//! the scheme's default port added — editing only the authority text, so the path and query bytes
//! and the host's case are never touched. JSON bodies carry `bodySHA256` (lowercase hex SHA-256 of
//! the raw body) in the URL: the signature covers the URL alone and the hash must match too.
//! Comparisons are constant-time.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Which URL string matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlVariant {
    AsReceived,
    PortRemoved,
    DefaultPortAdded,
}

impl UrlVariant {
    pub fn describe(self) -> &'static str {
        match self {
            UrlVariant::AsReceived => "the URL as received",
            UrlVariant::PortRemoved => "the URL with its port removed",
            UrlVariant::DefaultPortAdded => "the URL with the default port added",
        }
    }
}

/// Why a request is not from Twilio. The reason is a metric label (bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Twilio-Signature is missing")]
    Missing,
    #[error("X-Twilio-Signature does not match")]
    Mismatch,
    #[error("the body's SHA-256 does not match bodySHA256")]
    BodyHashMismatch,
    #[error("a non-form body without bodySHA256 in the URL")]
    NoBodyHash,
}

impl SignatureError {
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Mismatch => "mismatch",
            SignatureError::BodyHashMismatch => "body_hash_mismatch",
            SignatureError::NoBodyHash => "no_body_hash",
        }
    }
}

/// The exact string that is signed for `url` and `params`.
pub fn signed_data(url: &str, params: &[(String, String)]) -> String {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in params {
        by_name
            .entry(name.as_str())
            .or_default()
            .push(value.as_str());
    }
    let mut data = String::with_capacity(
        url.len() + params.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>(),
    );
    data.push_str(url);
    for (name, mut values) in by_name {
        values.sort_unstable();
        values.dedup();
        for value in values {
            data.push_str(name);
            data.push_str(value);
        }
    }
    data
}

/// `base64(HMAC-SHA1(token, data))`.
///
/// # Panics
/// Never: HMAC accepts keys of any length.
pub fn sign(token: &str, data: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Where the authority (`[userinfo@]host[:port]`) sits in `url`, and its port's span if any.
struct Authority {
    scheme: String,
    /// Byte range of `host[:port]` (after any userinfo).
    host_port: std::ops::Range<usize>,
    /// Byte range of `:port` within `url`, if present.
    port: Option<std::ops::Range<usize>>,
}

fn authority(url: &str) -> Option<Authority> {
    let scheme_end = url.find("://")?;
    let scheme = url[..scheme_end].to_ascii_lowercase();
    let start = scheme_end + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let auth = &url[start..end];
    let host_start = start + auth.rfind('@').map_or(0, |i| i + 1);
    let host_port = &url[host_start..end];
    // `[ipv6]:port` or `host:port`
    let port_colon = if host_port.starts_with('[') {
        host_port.find("]:").map(|i| host_start + i + 1)
    } else {
        host_port.rfind(':').map(|i| host_start + i)
    };
    let port = port_colon
        .filter(|&c| c + 1 < end && url[c + 1..end].bytes().all(|b| b.is_ascii_digit()))
        .map(|c| c..end);
    Some(Authority {
        scheme,
        host_port: host_start..end,
        port,
    })
}

fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "https" | "wss" => Some("443"),
        "http" | "ws" => Some("80"),
        _ => None,
    }
}

/// The URL strings to try, in order: as received, port removed (if it has one), default port added
/// (if it has none). Only the authority text is edited.
pub fn url_variants(url: &str) -> Vec<(UrlVariant, String)> {
    let mut out = vec![(UrlVariant::AsReceived, url.to_owned())];
    let Some(auth) = authority(url) else {
        return out;
    };
    match auth.port {
        Some(port) => {
            let mut removed = url.to_owned();
            removed.replace_range(port, "");
            out.push((UrlVariant::PortRemoved, removed));
        }
        None => {
            if let Some(p) = default_port(&auth.scheme) {
                let mut added = url.to_owned();
                added.insert_str(auth.host_port.end, &format!(":{p}"));
                out.push((UrlVariant::DefaultPortAdded, added));
            }
        }
    }
    out
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Verifies a form request: `params` are the decoded POST fields (none for GET).
pub fn verify_form(
    token: &str,
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> Result<UrlVariant, SignatureError> {
    let signature = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::Missing)?;
    for (variant, candidate) in url_variants(url) {
        if constant_time_eq(&sign(token, &signed_data(&candidate, params)), signature) {
            return Ok(variant);
        }
    }
    Err(SignatureError::Mismatch)
}

/// Lowercase hex SHA-256.
pub fn body_sha256(body: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(body);
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// The `bodySHA256` value in the URL's query, percent-decoded.
pub fn body_hash_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
}

/// Verifies a non-form (JSON) request: the URL signature with no params AND the body hash.
pub fn verify_body(
    token: &str,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<UrlVariant, SignatureError> {
    let expected = body_hash_param(url).ok_or(SignatureError::NoBodyHash)?;
    let variant = verify_form(token, url, &[], signature)?;
    if constant_time_eq(&body_sha256(body), &expected) {
        Ok(variant)
    } else {
        Err(SignatureError::BodyHashMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Twilio's documented example (api-snippets `security/signature_validation`).
    #[test]
    fn twilio_documentation_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let p = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            signed_data(url, &p),
            "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675310Digits1234From+14158675310To+18005551212"
        );
        assert_eq!(
            sign("12345", &signed_data(url, &p)),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert_eq!(
            verify_form("12345", url, &p, Some("GvWf1cFY/Q7PnoempGyD5oXAezc=")),
            Ok(UrlVariant::AsReceived)
        );
        assert_eq!(
            verify_form("12346", url, &p, Some("GvWf1cFY/Q7PnoempGyD5oXAezc=")),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sorting_is_by_byte_and_repeated_names_are_deduplicated() {
        let p = params(&[
            ("callSid", "c"),
            ("To", "x"),
            ("Digits", "5"),
            ("CALLSID", "a"),
            ("Digits", "1"),
            ("Digits", "1"),
            ("CallSid", "b"),
            ("Empty", ""),
        ]);
        assert_eq!(
            signed_data("U", &p),
            "UCALLSIDaCallSidbDigits1Digits5EmptyToxcallSidc"
        );
    }

    #[test]
    fn url_variants_edit_only_the_authority() {
        let v = |u: &str| -> Vec<String> { url_variants(u).into_iter().map(|(_, s)| s).collect() };
        assert_eq!(
            v("https://gw.example.com/twilio/voice?x=1"),
            [
                "https://gw.example.com/twilio/voice?x=1",
                "https://gw.example.com:443/twilio/voice?x=1"
            ]
        );
        assert_eq!(
            v("https://Gw.Example.com:8443/a//b?q=O'Hara+x%20y"),
            [
                "https://Gw.Example.com:8443/a//b?q=O'Hara+x%20y",
                "https://Gw.Example.com/a//b?q=O'Hara+x%20y"
            ]
        );
        assert_eq!(v("http://h/x"), ["http://h/x", "http://h:80/x"]);
        assert_eq!(v("wss://h/media"), ["wss://h/media", "wss://h:443/media"]);
        assert_eq!(v("ws://h:8080"), ["ws://h:8080", "ws://h"]);
        assert_eq!(
            v("https://user:pass@h:444/p"),
            ["https://user:pass@h:444/p", "https://user:pass@h/p"]
        );
        assert_eq!(
            v("https://[::1]:8443/p"),
            ["https://[::1]:8443/p", "https://[::1]/p"]
        );
        assert_eq!(
            v("https://[::1]/p"),
            ["https://[::1]/p", "https://[::1]:443/p"]
        );
        assert_eq!(v("not a url"), ["not a url"]);
    }

    #[test]
    fn port_variants_verify() {
        let token = "tok";
        let p = params(&[("CallSid", "CA1")]);
        let signed_without = sign(token, &signed_data("https://h/voice", &p));
        let signed_with = sign(token, &signed_data("https://h:443/voice", &p));
        assert_eq!(
            verify_form(token, "https://h:443/voice", &p, Some(&signed_without)),
            Ok(UrlVariant::PortRemoved)
        );
        assert_eq!(
            verify_form(token, "https://h/voice", &p, Some(&signed_with)),
            Ok(UrlVariant::DefaultPortAdded)
        );
    }

    #[test]
    fn special_characters_upper_case_host_and_utf8_are_signed_as_is() {
        let token = "tok";
        let url = "https://MyCompany.com/voice?name=William+O'hara&city=Montr%C3%A9al";
        let p = params(&[
            ("SpeechResult", "élagage d'un érable 🌳"),
            ("From", "+15145550199"),
        ]);
        let sig = sign(token, &signed_data(url, &p));
        assert_eq!(
            verify_form(token, url, &p, Some(&sig)),
            Ok(UrlVariant::AsReceived)
        );
        // Any re-encoding or lowercasing breaks it.
        for altered in [
            "https://mycompany.com/voice?name=William+O'hara&city=Montr%C3%A9al",
            "https://MyCompany.com/voice?name=William+O%27hara&city=Montr%C3%A9al",
            "https://MyCompany.com/voice?name=William%20O'hara&city=Montr%C3%A9al",
        ] {
            assert_eq!(
                verify_form(token, altered, &p, Some(&sig)),
                Err(SignatureError::Mismatch),
                "{altered}"
            );
        }
    }

    #[test]
    fn missing_empty_and_garbage_headers() {
        let p = params(&[("CallSid", "CA1")]);
        assert_eq!(
            verify_form("t", "https://h/", &p, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_form("t", "https://h/", &p, Some("")),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_form("t", "https://h/", &p, Some("   ")),
            Err(SignatureError::Missing)
        );
        for garbage in ["x", "====", "not base64 at all ✗", &"A".repeat(10_000)] {
            assert_eq!(
                verify_form("t", "https://h/", &p, Some(garbage)),
                Err(SignatureError::Mismatch)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_only_the_right_token_verifies(
            url in "\\PC{0,200}",
            params in proptest::collection::vec(("\\PC{0,20}", "\\PC{0,40}"), 0..8),
            garbage in "\\PC{0,64}",
        ) {
            let variants = url_variants(&url);
            proptest::prop_assert_eq!(&variants[0].1, &url);
            let good = sign("token", &signed_data(&url, &params));
            proptest::prop_assert!(verify_form("token", &url, &params, Some(&good)).is_ok());
            proptest::prop_assert!(verify_form("other", &url, &params, Some(&good)).is_err());
            let _ = verify_form("token", &url, &params, Some(&garbage));
            let _ = verify_body("token", &url, garbage.as_bytes(), Some(&garbage));
        }
    }

    #[test]
    fn json_bodies_use_body_sha256() {
        let token = "tok";
        let body = br#"{"CallSid":"CA1","Status":"completed"}"#;
        let hash = body_sha256(body);
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let url = format!("https://h/twilio/events?bodySHA256={hash}");
        let sig = sign(token, &url);
        assert_eq!(
            verify_body(token, &url, body, Some(&sig)),
            Ok(UrlVariant::AsReceived)
        );
        assert_eq!(
            verify_body(token, &url, br#"{"CallSid":"CA2"}"#, Some(&sig)),
            Err(SignatureError::BodyHashMismatch)
        );
        let wrong_hash_url = format!("https://h/twilio/events?bodySHA256={}", "0".repeat(64));
        assert_eq!(
            verify_body(
                token,
                &wrong_hash_url,
                body,
                Some(&sign(token, &wrong_hash_url))
            ),
            Err(SignatureError::BodyHashMismatch)
        );
        assert_eq!(
            verify_body(token, "https://h/twilio/events", body, Some(&sig)),
            Err(SignatureError::NoBodyHash)
        );
        assert_eq!(
            verify_body(token, &url, body, Some("bogus")),
            Err(SignatureError::Mismatch)
        );
        // The known SHA-256 of the empty string.
        assert_eq!(
            body_sha256(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

//! The Media Stream token: what ties a `<Stream>` to the one call it was rendered for.
//!
//! `<Stream url>` carries no parameters, so the handshake's `X-Twilio-Signature` is the same for
//! every call and proves only that Twilio (or whoever saw one handshake) is on the other end. The
//! `/twilio/voice` answer therefore adds a `<Parameter name="token">` that Twilio hands back in the
//! stream's `start.customParameters`:
//!
//! `v1.{CallSid}.{lead id}.{expiry, unix seconds}.{base64url(HMAC-SHA256)}`
//!
//! The MAC covers everything before its dot. The expiry counts from the lead's creation, so a
//! retried `/twilio/voice` gets the same token and the same TwiML, as every retried webhook does. Its key is derived from `TWILIO_AUTH_TOKEN`
//! (`HMAC-SHA256(auth token, "myriam media-stream token v1")`), so every instance of a deployment
//! issues and accepts the same tokens without another secret; without an auth token (development
//! and test only) each process draws a random key. Verification is constant-time. Single use is not
//! decided here but in the store (`processed_events`, one key per call), so it holds across
//! instances.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;

use crate::domain::{CallSid, LeadId};

/// The `<Parameter>` name of the token.
pub const PARAMETER: &str = "token";
/// The `<Parameter>` names of the call and its lead (informative: the token is what is trusted).
pub const CALL_SID_PARAMETER: &str = "call_sid";
pub const LEAD_ID_PARAMETER: &str = "lead_id";

/// The `<Stream>` parameters of a bridged call, in the order `/twilio/voice` renders them; the
/// session reads them back from `start.customParameters` by the same names.
pub fn parameters(call_sid: &CallSid, lead_id: LeadId, token: String) -> Vec<(String, String)> {
    vec![
        (LEAD_ID_PARAMETER.to_owned(), lead_id.to_string()),
        (CALL_SID_PARAMETER.to_owned(), call_sid.to_string()),
        (PARAMETER.to_owned(), token),
    ]
}

/// How long a token is accepted after `/twilio/voice` rendered it. Twilio opens the stream within a
/// second or two; the margin covers clock differences between instances.
pub const TTL: Duration = Duration::from_secs(120);

const VERSION: &str = "v1";
const KEY_LABEL: &[u8] = b"myriam media-stream token v1";

/// Why a token is refused. The reason is a metric label (bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the stream token is not in the expected form")]
    Malformed,
    #[error("the stream token's signature does not match")]
    BadSignature,
    #[error("the stream token has expired")]
    Expired,
}

impl TokenError {
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed => "token_malformed",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::Expired => "token_expired",
        }
    }
}

/// What a valid token vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamClaim {
    pub call_sid: CallSid,
    pub lead_id: LeadId,
    /// Unix seconds.
    pub expires: i64,
}

/// Issues and checks stream tokens. Cheap to clone.
#[derive(Clone)]
pub struct StreamTokens {
    key: Arc<SecretSlice<u8>>,
}

impl std::fmt::Debug for StreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamTokens { key: [redacted] }")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl StreamTokens {
    /// Keys derived from the account's auth token, or a random per-process key without one.
    pub fn new(auth_token: Option<&SecretString>) -> Self {
        let derived = auth_token.and_then(|token| {
            let mut mac = HmacSha256::new_from_slice(token.expose_secret().as_bytes()).ok()?;
            mac.update(KEY_LABEL);
            Some(mac.finalize().into_bytes().to_vec())
        });
        let key = derived.unwrap_or_else(|| {
            let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
            key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            key
        });
        Self {
            key: Arc::new(SecretSlice::from(key)),
        }
    }

    /// The MAC of `signed` (HMAC accepts keys of any length, so this is always `Some`).
    fn mac(&self, signed: &str) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret()).ok()?;
        mac.update(signed.as_bytes());
        Some(mac)
    }

    /// The token of `call_sid` and `lead_id`, valid until `issued + TTL` (unix seconds). The same
    /// arguments give the same token.
    pub fn issue(&self, call_sid: &CallSid, lead_id: LeadId, issued: i64) -> String {
        let expires = issued.saturating_add(i64::try_from(TTL.as_secs()).unwrap_or(i64::MAX));
        let signed = format!("{VERSION}.{call_sid}.{lead_id}.{expires}");
        let tag = self
            .mac(&signed)
            .map(|mac| URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
            .unwrap_or_default();
        format!("{signed}.{tag}")
    }

    /// The claim of a genuine, unexpired token (`now` in unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<StreamClaim, TokenError> {
        if token.len() > 256 {
            return Err(TokenError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        // The signature first: nothing an attacker wrote is interpreted before it is checked.
        self.mac(signed)
            .ok_or(TokenError::BadSignature)?
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let mut parts = signed.split('.');
        let (Some(VERSION), Some(sid), Some(lead), Some(expires), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let claim = StreamClaim {
            call_sid: CallSid::try_from(sid).map_err(|_| TokenError::Malformed)?,
            lead_id: LeadId::try_from(lead).map_err(|_| TokenError::Malformed)?,
            expires: expires.parse().map_err(|_| TokenError::Malformed)?,
        };
        if now > claim.expires {
            return Err(TokenError::Expired);
        }
        Ok(claim)
    }
}

/// The current time in unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SID: &str = "CA0123456789abcdef0123456789abcdef";

    fn tokens(secret: &str) -> StreamTokens {
        StreamTokens::new(Some(&SecretString::from(secret.to_owned())))
    }

    fn lead() -> LeadId {
        LeadId::try_from("6f1c1d8e-3a4b-4c5d-8e9f-0a1b2c3d4e5f").unwrap()
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let sid = CallSid::try_from(SID).unwrap();
        let token = t.issue(&sid, lead(), 1_000);
        let claim = t.verify(&token, 1_000).unwrap();
        assert_eq!(claim.call_sid, sid);
        assert_eq!(claim.lead_id, lead());
        assert_eq!(claim.expires, 1_120);
        assert!(t.verify(&token, 1_120).is_ok());
        assert_eq!(t.verify(&token, 1_121), Err(TokenError::Expired));
    }

    #[test]
    fn instances_with_the_same_auth_token_agree_and_others_do_not() {
        let sid = CallSid::try_from(SID).unwrap();
        let token = tokens("aaaa").issue(&sid, lead(), 10);
        assert!(tokens("aaaa").verify(&token, 10).is_ok());
        assert_eq!(
            tokens("bbbb").verify(&token, 10),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            StreamTokens::new(None).verify(&token, 10),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_is_stable_for_its_call_and_does_not_contain_the_key() {
        let t = tokens("supersecretauthtoken");
        let sid = CallSid::try_from(SID).unwrap();
        let (a, b) = (t.issue(&sid, lead(), 10), t.issue(&sid, lead(), 10));
        assert_eq!(a, b, "a retried /twilio/voice gets the same TwiML");
        assert_ne!(a, t.issue(&sid, lead(), 11));
        assert!(!a.contains("supersecret"));
        assert!(!format!("{t:?}").contains("supersecret"));
    }

    #[test]
    fn any_edit_is_refused() {
        let t = tokens("k");
        let sid = CallSid::try_from(SID).unwrap();
        let token = t.issue(&sid, lead(), 10);
        // Another call, another lead, a later expiry: each a forged claim under the old tag.
        let other_call = token.replacen(SID, "CAffffffffffffffffffffffffffffffff", 1);
        let other_lead = token.replacen(
            &lead().to_string(),
            "00000000-0000-4000-8000-000000000000",
            1,
        );
        let later = token.replacen(".130.", ".99999999999.", 1);
        assert!(token.contains(".130."), "{token}");
        for forged in [other_call, other_lead, later] {
            assert_ne!(forged, token);
            assert_eq!(t.verify(&forged, 10), Err(TokenError::BadSignature));
        }
        for malformed in ["", ".", "v1", "v1.a.b.c.d.e.f", "v1.x.y.1.n.!!!"] {
            assert!(t.verify(malformed, 10).is_err(), "{malformed}");
        }
        assert_eq!(t.verify(&"a".repeat(300), 10), Err(TokenError::Malformed));
    }

    proptest! {
        #[test]
        fn verifying_arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = tokens("k").verify(&s, 0);
        }
    }
}

//! Twilio call identity.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Twilio Call SID: `CA` followed by 32 hexadecimal characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CallSid(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Call SID is CA followed by 32 hexadecimal characters")]
pub struct InvalidCallSid;

impl CallSid {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for CallSid {
    type Error = InvalidCallSid;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        let ok = s.len() == 34
            && s.starts_with("CA")
            && s.bytes().skip(2).all(|b| b.is_ascii_hexdigit());
        ok.then(|| Self(s.to_owned())).ok_or(InvalidCallSid)
    }
}

impl TryFrom<String> for CallSid {
    type Error = InvalidCallSid;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::try_from(s.as_str())
    }
}

impl From<CallSid> for String {
    fn from(sid: CallSid) -> String {
        sid.0
    }
}

impl fmt::Display for CallSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the gateway talked to the caller on a call (`bp.calls.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationMode {
    /// Audio bridged to the Vapi assistant.
    Bridge,
    /// The gateway's own speech IVR.
    Ivr,
}

impl ConversationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationMode::Bridge => "bridge",
            ConversationMode::Ivr => "ivr",
        }
    }

    pub fn from_str_opt(s: &str) -> Option<Self> {
        match s {
            "bridge" => Some(Self::Bridge),
            "ivr" => Some(Self::Ivr),
            _ => None,
        }
    }
}

/// The rank of the statuses that end a call.
pub const TERMINAL_CALL_RANK: u8 = 4;

/// The order a call's status moves in, the one place it is defined: `calls::status_rank` reads
/// it, the SQLite store builds its `CASE` from it and `bp.call_status_rank` mirrors it (tests
/// compare them). `queued`, and anything Twilio adds later, rank 0, so it never overrides a known
/// status.
pub const CALL_STATUS_RANKS: &[(&str, u8)] = &[
    ("initiated", 1),
    ("ringing", 2),
    ("in-progress", 3),
    ("answered", 3),
    ("completed", TERMINAL_CALL_RANK),
    ("busy", TERMINAL_CALL_RANK),
    ("failed", TERMINAL_CALL_RANK),
    ("no-answer", TERMINAL_CALL_RANK),
    ("canceled", TERMINAL_CALL_RANK),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_sids() {
        assert!(CallSid::try_from("CA0123456789abcdef0123456789abcdef").is_ok());
        for bad in [
            "",
            "CA123",
            "AC0123456789abcdef0123456789abcdef",
            "CA0123456789abcdef0123456789abcdeg",
        ] {
            assert!(CallSid::try_from(bad).is_err(), "{bad}");
        }
    }
}

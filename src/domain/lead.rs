//! Lead identity, status and language.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A lead's primary key (`bp.leads.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeadId(Uuid);

impl LeadId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for LeadId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for LeadId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl TryFrom<&str> for LeadId {
    type Error = uuid::Error;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Uuid::parse_str(s.trim()).map(Self)
    }
}

impl fmt::Display for LeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a lead stands. The SQL CHECK constraint on `bp.leads.status` lists exactly
/// [`LeadStatus::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    /// Created; the caller has not answered yet.
    #[default]
    Nouveau,
    /// At least one answer processed.
    EnCours,
    /// All six fields collected.
    Qualifie,
    /// Given up after repeated failures; what was collected is kept and a callback offered.
    Abandonne,
    /// The caller asked for a person and was handed to the office line (`TRANSFER_NUMBER`).
    Transfere,
    /// The caller asked for a person and left a voicemail (or reached it after a failed transfer):
    /// staff call back at the lead's number.
    Rappel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown lead status; expected one of: nouveau, en_cours, qualifie, abandonne, transfere, rappel"
)]
pub struct UnknownLeadStatus;

impl LeadStatus {
    pub const ALL: [LeadStatus; 6] = [
        LeadStatus::Nouveau,
        LeadStatus::EnCours,
        LeadStatus::Qualifie,
        LeadStatus::Abandonne,
        LeadStatus::Transfere,
        LeadStatus::Rappel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::Nouveau => "nouveau",
            LeadStatus::EnCours => "en_cours",
            LeadStatus::Qualifie => "qualifie",
            LeadStatus::Abandonne => "abandonne",
            LeadStatus::Transfere => "transfere",
            LeadStatus::Rappel => "rappel",
        }
    }

    /// No more questions will be asked.
    pub fn is_final(self) -> bool {
        !matches!(self, LeadStatus::Nouveau | LeadStatus::EnCours)
    }

    /// The caller was handed to people (transfer or voicemail).
    pub fn is_handed_off(self) -> bool {
        matches!(self, LeadStatus::Transfere | LeadStatus::Rappel)
    }

    /// The order statuses move in: `nouveau` (0) < `en_cours` (1) < every final status (2).
    /// The one place this order is defined; the databases enforce the same rule (SQLite
    /// migration 3's trigger, `bp.lead_status_forward` in Supabase), and tests compare them.
    pub fn rank(self) -> u8 {
        match self {
            LeadStatus::Nouveau => 0,
            LeadStatus::EnCours => 1,
            LeadStatus::Qualifie
            | LeadStatus::Abandonne
            | LeadStatus::Transfere
            | LeadStatus::Rappel => 2,
        }
    }

    /// Whether a lead at `self` may move to `next`: staying, or moving forward; between final
    /// statuses only `transfere` → `rappel` (nobody answered the transfer: voicemail),
    /// `abandonne` → `transfere`/`rappel` (a caller Myriam could not understand asks for a
    /// person) and `abandonne` → `qualifie` (the caller's last answer, given during the call, is
    /// processed after the call's end abandoned the lead). A qualified lead stays qualified: its
    /// call is still put through.
    pub fn can_become(self, next: LeadStatus) -> bool {
        self == next
            || next.rank() > self.rank()
            || (self == LeadStatus::Transfere && next == LeadStatus::Rappel)
            || (self == LeadStatus::Abandonne
                && (next.is_handed_off() || next == LeadStatus::Qualifie))
    }
}

impl TryFrom<&str> for LeadStatus {
    type Error = UnknownLeadStatus;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        LeadStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(UnknownLeadStatus)
    }
}

impl fmt::Display for LeadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The language Myriam speaks with this caller: Québec French unless the caller asks for English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "fr")]
    Fr,
    #[serde(rename = "en")]
    En,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Fr => "fr",
            Language::En => "en",
        }
    }

    /// The BCP 47 tag speech services use (`fr-CA`, `en-US`).
    pub fn speech_tag(self) -> &'static str {
        match self {
            Language::Fr => "fr-CA",
            Language::En => "en-US",
        }
    }
}

impl TryFrom<&str> for Language {
    type Error = ();

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fr" | "fr-ca" | "french" | "francais" | "français" => Ok(Language::Fr),
            "en" | "en-us" | "en-ca" | "english" | "anglais" => Ok(Language::En),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text_and_json() {
        for status in LeadStatus::ALL {
            assert_eq!(LeadStatus::try_from(status.as_str()), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
        assert!(LeadStatus::try_from("qualified").is_err());
        assert!(LeadStatus::Qualifie.is_final() && !LeadStatus::EnCours.is_final());
        assert!(LeadStatus::Transfere.is_final() && LeadStatus::Rappel.is_handed_off());
        assert!(!LeadStatus::Abandonne.is_handed_off());
    }

    #[test]
    fn statuses_only_move_forward() {
        use LeadStatus::{Abandonne, EnCours, Nouveau, Qualifie, Rappel, Transfere};
        let allowed = [
            (Nouveau, EnCours),
            (Nouveau, Qualifie),
            (Nouveau, Abandonne),
            (Nouveau, Transfere),
            (Nouveau, Rappel),
            (EnCours, Qualifie),
            (EnCours, Abandonne),
            (EnCours, Transfere),
            (EnCours, Rappel),
            (Transfere, Rappel),
            (Abandonne, Transfere),
            (Abandonne, Rappel),
            (Abandonne, Qualifie),
        ];
        for from in LeadStatus::ALL {
            for to in LeadStatus::ALL {
                let expected = from == to || allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
            }
        }
        assert!(!Qualifie.can_become(Abandonne) && !Rappel.can_become(Transfere));
        assert!(!EnCours.can_become(Nouveau) && !Abandonne.can_become(EnCours));
    }

    #[test]
    fn lead_ids_parse_uuids_only() {
        let id = LeadId::new();
        assert_eq!(LeadId::try_from(id.to_string().as_str()).unwrap(), id);
        assert!(LeadId::try_from("lead-42").is_err());
    }
}

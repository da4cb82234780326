//! The lead being qualified: its six [`Field`]s, the conversation's [`Turn`]s, and the [`Outcome`]
//! of an answer.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::parsing::{Address, Description, PersonName, ServiceType};
use crate::domain::{Language, LeadId, LeadStatus, PhoneNumber};

/// The six fields, in the order they are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    NomComplet,
    Telephone,
    AdresseComplete,
    TypeService,
    Description,
    Urgence,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::NomComplet,
        Field::Telephone,
        Field::AdresseComplete,
        Field::TypeService,
        Field::Description,
        Field::Urgence,
    ];

    /// 1 to 6.
    pub fn step(self) -> u8 {
        match self {
            Field::NomComplet => 1,
            Field::Telephone => 2,
            Field::AdresseComplete => 3,
            Field::TypeService => 4,
            Field::Description => 5,
            Field::Urgence => 6,
        }
    }

    /// The column name in `bp.leads`.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::NomComplet => "nom_complet",
            Field::Telephone => "telephone",
            Field::AdresseComplete => "adresse_complete",
            Field::TypeService => "type_service",
            Field::Description => "description",
            Field::Urgence => "urgence",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Caller,
    Myriam,
}

/// One line of the conversation stored on the lead (`bp.leads.conversation`). Every caller answer is
/// kept, rejected ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub speaker: Speaker,
    /// The field being asked when it was said.
    pub field: Option<Field>,
    pub text: String,
    /// For caller turns: whether the answer was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    /// For answers that came through a Vapi tool call: its id (the idempotency key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For Myriam's reply to a tool call: the one-line JSON result returned, replayed as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// For Myriam's lines: what she is waiting for besides the next field (a family name, the
    /// read-back), or what the read-back ended with (confirmed, disputed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    /// When it was said (set by the constructors); `None` on turns stored before turns had times.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub at: Option<time::OffsetDateTime>,
}

/// What a line of Myriam's asked or settled besides the next field; the machine's only state
/// beyond the lead's columns, kept in the conversation (`bp.leads.conversation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// « Et votre nom de famille? » after this first name alone.
    FamilyName(String),
    /// The address and the number read back (« Est-ce exact? »), round 1 or 2.
    ReadBack(u8),
    /// « Qu'est-ce que je dois corriger? » after a bare « non » at the read-back of this round.
    WhatToFix(u8),
    /// « Quelle est la bonne adresse? » / the right number, at the read-back of this round.
    Fix(Field, u8),
    /// The caller confirmed the read-back (or went on to the next answer).
    Confirmed,
    /// The caller disputed the read-back twice: kept as last said, for staff to check.
    Disputed,
    /// « Voulez-vous recevoir un texto de confirmation? » (`CALLER_SMS=1`), after the
    /// qualification.
    TextAsked,
    /// The caller's answer to it: a confirmation SMS only on `true`.
    TextConsent(bool),
}

impl Turn {
    /// A line of Myriam's, said now.
    pub fn myriam(field: Option<Field>, text: String) -> Self {
        Self {
            speaker: Speaker::Myriam,
            field,
            text,
            accepted: None,
            tool_call_id: None,
            result: None,
            note: None,
            at: Some(time::OffsetDateTime::now_utc()),
        }
    }

    /// A caller answer and whether it was accepted, said now.
    pub fn caller(field: Option<Field>, text: String, accepted: bool) -> Self {
        Self {
            speaker: Speaker::Caller,
            field,
            text,
            accepted: Some(accepted),
            tool_call_id: None,
            result: None,
            note: None,
            at: Some(time::OffsetDateTime::now_utc()),
        }
    }
}

impl Lead {
    /// Myriam asked for the caller's consent to a confirmation SMS and they have not answered.
    pub fn awaiting_text_consent(&self) -> bool {
        self.conversation
            .last()
            .is_some_and(|t| t.speaker == Speaker::Myriam && t.note == Some(Note::TextAsked))
    }

    /// The caller said yes to a confirmation SMS.
    pub fn wants_text(&self) -> bool {
        self.conversation
            .iter()
            .any(|t| t.note == Some(Note::TextConsent(true)))
    }
}

/// A lead as the qualification sees it. Mirrors `bp.leads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: LeadId,
    pub nom_complet: Option<PersonName>,
    pub telephone: Option<PhoneNumber>,
    /// What the caller said for the phone number, as heard.
    pub telephone_raw: Option<String>,
    pub adresse_complete: Option<Address>,
    pub type_service: Option<ServiceType>,
    pub description: Option<Description>,
    /// `None` until answered; stored as `urgence boolean not null default false`.
    pub urgence: Option<bool>,
    pub status: LeadStatus,
    pub language: Language,
    /// The caller-ID number Myriam offers to confirm with a "oui"; cleared when the caller says no.
    pub offered_phone: Option<PhoneNumber>,
    /// Failed answers per field, for the re-ask and callback policy.
    pub attempts: BTreeMap<Field, u8>,
    pub conversation: Vec<Turn>,
    /// The version of the stored row this copy was read from (`leads.version`); 0 until the lead
    /// is first saved. A save is conditional on it (see [`crate::store::Store::save_lead`]).
    #[serde(default)]
    pub version: u32,
    /// Set by the store (`timestamptz`); `None` until the lead is first saved.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<time::OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<time::OffsetDateTime>,
}

impl Lead {
    pub fn new(id: LeadId) -> Self {
        Self {
            id,
            nom_complet: None,
            telephone: None,
            telephone_raw: None,
            adresse_complete: None,
            type_service: None,
            description: None,
            urgence: None,
            status: LeadStatus::Nouveau,
            language: Language::Fr,
            offered_phone: None,
            attempts: BTreeMap::new(),
            conversation: Vec::new(),
            version: 0,
            created_at: None,
            updated_at: None,
        }
    }

    /// A new lead whose caller ID will be offered as the phone number.
    #[must_use]
    pub fn with_offered_phone(mut self, phone: Option<PhoneNumber>) -> Self {
        self.offered_phone = phone;
        self
    }

    pub fn has(&self, field: Field) -> bool {
        match field {
            Field::NomComplet => self.nom_complet.is_some(),
            Field::Telephone => self.telephone.is_some(),
            Field::AdresseComplete => self.adresse_complete.is_some(),
            Field::TypeService => self.type_service.is_some(),
            Field::Description => self.description.is_some(),
            Field::Urgence => self.urgence.is_some(),
        }
    }

    /// What Myriam's last line is waiting for besides the next field.
    pub fn pending(&self) -> Option<&Note> {
        self.conversation
            .iter()
            .rev()
            .find(|t| t.speaker == Speaker::Myriam)
            .and_then(|t| t.note.as_ref())
    }

    /// True once the address and the number were read back (confirmed, disputed or under way).
    pub fn read_back_done(&self) -> bool {
        self.conversation.iter().any(|t| {
            matches!(
                t.note,
                Some(Note::ReadBack(_) | Note::Confirmed | Note::Disputed)
            )
        })
    }

    /// True when the caller disputed the read-back: staff should check the address and number.
    pub fn disputed(&self) -> bool {
        self.conversation
            .iter()
            .any(|t| t.note == Some(Note::Disputed))
    }

    /// The step the call is at: the first field not yet valid. `None` once all six are in.
    pub fn current_field(&self) -> Option<Field> {
        Field::ALL.into_iter().find(|f| !self.has(*f))
    }

    /// The snapshot returned in every [`Outcome`].
    pub fn data(&self) -> LeadData {
        LeadData {
            id: self.id,
            nom_complet: self.nom_complet.as_ref().map(|n| n.as_str().to_owned()),
            telephone: self.telephone.as_ref().map(|p| p.as_e164().to_owned()),
            telephone_raw: self.telephone_raw.clone(),
            adresse_complete: self
                .adresse_complete
                .as_ref()
                .map(|a| a.as_str().to_owned()),
            type_service: self.type_service.map(ServiceType::slug),
            description: self.description.as_ref().map(|d| d.as_str().to_owned()),
            urgence: self.urgence.unwrap_or(false),
            status: self.status,
            language: self.language,
        }
    }
}

/// The lead as returned to Vapi and the IVR: the columns, `urgence` as a JSON boolean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadData {
    pub id: LeadId,
    pub nom_complet: Option<String>,
    pub telephone: Option<String>,
    pub telephone_raw: Option<String>,
    pub adresse_complete: Option<String>,
    pub type_service: Option<&'static str>,
    pub description: Option<String>,
    pub urgence: bool,
    pub status: LeadStatus,
    pub language: Language,
}

/// What happened to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Accepted (or a correction, or a language switch); `next_step` is the next question.
    Continue,
    /// All six fields collected; `message` is the confirmation.
    Complete,
    /// Not accepted; `message` asks again (`next_step` set) or, after the last attempt, offers a
    /// callback and ends (`next_step` null, lead `abandonne`).
    ValidationError,
    /// The caller asked for a person: nothing was applied; the IVR or the assistant hands the
    /// call to people (transfer or voicemail).
    HumanRequested,
    /// Unknown lead or storage failure; nothing was applied.
    Error,
}

/// The answer to `process_response`, serialised exactly as
/// `{success, status, next_step, field_updated, is_complete, message, lead_data}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub success: bool,
    pub status: OutcomeStatus,
    pub next_step: Option<u8>,
    pub field_updated: Option<Field>,
    pub is_complete: bool,
    pub message: String,
    pub lead_data: Option<LeadData>,
}

impl Outcome {
    /// True when the conversation is over (qualified, or abandoned with a callback offer).
    pub fn ends_call(&self) -> bool {
        self.is_complete
            || (self.status == OutcomeStatus::ValidationError && self.next_step.is_none())
    }
}

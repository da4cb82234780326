//! Leads as rows (`bp.leads` / the SQLite `leads` table) and the write operations the outbox keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domain::{CallSid, Language, LeadId, LeadStatus, PhoneNumber};
use crate::qualification::{Address, Description, Field, Lead, PersonName, ServiceType, Turn};

use super::{CallUpdate, StoreError};

/// A lead exactly as stored: text columns, `urgence` a boolean, JSON for attempts and conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadRow {
    pub id: LeadId,
    pub nom_complet: Option<String>,
    pub telephone: Option<String>,
    pub telephone_raw: Option<String>,
    pub adresse_complete: Option<String>,
    pub type_service: Option<String>,
    pub description: Option<String>,
    pub urgence: bool,
    pub status: String,
    pub language: String,
    pub offered_phone: Option<String>,
    pub attempts: BTreeMap<Field, u8>,
    pub conversation: Vec<Turn>,
    /// The row's version (`leads.version`). In a [`WriteOp`] it is the version the write is
    /// based on: the write applies only over that version and makes it one more (0: a new lead,
    /// inserted only if absent; queued writes of older gateways have none and count as 0).
    #[serde(default)]
    pub version: u32,
    /// Set by the database; never written.
    #[serde(default, skip_serializing, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

impl From<&Lead> for LeadRow {
    fn from(lead: &Lead) -> Self {
        Self {
            id: lead.id,
            nom_complet: lead.nom_complet.as_ref().map(|n| n.as_str().to_owned()),
            telephone: lead.telephone.as_ref().map(|p| p.as_e164().to_owned()),
            telephone_raw: lead.telephone_raw.clone(),
            adresse_complete: lead
                .adresse_complete
                .as_ref()
                .map(|a| a.as_str().to_owned()),
            type_service: lead.type_service.map(|s| s.slug().to_owned()),
            description: lead.description.as_ref().map(|d| d.as_str().to_owned()),
            urgence: lead.urgence.unwrap_or(false),
            status: lead.status.as_str().to_owned(),
            language: lead.language.as_str().to_owned(),
            offered_phone: lead.offered_phone.as_ref().map(|p| p.as_e164().to_owned()),
            attempts: lead.attempts.clone(),
            conversation: lead.conversation.clone(),
            version: lead.version,
            created_at: lead.created_at,
            updated_at: lead.updated_at,
        }
    }
}

fn corrupt(column: &str) -> StoreError {
    StoreError::Corrupt(format!("leads.{column} does not parse"))
}

impl TryFrom<LeadRow> for Lead {
    type Error = StoreError;

    /// Stored values are parsed again: a row edited by hand that breaks a rule is reported, not used.
    fn try_from(row: LeadRow) -> Result<Self, Self::Error> {
        let phone = |v: Option<String>, column: &str| -> Result<Option<PhoneNumber>, StoreError> {
            v.map(|s| PhoneNumber::try_from(s.as_str()).map_err(|_| corrupt(column)))
                .transpose()
        };
        let status = LeadStatus::try_from(row.status.as_str()).map_err(|_| corrupt("status"))?;
        Ok(Lead {
            id: row.id,
            nom_complet: row
                .nom_complet
                .map(|s| PersonName::from_stored(&s).ok_or_else(|| corrupt("nom_complet")))
                .transpose()?,
            telephone: phone(row.telephone, "telephone")?,
            telephone_raw: row.telephone_raw,
            adresse_complete: row.adresse_complete.map(|s| Address::from_stored(&s)),
            type_service: row
                .type_service
                .map(|s| ServiceType::from_slug(&s).ok_or_else(|| corrupt("type_service")))
                .transpose()?,
            description: row
                .description
                .map(|s| Description::try_from(s.as_str()).map_err(|_| corrupt("description")))
                .transpose()?,
            // The sixth answer is the last: it was given exactly when the lead is qualified.
            urgence: (status == LeadStatus::Qualifie).then_some(row.urgence),
            status,
            language: Language::try_from(row.language.as_str())
                .map_err(|()| corrupt("language"))?,
            offered_phone: phone(row.offered_phone, "offered_phone")?,
            attempts: row.attempts,
            conversation: row.conversation,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A write, as the outbox keeps it until Supabase accepts it. Lead writes are operations that
/// never overwrite a newer version: a lead save is conditional on the version it was based on,
/// an abandonment on the lead still being open, a call's creation is insert-or-get by CallSid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "data", rename_all = "snake_case")]
pub enum WriteOp {
    /// The lead as changed from `version` (see [`LeadRow::version`]).
    #[serde(alias = "upsert_lead")]
    SaveLead(LeadRow),
    UpsertCall(CallUpdate),
    RecordEvent {
        key: String,
    },
    /// A lead save that also creates alerts (the write that qualifies an urgent lead): both or
    /// neither.
    #[serde(alias = "upsert_lead_with_alerts")]
    SaveLeadWithAlerts {
        lead: LeadRow,
        alerts: Vec<NewAlert>,
    },
    /// `abandonne` unless the lead is already final: one conditional statement.
    AbandonLead {
        id: LeadId,
    },
    /// A call's first lead, keyed by CallSid: the lead is created only if the call has none.
    StartCall {
        lead: LeadRow,
        call: Box<CallUpdate>,
    },
    /// `abandonne` unless final, for the lead of a call this instance could not find (the call's
    /// end reached it while Supabase was unreachable, or before the instance that started the
    /// call had replayed its start): replayed once the call has its lead.
    AbandonCallLead {
        call_sid: CallSid,
    },
}

impl WriteOp {
    /// What the write is about, for reads that must see pending writes: `lead:<id>`, `call:<sid>`,
    /// `event:<key>`. The lead of a lead-and-alerts write or of a call's start is its entity.
    pub fn entity(&self) -> String {
        match self {
            WriteOp::SaveLead(row)
            | WriteOp::SaveLeadWithAlerts { lead: row, .. }
            | WriteOp::StartCall { lead: row, .. } => format!("lead:{}", row.id),
            WriteOp::AbandonLead { id } => format!("lead:{id}"),
            WriteOp::UpsertCall(update) => format!("call:{}", update.call_sid),
            WriteOp::AbandonCallLead { call_sid } => format!("call:{call_sid}"),
            WriteOp::RecordEvent { key } => format!("event:{key}"),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            WriteOp::SaveLead(_) => "save_lead",
            WriteOp::UpsertCall(_) => "upsert_call",
            WriteOp::RecordEvent { .. } => "record_event",
            WriteOp::SaveLeadWithAlerts { .. } => "save_lead_with_alerts",
            WriteOp::AbandonLead { .. } => "abandon_lead",
            WriteOp::StartCall { .. } => "start_call",
            WriteOp::AbandonCallLead { .. } => "abandon_call_lead",
        }
    }
}

/// A call's status report to apply at once ([`super::Store::report_status_at_once`]): the call's
/// columns (its status included), the report's idempotency key, and whether it ends the call.
#[derive(Debug, Clone)]
pub struct StatusAtOnce<'a> {
    pub update: &'a CallUpdate,
    pub idempotency_key: Option<&'a str>,
    pub ends_call: bool,
    pub from_bridged_side: bool,
}

/// What a status report applied at once did (`bp.report_call_status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StatusApplied {
    /// The idempotency key was seen before: nothing was applied.
    #[serde(default)]
    pub duplicate: bool,
    /// The report ended the call (see `Calls::report_status` for when it does not).
    #[serde(default)]
    pub ends: bool,
    /// This report is the call's first end, on any instance.
    #[serde(default)]
    pub first_end: bool,
    /// The call's lead, when the call has one.
    #[serde(default)]
    pub lead_id: Option<LeadId>,
    /// The lead's status after the report (ended calls only).
    #[serde(default)]
    pub lead_status: Option<LeadStatus>,
    /// The call's mode before the report.
    #[serde(default)]
    pub mode: Option<crate::domain::ConversationMode>,
}

/// Whether a conditional write was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Applied (or, through the outbox, durably queued).
    Applied,
    /// The stored row is no longer the version the write was based on: re-read and re-apply.
    Stale,
}

/// The lead a pending write leaves, applied over `lead` (the lead before it, if known): what
/// reads see of this instance's queued writes.
pub(super) fn overlay(lead: Option<Lead>, op: &WriteOp) -> Result<Option<Lead>, StoreError> {
    Ok(match op {
        WriteOp::SaveLead(row) | WriteOp::SaveLeadWithAlerts { lead: row, .. } => {
            let mut saved = Lead::try_from(row.clone())?;
            saved.version = row.version + 1;
            Some(saved)
        }
        WriteOp::StartCall { lead: row, .. } => {
            if let Some(existing) = lead {
                Some(existing)
            } else {
                let mut saved = Lead::try_from(row.clone())?;
                saved.version = 1;
                Some(saved)
            }
        }
        WriteOp::AbandonLead { .. } => lead.map(|mut lead| {
            if !lead.status.is_final() {
                lead.status = LeadStatus::Abandonne;
                lead.version += 1;
            }
            lead
        }),
        WriteOp::UpsertCall(_) | WriteOp::RecordEvent { .. } | WriteOp::AbandonCallLead { .. } => {
            lead
        }
    })
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// The lead became qualified (urgent, or any with `ALERT_ON=all`).
    Qualified,
    /// An urgent caller left a voicemail after hours.
    Voicemail,
    /// The caller's own confirmation of their qualified request (`CALLER_SMS=1`), to the number
    /// they confirmed on the call.
    Confirmation,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Qualified => "qualified",
            AlertEvent::Voicemail => "voicemail",
            AlertEvent::Confirmation => "confirmation",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "qualified" => Ok(AlertEvent::Qualified),
            "voicemail" => Ok(AlertEvent::Voicemail),
            "confirmation" => Ok(AlertEvent::Confirmation),
            _ => Err(StoreError::Corrupt("alerts.event".to_owned())),
        }
    }
}

/// An alert to create with a lead write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAlert {
    pub id: uuid::Uuid,
    pub lead_id: LeadId,
    pub event: AlertEvent,
    /// E.164.
    pub recipient: String,
}

impl NewAlert {
    pub fn new(lead_id: LeadId, event: AlertEvent, recipient: &str) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            lead_id,
            event,
            recipient: recipient.to_owned(),
        }
    }
}

/// SHA-256 of `value`, hex.
fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The tombstone of an erased number: `number:` and the SHA-256 of its E.164 form.
pub fn number_key(e164: &str) -> String {
    format!("number:{}", sha256_hex(e164))
}

/// The tombstone of an erased call: `call:` and the SHA-256 of its CallSid.
pub fn call_key(sid: &str) -> String {
    format!("call:{}", sha256_hex(sid))
}

/// The tombstone of an erased lead: its id (random, not personal data).
pub fn lead_key(id: LeadId) -> String {
    format!("lead:{id}")
}

/// A CallSid inside an event key (`twilio:CA…:status:completed`, `call-ended:CA…`).
fn sids_in(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| CallSid::try_from(*part).is_ok())
        .map(str::to_owned)
        .collect()
}

/// Every tombstone a queued write would bring back: the lead it writes, the numbers it carries,
/// the calls it names.
pub fn erased_keys(op: &WriteOp) -> Vec<String> {
    let mut keys = Vec::new();
    let number = |value: Option<&String>, keys: &mut Vec<String>| {
        if let Some(phone) = value.and_then(|v| PhoneNumber::try_from(v.as_str()).ok()) {
            keys.push(number_key(phone.as_e164()));
        }
    };
    match op {
        WriteOp::SaveLead(row) | WriteOp::SaveLeadWithAlerts { lead: row, .. } => {
            keys.push(lead_key(row.id));
            number(row.telephone.as_ref(), &mut keys);
            number(row.offered_phone.as_ref(), &mut keys);
        }
        WriteOp::StartCall { lead, call } => {
            keys.push(lead_key(lead.id));
            number(lead.telephone.as_ref(), &mut keys);
            number(lead.offered_phone.as_ref(), &mut keys);
            number(call.from_number.as_ref(), &mut keys);
            keys.push(call_key(call.call_sid.as_str()));
        }
        WriteOp::UpsertCall(call) => {
            keys.push(call_key(call.call_sid.as_str()));
            number(call.from_number.as_ref(), &mut keys);
            if let Some(id) = call.lead_id {
                keys.push(lead_key(id));
            }
        }
        WriteOp::AbandonLead { id } => keys.push(lead_key(*id)),
        WriteOp::AbandonCallLead { call_sid } => keys.push(call_key(call_sid.as_str())),
        WriteOp::RecordEvent { key } => keys.extend(sids_in(key).iter().map(|s| call_key(s))),
    }
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod erased_tests {
    use super::*;

    #[test]
    fn keys_are_hashed_and_stable() {
        let key = number_key("+15145550101");
        assert!(key.starts_with("number:"));
        assert_eq!(key.len(), "number:".len() + 64);
        assert!(!key.contains("5145550101"));
        assert_eq!(key, number_key("+15145550101"));
        assert_ne!(key, number_key("+15145550102"));
    }

    #[test]
    fn event_keys_name_their_call() {
        let sid = "CA0123456789abcdef0123456789abcdef";
        let op = WriteOp::RecordEvent {
            key: format!("twilio:{sid}:status:completed"),
        };
        assert_eq!(erased_keys(&op), vec![call_key(sid)]);
    }
}

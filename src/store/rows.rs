//! Leads as rows (`bp.leads` / the SQLite `leads` table) and the write operations the outbox keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{Language, LeadId, LeadStatus, PhoneNumber};
use crate::qualification::{Address, Description, Field, Lead, PersonName, ServiceType, Turn};

use super::alerts::NewAlert;
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
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A write, as the outbox keeps it until Supabase accepts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "data", rename_all = "snake_case")]
pub enum WriteOp {
    UpsertLead(LeadRow),
    UpsertCall(CallUpdate),
    RecordEvent {
        key: String,
    },
    /// A lead write that also creates alerts (the write that qualifies an urgent lead): both or
    /// neither.
    UpsertLeadWithAlerts {
        lead: LeadRow,
        alerts: Vec<NewAlert>,
    },
}

impl WriteOp {
    /// What the write is about, for reads that must see pending writes: `lead:<id>`, `call:<sid>`,
    /// `event:<key>`. The lead of a lead-and-alerts write is its entity.
    pub fn entity(&self) -> String {
        match self {
            WriteOp::UpsertLead(row) | WriteOp::UpsertLeadWithAlerts { lead: row, .. } => {
                format!("lead:{}", row.id)
            }
            WriteOp::UpsertCall(update) => format!("call:{}", update.call_sid),
            WriteOp::RecordEvent { key } => format!("event:{key}"),
        }
    }

    /// The lead row this write saves, if it saves one.
    pub fn lead_row(&self) -> Option<&LeadRow> {
        match self {
            WriteOp::UpsertLead(row) | WriteOp::UpsertLeadWithAlerts { lead: row, .. } => Some(row),
            WriteOp::UpsertCall(_) | WriteOp::RecordEvent { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            WriteOp::UpsertLead(_) => "upsert_lead",
            WriteOp::UpsertCall(_) => "upsert_call",
            WriteOp::RecordEvent { .. } => "record_event",
            WriteOp::UpsertLeadWithAlerts { .. } => "upsert_lead_with_alerts",
        }
    }
}

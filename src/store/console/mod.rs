//! What the operators' console needs from storage: operators, their sessions and API tokens, login
//! failures (throttling shared by every instance), the audit log, the staff's follow-up of a lead
//! (`suivi`, a column of its own beside the machine's `status`, versioned so a stale edit is
//! refused), the leads list with filters, search and cursor, and the erasure of a caller.
//!
//! [`ConsoleStore`] is implemented by SQLite ([`sqlite`]), Supabase through PostgREST
//! ([`supabase`]) and the outbox (Supabase directly, the local file too when erasing).

mod outbox;
pub mod sqlite;
pub mod supabase;

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::any::AnyStore;
use super::erasures::RemoteTarget;
use super::rows::StoreError;
use crate::domain::{LeadId, LeadStatus, PhoneNumber};
use crate::qualification::Lead;

/// Most leads one console page returns.
pub const MAX_LIST: usize = 200;

/// What an operator may do: `admin` also erases callers and reads the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Staff,
}

/// A role name that is neither `admin` nor `staff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown role (expected admin or staff)")]
pub struct UnknownRole;

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
        }
    }
}

impl TryFrom<&str> for Role {
    type Error = UnknownRole;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        match s.trim() {
            "admin" => Ok(Role::Admin),
            "staff" => Ok(Role::Staff),
            _ => Err(UnknownRole),
        }
    }
}

/// An operator's e-mail address, trimmed and lower-cased: one `@`, a dot in the domain, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an e-mail address")]
pub struct InvalidEmail;

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Email {
    type Error = InvalidEmail;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        let s = s.trim().to_lowercase();
        let (local, domain) = s.split_once('@').ok_or(InvalidEmail)?;
        let ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok { Ok(Self(s)) } else { Err(InvalidEmail) }
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidEmail;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::try_from(s.as_str())
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An operator as stored. The password hash is a PHC string (Argon2id); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    pub id: Uuid,
    pub email: Email,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
    /// The operator's own phone (E.164, validated as a [`PhoneNumber`]): where a callback rings
    /// first (`myriam operator set-phone`, the profile page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
}

impl fmt::Debug for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operator")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A server-side session, keyed by the SHA-256 of the cookie's secret (the secret itself is never
/// stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id_hash: String,
    pub operator_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// An API token, keyed by the SHA-256 of the token (shown once, never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub token_hash: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// The operator who created it (tokens of a disabled operator do not authenticate); `None`
    /// for tokens created before tokens had owners.
    #[serde(default)]
    pub operator_id: Option<Uuid>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// What the audit log records. Never caller data: ids, counts, operator e-mails and the client's
/// address only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The entry's place in the log (newest is highest), set by the store: what pages go by.
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    /// The operator's e-mail, or `token:NAME`, or `-` for an unknown login.
    pub actor: String,
    pub action: AuditAction,
    /// The ids concerned (lead id, operator id), never a value typed by a caller.
    pub target: Option<String>,
    /// A fixed-vocabulary detail (new follow-up value, counts).
    pub detail: Option<String>,
    /// The address the request came from, when there was a request.
    #[serde(default)]
    pub client: Option<String>,
    /// How many times this happened: repeated entries of one key and window are one entry
    /// ([`ConsoleStore::bump_audit`]).
    #[serde(default = "one")]
    pub count: i64,
}

fn one() -> i64 {
    1
}

impl AuditEntry {
    /// An entry of `actor` doing `action`, once, now.
    pub fn new(actor: &str, action: AuditAction) -> Self {
        Self {
            id: None,
            at: None,
            actor: actor.to_owned(),
            action,
            target: None,
            detail: None,
            client: None,
            count: 1,
        }
    }
}

/// Most audit entries one page of the log shows.
pub const AUDIT_PAGE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Login,
    LoginFailed,
    LoginThrottled,
    /// An operator's e-mail has collected many failed logins, from any address.
    AccountGuessed,
    Logout,
    FollowUpChanged,
    Export,
    Erase,
    /// A voicemail was listened to through the console (one entry per call, operator and window).
    RecordingPlayed,
    /// An operator asked Twilio to call them and connect them to a lead (Rappeler).
    Callback,
    /// An operator's own phone was set or cleared (profile page or `myriam operator set-phone`).
    PhoneChanged,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::LoginThrottled => "login_throttled",
            AuditAction::AccountGuessed => "account_guessed",
            AuditAction::Logout => "logout",
            AuditAction::FollowUpChanged => "follow_up_changed",
            AuditAction::Export => "export",
            AuditAction::Erase => "erase",
            AuditAction::RecordingPlayed => "recording_played",
            AuditAction::Callback => "callback",
            AuditAction::PhoneChanged => "phone_changed",
        }
    }
}

impl TryFrom<&str> for AuditAction {
    type Error = StoreError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        [
            AuditAction::Login,
            AuditAction::LoginFailed,
            AuditAction::LoginThrottled,
            AuditAction::AccountGuessed,
            AuditAction::Logout,
            AuditAction::FollowUpChanged,
            AuditAction::Export,
            AuditAction::Erase,
            AuditAction::RecordingPlayed,
            AuditAction::Callback,
            AuditAction::PhoneChanged,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or_else(|| StoreError::Corrupt("audit_log.action".to_owned()))
    }
}

/// The staff's follow-up of a lead, separate from the machine's [`LeadStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUp {
    #[default]
    Nouveau,
    Contacte,
    Planifie,
    Termine,
    Perdu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown follow-up (expected nouveau, contacte, planifie, termine or perdu)")]
pub struct UnknownFollowUp;

impl FollowUp {
    pub const ALL: [FollowUp; 5] = [
        FollowUp::Nouveau,
        FollowUp::Contacte,
        FollowUp::Planifie,
        FollowUp::Termine,
        FollowUp::Perdu,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FollowUp::Nouveau => "nouveau",
            FollowUp::Contacte => "contacte",
            FollowUp::Planifie => "planifie",
            FollowUp::Termine => "termine",
            FollowUp::Perdu => "perdu",
        }
    }
}

impl TryFrom<&str> for FollowUp {
    type Error = UnknownFollowUp;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        FollowUp::ALL
            .into_iter()
            .find(|f| f.as_str() == s.trim())
            .ok_or(UnknownFollowUp)
    }
}

/// A follow-up note: trimmed, at most 2 000 characters, control characters (but new lines) removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the note is longer than 2000 characters")]
pub struct NoteTooLong;

impl Note {
    pub const MAX_CHARS: usize = 2000;
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Note {
    type Error = NoteTooLong;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        let cleaned: String = s
            .trim()
            .chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect();
        if cleaned.chars().count() > Self::MAX_CHARS {
            return Err(NoteTooLong);
        }
        Ok(Self(cleaned))
    }
}

/// A lead's follow-up as stored, with its version (the lead's `ETag`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpState {
    pub suivi: FollowUp,
    pub note: Option<String>,
    pub version: i64,
    /// The operator who made the last change (e-mail or `token:NAME`).
    pub by: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

impl Default for FollowUpState {
    fn default() -> Self {
        Self {
            suivi: FollowUp::Nouveau,
            note: None,
            version: 0,
            by: None,
            updated_at: None,
        }
    }
}

/// The answer to a conditional follow-up change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpChange {
    Applied(FollowUpState),
    /// Someone changed the lead since `expected`: nothing written; the current state.
    Stale(FollowUpState),
    NotFound,
}

/// A search typed by staff: letters, digits, spaces and `-'.+@` kept (anything else is dropped, so
/// it can go into a LIKE pattern or a PostgREST filter untouched), at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm(String);

impl SearchTerm {
    pub const MAX_CHARS: usize = 100;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits of the term when it looks like a phone number (at least 3 digits and nothing
    /// but digits and separators), for matching `telephone`.
    pub fn phone_digits(&self) -> Option<String> {
        let digits: String = self.0.chars().filter(char::is_ascii_digit).collect();
        let phone_like = self
            .0
            .chars()
            .all(|c| c.is_ascii_digit() || " -.+()".contains(c));
        (digits.len() >= 3 && phone_like).then_some(digits)
    }
}

impl TryFrom<&str> for SearchTerm {
    type Error = ();
    /// `Err` when nothing searchable is left.
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        let kept: String = s
            .chars()
            .filter(|c| c.is_alphanumeric() || " -'.+@".contains(*c))
            .take(Self::MAX_CHARS)
            .collect();
        let kept = kept.split_whitespace().collect::<Vec<_>>().join(" ");
        if kept.is_empty() {
            Err(())
        } else {
            Ok(Self(kept))
        }
    }
}

/// Where the next page starts: the last lead of this one (`created_at`, `id`), newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: OffsetDateTime,
    pub id: LeadId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl Cursor {
    /// Opaque to clients: base64url of `created_at|id`.
    pub fn encode(&self) -> String {
        let time = self.created_at.format(&Rfc3339).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{time}|{}", self.id))
    }
}

impl TryFrom<&str> for Cursor {
    type Error = InvalidCursor;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .map_err(|_| InvalidCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
        let (time, id) = text.split_once('|').ok_or(InvalidCursor)?;
        Ok(Self {
            created_at: OffsetDateTime::parse(time, &Rfc3339).map_err(|_| InvalidCursor)?,
            id: LeadId::try_from(id).map_err(|_| InvalidCursor)?,
        })
    }
}

/// Which leads a list shows. Every part is optional; newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeadFilter {
    pub status: Option<LeadStatus>,
    pub suivi: Option<FollowUp>,
    pub urgent: Option<bool>,
    /// Created at or after.
    pub created_from: Option<OffsetDateTime>,
    /// Created strictly before.
    pub created_before: Option<OffsetDateTime>,
    /// Changed strictly after (live updates).
    pub updated_after: Option<OffsetDateTime>,
    pub search: Option<SearchTerm>,
    pub cursor: Option<Cursor>,
    /// Capped at [`MAX_LIST`]; 0 means the default of 50.
    pub limit: usize,
}

impl LeadFilter {
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => 50,
            n => n.min(MAX_LIST),
        }
    }
}

/// A lead with its follow-up, as the console lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedLead {
    pub lead: Lead,
    pub follow_up: FollowUpState,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeadPage {
    pub leads: Vec<ListedLead>,
    /// Present when more leads follow.
    pub next: Option<Cursor>,
}

impl LeadPage {
    /// Builds the page from up to `size + 1` rows: the extra row only says that more follow.
    fn from_rows(mut leads: Vec<ListedLead>, size: usize) -> Self {
        let more = leads.len() > size;
        leads.truncate(size);
        let next = if more {
            leads.last().and_then(|l| {
                l.lead.created_at.map(|created_at| Cursor {
                    created_at,
                    id: l.lead.id,
                })
            })
        } else {
            None
        };
        Self { leads, next }
    }
}

/// What erasing a caller removed, and what it left to delete at Twilio and Vapi.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// The erasure's id: its remote deletions (`remote_erasures`) carry it.
    pub id: Uuid,
    pub lead_ids: Vec<LeadId>,
    pub calls: usize,
    pub events: usize,
    pub outbox: usize,
    pub dead_letters: usize,
    /// SMS alerts to staff about the caller whose rows were deleted.
    pub alerts: usize,
    /// Of those, the ones Twilio accepted: their bodies reached staff phones, where nothing the
    /// gateway does can erase them.
    pub sms_sent: usize,
    /// The remote objects to delete (recordings, call logs and messages at Twilio, calls at
    /// Vapi), collected before the rows went; one `remote_erasures` row each.
    pub remote: Vec<RemoteTarget>,
}

impl Erasure {
    fn add(&mut self, other: Erasure) {
        if self.id.is_nil() {
            self.id = other.id;
        }
        for id in other.lead_ids {
            if !self.lead_ids.contains(&id) {
                self.lead_ids.push(id);
            }
        }
        self.calls = self.calls.max(other.calls);
        self.events = self.events.max(other.events);
        self.outbox += other.outbox;
        self.dead_letters += other.dead_letters;
        self.alerts = self.alerts.max(other.alerts);
        self.sms_sent = self.sms_sent.max(other.sms_sent);
        for target in other.remote {
            if !self.remote.contains(&target) {
                self.remote.push(target);
            }
        }
        self.remote.sort();
    }
}

/// A Twilio Recording SID (`RE` and 32 hex digits) in a stored recording column or URL
/// (`…/Recordings/RE….mp3`); Vapi's recording URLs are not Twilio's and give none.
pub fn recording_sid(value: &str) -> Option<String> {
    let well_formed = |s: &str| {
        s.len() == 34 && s.starts_with("RE") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
    };
    if well_formed(value) {
        return Some(value.to_owned());
    }
    let (_, rest) = value.split_once("/Recordings/")?;
    let sid = rest.split(['.', '/', '?']).next()?;
    well_formed(sid).then(|| sid.to_owned())
}

/// What the console needs from storage.
pub trait ConsoleStore: Send + Sync {
    /// `false` when an operator with this e-mail exists already.
    fn create_operator(
        &self,
        operator: &Operator,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn operator_by_email(
        &self,
        email: &Email,
    ) -> impl Future<Output = Result<Option<Operator>, StoreError>> + Send;
    fn operator_by_id(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<Operator>, StoreError>> + Send;
    /// By e-mail.
    fn operators(&self) -> impl Future<Output = Result<Vec<Operator>, StoreError>> + Send;
    /// `false` when no such operator.
    fn set_operator_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Sets (or clears, `None`) the operator's own phone; `false` when no such operator.
    fn set_operator_phone(
        &self,
        email: &Email,
        phone: Option<&PhoneNumber>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// How many callbacks `actor` placed since `since` (call rows `outbound-callback` by them):
    /// the per-operator rate limit, shared by every instance.
    fn callbacks_since(
        &self,
        actor: &str,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn set_operator_password(
        &self,
        email: &Email,
        password_hash: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn create_session(
        &self,
        id_hash: &str,
        operator_id: Uuid,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn session(
        &self,
        id_hash: &str,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;
    /// The sessions of these id hashes that exist (one query: the live updates' poller checks
    /// every open stream's session at once).
    fn sessions(
        &self,
        id_hashes: &[String],
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;
    fn touch_session(&self, id_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn revoke_session(&self, id_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn revoke_sessions_of(
        &self,
        operator_id: Uuid,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `false` when a token with this name exists already.
    fn create_api_token(
        &self,
        token: &ApiTokenRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn api_token(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<ApiTokenRecord>, StoreError>> + Send;
    /// `false` when no live token has this name.
    fn revoke_api_token(&self, name: &str)
    -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Every token, revoked ones included, by name.
    fn api_tokens(&self) -> impl Future<Output = Result<Vec<ApiTokenRecord>, StoreError>> + Send;
    /// Records a use of the token now.
    fn touch_api_token(&self, id: Uuid) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn record_login_failure(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The failures recorded for `key` since `since`, oldest first.
    fn login_failures_since(
        &self,
        key: &str,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<OffsetDateTime>, StoreError>> + Send;
    fn clear_login_failures(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes the newest failure of `key` (an attempt recorded before it was checked, that
    /// succeeded).
    fn forget_login_failure(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes every failure, of any key, recorded before `before`: they can no longer count.
    fn prune_login_failures(
        &self,
        before: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn append_audit(
        &self,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds `entry.count` to the entry of the same action and target written since `since`, or
    /// appends `entry` when there is none: one entry per key and window, with a count.
    fn bump_audit(
        &self,
        entry: &AuditEntry,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Newest first, at most `limit`, only entries older than the entry `before` when given.
    fn audit_page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;
    /// The newest `limit` entries, newest first.
    fn audit_log(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send {
        self.audit_page(None, limit)
    }

    fn search_leads(
        &self,
        filter: &LeadFilter,
    ) -> impl Future<Output = Result<LeadPage, StoreError>> + Send;
    fn follow_up(
        &self,
        id: LeadId,
    ) -> impl Future<Output = Result<Option<FollowUpState>, StoreError>> + Send;
    /// Applies the change only if the lead's version is still `expected`.
    fn change_follow_up(
        &self,
        id: LeadId,
        expected: i64,
        suivi: FollowUp,
        note: Option<&Note>,
        by: &str,
    ) -> impl Future<Output = Result<FollowUpChange, StoreError>> + Send;

    /// Removes every lead, call, processed event, outbox entry and dead letter of `phone`.
    fn erase_caller(
        &self,
        phone: &PhoneNumber,
    ) -> impl Future<Output = Result<Erasure, StoreError>> + Send;
}

delegate_trait! {
    ConsoleStore;
    fn create_operator(&self, operator: &Operator) -> Result<bool, StoreError>;
    fn operator_by_email(&self, email: &Email) -> Result<Option<Operator>, StoreError>;
    fn operator_by_id(&self, id: Uuid) -> Result<Option<Operator>, StoreError>;
    fn operators(&self) -> Result<Vec<Operator>, StoreError>;
    fn set_operator_disabled(&self, email: &Email, disabled: bool) -> Result<bool, StoreError>;
    fn set_operator_phone(
        &self,
        email: &Email,
        phone: Option<&PhoneNumber>,
    ) -> Result<bool, StoreError>;
    fn callbacks_since(&self, actor: &str, since: OffsetDateTime) -> Result<u64, StoreError>;
    fn set_operator_password(&self, email: &Email, hash: &str) -> Result<bool, StoreError>;
    fn create_session(&self, id_hash: &str, operator_id: Uuid) -> Result<(), StoreError>;
    fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError>;
    fn sessions(&self, id_hashes: &[String]) -> Result<Vec<SessionRecord>, StoreError>;
    fn touch_session(&self, id_hash: &str) -> Result<(), StoreError>;
    fn revoke_session(&self, id_hash: &str) -> Result<(), StoreError>;
    fn revoke_sessions_of(&self, operator_id: Uuid) -> Result<(), StoreError>;
    fn create_api_token(&self, token: &ApiTokenRecord) -> Result<bool, StoreError>;
    fn api_token(&self, token_hash: &str) -> Result<Option<ApiTokenRecord>, StoreError>;
    fn revoke_api_token(&self, name: &str) -> Result<bool, StoreError>;
    fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError>;
    fn touch_api_token(&self, id: Uuid) -> Result<(), StoreError>;
    fn record_login_failure(&self, key: &str) -> Result<(), StoreError>;
    fn login_failures_since(
        &self,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError>;
    fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;
    fn forget_login_failure(&self, key: &str) -> Result<(), StoreError>;
    fn prune_login_failures(&self, before: OffsetDateTime) -> Result<(), StoreError>;
    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    fn bump_audit(&self, entry: &AuditEntry, since: OffsetDateTime) -> Result<(), StoreError>;
    fn audit_page(&self, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    fn search_leads(&self, filter: &LeadFilter) -> Result<LeadPage, StoreError>;
    fn follow_up(&self, id: LeadId) -> Result<Option<FollowUpState>, StoreError>;
    fn change_follow_up(
        &self,
        id: LeadId,
        expected: i64,
        suivi: FollowUp,
        note: Option<&Note>,
        by: &str,
    ) -> Result<FollowUpChange, StoreError>;
    fn erase_caller(&self, phone: &PhoneNumber) -> Result<Erasure, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newtypes_parse() {
        assert_eq!(
            Email::try_from(" Admin@BP.example ").unwrap().as_str(),
            "admin@bp.example"
        );
        for bad in ["", "a", "a@b", "@b.c", "a b@c.d", "a@.c", "a@c."] {
            assert!(Email::try_from(bad).is_err(), "{bad}");
        }
        assert_eq!(Role::try_from("admin"), Ok(Role::Admin));
        assert!(Role::try_from("root").is_err());
        assert_eq!(FollowUp::try_from("planifie"), Ok(FollowUp::Planifie));
        assert!(FollowUp::try_from("qualifie").is_err());
        assert!(Note::try_from("x".repeat(2001).as_str()).is_err());
        assert_eq!(Note::try_from(" a\u{7}\nb ").unwrap().as_str(), "a\nb");
        let term = SearchTerm::try_from(" (514) 555-01*%_ ").unwrap();
        assert_eq!(term.as_str(), "514 555-01");
        assert_eq!(term.phone_digits().as_deref(), Some("51455501"));
        assert_eq!(SearchTerm::try_from("Côté").unwrap().phone_digits(), None);
        assert!(SearchTerm::try_from("*%()").is_err());
        for action in [AuditAction::Login, AuditAction::Erase, AuditAction::Export] {
            assert_eq!(AuditAction::try_from(action.as_str()).unwrap(), action);
        }
        assert!(AuditAction::try_from("x").is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            created_at: time::macros::datetime!(2026-12-01 12:00:00.123456 UTC),
            id: LeadId::new(),
        };
        assert_eq!(Cursor::try_from(cursor.encode().as_str()), Ok(cursor));
        assert!(Cursor::try_from("!!").is_err());
        assert!(Cursor::try_from("YWJj").is_err());
    }

    #[test]
    fn filters_cap_the_page() {
        let mut f = LeadFilter::default();
        assert_eq!(f.page_size(), 50);
        f.limit = 10_000;
        assert_eq!(f.page_size(), MAX_LIST);
    }
}

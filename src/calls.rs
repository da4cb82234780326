//! One call lifecycle for both ways the gateway talks to a caller (its own IVR and the Vapi
//! assistant): creating a call's lead, applying answers to it, moving the call's status, finishing
//! the call, the lock keys every path shares, and whether a new call is bridged.
//!
//! The IVR ([`crate::ivr`]) and Vapi's Server URL ([`crate::vapi::server`]) speak different
//! protocols but change leads and calls only through here, so both follow the same rules: one
//! change of a lead at a time, made on fresh data; a call status never moves backwards; a call is
//! counted as ended exactly once, and an unfinished lead is then marked `abandonne`.

use std::sync::Arc;

use tokio::sync::{Notify, OwnedMutexGuard};

use crate::config::{AlertOn, AlertSettings, CallMode, PublicBaseUrl, Settings};
use crate::domain::{BusinessHours, CallSid, ConversationMode, LeadId, LeadStatus, PhoneNumber};
use crate::locks::KeyedLocks;
use crate::metrics::{CallOutcome, Progress};
use crate::qualification::{Lead, ServiceType, Speaker, Turn, prompts};
use crate::store::{
    AlertEvent, Alerts as _, AnyStore, CallUpdate, NewAlert, RemoteErasures as _, Saved,
    StatusApplied, StatusAtOnce, Store as _, StoreError,
};
use crate::twilio::stream_token::StreamTokens;

/// The lock key of a lead: every path that changes a lead takes it.
pub fn lead_key(id: LeadId) -> String {
    format!("lead:{id}")
}

/// The lock key of a call's creation and routing (`/twilio/voice` and its retries).
pub fn call_key(sid: &CallSid) -> String {
    format!("call:{sid}")
}

/// The lock key every path that moves a call's status takes (Twilio status callbacks and Vapi
/// call updates), so that a call is counted as ended exactly once.
pub fn call_status_key(sid: &CallSid) -> String {
    format!("call-status:{sid}")
}

pub use crate::domain::CALL_STATUS_RANKS;

/// Status progression: a report never moves a call back to an earlier status (the stores enforce
/// it in the write itself).
pub fn status_rank(status: &str) -> u8 {
    CALL_STATUS_RANKS
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, rank)| *rank)
}

/// How many times a change of a lead is re-applied on a fresher copy after losing a race to
/// another writer (another instance) before the request fails as contended.
pub const MAX_CHANGE_ATTEMPTS: u32 = 8;

/// `calls.mode_reason` of a bridged call the assistant handed to people.
pub const HANDED_OFF: &str = "handed_off";

/// The rank of the statuses that end a call.
pub const TERMINAL_RANK: u8 = crate::domain::TERMINAL_CALL_RANK;

/// Whether `status` ends a call.
pub fn is_terminal(status: &str) -> bool {
    status_rank(status) == TERMINAL_RANK
}

/// Where a bridged call's audio goes: the `<Stream url>`, the `<Connect action>`, and what issues
/// the stream's token.
#[derive(Debug, Clone)]
pub struct BridgeTarget {
    pub stream_url: String,
    pub action_url: String,
    pub tokens: StreamTokens,
}

/// What decides whether a new call is bridged to Vapi.
#[derive(Debug, Clone, Copy)]
pub struct BridgeCapacity {
    /// `VAPI_PRIVATE_KEY` and `VAPI_ASSISTANT_ID` are set.
    pub vapi_configured: bool,
    /// The instance is shutting down.
    pub draining: bool,
    /// A call permit is free (`MAX_CONCURRENT_CALLS`).
    pub permit_free: bool,
}

/// Bridge to Vapi when `CALL_MODE` allows it, Vapi and `PUBLIC_BASE_URL` are configured, the
/// instance is not draining and a call permit is free; otherwise the IVR answers.
pub fn bridge_target(
    settings: &Settings,
    capacity: BridgeCapacity,
    tokens: &StreamTokens,
) -> Option<BridgeTarget> {
    if settings.call_mode == CallMode::Ivr {
        return None;
    }
    let base: &PublicBaseUrl = settings.public_base_url.as_ref()?;
    if !capacity.vapi_configured || capacity.draining || !capacity.permit_free {
        return None;
    }
    Some(BridgeTarget {
        stream_url: base.websocket("/twilio/media"),
        action_url: base.join("/twilio/stream-ended"),
        tokens: tokens.clone(),
    })
}

/// What the greeting says for a call starting now: the disclosure (`CALL_DISCLOSURE`) and whether
/// the office is open (`BUSINESS_HOURS`).
pub fn greeting(settings: &Settings) -> prompts::Greeting {
    prompts::Greeting {
        disclosure: settings.office.disclosure,
        office_open: settings.office.hours.is_open_now(),
    }
}

/// Where a caller who asks for a person goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOff {
    /// The office line rings (`<Dial>`): business hours and `TRANSFER_NUMBER` set.
    Transfer,
    /// Voicemail (`<Record>`), and why.
    Voicemail(prompts::VoicemailReason),
}

impl HandOff {
    /// `transfer` or `voicemail` (a metric label).
    pub fn label(self) -> &'static str {
        match self {
            HandOff::Transfer => "transfer",
            HandOff::Voicemail(_) => "voicemail",
        }
    }
}

/// Transfer inside business hours when a line is configured, else voicemail.
pub fn hand_off_target(settings: &Settings) -> HandOff {
    if !settings.office.hours.is_open_now() {
        HandOff::Voicemail(prompts::VoicemailReason::OfficeClosed)
    } else if settings.office.transfer_number.is_none() {
        HandOff::Voicemail(prompts::VoicemailReason::NoLine)
    } else {
        HandOff::Transfer
    }
}

/// Hands the lead to people: `transfere` with the hand-off sentence, or `rappel` with the
/// voicemail message, when the lead's status may move there ([`LeadStatus::can_become`]). A
/// voicemail lead keeps the caller's number (the caller ID) as the number to call back when none
/// was confirmed (`telephone`, with no `telephone_raw`: the caller did not say it). What was collected stays. Returns whether it changed.
pub fn hand_off(lead: &mut Lead, target: HandOff) -> bool {
    let status = match target {
        HandOff::Transfer => LeadStatus::Transfere,
        HandOff::Voicemail(_) => LeadStatus::Rappel,
    };
    if lead.status == status || !lead.status.can_become(status) {
        // Already there, or final (statuses only move forward; a transfer may still end in
        // voicemail).
        return false;
    }
    lead.status = status;
    // The question the caller was at when they asked for a person (before the number is filled).
    let field = lead.current_field();
    if matches!(target, HandOff::Voicemail(_)) && lead.telephone.is_none() {
        if let Some(caller) = lead.offered_phone.clone() {
            // The number to call back, not an answer: nothing was heard (`telephone_raw` stays
            // empty), so the dashboard's funnel still counts the caller as stopped at the number.
            lead.telephone = Some(caller);
        }
    }
    let line = hand_off_line(lead, target);
    lead.conversation.push(Turn::myriam(field, line));
    true
}

/// Whether the lead was abandoned by its call's end (Twilio's `completed`, Vapi's end-of-call
/// report) rather than by Myriam: she abandons after repeated failures or silences with her
/// callback offer as the last line, where the call's end changes only the status. An answer the
/// caller gave during the call may still reach such a lead (the end was processed first, by
/// another instance or a faster request): see [`late_answer`].
pub fn abandoned_by_call_end(lead: &Lead) -> bool {
    lead.status == LeadStatus::Abandonne
        && lead
            .conversation
            .last()
            .is_some_and(|t| t.speaker == Speaker::Myriam && t.text != prompts::abandon(lead))
}

/// Applies an answer given during the call to a lead its end abandoned
/// ([`abandoned_by_call_end`]) as if it were still open, so the lead ends as one instance taking
/// the answer before the end would have left it: qualified by a last answer (or handed to
/// people), else `abandonne` again with the answer kept.
pub fn late_answer<R>(lead: &mut Lead, apply: impl FnOnce(&mut Lead) -> R) -> R {
    lead.status = if lead
        .conversation
        .iter()
        .any(|t| t.speaker == Speaker::Caller)
    {
        LeadStatus::EnCours
    } else {
        LeadStatus::Nouveau
    };
    let answered = apply(lead);
    if !lead.status.is_final() {
        lead.status = LeadStatus::Abandonne;
    }
    tracing::info!(lead_id = %lead.id, status = %lead.status, "an answer given before the call's end applied after it");
    answered
}

/// What Myriam says when the call goes to `target`: the hand-off sentence, or the voicemail
/// message (who calls back, and at which number).
pub fn hand_off_line(lead: &Lead, target: HandOff) -> String {
    match target {
        HandOff::Transfer => prompts::transferring(lead.language).to_owned(),
        HandOff::Voicemail(reason) => prompts::voicemail(lead, reason),
    }
}

/// A call the gateway learns of: its row's first columns.
#[derive(Debug, Clone, Default)]
pub struct NewCall {
    /// Unknown for a Vapi-owned number that does not say which Twilio call it is.
    pub call_sid: Option<CallSid>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub direction: Option<String>,
    pub status: Option<String>,
    pub mode: Option<ConversationMode>,
    pub vapi_call_id: Option<String>,
}

/// A status report about a call, from Twilio or from Vapi.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// The columns to write besides the status (duration, recording, transcript …).
    pub update: CallUpdate,
    /// The new status in Twilio's words; written only if it does not move the call backwards.
    pub status: Option<String>,
    /// This report ends the call.
    pub ends_call: bool,
    /// The report comes from the bridged side (Vapi): it does not end a call the IVR took over,
    /// whose end is Twilio's to report.
    pub from_bridged_side: bool,
    /// The call failed (Twilio `failed`): counted as an error whatever the lead says.
    pub failed: bool,
    /// Reports that may be delivered twice carry a key; a repeated key changes nothing.
    pub idempotency_key: Option<String>,
}

/// Which lead changes raise an SMS alert to staff (`ALERT_SMS_TO`, `ALERT_ON`), and the signal
/// that wakes the sender once one is stored.
#[derive(Debug, Clone)]
pub struct AlertPolicy {
    pub settings: Option<AlertSettings>,
    pub hours: BusinessHours,
    /// `CALLER_SMS=1`: a qualified lead also sends the caller their confirmation.
    pub caller_sms: bool,
    /// Notified after a write that created alerts (the sender also polls).
    pub wake: Arc<Notify>,
}

impl AlertPolicy {
    pub fn new(settings: Option<AlertSettings>, hours: BusinessHours) -> Self {
        Self {
            settings,
            hours,
            caller_sms: false,
            wake: Arc::new(Notify::new()),
        }
    }

    /// With the caller's confirmation SMS (`CALLER_SMS=1`).
    #[must_use]
    pub fn with_caller_sms(mut self, enabled: bool) -> Self {
        self.caller_sms = enabled;
        self
    }

    /// The alerts a change of a lead from `before` to `lead` raises:
    /// - qualified now (not before), urgent or `ALERT_ON=all`: one per recipient;
    /// - voicemail now (not before), outside business hours, and the caller sounds urgent: one
    ///   per recipient;
    /// - with `CALLER_SMS=1`, a qualified lead whose caller said yes to the text question: one to
    ///   the caller, on the number they confirmed during the call (never the caller ID they did
    ///   not confirm). Raised again by later saves: the store keeps one per lead and number.
    pub fn alerts_for(&self, before: LeadStatus, lead: &Lead) -> Vec<NewAlert> {
        let mut alerts = self.staff_alerts(before, lead);
        if self.caller_sms && lead.status == LeadStatus::Qualifie && lead.wants_text() {
            if let Some(phone) = &lead.telephone {
                alerts.push(NewAlert::new(
                    lead.id,
                    AlertEvent::Confirmation,
                    phone.as_e164(),
                ));
            }
        }
        alerts
    }

    fn staff_alerts(&self, before: LeadStatus, lead: &Lead) -> Vec<NewAlert> {
        let Some(settings) = &self.settings else {
            return Vec::new();
        };
        let event = if before != LeadStatus::Qualifie && lead.status == LeadStatus::Qualifie {
            let wanted = settings.on == AlertOn::All || lead.urgence == Some(true);
            wanted.then_some(AlertEvent::Qualified)
        } else if before != LeadStatus::Rappel
            && lead.status == LeadStatus::Rappel
            && sounds_urgent(lead)
            && !self.hours.is_open_now()
        {
            Some(AlertEvent::Voicemail)
        } else {
            None
        };
        event.map_or_else(Vec::new, |event| {
            settings
                .recipients
                .iter()
                .map(|to| NewAlert::new(lead.id, event, to))
                .collect()
        })
    }
}

/// What the caller said so far makes the request urgent: the urgency answer, a storm emergency,
/// or a description that mentions a danger.
pub fn sounds_urgent(lead: &Lead) -> bool {
    lead.urgence == Some(true)
        || lead.type_service == Some(ServiceType::UrgenceTempete)
        || lead
            .description
            .as_ref()
            .is_some_and(|d| prompts::mentions_danger(d.as_str()))
}

/// The lifecycle operations over a store, with this instance's locks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Calls {
    store: AnyStore,
    locks: Arc<KeyedLocks>,
    alerts: Arc<AlertPolicy>,
    saves: Arc<LocalSaves>,
}

/// When a copy of a lead was read, by this instance's count of lead writes
/// ([`Calls::read_mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark(u64);

/// Which lead this instance last wrote, and when (by a counter): a copy read before that write
/// is behind it.
#[derive(Debug, Default)]
struct LocalSaves {
    count: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<std::collections::HashMap<LeadId, u64>>,
    /// The count when `last` was last emptied (bounded memory): leads not in `last` may have been
    /// written up to then.
    floor: std::sync::atomic::AtomicU64,
    /// Per call in progress, the lead its last answer saved here, with the count of that save:
    /// the copy the call's next answer starts from instead of reading it again
    /// ([`Calls::lead_for_answer`]). Bounded like `last`; dropped when the call ends.
    answered: std::sync::Mutex<std::collections::HashMap<CallSid, (u64, Lead)>>,
}

/// Leads remembered before `LocalSaves::last` is emptied.
const REMEMBERED_SAVES: usize = 4096;

impl LocalSaves {
    fn mark(&self) -> ReadMark {
        ReadMark(self.count.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Records a write of lead `id`; returns its count.
    fn record(&self, id: LeadId) -> u64 {
        use std::sync::atomic::Ordering;
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.len() >= REMEMBERED_SAVES {
            self.floor.store(n, Ordering::SeqCst);
            last.clear();
        }
        last.insert(id, n);
        n
    }

    /// Remembers `lead` as saved by call `sid`'s answer at count `n` (a final lead takes no more
    /// answers: forgotten).
    fn remember_answer(&self, sid: &CallSid, n: u64, lead: &Lead) {
        let mut answered = self
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lead.status.is_final() {
            answered.remove(sid);
            return;
        }
        if answered.len() >= REMEMBERED_SAVES && !answered.contains_key(sid) {
            answered.clear();
        }
        answered.insert(sid.clone(), (n, lead.clone()));
    }

    /// The lead call `sid`'s last answer saved here, if the next answer (`turn`, the length of
    /// the conversation it was asked at) follows it.
    fn answered(&self, sid: &CallSid, turn: usize) -> Option<(Lead, ReadMark)> {
        let answered = self
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        answered
            .get(sid)
            .filter(|(_, lead)| lead.conversation.len() == turn)
            .map(|(n, lead)| (lead.clone(), ReadMark(*n)))
    }

    fn forget_call(&self, sid: &CallSid) {
        self.answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(sid);
    }

    fn written_since(&self, id: LeadId, mark: ReadMark) -> bool {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = last
            .get(&id)
            .copied()
            .unwrap_or_else(|| self.floor.load(std::sync::atomic::Ordering::SeqCst));
        at > mark.0
    }
}

impl Calls {
    /// Without alerts (`ALERT_SMS_TO` unset).
    pub fn new(store: AnyStore, locks: Arc<KeyedLocks>) -> Self {
        Self::with_alerts(
            store,
            locks,
            AlertPolicy::new(None, BusinessHours::default()),
        )
    }

    pub fn with_alerts(store: AnyStore, locks: Arc<KeyedLocks>, alerts: AlertPolicy) -> Self {
        Self {
            store,
            locks,
            alerts: Arc::new(alerts),
            saves: Arc::new(LocalSaves::default()),
        }
    }

    pub fn alert_policy(&self) -> &AlertPolicy {
        &self.alerts
    }

    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    /// Holds the creation and routing of a call (a retried `/twilio/voice` waits for the first).
    pub async fn lock_call(&self, sid: &CallSid) -> OwnedMutexGuard<()> {
        self.locks.lock(&call_key(sid)).await
    }

    /// A new lead for a new call, with Myriam's opening line and the caller ID offered as the
    /// number to confirm, and the call's row pointing at it.
    pub async fn start(
        &self,
        call: &NewCall,
        greeting: prompts::Greeting,
    ) -> Result<Lead, StoreError> {
        let offered = call
            .from
            .as_deref()
            .and_then(|f| PhoneNumber::try_from(f).ok());
        let mut lead = Lead::new(LeadId::new()).with_offered_phone(offered);
        let opening = prompts::opening(lead.language, greeting);
        lead.conversation
            .push(Turn::myriam(lead.current_field(), opening));
        let Some(sid) = &call.call_sid else {
            // No CallSid (a Vapi-owned number that does not say): nothing to key it by.
            return match self.store.save_lead(&lead).await? {
                Saved::Applied => Ok(Lead { version: 1, ..lead }),
                Saved::Stale => Err(StoreError::Corrupt("a new lead id is taken".to_owned())),
            };
        };
        let mut update = CallUpdate::new(sid.clone());
        update.lead_id = Some(lead.id);
        update.from_number.clone_from(&call.from);
        update.to_number.clone_from(&call.to);
        update.direction.clone_from(&call.direction);
        update.status.clone_from(&call.status);
        update.mode = call.mode;
        update.vapi_call_id.clone_from(&call.vapi_call_id);
        // Insert-or-get by CallSid: a retry on another instance gets the same lead.
        let mark = self.read_mark();
        let started = self.store.start_call(&lead, &update).await?;
        // The call's first answer starts from it (a copy read at `mark`, as any read).
        self.saves.remember_answer(sid, mark.0, &started);
        Ok(started)
    }

    /// Take before reading a lead that is then given to [`Calls::change_lead_read`].
    pub fn read_mark(&self) -> ReadMark {
        self.saves.mark()
    }

    /// Runs `change` on the freshest copy of `found` under the lead's lock and saves it on
    /// condition that nobody saved the lead meanwhile (`leads.version`); should another writer
    /// (another instance) win, `change` runs again on the fresh copy, up to
    /// [`MAX_CHANGE_ATTEMPTS`] times. `change` returns its answer, whether the lead must be saved,
    /// and the qualification progress it made, which is counted once the lead is saved (so a
    /// retried request is not counted twice). A change that raises alerts
    /// ([`AlertPolicy::alerts_for`]) stores them in the same write as the lead.
    pub async fn change_lead<R>(
        &self,
        found: Lead,
        change: impl FnMut(&mut Lead) -> Change<R>,
    ) -> Result<R, StoreError> {
        self.change(found, None, None, change).await
    }

    /// [`Calls::change_lead`] that first runs `change` on `found` itself, read just before (at
    /// `mark`), instead of reading the lead again: one round trip to Supabase less per answer. The
    /// save's version condition is what makes that safe against other instances; against this
    /// one, `found` is used only if this instance wrote no lead change since `mark` (a duplicate
    /// request that held the lock first), and a first run that saves nothing (a retry, a held
    /// answer: nothing checked it) runs again on a fresh copy.
    pub async fn change_lead_read<R>(
        &self,
        found: Lead,
        mark: ReadMark,
        change: impl FnMut(&mut Lead) -> Change<R>,
    ) -> Result<R, StoreError> {
        self.change(found, Some(mark), None, change).await
    }

    /// The lead of call `sid` for an answer to the question asked at conversation length `turn`,
    /// with its [`ReadMark`] for [`Calls::answer_call`]: the copy the call's previous answer saved
    /// on this instance when this answer follows it (no round trip), else the store's.
    ///
    /// Safe against other instances for the reason [`Calls::change_lead_read`] is: the save is
    /// conditional on the copy's version, and a copy someone else moved on is read again. Against
    /// this instance, its mark is the count of its own save, so any later local write of the lead
    /// (an abandonment, a hand-off) sends the answer to a fresh copy.
    pub async fn lead_for_answer(
        &self,
        sid: &CallSid,
        turn: Option<usize>,
    ) -> Result<Option<(Lead, ReadMark)>, StoreError> {
        if let Some(cached) = turn.and_then(|turn| self.saves.answered(sid, turn)) {
            return Ok(Some(cached));
        }
        let mark = self.read_mark();
        Ok(self
            .store
            .find_lead_by_call(sid)
            .await?
            .map(|lead| (lead, mark)))
    }

    /// [`Calls::change_lead_read`] for an answer of call `sid`: the lead it saves is remembered for
    /// the call's next answer ([`Calls::lead_for_answer`]); a lead found erased is forgotten (the
    /// call goes on with a new caller's lead).
    pub async fn answer_call<R>(
        &self,
        sid: &CallSid,
        found: Lead,
        mark: ReadMark,
        change: impl FnMut(&mut Lead) -> Change<R>,
    ) -> Result<R, StoreError> {
        let changed = self.change(found, Some(mark), Some(sid), change).await;
        if matches!(changed, Err(StoreError::Erased(_))) {
            self.saves.forget_call(sid);
        }
        changed
    }

    async fn change<R>(
        &self,
        found: Lead,
        mark: Option<ReadMark>,
        answering: Option<&CallSid>,
        mut change: impl FnMut(&mut Lead) -> Change<R>,
    ) -> Result<R, StoreError> {
        let _lead_lock = self.locks.lock(&lead_key(found.id)).await;
        let mut as_read = mark
            .filter(|mark| !self.saves.written_since(found.id, *mark))
            .map(|_| found.clone());
        for _ in 0..MAX_CHANGE_ATTEMPTS {
            let first = as_read.take();
            let was_read = first.is_some();
            let mut lead = match first {
                Some(lead) => lead,
                None => match self.store.get_lead(found.id).await? {
                    Some(lead) => lead,
                    // Erased while its call went on: the call goes on as a new caller's (the
                    // callers start a new lead), the erased one never comes back.
                    None if self.is_erased(found.id).await.unwrap_or(false) => {
                        return Err(StoreError::Erased(
                            "the lead was erased while its call went on".to_owned(),
                        ));
                    }
                    // Unknown when the store cannot tell (Supabase unreachable): as before, the
                    // copy in hand.
                    None => found.clone(),
                },
            };
            let before = lead.status;
            let Change {
                answer,
                save,
                progress,
            } = change(&mut lead);
            if was_read && !save {
                // Decided on the copy read before the lock, and nothing checks it: decide again on
                // a fresh one.
                continue;
            }
            if save {
                if !before.can_become(lead.status) {
                    return Err(StoreError::Corrupt(format!(
                        "a change would move a lead from {before} back to {}",
                        lead.status
                    )));
                }
                let alerts = self.alerts.alerts_for(before, &lead);
                let saved = if alerts.is_empty() {
                    self.store.save_lead(&lead).await?
                } else {
                    let saved = self.store.save_lead_with_alerts(&lead, &alerts).await?;
                    if saved == Saved::Applied {
                        self.alerts.wake.notify_one();
                    }
                    saved
                };
                if saved == Saved::Stale {
                    crate::metrics::lead_write_conflict();
                    continue;
                }
                let n = self.saves.record(lead.id);
                if let Some(sid) = answering {
                    lead.version += 1;
                    self.saves.remember_answer(sid, n, &lead);
                }
            }
            progress.into_iter().for_each(Progress::record);
            return Ok(answer);
        }
        Err(StoreError::Contended(format!(
            "lead changed by others {MAX_CHANGE_ATTEMPTS} times in a row"
        )))
    }

    /// Whether `id` is a lead a Law 25 erasure removed (its tombstone, on every instance).
    pub async fn is_erased(&self, id: LeadId) -> Result<bool, StoreError> {
        self.store
            .erased_since(
                &[crate::store::erasures::lead_key(id)],
                time::OffsetDateTime::UNIX_EPOCH,
            )
            .await
    }

    /// Marks the lead `abandonne` unless it is already final, in one conditional statement at
    /// the store (never read-then-write, so it cannot overwrite an answer another instance just
    /// saved); returns the lead's final status.
    pub async fn abandon_if_incomplete(&self, lead: Lead) -> Result<LeadStatus, StoreError> {
        let _lead_lock = self.locks.lock(&lead_key(lead.id)).await;
        let status = self.store.abandon_lead(lead.id).await?;
        self.saves.record(lead.id);
        Ok(status.unwrap_or(LeadStatus::Abandonne))
    }

    /// The report in one round trip when the store can: the same rules as the steps of
    /// [`Calls::report_status`], in one transaction at Supabase (`bp.report_call_status`).
    async fn report_status_at_once(
        &self,
        report: &StatusReport,
    ) -> Result<Option<StatusApplied>, StoreError> {
        let mut update = report.update.clone();
        if report.status.is_some() {
            update.status.clone_from(&report.status);
        }
        self.store
            .report_status_at_once(&StatusAtOnce {
                update: &update,
                idempotency_key: report.idempotency_key.as_deref(),
                ends_call: report.ends_call,
                from_bridged_side: report.from_bridged_side,
            })
            .await
    }

    /// Records a status report: the status never moves backwards; the first report that ends the
    /// call marks an incomplete lead `abandonne` and counts the call in
    /// `myriam_calls_total{mode,outcome}`; later ones only settle the lead again.
    pub async fn report_status(&self, report: StatusReport) -> Result<(), StoreError> {
        let sid = report.update.call_sid.clone();
        let _call_lock = self.locks.lock(&call_status_key(&sid)).await;
        if report.ends_call {
            self.saves.forget_call(&sid);
        }
        if let Some(applied) = self.report_status_at_once(&report).await? {
            if applied.ends {
                let status = if let Some(id) = applied.lead_id {
                    self.saves.record(id);
                    Some(applied.lead_status.unwrap_or(LeadStatus::Abandonne))
                } else {
                    // The call has no lead at Supabase yet (another instance's start is queued):
                    // abandoned once it has one, as below.
                    self.store.abandon_call_lead(&sid).await?;
                    None
                };
                if applied.first_end {
                    crate::metrics::call_ended(
                        applied.mode.unwrap_or(ConversationMode::Ivr),
                        call_outcome(report.failed, status),
                    );
                }
            }
            return Ok(());
        }
        if let Some(key) = &report.idempotency_key {
            if self.store.event_processed(key).await? {
                return Ok(());
            }
        }
        let current = self.store.get_call(&sid).await?;
        let current_rank = current
            .as_ref()
            .and_then(|c| c.fields.status.as_deref())
            .map_or(0, status_rank);
        let mode = current.as_ref().and_then(|c| c.fields.mode);
        // A bridged call the assistant handed to people goes on (transfer, voicemail) after
        // Vapi's side ends: its end is Twilio's to report too.
        let handed_off = current
            .as_ref()
            .and_then(|c| c.fields.mode_reason.as_deref())
            == Some(HANDED_OFF);
        let mut update = report.update;
        if let Some(status) = report.status {
            if status_rank(&status) >= current_rank {
                update.status = Some(status);
            }
        }
        let ends = report.ends_call
            && !(report.from_bridged_side && (mode == Some(ConversationMode::Ivr) || handed_off));
        if ends && current_rank < TERMINAL_RANK && update.status.is_none() {
            // A report that ends the call without a status (Vapi's end-of-call report).
            update.status = Some("completed".to_owned());
        }
        self.store.upsert_call(&update).await?;
        if ends {
            let lead = self.store.find_lead_by_call(&sid).await?;
            if current_rank == TERMINAL_RANK {
                // Already ended (a duplicate or a later report): the lead is settled, the call
                // counted.
                if let Some(lead) = lead {
                    self.abandon_if_incomplete(lead).await?;
                } else {
                    self.store.abandon_call_lead(&sid).await?;
                }
            } else {
                // Counted once across instances: the first to record the call's end counts it.
                let first = self
                    .store
                    .record_event(&format!("call-ended:{sid}"))
                    .await?;
                let status = if let Some(lead) = lead {
                    Some(self.abandon_if_incomplete(lead).await?)
                } else {
                    // Not found here (another instance started the call and Supabase is
                    // unreachable, or its start is not replayed yet): the store abandons the
                    // call's lead once it knows it.
                    self.store.abandon_call_lead(&sid).await?;
                    None
                };
                if first {
                    crate::metrics::call_ended(
                        mode.unwrap_or(ConversationMode::Ivr),
                        call_outcome(report.failed, status),
                    );
                }
            }
        }
        if let Some(key) = &report.idempotency_key {
            self.store.record_event(key).await?;
        }
        Ok(())
    }
}

/// How an ended call is counted in `myriam_calls_total{outcome}`.
fn call_outcome(failed: bool, lead_status: Option<LeadStatus>) -> CallOutcome {
    match lead_status {
        _ if failed => CallOutcome::Error,
        None => CallOutcome::Error,
        Some(LeadStatus::Qualifie) => CallOutcome::Qualifie,
        Some(_) => CallOutcome::Abandonne,
    }
}

/// What a change of a lead decided: its answer, whether to save, the progress to count.
#[derive(Debug)]
pub struct Change<R> {
    pub answer: R,
    pub save: bool,
    pub progress: Vec<Progress>,
}

impl<R> Change<R> {
    /// Nothing to save (a retry, a replay, a silence).
    pub fn new(answer: R) -> Self {
        Self {
            answer,
            save: false,
            progress: Vec::new(),
        }
    }

    #[must_use]
    pub fn saved_if(mut self, save: bool) -> Self {
        self.save = save;
        self
    }

    #[must_use]
    pub fn counting(mut self, progress: Vec<Progress>) -> Self {
        self.progress = progress;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_rank_forward_only() {
        assert!(status_rank("ringing") > status_rank("initiated"));
        assert!(status_rank("in-progress") > status_rank("ringing"));
        for ended in ["completed", "busy", "failed", "no-answer", "canceled"] {
            assert!(is_terminal(ended), "{ended}");
        }
        assert_eq!(status_rank("queued"), 0);
        assert_eq!(status_rank("something-new"), 0);
    }

    #[test]
    fn a_copy_read_before_a_local_write_is_behind_it() {
        let saves = LocalSaves::default();
        let (a, b) = (LeadId::new(), LeadId::new());
        let mark = saves.mark();
        assert!(!saves.written_since(a, mark));
        saves.record(a);
        assert!(saves.written_since(a, mark), "written after the read");
        assert!(!saves.written_since(b, mark), "another lead");
        assert!(
            !saves.written_since(a, saves.mark()),
            "read after the write"
        );
        for _ in 0..REMEMBERED_SAVES {
            saves.record(LeadId::new());
        }
        assert!(
            saves.written_since(b, mark),
            "once forgotten, assumed written"
        );
    }

    #[test]
    fn lock_keys_do_not_collide() {
        let sid = CallSid::try_from("CA0123456789abcdef0123456789abcdef").unwrap();
        assert_ne!(call_key(&sid), call_status_key(&sid));
        assert!(lead_key(LeadId::new()).starts_with("lead:"));
    }
}

//! Callbacks from the console ("Rappeler"): an operator clicks, Twilio calls the operator's own
//! phone first (`POST Calls.json`, `From` = `BUSINESS_NUMBER`), Myriam says whom they are about to
//! reach and asks them to press 1 (an operator's voicemail never reaches the lead), then
//! `<Dial callerId="{BUSINESS_NUMBER}">` the lead. Every step's TwiML is served by the signed
//! `/twilio/callback/*` routes (`TwilioForm` verifies `X-Twilio-Signature`, as for every webhook).
//!
//! The callback is a call row of its lead: `direction = outbound-callback`, `operator` (who),
//! `status` (the operator's leg, forward only), `ended_reason` (`operator-declined`: another key
//! than 1; `operator-timeout`: no key) and `dial_status` (the lead's leg, from `DialCallStatus`).
//! Every write sets only its own columns and the status never moves backwards, so a replayed
//! callback changes nothing.
//!
//! Limits:
//! - per operator, shared by every instance (counted in the store): one callback per
//!   [`MIN_INTERVAL`], [`HOURLY_LIMIT`] an hour;
//! - Twilio creates 1 call a second per account by default. Each instance paces its creations
//!   ([`Pacer`]: a click waits for the next free second, up to [`MAX_QUEUE_WAIT`]). With N
//!   instances up to N creations may leave in one second: Twilio queues calls created beyond its
//!   rate rather than refusing them (its documented behaviour for created calls), so the pacer
//!   only keeps this instance from sending bursts; a 429 (Twilio refusing the request) is retried
//!   on the next free slot. A durable queue would outlive the click: a call that rings an
//!   operator minutes after a restart, when they have moved on, is worse than a click that says
//!   it failed, so the queue is the waiting request itself.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Settings;
use crate::domain::{CallSid, Language, LeadId, PhoneNumber};
use crate::locks::KeyedLocks;
use crate::operators::{self, Principal};
use crate::qualification::Lead;
use crate::store::console::{AuditAction, ConsoleStore as _, Email};
use crate::store::{AnyStore, CallUpdate, Store as _, StoreError};
use crate::twilio::rest::{NewCall, RestError, TwilioRest};
use crate::twilio::twiml::{Dial, Keypad, Say, TwiML, Verb};

/// The `direction` of a callback's call row.
pub const DIRECTION: &str = "outbound-callback";
/// One created call a second is Twilio's default for an account; this instance leaves 1.1 s
/// between two creations, so network jitter never brings two of its requests within a second
/// at Twilio.
pub const PACE: Duration = Duration::from_millis(1100);
/// Longest a click waits for its turn; beyond, it is refused (the page says to retry).
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(15);
/// At most one callback per operator in this window.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// At most this many callbacks per operator in an hour.
pub const HOURLY_LIMIT: u64 = 30;
/// Seconds the operator's phone rings.
const OPERATOR_RING_SECS: u32 = 25;
/// Seconds the lead's phone rings.
const LEAD_RING_SECS: u32 = 25;
/// Seconds Myriam waits for the operator's key.
const PRESS_TIMEOUT_SECS: u32 = 8;
/// Attempts at `Calls.json` when Twilio answers 429.
const ATTEMPTS: u32 = 3;

/// Why a callback was not placed. Messages carry no phone number.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("callbacks need {0}")]
    NotConfigured(&'static str),
    #[error("the operator has no phone of their own")]
    NoOperatorPhone,
    #[error("no such lead")]
    NoLead,
    #[error("the lead has no phone number")]
    NoLeadNumber,
    #[error("too many callbacks; retry in {0:?}")]
    RateLimited(Duration),
    #[error("too many callbacks waiting")]
    QueueFull,
    #[error("Twilio refused the call: HTTP {status}, code {code:?}")]
    Refused { status: u16, code: Option<i64> },
    /// A timeout or a 5xx: the call may ring anyway; not repeated (no double call).
    #[error("Twilio's answer is unknown: {0}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why this instance cannot offer callbacks at all (a setting), or `None`.
pub fn unavailable(settings: &Settings, rest: bool) -> Option<&'static str> {
    if settings.office.business_number.is_none() {
        Some("BUSINESS_NUMBER")
    } else if !rest {
        Some("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    } else if settings.public_base_url.is_none() {
        Some("PUBLIC_BASE_URL")
    } else {
        None
    }
}

/// The number a callback dials: the one the caller confirmed, else the caller ID.
pub fn lead_number(lead: &Lead) -> Option<&PhoneNumber> {
    lead.telephone.as_ref().or(lead.offered_phone.as_ref())
}

/// One creation a [`PACE`] on this instance: each click reserves the next free second.
#[derive(Debug)]
pub struct Pacer {
    next: Mutex<Instant>,
    interval: Duration,
    max_wait: Duration,
}

impl Pacer {
    pub fn new(interval: Duration, max_wait: Duration) -> Self {
        Self {
            next: Mutex::new(Instant::now()),
            interval,
            max_wait,
        }
    }

    /// Reserves the next slot and waits for it; `false` (nothing reserved) when it is further
    /// than the longest wait.
    pub async fn wait_turn(&self) -> bool {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            if at.duration_since(now) > self.max_wait {
                return false;
            }
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
        true
    }
}

/// A placed callback: Twilio's call SID and how long it waited for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub call_sid: String,
    pub waited: Duration,
}

/// This instance's callbacks: the pacer and the per-operator locks (an optimisation: the limits
/// are counted in the store).
#[derive(Debug)]
pub struct Callbacks {
    pacer: Pacer,
    locks: KeyedLocks,
}

impl Default for Callbacks {
    fn default() -> Self {
        Self {
            pacer: Pacer::new(PACE, MAX_QUEUE_WAIT),
            locks: KeyedLocks::default(),
        }
    }
}

fn url(settings: &Settings, path: &str, lead: LeadId) -> Result<String, CallbackError> {
    let base = settings
        .public_base_url
        .as_ref()
        .ok_or(CallbackError::NotConfigured("PUBLIC_BASE_URL"))?;
    Ok(base.join(&format!("{path}?lead={lead}")))
}

impl Callbacks {
    /// Places a callback of `lead_id` for the operator `principal`: checks, the limits, the
    /// pacer, `POST Calls.json`, the call row, the audit entry.
    pub async fn place(
        &self,
        store: &AnyStore,
        settings: &Settings,
        rest: Option<&TwilioRest>,
        principal: &Principal,
        lead_id: LeadId,
    ) -> Result<Placed, CallbackError> {
        let result = self
            .try_place(store, settings, rest, principal, lead_id)
            .await;
        let detail = match &result {
            Ok(placed) => format!("placed call={}", placed.call_sid),
            Err(CallbackError::Refused { code, .. }) => {
                format!(
                    "refused code={}",
                    code.map_or_else(|| "-".to_owned(), |c| c.to_string())
                )
            }
            Err(CallbackError::Unknown(_)) => "unknown".to_owned(),
            Err(CallbackError::RateLimited(_)) => "rate_limited".to_owned(),
            Err(CallbackError::QueueFull) => "queue_full".to_owned(),
            Err(_) => "not_placed".to_owned(),
        };
        operators::audit_by(
            store,
            principal,
            AuditAction::Callback,
            Some(lead_id.to_string()),
            Some(detail),
        )
        .await;
        result
    }

    async fn try_place(
        &self,
        store: &AnyStore,
        settings: &Settings,
        rest: Option<&TwilioRest>,
        principal: &Principal,
        lead_id: LeadId,
    ) -> Result<Placed, CallbackError> {
        if let Some(missing) = unavailable(settings, rest.is_some()) {
            return Err(CallbackError::NotConfigured(missing));
        }
        let (Some(business), Some(rest)) = (settings.office.business_number.as_deref(), rest)
        else {
            return Err(CallbackError::NotConfigured("BUSINESS_NUMBER"));
        };
        let email = Email::try_from(principal.actor.as_str())
            .map_err(|_| CallbackError::NoOperatorPhone)?;
        let operator_phone = store
            .operator_by_email(&email)
            .await?
            .and_then(|o| o.phone)
            .and_then(|p| PhoneNumber::try_from(p.as_str()).ok())
            .ok_or(CallbackError::NoOperatorPhone)?;
        let lead = store
            .get_lead(lead_id)
            .await?
            .ok_or(CallbackError::NoLead)?;
        let lead_phone = lead_number(&lead)
            .ok_or(CallbackError::NoLeadNumber)?
            .clone();

        // One click of an operator at a time on this instance; the limits themselves are
        // counted in the store, which every instance shares.
        let _operator = self
            .locks
            .lock(&format!("callback:{}", email.as_str()))
            .await;
        let now = OffsetDateTime::now_utc();
        if store
            .callbacks_since(email.as_str(), now - MIN_INTERVAL)
            .await?
            > 0
        {
            return Err(CallbackError::RateLimited(MIN_INTERVAL));
        }
        if store
            .callbacks_since(email.as_str(), now - Duration::from_secs(3600))
            .await?
            >= HOURLY_LIMIT
        {
            return Err(CallbackError::RateLimited(Duration::from_secs(3600)));
        }

        let answer = url(settings, "/twilio/callback/answer", lead_id)?;
        let status = url(settings, "/twilio/callback/status", lead_id)?;
        let call = NewCall {
            to: operator_phone.as_e164(),
            from: business,
            url: &answer,
            status_callback: &status,
            timeout_secs: OPERATOR_RING_SECS,
        };
        let started = Instant::now();
        let mut attempt = 0;
        let created = loop {
            attempt += 1;
            if !self.pacer.wait_turn().await {
                return Err(CallbackError::QueueFull);
            }
            match rest.create_call(&call).await {
                Ok(created) => break created,
                Err(RestError::Retryable { retry_after, .. }) if attempt < ATTEMPTS => {
                    tracing::warn!(attempt, "Twilio refused a callback for now (429); retrying");
                    tokio::time::sleep(retry_after.unwrap_or(PACE).min(Duration::from_secs(5)))
                        .await;
                }
                Err(RestError::Retryable { reason, .. }) => {
                    return Err(CallbackError::Unknown(format!("still refused: {reason}")));
                }
                Err(RestError::Unknown { reason }) => return Err(CallbackError::Unknown(reason)),
                Err(RestError::Refused { status, code, .. }) => {
                    return Err(CallbackError::Refused { status, code });
                }
            }
        };
        let sid = CallSid::try_from(created.sid.as_str())
            .map_err(|_| CallbackError::Unknown("Twilio answered no CallSid".to_owned()))?;
        let mut row = CallUpdate::new(sid);
        row.lead_id = Some(lead_id);
        row.direction = Some(DIRECTION.to_owned());
        row.operator = Some(email.as_str().to_owned());
        row.from_number = Some(business.to_owned());
        row.to_number = Some(lead_phone.as_e164().to_owned());
        row.status = Some(created.status);
        store.upsert_call(&row).await?;
        tracing::info!(call_sid = %created.sid, lead_id = %lead_id, "callback placed");
        Ok(Placed {
            call_sid: created.sid,
            waited: started.elapsed(),
        })
    }
}

fn say(settings: &Settings, text: &str) -> Say {
    Say {
        text: text.to_owned(),
        language: Language::Fr,
        voice: settings.twilio.voices.for_language(Language::Fr).to_owned(),
    }
}

fn goodbye(settings: &Settings, text: &str) -> TwiML {
    TwiML::new()
        .verb(Verb::Say(say(settings, text)))
        .verb(Verb::Hangup)
}

/// The callback row of `sid`: whatever the step, it is a callback of `lead`.
fn row(sid: &CallSid, lead: LeadId) -> CallUpdate {
    let mut update = CallUpdate::new(sid.clone());
    update.lead_id = Some(lead);
    update.direction = Some(DIRECTION.to_owned());
    update
}

/// Whom the operator is about to reach, in French: the lead's name, the service, urgency.
pub fn announcement(lead: &Lead) -> String {
    let name = lead
        .nom_complet
        .as_ref()
        .map_or("un client sans nom", |n| n.as_str());
    let service = lead
        .type_service
        .map_or_else(String::new, |s| format!(", pour {}", s.label(Language::Fr)));
    let urgent = if lead.urgence == Some(true) {
        " C'est urgent."
    } else {
        ""
    };
    format!(
        "Rappel de BP Émondage. Vous allez joindre {name}{service}.{urgent} \
         Appuyez sur 1 pour lancer l'appel."
    )
}

/// `POST /twilio/callback/answer?lead=…`: the operator answered. Says whom they are about to
/// reach and asks for 1; without a key, the `<Redirect>` reaches [`press`] with no digits.
pub async fn answer(
    store: &AnyStore,
    settings: &Settings,
    sid: &CallSid,
    lead_id: LeadId,
) -> Result<TwiML, StoreError> {
    let Some(lead) = store.get_lead(lead_id).await? else {
        // Erased since the click: nobody to call, nothing to record.
        return Ok(goodbye(settings, "Ce client n'existe plus. Au revoir."));
    };
    let mut update = row(sid, lead_id);
    update.status = Some("in-progress".to_owned());
    store.upsert_call(&update).await?;
    let press = url(settings, "/twilio/callback/press", lead_id)
        .unwrap_or_else(|_| format!("/twilio/callback/press?lead={lead_id}"));
    Ok(TwiML::new()
        .verb(Verb::Keypad(Keypad {
            action: press.clone(),
            num_digits: 1,
            timeout: PRESS_TIMEOUT_SECS,
            say: vec![
                say(settings, &announcement(&lead)),
                say(settings, "Pour annuler, raccrochez."),
            ],
        }))
        .verb(Verb::Redirect(press)))
}

/// `POST /twilio/callback/press?lead=…`: the operator's key (`Digits`), or none (the `<Gather>`
/// timed out). 1 dials the lead with the business number as caller ID; anything else ends the
/// call, its outcome recorded.
pub async fn press(
    store: &AnyStore,
    settings: &Settings,
    sid: &CallSid,
    lead_id: LeadId,
    digits: Option<&str>,
) -> Result<TwiML, StoreError> {
    let call = store.get_call(sid).await?;
    let ours = call.as_ref().is_some_and(|c| {
        c.fields.direction.as_deref() == Some(DIRECTION) && c.fields.lead_id == Some(lead_id)
    });
    if !ours {
        tracing::warn!(call_sid = %sid, "a callback step for a call that is not this callback");
        return Ok(TwiML::new().verb(Verb::Hangup));
    }
    // A retried request after the dial: never dial twice.
    if call
        .as_ref()
        .is_some_and(|c| c.fields.dial_status.is_some())
    {
        return Ok(TwiML::new().verb(Verb::Hangup));
    }
    let declined = |reason: &'static str, text: &'static str| async move {
        let mut update = row(sid, lead_id);
        update.ended_reason = Some(reason.to_owned());
        store.upsert_call(&update).await?;
        Ok::<_, StoreError>(goodbye(settings, text))
    };
    match digits.map(str::trim) {
        Some("1") => {}
        Some(d) if !d.is_empty() => {
            return declined(
                "operator-declined",
                "D'accord, l'appel n'est pas fait. Au revoir.",
            )
            .await;
        }
        _ => {
            return declined(
                "operator-timeout",
                "Aucune touche reçue : l'appel n'est pas fait. Au revoir.",
            )
            .await;
        }
    }
    let lead = store.get_lead(lead_id).await?;
    let (Some(number), Some(business)) = (
        lead.as_ref().and_then(lead_number),
        settings.office.business_number.as_deref(),
    ) else {
        return declined(
            "lead-unreachable",
            "Ce client n'a pas de numéro utilisable. Au revoir.",
        )
        .await;
    };
    let action = url(settings, "/twilio/callback/dial", lead_id)
        .unwrap_or_else(|_| format!("/twilio/callback/dial?lead={lead_id}"));
    Ok(TwiML::new()
        .verb(Verb::Say(say(
            settings,
            "Un instant, je compose le numéro.",
        )))
        .verb(Verb::Dial(Dial {
            action,
            timeout: LEAD_RING_SECS,
            caller_id: Some(business.to_owned()),
            number: number.as_e164().to_owned(),
        })))
}

/// What the operator hears once the lead's leg ended, by `DialCallStatus`.
fn after_dial(status: &str) -> &'static str {
    match status {
        "answered" => "L'appel est terminé. Au revoir.",
        "busy" => "La ligne du client est occupée. Au revoir.",
        "no-answer" => "Le client n'a pas répondu. Au revoir.",
        "canceled" => "L'appel a été annulé. Au revoir.",
        _ => "L'appel n'a pas pu être établi. Au revoir.",
    }
}

/// `POST /twilio/callback/dial?lead=…` (`<Dial action>`): the lead's leg's outcome, recorded as
/// for a transfer (`answered` when the lead took it, else Twilio's status; see
/// `ivr::DialResult::outcome`).
pub async fn dial_done(
    store: &AnyStore,
    settings: &Settings,
    sid: &CallSid,
    lead_id: LeadId,
    dial_status: &str,
    duration: Option<u32>,
) -> Result<TwiML, StoreError> {
    let mut update = row(sid, lead_id);
    update.dial_status = Some(dial_status.to_owned());
    update.dial_duration = duration;
    store.upsert_call(&update).await?;
    tracing::info!(call_sid = %sid, dial_status, "callback dial ended");
    Ok(goodbye(settings, after_dial(dial_status)))
}

/// `POST /twilio/callback/status?lead=…`: the operator's leg's progress (status forward only,
/// the duration at the end).
pub async fn status(
    store: &AnyStore,
    sid: &CallSid,
    lead_id: LeadId,
    call_status: &str,
    duration: Option<u32>,
) -> Result<(), StoreError> {
    let mut update = row(sid, lead_id);
    update.status = Some(call_status.to_owned());
    update.duration = duration;
    store.upsert_call(&update).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pacer_spaces_turns_and_refuses_a_queue_too_long() {
        let step = Duration::from_millis(200);
        let pacer = Pacer::new(step, 2 * step);
        let start = Instant::now();
        assert!(pacer.wait_turn().await);
        assert!(pacer.wait_turn().await);
        assert!(pacer.wait_turn().await);
        assert!(start.elapsed() >= 2 * step, "{:?}", start.elapsed());
        // The next free slots are 1, 2, 3 steps away (less the scheduler's delay): the first two
        // fit within the longest wait (2 steps), the others do not, and take no slot.
        let (a, b, c, d) = tokio::join!(
            pacer.wait_turn(),
            pacer.wait_turn(),
            pacer.wait_turn(),
            pacer.wait_turn()
        );
        assert_eq!((a, b, c, d), (true, true, false, false));
    }
}

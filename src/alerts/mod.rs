//! SMS alerts to staff: the sender that delivers the alerts the store holds.
//!
//! An alert is created in the same store write that qualifies its lead (see
//! [`crate::calls::AlertPolicy`]); the caller's TwiML is answered without waiting for it. The
//! sender, one task per instance, claims due alerts with a lease ([`Alerts::claim_due_alerts`]),
//! sends each through Twilio's Messages API and records the outcome:
//! - accepted (201): `sent` with the Message SID; never sent again;
//! - 429 or a connection refused: retried after `Retry-After` or a back-off;
//! - timeout or 5xx (the message may exist): retried, and every attempt after the first looks for
//!   the message at Twilio by its reference before sending, so it is not sent twice;
//! - 401 (the account's credentials refused): retried later, logged as a configuration error;
//! - any other 4xx (invalid or unsubscribed number, permission): `dead`, with Twilio's code.
//!
//! A crash between the claim and the send leaves a claim whose lease expires; another instance
//! (or this one, restarted) claims it again and looks before sending. Bodies are personal data:
//! they are never logged.

pub mod sms;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{PublicBaseUrl, Settings, SmsSender};
use crate::store::{AlertOutcome, AlertRecord, Alerts as _, AnyStore, Store as _};
use crate::twilio::rest::{RestError, TwilioRest};

/// Alerts claimed per round.
const BATCH: usize = 20;
/// How often the sender looks for due alerts when nothing wakes it.
const POLL: Duration = Duration::from_secs(5);
/// Twilio may keep an alert queued this long; an alert about an urgent tree is useless after.
const VALIDITY: Duration = Duration::from_secs(4 * 3600);

/// Back-off after the `attempt`-th failed send: 5 s doubling to 10 min.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(5)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(7))
        .min(Duration::from_secs(600))
}

/// What the sender needs.
#[derive(Debug, Clone)]
pub struct AlertSender {
    store: AnyStore,
    rest: TwilioRest,
    sender: SmsSender,
    base: Option<PublicBaseUrl>,
    wake: Arc<Notify>,
    /// How long a claim holds an alert before another instance may take it (`ALERT_LEASE_SECS`).
    lease: Duration,
    /// `BUSINESS_HOURS`: the caller's confirmation says when to expect the call back.
    hours: crate::domain::BusinessHours,
}

impl AlertSender {
    /// `None` unless alerts to staff (`ALERT_SMS_TO`) or the caller's confirmation
    /// (`CALLER_SMS=1`) are configured (each needs `TWILIO_SMS_FROM` and the account's
    /// credentials).
    pub fn from_settings(settings: &Settings, store: AnyStore, wake: Arc<Notify>) -> Option<Self> {
        let (sender, lease) = match (&settings.office.alerts, &settings.office.caller_sms) {
            (Some(alerts), _) => (alerts.sender.clone(), alerts.lease),
            (None, Some(caller)) => (caller.sender.clone(), caller.lease),
            (None, None) => return None,
        };
        let account = settings.twilio.account_sid.clone()?;
        let token = settings.twilio.auth_token.clone()?;
        Some(Self {
            store,
            rest: TwilioRest::new(
                settings.twilio.api_base_url.clone(),
                account,
                token,
                crate::twilio::rest::DEFAULT_TIMEOUT,
            ),
            sender,
            base: settings.public_base_url.clone(),
            wake,
            lease,
            hours: settings.office.hours.clone(),
        })
    }

    /// Runs until `shutdown`: a round whenever an alert is stored, and every few seconds.
    pub fn spawn(self, tracker: &TaskTracker, shutdown: CancellationToken) {
        tracker.spawn(async move {
            loop {
                if let Err(error) = self.round().await {
                    tracing::warn!(%error, "alert round failed; retrying");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        });
    }

    /// Claims the due alerts and sends each; returns how many were handled.
    pub async fn round(&self) -> Result<usize, crate::store::StoreError> {
        let claimed = self.store.claim_due_alerts(self.lease, BATCH).await?;
        let handled = claimed.len();
        for alert in claimed {
            let outcome = self.deliver(&alert).await;
            match &outcome {
                AlertOutcome::Sent { .. } => {}
                AlertOutcome::Retry { error, after } => {
                    crate::metrics::alert("retried");
                    tracing::warn!(
                        alert_id = %alert.id, lead_id = %alert.lead_id, attempt = alert.attempts,
                        retry_in_secs = after.as_secs(), %error, "SMS alert not sent; will retry"
                    );
                }
                AlertOutcome::Dead { code, error } => {
                    crate::metrics::alert("dead");
                    tracing::error!(
                        alert_id = %alert.id, lead_id = %alert.lead_id, code = ?code, %error,
                        "SMS alert refused for good; kept as a dead letter"
                    );
                }
            }
            self.store.finish_alert(alert.id, &outcome).await?;
        }
        if let Ok((depth, oldest)) = self.store.alert_backlog().await {
            crate::metrics::alert_queue(depth, oldest);
        }
        Ok(handled)
    }

    /// The reference in the body that finds a message again at Twilio.
    fn reference(alert: &AlertRecord) -> String {
        alert.id.simple().to_string()[..12].to_owned()
    }

    async fn deliver(&self, alert: &AlertRecord) -> AlertOutcome {
        let reference = Self::reference(alert);
        if alert.attempts > 1 {
            // An earlier attempt may have reached Twilio (timeout, 5xx, or a crash after the
            // send): look before sending again.
            match self
                .rest
                .find_message(&alert.recipient, &self.sender, &reference)
                .await
            {
                Ok(Some(found)) => {
                    crate::metrics::alert("found");
                    tracing::info!(alert_id = %alert.id, message_sid = %found.sid, "SMS alert had been sent already");
                    return AlertOutcome::Sent {
                        message_sid: found.sid,
                        status: found.status,
                    };
                }
                Ok(None) => {}
                Err(error) => return failure(alert, &error),
            }
        }
        let lead = match self.store.get_lead(alert.lead_id).await {
            Ok(Some(lead)) => lead,
            Ok(None) => {
                return AlertOutcome::Dead {
                    code: None,
                    error: "the lead no longer exists".to_owned(),
                };
            }
            Err(error) => {
                return AlertOutcome::Retry {
                    after: backoff(alert.attempts),
                    error: format!("lead not readable: {}", error.kind()),
                };
            }
        };
        let body = if alert.event == crate::store::AlertEvent::Confirmation {
            sms::render_confirmation(&lead, self.hours.is_open_now(), &reference)
        } else {
            let link = self
                .base
                .as_ref()
                .map(|b| b.join(&format!("/console/leads/{}", lead.id)));
            sms::render(&lead, alert.event, link.as_deref(), &reference)
        };
        let callback = self.base.as_ref().map(|b| b.join("/twilio/sms-status"));
        match self
            .rest
            .send_sms(
                &alert.recipient,
                &self.sender,
                &body,
                callback.as_deref(),
                Some(VALIDITY),
            )
            .await
        {
            Ok(message) => {
                crate::metrics::alert("sent");
                tracing::info!(
                    alert_id = %alert.id, lead_id = %alert.lead_id, message_sid = %message.sid,
                    body = %crate::redact::Personal(&body), "SMS alert accepted by Twilio"
                );
                AlertOutcome::Sent {
                    message_sid: message.sid,
                    status: message.status,
                }
            }
            Err(error) => failure(alert, &error),
        }
    }
}

fn failure(alert: &AlertRecord, error: &RestError) -> AlertOutcome {
    match error {
        RestError::Retryable { retry_after, .. } => AlertOutcome::Retry {
            after: retry_after.unwrap_or_else(|| backoff(alert.attempts)),
            error: error.to_string(),
        },
        RestError::Unknown { .. } => AlertOutcome::Retry {
            after: backoff(alert.attempts),
            error: error.to_string(),
        },
        // The account's credentials were refused (a rotated auth token): no alert can go out
        // until the configuration is fixed, so keep them all for later instead of losing them.
        RestError::Refused { status: 401, .. } => {
            tracing::error!(%error, "Twilio refused the account's credentials; SMS alerts wait (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)");
            AlertOutcome::Retry {
                after: backoff(alert.attempts.max(4)),
                error: error.to_string(),
            }
        }
        RestError::Refused { code, .. } => AlertOutcome::Dead {
            code: *code,
            error: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(30), Duration::from_secs(600));
        assert_eq!(backoff(0), Duration::from_secs(5));
    }

    #[test]
    fn failures_are_classified() {
        let alert = AlertRecord {
            id: uuid::Uuid::new_v4(),
            lead_id: crate::domain::LeadId::new(),
            event: crate::store::AlertEvent::Qualified,
            recipient: "+15145550100".to_owned(),
            status: crate::store::AlertStatus::Claimed,
            message_sid: None,
            delivery_status: None,
            attempts: 2,
            error_code: None,
            last_error: None,
            created_at: time::OffsetDateTime::now_utc(),
        };
        let limited = RestError::Retryable {
            reason: "HTTP 429".to_owned(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(matches!(
            failure(&alert, &limited),
            AlertOutcome::Retry { after, .. } if after == Duration::from_secs(3)
        ));
        let unknown = RestError::Unknown {
            reason: "HTTP 500".to_owned(),
        };
        assert!(matches!(
            failure(&alert, &unknown),
            AlertOutcome::Retry { after, .. } if after == Duration::from_secs(10)
        ));
        let refused = RestError::Refused {
            status: 400,
            code: Some(21211),
            message: "invalid To".to_owned(),
        };
        assert!(matches!(
            failure(&alert, &refused),
            AlertOutcome::Dead {
                code: Some(21211),
                ..
            }
        ));
    }
}

//! The deletions a Law 25 erasure owes at Twilio and Vapi, carried out.
//!
//! The erasure itself ([`crate::store::console::ConsoleStore::erase_caller`]) removes the rows and,
//! in the same transaction, creates one `remote_erasures` row per remote object (see
//! [`crate::store::erasures`]). The eraser, one task per instance, claims due rows with a lease —
//! a conditional update in the store, so several instances share them and none is done by two at
//! once — and sends the DELETE:
//! - `twilio_recording`: `DELETE /2010-04-01/Accounts/{AC}/Recordings/{RE}.json` (the voicemail);
//! - `twilio_call`: `DELETE …/Calls/{CA}.json` (the call's log; a call not finished yet is refused
//!   with code 20009 and tried again later);
//! - `twilio_message`: `DELETE …/Messages/{SM}.json` (an SMS alert about the caller, body included,
//!   from Twilio's message logs);
//! - `vapi_call`: `DELETE {VAPI_BASE_URL}/call/{id}` (the call, its recording and transcript).
//!
//! 2xx or 404 (already gone) is done; a 429, a 5xx, a timeout or a refused connection is retried
//! with a back-off (10 s doubling to an hour) for as long as it takes, across restarts (the rows
//! are the state); a refused credential (401) waits for the configuration to be fixed; any other
//! refusal is `dead` and shown on the erasure's page for an operator to finish by hand. A service
//! that is not configured (no Twilio credentials, no `VAPI_PRIVATE_KEY`) leaves its rows waiting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::Settings;
use crate::store::{
    AnyStore, RemoteErasure, RemoteErasures as _, RemoteOutcome, RemoteService, StoreError,
};
use crate::twilio::rest::{RestError, TwilioRest};
use crate::vapi::client::{DeleteCallError, VapiRest};

/// Rows claimed per round.
const BATCH: usize = 20;
/// How often the eraser looks for due rows when nothing wakes it.
const POLL: Duration = Duration::from_secs(15);
/// How long a claim holds a row: longer than one DELETE can take.
const LEASE: Duration = Duration::from_secs(60);
/// Per-request deadline.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unconfigured service's rows wait before they are looked at again.
const UNCONFIGURED: Duration = Duration::from_secs(3600);

/// Back-off after the `attempt`-th failed DELETE: 10 s doubling to an hour.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(10)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(9))
        .min(Duration::from_secs(3600))
}

/// Carries out the remote deletions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RemoteEraser {
    store: AnyStore,
    twilio: Option<TwilioRest>,
    vapi: Option<VapiRest>,
    wake: Arc<Notify>,
}

impl RemoteEraser {
    pub fn new(store: AnyStore, twilio: Option<TwilioRest>, vapi: Option<VapiRest>) -> Self {
        Self {
            store,
            twilio,
            vapi,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Twilio with the account's credentials, Vapi with `VAPI_PRIVATE_KEY`, when set.
    pub fn from_settings(settings: &Settings, store: AnyStore) -> Self {
        let twilio = match (&settings.twilio.account_sid, &settings.twilio.auth_token) {
            (Some(account), Some(token)) => Some(TwilioRest::new(
                settings.twilio.api_base_url.clone(),
                account.clone(),
                token.clone(),
                TIMEOUT,
            )),
            _ => None,
        };
        let vapi = settings
            .vapi
            .private_key
            .clone()
            .map(|key| VapiRest::new(settings.vapi.base_url.as_str(), key, TIMEOUT));
        Self::new(store, twilio, vapi)
    }

    /// Runs until `shutdown`: a round when woken (an erasure), and every few seconds.
    pub fn spawn(self, tracker: &TaskTracker, shutdown: CancellationToken) {
        tracker.spawn(async move {
            loop {
                if let Err(error) = self.round(None).await {
                    tracing::warn!(%error, "remote erasure round failed; retrying");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        });
    }

    /// Wakes the background task (rows were created).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Claims the due rows (only those of `erasure` when given) and deletes each; returns how
    /// many were handled.
    pub async fn round(&self, erasure: Option<Uuid>) -> Result<usize, StoreError> {
        let mut handled = 0;
        loop {
            let claimed = self
                .store
                .claim_remote_erasures(LEASE, BATCH, erasure)
                .await?;
            if claimed.is_empty() {
                break;
            }
            handled += claimed.len();
            for row in claimed {
                let outcome = self.delete(&row).await;
                let service = row.service.as_str();
                match &outcome {
                    RemoteOutcome::Done => {
                        crate::metrics::remote_erasure(service, "done");
                        tracing::info!(erasure_id = %row.erasure_id, service, "deleted remotely");
                    }
                    RemoteOutcome::Retry { after, error } => {
                        crate::metrics::remote_erasure(service, "retried");
                        tracing::warn!(
                            erasure_id = %row.erasure_id, service, attempt = row.attempts,
                            retry_in_secs = after.as_secs(), %error,
                            "remote deletion not done; will retry"
                        );
                    }
                    RemoteOutcome::Dead { error } => {
                        crate::metrics::remote_erasure(service, "dead");
                        tracing::error!(
                            erasure_id = %row.erasure_id, service, %error,
                            "remote deletion refused for good; to be done by hand"
                        );
                    }
                }
                self.store.finish_remote_erasure(row.id, &outcome).await?;
            }
            if erasure.is_none() {
                break;
            }
        }
        if let Ok((pending, dead)) = self.store.remote_erasure_backlog().await {
            crate::metrics::remote_erasure_backlog(pending, dead);
        }
        Ok(handled)
    }

    async fn delete(&self, row: &RemoteErasure) -> RemoteOutcome {
        let resource = match row.service {
            RemoteService::TwilioRecording => "Recordings",
            RemoteService::TwilioCall => "Calls",
            RemoteService::TwilioMessage => "Messages",
            RemoteService::VapiCall => {
                let Some(vapi) = &self.vapi else {
                    return RemoteOutcome::Retry {
                        after: UNCONFIGURED,
                        error: "Vapi is not configured (VAPI_PRIVATE_KEY)".to_owned(),
                    };
                };
                return vapi_outcome(row, vapi.delete_call(&row.remote_id).await);
            }
        };
        let Some(twilio) = &self.twilio else {
            return RemoteOutcome::Retry {
                after: UNCONFIGURED,
                error: "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)"
                    .to_owned(),
            };
        };
        twilio_outcome(row, twilio.delete(resource, &row.remote_id).await)
    }
}

fn twilio_outcome(row: &RemoteErasure, result: Result<(), RestError>) -> RemoteOutcome {
    match result {
        Ok(()) | Err(RestError::Refused { status: 404, .. }) => RemoteOutcome::Done,
        Err(error @ RestError::Retryable { retry_after, .. }) => RemoteOutcome::Retry {
            after: retry_after.unwrap_or_else(|| backoff(row.attempts)),
            error: error.to_string(),
        },
        // A DELETE is idempotent: an outcome unknown is simply tried again.
        Err(error @ RestError::Unknown { .. }) => RemoteOutcome::Retry {
            after: backoff(row.attempts),
            error: error.to_string(),
        },
        // The call or message is not finished yet (20009), or the credentials were refused (a
        // rotated auth token): later.
        Err(
            error @ (RestError::Refused {
                code: Some(20009), ..
            }
            | RestError::Refused { status: 401, .. }),
        ) => RemoteOutcome::Retry {
            after: backoff(row.attempts.max(4)),
            error: error.to_string(),
        },
        Err(error @ RestError::Refused { .. }) => RemoteOutcome::Dead {
            error: error.to_string(),
        },
    }
}

fn vapi_outcome(row: &RemoteErasure, result: Result<(), DeleteCallError>) -> RemoteOutcome {
    match result {
        Ok(()) | Err(DeleteCallError::NotFound) => RemoteOutcome::Done,
        Err(error @ DeleteCallError::Retryable { retry_after, .. }) => RemoteOutcome::Retry {
            after: retry_after.unwrap_or_else(|| backoff(row.attempts)),
            error: error.to_string(),
        },
        Err(error @ DeleteCallError::Refused { status: 401, .. }) => RemoteOutcome::Retry {
            after: backoff(row.attempts.max(4)),
            error: error.to_string(),
        },
        Err(error @ DeleteCallError::Refused { .. }) => RemoteOutcome::Dead {
            error: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RemoteStatus;

    fn row() -> RemoteErasure {
        RemoteErasure {
            id: Uuid::new_v4(),
            erasure_id: Uuid::new_v4(),
            service: RemoteService::TwilioRecording,
            remote_id: "RE0123456789abcdef0123456789abcdef".to_owned(),
            status: RemoteStatus::Claimed,
            attempts: 2,
            last_error: None,
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(40), Duration::from_secs(3600));
    }

    #[test]
    fn twilio_answers_are_classified() {
        let row = row();
        let gone = RestError::Refused {
            status: 404,
            code: Some(20404),
            message: "not found".to_owned(),
        };
        assert_eq!(twilio_outcome(&row, Err(gone)), RemoteOutcome::Done);
        let busy = RestError::Refused {
            status: 400,
            code: Some(20009),
            message: "not complete".to_owned(),
        };
        assert!(matches!(
            twilio_outcome(&row, Err(busy)),
            RemoteOutcome::Retry { .. }
        ));
        let limited = RestError::Retryable {
            reason: "HTTP 429".to_owned(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(matches!(
            twilio_outcome(&row, Err(limited)),
            RemoteOutcome::Retry { after, .. } if after == Duration::from_secs(3)
        ));
        let refused = RestError::Refused {
            status: 403,
            code: Some(20403),
            message: "forbidden".to_owned(),
        };
        assert!(matches!(
            twilio_outcome(&row, Err(refused)),
            RemoteOutcome::Dead { .. }
        ));
    }
}

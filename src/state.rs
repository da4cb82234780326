//! What the handlers can reach: the application state, and the substates the extractors and the
//! Media Stream take from it (`FromRef`), so each part depends only on what it uses.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::bridge::session::Bridge;
use crate::calls::{AlertPolicy, Calls};
use crate::config::Settings;
use crate::erasure::RemoteEraser;
use crate::lifecycle::Lifecycle;
use crate::locks::KeyedLocks;
use crate::store::AnyStore;
use crate::twilio::TwilioAuth;
use crate::twilio::rest::TwilioRest;
use crate::vapi::VapiAuth;

#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub lifecycle: Lifecycle,
    pub store: AnyStore,
    /// The call lifecycle over the store, with this instance's per-call and per-lead locks.
    pub calls: Calls,
    pub twilio_auth: Arc<TwilioAuth>,
    pub vapi_auth: Arc<VapiAuth>,
    /// What bridged calls need (Vapi client, call permits, stream tokens).
    pub bridge: Bridge,
    /// Twilio's REST API (redirecting a call the assistant hands to people), when the account's
    /// credentials are set.
    pub twilio_rest: Option<Arc<TwilioRest>>,
    /// Console callbacks: this instance's pacer of created calls and per-operator locks.
    pub callbacks: Arc<crate::callback::Callbacks>,
    /// The deletions a Law 25 erasure owes at Twilio and Vapi.
    pub eraser: RemoteEraser,
}

impl AppState {
    pub fn new(settings: Settings, store: AnyStore, lifecycle: Lifecycle) -> Self {
        let locks = Arc::new(KeyedLocks::default());
        Self {
            twilio_auth: Arc::new(TwilioAuth::from_settings(&settings)),
            vapi_auth: Arc::new(VapiAuth::from_settings(&settings)),
            bridge: Bridge::new(&settings, store.clone(), lifecycle.clone()),
            twilio_rest: match (&settings.twilio.account_sid, &settings.twilio.auth_token) {
                (Some(account), Some(token)) => Some(Arc::new(TwilioRest::new(
                    settings.twilio.api_base_url.clone(),
                    account.clone(),
                    token.clone(),
                    crate::twilio::rest::DEFAULT_TIMEOUT,
                ))),
                _ => None,
            },
            callbacks: Arc::new(crate::callback::Callbacks::default()),
            calls: Calls::with_alerts(
                store.clone(),
                locks,
                AlertPolicy::new(
                    settings.office.alerts.clone(),
                    settings.office.hours.clone(),
                )
                .with_caller_sms(settings.office.caller_sms.is_some()),
            ),
            eraser: RemoteEraser::from_settings(&settings, store.clone()),
            settings: Arc::new(settings),
            lifecycle,
            store,
        }
    }
}

impl FromRef<AppState> for Arc<TwilioAuth> {
    fn from_ref(state: &AppState) -> Self {
        state.twilio_auth.clone()
    }
}

impl FromRef<AppState> for Arc<VapiAuth> {
    fn from_ref(state: &AppState) -> Self {
        state.vapi_auth.clone()
    }
}

impl FromRef<AppState> for Bridge {
    fn from_ref(state: &AppState) -> Self {
        state.bridge.clone()
    }
}

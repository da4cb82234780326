//! What the console's handlers and extractors need from the gateway: [`ConsoleState`], a
//! `FromRef` substate of [`AppState`].

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;

use crate::domain::PhoneNumber;
use crate::state::AppState;
use crate::store::AnyStore;

/// What the console's handlers and extractors need.
#[derive(Debug, Clone)]
pub struct ConsoleState {
    pub store: AnyStore,
    /// Served over https (production, or an https `PUBLIC_BASE_URL`): cookies get `Secure` and
    /// the `__Host-` prefix, answers `Strict-Transport-Security`.
    pub production: bool,
    /// Ends live-update streams when the gateway drains.
    pub shutdown: CancellationToken,
    /// Twilio's REST API, to play voicemails (the media needs the account's credentials).
    pub twilio: Option<std::sync::Arc<crate::twilio::rest::TwilioRest>>,
    /// What one API token may ask.
    pub api_rate: crate::config::ApiRate,
    /// The setting console callbacks lack on this instance (`None`: they can be placed).
    pub callback_unavailable: Option<&'static str>,
    /// `BUSINESS_NUMBER`: the caller ID a callback shows the lead.
    pub business_number: Option<PhoneNumber>,
    /// Carries out an erasure's deletions at Twilio and Vapi.
    pub eraser: crate::erasure::RemoteEraser,
}

impl FromRef<AppState> for ConsoleState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            production: state.settings.secure_transport(),
            shutdown: state.lifecycle.shutdown_token(),
            twilio: state.twilio_rest.clone(),
            api_rate: state.settings.api_rate,
            callback_unavailable: crate::callback::unavailable(
                &state.settings,
                state.twilio_rest.is_some(),
            ),
            business_number: state
                .settings
                .office
                .business_number
                .as_deref()
                .and_then(|n| PhoneNumber::try_from(n).ok()),
            eraser: state.eraser.clone(),
        }
    }
}

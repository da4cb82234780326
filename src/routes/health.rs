//! `GET /healthz` (liveness: the process answers) and `GET /readyz` (readiness: this instance
//! should receive calls).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::state::AppState;
use crate::store::StoreHealth;

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    /// The git revision the binary was built from.
    pub revision: &'static str,
}

/// Liveness: cheap, touches nothing but the process.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: crate::build_info::VERSION,
        revision: crate::build_info::REVISION,
    })
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub status: &'static str,
    pub environment: &'static str,
    pub draining: bool,
    pub store: StoreHealth,
}

/// Readiness: 503 while the instance drains, when writes cannot be made durable, or when the
/// outbox in front of Supabase holds a write older than `READYZ_MAX_OUTBOX_AGE_SECS` (Supabase
/// has been down or refusing for too long). A short Supabase outage is reported, not fatal: the
/// outbox absorbs it.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let draining = state.lifecycle.is_draining();
    let store = state
        .store
        .readiness(state.settings.telemetry.readyz_max_outbox_age)
        .await;
    let ready = !draining && store.ready();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Readiness {
            status: if draining {
                "draining"
            } else if ready {
                "ready"
            } else {
                "unavailable"
            },
            environment: state.settings.environment.as_str(),
            draining,
            store,
        }),
    )
}

//! `GET /healthz` (liveness: the process answers) and `GET /readyz` (readiness: this instance
//! should receive calls).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::startup::AppState;

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: cheap, touches nothing but the process.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub status: &'static str,
    pub environment: &'static str,
    pub draining: bool,
}

/// Readiness: 503 while the instance drains, so load balancers stop sending calls.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let draining = state.lifecycle.is_draining();
    let code = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        Json(Readiness {
            status: if draining { "draining" } else { "ready" },
            environment: state.settings.environment.as_str(),
            draining,
        }),
    )
}

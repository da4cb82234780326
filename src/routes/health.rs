//! `GET /healthz` (liveness: the process answers) and `GET /readyz` (readiness: this instance
//! should receive calls).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::startup::AppState;
use crate::store::{AnyStore, Store as _};

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
    pub store: StoreHealth,
}

#[derive(Debug, Serialize)]
pub struct StoreHealth {
    pub kind: &'static str,
    /// Writes can be made durable (SQLite, or the outbox in front of Supabase).
    pub ok: bool,
    /// Why not, as an error kind (`unavailable`, `timeout`, `rejected` …); never caller data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// With Supabase: whether it answers, and how many writes wait in the outbox. An unreachable
    /// Supabase does not make the instance unready: writes queue durably.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supabase: Option<RemoteHealth>,
}

#[derive(Debug, Serialize)]
pub struct RemoteHealth {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    pub outbox_depth: Option<usize>,
    /// Age in seconds of the oldest write waiting for Supabase.
    pub outbox_oldest_age_secs: Option<u64>,
    /// `READYZ_MAX_OUTBOX_AGE_SECS`: past it the instance reports unready.
    pub outbox_max_age_secs: u64,
    /// The outbox has been stuck longer than the bound.
    pub outbox_stale: bool,
}

/// Readiness: 503 while the instance drains, when writes cannot be made durable, or when the
/// outbox in front of Supabase holds a write older than `READYZ_MAX_OUTBOX_AGE_SECS` (Supabase
/// has been down or refusing for too long). A short Supabase outage is reported, not fatal: the
/// outbox absorbs it.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let draining = state.lifecycle.is_draining();
    let health = state.store.health().await;
    if let Err(error) = &health {
        tracing::warn!(%error, "store not ready");
    }
    let supabase = match &state.store {
        AnyStore::Sqlite(_) => None,
        AnyStore::Supabase(outbox) => {
            let remote = outbox.remote_health().await;
            let max_age = state.settings.telemetry.readyz_max_outbox_age;
            let oldest = outbox.oldest_age().await.ok().flatten();
            let too_old = oldest.is_some_and(|age| age > max_age);
            if too_old {
                tracing::warn!(
                    max_age_secs = max_age.as_secs(),
                    "outbox older than READYZ_MAX_OUTBOX_AGE_SECS; reporting unready"
                );
            }
            Some(RemoteHealth {
                ok: remote.is_ok(),
                error: remote.err().map(|e| e.kind()),
                outbox_depth: outbox.depth().await.ok(),
                outbox_oldest_age_secs: oldest.map(|a| a.as_secs()),
                outbox_max_age_secs: max_age.as_secs(),
                outbox_stale: too_old,
            })
        }
    };
    let outbox_too_old = supabase.as_ref().is_some_and(|s| s.outbox_stale);
    let ready = !draining && health.is_ok() && !outbox_too_old;
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
            store: StoreHealth {
                kind: state.store.kind(),
                ok: health.is_ok(),
                error: health.err().map(|e| e.kind()),
                supabase,
            },
        }),
    )
}

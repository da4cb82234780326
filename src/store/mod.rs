//! Where leads and calls live.
//!
//! - [`Store`]: what the gateway needs from storage.
//! - [`SqliteStore`](sqlite::SqliteStore): the embedded default (`DATABASE_PATH`, WAL), run on a
//!   dedicated thread so blocking calls never touch the async runtime's workers.
//! - [`SupabaseStore`](supabase::SupabaseStore): PostgREST through the `postgrest` crate, schema `bp`.
//! - [`OutboxStore`](outbox::OutboxStore): Supabase behind a durable local outbox: a write that
//!   fails or misses its deadline is committed to SQLite before the caller is answered, and replayed
//!   in order until Supabase accepts it.
//! - [`AnyStore`]: the one chosen by `STORE=auto|sqlite|supabase`.
//!
//! This file only declares and re-exports. The files build on one another without a circle
//! (`tests/boundaries.rs`): `rows` (the shared types) ← `sqlite`, `supabase` (plumbing) ← `leads`
//! (leads and calls) ← `outbox` ← `any` ([`AnyStore`]) ← `alerts`, `erasures`, `stats`, `console`.

/// Delegates to the configured store and times the operation
/// (`myriam_store_operation_duration_seconds{operation,result}`).
macro_rules! delegate {
    ($self:ident, $op:expr, $s:ident => $e:expr) => {{
        let started = std::time::Instant::now();
        let result = match $self {
            AnyStore::Sqlite($s) => $e.await,
            AnyStore::Supabase($s) => $e.await,
        };
        crate::metrics::store_operation($op, started, result.is_ok());
        result
    }};
}

/// `impl $trait for AnyStore`: every method delegated (`delegate!`), timed under its own name.
macro_rules! delegate_trait {
    ($trait:ident; $(fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;)*) => {
        impl $trait for AnyStore {
            $(async fn $name(&self $(, $arg: $ty)*) -> $ret {
                delegate!(self, stringify!($name), s => s.$name($($arg),*))
            })*
        }
    };
}

pub mod alerts;
mod any;
pub mod console;
pub mod erasures;
mod leads;
pub mod outbox;
mod rows;
pub mod sqlite;
pub mod stats;
pub mod supabase;

pub use alerts::{AlertOutcome, AlertRecord, AlertStatus, Alerts};
pub use any::{AnyStore, OpenError, RemoteHealth, StoreHealth};
pub use erasures::{
    RemoteErasure, RemoteErasures, RemoteOutcome, RemoteService, RemoteStatus, RemoteTarget,
};
pub use rows::{AlertEvent, NewAlert};
pub use rows::{
    CallRecord, CallUpdate, ERASED_SQLSTATE, LeadRow, MAX_PAGE, Saved, StatusApplied, StatusAtOnce,
    Store, StoreError, VapiTurn, WriteOp,
};

//! Permanent refusals: Supabase answering 401, 403 or 404 to every request after a key rotation,
//! a revoked grant or a dropped table. Such an instance is unready (`/readyz` 503) and raises
//! `myriam_supabase_refusing`, and its writes wait in the outbox instead of being dead-lettered one
//! by one while it looks healthy.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::rows::StoreError;

/// What the last write and the last health read said.
#[derive(Debug, Default)]
pub struct Refusals {
    write: AtomicBool,
    read: AtomicBool,
}

/// 401 (the key), 403 (a grant), 404 (a table or function PostgREST does not know).
pub fn is_refusal(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Rejected {
            status: 401 | 403 | 404,
            ..
        }
    )
}

impl Refusals {
    /// Whether `error` refuses this instance for good; if so, remembered until a write succeeds.
    pub fn is_refusal(&self, error: &StoreError) -> bool {
        let refused = is_refusal(error);
        if refused {
            self.write.store(true, Ordering::Relaxed);
            self.publish();
        }
        refused
    }

    /// A write went through: Supabase takes this instance's writes again.
    pub fn clear(&self) {
        if self.write.swap(false, Ordering::Relaxed) {
            self.publish();
        }
    }

    /// The outcome of a health read.
    pub fn observe_read(&self, error: Option<&StoreError>) {
        self.read
            .store(error.is_some_and(is_refusal), Ordering::Relaxed);
        self.publish();
    }

    pub fn refusing(&self) -> bool {
        self.write.load(Ordering::Relaxed) || self.read.load(Ordering::Relaxed)
    }

    fn publish(&self) {
        crate::metrics::supabase_refusing(self.refusing());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> StoreError {
        StoreError::Rejected {
            status,
            code: "42501".to_owned(),
            message: "permission denied".to_owned(),
        }
    }

    #[test]
    fn refusals_last_until_a_write_goes_through() {
        let refusals = Refusals::default();
        assert!(!refusals.refusing());
        assert!(!refusals.is_refusal(&rejected(400)));
        assert!(!refusals.is_refusal(&StoreError::Unavailable("down".to_owned())));
        assert!(!refusals.refusing());
        assert!(refusals.is_refusal(&rejected(403)));
        assert!(refusals.refusing());
        refusals.observe_read(None);
        assert!(refusals.refusing(), "a read does not clear a write refusal");
        refusals.clear();
        assert!(!refusals.refusing());
        refusals.observe_read(Some(&rejected(401)));
        assert!(refusals.refusing());
        refusals.observe_read(Some(&rejected(404)));
        assert!(refusals.refusing());
        refusals.observe_read(Some(&rejected(503)));
        assert!(!refusals.refusing());
    }
}

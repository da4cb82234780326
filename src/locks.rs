//! Per-key async locks: one read-modify-write of a call or a lead at a time in this instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::{Mutex, OwnedMutexGuard};

/// Locks by key (`call:<CallSid>`, `lead:<id>`, `lead:<id>` in the outbox …). Unused locks are
/// forgotten, so memory follows the number of keys in use, not the number ever seen.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(key.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn same_key_serialises_other_keys_do_not_wait() {
        let locks = Arc::new(KeyedLocks::default());
        let inside = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (locks, inside) = (locks.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let _g = locks.lock("lead:1").await;
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        let held = locks.lock("lead:1").await;
        // Another key is free while lead:1 is held.
        tokio::time::timeout(Duration::from_millis(100), locks.lock("lead:2"))
            .await
            .expect("other keys do not wait");
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
    }
}

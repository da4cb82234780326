//! Passwords: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), PHC strings.
//! The password itself only ever lives in a [`SecretString`].
//!
//! A verification costs tens of milliseconds of CPU. The gateway never runs one on the async
//! runtime's workers (they relay the calls' audio): [`HashSlot`] runs it on a hasher thread of its
//! own at the lowest CPU priority, at most [`hashers`] at once, and admits at most [`WAITING`]
//! more behind them; a login beyond that is refused at once (the console answers 429 with
//! `Retry-After`).

use std::sync::OnceLock;

use tokio::sync::{Semaphore, SemaphorePermit};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// OWASP Password Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1.
pub const MEMORY_KIB: u32 = 19_456;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;

/// Shortest password accepted (no second factor, so longer than OWASP's 8 with MFA).
pub const MIN_CHARS: usize = 12;
/// Longest password accepted (hashing cost is bounded).
pub const MAX_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_CHARS} characters")]
    TooLong,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("cannot draw random bytes")]
    Random,
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants within Argon2's bounds.
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A new password, checked for length.
#[derive(Debug)]
pub struct NewPassword(SecretString);

impl TryFrom<SecretString> for NewPassword {
    type Error = PasswordError;
    fn try_from(secret: SecretString) -> Result<Self, Self::Error> {
        let chars = secret.expose_secret().chars().count();
        if chars < MIN_CHARS {
            Err(PasswordError::TooShort)
        } else if chars > MAX_CHARS {
            Err(PasswordError::TooLong)
        } else {
            Ok(Self(secret))
        }
    }
}

impl NewPassword {
    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub fn hash(&self) -> Result<String, PasswordError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|_| PasswordError::Random)?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
        argon2()
            .hash_password(self.0.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }
}

/// Whether `password` matches the PHC string `hash`. A malformed hash never matches.
pub fn verify(password: &SecretString, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    argon2()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok()
}

/// Spends the time of one verification against a fixed hash, so an unknown e-mail answers as
/// slowly as a wrong password.
pub fn verify_dummy(password: &SecretString) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| {
        NewPassword(SecretString::from("dummy-password-for-timing"))
            .hash()
            .unwrap_or_default()
    });
    let _ = verify(password, hash);
}

/// Logins that may wait for a hasher, beyond those hashing.
pub const WAITING: usize = 8;

/// The nice value of the hashers' threads: the lowest priority, so that a core the calls need is
/// theirs within a scheduler tick even while a hash runs on it.
pub const HASHER_NICE: i32 = 19;

/// How many verifications run at once: half the machine's cores, at least one, so that a burst of
/// logins always leaves the calls a core.
pub fn hashers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashers: [`hashers`] threads of their own (not the runtime's workers, not its blocking
/// pool, which other blocking work shares), at [`HASHER_NICE`], taking jobs in arrival order.
fn hasher_queue() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<Job>> {
    static QUEUE: OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..hashers() {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hasher-{i}"))
                .spawn(move || {
                    let tid = rustix::thread::gettid();
                    if let Err(error) = rustix::process::setpriority_process(Some(tid), HASHER_NICE)
                    {
                        tracing::warn!(%error, "cannot lower the password hasher's priority");
                    }
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hasher");
            }
        }
        std::sync::Mutex::new(tx)
    })
}

fn admitted() -> &'static Semaphore {
    static ADMITTED: OnceLock<Semaphore> = OnceLock::new();
    ADMITTED.get_or_init(|| Semaphore::new(hashers() + WAITING))
}

/// A login's place among those allowed to hash: held for the whole verification.
#[derive(Debug)]
pub struct HashSlot {
    _place: SemaphorePermit<'static>,
}

impl HashSlot {
    /// A place, or `None` when [`hashers`] + [`WAITING`] logins hold one already.
    pub fn admit() -> Option<Self> {
        admitted()
            .try_acquire()
            .ok()
            .map(|place| Self { _place: place })
    }

    /// [`verify`] on a hasher's thread.
    pub async fn verify(&self, password: &SecretString, hash: &str) -> bool {
        let (password, hash) = (password.clone(), hash.to_owned());
        self.off_runtime(move || verify(&password, &hash))
            .await
            .unwrap_or(false)
    }

    /// [`verify_dummy`] on a hasher's thread.
    pub async fn verify_dummy(&self, password: &SecretString) {
        let password = password.clone();
        let _ = self.off_runtime(move || verify_dummy(&password)).await;
    }

    async fn off_runtime<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        hasher_queue().lock().ok()?.send(job).ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_owasp_parameters_and_verifies() {
        let password = NewPassword::try_from(SecretString::from("correct horse battery")).unwrap();
        let hash = password.hash().unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify(&SecretString::from("correct horse battery"), &hash));
        assert!(!verify(&SecretString::from("correct horse batterY"), &hash));
        assert!(!verify(&SecretString::from("x"), "not a hash"));
        assert_ne!(hash, password.hash().unwrap(), "a fresh salt each time");
        verify_dummy(&SecretString::from("anything"));
    }

    #[tokio::test]
    async fn slots_are_bounded_and_verify_off_the_runtime() {
        let hash = NewPassword::try_from(SecretString::from("correct horse battery"))
            .unwrap()
            .hash()
            .unwrap();
        let slots: Vec<HashSlot> = std::iter::from_fn(HashSlot::admit).take(100).collect();
        assert_eq!(slots.len(), hashers() + WAITING);
        assert!(HashSlot::admit().is_none(), "full");
        assert!(
            slots[0]
                .verify(&SecretString::from("correct horse battery"), &hash)
                .await
        );
        assert!(!slots[1].verify(&SecretString::from("nope"), &hash).await);
        slots[2].verify_dummy(&SecretString::from("anything")).await;
        drop(slots);
        assert!(HashSlot::admit().is_some(), "places come back");
    }

    #[test]
    fn length_is_checked() {
        assert_eq!(
            NewPassword::try_from(SecretString::from("short")).unwrap_err(),
            PasswordError::TooShort
        );
        assert_eq!(
            NewPassword::try_from(SecretString::from("x".repeat(257))).unwrap_err(),
            PasswordError::TooLong
        );
    }
}

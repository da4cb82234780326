//! Passwords: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), PHC strings.
//! The password itself only ever lives in a [`SecretString`].

use std::sync::OnceLock;

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

//! Operators of the console and who is asking: passwords ([`password`]), login with throttling
//! shared through the store, server-side sessions with idle and absolute expiry, API tokens, and
//! the [`Principal`] a console or API request acts as.
//!
//! Secrets (passwords, session secrets, API tokens) are [`SecretString`]s; only their Argon2id
//! hash (passwords) or SHA-256 digest (sessions, tokens) reaches the store.

pub mod password;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::StoreError;
use crate::store::console::{
    ApiTokenRecord, AuditAction, AuditEntry, ConsoleStore, Email, Operator, Role,
};
pub use password::{NewPassword, PasswordError};

/// A session unused this long is over.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session is over this long after login, used or not.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Login throttling: at most this many failures per window for one e-mail …
pub const MAX_FAILURES_PER_EMAIL: usize = 5;
/// … and this many for one client address.
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// API tokens start with this, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "myr_";

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("an operator with this e-mail exists already")]
    Exists,
    #[error("no operator with this e-mail")]
    Unknown,
    #[error("a token with this name exists already")]
    TokenExists,
    #[error("no live token with this name")]
    UnknownToken,
    #[error("a token name is 1 to 64 letters, digits, '-', '_' or '.'")]
    TokenName,
    #[error("cannot draw random bytes")]
    Random,
}

/// SHA-256, hex: how session secrets and API tokens are keyed in the store.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// 32 random bytes, base64url.
fn random_secret() -> Result<SecretString, OperatorError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| OperatorError::Random)?;
    Ok(SecretString::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// The CSRF token of a session: derived from the session's secret (which only the `HttpOnly`
/// cookie carries), so a page can embed it and a forged cross-site request cannot know it.
pub fn csrf_token(session_secret: &SecretString) -> String {
    let digest = Sha256::digest(format!("csrf\0{}", session_secret.expose_secret()).as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The operator's e-mail, or `token:NAME`: what the audit log names.
    pub actor: String,
    pub role: Role,
    /// The session's digest, when authenticated by cookie (for logout).
    pub session: Option<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Records an audit entry; a failure is logged, never shown to the operator (the action is done).
pub async fn audit(
    store: &impl ConsoleStore,
    actor: &str,
    action: AuditAction,
    target: Option<String>,
    detail: Option<String>,
) {
    let entry = AuditEntry {
        at: None,
        actor: actor.to_owned(),
        action,
        target,
        detail,
    };
    if let Err(error) = store.append_audit(&entry).await {
        tracing::error!(%error, action = action.as_str(), "cannot write the audit log");
    }
}

/// Creates an operator.
pub async fn add(
    store: &impl ConsoleStore,
    email: Email,
    role: Role,
    password: &NewPassword,
) -> Result<Operator, OperatorError> {
    let operator = Operator {
        id: Uuid::new_v4(),
        email,
        role,
        password_hash: password.hash()?,
        disabled: false,
        created_at: None,
    };
    if store.create_operator(&operator).await? {
        Ok(operator)
    } else {
        Err(OperatorError::Exists)
    }
}

/// Disables (or re-enables) an operator; disabling ends their sessions.
pub async fn set_disabled(
    store: &impl ConsoleStore,
    email: &Email,
    disabled: bool,
) -> Result<(), OperatorError> {
    let operator = store
        .operator_by_email(email)
        .await?
        .ok_or(OperatorError::Unknown)?;
    store.set_operator_disabled(email, disabled).await?;
    if disabled {
        store.revoke_sessions_of(operator.id).await?;
    }
    Ok(())
}

/// Sets a new password and ends the operator's sessions.
pub async fn reset_password(
    store: &impl ConsoleStore,
    email: &Email,
    password: &NewPassword,
) -> Result<(), OperatorError> {
    let operator = store
        .operator_by_email(email)
        .await?
        .ok_or(OperatorError::Unknown)?;
    store
        .set_operator_password(email, &password.hash()?)
        .await?;
    store.revoke_sessions_of(operator.id).await?;
    Ok(())
}

fn token_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Creates an API token; the returned secret is shown once and never stored.
pub async fn create_token(
    store: &impl ConsoleStore,
    name: &str,
    role: Role,
) -> Result<SecretString, OperatorError> {
    if !token_name_ok(name) {
        return Err(OperatorError::TokenName);
    }
    let token = SecretString::from(format!(
        "{TOKEN_PREFIX}{}",
        random_secret()?.expose_secret()
    ));
    let record = ApiTokenRecord {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        role,
        token_hash: digest(token.expose_secret()),
        created_at: None,
        revoked_at: None,
    };
    if store.create_api_token(&record).await? {
        Ok(token)
    } else {
        Err(OperatorError::TokenExists)
    }
}

pub async fn revoke_token(store: &impl ConsoleStore, name: &str) -> Result<(), OperatorError> {
    if store.revoke_api_token(name).await? {
        Ok(())
    } else {
        Err(OperatorError::UnknownToken)
    }
}

/// Why a login did not open a session.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown e-mail, wrong password or disabled operator: one answer for all.
    #[error("invalid credentials")]
    Invalid,
    #[error("too many failed logins; retry in {0:?}")]
    Throttled(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot draw random bytes")]
    Random,
}

/// A session just opened: the secret goes into the cookie, once.
#[derive(Debug)]
pub struct NewSession {
    pub secret: SecretString,
    pub operator: Operator,
}

fn email_key(email: &str) -> String {
    format!("email:{}", digest(&email.trim().to_lowercase()))
}

/// IPv6 clients are counted by their /64 ([`crate::client_addr::throttle_group`]).
fn address_key(address: IpAddr) -> String {
    format!("ip:{}", crate::client_addr::throttle_group(address))
}

/// How long until the failures under `key` fall below `max`, if they are at it.
async fn throttled(
    store: &impl ConsoleStore,
    key: &str,
    max: usize,
    now: OffsetDateTime,
) -> Result<Option<Duration>, StoreError> {
    let since = now - THROTTLE_WINDOW;
    let failures = store.login_failures_since(key, since).await?;
    if failures.len() < max {
        return Ok(None);
    }
    // The failure that must leave the window for one more attempt to be allowed.
    let oldest = failures[failures.len() - max];
    let wait = (oldest + THROTTLE_WINDOW - now).max(time::Duration::seconds(1));
    Ok(Some(
        Duration::try_from(wait).unwrap_or(Duration::from_secs(1)),
    ))
}

/// Checks the credentials (throttled per e-mail and per client address) and opens a session.
/// Every outcome is audited; the typed e-mail is recorded only when it is an operator's.
pub async fn login(
    store: &impl ConsoleStore,
    email: &str,
    password: &SecretString,
    client: IpAddr,
) -> Result<NewSession, LoginError> {
    let now = OffsetDateTime::now_utc();
    let (by_email, by_address) = (email_key(email), address_key(client));
    let wait = match throttled(store, &by_email, MAX_FAILURES_PER_EMAIL, now).await? {
        Some(wait) => Some(wait),
        None => throttled(store, &by_address, MAX_FAILURES_PER_ADDRESS, now).await?,
    };
    let operator = match Email::try_from(email) {
        Ok(email) => store.operator_by_email(&email).await?,
        Err(_) => None,
    };
    let actor = operator
        .as_ref()
        .map_or_else(|| "-".to_owned(), |o| o.email.to_string());
    if let Some(wait) = wait {
        audit(store, &actor, AuditAction::LoginThrottled, None, None).await;
        return Err(LoginError::Throttled(wait));
    }
    let valid = if let Some(o) = &operator {
        password::verify(password, &o.password_hash) && !o.disabled
    } else {
        password::verify_dummy(password);
        false
    };
    let Some(operator) = operator.filter(|_| valid) else {
        store.record_login_failure(&by_email).await?;
        store.record_login_failure(&by_address).await?;
        audit(store, &actor, AuditAction::LoginFailed, None, None).await;
        return Err(LoginError::Invalid);
    };
    store.clear_login_failures(&by_email).await?;
    let secret = random_secret().map_err(|_| LoginError::Random)?;
    store
        .create_session(&digest(secret.expose_secret()), operator.id)
        .await?;
    audit(
        store,
        operator.email.as_str(),
        AuditAction::Login,
        Some(operator.id.to_string()),
        None,
    )
    .await;
    Ok(NewSession { secret, operator })
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no valid session or token")]
    Missing,
    #[error("the session has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The principal of a session cookie: live (not revoked, within idle and absolute expiry) and of
/// an enabled operator.
pub async fn session_principal(
    store: &impl ConsoleStore,
    secret: &SecretString,
) -> Result<Principal, AuthError> {
    let id_hash = digest(secret.expose_secret());
    let session = store.session(&id_hash).await?.ok_or(AuthError::Missing)?;
    if session.revoked_at.is_some() {
        return Err(AuthError::Missing);
    }
    let now = OffsetDateTime::now_utc();
    if now - session.created_at > ABSOLUTE_TIMEOUT || now - session.last_seen_at > IDLE_TIMEOUT {
        store.revoke_session(&id_hash).await?;
        return Err(AuthError::Expired);
    }
    let operator = store
        .operator_by_id(session.operator_id)
        .await?
        .filter(|o| !o.disabled)
        .ok_or(AuthError::Missing)?;
    if now - session.last_seen_at > TOUCH_EVERY {
        store.touch_session(&id_hash).await?;
    }
    Ok(Principal {
        actor: operator.email.to_string(),
        role: operator.role,
        session: Some(id_hash),
    })
}

/// The principal of an `Authorization: Bearer` API token.
pub async fn token_principal(
    store: &impl ConsoleStore,
    token: &SecretString,
) -> Result<Principal, AuthError> {
    if !token.expose_secret().starts_with(TOKEN_PREFIX) {
        return Err(AuthError::Missing);
    }
    let record = store
        .api_token(&digest(token.expose_secret()))
        .await?
        .filter(|t| t.revoked_at.is_none())
        .ok_or(AuthError::Missing)?;
    Ok(Principal {
        actor: format!("token:{}", record.name),
        role: record.role,
        session: None,
    })
}

/// Ends a session server-side.
pub async fn logout(store: &impl ConsoleStore, principal: &Principal) -> Result<(), StoreError> {
    if let Some(id_hash) = &principal.session {
        store.revoke_session(id_hash).await?;
        audit(store, &principal.actor, AuditAction::Logout, None, None).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_csrf_tokens_are_stable_and_distinct() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let a = SecretString::from("a".to_owned());
        assert_eq!(
            csrf_token(&a),
            csrf_token(&SecretString::from("a".to_owned()))
        );
        assert_ne!(
            csrf_token(&a),
            csrf_token(&SecretString::from("b".to_owned()))
        );
        assert!(token_name_ok("ci-bot_1.0") && !token_name_ok("") && !token_name_ok("a b"));
        assert_eq!(email_key(" A@b.c"), email_key("a@b.c"));
    }
}

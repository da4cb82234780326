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

use crate::config::ApiRate;
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

/// Login throttling: at most this many failures per window for one e-mail from one client address
/// (then 429 until the oldest leaves the window) …
pub const MAX_FAILURES_PER_PAIR: usize = 5;
/// … and this many for one client address, whatever the e-mails.
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
/// An e-mail alone is never locked (anyone could lock any operator out): from this many failures in
/// the window, from any address, every attempt on it waits — [`FIRST_DELAY`], doubling with each
/// further failure up to [`MAX_DELAY`] — and the administrators are told (audit entry
/// `account_guessed`, metric `myriam_console_account_guessed_total`).
pub const MAX_FAILURES_PER_EMAIL: usize = 5;
pub const FIRST_DELAY: Duration = Duration::from_millis(250);
pub const MAX_DELAY: Duration = Duration::from_secs(4);
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
    #[error("the token's operator is disabled")]
    OwnerDisabled,
    #[error("a staff operator cannot own an admin token")]
    RoleAboveOwner,
    #[error("the token's lifetime is too long")]
    Lifetime,
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
    /// The address the request came from (the audit log records it).
    pub client: Option<IpAddr>,
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
        target,
        detail,
        ..AuditEntry::new(actor, action)
    };
    record(store, &entry).await;
}

/// [`audit`] of what `principal` did, with the address the request came from.
pub async fn audit_by(
    store: &impl ConsoleStore,
    principal: &Principal,
    action: AuditAction,
    target: Option<String>,
    detail: Option<String>,
) {
    let entry = AuditEntry {
        target,
        detail,
        client: principal.client.map(|c| c.to_string()),
        ..AuditEntry::new(&principal.actor, action)
    };
    record(store, &entry).await;
}

async fn record(store: &impl ConsoleStore, entry: &AuditEntry) {
    if let Err(error) = store.append_audit(entry).await {
        tracing::error!(%error, action = entry.action.as_str(), "cannot write the audit log");
    }
}

/// [`audit_by`], as one entry per target and window (15 min) with a count: for what repeats, like
/// the range requests of one listening.
pub async fn audit_aggregated(
    store: &impl ConsoleStore,
    principal: &Principal,
    action: AuditAction,
    target: String,
) {
    let entry = AuditEntry {
        target: Some(target),
        client: principal.client.map(|c| c.to_string()),
        ..AuditEntry::new(&principal.actor, action)
    };
    record_aggregated(store, &entry, OffsetDateTime::now_utc()).await;
}

/// Adds one to the entry of this action and target of the current window (or starts one).
async fn record_aggregated(store: &impl ConsoleStore, entry: &AuditEntry, now: OffsetDateTime) {
    if let Err(error) = store.bump_audit(entry, now - THROTTLE_WINDOW).await {
        tracing::error!(%error, action = entry.action.as_str(), "cannot write the audit log");
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
        phone: None,
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

/// Sets (or clears, `None`) the operator's own phone, where a callback rings first. Audited as
/// `phone_changed` by `actor` (never the number).
pub async fn set_phone(
    store: &impl ConsoleStore,
    actor: &Principal,
    email: &Email,
    phone: Option<&crate::domain::PhoneNumber>,
) -> Result<(), OperatorError> {
    if !store.set_operator_phone(email, phone).await? {
        return Err(OperatorError::Unknown);
    }
    audit_by(
        store,
        actor,
        AuditAction::PhoneChanged,
        Some(email.as_str().to_owned()),
        Some(if phone.is_some() { "set" } else { "cleared" }.to_owned()),
    )
    .await;
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

/// A new API token: its name and role, the operator it belongs to (whose role it cannot exceed),
/// and how long it lives (`None`: until revoked).
#[derive(Debug, Clone)]
pub struct TokenSpec<'a> {
    pub name: &'a str,
    pub role: Role,
    pub owner: &'a Email,
    pub lifetime: Option<Duration>,
}

/// Creates an API token; the returned secret is shown once and never stored.
pub async fn create_token(
    store: &impl ConsoleStore,
    spec: &TokenSpec<'_>,
) -> Result<SecretString, OperatorError> {
    if !token_name_ok(spec.name) {
        return Err(OperatorError::TokenName);
    }
    let owner = store
        .operator_by_email(spec.owner)
        .await?
        .ok_or(OperatorError::Unknown)?;
    if owner.disabled {
        return Err(OperatorError::OwnerDisabled);
    }
    if spec.role == Role::Admin && owner.role != Role::Admin {
        return Err(OperatorError::RoleAboveOwner);
    }
    let expires_at = match spec.lifetime {
        Some(lifetime) => Some(
            OffsetDateTime::now_utc()
                + time::Duration::try_from(lifetime).map_err(|_| OperatorError::Lifetime)?,
        ),
        None => None,
    };
    let token = SecretString::from(format!(
        "{TOKEN_PREFIX}{}",
        random_secret()?.expose_secret()
    ));
    let record = ApiTokenRecord {
        id: Uuid::new_v4(),
        name: spec.name.to_owned(),
        role: spec.role,
        token_hash: digest(token.expose_secret()),
        created_at: None,
        revoked_at: None,
        operator_id: Some(owner.id),
        expires_at,
        last_used_at: None,
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
    /// Every place to check a password is taken: retry in a moment.
    #[error("too many logins at once")]
    Busy,
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

fn email_digest(email: &str) -> String {
    digest(&email.trim().to_lowercase())
}

fn email_key(email: &str) -> String {
    format!("email:{}", email_digest(email))
}

fn pair_key(email: &str, address: IpAddr) -> String {
    format!("pair:{}:{address}", email_digest(email))
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

/// The wait of an attempt on an e-mail that has `failures` failures in the window.
pub fn email_delay(failures: usize) -> Duration {
    let Some(beyond) = failures.checked_sub(MAX_FAILURES_PER_EMAIL) else {
        return Duration::ZERO;
    };
    let factor = 1u32 << beyond.min(16);
    FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

/// Whether an attempt goes over a limit: before it is recorded (at the limit already), or after
/// (`recorded`: more than the limit, a concurrent attempt took the last place). Throttled attempts
/// are audited as one entry per key and window, with a count.
async fn over_limits(
    store: &impl ConsoleStore,
    limits: &[(&String, usize)],
    entry: &impl Fn(AuditAction, Option<String>) -> AuditEntry,
    now: OffsetDateTime,
    recorded: bool,
) -> Result<(), LoginError> {
    for &(key, max) in limits {
        let wait = if recorded {
            let count = store
                .login_failures_since(key, now - THROTTLE_WINDOW)
                .await?
                .len();
            if count <= max {
                continue;
            }
            throttled(store, key, max, now)
                .await?
                .unwrap_or(Duration::from_secs(1))
        } else {
            match throttled(store, key, max, now).await? {
                Some(wait) => wait,
                None => continue,
            }
        };
        record_aggregated(
            store,
            &entry(AuditAction::LoginThrottled, Some(key.clone())),
            now,
        )
        .await;
        crate::metrics::console_login("throttled");
        return Err(LoginError::Throttled(wait));
    }
    Ok(())
}

/// An operator's e-mail has `failures` failures in the window, from any address: from
/// [`MAX_FAILURES_PER_EMAIL`] on, the administrators are told (one audit entry per operator and
/// window counting the failures, the metric once per window).
async fn guessing(
    store: &impl ConsoleStore,
    operator: &Operator,
    entry: impl Fn(AuditAction, Option<String>) -> AuditEntry,
    failures: usize,
    now: OffsetDateTime,
) {
    if failures < MAX_FAILURES_PER_EMAIL {
        return;
    }
    let guessed = AuditEntry {
        actor: "-".to_owned(),
        detail: Some(format!(
            "failures={failures} window={}min",
            THROTTLE_WINDOW.as_secs() / 60
        )),
        ..entry(AuditAction::AccountGuessed, Some(operator.id.to_string()))
    };
    record_aggregated(store, &guessed, now).await;
    if failures == MAX_FAILURES_PER_EMAIL {
        crate::metrics::account_guessed();
        tracing::warn!(operator = %operator.id, "an operator's account is being guessed at");
    }
}

/// Checks the credentials and opens a session. Throttled per (e-mail, client address) and per
/// client address: the attempt is recorded first and counted after, so concurrent attempts cannot
/// all pass. An e-mail's failures from every address only slow its attempts down
/// ([`email_delay`]). The password is checked off the async runtime ([`password::HashSlot`]).
/// Every outcome is audited with the client's address (throttled attempts as one entry per key
/// and window, with a count); the typed e-mail is recorded only when it is an operator's.
pub async fn login(
    store: &impl ConsoleStore,
    email: &str,
    password: &SecretString,
    client: IpAddr,
) -> Result<NewSession, LoginError> {
    // No place, no work: a burst is refused before it costs the store or a core anything.
    let Some(slot) = password::HashSlot::admit() else {
        crate::metrics::console_login("busy");
        return Err(LoginError::Busy);
    };
    let now = OffsetDateTime::now_utc();
    let (by_pair, by_address, by_email) = (
        pair_key(email, client),
        address_key(client),
        email_key(email),
    );
    let operator = match Email::try_from(email) {
        Ok(email) => store.operator_by_email(&email).await?,
        Err(_) => None,
    };
    let actor = operator
        .as_ref()
        .map_or_else(|| "-".to_owned(), |o| o.email.to_string());
    let entry = |action: AuditAction, target: Option<String>| AuditEntry {
        target,
        client: Some(client.to_string()),
        ..AuditEntry::new(&actor, action)
    };
    let limits = [
        (&by_pair, MAX_FAILURES_PER_PAIR),
        (&by_address, MAX_FAILURES_PER_ADDRESS),
    ];
    over_limits(store, &limits, &entry, now, false).await?;
    let email_failures = store
        .login_failures_since(&by_email, now - THROTTLE_WINDOW)
        .await?
        .len();
    let delay = email_delay(email_failures);
    let slot = if delay.is_zero() {
        slot
    } else {
        // Waiting attempts hold no place.
        drop(slot);
        tokio::time::sleep(delay).await;
        let Some(slot) = password::HashSlot::admit() else {
            crate::metrics::console_login("busy");
            return Err(LoginError::Busy);
        };
        slot
    };
    // Record the attempt, then count: of concurrent attempts, only those within the limit pass.
    for (key, _) in limits {
        store.record_login_failure(key).await?;
    }
    over_limits(store, &limits, &entry, now, true).await?;
    let valid = if let Some(o) = &operator {
        slot.verify(password, &o.password_hash).await && !o.disabled
    } else {
        slot.verify_dummy(password).await;
        false
    };
    drop(slot);
    if !valid {
        store.record_login_failure(&by_email).await?;
        record(store, &entry(AuditAction::LoginFailed, None)).await;
        crate::metrics::console_login("failed");
        if let Some(o) = &operator {
            guessing(store, o, entry, email_failures + 1, now).await;
        }
        store.prune_login_failures(now - THROTTLE_WINDOW).await?;
        return Err(LoginError::Invalid);
    }
    let Some(operator) = operator else {
        return Err(LoginError::Invalid);
    };
    // The attempt recorded in advance was no failure.
    store.clear_login_failures(&by_pair).await?;
    store.forget_login_failure(&by_address).await?;
    let secret = random_secret().map_err(|_| LoginError::Random)?;
    store
        .create_session(&digest(secret.expose_secret()), operator.id)
        .await?;
    crate::metrics::console_login("ok");
    record(
        store,
        &entry(AuditAction::Login, Some(operator.id.to_string())),
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
    #[error("too many requests with this token; retry in {0:?}")]
    RateLimited(Duration),
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
        client: None,
    })
}

/// Takes one request from the token's bucket; how long until one is free when it is empty.
fn take_api_request(token: Uuid, limit: ApiRate) -> Result<(), Duration> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::Instant;
    static BUCKETS: OnceLock<Mutex<HashMap<Uuid, (f64, Instant)>>> = OnceLock::new();
    let mut buckets = BUCKETS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    let rate = limit.per_second;
    let burst = f64::from(limit.burst);
    let (left, at) = buckets.entry(token).or_insert((burst, now));
    *left = (*left + now.duration_since(*at).as_secs_f64() * rate).min(burst);
    *at = now;
    if *left >= 1.0 {
        *left -= 1.0;
        Ok(())
    } else {
        Err(Duration::from_secs_f64((1.0 - *left) / rate).max(Duration::from_secs(1)))
    }
}

/// The principal of an `Authorization: Bearer` API token: not revoked, not expired, its operator
/// enabled, within its rate (`limit`). Its last use is recorded (at most once a minute).
pub async fn token_principal(
    store: &impl ConsoleStore,
    token: &SecretString,
    limit: ApiRate,
) -> Result<Principal, AuthError> {
    if !token.expose_secret().starts_with(TOKEN_PREFIX) {
        return Err(AuthError::Missing);
    }
    let now = OffsetDateTime::now_utc();
    let record = store
        .api_token(&digest(token.expose_secret()))
        .await?
        .filter(|t| t.revoked_at.is_none())
        .filter(|t| t.expires_at.is_none_or(|e| e > now))
        .ok_or(AuthError::Missing)?;
    if let Some(owner) = record.operator_id {
        store
            .operator_by_id(owner)
            .await?
            .filter(|o| !o.disabled)
            .ok_or(AuthError::Missing)?;
    }
    take_api_request(record.id, limit).map_err(AuthError::RateLimited)?;
    if record.last_used_at.is_none_or(|at| now - at > TOUCH_EVERY) {
        store.touch_api_token(record.id).await?;
    }
    Ok(Principal {
        actor: format!("token:{}", record.name),
        role: record.role,
        session: None,
        client: None,
    })
}

/// Ends a session server-side.
pub async fn logout(store: &impl ConsoleStore, principal: &Principal) -> Result<(), StoreError> {
    if let Some(id_hash) = &principal.session {
        store.revoke_session(id_hash).await?;
        audit_by(store, principal, AuditAction::Logout, None, None).await;
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
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert_eq!(pair_key(" A@b.c", ip), pair_key("a@b.c", ip));
        assert_ne!(
            pair_key("a@b.c", ip),
            pair_key("a@b.c", IpAddr::from([10, 0, 0, 2]))
        );
    }

    #[test]
    fn an_emails_delay_grows_and_is_capped() {
        assert_eq!(email_delay(0), Duration::ZERO);
        assert_eq!(email_delay(MAX_FAILURES_PER_EMAIL - 1), Duration::ZERO);
        assert_eq!(email_delay(MAX_FAILURES_PER_EMAIL), FIRST_DELAY);
        assert_eq!(email_delay(MAX_FAILURES_PER_EMAIL + 1), FIRST_DELAY * 2);
        assert_eq!(email_delay(MAX_FAILURES_PER_EMAIL + 3), FIRST_DELAY * 8);
        assert_eq!(email_delay(10_000), MAX_DELAY);
    }
}

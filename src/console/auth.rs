//! Who is asking. [`PageUser`]: a console page's operator, from the session cookie (else a
//! redirect to the login page). [`ApiUser`]: an API caller, from `Authorization: Bearer` or the
//! session cookie, which then needs the `X-CSRF-Token` header on every state-changing request.
//! The cookie is `HttpOnly; SameSite=Strict; Path=/`, plus `Secure` and the `__Host-` prefix in
//! production.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ConsoleError, PageError};
use super::state::ConsoleState;
use crate::client_addr::ClientAddr;
use crate::operators::{self, ABSOLUTE_TIMEOUT, AuthError, Principal};

/// The CSRF header of cookie-authenticated API requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn cookie_name(production: bool) -> &'static str {
    if production {
        "__Host-myriam_session"
    } else {
        "myriam_session"
    }
}

/// The `Set-Cookie` value opening a session.
pub fn session_cookie(production: bool, secret: &SecretString) -> HeaderValue {
    let secure = if production { "; Secure" } else { "" };
    let value = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        cookie_name(production),
        secret.expose_secret(),
        ABSOLUTE_TIMEOUT.as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value ending it in the browser.
pub fn clear_cookie(production: bool) -> HeaderValue {
    let secure = if production { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
        cookie_name(production)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session secret the request's cookie carries.
fn session_secret(headers: &HeaderMap, production: bool) -> Option<SecretString> {
    let name = cookie_name(production);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| SecretString::from(v.to_owned()))
}

/// The client's address: as the router derived it ([`ClientAddr`]: the TCP peer, or what a
/// trusted proxy says), else the TCP peer.
pub fn client_address(parts: &Parts) -> IpAddr {
    if let Some(client) = parts.extensions.get::<ClientAddr>() {
        return client.ip;
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The client's address as an extractor (never fails).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(parts)))
    }
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn auth_error(e: AuthError) -> ConsoleError {
    match e {
        AuthError::Missing | AuthError::Expired => ConsoleError::Unauthenticated,
        AuthError::RateLimited(wait) => ConsoleError::RateLimited(wait),
        AuthError::Store(e) => ConsoleError::Store(e),
    }
}

/// An operator signed in with the session cookie.
#[derive(Debug, Clone)]
pub struct PageUser {
    pub principal: Principal,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
}

impl PageUser {
    /// A form's CSRF token must be the session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), ConsoleError> {
        if same(token, &self.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::Csrf)
        }
    }

    pub fn require_admin(&self) -> Result<(), ConsoleError> {
        if self.principal.is_admin() {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden)
        }
    }
}

impl<S> FromRequestParts<S> for PageUser
where
    ConsoleState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let console = ConsoleState::from_ref(state);
        let secret = session_secret(&parts.headers, console.production)
            .ok_or(ConsoleError::Unauthenticated)?;
        let mut principal = operators::session_principal(&console.store, &secret)
            .await
            .map_err(auth_error)?;
        principal.client = Some(client_address(parts));
        Ok(Self {
            principal,
            csrf: operators::csrf_token(&secret),
        })
    }
}

/// An API caller: a Bearer token, or the session cookie with the CSRF header on writes.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub principal: Principal,
}

impl ApiUser {
    pub fn require_admin(&self) -> Result<(), ConsoleError> {
        if self.principal.is_admin() {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden)
        }
    }
}

impl<S> FromRequestParts<S> for ApiUser
where
    ConsoleState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let console = ConsoleState::from_ref(state);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| SecretString::from(t.trim().to_owned()));
        if let Some(token) = bearer {
            let mut principal =
                operators::token_principal(&console.store, &token, console.api_rate)
                    .await
                    .map_err(auth_error)?;
            principal.client = Some(client_address(parts));
            return Ok(Self { principal });
        }
        let secret = session_secret(&parts.headers, console.production)
            .ok_or(ConsoleError::Unauthenticated)?;
        let mut principal = operators::session_principal(&console.store, &secret)
            .await
            .map_err(auth_error)?;
        principal.client = Some(client_address(parts));
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same(sent, &operators::csrf_token(&secret)) {
                return Err(ConsoleError::Csrf.into());
            }
        }
        Ok(Self { principal })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_follow_the_environment() {
        let secret = SecretString::from("s3cr3t".to_owned());
        let prod = session_cookie(true, &secret);
        assert_eq!(
            prod.to_str().unwrap(),
            "__Host-myriam_session=s3cr3t; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure"
        );
        let dev = session_cookie(false, &secret);
        assert!(!dev.to_str().unwrap().contains("Secure"));
        assert!(
            clear_cookie(true)
                .to_str()
                .unwrap()
                .contains("Max-Age=0; Secure")
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; myriam_session=xyz; c=d"),
        );
        assert_eq!(
            session_secret(&headers, false).unwrap().expose_secret(),
            "xyz"
        );
        assert!(session_secret(&headers, true).is_none());
    }
}

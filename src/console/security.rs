//! The security headers of every console and API response, and the refusal of cross-site
//! state-changing requests.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::{ApiError, ConsoleError, PageError};

/// `Content-Security-Policy` of every console and API response: scripts and styles from the
/// gateway's own files only (no inline script), no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// `Strict-Transport-Security` when the console is served over https: a year, subdomains
/// included (the gateway's host name serves nothing else).
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Adds the security headers; every response but the static files is `no-store` (they all carry
/// personal data or session state). `https`: the console is served over TLS (HSTS).
pub async fn security_headers(https: bool, request: Request, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/console/static/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if is_static {
            "public, max-age=300"
        } else {
            "no-store"
        }),
    );
    response
}

/// Whether a state-changing request comes from the console's own pages, as far as the browser
/// says. `Sec-Fetch-Site`, when sent (every current browser), decides: `same-origin`, or `none`
/// (typed by the user). Without it, `Origin`, when sent, must name the host the request was sent
/// to — except `null`, which browsers send for a form posted from a `Referrer-Policy: no-referrer`
/// page (the console's): such an old browser still passes. A request with neither header (a
/// script) passes: API tokens and the session's CSRF token still guard it.
pub fn same_origin(method: &axum::http::Method, headers: &axum::http::HeaderMap) -> bool {
    use axum::http::Method;
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}").trim().to_ascii_lowercase())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = text(header::ORIGIN) else {
        return true;
    };
    if origin == "null" {
        return true;
    }
    let Some(host) = text(header::HOST) else {
        return false;
    };
    let Ok(origin) = url::Url::parse(&origin) else {
        return false;
    };
    let authority = match (origin.host_str(), origin.port()) {
        (Some(h), Some(port)) => format!("{h}:{port}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return false,
    };
    authority == host
}

/// Refuses (403) a cross-site state-changing request to the console or the API, the login
/// included (see [`same_origin`]).
pub async fn refuse_cross_site(request: Request, next: Next) -> Response {
    use axum::response::IntoResponse as _;
    if same_origin(request.method(), request.headers()) {
        return next.run(request).await;
    }
    tracing::warn!(path = %request.uri().path(), "cross-site request refused");
    if request.uri().path().starts_with("/api/") {
        ApiError::from(ConsoleError::Csrf).into_response()
    } else {
        PageError::from(ConsoleError::Csrf).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_writes_are_refused() {
        use axum::http::{HeaderMap, Method};
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let host = ("host", "gw.bp.test");
        assert!(same_origin(&Method::POST, &headers(&[host])));
        assert!(same_origin(
            &Method::POST,
            &headers(&[
                host,
                ("origin", "https://gw.bp.test"),
                ("sec-fetch-site", "same-origin")
            ])
        ));
        assert!(same_origin(
            &Method::POST,
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080")
            ])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[host, ("origin", "https://evil.example")])
        ));
        // A form posted from a no-referrer page: `Origin: null`, and Sec-Fetch-Site decides.
        assert!(same_origin(
            &Method::POST,
            &headers(&[host, ("origin", "null"), ("sec-fetch-site", "same-origin")])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[host, ("origin", "null"), ("sec-fetch-site", "cross-site")])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[
                host,
                ("origin", "https://gw.bp.test"),
                ("sec-fetch-site", "cross-site")
            ])
        ));
        assert!(!same_origin(
            &Method::PUT,
            &headers(&[host, ("sec-fetch-site", "cross-site")])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[host, ("sec-fetch-site", "same-site")])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:9090")
            ])
        ));
        assert!(same_origin(
            &Method::GET,
            &headers(&[host, ("sec-fetch-site", "cross-site")])
        ));
    }
}

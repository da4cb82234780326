//! `supabase_gateway`: the part of Supabase's API gateway a local PostgREST lacks, for tests and
//! development only (`scripts/supabase-local.sh`, `tests/helpers`).
//!
//! Serves `/rest/v1/*` and forwards it to PostgREST without the prefix, as Supabase's Kong route
//! does; answers 401 when the `apikey` header is missing or not one of the configured keys; when
//! the request has no `Authorization`, sends the `apikey` as the bearer token.
//!
//! Environment: `MYRIAM_GATEWAY_UPSTREAM` (PostgREST base URL, required), `MYRIAM_GATEWAY_API_KEYS`
//! (comma-separated accepted keys, required), `MYRIAM_GATEWAY_LISTEN` (default `127.0.0.1:54321`;
//! port 0 picks one), `MYRIAM_GATEWAY_ACCESS_LOG=1` (one `METHOD /path status` line per forwarded
//! request on stderr, no query, no headers). Prints `listening on <addr>` once ready. Keys are never
//! printed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

struct Gateway {
    upstream: String,
    keys: Vec<SecretString>,
    client: reqwest::Client,
    /// `MYRIAM_GATEWAY_ACCESS_LOG=1`: one line per forwarded request on stderr (method, path
    /// without the query, status), for counting what PostgREST receives (`scripts/bench-webhooks.sh`).
    access_log: bool,
}

/// Hop-by-hop headers are not forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "content-length"
    )
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

async fn forward(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(rest) = parts.uri.path().strip_prefix("/rest/v1") else {
        return json_error(StatusCode::NOT_FOUND, "no Route matched with those values");
    };
    let Some(apikey) = parts.headers.get("apikey").and_then(|v| v.to_str().ok()) else {
        return json_error(StatusCode::UNAUTHORIZED, "No API key found in request");
    };
    let known = gw
        .keys
        .iter()
        .any(|k| bool::from(k.expose_secret().as_bytes().ct_eq(apikey.as_bytes())));
    if !known {
        return json_error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != "apikey" {
            headers.append(name.clone(), value.clone());
        }
    }
    if !headers.contains_key(header::AUTHORIZATION) {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {apikey}")) {
            headers.insert(header::AUTHORIZATION, v);
        }
    }
    let mut url = format!(
        "{}{}",
        gw.upstream,
        if rest.is_empty() { "/" } else { rest }
    );
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    };
    let logged = gw
        .access_log
        .then(|| format!("{} {}", parts.method, parts.uri.path()));
    let upstream = gw
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    match upstream {
        Ok(response) => {
            let status = response.status();
            if let Some(line) = &logged {
                eprintln!("{line} {}", status.as_u16());
            }
            let mut out = HeaderMap::new();
            for (name, value) in response.headers() {
                if !hop_by_hop(name) {
                    out.append(name.clone(), value.clone());
                }
            }
            let bytes: Bytes = response.bytes().await.unwrap_or_default();
            let mut answer = Response::new(Body::from(bytes));
            *answer.status_mut() = status;
            *answer.headers_mut() = out;
            answer
        }
        Err(_) => json_error(
            StatusCode::BAD_GATEWAY,
            "An invalid response was received from the upstream server",
        ),
    }
}

fn main() -> ExitCode {
    let upstream = std::env::var("MYRIAM_GATEWAY_UPSTREAM").unwrap_or_default();
    let keys: Vec<SecretString> = std::env::var("MYRIAM_GATEWAY_API_KEYS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| SecretString::from(k.to_owned()))
        .collect();
    if upstream.is_empty() || keys.is_empty() {
        eprintln!("supabase_gateway: set MYRIAM_GATEWAY_UPSTREAM and MYRIAM_GATEWAY_API_KEYS");
        return ExitCode::from(2);
    }
    let Ok(listen) = std::env::var("MYRIAM_GATEWAY_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:54321".to_owned())
        .parse::<SocketAddr>()
    else {
        eprintln!("supabase_gateway: MYRIAM_GATEWAY_LISTEN is malformed: expected IP:port");
        return ExitCode::from(2);
    };
    let gateway = Arc::new(Gateway {
        upstream: upstream.trim_end_matches('/').to_owned(),
        keys,
        client: reqwest::Client::new(),
        access_log: std::env::var("MYRIAM_GATEWAY_ACCESS_LOG").is_ok_and(|v| v == "1"),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("listening on {}", listener.local_addr()?);
        let app = Router::new().fallback(forward).with_state(gateway);
        // SIGTERM (tests, `make supabase-down`) or Ctrl-C end it cleanly.
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            })
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supabase_gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

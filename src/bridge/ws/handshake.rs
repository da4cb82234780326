//! The two WebSocket opening handshakes (RFC 6455 §4): the server side for Twilio's Media Stream
//! (an axum extractor and a `101 Switching Protocols` answer over hyper's upgrade), and the client
//! side for the Vapi call's socket (`ws://` or `wss://`, `TCP_NODELAY`, a bearer header). Both hand
//! the raw connection to [`WsConn`] together with any bytes read past the handshake.

use std::future::Future;
use std::io;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_util::either::Either;

use super::{Role, WsConn};

/// RFC 6455 §1.3: the GUID appended to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest handshake response the client reads.
const MAX_RESPONSE: usize = 16 * 1024;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Whether any `name` header lists `token` (comma-separated, case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    lists_token(
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()),
        token,
    )
}

/// Whether any of `values` lists `token` (comma-separated, case-insensitive).
fn lists_token<'a>(mut values: impl Iterator<Item = &'a str>, token: &str) -> bool {
    values.any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Why a request is not a WebSocket opening handshake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpgradeRejection {
    #[error("a WebSocket handshake is a GET request")]
    NotGet,
    #[error("missing `Connection: upgrade` or `Upgrade: websocket`")]
    NotUpgrade,
    #[error("unsupported Sec-WebSocket-Version (13 is supported)")]
    BadVersion,
    #[error("missing Sec-WebSocket-Key")]
    NoKey,
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        let status = match self {
            UpgradeRejection::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            UpgradeRejection::BadVersion | UpgradeRejection::NotUpgradable => {
                StatusCode::UPGRADE_REQUIRED
            }
            UpgradeRejection::NotUpgrade | UpgradeRejection::NoKey => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, format!("{self}\n")).into_response();
        if self == UpgradeRejection::BadVersion {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// The socket of a Twilio Media Stream: the plain TCP connection when hyper hands it back whole,
/// otherwise hyper's upgraded connection.
pub type ServerIo = Either<TcpStream, TokioIo<hyper::upgrade::Upgraded>>;

/// A validated WebSocket opening handshake, ready to be answered with `101`.
#[derive(Debug)]
pub struct ServerUpgrade {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for ServerUpgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(UpgradeRejection::NotGet);
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(UpgradeRejection::NotUpgrade);
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(UpgradeRejection::BadVersion);
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .filter(|k| !k.is_empty())
            .ok_or(UpgradeRejection::NoKey)?;
        let accept = HeaderValue::from_str(&accept_key(key.as_bytes()))
            .map_err(|_| UpgradeRejection::NoKey)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeRejection::NotUpgradable)?;
        Ok(Self { accept, on_upgrade })
    }
}

impl ServerUpgrade {
    /// Answers `101 Switching Protocols`; once hyper hands the connection over, `callback` runs on
    /// its own task with the WebSocket.
    pub fn on_upgrade<F, Fut>(self, read_size: usize, max_message: usize, callback: F) -> Response
    where
        F: FnOnce(WsConn<ServerIo>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    tracing::debug!(%error, "WebSocket upgrade did not complete");
                    return;
                }
            };
            // axum serves `TokioIo<TcpStream>`: taking it back skips hyper's boxed I/O layer.
            let conn = match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => WsConn::new(
                    Either::Left(parts.io.into_inner()),
                    Role::Server,
                    &parts.read_buf,
                    read_size,
                    max_message,
                ),
                Err(upgraded) => WsConn::new(
                    Either::Right(TokioIo::new(upgraded)),
                    Role::Server,
                    &[],
                    read_size,
                    max_message,
                ),
            };
            callback(conn).await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        response
    }
}

/// The socket of a Vapi call: plain TCP for `ws://`, TLS for `wss://`.
pub type ClientIo = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// Why the client handshake failed. Never quotes the URL (Vapi's carries a call token).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the WebSocket URL is not a ws:// or wss:// URL with a host")]
    BadUrl,
    #[error("cannot connect: {0}")]
    Io(#[from] io::Error),
    #[error("the server answered the WebSocket handshake with HTTP {0}")]
    Status(u16),
    #[error("the WebSocket handshake response is invalid: {0}")]
    BadResponse(&'static str),
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// Opens a client WebSocket to `url` with extra request `headers` (e.g. `Authorization`); `wss://`
/// servers are checked against the webpki root certificates.
pub async fn connect(
    url: &str,
    headers: &[(&str, &str)],
    read_size: usize,
    max_message: usize,
) -> Result<WsConn<ClientIo>, ConnectError> {
    connect_with(url, headers, read_size, max_message, tls_config()).await
}

/// [`connect`] with the TLS client configuration given (tests trust their own certificate).
pub async fn connect_with(
    url: &str,
    headers: &[(&str, &str)],
    read_size: usize,
    max_message: usize,
    tls_config: Arc<rustls::ClientConfig>,
) -> Result<WsConn<ClientIo>, ConnectError> {
    let url = url::Url::parse(url).map_err(|_| ConnectError::BadUrl)?;
    let tls = match url.scheme() {
        "ws" => false,
        "wss" => true,
        _ => return Err(ConnectError::BadUrl),
    };
    let host = url.host_str().ok_or(ConnectError::BadUrl)?;
    let port = url.port_or_known_default().ok_or(ConnectError::BadUrl)?;
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare_host, port)).await?;
    tcp.set_nodelay(true)?;
    let mut io: ClientIo = if tls {
        let name = rustls::pki_types::ServerName::try_from(bare_host.to_owned())
            .map_err(|_| ConnectError::BadUrl)?;
        let stream = tokio_rustls::TlsConnector::from(tls_config)
            .connect(name, tcp)
            .await?;
        Either::Right(Box::new(stream))
    } else {
        Either::Left(tcp)
    };

    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let host_header = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    io.write_all(request.as_bytes()).await?;
    io.flush().await?;
    drop(request);

    let mut buf = Vec::with_capacity(1024);
    let (head_len, already_read) = loop {
        let mut chunk = [0u8; 1024];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(ConnectError::BadResponse(
                "connection closed before the response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut fields);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                check_response(&response, &key)?;
                break (len, buf.len() - len);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE => {}
            Ok(httparse::Status::Partial) => {
                return Err(ConnectError::BadResponse("response headers too large"));
            }
            Err(_) => return Err(ConnectError::BadResponse("not an HTTP response")),
        }
    };
    Ok(WsConn::new(
        io,
        Role::Client,
        &buf[head_len..head_len + already_read],
        read_size,
        max_message,
    ))
}

/// The values of every `name` header, as text.
fn values<'a>(
    response: &'a httparse::Response<'_, '_>,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    response
        .headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
}

fn check_response(response: &httparse::Response<'_, '_>, key: &str) -> Result<(), ConnectError> {
    let code = response.code.unwrap_or(0);
    if code != 101 {
        return Err(ConnectError::Status(code));
    }
    let header = |name| values(response, name);
    if !lists_token(header("upgrade"), "websocket") || !lists_token(header("connection"), "upgrade")
    {
        return Err(ConnectError::BadResponse("no `Upgrade: websocket`"));
    }
    if header("sec-websocket-accept").next() != Some(accept_key(key.as_bytes()).as_str()) {
        return Err(ConnectError::BadResponse("wrong Sec-WebSocket-Accept"));
    }
    if header("sec-websocket-extensions").next().is_some() {
        return Err(ConnectError::BadResponse("an extension was not asked for"));
    }
    Ok(())
}

//! The application: router, listeners, shutdown and drain.
//!
//! [`Application::build`] binds its own listeners, so tests pass `127.0.0.1:0` and read the port
//! back. [`Application::run_until_stopped`] serves until the [`Lifecycle`]'s token is cancelled
//! (SIGTERM / Ctrl-C in `main`), then stops accepting, lets in-flight requests finish, and waits for
//! every tracked task (calls, flushes) for at most `DRAIN_TIMEOUT_SECS`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::client_addr::{ClientAddr, ClientIpPolicy, Origin};
use crate::config::Settings;
pub use crate::lifecycle::Lifecycle;

/// How long calls still live at the drain's deadline get to hang up once told.
pub const HARD_STOP_WAIT: Duration = Duration::from_secs(2);

/// The least time the last outbox flush gets, after the calls ended (their last writes).
pub const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// How much longer than `DRAIN_TIMEOUT_SECS` a shutdown may take at worst ([`HARD_STOP_WAIT`]
/// then [`FINAL_FLUSH`]): the platform's grace period must be at least the sum, plus a margin.
pub const DRAIN_OVERRUN: Duration =
    Duration::from_secs(HARD_STOP_WAIT.as_secs() + FINAL_FLUSH.as_secs());
use crate::metrics::names;
use crate::routes::{error, health, media, twilio, vapi};
pub use crate::state::AppState;
use crate::store::{AnyStore, OpenError, StoreError};
use crate::telemetry;
use crate::twilio::WebhookAuth;

/// Largest Twilio webhook body (they are a few KiB); larger gets 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest Vapi message (end-of-call reports carry transcripts); larger gets 413.
pub const MAX_VAPI_BODY_BYTES: usize = 1024 * 1024;
/// Twilio gives up on a webhook after 15 s; answer well before.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send its request headers (Twilio sends them at once).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest buffer a connection's request headers may fill (hyper's minimum is 8 KiB).
pub const MAX_HEADER_BUFFER: usize = 16 * 1024;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the store: {0}")]
    Store(#[from] OpenError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A built, bound, not yet running gateway.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    router: Router,
    state: AppState,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    Ok((listener, local))
}

impl Application {
    /// Binds `BIND_ADDR` (and `PROMETHEUS_PORT` on the same IP when set) and builds the router.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let (listener, local_addr) = bind(settings.bind_addr).await?;
        let metrics_listener = match settings.telemetry.prometheus_port {
            Some(port) => Some(bind(SocketAddr::new(metrics_ip(&settings), port)).await?),
            None => None,
        };
        if metrics_listener.is_some() {
            let handle = telemetry::prometheus();
            drop(handle);
            metrics::gauge!(
                names::BUILD_INFO,
                "version" => crate::build_info::VERSION,
                "revision" => crate::build_info::REVISION,
                "environment" => settings.environment.as_str()
            )
            .set(1.0);
        }
        let store = AnyStore::open(&settings)?;
        crate::domain::PhoneNumber::load_metadata();
        let lifecycle = Lifecycle::default();
        if let AnyStore::Supabase(outbox) = &store {
            outbox.spawn_worker(lifecycle.tracker(), lifecycle.shutdown_token());
        }
        tracing::info!(store = store.kind(), "store opened");
        if let WebhookAuth::Bypass(why) = WebhookAuth::from_settings(&settings) {
            tracing::warn!(reason = why, "Twilio signatures are NOT checked");
        }
        let state = AppState::new(settings, store, lifecycle);
        if let Some(sender) = crate::alerts::AlertSender::from_settings(
            &state.settings,
            state.store.clone(),
            state.calls.alert_policy().wake.clone(),
        ) {
            sender.spawn(state.lifecycle.tracker(), state.lifecycle.shutdown_token());
            tracing::info!(
                staff = state.settings.office.alerts.is_some(),
                caller = state.settings.office.caller_sms.is_some(),
                "SMS sender is on"
            );
        } else {
            tracing::info!("SMS alerts are off (ALERT_SMS_TO unset, CALLER_SMS off)");
        }
        state
            .eraser
            .clone()
            .spawn(state.lifecycle.tracker(), state.lifecycle.shutdown_token());
        Ok(Self {
            listener,
            local_addr,
            metrics_listener,
            router: router(state.clone()),
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Where `/metrics` is served, when `PROMETHEUS_PORT` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, a)| *a)
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.state.lifecycle.clone()
    }

    /// The store this application writes to.
    pub fn store(&self) -> AnyStore {
        self.state.store.clone()
    }

    /// Replays the outbox (with Supabase) until it is empty, a replay fails, or `deadline`;
    /// how many writes are left.
    async fn flush_outbox(
        store: &AnyStore,
        deadline: tokio::time::Instant,
    ) -> Result<usize, StoreError> {
        let AnyStore::Supabase(outbox) = store else {
            return Ok(0);
        };
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        outbox.flush(budget).await
    }

    /// Serves until the lifecycle's shutdown token is cancelled, then drains.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let lifecycle = self.state.lifecycle.clone();
        let drain_timeout = self.state.settings.drain_timeout;
        let token = lifecycle.shutdown_token();

        if let Some((listener, _)) = self.metrics_listener {
            let metrics_token = token.clone();
            let bearer = self.state.settings.telemetry.metrics_token.clone();
            lifecycle.tracker().spawn(async move {
                if let Err(error) = serve_metrics(listener, bearer, metrics_token).await {
                    tracing::error!(%error, "metrics listener failed");
                }
            });
        }

        let store = self.state.store.clone();
        let server = serve_http1(self.listener, self.router, token.clone());
        let mut server = std::pin::pin!(server);
        // One deadline for the whole drain, from the signal: requests, live calls and the
        // outbox share `DRAIN_TIMEOUT_SECS`, so the platform's grace period can be sized from it
        // (`DRAIN_TIMEOUT_SECS` + `DRAIN_OVERRUN`).
        let mut signalled = None;
        let result = tokio::select! {
            result = &mut server => result,
            () = token.cancelled() => {
                let deadline = tokio::time::Instant::now() + drain_timeout;
                signalled = Some(deadline);
                tracing::info!(timeout_secs = drain_timeout.as_secs(), "shutting down: draining requests and calls");
                // In-flight HTTP requests get the drain timeout to finish.
                if let Ok(result) = tokio::time::timeout_at(deadline, &mut server).await {
                    result
                } else {
                    tracing::warn!("drain timeout reached with HTTP requests still in flight");
                    Ok(())
                }
            }
        };
        // The server can also stop on its own (listener error): make sure every task is told.
        token.cancel();
        let deadline = signalled.unwrap_or_else(|| tokio::time::Instant::now() + drain_timeout);
        lifecycle.tracker().close();
        // Live calls go on while what is queued for Supabase is replayed (an unreachable
        // Supabase never eats the calls' time: a failed replay ends the flush).
        let flush = Self::flush_outbox(&store, deadline);
        let calls = tokio::time::timeout_at(deadline, lifecycle.tracker().wait());
        let (calls, _) = tokio::join!(calls, flush);
        if calls.is_err() {
            tracing::warn!(
                still_running = lifecycle.tracker().len(),
                "drain timeout reached: ending the calls still live"
            );
            lifecycle.stop_now();
            // Calls hang up promptly once told; do not wait for ever on a stuck one.
            let _ = tokio::time::timeout(HARD_STOP_WAIT, lifecycle.tracker().wait()).await;
        }
        // What the calls wrote while they ended, however late.
        let last = deadline.max(tokio::time::Instant::now() + FINAL_FLUSH);
        match Self::flush_outbox(&store, last).await {
            Ok(0) => {}
            Ok(left) => {
                tracing::warn!(left, "outbox not empty at shutdown; replayed on next start");
            }
            Err(error) => tracing::error!(%error, "cannot flush the outbox"),
        }
        tracing::info!("stopped");
        result
    }
}

/// Serves HTTP/1.1 with upgrades on `listener` until `token` is cancelled, then lets every open
/// connection finish its request (graceful shutdown) and returns once all are closed.
///
/// This is what `axum::serve` does, over hyper's HTTP/1 connection directly, so that every connection
/// gets `TCP_NODELAY` (Media Streams are small frames every 20 ms) and a bound on the time its request
/// headers may take ([`HEADER_READ_TIMEOUT`]: a slow-loris client is cut off instead of holding a
/// connection). Upgrades (the Media Stream) are handed to axum's WebSocket extractor. The gateway
/// serves HTTP/1.1 only (Twilio and Vapi speak it).
pub(crate) async fn serve_http1(
    listener: TcpListener,
    router: Router,
    token: CancellationToken,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // Per-connection failures (reset before accept) are routine; anything else
                    // (too many open files) gets a pause instead of a busy loop.
                    if !matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tracing::error!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    continue;
                }
            },
            () = token.cancelled() => break,
        };
        // Media Streams are small frames every 20 ms: no Nagle delay on any connection.
        let _ = tcp.set_nodelay(true);
        // The peer's address rides in the request (`ConnectInfo`): login throttling per client.
        let peer = tcp.peer_addr().ok();
        let service = hyper_util::service::TowerToHyperService::new(
            tower::ServiceBuilder::new()
                .map_request(
                    move |mut request: axum::http::Request<hyper::body::Incoming>| {
                        if let Some(peer) = peer {
                            request
                                .extensions_mut()
                                .insert(axum::extract::ConnectInfo(peer));
                        }
                        request
                    },
                )
                .service(router.clone()),
        );
        let token = token.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEADER_BUFFER)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = token.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// The gateway's routes and middleware.
pub fn router(state: AppState) -> Router {
    let small = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/twilio/voice", post(twilio::voice))
        .route("/twilio/gather", post(twilio::gather))
        .route("/twilio/status", post(twilio::status))
        .route("/twilio/stream-ended", post(twilio::stream_ended))
        .route("/twilio/dial-done", post(twilio::dial_done))
        .route("/twilio/voicemail", post(twilio::voicemail))
        .route("/twilio/recording-status", post(twilio::recording_status))
        .route("/twilio/handoff", post(twilio::handoff))
        .route("/twilio/callback/answer", post(twilio::callback_answer))
        .route("/twilio/callback/press", post(twilio::callback_press))
        .route("/twilio/callback/dial", post(twilio::callback_dial))
        .route("/twilio/callback/status", post(twilio::callback_status))
        .route("/twilio/sms-status", post(twilio::sms_status))
        .route("/twilio/media", get(media::media))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    // One live-updates poller for the instance, whatever the number of open lists.
    let live = crate::console::live::LiveHub::new(
        state.store.clone(),
        state.settings.live.clone(),
        state.lifecycle.tracker().clone(),
        state.lifecycle.shutdown_token(),
    );
    let console = crate::console::router(state.settings.secure_transport())
        .layer(axum::Extension(live))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    let large = Router::new()
        .route("/vapi/webhook", post(vapi::webhook))
        .layer(DefaultBodyLimit::max(MAX_VAPI_BODY_BYTES))
        .layer(RequestBodyLimitLayer::new(MAX_VAPI_BODY_BYTES));
    let client_ip = Arc::new(state.settings.client_ip.clone());
    Router::new()
        .merge(small)
        .merge(large)
        .merge(console)
        // Failures are logged inside the request's Sentry scope (route tag, call context).
        .route_layer(middleware::from_fn(error::log_failures))
        .route_layer(middleware::from_fn(record_metrics))
        .fallback(not_found)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                // The client's address, derived once (TRUSTED_PROXIES, CLIENT_IP_HEADER): the
                // log span, the login throttle and the audit log all read it.
                .map_request(move |mut request: Request<Body>| {
                    derive_client_address(&client_ip, &mut request);
                    request
                })
                .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
                        let request_id = request
                            .headers()
                            .get(&REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        // Formatted only if the span is recorded, without an allocation.
                        let client =
                            SpanClient(request.extensions().get::<ClientAddr>().map(|c| c.ip));
                        // The path only: query strings may carry caller data.
                        tracing::info_span!(
                            "request",
                            method = %request.method(),
                            path = %request.uri().path(),
                            request_id = %request_id,
                            client = %client,
                        )
                    }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    REQUEST_TIMEOUT,
                )),
        )
}

/// The request span's `client` field: the client's address, or `-` when none was set.
struct SpanClient(Option<std::net::IpAddr>);

impl std::fmt::Display for SpanClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Sets the request's [`ClientAddr`] from its TCP peer (`ConnectInfo`) and, when the peer is a
/// trusted proxy, the header the policy names.
fn derive_client_address(policy: &ClientIpPolicy, request: &mut Request<Body>) {
    let Some(peer) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return;
    };
    let client = policy.client(peer, request.headers());
    if client.origin == Origin::Malformed {
        metrics::counter!(
            names::CLIENT_IP_HEADER_MALFORMED,
            "header" => policy.header.as_str()
        )
        .increment(1);
        tracing::warn!(
            header = policy.header.as_str(),
            "malformed client address header from a trusted proxy; the proxy's address is used"
        );
    }
    request.extensions_mut().insert(client);
}

async fn not_found(request: Request) -> Response {
    metrics::counter!(
        names::HTTP_REQUESTS,
        "route" => "unmatched",
        "method" => method_label(request.method()),
        "status" => "404"
    )
    .increment(1);
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Bounded label: unusual methods collapse into "other".
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Counts requests and observes latency by route template (never the raw path), method and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let response = telemetry::with_request_scope(&route, next.run(request)).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(names::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(names::HTTP_DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Where `/metrics` listens: `BIND_ADDR`'s IP when a bearer token guards it, else loopback only.
fn metrics_ip(settings: &Settings) -> std::net::IpAddr {
    if settings.telemetry.metrics_token.is_some() {
        settings.bind_addr.ip()
    } else if settings.bind_addr.is_ipv6() {
        std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
    } else {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    }
}

/// Whether a scrape carries the metrics token (constant-time comparison); always when none is set.
fn metrics_authorized(
    expected: Option<&secrecy::SecretString>,
    headers: &axum::http::HeaderMap,
) -> bool {
    use secrecy::ExposeSecret as _;
    use subtle::ConstantTimeEq as _;
    let Some(expected) = expected else {
        return true;
    };
    let sent = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(sent.as_bytes().ct_eq(expected.expose_secret().as_bytes()))
}

async fn serve_metrics(
    listener: TcpListener,
    bearer: Option<secrecy::SecretString>,
    token: CancellationToken,
) -> std::io::Result<()> {
    let handle = telemetry::prometheus();
    let upkeep_handle = handle.clone();
    let upkeep_token = token.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(telemetry::UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                () = upkeep_token.cancelled() => break,
                _ = tick.tick() => upkeep_handle.run_upkeep(),
            }
        }
    });
    let app = Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| {
            let handle = handle.clone();
            let authorized = metrics_authorized(bearer.as_ref(), &headers);
            async move {
                if !authorized {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                        String::new(),
                    )
                        .into_response();
                }
                crate::metrics::update_process_metrics();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(token.cancelled_owned())
        .await
}

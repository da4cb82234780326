//! Logs (tracing), error reports (Sentry) and metrics (Prometheus).
//!
//! Initialised once per process from [`TelemetrySettings`]. Nothing here logs a secret: the Sentry DSN
//! is parsed from its `SecretString` and only the fact that Sentry is on is reported.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{Environment, LogFormat, Settings, TelemetrySettings};

/// Histogram buckets for request and store latencies, in seconds (1 ms … 5 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("SENTRY_DSN is malformed: expected a Sentry DSN")]
    SentryDsn,
    #[error("RUST_LOG is malformed: {0}")]
    Filter(String),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Keeps Sentry alive until dropped (flushes pending events on drop).
#[must_use = "dropping the guard shuts Sentry down"]
pub struct TelemetryGuard {
    pub sentry_enabled: bool,
    _sentry: Option<sentry::ClientInitGuard>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("sentry_enabled", &self.sentry_enabled)
            .finish_non_exhaustive()
    }
}

/// Installs the global tracing subscriber and Sentry. Call once, before the async runtime starts.
pub fn init(settings: &Settings) -> Result<TelemetryGuard, TelemetryError> {
    crate::redact::show_personal_data_in_logs(settings.telemetry.log_pii);
    let sentry = init_sentry(&settings.telemetry, settings.environment)?;
    init_tracing(&settings.telemetry)?;
    Ok(TelemetryGuard {
        sentry_enabled: sentry.is_some(),
        _sentry: sentry,
    })
}

fn init_tracing(settings: &TelemetrySettings) -> Result<(), TelemetryError> {
    let directives = settings.rust_log.as_deref().unwrap_or("info");
    let filter =
        EnvFilter::try_new(directives).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let max_level = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let fmt = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(ErrorLayer::new().with_filter(LevelFilter::ERROR))
        .with(
            BreadcrumbLayer::new().with_filter(
                filter_fn(|meta| matches!(*meta.level(), Level::WARN | Level::INFO))
                    // Without a hint the registry must assume this layer wants TRACE, and every
                    // disabled `trace!` on the audio path would be evaluated instead of skipped.
                    .with_max_level_hint(LevelFilter::INFO),
            ),
        )
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    // `try_init` bridges the `log` crate (tungstenite, rustls, hyper's dependencies) with the maximum
    // level left at TRACE, so every `log::trace!` on the audio path would reach the subscriber only to
    // be filtered there. Cap `log` at what the filter can ever enable: disabled records then cost one
    // integer comparison.
    log::set_max_level(as_log_level(max_level));
    Ok(())
}

fn as_log_level(level: LevelFilter) -> log::LevelFilter {
    match level.into_level() {
        None => log::LevelFilter::Off,
        Some(Level::ERROR) => log::LevelFilter::Error,
        Some(Level::WARN) => log::LevelFilter::Warn,
        Some(Level::INFO) => log::LevelFilter::Info,
        Some(Level::DEBUG) => log::LevelFilter::Debug,
        Some(Level::TRACE) => log::LevelFilter::Trace,
    }
}

fn init_sentry(
    settings: &TelemetrySettings,
    environment: Environment,
) -> Result<Option<sentry::ClientInitGuard>, TelemetryError> {
    let Some(dsn) = &settings.sentry_dsn else {
        return Ok(None);
    };
    let dsn: sentry::types::Dsn = dsn
        .expose_secret()
        .parse()
        .map_err(|_| TelemetryError::SentryDsn)?;
    let mut options = sentry::ClientOptions::new();
    options.dsn = Some(dsn);
    options.release = sentry::release_name!();
    options.environment = Some(environment.as_str().into());
    options.send_default_pii = false;
    options.attach_stacktrace = true;
    Ok(Some(sentry::init(options)))
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use (several test applications in one
/// process share it).
///
/// # Panics
/// Never: the bucket list is a non-empty constant.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .expect("static, non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; ours then renders nothing new.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe_metrics();
            handle
        })
        .clone()
}

/// How often the exporter drains histogram buffers.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Names and help texts of the metrics this module's middleware records.
pub mod names {
    pub const HTTP_REQUESTS: &str = "myriam_http_requests_total";
    pub const HTTP_DURATION: &str = "myriam_http_request_duration_seconds";
    pub const BUILD_INFO: &str = "myriam_build_info";
}

fn describe_metrics() {
    crate::metrics::describe_and_register();
}

//! Logs (tracing), error reports (Sentry) and metrics (Prometheus).
//!
//! Initialised once per process from [`TelemetrySettings`]. Nothing here logs a secret: the Sentry DSN
//! is parsed from its `SecretString` and only the fact that Sentry is on is reported.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, Settings, TelemetrySettings};
use crate::environment::Environment;

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
    install(settings, std::io::stdout, None)
}

/// [`init`] with the log output and Sentry transport chosen by the caller (tests capture both).
pub fn install<W>(
    settings: &Settings,
    writer: W,
    sentry_transport: Option<Arc<dyn sentry::TransportFactory>>,
) -> Result<TelemetryGuard, TelemetryError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    crate::redact::show_personal_data_in_logs(settings.telemetry.log_pii);
    let sentry = init_sentry(&settings.telemetry, settings.environment, sentry_transport)?;
    init_tracing(&settings.telemetry, writer)?;
    Ok(TelemetryGuard {
        sentry_enabled: sentry.is_some(),
        _sentry: sentry,
    })
}

fn init_tracing<W>(settings: &TelemetrySettings, writer: W) -> Result<(), TelemetryError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let directives = settings.rust_log.as_deref().unwrap_or("info");
    let filter =
        EnvFilter::try_new(directives).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let max_level = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let fmt = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
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
    transport: Option<Arc<dyn sentry::TransportFactory>>,
) -> Result<Option<sentry::ClientInitGuard>, TelemetryError> {
    let Some(dsn) = &settings.sentry_dsn else {
        return Ok(None);
    };
    let dsn: sentry::types::Dsn = dsn
        .expose_secret()
        .parse()
        .map_err(|_| TelemetryError::SentryDsn)?;
    let mut options = sentry_options(environment);
    options.dsn = Some(dsn);
    if transport.is_some() {
        options.transport = transport;
    }
    Ok(Some(sentry::init(options)))
}

/// Sentry's options: release and environment, no default PII, no request bodies, and the
/// [`crate::redact`] scrubber on every event and breadcrumb (whatever `LOG_PII` says).
pub fn sentry_options(environment: Environment) -> sentry::ClientOptions {
    let mut options = sentry::ClientOptions::new();
    options.release = sentry::release_name!();
    options.environment = Some(environment.as_str().into());
    options.send_default_pii = false;
    options.attach_stacktrace = true;
    options.max_request_body_size = sentry::MaxRequestBodySize::None;
    options.before_send = Some(Arc::new(|event| Some(scrub_event(event))));
    options.before_breadcrumb = Some(Arc::new(|crumb| Some(scrub_breadcrumb(crumb))));
    options
}

fn scrub_string(s: &mut String) {
    if let std::borrow::Cow::Owned(clean) = crate::redact::scrub(s) {
        *s = clean;
    }
}

fn scrub_map(map: &mut std::collections::BTreeMap<String, serde_json::Value>) {
    let mut value = serde_json::Value::Object(std::mem::take(map).into_iter().collect());
    crate::redact::scrub_json(&mut value);
    if let serde_json::Value::Object(clean) = value {
        map.extend(clean);
    }
}

fn scrub_breadcrumb(mut crumb: sentry::protocol::Breadcrumb) -> sentry::protocol::Breadcrumb {
    if let Some(message) = crumb.message.as_mut() {
        scrub_string(message);
    }
    scrub_map(&mut crumb.data);
    crumb
}

/// Applies [`crate::redact`] to everything in an event that can carry text: message, log entry,
/// exception values, breadcrumbs, extra data, contexts, tags; drops the request body, cookies,
/// query string and user.
pub fn scrub_event(
    mut event: sentry::protocol::Event<'static>,
) -> sentry::protocol::Event<'static> {
    if let Some(message) = event.message.as_mut() {
        scrub_string(message);
    }
    if let Some(entry) = event.logentry.as_mut() {
        scrub_string(&mut entry.message);
        for param in &mut entry.params {
            crate::redact::scrub_json(param);
        }
    }
    for exception in &mut event.exception.values {
        if let Some(value) = exception.value.as_mut() {
            scrub_string(value);
        }
    }
    for crumb in &mut event.breadcrumbs.values {
        *crumb = scrub_breadcrumb(std::mem::take(crumb));
    }
    scrub_map(&mut event.extra);
    for context in event.contexts.values_mut() {
        if let sentry::protocol::Context::Other(map) = context {
            scrub_map(map);
        }
    }
    for value in event.tags.values_mut() {
        scrub_string(value);
    }
    if let Some(request) = event.request.as_mut() {
        request.data = None;
        request.cookies = None;
        request.query_string = None;
        request.env.clear();
    }
    event.user = None;
    event
}

/// Runs one HTTP request with its own Sentry scope tagged with the route template, so an error
/// reported while answering it says which route it came from (and, once the handler knows them,
/// the CallSid and lead id: [`set_call_context`]).
pub async fn with_request_scope<F: std::future::Future>(route: &str, future: F) -> F::Output {
    use sentry::SentryFutureExt as _;
    if sentry::Hub::current().client().is_none() {
        // Sentry is off: no hub to allocate per request.
        return future.await;
    }
    let hub = Arc::new(sentry::Hub::new_from_top(sentry::Hub::current()));
    hub.configure_scope(|scope| scope.set_tag("route", route));
    future.bind_hub(hub).await
}

/// Adds the call's identifiers (never its personal data) to the current Sentry scope. Does nothing
/// (not even format the ids) when Sentry is off.
pub fn set_call_context(call_sid: Option<&str>, lead_id: Option<crate::domain::LeadId>) {
    sentry::configure_scope(|scope| {
        let mut map = std::collections::BTreeMap::new();
        if let Some(sid) = call_sid {
            map.insert("call_sid".to_owned(), sid.into());
        }
        if let Some(id) = lead_id {
            map.insert("lead_id".to_owned(), id.to_string().into());
        }
        scope.set_context("call", sentry::protocol::Context::Other(map));
    });
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
fn describe_metrics() {
    crate::metrics::describe_and_register();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_send_scrubs_messages_breadcrumbs_extra_and_contexts() {
        let options = sentry_options(Environment::Test);
        let events = sentry::test::with_captured_events_options(
            || {
                sentry::add_breadcrumb(sentry::Breadcrumb {
                    message: Some("caller said 438-555-0199, 2761 rue des Érables".to_owned()),
                    data: [("SpeechResult".to_owned(), "Gédéon Papineau".into())]
                        .into_iter()
                        .collect(),
                    ..Default::default()
                });
                sentry::configure_scope(|scope| {
                    scope.set_extra("From", "+14385550199".into());
                    scope.set_extra("detail", "postal code J1H 5N4".into());
                    scope.set_tag("route", "/twilio/gather");
                });
                set_call_context(Some("CA5ec0ffee5ec0ffee5ec0ffee5ec0ffee"), None);
                sentry::capture_message(
                    "cannot save lead for +1 438 555 0199 at 2761 rue des Érables",
                    sentry::Level::Error,
                );
            },
            options,
        );
        assert_eq!(events.len(), 1);
        let text = serde_json::to_string(&events[0]).unwrap();
        for planted in [
            "5550199", "555-0199", "555 0199", "2761", "Érables", "Gédéon", "J1H 5N4",
        ] {
            assert!(!text.contains(planted), "{planted} in {text}");
        }
        assert!(text.contains("•••99"), "{text}");
        assert!(text.contains("/twilio/gather"), "{text}");
        assert!(
            text.contains("CA5ec0ffee5ec0ffee5ec0ffee5ec0ffee"),
            "{text}"
        );
        assert_eq!(events[0].environment.as_deref(), Some("test"));
        assert!(events[0].release.is_some());
    }
}

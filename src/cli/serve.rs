//! `myriam serve`: settings, telemetry, the development signing key, then the application until a
//! shutdown signal drains it.

use std::process::ExitCode;

use crate::config::Settings;
use crate::startup::Application;

/// Runs the gateway until SIGTERM or Ctrl-C, then drains.
pub fn serve() -> ExitCode {
    // Settings first: a refused start prints names only, before any logging exists.
    let mut settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("myriam: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Development without TWILIO_AUTH_TOKEN: a generated, development-only signing key (never in
    // production, whose guard has already refused a missing token).
    let dev_key = match crate::dev_token::apply(&mut settings) {
        Ok(path) => path,
        Err(error) => {
            eprintln!("myriam: cannot create the development Twilio signing key: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Sentry wants to be initialised before the async runtime starts.
    let telemetry = match crate::telemetry::init(&settings) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("myriam: {error}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &settings.warnings {
        tracing::warn!(environment = %settings.environment, "{warning}");
    }
    if let Some(path) = &dev_key {
        tracing::warn!(
            environment = %settings.environment,
            key_file = %path.display(),
            "TWILIO_AUTH_TOKEN is not set: Twilio signatures are checked against a generated development-only key (`myriam simulate` run from this directory uses it); production requires TWILIO_AUTH_TOKEN"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        // Handlers first, so a signal that arrives while starting up drains instead of killing.
        let signal = ShutdownSignal::install()?;
        let environment = settings.environment;
        let app = Application::build(settings).await?;
        let lifecycle = app.lifecycle();
        tokio::spawn(async move {
            signal.received().await;
            tracing::info!("shutdown signal received");
            lifecycle.shutdown();
        });
        tracing::info!(
            addr = %app.local_addr(),
            metrics_addr = ?app.metrics_addr(),
            %environment,
            sentry = telemetry.sentry_enabled,
            version = env!("CARGO_PKG_VERSION"),
            "myriam listening"
        );
        app.run_until_stopped().await?;
        anyhow::Ok(())
    });
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("myriam: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (orchestrators) or SIGINT / Ctrl-C (developers), registered when installed.
struct ShutdownSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

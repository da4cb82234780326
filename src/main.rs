//! `myriam`: the gateway server (`myriam serve`, the default).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use myriam::config::Settings;
use myriam::startup::Application;

#[derive(Debug, Parser)]
#[command(name = "myriam", version, about = "BP Émondage call-handling gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default). Configuration comes from the environment and `.env`.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
    }
}

fn serve() -> ExitCode {
    // Settings first: a refused start prints names only, before any logging exists.
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("myriam: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Sentry wants to be initialised before the async runtime starts.
    let telemetry = match myriam::telemetry::init(&settings) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("myriam: {error}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &settings.warnings {
        tracing::warn!(environment = %settings.environment, "{warning}");
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

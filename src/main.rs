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
        let environment = settings.environment;
        let app = Application::build(settings).await?;
        tracing::info!(
            addr = %app.local_addr(),
            metrics_addr = ?app.metrics_addr(),
            %environment,
            sentry = telemetry.sentry_enabled,
            version = env!("CARGO_PKG_VERSION"),
            "myriam listening"
        );
        let lifecycle = app.lifecycle();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            lifecycle.shutdown();
        });
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

/// SIGTERM (orchestrators) or Ctrl-C (developers).
async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

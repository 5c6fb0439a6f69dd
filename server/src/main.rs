//! `shoal-server --data DIR [--listen 127.0.0.1:9080] ...`: parses the flags, sets up logging
//! (tracing to stderr; `RUST_LOG` filters, default `info`) and signals, prints
//! `listening on ADDR` to stdout once bound, and runs the server until SIGINT or SIGTERM.
//! Exits 0 after a clean shutdown, 1 if the server cannot start.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use shoal_server::Cli;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match serve(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "shoal-server failed");
            eprintln!("shoal-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: &Cli) -> Result<(), shoal_server::ServerError> {
    // Install the handlers before announcing the address, so that a signal sent as soon as
    // the line is seen is a clean shutdown rather than the default (killed by the signal).
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT"),
            _ = terminate.recv() => tracing::info!("SIGTERM"),
        }
    };
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    shoal_server::run(listener, cli.to_config(), shutdown).await
}

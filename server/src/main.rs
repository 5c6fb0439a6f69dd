//! `shoal-server --data DIR [--listen 127.0.0.1:9080] ...`: sets the umask to 077, parses the
//! flags and `SHOAL_*` variables, sets up logging (tracing to stderr; `RUST_LOG` filters,
//! default `info`) and signals, prints `listening on ADDR` to stdout once bound, and runs the
//! server until SIGINT or SIGTERM.
//! Exits 0 after a clean shutdown, 1 if the server cannot start.

use std::io::Write;
use std::process::ExitCode;

use shoal_server::Cli;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Before any thread or file exists: everything this process creates is owner-only.
    restrict_umask();
    let cli = Cli::parse_args();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(shoal_server::ServerError::from)
        .and_then(|runtime| runtime.block_on(serve(&cli)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "shoal-server failed");
            eprintln!("shoal-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets the process's file creation mask to 077, so that the files redb and the core create
/// under `--data` (a synced realm's log and copy, compaction's temporary files) are owner-only
/// from the start; `shoal_server::run` also sets modes explicitly and tightens existing files
/// (an embedding process keeps its own umask).
#[cfg(unix)]
fn restrict_umask() {
    // SAFETY: umask(2) takes no pointers, cannot fail and only replaces the process's file
    // creation mask; it runs before the runtime starts any thread, so nothing is creating
    // files concurrently.
    unsafe {
        libc::umask(0o077);
    }
}

#[cfg(not(unix))]
fn restrict_umask() {}

async fn serve(cli: &Cli) -> Result<(), shoal_server::ServerError> {
    // Reads --admin-password-file: an unreadable one fails before anything is announced.
    let config = cli.to_config()?;
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
    shoal_server::run(listener, config, shutdown).await
}

//! `shoal-server --data DIR [--listen 127.0.0.1:9080] ...`: sets the umask to 077, parses the
//! flags and `SHOAL_*` variables, sets up logging (tracing to stderr; `RUST_LOG` filters,
//! default `info`) and signals, prints `listening on ADDR` to stdout once bound, and runs the
//! server until SIGINT or SIGTERM.
//! Exits 0 after a clean shutdown, 1 if the server cannot start.
//!
//! At start it raises its soft limit of open files to the hard limit, and lowers
//! `--max-connections` if connections could otherwise run out of descriptors.

use std::io::{IsTerminal, Write};
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
        // Colours only on a terminal: logs redirected to a file or a journal stay plain.
        .with_ansi(std::io::stderr().is_terminal())
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
    let mut config = cli.to_config()?;
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
    match raise_open_file_limit() {
        Some(limit) => {
            if let Some(asked) = config.fit_open_file_limit(limit) {
                tracing::warn!(
                    asked,
                    max_connections = config.max_connections,
                    open_file_limit = limit,
                    "--max-connections lowered to fit the open-file limit"
                );
            }
        }
        None => tracing::warn!("cannot read the open-file limit"),
    }
    let listener = bind(cli.listen)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    shoal_server::run(listener, config, shutdown).await
}

/// The listening socket's accept queue (the kernel caps it at `net.core.somaxconn`): large,
/// so that a burst of connections is queued rather than dropped (a dropped SYN costs the
/// client a one-second retransmission).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `address` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as `TcpListener::bind`).
fn bind(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft `RLIMIT_NOFILE` of this process to its hard limit (many systems start
/// processes at 1,024 while allowing far more) and returns the soft limit now in force.
/// `None` if it cannot be read.
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through the pointer, which points at a live,
    // writable `rlimit` of this frame; setrlimit only reads the one it is given. Neither
    // touches other memory, and changing this process's own limit affects nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) == 0 {
                limit = raised;
            } else {
                tracing::warn!(
                    soft = limit.rlim_cur,
                    hard = limit.rlim_max,
                    "cannot raise the open-file limit"
                );
            }
        }
    }
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Some(limit.rlim_cur as u64)
}

//! The accept loop, shaped like mini-redis's server: [`run`] serves until `shutdown`
//! completes, then tells every connection through a broadcast channel and waits, up to a
//! grace period, for the mpsc channel that each connection holds a sender of to close.
//!
//! A [`Semaphore`] caps simultaneous connections (more wait in the kernel's accept queue);
//! `accept` backs off on errors such as running out of file descriptors. Each connection is
//! one tokio task serving HTTP/1.1 with upgrades enabled (for the sync WebSocket);
//! upgraded sync connections are tracked and closed by `SyncService::shutdown`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tracing::{debug, info, instrument, warn};

use crate::auth::AuthService;
use crate::config::ServerConfig;
use crate::sync::SyncService;
use crate::{http, ServerError};

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the server on `listener` until `shutdown` completes (mini-redis's entry point).
///
/// Opens (or creates) the state under `config.data_dir` first: once this returns `Ok` or the
/// first request is answered, users and keys are on disk. On shutdown it stops accepting,
/// lets in-flight requests finish (up to 10 s), closes idle connections and returns `Ok(())`.
///
/// # Errors
/// [`ServerError`] if the state cannot be opened (another server holds `auth.redb`, the
/// directory is not writable, the key file is corrupt); nothing is served then.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future,
) -> Result<(), ServerError> {
    let (auth, sync) = open_services(&config).await?;
    let address = listener.local_addr()?;
    info!(%address, data = %config.data_dir.display(), debug_provider = config.debug_provider,
        "serving");

    let (notify_shutdown, _) = broadcast::channel(1);
    let (shutdown_complete_tx, mut shutdown_complete_rx) = mpsc::channel::<()>(1);
    let mut server = Listener {
        listener,
        router: http::router(auth, Arc::clone(&sync)),
        limit_connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
        notify_shutdown,
        shutdown_complete_tx,
    };
    tokio::select! {
        () = server.run() => {}
        _ = shutdown => info!("shutting down"),
    }

    // Dropping the listener stops accepting; dropping the broadcast sender tells every
    // connection to finish; dropping our mpsc sender leaves only the connections' senders.
    let Listener {
        listener,
        router,
        notify_shutdown,
        shutdown_complete_tx,
        ..
    } = server;
    drop((listener, router, notify_shutdown, shutdown_complete_tx));
    // Sync connections were upgraded out of hyper's hands: they are told and awaited here.
    sync.shutdown().await;
    if tokio::time::timeout(SHUTDOWN_GRACE, shutdown_complete_rx.recv())
        .await
        .is_err()
    {
        warn!("connections still busy after the grace period; closing anyway");
    }
    info!("stopped");
    Ok(())
}

/// Every route of the server over the state under `config.data_dir`, opened as [`run`] opens
/// it, but without a listener: requests are driven in-process with
/// `tower::ServiceExt::oneshot` (the `auth_body` fuzz target sends request bodies through
/// it). Sync WebSocket upgrades need a real connection and are not served this way.
///
/// # Errors
/// As [`run`]'s, when the state cannot be opened.
pub async fn router(config: &ServerConfig) -> Result<Router, ServerError> {
    let (auth, sync) = open_services(config).await?;
    Ok(http::router(auth, sync))
}

/// Opens the auth and sync state under `config.data_dir` on the blocking pool.
async fn open_services(
    config: &ServerConfig,
) -> Result<(Arc<AuthService>, Arc<SyncService>), ServerError> {
    let open_config = config.clone();
    let auth = tokio::task::spawn_blocking(move || AuthService::open(&open_config))
        .await
        .map_err(|e| ServerError::Join(e.to_string()))??;
    let auth = Arc::new(auth);
    let sync_auth = Arc::clone(&auth);
    let sync_data = config.data_dir.clone();
    let idle = config.sync_idle_timeout;
    let sync = tokio::task::spawn_blocking(move || {
        let verifier = crate::TokenVerifier::from_data_dir(&sync_data)?;
        let sync = SyncService::open(&sync_data, verifier, sync_auth)?;
        Ok::<_, ServerError>(sync.with_idle_timeout(idle))
    })
    .await
    .map_err(|e| ServerError::Join(e.to_string()))??;
    Ok((auth, Arc::new(sync)))
}

/// The listening half: accepts connections and spawns one task per connection.
struct Listener {
    /// The bound socket.
    listener: TcpListener,
    /// Every route; cloned into each connection (an `Arc` inside).
    router: Router,
    /// One permit per open connection, so at most `max_connections` are served at once.
    limit_connections: Arc<Semaphore>,
    /// Dropped at shutdown: each connection's receiver then wakes and shuts down gracefully.
    notify_shutdown: broadcast::Sender<()>,
    /// Cloned into each connection; once every clone is dropped, every connection is done.
    shutdown_complete_tx: mpsc::Sender<()>,
}

impl Listener {
    /// Accepts forever; returns only if the semaphore is closed (never).
    async fn run(&mut self) {
        loop {
            let Ok(permit) = self.limit_connections.clone().acquire_owned().await else {
                return;
            };
            let (socket, peer) = self.accept().await;
            let _ = socket.set_nodelay(true);
            let shutdown = self.notify_shutdown.subscribe();
            let done = self.shutdown_complete_tx.clone();
            let service = TowerToHyperService::new(self.router.clone());
            tokio::spawn(async move {
                serve_connection(socket, peer, service, shutdown).await;
                drop(permit);
                drop(done);
            });
        }
    }

    /// Accepts one connection. Errors of a single connection are skipped at once; others
    /// (e.g. out of file descriptors) are retried with a backoff from 10 ms to 1 s, logged,
    /// rather than stopping the server.
    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return accepted,
                Err(e) if is_connection_error(&e) => debug!(error = %e, "accept"),
                Err(e) => {
                    warn!(error = %e, backoff_ms = backoff.as_millis(), "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Serves HTTP/1.1 on one connection until the client closes it or shutdown is announced;
/// then finishes the request in flight and closes.
#[instrument(level = "debug", skip(socket, service, shutdown))]
async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    service: TowerToHyperService<Router>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(socket), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.recv() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection closed with an error");
    }
}

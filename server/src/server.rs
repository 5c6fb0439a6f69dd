//! The accept loop, shaped like mini-redis's server: [`run`] serves until `shutdown`
//! completes, then tells every connection through a broadcast channel and waits, up to a
//! grace period, for the mpsc channel that each connection holds a sender of to close.
//!
//! Every accepted connection is admitted or refused at once by [`Limits`] (`limits.rs`: a
//! cap per address, a total cap that evicts the least valuable connection rather than
//! leaving new ones in the kernel's accept queue); nothing waits unaccepted. `accept` never
//! gives up: out of file descriptors, it evicts a connection, sleeps briefly and goes on.
//! Each connection is one tokio task: a TLS handshake first with `--tls-cert` (bounded by
//! the header timeout), then HTTP/1.1 with upgrades enabled (for the sync WebSocket), a
//! deadline for each request's headers (which also closes idle keep-alive connections) and
//! one for each request. Upgraded sync connections keep their slot (the permit lives in the
//! stream) and are closed by `SyncService::shutdown`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Router};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, instrument, warn};

use crate::auth::AuthService;
use crate::config::ServerConfig;
use crate::connection_limits::{
    Limits, Permit, Refusal, Stage, Tracked, TrackedConnection, TrackedStream,
};
use crate::sync::SyncService;
use crate::{files, http, ServerError};

/// How long shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long one request may take from its headers to its answer (a body sent slowly
/// included); then it is answered `408` and the connection closed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest pause of the accept loop after a failed `accept` (out of file descriptors).
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);
/// How often refusals and evictions are summed up in the log (each one is a debug line).
const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);
/// What a refused plain-HTTP connection is sent before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
    Content-Length: 0\r\nConnection: close\r\n\r\n";

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
    let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    let (auth, sync) = open_services(&config).await?;
    let address = listener.local_addr()?;
    info!(%address, data = %config.data_dir.display(), debug_provider = config.debug_provider,
        tls = tls.is_some(), max_connections = config.max_connections,
        max_connections_per_address = config.max_connections_per_address, "serving");

    let (notify_shutdown, _) = broadcast::channel(1);
    let (shutdown_complete_tx, mut shutdown_complete_rx) = mpsc::channel::<()>(1);
    let mut server = Listener {
        listener,
        router: http::router(auth, Arc::clone(&sync)),
        limits: Limits::new(config.max_connections, config.max_connections_per_address),
        tls,
        header_timeout: config.header_timeout,
        notify_shutdown,
        shutdown_complete_tx,
        summary: Summary::default(),
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
    let auth = tokio::task::spawn_blocking(move || {
        // Before anything is opened: tighten what an older server left readable by others,
        // and create the sync service's index and directory owner-only (`files.rs`).
        files::secure_data_dir(&open_config.data_dir)?;
        files::create_private_file(&open_config.data_dir.join(crate::sync::INDEX_FILE))?;
        files::create_private_dir(&open_config.data_dir.join(crate::sync::REALMS_DIR))?;
        AuthService::open(&open_config)
    })
    .await
    .map_err(|e| ServerError::Join(e.to_string()))??;
    let auth = Arc::new(auth);
    let revocations = auth.revocations();
    let permissions = auth.permissions();
    let sync_data = config.data_dir.clone();
    let idle = config.sync_idle_timeout;
    let bind = config.sync_bind_timeout;
    let part_buffer = config.sync_part_buffer_bytes;
    let sync = tokio::task::spawn_blocking(move || {
        let verifier = crate::TokenVerifier::from_data_dir(&sync_data)?;
        Ok::<_, ServerError>(
            SyncService::open(&sync_data, verifier, revocations, permissions)?
                .with_idle_timeout(idle)
                .with_bind_timeout(bind)
                .with_part_buffer(part_buffer),
        )
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
    /// Admits or refuses each connection; its permits free their slots when sockets close.
    limits: Arc<Limits>,
    /// Wraps each connection in TLS before HTTP, with `--tls-cert`.
    tls: Option<TlsAcceptor>,
    /// How long a client may take to send a request's headers or finish its TLS handshake.
    header_timeout: Duration,
    /// Dropped at shutdown: each connection's receiver then wakes and shuts down gracefully.
    notify_shutdown: broadcast::Sender<()>,
    /// Cloned into each connection; once every clone is dropped, every connection is done.
    shutdown_complete_tx: mpsc::Sender<()>,
    /// Refusals and evictions since the last summary line.
    summary: Summary,
}

/// What the limits did since the last log line about it.
struct Summary {
    since: Instant,
    refused_per_address: u64,
    refused_full: u64,
    evicted: u64,
}

impl Default for Summary {
    fn default() -> Summary {
        Summary {
            since: Instant::now(),
            refused_per_address: 0,
            refused_full: 0,
            evicted: 0,
        }
    }
}

impl Summary {
    /// Logs the counts at most every [`SUMMARY_INTERVAL`], if there are any.
    fn maybe_log(&mut self) {
        if self.since.elapsed() < SUMMARY_INTERVAL {
            return;
        }
        if self.refused_per_address + self.refused_full + self.evicted > 0 {
            warn!(
                refused_per_address = self.refused_per_address,
                refused_full = self.refused_full,
                evicted = self.evicted,
                seconds = self.since.elapsed().as_secs(),
                "connection limits reached"
            );
        }
        *self = Summary::default();
    }
}

impl Listener {
    /// Accepts forever.
    async fn run(&mut self) {
        loop {
            let (socket, peer) = self.accept().await;
            let permit = match self.limits.admit(peer.ip()) {
                Ok((permit, admitted)) => {
                    if admitted.evicted {
                        self.summary.evicted += 1;
                        debug!(%peer, "evicted a connection to admit another");
                    }
                    permit
                }
                Err(refusal) => {
                    match refusal {
                        Refusal::PerAddress => self.summary.refused_per_address += 1,
                        Refusal::Full => self.summary.refused_full += 1,
                    }
                    debug!(%peer, ?refusal, "connection refused");
                    self.summary.maybe_log();
                    // Plain HTTP clients get a 503; a TLS client would not understand it.
                    if self.tls.is_none() {
                        let _ = socket.try_write(REFUSED);
                    }
                    continue;
                }
            };
            self.summary.maybe_log();
            let _ = socket.set_nodelay(true);
            let connection = ConnectionTask {
                // The peer address, for throttling failed logins by address (`extract::Peer`).
                service: TowerToHyperService::new(
                    self.router.clone().layer(Extension(ConnectInfo(peer))),
                ),
                shutdown: self.notify_shutdown.subscribe(),
                tls: self.tls.clone(),
                header_timeout: self.header_timeout,
            };
            let done = self.shutdown_complete_tx.clone();
            tokio::spawn(async move {
                connection.run(socket, peer, permit).await;
                drop(done);
            });
        }
    }

    /// Accepts one connection. Errors of a single connection are skipped at once; others
    /// (e.g. out of file descriptors) are logged and retried after a pause from 5 to 100 ms,
    /// evicting an open connection to free a descriptor; the loop never stops.
    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        let mut backoff = Duration::from_millis(5);
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return accepted,
                Err(e) if is_connection_error(&e) => debug!(error = %e, "accept"),
                Err(e) => {
                    let evicted = is_out_of_descriptors(&e) && self.limits.evict_least_valuable();
                    warn!(error = %e, backoff_ms = backoff.as_millis(), evicted, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
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

/// `EMFILE` (the process's descriptors) or `ENFILE` (the system's).
fn is_out_of_descriptors(e: &io::Error) -> bool {
    // The values of Linux and the BSDs alike.
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

/// What one connection's task needs besides its socket.
struct ConnectionTask {
    service: TowerToHyperService<Router>,
    shutdown: broadcast::Receiver<()>,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
}

impl ConnectionTask {
    /// Serves one accepted connection; its permit goes into the stream and is dropped with
    /// it (after an upgrade, when the WebSocket closes).
    async fn run(self, socket: TcpStream, peer: SocketAddr, permit: Permit) {
        let tracked = Arc::clone(permit.tracked());
        let stream = TrackedStream::new(socket, permit);
        match self.tls.clone() {
            None => self.serve(stream, peer, tracked).await,
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.header_timeout, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(stream)) => self.serve(stream, peer, tracked).await,
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    }

    /// Serves HTTP/1.1 until the client closes the connection, it is evicted, or shutdown is
    /// announced (then the request in flight is finished).
    #[instrument(level = "debug", skip(self, io, tracked))]
    async fn serve<I>(mut self, io: I, peer: SocketAddr, tracked: Arc<Tracked>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = TrackedService {
            inner: self.service,
            tracked: Arc::clone(&tracked),
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = tracked.evicted() => return,
            _ = self.shutdown.recv() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            debug!(error = %e, "connection closed with an error");
        }
    }
}

/// The router as hyper calls it, keeping the connection's [`Stage`] up to date, handing the
/// connection's [`TrackedConnection`] to handlers, and bounding each request's time.
#[derive(Clone)]
struct TrackedService {
    inner: TowerToHyperService<Router>,
    tracked: Arc<Tracked>,
}

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.tracked.set_stage(Stage::Busy);
        request
            .extensions_mut()
            .insert(TrackedConnection(Arc::clone(&self.tracked)));
        let answer = hyper::service::Service::call(&self.inner, request);
        let tracked = Arc::clone(&self.tracked);
        Box::pin(async move {
            let response = match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
                Ok(response) => response,
                Err(_) => {
                    debug!("request timed out");
                    let mut response =
                        (StatusCode::REQUEST_TIMEOUT, "the request took too long").into_response();
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                    Ok(response)
                }
            };
            // An upgrade handler may have moved the connection on already.
            tracked.change_stage(Stage::Busy, Stage::Idle);
            response
        })
    }
}

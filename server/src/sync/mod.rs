//! The sync service (**API Boundary**): `GET /realm-sync`, a WebSocket speaking
//! [`shoal::protocol::sync`] (subprotocol `shoal-sync/2`, one binary frame per message), and
//! the per-path server state behind it.
//!
//! - `connection.rs`: one task per WebSocket; its sessions (BIND, UPLOAD and UPLOAD_PART,
//!   MARK, REFRESH, UNBIND), access token and permission checks, revocations, grant changes,
//!   and the DOWNLOADs (and DOWNLOAD_PARTs) of each session.
//! - `log.rs`: the storage: the index of realm paths, each path's changeset log, client files
//!   and server copy; appending uploads and reading the log for downloads; logging the
//!   server's own answers in management realms.
//! - `gate.rs`: the checks an uploaded changeset passes before it is integrated or logged.
//!
//! **Fan-out:** each path has a `watch` of its latest server version; every session bound to
//! the path reads the log after its own cursor (redb read transactions, no lock) whenever it
//! moves, so a slow connection never holds up writers or other sessions.

mod connection;
mod gate;
mod log;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use connection::realm_sync;
pub use log::{SyncStoreError, INDEX_FILE, REALMS_DIR};

use crate::permissions::Permissions;
use crate::revocations::Revocations;
use crate::tokens::TokenVerifier;
use log::{lock, LogStore};

/// How long shutdown waits for sync connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The sync service: shared by every sync connection.
pub struct SyncService {
    /// Checks access tokens with the public key alone.
    verifier: TokenVerifier,
    /// The revocation list (checked at BIND and REFRESH) and its feed (which ends the
    /// sessions bound with tokens of a revoked refresh token).
    revocations: Arc<Revocations>,
    /// Who may read and write each realm (checked at BIND and REFRESH), and the feed of grant
    /// changes (which re-checks live sessions).
    permissions: Arc<Permissions>,
    /// The changeset logs and server copies of every realm path.
    logs: Arc<LogStore>,
    /// Set to true at shutdown: every connection sends `CONNECTION_CLOSED` and closes.
    shutdown: watch::Sender<bool>,
    /// Each connection holds a clone; shutdown drops this one and waits for the receiver.
    connections: StdMutex<Option<mpsc::Sender<()>>>,
    /// Closes once every connection task has ended.
    connections_done: tokio::sync::Mutex<mpsc::Receiver<()>>,
    /// A connection silent for this long is closed (dead peers otherwise hold their sessions).
    idle_timeout: std::time::Duration,
    /// A connection without a bound session for this long is closed.
    bind_timeout: std::time::Duration,
    /// The bytes of partial changesets all sessions may buffer together.
    part_budget: Arc<PartBudget>,
}

/// The bytes of partial changesets (UPLOAD_PARTs of changesets not complete yet) that every
/// session of the service buffers, against a bound: an authenticated but hostile client (or
/// many of them, with many sessions each) cannot make the server hold more than this.
#[derive(Debug)]
pub(crate) struct PartBudget {
    used: AtomicUsize,
    limit: usize,
}

impl PartBudget {
    pub(crate) fn new(limit: usize) -> PartBudget {
        PartBudget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes `n` bytes of the budget; false (nothing taken) if they are not left.
    pub(crate) fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `n` bytes taken earlier.
    pub(crate) fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// The bytes taken now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl SyncService {
    /// Opens (or creates) `DATA/sync.redb` and `DATA/realms`. Blocks (redb I/O).
    ///
    /// # Errors
    /// [`SyncStoreError`] when the storage cannot be opened or is of a newer format.
    pub(crate) fn open(
        data_dir: &Path,
        verifier: TokenVerifier,
        revocations: Arc<Revocations>,
        permissions: Arc<Permissions>,
    ) -> Result<SyncService, SyncStoreError> {
        let (connections, connections_done) = mpsc::channel(1);
        Ok(SyncService {
            verifier,
            revocations,
            logs: Arc::new(LogStore::open(data_dir, Arc::clone(&permissions))?),
            permissions,
            shutdown: watch::Sender::new(false),
            connections: StdMutex::new(Some(connections)),
            connections_done: tokio::sync::Mutex::new(connections_done),
            idle_timeout: std::time::Duration::from_secs(60),
            bind_timeout: std::time::Duration::from_secs(10),
            part_budget: Arc::new(PartBudget::new(
                crate::config::DEFAULT_SYNC_PART_BUFFER_MIB * 1024 * 1024,
            )),
        })
    }

    /// Sets how many bytes of partial changesets all sessions may buffer together (default
    /// 512 MiB).
    #[must_use]
    pub fn with_part_buffer(mut self, bytes: usize) -> SyncService {
        self.part_budget = Arc::new(PartBudget::new(bytes));
        self
    }

    /// The bytes of partial changesets buffered now (for tests and monitoring).
    pub(crate) fn buffered_part_bytes(&self) -> usize {
        self.part_budget.used()
    }

    /// Sets how long a connection may stay silent before it is closed (default 60 s).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: std::time::Duration) -> SyncService {
        self.idle_timeout = timeout;
        self
    }

    /// Sets how long a connection may stay open without a session bound by a valid access
    /// token (default 10 s): PINGs and failed BINDs do not extend it. Unauthenticated
    /// WebSockets are thus as short-lived as connections that never send their headers.
    #[must_use]
    pub fn with_bind_timeout(mut self, timeout: std::time::Duration) -> SyncService {
        self.bind_timeout = timeout;
        self
    }

    /// Tells every sync connection to close, waits for them (up to 5 s), then closes every
    /// path's storage (once the sessions holding them are gone).
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        drop(lock(&self.connections).take());
        let mut done = self.connections_done.lock().await;
        if tokio::time::timeout(SHUTDOWN_GRACE, done.recv())
            .await
            .is_err()
        {
            tracing::warn!("sync connections still open after the grace period");
        }
        self.logs.close();
    }
}

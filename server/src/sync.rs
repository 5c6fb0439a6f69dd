//! The sync service (**API Boundary**): `GET /realm-sync`, a WebSocket speaking
//! [`shoal::protocol::sync`] (subprotocol `shoal-sync/1`, one binary frame per message), and
//! the per-path server state behind it.
//!
//! ```text
//! DATA/sync.redb           sync_meta   &str "format" → 1, "next_realm" → next realm dir number
//!                          sync_realms &str realm path → u64 realm dir number
//! DATA/realms/<n>/log.redb log         u64 server version → (origin file ident, origin client
//!                                      version, stamp, cumulative bytes through it, bytes)
//!                          clients     u64 client file ident → (salt, last client version)
//!                          meta        &str "format" → 1, "next_ident" → next file ident
//! DATA/realms/<n>/server.realm         the server's copy (a shoal realm with merge metadata)
//! ```
//!
//! Realm paths map to numbered directories through `sync_realms` (paths can be longer than a
//! file name; numbers never collide). **Ordering and durability:** an uploaded changeset is
//! first integrated into the server's copy (which validates it: a changeset the core refuses
//! is `BAD_CHANGESET` 212 and is not appended), then appended to `log` with the next server
//! version in a committed redb transaction, and only then acknowledged. A crash between the
//! two steps leaves the copy ahead of the log; the client re-uploads the unacknowledged
//! changeset and the copy skips it as already integrated, so log and copy agree again.
//! **Fan-out:** each path has a `watch` of its latest server version; every session bound to
//! the path reads the log after its own cursor (redb read transactions, no lock) whenever it
//! moves, so a slow connection never holds up writers or other sessions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use shoal::protocol::auth::TokenData;
use shoal::protocol::sync::{
    ConnectionErrorCode as Conn, DownloadChangeset, DownloadProgress, Message, Sender,
    SessionErrorCode as Sess, UploadChangeset, UploadProgress, MAX_MESSAGE_BYTES, MAX_PATH_BYTES,
    WEBSOCKET_SUBPROTOCOL,
};
use tokio::sync::{broadcast, mpsc, watch, OnceCell};
use tokio::task::JoinHandle;

use crate::auth::AuthService;
use crate::connection_limits::{Stage, Tracked, TrackedConnection};
use crate::tokens::{unix_now, TokenError, TokenVerifier};

const SYNC_META: TableDefinition<&str, u64> = TableDefinition::new("sync_meta");
const SYNC_REALMS: TableDefinition<&str, u64> = TableDefinition::new("sync_realms");
const LOG: TableDefinition<u64, (u64, u64, u64, u64, &[u8])> = TableDefinition::new("log");
const CLIENTS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("clients");
const ORIGINS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("origins");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The storage format this build writes (both `sync.redb` and each `log.redb`).
const FORMAT: u64 = 1;
/// The index file under the data directory.
pub const INDEX_FILE: &str = "sync.redb";
/// The directory of per-path state under the data directory.
pub const REALMS_DIR: &str = "realms";
/// Changeset bytes per DOWNLOAD (at least one changeset is always sent).
const DOWNLOAD_BATCH_BYTES: usize = 1024 * 1024;
/// Changesets per DOWNLOAD.
const DOWNLOAD_BATCH_COUNT: usize = 1000;
/// How long shutdown waits for sync connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A failure of the sync storage (redb, the server's realm copy, the file system).
#[derive(Debug, thiserror::Error)]
#[error("sync storage: {0}")]
pub struct SyncStoreError(String);

fn store_err(e: impl std::fmt::Display) -> SyncStoreError {
    SyncStoreError(e.to_string())
}

/// The sync service: shared by every sync connection.
pub struct SyncService {
    /// Checks access tokens with the public key alone.
    verifier: TokenVerifier,
    /// The auth service: its revocation list (checked at BIND and REFRESH) and its feed of
    /// revocations (which end the sessions bound with tokens of a revoked refresh token).
    auth: Arc<AuthService>,
    /// `DATA/realms`.
    realms_dir: PathBuf,
    /// `DATA/sync.redb`: realm path → directory number.
    index: Database,
    /// The open per-path state. A std mutex: held only to look up or insert a cell, never
    /// across an await; the `OnceCell` makes concurrent first binds open a path once.
    hosts: StdMutex<HashMap<String, Arc<OnceCell<Arc<RealmHost>>>>>,
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
}

impl SyncService {
    /// Opens (or creates) `DATA/sync.redb` and `DATA/realms`. Blocks (redb I/O).
    ///
    /// # Errors
    /// [`SyncStoreError`] when the storage cannot be opened or is of a newer format.
    pub(crate) fn open(
        data_dir: &Path,
        verifier: TokenVerifier,
        auth: Arc<AuthService>,
    ) -> Result<SyncService, SyncStoreError> {
        let realms_dir = data_dir.join(REALMS_DIR);
        std::fs::create_dir_all(&realms_dir).map_err(store_err)?;
        let index = Database::create(data_dir.join(INDEX_FILE)).map_err(store_err)?;
        let txn = index.begin_write().map_err(store_err)?;
        {
            let mut meta = txn.open_table(SYNC_META).map_err(store_err)?;
            check_format(&mut meta)?;
            txn.open_table(SYNC_REALMS).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)?;
        let (connections, connections_done) = mpsc::channel(1);
        Ok(SyncService {
            verifier,
            auth,
            realms_dir,
            index,
            hosts: StdMutex::new(HashMap::new()),
            shutdown: watch::Sender::new(false),
            connections: StdMutex::new(Some(connections)),
            connections_done: tokio::sync::Mutex::new(connections_done),
            idle_timeout: std::time::Duration::from_secs(60),
            bind_timeout: std::time::Duration::from_secs(10),
        })
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
        lock(&self.hosts).clear();
    }

    /// The state of `path`, opened on first use.
    async fn host(self: &Arc<Self>, path: &str) -> Result<Arc<RealmHost>, SyncStoreError> {
        let cell = lock(&self.hosts)
            .entry(path.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| {
            let service = Arc::clone(self);
            let path = path.to_owned();
            async move {
                blocking(move || {
                    let dir = service.realm_dir(&path)?;
                    RealmHost::open(&path, &dir).map(Arc::new)
                })
                .await
            }
        })
        .await
        .cloned()
    }

    /// The directory of `path`, numbered on first use.
    fn realm_dir(&self, path: &str) -> Result<PathBuf, SyncStoreError> {
        let txn = self.index.begin_write().map_err(store_err)?;
        let number = {
            let mut realms = txn.open_table(SYNC_REALMS).map_err(store_err)?;
            let found = realms.get(path).map_err(store_err)?.map(|v| v.value());
            match found {
                Some(n) => n,
                None => {
                    let mut meta = txn.open_table(SYNC_META).map_err(store_err)?;
                    let n = meta
                        .get("next_realm")
                        .map_err(store_err)?
                        .map_or(1, |v| v.value());
                    meta.insert("next_realm", n + 1).map_err(store_err)?;
                    realms.insert(path, n).map_err(store_err)?;
                    n
                }
            }
        };
        txn.commit().map_err(store_err)?;
        let dir = self.realms_dir.join(number.to_string());
        crate::files::create_private_dir(&dir).map_err(store_err)?;
        Ok(dir)
    }
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn check_format(meta: &mut redb::Table<&str, u64>) -> Result<(), SyncStoreError> {
    let found = meta.get("format").map_err(store_err)?.map(|v| v.value());
    match found {
        Some(found) if found > FORMAT => Err(SyncStoreError(format!(
            "format {found} is newer than this server's ({FORMAT})"
        ))),
        Some(_) => Ok(()),
        None => meta.insert("format", FORMAT).map(drop).map_err(store_err),
    }
}

/// Runs blocking storage work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SyncStoreError> + Send + 'static,
) -> Result<T, SyncStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncStoreError(format!("storage task failed: {e}")))?
}

/// One realm path's server state.
struct RealmHost {
    /// `log.redb`: the ordered log and the client files. Readers (downloads) use redb read
    /// transactions and never wait for the writer.
    log: Database,
    /// Serialises everything that writes (uploads, new client idents). A tokio mutex locked
    /// with `lock_owned` and its guard moved into `spawn_blocking`: waiting for it is async (no
    /// runtime or blocking-pool thread is parked), while the work under it (integration into
    /// the realm copy, redb commit and fsync) runs on the blocking pool.
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// The latest server version; every session of the path watches it.
    latest: watch::Sender<u64>,
}

/// What only the writer touches.
struct Writer {
    /// The server's copy, opened with merge metadata.
    realm: shoal::Realm,
    /// The latest server version (0: empty log).
    latest: u64,
    /// Changeset bytes in the log.
    total_bytes: u64,
}

/// Appends `changesets` of client file `ident` (already integrated into the copy) to the log
/// with the next server versions, and records the last one as the client's, in one durable
/// transaction. Returns the client version now acknowledged (`None` for no changesets).
fn append(
    log: &Database,
    writer: &mut Writer,
    ident: u64,
    salt: u64,
    changesets: &[UploadChangeset],
) -> Result<Option<u64>, SyncStoreError> {
    let Some(last) = changesets.last().map(|c| c.client_version) else {
        return Ok(None);
    };
    let txn = log.begin_write().map_err(store_err)?;
    let mut version = writer.latest;
    let mut cumulative = writer.total_bytes;
    {
        let mut table = txn.open_table(LOG).map_err(store_err)?;
        for c in changesets {
            version += 1;
            cumulative += c.data.len() as u64;
            table
                .insert(
                    version,
                    (
                        ident,
                        c.client_version,
                        c.stamp,
                        cumulative,
                        c.data.as_slice(),
                    ),
                )
                .map_err(store_err)?;
        }
        let mut clients = txn.open_table(CLIENTS).map_err(store_err)?;
        clients.insert(ident, (salt, last)).map_err(store_err)?;
        let mut origins = txn.open_table(ORIGINS).map_err(store_err)?;
        for c in changesets {
            // Checked by `UploadGate::check` before: the header decodes.
            let (stamp, origin) = shoal::changeset_header(&c.data).map_err(store_err)?;
            origins.insert(origin, (ident, stamp)).map_err(store_err)?;
        }
    }
    txn.commit().map_err(store_err)?;
    writer.latest = version;
    writer.total_bytes = cumulative;
    Ok(Some(last))
}

/// A batch of the log read for one session.
struct LogBatch {
    /// The entries not made by the session's own file.
    changesets: Vec<DownloadChangeset>,
    /// The last server version read (the cursor after this batch).
    last: u64,
    /// Cumulative changeset bytes of the log through `last`.
    cumulative: u64,
    /// Changeset bytes in the whole log.
    total: u64,
}

/// What an upload did.
struct UploadOutcome {
    /// The client's last changeset in the log.
    acked: u64,
    /// Whether anything was appended.
    appended: bool,
    /// Why the upload was refused, if it was: by [`UploadGate::check`] (nothing appended) or
    /// by the realm copy (those before the refused changeset were appended).
    refused: Option<Refusal>,
}

/// An uploaded changeset the server does not take: the session ERROR it gets.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    code: Sess,
    message: String,
}

impl Refusal {
    /// `BAD_CHANGESET` for the changeset of client version `version`.
    fn changeset(version: u64, why: impl std::fmt::Display) -> Refusal {
        Refusal {
            code: Sess::BadChangeset,
            message: format!("changeset {version}: {why}"),
        }
    }
}

/// How far ahead of the server's clock a changeset's stamp may be: a day (clients' clocks are
/// assumed within seconds of it). Without a bound one stamp near `u64::MAX` would pin every
/// replica's clock there, and their later changesets would look already integrated.
const MAX_STAMP_AHEAD_MS: u64 = 24 * 60 * 60 * 1000;

/// The checks every uploaded changeset passes before anything of its UPLOAD is integrated,
/// logged or fanned out (the realm copy's integration then applies the core's rules: schema
/// changes as the local API checks them, values of the property's type, ...).
struct UploadGate {
    /// The uploading client file.
    ident: u64,
    /// Its last client version in the log (0: none).
    acked: u64,
    /// The server version it says it has integrated, at most what it was sent.
    integrated: u64,
    /// The server's clock, unix milliseconds.
    now_ms: u64,
}

impl UploadGate {
    /// `fresh` are the UPLOAD's changesets above `acked`, in increasing client version order;
    /// `origin_of` reads the log's `origins` table: replica id → (its client file, its last
    /// stamp in the log).
    ///
    /// - *Client versions*: the `i`-th (from 1) may be at most `acked + i + integrated`
    ///   (`BAD_CLIENT_VERSION`). A file's history versions are dense: each is one of its own
    ///   changesets (all uploaded, in order: at most `acked` of them are in the log, `i` in
    ///   this upload up to this one) or one it integrated from the log (at most
    ///   `integrated`), so no honest client gets past the bound, and a client cannot claim
    ///   versions it never made (which would make its real ones look already acknowledged).
    /// - *Format*: each decodes as a changeset of format 2 (stamped), and its header's stamp
    ///   is the UPLOAD's `stamp` (`BAD_CHANGESET`, as for the rest).
    /// - *Stamps*: at most [`MAX_STAMP_AHEAD_MS`] ahead of the server's clock, and above the
    ///   last stamp its replica has in the log (a replica's stamps only grow).
    /// - *Origins*: a replica id belongs to the first client file that uploads it; another
    ///   file uploading it (a replayed or forged changeset) is refused, since every replica
    ///   would then drop the real owner's changesets as already integrated, and the owner
    ///   would be sent its own.
    fn check(
        &self,
        fresh: &[UploadChangeset],
        origin_of: impl Fn(u64) -> Result<Option<(u64, u64)>, SyncStoreError>,
    ) -> Result<Result<(), Refusal>, SyncStoreError> {
        let max_stamp = (self.now_ms.saturating_add(MAX_STAMP_AHEAD_MS) << 16) | 0xFFFF;
        let mut seen: HashMap<u64, u64> = HashMap::new();
        for (i, c) in fresh.iter().enumerate() {
            let bound = self
                .acked
                .saturating_add(i as u64 + 1)
                .saturating_add(self.integrated);
            if c.client_version > bound {
                return Ok(Err(Refusal {
                    code: Sess::BadClientVersion,
                    message: format!(
                        "client version {} is beyond what this file can have made ({bound}: {} logged, {} in this upload, {} integrated)",
                        c.client_version,
                        self.acked,
                        i + 1,
                        self.integrated
                    ),
                }));
            }
            let refuse = |why: String| Ok(Err(Refusal::changeset(c.client_version, why)));
            let changeset = match shoal::replica::decode_changeset(&c.data) {
                Ok(cs) => cs,
                Err(e) => return refuse(format!("does not decode: {}", e.message())),
            };
            if changeset.stamp == 0 {
                return refuse("has no stamp (format 1 cannot be merged)".into());
            }
            if changeset.stamp != c.stamp {
                return refuse(format!(
                    "its stamp {} is not the UPLOAD's {}",
                    changeset.stamp, c.stamp
                ));
            }
            if changeset.stamp > max_stamp {
                return refuse("its stamp is more than a day ahead of the server's clock".into());
            }
            let last = match seen.get(&changeset.origin) {
                Some(stamp) => Some(*stamp),
                None => match origin_of(changeset.origin)? {
                    Some((owner, _)) if owner != self.ident => {
                        return refuse(format!(
                            "its replica id {:016x} belongs to another client file",
                            changeset.origin
                        ))
                    }
                    Some((_, stamp)) => Some(stamp),
                    None => None,
                },
            };
            if last.is_some_and(|last| changeset.stamp <= last) {
                return refuse("its stamp is not above its replica's previous one".into());
            }
            seen.insert(changeset.origin, changeset.stamp);
        }
        Ok(Ok(()))
    }
}

/// The wall clock in unix milliseconds.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RealmHost {
    fn open(path: &str, dir: &Path) -> Result<RealmHost, SyncStoreError> {
        let log = Database::create(dir.join("log.redb")).map_err(store_err)?;
        let txn = log.begin_write().map_err(store_err)?;
        let (latest, total_bytes) = {
            let mut meta = txn.open_table(META).map_err(store_err)?;
            check_format(&mut meta)?;
            txn.open_table(CLIENTS).map_err(store_err)?;
            let table = txn.open_table(LOG).map_err(store_err)?;
            let mut origins = txn.open_table(ORIGINS).map_err(store_err)?;
            if origins.is_empty().map_err(store_err)? {
                // A log written before `origins` existed: the owner of each replica id is
                // the first client file that logged it.
                for item in table.iter().map_err(store_err)? {
                    let (_, v) = item.map_err(store_err)?;
                    let (ident, _, _, _, data) = v.value();
                    if let Ok((stamp, origin)) = shoal::changeset_header(data) {
                        let known = origins.get(origin).map_err(store_err)?.map(|v| v.value());
                        let (owner, last) = known.unwrap_or((ident, 0));
                        origins
                            .insert(origin, (owner, last.max(stamp)))
                            .map_err(store_err)?;
                    }
                }
            }
            let last = table.last().map_err(store_err)?;
            last.map_or((0, 0), |(k, v)| (k.value(), v.value().3))
        };
        txn.commit().map_err(store_err)?;
        let realm =
            shoal::replica::open(dir.join("server.realm").to_string_lossy()).map_err(store_err)?;
        // redb and the core created these files with the process umask: owner-only now.
        crate::files::restrict_tree(dir).map_err(store_err)?;
        tracing::info!(path, dir = %dir.display(), latest, "opened sync realm");
        Ok(RealmHost {
            log,
            writer: Arc::new(tokio::sync::Mutex::new(Writer {
                realm,
                latest,
                total_bytes,
            })),
            latest: watch::Sender::new(latest),
        })
    }

    /// Registers a new client file: `(ident, salt)`, durable when returned.
    async fn new_client(self: &Arc<Self>) -> Result<(u64, u64), SyncStoreError> {
        let guard = Arc::clone(&self.writer).lock_owned().await;
        let host = Arc::clone(self);
        blocking(move || {
            let _guard = guard;
            let mut salt = [0u8; 8];
            getrandom::fill(&mut salt).map_err(store_err)?;
            let salt = u64::from_le_bytes(salt).max(1);
            let txn = host.log.begin_write().map_err(store_err)?;
            let ident = {
                let mut meta = txn.open_table(META).map_err(store_err)?;
                let ident = meta
                    .get("next_ident")
                    .map_err(store_err)?
                    .map_or(1, |v| v.value());
                meta.insert("next_ident", ident + 1).map_err(store_err)?;
                let mut clients = txn.open_table(CLIENTS).map_err(store_err)?;
                clients.insert(ident, (salt, 0)).map_err(store_err)?;
                ident
            };
            txn.commit().map_err(store_err)?;
            Ok((ident, salt))
        })
        .await
    }

    /// The `(salt, last client version)` of a client file, if it exists.
    async fn client(self: &Arc<Self>, ident: u64) -> Result<Option<(u64, u64)>, SyncStoreError> {
        let host = Arc::clone(self);
        blocking(move || {
            let txn = host.log.begin_read().map_err(store_err)?;
            let clients = txn.open_table(CLIENTS).map_err(store_err)?;
            Ok(clients.get(ident).map_err(store_err)?.map(|v| v.value()))
        })
        .await
    }

    /// Checks, integrates and appends the changesets of `ident` newer than those it already
    /// has in the log, in order, each durable before this returns. `integrated` is the server
    /// version the client says it has integrated (at most what it was sent), for the bound on
    /// client versions. Nothing is integrated or appended unless every changeset passes
    /// [`check_upload`]; if the realm copy then refuses one, those before it stay.
    async fn upload(
        self: &Arc<Self>,
        ident: u64,
        changesets: Vec<UploadChangeset>,
        integrated: u64,
    ) -> Result<UploadOutcome, SyncStoreError> {
        let mut guard = Arc::clone(&self.writer).lock_owned().await;
        let host = Arc::clone(self);
        let (outcome, latest) = blocking(move || {
            let writer = &mut *guard;
            let read = host.log.begin_read().map_err(store_err)?;
            let (salt, mut acked) = read
                .open_table(CLIENTS)
                .map_err(store_err)?
                .get(ident)
                .map_err(store_err)?
                .map(|v| v.value())
                .ok_or_else(|| SyncStoreError(format!("unknown client file {ident}")))?;
            let fresh: Vec<UploadChangeset> = changesets
                .into_iter()
                .filter(|c| c.client_version > acked)
                .collect();
            let origins = read.open_table(ORIGINS).map_err(store_err)?;
            let origin_of = |origin: u64| -> Result<Option<(u64, u64)>, SyncStoreError> {
                Ok(origins.get(origin).map_err(store_err)?.map(|v| v.value()))
            };
            let gate = UploadGate {
                ident,
                acked,
                integrated,
                now_ms: now_ms(),
            };
            if let Err(refused) = gate.check(&fresh, origin_of)? {
                let outcome = UploadOutcome {
                    acked,
                    appended: false,
                    refused: Some(refused),
                };
                return Ok((outcome, writer.latest));
            }
            drop(origins);
            drop(read);
            let mut refused = None;
            let mut appended = false;
            // The common case: every changeset integrates; one transaction for the copy and
            // one for the log. Otherwise, one by one, to keep those before the refused one.
            let batch: Vec<&[u8]> = fresh.iter().map(|c| c.data.as_slice()).collect();
            if fresh.len() > 1 && shoal::replica::integrate_strictly(&writer.realm, &batch).is_ok()
            {
                let acked = append(&host.log, writer, ident, salt, &fresh)?.unwrap_or(acked);
                let outcome = UploadOutcome {
                    acked,
                    appended: true,
                    refused: None,
                };
                return Ok((outcome, writer.latest));
            }
            for c in &fresh {
                if let Err(e) = shoal::replica::integrate_strictly(&writer.realm, &[&c.data]) {
                    refused = Some(Refusal::changeset(
                        c.client_version,
                        format!("the server's copy refused it: {}", e.message()),
                    ));
                    break;
                }
                acked = append(&host.log, writer, ident, salt, std::slice::from_ref(c))?
                    .unwrap_or(acked);
                appended = true;
            }
            let outcome = UploadOutcome {
                acked,
                appended,
                refused,
            };
            Ok((outcome, writer.latest))
        })
        .await?;
        if outcome.appended {
            self.latest.send_replace(latest);
        }
        Ok(outcome)
    }

    /// The log after `after` for the file `own` (its own entries are left out but advance the
    /// cursor), at most one batch.
    async fn read_after(
        self: &Arc<Self>,
        after: u64,
        own: u64,
    ) -> Result<LogBatch, SyncStoreError> {
        let host = Arc::clone(self);
        blocking(move || {
            let txn = host.log.begin_read().map_err(store_err)?;
            let log = txn.open_table(LOG).map_err(store_err)?;
            let total = log
                .last()
                .map_err(store_err)?
                .map_or(0, |(_, v)| v.value().3);
            let mut batch = LogBatch {
                changesets: Vec::new(),
                last: after,
                cumulative: 0,
                total,
            };
            let mut bytes = 0;
            for item in log.range(after.saturating_add(1)..).map_err(store_err)? {
                let (k, v) = item.map_err(store_err)?;
                let (origin, client_version, stamp, cumulative, data) = v.value();
                if origin != own {
                    batch.changesets.push(DownloadChangeset {
                        server_version: k.value(),
                        origin_file_ident: origin,
                        origin_client_version: client_version,
                        stamp,
                        data: data.to_vec(),
                    });
                    bytes += data.len();
                }
                batch.last = k.value();
                batch.cumulative = cumulative;
                if bytes >= DOWNLOAD_BATCH_BYTES || batch.changesets.len() >= DOWNLOAD_BATCH_COUNT {
                    break;
                }
            }
            if batch.last == after {
                batch.cumulative = total;
            }
            Ok(batch)
        })
        .await
    }
}

/// `GET /realm-sync`: upgrades to the sync WebSocket if the client offers `shoal-sync/1`
/// (otherwise 400, as no version in common).
pub async fn realm_sync(
    State(service): State<Arc<SyncService>>,
    tracked: Option<Extension<TrackedConnection>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The connection's slot in the accept loop's limits (absent for in-process routers).
    let tracked = tracked.map(|Extension(TrackedConnection(t))| t);
    let upgrade = upgrade
        .protocols([WEBSOCKET_SUBPROTOCOL])
        // Room for a little more than the limit, so that a slightly oversized message gets
        // the codec's LIMITS_EXCEEDED; beyond this the read fails and gets it too.
        .max_message_size(MAX_MESSAGE_BYTES + 64 * 1024)
        .max_frame_size(MAX_MESSAGE_BYTES + 64 * 1024);
    if upgrade.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            format!("the sync endpoint needs the WebSocket subprotocol {WEBSOCKET_SUBPROTOCOL}"),
        )
            .into_response();
    }
    upgrade.on_upgrade(move |socket| async move {
        let Some(alive) = lock(&service.connections).clone() else {
            return; // shutting down
        };
        Connection::new(service, socket, tracked).serve().await;
        drop(alive);
    })
}

/// What a session is.
enum SessionState {
    /// Bound and working.
    Bound(Box<Session>),
    /// Ended by a session-level ERROR or an UNBIND: its messages are dropped.
    Ended,
}

/// A bound session.
struct Session {
    path: String,
    host: Arc<RealmHost>,
    /// The access token's payload (checked at BIND and REFRESH).
    token: TokenData,
    /// The client file ident.
    ident: u64,
    /// The server version sent up to; `None` until the first UPLOAD says where to start.
    cursor: Option<u64>,
    /// The client's last changeset in the log.
    acked: u64,
    /// The acknowledgement last sent.
    acked_sent: u64,
    /// Changeset bytes sent in this session.
    downloaded: u64,
    /// Forwards changes of the path's latest version to the connection.
    watcher: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Ends the connection: the ERROR to send first.
struct Close(Message);

fn conn_error(code: Conn, message: impl Into<String>) -> Close {
    Close(Message::error(0, code as i32, &message.into(), false))
}

/// A session-level failure.
struct SessionError {
    code: Sess,
    message: String,
    try_again: bool,
}

fn sess_error(code: Sess, message: impl Into<String>) -> SessionError {
    SessionError {
        code,
        message: message.into(),
        try_again: false,
    }
}

impl From<SyncStoreError> for SessionError {
    fn from(e: SyncStoreError) -> SessionError {
        tracing::error!(error = %e, "sync storage failed");
        SessionError {
            code: Sess::OtherSessionError,
            message: "server storage error".into(),
            try_again: true,
        }
    }
}

/// One WebSocket connection and its sessions.
struct Connection {
    service: Arc<SyncService>,
    socket: WebSocket,
    sessions: HashMap<u64, SessionState>,
    /// Session idents whose path moved on; fed by the sessions' watchers.
    moved_tx: mpsc::Sender<u64>,
    moved_rx: mpsc::Receiver<u64>,
    /// The connection's slot in the accept loop's limits: told whether a session is bound
    /// (a connection without one may be evicted to make room for others).
    tracked: Option<Arc<Tracked>>,
    /// Revoked refresh token ids, from the auth service (`None` once it is gone).
    revocations: Option<broadcast::Receiver<String>>,
}

impl Connection {
    fn new(
        service: Arc<SyncService>,
        socket: WebSocket,
        tracked: Option<Arc<Tracked>>,
    ) -> Connection {
        let (moved_tx, moved_rx) = mpsc::channel(64);
        // Subscribed before any BIND is checked, so a revocation racing a BIND is seen.
        let revocations = Some(service.auth.revocations());
        Connection {
            service,
            socket,
            sessions: HashMap::new(),
            moved_tx,
            moved_rx,
            tracked,
            revocations,
        }
    }

    fn has_bound_session(&self) -> bool {
        self.sessions
            .values()
            .any(|s| matches!(s, SessionState::Bound(_)))
    }

    /// Tells the limits whether a session is bound.
    fn set_bound(&self, bound: bool) {
        if let Some(tracked) = &self.tracked {
            let stage = if bound {
                Stage::WebSocketBound
            } else {
                Stage::WebSocketUnbound
            };
            tracked.set_stage(stage);
        }
    }

    async fn serve(mut self) {
        let mut shutdown = self.service.shutdown.subscribe();
        let idle = self.service.idle_timeout;
        let mut heard = tokio::time::Instant::now();
        // Until a session is bound with a valid token (and again once none is), the
        // connection must bind one by this deadline; frames (PINGs included) do not move it.
        let bind_timeout = self.service.bind_timeout;
        let mut bind_by = Some(heard + bind_timeout);
        self.set_bound(false);
        let close = loop {
            if *shutdown.borrow_and_update() {
                break Some(Close(Message::error(
                    0,
                    Conn::ConnectionClosed as i32,
                    "the server is shutting down",
                    true,
                )));
            }
            let result = tokio::select! {
                frame = self.socket.recv() => match frame {
                    None => break None,
                    Some(Ok(frame)) => {
                        heard = tokio::time::Instant::now();
                        self.on_frame(frame).await
                    }
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("too big") {
                            Err(conn_error(Conn::LimitsExceeded, text))
                        } else {
                            tracing::debug!(error = %text, "sync connection failed");
                            break None;
                        }
                    }
                },
                Some(session) = self.moved_rx.recv() => self.on_moved(session).await,
                revoked = next_revocation(&mut self.revocations) => self.on_revoked(revoked).await,
                _ = shutdown.changed() => continue,
                () = sleep_until_some(bind_by) => {
                    tracing::info!(seconds = bind_timeout.as_secs(),
                        "closing a sync connection without a bound session");
                    break Some(Close(Message::error(
                        0,
                        Conn::ConnectionClosed as i32,
                        "no session was bound with a valid access token in time",
                        true,
                    )));
                }
                _ = tokio::time::sleep_until(heard + idle) => {
                    tracing::info!(seconds = idle.as_secs(), "closing a silent sync connection");
                    break Some(Close(Message::error(
                        0,
                        Conn::ConnectionClosed as i32,
                        "nothing was heard from the client for too long",
                        true,
                    )));
                }
            };
            match (self.has_bound_session(), bind_by) {
                (true, Some(_)) => {
                    bind_by = None;
                    self.set_bound(true);
                }
                (false, None) => {
                    bind_by = Some(tokio::time::Instant::now() + bind_timeout);
                    self.set_bound(false);
                }
                _ => {}
            }
            match result {
                Ok(true) => {}
                Ok(false) => break None,
                Err(close) => break Some(close),
            }
        };
        self.sessions.clear();
        if let Some(Close(error)) = close {
            if let Message::Error { code, message, .. } = &error {
                tracing::info!(code, message = %message, "closing sync connection");
            }
            let _ = self
                .socket
                .send(WsMessage::Binary(error.encode().into()))
                .await;
            let _ = self
                .socket
                .send(WsMessage::Close(Some(CloseFrame {
                    code: 1000,
                    reason: "".into(),
                })))
                .await;
        }
    }

    /// Sends one message; `Ok(false)` when the peer is gone.
    async fn send(&mut self, message: &Message) -> Result<bool, Close> {
        Ok(self
            .socket
            .send(WsMessage::Binary(message.encode().into()))
            .await
            .is_ok())
    }

    /// Handles one frame. `Ok(false)`: the connection ended; `Err`: close with an ERROR.
    async fn on_frame(&mut self, frame: WsMessage) -> Result<bool, Close> {
        let bytes = match frame {
            WsMessage::Binary(bytes) => bytes,
            WsMessage::Text(_) => {
                return Err(conn_error(
                    Conn::BadSyntax,
                    "text frame: every message is one binary frame",
                ))
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => return Ok(true),
            WsMessage::Close(_) => return Ok(false),
        };
        let message = Message::decode(&bytes).map_err(|e| Close(e.to_message()))?;
        if message.sender() == Sender::Server {
            return Err(conn_error(
                Conn::UnknownMessage,
                format!("{} is sent by the server only", message.name()),
            ));
        }
        match message {
            Message::Ping { timestamp } => self.send(&Message::Pong { timestamp }).await,
            Message::Bind {
                session,
                path,
                access_token,
                client_file_ident,
                client_file_salt,
            } => {
                if session == 0 {
                    return Err(conn_error(Conn::BadSessionIdent, "session ident 0"));
                }
                if self.sessions.contains_key(&session) {
                    return Err(conn_error(
                        Conn::ReuseOfSessionIdent,
                        format!("session {session} was used before on this connection"),
                    ));
                }
                self.sessions.insert(session, SessionState::Ended);
                let bound = self
                    .bind(
                        session,
                        path,
                        &access_token,
                        client_file_ident,
                        client_file_salt,
                    )
                    .await;
                self.session_result(session, bound).await
            }
            other => {
                let Some(session) = other.session() else {
                    return Ok(true);
                };
                match self.sessions.get(&session) {
                    None => {
                        return Err(conn_error(
                            Conn::BadSessionIdent,
                            format!("session {session} is not bound"),
                        ))
                    }
                    // Dropped: the session has ended (UNBIND included).
                    Some(SessionState::Ended) => return Ok(true),
                    Some(SessionState::Bound(_)) => {}
                }
                let result = match other {
                    Message::Upload {
                        progress,
                        changesets,
                        ..
                    } => self.upload(session, progress, changesets).await,
                    Message::Mark { request, .. } => self.mark(session, request).await,
                    Message::Refresh { access_token, .. } => {
                        self.refresh(session, &access_token).await
                    }
                    Message::Unbind { .. } => {
                        tracing::info!(session, "unbound");
                        self.sessions.insert(session, SessionState::Ended);
                        Ok(Ok(true))
                    }
                    _ => Ok(Ok(true)),
                };
                self.session_result(session, result).await
            }
        }
    }

    /// Turns a session-level failure into its ERROR and ends the session.
    async fn session_result(
        &mut self,
        session: u64,
        result: Result<Result<bool, Close>, SessionError>,
    ) -> Result<bool, Close> {
        match result {
            Ok(r) => r,
            Err(e) => self.fail_session(session, e).await,
        }
    }

    /// Sends the session its ERROR and ends it (its later messages are dropped).
    async fn fail_session(&mut self, session: u64, e: SessionError) -> Result<bool, Close> {
        tracing::info!(session, code = e.code as i32, message = %e.message, "session error");
        self.sessions.insert(session, SessionState::Ended);
        self.send(&Message::error(
            session,
            e.code as i32,
            &e.message,
            e.try_again,
        ))
        .await
    }

    /// `TOKEN_EXPIRED` (try again) if the session's access token has expired by the server's
    /// clock: checked for every message the session sends or is sent, so a session stops
    /// receiving changesets when its token expires (clients REFRESH ahead of that).
    fn expired(&mut self, session: u64) -> Option<SessionError> {
        let s = self.session(session)?;
        s.token.is_expired_at(unix_now()).then(|| SessionError {
            code: Sess::TokenExpired,
            message: format!(
                "the access token expired at {}; REFRESH it or bind again with a new one",
                s.token.expires
            ),
            try_again: true,
        })
    }

    /// A refresh token was revoked (`Ok(id)`), or revocations were missed (`Lagged`): ends
    /// every bound session whose access token was issued from a revoked refresh token with
    /// `BAD_AUTHENTICATION` (the token will never be valid again).
    async fn on_revoked(
        &mut self,
        revoked: Result<String, broadcast::error::RecvError>,
    ) -> Result<bool, Close> {
        let bound = self.sessions.iter().filter_map(|(id, state)| match state {
            SessionState::Bound(s) => Some((*id, s.token.refresh_token_id.clone())),
            SessionState::Ended => None,
        });
        let bound: Vec<(u64, Option<String>)> = bound.collect();
        let mut ended = Vec::new();
        match revoked {
            Ok(token_id) => ended.extend(
                bound
                    .into_iter()
                    .filter(|(_, id)| id.as_deref() == Some(token_id.as_str()))
                    .map(|(session, _)| session),
            ),
            Err(broadcast::error::RecvError::Closed) => {
                self.revocations = None;
                return Ok(true);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "missed revocations; checking every session");
                for (session, id) in bound {
                    if let Some(id) = id {
                        match is_revoked(&self.service, id).await {
                            Ok(false) => {}
                            Ok(true) => ended.push(session),
                            Err(e) => {
                                let result = self.fail_session(session, e).await;
                                if !matches!(result, Ok(true)) {
                                    return result;
                                }
                            }
                        }
                    }
                }
            }
        }
        for session in ended {
            let error = sess_error(
                Sess::BadAuthentication,
                "the refresh token this session's access token was issued from was revoked",
            );
            if !self.fail_session(session, error).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Checks an access token for `path`: signature, expiry, path, download access, and that
    /// the refresh token it was issued from is not revoked.
    async fn check_token(
        service: Arc<SyncService>,
        path: &str,
        token: &str,
    ) -> Result<TokenData, SessionError> {
        let data = match service.verifier.verify(token, unix_now()) {
            Ok(data) => data,
            Err(TokenError::Expired { expires }) => {
                return Err(SessionError {
                    code: Sess::TokenExpired,
                    message: format!("the access token expired at {expires}"),
                    try_again: true,
                })
            }
            Err(e) => return Err(sess_error(Sess::BadAuthentication, e.to_string())),
        };
        let Some(refresh_id) = data.refresh_token_id.clone() else {
            // Issued before access tokens named their refresh token: it cannot be checked
            // against revocations, so the client is asked for a new one (honest clients
            // renew silently on TOKEN_EXPIRED).
            return Err(SessionError {
                code: Sess::TokenExpired,
                message: "the access token does not name its refresh token; get a new one".into(),
                try_again: true,
            });
        };
        if data.path.as_deref() != Some(path) {
            return Err(sess_error(
                Sess::PermissionDenied,
                format!("the access token is not for '{path}'"),
            ));
        }
        if !data.access.iter().any(|a| a == "download") {
            return Err(sess_error(
                Sess::PermissionDenied,
                "the access token does not grant download",
            ));
        }
        if is_revoked(&service, refresh_id).await? {
            return Err(sess_error(
                Sess::BadAuthentication,
                "the refresh token this access token was issued from was revoked",
            ));
        }
        Ok(data)
    }

    async fn bind(
        &mut self,
        session: u64,
        path: String,
        token: &str,
        ident: u64,
        salt: u64,
    ) -> Result<Result<bool, Close>, SessionError> {
        if !is_realm_path(&path) {
            return Err(sess_error(
                Sess::IllegalRealmPath,
                format!("'{path}' is not a realm path"),
            ));
        }
        let token = Self::check_token(Arc::clone(&self.service), &path, token).await?;
        let host = self.service.host(&path).await?;
        let (ident, acked) = if ident == 0 {
            let (ident, salt) = host.new_client().await?;
            let ident_message = Message::Ident {
                session,
                client_file_ident: ident,
                salt,
            };
            if let Ok(false) | Err(_) = self.send(&ident_message).await {
                return Ok(Ok(false));
            }
            (ident, 0)
        } else {
            match host.client(ident).await? {
                Some((stored, acked)) if stored == salt => (ident, acked),
                _ => {
                    return Err(sess_error(
                        Sess::BadClientFileIdent,
                        format!("client file {ident} is unknown or its salt is wrong"),
                    ))
                }
            }
        };
        tracing::info!(session, path = %path, ident, identity = %token.identity, "bound");
        let mut watch = host.latest.subscribe();
        let moved = self.moved_tx.clone();
        let watcher = tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                if moved.send(session).await.is_err() {
                    break;
                }
            }
        });
        self.sessions.insert(
            session,
            SessionState::Bound(Box::new(Session {
                path,
                host,
                token,
                ident,
                cursor: None,
                acked,
                acked_sent: acked,
                downloaded: 0,
                watcher,
            })),
        );
        Ok(Ok(true))
    }

    fn session(&mut self, session: u64) -> Option<&mut Session> {
        match self.sessions.get_mut(&session) {
            Some(SessionState::Bound(s)) => Some(s),
            _ => None,
        }
    }

    async fn upload(
        &mut self,
        session: u64,
        progress: UploadProgress,
        changesets: Vec<UploadChangeset>,
    ) -> Result<Result<bool, Close>, SessionError> {
        if let Some(e) = self.expired(session) {
            return Err(e);
        }
        let Some(s) = self.session(session) else {
            return Ok(Ok(true));
        };
        if !changesets.is_empty() && !s.token.access.iter().any(|a| a == "upload") {
            return Err(sess_error(
                Sess::PermissionDenied,
                "the access token does not grant upload",
            ));
        }
        if changesets
            .windows(2)
            .any(|w| w[1].client_version <= w[0].client_version)
        {
            return Err(sess_error(
                Sess::BadClientVersion,
                "changesets must be in increasing client version order",
            ));
        }
        let latest = *s.host.latest.borrow();
        let first = s.cursor.is_none();
        if first {
            if progress.last_integrated_server_version > latest {
                return Err(sess_error(
                    Sess::BadServerVersion,
                    format!(
                        "server version {} is beyond the log ({latest})",
                        progress.last_integrated_server_version
                    ),
                ));
            }
            s.cursor = Some(progress.last_integrated_server_version);
        }
        if !changesets.is_empty() {
            let host = Arc::clone(&s.host);
            // What the client can have integrated: at most what it has been sent.
            let integrated = progress
                .last_integrated_server_version
                .min(s.cursor.unwrap_or(0));
            let outcome = host.upload(s.ident, changesets, integrated).await?;
            s.acked = outcome.acked;
            if let Some(refused) = outcome.refused {
                return Err(sess_error(refused.code, refused.message));
            }
        }
        Ok(self.catch_up(session, first).await)
    }

    async fn mark(
        &mut self,
        session: u64,
        request: u64,
    ) -> Result<Result<bool, Close>, SessionError> {
        if self.session(session).is_some_and(|s| s.cursor.is_none()) {
            return Ok(Err(conn_error(
                Conn::BadMessageOrder,
                "MARK before the session's first UPLOAD",
            )));
        }
        if let Some(e) = self.expired(session) {
            return Err(e);
        }
        match self.catch_up(session, false).await {
            Ok(true) => Ok(self.send(&Message::Mark { session, request }).await),
            other => Ok(other),
        }
    }

    async fn refresh(
        &mut self,
        session: u64,
        token: &str,
    ) -> Result<Result<bool, Close>, SessionError> {
        let Some(path) = self.session(session).map(|s| s.path.clone()) else {
            return Ok(Ok(true));
        };
        let data = Self::check_token(Arc::clone(&self.service), &path, token).await?;
        if let Some(s) = self.session(session) {
            s.token = data;
        }
        Ok(Ok(true))
    }

    /// The path of `session` moved on: send what is new.
    async fn on_moved(&mut self, session: u64) -> Result<bool, Close> {
        match self.catch_up(session, false).await {
            Ok(r) => Ok(r),
            Err(close) => Err(close),
        }
    }

    /// Sends the log after the session's cursor up to the latest version, in DOWNLOADs; with
    /// `force`, or when the acknowledgement moved, at least one (possibly empty) DOWNLOAD.
    async fn catch_up(&mut self, session: u64, force: bool) -> Result<bool, Close> {
        let mut force = force;
        loop {
            // Nothing goes down once the token has expired; the session ends with
            // TOKEN_EXPIRED and its client binds again from where it got to.
            if let Some(e) = self.expired(session) {
                return self.fail_session(session, e).await;
            }
            let Some(s) = self.session(session) else {
                return Ok(true);
            };
            let Some(cursor) = s.cursor else {
                return Ok(true);
            };
            let latest = *s.host.latest.borrow();
            let host = Arc::clone(&s.host);
            let own = s.ident;
            let batch = if cursor < latest {
                match host.read_after(cursor, own).await {
                    Ok(batch) => Some(batch),
                    Err(e) => {
                        tracing::error!(error = %e, "reading the sync log failed");
                        return Err(conn_error(Conn::OtherError, "server storage error"));
                    }
                }
            } else {
                None
            };
            let Some(s) = self.session(session) else {
                return Ok(true);
            };
            let message = match batch {
                Some(batch) if batch.last > cursor => {
                    let bytes: u64 = batch.changesets.iter().map(|c| c.data.len() as u64).sum();
                    s.downloaded += bytes;
                    s.cursor = Some(batch.last);
                    s.acked_sent = s.acked;
                    Message::Download {
                        session,
                        acked_client_version: s.acked,
                        progress: DownloadProgress {
                            server_version: batch.last,
                            downloaded_bytes: s.downloaded,
                            downloadable_bytes: batch.total.saturating_sub(batch.cumulative),
                        },
                        changesets: batch.changesets,
                    }
                }
                _ if force || s.acked != s.acked_sent => {
                    s.acked_sent = s.acked;
                    Message::Download {
                        session,
                        acked_client_version: s.acked,
                        progress: DownloadProgress {
                            server_version: cursor,
                            downloaded_bytes: s.downloaded,
                            downloadable_bytes: 0,
                        },
                        changesets: Vec::new(),
                    }
                }
                _ => return Ok(true),
            };
            force = false;
            let more = matches!(&message, Message::Download { progress, .. }
                if progress.server_version < latest);
            if !self.send(&message).await? {
                return Ok(false);
            }
            if !more {
                return Ok(true);
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Whether the refresh token `id` is revoked (the auth service's list, on disk).
async fn is_revoked(service: &Arc<SyncService>, id: String) -> Result<bool, SessionError> {
    let auth = Arc::clone(&service.auth);
    Ok(blocking(move || auth.is_revoked(&id).map_err(store_err)).await?)
}

/// The next revocation; never ready once the auth service's feed has closed.
async fn next_revocation(
    feed: &mut Option<broadcast::Receiver<String>>,
) -> Result<String, broadcast::error::RecvError> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether `path` is a realm path as the auth service issues them: `/` then segments of
/// `[A-Za-z0-9_.-]+` (not `.` or `..`), at most 1024 bytes, no reserved suffix.
fn is_realm_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.last().copied().unwrap_or_default();
    path.len() <= MAX_PATH_BYTES
        && segments.iter().all(|s| crate::auth::is_path_segment(s))
        && ![".realm", ".realm.lock", ".realm.management"]
            .iter()
            .any(|suffix| last.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: u64 = 0xabc;
    const NOW_MS: u64 = 1_800_000_000_000;

    fn entry(client_version: u64, stamp: u64, origin: u64) -> UploadChangeset {
        let data = shoal::replica::encode_changeset(&shoal::replica::Changeset {
            stamp,
            origin,
            instructions: Vec::new(),
        });
        UploadChangeset {
            client_version,
            stamp,
            data,
        }
    }

    fn gate(acked: u64, integrated: u64) -> UploadGate {
        UploadGate {
            ident: 7,
            acked,
            integrated,
            now_ms: NOW_MS,
        }
    }

    /// The log's `origins`: ORIGIN is file 7's (last stamp 100), 0xdef file 8's.
    fn origins(origin: u64) -> Result<Option<(u64, u64)>, SyncStoreError> {
        Ok(match origin {
            ORIGIN => Some((7, 100)),
            0xdef => Some((8, 100)),
            _ => None,
        })
    }

    fn refused(gate: &UploadGate, fresh: &[UploadChangeset]) -> Option<Sess> {
        gate.check(fresh, origins).unwrap().err().map(|r| r.code)
    }

    #[test]
    fn client_versions_stay_within_what_the_file_can_have_made() {
        // 3 logged, 2 integrated: the first may be 6, the second 7.
        let ok = [entry(6, 200, ORIGIN), entry(7, 201, ORIGIN)];
        assert_eq!(refused(&gate(3, 2), &ok), None);
        let beyond = [entry(6, 200, ORIGIN), entry(8, 201, ORIGIN)];
        assert_eq!(refused(&gate(3, 2), &beyond), Some(Sess::BadClientVersion));
        assert_eq!(
            refused(&gate(0, 0), &[entry(u64::MAX, 200, ORIGIN)]),
            Some(Sess::BadClientVersion)
        );
        assert_eq!(
            refused(
                &gate(u64::MAX - 1, u64::MAX),
                &[entry(u64::MAX, 200, ORIGIN)]
            ),
            None,
            "no overflow"
        );
    }

    #[test]
    fn stamps_and_replica_ids_are_checked() {
        let g = gate(0, 0);
        let fresh = |stamp, origin| [entry(1, stamp, origin)];
        assert_eq!(refused(&g, &fresh(101, ORIGIN)), None);
        assert_eq!(refused(&g, &fresh(5, 0x123)), None, "a new replica id");
        for (stamp, origin) in [(100, ORIGIN), (99, ORIGIN), (101, 0xdef), (0, ORIGIN)] {
            assert_eq!(
                refused(&g, &fresh(stamp, origin)),
                Some(Sess::BadChangeset),
                "{stamp} {origin:x}"
            );
        }
        let day_ahead = (NOW_MS + MAX_STAMP_AHEAD_MS) << 16;
        assert_eq!(refused(&g, &fresh(day_ahead | 0xFFFF, ORIGIN)), None);
        assert_eq!(
            refused(&g, &fresh((day_ahead | 0xFFFF) + 1, ORIGIN)),
            Some(Sess::BadChangeset)
        );
        // Within one UPLOAD too: a replica's stamps grow.
        let both = [entry(1, 300, 0x123), entry(2, 300, 0x123)];
        assert_eq!(refused(&g, &both), Some(Sess::BadChangeset));
        // The UPLOAD's stamp is the header's.
        let mut other = entry(1, 300, ORIGIN);
        other.stamp = 301;
        assert_eq!(refused(&g, &[other]), Some(Sess::BadChangeset));
        let mut garbage = entry(1, 300, ORIGIN);
        garbage.data = b"garbage".to_vec();
        assert_eq!(refused(&g, &[garbage]), Some(Sess::BadChangeset));
    }

    #[test]
    fn realm_paths() {
        assert!(is_realm_path("/u1/tasks"));
        assert!(is_realm_path("/public"));
        for bad in [
            "",
            "u1",
            "/",
            "/u1/",
            "/u1/../x",
            "/~/x",
            "/u1/x.realm",
            "/a b",
        ] {
            assert!(!is_realm_path(bad), "{bad:?}");
        }
    }
}

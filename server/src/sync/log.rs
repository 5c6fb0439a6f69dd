//! The changeset log storage of the sync service: the index of realm paths, and per path
//! the ordered log, the client files and the server's copy.
//!
//! ```text
//! DATA/sync.redb           sync_meta   &str "format" → 1, "next_realm" → next realm dir number
//!                          sync_realms &str realm path → u64 realm dir number
//! DATA/realms/<n>/log.redb log         u64 server version → (origin file ident, origin client
//!                                      version, stamp, cumulative bytes through it, bytes)
//!                          clients     u64 client file ident → (salt, last client version)
//!                          origins     u64 replica id → (its client file ident, its last stamp)
//!                          meta        &str "format" → 1, "next_ident" → next file ident,
//!                                      "server_logged" → the copy's last own version logged
//! DATA/realms/<n>/server.realm         the server's copy (a shoal realm with merge metadata)
//! ```
//!
//! **The server's own changes** (the answers in a management realm, `permissions/`) are
//! written into the copy as local transactions, then logged like an upload of a client file
//! that does not exist, [`SERVER_IDENT`]: origin ident `SERVER_IDENT`, client version = the
//! copy's version, replica id = the copy's own (owned by `SERVER_IDENT` in `origins`, so no
//! client can upload under it), `server_logged` moved in the same transaction. Whatever the
//! copy made that the log lacks (a crash between the two commits) is logged when the path is
//! opened next, before anything reads the log.
//!
//! Realm paths map to numbered directories through `sync_realms` (paths can be longer than a
//! file name; numbers never collide). **Ordering and durability:** an uploaded changeset is
//! first checked ([`UploadGate`]), then integrated into the server's copy (which validates
//! it: a changeset the core refuses is `BAD_CHANGESET` 212 and is not appended), then
//! appended to `log` with the next server version in a committed redb transaction, and only
//! then acknowledged. A crash between the two steps leaves the copy ahead of the log; the
//! client re-uploads the unacknowledged changeset and the copy skips it as already
//! integrated, so log and copy agree again. Readers (downloads) use redb read transactions
//! and never wait for the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use shoal::protocol::sync::{DownloadChangeset, UploadChangeset, CHANGESET_PART_BYTES};
use tokio::sync::{watch, OnceCell};

use super::gate::{now_ms, Refusal, UploadGate};
use crate::permissions::{management_realm_owner, Permissions, PermissionsError};

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
/// The client file ident of the server's own changesets in a log: never a client's (idents
/// are counted up from 1, and a BIND must name an ident in `clients`).
pub(super) const SERVER_IDENT: u64 = u64::MAX;
/// The `meta` key of the copy's last own version in the log.
const SERVER_LOGGED: &str = "server_logged";
/// Changeset bytes per DOWNLOAD (at least one changeset is always sent).
const DOWNLOAD_BATCH_BYTES: usize = 1024 * 1024;
/// Changesets per DOWNLOAD.
const DOWNLOAD_BATCH_COUNT: usize = 1000;
/// A failure of the sync storage (redb, the server's realm copy, the file system).
#[derive(Debug, thiserror::Error)]
#[error("sync storage: {0}")]
pub struct SyncStoreError(String);

pub(super) fn store_err(e: impl std::fmt::Display) -> SyncStoreError {
    SyncStoreError(e.to_string())
}

impl From<PermissionsError> for SyncStoreError {
    fn from(e: PermissionsError) -> SyncStoreError {
        store_err(e)
    }
}

/// The changeset logs of every realm path: the index of paths and the open per-path state.
pub(super) struct LogStore {
    /// `DATA/realms`.
    realms_dir: PathBuf,
    /// `DATA/sync.redb`: realm path → directory number. Shared with the management realms'
    /// hosts, which list a user's realms from it.
    index: Arc<Database>,
    /// The open per-path state. A std mutex: held only to look up or insert a cell, never
    /// across an await; the `OnceCell` makes concurrent first binds open a path once.
    hosts: StdMutex<HashMap<String, Arc<OnceCell<Arc<RealmHost>>>>>,
    /// The grants; management realms are processed through it.
    permissions: Arc<Permissions>,
}

impl LogStore {
    /// Opens (or creates) `DATA/sync.redb` and `DATA/realms`. Blocks (redb I/O).
    ///
    /// # Errors
    /// [`SyncStoreError`] when the storage cannot be opened or is of a newer format.
    pub(super) fn open(
        data_dir: &Path,
        permissions: Arc<Permissions>,
    ) -> Result<LogStore, SyncStoreError> {
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
        Ok(LogStore {
            realms_dir,
            index: Arc::new(index),
            hosts: StdMutex::new(HashMap::new()),
            permissions,
        })
    }

    /// Closes every path's storage (once the sessions holding them are gone).
    pub(super) fn close(&self) {
        lock(&self.hosts).clear();
    }

    /// The state of `path`, opened on first use.
    pub(super) async fn host(
        self: &Arc<Self>,
        path: &str,
    ) -> Result<Arc<RealmHost>, SyncStoreError> {
        let cell = lock(&self.hosts)
            .entry(path.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(|| {
            let logs = Arc::clone(self);
            let path = path.to_owned();
            async move {
                blocking(move || {
                    let dir = logs.realm_dir(&path)?;
                    let management = management_realm_owner(&path).map(|_| Management {
                        permissions: Arc::clone(&logs.permissions),
                        index: Arc::clone(&logs.index),
                    });
                    RealmHost::open(&path, &dir, management).map(Arc::new)
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

/// The realm paths under `/<user>/` in the index (every realm of `user` that was ever bound).
fn owned_paths(index: &Database, user: &str) -> Result<Vec<String>, PermissionsError> {
    let prefix = format!("/{user}/");
    let txn = index.begin_read().map_err(PermissionsError::storage)?;
    let realms = txn
        .open_table(SYNC_REALMS)
        .map_err(PermissionsError::storage)?;
    let mut out = Vec::new();
    for item in realms
        .range(prefix.as_str()..)
        .map_err(PermissionsError::storage)?
    {
        let (k, _) = item.map_err(PermissionsError::storage)?;
        let path = k.value();
        if !path.starts_with(&prefix) {
            break;
        }
        out.push(path.to_owned());
    }
    Ok(out)
}

pub(super) fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
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
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SyncStoreError> + Send + 'static,
) -> Result<T, SyncStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncStoreError(format!("storage task failed: {e}")))?
}

/// One realm path's server state.
pub(super) struct RealmHost {
    /// `log.redb`: the ordered log and the client files. Readers (downloads) use redb read
    /// transactions and never wait for the writer.
    log: Database,
    /// Serialises everything that writes (uploads, new client idents). A tokio mutex locked
    /// with `lock_owned` and its guard moved into `spawn_blocking`: waiting for it is async (no
    /// runtime or blocking-pool thread is parked), while the work under it (integration into
    /// the realm copy, redb commit and fsync) runs on the blocking pool.
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// The latest server version; every session of the path watches it.
    pub(super) latest: watch::Sender<u64>,
    /// The realm path.
    path: String,
    /// Set for a management realm (`/<owner>/__management`): its requests are answered.
    management: Option<Management>,
}

/// What a management realm's host needs to answer its requests.
struct Management {
    /// Decides and records the answers.
    permissions: Arc<Permissions>,
    /// `DATA/sync.redb`, for the realms a user owns.
    index: Arc<Database>,
}

impl Management {
    /// Answers the requests of the management realm `path` not answered yet, then logs what
    /// the copy wrote (also after a failure: the answers written so far go out).
    fn process(
        &self,
        path: &str,
        log: &Database,
        writer: &mut Writer,
    ) -> Result<bool, SyncStoreError> {
        let index = &self.index;
        let processed = self
            .permissions
            .process_management_realm(&writer.realm, path, &|user| owned_paths(index, user));
        let logged = append_own(log, writer)?;
        processed?;
        Ok(logged)
    }
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
            let (stamp, origin) = shoal::replica::changeset_header(&c.data).map_err(store_err)?;
            origins.insert(origin, (ident, stamp)).map_err(store_err)?;
        }
    }
    txn.commit().map_err(store_err)?;
    writer.latest = version;
    writer.total_bytes = cumulative;
    Ok(Some(last))
}

/// Logs the copy's own changesets the log does not have yet (see the module doc), in one
/// durable transaction with `server_logged`. Returns whether there were any.
fn append_own(log: &Database, writer: &mut Writer) -> Result<bool, SyncStoreError> {
    let txn = log.begin_write().map_err(store_err)?;
    let mut version = writer.latest;
    let mut cumulative = writer.total_bytes;
    {
        let mut meta = txn.open_table(META).map_err(store_err)?;
        let logged = meta
            .get(SERVER_LOGGED)
            .map_err(store_err)?
            .map_or(0, |v| v.value());
        let own = writer
            .realm
            .local_changesets_since(logged)
            .map_err(store_err)?;
        let Some(&(last, _)) = own.last() else {
            return Ok(false);
        };
        let mut table = txn.open_table(LOG).map_err(store_err)?;
        let mut origins = txn.open_table(ORIGINS).map_err(store_err)?;
        for (copy_version, data) in &own {
            let (stamp, origin) = shoal::replica::changeset_header(data).map_err(store_err)?;
            version += 1;
            cumulative += data.len() as u64;
            table
                .insert(
                    version,
                    (
                        SERVER_IDENT,
                        *copy_version,
                        stamp,
                        cumulative,
                        data.as_slice(),
                    ),
                )
                .map_err(store_err)?;
            origins
                .insert(origin, (SERVER_IDENT, stamp))
                .map_err(store_err)?;
        }
        meta.insert(SERVER_LOGGED, last).map_err(store_err)?;
    }
    txn.commit().map_err(store_err)?;
    writer.latest = version;
    writer.total_bytes = cumulative;
    Ok(true)
}

/// A batch of the log read for one session.
pub(super) struct LogBatch {
    /// The entries not made by the session's own file.
    pub(super) changesets: Vec<DownloadChangeset>,
    /// The last server version read (the cursor after this batch).
    pub(super) last: u64,
    /// Cumulative changeset bytes of the log through `last`.
    pub(super) cumulative: u64,
    /// Changeset bytes in the whole log.
    pub(super) total: u64,
}

/// What an upload did.
pub(super) struct UploadOutcome {
    /// The client's last changeset in the log.
    pub(super) acked: u64,
    /// Whether anything was appended.
    appended: bool,
    /// Why the upload was refused, if it was: by [`UploadGate::check`] (nothing appended) or
    /// by the realm copy (those before the refused changeset were appended).
    pub(super) refused: Option<Refusal>,
}

impl RealmHost {
    fn open(
        path: &str,
        dir: &Path,
        management: Option<Management>,
    ) -> Result<RealmHost, SyncStoreError> {
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
                    if let Ok((stamp, origin)) = shoal::replica::changeset_header(data) {
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
        let mut writer = Writer {
            realm,
            latest,
            total_bytes,
        };
        // The server's own changes a crash kept out of the log.
        if append_own(&log, &mut writer)? {
            tracing::info!(
                path,
                "logged changes of the server's copy left out by a crash"
            );
        }
        let latest = writer.latest;
        tracing::info!(path, dir = %dir.display(), latest, "opened sync realm");
        Ok(RealmHost {
            log,
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            latest: watch::Sender::new(latest),
            path: path.to_owned(),
            management,
        })
    }

    /// Whether this is a management realm.
    pub(super) fn is_management(&self) -> bool {
        self.management.is_some()
    }

    /// For a management realm: answers the requests not answered yet (left by a crash or a
    /// storage failure) and logs the answers. Nothing for other realms.
    pub(super) async fn process_management(self: &Arc<Self>) -> Result<(), SyncStoreError> {
        if self.management.is_none() {
            return Ok(());
        }
        let mut guard = Arc::clone(&self.writer).lock_owned().await;
        let host = Arc::clone(self);
        let latest = blocking(move || {
            let writer = &mut *guard;
            if let Some(management) = &host.management {
                management.process(&host.path, &host.log, writer)?;
            }
            Ok(writer.latest)
        })
        .await?;
        self.latest.send_if_modified(|v| {
            let moved = *v != latest;
            *v = latest;
            moved
        });
        Ok(())
    }

    /// Registers a new client file: `(ident, salt)`, durable when returned.
    pub(super) async fn new_client(self: &Arc<Self>) -> Result<(u64, u64), SyncStoreError> {
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
    pub(super) async fn client(
        self: &Arc<Self>,
        ident: u64,
    ) -> Result<Option<(u64, u64)>, SyncStoreError> {
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
    /// [`UploadGate::check`]; if the realm copy then refuses one, those before it stay.
    pub(super) async fn upload(
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
            if let Some(refused) = gate.check(&fresh, origin_of)? {
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
                host.after_upload(writer, &outcome);
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
            host.after_upload(writer, &outcome);
            Ok((outcome, writer.latest))
        })
        .await?;
        if outcome.appended {
            self.latest.send_replace(latest);
        }
        Ok(outcome)
    }

    /// After an upload that appended something to a management realm: answers its new
    /// requests. A failure is logged, not the upload's: the requests stay unanswered until the
    /// next upload or BIND of the realm.
    fn after_upload(&self, writer: &mut Writer, outcome: &UploadOutcome) {
        let Some(management) = self.management.as_ref().filter(|_| outcome.appended) else {
            return;
        };
        if let Err(e) = management.process(&self.path, &self.log, writer) {
            tracing::error!(path = %self.path, error = %e,
                "answering the management realm's requests failed");
        }
    }

    /// The log after `after` for the file `own` (its own entries are left out but advance the
    /// cursor), at most one batch.
    pub(super) async fn read_after(
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
                // A changeset sent in parts comes first in its DOWNLOAD (the parts end with
                // the DOWNLOAD's first changeset): one after others waits for the next batch.
                if origin != own
                    && data.len() > CHANGESET_PART_BYTES
                    && !batch.changesets.is_empty()
                {
                    break;
                }
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

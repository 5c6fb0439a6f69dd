//! The process-wide registry of open realm files.
//!
//! redb allows one `Database` per file per process, and Realm semantics want every handle of a
//! path in one process to share one file: the registry maps a canonical path to the
//! [`SharedFile`] while any handle holds it. A second *process* is refused by redb's file lock
//! and gets `FileInUse`.

use crate::error::{Error, ErrorCode, Result};
use crate::notify::{Notifier, SnapshotSource};
use crate::store::catalog::Catalog;
use crate::store::crypto::{self, EncryptedBackend, FileKind};
use crate::store::retention::HistoryHolds;
use crate::store::snapshot::Snapshot;
use crate::store::write::WriteTxn;
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadOnlyDatabase, ReadableDatabase};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Weak};
use std::thread::ThreadId;

/// One open realm file, shared by every handle of its path in this process.
pub(crate) struct SharedFile {
    /// The registry key: the canonical path, or `mem:<path>` for in-memory realms.
    pub(crate) key: String,
    /// Behind a lock only so that compaction can get exclusive access; everything else takes
    /// the read side for the duration of one call (transactions do not borrow it).
    db: RwLock<Db>,
    /// A digest of the encryption key the file was opened with (every handle must use it).
    key_digest: Option<[u8; 32]>,
    /// Delivers change notifications of this file to every handle's callbacks.
    pub(crate) notifier: Notifier,
    /// What this process's handles need of the history (see `retention.rs`).
    pub(crate) history_holds: HistoryHolds,
    /// Held from a commit until its notification is queued, so that notifications arrive in
    /// commit order even when the next writer commits at once.
    pub(crate) commit_order: Mutex<()>,
    /// Per class, the next object key this process may hand out: a cancelled transaction
    /// gives its keys back to the file but not to this counter, so an `Object` kept from a
    /// cancelled transaction can never come to name a different object.
    key_floor: Arc<Mutex<rustc_hash::FxHashMap<u32, u64>>>,
    /// The last parsed catalog, reused by new snapshots while the schema is unchanged.
    last_catalog: Mutex<Option<CachedCatalog>>,
    /// The thread that holds the write lock through some handle, to refuse a second write
    /// transaction on the same thread (which would wait for itself forever).
    writer: Mutex<Option<ThreadId>>,
}

/// A parsed catalog and the bytes it was parsed from.
type CachedCatalog = (Arc<Vec<u8>>, Arc<Catalog>);

/// The redb database, writable or opened read-only (which never writes to the file).
enum Db {
    ReadWrite(Database),
    ReadOnly(ReadOnlyDatabase),
    /// No database: the file is being dropped, or compaction could not reopen it.
    Closed,
}

impl Db {
    fn begin_read(&self) -> Result<redb::ReadTransaction> {
        match self {
            Db::ReadWrite(d) => Ok(d.begin_read()?),
            Db::ReadOnly(d) => Ok(d.begin_read()?),
            Db::Closed => Err(closed_file()),
        }
    }
}

fn closed_file() -> Error {
    Error::new(
        ErrorCode::RealmClosed,
        "the realm file is closed (it could not be reopened after compaction)",
    )
}

/// How to open a file: the parts of a realm configuration that storage needs.
pub(crate) struct OpenOptions<'a> {
    pub(crate) path: &'a str,
    pub(crate) in_memory: bool,
    pub(crate) read_only: bool,
    pub(crate) key: Option<&'a [u8; 64]>,
}

fn key_digest(key: Option<&[u8; 64]>) -> Option<[u8; 32]> {
    use sha2::{Digest, Sha256};
    key.map(|k| Sha256::digest([b"shoal-key-id".as_slice(), k].concat()).into())
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Weak<SharedFile>>>> =
    LazyLock::new(Default::default);

/// The registry key of a path: absolute and with symlinks of its folder resolved, so two
/// spellings of one file share one entry.
pub(crate) fn registry_key(path: &str, in_memory: bool) -> Result<String> {
    if in_memory {
        return Ok(format!("mem:{path}"));
    }
    let p = Path::new(path);
    let file_name = p
        .file_name()
        .ok_or_else(|| Error::invalid(format!("'{path}' does not name a file")))?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = parent
        .canonicalize()
        .map_err(|e| Error::from(e).with_path(path.to_owned()))?;
    Ok(dir.join(file_name).to_string_lossy().into_owned())
}

/// Whether a realm file is open anywhere in this process.
pub(crate) fn is_open(key: &str) -> bool {
    REGISTRY
        .lock()
        .get(key)
        .is_some_and(|w| w.strong_count() > 0)
}

impl SnapshotSource for SharedFile {
    fn snapshot_between_commits(&self, under_lock: &mut dyn FnMut()) -> Result<Snapshot> {
        // Commits queue their notification while holding `commit_order`.
        let _order = self.commit_order.lock();
        let snapshot = self.snapshot();
        under_lock();
        snapshot
    }
}

/// Runs `f` if no handle of the file `key` ([`registry_key`]) is open in this process, while
/// holding the registry so that none opens until `f` returns (a client reset moving the file
/// aside); `None` without running `f` if the file is open.
#[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
pub(crate) fn while_closed<T>(key: &str, f: impl FnOnce() -> T) -> Option<T> {
    let mut registry = REGISTRY.lock();
    // A file whose last handle is being dropped is closed in a moment (see `open`).
    while registry.get(key).is_some_and(|w| w.strong_count() == 0) {
        drop(registry);
        std::thread::sleep(std::time::Duration::from_millis(1));
        registry = REGISTRY.lock();
    }
    if registry.get(key).is_some_and(|w| w.strong_count() > 0) {
        return None;
    }
    Some(f())
}

impl SharedFile {
    /// Opens (creating if needed, unless read-only) the file and returns it with whether it
    /// still needs its first-time initialization.
    pub(crate) fn open(opts: &OpenOptions<'_>) -> Result<(Arc<SharedFile>, bool)> {
        let key = registry_key(opts.path, opts.in_memory)?;
        let digest = if opts.in_memory {
            None
        } else {
            key_digest(opts.key)
        };
        let mut registry = REGISTRY.lock();
        // A file whose last handle is being dropped right now still has an entry that no
        // longer upgrades: wait for its `Drop` to close it rather than race its file lock.
        while registry.get(&key).is_some_and(|w| w.strong_count() == 0) {
            drop(registry);
            std::thread::sleep(std::time::Duration::from_millis(1));
            registry = REGISTRY.lock();
        }
        if let Some(existing) = registry.get(&key).and_then(Weak::upgrade) {
            if existing.key_digest != digest {
                return Err(Error::new(
                    ErrorCode::DecryptionFailed,
                    "the realm is already open in this process with a different encryption key",
                )
                .with_path(opts.path.to_owned()));
            }
            if !opts.read_only && matches!(*existing.db.read(), Db::ReadOnly(_)) {
                return Err(Error::new(
                    ErrorCode::ReadOnly,
                    "the realm is already open read-only in this process",
                )
                .with_path(opts.path.to_owned()));
            }
            return Ok((existing, false));
        }
        let created = !opts.in_memory && !opts.read_only && is_missing_or_empty(&key)?;
        if created {
            create_file(&key, opts).map_err(|e| e.with_path(opts.path.to_owned()))?;
        }
        let db = open_db(&key, opts).map_err(|e| e.with_path(opts.path.to_owned()))?;
        let needs_init = created || {
            let txn = db.begin_read()?;
            matches!(
                txn.open_table(crate::store::tables::META),
                Err(redb::TableError::TableDoesNotExist(_))
            )
        };
        // Initialize before the file is registered, so a second thread opening the same path
        // never sees a file without its tables.
        if needs_init && !opts.read_only {
            if let Db::ReadWrite(d) = &db {
                let txn = d.begin_write()?;
                WriteTxn::init_file(&txn)?;
                txn.commit()?;
            }
        }
        let file = Arc::new(SharedFile {
            key: key.clone(),
            db: RwLock::new(db),
            key_digest: digest,
            notifier: Notifier::default(),
            history_holds: HistoryHolds::default(),
            commit_order: Mutex::new(()),
            key_floor: Arc::default(),
            last_catalog: Mutex::new(None),
            writer: Mutex::new(None),
        });
        registry.insert(key, Arc::downgrade(&file));
        Ok((file, needs_init))
    }

    /// A snapshot of the latest commit.
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let txn = self.db.read().begin_read()?;
        let previous = self.last_catalog.lock().clone();
        let snap = Snapshot::open(txn, previous.as_ref().map(|(b, c)| (b, c)))?;
        if previous
            .as_ref()
            .is_none_or(|(b, _)| !Arc::ptr_eq(b, &snap.catalog_bytes))
        {
            *self.last_catalog.lock() = Some((snap.catalog_bytes.clone(), snap.catalog.clone()));
        }
        Ok(snap)
    }

    /// Starts a write transaction, waiting while another thread holds the write lock.
    ///
    /// Fails with `AlreadyInWriteTransaction` if this thread already holds it through another
    /// handle (waiting would deadlock).
    pub(crate) fn begin_write(&self) -> Result<WriteTxn> {
        let me = std::thread::current().id();
        if *self.writer.lock() == Some(me) {
            return Err(Error::new(
                ErrorCode::AlreadyInWriteTransaction,
                "this thread already has a write transaction open on this file through another handle; \
                 commit or cancel it first",
            ));
        }
        let txn = self.begin_raw_write()?;
        *self.writer.lock() = Some(me);
        let base = match self.snapshot() {
            Ok(s) => s,
            Err(e) => {
                self.end_write();
                return Err(e);
            }
        };
        WriteTxn::new(txn, base, self.key_floor.clone()).inspect_err(|_| self.end_write())
    }

    /// Marks the write lock released (after commit or cancel).
    pub(crate) fn end_write(&self) {
        *self.writer.lock() = None;
    }

    fn begin_raw_write(&self) -> Result<redb::WriteTransaction> {
        match &*self.db.read() {
            Db::ReadWrite(d) => Ok(d.begin_write()?),
            Db::ReadOnly(_) => Err(Error::new(
                ErrorCode::ReadOnly,
                "the realm file is open read-only",
            )),
            Db::Closed => Err(closed_file()),
        }
    }

    /// `(file bytes, bytes in use)`, for compaction decisions.
    pub(crate) fn space(&self) -> Result<(u64, u64)> {
        let txn = self.begin_raw_write()?;
        let stats = txn.stats()?;
        txn.abort()?;
        let used = stats.allocated_pages() * stats.page_size() as u64;
        let total = if self.key.starts_with("mem:") {
            used
        } else {
            std::fs::metadata(&self.key).map(|m| m.len())?
        };
        Ok((total, used))
    }

    /// Compacts the file so that it shrinks to what it uses, by writing a copy of every table
    /// into a new file (encrypted with the same key) and renaming it over the original, as
    /// Realm's compaction did. `file` must be the only strong reference (no other realm handle
    /// of the file in this process) and no transaction may be open. On failure the original
    /// file is kept as it was.
    pub(crate) fn compact(file: &Arc<SharedFile>, opts: &OpenOptions<'_>) -> Result<()> {
        // Holding the registry keeps another handle from opening the file meanwhile.
        let _registry = REGISTRY.lock();
        if Arc::strong_count(file) != 1 {
            return Err(Error::new(
                ErrorCode::RealmInUse,
                "compaction needs the realm to be open only once in this process",
            ));
        }
        if opts.in_memory {
            return Ok(());
        }
        let mut db = file.db.write();
        let current = match &*db {
            Db::ReadWrite(d) => d,
            Db::ReadOnly(_) => {
                return Err(Error::new(
                    ErrorCode::ReadOnly,
                    "a read-only realm cannot be compacted",
                ))
            }
            Db::Closed => return Err(closed_file()),
        };
        let tmp = format!("{}.compact", file.key);
        let _ = std::fs::remove_file(&tmp);
        let copied = open_db(&tmp, opts).and_then(|copy| match copy {
            Db::ReadWrite(mut copy) => {
                copy_tables(current, &copy)?;
                // redb grows files in steps; trimming the fresh copy returns the slack.
                while copy
                    .compact()
                    .map_err(|e| Error::new(ErrorCode::Io, format!("compaction failed: {e}")))?
                {
                }
                Ok(())
            }
            Db::ReadOnly(_) | Db::Closed => Err(Error::internal("compaction target not writable")),
        });
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Close the original (releasing its lock), move the copy into place and open it. If the
        // reopen fails the file stays closed: every later call says so rather than read
        // something else.
        drop(std::mem::replace(&mut *db, Db::Closed));
        let renamed = std::fs::rename(&tmp, &file.key);
        *db = open_db(&file.key, opts)?;
        renamed?;
        sync_parent_dir(&file.key)
    }
}

fn is_missing_or_empty(path: &str) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len() == 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Creates a realm file with its tables, atomically: it is built and made durable as
/// `<path>.creating`, then linked into place, so a crash during creation leaves no file at
/// `path` (only a leftover that the next creation replaces) rather than a half-written one
/// that neither redb nor the encryption layer could tell from a damaged file.
fn create_file(path: &str, opts: &OpenOptions<'_>) -> Result<()> {
    let tmp = format!("{path}.creating");
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let init = open_db(&tmp, opts).and_then(|db| match db {
        Db::ReadWrite(d) => {
            let txn = d.begin_write()?;
            WriteTxn::init_file(&txn)?;
            txn.commit()?;
            Ok(())
        }
        Db::ReadOnly(_) | Db::Closed => Err(Error::internal("a new file must be writable")),
    });
    if let Err(e) = init {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // A link never replaces a file: if another process created the realm meanwhile, its file
    // stays. An empty file at `path` (created by hand) is replaced.
    let placed = match std::fs::hard_link(&tmp, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && is_missing_or_empty(path)? => {
            std::fs::rename(&tmp, path)
        }
        other => other.and_then(|()| std::fs::remove_file(&tmp)),
    };
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e.into());
        }
    }
    sync_parent_dir(path)
}

/// Copies every Shoal table from `from` into the empty database `to`, durably.
fn copy_tables(from: &impl ReadableDatabase, to: &Database) -> Result<()> {
    use crate::store::tables::{COLUMNS, HISTORY, INDEX, LISTS, META};
    let read = from.begin_read()?;
    let write = to.begin_write()?;
    {
        let (src, mut dst) = (read.open_table(META)?, write.open_table(META)?);
        for item in src.range::<&str>(..)? {
            let (k, v) = item?;
            dst.insert(k.value(), v.value())?;
        }
        for def in [COLUMNS, LISTS] {
            let (src, mut dst) = (read.open_table(def)?, write.open_table(def)?);
            for item in src.range::<u128>(..)? {
                let (k, v) = item?;
                dst.insert(k.value(), v.value())?;
            }
        }
        let (src, mut dst) = (read.open_table(INDEX)?, write.open_table(INDEX)?);
        for item in src.range::<(u64, u64, u64)>(..)? {
            let (k, v) = item?;
            dst.insert(k.value(), v.value())?;
        }
        let (src, mut dst) = (read.open_table(HISTORY)?, write.open_table(HISTORY)?);
        for item in src.range::<u64>(..)? {
            let (k, v) = item?;
            dst.insert(k.value(), v.value())?;
        }
        match read.open_table(crate::store::tables::MERGE) {
            Ok(src) => {
                let mut dst = write.open_table(crate::store::tables::MERGE)?;
                for item in src.range::<&[u8]>(..)? {
                    let (k, v) = item?;
                    dst.insert(k.value(), v.value())?;
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    write.commit()?;
    Ok(())
}

/// The raw file under a realm: redb's file backend (in unit tests, wrapped so that the
/// fault-injection harness can record what reaches the file).
#[cfg(not(test))]
type RawFile = redb::backends::FileBackend;
#[cfg(test)]
type RawFile = crate::store::fault::Recorded;

fn raw_file(path: &str, file: std::fs::File) -> Result<RawFile> {
    let backend = redb::backends::FileBackend::new(file)?;
    #[cfg(test)]
    let backend = crate::store::fault::Recorded::wrap(path, backend);
    #[cfg(not(test))]
    let _ = path;
    Ok(backend)
}

fn open_db(path: &str, opts: &OpenOptions<'_>) -> Result<Db> {
    if opts.in_memory {
        return Ok(Db::ReadWrite(
            Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?,
        ));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(!opts.read_only)
        .create(!opts.read_only)
        .truncate(false)
        .open(path)?;
    let raw = raw_file(path, file)?;
    let kind = crypto::file_kind(&raw)?;
    match (opts.key, kind) {
        (Some(key), FileKind::EncryptedFormat1) => {
            drop(raw);
            upgrade_format_1(path, key, opts)?;
            open_db(path, opts)
        }
        (Some(key), _) => open_encrypted(Box::new(raw), key, opts.read_only),
        (None, FileKind::Encrypted | FileKind::EncryptedFormat1) => Err(Error::new(
            ErrorCode::DecryptionFailed,
            "the realm file is encrypted: an encryption key is needed to open it",
        )),
        (None, FileKind::Plain) if opts.read_only => Ok(Db::ReadOnly(
            redb::Builder::new().open_read_only_with_backend(raw)?,
        )),
        (None, FileKind::Plain) => Ok(Db::ReadWrite(Database::builder().create_with_backend(raw)?)),
    }
}

fn open_encrypted(
    raw: Box<dyn redb::StorageBackend>,
    key: &[u8; 64],
    read_only: bool,
) -> Result<Db> {
    let (backend, recovery) = EncryptedBackend::open(raw, key, read_only)?;
    let opened = if read_only {
        redb::Builder::new()
            .open_read_only_with_backend(backend)
            .map(Db::ReadOnly)
    } else {
        Database::builder()
            .create_with_backend(backend)
            .map(Db::ReadWrite)
    };
    let torn = recovery.finish();
    match opened {
        Ok(db) => {
            if torn > 0 {
                tracing::warn!(
                    torn_blocks = torn,
                    "an encrypted realm was not closed cleanly: its unfinished last commit was rolled back"
                );
            }
            Ok(db)
        }
        // Blocks that failed authentication made redb give up: they were not only the torn
        // pages of an unfinished commit, so the file was damaged or modified.
        Err(e) if torn > 0 => Err(Error::new(
            ErrorCode::DecryptionFailed,
            format!("the encrypted realm failed authentication: it was modified or damaged ({e})"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Rewrites an encrypted realm of format 1 in the current format: every table is copied into
/// `<path>.upgrade` (same key), which is then renamed over the original. A crash at any point
/// leaves either the untouched original or the complete copy.
fn upgrade_format_1(path: &str, key: &[u8; 64], opts: &OpenOptions<'_>) -> Result<()> {
    if opts.read_only {
        return Err(Error::new(
            ErrorCode::FormatUpgradeRequired,
            "the realm uses encrypted format 1; open it once writable to upgrade it",
        ));
    }
    tracing::info!(path, "upgrading an encrypted realm from format 1");
    let file = std::fs::File::open(path)?;
    let old = redb::Builder::new()
        .open_read_only_with_backend(crate::store::crypto_v1::FormatOneReader::open(file, key)?)
        .map_err(|e| match e {
            redb::DatabaseError::Storage(redb::StorageError::Io(io)) => Error::from(io),
            other => Error::new(
                ErrorCode::FormatUpgradeRequired,
                format!("the format-1 encrypted realm cannot be upgraded: {other}"),
            ),
        })?;
    let tmp = format!("{path}.upgrade");
    let _ = std::fs::remove_file(&tmp);
    let copied = open_db(&tmp, opts).and_then(|copy| match copy {
        Db::ReadWrite(copy) => copy_tables(&old, &copy),
        Db::ReadOnly(_) | Db::Closed => Err(Error::internal("upgrade target not writable")),
    });
    drop(old);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    sync_parent_dir(path)?;
    Ok(())
}

/// Makes a rename in the folder of `path` durable.
fn sync_parent_dir(path: &str) -> Result<()> {
    if let Some(dir) = Path::new(path).parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        let mut registry = REGISTRY.lock();
        // Close the database (releasing its file lock) before the registry forgets the file,
        // and under the registry lock: an open of the same path in between would otherwise
        // find no entry, try to open the still-locked file and fail with `FileInUse`.
        drop(std::mem::replace(self.db.get_mut(), Db::Closed));
        if registry
            .get(&self.key)
            .is_some_and(|w| w.strong_count() == 0)
        {
            registry.remove(&self.key);
        }
    }
}

impl SharedFile {
    /// The version after which a commit starting from version `base` must keep every
    /// changeset for this process's handles and callbacks (`None`: none needed).
    pub(crate) fn history_needed_after(&self, base: u64) -> Option<u64> {
        if self.history_holds.any_full() {
            return Some(0);
        }
        self.notifier.undelivered_since(base)
    }
}

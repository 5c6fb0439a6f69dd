//! The process-wide registry of open realm files.
//!
//! redb allows one `Database` per file per process, and Realm semantics want every handle of a
//! path in one process to share one file: the registry maps a canonical path to the
//! [`SharedFile`] while any handle holds it. A second *process* is refused by redb's file lock
//! and gets `FileInUse`.

use crate::error::{Error, ErrorCode, Result};
use crate::notify::Notifier;
use crate::store::catalog::Catalog;
use crate::store::snapshot::Snapshot;
use crate::store::write::WriteTxn;
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Weak};
use std::thread::ThreadId;

/// One open realm file, shared by every handle of its path in this process.
pub(crate) struct SharedFile {
    /// The registry key: the canonical path, or `mem:<path>` for in-memory realms.
    pub(crate) key: String,
    db: Database,
    /// Delivers change notifications of this file to every handle's callbacks.
    pub(crate) notifier: Notifier,
    /// The last parsed catalog, reused by new snapshots while the schema is unchanged.
    last_catalog: Mutex<Option<(Arc<Vec<u8>>, Arc<Catalog>)>>,
    /// The thread that holds the write lock through some handle, to refuse a second write
    /// transaction on the same thread (which would wait for itself forever).
    writer: Mutex<Option<ThreadId>>,
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Weak<SharedFile>>>> = LazyLock::new(Default::default);

/// The registry key of a path: absolute and with symlinks of its folder resolved, so two
/// spellings of one file share one entry.
pub(crate) fn registry_key(path: &str, in_memory: bool) -> Result<String> {
    if in_memory {
        return Ok(format!("mem:{path}"));
    }
    let p = Path::new(path);
    let file_name = p.file_name().ok_or_else(|| Error::invalid(format!("'{path}' does not name a file")))?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = parent.canonicalize().map_err(|e| {
        Error::from(e).with_path(path.to_owned())
    })?;
    Ok(dir.join(file_name).to_string_lossy().into_owned())
}

/// Whether a realm file is open anywhere in this process.
pub(crate) fn is_open(key: &str) -> bool {
    REGISTRY.lock().get(key).is_some_and(|w| w.strong_count() > 0)
}

impl SharedFile {
    /// Opens (creating if needed) the file and returns it with whether it still needs its
    /// first-time initialization.
    pub(crate) fn open(path: &str, in_memory: bool) -> Result<(Arc<SharedFile>, bool)> {
        let key = registry_key(path, in_memory)?;
        let mut registry = REGISTRY.lock();
        if let Some(existing) = registry.get(&key).and_then(Weak::upgrade) {
            return Ok((existing, false));
        }
        let db = if in_memory {
            Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())
        } else {
            Database::builder().create(&key)
        }
        .map_err(|e| Error::from(e).with_path(path.to_owned()))?;
        let needs_init = {
            let txn = db.begin_read()?;
            matches!(txn.open_table(crate::store::tables::META), Err(redb::TableError::TableDoesNotExist(_)))
        };
        let file = Arc::new(SharedFile {
            key: key.clone(),
            db,
            notifier: Notifier::default(),
            last_catalog: Mutex::new(None),
            writer: Mutex::new(None),
        });
        registry.retain(|_, w| w.strong_count() > 0);
        registry.insert(key, Arc::downgrade(&file));
        Ok((file, needs_init))
    }

    /// A snapshot of the latest commit.
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let txn = self.db.begin_read()?;
        let previous = self.last_catalog.lock().clone();
        let snap = Snapshot::open(txn, previous.as_ref().map(|(b, c)| (b, c)))?;
        if previous.as_ref().is_none_or(|(b, _)| !Arc::ptr_eq(b, &snap.catalog_bytes)) {
            *self.last_catalog.lock() = Some((snap.catalog_bytes.clone(), snap.catalog.clone()));
        }
        Ok(snap)
    }

    /// Initializes a new file's tables in its own transaction.
    pub(crate) fn initialize(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        WriteTxn::init_file(&txn)?;
        txn.commit()?;
        Ok(())
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
        let txn = self.db.begin_write()?;
        *self.writer.lock() = Some(me);
        let base = match self.snapshot() {
            Ok(s) => s,
            Err(e) => {
                self.end_write();
                return Err(e);
            }
        };
        WriteTxn::new(txn, base).inspect_err(|_| self.end_write())
    }

    /// Marks the write lock released (after commit or cancel).
    pub(crate) fn end_write(&self) {
        *self.writer.lock() = None;
    }

    /// Compacts the file (redb reclaims free pages). Needs exclusive use of the `Database`,
    /// which the caller guarantees by holding the only handle.
    pub(crate) fn compact(self: &mut Arc<SharedFile>) -> Result<bool> {
        let file = Arc::get_mut(self).ok_or_else(|| {
            Error::new(ErrorCode::RealmInUse, "compaction needs the realm to be open only once in this process")
        })?;
        file.db.compact().map_err(|e| Error::new(ErrorCode::Io, format!("compaction failed: {e}")))
    }
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        let mut registry = REGISTRY.lock();
        if registry.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            registry.remove(&self.key);
        }
    }
}

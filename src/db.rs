//! [`Realm`]: an open handle on a realm file, with its snapshot and write transaction.
//!
//! A handle reads from a snapshot that stays fixed until [`Realm::refresh`],
//! [`Realm::begin_write`] or its own commit moves it to the latest version; readers are never
//! blocked by writers. One write transaction per file runs at a time: `begin_write` on another
//! thread waits for the current writer.
//!
//! How a [`Config`](crate::Config) becomes a handle (schema rules, migrations) is `open.rs`;
//! objects and queries add their entry points in `object.rs` and `results.rs`. This file knows
//! neither configurations nor sync: a handle keeps the `Settings` it was opened with and,
//! for the layer above, one opaque attachment (`Realm::attach`).

use crate::error::{Error, ErrorCode, Result};
use crate::history::decode_changeset;
use crate::notify::{ChangeToken, Observer, SnapshotSource};
use crate::scheduler::Scheduler;
use crate::schema::Schema;
use crate::store::file::{self, SharedFile};
use crate::store::retention::FullHistoryHold;
use crate::store::snapshot::Snapshot;
use crate::store::tables::{self, SyncProgress};
use crate::store::view::View;
use crate::store::write::WriteTxn;
use parking_lot::Mutex;
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// An open realm. Cheap to clone (clones share the handle); usable from any thread.
#[derive(Clone)]
pub struct Realm {
    pub(crate) inner: Arc<RealmInner>,
}

/// What a handle keeps of the configuration it was opened with: the file and its modes.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) path: String,
    pub(crate) in_memory: bool,
    pub(crate) read_only: bool,
    pub(crate) encryption_key: Option<[u8; 64]>,
    /// Changes are recorded with merge metadata (synced realms, server copies).
    pub(crate) merge_metadata: bool,
    pub(crate) keep_full_history: bool,
    /// A synced realm: it cannot be compacted.
    pub(crate) synced: bool,
    /// Where notifications and async completions run (`None`: library threads).
    pub(crate) scheduler: Option<SchedulerRef>,
}

/// A scheduler in `Settings` (which are `Debug`).
#[derive(Clone)]
pub(crate) struct SchedulerRef(pub(crate) Arc<dyn Scheduler>);

impl std::fmt::Debug for SchedulerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scheduler")
    }
}

impl Settings {
    pub(crate) fn open_options(&self) -> file::OpenOptions<'_> {
        file::OpenOptions {
            path: &self.path,
            in_memory: self.in_memory,
            read_only: self.read_only,
            key: self.encryption_key.as_ref(),
        }
    }
}

pub(crate) struct RealmInner {
    /// Whatever the layer above hangs on this handle (a synced realm's session keeps its
    /// count of open handles here). Opaque to the realm; dropped first, by `close` or with
    /// the last clone, while the file is still open.
    attachment: Mutex<Option<Box<dyn Any + Send + Sync>>>,
    settings: Settings,
    state: Mutex<State>,
    /// Set by `close`; read by this handle's change callbacks on the notifier thread.
    closed: Arc<std::sync::atomic::AtomicBool>,
    /// The asynchronous writes waiting to run (`async_work.rs`).
    pub(crate) async_writes: Mutex<AsyncWrites>,
}

/// One queued asynchronous write: it gets the handle it was asked through.
pub(crate) type AsyncWriteJob = Box<dyn FnOnce(&Realm) + Send>;

/// A handle's queue of asynchronous writes: each job gets the handle and runs on the queue's
/// library thread, which lives while the queue is not empty (`async_work.rs`).
#[derive(Default)]
pub(crate) struct AsyncWrites {
    /// The jobs, each with its number (to take back one that could not be started).
    pub(crate) queue: std::collections::VecDeque<(u64, AsyncWriteJob)>,
    pub(crate) next_id: u64,
    /// Whether a library thread is draining the queue.
    pub(crate) draining: bool,
}

struct State {
    /// `None` once closed.
    file: Option<Arc<SharedFile>>,
    /// With `keep_full_history`: keeps the file's whole history while this handle is open.
    full_history: Option<FullHistoryHold>,
    read: Option<Snapshot>,
    write: Option<WriteTxn>,
    /// Changes whenever what this handle sees may have changed; results compare it to know
    /// when to re-run their query.
    generation: u64,
}

/// The file as the notifier thread sees it.
pub(crate) fn snapshot_source(file: &Arc<SharedFile>) -> Weak<dyn SnapshotSource> {
    let weak: Weak<SharedFile> = Arc::downgrade(file);
    weak
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, Ordering::Relaxed)
}

impl Drop for RealmInner {
    fn drop(&mut self) {
        // The attachment goes first, while the file is still open (it may read it).
        drop(self.attachment.get_mut().take());
        let state = self.state.get_mut();
        if let Some(write) = state.write.take() {
            // Clear the writer mark before the transaction (and the file's write lock) goes:
            // afterwards the mark may already belong to the next writer.
            if let Some(f) = &state.file {
                f.end_write();
            }
            drop(write);
        }
    }
}

impl std::fmt::Debug for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realm")
            .field("path", &self.inner.settings.path)
            .finish_non_exhaustive()
    }
}

impl Realm {
    /// A handle on an opened file. The caller (`open.rs`) applies the schema rules next.
    pub(crate) fn from_file(file: Arc<SharedFile>, settings: Settings) -> Result<Realm> {
        Ok(Realm {
            inner: Arc::new(RealmInner {
                attachment: Mutex::new(None),
                closed: Arc::default(),
                async_writes: Mutex::default(),
                state: Mutex::new(State {
                    read: Some(file.snapshot()?),
                    full_history: settings
                        .keep_full_history
                        .then(|| file.history_holds.hold_full()),
                    file: Some(file),
                    write: None,
                    generation: next_generation(),
                }),
                settings,
            }),
        })
    }

    /// A new handle of the same file with the same settings and no attachment: its own
    /// snapshot and write transaction (what an asynchronous write runs in).
    pub(crate) fn sibling(&self) -> Result<Realm> {
        let file = self
            .inner
            .state
            .lock()
            .file
            .clone()
            .ok_or_else(Self::closed)?;
        Realm::from_file(file, self.inner.settings.clone())
    }

    /// Whether this handle was opened read-only.
    pub(crate) fn is_read_only(&self) -> bool {
        self.inner.settings.read_only
    }

    /// Whether this handle's configuration set a scheduler (else: library threads).
    pub(crate) fn has_scheduler(&self) -> bool {
        self.inner.settings.scheduler.is_some()
    }

    /// Hangs `attachment` on this handle (replacing an earlier one); see [`RealmInner`].
    #[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
    pub(crate) fn attach(&self, attachment: Box<dyn Any + Send + Sync>) {
        let old = self.inner.attachment.lock().replace(attachment);
        drop(old);
    }

    /// Calls `f` with the attachment if there is one of type `T`.
    #[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
    pub(crate) fn with_attachment<T: Any, R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let attachment = self.inner.attachment.lock();
        attachment.as_ref()?.downcast_ref::<T>().map(f)
    }

    /// The file path.
    pub fn path(&self) -> &str {
        &self.inner.settings.path
    }

    /// Closes the handle: an open write transaction is cancelled and every later call fails
    /// with `RealmClosed`. Closing twice is harmless.
    pub fn close(&self) {
        // The attachment goes outside the state lock (it may read the file).
        let attachment = self.inner.attachment.lock().take();
        drop(attachment);
        self.inner.closed.store(true, Ordering::Release);
        let mut state = self.inner.state.lock();
        if let Some(write) = state.write.take() {
            if let Some(f) = &state.file {
                f.end_write();
            }
            drop(write);
        }
        state.read = None;
        state.full_history = None;
        state.file = None;
    }

    /// Rewrites the file so that it takes only the space its data needs (after large
    /// deletions). Encrypted files stay encrypted.
    ///
    /// Fails with `RealmInUse` while another handle of the file is open in this process,
    /// `AlreadyInWriteTransaction` inside a write transaction, `ReadOnly`. The data is unchanged
    /// whether it succeeds or fails.
    pub fn compact(&self) -> Result<()> {
        if self.inner.settings.synced {
            return Err(Error::new(
                ErrorCode::NotSupported,
                "synced realms cannot be compacted",
            ));
        }
        let mut state = self.inner.state.lock();
        if state.write.is_some() {
            return Err(Error::new(
                ErrorCode::AlreadyInWriteTransaction,
                "cannot compact inside a write transaction",
            ));
        }
        if self.inner.settings.read_only {
            return Err(Error::new(
                ErrorCode::ReadOnly,
                "a read-only realm cannot be compacted",
            ));
        }
        // What the history no longer needs goes first, so that the copy leaves it out.
        if let Some(file) = &state.file {
            trim_history(file, &self.inner.settings)?;
        }
        let file = state.file.take().ok_or_else(Self::closed)?;
        // The snapshot's read transaction would pin the pages compaction wants to move.
        state.read = None;
        let result = SharedFile::compact(&file, &self.inner.settings.open_options());
        let snapshot = file.snapshot();
        state.file = Some(file);
        state.read = Some(snapshot?);
        state.generation = next_generation();
        result
    }

    /// The size of the file and the bytes its data uses, `(total, used)`.
    pub fn file_space(&self) -> Result<(u64, u64)> {
        let file = self
            .inner
            .state
            .lock()
            .file
            .clone()
            .ok_or_else(Self::closed)?;
        file.space()
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.state.lock().file.is_none()
    }

    fn closed() -> Error {
        Error::new(ErrorCode::RealmClosed, "the realm was closed")
    }

    /// Runs `f` on what this handle sees: the write transaction if one is open, else the
    /// snapshot.
    pub(crate) fn with_view<R>(&self, f: impl FnOnce(View<'_>) -> Result<R>) -> Result<R> {
        let state = self.inner.state.lock();
        if state.file.is_none() {
            return Err(Self::closed());
        }
        match (&state.write, &state.read) {
            (Some(w), _) => f(w.view()),
            (None, Some(snap)) => f(View {
                snap,
                overlay: None,
            }),
            (None, None) => Err(Self::closed()),
        }
    }

    pub(crate) fn with_snapshot<R>(&self, f: impl FnOnce(&Snapshot) -> Result<R>) -> Result<R> {
        let state = self.inner.state.lock();
        match (&state.write, &state.read) {
            (Some(w), _) => f(&w.base),
            (None, Some(snap)) => f(snap),
            (None, None) => Err(Self::closed()),
        }
    }

    /// Runs `f` inside the open write transaction.
    pub(crate) fn with_write<R>(&self, f: impl FnOnce(&mut WriteTxn) -> Result<R>) -> Result<R> {
        let mut state = self.inner.state.lock();
        if state.file.is_none() {
            return Err(Self::closed());
        }
        state.generation = next_generation();
        match state.write.as_mut() {
            Some(w) => f(w),
            None if self.inner.settings.read_only => Err(Error::new(
                ErrorCode::ReadOnly,
                "the realm was opened read-only",
            )),
            None => Err(Error::new(
                ErrorCode::NotInWriteTransaction,
                "this needs a write transaction: call begin_write first",
            )),
        }
    }

    /// A number that changes whenever what this handle sees may have changed.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.state.lock().generation
    }

    /// Starts a write transaction, first moving to the latest version. Waits while another
    /// thread writes to the same file.
    ///
    /// Fails with `AlreadyInWriteTransaction` if this handle (or, through another handle, this
    /// thread) already writes, `ReadOnly` for read-only realms.
    pub fn begin_write(&self) -> Result<()> {
        let file = {
            let state = self.inner.state.lock();
            let file = state.file.clone().ok_or_else(Self::closed)?;
            if state.write.is_some() {
                return Err(Error::new(
                    ErrorCode::AlreadyInWriteTransaction,
                    "a write transaction is already open on this realm",
                ));
            }
            file
        };
        if self.inner.settings.read_only {
            return Err(Error::new(
                ErrorCode::ReadOnly,
                "the realm was opened read-only",
            ));
        }
        // Wait for the file's write lock without holding this handle's state lock, so other
        // threads can keep reading through this handle meanwhile.
        let txn = file.begin_write()?;
        let mut state = self.inner.state.lock();
        if state.file.is_none() || state.write.is_some() {
            file.end_write();
            drop(txn);
            return Err(if state.file.is_none() {
                Self::closed()
            } else {
                Error::new(
                    ErrorCode::AlreadyInWriteTransaction,
                    "a write transaction is already open on this realm",
                )
            });
        }
        let mut txn = txn;
        if let Err(e) = crate::merge::begin(&mut txn, self.inner.settings.merge_metadata) {
            file.end_write();
            return Err(e);
        }
        state.write = Some(txn);
        state.read = None;
        state.generation = next_generation();
        Ok(())
    }

    /// Commits the write transaction durably and moves to the new version; change callbacks
    /// of every handle on the file then run (if anything changed).
    ///
    /// On failure the transaction is gone and nothing of it was written.
    pub fn commit(&self) -> Result<()> {
        let (file, result) = {
            let mut state = self.inner.state.lock();
            let file = state.file.clone().ok_or_else(Self::closed)?;
            let write = state.write.take().ok_or_else(|| {
                Error::new(
                    ErrorCode::NotInWriteTransaction,
                    "no write transaction to commit",
                )
            })?;
            let order = file.commit_order.lock();
            let before = write.base.version;
            let needed_after = file.history_needed_after(before);
            // The commit releases the file's write lock, after which the writer mark may belong
            // to the next writer: clear it first.
            file.end_write();
            let result = write.commit(needed_after);
            let result = match result {
                Ok(outcome) => {
                    if let Some(v) = outcome.version {
                        file.notifier.notify(before, v, outcome.log);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            };
            drop(order);
            state.read = Some(file.snapshot()?);
            state.generation = next_generation();
            (file, result)
        };
        drop(file);
        result
    }

    /// Discards the write transaction.
    pub fn cancel_write(&self) -> Result<()> {
        let mut state = self.inner.state.lock();
        let file = state.file.clone().ok_or_else(Self::closed)?;
        let Some(write) = state.write.take() else {
            return Err(Error::new(
                ErrorCode::NotInWriteTransaction,
                "no write transaction to cancel",
            ));
        };
        file.end_write();
        drop(write);
        state.read = Some(file.snapshot()?);
        state.generation = next_generation();
        Ok(())
    }

    /// Commits the open write transaction if `result` is `Ok`, else cancels it and returns
    /// the error.
    pub(crate) fn commit_or_cancel(&self, result: Result<()>) -> Result<()> {
        match result {
            Ok(()) => self.commit(),
            Err(e) => {
                let _ = self.cancel_write();
                Err(e)
            }
        }
    }

    /// Whether a write transaction is open on this handle.
    pub fn is_in_transaction(&self) -> bool {
        self.inner.state.lock().write.is_some()
    }

    /// Moves to the latest version. Returns whether the version changed. Inside a write
    /// transaction this does nothing (the transaction already sees the latest).
    pub fn refresh(&self) -> Result<bool> {
        let mut state = self.inner.state.lock();
        let file = state.file.clone().ok_or_else(Self::closed)?;
        if state.write.is_some() {
            return Ok(false);
        }
        let snap = file.snapshot()?;
        let changed = state.read.as_ref().is_none_or(|old| {
            old.version != snap.version || !Arc::ptr_eq(&old.catalog, &snap.catalog)
        });
        state.read = Some(snap);
        if changed {
            state.generation = next_generation();
        }
        Ok(changed)
    }

    /// The history version this handle sees.
    pub fn version(&self) -> Result<u64> {
        self.with_snapshot(|s| Ok(s.version))
    }

    /// Whether the realm holds no objects.
    pub fn is_empty(&self) -> Result<bool> {
        self.with_view(|v| {
            for c in &v.catalog().classes {
                if v.class_state(c.id)?.1 > 0 {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// The schema version of the file as this handle sees it.
    pub fn schema_version(&self) -> Result<u64> {
        let pending = {
            let state = self.inner.state.lock();
            state.write.as_ref().and_then(|w| w.overlay.schema_version)
        };
        match pending {
            Some(v) => Ok(v),
            None => self.with_snapshot(|s| s.meta_u64(tables::meta::SCHEMA_VERSION)),
        }
    }

    /// The schema as this handle sees it.
    pub fn schema(&self) -> Result<Schema> {
        self.with_view(|v| Ok(v.catalog().to_schema()))
    }

    /// The id of a class in the schema this handle sees.
    pub(crate) fn class_id(&self, class: &str) -> Result<u32> {
        self.with_view(|v| Ok(v.catalog().require_class(class)?.id))
    }

    /// Registers `callback(version)` to run after every commit that changed this file, from
    /// any handle or thread. It runs on the handle's scheduler (`Config::set_scheduler`;
    /// default: a library thread); dropping the token unregisters it.
    pub fn add_change_callback(
        &self,
        callback: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<ChangeToken> {
        let state = self.inner.state.lock();
        let file = state.file.as_ref().ok_or_else(Self::closed)?;
        // A closed handle's callbacks stop even while their tokens are alive.
        let closed = self.inner.closed.clone();
        let source = snapshot_source(file);
        let Some(SchedulerRef(scheduler)) = self.inner.settings.scheduler.clone() else {
            return Ok(file.notifier.register(
                source,
                Arc::new(move |version| {
                    if !closed.load(Ordering::Acquire) {
                        callback(version);
                    }
                }),
            ));
        };
        let callback = Arc::new(callback);
        Ok(file.notifier.register(
            source,
            Arc::new(move |version| {
                let (closed, callback) = (closed.clone(), callback.clone());
                scheduler.post(Box::new(move || {
                    if !closed.load(Ordering::Acquire) {
                        callback(version);
                    }
                }));
            }),
        ))
    }

    /// Registers a fine-grained observer (`observe.rs`) with the file's notifier.
    pub(crate) fn add_observer(&self, observer: Arc<dyn Observer>) -> Result<ChangeToken> {
        let state = self.inner.state.lock();
        let file = state.file.as_ref().ok_or_else(Self::closed)?;
        Ok(file.notifier.observe(snapshot_source(file), observer))
    }

    /// Set once this handle is closed.
    pub(crate) fn closed_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.inner.closed.clone()
    }

    /// Moves a handle that is not writing to the latest version if it is older than
    /// `version` (a notification for `version` is about to be delivered).
    pub(crate) fn advance_to(&self, version: u64) {
        let behind = {
            let state = self.inner.state.lock();
            state.write.is_none() && state.read.as_ref().is_some_and(|s| s.version < version)
        };
        if behind {
            if let Err(e) = self.refresh() {
                tracing::warn!(target: "shoal::notify", error = %e, "could not move the handle to the notified version");
            }
        }
    }

    /// Where this handle's notifications and async completions run: its configuration's
    /// scheduler, or the library thread that produced them.
    pub fn scheduler(&self) -> Arc<dyn Scheduler> {
        match &self.inner.settings.scheduler {
            Some(SchedulerRef(s)) => s.clone(),
            None => crate::scheduler::library_thread(),
        }
    }

    /// The changesets recorded after version `after`, oldest first, as `(version, bytes)`.
    ///
    /// The history keeps a changeset only while something needs it (see
    /// [`Config::set_keep_full_history`]): fails with `InvalidArgument` when some of the
    /// changesets after `after` are no longer kept.
    pub fn history_since(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        self.with_snapshot(|s| {
            let mut out = Vec::new();
            let first = after.saturating_add(1);
            for item in s.history.range(first..)? {
                let (k, v) = item?;
                // The kept history is a dense run of versions: only its start can be missing.
                if out.is_empty() && k.value() != first {
                    return Err(Error::invalid(format!(
                        "the history no longer keeps the changesets of versions {first} to {}: \
                         open the realm with keep_full_history to keep them",
                        k.value() - 1
                    )));
                }
                out.push((k.value(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// This file's replica id: the `origin` of the changesets it writes.
    pub fn replica_id(&self) -> Result<u64> {
        self.with_snapshot(|s| s.meta_u64(tables::meta::FILE_SALT))
    }

    /// The changesets this file made itself after version `after` (what a sync session
    /// uploads): integrated remote changesets, whose origin is another replica, are left out,
    /// and so are changesets the history no longer keeps. A realm with merge metadata keeps
    /// every local changeset its sync session has not seen acknowledged (all of them when it
    /// never synced).
    pub fn local_changesets_since(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        self.for_each_local_changeset(after, |v, bytes| out.push((v, bytes.to_vec())))?;
        Ok(out)
    }

    /// Calls `f(version, bytes)` for every changeset this file made itself after `after`;
    /// integrated ones (another origin) are skipped without being copied.
    fn for_each_local_changeset(&self, after: u64, mut f: impl FnMut(u64, &[u8])) -> Result<()> {
        self.with_snapshot(|s| {
            let me = s.meta_u64(tables::meta::FILE_SALT)?;
            for item in s.history.range(after.saturating_add(1)..)? {
                let (k, v) = item?;
                let bytes = v.value();
                if crate::history::changeset_header(bytes).is_ok_and(|(_, o)| o == me || o == 0) {
                    f(k.value(), bytes);
                }
            }
            Ok(())
        })
    }

    /// Integrates a changeset made by another replica with the merge rules (see DESIGN.md,
    /// "Sync"), in a write transaction of its own, and records it in this file's history as
    /// it came. A changeset already integrated (same origin, stamp not newer) changes nothing.
    ///
    /// Fails with `InvalidArgument` for a malformed changeset, one without a stamp (format 1),
    /// one from this very realm, or when the realm was not opened with merge metadata;
    /// `AlreadyInWriteTransaction` inside a write transaction. On failure nothing changes.
    pub fn integrate_changeset(&self, changeset: &[u8]) -> Result<()> {
        if !self.inner.settings.merge_metadata {
            return Err(Error::invalid(
                "integrating changesets needs a realm opened with merge metadata",
            ));
        }
        decode_changeset(changeset)?;
        self.begin_write()?;
        match self.with_write(|w| crate::merge::integrate_changeset(w, changeset, false)) {
            Ok(()) => self.commit(),
            Err(e) => {
                let _ = self.cancel_write();
                Err(e)
            }
        }
    }

    /// The sync progress stored in the file (all zero for a file never synced).
    #[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
    pub(crate) fn sync_progress(&self) -> Result<SyncProgress> {
        self.with_snapshot(|s| {
            Ok(s.meta_bytes(tables::meta::SYNC)?
                .map(|b| SyncProgress::decode(&b))
                .unwrap_or_default())
        })
    }

    /// Stores sync progress in a transaction of its own (no history entry).
    #[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
    pub(crate) fn save_sync_progress(&self, progress: &SyncProgress) -> Result<()> {
        self.begin_write()?;
        let r = self.with_write(|w| w.put_meta(tables::meta::SYNC, &progress.encode()));
        self.commit_or_cancel(r)
    }

    /// Integrates a batch of downloaded changesets and stores `progress`, all in one
    /// transaction: either everything is applied and the progress moves on, or nothing is.
    #[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
    pub(crate) fn integrate_download(
        &self,
        changesets: &[&[u8]],
        progress: &SyncProgress,
    ) -> Result<()> {
        self.integrate_batch(changesets, Some(progress), false)
    }

    /// Integrates several changesets of other replicas (as [`integrate_changeset`]) in one
    /// write transaction: all of them or, on any error, none. One commit instead of one per
    /// changeset is what makes large uploads fast on the server.
    ///
    /// [`integrate_changeset`]: Self::integrate_changeset
    pub fn integrate_changesets(&self, changesets: &[&[u8]]) -> Result<()> {
        self.integrate_batch(changesets, None, false)
    }

    /// Integrates changesets as [`integrate_changesets`](Self::integrate_changesets) does (one
    /// transaction: all or none), refusing with `InvalidArgument` what a synced replica could
    /// not have made: schema changes other than additions (the rule synced realms open with),
    /// index-based list changes, and instructions naming a class, property, object, list
    /// element or link target this realm never had (deleted objects are fine: the merge rules
    /// skip them). `shoal-server` integrates every upload into its copy of the realm this way
    /// before logging it, so that no replica is sent a changeset it could apply differently
    /// from the server, or not at all.
    pub fn integrate_changesets_strictly(&self, changesets: &[&[u8]]) -> Result<()> {
        self.integrate_batch(changesets, None, true)
    }

    fn integrate_batch(
        &self,
        changesets: &[&[u8]],
        progress: Option<&SyncProgress>,
        strict: bool,
    ) -> Result<()> {
        if !self.inner.settings.merge_metadata {
            return Err(Error::invalid(
                "integrating changesets needs a realm opened with merge metadata",
            ));
        }
        for cs in changesets {
            decode_changeset(cs)?;
        }
        self.begin_write()?;
        let r = self.with_write(|w| {
            for cs in changesets {
                crate::merge::integrate_changeset(w, cs, strict)?;
            }
            match progress {
                Some(p) => w.put_meta(tables::meta::SYNC, &p.encode()),
                None => Ok(()),
            }
        });
        self.commit_or_cancel(r)
    }

    /// `(version, byte length)` of every changeset this file made itself after `after`,
    /// oldest first, without copying the changesets.
    #[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
    pub(crate) fn local_changeset_sizes(&self, after: u64) -> Result<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        self.for_each_local_changeset(after, |v, bytes| out.push((v, bytes.len() as u64)))?;
        Ok(out)
    }

    /// Applies an encoded changeset inside the open write transaction, as if its writes had
    /// been made here (they are recorded in this realm's history too).
    ///
    /// Fails with `InvalidArgument` for a malformed changeset; the instructions before the
    /// failing one stay applied in the (still open) transaction, so cancel it to undo them.
    pub fn apply_changeset(&self, changeset: &[u8]) -> Result<()> {
        let instructions = decode_changeset(changeset)?;
        self.with_write(|w| {
            for ins in &instructions {
                w.apply(ins)?;
            }
            Ok(())
        })
    }

    /// The whole content as canonical JSON: classes by name, objects by global id, links as
    /// the target's global id. Two realms with the same data give the same text.
    pub fn dump_json(&self) -> Result<String> {
        self.with_view(crate::dump::dump)
    }
}

/// Commits an empty transaction, which drops the changesets nothing needs any more (see
/// `store/retention.rs`): before a compaction, so that the copy leaves them out.
pub(crate) fn trim_history(file: &SharedFile, settings: &Settings) -> Result<()> {
    let mut txn = file.begin_write()?;
    // Decide with the merge flag of the file's handles: it tells which local changesets a
    // sync upload still needs.
    let prepared = crate::merge::begin(&mut txn, settings.merge_metadata);
    let needed_after = match settings.keep_full_history {
        true => Some(0),
        false => file.history_needed_after(txn.base.version),
    };
    file.end_write();
    prepared?;
    txn.commit(needed_after).map(|_| ())
}

//! Asynchronous work on realms: writes that run on a library thread
//! ([`Realm::write_async`]) and opens that can be cancelled ([`Realm::open_async`],
//! [`AsyncOpenTask`]). The work runs on library threads; its completion runs on the
//! scheduler of the realm or configuration concerned (`scheduler.rs`; default: the library
//! thread that finished the work).
//!
//! Guarantees (see DESIGN.md, "Async work"):
//! - an asynchronous write runs in a write transaction of its own handle of the file, never
//!   on the caller's thread; the writes of one handle run one after the other in the order
//!   they were asked for; an error or a panic in the write function cancels the transaction
//!   (nothing is written) and reaches the completion as an error; every accepted write gets
//!   exactly one completion;
//! - a cancelled open calls nothing back, ever, and when the file did not exist when the open
//!   started, it does not exist when [`AsyncOpenTask::cancel`] returns `true` (unless another
//!   handle of it is open by then, or a synced realm's session does not stop within 5 s:
//!   both are logged).

use crate::config::Config;
use crate::db::Realm;
use crate::error::{Error, ErrorCode, Result};
use crate::scheduler::{library_thread, Scheduler};
use crate::util::Cancellation;
use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};

impl Realm {
    /// Runs `write(&realm)` inside a write transaction on a library thread and commits it,
    /// without blocking the caller; then `completion` gets the file's version after the
    /// commit (which includes the write), or the error, on this handle's scheduler
    /// ([`Config::set_scheduler`]; default: the library thread).
    ///
    /// `write` gets a handle of its own on the same file (not this one: this handle stays
    /// free for the app meanwhile, and does not see the transaction). It must leave the
    /// transaction open: the commit follows when it returns `Ok`. An `Err` or a panic cancels
    /// the transaction, so nothing of it is written, and reaches `completion` (a panic as
    /// `CallbackFailed`). Writes asked for through one handle run one at a time, in the order
    /// asked. With an app scheduler, this handle has been refreshed to include the write when
    /// `completion` runs (as Realm does on looper threads); with the library thread it has
    /// not (call [`refresh`](Self::refresh)).
    ///
    /// A write that has not started when the handle is [`close`](Self::close)d does not run:
    /// its completion gets `RealmClosed`. The one running then still commits.
    ///
    /// # Errors
    /// Returned here, and `completion` is then never called: `RealmClosed` for a closed
    /// handle, `ReadOnly` for a read-only realm, `Io` if no library thread can be started.
    pub fn write_async(
        &self,
        write: impl FnOnce(&Realm) -> Result<()> + Send + 'static,
        completion: impl FnOnce(Result<u64>) + Send + 'static,
    ) -> Result<()> {
        if self.is_closed() {
            return Err(Error::new(ErrorCode::RealmClosed, "the realm was closed"));
        }
        if self.is_read_only() {
            return Err(Error::new(
                ErrorCode::ReadOnly,
                "the realm was opened read-only",
            ));
        }
        let job = Box::new(move |realm: &Realm| {
            let result = run_write(realm, write);
            let scheduler = realm.scheduler();
            // With the app's own scheduler, the handle moves to the new version on the app's
            // thread before the completion runs; library threads leave it alone.
            let refresh = realm.has_scheduler().then(|| Arc::downgrade(&realm.inner));
            scheduler.post(Box::new(move || {
                if let (Some(inner), Ok(_)) = (refresh.as_ref().and_then(Weak::upgrade), &result) {
                    let handle = Realm { inner };
                    if !handle.is_closed() {
                        if let Err(e) = handle.refresh() {
                            tracing::warn!(target: "shoal::async", error = %e, "could not refresh after an asynchronous write");
                        }
                    }
                }
                completion(result);
            }));
        });
        let (id, start) = {
            let mut writes = self.inner.async_writes.lock();
            let id = writes.next_id;
            writes.next_id += 1;
            writes.queue.push_back((id, job));
            (id, !std::mem::replace(&mut writes.draining, true))
        };
        if start {
            let realm = self.clone();
            let spawned = std::thread::Builder::new()
                .name("shoal-write-async".into())
                .spawn(move || drain_writes(&realm));
            if let Err(e) = spawned {
                // This write is refused (its completion never runs); writes queued meanwhile
                // stay for the thread the next call starts.
                let job = {
                    let mut writes = self.inner.async_writes.lock();
                    writes.draining = false;
                    let i = writes.queue.iter().position(|(j, _)| *j == id);
                    i.and_then(|i| writes.queue.remove(i))
                };
                drop(job);
                return Err(Error::new(
                    ErrorCode::Io,
                    format!("cannot start a library thread: {e}"),
                ));
            }
        }
        Ok(())
    }
}

/// Runs the queued writes of `realm` until the queue is empty. The thread holds the handle
/// meanwhile, so that every queued write gets its completion.
fn drain_writes(realm: &Realm) {
    loop {
        let job = {
            let mut writes = realm.inner.async_writes.lock();
            match writes.queue.pop_front() {
                Some((_, job)) => job,
                None => {
                    writes.draining = false;
                    return;
                }
            }
        };
        job(realm);
    }
}

/// One asynchronous write: a sibling handle, a transaction, `write`, then commit or cancel.
fn run_write(realm: &Realm, write: impl FnOnce(&Realm) -> Result<()>) -> Result<u64> {
    let txn = realm.sibling()?;
    txn.begin_write()?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(&txn)));
    let result = match outcome {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorCode::CallbackFailed,
            "the asynchronous write function panicked; nothing was written",
        )),
    };
    if let Err(e) = result {
        if txn.is_in_transaction() {
            let _ = txn.cancel_write();
        }
        return Err(e);
    }
    txn.commit()?;
    let version = txn.version();
    txn.close();
    version
}

/// An asynchronous open ([`Realm::open_async`]): cancel it with [`cancel`](Self::cancel).
/// Dropping it does not cancel the open. Cheap to clone.
#[derive(Clone)]
pub struct AsyncOpenTask {
    inner: Arc<OpenTask>,
}

impl std::fmt::Debug for AsyncOpenTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncOpenTask")
            .field("path", &self.inner.config.path())
            .finish_non_exhaustive()
    }
}

struct OpenTask {
    config: Config,
    /// Whether the file was missing when the open started (a cancel then removes it).
    was_new: bool,
    cancel: Cancellation,
    state: Mutex<OpenState>,
    /// The app's callback, until it runs or the open is cancelled (then it is dropped before
    /// `cancel` returns).
    callback: Mutex<Option<OpenCallback>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    worker_id: Mutex<Option<ThreadId>>,
}

type OpenCallback = Box<dyn FnOnce(Result<Realm>) + Send>;

enum OpenState {
    /// The open is under way on the library thread.
    Running,
    /// Opened (or failed); the callback is posted on the scheduler but has not run.
    Ready(Result<Realm>),
    /// The callback has the result.
    Delivered,
    /// Cancelled before the callback ran.
    Cancelled,
}

impl Realm {
    /// Opens the realm of `config` on a library thread, without blocking the caller: the
    /// whole open, including the wait for the initial download when the sync configuration
    /// asks for it ([`SyncConfig::set_wait_for_initial_data`](crate::SyncConfig::set_wait_for_initial_data)).
    /// `callback` then gets the realm (a handle of its own) or the error, once, on the
    /// configuration's scheduler ([`Config::set_scheduler`]; default: the library thread).
    ///
    /// The returned task cancels the open: see [`AsyncOpenTask::cancel`].
    ///
    /// # Errors
    /// `Io` if no library thread can be started (the callback is then never called).
    pub fn open_async(
        config: &Config,
        callback: impl FnOnce(Result<Realm>) + Send + 'static,
    ) -> Result<AsyncOpenTask> {
        let inner = Arc::new(OpenTask {
            config: config.clone(),
            was_new: !config.in_memory && !std::path::Path::new(config.path()).exists(),
            cancel: Cancellation::default(),
            state: Mutex::new(OpenState::Running),
            callback: Mutex::new(Some(Box::new(callback))),
            worker: Mutex::new(None),
            worker_id: Mutex::new(None),
        });
        let scheduler: Arc<dyn Scheduler> = config.scheduler.clone().unwrap_or_else(library_thread);
        let task = inner.clone();
        let mut worker = inner.worker.lock();
        let handle = std::thread::Builder::new()
            .name("shoal-open-async".into())
            .spawn(move || run_open(task, scheduler))
            .map_err(|e| {
                Error::new(ErrorCode::Io, format!("cannot start a library thread: {e}"))
            })?;
        *inner.worker_id.lock() = Some(handle.thread().id());
        *worker = Some(handle);
        drop(worker);
        Ok(AsyncOpenTask { inner })
    }
}

fn run_open(task: Arc<OpenTask>, scheduler: Arc<dyn Scheduler>) {
    if task.cancel.is_cancelled() {
        return; // cancelled before it started: nothing to undo
    }
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &task.config.sync {
            Some(sync) => sync.open_or_cancel(&task.config, &task.cancel),
            None => Realm::open_local(&task.config),
        }))
        .unwrap_or_else(|_| Err(Error::internal("the open panicked")));
    {
        let mut state = task.state.lock();
        if matches!(*state, OpenState::Running) {
            *state = OpenState::Ready(result);
        } else {
            // Cancelled meanwhile: undo the open here; `cancel` waits for this thread.
            drop(state);
            task.discard(result);
            return;
        }
    }
    let posted = task.clone();
    scheduler.post(Box::new(move || {
        let (result, callback) = {
            let mut state = posted.state.lock();
            match std::mem::replace(&mut *state, OpenState::Delivered) {
                OpenState::Ready(result) => (result, posted.callback.lock().take()),
                other => {
                    *state = other; // cancelled after the post: nothing is called
                    return;
                }
            }
        };
        if let Some(callback) = callback {
            callback(result);
        }
    }));
}

impl OpenTask {
    /// Undoes an open that ran and was then cancelled: closes the realm and, if the file was
    /// new, deletes it (a synced realm's session is stopped first). A failed open may have
    /// left a new empty file too (see [`Realm::open`]): it goes as well.
    fn discard(&self, result: Result<Realm>) {
        if let Ok(realm) = result {
            realm.close();
        }
        if !self.was_new {
            return;
        }
        match &self.config.sync {
            Some(sync) => sync.discard_new_file(&self.config),
            None => match crate::delete_realm_files(&self.config) {
                Ok(()) => {}
                Err(e) if e.code() == ErrorCode::RealmInUse => {
                    tracing::info!(target: "shoal::async", path = %self.config.path(), "the file of a cancelled open stays: another handle has it open")
                }
                Err(e) => {
                    tracing::warn!(target: "shoal::async", path = %self.config.path(), error = %e, "could not delete the file of a cancelled open")
                }
            },
        }
    }
}

impl AsyncOpenTask {
    /// Cancels the open. Returns `true` when it was cancelled (now or before): the callback
    /// never runs, and the open is undone before this returns — the realm it opened is
    /// closed and, if the file did not exist when the open started, it is deleted (unless
    /// another handle of the file is open, or a synced realm's session does not stop within
    /// 5 s; both logged). A cancel that arrives while the initial data downloads stops the
    /// wait at once. Returns `false` when it is too late: the callback has run or is running
    /// (and owns the realm).
    ///
    /// May block for as long as the library thread takes to notice (a file being created,
    /// a session stopping); never call it from the open's own callback expecting `true`.
    pub fn cancel(&self) -> bool {
        let inner = &self.inner;
        // Held to the end: a second, concurrent cancel returns only once the first is done.
        let mut worker = inner.worker.lock();
        let ready = {
            let mut state = inner.state.lock();
            match std::mem::replace(&mut *state, OpenState::Cancelled) {
                OpenState::Delivered => {
                    *state = OpenState::Delivered;
                    return false;
                }
                OpenState::Cancelled => None,
                OpenState::Running => None,
                OpenState::Ready(result) => Some(result),
            }
        };
        inner.cancel.cancel();
        let on_worker = *inner.worker_id.lock() == Some(std::thread::current().id());
        if !on_worker {
            if let Some(worker) = worker.take() {
                let _ = worker.join();
            }
        }
        if let Some(result) = ready {
            inner.discard(result);
        }
        // The callback (and what it holds: a C caller's userdata) goes before this returns.
        let callback = inner.callback.lock().take();
        drop(callback);
        drop(worker);
        true
    }

    /// Whether [`cancel`](Self::cancel) cancelled the open.
    pub fn is_cancelled(&self) -> bool {
        matches!(*self.inner.state.lock(), OpenState::Cancelled)
    }
}

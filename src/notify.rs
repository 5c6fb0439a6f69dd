//! Change notifications: after a commit that changed a file, every callback registered on any
//! handle of that file runs, and every observed collection and object computes what changed,
//! on the file's notifier thread.
//!
//! The committing thread only sends the new version and its [`ChangeLog`] down a channel, so a
//! slow callback never delays a commit, and callbacks may call back into Shoal (no lock is
//! held while they run). Observers ([`Observer`]) run once per batch of commits: the thread
//! takes the latest snapshot while no commit can happen and collects every commit up to it, so
//! each observer's change set is computed once, from the logs of exactly the commits between
//! the version it last saw and the snapshot's.
//!
//! Until its callbacks have run, a notification keeps the changesets of its commit in the
//! history (see [`Notifier::undelivered_since`]): a callback may read what changed with
//! `Realm::history_since(previous version)`.

use crate::error::Result;
use crate::store::changes::ChangeLog;
use crate::store::snapshot::Snapshot;
use crate::store::view::View;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Weak};

type Callback = Arc<dyn Fn(u64) + Send + Sync>;

/// One commit, as its notification carries it.
pub(crate) struct Commit {
    pub(crate) version: u64,
    pub(crate) log: Arc<ChangeLog>,
}

/// Something that computes what changed for one observed collection or object. Runs on the
/// notifier thread; delivering the result (on the app's scheduler) is its own business.
pub(crate) trait Observer: Send + Sync {
    /// Called once per batch with a view of the file at `version`, and the commits since the
    /// previous batch (the observer skips those at or below the version it last saw). The
    /// first call computes and delivers the initial state.
    fn run(&self, view: View<'_>, version: u64, commits: &[Commit]);
    /// Whether the observing handle is gone or closed: the observer no longer runs.
    fn is_closed(&self) -> bool;
}

/// Where the notifier thread gets its snapshots (the file; implemented in `store/file.rs`).
pub(crate) trait SnapshotSource: Send + Sync {
    /// The latest snapshot, taken while no commit can happen; `under_lock` runs before commits
    /// resume, so every commit the snapshot contains has already queued its notification.
    fn snapshot_between_commits(&self, under_lock: &mut dyn FnMut()) -> Result<Snapshot>;
}

enum Registered {
    Callback(Callback),
    Observer(Arc<dyn Observer>),
}

struct Registration {
    id: u64,
    what: Registered,
}

#[derive(Default)]
struct Registry {
    entries: Vec<Registration>,
    next_id: u64,
}

enum Message {
    Commit(Commit),
    /// A new observer waits for its initial state.
    Wake,
}

/// The notification hub of one file.
#[derive(Default)]
pub(crate) struct Notifier {
    registry: Arc<Mutex<Registry>>,
    /// Sender to the delivery thread, started with the first registration.
    sender: Mutex<Option<mpsc::Sender<Message>>>,
    /// Per notification sent and not yet delivered to every callback, oldest first: the
    /// version before its commit (its changesets are the versions after it).
    undelivered: Arc<Mutex<VecDeque<u64>>>,
}

/// Keeps a change callback or observer registered; dropping it unregisters it. The callback
/// itself is dropped after its last run has finished.
#[must_use = "dropping the token unregisters the callback"]
pub struct ChangeToken {
    registry: Weak<Mutex<Registry>>,
    id: u64,
}

impl Drop for ChangeToken {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            // Take the callback out under the lock but drop it outside: its drop may run user
            // code (a binding's free function).
            let removed = {
                let mut r = registry.lock();
                let pos = r.entries.iter().position(|e| e.id == self.id);
                pos.map(|p| r.entries.remove(p))
            };
            drop(removed);
        }
    }
}

impl std::fmt::Debug for ChangeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeToken").field("id", &self.id).finish()
    }
}

impl Notifier {
    /// Registers `callback(version)`.
    pub(crate) fn register(
        &self,
        source: Weak<dyn SnapshotSource>,
        callback: Callback,
    ) -> ChangeToken {
        self.add(source, Registered::Callback(callback))
    }

    /// Registers an observer; its first run (soon, on the notifier thread) computes and
    /// delivers its initial state.
    pub(crate) fn observe(
        &self,
        source: Weak<dyn SnapshotSource>,
        observer: Arc<dyn Observer>,
    ) -> ChangeToken {
        let token = self.add(source, Registered::Observer(observer));
        if let Some(tx) = self.sender.lock().as_ref() {
            let _ = tx.send(Message::Wake);
        }
        token
    }

    fn add(&self, source: Weak<dyn SnapshotSource>, what: Registered) -> ChangeToken {
        let id = {
            let mut r = self.registry.lock();
            r.next_id += 1;
            let id = r.next_id;
            r.entries.push(Registration { id, what });
            id
        };
        let mut sender = self.sender.lock();
        if sender.is_none() {
            let (tx, rx) = mpsc::channel::<Message>();
            let registry = Arc::downgrade(&self.registry);
            let undelivered = self.undelivered.clone();
            std::thread::Builder::new()
                .name("shoal-notifier".into())
                .spawn(move || deliver(&registry, &source, &rx, &undelivered))
                .expect("spawning the notifier thread");
            *sender = Some(tx);
        }
        ChangeToken {
            registry: Arc::downgrade(&self.registry),
            id,
        }
    }

    /// Announces a commit that moved the file from version `before` to `version`, with what
    /// it changed.
    pub(crate) fn notify(&self, before: u64, version: u64, log: ChangeLog) {
        if let Some(tx) = self.sender.lock().as_ref() {
            self.undelivered.lock().push_back(before);
            let commit = Commit {
                version,
                log: Arc::new(log),
            };
            if tx.send(Message::Commit(commit)).is_err() {
                self.undelivered.lock().pop_back();
            }
        }
    }

    /// The version after which the history must keep every changeset for callbacks: the
    /// oldest undelivered notification's starting version, or `next_commit_base` when
    /// callbacks are registered (the commit about to happen will notify them), or `None` when
    /// no callback needs anything.
    pub(crate) fn undelivered_since(&self, next_commit_base: u64) -> Option<u64> {
        let oldest = self.undelivered.lock().front().copied();
        let listening = self
            .registry
            .lock()
            .entries
            .iter()
            .any(|e| matches!(e.what, Registered::Callback(_)));
        match (oldest, listening) {
            (Some(v), _) => Some(v.min(next_commit_base)),
            (None, true) => Some(next_commit_base),
            (None, false) => None,
        }
    }
}

fn deliver(
    registry: &Weak<Mutex<Registry>>,
    source: &Weak<dyn SnapshotSource>,
    rx: &mpsc::Receiver<Message>,
    undelivered: &Mutex<VecDeque<u64>>,
) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter());
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let has_observers = registry
            .lock()
            .entries
            .iter()
            .any(|e| matches!(&e.what, Registered::Observer(o) if !o.is_closed()));
        let woken = batch.iter().any(|m| matches!(m, Message::Wake));
        // The snapshot (and the rest of the batch) is taken before the registry is read: an
        // observer whose wake-up is in the batch is then in the registry too, and one
        // registered later finds its wake-up in the next batch.
        let snapshot = if has_observers || woken {
            snapshot_with_batch(source, rx, &mut batch)
        } else {
            None
        };
        let (callbacks, observers) = {
            let r = registry.lock();
            let mut callbacks = Vec::new();
            let mut observers = Vec::new();
            for e in &r.entries {
                match &e.what {
                    Registered::Callback(cb) => callbacks.push(cb.clone()),
                    Registered::Observer(o) if !o.is_closed() => observers.push(o.clone()),
                    Registered::Observer(_) => {}
                }
            }
            (callbacks, observers)
        };
        drop(registry);
        if let Some(snapshot) = snapshot {
            run_observers(&snapshot, &batch, &observers);
        }
        for message in batch.drain(..) {
            let Message::Commit(commit) = message else {
                continue;
            };
            for cb in &callbacks {
                // A panicking callback must not stop delivery to the others.
                let run =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(commit.version)));
                if run.is_err() {
                    tracing::error!(target: "shoal::notify", version = commit.version, "a change callback panicked; the others still run");
                }
            }
            // Notifications are sent in commit order and delivered in that order.
            undelivered.lock().pop_front();
        }
    }
}

/// The file's latest snapshot, with the notifications of every commit it contains collected
/// into `batch`; `None` when the file is gone or cannot be read.
fn snapshot_with_batch(
    source: &Weak<dyn SnapshotSource>,
    rx: &mpsc::Receiver<Message>,
    batch: &mut Vec<Message>,
) -> Option<Snapshot> {
    let file = source.upgrade()?;
    let snapshot = file.snapshot_between_commits(&mut || batch.extend(rx.try_iter()));
    drop(file);
    match snapshot {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(target: "shoal::notify", error = %e, "change notifications skipped: the file could not be read");
            None
        }
    }
}

/// Runs every observer on `snapshot` with the commits of `batch`.
fn run_observers(snapshot: &Snapshot, batch: &[Message], observers: &[Arc<dyn Observer>]) {
    // The logs are shared with the batch, not copied.
    let commits: Vec<Commit> = batch
        .iter()
        .filter_map(|m| match m {
            Message::Commit(c) => Some(Commit {
                version: c.version,
                log: c.log.clone(),
            }),
            Message::Wake => None,
        })
        .collect();
    let view = View {
        snap: snapshot,
        overlay: None,
    };
    for o in observers {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            o.run(view, snapshot.version, &commits)
        }));
        if run.is_err() {
            tracing::error!(target: "shoal::notify", "a change observer panicked; it was skipped");
        }
    }
}

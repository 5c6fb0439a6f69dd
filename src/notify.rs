//! Change notifications: after a commit that changed a file, every callback registered on any
//! handle of that file runs, on the file's notifier thread.
//!
//! The committing thread only sends the new version down a channel, so a slow callback never
//! delays a commit, and callbacks may call back into Shoal (no lock is held while they run).
//!
//! Until its callbacks have run, a notification keeps the changesets of its commit in the
//! history (see [`Notifier::undelivered_since`]): a callback may read what changed with
//! `Realm::history_since(previous version)`.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Weak};

type Callback = Arc<dyn Fn(u64) + Send + Sync>;

struct Registration {
    id: u64,
    callback: Callback,
}

#[derive(Default)]
struct Registry {
    entries: Vec<Registration>,
    next_id: u64,
}

/// The notification hub of one file.
#[derive(Default)]
pub(crate) struct Notifier {
    registry: Arc<Mutex<Registry>>,
    /// Sender to the delivery thread, started with the first registration.
    sender: Mutex<Option<mpsc::Sender<u64>>>,
    /// Per notification sent and not yet delivered to every callback, oldest first: the
    /// version before its commit (its changesets are the versions after it).
    undelivered: Arc<Mutex<VecDeque<u64>>>,
}

/// Keeps a change callback registered; dropping it unregisters the callback. The callback
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
    pub(crate) fn register(&self, callback: Callback) -> ChangeToken {
        let id = {
            let mut r = self.registry.lock();
            r.next_id += 1;
            let id = r.next_id;
            r.entries.push(Registration { id, callback });
            id
        };
        let mut sender = self.sender.lock();
        if sender.is_none() {
            let (tx, rx) = mpsc::channel::<u64>();
            let registry = Arc::downgrade(&self.registry);
            let undelivered = self.undelivered.clone();
            std::thread::Builder::new()
                .name("shoal-notifier".into())
                .spawn(move || deliver(&registry, &rx, &undelivered))
                .expect("spawning the notifier thread");
            *sender = Some(tx);
        }
        ChangeToken {
            registry: Arc::downgrade(&self.registry),
            id,
        }
    }

    /// Announces a commit that moved the file from version `before` to `version`.
    pub(crate) fn notify(&self, before: u64, version: u64) {
        if let Some(tx) = self.sender.lock().as_ref() {
            self.undelivered.lock().push_back(before);
            if tx.send(version).is_err() {
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
        let listening = !self.registry.lock().entries.is_empty();
        match (oldest, listening) {
            (Some(v), _) => Some(v.min(next_commit_base)),
            (None, true) => Some(next_commit_base),
            (None, false) => None,
        }
    }
}

fn deliver(
    registry: &Weak<Mutex<Registry>>,
    rx: &mpsc::Receiver<u64>,
    undelivered: &Mutex<VecDeque<u64>>,
) {
    while let Ok(version) = rx.recv() {
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let callbacks: Vec<Callback> = registry
            .lock()
            .entries
            .iter()
            .map(|e| e.callback.clone())
            .collect();
        drop(registry);
        for cb in callbacks {
            // A panicking callback must not stop delivery to the others.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(version)));
        }
        // Notifications are sent in commit order and delivered in that order.
        undelivered.lock().pop_front();
    }
}

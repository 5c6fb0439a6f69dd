//! The app's sync client: its tokio runtime, the thread that runs sync callbacks, the
//! connections by server and the sessions by local file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Weak};

use parking_lot::Mutex;

use super::connection::ConnectionHandle;
use super::session::{Session, SessionInner, SessionState};
use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};

type Job = Box<dyn FnOnce() + Send>;

/// The sync machinery of one [`App`](crate::App).
pub(crate) struct SyncClient {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    /// Sync callbacks run one at a time, in order, on their own thread: a slow callback never
    /// holds up the sync tasks.
    callbacks: Mutex<mpsc::Sender<Job>>,
    sessions: Mutex<HashMap<PathBuf, Weak<SessionInner>>>,
    connections: Mutex<HashMap<String, ConnectionHandle>>,
    /// The TLS configuration of `wss://` connections when the app has its own trusted roots
    /// (`None`: the public roots).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Drop for SyncClient {
    fn drop(&mut self) {
        // The last reference may go on a runtime thread, where a blocking shutdown panics.
        if let Some(rt) = self.runtime.get_mut().take() {
            rt.shutdown_background();
        }
    }
}

impl SyncClient {
    pub(crate) fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Result<SyncClient> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("shoal-sync")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::new(ErrorCode::Io, format!("cannot start the sync runtime: {e}"))
            })?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("shoal-sync-callbacks".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                        tracing::error!("a sync callback panicked; ignored");
                    }
                }
            })
            .map_err(|e| Error::new(ErrorCode::Io, format!("cannot start a thread: {e}")))?;
        Ok(SyncClient {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            callbacks: Mutex::new(tx),
            sessions: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            tls,
        })
    }

    /// Queues `job` on the sync callback thread.
    pub(crate) fn callback(&self, job: impl FnOnce() + Send + 'static) {
        let _ = self.callbacks.lock().send(Box::new(job));
    }

    /// The connection to the server at `url`, started if there is none.
    pub(crate) fn connection(&self, url: &str) -> ConnectionHandle {
        let mut conns = self.connections.lock();
        if let Some(c) = conns.get(url).filter(|c| !c.is_closed()) {
            return c.clone();
        }
        let c = ConnectionHandle::spawn(&self.handle, url.to_owned(), self.tls.clone());
        conns.insert(url.to_owned(), c.clone());
        c
    }

    /// The session of the synced realm `config` describes, created if there is none.
    pub(crate) fn session(self: &Arc<Self>, config: &Config) -> Result<Session> {
        let sync = config
            .sync
            .clone()
            .ok_or_else(|| Error::invalid("the configuration is not a synced one"))?;
        let key = PathBuf::from(&config.path);
        let mut sessions = self.sessions.lock();
        if let Some(inner) = sessions.get(&key).and_then(Weak::upgrade) {
            if inner.sync.url.resolved != sync.url.resolved
                || inner.sync.user.identity() != sync.user.identity()
            {
                return Err(Error::invalid(format!(
                    "the file '{}' is synced with {} already",
                    config.path, inner.sync.url.resolved
                )));
            }
            return Ok(Session { inner });
        }
        sessions.retain(|_, w| w.strong_count() > 0);
        let inner = Arc::new(SessionInner::new(self.clone(), config.clone(), sync));
        sessions.insert(key, Arc::downgrade(&inner));
        Ok(Session { inner })
    }

    /// The live session of a local file, if any.
    pub(crate) fn existing_session(&self, path: &Path) -> Option<Session> {
        self.sessions
            .lock()
            .get(path)
            .and_then(Weak::upgrade)
            .map(|inner| Session { inner })
    }

    /// Forgets the session of a file (after a client reset the next open starts afresh).
    pub(crate) fn forget_session(&self, path: &Path) {
        self.sessions.lock().remove(path);
    }

    /// Every live session.
    pub(crate) fn all_sessions(&self) -> Vec<Session> {
        self.sessions
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .map(|inner| Session { inner })
            .collect()
    }

    /// Starts the session's task if the session should run and has none; otherwise wakes it.
    pub(crate) fn start(&self, inner: &Arc<SessionInner>) {
        let mut s = inner.shared.lock();
        if s.running {
            drop(s);
            inner.wake.notify_one();
            return;
        }
        if !SessionInner::wants_to_run(&s, inner.sync.user.is_valid()) {
            let state = if s.fatal.is_some() {
                SessionState::Error
            } else {
                SessionState::Inactive
            };
            inner.set_state(&mut s, state);
            return;
        }
        s.running = true;
        inner.set_state(&mut s, SessionState::WaitingForAccessToken);
        drop(s);
        let task = inner.clone();
        self.handle.spawn(super::runner::run(task));
    }

    /// Pauses every session, waits for their tasks to stop, then for the callback thread to
    /// run what was queued before (a marker job).
    pub(crate) fn stop_all(&self, timeout: std::time::Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        let sessions = self.all_sessions();
        for s in &sessions {
            s.pause();
        }
        for s in &sessions {
            let mut shared = s.inner.shared.lock();
            while shared.running {
                if s.inner
                    .changed
                    .wait_until(&mut shared, deadline)
                    .timed_out()
                {
                    return Err(Error::new(
                        ErrorCode::Timeout,
                        "the sync sessions did not stop in time",
                    ));
                }
            }
        }
        let (tx, rx) = mpsc::channel::<()>();
        self.callback(move || {
            let _ = tx.send(());
        });
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        rx.recv_timeout(left).map_err(|_| {
            Error::new(
                ErrorCode::Timeout,
                "the sync callbacks did not finish in time",
            )
        })
    }

    /// A user logged in or out: wake (or start) its sessions.
    pub(crate) fn user_changed(&self, identity: &str) {
        for session in self.all_sessions() {
            if session.inner.sync.user.identity() == identity {
                let handles = session.inner.shared.lock().handles;
                if handles > 0 || session.inner.shared.lock().dying {
                    self.start(&session.inner);
                } else {
                    session.inner.wake.notify_one();
                }
            }
        }
    }
}

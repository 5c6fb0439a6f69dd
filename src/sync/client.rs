//! The app's sync client: its tokio runtime, the thread that runs sync callbacks, the
//! connections by server and the sessions by local file; and the [`App`] methods that reach
//! it (the app's core, below the sync layer, holds it only as a `LoginListener`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Weak};

use parking_lot::Mutex;

use super::connection::ConnectionHandle;
use super::session::{Session, SessionHost, SessionInner, SessionState};
use crate::app::{App, AppInner, LoginListener};
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
    /// The sync client of `app`, started on first use.
    pub(crate) fn of(app: &AppInner) -> Result<Arc<SyncClient>> {
        if let Some(client) = Self::existing(app) {
            return Ok(client);
        }
        let tls = app
            .trusted
            .as_ref()
            .map(crate::tls::TrustedRoots::sync_config);
        let client: Arc<dyn LoginListener> = Arc::new(SyncClient::new(tls)?);
        // Another thread may have started one meanwhile: that one wins, this one is dropped.
        let _ = app.sync.set(client);
        Self::existing(app).ok_or_else(|| Error::new(ErrorCode::Unknown, "no sync client"))
    }

    /// The sync client of `app` if it was started.
    pub(crate) fn existing(app: &AppInner) -> Option<Arc<SyncClient>> {
        let listener: Arc<dyn std::any::Any + Send + Sync> = app.sync.get()?.clone();
        listener.downcast::<SyncClient>().ok()
    }

    fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Result<SyncClient> {
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

    /// The session of the synced realm `config` describes, created if there is none. An
    /// existing session that is stopped takes `config` (see [`SessionInner::reconfigure`]);
    /// `is_new` says the file does not exist (an open is about to create it).
    pub(crate) fn session(self: &Arc<Self>, config: &Config, is_new: bool) -> Result<Session> {
        let sync = config
            .sync_config()
            .cloned()
            .ok_or_else(|| Error::invalid("the configuration is not a synced one"))?;
        let key = PathBuf::from(&config.path);
        let mut sessions = self.sessions.lock();
        if let Some(inner) = sessions.get(&key).and_then(Weak::upgrade) {
            if inner.url.resolved != sync.url.resolved
                || inner.user().identity() != sync.user.identity()
            {
                return Err(Error::invalid(format!(
                    "the file '{}' is synced with {} already",
                    config.path, inner.url.resolved
                )));
            }
            inner.reconfigure(config, &sync, is_new);
            return Ok(Session { inner });
        }
        sessions.retain(|_, w| w.strong_count() > 0);
        let host: Arc<dyn SessionHost> = self.clone();
        let inner = Arc::new(SessionInner::new(host, config.clone(), sync));
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

    /// Runs the client reset pending for the realm file at `path` (recorded when its error
    /// was raised, in this process or an earlier one) if no handle of the file is open,
    /// waiting a little for the session that raised it to let go of the file; then forgets
    /// that session, so that the open goes on with a new file and a new session. A reset that
    /// cannot run now waits for the next open; a failure is logged and the open goes on with
    /// the file as it is (the server raises the reset again).
    pub(crate) fn run_pending_reset(&self, root: &Path, path: &str) {
        use super::client_reset::{self, Pending};
        match client_reset::pending(root, path) {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                tracing::error!(path, error = %e, "could not read the pending client resets");
                return;
            }
        }
        if let Some(session) = self.existing_session(Path::new(path)) {
            if session.error().is_some() {
                session.wait_stopped(std::time::Duration::from_secs(5));
            }
        }
        match client_reset::run_pending(root, path) {
            Ok(Pending::Done(backup)) => {
                tracing::info!(path, backup = %backup.display(), "client reset executed at open");
                self.forget_session(Path::new(path));
            }
            Ok(Pending::Open) => {
                tracing::debug!(path, "the client reset waits until every handle is closed");
            }
            Ok(Pending::None) => {}
            Err(e) => tracing::error!(path, error = %e, "the pending client reset failed"),
        }
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
        self.callback(Box::new(move || {
            let _ = tx.send(());
        }));
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        rx.recv_timeout(left).map_err(|_| {
            Error::new(
                ErrorCode::Timeout,
                "the sync callbacks did not finish in time",
            )
        })
    }
}

impl SessionHost for SyncClient {
    fn callback(&self, job: Box<dyn FnOnce() + Send>) {
        let _ = self.callbacks.lock().send(job);
    }

    /// Starts the session's task if the session should run and has none; otherwise wakes it.
    fn start(&self, inner: &Arc<SessionInner>) {
        let mut s = inner.shared.lock();
        if s.running {
            drop(s);
            inner.wake.notify_one();
            return;
        }
        if !SessionInner::wants_to_run(&s, inner.user().is_valid()) {
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

    fn connection(&self, url: &str) -> ConnectionHandle {
        let mut conns = self.connections.lock();
        if let Some(c) = conns.get(url).filter(|c| !c.is_closed()) {
            return c.clone();
        }
        let c = ConnectionHandle::spawn(&self.handle, url.to_owned(), self.tls.clone());
        conns.insert(url.to_owned(), c.clone());
        c
    }

    /// Forgets the session of a file (after a client reset the next open starts afresh).
    fn forget_session(&self, path: &Path) {
        self.sessions.lock().remove(path);
    }
}

impl SyncClient {
    /// The live sessions of `identity`'s files.
    fn sessions_of(&self, identity: &str) -> Vec<Session> {
        self.all_sessions()
            .into_iter()
            .filter(|s| s.inner.user().identity() == identity)
            .collect()
    }
}

/// How long a logout waits for the user's session tasks to let go of their files before the
/// files are left for the next start (a task may be in the middle of an access-token request,
/// which can take 35 s).
const LOGOUT_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl LoginListener for SyncClient {
    /// A user logged in or out: wake (or start) its sessions.
    fn user_changed(&self, identity: &str) {
        for session in self.sessions_of(identity) {
            let handles = session.inner.shared.lock().handles;
            if handles > 0 || session.inner.shared.lock().dying {
                self.start(&session.inner);
            } else {
                session.inner.wake.notify_one();
            }
        }
    }

    /// Runs `remove` once every session of the user has stopped its task (at once if none
    /// runs; else on a blocking thread of the runtime), unless an application handle of one
    /// of the user's files is open.
    fn user_logged_out(&self, identity: &str, remove: Box<dyn FnOnce() + Send>) {
        let sessions = self.sessions_of(identity);
        if let Some(open) = sessions.iter().find(|s| s.inner.shared.lock().handles > 0) {
            tracing::info!(identity, path = %open.path(),
                "a realm of the logged-out user is open: its files are deleted at the next start");
            return;
        }
        let running: Vec<Session> = sessions
            .into_iter()
            .filter(|s| s.inner.shared.lock().running)
            .collect();
        if running.is_empty() {
            remove();
            return;
        }
        let identity = identity.to_owned();
        self.handle.spawn_blocking(move || {
            let deadline = std::time::Instant::now() + LOGOUT_STOP_WAIT;
            for s in &running {
                let mut shared = s.inner.shared.lock();
                while shared.running {
                    if s.inner.changed.wait_until(&mut shared, deadline).timed_out() {
                        tracing::warn!(identity, path = %s.path(),
                            "a session of the logged-out user did not stop: its files are deleted at the next start");
                        return;
                    }
                }
            }
            remove();
        });
    }
}

/// The app's sync entry points.
impl App {
    /// The sync session of the synced realm `config` describes (created, not started, if
    /// the realm is not open).
    ///
    /// # Errors
    /// `InvalidArgument` if `config` is not a synced configuration of this app's users.
    pub fn session(&self, config: &Config) -> Result<Session> {
        let sync = config
            .sync_config()
            .ok_or_else(|| Error::invalid("the configuration is not a synced one"))?;
        if !Arc::ptr_eq(&sync.user.app, &self.inner) {
            return Err(Error::invalid(
                "the configuration's user belongs to another app",
            ));
        }
        let is_new = !Path::new(config.path()).exists();
        SyncClient::of(&self.inner)?.session(config, is_new)
    }

    /// Every sync session alive in this app.
    pub fn all_sessions(&self) -> Vec<Session> {
        SyncClient::existing(&self.inner)
            .map(|c| c.all_sessions())
            .unwrap_or_default()
    }

    /// Pauses every sync session of the app, then waits (at most `timeout`) until their
    /// tasks have stopped and the sync callbacks already queued have run. Meant for process
    /// exit in bindings whose callbacks must not run during interpreter shutdown; sessions
    /// sync again after [`Session::resume`](crate::Session::resume).
    ///
    /// # Errors
    /// `Timeout` if the sessions or callbacks did not finish in time.
    pub fn stop_sync(&self, timeout: std::time::Duration) -> Result<()> {
        match SyncClient::existing(&self.inner) {
            Some(client) => client.stop_all(timeout),
            None => Ok(()),
        }
    }

    /// Executes a client reset the error handler announced (Realm's
    /// `ClientResetRequiredError.executeClientReset`): moves the realm file at
    /// `original_path` to the backup path the error announced — recorded when the error was
    /// raised, so the same path whether or not the session is still alive, and after a
    /// restart of the app — and forgets its session, so that the next open starts afresh
    /// from the server. Without a recorded reset the file goes to a new
    /// `<sync root>/recovered-realms/recovered_realm-YYYYMMDD-HHMMSS-XXXXXXXX`. Returns the
    /// backup path; open it with the error's `backup_config` (or
    /// [`Config::for_recovery`](crate::Config::for_recovery)).
    ///
    /// A reset not executed by hand runs by itself at the next open of the realm once every
    /// handle of it has closed.
    ///
    /// # Errors
    /// `RealmInUse` while a handle of the realm is open (its session's own handle included,
    /// until the session has stopped); `FileNotFound`; file errors.
    pub fn execute_client_reset(&self, original_path: &str) -> Result<String> {
        let original = std::path::Path::new(original_path);
        let root = self.sync_root();
        let client = SyncClient::existing(&self.inner);
        let session = client.as_ref().and_then(|c| c.existing_session(original));
        let backup = match super::client_reset::pending(&root, original_path)? {
            Some(recorded) => recorded,
            None => session
                .as_ref()
                .and_then(Session::error)
                .and_then(|e| e.backup_path)
                .map(PathBuf::from)
                .unwrap_or_else(|| super::client_reset::unrecorded_backup_path(&root)),
        };
        super::client_reset::execute(&root, original_path, &backup)?;
        if let Some(c) = &client {
            c.forget_session(original);
        }
        Ok(backup.display().to_string())
    }
}

/// A user's sync entry points.
impl crate::User {
    /// The sessions of this user that are not stopped by an error (Realm's
    /// `SyncUser.allSessions`), ordered by local path.
    pub fn all_sessions(&self) -> Vec<Session> {
        let Some(client) = SyncClient::existing(&self.app) else {
            return Vec::new();
        };
        let mut sessions: Vec<Session> = client
            .all_sessions()
            .into_iter()
            .filter(|s| s.inner.user() == *self && s.state() != SessionState::Error)
            .collect();
        sessions.sort_by(|a, b| a.path().cmp(b.path()));
        sessions
    }
}

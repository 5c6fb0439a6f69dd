//! Sessions: how a realm is synced ([`SyncConfig`]: the user, the server URL, the session's
//! options and callbacks) and the public handle of one synced realm file's sync state
//! ([`Session`]): its states, progress notifications and waits. The two live together because
//! each names the other (a config's callbacks get the session). The protocol work is done by
//! the session's task (`runner.rs`), started by its host, the app's sync client
//! (`client.rs`, seen here as [`SessionHost`]); this file holds what they share and what
//! users call.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::connection::ConnectionHandle;
use super::error::SyncError;
use super::url::{directory_arg, file_name_arg, local_realm_path, SyncUrl};
use crate::config::Config;
use crate::db::Realm;
use crate::error::{Error, ErrorCode, Result};
use crate::user::User;
use crate::util::Cancellation;

/// Gets every error of a session (see [`SyncError`]). Runs on the sync callback thread.
pub type ErrorHandler = Arc<dyn Fn(&Session, &SyncError) + Send + Sync>;

/// Asked for an access token whenever the session needs one (first bind, 10 s before the
/// current one expires, after the server said it expired); answers later, from any thread,
/// with [`Session::bind_token`]. Gets the session and the server path. Runs on the sync
/// callback thread.
pub type TokenBinder = Arc<dyn Fn(&Session, &str) + Send + Sync>;

/// The handler new [`SyncConfig`]s start with (`None`: the built-in one, which logs).
static DEFAULT_ERROR_HANDLER: parking_lot::RwLock<Option<ErrorHandler>> =
    parking_lot::RwLock::new(None);

/// Sets the error handler every [`SyncConfig`] made from now on starts with (Realm's
/// `SyncManager.setDefaultSessionErrorHandler`); `None` restores the built-in one, which logs
/// fatal errors at ERROR and recoverable ones at INFO as `Session Error[<url>]: <message>`
/// (target `shoal::sync`). Configurations made earlier keep the handler they had.
pub fn set_default_error_handler(handler: Option<ErrorHandler>) {
    *DEFAULT_ERROR_HANDLER.write() = handler;
}

/// The built-in error handler (see [`set_default_error_handler`]).
pub(crate) fn log_session_error(session: &Session, error: &SyncError) {
    let url = &session.inner.url.resolved;
    if error.is_fatal {
        tracing::error!(target: "shoal::sync", code = error.code, "Session Error[{url}]: {}", error.message);
    } else {
        tracing::info!(target: "shoal::sync", code = error.code, "Session Error[{url}]: {}", error.message);
    }
}

/// What a session does when the last realm handle of its file is closed.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopPolicy {
    /// Stop at once; changes not uploaded yet wait for the next open.
    Immediately = 0,
    /// Keep syncing as long as the process runs.
    LiveIndefinitely = 1,
    /// Keep uploading until every local change has been acknowledged by the server, then stop
    /// (the session is `DYING` meanwhile).
    #[default]
    AfterChangesUploaded = 2,
}

impl StopPolicy {
    /// The policy for a C constant.
    pub fn from_i32(v: i32) -> Option<StopPolicy> {
        match v {
            0 => Some(StopPolicy::Immediately),
            1 => Some(StopPolicy::LiveIndefinitely),
            2 => Some(StopPolicy::AfterChangesUploaded),
            _ => None,
        }
    }
}

/// The sync part of a realm's [`Config`](crate::Config): set it with
/// [`Config::set_sync`](crate::Config::set_sync), which also moves the realm's path to
/// [`local_path`](Self::local_path).
#[derive(Clone)]
pub struct SyncConfig {
    pub(crate) user: User,
    pub(crate) url: SyncUrl,
    /// The root of the local file: the app's sync root, or [`SyncConfig::set_directory`]'s.
    pub(crate) root: PathBuf,
    /// The local file name given with [`SyncConfig::set_name`] (`None`: the URL's last segment).
    pub(crate) name: Option<String>,
    pub(crate) local_path: PathBuf,
    pub(crate) error_handler: Option<ErrorHandler>,
    pub(crate) stop_policy: StopPolicy,
    pub(crate) wait_for_initial_data: Option<Duration>,
    pub(crate) token_binder: Option<TokenBinder>,
}

impl fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncConfig")
            .field("user", &self.user.identity())
            .field("url", &self.url.resolved)
            .field("local_path", &self.local_path)
            .field("stop_policy", &self.stop_policy)
            .finish_non_exhaustive()
    }
}

impl SyncConfig {
    /// A sync configuration for `user` and the realm at `url` (`realm://host[:port]/path` or
    /// `realms://` for TLS; `~` segments stand for the user's identity). The local file is
    /// `<app sync root>/<identity>/<server path>`, so two users of one URL get two files.
    ///
    /// # Errors
    /// `InvalidArgument` for a logged-out or expired user, or a URL that breaks a rule of
    /// [`SyncUrl::parse`]; file errors if the folder cannot be created.
    pub fn new(user: &User, url: &str) -> Result<SyncConfig> {
        if !user.is_valid() {
            return Err(Error::invalid(format!(
                "the user '{}' is not logged in or its login expired",
                user.identity()
            )));
        }
        let url = SyncUrl::parse(url, user.identity())?;
        let root = user.app.sync_root().to_path_buf();
        let local_path = placed(&root, user.identity(), &url, None)?;
        Ok(SyncConfig {
            user: user.clone(),
            url,
            root,
            name: None,
            local_path,
            error_handler: DEFAULT_ERROR_HANDLER.read().clone(),
            stop_policy: StopPolicy::default(),
            wait_for_initial_data: None,
            token_binder: None,
        })
    }

    /// Names the local file `name` instead of the URL's last segment (Realm Java's
    /// `SyncConfiguration.Builder.name()`); it stays in the folder the URL's path gives, and
    /// the length rules of [`SyncConfig::new`] apply to it. The characters
    /// `< > : " / \ | ? *` become `_`. The folder is created here.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty name, `.` or `..`, a name ending in `.creating`,
    /// `.compact` or `.upgrade` (the files Shoal writes beside a realm), or a path too long
    /// even with a hashed name; file errors if the folder cannot be created. The
    /// configuration is unchanged after an error.
    pub fn set_name(&mut self, name: &str) -> Result<&mut SyncConfig> {
        let name = file_name_arg(name)?;
        self.local_path = placed(&self.root, self.user.identity(), &self.url, Some(&name))?;
        self.name = Some(name);
        Ok(self)
    }

    /// Keeps the local file under `directory` instead of the app's sync root
    /// (`<base_dir>/shoal-object-server`; Realm Java's `SyncConfiguration.Builder.directory()`):
    /// the file becomes `<directory>/<identity>/<server path>`. The directory is created if
    /// missing and kept as its absolute, canonical path.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty path, a path that is a file, a directory that cannot be
    /// created or is not writable (checked by creating a file in it), or a local path that is
    /// too long under it; file errors if the folder cannot be created. The configuration is
    /// unchanged after an error.
    pub fn set_directory(&mut self, directory: impl AsRef<Path>) -> Result<&mut SyncConfig> {
        let root = directory_arg(directory.as_ref())?;
        self.local_path = placed(&root, self.user.identity(), &self.url, self.name.as_deref())?;
        self.root = root;
        Ok(self)
    }

    /// The root under which the local file lives: the app's sync root, or the directory given
    /// to [`set_directory`](Self::set_directory).
    pub fn directory(&self) -> &Path {
        &self.root
    }

    /// The user.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The resolved server URL (`~` replaced by the identity).
    pub fn server_url(&self) -> &str {
        &self.url.resolved
    }

    /// The server path, e.g. `/<identity>/tasks`.
    pub fn server_path(&self) -> &str {
        &self.url.path
    }

    /// The local file this realm is stored in.
    pub fn local_path(&self) -> &std::path::Path {
        &self.local_path
    }

    /// The error handler: the one set, or the default at creation (see
    /// [`set_default_error_handler`]); `None` means the built-in logging one.
    pub fn error_handler(&self) -> Option<&ErrorHandler> {
        self.error_handler.as_ref()
    }

    /// Sets the error handler (default: the one given to [`set_default_error_handler`], else
    /// the built-in one, which logs).
    pub fn set_error_handler(
        &mut self,
        handler: impl Fn(&Session, &SyncError) + Send + Sync + 'static,
    ) -> &mut SyncConfig {
        self.error_handler = Some(Arc::new(handler));
        self
    }

    /// Sets the stop policy (default [`StopPolicy::AfterChangesUploaded`]).
    pub fn set_stop_policy(&mut self, policy: StopPolicy) -> &mut SyncConfig {
        self.stop_policy = policy;
        self
    }

    /// Makes the first open of the realm wait until everything on the server has been
    /// downloaded (at most `timeout`; then the open fails with `Timeout`). `None`: never wait
    /// (the default).
    pub fn set_wait_for_initial_data(&mut self, timeout: Option<Duration>) -> &mut SyncConfig {
        self.wait_for_initial_data = timeout;
        self
    }

    /// Lets the binding supply access tokens (see [`TokenBinder`]); without one the session
    /// asks the auth server itself.
    pub fn set_token_binder(
        &mut self,
        binder: impl Fn(&Session, &str) + Send + Sync + 'static,
    ) -> &mut SyncConfig {
        self.token_binder = Some(Arc::new(binder));
        self
    }
}

/// The local file of `url` for `identity` under `root` (named `name` if given), with its
/// folder created.
fn placed(root: &Path, identity: &str, url: &SyncUrl, name: Option<&str>) -> Result<PathBuf> {
    let local_path = local_realm_path(root, identity, url, name)?;
    if let Some(dir) = local_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::from(e).with_path(dir.display().to_string()))?;
    }
    Ok(local_path)
}

/// What a session needs of the sync client that hosts it (`client.rs`, above this file):
/// the callback thread, its task, connections, and forgetting it.
pub(crate) trait SessionHost: Send + Sync {
    /// Queues `job` on the sync callback thread (callbacks never run on the sync tasks).
    fn callback(&self, job: Box<dyn FnOnce() + Send>);
    /// Starts the session's task if it should run and has none; otherwise wakes it.
    fn start(&self, session: &Arc<SessionInner>);
    /// The connection to the server at `url`, started if there is none.
    fn connection(&self, url: &str) -> ConnectionHandle;
    /// Forgets the session of a file (after a client reset or a discarded new file, the next
    /// open starts afresh).
    fn forget_session(&self, path: &Path);
}

/// A session's state (the numbers are the reference system's).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The session needs an access token before it can bind.
    WaitingForAccessToken = 0,
    /// The session is syncing (or connecting to do so).
    Active = 1,
    /// Every realm handle is closed; the session uploads what is left, then stops.
    Dying = 2,
    /// Not syncing: stopped, paused, or the user logged out.
    Inactive = 3,
    /// Stopped by a fatal error (see the error handler).
    Error = 4,
}

/// The state of the session's connection to the server.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not connected.
    Disconnected = 0,
    /// Connecting or binding.
    Connecting = 1,
    /// Bound on a connected WebSocket.
    Connected = 2,
}

/// Which transfer a progress callback follows (the reference system's numbers).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressDirection {
    /// Changes from the server.
    Download = 1,
    /// Local changes to the server.
    Upload = 2,
}

/// How long a progress callback reports.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Fixes the bytes to transfer at registration (for downloads: at the first progress the
    /// server sends), reports only growing progress, and stops after the first completion.
    CurrentChanges = 0,
    /// Reports for as long as the callback is registered; the bytes to transfer grow with new
    /// changes, so completion can come and go.
    Indefinitely = 1,
}

/// A progress report: complete when `transferred >= transferable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes transferred (acknowledged uploads; integrated downloads).
    pub transferred: u64,
    /// Bytes transferred plus bytes still to transfer.
    pub transferable: u64,
}

impl Progress {
    /// Whether everything transferable has been transferred.
    pub fn is_complete(&self) -> bool {
        self.transferred >= self.transferable
    }

    /// `transferred / transferable`, 1.0 when there is nothing to transfer.
    pub fn fraction(&self) -> f64 {
        if self.transferable == 0 {
            1.0
        } else {
            (self.transferred as f64 / self.transferable as f64).min(1.0)
        }
    }
}

pub(crate) type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;
pub(crate) type StateFn = Arc<dyn Fn(SessionState, SessionState) + Send + Sync>;
pub(crate) type ConnectionFn = Arc<dyn Fn(ConnectionState, ConnectionState) + Send + Sync>;

struct Listener {
    id: u64,
    direction: ProgressDirection,
    mode: ProgressMode,
    callback: ProgressFn,
    /// CURRENT_CHANGES: the transferable bytes fixed at registration.
    target: Option<u64>,
    last: Option<Progress>,
}

/// Everything about a session that its task and its users share, under one lock.
pub(crate) struct Shared {
    pub(crate) state: SessionState,
    pub(crate) connection: ConnectionState,
    /// Open realm handles of the file (the session's own handles do not count).
    pub(crate) handles: usize,
    /// Set when the last handle closed under `AfterChangesUploaded` (cleared by a reopen).
    pub(crate) dying: bool,
    /// Set when the last handle closed under `Immediately`, or when dying has finished.
    pub(crate) stopped: bool,
    pub(crate) paused: bool,
    /// The fatal error that stopped the session.
    pub(crate) fatal: Option<SyncError>,
    /// Whether the session's task is alive.
    pub(crate) running: bool,
    /// A token handed over by [`Session::bind_token`], not taken by the task yet.
    pub(crate) bound_token: Option<String>,
    // --- upload progress ---
    /// The last local version the server acknowledged.
    pub(crate) acked: u64,
    /// The history version scanned for local changesets.
    pub(crate) scanned: u64,
    /// Local changesets after `acked`: `(version, bytes)`.
    pub(crate) pending: VecDeque<(u64, u64)>,
    pub(crate) pending_bytes: u64,
    /// Bytes of local changesets acknowledged.
    pub(crate) uploaded: u64,
    /// Whether `uploaded`/`pending` were computed from the file.
    pub(crate) upload_known: bool,
    // --- download progress ---
    pub(crate) downloaded: u64,
    pub(crate) downloadable: u64,
    pub(crate) download_known: bool,
    /// The latest MARK request asked for, and the latest one the server answered.
    pub(crate) mark_requested: u64,
    pub(crate) mark_done: u64,
    listeners: Vec<Listener>,
    state_listeners: Vec<(u64, StateFn)>,
    connection_listeners: Vec<(u64, ConnectionFn)>,
    next_id: u64,
}

/// The configuration a session works with: the realm's (for the session's own handles of
/// the file: its encryption key) and its sync part (user, callbacks, stop policy). Replaced by
/// the next open's when the session is stopped (see [`SessionInner::reconfigure`]).
pub(crate) struct SessionConf {
    pub(crate) config: Config,
    pub(crate) sync: SyncConfig,
}

pub(crate) struct SessionInner {
    pub(crate) client: Arc<dyn SessionHost>,
    /// The local file: fixed for the session's life (sessions are kept by it).
    pub(crate) path: String,
    /// The server URL: fixed too (one file syncs with one server path).
    pub(crate) url: SyncUrl,
    /// The configuration of the open that (re)started the session; see [`SessionConf`].
    conf: RwLock<Arc<SessionConf>>,
    pub(crate) shared: Mutex<Shared>,
    /// Signalled whenever `shared` changes in a way a waiter may care about.
    pub(crate) changed: Condvar,
    /// Wakes the session's task to look at `shared` and the file again.
    pub(crate) wake: tokio::sync::Notify,
    /// The handle used to read the file's history for progress (not the task's).
    scan_realm: Mutex<Option<Realm>>,
}

/// The sync session of one synced realm file: one per file and process, shared by every
/// handle of the realm. Cheap to clone.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<SessionInner>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.inner.url.resolved)
            .field("state", &self.state())
            .finish()
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Session {}

/// Unregisters a session callback when dropped.
pub struct SyncCallbackToken {
    session: std::sync::Weak<SessionInner>,
    id: u64,
}

impl Drop for SyncCallbackToken {
    fn drop(&mut self) {
        if let Some(inner) = self.session.upgrade() {
            // The callbacks are dropped after the lock is released: dropping one may call
            // back into the session.
            let mut removed: Vec<Box<dyn std::any::Any>> = Vec::new();
            let mut s = inner.shared.lock();
            let id = self.id;
            if let Some(i) = s.listeners.iter().position(|l| l.id == id) {
                removed.push(Box::new(s.listeners.remove(i).callback));
            }
            if let Some(i) = s.state_listeners.iter().position(|(l, _)| *l == id) {
                removed.push(Box::new(s.state_listeners.remove(i).1));
            }
            if let Some(i) = s.connection_listeners.iter().position(|(l, _)| *l == id) {
                removed.push(Box::new(s.connection_listeners.remove(i).1));
            }
            drop(s);
            drop(removed);
        }
    }
}

impl fmt::Debug for SyncCallbackToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncCallbackToken")
            .field("id", &self.id)
            .finish()
    }
}

impl SessionInner {
    pub(crate) fn new(
        client: Arc<dyn SessionHost>,
        config: Config,
        sync: SyncConfig,
    ) -> SessionInner {
        SessionInner {
            client,
            path: config.path.clone(),
            url: sync.url.clone(),
            conf: RwLock::new(Arc::new(SessionConf { config, sync })),
            shared: Mutex::new(Shared {
                state: SessionState::Inactive,
                connection: ConnectionState::Disconnected,
                handles: 0,
                dying: false,
                stopped: false,
                paused: false,
                fatal: None,
                running: false,
                bound_token: None,
                acked: 0,
                scanned: 0,
                pending: VecDeque::new(),
                pending_bytes: 0,
                uploaded: 0,
                upload_known: false,
                downloaded: 0,
                downloadable: 0,
                download_known: false,
                mark_requested: 0,
                mark_done: 0,
                listeners: Vec::new(),
                state_listeners: Vec::new(),
                connection_listeners: Vec::new(),
                next_id: 1,
            }),
            changed: Condvar::new(),
            wake: tokio::sync::Notify::new(),
            scan_realm: Mutex::new(None),
        }
    }

    /// The configuration the session works with now.
    pub(crate) fn conf(&self) -> Arc<SessionConf> {
        self.conf.read().clone()
    }

    /// The session's user (of its current configuration).
    pub(crate) fn user(&self) -> User {
        self.conf.read().sync.user.clone()
    }

    /// Takes the configuration of a new open of the file if the session is stopped (no task,
    /// no open handle, not uploading after the last close): a stopped session keeps nothing
    /// of an earlier configuration — its encryption key, user handle, callbacks, policy — so
    /// that a file deleted and created again (after a logout, by hand) opens with whatever
    /// the app configures now. A file that no longer exists also starts the session's figures
    /// and error afresh: they described the old file. A running session keeps its
    /// configuration (its file is open, so another key fails at the file layer anyway).
    pub(crate) fn reconfigure(self: &Arc<Self>, config: &Config, sync: &SyncConfig, is_new: bool) {
        let mut s = self.shared.lock();
        if s.running || s.handles > 0 || s.dying {
            return;
        }
        *self.conf.write() = Arc::new(SessionConf {
            config: config.clone(),
            sync: sync.clone(),
        });
        if is_new {
            s.fatal = None;
            s.acked = 0;
            s.scanned = 0;
            s.pending.clear();
            s.pending_bytes = 0;
            s.uploaded = 0;
            s.upload_known = false;
            s.downloaded = 0;
            s.downloadable = 0;
            s.download_known = false;
            if s.state == SessionState::Error {
                self.set_state(&mut s, SessionState::Inactive);
            }
        }
    }

    /// Opens a handle of the file for the library's own use (it does not count as a user's
    /// handle, runs no schema changes and no callbacks, and its change callbacks run on
    /// library threads whatever the app's scheduler: the session's task must hear of local
    /// commits whether or not the app drains its scheduler).
    pub(crate) fn open_internal(&self) -> Result<Realm> {
        let mut config = self.conf().config.clone();
        config.scheduler = None;
        config.schema = None;
        config.initial_data = None;
        config.migration = None;
        config.should_compact = None;
        config.read_only = false;
        Realm::open_local(&config)
    }

    /// Whether the session should be syncing now.
    pub(crate) fn wants_to_run(s: &Shared, user_valid: bool) -> bool {
        user_valid && !s.paused && !s.stopped && s.fatal.is_none()
    }

    /// Changes the state, telling state callbacks and waiters.
    pub(crate) fn set_state(self: &Arc<Self>, s: &mut Shared, state: SessionState) {
        if s.state == state {
            return;
        }
        let old = s.state;
        s.state = state;
        tracing::debug!(url = %self.url.resolved, ?old, new = ?state, "session state");
        for (_, cb) in &s.state_listeners {
            let cb = cb.clone();
            self.client.callback(Box::new(move || cb(old, state)));
        }
        self.changed.notify_all();
    }

    pub(crate) fn set_connection(self: &Arc<Self>, s: &mut Shared, state: ConnectionState) {
        if s.connection == state {
            return;
        }
        let old = s.connection;
        s.connection = state;
        for (_, cb) in &s.connection_listeners {
            let cb = cb.clone();
            self.client.callback(Box::new(move || cb(old, state)));
        }
        self.changed.notify_all();
    }

    /// Reads the local changesets committed since the last scan into the upload figures.
    /// `realm` is a handle of the file that may be refreshed.
    pub(crate) fn scan_with(self: &Arc<Self>, realm: &Realm) -> Result<()> {
        realm.refresh()?;
        let mut s = self.shared.lock();
        if !s.upload_known {
            let acked = realm.sync_progress()?.acked.max(s.acked);
            drop(s);
            let sizes = realm.local_changeset_sizes(0)?;
            s = self.shared.lock();
            if !s.upload_known {
                s.acked = s.acked.max(acked);
                let acked = s.acked;
                s.uploaded = sizes
                    .iter()
                    .filter(|(v, _)| *v <= acked)
                    .map(|(_, n)| n)
                    .sum();
                s.pending = sizes.iter().copied().filter(|(v, _)| *v > acked).collect();
                s.pending_bytes = s.pending.iter().map(|(_, n)| n).sum();
                s.scanned = realm.version()?;
                s.upload_known = true;
                self.report_progress(&mut s);
            }
            return Ok(());
        }
        let after = s.scanned;
        drop(s);
        let sizes = realm.local_changeset_sizes(after)?;
        let version = realm.version()?;
        let mut s = self.shared.lock();
        if s.scanned != after {
            return Ok(()); // Another scan got there first.
        }
        let acked = s.acked;
        for (v, n) in sizes {
            if v > acked {
                s.pending.push_back((v, n));
                s.pending_bytes += n;
            } else {
                s.uploaded += n;
            }
        }
        s.scanned = version;
        self.report_progress(&mut s);
        Ok(())
    }

    /// Scans with the session's scan handle (opened on first use).
    pub(crate) fn scan(self: &Arc<Self>) -> Result<()> {
        // One scan at a time: a scan refreshes the shared handle, which must not move under
        // another scan between its history read and its version read.
        let mut slot = self.scan_realm.lock();
        if slot.is_none() {
            *slot = Some(self.open_internal()?);
        }
        let result = match slot.as_ref() {
            Some(r) => self.scan_with(r),
            None => Ok(()),
        };
        // Without a running task nothing else would close the handle (and the file).
        if !self.shared.lock().running {
            slot.take();
        }
        result
    }

    /// Lets go of the scan handle (when the session stops, so that the file can be closed).
    pub(crate) fn drop_scan_realm(&self) {
        self.scan_realm.lock().take();
    }

    /// The server acknowledged local versions up to `acked`.
    pub(crate) fn on_acked(self: &Arc<Self>, s: &mut Shared, acked: u64) {
        if acked <= s.acked {
            return;
        }
        s.acked = acked;
        while let Some(&(v, n)) = s.pending.front() {
            if v > acked {
                break;
            }
            s.pending.pop_front();
            s.pending_bytes -= n;
            s.uploaded += n;
        }
        self.report_progress(s);
        self.changed.notify_all();
    }

    fn current(s: &Shared, direction: ProgressDirection) -> Option<Progress> {
        match direction {
            ProgressDirection::Upload => s.upload_known.then_some(Progress {
                transferred: s.uploaded,
                transferable: s.uploaded + s.pending_bytes,
            }),
            ProgressDirection::Download => s.download_known.then_some(Progress {
                transferred: s.downloaded,
                transferable: s.downloaded + s.downloadable,
            }),
        }
    }

    /// Calls the progress callbacks whose figures changed (on the callback thread).
    pub(crate) fn report_progress(self: &Arc<Self>, s: &mut Shared) {
        let up = Self::current(s, ProgressDirection::Upload);
        let down = Self::current(s, ProgressDirection::Download);
        let client = &self.client;
        s.listeners.retain_mut(|l| {
            let now = match l.direction {
                ProgressDirection::Upload => up,
                ProgressDirection::Download => down,
            };
            let Some(now) = now else { return true };
            let report = match l.mode {
                ProgressMode::Indefinitely => now,
                ProgressMode::CurrentChanges => {
                    let target = *l.target.get_or_insert(now.transferable);
                    Progress {
                        transferred: now.transferred.min(target),
                        transferable: target,
                    }
                }
            };
            if l.last != Some(report) {
                l.last = Some(report);
                let cb = l.callback.clone();
                client.callback(Box::new(move || cb(report)));
            }
            !(l.mode == ProgressMode::CurrentChanges && report.is_complete())
        });
    }
}

impl Session {
    /// The session's state.
    pub fn state(&self) -> SessionState {
        self.inner.shared.lock().state
    }

    /// The state of the connection the session uses.
    pub fn connection_state(&self) -> ConnectionState {
        self.inner.shared.lock().connection
    }

    /// The sync configuration (user, URL, options) of the open that last started the
    /// session (a copy).
    pub fn config(&self) -> SyncConfig {
        self.inner.conf().sync.clone()
    }

    /// The resolved server URL.
    pub fn server_url(&self) -> &str {
        &self.inner.url.resolved
    }

    /// The local realm file.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The fatal error that stopped the session, if one did.
    pub fn error(&self) -> Option<SyncError> {
        self.inner.shared.lock().fatal.clone()
    }

    /// Calls `callback(old, new)` on every state change, on the sync callback thread, until
    /// the token is dropped.
    pub fn add_state_callback(
        &self,
        callback: impl Fn(SessionState, SessionState) + Send + Sync + 'static,
    ) -> SyncCallbackToken {
        let mut s = self.inner.shared.lock();
        let id = s.next_id;
        s.next_id += 1;
        s.state_listeners.push((id, Arc::new(callback)));
        self.token(id)
    }

    /// Calls `callback(old, new)` on every connection state change, on the sync callback
    /// thread, until the token is dropped.
    pub fn add_connection_callback(
        &self,
        callback: impl Fn(ConnectionState, ConnectionState) + Send + Sync + 'static,
    ) -> SyncCallbackToken {
        let mut s = self.inner.shared.lock();
        let id = s.next_id;
        s.next_id += 1;
        s.connection_listeners.push((id, Arc::new(callback)));
        self.token(id)
    }

    fn token(&self, id: u64) -> SyncCallbackToken {
        SyncCallbackToken {
            session: Arc::downgrade(&self.inner),
            id,
        }
    }

    /// Reports transfer progress to `callback` on the sync callback thread: once right away
    /// (for downloads: as soon as the server has sent its first progress figures), then
    /// whenever the figures change (repeats are left out). See [`ProgressMode`]. A callback
    /// may register others, write to the realm, or drop its own token.
    ///
    /// # Errors
    /// File errors if the realm's history cannot be read for the upload figures.
    pub fn add_progress_callback(
        &self,
        direction: ProgressDirection,
        mode: ProgressMode,
        callback: impl Fn(Progress) + Send + Sync + 'static,
    ) -> Result<SyncCallbackToken> {
        if direction == ProgressDirection::Upload {
            self.inner.scan()?;
        }
        let mut s = self.inner.shared.lock();
        let id = s.next_id;
        s.next_id += 1;
        let callback: ProgressFn = Arc::new(callback);
        let target = match (mode, SessionInner::current(&s, direction)) {
            (ProgressMode::CurrentChanges, Some(now)) => Some(now.transferable),
            _ => None,
        };
        s.listeners.push(Listener {
            id,
            direction,
            mode,
            callback,
            target,
            last: None,
        });
        self.inner.report_progress(&mut s);
        Ok(self.token(id))
    }

    /// Blocks until every local change committed before the call has been acknowledged by the
    /// server (durable there), or `timeout` passes.
    ///
    /// # Errors
    /// `Timeout`; the session's fatal error (`Sync` with its code) if it stops for good.
    pub fn wait_for_upload(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        self.inner.scan()?;
        let mut s = self.inner.shared.lock();
        let target = s.pending.back().map_or(0, |(v, _)| *v);
        self.inner.wake.notify_one();
        loop {
            if s.acked >= target {
                return Ok(());
            }
            if let Some(e) = &s.fatal {
                return Err(e.to_error());
            }
            if self.inner.changed.wait_until(&mut s, deadline).timed_out() {
                return Err(Error::new(
                    ErrorCode::Timeout,
                    format!(
                        "local changes up to version {target} were not uploaded within {timeout:?}"
                    ),
                ));
            }
        }
    }

    /// Blocks until every change the server had when the call was made has been downloaded
    /// and integrated, or `timeout` passes (the session asks the server with a MARK).
    ///
    /// # Errors
    /// `Timeout`; the session's fatal error if it stops for good.
    pub fn wait_for_download(&self, timeout: Duration) -> Result<()> {
        self.wait_for_download_or_cancel(timeout, &Cancellation::never())
    }

    /// [`wait_for_download`](Self::wait_for_download) that also returns (with
    /// [`Cancellation::error`]) as soon as `cancel` is cancelled.
    pub(crate) fn wait_for_download_or_cancel(
        &self,
        timeout: Duration,
        cancel: &Cancellation,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let inner = Arc::downgrade(&self.inner);
        let _wake_on_cancel = cancel.on_cancel(move || {
            if let Some(inner) = inner.upgrade() {
                // The waiter checks the flag under this lock: taking it first loses no wake-up.
                drop(inner.shared.lock());
                inner.changed.notify_all();
            }
        });
        let mut s = self.inner.shared.lock();
        s.mark_requested += 1;
        let request = s.mark_requested;
        self.inner.wake.notify_one();
        loop {
            if s.mark_done >= request {
                return Ok(());
            }
            if let Some(e) = &s.fatal {
                return Err(e.to_error());
            }
            if cancel.is_cancelled() {
                return Err(Cancellation::error());
            }
            if self.inner.changed.wait_until(&mut s, deadline).timed_out() {
                return Err(Error::new(
                    ErrorCode::Timeout,
                    format!("the server's changes were not downloaded within {timeout:?}"),
                ));
            }
        }
    }

    /// Stops syncing until [`resume`](Self::resume) (state INACTIVE; local writes continue
    /// and upload after resuming).
    pub fn pause(&self) {
        self.inner.shared.lock().paused = true;
        self.inner.wake.notify_one();
    }

    /// Resumes a paused session.
    pub fn resume(&self) {
        self.inner.shared.lock().paused = false;
        self.inner.client.start(&self.inner);
    }

    /// Hands the session an access token asked for by the config's token binder.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty token.
    pub fn bind_token(&self, token: &str) -> Result<()> {
        if token.is_empty() {
            return Err(Error::invalid("the access token must not be empty"));
        }
        self.inner.shared.lock().bound_token = Some(token.to_owned());
        self.inner.wake.notify_one();
        Ok(())
    }
}

//! [`App`]: the per-process entry point for users — logins, the user store, auth callbacks —
//! and the library threads behind it.
//!
//! ```no_run
//! use shoal::{App, Credentials};
//! let app = App::new("/data/myapp", "com.example.myapp")?;
//! let alice = app.login(
//!     &Credentials::password("alice", "s3cret", true)?,
//!     "http://127.0.0.1:9080/auth",
//! )?;
//! assert!(alice.is_valid());
//! assert_eq!(app.current_user()?, Some(alice.clone()));
//! alice.logout(); // at once; the token is revoked in the background
//! assert!(!alice.is_valid());
//! # Ok::<(), shoal::Error>(())
//! ```
//!
//! Threads: an app runs two library threads. `shoal-auth-events` delivers auth callbacks in
//! order (one at a time, no lock held, so callbacks may call back into Shoal);
//! `shoal-auth-revoke` revokes the refresh tokens of logged-out users with retries. Both end
//! once the last handle of the app (an [`App`] or a [`User`](crate::User)) is gone. Asynchronous calls
//! (`*_async`) each run on a thread of their own.

use crate::auth_client::{AuthClient, AuthUrl};
use crate::credentials::Credentials;
use crate::error::{Error, ErrorCode, Result};
use crate::login::{Login, UserState};
use crate::protocol::auth::{decode_token_unverified, AuthRequest};
use crate::user_store::{StoredRevocation, StoredUser, UserStore};
use parking_lot::Mutex;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

/// The directory under `base_dir` for synced realm files and the user store.
pub const SYNC_ROOT_DIR: &str = "shoal-object-server";
/// The directory under the sync root that holds the user store.
pub const METADATA_DIR: &str = "shoal-metadata";
/// The user store's file name inside [`METADATA_DIR`].
pub const USER_STORE_FILE: &str = "users.realm";

/// The first retry delay of a revocation that failed on the network.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest retry delay of a revocation.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Attempts per revocation and process; one still owed then waits for the next [`App::new`].
const MAX_REVOKE_ATTEMPTS: u32 = 40;

/// What happened to a user, as told to auth callbacks.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthEvent {
    /// A login succeeded (including an access-token login). Not sent for
    /// [`App::user_from_json`].
    LoggedIn = 1,
    /// The server confirmed the revocation of a logged-out user's refresh token (sent once
    /// per logout, only after that confirmation; the user may have logged in again by then).
    LoggedOut = 2,
}

/// An auth callback in this layer's terms; `App::add_auth_callback` (in `user.rs`) adapts the
/// application's `Fn(&User, AuthEvent)` to it.
pub(crate) type AuthCallback =
    Arc<dyn Fn(&Arc<AppInner>, &Arc<UserState>, AuthEvent) + Send + Sync>;

/// The app's sync client as the app sees it. The client lives in the sync layer above (it
/// is started by the first synced realm, see `sync/client.rs`); the app only tells it when a
/// user's login changes, so that the user's sessions stop or resume.
pub(crate) trait LoginListener: Any + Send + Sync {
    /// `identity` logged in, logged in again or logged out.
    fn user_changed(&self, identity: &str);

    /// `identity` logged out, and its synced files are to be deleted: stop its sessions and,
    /// once none of them holds a file any more, call `remove` (on any thread). If an
    /// application handle of one of its files is open, drop `remove` instead: the files wait
    /// for the next start (the removal is recorded in the user store).
    fn user_logged_out(&self, identity: &str, remove: Box<dyn FnOnce() + Send>);
}

#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) entries: Vec<(u64, AuthCallback)>,
    pub(crate) next_id: u64,
}

/// Keeps an auth callback registered; dropping it unregisters the callback. The callback
/// itself is dropped after its last run has finished.
#[must_use = "dropping the token unregisters the callback"]
pub struct AuthCallbackToken {
    pub(crate) registry: Weak<Mutex<Registry>>,
    pub(crate) id: u64,
}

impl Drop for AuthCallbackToken {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            // Drop the callback outside the lock: its drop may run user code.
            let removed = {
                let mut r = registry.lock();
                let pos = r.entries.iter().position(|(id, _)| *id == self.id);
                pos.map(|p| r.entries.remove(p))
            };
            drop(removed);
        }
    }
}

impl fmt::Debug for AuthCallbackToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCallbackToken")
            .field("id", &self.id)
            .finish()
    }
}

/// An event for the delivery thread.
struct Event {
    identity: String,
    event: AuthEvent,
}

/// A revocation for the revocation worker.
struct Job {
    token: String,
    identity: String,
    url: AuthUrl,
    attempts: u32,
    due: Instant,
}

/// The app of a process: its users (persisted in the user store under `base_dir`), logins
/// and auth callbacks. Cheap to clone (clones share the app); usable from any thread.
///
/// Create one per `base_dir` and process. [`App::new`] for a `base_dir` whose app is still
/// alive in this process returns that app (sharing its users and handles); another process
/// cannot use the same `base_dir` at the same time (`FileInUse`).
#[derive(Clone)]
pub struct App {
    pub(crate) inner: Arc<AppInner>,
}

pub(crate) struct AppInner {
    base_dir: PathBuf,
    sync_root: PathBuf,
    app_id: String,
    pub(crate) client: AuthClient,
    pub(crate) store: Arc<UserStore>,
    pub(crate) users: Mutex<HashMap<String, Arc<UserState>>>,
    /// Serialises login-state changes (memory and store) so both see them in one order.
    state_lock: Mutex<()>,
    pub(crate) callbacks: Arc<Mutex<Registry>>,
    events: mpsc::Sender<Event>,
    revocations: mpsc::Sender<Job>,
    closed: Arc<Closed>,
    /// The sync client, started by the first synced realm (see [`LoginListener`]).
    pub(crate) sync: std::sync::OnceLock<Arc<dyn LoginListener>>,
    /// The roots trusted instead of the public ones ([`App::with_trusted_ca`]).
    pub(crate) trusted: Option<crate::tls::TrustedRoots>,
    /// Synced realm files recorded in the store by this process (saves a store read per open).
    recorded: Mutex<std::collections::HashSet<String>>,
}

/// Set once an app has closed its user store, so that the next [`App::new`] of its base
/// directory can wait for that (the last handle may be dropped on a library thread).
#[derive(Default)]
struct Closed {
    done: Mutex<bool>,
    signal: parking_lot::Condvar,
}

impl Closed {
    /// Waits (at most `timeout`) until the app has closed its store.
    fn wait(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut done = self.done.lock();
        while !*done {
            if self.signal.wait_until(&mut done, deadline).timed_out() {
                tracing::warn!("an earlier app of this base directory is slow to close");
                return;
            }
        }
    }
}

impl Drop for AppInner {
    fn drop(&mut self) {
        // Close the store here, on whichever thread drops the last handle, rather than when
        // the revocation worker lets go of it: a new app of the same directory must find the
        // file closed.
        self.store.close();
        *self.closed.done.lock() = true;
        self.closed.signal.notify_all();
        tracing::debug!(base_dir = %self.base_dir.display(), "app closed");
    }
}

/// The apps of this process by canonical base directory, with their close signals.
type AppRegistry = HashMap<PathBuf, (Weak<AppInner>, Arc<Closed>)>;
static APPS: LazyLock<Mutex<AppRegistry>> = LazyLock::new(Default::default);

impl App {
    /// Opens the app of `base_dir` (created if missing): the user store at
    /// `base_dir/shoal-object-server/shoal-metadata/users.realm` and
    /// `base_dir/shoal-object-server/`, the default root for synced realm files. Users
    /// logged in when the process last ran are logged in again; revocations still owed are
    /// resumed in the background. `app_id` is sent with every login and copied into tokens.
    ///
    /// If an app of `base_dir` is alive in this process, this returns it (its handles are
    /// shared). If the last handle of one was just dropped, this waits until it has closed
    /// its user store.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty `app_id` or `base_dir`, or when an app of the same
    /// `base_dir` is alive in this process with another `app_id`; file errors (`Io`,
    /// `FilePermissionDenied`, ...) if the directories cannot be created; `FileInUse` if
    /// another process has the user store open; `SchemaVersionLower` for a store written by a
    /// newer Shoal.
    pub fn new(base_dir: impl AsRef<Path>, app_id: &str) -> Result<App> {
        App::open(base_dir.as_ref(), app_id, None)
    }

    /// As [`App::new`], for servers whose TLS certificate is signed by a CA of your own (a
    /// self-hosted `shoal-server` started with `--tls-cert`, a test CA): `https://` logins and
    /// `realms://` sync of this app trust the certificates in `ca_pem` (one or more PEM
    /// `CERTIFICATE` blocks) **instead of** the public roots, as `curl --cacert` does. To
    /// trust the public roots too, include them in the PEM. A server whose chain does not end
    /// at one of them is refused (`Io`, "invalid peer certificate").
    ///
    /// # Errors
    /// As [`App::new`]; `InvalidArgument` also when `ca_pem` holds no usable certificate, or
    /// an app of `base_dir` is alive in this process with other trusted roots (or none).
    pub fn with_trusted_ca(base_dir: impl AsRef<Path>, app_id: &str, ca_pem: &[u8]) -> Result<App> {
        let trusted = crate::tls::TrustedRoots::from_pem(ca_pem)?;
        App::open(base_dir.as_ref(), app_id, Some(trusted))
    }

    fn open(
        base_dir: &Path,
        app_id: &str,
        trusted: Option<crate::tls::TrustedRoots>,
    ) -> Result<App> {
        if app_id.is_empty() {
            return Err(Error::invalid("the app id must not be empty"));
        }
        if base_dir.as_os_str().is_empty() {
            return Err(Error::invalid("the base directory must not be empty"));
        }
        let metadata = base_dir.join(SYNC_ROOT_DIR).join(METADATA_DIR);
        let path_error = |e: std::io::Error| Error::from(e).with_path(metadata.to_string_lossy());
        std::fs::create_dir_all(&metadata).map_err(path_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let private = std::fs::Permissions::from_mode(0o700);
            std::fs::set_permissions(&metadata, private).map_err(path_error)?;
        }
        let base_dir = std::fs::canonicalize(base_dir).map_err(path_error)?;
        let mut apps = APPS.lock();
        if let Some((app, closed)) = apps.get(&base_dir) {
            if let Some(app) = app.upgrade() {
                if app.app_id != app_id {
                    return Err(Error::invalid(format!(
                        "an app with the id '{}' is open on {} in this process",
                        app.app_id,
                        base_dir.display()
                    )));
                }
                let same_roots = match (&app.trusted, &trusted) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.same_as(b),
                    _ => false,
                };
                if !same_roots {
                    return Err(Error::invalid(format!(
                        "an app with other trusted TLS roots is open on {} in this process",
                        base_dir.display()
                    )));
                }
                return Ok(App { inner: app });
            }
            // The previous app of this directory is gone or going: wait until its store is
            // closed (closing takes no registry lock).
            closed.wait(Duration::from_secs(30));
        }
        apps.retain(|_, (app, _)| app.strong_count() > 0);
        let sync_root = base_dir.join(SYNC_ROOT_DIR);
        let store_path = sync_root.join(METADATA_DIR).join(USER_STORE_FILE);
        let store = Arc::new(UserStore::open(&store_path)?);
        // Users logged out with files still open when their app last ran: their files and
        // metadata go now, before anything can open them.
        for identity in store.removals()? {
            remove_user_files(&store, &sync_root, &identity);
        }
        let mut users = HashMap::new();
        for stored in store.users()? {
            let auth_url = match AuthUrl::parse(&stored.auth_url) {
                Ok(url) => url,
                Err(e) => {
                    tracing::warn!(identity = %stored.identity, error = %e, "skipping a stored user");
                    continue;
                }
            };
            let login = Login {
                auth_url,
                refresh_token: stored.refresh_token,
                expires: stored.token_expires,
                is_admin: stored.is_admin,
            };
            let state = Arc::new(UserState::new(stored.identity.clone(), login));
            users.insert(stored.identity, state);
        }
        let pending = store.revocations()?;
        // A removed user whose revocation is still owed stays known (logged out) until it is
        // done, so that the `LoggedOut` callbacks can name it.
        for row in &pending {
            if users.contains_key(&row.identity) {
                continue;
            }
            if let Ok(auth_url) = AuthUrl::parse(&row.auth_url) {
                let login = Login {
                    auth_url,
                    refresh_token: None,
                    expires: None,
                    is_admin: false,
                };
                let state = Arc::new(UserState::new(row.identity.clone(), login));
                users.insert(row.identity.clone(), state);
            }
        }
        let client = AuthClient::new(trusted.as_ref());
        let (events, events_rx) = mpsc::channel();
        let (revocations, revocations_rx) = mpsc::channel();
        let inner = Arc::new(AppInner {
            base_dir: base_dir.clone(),
            sync_root,
            app_id: app_id.to_owned(),
            client: client.clone(),
            store: store.clone(),
            users: Mutex::new(users),
            state_lock: Mutex::new(()),
            callbacks: Arc::default(),
            events: events.clone(),
            revocations,
            closed: Arc::default(),
            sync: std::sync::OnceLock::new(),
            trusted,
            recorded: Mutex::default(),
        });
        let weak = Arc::downgrade(&inner);
        let spawn_error = |e: std::io::Error| {
            Error::new(ErrorCode::Io, format!("cannot start a library thread: {e}"))
        };
        std::thread::Builder::new()
            .name("shoal-auth-events".into())
            .spawn(move || deliver_events(&weak, &events_rx))
            .map_err(spawn_error)?;
        let worker = RevocationWorker {
            client,
            store,
            events,
            jobs: Vec::new(),
        };
        std::thread::Builder::new()
            .name("shoal-auth-revoke".into())
            .spawn(move || worker.run(&revocations_rx))
            .map_err(spawn_error)?;
        for row in pending {
            match AuthUrl::parse(&row.auth_url) {
                Ok(url) => inner.queue_revocation(row.token, row.identity, url),
                Err(e) => tracing::warn!(error = %e, "dropping a revocation with a bad URL"),
            }
        }
        apps.insert(base_dir, (Arc::downgrade(&inner), inner.closed.clone()));
        tracing::debug!(base_dir = %inner.base_dir.display(), app_id, "app opened");
        Ok(App { inner })
    }

    /// The number of logouts whose token revocation the server has not yet confirmed (or
    /// finally refused), from the store: includes those this process gave up retrying.
    ///
    /// # Errors
    /// Errors of reading the user store.
    pub fn pending_revocations(&self) -> Result<usize> {
        Ok(self.inner.store.revocations()?.len())
    }

    /// `base_dir/shoal-object-server`: the default root for synced realm files.
    pub fn sync_root(&self) -> PathBuf {
        self.inner.sync_root.clone()
    }

    /// The base directory, canonical and absolute.
    pub fn base_dir(&self) -> &Path {
        &self.inner.base_dir
    }

    /// The application id given to [`App::new`].
    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }
}

impl PartialEq for App {
    /// Whether both handles are of the same app.
    fn eq(&self, other: &App) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for App {}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("base_dir", &self.inner.base_dir)
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

impl AppInner {
    pub(crate) fn app_id(&self) -> &str {
        &self.app_id
    }

    /// `base_dir/shoal-object-server`: the default root for synced realm files.
    pub(crate) fn sync_root(&self) -> &Path {
        &self.sync_root
    }

    pub(crate) fn login(
        &self,
        credentials: &Credentials,
        auth_url: &str,
    ) -> Result<Arc<UserState>> {
        let url = AuthUrl::parse(auth_url)?;
        let (identity, login) = match credentials {
            Credentials::AccessToken { token, identity } => {
                if token.is_empty() {
                    return Err(Error::invalid("the access token must not be empty"));
                }
                if identity.is_empty() {
                    return Err(Error::invalid("the identity must not be empty"));
                }
                let data = decode_token_unverified(token).ok();
                let login = Login {
                    auth_url: url,
                    refresh_token: Some(token.clone()),
                    expires: data.as_ref().map(|d| d.expires),
                    is_admin: data.is_some_and(|d| d.is_admin),
                };
                (identity.clone(), login)
            }
            other => {
                let request = self.request(other);
                tracing::debug!(provider = %request.provider, url = %url.login(), "logging in");
                let answer = self.client.authenticate(&url, &request)?;
                let token = answer.refresh_token.ok_or_else(|| {
                    Error::new(
                        ErrorCode::Json,
                        "the auth server's answer has no refresh_token",
                    )
                })?;
                if token.token_data.identity.is_empty() {
                    return Err(Error::new(
                        ErrorCode::Json,
                        "the auth server's refresh token has no identity",
                    ));
                }
                let login = Login {
                    auth_url: url,
                    expires: Some(token.token_data.expires),
                    is_admin: token.token_data.is_admin,
                    refresh_token: Some(token.token),
                };
                (token.token_data.identity, login)
            }
        };
        let state = self.log_in(identity, login)?;
        tracing::info!(identity = %state.identity(), provider = credentials.provider(), "logged in");
        self.send_event(state.identity(), AuthEvent::LoggedIn);
        Ok(state)
    }

    fn request(&self, credentials: &Credentials) -> AuthRequest {
        match credentials {
            Credentials::Password {
                username,
                password,
                register,
            } => AuthRequest::password(username, password, *register, &self.app_id),
            Credentials::Debug { identity } => AuthRequest::debug(identity, &self.app_id),
            Credentials::Custom {
                token,
                provider,
                user_info,
            } => AuthRequest {
                provider: provider.clone(),
                data: token.clone(),
                app_id: self.app_id.clone(),
                user_info: serde_json::Value::Object(user_info.clone().unwrap_or_default()),
                path: None,
            },
            Credentials::AccessToken { .. } => unreachable!("access-token logins are local"),
        }
    }

    /// Records a login in the store and in the shared user state.
    pub(crate) fn log_in(&self, identity: String, login: Login) -> Result<Arc<UserState>> {
        let _order = self.state_lock.lock();
        self.store.put_user(&StoredUser {
            identity: identity.clone(),
            auth_url: login.auth_url.as_str().to_owned(),
            refresh_token: login.refresh_token.clone(),
            token_expires: login.expires,
            is_admin: login.is_admin,
        })?;
        let existing = self.users.lock().get(&identity).cloned();
        let state = match existing {
            Some(state) => {
                state.set(login);
                state
            }
            None => {
                let state = Arc::new(UserState::new(identity.clone(), login));
                self.users.lock().insert(identity, state.clone());
                state
            }
        };
        if let Some(sync) = self.sync.get() {
            sync.user_changed(state.identity());
        }
        Ok(state)
    }

    /// [`User::logout`](crate::User::logout): local at once, revocation in the background.
    pub(crate) fn logout(self: &Arc<Self>, state: &UserState) {
        let _order = self.state_lock.lock();
        let Some((token, url)) = state.take_refresh_token() else {
            return;
        };
        let revocation = StoredRevocation {
            token: token.clone(),
            identity: state.identity().to_owned(),
            auth_url: url.as_str().to_owned(),
        };
        if let Err(e) = self.store.logout(state.identity(), &revocation) {
            tracing::error!(identity = %state.identity(), error = %e,
                "cannot record the logout in the user store; the revocation is not persisted");
        }
        tracing::info!(identity = %state.identity(), "logged out; revoking the refresh token");
        self.queue_revocation(token, state.identity().to_owned(), url);
        drop(_order);
        let identity = state.identity().to_owned();
        match self.sync.get() {
            Some(sync) => {
                sync.user_changed(&identity);
                let app = Arc::downgrade(self);
                let id = identity.clone();
                sync.user_logged_out(
                    &identity,
                    Box::new(move || {
                        if let Some(app) = app.upgrade() {
                            app.remove_logged_out_user(&id);
                        }
                    }),
                );
            }
            None => self.remove_logged_out_user(&identity),
        }
    }

    /// Deletes the synced files and the metadata of a logged-out user now, if it is still
    /// logged out and marked for removal; a file still open keeps everything for the next
    /// start. Never fails (problems are logged).
    pub(crate) fn remove_logged_out_user(&self, identity: &str) {
        let _order = self.state_lock.lock();
        if self
            .users
            .lock()
            .get(identity)
            .is_some_and(|u| u.is_valid())
        {
            return; // logged in again meanwhile: its files stay
        }
        match self.store.is_marked_for_removal(identity) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(identity, error = %e, "cannot read the user store; the files wait for the next start");
                return;
            }
        }
        if remove_user_files(&self.store, &self.sync_root, identity) {
            let prefix = format!("{identity}\0");
            self.recorded.lock().retain(|k| !k.starts_with(&prefix));
        }
    }

    /// Records `path` (absolute), placed under `root`, as a synced realm file of `identity`,
    /// before the file is first created, so that a logout can find it after any restart.
    /// Failures are logged: the file is then left out of the user's removal.
    pub(crate) fn record_synced_file(&self, identity: &str, path: &str, root: &Path) {
        let key = format!("{identity}\0{path}");
        if self.recorded.lock().contains(&key) {
            return;
        }
        match self
            .store
            .record_file(identity, path, &root.to_string_lossy())
        {
            Ok(()) => {
                self.recorded.lock().insert(key);
            }
            Err(e) => {
                tracing::warn!(identity, path, error = %e, "cannot record a synced realm file; a logout will not delete it");
            }
        }
    }

    fn queue_revocation(&self, token: String, identity: String, url: AuthUrl) {
        let job = Job {
            token,
            identity,
            url,
            attempts: 0,
            due: Instant::now(),
        };
        if self.revocations.send(job).is_err() {
            tracing::error!("the revocation worker is gone; the revocation waits for a restart");
        }
    }

    fn send_event(&self, identity: &str, event: AuthEvent) {
        let _ = self.events.send(Event {
            identity: identity.to_owned(),
            event,
        });
    }
}

/// Deletes every recorded synced file of `identity` that no handle in this process has open,
/// with the folders left empty below its root (and the empty folders of
/// `<sync_root>/<identity>`, which sync configurations create before any file); if none is
/// left, deletes the user's metadata (its `User` and `UserFile` rows and its removal mark).
/// Returns whether it did. Never fails (problems are logged and leave the rest for the next
/// start).
fn remove_user_files(store: &UserStore, sync_root: &Path, identity: &str) -> bool {
    let files = match store.files(identity) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(identity, error = %e, "cannot read the user's files; they wait for the next start");
            return false;
        }
    };
    let mut kept = 0;
    for file in &files {
        // No folder, no file (nor companions): deleted before a crash, or never created.
        if !Path::new(&file.path).parent().is_some_and(Path::exists) {
            continue;
        }
        match crate::delete_realm_files(&crate::Config::new(file.path.clone())) {
            Ok(()) => remove_empty_folders(Path::new(&file.path), Path::new(&file.root)),
            Err(e) if e.code() == ErrorCode::RealmInUse => kept += 1,
            Err(e) => {
                tracing::warn!(identity, path = %file.path, error = %e, "cannot delete a synced realm file of a logged-out user");
                kept += 1;
            }
        }
    }
    if kept > 0 {
        tracing::info!(
            identity,
            kept,
            "a logged-out user's realm files are open; they are deleted at the next start"
        );
        return false;
    }
    // Only a plain identity names a folder of its own (never the root, never a folder above).
    if !identity.is_empty()
        && identity != "."
        && identity != ".."
        && !identity.contains(['/', '\\'])
    {
        remove_empty_tree(&sync_root.join(identity));
    }
    match store.remove_user(identity) {
        Ok(()) => {
            tracing::info!(
                identity,
                files = files.len(),
                "deleted a logged-out user's realm files and metadata"
            );
            true
        }
        Err(e) => {
            tracing::warn!(identity, error = %e, "cannot delete a logged-out user's metadata; retried at the next start");
            false
        }
    }
}

/// Removes `dir` and the folders below it if they hold no files (bottom up; a folder with a
/// file stays, with the folders above it). Never follows symbolic links.
fn remove_empty_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_tree(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes the folders of `file` that are empty, from its own up to (not including) `root`.
fn remove_empty_folders(file: &Path, root: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

/// The event thread: delivers each event to every callback registered at delivery time.
fn deliver_events(app: &Weak<AppInner>, events: &mpsc::Receiver<Event>) {
    while let Ok(Event { identity, event }) = events.recv() {
        let Some(app) = app.upgrade() else {
            return;
        };
        let state = app.users.lock().get(&identity).cloned();
        let callbacks: Vec<AuthCallback> = app
            .callbacks
            .lock()
            .entries
            .iter()
            .map(|(_, cb)| cb.clone())
            .collect();
        if let Some(state) = state {
            for callback in callbacks {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    callback(&app, &state, event);
                }));
                if outcome.is_err() {
                    tracing::error!(?event, "an auth callback panicked; ignored");
                }
            }
        }
    }
}

/// The revocation worker's state: its queue of jobs, each with the time of its next attempt.
struct RevocationWorker {
    client: AuthClient,
    store: Arc<UserStore>,
    events: mpsc::Sender<Event>,
    jobs: Vec<Job>,
}

/// The delay before attempt `failed + 1`: 100 ms doubling per failure up to 30 s, then
/// scaled by a random factor in [0.75, 1.25) so that many clients do not retry in step.
fn backoff(failed: u32) -> Duration {
    let doubling = BACKOFF_FIRST.saturating_mul(1u32 << failed.saturating_sub(1).min(20));
    let delay = doubling.min(BACKOFF_MAX);
    let jitter = getrandom::u32().unwrap_or(0) % 500;
    delay.mul_f64(0.75 + f64::from(jitter) / 1000.0)
}

impl RevocationWorker {
    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        loop {
            let next_due = self.jobs.iter().map(|j| j.due).min();
            let received = match next_due {
                None => jobs.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(due) => jobs.recv_timeout(due.saturating_duration_since(Instant::now())),
            };
            match received {
                Ok(job) => self.add(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(job) = jobs.try_recv() {
                self.add(job);
            }
            let now = Instant::now();
            let (due, waiting): (Vec<Job>, Vec<Job>) =
                self.jobs.drain(..).partition(|j| j.due <= now);
            self.jobs = waiting;
            for job in due {
                self.attempt(job);
            }
        }
    }

    fn add(&mut self, job: Job) {
        if !self.jobs.iter().any(|j| j.token == job.token) {
            self.jobs.push(job);
        }
    }

    fn attempt(&mut self, mut job: Job) {
        let result = self.client.revoke(&job.url, &job.token);
        let retry = match &result {
            Ok(()) => false,
            Err(e) if e.code() == ErrorCode::ExpiredRefreshToken => false,
            Err(e) => e.code() == ErrorCode::Io || e.http_status().is_some_and(|s| s >= 500),
        };
        if retry {
            job.attempts += 1;
            if job.attempts >= MAX_REVOKE_ATTEMPTS {
                tracing::warn!(identity = %job.identity, attempts = job.attempts,
                    "giving up revoking a refresh token until the next start");
                return;
            }
            let delay = backoff(job.attempts);
            if let Err(e) = &result {
                tracing::warn!(identity = %job.identity, error = %e, retry_in = ?delay,
                    "revoking a refresh token failed; retrying");
            }
            job.due = Instant::now() + delay;
            self.jobs.push(job);
            return;
        }
        match self.store.remove_revocation(&job.token) {
            Ok(()) => {}
            // The app is gone: the next one sends the revocation again and gets 615.
            Err(e) if e.code() == ErrorCode::RealmClosed => {}
            Err(e) => tracing::error!(error = %e, "cannot remove a finished revocation"),
        }
        match result {
            Err(e) if e.code() != ErrorCode::ExpiredRefreshToken => {
                tracing::error!(identity = %job.identity, error = %e,
                    "the server refused to revoke a refresh token; the logout stays local");
            }
            _ => {
                tracing::info!(identity = %job.identity, "the server confirmed the logout");
                let _ = self.events.send(Event {
                    identity: job.identity,
                    event: AuthEvent::LoggedOut,
                });
            }
        }
    }
}

/// Reads [`User::to_json`](crate::User::to_json) and ROS-era user JSON (see
/// [`App::user_from_json`]).
pub(crate) fn parse_user_json(json: &str) -> Result<(String, Login)> {
    use serde_json::Value;
    let bad = |why: &str| Error::new(ErrorCode::Json, format!("Could not parse user JSON: {why}"));
    let root: Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let root = root.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let auth_url = root
        .get("authUrl")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no 'authUrl' string"))?;
    let auth_url = AuthUrl::parse(auth_url)
        .map_err(|e| Error::invalid(format!("URL in JSON not valid: {}", e.message())))?;
    let user_token = root
        .get("userToken")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no 'userToken' object (a logged-out user cannot be loaded)"))?;
    let token = ["token", "value"]
        .iter()
        .find_map(|k| user_token.get(*k).and_then(Value::as_str))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no token string in 'userToken'"))?;
    let token_data = user_token.get("token_data").and_then(Value::as_object);
    let decoded = decode_token_unverified(token).ok();
    let from_data = |key: &str| token_data.and_then(|d| d.get(key));
    let identity = root
        .get("identity")
        .or_else(|| from_data("identity"))
        .or_else(|| user_token.get("identity"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| decoded.as_ref().map(|d| d.identity.clone()))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no identity"))?;
    let is_admin = [
        root.get("isAdmin"),
        from_data("is_admin"),
        user_token.get("isAdmin"),
        user_token.get("is_admin"),
    ]
    .into_iter()
    .flatten()
    .find_map(Value::as_bool)
    .or_else(|| decoded.as_ref().map(|d| d.is_admin))
    .unwrap_or(false);
    let expires = decoded
        .as_ref()
        .map(|d| d.expires)
        .or_else(|| {
            [from_data("expires"), user_token.get("expires")]
                .into_iter()
                .flatten()
                .find_map(Value::as_i64)
        })
        .filter(|e| *e != i64::MAX);
    Ok((
        identity,
        Login {
            auth_url,
            refresh_token: Some(token.to_owned()),
            expires,
            is_admin,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_to_30_s_with_jitter() {
        for (failed, nominal) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (9, 25_600),
            (10, 30_000),
            (40, 30_000),
        ] {
            let d = backoff(failed).as_millis();
            assert!(d >= nominal * 3 / 4 && d < nominal * 5 / 4, "{failed}: {d}");
        }
    }

    #[test]
    fn old_ros_json_and_flat_tokens_parse() {
        let old = r#"{"authUrl":"http:\/\/192.168.1.151:9080\/auth","userToken":{"token":"eyJ=:sig==","token_data":{"identity":"689d90c1422a202fd59c4603c4e4f6cc","path":"","expires":1816358184,"access":["unknown"],"is_admin":false}},"realms":[]}"#;
        let (identity, login) = parse_user_json(old).unwrap();
        assert_eq!(identity, "689d90c1422a202fd59c4603c4e4f6cc");
        assert_eq!(login.expires, Some(1_816_358_184));
        assert_eq!(login.auth_url.as_str(), "http://192.168.1.151:9080/auth");
        assert!(!login.is_admin);
        let flat = r#"{"authUrl":"http://h/auth","userToken":{"value":"v","identity":"i","isAdmin":true}}"#;
        let (identity, login) = parse_user_json(flat).unwrap();
        assert_eq!(
            (identity.as_str(), login.is_admin, login.expires),
            ("i", true, None)
        );
        assert_eq!(login.refresh_token.as_deref(), Some("v"));
        for (bad, code) in [
            ("{", ErrorCode::Json),
            ("[]", ErrorCode::Json),
            (
                r#"{"userToken":{"token":"t","identity":"i"}}"#,
                ErrorCode::Json,
            ),
            (
                r#"{"authUrl":"http://h/auth","userToken":null,"identity":"i"}"#,
                ErrorCode::Json,
            ),
            (
                r#"{"authUrl":"http://h/auth","userToken":{"identity":"i"}}"#,
                ErrorCode::Json,
            ),
            (
                r#"{"authUrl":"http://h/auth","userToken":{"token":"t"}}"#,
                ErrorCode::Json,
            ),
            (
                r#"{"authUrl":"nope","userToken":{"token":"t","identity":"i"}}"#,
                ErrorCode::InvalidArgument,
            ),
        ] {
            let err = parse_user_json(bad).err().expect("an error");
            assert_eq!(err.code(), code, "{bad}");
        }
    }
}

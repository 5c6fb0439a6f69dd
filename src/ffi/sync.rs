//! Synced realms: sync configurations, sessions (states, progress, waits, tokens) and client
//! reset.

use super::config::shoal_free_userdata_fn_t;
use super::convert::{bytes_arg, malloc_string, str_arg, UserData};
use super::error::guard;
use super::handle::{self, into_handle, Payload};
use super::{
    shoal_app_t, shoal_config_t, shoal_realm_t, shoal_schema_t, shoal_session_t,
    shoal_sync_config_t, shoal_token_t, shoal_user_t,
};
use crate::error::{Error, ErrorCode};
use crate::{
    Config, ConnectionState, ErrorHandler, ProgressDirection, ProgressMode, Session, SessionState,
    StopPolicy, SyncConfig, SyncError,
};
use parking_lot::Mutex;
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use std::time::Duration;

/// Stop policy: stop syncing as soon as the last realm handle of the file is released;
/// changes not uploaded yet wait for the next open.
pub const SHOAL_STOP_POLICY_IMMEDIATELY: i32 = 0;
/// Stop policy: keep syncing for as long as the process runs.
pub const SHOAL_STOP_POLICY_LIVE_INDEFINITELY: i32 = 1;
/// Stop policy (the default): after the last realm handle is released, upload every local
/// change (session state `SHOAL_SESSION_DYING`), then stop.
pub const SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED: i32 = 2;

/// Session state: the session needs an access token before it can sync.
pub const SHOAL_SESSION_WAITING_FOR_ACCESS_TOKEN: i32 = 0;
/// Session state: syncing (or connecting to do so).
pub const SHOAL_SESSION_ACTIVE: i32 = 1;
/// Session state: every realm handle is released; uploading what is left, then stopping.
pub const SHOAL_SESSION_DYING: i32 = 2;
/// Session state: not syncing (stopped, paused, or the user logged out).
pub const SHOAL_SESSION_INACTIVE: i32 = 3;
/// Session state: stopped for good by a fatal error (see the error handler).
pub const SHOAL_SESSION_ERROR: i32 = 4;

/// Connection state: not connected.
pub const SHOAL_CONNECTION_DISCONNECTED: i32 = 0;
/// Connection state: connecting or binding.
pub const SHOAL_CONNECTION_CONNECTING: i32 = 1;
/// Connection state: bound on a connected WebSocket.
pub const SHOAL_CONNECTION_CONNECTED: i32 = 2;

/// Progress direction: changes from the server.
pub const SHOAL_PROGRESS_DOWNLOAD: i32 = 1;
/// Progress direction: local changes to the server.
pub const SHOAL_PROGRESS_UPLOAD: i32 = 2;
/// Progress mode: fixes the bytes to transfer at registration (for downloads: at the first
/// figures from the server), reports only growing progress, and stops after the first
/// completion.
pub const SHOAL_PROGRESS_CURRENT_CHANGES: i32 = 0;
/// Progress mode: reports for as long as the callback is registered; the bytes to transfer
/// grow with new changes.
pub const SHOAL_PROGRESS_INDEFINITELY: i32 = 1;

/// An error of a sync session, as handed to the error handler. Every pointer is valid only
/// during the call (copy what you keep).
#[repr(C)]
pub struct shoal_sync_error_t {
    /// The code: a protocol code (connection 100–116, `SHOAL_ERR_CONNECTION_CLOSED` ...
    /// `SHOAL_ERR_BAD_CLIENT_VERSION_DOWNLOAD`; session 200–213, `SHOAL_ERR_SESSION_CLOSED` ...
    /// `SHOAL_ERR_DISABLED_SESSION`), `SHOAL_ERR_CLIENT_RESET`, `SHOAL_ERR_IO` (network
    /// failures), an auth code (601–616, e.g. `SHOAL_ERR_ACCESS_DENIED` for a path the user
    /// may not sync) or a database code. `shoal_error_name` names each.
    pub code: i32,
    /// The family of `code`: `SHOAL_ERR_CATEGORY_SYNC` for protocol codes,
    /// `SHOAL_ERR_CATEGORY_AUTH`, `SHOAL_ERR_CATEGORY_CLIENT`, ...
    pub category: i32,
    /// What happened (UTF-8).
    pub message: *const c_char,
    /// Whether the session stopped for good (state `SHOAL_SESSION_ERROR`); otherwise it
    /// retries by itself.
    pub is_fatal: bool,
    /// Whether the realm must be reset: release every handle of it, then call
    /// `shoal_app_execute_client_reset(app, original_path)`; a reset not executed by hand
    /// runs by itself at the next open of the realm once every handle of it is released
    /// (also after the app restarts). Writes made in between are in the backup only.
    pub is_client_reset: bool,
    /// For a client reset: the realm file; NULL otherwise.
    pub original_path: *const c_char,
    /// For a client reset: where the reset moves the file
    /// (`<base_dir>/shoal-object-server/recovered-realms/recovered_realm-YYYYMMDD-HHMMSS-XXXXXXXX`),
    /// chosen and recorded when the error is raised, so the reset moves it exactly there
    /// whoever runs it and whenever; the file exists once the reset has run. NULL otherwise.
    pub backup_path: *const c_char,
    /// For a client reset: a configuration that opens the backup once the reset has run —
    /// read-only, unsynced, with the original configuration's encryption key, schema and schema
    /// version. Valid only during the call, like `session` (`shoal_clone` it to keep it, and
    /// release the clone). NULL otherwise.
    pub backup_config: *mut shoal_config_t,
}

/// Gets every error of a session. `session` is valid only during the call (`shoal_clone` it to
/// keep it); `error` and its strings too. Runs on the library's sync callback thread.
pub type shoal_sync_error_fn_t = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        session: *mut shoal_session_t,
        error: *const shoal_sync_error_t,
    ),
>;

/// Asked for an access token whenever the session needs one (first bind, 10 s before the
/// current one expires, after the server said it expired): answer, now or later and from any
/// thread, with `shoal_session_bind_token`. `session` (clone it to keep it) and `server_path`
/// (e.g. `"/<identity>/tasks"`) are valid only during the call. Runs on the sync callback thread.
pub type shoal_token_binder_fn_t = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        session: *mut shoal_session_t,
        server_path: *const c_char,
    ),
>;

/// Called with the old and the new `SHOAL_SESSION_*` state.
pub type shoal_session_state_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, old_state: i32, new_state: i32)>;

/// Called with the old and the new `SHOAL_CONNECTION_*` state.
pub type shoal_connection_state_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, old_state: i32, new_state: i32)>;

/// Called with the bytes transferred and the bytes transferred plus still to transfer;
/// complete when `transferred >= transferable`.
pub type shoal_progress_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, transferred: u64, transferable: u64)>;

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// A timeout in milliseconds, capped at 100 years so that a deadline never overflows
/// (`UINT64_MAX` means "no practical limit").
fn timeout_arg(ms: u64) -> Duration {
    const MAX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
    Duration::from_millis(ms.min(MAX_MS))
}

/// Runs `f` with a new session handle that is released afterwards.
fn with_session_handle(session: &Session, f: impl FnOnce(*mut shoal_session_t)) {
    let h: *mut shoal_session_t = into_handle(Payload::Session(session.clone()));
    f(h);
    handle::release(h.cast());
}

/// Runs `f` with `e` as a C struct whose strings and handles live during the call.
fn with_sync_error(e: &SyncError, f: impl FnOnce(*const shoal_sync_error_t)) {
    let message = c_string(&e.message);
    let original = e.original_path.as_deref().map(c_string);
    let backup = e.backup_path.as_deref().map(c_string);
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    let backup_config: *mut shoal_config_t =
        e.backup_config.as_ref().map_or(std::ptr::null_mut(), |c| {
            into_handle(Payload::Config(Arc::new(Mutex::new(Config::clone(c)))))
        });
    let c = shoal_sync_error_t {
        code: e.code,
        category: e.category as i32,
        message: message.as_ptr(),
        is_fatal: e.is_fatal,
        is_client_reset: e.is_client_reset,
        original_path: ptr(&original),
        backup_path: ptr(&backup),
        backup_config,
    };
    f(&c);
    if !backup_config.is_null() {
        handle::release(backup_config.cast());
    }
}

/// A session callback registration. Dropping the token unregisters the callback under the
/// session's lock; the userdata is let go after that (fields drop in order), outside the lock,
/// or later on the callback thread if a call is still queued, so that `free_userdata` may call
/// Shoal.
struct Registration {
    _token: crate::SyncCallbackToken,
    _data: Arc<UserData>,
}

fn token(token: crate::SyncCallbackToken, data: Arc<UserData>) -> *mut shoal_token_t {
    into_handle(Payload::Token {
        _registration: Arc::new(Registration {
            _token: token,
            _data: data,
        }),
    })
}

fn with_sync_config(
    sc: *const shoal_sync_config_t,
    f: impl FnOnce(&mut SyncConfig) -> crate::Result<()>,
) -> bool {
    guard(|| {
        let c = handle::sync_config(sc)?;
        f(&mut c.lock())?;
        Ok(true)
    })
}

// ---- sync configurations ------------------------------------------------------------------

/// Creates a sync configuration for `user` and the realm at `url`: `realm://host[:port]/path`
/// or `realms://` (TLS). A path segment that is exactly `~` stands for the user's identity;
/// every other segment matches `[A-Za-z0-9_.-]+` and is not `.` or `..`; the last one must not
/// end in `.realm`, `.realm.lock` or `.realm.management`. The local file is
/// `<base_dir>/shoal-object-server/<identity>/<server path>` (names too long for the file
/// system are hashed), so two users of one URL get two files; its folder is created here.
/// `shoal_sync_config_set_name` and `shoal_sync_config_set_directory` change the file's name
/// and root. Defaults: the error handler of `shoal_set_default_sync_error_handler` (else the
/// built-in one, which logs), stop policy
/// `SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED`, no wait for initial data, tokens refreshed by
/// the library. Use it with `shoal_config_set_sync`. Release with `shoal_release`.
///
/// Returns: a new `shoal_sync_config_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a URL that breaks a rule above, a logged-out or
/// expired user), `SHOAL_ERR_MISUSE` (NULL or released user), file errors.
///
/// Requires:
/// `user` is a user handle; `url` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_new(
    user: *const shoal_user_t,
    url: *const c_char,
) -> *mut shoal_sync_config_t {
    guard(|| {
        let user = handle::user(user)?;
        let sync = SyncConfig::new(&user, str_arg(url, "the sync URL")?)?;
        Ok(into_handle(Payload::SyncConfig(Arc::new(Mutex::new(sync)))))
    })
}

/// Sets the error handler (NULL `callback`: the built-in one, which logs; a new sync
/// configuration starts with `shoal_set_default_sync_error_handler`'s). It gets every error of
/// the session:
/// recoverable ones (`is_fatal` false; the session retries by itself) and fatal ones (the
/// session state becomes `SHOAL_SESSION_ERROR`), including client resets. `free_userdata`
/// (may be NULL) runs once, after the last call: when this sync configuration, every config
/// it was copied into and every session using it are released (before this returns if it
/// fails).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `sc` is a sync config handle; `callback` and `free_userdata` valid functions or NULL;
/// `userdata` usable from any thread.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_set_error_handler(
    sc: *mut shoal_sync_config_t,
    callback: shoal_sync_error_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    with_sync_config(sc, move |c| {
        c.error_handler = callback.map(|cb| c_error_handler(cb, data));
        Ok(())
    })
}

/// An error handler calling the C callback `cb` with `data` (let go when the handler is).
fn c_error_handler(
    cb: unsafe extern "C" fn(*mut c_void, *mut shoal_session_t, *const shoal_sync_error_t),
    data: UserData,
) -> ErrorHandler {
    Arc::new(move |session: &Session, error: &SyncError| {
        let data = &data;
        with_session_handle(session, |h| {
            with_sync_error(error, |e| {
                // Safety: the caller promised a valid callback for its userdata.
                unsafe { cb(data.ptr, h, e) }
            })
        });
    })
}

/// Sets the error handler every sync configuration made from now on starts with (Realm's
/// `SyncManager.setDefaultSessionErrorHandler`); NULL `callback` restores the built-in one,
/// which logs fatal errors at `SHOAL_LOG_LEVEL_ERROR` and recoverable ones at
/// `SHOAL_LOG_LEVEL_INFO` as `Session Error[<url>]: <message>` (category `shoal::sync`; see
/// `shoal_set_log_callback`). Configurations made earlier keep the handler they had, and
/// `shoal_sync_config_set_error_handler` replaces it for one configuration. Process-wide.
/// `free_userdata` (may be NULL) runs once, after the last call: when the handler has been
/// replaced and every sync configuration, config and session that took it is released.
///
/// Returns: true (it cannot fail).
///
/// Errors: none.
///
/// Requires:
/// `callback` and `free_userdata` valid functions or NULL; `userdata` usable from any thread.
#[no_mangle]
pub unsafe extern "C" fn shoal_set_default_sync_error_handler(
    callback: shoal_sync_error_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        crate::set_default_error_handler(callback.map(|cb| c_error_handler(cb, data)));
        Ok(true)
    })
}

/// The sessions of `user` that are not stopped by a fatal error (Realm's
/// `SyncUser.allSessions`: state `SHOAL_SESSION_ERROR` is left out), ordered by local path:
/// writes up to `capacity` new handles to `out` (release each) and returns how many sessions
/// there are (call with `out` NULL and `capacity` 0 to size the array), or -1 on error. A
/// session exists from the first open of its realm (or `shoal_app_get_session`) for as long as
/// a realm handle, a session handle or its sync work keeps it.
///
/// `out` (out, may be NULL when `capacity` is 0): up to `capacity` new `shoal_session_t`
/// handles; release each with `shoal_release`.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle), `SHOAL_ERR_INVALID_ARGUMENT`
/// (`out` NULL with a `capacity`).
///
/// Requires:
/// `user` is a user handle; `out` holds `capacity` writable pointers (or is NULL with 0).
#[no_mangle]
pub unsafe extern "C" fn shoal_user_all_sessions(
    user: *const shoal_user_t,
    out: *mut *mut shoal_session_t,
    capacity: usize,
) -> i64 {
    guard(|| {
        let sessions = handle::user(user)?.all_sessions();
        if capacity > 0 && out.is_null() {
            return Err(Error::invalid("out is NULL but capacity is not 0"));
        }
        for (i, session) in sessions.iter().take(capacity).enumerate() {
            // Safety: `out` holds `capacity` writable slots per the contract.
            unsafe { *out.add(i) = into_handle(Payload::Session(session.clone())) };
        }
        Ok(sessions.len() as i64)
    })
}

/// Sets what the session does when the last realm handle of its file is released: one of
/// `SHOAL_STOP_POLICY_*` (default `SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED`).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` for another number.
///
/// Requires:
/// `sc` is a sync config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_set_stop_policy(
    sc: *mut shoal_sync_config_t,
    policy: i32,
) -> bool {
    with_sync_config(sc, |c| {
        let policy = StopPolicy::from_i32(policy)
            .ok_or_else(|| Error::invalid(format!("unknown stop policy {policy}")))?;
        c.set_stop_policy(policy);
        Ok(())
    })
}

/// Makes the first open of the realm (when its file does not exist yet) wait until everything
/// on the server has been downloaded, for at most `timeout_ms` milliseconds (`UINT64_MAX`: no
/// practical limit); then `shoal_realm_open` fails with `SHOAL_ERR_TIMEOUT` (or the session's
/// fatal error). `wait` false (the default) never waits: opening works offline.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `sc` is a sync config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_set_wait_for_initial_data(
    sc: *mut shoal_sync_config_t,
    wait: bool,
    timeout_ms: u64,
) -> bool {
    with_sync_config(sc, |c| {
        c.set_wait_for_initial_data(wait.then(|| timeout_arg(timeout_ms)));
        Ok(())
    })
}

/// Lets the binding supply access tokens itself (see `shoal_token_binder_fn_t`); NULL `callback`
/// removes the binder, and the library then gets tokens from the auth server on its own,
/// 10 s before they expire. `free_userdata` runs as for `shoal_sync_config_set_error_handler`.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `sc` is a sync config handle; `callback` and `free_userdata` valid functions or NULL;
/// `userdata` usable from any thread.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_set_token_binder(
    sc: *mut shoal_sync_config_t,
    callback: shoal_token_binder_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    with_sync_config(sc, move |c| {
        match callback {
            None => c.token_binder = None,
            Some(cb) => {
                c.set_token_binder(move |session, server_path| {
                    let data = &data;
                    let path = c_string(server_path);
                    with_session_handle(session, |h| {
                        // Safety: the caller promised a valid callback for its userdata.
                        unsafe { cb(data.ptr, h, path.as_ptr()) }
                    });
                });
            }
        }
        Ok(())
    })
}

/// Names the local file `name` instead of the URL's last segment (Realm Java's
/// `SyncConfiguration.Builder.name()`): it stays in the folder the URL's path gives, with the
/// same length rules (a name too long is hashed). The characters `< > : " / \ | ? *` become
/// `_`. The folder is created here; `shoal_sync_config_path` gives the new file.
///
/// Returns: true on success, false on error (the configuration is then unchanged).
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (`name` NULL, empty, `"."` or `".."`, or ending in
/// `.creating`, `.compact` or `.upgrade`: the files Shoal writes beside a realm), file errors
/// if the folder cannot be created, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `sc` is a sync config handle; `name` is NUL-terminated or NULL.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_set_name(
    sc: *mut shoal_sync_config_t,
    name: *const c_char,
) -> bool {
    with_sync_config(sc, |c| {
        c.set_name(str_arg(name, "the realm file name")?)?;
        Ok(())
    })
}

/// Keeps the local file under `directory` instead of `<base_dir>/shoal-object-server` (Realm
/// Java's `SyncConfiguration.Builder.directory()`): the file becomes
/// `<directory>/<identity>/<server path>`. The directory is created if missing and kept as its
/// absolute, canonical path (`shoal_sync_config_directory`).
///
/// Returns: true on success, false on error (the configuration is then unchanged).
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (`directory` NULL or empty, a file rather than a
/// directory, a directory that cannot be created or is not writable — checked by creating a
/// file in it — or a local path too long under it), `SHOAL_ERR_MISUSE` (a NULL or released
/// handle).
///
/// Requires:
/// `sc` is a sync config handle; `directory` is NUL-terminated or NULL.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_set_directory(
    sc: *mut shoal_sync_config_t,
    directory: *const c_char,
) -> bool {
    with_sync_config(sc, |c| {
        c.set_directory(str_arg(directory, "the directory")?)?;
        Ok(())
    })
}

fn sync_config_string(
    sc: *const shoal_sync_config_t,
    f: impl FnOnce(&SyncConfig) -> String,
) -> *mut c_char {
    guard(|| Ok(malloc_string(&f(&handle::sync_config(sc)?.lock()))))
}

/// The local realm file of the configuration. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `sc` is a sync config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_path(sc: *const shoal_sync_config_t) -> *mut c_char {
    sync_config_string(sc, |c| c.local_path().display().to_string())
}

/// The root directory of the local file: `<base_dir>/shoal-object-server`, or the one given to
/// `shoal_sync_config_set_directory`. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `sc` is a sync config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_directory(
    sc: *const shoal_sync_config_t,
) -> *mut c_char {
    sync_config_string(sc, |c| c.directory().display().to_string())
}

/// The resolved server URL (`~` replaced by the user's identity), e.g.
/// `"realm://127.0.0.1:9080/<identity>/tasks"`. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `sc` is a sync config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_server_url(
    sc: *const shoal_sync_config_t,
) -> *mut c_char {
    sync_config_string(sc, |c| c.server_url().to_owned())
}

/// The server path, e.g. `"/<identity>/tasks"`. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `sc` is a sync config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_sync_config_server_path(
    sc: *const shoal_sync_config_t,
) -> *mut c_char {
    sync_config_string(sc, |c| c.server_path().to_owned())
}

/// Makes `config` a synced realm's configuration (the sync configuration is copied; `sc` stays
/// the caller's): its path becomes the sync configuration's local file (see
/// `shoal_config_get_path`). Synced realms are additive-only (a schema with additions needs a
/// higher schema version; nothing is removed; no migration callback runs), cannot be in memory
/// and cannot be compacted.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle; `sc` a sync config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_sync(
    config: *mut shoal_config_t,
    sc: *const shoal_sync_config_t,
) -> bool {
    guard(|| {
        let c = handle::config(config)?;
        let sync = handle::sync_config(sc)?.lock().clone();
        c.lock().set_sync(sync);
        Ok(true)
    })
}

/// A configuration that opens the realm file at `path` read-only and unsynced: a file moved
/// aside by `shoal_app_execute_client_reset` (or any synced file), with its 64-byte encryption
/// key (`key` NULL and `key_len` 0: not encrypted) and `schema` (copied; NULL: the file's own).
/// Release with `shoal_release`.
///
/// Returns: a new `shoal_config_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (NULL or empty path, a key that is not 64 bytes, an
/// invalid schema).
///
/// Requires:
/// `path` is NUL-terminated; `key` NULL or `key_len` readable bytes; `schema` a schema handle
/// or NULL.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_for_recovery(
    path: *const c_char,
    key: *const u8,
    key_len: usize,
    schema: *const shoal_schema_t,
) -> *mut shoal_config_t {
    guard(|| {
        let path = str_arg(path, "the realm path")?;
        let key = if key.is_null() && key_len == 0 {
            None
        } else {
            Some(bytes_arg(key, key_len, "the key")?)
        };
        let schema = if schema.is_null() {
            None
        } else {
            Some(handle::schema(schema)?.lock().clone())
        };
        let config = Config::for_recovery(path, key, schema)?;
        config.check()?;
        Ok(into_handle(Payload::Config(Arc::new(Mutex::new(config)))))
    })
}

// ---- sessions -----------------------------------------------------------------------------

/// The sync session of a synced realm (one per file and process, shared by every handle of the
/// realm). Release with `shoal_release`.
///
/// Returns: a new `shoal_session_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` for a realm that is not synced,
/// `SHOAL_ERR_REALM_CLOSED`.
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_get_session(
    realm: *const shoal_realm_t,
) -> *mut shoal_session_t {
    guard(|| {
        let r = handle::realm(realm)?;
        if r.is_closed() {
            return Err(Error::new(ErrorCode::RealmClosed, "the realm is closed"));
        }
        let session = r
            .session()
            .ok_or_else(|| Error::invalid("the realm is not a synced realm"))?;
        Ok(into_handle(Payload::Session(session)))
    })
}

/// The sync session of the synced realm `config` describes, created (state
/// `SHOAL_SESSION_INACTIVE` until the realm is opened) if there is none. Release with
/// `shoal_release`.
///
/// Returns: a new `shoal_session_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (not a synced configuration, a user of another app, a
/// file already synced with another URL or user).
///
/// Requires:
/// `app` is an app handle; `config` a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_get_session(
    app: *const shoal_app_t,
    config: *const shoal_config_t,
) -> *mut shoal_session_t {
    guard(|| {
        let app = handle::app(app)?;
        let config = handle::config(config)?.lock().clone();
        Ok(into_handle(Payload::Session(app.session(&config)?)))
    })
}

/// A state as an `i32`, -1 (with the error) for a bad handle.
fn session_code(session: *const shoal_session_t, f: impl FnOnce(&Session) -> i32) -> i32 {
    // -1 is the failure value of an i64 entry point; every state fits an i32.
    guard(|| Ok(i64::from(f(&handle::session(session)?)))) as i32
}

/// The session's state: one of `SHOAL_SESSION_*`, or -1 (with the error) for a NULL or
/// released handle.
///
/// Returns: one of `SHOAL_SESSION_*`, or -1 on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `session` is a session handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_state(session: *const shoal_session_t) -> i32 {
    session_code(session, |s| s.state() as i32)
}

/// The state of the session's connection: one of `SHOAL_CONNECTION_*`, or -1 (with the error)
/// for a NULL or released handle.
///
/// Returns: one of `SHOAL_CONNECTION_*`, or -1 on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `session` is a session handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_connection_state(session: *const shoal_session_t) -> i32 {
    session_code(session, |s| s.connection_state() as i32)
}

/// Calls `callback(old, new)` on every state change (`SHOAL_SESSION_*`), on the sync callback
/// thread. Release the token to unregister; `free_userdata` (may be NULL) runs once, after the
/// last call (before this returns if it fails).
///
/// Returns: a new `shoal_token_t` handle (release it with `shoal_release` to unregister), or NULL
/// on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (NULL callback), `SHOAL_ERR_MISUSE` (a NULL or released
/// handle).
///
/// Requires:
/// `session` is a session handle; `callback` a valid function; `userdata` usable from any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_add_state_callback(
    session: *mut shoal_session_t,
    callback: shoal_session_state_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_token_t {
    let data = Arc::new(UserData::new(userdata, free_userdata));
    guard(move || {
        let s = handle::session(session)?;
        let cb = callback.ok_or_else(|| Error::invalid("the callback must not be NULL"))?;
        let held = data.clone();
        let registration = s.add_state_callback(move |old: SessionState, new: SessionState| {
            // Safety: the caller promised a valid callback for its userdata.
            unsafe { cb(held.ptr, old as i32, new as i32) }
        });
        Ok(token(registration, data))
    })
}

/// Calls `callback(old, new)` on every connection state change (`SHOAL_CONNECTION_*`), on the
/// sync callback thread. Release the token to unregister; `free_userdata` (may be NULL) runs
/// once, after the last call (before this returns if it fails).
///
/// Returns: a new `shoal_token_t` handle (release it with `shoal_release` to unregister), or NULL
/// on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (NULL callback), `SHOAL_ERR_MISUSE` (a NULL or released
/// handle).
///
/// Requires:
/// `session` is a session handle; `callback` a valid function; `userdata` usable from any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_add_connection_callback(
    session: *mut shoal_session_t,
    callback: shoal_connection_state_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_token_t {
    let data = Arc::new(UserData::new(userdata, free_userdata));
    guard(move || {
        let s = handle::session(session)?;
        let cb = callback.ok_or_else(|| Error::invalid("the callback must not be NULL"))?;
        let held = data.clone();
        let registration =
            s.add_connection_callback(move |old: ConnectionState, new: ConnectionState| {
                // Safety: the caller promised a valid callback for its userdata.
                unsafe { cb(held.ptr, old as i32, new as i32) }
            });
        Ok(token(registration, data))
    })
}

/// Reports transfer progress in `direction` (`SHOAL_PROGRESS_UPLOAD` or
/// `SHOAL_PROGRESS_DOWNLOAD`) to `callback`, on the sync callback thread: once soon after
/// registration (for downloads: as soon as the server has sent its first figures), then
/// whenever the figures change. `mode` `SHOAL_PROGRESS_CURRENT_CHANGES` follows only what is
/// to transfer at registration and stops after it completes; `SHOAL_PROGRESS_INDEFINITELY`
/// keeps reporting. Release the token to unregister; `free_userdata` (may be NULL) runs once,
/// after the last call (before this returns if it fails).
///
/// Returns: a new `shoal_token_t` handle (release it with `shoal_release` to unregister), or NULL
/// on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (unknown direction or mode, NULL callback), file
/// errors (the realm's history cannot be read).
///
/// Requires:
/// `session` is a session handle; `callback` a valid function; `userdata` usable from any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_add_progress_callback(
    session: *mut shoal_session_t,
    direction: i32,
    mode: i32,
    callback: shoal_progress_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_token_t {
    let data = Arc::new(UserData::new(userdata, free_userdata));
    guard(move || {
        let s = handle::session(session)?;
        let direction = match direction {
            SHOAL_PROGRESS_DOWNLOAD => ProgressDirection::Download,
            SHOAL_PROGRESS_UPLOAD => ProgressDirection::Upload,
            other => {
                return Err(Error::invalid(format!(
                    "unknown progress direction {other}"
                )))
            }
        };
        let mode = match mode {
            SHOAL_PROGRESS_CURRENT_CHANGES => ProgressMode::CurrentChanges,
            SHOAL_PROGRESS_INDEFINITELY => ProgressMode::Indefinitely,
            other => return Err(Error::invalid(format!("unknown progress mode {other}"))),
        };
        let cb = callback.ok_or_else(|| Error::invalid("the callback must not be NULL"))?;
        let held = data.clone();
        let registration = s.add_progress_callback(direction, mode, move |p| {
            // Safety: the caller promised a valid callback for its userdata.
            unsafe { cb(held.ptr, p.transferred, p.transferable) }
        })?;
        Ok(token(registration, data))
    })
}

/// Blocks until every local change committed before the call has been acknowledged by the
/// server, or `timeout_ms` milliseconds pass (`UINT64_MAX`: no practical limit).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_TIMEOUT` (also while paused or offline); the session's fatal error (e.g.
/// `SHOAL_ERR_ACCESS_DENIED`, or a protocol code with category `SHOAL_ERR_CATEGORY_SYNC`).
///
/// Requires:
/// `session` is a session handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_wait_for_upload(
    session: *mut shoal_session_t,
    timeout_ms: u64,
) -> bool {
    guard(|| {
        handle::session(session)?.wait_for_upload(timeout_arg(timeout_ms))?;
        Ok(true)
    })
}

/// Blocks until every change the server had when the call was made has been downloaded and
/// integrated, or `timeout_ms` milliseconds pass (`UINT64_MAX`: no practical limit). Call
/// `shoal_realm_refresh` afterwards to see the changes through a realm handle.
///
/// Returns: true on success, false on error.
///
/// Errors: as `shoal_session_wait_for_upload`.
///
/// Requires:
/// `session` is a session handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_wait_for_download(
    session: *mut shoal_session_t,
    timeout_ms: u64,
) -> bool {
    guard(|| {
        handle::session(session)?.wait_for_download(timeout_arg(timeout_ms))?;
        Ok(true)
    })
}

/// Stops syncing until `shoal_session_resume` (state `SHOAL_SESSION_INACTIVE`); local writes
/// go on and upload after resuming.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `session` is a session handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_pause(session: *mut shoal_session_t) -> bool {
    guard(|| {
        handle::session(session)?.pause();
        Ok(true)
    })
}

/// Resumes a paused session.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `session` is a session handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_resume(session: *mut shoal_session_t) -> bool {
    guard(|| {
        handle::session(session)?.resume();
        Ok(true)
    })
}

/// Hands the session an access token that its token binder was asked for (see
/// `shoal_sync_config_set_token_binder`). May be called from any thread.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` for a NULL or empty token.
///
/// Requires:
/// `session` is a session handle; `token` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_bind_token(
    session: *mut shoal_session_t,
    token: *const c_char,
) -> bool {
    guard(|| {
        let s = handle::session(session)?;
        s.bind_token(str_arg(token, "the access token")?)?;
        Ok(true)
    })
}

/// The session's local realm file. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `session` is a session handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_path(session: *const shoal_session_t) -> *mut c_char {
    guard(|| Ok(malloc_string(handle::session(session)?.path())))
}

/// The session's resolved server URL. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `session` is a session handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_server_url(session: *const shoal_session_t) -> *mut c_char {
    guard(|| Ok(malloc_string(handle::session(session)?.server_url())))
}

/// The user the session syncs as. Release with `shoal_release`.
///
/// Returns: a new `shoal_user_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `session` is a session handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_session_user(session: *const shoal_session_t) -> *mut shoal_user_t {
    guard(|| {
        let s = handle::session(session)?;
        Ok(into_handle(Payload::User(s.config().user().clone())))
    })
}

// ---- client reset -------------------------------------------------------------------------

/// Executes the client reset an error handler announced (`is_client_reset`): moves the realm
/// file at `original_path` to exactly the error's `backup_path` (recorded when the error was
/// raised: the same path whether or not the app still holds the session, and after a
/// restart; without a recorded reset, a new
/// `<base_dir>/shoal-object-server/recovered-realms/recovered_realm-YYYYMMDD-HHMMSS-XXXXXXXX`)
/// and forgets its session, so that the next open downloads the realm afresh. Returns the
/// backup path (free with `shoal_free`); open it with the error's `backup_config` or
/// `shoal_config_for_recovery`. Not executed by hand, the reset runs at the next open of the
/// realm once every handle of it is released.
///
/// Errors: `SHOAL_ERR_REALM_IN_USE` while a handle of the realm is open (release every realm
/// handle first; the session's own handle goes once it has stopped, a moment after the
/// error), `SHOAL_ERR_FILE_NOT_FOUND`, file errors.
///
/// Requires:
/// `app` is an app handle; `original_path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_execute_client_reset(
    app: *mut shoal_app_t,
    original_path: *const c_char,
) -> *mut c_char {
    guard(|| {
        let app = handle::app(app)?;
        let backup = app.execute_client_reset(str_arg(original_path, "the original path")?)?;
        Ok(malloc_string(&backup))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_constants_match_the_rust_enums() {
        for (c, p) in [
            (SHOAL_STOP_POLICY_IMMEDIATELY, StopPolicy::Immediately),
            (
                SHOAL_STOP_POLICY_LIVE_INDEFINITELY,
                StopPolicy::LiveIndefinitely,
            ),
            (
                SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED,
                StopPolicy::AfterChangesUploaded,
            ),
        ] {
            assert_eq!(StopPolicy::from_i32(c), Some(p));
            assert_eq!(c, p as i32);
        }
        assert_eq!(StopPolicy::from_i32(3), None);
        for (c, s) in [
            (
                SHOAL_SESSION_WAITING_FOR_ACCESS_TOKEN,
                SessionState::WaitingForAccessToken,
            ),
            (SHOAL_SESSION_ACTIVE, SessionState::Active),
            (SHOAL_SESSION_DYING, SessionState::Dying),
            (SHOAL_SESSION_INACTIVE, SessionState::Inactive),
            (SHOAL_SESSION_ERROR, SessionState::Error),
        ] {
            assert_eq!(c, s as i32, "{s:?}");
        }
        for (c, s) in [
            (SHOAL_CONNECTION_DISCONNECTED, ConnectionState::Disconnected),
            (SHOAL_CONNECTION_CONNECTING, ConnectionState::Connecting),
            (SHOAL_CONNECTION_CONNECTED, ConnectionState::Connected),
        ] {
            assert_eq!(c, s as i32, "{s:?}");
        }
        assert_eq!(SHOAL_PROGRESS_DOWNLOAD, ProgressDirection::Download as i32);
        assert_eq!(SHOAL_PROGRESS_UPLOAD, ProgressDirection::Upload as i32);
        assert_eq!(
            SHOAL_PROGRESS_CURRENT_CHANGES,
            ProgressMode::CurrentChanges as i32
        );
        assert_eq!(
            SHOAL_PROGRESS_INDEFINITELY,
            ProgressMode::Indefinitely as i32
        );
    }

    #[test]
    fn session_functions_reject_null_and_foreign_handles() {
        // Safety: NULL and a live handle of another kind are what the checks are for.
        unsafe {
            assert_eq!(shoal_session_state(std::ptr::null()), -1);
            assert_eq!(shoal_session_connection_state(std::ptr::null()), -1);
            assert!(!shoal_session_pause(std::ptr::null_mut()));
            assert!(!shoal_session_wait_for_upload(std::ptr::null_mut(), 1));
            assert!(shoal_session_path(std::ptr::null()).is_null());
            let schema = super::super::shoal_schema_new();
            assert_eq!(shoal_session_state(schema.cast()), -1);
            assert!(shoal_sync_config_path(schema.cast()).is_null());
            assert!(super::super::shoal_release(schema.cast()));
        }
    }

    #[test]
    fn recovery_configs_are_read_only_and_check_the_key() {
        let path = c"/tmp/shoal-recovery-test-does-not-exist";
        // Safety: valid C strings and buffers.
        unsafe {
            let c = shoal_config_for_recovery(path.as_ptr(), std::ptr::null(), 0, std::ptr::null());
            assert!(!c.is_null());
            let config = handle::config(c).unwrap();
            assert!(config.lock().read_only);
            assert!(config.lock().sync_config().is_none());
            assert!(super::super::shoal_release(c.cast()));
            let key = [7u8; 10];
            let bad =
                shoal_config_for_recovery(path.as_ptr(), key.as_ptr(), key.len(), std::ptr::null());
            assert!(bad.is_null());
        }
    }

    #[test]
    fn timeouts_are_capped() {
        assert_eq!(timeout_arg(5), Duration::from_millis(5));
        assert!(std::time::Instant::now()
            .checked_add(timeout_arg(u64::MAX))
            .is_some());
    }
}

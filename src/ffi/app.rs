//! The app, credentials and users.

use super::config::shoal_free_userdata_fn_t;
use super::convert::{malloc_string, opt_str_arg, out_arg, str_arg, UserData};
use super::error::{guard, shoal_error_t, with_c_error};
use super::handle::{self, into_handle, Payload};
use super::{
    shoal_app_t, shoal_credentials_t, shoal_realm_t, shoal_scheduler_t, shoal_token_t, shoal_user_t,
};
use crate::error::Error;
use crate::scheduler::{library_thread, Scheduler};
use crate::{App, AuthEvent, Credentials, User};
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

/// Auth event: a login succeeded.
pub const SHOAL_AUTH_LOGGED_IN: i32 = 1;
/// Auth event: the server confirmed a logout.
pub const SHOAL_AUTH_LOGGED_OUT: i32 = 2;

/// Creates the app of this process for `base_dir`: the user store (a metadata realm under
/// `base_dir`) and the default root of synced realm files (`base_dir/shoal-object-server/`).
/// Create one per process; a second call for the same `base_dir` while the first app is alive
/// returns the same app. Release with `shoal_release`.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT`, `SHOAL_ERR_FILE_IN_USE` (another process uses
/// `base_dir`), file errors.
///
/// Requires:
/// Strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_new(
    base_dir: *const c_char,
    app_id: *const c_char,
) -> *mut shoal_app_t {
    guard(|| {
        let app = App::new(
            str_arg(base_dir, "the base directory")?,
            str_arg(app_id, "the app id")?,
        )?;
        Ok(into_handle(Payload::App(app)))
    })
}

/// As `shoal_app_new`, for servers whose TLS certificate is signed by a CA of your own (a
/// self-hosted `shoal-server --tls-cert`, a test CA): `https://` logins and `realms://` sync
/// of this app trust the certificates in `ca_pem` (NUL-terminated PEM text, one or more
/// `CERTIFICATE` blocks) *instead of* the public roots. Release with `shoal_release`.
///
/// Returns: a new `shoal_app_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: as `shoal_app_new`; `SHOAL_ERR_INVALID_ARGUMENT` also when `ca_pem` holds no usable
/// certificate, or an app of `base_dir` is alive in this process with other trusted roots.
///
/// Requires:
/// Strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_new_with_trusted_ca(
    base_dir: *const c_char,
    app_id: *const c_char,
    ca_pem: *const c_char,
) -> *mut shoal_app_t {
    guard(|| {
        let app = App::with_trusted_ca(
            str_arg(base_dir, "the base directory")?,
            str_arg(app_id, "the app id")?,
            str_arg(ca_pem, "the trusted CA")?.as_bytes(),
        )?;
        Ok(into_handle(Payload::App(app)))
    })
}

fn credentials(c: Result<Credentials, Error>) -> crate::Result<*mut shoal_credentials_t> {
    Ok(into_handle(Payload::Credentials(Arc::new(c?))))
}

/// Username/password credentials (`register` creates the account). Release with
/// `shoal_release`.
///
/// Returns: a new `shoal_credentials_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` for an empty or NULL username.
///
/// Requires:
/// Strings are NUL-terminated (`password` may be NULL: no password).
#[no_mangle]
pub unsafe extern "C" fn shoal_credentials_password(
    username: *const c_char,
    password: *const c_char,
    register: bool,
) -> *mut shoal_credentials_t {
    guard(|| {
        let user = str_arg(username, "the username")?;
        let pass = opt_str_arg(password, "the password")?.unwrap_or("");
        credentials(Credentials::password(user, pass, register))
    })
}

/// Credentials of a custom provider: a token the server's `provider` understands, and optional
/// user info as a JSON object (NULL: none). Release with `shoal_release`.
///
/// Returns: a new `shoal_credentials_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (empty token or provider), `SHOAL_ERR_JSON`.
///
/// Requires:
/// Strings are NUL-terminated; `user_info_json` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn shoal_credentials_custom(
    token: *const c_char,
    provider: *const c_char,
    user_info_json: *const c_char,
) -> *mut shoal_credentials_t {
    guard(|| {
        credentials(Credentials::custom(
            str_arg(token, "the token")?,
            str_arg(provider, "the provider")?,
            opt_str_arg(user_info_json, "the user info")?,
        ))
    })
}

/// Credentials of the server's `debug` provider (only when the server enables it): log in as
/// `identity`. Release with `shoal_release`.
///
/// Returns: a new `shoal_credentials_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a NULL or non-UTF-8 identity).
///
/// Requires:
/// `identity` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_credentials_debug(
    identity: *const c_char,
) -> *mut shoal_credentials_t {
    guard(|| credentials(Ok(Credentials::debug(str_arg(identity, "the identity")?))))
}

/// Credentials that log in on the device alone, with no network call: `token` becomes the
/// user's refresh token. Release with `shoal_release`.
///
/// Returns: a new `shoal_credentials_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a NULL or non-UTF-8 string).
///
/// Requires:
/// Strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_credentials_access_token(
    token: *const c_char,
    identity: *const c_char,
) -> *mut shoal_credentials_t {
    guard(|| {
        credentials(Ok(Credentials::access_token(
            str_arg(token, "the token")?,
            str_arg(identity, "the identity")?,
        )))
    })
}

/// Logs in at the auth server `auth_url` (`http://` or `https://`, e.g.
/// `http://127.0.0.1:9080/auth`), blocking. Release the user with `shoal_release`.
///
/// Returns: a new `shoal_user_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_CREDENTIALS` (611), `SHOAL_ERR_EXISTING_ACCOUNT` (613), the other
/// auth codes, `SHOAL_ERR_INVALID_ARGUMENT` (malformed URL, wrong scheme), `SHOAL_ERR_IO` (the
/// server cannot be reached; recoverable).
///
/// Requires:
/// `app` and `creds` are handles; `auth_url` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_login(
    app: *const shoal_app_t,
    creds: *const shoal_credentials_t,
    auth_url: *const c_char,
) -> *mut shoal_user_t {
    guard(|| {
        let app = handle::app(app)?;
        let creds = handle::credentials(creds)?;
        Ok(into_handle(Payload::User(
            app.login(&creds, str_arg(auth_url, "the auth URL")?)?,
        )))
    })
}

/// Called with the logged-in user (a new handle the callback must release) or NULL and the
/// error (valid during the call).
pub type shoal_login_fn_t = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        user: *mut shoal_user_t,
        error: *const shoal_error_t,
    ),
>;

/// Logs in like `shoal_app_login` without blocking: `callback` runs once, on a library thread.
/// `free_userdata` (may be NULL) runs after it. Returns false (and runs `free_userdata`) only
/// for invalid arguments.
///
/// Returns: true when the login started (`callback` will run), false on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (NULL callback, malformed URL), `SHOAL_ERR_MISUSE` (a NULL
/// or released handle); the login's own errors reach `callback`.
///
/// Requires:
/// `app` and `creds` are handles; `auth_url` NUL-terminated; `callback` a valid function.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_login_async(
    app: *const shoal_app_t,
    creds: *const shoal_credentials_t,
    auth_url: *const c_char,
    callback: shoal_login_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let app = handle::app(app)?;
        let creds = handle::credentials(creds)?;
        let url = str_arg(auth_url, "the auth URL")?;
        // A malformed URL is an invalid argument of this call, not a failed login.
        crate::auth_client::AuthUrl::parse(url)?;
        let cb = callback.ok_or_else(|| Error::invalid("the callback must not be NULL"))?;
        app.login_async((*creds).clone(), url, move |result| {
            let data = data;
            match result {
                // Safety: the caller promised a valid callback for its userdata.
                Ok(user) => unsafe {
                    cb(data.ptr, into_handle(Payload::User(user)), std::ptr::null())
                },
                Err(e) => {
                    with_c_error(&e, |err| unsafe { cb(data.ptr, std::ptr::null_mut(), err) })
                }
            }
        });
        Ok(true)
    })
}

/// The only logged-in user, or NULL with no error when nobody is logged in. Release with
/// `shoal_release`.
///
/// Returns: a new `shoal_user_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MULTIPLE_USERS_LOGGED_IN` when more than one user is logged in.
///
/// Requires:
/// `app` is an app handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_current_user(app: *const shoal_app_t) -> *mut shoal_user_t {
    guard(|| {
        Ok(match handle::app(app)?.current_user()? {
            Some(u) => into_handle(Payload::User(u)),
            None => std::ptr::null_mut(),
        })
    })
}

/// The valid (logged-in) users, ordered by identity: writes up to `capacity` new handles to
/// `out` (release each) and returns how many users there are (call with `out` NULL and
/// `capacity` 0 to size the array), or -1 on error.
///
/// `out` (out, may be NULL when `capacity` is 0): up to `capacity` new `shoal_user_t` handles;
/// release each with `shoal_release`.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `app` is an app handle; `out` holds `capacity` writable pointers (or is NULL with 0).
#[no_mangle]
pub unsafe extern "C" fn shoal_app_all_users(
    app: *const shoal_app_t,
    out: *mut *mut shoal_user_t,
    capacity: usize,
) -> i64 {
    guard(|| {
        let users = handle::app(app)?.all_users();
        if capacity > 0 && out.is_null() {
            return Err(Error::invalid("out is NULL but capacity is not 0"));
        }
        for (i, user) in users.values().take(capacity).enumerate() {
            // Safety: `out` holds `capacity` writable slots per the contract.
            unsafe { *out.add(i) = into_handle(Payload::User(user.clone())) };
        }
        Ok(users.len() as i64)
    })
}

/// The known user with this identity (logged in or not), or NULL with no error. Release with
/// `shoal_release`.
///
/// Returns: a new `shoal_user_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `app` is an app handle; `identity` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_get_user(
    app: *const shoal_app_t,
    identity: *const c_char,
) -> *mut shoal_user_t {
    guard(|| {
        Ok(
            match handle::app(app)?.user(str_arg(identity, "the identity")?) {
                Some(u) => into_handle(Payload::User(u)),
                None => std::ptr::null_mut(),
            },
        )
    })
}

/// Restores a user from `shoal_user_to_json` output (older forms load too) and adds it to the
/// user store. Release with `shoal_release`.
///
/// Returns: a new `shoal_user_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_JSON`, `SHOAL_ERR_INVALID_ARGUMENT`.
///
/// Requires:
/// `app` is an app handle; `json` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_user_from_json(
    app: *const shoal_app_t,
    json: *const c_char,
) -> *mut shoal_user_t {
    guard(|| {
        Ok(into_handle(Payload::User(
            handle::app(app)?.user_from_json(str_arg(json, "the JSON")?)?,
        )))
    })
}

fn user_string(user: *const shoal_user_t, f: impl FnOnce(&User) -> Option<String>) -> *mut c_char {
    guard(|| Ok(f(&handle::user(user)?).map_or(std::ptr::null_mut(), |s| malloc_string(&s))))
}

/// The user's identity. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `user` is a user handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_identity(user: *const shoal_user_t) -> *mut c_char {
    user_string(user, |u| Some(u.identity().to_owned()))
}

/// Whether the user is logged in with an unexpired refresh token. False for an invalid handle
/// (with an error).
///
/// Returns: true or false; false also on error (then `shoal_get_last_error` returns true).
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `user` is a user handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_is_valid(user: *const shoal_user_t) -> bool {
    guard(|| Ok(handle::user(user)?.is_valid()))
}

/// Whether the user is an admin of the server.
///
/// Returns: true or false; false also on error (then `shoal_get_last_error` returns true).
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `user` is a user handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_is_admin(user: *const shoal_user_t) -> bool {
    guard(|| Ok(handle::user(user)?.is_admin()))
}

/// The auth URL the user logged in at. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `user` is a user handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_auth_url(user: *const shoal_user_t) -> *mut c_char {
    user_string(user, |u| Some(u.auth_url()))
}

/// The user's refresh token, or NULL with no error after logout. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `user` is a user handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_refresh_token(user: *const shoal_user_t) -> *mut c_char {
    user_string(user, User::refresh_token)
}

/// The user as JSON, for `shoal_app_user_from_json`. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `user` is a user handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_to_json(user: *const shoal_user_t) -> *mut c_char {
    user_string(user, |u| Some(u.to_json()))
}

/// Logs the user out: at once (every handle of the user becomes invalid; never blocks, never
/// fails because realms are open), then revokes the refresh token on the server in the
/// background, retrying network errors with backoff. `SHOAL_AUTH_LOGGED_OUT` callbacks run
/// only after the server confirmed.
///
/// Returns: true on success (also for a user already logged out); false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `user` is a user handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_logout(user: *mut shoal_user_t) -> bool {
    guard(|| {
        handle::user(user)?.logout();
        Ok(true)
    })
}

/// An access token of the user for the realm at `path` (e.g. `"/<identity>/tasks"`), from the
/// auth service (cached until 10 s before it expires): what a token binder hands to
/// `shoal_session_bind_token`. Blocks. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_EXPIRED_REFRESH_TOKEN` (logged out), `SHOAL_ERR_ACCESS_DENIED` (614, a
/// path the user may not access), `SHOAL_ERR_INVALID_PARAMETERS`, `SHOAL_ERR_IO`.
///
/// Requires:
/// `user` is a user handle; `path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_access_token(
    user: *const shoal_user_t,
    path: *const c_char,
) -> *mut c_char {
    guard(|| {
        let u = handle::user(user)?;
        let token = u.access_token(str_arg(path, "the realm path")?)?;
        Ok(malloc_string(&token.token))
    })
}

/// Opens (creating if needed) the user's management realm: the synced realm at
/// `/~/__management` on the sync server beside the user's auth server (`realm://` for an
/// `http` auth URL, `realms://` for `https`, same host and port), with the classes
/// `PermissionOffer`, `PermissionOfferResponse` and `PermissionChange` (see `docs/DESIGN.md`,
/// "Permissions"). Write those objects with the object functions to share realms; the server
/// answers in the same objects (`statusCode`, `statusMessage`, `token`, `realmUrl`). Sync
/// errors of the management realm are logged.
///
/// Returns: a new realm handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a logged-out user), file errors as for
/// `shoal_realm_open`.
///
/// Requires:
/// `user` is a user handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_open_management_realm(
    user: *const shoal_user_t,
) -> *mut shoal_realm_t {
    guard(|| {
        let realm = handle::user(user)?.open_management_realm()?;
        Ok(into_handle(Payload::Realm(realm)))
    })
}

/// The realms other users have shared with the user ("shared with me"), as JSON: an array of
/// `{"path": "/<owner>/<name>", "may_read": bool, "may_write": bool, "may_manage": bool}`
/// sorted by path (the user's own realms are left out). Blocks on the network.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_EXPIRED_REFRESH_TOKEN` (logged out), `SHOAL_ERR_IO`.
///
/// Requires:
/// `user` is a user handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_granted_permissions_json(
    user: *const shoal_user_t,
) -> *mut c_char {
    guard(|| {
        let granted = handle::user(user)?.granted_permissions()?;
        let json = serde_json::to_string(&granted)
            .map_err(|e| Error::internal(format!("permissions to JSON: {e}")))?;
        Ok(malloc_string(&json))
    })
}

/// Pauses every sync session of the app and waits (at most `timeout_ms`) until their tasks
/// have stopped and the sync callbacks already queued have run: for process exit in bindings
/// whose callbacks must not run during shutdown. `shoal_session_resume` restarts a session.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_TIMEOUT`.
///
/// Requires:
/// `app` is an app handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_stop_sync(app: *const shoal_app_t, timeout_ms: u64) -> bool {
    guard(|| {
        let a = handle::app(app)?;
        a.stop_sync(std::time::Duration::from_millis(
            timeout_ms.min(u64::from(u32::MAX)),
        ))?;
        Ok(true)
    })
}

/// Changes the password of the user (`identity` NULL) or, for an admin, of the user
/// `identity`. Blocks.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_ACCESS_DENIED` (614), `SHOAL_ERR_UNKNOWN_ACCOUNT` (612),
/// `SHOAL_ERR_INVALID_PARAMETERS` (601), `SHOAL_ERR_IO`.
///
/// Requires:
/// `user` is a user handle; strings NUL-terminated (`identity` may be NULL).
#[no_mangle]
pub unsafe extern "C" fn shoal_user_change_password(
    user: *mut shoal_user_t,
    new_password: *const c_char,
    identity: *const c_char,
) -> bool {
    guard(|| {
        let u = handle::user(user)?;
        u.change_password(
            str_arg(new_password, "the new password")?,
            opt_str_arg(identity, "the identity")?,
        )?;
        Ok(true)
    })
}

/// Called once with NULL on success or the error (valid during the call).
pub type shoal_completion_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, error: *const shoal_error_t)>;

/// Like `shoal_user_change_password` without blocking: `callback` runs once on a library
/// thread, then `free_userdata`.
///
/// Returns: true when the change started (`callback` will run), false on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (NULL callback or password), `SHOAL_ERR_MISUSE` (a NULL or
/// released handle); the change's own errors reach `callback`.
///
/// Requires:
/// As `shoal_user_change_password`; `callback` a valid function.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_change_password_async(
    user: *mut shoal_user_t,
    new_password: *const c_char,
    identity: *const c_char,
    callback: shoal_completion_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let u = handle::user(user)?;
        let new_password = str_arg(new_password, "the new password")?;
        let identity = opt_str_arg(identity, "the identity")?;
        let cb = callback.ok_or_else(|| Error::invalid("the callback must not be NULL"))?;
        u.change_password_async(new_password, identity, move |result| {
            let data = data;
            match result {
                // Safety: the caller promised a valid callback for its userdata.
                Ok(()) => unsafe { cb(data.ptr, std::ptr::null()) },
                Err(e) => with_c_error(&e, |err| unsafe { cb(data.ptr, err) }),
            }
        });
        Ok(true)
    })
}

/// Asks the server, as the admin `admin`, about the user of `provider`/`provider_id`: returns
/// `{"identity":..,"provider":..,"provider_id":..,"is_admin":..}` (free with `shoal_free`) or
/// NULL with no error when there is no such user.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_ACCESS_DENIED` (614) when `admin` is not an admin, `SHOAL_ERR_IO`.
///
/// Requires:
/// `admin` is a user handle; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_lookup(
    admin: *const shoal_user_t,
    provider: *const c_char,
    provider_id: *const c_char,
) -> *mut c_char {
    guard(|| {
        let u = handle::user(admin)?;
        let info = u.lookup(
            str_arg(provider, "the provider")?,
            str_arg(provider_id, "the provider id")?,
        )?;
        Ok(info.map_or(std::ptr::null_mut(), |i| malloc_string(&i.to_json())))
    })
}

/// Gets the outcome of an asynchronous lookup: the user's JSON (as `shoal_user_lookup`
/// returns it; valid during the call) and NULL; NULL and NULL when there is no such user;
/// or NULL and the error (valid during the call).
pub type shoal_lookup_fn_t = Option<
    unsafe extern "C" fn(userdata: *mut c_void, json: *const c_char, error: *const shoal_error_t),
>;

/// Like `shoal_user_lookup` without blocking: the request runs on a library thread, then
/// `callback(userdata, json, error)` runs once, on `scheduler` (during
/// `shoal_scheduler_perform_work` on the app's thread) or, with a NULL `scheduler`, on
/// the library thread. `free_userdata` (may be NULL) runs after it.
///
/// Returns: true when the lookup started (`callback` will run), false on error (then it
/// never runs, and `free_userdata` has run).
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a NULL callback or string), `SHOAL_ERR_MISUSE` (a
/// NULL or released handle); the lookup's own errors (`SHOAL_ERR_ACCESS_DENIED`,
/// `SHOAL_ERR_IO`, ...) reach `callback`.
///
/// Requires:
/// `admin` is a user handle; strings NUL-terminated; `scheduler` NULL or a scheduler
/// handle; `callback` callable from any thread with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn shoal_user_lookup_async(
    admin: *const shoal_user_t,
    provider: *const c_char,
    provider_id: *const c_char,
    scheduler: *const shoal_scheduler_t,
    callback: shoal_lookup_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let user = handle::user(admin)?;
        let provider = str_arg(provider, "the provider")?;
        let provider_id = str_arg(provider_id, "the provider id")?;
        let scheduler: Arc<dyn Scheduler> = if scheduler.is_null() {
            library_thread()
        } else {
            handle::scheduler(scheduler)?
        };
        let cb = callback.ok_or_else(|| Error::invalid("the callback must not be NULL"))?;
        user.lookup_async(provider, provider_id, move |result| {
            scheduler.post(Box::new(move || {
                let data = data;
                // Safety: the caller promised a callback callable with its userdata from
                // any thread.
                match result {
                    Ok(Some(info)) => {
                        let json = CString::new(info.to_json()).unwrap_or_default();
                        unsafe { cb(data.ptr, json.as_ptr(), std::ptr::null()) }
                    }
                    Ok(None) => unsafe { cb(data.ptr, std::ptr::null(), std::ptr::null()) },
                    Err(e) => {
                        with_c_error(&e, |err| unsafe { cb(data.ptr, std::ptr::null(), err) })
                    }
                }
            }));
        });
        Ok(true)
    })
}

/// Called with the user (valid during the call; clone it to keep it) and `SHOAL_AUTH_*`.
pub type shoal_auth_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, user: *mut shoal_user_t, event: i32)>;

/// Registers `callback` for logins (`SHOAL_AUTH_LOGGED_IN`) and server-confirmed logouts
/// (`SHOAL_AUTH_LOGGED_OUT`) of any user of the app. Runs on a library thread. Release the
/// token to unregister; `free_userdata` runs after the last call.
///
/// Returns: a new `shoal_token_t` handle (release it with `shoal_release` to unregister), or NULL
/// on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (NULL callback), `SHOAL_ERR_MISUSE` (a NULL or released
/// handle).
///
/// Requires:
/// `app` is an app handle; `callback` a valid function; `userdata` usable from any thread.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_add_auth_callback(
    app: *mut shoal_app_t,
    callback: shoal_auth_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_token_t {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let app = handle::app(app)?;
        let cb = callback.ok_or_else(|| Error::invalid("the callback must not be NULL"))?;
        let token = app.add_auth_callback(move |user, event| {
            let data = &data;
            let h: *mut shoal_user_t = into_handle(Payload::User(user.clone()));
            let code = match event {
                AuthEvent::LoggedIn => SHOAL_AUTH_LOGGED_IN,
                _ => SHOAL_AUTH_LOGGED_OUT,
            };
            // Safety: the caller promised a valid callback for its userdata.
            unsafe { cb(data.ptr, h, code) };
            handle::release(h.cast());
        });
        Ok(into_handle(Payload::Token {
            _registration: Arc::new(token),
        }))
    })
}

/// Sets `*out` to the number of refresh tokens still waiting to be revoked on a server.
///
/// `out` (out): the number of refresh tokens waiting to be revoked.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `app` is an app handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_app_pending_revocations(
    app: *const shoal_app_t,
    out: *mut u64,
) -> bool {
    guard(|| {
        *out_arg(out, "out")? = handle::app(app)?.pending_revocations()? as u64;
        Ok(true)
    })
}

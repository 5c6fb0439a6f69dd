//! Handles, memory, errors and versions: the functions every binding uses first.

use super::config::shoal_free_userdata_fn_t;
use super::convert::{free_value, shoal_value_t, UserData};
use super::error::{clear_last_error, fill_last_error, guard, http_status, shoal_error_t};
use super::handle;
use crate::error::{Error, ErrorCode};
use crate::{LogCallback, LogLevel};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, LazyLock};

/// The library version as X*1000000 + Y*1000 + Z.
pub const SHOAL_VERSION_NUMBER: i32 = 1000;

/// Releases one handle of any kind (realm, config, object, results, token, ...).
///
/// Releasing NULL does nothing. Releasing a token unregisters its callback. The object behind
/// the handle lives on while other handles (see `shoal_clone`) refer to it.
///
/// Returns false (error `SHOAL_ERR_MISUSE`) if `handle` is not a live handle, e.g. released
/// twice.
///
/// Errors: `SHOAL_ERR_MISUSE` only.
///
/// Requires:
/// `handle` is NULL or a pointer returned by Shoal; it must not be used after this call.
#[no_mangle]
pub unsafe extern "C" fn shoal_release(handle: *mut c_void) -> bool {
    guard(|| {
        if handle::release(handle) {
            Ok(true)
        } else {
            Err(Error::new(
                ErrorCode::Misuse,
                "shoal_release: the handle is invalid or was already released",
            ))
        }
    })
}

/// Returns a new handle to the same object as `handle` (release each one separately).
///
/// Returns NULL (error `SHOAL_ERR_MISUSE`) for NULL or a released handle.
///
/// Returns: a new handle of the same type as `handle` (release it with `shoal_release`), or NULL on
/// error.
///
/// Errors: `SHOAL_ERR_MISUSE` only.
///
/// Requires:
/// `handle` is NULL or a pointer returned by Shoal.
#[no_mangle]
pub unsafe extern "C" fn shoal_clone(handle: *const c_void) -> *mut c_void {
    guard(|| handle::clone(handle))
}

/// Frees a string or buffer returned by Shoal. NULL does nothing.
///
/// Errors: none (it cannot fail and leaves the last error unchanged).
///
/// Requires:
/// `ptr` is NULL or a buffer returned by a Shoal function documented as "free with
/// shoal_free", not freed before.
#[no_mangle]
pub unsafe extern "C" fn shoal_free(ptr: *mut c_void) {
    // Safety: Shoal allocates every returned buffer with malloc.
    unsafe { libc::free(ptr) }
}

/// Frees the strings and bytes a value filled in by Shoal owns, and sets the value to
/// `SHOAL_VALUE_NULL` (whatever its kind: a number owns nothing and is just reset, so freeing
/// twice is harmless). A NULL pointer does nothing.
///
/// Errors: none (it cannot fail and leaves the last error unchanged).
///
/// Requires:
/// `value` is NULL or points to a value filled in by Shoal (not one the caller built).
#[no_mangle]
pub unsafe extern "C" fn shoal_value_free(value: *mut shoal_value_t) {
    if !value.is_null() {
        // Safety: non-NULL and, by contract, a Shoal-filled value.
        free_value(unsafe { &mut *value });
    }
}

/// Fills `out` with the calling thread's last error and returns true, or returns false if the
/// last Shoal call on this thread succeeded. Every Shoal call resets the last error when it
/// starts, except this one, `shoal_clear_last_error`, `shoal_error_name`, `shoal_free`,
/// `shoal_value_free`, `shoal_libversion` and `shoal_libversion_number` (which cannot fail), so
/// freeing a result does not lose the error of an earlier call. The message and path stay
/// valid until the next Shoal call on this thread that resets it.
///
/// `out` (out, may be NULL): the error; its `message` and `path` belong to Shoal and must not be
/// freed.
///
/// Returns: true when the last call on this thread failed (and `*out` is filled), false when it
/// succeeded.
///
/// Errors: none (it leaves the last error unchanged).
///
/// Requires:
/// `out` is NULL (then only the return value is given) or points to writable memory.
#[no_mangle]
pub unsafe extern "C" fn shoal_get_last_error(out: *mut shoal_error_t) -> bool {
    let mut scratch = shoal_error_t {
        code: 0,
        category: 0,
        message: std::ptr::null(),
        path: std::ptr::null(),
    };
    // Safety: `out` is NULL or valid and writable per the contract.
    let target = if out.is_null() {
        &mut scratch
    } else {
        unsafe { &mut *out }
    };
    fill_last_error(target)
}

/// Forgets the calling thread's last error.
///
/// Errors: none.
#[no_mangle]
pub extern "C" fn shoal_clear_last_error() {
    clear_last_error();
}

/// The constant name of an error code without its prefix, e.g. "NO_SUCH_CLASS", including the
/// sync protocol's codes ("BAD_SYNTAX", "TOKEN_EXPIRED", ...; 200 is "SYNC", the family, which
/// `SHOAL_ERR_SESSION_CLOSED` shares); "HTTP" for other statuses 300–599; "UNKNOWN" for codes
/// this library does not know. The string is static: do not free it.
///
/// Returns: a static NUL-terminated string; never NULL.
///
/// Errors: none (it leaves the last error unchanged).
#[no_mangle]
pub extern "C" fn shoal_error_name(code: i32) -> *const c_char {
    // NUL-terminated copies of the code table's names, built once.
    static NAMES: LazyLock<Vec<(i32, String)>> = LazyLock::new(|| {
        crate::protocol::codes::all()
            .map(|row| (row.code, format!("{}\0", row.name)))
            .collect()
    });
    let find = |c: i32| NAMES.iter().find(|(n, _)| *n == c).map(|(_, s)| s.as_str());
    // An HTTP status without a Realm code passes through as itself: its family's name.
    let name = find(code)
        .or_else(|| http_status(code).and_then(|_| find(ErrorCode::Http as i32)))
        .or_else(|| find(ErrorCode::Unknown as i32))
        .unwrap_or("UNKNOWN\0");
    name.as_ptr().cast()
}

/// The library's version string "X.Y.Z" (static; do not free).
///
/// Returns: a static NUL-terminated string.
///
/// Errors: none (it leaves the last error unchanged).
#[no_mangle]
pub extern "C" fn shoal_libversion() -> *const c_char {
    static V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// The library's version as X*1000000 + Y*1000 + Z.
///
/// Returns: the version number (`SHOAL_VERSION_NUMBER` of the matching header).
///
/// Errors: none (it leaves the last error unchanged).
#[no_mangle]
pub extern "C" fn shoal_libversion_number() -> i32 {
    let parse = |s: &str| s.parse::<i32>().unwrap_or(0);
    parse(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + parse(env!("CARGO_PKG_VERSION_MINOR")) * 1000
        + parse(env!("CARGO_PKG_VERSION_PATCH"))
}

/// Log levels for `shoal_set_log_level` and the log callback (Realm's `RealmLog` numbers).
pub const SHOAL_LOG_LEVEL_ALL: i32 = 1;
/// Protocol and storage detail.
pub const SHOAL_LOG_LEVEL_TRACE: i32 = 2;
/// What the library does and why.
pub const SHOAL_LOG_LEVEL_DEBUG: i32 = 3;
/// Logins, sessions starting and stopping, compactions (the default level).
pub const SHOAL_LOG_LEVEL_INFO: i32 = 4;
/// A failure that is retried or worked around.
pub const SHOAL_LOG_LEVEL_WARN: i32 = 5;
/// A failure for good.
pub const SHOAL_LOG_LEVEL_ERROR: i32 = 6;
/// An unrecoverable failure.
pub const SHOAL_LOG_LEVEL_FATAL: i32 = 7;
/// Nothing.
pub const SHOAL_LOG_LEVEL_OFF: i32 = 8;

/// Gets one log event: `level` (`SHOAL_LOG_LEVEL_*`), `category` (where it comes from, e.g.
/// `shoal::sync::runner`) and `message` (with its fields as `name=value`), both NUL-terminated
/// and valid only during the call. Runs on the thread that logs: it must not block for long.
pub type shoal_log_fn_t = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: i32,
        category: *const c_char,
        message: *const c_char,
    ),
>;

/// Sets the level below which log events are dropped (default `SHOAL_LOG_LEVEL_INFO`).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` for a number that is not a `SHOAL_LOG_LEVEL_*`.
#[no_mangle]
pub extern "C" fn shoal_set_log_level(level: i32) -> bool {
    guard(|| {
        let level = LogLevel::from_i32(level)
            .ok_or_else(|| Error::invalid(format!("unknown log level {level}")))?;
        crate::set_log_level(level);
        Ok(true)
    })
}

/// Sends every log event at or above the level to `callback` (NULL stops it; `free_userdata`,
/// may be NULL, runs once when the callback is replaced). Without a callback nothing is logged
/// anywhere.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NOT_SUPPORTED` when the process has another global `tracing` subscriber
/// (a Rust application with its own logging).
///
/// Requires:
/// `callback` and `free_userdata` valid functions or NULL; `userdata` usable from any thread.
#[no_mangle]
pub unsafe extern "C" fn shoal_set_log_callback(
    callback: shoal_log_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let callback: Option<LogCallback> = callback.map(|cb| {
            let forward = move |level: LogLevel, category: &str, message: &str| {
                let data = &data;
                // Interior NULs cannot cross as C strings: they become spaces.
                let c = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
                let (category, message) = (c(category), c(message));
                // Safety: the caller promised a valid callback for its userdata.
                unsafe { cb(data.ptr, level as i32, category.as_ptr(), message.as_ptr()) }
            };
            Arc::new(forward) as LogCallback
        });
        crate::set_log_callback(callback)?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_version_matches_the_crate() {
        // SHOAL_VERSION is written by cbindgen.toml's `after_includes`.
        let toml = include_str!("../../cbindgen.toml");
        let define = format!("#define SHOAL_VERSION \"{}\"", env!("CARGO_PKG_VERSION"));
        assert!(toml.contains(&define), "cbindgen.toml must define {define}");
        assert_eq!(SHOAL_VERSION_NUMBER, shoal_libversion_number());
    }

    fn name(code: i32) -> String {
        // Safety: shoal_error_name returns a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(shoal_error_name(code)) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn error_names_cover_protocol_codes() {
        assert_eq!(name(100), "CONNECTION_CLOSED");
        assert_eq!(name(103), "BAD_SYNTAX");
        assert_eq!(name(109), "BAD_MESSAGE_ORDER");
        assert_eq!(name(200), "SYNC");
        assert_eq!(name(201), "OTHER_SESSION_ERROR");
        assert_eq!(name(206), "PERMISSION_DENIED");
        assert_eq!(name(213), "DISABLED_SESSION");
        assert_eq!(name(1027), "TIMEOUT");
        assert_eq!(name(110), "BAD_ORIGIN_FILE_IDENT");
        assert_eq!(name(112), "BAD_CHANGESET_DOWNLOAD");
        assert_eq!(name(116), "BAD_CLIENT_VERSION_DOWNLOAD");
        assert_eq!(name(117), "UNKNOWN");
        assert_eq!(name(616), "INVALID_HOST");
        assert_eq!(name(801), "SERVER_MISCONFIGURATION");
        assert_eq!(name(214), "UNKNOWN");
        assert_eq!(name(404), "HTTP");
    }
}

//! The per-thread last error and the guard that every entry point runs its body in.

use crate::error::{Error, ErrorCode};
use crate::protocol::codes::{ConnectionErrorCode, SessionErrorCode};
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The last error of the calling thread, as filled by `shoal_get_last_error`.
#[repr(C)]
pub struct shoal_error_t {
    /// One of the `SHOAL_ERR_*` codes.
    pub code: i32,
    /// One of the `SHOAL_ERR_CATEGORY_*` values.
    pub category: i32,
    /// A UTF-8 message for people; valid until the next Shoal call on this thread.
    pub message: *const c_char,
    /// The file the error is about, or NULL; valid as long as `message`.
    pub path: *const c_char,
}

struct Stored {
    code: i32,
    category: i32,
    message: CString,
    path: Option<CString>,
}

thread_local! {
    static LAST: RefCell<Option<Stored>> = const { RefCell::new(None) };
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// Runs `f` with `e` as a C error struct, valid during the call (for callbacks that are
/// handed an error).
pub(crate) fn with_c_error<R>(e: &Error, f: impl FnOnce(*const shoal_error_t) -> R) -> R {
    let message = c_string(e.message());
    let path = e.path().map(c_string);
    let c = shoal_error_t {
        code: e.raw_code(),
        category: e.category() as i32,
        message: message.as_ptr(),
        path: path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
    };
    f(&c)
}

pub(crate) fn set_last_error(e: &Error) {
    let stored = Stored {
        code: e.raw_code(),
        category: e.category() as i32,
        message: c_string(e.message()),
        path: e.path().map(c_string),
    };
    LAST.with(|l| *l.borrow_mut() = Some(stored));
}

pub(crate) fn clear_last_error() {
    LAST.with(|l| *l.borrow_mut() = None);
}

/// The last error as a Rust error (used to pass a callback's failure on).
pub(crate) fn take_last_error() -> Option<Error> {
    LAST.with(|l| {
        l.borrow_mut().take().map(|s| {
            let message = s.message.to_string_lossy().into_owned();
            let mut e = error_of_code(s.code, message);
            if let Some(p) = s.path {
                e = e.with_path(p.to_string_lossy().into_owned());
            }
            e
        })
    })
}

/// The HTTP status that `code` stands for, when it is one that passes through as itself (the
/// core's rule, in `Error::http`; a status with a Realm code of its own is not one).
pub(crate) fn http_status(code: i32) -> Option<u16> {
    let status = u16::try_from(code).ok()?;
    Error::http(status, "").http_status()
}

/// An error with the raw code `code` (`shoal_error_t.code`), classified by the code table:
/// the API's codes, the sync protocol's (100–116, 200–213), HTTP statuses, else UNKNOWN.
fn error_of_code(code: i32, message: String) -> Error {
    if let Some(c) = ErrorCode::from_code(code) {
        Error::new(c, message)
    } else if ConnectionErrorCode::from_code(code).is_some()
        || SessionErrorCode::from_code(code).is_some()
    {
        Error::sync(code, message)
    } else if let Some(status) = http_status(code) {
        Error::http(status, message)
    } else {
        Error::new(ErrorCode::Unknown, message)
    }
}

pub(crate) fn fill_last_error(out: &mut shoal_error_t) -> bool {
    LAST.with(|l| match &*l.borrow() {
        Some(s) => {
            out.code = s.code;
            out.category = s.category;
            out.message = s.message.as_ptr();
            out.path = s.path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
            true
        }
        None => false,
    })
}

/// The value an entry point returns when it fails.
pub(crate) trait Failure {
    fn failure() -> Self;
}

impl Failure for bool {
    fn failure() -> bool {
        false
    }
}
impl<T> Failure for *mut T {
    fn failure() -> *mut T {
        std::ptr::null_mut()
    }
}
impl<T> Failure for *const T {
    fn failure() -> *const T {
        std::ptr::null()
    }
}
impl Failure for i64 {
    fn failure() -> i64 {
        -1
    }
}
impl Failure for () {
    fn failure() {}
}

/// Runs an entry point's body: clears the last error, turns an `Err` into the last error and
/// the failure value, and catches panics (reported as `SHOAL_ERR_INTERNAL`) so that no panic
/// ever unwinds into C.
pub(crate) fn guard<T: Failure>(body: impl FnOnce() -> crate::Result<T>) -> T {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_last_error(&e);
            T::failure()
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&Error::new(
                ErrorCode::Internal,
                format!("internal error (a bug in Shoal): {msg}"),
            ));
            T::failure()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::ErrorCategory;

    /// A callback's failure passes on with its code: every row of the code table, an HTTP
    /// status, and UNKNOWN for a number the table does not have.
    #[test]
    fn last_error_round_trips_every_code_of_the_table() {
        for row in crate::protocol::codes::all() {
            set_last_error(&error_of_code(row.code, "m".into()));
            let e = take_last_error().expect("an error");
            assert_eq!(e.raw_code(), row.code, "{}", row.name);
            assert_eq!(e.category(), row.category, "{}", row.name);
        }
        let e = error_of_code(404, "m".into());
        assert_eq!((e.raw_code(), e.category()), (404, ErrorCategory::Http));
        let e = error_of_code(150, "m".into());
        assert_eq!(e.raw_code(), ErrorCode::Unknown as i32);
    }
}

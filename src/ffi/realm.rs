//! Opening realms, transactions and change callbacks.

use super::config::shoal_free_userdata_fn_t;
use super::convert::{malloc_string, out_arg, str_arg, UserData};
use super::error::guard;
use super::handle::{self, into_handle, Payload};
use super::{shoal_config_t, shoal_realm_t, shoal_token_t};
use crate::Realm;
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// Opens (creating if needed) the realm described by `config`. Release the handle with
/// `shoal_release` (or close it first with `shoal_realm_close`). Every handle of one path in
/// one process shares the open file.
///
/// Returns: a new `shoal_realm_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_FILE_IN_USE` (another process has it open), `SHOAL_ERR_FILE_NOT_FOUND`,
/// `SHOAL_ERR_FILE_PERMISSION_DENIED`, `SHOAL_ERR_INCOMPATIBLE_FILE`,
/// `SHOAL_ERR_MIGRATION_NEEDED`, `SHOAL_ERR_SCHEMA_VERSION_LOWER`, errors of the
/// initial-data or migration callback.
///
/// Requires:
/// `config` is a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_open(config: *const shoal_config_t) -> *mut shoal_realm_t {
    guard(|| {
        let config = handle::config(config)?.lock().clone();
        Ok(into_handle(Payload::Realm(Realm::open(&config)?)))
    })
}

/// Deletes the realm file of `config`. Fails with `SHOAL_ERR_REALM_IN_USE` while it is open
/// anywhere in this process; a missing file is not an error.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_REALM_IN_USE`, file errors (e.g. `SHOAL_ERR_FILE_PERMISSION_DENIED`),
/// `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_delete_realm_files(config: *const shoal_config_t) -> bool {
    guard(|| {
        let config = handle::config(config)?.lock().clone();
        crate::delete_realm_files(&config)?;
        Ok(true)
    })
}

fn with_realm(realm: *const shoal_realm_t, f: impl FnOnce(&Realm) -> crate::Result<()>) -> bool {
    guard(|| {
        f(&handle::realm(realm)?)?;
        Ok(true)
    })
}

/// Closes the realm: an open write transaction is cancelled and every later call on this
/// realm (through any clone of this handle) fails with `SHOAL_ERR_REALM_CLOSED`. The handle
/// itself must still be released. Closing twice is harmless.
///
/// Returns: true on success (also for a realm already closed); false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_close(realm: *mut shoal_realm_t) -> bool {
    with_realm(realm, |r| {
        r.close();
        Ok(())
    })
}

/// Whether the realm was closed. False for an invalid handle (and the last error says so).
///
/// Returns: true or false; false also on error (then `shoal_get_last_error` returns true).
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_is_closed(realm: *const shoal_realm_t) -> bool {
    guard(|| Ok(handle::realm(realm)?.is_closed()))
}

/// Starts a write transaction, first moving the realm to the latest version. Waits while
/// another thread writes to the same file.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION` (this realm, or this thread through
/// another realm handle, is already writing), `SHOAL_ERR_READ_ONLY`, `SHOAL_ERR_REALM_CLOSED`.
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_begin_write(realm: *mut shoal_realm_t) -> bool {
    with_realm(realm, Realm::begin_write)
}

/// Commits the write transaction durably; change callbacks of every realm handle on the file
/// then run on a library thread. On failure the transaction is gone and nothing of it was
/// written.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`, `SHOAL_ERR_IO`.
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_commit(realm: *mut shoal_realm_t) -> bool {
    with_realm(realm, Realm::commit)
}

/// Discards the write transaction.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`.
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_cancel_write(realm: *mut shoal_realm_t) -> bool {
    with_realm(realm, Realm::cancel_write)
}

/// Whether a write transaction is open on this realm.
///
/// Returns: true or false; false also on error (then `shoal_get_last_error` returns true).
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_is_in_transaction(realm: *const shoal_realm_t) -> bool {
    guard(|| Ok(handle::realm(realm)?.is_in_transaction()))
}

/// Moves the realm to the latest committed version (a realm otherwise keeps reading the
/// version it last saw, so each read is consistent). Inside a write transaction this does
/// nothing.
///
/// `did_change` (out, may be NULL): whether the realm moved to a newer version.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle; `did_change` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_refresh(
    realm: *mut shoal_realm_t,
    did_change: *mut bool,
) -> bool {
    with_realm(realm, |r| {
        let changed = r.refresh()?;
        if !did_change.is_null() {
            // Safety: non-NULL and writable per the contract.
            unsafe { *did_change = changed };
        }
        Ok(())
    })
}

/// Rewrites the file so that it takes only the space its data needs (after large deletions).
/// Encrypted files stay encrypted.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_REALM_IN_USE` (another handle of the file is open in this process),
/// `SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION`, `SHOAL_ERR_READ_ONLY`.
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_compact(realm: *mut shoal_realm_t) -> bool {
    with_realm(realm, Realm::compact)
}

/// Sets `*out` to whether the realm holds no objects.
///
/// `out` (out): true when the realm holds no objects.
///
/// Returns: true or false; false also on error (then `shoal_get_last_error` returns true).
///
/// Errors: `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_is_empty(realm: *const shoal_realm_t, out: *mut bool) -> bool {
    with_realm(realm, |r| {
        *out_arg(out, "out")? = r.is_empty()?;
        Ok(())
    })
}

/// Sets `*out` to the file's schema version.
///
/// `out` (out): the schema version.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_get_schema_version(
    realm: *const shoal_realm_t,
    out: *mut u64,
) -> bool {
    with_realm(realm, |r| {
        *out_arg(out, "out")? = r.schema_version()?;
        Ok(())
    })
}

/// Sets `*out` to the history version the realm reads (the number of changesets recorded).
///
/// `out` (out): the history version.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_version(realm: *const shoal_realm_t, out: *mut u64) -> bool {
    with_realm(realm, |r| {
        *out_arg(out, "out")? = r.version()?;
        Ok(())
    })
}

/// The realm's schema as JSON (see `shoal_schema_from_json`). Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_get_schema_json(realm: *const shoal_realm_t) -> *mut c_char {
    guard(|| Ok(malloc_string(&handle::realm(realm)?.schema()?.to_json())))
}

/// The realm's whole content as canonical JSON (objects by global id), for debugging and for
/// comparing two copies. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_dump_json(realm: *const shoal_realm_t) -> *mut c_char {
    guard(|| Ok(malloc_string(&handle::realm(realm)?.dump_json()?)))
}

/// Called after a commit that changed the file, with the new history version.
pub type shoal_change_fn_t = Option<unsafe extern "C" fn(userdata: *mut c_void, version: u64)>;

/// Registers `callback` to run after every commit that changes this realm's file, made through
/// any handle or thread. It runs on a library thread (never the committing one) and may call
/// any Shoal function. Release the returned token to unregister; `free_userdata` (may be NULL)
/// runs once, after the last call. On failure `free_userdata` runs before this returns.
///
/// Returns: a new `shoal_token_t` handle (release it with `shoal_release` to unregister), or NULL
/// on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (NULL callback), `SHOAL_ERR_REALM_CLOSED`,
/// `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle; `callback` a valid function; `userdata` usable from any thread.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_add_change_callback(
    realm: *mut shoal_realm_t,
    callback: shoal_change_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_token_t {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let r = handle::realm(realm)?;
        let cb = callback.ok_or_else(|| crate::Error::invalid("the callback must not be NULL"))?;
        let token = r.add_change_callback(move |version| {
            let data = &data;
            // Safety: the caller promised a valid callback for its userdata.
            unsafe { cb(data.ptr, version) }
        })?;
        Ok(into_handle(Payload::Token {
            _registration: Arc::new(token),
        }))
    })
}

/// Sets `*out` to the property key of `class_name.property` for the `_by_key` functions.
///
/// `out` (out): the key, valid for this realm's file while its schema stays.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NO_SUCH_CLASS`, `SHOAL_ERR_NO_SUCH_PROPERTY`.
///
/// Requires:
/// `realm` is a realm handle; strings NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_property_key(
    realm: *const shoal_realm_t,
    class_name: *const c_char,
    property: *const c_char,
    out: *mut shoal_property_key_t,
) -> bool {
    with_realm(realm, |r| {
        let key = r.property_key(
            str_arg(class_name, "the class name")?,
            str_arg(property, "the property name")?,
        )?;
        *out_arg(out, "out")? = shoal_property_key_t {
            class_key: key.class_id,
            property_key: key.prop_id,
        };
        Ok(())
    })
}

/// A property resolved once, for `shoal_object_get_by_key` / `shoal_object_set_by_key`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct shoal_property_key_t {
    /// The class's id in the file.
    pub class_key: u32,
    /// The property's id in the class.
    pub property_key: u32,
}

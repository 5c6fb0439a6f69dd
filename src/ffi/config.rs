//! Schemas and realm configurations.

use super::convert::{malloc_string, opt_str_arg, out_arg, str_arg, UserData};
use super::error::{guard, take_last_error};
use super::handle::{self, into_handle, Payload};
use super::{shoal_config_t, shoal_realm_t, shoal_schema_t};
use crate::error::{Error, ErrorCode};
use crate::schema::PropertyFlags;
use crate::value::PropertyType;
use crate::{Config, Realm, Schema};
use parking_lot::Mutex;
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// Property type: boolean.
pub const SHOAL_PROPERTY_TYPE_BOOL: i32 = 0;
/// Property type: 64-bit integer.
pub const SHOAL_PROPERTY_TYPE_INT: i32 = 1;
/// Property type: 32-bit float.
pub const SHOAL_PROPERTY_TYPE_FLOAT: i32 = 2;
/// Property type: 64-bit float.
pub const SHOAL_PROPERTY_TYPE_DOUBLE: i32 = 3;
/// Property type: UTF-8 string.
pub const SHOAL_PROPERTY_TYPE_STRING: i32 = 4;
/// Property type: bytes.
pub const SHOAL_PROPERTY_TYPE_BINARY: i32 = 5;
/// Property type: timestamp.
pub const SHOAL_PROPERTY_TYPE_TIMESTAMP: i32 = 6;
/// Property type: link to an object of the target class.
pub const SHOAL_PROPERTY_TYPE_LINK: i32 = 7;
/// Property flag: may hold NULL.
pub const SHOAL_PROPERTY_NULLABLE: u32 = 1;
/// Property flag: equality queries use an index (bool, int, string, timestamp only).
pub const SHOAL_PROPERTY_INDEXED: u32 = 2;
/// Property flag: an ordered list of values of the type.
pub const SHOAL_PROPERTY_LIST: u32 = 4;

/// Creates an empty schema. Release with `shoal_release`.
///
/// Returns: a new `shoal_schema_t` handle (release with `shoal_release`); NULL only if memory ran
/// out.
///
/// Errors: none in practice.
#[no_mangle]
pub extern "C" fn shoal_schema_new() -> *mut shoal_schema_t {
    guard(|| {
        Ok(into_handle(Payload::Schema(Arc::new(Mutex::new(
            Schema::new(),
        )))))
    })
}

/// Adds a class. `primary_key` names the primary-key property (added with
/// `shoal_schema_add_property`, INT or STRING) or is NULL.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (empty, reserved or duplicate name), `SHOAL_ERR_MISUSE`.
///
/// Requires:
/// `schema` is a schema handle; strings are NUL-terminated or NULL where allowed.
#[no_mangle]
pub unsafe extern "C" fn shoal_schema_add_class(
    schema: *mut shoal_schema_t,
    name: *const c_char,
    primary_key: *const c_char,
) -> bool {
    guard(|| {
        let s = handle::schema(schema)?;
        let name = str_arg(name, "the class name")?;
        let pk = opt_str_arg(primary_key, "the primary key name")?;
        s.lock().add_class(name, pk)?;
        Ok(true)
    })
}

/// Adds a property to a class of the schema. `kind` is a `SHOAL_PROPERTY_TYPE_*`, `flags` a
/// combination of `SHOAL_PROPERTY_*` flags, `link_target` the target class of a LINK (NULL
/// otherwise; the target may be added later).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NO_SUCH_CLASS`, `SHOAL_ERR_INVALID_ARGUMENT`, `SHOAL_ERR_MISUSE`.
///
/// Requires:
/// `schema` is a schema handle; strings are NUL-terminated or NULL where allowed.
#[no_mangle]
pub unsafe extern "C" fn shoal_schema_add_property(
    schema: *mut shoal_schema_t,
    class_name: *const c_char,
    name: *const c_char,
    kind: i32,
    flags: u32,
    link_target: *const c_char,
) -> bool {
    guard(|| {
        let s = handle::schema(schema)?;
        let class = str_arg(class_name, "the class name")?;
        let name = str_arg(name, "the property name")?;
        let ty = PropertyType::from_code(kind)
            .ok_or_else(|| Error::invalid(format!("unknown property type {kind}")))?;
        let flags = PropertyFlags::from_bits(flags)?;
        let target = opt_str_arg(link_target, "the link target")?;
        s.lock().add_property(class, name, ty, flags, target)?;
        Ok(true)
    })
}

/// Parses a schema from JSON: `{"classes":[{"name":"Person","primary_key":"id",
/// "properties":[{"name":"id","type":"int"},{"name":"name","type":"string","nullable":true,
/// "indexed":true},{"name":"dogs","type":"link","list":true,"target":"Dog"}]}]}`. Types:
/// bool, int, float, double, string, binary, timestamp, link. Release with `shoal_release`.
///
/// Returns: a new `shoal_schema_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_JSON` (malformed), `SHOAL_ERR_INVALID_ARGUMENT` (not a valid schema).
///
/// Requires:
/// `json` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_schema_from_json(json: *const c_char) -> *mut shoal_schema_t {
    guard(|| {
        let schema = Schema::from_json(str_arg(json, "the schema JSON")?)?;
        Ok(into_handle(Payload::Schema(Arc::new(Mutex::new(schema)))))
    })
}

/// The schema as JSON (the form `shoal_schema_from_json` reads). Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `schema` is a schema handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_schema_to_json(schema: *const shoal_schema_t) -> *mut c_char {
    guard(|| Ok(malloc_string(&handle::schema(schema)?.lock().to_json())))
}

/// Creates a configuration for the realm file at `path`. Defaults: no schema (use the file's),
/// schema version 0, on disk, read-write, no encryption, no callbacks. Release with
/// `shoal_release`.
///
/// Returns: a new `shoal_config_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` for a NULL, empty or non-UTF-8 path.
///
/// Requires:
/// `path` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_new(path: *const c_char) -> *mut shoal_config_t {
    guard(|| {
        let path = str_arg(path, "the realm path")?;
        let config = Config::new(path);
        config.check()?;
        Ok(into_handle(Payload::Config(Arc::new(Mutex::new(config)))))
    })
}

fn with_config(
    config: *const shoal_config_t,
    f: impl FnOnce(&mut Config) -> crate::Result<()>,
) -> bool {
    guard(|| {
        let c = handle::config(config)?;
        f(&mut c.lock())?;
        Ok(true)
    })
}

/// The realm path of a configuration. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_get_path(config: *const shoal_config_t) -> *mut c_char {
    guard(|| Ok(malloc_string(handle::config(config)?.lock().path())))
}

/// Whether the configuration opens its realm read-only (`shoal_config_set_read_only`; always
/// for `shoal_config_for_recovery` and a client reset's `backup_config`).
///
/// Returns: true or false; false also on error (then `shoal_get_last_error` returns true).
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_is_read_only(config: *const shoal_config_t) -> bool {
    guard(|| Ok(handle::config(config)?.lock().is_read_only()))
}

/// Sets `*out` to the configuration's schema version.
///
/// `out` (out): the schema version.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (NULL `out`), `SHOAL_ERR_MISUSE` (a NULL or released
/// handle).
///
/// Requires:
/// `config` is a config handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_schema_version(
    config: *const shoal_config_t,
    out: *mut u64,
) -> bool {
    guard(|| {
        let version = handle::config(config)?.lock().schema_version();
        *out_arg(out, "out")? = version;
        Ok(true)
    })
}

/// A copy of the schema the configuration requires, or NULL with no error when it has none
/// (the file's own schema is used). Release with `shoal_release`.
///
/// Returns: a new `shoal_schema_t` handle (release it with `shoal_release`), or NULL when
/// there is none or on error (then `shoal_get_last_error` returns true).
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_schema(config: *const shoal_config_t) -> *mut shoal_schema_t {
    guard(|| {
        let schema = handle::config(config)?.lock().schema().cloned();
        Ok(schema.map_or(std::ptr::null_mut(), |s| {
            into_handle(Payload::Schema(Arc::new(Mutex::new(s))))
        }))
    })
}

/// The configuration's encryption key: returns its length, 64, and copies it into `out`
/// unless `out` is NULL; returns 0 when the configuration has no key.
///
/// `out` (out): the 64 key bytes (NULL: only ask whether there is a key).
///
/// Returns: 64, 0 (no key), or -1 on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (`out` given with `out_len` below 64),
/// `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle; `out` NULL or `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_encryption_key(
    config: *const shoal_config_t,
    out: *mut u8,
    out_len: usize,
) -> i64 {
    guard(|| {
        let Some(key) = handle::config(config)?.lock().encryption_key().copied() else {
            return Ok(0);
        };
        if !out.is_null() {
            if out_len < key.len() {
                return Err(Error::invalid(format!(
                    "the key is {} bytes; the buffer holds {out_len}",
                    key.len()
                )));
            }
            // Safety: the caller promised `out_len` writable bytes at `out`.
            unsafe { std::ptr::copy_nonoverlapping(key.as_ptr(), out, key.len()) };
        }
        Ok(key.len() as i64)
    })
}

/// Sets the schema the realm must have (copied; the schema handle stays the caller's).
/// NULL removes it (the file's own schema is used).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` if the schema is invalid (e.g. a link to a missing class).
///
/// Requires:
/// `config` is a config handle; `schema` a schema handle or NULL.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_schema(
    config: *mut shoal_config_t,
    schema: *const shoal_schema_t,
) -> bool {
    let schema = if schema.is_null() {
        Ok(None)
    } else {
        handle::schema(schema).map(|s| Some(s.lock().clone()))
    };
    with_config(config, |c| {
        match schema? {
            Some(s) => {
                c.set_schema(s)?;
            }
            None => c.schema = None,
        }
        Ok(())
    })
}

/// Sets the schema version (default 0).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_schema_version(
    config: *mut shoal_config_t,
    version: u64,
) -> bool {
    with_config(config, |c| {
        c.set_schema_version(version);
        Ok(())
    })
}

/// Keeps the realm in memory only (default false): nothing is written to disk, and the data
/// lives while any handle of this path is open in the process.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_in_memory(
    config: *mut shoal_config_t,
    in_memory: bool,
) -> bool {
    with_config(config, |c| {
        c.set_in_memory(in_memory);
        Ok(())
    })
}

/// Opens read-only (default false): write transactions fail with `SHOAL_ERR_READ_ONLY`.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_read_only(
    config: *mut shoal_config_t,
    read_only: bool,
) -> bool {
    with_config(config, |c| {
        c.set_read_only(read_only);
        Ok(())
    })
}

/// Deletes the file and starts over when its schema needs a migration (default false).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_delete_if_migration_needed(
    config: *mut shoal_config_t,
    delete: bool,
) -> bool {
    with_config(config, |c| {
        c.set_delete_if_migration_needed(delete);
        Ok(())
    })
}

/// Fills a new realm: called once, inside the write transaction that creates the file, with a
/// realm handle that is valid only during the call (clone it to keep it). Return false to
/// abort the open; the error set by the failing Shoal call inside (or
/// `SHOAL_ERR_CALLBACK_FAILED`) is what `shoal_realm_open` reports. Runs on the thread that
/// calls `shoal_realm_open`. `free_userdata` (may be NULL) runs when the configuration and
/// every realm opened with it are released.
pub type shoal_initial_data_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, realm: *mut shoal_realm_t) -> bool>;

/// Migrates a file from `old_version` to `new_version` inside the opening write transaction.
/// The realm handle (valid during the call) shows the old and the new properties together:
/// read the old ones, write the new ones; properties absent from the new schema are removed
/// after the callback returns. Return false to abort the open.
pub type shoal_migration_fn_t = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        realm: *mut shoal_realm_t,
        old_version: u64,
        new_version: u64,
    ) -> bool,
>;

/// Frees a callback's userdata.
pub type shoal_free_userdata_fn_t = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Runs a C callback with a temporary realm handle and turns `false` into an error.
pub(super) fn call_with_realm(
    realm: &Realm,
    f: impl FnOnce(*mut shoal_realm_t) -> bool,
) -> crate::Result<()> {
    let h: *mut shoal_realm_t = into_handle(Payload::Realm(realm.clone()));
    super::error::clear_last_error();
    let ok = f(h);
    let inner = take_last_error();
    handle::release(h.cast());
    if ok {
        return Ok(());
    }
    Err(match inner {
        Some(e) => Error::new(e.code(), format!("the callback failed: {}", e.message())),
        None => Error::new(ErrorCode::CallbackFailed, "the callback returned false"),
    })
}

/// Sets the initial-data callback (NULL `callback` removes it).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle; `callback` and `free_userdata` are valid functions or NULL.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_initial_data(
    config: *mut shoal_config_t,
    callback: shoal_initial_data_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    with_config(config, move |c| {
        match callback {
            None => c.initial_data = None,
            Some(cb) => {
                c.set_initial_data(move |realm| {
                    let data = &data;
                    // Safety: the caller promised a valid callback for its userdata.
                    call_with_realm(realm, |h| unsafe { cb(data.ptr, h) })
                });
            }
        }
        Ok(())
    })
}

/// Sets the migration callback (NULL `callback` removes it).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle; `callback` and `free_userdata` are valid functions or NULL.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_migration(
    config: *mut shoal_config_t,
    callback: shoal_migration_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    with_config(config, move |c| {
        match callback {
            None => c.migration = None,
            Some(cb) => {
                c.set_migration(move |realm, old, new| {
                    let data = &data;
                    // Safety: the caller promised a valid callback for its userdata.
                    call_with_realm(realm, |h| unsafe { cb(data.ptr, h, old, new) })
                });
            }
        }
        Ok(())
    })
}

/// Encrypts the realm file with a 64-byte key (copied), or removes the key when `key` is NULL.
/// Every byte of an encrypted file is encrypted and authenticated (XChaCha20-Poly1305 per
/// 4 KiB page); opening it needs the same key. In-memory realms ignore the key.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` unless `len` is exactly 64.
///
/// Requires:
/// `config` is a config handle; `key` NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_encryption_key(
    config: *mut shoal_config_t,
    key: *const u8,
    len: usize,
) -> bool {
    let key = if key.is_null() {
        Ok(None)
    } else {
        super::convert::bytes_arg(key, len, "the key").map(Some)
    };
    with_config(config, |c| {
        c.set_encryption_key(key?)?;
        Ok(())
    })
}

/// Decides at open whether to compact the file: gets the file size and the bytes in use and
/// returns true to compact. Called on the opening thread, only when the first handle of the
/// file in this process opens.
pub type shoal_should_compact_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, total_bytes: u64, used_bytes: u64) -> bool>;

/// Sets the compact-on-open rule (NULL `callback` removes it).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle; `callback` and `free_userdata` are valid functions or NULL.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_should_compact(
    config: *mut shoal_config_t,
    callback: shoal_should_compact_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = UserData::new(userdata, free_userdata);
    with_config(config, move |c| {
        match callback {
            None => c.should_compact = None,
            Some(cb) => {
                c.set_should_compact(move |total, used| {
                    let data = &data;
                    // Safety: the caller promised a valid callback for its userdata.
                    unsafe { cb(data.ptr, total, used) }
                });
            }
        }
        Ok(())
    })
}

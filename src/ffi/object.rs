//! Objects and lists.

use super::convert::{malloc_string, out_arg, shoal_value_t, str_arg, value_arg, write_value};
use super::error::guard;
use super::handle::{self, into_handle, Payload};
use super::realm::shoal_property_key_t;
use super::{shoal_list_t, shoal_object_t, shoal_realm_t};
use crate::error::{Error, ErrorCode};
use crate::object::PropertyKey;
use crate::{Object, Realm, Value};
use std::ffi::c_char;

fn optional_value(pk: *const shoal_value_t, realm: &Realm) -> crate::Result<Option<crate::Value>> {
    if pk.is_null() {
        Ok(None)
    } else {
        value_arg(pk, Some(realm)).map(Some)
    }
}

/// Creates an object of `class_name`. Classes with a primary key need `primary_key` (INT or
/// STRING, as declared); others take NULL. Required properties start at zero values. Needs a
/// write transaction. Release the returned handle with `shoal_release`.
///
/// Returns: a new `shoal_object_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`, `SHOAL_ERR_NO_SUCH_CLASS`,
/// `SHOAL_ERR_DUPLICATE_PRIMARY_KEY`, `SHOAL_ERR_WRONG_TYPE`, `SHOAL_ERR_INVALID_ARGUMENT`.
///
/// Requires:
/// `realm` is a realm handle; `class_name` NUL-terminated; `primary_key` NULL or a valid value.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_create(
    realm: *mut shoal_realm_t,
    class_name: *const c_char,
    primary_key: *const shoal_value_t,
) -> *mut shoal_object_t {
    guard(|| {
        let r = handle::realm(realm)?;
        let class = str_arg(class_name, "the class name")?;
        let pk = optional_value(primary_key, &r)?;
        Ok(into_handle(Payload::Object(
            r.create_object(class, pk.as_ref())?,
        )))
    })
}

/// Finds the object of `class_name` with this primary key. Returns NULL with no error
/// (`shoal_get_last_error` returns false) when there is none.
///
/// Errors: `SHOAL_ERR_NO_SUCH_CLASS`, `SHOAL_ERR_WRONG_TYPE`, `SHOAL_ERR_INVALID_ARGUMENT` (the
/// class has no primary key).
///
/// Requires:
/// `realm` is a realm handle; `class_name` NUL-terminated; `primary_key` a valid value.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_find(
    realm: *const shoal_realm_t,
    class_name: *const c_char,
    primary_key: *const shoal_value_t,
) -> *mut shoal_object_t {
    guard(|| {
        let r = handle::realm(realm)?;
        let class = str_arg(class_name, "the class name")?;
        let pk = value_arg(primary_key, Some(&r))?;
        Ok(match r.find_object(class, &pk)? {
            Some(o) => into_handle(Payload::Object(o)),
            None => std::ptr::null_mut(),
        })
    })
}

fn with_object(obj: *const shoal_object_t, f: impl FnOnce(&Object) -> crate::Result<()>) -> bool {
    guard(|| {
        f(&handle::object(obj)?)?;
        Ok(true)
    })
}

/// Reads a scalar property into `*out` (free it with `shoal_value_free`). A link reads as
/// `SHOAL_VALUE_LINK` or NULL.
///
/// `out` (out): the value; free it with `shoal_value_free`.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NO_SUCH_PROPERTY`, `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_WRONG_TYPE` (a
/// list property: use `shoal_object_get_list`).
///
/// Requires:
/// `obj` is an object handle; `property` NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_get(
    obj: *const shoal_object_t,
    property: *const c_char,
    out: *mut shoal_value_t,
) -> bool {
    with_object(obj, |o| {
        write_value(
            out,
            &o.get(str_arg(property, "the property name")?)?,
            o.realm(),
        )
    })
}

/// Sets a scalar property. Needs a write transaction.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`, `SHOAL_ERR_NO_SUCH_PROPERTY`,
/// `SHOAL_ERR_WRONG_TYPE` (also NULL for a required property), `SHOAL_ERR_OBJECT_DELETED`,
/// `SHOAL_ERR_INVALID_ARGUMENT` (the primary key cannot change).
///
/// Requires:
/// `obj` is an object handle; `property` NUL-terminated; `value` a valid value.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_set(
    obj: *mut shoal_object_t,
    property: *const c_char,
    value: *const shoal_value_t,
) -> bool {
    with_object(obj, |o| {
        let v = value_arg(value, Some(o.realm()))?;
        o.set(str_arg(property, "the property name")?, v)
    })
}

fn property_key(key: shoal_property_key_t) -> PropertyKey {
    PropertyKey {
        class_id: key.class_key,
        prop_id: key.property_key,
    }
}

/// Like `shoal_object_get` with a key from `shoal_realm_property_key`.
///
/// `out` (out): the value; free it with `shoal_value_free`.
///
/// Returns: true on success, false on error.
///
/// Errors: as `shoal_object_get`, and `SHOAL_ERR_NO_SUCH_PROPERTY` for a key of another class.
///
/// Requires:
/// `obj` is an object handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_get_by_key(
    obj: *const shoal_object_t,
    key: shoal_property_key_t,
    out: *mut shoal_value_t,
) -> bool {
    with_object(obj, |o| {
        write_value(out, &o.get_by_key(property_key(key))?, o.realm())
    })
}

/// Like `shoal_object_set` with a key from `shoal_realm_property_key`.
///
/// Returns: true on success, false on error.
///
/// Errors: as `shoal_object_set`, and `SHOAL_ERR_NO_SUCH_PROPERTY` for a key of another class.
///
/// Requires:
/// `obj` is an object handle; `value` a valid value.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_set_by_key(
    obj: *mut shoal_object_t,
    key: shoal_property_key_t,
    value: *const shoal_value_t,
) -> bool {
    with_object(obj, |o| {
        o.set_by_key(property_key(key), value_arg(value, Some(o.realm()))?)
    })
}

/// Adds `delta` to an INT property: a counter whose concurrent additions from several devices
/// add up under sync. Needs a write transaction.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`, `SHOAL_ERR_NO_SUCH_PROPERTY`,
/// `SHOAL_ERR_WRONG_TYPE` (not an INT property), `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a
/// NULL or released handle).
///
/// Requires:
/// `obj` is an object handle; `property` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_add_int(
    obj: *mut shoal_object_t,
    property: *const c_char,
    delta: i64,
) -> bool {
    with_object(obj, |o| {
        o.add_int(str_arg(property, "the property name")?, delta)
    })
}

/// Deletes the object: links to it become NULL and list entries naming it vanish. The handle
/// stays valid to release; other calls on it fail with `SHOAL_ERR_OBJECT_DELETED`.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`, `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a
/// NULL or released handle).
///
/// Requires:
/// `obj` is an object handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_delete(obj: *mut shoal_object_t) -> bool {
    with_object(obj, Object::delete)
}

/// Whether the object still exists (false after deletion, and for an invalid handle).
///
/// Returns: true while the object exists; false after deletion and on error (then
/// `shoal_get_last_error` returns true).
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `obj` is an object handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_is_valid(obj: *const shoal_object_t) -> bool {
    guard(|| Ok(handle::object(obj)?.is_valid()))
}

/// Sets `*out` to the object's key: its identity within its class in this file (used in
/// `SHOAL_VALUE_LINK` values).
///
/// `out` (out): the object key.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `obj` is an object handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_key(obj: *const shoal_object_t, out: *mut u64) -> bool {
    with_object(obj, |o| {
        *out_arg(out, "out")? = o.key();
        Ok(())
    })
}

/// The object's class name. Free with `shoal_free`.
///
/// Returns: a new NUL-terminated string (free it with `shoal_free`), or NULL on error.
///
/// Errors: `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `obj` is an object handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_class_name(obj: *const shoal_object_t) -> *mut c_char {
    guard(|| Ok(malloc_string(&handle::object(obj)?.class_name()?)))
}

/// Writes a link value pointing at `obj` into `*out` (free with `shoal_value_free`), ready for
/// `shoal_object_set` or `shoal_list_insert`.
///
/// `out` (out): a `SHOAL_VALUE_LINK` value; free it with `shoal_value_free`.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `obj` is an object handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_as_link(
    obj: *const shoal_object_t,
    out: *mut shoal_value_t,
) -> bool {
    with_object(obj, |o| write_value(out, &o.link(), o.realm()))
}

/// The object a link property points to, or NULL with no error when the link is NULL. Release
/// the result with `shoal_release`.
///
/// Returns: a new `shoal_object_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_NO_SUCH_PROPERTY`, `SHOAL_ERR_WRONG_TYPE` (not a link property),
/// `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `obj` is an object handle; `property` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_get_linked(
    obj: *const shoal_object_t,
    property: *const c_char,
) -> *mut shoal_object_t {
    guard(|| {
        let o = handle::object(obj)?;
        Ok(match o.get_link(str_arg(property, "the property name")?)? {
            Some(target) => into_handle(Payload::Object(target)),
            None => std::ptr::null_mut(),
        })
    })
}

/// The object a LINK value points to (a value read with `shoal_object_get` or `shoal_list_get`,
/// or made by `shoal_object_as_link`), as a new handle reading through `realm`. Returns NULL
/// with no error for a NULL value. Release the result with `shoal_release`.
///
/// Errors: `SHOAL_ERR_WRONG_TYPE` (neither a link nor NULL), `SHOAL_ERR_NO_SUCH_CLASS`,
/// `SHOAL_ERR_OBJECT_DELETED` (no such object in what `realm` sees).
///
/// Requires:
/// `realm` is a realm handle; `link` a valid value.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_from_link(
    realm: *const shoal_realm_t,
    link: *const shoal_value_t,
) -> *mut shoal_object_t {
    guard(|| {
        let r = handle::realm(realm)?;
        match value_arg(link, Some(&r))? {
            Value::Null => Ok(std::ptr::null_mut()),
            Value::Link(l) => {
                if !r.with_view(|v| v.is_live(l.class_id, l.key))? {
                    return Err(Error::new(
                        ErrorCode::ObjectDeleted,
                        "the linked object does not exist",
                    ));
                }
                Ok(into_handle(Payload::Object(Object::new(
                    r.clone(),
                    l.class_id,
                    l.key,
                ))))
            }
            other => Err(Error::wrong_type(format!(
                "expected a link value, not {}",
                other.type_name()
            ))),
        }
    })
}

/// A list property of the object. Release with `shoal_release`.
///
/// Returns: a new `shoal_list_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_NO_SUCH_PROPERTY`, `SHOAL_ERR_WRONG_TYPE` (not a list),
/// `SHOAL_ERR_OBJECT_DELETED`.
///
/// Requires:
/// `obj` is an object handle; `property` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_get_list(
    obj: *const shoal_object_t,
    property: *const c_char,
) -> *mut shoal_list_t {
    guard(|| {
        let o = handle::object(obj)?;
        Ok(into_handle(Payload::List(
            o.list(str_arg(property, "the property name")?)?,
        )))
    })
}

/// The number of elements, or -1 on error.
///
/// Returns: the number of elements, or -1 on error.
///
/// Errors: `SHOAL_ERR_OBJECT_DELETED` (the list's object was deleted), `SHOAL_ERR_MISUSE` (a NULL
/// or released handle).
///
/// Requires:
/// `list` is a list handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_list_size(list: *const shoal_list_t) -> i64 {
    guard(|| Ok(handle::list(list)?.len()? as i64))
}

/// Reads the element at `index` into `*out` (free with `shoal_value_free`).
///
/// `out` (out): the element; free it with `shoal_value_free`.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INDEX_OUT_OF_BOUNDS`, `SHOAL_ERR_OBJECT_DELETED`.
///
/// Requires:
/// `list` is a list handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_list_get(
    list: *const shoal_list_t,
    index: usize,
    out: *mut shoal_value_t,
) -> bool {
    guard(|| {
        let l = handle::list(list)?;
        write_value(out, &l.get(index)?, l.object().realm())?;
        Ok(true)
    })
}

fn with_list(list: *const shoal_list_t, f: impl FnOnce(&crate::List) -> crate::Result<()>) -> bool {
    guard(|| {
        f(&handle::list(list)?)?;
        Ok(true)
    })
}

/// Inserts `value` before `index` (`index` == size appends). Needs a write transaction.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INDEX_OUT_OF_BOUNDS`, `SHOAL_ERR_WRONG_TYPE`,
/// `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`.
///
/// Requires:
/// `list` is a list handle; `value` a valid value.
#[no_mangle]
pub unsafe extern "C" fn shoal_list_insert(
    list: *mut shoal_list_t,
    index: usize,
    value: *const shoal_value_t,
) -> bool {
    with_list(list, |l| {
        l.insert(index, value_arg(value, Some(l.object().realm()))?)
    })
}

/// Replaces the element at `index`. Needs a write transaction.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INDEX_OUT_OF_BOUNDS`, `SHOAL_ERR_WRONG_TYPE`,
/// `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`, `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a NULL or
/// released handle).
///
/// Requires:
/// `list` is a list handle; `value` a valid value.
#[no_mangle]
pub unsafe extern "C" fn shoal_list_set(
    list: *mut shoal_list_t,
    index: usize,
    value: *const shoal_value_t,
) -> bool {
    with_list(list, |l| {
        l.set(index, value_arg(value, Some(l.object().realm()))?)
    })
}

/// Removes the element at `index`. Needs a write transaction.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INDEX_OUT_OF_BOUNDS`, `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`,
/// `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `list` is a list handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_list_erase(list: *mut shoal_list_t, index: usize) -> bool {
    with_list(list, |l| l.erase(index))
}

/// Moves the element at `from` so that it ends up at `to`. Needs a write transaction.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_INDEX_OUT_OF_BOUNDS`, `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`,
/// `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `list` is a list handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_list_move(list: *mut shoal_list_t, from: usize, to: usize) -> bool {
    with_list(list, |l| l.move_item(from, to))
}

/// Removes every element. Needs a write transaction.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`, `SHOAL_ERR_OBJECT_DELETED`, `SHOAL_ERR_MISUSE` (a
/// NULL or released handle).
///
/// Requires:
/// `list` is a list handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_list_clear(list: *mut shoal_list_t) -> bool {
    with_list(list, crate::List::clear)
}

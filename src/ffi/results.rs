//! Queries and results.

use super::convert::{shoal_value_t, str_arg, value_arg, write_value};
use super::error::guard;
use super::handle::{self, into_handle, Payload};
use super::{shoal_object_t, shoal_realm_t, shoal_results_t};
use crate::Results;
use std::ffi::c_char;

/// Runs `predicate` (Realm's query language: `== != < <= > >=`, `BEGINSWITH ENDSWITH CONTAINS
/// LIKE` with `[c]`, `AND OR NOT`, parentheses, `$0`..`$n` bound to `args`, paths through
/// links such as `owner.name`, `list.@count`, `TRUEPREDICATE`, trailing `SORT(a ASC, b DESC)`,
/// `DISTINCT(a)`, `LIMIT(n)`) over `class_name`. The results are live: they re-run on access
/// after the realm changed. Release with `shoal_release`.
///
/// Returns: a new `shoal_results_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_QUERY` (syntax, unknown property, type mismatch, missing
/// argument), `SHOAL_ERR_NO_SUCH_CLASS`.
///
/// Requires:
/// `realm` is a realm handle; strings NUL-terminated; `args` points to `nargs` valid values
/// (may be NULL when `nargs` is 0).
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_query(
    realm: *const shoal_realm_t,
    class_name: *const c_char,
    predicate: *const c_char,
    args: *const shoal_value_t,
    nargs: usize,
) -> *mut shoal_results_t {
    guard(|| {
        let r = handle::realm(realm)?;
        let class = str_arg(class_name, "the class name")?;
        let predicate = str_arg(predicate, "the predicate")?;
        // NULL is allowed only with no arguments (no size arithmetic: a huge `nargs` must not
        // overflow into a panic); the values themselves are converted one by one.
        if nargs > 0 && args.is_null() {
            return Err(crate::Error::invalid(format!(
                "args is NULL but nargs is {nargs}"
            )));
        }
        let mut values = Vec::with_capacity(nargs);
        for i in 0..nargs {
            // Safety: `args` holds `nargs` values per the contract (checked non-NULL above).
            values.push(value_arg(unsafe { args.add(i) }, Some(&r))?);
        }
        Ok(into_handle(Payload::Results(
            r.query(class, predicate, &values)?,
        )))
    })
}

/// All objects of `class_name` as live results. Release with `shoal_release`.
///
/// Returns: a new `shoal_results_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_NO_SUCH_CLASS`, `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or
/// released handle).
///
/// Requires:
/// `realm` is a realm handle; `class_name` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_objects(
    realm: *const shoal_realm_t,
    class_name: *const c_char,
) -> *mut shoal_results_t {
    guard(|| {
        let r = handle::realm(realm)?;
        Ok(into_handle(Payload::Results(
            r.objects(str_arg(class_name, "the class name")?)?,
        )))
    })
}

/// The number of results, or -1 on error.
///
/// Returns: the number of objects, or -1 on error.
///
/// Errors: `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `results` is a results handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_count(results: *const shoal_results_t) -> i64 {
    guard(|| Ok(handle::results(results)?.count()? as i64))
}

/// The object at `index`. Release with `shoal_release`.
///
/// Returns: a new `shoal_object_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INDEX_OUT_OF_BOUNDS`.
///
/// Requires:
/// `results` is a results handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_get(
    results: *const shoal_results_t,
    index: usize,
) -> *mut shoal_object_t {
    guard(|| {
        Ok(into_handle(Payload::Object(
            handle::results(results)?.get(index)?,
        )))
    })
}

fn derive(
    results: *const shoal_results_t,
    f: impl FnOnce(&Results) -> crate::Result<Results>,
) -> *mut shoal_results_t {
    guard(|| {
        Ok(into_handle(Payload::Results(f(&handle::results(
            results,
        )?)?)))
    })
}

/// New results sorted by `property` (a dotted path through links is allowed), replacing any
/// earlier sort. Release with `shoal_release`.
///
/// Returns: a new `shoal_results_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_NO_SUCH_PROPERTY`, `SHOAL_ERR_WRONG_TYPE` (a list property),
/// `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `results` is a results handle; `property` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_sort(
    results: *const shoal_results_t,
    property: *const c_char,
    ascending: bool,
) -> *mut shoal_results_t {
    derive(results, |r| {
        r.sort(str_arg(property, "the property name")?, ascending)
    })
}

/// New results sorted by several keys (`properties[0]` most significant), each with its own
/// direction. Release with `shoal_release`.
///
/// Returns: a new `shoal_results_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_NO_SUCH_PROPERTY`, `SHOAL_ERR_WRONG_TYPE` (a list property),
/// `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `results` is a results handle; `properties` and `ascending` hold `count` entries.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_sort_by(
    results: *const shoal_results_t,
    properties: *const *const c_char,
    ascending: *const bool,
    count: usize,
) -> *mut shoal_results_t {
    derive(results, |r| {
        if count > 0 && (properties.is_null() || ascending.is_null()) {
            return Err(crate::Error::invalid(format!(
                "properties or ascending is NULL but count is {count}"
            )));
        }
        let mut keys = Vec::with_capacity(count);
        for i in 0..count {
            // Safety: both arrays hold `count` entries per the contract (checked non-NULL).
            let (name, asc) = unsafe { (*properties.add(i), *ascending.add(i)) };
            keys.push((str_arg(name, "a property name")?, asc));
        }
        r.sort_by(&keys)
    })
}

/// New results keeping the first object of each distinct value of `property`. Release with
/// `shoal_release`.
///
/// Returns: a new `shoal_results_t` handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_NO_SUCH_PROPERTY`, `SHOAL_ERR_WRONG_TYPE` (a list property),
/// `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `results` is a results handle; `property` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_distinct(
    results: *const shoal_results_t,
    property: *const c_char,
) -> *mut shoal_results_t {
    derive(results, |r| {
        r.distinct(str_arg(property, "the property name")?)
    })
}

fn aggregate(
    results: *const shoal_results_t,
    property: *const c_char,
    out: *mut shoal_value_t,
    f: impl FnOnce(&Results, &str) -> crate::Result<crate::Value>,
) -> bool {
    guard(|| {
        let r = handle::results(results)?;
        let v = f(&r, str_arg(property, "the property name")?)?;
        write_value(out, &v, r.realm())?;
        Ok(true)
    })
}

/// The smallest value of a numeric or timestamp property into `*out` (NULL when empty).
///
/// `out` (out): the value; free it with `shoal_value_free`.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_WRONG_TYPE`, `SHOAL_ERR_NO_SUCH_PROPERTY`.
///
/// Requires:
/// `results` is a results handle; `property` NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_min(
    results: *const shoal_results_t,
    property: *const c_char,
    out: *mut shoal_value_t,
) -> bool {
    aggregate(results, property, out, Results::min)
}

/// The largest value (NULL when empty).
///
/// `out` (out): the value; free it with `shoal_value_free`.
///
/// Returns: true on success, false on error.
///
/// Errors: as `shoal_results_min`.
///
/// Requires:
/// As `shoal_results_min`.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_max(
    results: *const shoal_results_t,
    property: *const c_char,
    out: *mut shoal_value_t,
) -> bool {
    aggregate(results, property, out, Results::max)
}

/// The sum: INT for int properties, DOUBLE for float and double; 0 when empty.
///
/// `out` (out): the value; free it with `shoal_value_free`.
///
/// Returns: true on success, false on error.
///
/// Errors: as `shoal_results_min`.
///
/// Requires:
/// As `shoal_results_min`.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_sum(
    results: *const shoal_results_t,
    property: *const c_char,
    out: *mut shoal_value_t,
) -> bool {
    aggregate(results, property, out, Results::sum)
}

/// The mean as DOUBLE (NULL when empty).
///
/// `out` (out): the value; free it with `shoal_value_free`.
///
/// Returns: true on success, false on error.
///
/// Errors: as `shoal_results_min`.
///
/// Requires:
/// As `shoal_results_min`.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_average(
    results: *const shoal_results_t,
    property: *const c_char,
    out: *mut shoal_value_t,
) -> bool {
    aggregate(results, property, out, Results::average)
}

/// Deletes every object in the results; returns how many, or -1 on error. Needs a write
/// transaction.
///
/// Returns: the number of objects deleted, or -1 on error.
///
/// Errors: `SHOAL_ERR_NOT_IN_WRITE_TRANSACTION`, `SHOAL_ERR_REALM_CLOSED`, `SHOAL_ERR_MISUSE` (a
/// NULL or released handle).
///
/// Requires:
/// `results` is a results handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_delete_all(results: *mut shoal_results_t) -> i64 {
    guard(|| Ok(handle::results(results)?.delete_all()? as i64))
}

//! Fine-grained notifications: results, lists and objects report what each commit changed.

use super::config::shoal_free_userdata_fn_t;
use super::convert::UserData;
use super::error::guard;
use super::handle::{self, into_handle, Payload};
use super::realm::shoal_property_key_t;
use super::{shoal_list_t, shoal_object_t, shoal_results_t, shoal_token_t};
use crate::{CollectionChanges, ObjectChange};
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

/// An element that moved: its index in the old collection and in the new one.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shoal_move_t {
    /// Index in the old collection.
    pub from: usize,
    /// Index in the new collection.
    pub to: usize,
}

/// What changed in an observed results or list, valid only during the callback.
///
/// Deletions are indices in the old collection, insertions and modifications indices in the
/// new one (`modifications_old`: the same elements' old indices); a moved element is counted
/// as a deletion and an insertion and listed in `moves`. Every array is ascending (`moves` by
/// new index). `initial` marks the first callback (the initial state, nothing listed);
/// `collection_deleted` the last one (a list whose object was deleted).
#[repr(C)]
pub struct shoal_collection_changes_t {
    /// The realm version the changes bring the collection to.
    pub version: u64,
    /// The first callback: the initial state.
    pub initial: bool,
    /// The collection is gone; no callback follows.
    pub collection_deleted: bool,
    /// Old indices of removed elements.
    pub deletions: *const usize,
    /// Length of `deletions`.
    pub num_deletions: usize,
    /// New indices of added elements.
    pub insertions: *const usize,
    /// Length of `insertions`.
    pub num_insertions: usize,
    /// New indices of elements changed in place.
    pub modifications: *const usize,
    /// Old indices of the same elements.
    pub modifications_old: *const usize,
    /// Length of `modifications` and of `modifications_old`.
    pub num_modifications: usize,
    /// Moved elements.
    pub moves: *const shoal_move_t,
    /// Length of `moves`.
    pub num_moves: usize,
}

/// What changed in an observed object, valid only during the callback.
#[repr(C)]
pub struct shoal_object_changes_t {
    /// The realm version the change brings the object to.
    pub version: u64,
    /// The first callback: the initial state.
    pub initial: bool,
    /// The object was deleted; no callback follows.
    pub deleted: bool,
    /// The properties written, in schema order.
    pub changed: *const shoal_property_key_t,
    /// Their names (NUL-terminated UTF-8), in the same order.
    pub changed_names: *const *const c_char,
    /// Length of `changed` and of `changed_names`.
    pub num_changed: usize,
}

/// Called with what changed in an observed results or list.
pub type shoal_collection_change_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, changes: *const shoal_collection_changes_t)>;

/// Called with what changed in an observed object.
pub type shoal_object_change_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, changes: *const shoal_object_changes_t)>;

fn call_collection(cb: CollectionCallback, data: &UserData, c: &CollectionChanges) {
    let moves: Vec<shoal_move_t> = c
        .moves
        .iter()
        .map(|&(from, to)| shoal_move_t { from, to })
        .collect();
    let view = shoal_collection_changes_t {
        version: c.version,
        initial: c.initial,
        collection_deleted: c.collection_deleted,
        deletions: c.deletions.as_ptr(),
        num_deletions: c.deletions.len(),
        insertions: c.insertions.as_ptr(),
        num_insertions: c.insertions.len(),
        modifications: c.modifications.as_ptr(),
        modifications_old: c.modifications_old.as_ptr(),
        num_modifications: c.modifications.len(),
        moves: moves.as_ptr(),
        num_moves: moves.len(),
    };
    // Safety: the caller promised a valid callback for its userdata; `view` and the arrays it
    // points into outlive the call.
    unsafe { cb(data.ptr, &view) }
}

type CollectionCallback = unsafe extern "C" fn(*mut c_void, *const shoal_collection_changes_t);

fn collection_callback(
    callback: shoal_collection_change_fn_t,
    data: UserData,
) -> crate::Result<impl Fn(&CollectionChanges) + Send + Sync + 'static> {
    let cb = callback.ok_or_else(|| crate::Error::invalid("the callback must not be NULL"))?;
    Ok(move |c: &CollectionChanges| call_collection(cb, &data, c))
}

fn token(registration: crate::ChangeToken) -> *mut shoal_token_t {
    into_handle(Payload::Token {
        _registration: Arc::new(registration),
    })
}

/// Calls `callback` with what changed in `results` after every commit that changed them —
/// local commits and sync downloads alike — starting with their initial state. The callback
/// runs on the realm's scheduler (`shoal_config_set_scheduler`; default: a library thread);
/// the realm handle has moved to the notified version when it runs. Release the token to stop
/// the callbacks; `free_userdata` (may be NULL) runs when the callback is gone.
///
/// Returns: a new token handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a NULL callback), `SHOAL_ERR_REALM_CLOSED`,
/// `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `results` is a results handle; `callback` callable from any thread with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn shoal_results_observe(
    results: *const shoal_results_t,
    callback: shoal_collection_change_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_token_t {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let results = handle::results(results)?;
        Ok(token(
            results.observe(collection_callback(callback, data)?)?,
        ))
    })
}

/// Calls `callback` with what changed in `list` after every commit that changed it (for a list
/// of links, also when a linked object changed), starting with its initial state; when the
/// list's object is deleted a last callback has `collection_deleted` set. Delivery and
/// release as for `shoal_results_observe`.
///
/// Returns: a new token handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a NULL callback), `SHOAL_ERR_REALM_CLOSED`,
/// `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `list` is a list handle; `callback` callable from any thread with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn shoal_list_observe(
    list: *const shoal_list_t,
    callback: shoal_collection_change_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_token_t {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let list = handle::list(list)?;
        Ok(token(list.observe(collection_callback(callback, data)?)?))
    })
}

/// Calls `callback` with the properties written after every commit that changed `object`,
/// starting with its initial state; when the object is deleted a last callback has `deleted`
/// set. Delivery and release as for `shoal_results_observe`.
///
/// Returns: a new token handle (release it with `shoal_release`), or NULL on error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a NULL callback), `SHOAL_ERR_REALM_CLOSED`,
/// `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `object` is an object handle; `callback` callable from any thread with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn shoal_object_observe(
    object: *const shoal_object_t,
    callback: shoal_object_change_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_token_t {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let object = handle::object(object)?;
        let cb = callback.ok_or_else(|| crate::Error::invalid("the callback must not be NULL"))?;
        let registration = object.observe(move |c: &ObjectChange| {
            let keys: Vec<shoal_property_key_t> = c
                .changed
                .iter()
                .map(|k| shoal_property_key_t {
                    class_key: k.class_id,
                    property_key: k.prop_id,
                })
                .collect();
            // Property names never hold NUL (the schema refuses them); one that did is skipped
            // as an empty name rather than cut short.
            let names: Vec<CString> = c
                .changed_names
                .iter()
                .map(|n| CString::new(n.as_str()).unwrap_or_default())
                .collect();
            let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
            let view = shoal_object_changes_t {
                version: c.version,
                initial: c.initial,
                deleted: c.deleted,
                changed: keys.as_ptr(),
                changed_names: name_ptrs.as_ptr(),
                num_changed: keys.len(),
            };
            let data = &data;
            // Safety: the caller promised a valid callback for its userdata; `view` and the
            // arrays it points into outlive the call.
            unsafe { cb(data.ptr, &view) }
        })?;
        Ok(token(registration))
    })
}

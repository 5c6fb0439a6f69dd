//! Asynchronous work: writes on a library thread, opens that can be cancelled, admin lookups
//! that do not block.

use super::config::{call_with_realm, shoal_free_userdata_fn_t};
use super::convert::UserData;
use super::error::{guard, shoal_error_t, with_c_error};
use super::handle::{self, into_handle, Payload};
use super::{shoal_async_open_task_t, shoal_config_t, shoal_realm_t};
use crate::error::Error;
use crate::Realm;
use std::ffi::c_void;
use std::sync::Arc;

/// Writes inside an asynchronous write transaction, on a library thread. `realm` is a handle of
/// the realm's file inside the open transaction, valid during the call (it is closed after the
/// commit, and so are its objects): write through it, and leave the transaction open. Return true to commit, false to cancel
/// (nothing is written; the error the callback's last failed Shoal call left, or
/// `SHOAL_ERR_CALLBACK_FAILED`, goes to the completion).
pub type shoal_write_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, realm: *mut shoal_realm_t) -> bool>;

/// Gets the outcome of an asynchronous write: `error` NULL and the file's `version` after the
/// commit (which includes the write), or the error (valid during the call) and 0.
pub type shoal_write_completion_fn_t =
    Option<unsafe extern "C" fn(userdata: *mut c_void, error: *const shoal_error_t, version: u64)>;

/// Runs `write(userdata, txn)` inside a write transaction on a library thread, without
/// blocking the caller, and commits it when it returns true; then
/// `completion(userdata, error, version)` runs once on the realm's scheduler
/// (`shoal_config_set_scheduler`: during `shoal_scheduler_perform_work` on the app's thread;
/// default: on the library thread). `free_userdata` (may be NULL) runs after the completion.
///
/// `write` gets a handle of its own on the file: `realm` stays usable by the app meanwhile
/// and does not see the transaction. A write that returns false (or whose callback fails)
/// writes nothing. Writes asked for through one realm handle run one at a time, in the order
/// asked. With an app scheduler, `realm` has been refreshed to include the write when the
/// completion runs; with the library thread it has not (`shoal_realm_refresh`). A write not
/// started when the realm is closed does not run: its completion gets
/// `SHOAL_ERR_REALM_CLOSED`.
///
/// Returns: true when the write was queued (`completion` will run), false on error (then
/// neither callback runs, and `free_userdata` has run).
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a NULL callback), `SHOAL_ERR_REALM_CLOSED`,
/// `SHOAL_ERR_READ_ONLY`, `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `realm` is a realm handle; `write` and `completion` callable from any thread with
/// `userdata`.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_write_async(
    realm: *const shoal_realm_t,
    write: shoal_write_fn_t,
    completion: shoal_write_completion_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> bool {
    let data = Arc::new(UserData::new(userdata, free_userdata));
    guard(move || {
        let realm = handle::realm(realm)?;
        let write = write.ok_or_else(|| Error::invalid("the write function must not be NULL"))?;
        let completion =
            completion.ok_or_else(|| Error::invalid("the completion must not be NULL"))?;
        let for_write = data.clone();
        realm.write_async(
            move |txn| {
                let data = for_write;
                // Safety: the caller promised a write function callable with its userdata
                // from any thread.
                call_with_realm(txn, |h| unsafe { write(data.ptr, h) })
            },
            move |result| {
                let data = data;
                // Safety: as above, for the completion.
                match result {
                    Ok(version) => unsafe { completion(data.ptr, std::ptr::null(), version) },
                    Err(e) => with_c_error(&e, |err| unsafe { completion(data.ptr, err, 0) }),
                }
            },
        )?;
        Ok(true)
    })
}

/// Gets the outcome of an asynchronous open: the realm (a new handle the callback owns:
/// release it with `shoal_release`) and NULL, or NULL and the error (valid during the call).
pub type shoal_open_fn_t = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        realm: *mut shoal_realm_t,
        error: *const shoal_error_t,
    ),
>;

/// Opens the realm of `config` on a library thread, without blocking the caller: the whole
/// open, including the wait for the initial download when the sync config asks for it
/// (`shoal_sync_config_set_wait_for_initial_data`). `callback(userdata, realm, error)` then
/// runs once on the config's scheduler (`shoal_config_set_scheduler`; default: the library
/// thread), unless the open is cancelled (`shoal_async_open_task_cancel`). `free_userdata`
/// (may be NULL) runs after the callback, or for a cancelled open before the cancel returns.
///
/// Releasing the task does not cancel the open.
///
/// Returns: a new `shoal_async_open_task_t` handle (release it with `shoal_release`), or NULL
/// on error (then the callback never runs, and `free_userdata` has run).
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a NULL callback), `SHOAL_ERR_IO` (no library thread),
/// `SHOAL_ERR_MISUSE` (a NULL or released handle); the open's own errors reach `callback`.
///
/// Requires:
/// `config` is a config handle; `callback` callable from any thread with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn shoal_realm_open_async(
    config: *const shoal_config_t,
    callback: shoal_open_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_async_open_task_t {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let config = handle::config(config)?.lock().clone();
        let cb = callback.ok_or_else(|| Error::invalid("the callback must not be NULL"))?;
        let task = Realm::open_async(&config, move |result| {
            let data = data;
            // Safety: the caller promised a callback callable with its userdata from any
            // thread.
            match result {
                Ok(realm) => unsafe {
                    cb(
                        data.ptr,
                        into_handle(Payload::Realm(realm)),
                        std::ptr::null(),
                    )
                },
                Err(e) => {
                    with_c_error(&e, |err| unsafe { cb(data.ptr, std::ptr::null_mut(), err) })
                }
            }
        })?;
        Ok(into_handle(Payload::AsyncOpenTask(task)))
    })
}

/// Cancels an asynchronous open. `cancelled` (out, may be NULL) tells whether it was
/// cancelled (now or earlier): then the callback never runs, and before this returns the
/// open is undone: the realm it opened is closed and, if the file did not exist when the
/// open started, it is deleted (unless another handle of the file is open, or a synced
/// realm's session does not stop within 5 s; both logged). A cancel that comes while the
/// initial data downloads stops the wait at once. False: too late, the callback has run or
/// is running.
///
/// May block while the library thread stops (a file being created, a session stopping).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `task` is an async open task handle; `cancelled` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_async_open_task_cancel(
    task: *const shoal_async_open_task_t,
    cancelled: *mut bool,
) -> bool {
    guard(|| {
        let task = handle::async_open_task(task)?;
        let done = task.cancel();
        if !cancelled.is_null() {
            *super::convert::out_arg(cancelled, "cancelled")? = done;
        }
        Ok(true)
    })
}

//! Schedulers: delivering notifications and async completions on the app's own thread.

use super::config::shoal_free_userdata_fn_t;
use super::convert::{out_arg, UserData};
use super::error::guard;
use super::handle::{self, into_handle, Payload};
use super::{shoal_config_t, shoal_scheduler_t};
use crate::AppScheduler;
use std::ffi::c_void;

/// Tells the app that a scheduler has work waiting: the app should arrange to call
/// `shoal_scheduler_perform_work` on its own thread soon. Called on a library thread, at most
/// once per call to `shoal_scheduler_perform_work`; it must not block and must not run the
/// work itself.
pub type shoal_scheduler_notify_fn_t = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// A scheduler the app drives (the shape of `realm.h`'s): notifications and async completions
/// of every realm opened with a config that has it (`shoal_config_set_scheduler`) wait in its
/// queue until the app calls `shoal_scheduler_perform_work`, and then run on the app's thread.
/// `notify(userdata)` announces waiting work; `free_userdata` (may be NULL) runs when the
/// scheduler is gone.
///
/// Returns: a new `shoal_scheduler_t` handle (release it with `shoal_release`), or NULL on
/// error.
///
/// Errors: `SHOAL_ERR_INVALID_ARGUMENT` (a NULL `notify`).
///
/// Requires:
/// `notify` callable from any thread with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn shoal_scheduler_new(
    notify: shoal_scheduler_notify_fn_t,
    userdata: *mut c_void,
    free_userdata: shoal_free_userdata_fn_t,
) -> *mut shoal_scheduler_t {
    let data = UserData::new(userdata, free_userdata);
    guard(move || {
        let notify =
            notify.ok_or_else(|| crate::Error::invalid("the notify function must not be NULL"))?;
        let scheduler = AppScheduler::new(move || {
            let data = &data;
            // Safety: the caller promised a notify function callable with its userdata from
            // any thread.
            unsafe { notify(data.ptr) }
        });
        Ok(into_handle(Payload::Scheduler(scheduler)))
    })
}

/// Runs the work waiting on `scheduler` (notification callbacks, async completions) on the
/// calling thread, in the order it was posted. Work posted meanwhile waits for the next call.
///
/// `ran` (out, may be NULL): how many pieces of work ran.
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `scheduler` is a scheduler handle; `ran` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shoal_scheduler_perform_work(
    scheduler: *const shoal_scheduler_t,
    ran: *mut usize,
) -> bool {
    guard(|| {
        let n = handle::scheduler(scheduler)?.perform_work();
        if !ran.is_null() {
            *out_arg(ran, "ran")? = n;
        }
        Ok(true)
    })
}

/// Delivers the change notifications and async completions of realms opened with `config` on
/// `scheduler` instead of library threads (the default).
///
/// Returns: true on success, false on error.
///
/// Errors: `SHOAL_ERR_MISUSE` (a NULL or released handle).
///
/// Requires:
/// `config` is a config handle; `scheduler` a scheduler handle.
#[no_mangle]
pub unsafe extern "C" fn shoal_config_set_scheduler(
    config: *mut shoal_config_t,
    scheduler: *const shoal_scheduler_t,
) -> bool {
    guard(|| {
        let scheduler = handle::scheduler(scheduler)?;
        handle::config(config)?.lock().set_scheduler(scheduler);
        Ok(true)
    })
}

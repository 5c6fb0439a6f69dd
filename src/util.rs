//! Small utilities every layer shares: the wall clock, randomness and library threads.

use crate::error::{Error, ErrorCode, Result};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds (token expiry, user records).
#[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the users and sync layers
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The wall clock in milliseconds since the Unix epoch (0 before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A random number from the operating system (salts, jitter, backup names); if the OS has
/// none to give, one from std's randomly seeded hasher mixed with the time.
pub(crate) fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    })
}

/// Runs `work` on a new library thread and hands its result to `callback` there. A panic in
/// the callback is caught and logged (as Realm did with exceptions in `onError`).
#[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the users and sync layers
pub(crate) fn spawn_library_thread<T: Send + 'static>(
    name: &str,
    callback: impl FnOnce(Result<T>) + Send + 'static,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) {
    let callback = Arc::new(Mutex::new(Some(callback)));
    let fallback = callback.clone();
    let run = move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|_| Err(Error::internal("the operation panicked")));
        if let Some(callback) = callback.lock().take() {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || callback(result)));
            if outcome.is_err() {
                tracing::error!("an asynchronous callback panicked; ignored");
            }
        }
    };
    if let Err(e) = std::thread::Builder::new().name(name.to_owned()).spawn(run) {
        tracing::error!(error = %e, "cannot start a library thread");
        if let Some(callback) = fallback.lock().take() {
            callback(Err(Error::new(
                ErrorCode::Io,
                format!("cannot start a library thread: {e}"),
            )));
        }
    }
}

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

/// A request to stop a long operation (an asynchronous open), with wake-ups for the waits
/// that must notice it at once. Cancelling is final.
#[derive(Default)]
pub(crate) struct Cancellation {
    state: Mutex<CancelState>,
}

type Waker = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct CancelState {
    cancelled: bool,
    #[cfg_attr(not(feature = "sync"), allow(dead_code))] // wakers: the sync layer's waits
    next_id: u64,
    wakers: Vec<(u64, Waker)>,
}

impl Cancellation {
    /// A cancellation that nothing cancels (for the blocking calls that share code with the
    /// cancellable ones).
    pub(crate) fn never() -> Cancellation {
        Cancellation::default()
    }

    /// Cancels, then calls every registered waker (on the calling thread, outside the lock).
    pub(crate) fn cancel(&self) {
        let wakers = {
            let mut s = self.state.lock();
            s.cancelled = true;
            std::mem::take(&mut s.wakers)
        };
        for (_, wake) in wakers {
            wake();
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.lock().cancelled
    }

    /// Calls `wake` when this is cancelled, until the returned guard is dropped. A waiter
    /// registers first and then checks [`is_cancelled`](Self::is_cancelled) under the lock it
    /// waits with; `wake` takes that lock before notifying, so no wake-up is lost.
    #[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
    pub(crate) fn on_cancel(&self, wake: impl Fn() + Send + Sync + 'static) -> CancelGuard<'_> {
        let mut s = self.state.lock();
        let id = s.next_id;
        s.next_id += 1;
        if !s.cancelled {
            s.wakers.push((id, Arc::new(wake)));
        }
        CancelGuard { owner: self, id }
    }

    /// The error of an operation that was cancelled. It never reaches the app: a cancelled
    /// operation calls nothing back.
    #[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
    pub(crate) fn error() -> Error {
        Error::new(ErrorCode::Internal, "the operation was cancelled")
    }
}

/// Unregisters a waker of a [`Cancellation`] when dropped.
#[cfg_attr(not(feature = "sync"), allow(dead_code))] // used by the sync layer
pub(crate) struct CancelGuard<'a> {
    owner: &'a Cancellation,
    id: u64,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        // The waker goes outside the lock: dropping it may drop what it holds.
        let removed = {
            let mut s = self.owner.state.lock();
            let i = s.wakers.iter().position(|(id, _)| *id == self.id);
            i.map(|i| s.wakers.remove(i))
        };
        drop(removed);
    }
}

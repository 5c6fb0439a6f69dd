//! Where the library's callbacks run.
//!
//! Change notifications and the completions of asynchronous work are produced on library
//! threads. A [`Scheduler`] decides where the app's code then runs: [`LibraryThread`] (the
//! default) runs it at once on the library thread that produced it; an [`AppScheduler`] queues
//! it and tells the app "there is work", and the work runs when the app calls
//! [`AppScheduler::perform_work`] on its own thread or event loop — the shape of `realm.h`'s
//! scheduler, so a UI thread, an asyncio loop or a run loop can drive it.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// One piece of work for a scheduler.
pub type Work = Box<dyn FnOnce() + Send>;

/// Runs the library's callbacks somewhere. Implementations must not block in `post`: it is
/// called on the library's notifier and sync threads.
pub trait Scheduler: Send + Sync + 'static {
    /// Runs `work` later (or now) on the scheduler's thread. Work posted from one thread runs
    /// in the order it was posted.
    fn post(&self, work: Work);
}

/// The default scheduler: runs work at once, on the library thread that posts it.
#[derive(Debug, Default, Clone, Copy)]
pub struct LibraryThread;

impl Scheduler for LibraryThread {
    fn post(&self, work: Work) {
        run_guarded(work);
    }
}

/// The default scheduler as a shareable value.
pub fn library_thread() -> Arc<dyn Scheduler> {
    Arc::new(LibraryThread)
}

type NotifyFn = dyn Fn() + Send + Sync;

/// A scheduler the app drives: posted work waits in a queue, `notify` tells the app there is
/// some, and [`perform_work`](AppScheduler::perform_work) runs it on the calling thread.
///
/// `notify` is called when the queue goes from empty to non-empty (so at most once per call to
/// `perform_work`); it runs on a library thread and must only wake the app's loop (post a
/// message, write to a pipe, `call_soon_threadsafe`), never run the work itself.
pub struct AppScheduler {
    queue: Mutex<VecDeque<Work>>,
    notify: Box<NotifyFn>,
}

impl std::fmt::Debug for AppScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppScheduler")
            .field("pending", &self.queue.lock().len())
            .finish_non_exhaustive()
    }
}

impl AppScheduler {
    /// A scheduler that calls `notify` when work is waiting.
    pub fn new(notify: impl Fn() + Send + Sync + 'static) -> Arc<AppScheduler> {
        Arc::new(AppScheduler {
            queue: Mutex::new(VecDeque::new()),
            notify: Box::new(notify),
        })
    }

    /// Runs the work waiting now, in posting order, on the calling thread; returns how many
    /// pieces ran. Work posted while it runs waits for the next call (and notifies again).
    pub fn perform_work(&self) -> usize {
        let batch = std::mem::take(&mut *self.queue.lock());
        let n = batch.len();
        for work in batch {
            run_guarded(work);
        }
        n
    }

    /// How many pieces of work are waiting.
    pub fn pending(&self) -> usize {
        self.queue.lock().len()
    }
}

impl Scheduler for AppScheduler {
    fn post(&self, work: Work) {
        let was_empty = {
            let mut q = self.queue.lock();
            q.push_back(work);
            q.len() == 1
        };
        if was_empty {
            // A panicking notify must not take the library thread down with it.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.notify)())).is_err() {
                tracing::error!(target: "shoal::scheduler", "the app's scheduler notify function panicked");
            }
        }
    }
}

/// Runs one piece of work; a panic in it is logged and goes no further (the thread running it
/// serves other callbacks too).
fn run_guarded(work: Work) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
        tracing::error!(target: "shoal::scheduler", "a callback panicked; it was skipped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn app_scheduler_runs_work_only_when_the_app_asks_in_posting_order() {
        let notified = Arc::new(AtomicUsize::new(0));
        let n = notified.clone();
        let s = AppScheduler::new(move || {
            n.fetch_add(1, Ordering::SeqCst);
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        for i in 0..3 {
            let log = log.clone();
            s.post(Box::new(move || log.lock().push(i)));
        }
        assert_eq!(notified.load(Ordering::SeqCst), 1, "one wake-up per batch");
        assert!(log.lock().is_empty(), "nothing runs before perform_work");
        assert_eq!(s.pending(), 3);
        assert_eq!(s.perform_work(), 3);
        assert_eq!(*log.lock(), vec![0, 1, 2]);
        assert_eq!(s.perform_work(), 0);
        s.post(Box::new(|| {}));
        assert_eq!(
            notified.load(Ordering::SeqCst),
            2,
            "an empty queue notifies again"
        );
    }

    #[test]
    fn a_panicking_work_item_does_not_stop_the_others() {
        let s = AppScheduler::new(|| {});
        let ran = Arc::new(AtomicUsize::new(0));
        s.post(Box::new(|| panic!("boom")));
        let r = ran.clone();
        s.post(Box::new(move || {
            r.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(s.perform_work(), 2);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn work_posted_by_work_waits_for_the_next_call() {
        let s = AppScheduler::new(|| {});
        let s2 = s.clone();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        s.post(Box::new(move || {
            let r = r.clone();
            s2.post(Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }));
        }));
        assert_eq!(s.perform_work(), 1);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(s.perform_work(), 1);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}

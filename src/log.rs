//! Logging for applications: the core reports through `tracing`; an application without a
//! `tracing` subscriber of its own (a C, Python or Swift app) gets the events through one
//! callback with a level, a category (the event's target, e.g. `shoal::sync::runner`) and the
//! message with its fields.
//!
//! [`set_log_callback`] installs a process-wide `tracing` subscriber the first time it is
//! called; events below [`set_log_level`]'s level cost one atomic load. A callback that panics
//! is caught (and the event dropped); events a callback causes itself are not delivered again
//! to it (no recursion).

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::error::{Error, ErrorCode, Result};

/// How much is logged (Realm's `RealmLog` levels and numbers).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    All = 1,
    /// Protocol and storage detail.
    Trace = 2,
    /// What the library does and why.
    Debug = 3,
    /// Logins, sessions starting and stopping, compactions (the default).
    Info = 4,
    /// Something failed and is retried or worked around.
    Warn = 5,
    /// Something failed for good.
    Error = 6,
    /// Unrecoverable failures.
    Fatal = 7,
    /// Nothing.
    Off = 8,
}

impl LogLevel {
    /// The level for a C constant.
    pub fn from_i32(v: i32) -> Option<LogLevel> {
        use LogLevel::*;
        [All, Trace, Debug, Info, Warn, Error, Fatal, Off]
            .into_iter()
            .find(|l| *l as i32 == v)
    }

    fn of(level: &tracing::Level) -> LogLevel {
        match *level {
            tracing::Level::TRACE => LogLevel::Trace,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::WARN => LogLevel::Warn,
            _ => LogLevel::Error,
        }
    }
}

/// Gets each event: its level, category and message.
pub type LogCallback = Arc<dyn Fn(LogLevel, &str, &str) + Send + Sync>;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static CALLBACK: RwLock<Option<LogCallback>> = RwLock::new(None);
static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

thread_local! {
    /// Set while this thread runs the callback: events it causes are not delivered to it.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Sets the level below which events are dropped (default `Info`).
pub fn set_log_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// The current level.
pub fn log_level() -> LogLevel {
    LogLevel::from_i32(i32::from(LEVEL.load(Ordering::Relaxed))).unwrap_or(LogLevel::Info)
}

/// Sends every event at or above the level to `callback` (on the thread that logs it), or
/// stops sending them (`None`). The first call installs the process-wide `tracing` subscriber.
///
/// # Errors
/// `NotSupported` if the process already has another global `tracing` subscriber (a Rust
/// application that set up its own logging gets the events there instead).
pub fn set_log_callback(callback: Option<LogCallback>) -> Result<()> {
    let installed = INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(CallbackSubscriber::default())
            .map_err(|e| e.to_string())
    });
    if let Err(why) = installed {
        return Err(Error::new(
            ErrorCode::NotSupported,
            format!("another tracing subscriber is installed in this process: {why}"),
        ));
    }
    let old = std::mem::replace(&mut *CALLBACK.write(), callback);
    // Dropped outside the lock: dropping a binding's callback may run its code.
    drop(old);
    Ok(())
}

/// The subscriber behind [`set_log_callback`]: events only (spans are given ids and
/// otherwise ignored), filtered by [`set_log_level`].
#[derive(Default)]
struct CallbackSubscriber {
    next_span: AtomicU64,
}

impl tracing::Subscriber for CallbackSubscriber {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        LogLevel::of(metadata.level()) >= log_level()
    }

    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Never cache a callsite as off: the level can be lowered later.
        tracing::subscriber::Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // Levels change at run time: let every level reach `enabled`.
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        if IN_CALLBACK.with(Cell::get) {
            return;
        }
        let Some(callback) = CALLBACK.read().clone() else {
            return;
        };
        let mut text = Message::default();
        event.record(&mut text);
        let metadata = event.metadata();
        let level = LogLevel::of(metadata.level());
        IN_CALLBACK.with(|c| c.set(true));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            callback(level, metadata.target(), &text.0);
        }));
        IN_CALLBACK.with(|c| c.set(false));
        // A panicking log callback cannot be logged through itself; the event is dropped.
        drop(outcome);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// An event's message followed by its fields as `name=value`.
#[derive(Default)]
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            if !fields.is_empty() {
                self.0.push_str(&fields);
            }
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.0);
            self.0.push_str(value);
            self.0.push_str(&fields);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn events_reach_the_callback_at_the_level_with_their_fields() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        set_log_callback(Some(Arc::new(move |level, category, message| {
            sink.lock()
                .unwrap()
                .push((level, category.to_owned(), message.to_owned()));
            // An event the callback causes is not delivered to it again.
            tracing::info!("from inside the callback");
        })))
        .unwrap();
        let debug_event = |n: i32| tracing::debug!(target: "shoal::test", "debug {n}");
        set_log_level(LogLevel::Info);
        debug_event(1);
        tracing::warn!(code = 7, path = "a.realm", "a {} thing", "formatted");
        set_log_level(LogLevel::All);
        // The same callsite, hidden before, shows once the level is lowered.
        debug_event(2);
        tracing::trace!(target: "shoal::test", "now visible");
        set_log_level(LogLevel::Off);
        tracing::error!("off");
        set_log_callback(None).unwrap();
        set_log_level(LogLevel::Info);
        let seen = seen.lock().unwrap().clone();
        let ours: Vec<_> = seen
            .into_iter()
            .filter(|(_, c, _)| c.starts_with("shoal"))
            .collect();
        assert_eq!(
            ours,
            [
                (
                    LogLevel::Warn,
                    "shoal::log::tests".to_owned(),
                    "a formatted thing code=7 path=a.realm".to_owned()
                ),
                (
                    LogLevel::Debug,
                    "shoal::test".to_owned(),
                    "debug 2".to_owned()
                ),
                (
                    LogLevel::Trace,
                    "shoal::test".to_owned(),
                    "now visible".to_owned()
                ),
            ]
        );
        assert_eq!(LogLevel::from_i32(6), Some(LogLevel::Error));
        assert_eq!(LogLevel::from_i32(9), None);
    }
}

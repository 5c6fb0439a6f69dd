//! Opaque handles: every object handed to C is a boxed [`Handle`] whose address is recorded in
//! a process-wide set while it is alive.
//!
//! Checking the set before every use is what turns a NULL, foreign or already released pointer
//! into a `MISUSE` error instead of undefined behaviour. Each handle is one reference:
//! `shoal_clone` makes a new handle sharing the same underlying object, `shoal_release` frees
//! exactly that handle.

use crate::error::{Error, ErrorCode, Result};
use crate::{Config, List, Object, Realm, Results, Schema};
use parking_lot::{Mutex, RwLock};
use std::collections::HashSet;
use std::ffi::c_void;
use std::sync::{Arc, LazyLock};

/// What a handle holds. Everything is cheap to clone (reference counted).
#[derive(Clone)]
pub(crate) enum Payload {
    Schema(Arc<Mutex<Schema>>),
    Config(Arc<Mutex<Config>>),
    Realm(Realm),
    Object(Object),
    List(List),
    Results(Results),
    Scheduler(std::sync::Arc<crate::AppScheduler>),
    AsyncOpenTask(crate::AsyncOpenTask),
    #[cfg(feature = "sync")]
    App(crate::App),
    #[cfg(feature = "sync")]
    User(crate::User),
    #[cfg(feature = "sync")]
    Credentials(Arc<crate::Credentials>),
    /// A sync configuration under construction (copied into a config by
    /// `shoal_config_set_sync`).
    #[cfg(feature = "sync")]
    SyncConfig(Arc<Mutex<crate::SyncConfig>>),
    /// The sync session of a synced realm file.
    #[cfg(feature = "sync")]
    Session(crate::Session),
    /// A registration (change callback, later auth and progress callbacks): kept alive until
    /// the last handle is released, whatever its kind.
    Token {
        _registration: Arc<dyn std::any::Any + Send + Sync>,
    },
}

impl Payload {
    fn kind(&self) -> &'static str {
        match self {
            Payload::Schema(_) => "schema",
            Payload::Config(_) => "config",
            Payload::Realm(_) => "realm",
            Payload::Object(_) => "object",
            Payload::List(_) => "list",
            Payload::Results(_) => "results",
            Payload::Scheduler(_) => "scheduler",
            Payload::AsyncOpenTask(_) => "async open task",
            #[cfg(feature = "sync")]
            Payload::App(_) => "app",
            #[cfg(feature = "sync")]
            Payload::User(_) => "user",
            #[cfg(feature = "sync")]
            Payload::Credentials(_) => "credentials",
            #[cfg(feature = "sync")]
            Payload::SyncConfig(_) => "sync config",
            #[cfg(feature = "sync")]
            Payload::Session(_) => "session",
            Payload::Token { .. } => "token",
        }
    }
}

struct Handle {
    payload: Payload,
}

static LIVE: LazyLock<RwLock<HashSet<usize>>> = LazyLock::new(Default::default);

/// Boxes `payload` and returns it as an opaque pointer of type `T`.
pub(crate) fn into_handle<T>(payload: Payload) -> *mut T {
    let ptr = Box::into_raw(Box::new(Handle { payload }));
    LIVE.write().insert(ptr as usize);
    ptr.cast()
}

fn misuse(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::Misuse, msg)
}

/// A clone of the payload of a live handle.
pub(crate) fn payload(ptr: *const c_void, what: &str) -> Result<Payload> {
    if ptr.is_null() {
        return Err(misuse(format!(
            "NULL passed where a {what} handle is required"
        )));
    }
    let live = LIVE.read();
    if !live.contains(&(ptr as usize)) {
        return Err(misuse(format!(
            "the {what} handle is invalid or was already released"
        )));
    }
    // Safety: the address is in LIVE, so it came from `into_handle` and has not been freed
    // (release removes it from LIVE before freeing); the read lock keeps a concurrent release
    // from freeing it while we clone the payload.
    let handle = unsafe { &*ptr.cast::<Handle>() };
    Ok(handle.payload.clone())
}

fn wrong(p: &Payload, what: &str) -> Error {
    misuse(format!(
        "expected a {what} handle but got a {} handle",
        p.kind()
    ))
}

macro_rules! getter {
    ($name:ident, $variant:ident, $ty:ty, $what:literal) => {
        pub(crate) fn $name<T>(ptr: *const T) -> Result<$ty> {
            match payload(ptr.cast(), $what)? {
                Payload::$variant(v) => Ok(v),
                other => Err(wrong(&other, $what)),
            }
        }
    };
}

getter!(schema, Schema, Arc<Mutex<Schema>>, "schema");
getter!(config, Config, Arc<Mutex<Config>>, "config");
getter!(realm, Realm, Realm, "realm");
getter!(object, Object, Object, "object");
getter!(list, List, List, "list");
getter!(results, Results, Results, "results");
getter!(
    scheduler,
    Scheduler,
    std::sync::Arc<crate::AppScheduler>,
    "scheduler"
);
getter!(
    async_open_task,
    AsyncOpenTask,
    crate::AsyncOpenTask,
    "async open task"
);
#[cfg(feature = "sync")]
getter!(app, App, crate::App, "app");
#[cfg(feature = "sync")]
getter!(user, User, crate::User, "user");
#[cfg(feature = "sync")]
getter!(
    credentials,
    Credentials,
    Arc<crate::Credentials>,
    "credentials"
);

#[cfg(feature = "sync")]
getter!(
    sync_config,
    SyncConfig,
    Arc<Mutex<crate::SyncConfig>>,
    "sync config"
);
#[cfg(feature = "sync")]
getter!(session, Session, crate::Session, "session");

/// Frees one handle. Returns false if the pointer is not a live handle.
pub(crate) fn release(ptr: *mut c_void) -> bool {
    if ptr.is_null() {
        return true;
    }
    if !LIVE.write().remove(&(ptr as usize)) {
        return false;
    }
    // Safety: the address was in LIVE (so it is a live `Box<Handle>` from `into_handle`) and
    // we just removed it, so no other release can free it and no new reader can reach it.
    // Readers that cloned the payload earlier hold their own references.
    drop(unsafe { Box::from_raw(ptr.cast::<Handle>()) });
    true
}

/// A new handle sharing the object of `ptr`.
pub(crate) fn clone(ptr: *const c_void) -> Result<*mut c_void> {
    Ok(into_handle(payload(ptr, "any")?))
}

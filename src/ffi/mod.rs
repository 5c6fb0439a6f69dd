//! The C ABI: thin `extern "C"` functions that convert arguments, call the Rust API and map
//! errors. **API Boundary:** everything here is published in `include/shoal.h` and follows the
//! rules stated at the top of that header. Only this module knows about C strings, raw
//! pointers and handles.
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

// The order of these modules is the order of `include/shoal.h`, since cbindgen walks them in
// turn (one module per line, so that rustfmt keeps the order).
// 1. General: handles, memory, the last error, error codes, values, versions.
mod general;
// Error codes and categories (generated from the code table).
mod codes;
// The per-thread last error.
mod error;
// Values (`shoal_value_t`) and their conversions.
mod convert;
// 2. Schema and config.
mod config;
// 3. Realm.
mod realm;
// Schedulers: where notifications and async completions run.
mod scheduler;
// Asynchronous work: writes, cancellable opens.
mod async_work;
// 4. Objects and lists.
mod object;
// 5. Queries and results.
mod results;
// Fine-grained notifications of results, lists and objects.
mod observe;
// 6. App, credentials and users.
#[cfg(feature = "sync")]
mod app;
// 7. Sync: sync configs and sessions.
#[cfg(feature = "sync")]
mod sync;
// Handle bookkeeping (publishes nothing).
mod handle;

#[cfg(feature = "sync")]
pub use app::*;
pub use async_work::*;
pub use codes::*;
pub use config::*;
pub use convert::*;
pub use error::shoal_error_t;
pub use general::*;
pub use object::*;
pub use observe::*;
pub use realm::*;
pub use results::*;
pub use scheduler::*;
#[cfg(feature = "sync")]
pub use sync::*;

/// An open realm (opaque). Method of: `shoal_realm_*`.
pub struct shoal_realm_t {
    _opaque: [u8; 0],
}
/// A realm configuration (opaque). Method of: `shoal_config_*`.
pub struct shoal_config_t {
    _opaque: [u8; 0],
}
/// A schema under construction (opaque). Method of: `shoal_schema_*`.
pub struct shoal_schema_t {
    _opaque: [u8; 0],
}
/// An object of a realm (opaque). Method of: `shoal_object_*`.
pub struct shoal_object_t {
    _opaque: [u8; 0],
}
/// A list property of an object (opaque). Method of: `shoal_list_*`.
pub struct shoal_list_t {
    _opaque: [u8; 0],
}
/// Live query results (opaque). Method of: `shoal_results_*`.
pub struct shoal_results_t {
    _opaque: [u8; 0],
}
/// A scheduler the app drives (opaque). Method of: `shoal_scheduler_*`.
pub struct shoal_scheduler_t {
    _opaque: [u8; 0],
}
/// An asynchronous open of a realm (opaque). Method of: `shoal_async_open_task_*`.
pub struct shoal_async_open_task_t {
    _opaque: [u8; 0],
}
/// A callback registration; release it to unregister (opaque).
pub struct shoal_token_t {
    _opaque: [u8; 0],
}
/// The app of a process: users, credentials, sessions (opaque). Method of: `shoal_app_*`.
pub struct shoal_app_t {
    _opaque: [u8; 0],
}
/// A user of the app (opaque). Method of: `shoal_user_*`.
pub struct shoal_user_t {
    _opaque: [u8; 0],
}
/// Login credentials (opaque). Made by `shoal_credentials_*`.
pub struct shoal_credentials_t {
    _opaque: [u8; 0],
}
/// How a realm is synced: user, server URL and session options (opaque). Method of:
/// `shoal_sync_config_*`.
pub struct shoal_sync_config_t {
    _opaque: [u8; 0],
}
/// The sync session of a synced realm file (opaque). Method of: `shoal_session_*`.
pub struct shoal_session_t {
    _opaque: [u8; 0],
}

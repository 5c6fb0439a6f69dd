//! # Shoal
//!
//! An embedded object database with offline-first sync, re-creating Realm Java with the Realm
//! Object Server in Rust. This crate is the core: local realms on redb, exposed both as this
//! safe Rust API and, in [`ffi`], as a C ABI (`include/shoal.h`) that the Python, C++, Swift and
//! Kotlin bindings wrap.
//!
//! ```
//! use shoal::{Config, PropertyFlags, PropertyType, Realm, Schema, Value};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("people.realm").to_string_lossy().into_owned();
//! let mut schema = Schema::new();
//! schema.add_class("Person", Some("id"))?;
//! schema.add_property("Person", "id", PropertyType::Int, PropertyFlags::NONE, None)?;
//! schema.add_property("Person", "age", PropertyType::Int, PropertyFlags::NONE, None)?;
//! let mut config = Config::new(path);
//! config.set_schema(schema)?;
//!
//! let realm = Realm::open(&config)?;
//! realm.begin_write()?;
//! let ann = realm.create_object("Person", Some(&Value::Int(1)))?;
//! ann.set("age", 42)?;
//! realm.commit()?;
//!
//! let adults = realm.query("Person", "age >= $0", &[Value::Int(18)])?;
//! assert_eq!(adults.count()?, 1);
//! # Ok::<(), shoal::Error>(())
//! ```
//!
//! Start with [`Realm`] and [`Config`]; `docs/DESIGN.md` describes the storage format, the
//! history format and the C ABI conventions.

#![warn(missing_docs)]

#[cfg(feature = "sync")]
mod app;
mod async_work;
#[cfg(feature = "sync")]
mod auth_client;
mod config;
#[cfg(feature = "sync")]
mod credentials;
mod db;
mod dump;
mod error;
pub mod ffi;
mod history;
mod log;
#[cfg(feature = "sync")]
mod login;
mod merge;
mod notify;
mod object;
mod observe;
mod open;
pub mod protocol;
mod query;
pub mod replica;
mod results;
mod scheduler;
mod schema;
mod store;
#[cfg(feature = "sync")]
mod sync;
#[cfg(feature = "sync")]
mod tls;
#[cfg(feature = "sync")]
mod user;
#[cfg(feature = "sync")]
mod user_store;
mod util;
mod value;

#[cfg(feature = "sync")]
pub use app::{App, AuthCallbackToken, AuthEvent, METADATA_DIR, SYNC_ROOT_DIR, USER_STORE_FILE};
pub use async_work::AsyncOpenTask;
pub use config::{Config, InitialDataFn, MigrationFn};
#[cfg(feature = "sync")]
pub use credentials::{Credentials, PROVIDER_ACCESS_TOKEN};
pub use db::Realm;
pub use error::{Error, ErrorCategory, ErrorCode, Result};
pub use history::{
    changeset_header, decode_changeset, decode_changeset_full, encode_changeset, ChangeValue,
    Changeset, GlobalId, Instruction, OrderKey,
};
pub use log::{log_level, set_log_callback, set_log_level, LogCallback, LogLevel};
pub use notify::ChangeToken;
pub use object::{List, Object, PropertyKey};
pub use observe::{CollectionChanges, ObjectChange};
pub use open::delete_realm_files;
pub use results::Results;
pub use scheduler::{library_thread, AppScheduler, LibraryThread, Scheduler, Work};
pub use schema::{ObjectSchema, Property, PropertyFlags, Schema};
/// Sharing realms between users: the management realm and its objects.
#[cfg(feature = "sync")]
pub use sync::management;
#[cfg(feature = "sync")]
pub use sync::{
    set_default_error_handler, ConnectionState, ErrorHandler, Progress, ProgressDirection,
    ProgressMode, Session, SessionState, StopPolicy, SyncCallbackToken, SyncConfig, SyncError,
    SyncUrl, TokenBinder,
};
#[cfg(feature = "sync")]
pub use user::{User, UserInfo};
pub use value::{compare_values, ObjLink, PropertyType, Timestamp, Value, ValueRef};

/// The library version, `"X.Y.Z"`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

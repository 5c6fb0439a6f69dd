//! Sync: sync URLs and local paths ([`url`]), and the sync client: configuration
//! ([`config`]), sessions ([`session`]) driven by a per-session task ([`runner`]) over one
//! WebSocket per server ([`connection`]), all on the app's sync runtime ([`client`]).

pub(crate) mod client;
pub(crate) mod client_reset;
pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod runner;
pub(crate) mod session;
pub(crate) mod url;

pub use config::{ErrorHandler, StopPolicy, SyncConfig, TokenBinder};
pub use session::{
    ConnectionState, Progress, ProgressDirection, ProgressMode, Session, SessionState,
    SyncCallbackToken, SyncError,
};
pub use url::SyncUrl;

pub(crate) use crate::store::tables::SyncProgress;

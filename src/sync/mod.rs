//! Sync: the client side. Sync URLs and local paths ([`url`]); sessions and their
//! configuration ([`session`]), reporting [`error`]s, driven by a per-session task
//! ([`runner`]) over one WebSocket per server ([`connection`]), all on the app's sync runtime
//! ([`client`]); opening synced realms ([`realm`]); client resets ([`client_reset`]); the
//! management realm, through which users share realms ([`management`]).

pub(crate) mod client;
pub(crate) mod client_reset;
pub(crate) mod connection;
pub(crate) mod error;
pub mod management;
pub(crate) mod realm;
pub(crate) mod runner;
pub(crate) mod session;
pub(crate) mod url;

pub use error::SyncError;
pub use session::{
    set_default_error_handler, ConnectionState, ErrorHandler, Progress, ProgressDirection,
    ProgressMode, Session, SessionState, StopPolicy, SyncCallbackToken, SyncConfig, TokenBinder,
};
pub use url::SyncUrl;

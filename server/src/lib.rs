//! # shoal-server
//!
//! The Shoal server: the auth service of the Realm Object Server (ROS) 1.x/2.x re-created on
//! embedded storage (redb under `--data DIR`), speaking the JSON documented in
//! [`shoal::protocol::auth`], and the sync service: `GET /realm-sync`, a WebSocket speaking
//! [`shoal::protocol::sync`], with an ordered changeset log and a merged copy per realm path.
//!
//! ```no_run
//! # async fn example() -> Result<(), shoal_server::ServerError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = shoal_server::ServerConfig::new("./shoal-data");
//! shoal_server::run(listener, config, tokio::signal::ctrl_c()).await
//! # }
//! ```
//!
//! Layout: [`run`] (`server.rs`, the accept loop; `limits.rs`, connection limits; `tls.rs`,
//! TLS) → `http.rs` (the router) → `auth.rs` (the auth service, over `extract.rs`, the
//! extractors) and `sync/` (the sync WebSocket: `connection.rs` sessions, `log.rs` the
//! per-path log and realm copy, `gate.rs` upload checks) → `revocations.rs` (revoked refresh
//! tokens, shared by both) and `permissions/` (who may read, write and manage each realm:
//! grants, and the processing of management realms; shared by both) → `store.rs` (redb
//! tables) and [`tokens`] (ed25519 signing);
//! `limits.rs` bounds password hashing and slows down failed logins; `files.rs` keeps
//! everything under the data directory owner-only; `problem.rs` turns every failure into an
//! RFC 7807 answer. [`router`] opens the same state
//! and routes without a listener, for requests driven in-process (the fuzz targets).

mod auth;
pub mod config;
mod connection_limits;
mod extract;
mod files;
mod http;
mod login_limits;
mod password;
mod permissions;
mod problem;
mod revocations;
mod server;
mod store;
mod sync;
mod tls;
pub mod tokens;

pub use config::{Cli, LoginLimits, PasswordHashing, ServerConfig, TlsFiles};
pub use server::{router, run};
pub use store::StoreError;
pub use tls::TlsError;
pub use tokens::{TokenError, TokenVerifier};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The data directory, the key file or the socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The auth storage could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sync storage could not be opened.
    #[error(transparent)]
    Sync(#[from] sync::SyncStoreError),
    /// The permission storage could not be opened.
    #[error(transparent)]
    Permissions(#[from] permissions::PermissionsError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The password hasher could not be set up.
    #[error("password hashing: {0}")]
    Hash(String),
    /// The configuration is unusable (an empty admin password, an unreadable password file).
    #[error("configuration: {0}")]
    Config(String),
    /// The startup task panicked.
    #[error("startup failed: {0}")]
    Join(String),
}

//! The server's configuration and the command-line flags that fill it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The default life of an access token, in seconds (ten minutes; ROS 1 used one minute).
pub const DEFAULT_ACCESS_TOKEN_TTL: u64 = 600;

/// The default life of a refresh token, in seconds (ten years, as ROS).
pub const DEFAULT_REFRESH_TOKEN_TTL: u64 = 315_360_000;

/// The default cap on simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Seconds of silence after which a sync connection is closed.
pub const DEFAULT_SYNC_IDLE_TIMEOUT: u64 = 60;

/// Everything [`crate::run`] needs besides the listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the server keeps its state: `auth.redb` (users, accounts, password hashes,
    /// revoked tokens) and the token signing key. Created (mode 0700) if missing.
    pub data_dir: PathBuf,
    /// The life of access tokens, in seconds.
    pub access_token_ttl: u64,
    /// The life of refresh tokens, in seconds.
    pub refresh_token_ttl: u64,
    /// Whether the `debug` provider (log in as any identity, `admin` being an admin) is on.
    pub debug_provider: bool,
    /// The password of the built-in `realm-admin` account. `None` keeps the stored one (the
    /// empty password when the account is first created); `Some` sets it at every start.
    pub admin_password: Option<String>,
    /// How expensive password hashing is; [`PasswordHashing::Secure`] unless testing.
    pub password_hashing: PasswordHashing,
    /// The most connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// A sync connection that sends nothing (not even a PING; clients send one every 10 s)
    /// for this long is closed, ending its sessions.
    pub sync_idle_timeout: std::time::Duration,
}

impl ServerConfig {
    /// A configuration with every default, keeping its state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            debug_provider: false,
            admin_password: None,
            password_hashing: PasswordHashing::Secure,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            sync_idle_timeout: std::time::Duration::from_secs(DEFAULT_SYNC_IDLE_TIMEOUT),
        }
    }
}

/// The argon2 cost used for new password hashes. Stored hashes carry their own parameters,
/// so a server started with another setting still verifies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordHashing {
    /// Argon2id with the `argon2` crate's defaults (19 MiB, 2 passes): the only setting for
    /// real use.
    Secure,
    /// Argon2id with the smallest parameters (8 KiB, 1 pass): **insecure**, for tests only,
    /// where hundreds of hashes in a debug build would otherwise take minutes.
    InsecureFastForTests,
}

/// `shoal-server`: the Shoal auth server on embedded storage.
#[derive(Debug, Parser)]
#[command(name = "shoal-server", version, about)]
pub struct Cli {
    /// Directory for the server's state (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed as `listening on ADDR`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9080")]
    pub listen: SocketAddr,
    /// Life of access tokens, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_ACCESS_TOKEN_TTL)]
    pub access_token_ttl: u64,
    /// Life of refresh tokens, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_REFRESH_TOKEN_TTL)]
    pub refresh_token_ttl: u64,
    /// Enable the `debug` provider: anyone may log in as any identity (`admin` is an admin).
    #[arg(long)]
    pub debug_provider: bool,
    /// Set the password of the built-in `realm-admin` account (empty when first created).
    #[arg(long, value_name = "P")]
    pub admin_password: Option<String>,
    /// Most connections served at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds of silence after which a sync connection is closed (clients PING every 10 s).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_SYNC_IDLE_TIMEOUT)]
    pub sync_idle_timeout: u64,
    /// Hash new passwords with the cheapest argon2 parameters. Insecure: tests only.
    #[arg(long, hide = true)]
    pub insecure_fast_password_hashing: bool,
}

impl Cli {
    /// The [`ServerConfig`] these flags describe.
    pub fn to_config(&self) -> ServerConfig {
        ServerConfig {
            data_dir: self.data.clone(),
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            debug_provider: self.debug_provider,
            admin_password: self.admin_password.clone(),
            password_hashing: if self.insecure_fast_password_hashing {
                PasswordHashing::InsecureFastForTests
            } else {
                PasswordHashing::Secure
            },
            max_connections: self.max_connections.max(1),
            sync_idle_timeout: std::time::Duration::from_secs(self.sync_idle_timeout.max(1)),
        }
    }
}

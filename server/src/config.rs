//! The server's configuration and the command-line flags that fill it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The default life of an access token, in seconds (ten minutes; ROS 1 used one minute).
pub const DEFAULT_ACCESS_TOKEN_TTL: u64 = 600;

/// The default life of a refresh token, in seconds (ten years, as ROS).
pub const DEFAULT_REFRESH_TOKEN_TTL: u64 = 315_360_000;

/// The default cap on simultaneous connections (upgraded sync WebSockets included).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// The default cap on simultaneous connections from one IPv4 address or IPv6 /64.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// Seconds a client may take to send a request's headers (and its TLS handshake), and
/// that a keep-alive connection may stay idle between requests.
pub const DEFAULT_HEADER_TIMEOUT: u64 = 10;
/// Seconds a sync WebSocket may stay open without a session bound by a valid access token.
pub const DEFAULT_SYNC_BIND_TIMEOUT: u64 = 10;
/// File descriptors kept out of `max_connections` for storage files, the listener, logs.
pub const RESERVED_DESCRIPTORS: u64 = 256;
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
    /// The most connections open at once, upgraded sync WebSockets included. When all are
    /// taken a new connection evicts the least valuable open one (one that has not sent a
    /// request, or a WebSocket without a bound session, first; never a WebSocket with a
    /// bound session), or is refused with `503` if none may be evicted.
    pub max_connections: usize,
    /// The most connections open at once from one IPv4 address or IPv6 /64; more are
    /// refused with `503`. 0: no per-address limit (behind a reverse proxy every client has
    /// the proxy's address).
    pub max_connections_per_address: usize,
    /// How long a client may take to send a request's headers (and to complete its TLS
    /// handshake), and how long a keep-alive connection may stay idle between requests.
    pub header_timeout: std::time::Duration,
    /// A sync WebSocket that has no session bound by a valid access token for this long is
    /// closed (PINGs do not count); it is closed too when its last session ends and no other
    /// is bound within this time.
    pub sync_bind_timeout: std::time::Duration,
    /// Serve HTTPS and `wss://` (`realms://`) with this certificate chain and key instead of
    /// plain HTTP.
    pub tls: Option<TlsFiles>,
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
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            header_timeout: std::time::Duration::from_secs(DEFAULT_HEADER_TIMEOUT),
            sync_bind_timeout: std::time::Duration::from_secs(DEFAULT_SYNC_BIND_TIMEOUT),
            tls: None,
        }
    }

    /// Lowers `max_connections` so that, with [`RESERVED_DESCRIPTORS`] kept for storage and
    /// the rest of the process, connections cannot use more than `open_file_limit`
    /// descriptors (the process's soft `RLIMIT_NOFILE`). Returns the old value if it lowered
    /// it.
    pub fn fit_open_file_limit(&mut self, open_file_limit: u64) -> Option<usize> {
        let usable = open_file_limit.saturating_sub(RESERVED_DESCRIPTORS).max(16);
        let usable = usize::try_from(usable).unwrap_or(usize::MAX);
        if self.max_connections > usable {
            let old = self.max_connections;
            self.max_connections = usable;
            return Some(old);
        }
        None
    }
}

/// The PEM files of a TLS server: the certificate chain (the server's certificate first,
/// then any intermediates) and its private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
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
    /// Most connections open at once, sync WebSockets included (lowered to fit the open-file
    /// limit). When all are taken, a connection that has not sent a request or a WebSocket
    /// without a bound session is closed to make room.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS, env = "SHOAL_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Most connections open at once from one IPv4 address or IPv6 /64 (0: no limit; raise
    /// it or use 0 behind a reverse proxy).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, env = "SHOAL_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: usize,
    /// Seconds a client may take to send a request's headers or finish its TLS handshake, and
    /// that a keep-alive connection may stay idle.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_HEADER_TIMEOUT, env = "SHOAL_HEADER_TIMEOUT")]
    pub header_timeout: u64,
    /// Seconds a sync WebSocket may stay open without a session bound by a valid access token.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_SYNC_BIND_TIMEOUT, env = "SHOAL_SYNC_BIND_TIMEOUT")]
    pub sync_bind_timeout: u64,
    /// Serve HTTPS and wss:// (realms://) with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key", env = "SHOAL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert", env = "SHOAL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
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
            max_connections_per_address: self.max_connections_per_address,
            header_timeout: std::time::Duration::from_secs(self.header_timeout.max(1)),
            sync_bind_timeout: std::time::Duration::from_secs(self.sync_bind_timeout.max(1)),
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
        }
    }
}

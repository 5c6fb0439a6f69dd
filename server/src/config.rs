//! The server's configuration and the command-line flags that fill it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

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
/// MiB of partial changesets (UPLOAD_PARTs of changesets not complete yet) the sync service
/// buffers for all sessions together.
pub const DEFAULT_SYNC_PART_BUFFER_MIB: usize = 512;

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
    /// The password of the built-in `realm-admin` account; it must not be empty. `Some` sets it
    /// at every start (and removes a generated `DATA/admin-password`). `None` keeps the stored
    /// one, unless the account is new or its stored password is empty: then a strong password
    /// is generated, stored (hashed) and written to `DATA/admin-password` (mode 0600).
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
    /// The most bytes of partial changesets (UPLOAD_PARTs whose changeset has not ended yet)
    /// the sync service buffers for all sessions together; a part beyond it ends its session
    /// with `OTHER_SESSION_ERROR` (201, `try_again`) and drops the session's parts. Each
    /// session buffers at most one changeset of at most the protocol's `MAX_CHANGESET_BYTES`
    /// (128 MiB), only once it is bound with a valid access token and may write.
    pub sync_part_buffer_bytes: usize,
    /// How password hashing and failed logins are bounded.
    pub login_limits: LoginLimits,
    /// For crash tests of the real binary only (`--test-abort-at`, hidden): abort the process
    /// at this point of the permission processing. `None` always, but in those tests.
    #[doc(hidden)]
    pub test_abort_at: Option<AbortPoint>,
}

/// A point of the management realm processing where a server under a crash test aborts
/// itself (`--test-abort-at`), so that the tests can kill the real binary exactly between two
/// durable steps and check what it does after a restart.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AbortPoint {
    /// After a batch of answers (and the grants and offers they make) is recorded in
    /// `permissions.redb`, before the answers are written into the management realm.
    PermissionsRecorded,
    /// After the answers are written into the server's copy of the management realm, before
    /// they are appended to its log.
    AnswersWritten,
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
            sync_part_buffer_bytes: DEFAULT_SYNC_PART_BUFFER_MIB * 1024 * 1024,
            login_limits: LoginLimits::default(),
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            header_timeout: std::time::Duration::from_secs(DEFAULT_HEADER_TIMEOUT),
            sync_bind_timeout: std::time::Duration::from_secs(DEFAULT_SYNC_BIND_TIMEOUT),
            tls: None,
            test_abort_at: None,
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

/// How password hashing (argon2: about 19 MiB and tens of milliseconds per hash) and failed
/// logins are bounded. The defaults suit an exposed server; tests shorten the delays.
///
/// Hashing runs on `hash_threads` dedicated threads; at most `hash_queue` more hashes wait
/// (each waiting request holds only its password and a blocked thread) and a hash that waited
/// longer than `hash_max_wait` is not computed: both are answered `503` with `Retry-After`.
///
/// A password login that fails counts against its account (the user name, whether or not it
/// exists) and against the client's address (IPv4, or the /64 of IPv6). After
/// `free_failures_per_account` (resp. `free_failures_per_address`) failures, the next attempt
/// must wait `base_delay`, doubling with each further failure up to `max_delay`; attempts
/// within the wait are answered `429` with `Retry-After`, without checking the password (so
/// a correct password is refused too). A successful login clears its account's failures;
/// failures are forgotten after `forget_after` without any. At most `max_tracked` accounts
/// and as many addresses are remembered; beyond that the longest-quiet are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLimits {
    /// Threads that hash passwords; 0 picks the number of cores, at most 4.
    pub hash_threads: usize,
    /// Hashes that may wait for a thread.
    pub hash_queue: usize,
    /// The longest a hash may wait for a thread.
    pub hash_max_wait: std::time::Duration,
    /// Failures of one account before it is slowed down.
    pub free_failures_per_account: u32,
    /// Failures from one address before it is slowed down.
    pub free_failures_per_address: u32,
    /// The first wait.
    pub base_delay: std::time::Duration,
    /// The longest wait.
    pub max_delay: std::time::Duration,
    /// Failures older than this (with none since) are forgotten.
    pub forget_after: std::time::Duration,
    /// Accounts (and, separately, addresses) remembered at most.
    pub max_tracked: usize,
}

impl Default for LoginLimits {
    fn default() -> LoginLimits {
        LoginLimits {
            hash_threads: 0,
            hash_queue: 64,
            hash_max_wait: std::time::Duration::from_secs(10),
            free_failures_per_account: 5,
            free_failures_per_address: 20,
            base_delay: std::time::Duration::from_secs(1),
            max_delay: std::time::Duration::from_secs(300),
            forget_after: std::time::Duration::from_secs(900),
            max_tracked: 10_000,
        }
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

/// `shoal-server`: the Shoal server (auth and sync) on embedded storage.
///
/// Every flag can also be set through the environment variable shown with it (`[env: ...]`);
/// a flag on the command line wins over its variable. Boolean variables take true/false,
/// yes/no, on/off or 1/0.
#[derive(Debug, Parser)]
#[command(
    name = "shoal-server",
    version,
    about,
    long_about = None,
    after_help = "Every flag can also be set through the environment variable shown with it \
                  ([env: ...]); a flag on the command line wins. Boolean variables take \
                  true/false, yes/no, on/off or 1/0."
)]
pub struct Cli {
    /// Directory for the server's state (created if missing). Everything the server writes in
    /// it is readable by the server's user only (files 0600, directories 0700).
    #[arg(long, value_name = "DIR", env = "SHOAL_DATA")]
    pub data: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed as `listening on ADDR`).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9080",
        env = "SHOAL_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Life of access tokens, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_ACCESS_TOKEN_TTL,
        env = "SHOAL_ACCESS_TOKEN_TTL")]
    pub access_token_ttl: u64,
    /// Life of refresh tokens, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_REFRESH_TOKEN_TTL,
        env = "SHOAL_REFRESH_TOKEN_TTL")]
    pub refresh_token_ttl: u64,
    /// Enable the `debug` provider: anyone may log in as any identity (`admin` is an admin).
    /// For tests only.
    #[arg(long, env = "SHOAL_DEBUG_PROVIDER", value_parser = BoolishValueParser::new())]
    pub debug_provider: bool,
    /// The password of the built-in `realm-admin` account, set at every start. Prefer the
    /// variable or --admin-password-file: on the command line it is visible to every local
    /// user (ps, /proc/PID/cmdline). Without any, a password is generated on first start into
    /// DIR/admin-password.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "SHOAL_ADMIN_PASSWORD",
        hide_env_values = true,
        conflicts_with = "admin_password_file"
    )]
    pub admin_password: Option<String>,
    /// A file holding the password of the built-in `realm-admin` account (a trailing newline
    /// is not part of it), read at every start.
    #[arg(long, value_name = "FILE", env = "SHOAL_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<PathBuf>,
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
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_SYNC_IDLE_TIMEOUT,
        env = "SHOAL_SYNC_IDLE_TIMEOUT")]
    pub sync_idle_timeout: u64,
    /// MiB of partial changesets (large changesets uploaded in parts, not complete yet) the
    /// sync service buffers for all sessions together; beyond it a session is told to try
    /// again later.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_SYNC_PART_BUFFER_MIB,
        env = "SHOAL_SYNC_PART_BUFFER")]
    pub sync_part_buffer: usize,
    /// Hash new passwords with the cheapest argon2 parameters. Insecure: tests only.
    #[arg(long, hide = true, env = "SHOAL_INSECURE_FAST_PASSWORD_HASHING",
        value_parser = BoolishValueParser::new())]
    pub insecure_fast_password_hashing: bool,
    /// Abort the process at this point of the permission processing. Crash tests only.
    #[arg(long, hide = true, value_name = "POINT", env = "SHOAL_TEST_ABORT_AT")]
    pub test_abort_at: Option<AbortPoint>,
    /// Whether `admin_password` was given on the command line (rather than in the
    /// environment): set by [`Cli::parse_args`], which then warns.
    #[arg(skip)]
    pub admin_password_on_command_line: bool,
}

impl Cli {
    /// Parses the command line and the `SHOAL_*` variables (exits with clap's message on
    /// error, as `Parser::parse`), noting where the admin password came from.
    pub fn parse_args() -> Cli {
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.admin_password_on_command_line =
            matches.value_source("admin_password") == Some(ValueSource::CommandLine);
        cli
    }

    /// The [`ServerConfig`] these flags describe; reads `--admin-password-file`.
    ///
    /// # Errors
    /// [`crate::ServerError::Config`] if the admin password file cannot be read.
    pub fn to_config(&self) -> Result<ServerConfig, crate::ServerError> {
        if self.admin_password_on_command_line {
            tracing::warn!(
                "--admin-password on the command line is visible to every local user (ps, \
                 /proc/PID/cmdline); use SHOAL_ADMIN_PASSWORD or --admin-password-file instead"
            );
        }
        let admin_password = match &self.admin_password_file {
            Some(path) => Some(read_password_file(path)?),
            None => self.admin_password.clone(),
        };
        Ok(ServerConfig {
            data_dir: self.data.clone(),
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            debug_provider: self.debug_provider,
            admin_password,
            password_hashing: if self.insecure_fast_password_hashing {
                PasswordHashing::InsecureFastForTests
            } else {
                PasswordHashing::Secure
            },
            max_connections: self.max_connections.max(1),
            sync_idle_timeout: std::time::Duration::from_secs(self.sync_idle_timeout.max(1)),
            sync_part_buffer_bytes: self.sync_part_buffer.saturating_mul(1024 * 1024),
            login_limits: LoginLimits::default(),
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
            test_abort_at: self.test_abort_at,
        })
    }
}

/// The password in `path`, without one trailing `\n` or `\r\n`. Warns if others may read it.
fn read_password_file(path: &std::path::Path) -> Result<String, crate::ServerError> {
    let failed = |e: std::io::Error| {
        crate::ServerError::Config(format!("--admin-password-file {}: {e}", path.display()))
    };
    let text = std::fs::read_to_string(path).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(failed)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777),
                "the admin password file is readable by others");
        }
    }
    let password = text.strip_suffix('\n').unwrap_or(&text);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_a_shoal_variable() {
        let command = Cli::command();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let env = arg.get_env().and_then(|e| e.to_str());
            let expected = format!("SHOAL_{}", id.to_ascii_uppercase());
            assert_eq!(env, Some(expected.as_str()), "--{id}");
        }
    }
}

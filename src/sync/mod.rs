//! Sync: the hybrid logical clock that stamps changesets ([`clock`]), the merge engine that
//! integrates other replicas' changesets so that every copy converges whatever the arrival
//! order ([`merge`]), sync URLs and local paths ([`url`]), and the sync client: configuration
//! ([`config`]), sessions ([`session`]) driven by a per-session task ([`runner`]) over one
//! WebSocket per server ([`connection`]), all on the app's sync runtime ([`client`]).

pub(crate) mod client;
pub(crate) mod client_reset;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod merge;
pub(crate) mod runner;
pub(crate) mod session;
pub(crate) mod url;

pub use config::{ErrorHandler, StopPolicy, SyncConfig, TokenBinder};
pub use session::{
    ConnectionState, Progress, ProgressDirection, ProgressMode, Session, SessionState,
    SyncCallbackToken, SyncError,
};
pub use url::SyncUrl;

/// What a synced file remembers of its sync state, in the meta entry `sync` (4 × u64 LE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SyncProgress {
    /// The client file ident the server issued (0: none yet).
    pub(crate) ident: u64,
    /// The secret salt that came with `ident`.
    pub(crate) salt: u64,
    /// The last server version integrated (the download resumes after it).
    pub(crate) server_version: u64,
    /// The last local history version the server acknowledged (uploads resume after it).
    pub(crate) acked: u64,
}

impl SyncProgress {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for v in [self.ident, self.salt, self.server_version, self.acked] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes the meta entry; a malformed one reads as "never synced" (the server then
    /// issues a new ident, as after a client reset).
    pub(crate) fn decode(bytes: &[u8]) -> SyncProgress {
        if bytes.len() != 32 {
            return SyncProgress::default();
        }
        let at =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        SyncProgress {
            ident: at(0),
            salt: at(1),
            server_version: at(2),
            acked: at(3),
        }
    }
}

//! [`SyncError`]: what a session's error handler is told.

use crate::config::Config;
use crate::error::{Error, ErrorCategory, ErrorCode};

/// An error reported to a session's error handler.
///
/// A client reset (`is_client_reset`, code `CLIENT_RESET`) carries the realm file
/// (`original_path`), where the reset moves it (`backup_path`, chosen once when the error was
/// raised and recorded durably) and a configuration that opens the backup (`backup_config`).
/// The reset runs when the app calls
/// [`App::execute_client_reset`](crate::App::execute_client_reset) after closing every handle
/// of the realm, or else by itself at the next open of the realm once every handle has
/// closed (also after a restart of the app). Writes made in between are not synced: they are
/// in the backup only.
#[derive(Debug, Clone)]
pub struct SyncError {
    /// The code: the protocol's 100–116 (connection; 110–116 the client's own) or 200–213
    /// (session), `CLIENT_RESET` (7),
    /// `IO` (0) for network failures, or an auth/database code.
    pub code: i32,
    /// The family of `code`.
    pub category: ErrorCategory,
    /// What happened.
    pub message: String,
    /// Whether the session stopped for good (state ERROR); otherwise it retries by itself.
    pub is_fatal: bool,
    /// Whether the realm must be reset: close it and call
    /// [`App::execute_client_reset`](crate::App::execute_client_reset).
    pub is_client_reset: bool,
    /// For a client reset: the realm file.
    pub original_path: Option<String>,
    /// For a client reset: where the file will be moved by the reset (the file does not
    /// exist before the reset has run).
    pub backup_path: Option<String>,
    /// For a client reset: a configuration that opens the backup once the reset has run —
    /// read-only, unsynced, with the original configuration's encryption key, schema and
    /// schema version (Realm's `getBackupRealmConfiguration`). Boxed: a configuration is
    /// large, and errors travel through channels.
    pub backup_config: Option<Box<Config>>,
}

/// Equal when every field is; backup configurations compare by path (configurations hold
/// callbacks, which do not compare).
impl PartialEq for SyncError {
    fn eq(&self, other: &SyncError) -> bool {
        self.code == other.code
            && self.category == other.category
            && self.message == other.message
            && self.is_fatal == other.is_fatal
            && self.is_client_reset == other.is_client_reset
            && self.original_path == other.original_path
            && self.backup_path == other.backup_path
            && self.backup_config.as_deref().map(Config::path)
                == other.backup_config.as_deref().map(Config::path)
    }
}

impl Eq for SyncError {}

impl SyncError {
    pub(crate) fn new(code: i32, message: impl Into<String>, is_fatal: bool) -> SyncError {
        let category =
            crate::protocol::codes::info(code).map_or(ErrorCategory::Client, |row| row.category);
        SyncError {
            code,
            category,
            message: message.into(),
            is_fatal,
            is_client_reset: false,
            original_path: None,
            backup_path: None,
            backup_config: None,
        }
    }

    /// `e` as a sync error. A [`ErrorCode::Sync`] error without a protocol code would have
    /// the family's number, 200, which is also `SESSION_CLOSED` ("not an error"): it is
    /// reported as `OTHER_SESSION_ERROR` (201) instead.
    pub(crate) fn from_error(e: &Error, is_fatal: bool) -> SyncError {
        let code = match e.raw_code() {
            c if e.code() == ErrorCode::Sync && c == ErrorCode::Sync as i32 => {
                crate::protocol::codes::SessionErrorCode::OtherSessionError as i32
            }
            c => c,
        };
        SyncError::new(code, e.message(), is_fatal)
    }

    /// The code's constant name without prefix (`TOKEN_EXPIRED`, `CLIENT_RESET`, ...).
    pub fn name(&self) -> &'static str {
        code_name(self.code)
    }

    /// This error as an [`Error`] (for failed waits).
    pub fn to_error(&self) -> Error {
        if self.category == ErrorCategory::Sync {
            Error::sync(self.code, self.message.clone())
        } else {
            let code = ErrorCode::ALL
                .iter()
                .copied()
                .find(|c| *c as i32 == self.code)
                .unwrap_or(ErrorCode::Unknown);
            Error::new(code, self.message.clone())
        }
    }
}

/// The name of any code a [`SyncError`] can carry.
pub(crate) fn code_name(code: i32) -> &'static str {
    crate::protocol::codes::info(code).map_or("UNKNOWN", |row| row.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_error_without_a_protocol_code_is_never_200() {
        // 200 is both the SYNC family and SESSION_CLOSED ("no error"): an error of the client
        // without a protocol code is reported as OTHER_SESSION_ERROR.
        let e = SyncError::from_error(&Error::new(ErrorCode::Sync, "local failure"), true);
        assert_eq!((e.code, e.name()), (201, "OTHER_SESSION_ERROR"));
        assert_eq!(e.category, ErrorCategory::Sync);
        // Protocol codes and other codes pass through.
        let e = SyncError::from_error(&Error::sync(104, "too large"), true);
        assert_eq!((e.code, e.name()), (104, "LIMITS_EXCEEDED"));
        let e = SyncError::from_error(&Error::new(ErrorCode::Io, "offline"), false);
        assert_eq!(e.code, ErrorCode::Io as i32);
    }

    #[test]
    fn errors_compare_their_backup_configs_by_path() {
        let mut a = SyncError::new(7, "reset", true);
        let mut b = a.clone();
        assert_eq!(a, b);
        a.backup_config = Some(Box::new(Config::new("/x")));
        assert_ne!(a, b);
        b.backup_config = Some(Box::new(Config::new("/x")));
        assert_eq!(a, b);
    }
}

//! [`SyncError`]: what a session's error handler is told.

use crate::error::{Error, ErrorCategory, ErrorCode};

/// An error reported to a session's error handler.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// For a client reset: where the file will be moved by the reset.
    pub backup_path: Option<String>,
}

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
        }
    }

    pub(crate) fn from_error(e: &Error, is_fatal: bool) -> SyncError {
        SyncError::new(e.raw_code(), e.message(), is_fatal)
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

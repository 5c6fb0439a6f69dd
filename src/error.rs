//! Errors of the Rust API and their stable numeric codes.
//!
//! Every fallible operation returns [`Error`]. Each variant maps to one [`ErrorCode`] whose number
//! is part of the C ABI: numbers are assigned once and never reused (a unit test pins them). Codes
//! below 1000 are taken from the reference system (Realm Object Server) so that bindings can map
//! them one to one; database codes start at 1000.

use std::fmt;

pub use crate::protocol::codes::{ErrorCategory, ErrorCode};

/// An error of the Shoal Rust API: a stable [`ErrorCode`], a message for people, and the file
/// path involved where there is one.
///
/// After any failed call the realm is unchanged unless the call's documentation says otherwise:
/// a failed write operation inside a transaction leaves the transaction open and its earlier
/// writes intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
    path: Option<String>,
    /// The HTTP status of an [`ErrorCode::Http`] error.
    http_status: Option<u16>,
    /// The protocol code of an [`ErrorCode::Sync`] error.
    sync_code: Option<i32>,
}

impl Error {
    /// A new error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            path: None,
            http_status: None,
            sync_code: None,
        }
    }

    /// An [`ErrorCode::Sync`] error with the protocol's `code` (100–116, 200–213).
    pub fn sync(code: i32, message: impl Into<String>) -> Error {
        Error {
            sync_code: Some(code),
            ..Error::new(ErrorCode::Sync, message)
        }
    }

    /// An [`ErrorCode::Http`] error for an HTTP `status` that has no Realm code. A status
    /// outside 300–599 is kept as the message's detail only, and the raw code is then 300.
    pub fn http(status: u16, message: impl Into<String>) -> Error {
        Error {
            http_status: (300..=599).contains(&status).then_some(status),
            ..Error::new(ErrorCode::Http, message)
        }
    }

    /// Attaches the file path the error is about.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Error {
        self.path = Some(path.into());
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The number to report through the C ABI: the HTTP status for an [`ErrorCode::Http`]
    /// error ("HTTP statuses 300–599 pass through as themselves"), else `code() as i32`.
    pub fn raw_code(&self) -> i32 {
        match (self.code, self.http_status) {
            (ErrorCode::Http, Some(status)) => i32::from(status),
            (ErrorCode::Sync, _) => self.sync_code.unwrap_or(ErrorCode::Sync as i32),
            (code, _) => code as i32,
        }
    }

    /// The HTTP status of an [`ErrorCode::Http`] error.
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// The category of the code.
    pub fn category(&self) -> ErrorCategory {
        self.code.category()
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The file path involved, if any.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidArgument, message)
    }

    pub(crate) fn wrong_type(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::WrongType, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Internal, message)
    }

    pub(crate) fn no_such_class(name: &str) -> Error {
        Error::new(
            ErrorCode::NoSuchClass,
            format!("no class named '{name}' in the schema"),
        )
    }

    pub(crate) fn no_such_property(class: &str, name: &str) -> Error {
        Error::new(
            ErrorCode::NoSuchProperty,
            format!("class '{class}' has no property named '{name}'"),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.http_status {
            Some(status) => write!(f, "{} (HTTP {status})", self.message)?,
            None => write!(f, "{} ({})", self.message, self.code.name())?,
        }
        if let Some(path) = &self.path {
            write!(f, " [{path}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The result type of the Shoal Rust API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<redb::StorageError> for Error {
    fn from(err: redb::StorageError) -> Error {
        match err {
            redb::StorageError::Corrupted(msg) => Error::new(
                ErrorCode::IncompatibleFile,
                format!("the realm file is corrupt: {msg}"),
            ),
            redb::StorageError::Io(io) => Error::from(io),
            other => Error::new(ErrorCode::Io, format!("storage error: {other}")),
        }
    }
}

impl From<redb::TransactionError> for Error {
    fn from(err: redb::TransactionError) -> Error {
        match err {
            redb::TransactionError::Storage(s) => Error::from(s),
            other => Error::new(ErrorCode::Io, format!("transaction error: {other}")),
        }
    }
}

impl From<redb::TableError> for Error {
    fn from(err: redb::TableError) -> Error {
        match err {
            redb::TableError::Storage(s) => Error::from(s),
            other => Error::new(ErrorCode::IncompatibleFile, format!("table error: {other}")),
        }
    }
}

impl From<redb::CommitError> for Error {
    fn from(err: redb::CommitError) -> Error {
        match err {
            redb::CommitError::Storage(s) => Error::from(s),
            other => Error::new(ErrorCode::Io, format!("commit failed: {other}")),
        }
    }
}

impl From<redb::DatabaseError> for Error {
    fn from(err: redb::DatabaseError) -> Error {
        match err {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::new(
                ErrorCode::FileInUse,
                "the realm file is open in another process; Shoal allows one process per file",
            ),
            redb::DatabaseError::Storage(s) => Error::from(s),
            redb::DatabaseError::RepairAborted => {
                Error::new(ErrorCode::IncompatibleFile, "the realm file needs repair")
            }
            redb::DatabaseError::UpgradeRequired(v) => Error::new(
                ErrorCode::FormatUpgradeRequired,
                format!("the file uses storage format {v}, which this version cannot open"),
            ),
            other => Error::new(
                ErrorCode::IncompatibleFile,
                format!("cannot open the realm file: {other}"),
            ),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        use std::io::ErrorKind;
        if let Some(d) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<crate::store::crypto::DecryptionError>())
        {
            return Error::new(
                ErrorCode::DecryptionFailed,
                format!("decryption failed: {d}"),
            );
        }
        let code = match err.kind() {
            ErrorKind::NotFound => ErrorCode::FileNotFound,
            ErrorKind::PermissionDenied => ErrorCode::FilePermissionDenied,
            ErrorKind::InvalidData => ErrorCode::IncompatibleFile,
            _ => ErrorCode::Io,
        };
        Error::new(code, format!("I/O error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Uniqueness is checked with the code table (`protocol::codes`).
    #[test]
    fn error_codes_are_never_renumbered() {
        // Pinned numbers: changing one breaks every binding.
        assert_eq!(ErrorCode::Unknown as i32, -1);
        assert_eq!(ErrorCode::Io as i32, 0);
        assert_eq!(ErrorCode::Json as i32, 1);
        assert_eq!(ErrorCode::ClientReset as i32, 7);
        assert_eq!(ErrorCode::InvalidArgument as i32, 1000);
        assert_eq!(ErrorCode::DuplicatePrimaryKey as i32, 1008);
        assert_eq!(ErrorCode::DecryptionFailed as i32, 1016);
        assert_eq!(ErrorCode::RealmInUse as i32, 1025);
        assert_eq!(ErrorCode::Timeout as i32, 1027);
        assert_eq!(ErrorCode::Http as i32, 300);
        let auth: Vec<i32> = [
            ErrorCode::InvalidParameters,
            ErrorCode::MissingParameters,
            ErrorCode::InvalidCredentials,
            ErrorCode::UnknownAccount,
            ErrorCode::ExistingAccount,
            ErrorCode::AccessDenied,
            ErrorCode::ExpiredRefreshToken,
            ErrorCode::InvalidHost,
            ErrorCode::ServerMisconfiguration,
        ]
        .iter()
        .map(|c| *c as i32)
        .collect();
        assert_eq!(auth, [601, 602, 611, 612, 613, 614, 615, 616, 801]);
        assert_eq!(ErrorCode::MultipleUsersLoggedIn as i32, 1026);
        assert_eq!(ErrorCategory::Auth as i32, 5);
        assert_eq!(ErrorCategory::Http as i32, 6);
    }

    #[test]
    fn auth_codes_match_the_protocol_and_http_statuses_pass_through() {
        for &code in crate::protocol::auth::AuthErrorCode::ALL {
            let ours = ErrorCode::from_auth_code(code as i32).expect("mapped");
            assert_eq!(ours as i32, code as i32);
            assert_eq!(ours.category(), ErrorCategory::Auth);
        }
        assert_eq!(ErrorCode::from_auth_code(404), None);
        let e = Error::http(404, "not found");
        assert_eq!(
            (e.code(), e.raw_code(), e.http_status()),
            (ErrorCode::Http, 404, Some(404))
        );
        assert_eq!(e.category(), ErrorCategory::Http);
        assert_eq!(e.to_string(), "not found (HTTP 404)");
        let e = Error::http(200, "odd");
        assert_eq!((e.raw_code(), e.http_status()), (300, None));
        let e = Error::new(ErrorCode::AccessDenied, "no");
        assert_eq!(e.raw_code(), 614);
    }

    #[test]
    fn every_code_has_a_distinct_name() {
        let names: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}

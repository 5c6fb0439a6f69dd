//! Errors of the Rust API and their stable numeric codes.
//!
//! Every fallible operation returns [`Error`]. Each variant maps to one [`ErrorCode`] whose number
//! is part of the C ABI: numbers are assigned once and never reused (a unit test pins them). Codes
//! below 1000 are taken from the reference system (Realm Object Server) so that bindings can map
//! them one to one; database codes start at 1000.

use std::fmt;

/// The stable numeric code of an error, as seen through the C ABI (`shoal_error_t.code`).
///
/// New codes may be added; existing numbers never change meaning. There is no "OK" code: success
/// is reported by the return value, and `IO` is 0 as in the reference system.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// An error without a more specific code.
    Unknown = -1,
    /// An I/O or network error; usually recoverable by retrying.
    Io = 0,
    /// Malformed JSON handed to the library.
    Json = 1,
    /// The synced realm must be reset from the server.
    ClientReset = 7,
    /// A sync session error from the server or the sync client: the protocol's code (100–109
    /// connection, 200–213 session) is [`Error::raw_code`]; 200 stands for the whole family.
    Sync = 200,
    /// The auth server answered with an HTTP status (300–599) that carries no Realm code of its
    /// own (an unknown route, a server error, a redirect). The status itself is
    /// [`Error::raw_code`] and [`Error::http_status`]; 300 stands for the whole family.
    Http = 300,
    /// Auth: a parameter of the request is malformed (the server's `601`).
    InvalidParameters = 601,
    /// Auth: a required parameter is missing (the server's `602`).
    MissingParameters = 602,
    /// Auth: unknown user, wrong password, or a token the server did not issue (`611`).
    InvalidCredentials = 611,
    /// Auth: the account or user does not exist (`612`).
    UnknownAccount = 612,
    /// Auth: the account to register exists already (`613`).
    ExistingAccount = 613,
    /// Auth: the user may not do this, e.g. a non-admin looking up users (`614`).
    AccessDenied = 614,
    /// Auth: the refresh token is expired or revoked, or the user is logged out (`615`).
    ExpiredRefreshToken = 615,
    /// An argument is invalid (empty name, out-of-range number, bad UTF-8, ...).
    InvalidArgument = 1000,
    /// A value of the wrong type for a property or operation.
    WrongType = 1001,
    /// The operation needs a write transaction and none is open.
    NotInWriteTransaction = 1002,
    /// A write transaction is already open on this realm handle.
    AlreadyInWriteTransaction = 1003,
    /// The realm handle was closed.
    RealmClosed = 1004,
    /// The object was deleted (or belongs to a snapshot where it does not exist).
    ObjectDeleted = 1005,
    /// No class of that name exists in the schema.
    NoSuchClass = 1006,
    /// No property of that name exists in the class.
    NoSuchProperty = 1007,
    /// An object with that primary key already exists.
    DuplicatePrimaryKey = 1008,
    /// The file's schema differs from the configuration's and no migration was provided.
    MigrationNeeded = 1009,
    /// The configured schema version is lower than the file's.
    SchemaVersionLower = 1010,
    /// The schema changed but the schema version was not raised.
    SchemaChangedWithoutVersionBump = 1011,
    /// A write on a read-only realm.
    ReadOnly = 1012,
    /// The realm file does not exist.
    FileNotFound = 1013,
    /// The file system refused access.
    FilePermissionDenied = 1014,
    /// The file is not a Shoal realm or is corrupt.
    IncompatibleFile = 1015,
    /// The encryption key is wrong, missing, or the file was tampered with.
    DecryptionFailed = 1016,
    /// The file was written by an older format and must be upgraded.
    FormatUpgradeRequired = 1017,
    /// Another process has the realm file open.
    FileInUse = 1018,
    /// The query string could not be parsed or does not fit the schema.
    InvalidQuery = 1019,
    /// A NULL or released handle, or another misuse of the API.
    Misuse = 1020,
    /// An internal error (a bug); reported instead of a crash.
    Internal = 1021,
    /// An index is past the end of a list or results.
    IndexOutOfBounds = 1022,
    /// The operation is not supported for this kind of realm.
    NotSupported = 1023,
    /// A user callback (migration, initial data) reported failure.
    CallbackFailed = 1024,
    /// The realm is open and the operation needs it closed.
    RealmInUse = 1025,
    /// The current user was asked for while more than one user is logged in.
    MultipleUsersLoggedIn = 1026,
    /// A wait (for upload, download or initial data) ran out of time.
    Timeout = 1027,
}

impl ErrorCode {
    /// The category this code belongs to (`shoal_error_t.category`).
    pub fn category(self) -> ErrorCategory {
        use ErrorCode::*;
        match self {
            Unknown | Io | Json | ClientReset | Timeout => ErrorCategory::Client,
            Sync => ErrorCategory::Sync,
            Http => ErrorCategory::Http,
            InvalidParameters | MissingParameters | InvalidCredentials | UnknownAccount
            | ExistingAccount | AccessDenied | ExpiredRefreshToken => ErrorCategory::Auth,
            FileNotFound
            | FilePermissionDenied
            | IncompatibleFile
            | DecryptionFailed
            | FormatUpgradeRequired
            | FileInUse => ErrorCategory::File,
            Internal => ErrorCategory::Internal,
            _ => ErrorCategory::Logic,
        }
    }

    /// The constant name of this code without the `SHOAL_ERR_` prefix, e.g. `"NO_SUCH_CLASS"`.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Unknown => "UNKNOWN",
            Io => "IO",
            Json => "JSON",
            ClientReset => "CLIENT_RESET",
            Sync => "SYNC",
            Http => "HTTP",
            InvalidParameters => "INVALID_PARAMETERS",
            MissingParameters => "MISSING_PARAMETERS",
            InvalidCredentials => "INVALID_CREDENTIALS",
            UnknownAccount => "UNKNOWN_ACCOUNT",
            ExistingAccount => "EXISTING_ACCOUNT",
            AccessDenied => "ACCESS_DENIED",
            ExpiredRefreshToken => "EXPIRED_REFRESH_TOKEN",
            InvalidArgument => "INVALID_ARGUMENT",
            WrongType => "WRONG_TYPE",
            NotInWriteTransaction => "NOT_IN_WRITE_TRANSACTION",
            AlreadyInWriteTransaction => "ALREADY_IN_WRITE_TRANSACTION",
            RealmClosed => "REALM_CLOSED",
            ObjectDeleted => "OBJECT_DELETED",
            NoSuchClass => "NO_SUCH_CLASS",
            NoSuchProperty => "NO_SUCH_PROPERTY",
            DuplicatePrimaryKey => "DUPLICATE_PRIMARY_KEY",
            MigrationNeeded => "MIGRATION_NEEDED",
            SchemaVersionLower => "SCHEMA_VERSION_LOWER",
            SchemaChangedWithoutVersionBump => "SCHEMA_CHANGED_WITHOUT_VERSION_BUMP",
            ReadOnly => "READ_ONLY",
            FileNotFound => "FILE_NOT_FOUND",
            FilePermissionDenied => "FILE_PERMISSION_DENIED",
            IncompatibleFile => "INCOMPATIBLE_FILE",
            DecryptionFailed => "DECRYPTION_FAILED",
            FormatUpgradeRequired => "FORMAT_UPGRADE_REQUIRED",
            FileInUse => "FILE_IN_USE",
            InvalidQuery => "INVALID_QUERY",
            Misuse => "MISUSE",
            Internal => "INTERNAL",
            IndexOutOfBounds => "INDEX_OUT_OF_BOUNDS",
            NotSupported => "NOT_SUPPORTED",
            CallbackFailed => "CALLBACK_FAILED",
            RealmInUse => "REALM_IN_USE",
            MultipleUsersLoggedIn => "MULTIPLE_USERS_LOGGED_IN",
            Timeout => "TIMEOUT",
        }
    }

    /// Every code, for tables and tests.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::Unknown,
        ErrorCode::Io,
        ErrorCode::Json,
        ErrorCode::ClientReset,
        ErrorCode::Sync,
        ErrorCode::Http,
        ErrorCode::InvalidParameters,
        ErrorCode::MissingParameters,
        ErrorCode::InvalidCredentials,
        ErrorCode::UnknownAccount,
        ErrorCode::ExistingAccount,
        ErrorCode::AccessDenied,
        ErrorCode::ExpiredRefreshToken,
        ErrorCode::InvalidArgument,
        ErrorCode::WrongType,
        ErrorCode::NotInWriteTransaction,
        ErrorCode::AlreadyInWriteTransaction,
        ErrorCode::RealmClosed,
        ErrorCode::ObjectDeleted,
        ErrorCode::NoSuchClass,
        ErrorCode::NoSuchProperty,
        ErrorCode::DuplicatePrimaryKey,
        ErrorCode::MigrationNeeded,
        ErrorCode::SchemaVersionLower,
        ErrorCode::SchemaChangedWithoutVersionBump,
        ErrorCode::ReadOnly,
        ErrorCode::FileNotFound,
        ErrorCode::FilePermissionDenied,
        ErrorCode::IncompatibleFile,
        ErrorCode::DecryptionFailed,
        ErrorCode::FormatUpgradeRequired,
        ErrorCode::FileInUse,
        ErrorCode::InvalidQuery,
        ErrorCode::Misuse,
        ErrorCode::Internal,
        ErrorCode::IndexOutOfBounds,
        ErrorCode::NotSupported,
        ErrorCode::CallbackFailed,
        ErrorCode::RealmInUse,
        ErrorCode::MultipleUsersLoggedIn,
        ErrorCode::Timeout,
    ];

    /// The code for one of the auth server's Realm codes (601–615), if it is one.
    pub fn from_auth_code(code: i32) -> Option<ErrorCode> {
        use ErrorCode::*;
        [
            InvalidParameters,
            MissingParameters,
            InvalidCredentials,
            UnknownAccount,
            ExistingAccount,
            AccessDenied,
            ExpiredRefreshToken,
        ]
        .into_iter()
        .find(|c| *c as i32 == code)
    }
}

/// The broad family of an error (`shoal_error_t.category`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCategory {
    /// No error.
    None = 0,
    /// A mistake in how the API was called; retrying the same call fails the same way.
    Logic = 1,
    /// The file system or the file's contents.
    File = 2,
    /// Client side I/O, JSON, client reset.
    Client = 3,
    /// A bug inside the library.
    Internal = 4,
    /// The auth server refused a request (codes 601–615).
    Auth = 5,
    /// The auth server answered with a plain HTTP error status ([`ErrorCode::Http`]).
    Http = 6,
    /// A sync session or connection error ([`ErrorCode::Sync`], codes 100–213).
    Sync = 7,
}

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

    /// An [`ErrorCode::Sync`] error with the protocol's `code` (100–109, 200–213).
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

    #[test]
    fn error_codes_are_unique_and_never_renumbered() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(*code as i32), "duplicate number for {code:?}");
        }
        // Pinned numbers: changing one breaks every binding.
        assert_eq!(ErrorCode::Unknown as i32, -1);
        assert_eq!(ErrorCode::Io as i32, 0);
        assert_eq!(ErrorCode::Json as i32, 1);
        assert_eq!(ErrorCode::ClientReset as i32, 7);
        assert_eq!(ErrorCode::InvalidArgument as i32, 1000);
        assert_eq!(ErrorCode::DuplicatePrimaryKey as i32, 1008);
        assert_eq!(ErrorCode::DecryptionFailed as i32, 1016);
        assert_eq!(ErrorCode::RealmInUse as i32, 1025);
        assert_eq!(ErrorCode::Http as i32, 300);
        let auth: Vec<i32> = [
            ErrorCode::InvalidParameters,
            ErrorCode::MissingParameters,
            ErrorCode::InvalidCredentials,
            ErrorCode::UnknownAccount,
            ErrorCode::ExistingAccount,
            ErrorCode::AccessDenied,
            ErrorCode::ExpiredRefreshToken,
        ]
        .iter()
        .map(|c| *c as i32)
        .collect();
        assert_eq!(auth, [601, 602, 611, 612, 613, 614, 615]);
        assert_eq!(ErrorCode::MultipleUsersLoggedIn as i32, 1026);
        assert_eq!(ErrorCategory::Auth as i32, 5);
        assert_eq!(ErrorCategory::Http as i32, 6);
    }

    #[test]
    fn auth_codes_match_the_protocol_and_http_statuses_pass_through() {
        for code in crate::protocol::auth::AuthErrorCode::ALL {
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

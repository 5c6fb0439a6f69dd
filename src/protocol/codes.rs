//! Every numeric code of Shoal, declared once.
//!
//! Each row of the tables below gives a code its number, its constant name (`SHOAL_ERR_` +
//! name in C), its category, what a sync client does about it ([`Recovery`], after Realm's
//! `ErrorCode.Category`: FATAL unless stated) and its documentation. Everything else derives
//! from these rows: the Rust enums ([`ErrorCode`], [`ConnectionErrorCode`],
//! [`SessionErrorCode`], [`AuthErrorCode`]) with their names, categories and lookups, the C
//! constants in `src/ffi/codes.rs` (generated from [`c_constants`], checked by
//! `tests/header.rs`), `shoal_error_name`, and the Python exceptions (checked against the
//! header by the binding's tests). Numbers below 1000 are the reference system's (Realm Object
//! Server), so bindings map them one to one; the database's own codes start at 1000. A number
//! is assigned once and never reused.
//!
//! A number appears in two enums only where one code has two roles: the auth codes 601–616
//! and 801 are [`AuthErrorCode`]s on the wire and [`ErrorCode`]s in the API; 200 is both the
//! [`ErrorCode::Sync`] family and [`SessionErrorCode::SessionClosed`]. A test checks that such
//! rows agree.

use std::fmt::Write as _;

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
    /// The auth server refused a request (codes 601–616, 801), or refused a permission request
    /// of a management realm (codes 701–703, and 601–614 written into its `statusCode`).
    Auth = 5,
    /// The auth server answered with a plain HTTP error status ([`ErrorCode::Http`]).
    Http = 6,
    /// A sync session or connection error ([`ErrorCode::Sync`], codes 100–116 and 200–213).
    Sync = 7,
}

impl ErrorCategory {
    /// Every category, in numeric order.
    pub const ALL: &'static [ErrorCategory] = &[
        ErrorCategory::None,
        ErrorCategory::Logic,
        ErrorCategory::File,
        ErrorCategory::Client,
        ErrorCategory::Internal,
        ErrorCategory::Auth,
        ErrorCategory::Http,
        ErrorCategory::Sync,
    ];

    /// The constant name without `SHOAL_ERR_CATEGORY_`, e.g. `"FILE"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ErrorCategory::None => "NONE",
            ErrorCategory::Logic => "LOGIC",
            ErrorCategory::File => "FILE",
            ErrorCategory::Client => "CLIENT",
            ErrorCategory::Internal => "INTERNAL",
            ErrorCategory::Auth => "AUTH",
            ErrorCategory::Http => "HTTP",
            ErrorCategory::Sync => "SYNC",
        }
    }
}

/// What a sync client does about a code (Realm's `ErrorCode.Category`, plus client reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recovery {
    /// Retrying later can succeed; a session reporting it keeps running.
    Recoverable,
    /// Retrying does not help; a session reporting it stops.
    Fatal,
    /// The local file must be reset from the server.
    ClientReset,
}

/// One row of the code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    /// The number (`shoal_error_t.code`).
    pub code: i32,
    /// The constant name without `SHOAL_ERR_`, e.g. `"BAD_CHANGESET"`.
    pub name: &'static str,
    /// The code's category.
    pub category: ErrorCategory,
    /// What a sync client does about it.
    pub recovery: Recovery,
    /// Its documentation (one or more lines).
    pub doc: &'static str,
}

/// Declares an enum of codes and its rows of the table.
macro_rules! code_table {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident {
            $(
                $(#[doc = $doc:literal])+
                $Variant:ident = $num:literal => $name:literal, $cat:ident, $rec:ident;
            )+
        }
    ) => {
        $(#[$meta])*
        #[repr(i32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        $vis enum $Enum {
            $( $(#[doc = $doc])+ $Variant = $num, )+
        }

        impl $Enum {
            /// Every code, in the table's order.
            pub const ALL: &'static [$Enum] = &[$($Enum::$Variant),+];

            /// The table's rows of these codes, in the same order as [`Self::ALL`].
            pub const TABLE: &'static [CodeInfo] = &[$(
                CodeInfo {
                    code: $num,
                    name: $name,
                    category: ErrorCategory::$cat,
                    recovery: Recovery::$rec,
                    doc: concat!($($doc, "\n"),+),
                }
            ),+];

            /// This code's row of the table.
            #[must_use]
            pub fn info(self) -> &'static CodeInfo {
                let code = self as i32;
                Self::TABLE
                    .iter()
                    .find(|row| row.code == code)
                    .expect("every variant has a row")
            }

            /// The constant name without `SHOAL_ERR_`, e.g. `"NO_SUCH_CLASS"`.
            #[must_use]
            pub fn name(self) -> &'static str {
                self.info().name
            }

            /// The category of this code.
            #[must_use]
            pub fn category(self) -> ErrorCategory {
                self.info().category
            }

            /// What a sync client does about this code.
            #[must_use]
            pub fn recovery(self) -> Recovery {
                self.info().recovery
            }

            /// The code for a number, if it is one of these.
            #[must_use]
            pub fn from_code(code: i32) -> Option<$Enum> {
                Self::ALL.iter().copied().find(|c| *c as i32 == code)
            }
        }
    };
}

code_table! {
    /// The stable numeric code of an error of the Rust API, as seen through the C ABI
    /// (`shoal_error_t.code`).
    ///
    /// New codes may be added; existing numbers never change meaning. There is no "OK" code:
    /// success is reported by the return value, and `IO` is 0 as in the reference system.
    pub enum ErrorCode {
        /// An error without a more specific code.
        Unknown = -1 => "UNKNOWN", Client, Fatal;
        /// An I/O or network error; usually recoverable by retrying.
        Io = 0 => "IO", Client, Recoverable;
        /// Malformed JSON handed to the library.
        Json = 1 => "JSON", Client, Fatal;
        /// The synced realm must be reset from the server.
        ClientReset = 7 => "CLIENT_RESET", Client, ClientReset;
        /// A sync session or connection error: the protocol's code (100–116 connection,
        /// 200–213 session) is what the error reports as its code (C: `shoal_error_t.code`;
        /// Rust: `Error::raw_code`); 200 stands for the whole family.
        Sync = 200 => "SYNC", Sync, Recoverable;
        /// The auth server answered with an HTTP status (300–599) that carries no Realm code
        /// of its own (an unknown route, a server error, a redirect). The status itself is what
        /// the error reports as its code (C: `shoal_error_t.code`; Rust: `Error::raw_code`,
        /// `Error::http_status`); 300 stands for the whole family.
        Http = 300 => "HTTP", Http, Fatal;
        /// Auth: a parameter of the request is malformed (the server's `601`).
        InvalidParameters = 601 => "INVALID_PARAMETERS", Auth, Fatal;
        /// Auth: a required parameter is missing (the server's `602`).
        MissingParameters = 602 => "MISSING_PARAMETERS", Auth, Fatal;
        /// Auth: unknown user, wrong password, or a token the server did not issue (`611`).
        InvalidCredentials = 611 => "INVALID_CREDENTIALS", Auth, Fatal;
        /// Auth: the account or user does not exist (`612`).
        UnknownAccount = 612 => "UNKNOWN_ACCOUNT", Auth, Fatal;
        /// Auth: the account to register exists already (`613`).
        ExistingAccount = 613 => "EXISTING_ACCOUNT", Auth, Fatal;
        /// Auth: the user may not do this, e.g. a non-admin looking up users (`614`).
        AccessDenied = 614 => "ACCESS_DENIED", Auth, Fatal;
        /// Auth: the refresh token is expired or revoked, or the user is logged out (`615`).
        ExpiredRefreshToken = 615 => "EXPIRED_REFRESH_TOKEN", Auth, Fatal;
        /// Permissions: the `PermissionOffer` a `PermissionOfferResponse` names has expired, or
        /// an offer was made with an `expiresAt` already past (`701`, a management realm
        /// object's `statusCode`).
        ExpiredPermissionOffer = 701 => "EXPIRED_PERMISSION_OFFER", Auth, Fatal;
        /// Permissions: the token matches more than one `PermissionOffer`: an offer proposed a
        /// token that another offer has already (`702`).
        AmbiguousPermissionOfferToken = 702 => "AMBIGUOUS_PERMISSION_OFFER_TOKEN", Auth, Fatal;
        /// Auth: the host the request was sent to is not one the server accepts (the Realm
        /// Object Server's `616`; `shoal-server` does not send it).
        InvalidHost = 616 => "INVALID_HOST", Auth, Fatal;
        /// Permissions: the realm may not be shared or its permissions changed by this user: a
        /// management realm, or a realm the user may not manage (`703`).
        FileMayNotBeShared = 703 => "FILE_MAY_NOT_BE_SHARED", Auth, Fatal;
        /// The server is misconfigured and cannot answer the request (the Realm Object Server's
        /// `801`; `shoal-server` does not send it).
        ServerMisconfiguration = 801 => "SERVER_MISCONFIGURATION", Auth, Fatal;
        /// An argument is invalid (empty name, out-of-range number, bad UTF-8, ...).
        InvalidArgument = 1000 => "INVALID_ARGUMENT", Logic, Fatal;
        /// A value of the wrong type for a property or operation.
        WrongType = 1001 => "WRONG_TYPE", Logic, Fatal;
        /// The operation needs a write transaction and none is open.
        NotInWriteTransaction = 1002 => "NOT_IN_WRITE_TRANSACTION", Logic, Fatal;
        /// A write transaction is already open on this realm handle.
        AlreadyInWriteTransaction = 1003 => "ALREADY_IN_WRITE_TRANSACTION", Logic, Fatal;
        /// The realm handle was closed.
        RealmClosed = 1004 => "REALM_CLOSED", Logic, Fatal;
        /// The object was deleted (or belongs to a snapshot where it does not exist).
        ObjectDeleted = 1005 => "OBJECT_DELETED", Logic, Fatal;
        /// No class of that name exists in the schema.
        NoSuchClass = 1006 => "NO_SUCH_CLASS", Logic, Fatal;
        /// No property of that name exists in the class.
        NoSuchProperty = 1007 => "NO_SUCH_PROPERTY", Logic, Fatal;
        /// An object with that primary key already exists.
        DuplicatePrimaryKey = 1008 => "DUPLICATE_PRIMARY_KEY", Logic, Fatal;
        /// The file's schema differs from the configuration's and no migration was provided.
        MigrationNeeded = 1009 => "MIGRATION_NEEDED", Logic, Fatal;
        /// The configured schema version is lower than the file's.
        SchemaVersionLower = 1010 => "SCHEMA_VERSION_LOWER", Logic, Fatal;
        /// The schema changed but the schema version was not raised.
        SchemaChangedWithoutVersionBump = 1011 => "SCHEMA_CHANGED_WITHOUT_VERSION_BUMP", Logic, Fatal;
        /// A write on a read-only realm.
        ReadOnly = 1012 => "READ_ONLY", Logic, Fatal;
        /// The realm file does not exist.
        FileNotFound = 1013 => "FILE_NOT_FOUND", File, Fatal;
        /// The file system refused access.
        FilePermissionDenied = 1014 => "FILE_PERMISSION_DENIED", File, Fatal;
        /// The file is not a Shoal realm or is corrupt.
        IncompatibleFile = 1015 => "INCOMPATIBLE_FILE", File, Fatal;
        /// The encryption key is wrong, missing, or the file was tampered with.
        DecryptionFailed = 1016 => "DECRYPTION_FAILED", File, Fatal;
        /// The file was written by an older format and must be upgraded.
        FormatUpgradeRequired = 1017 => "FORMAT_UPGRADE_REQUIRED", File, Fatal;
        /// Another process has the realm file open.
        FileInUse = 1018 => "FILE_IN_USE", File, Fatal;
        /// The query string could not be parsed or does not fit the schema.
        InvalidQuery = 1019 => "INVALID_QUERY", Logic, Fatal;
        /// A NULL or released handle, or another misuse of the API.
        Misuse = 1020 => "MISUSE", Logic, Fatal;
        /// An internal error (a bug); reported instead of a crash.
        Internal = 1021 => "INTERNAL", Internal, Fatal;
        /// An index is past the end of a list or results.
        IndexOutOfBounds = 1022 => "INDEX_OUT_OF_BOUNDS", Logic, Fatal;
        /// The operation is not supported for this kind of realm.
        NotSupported = 1023 => "NOT_SUPPORTED", Logic, Fatal;
        /// A user callback (migration, initial data) reported failure.
        CallbackFailed = 1024 => "CALLBACK_FAILED", Logic, Fatal;
        /// The realm is open and the operation needs it closed.
        RealmInUse = 1025 => "REALM_IN_USE", Logic, Fatal;
        /// The current user was asked for while more than one user is logged in.
        MultipleUsersLoggedIn = 1026 => "MULTIPLE_USERS_LOGGED_IN", Logic, Fatal;
        /// A wait (for upload, download or initial data) ran out of time.
        Timeout = 1027 => "TIMEOUT", Client, Recoverable;
    }
}

code_table! {
    /// The connection-level error codes of the sync protocol. 100–109: sent in an ERROR with
    /// session 0, after which the connection is closed. 110–116: the client's own, for a
    /// message from the server it cannot accept (Realm's sync client errors of the ROS era,
    /// numbered as there); the server never sends them.
    pub enum ConnectionErrorCode {
        /// The connection was closed; not an error.
        ConnectionClosed = 100 => "CONNECTION_CLOSED", Sync, Fatal;
        /// Any other connection-level error.
        OtherError = 101 => "OTHER_ERROR", Sync, Fatal;
        /// An unknown message type, or one sent the wrong way.
        UnknownMessage = 102 => "UNKNOWN_MESSAGE", Sync, Fatal;
        /// A message that does not follow the encoding.
        BadSyntax = 103 => "BAD_SYNTAX", Sync, Fatal;
        /// A message, field or count beyond its limit.
        LimitsExceeded = 104 => "LIMITS_EXCEEDED", Sync, Fatal;
        /// A message of another protocol version.
        WrongProtocolVersion = 105 => "WRONG_PROTOCOL_VERSION", Sync, Fatal;
        /// A session ident that is 0 or not bound.
        BadSessionIdent = 106 => "BAD_SESSION_IDENT", Sync, Fatal;
        /// A BIND with a session ident used before on the connection.
        ReuseOfSessionIdent = 107 => "REUSE_OF_SESSION_IDENT", Sync, Fatal;
        /// The client file is bound in another session.
        BoundInOtherSession = 108 => "BOUND_IN_OTHER_SESSION", Sync, Fatal;
        /// A message that is not allowed at this point of the session.
        BadMessageOrder = 109 => "BAD_MESSAGE_ORDER", Sync, Fatal;
        /// Client: a bad origin file identifier in a downloaded changeset's header (DOWNLOAD).
        BadOriginFileIdent = 110 => "BAD_ORIGIN_FILE_IDENT", Sync, Fatal;
        /// Client: a bad server version in a downloaded changeset's header (DOWNLOAD).
        BadServerVersionDownload = 111 => "BAD_SERVER_VERSION_DOWNLOAD", Sync, Fatal;
        /// Client: a downloaded changeset that does not decode or apply (DOWNLOAD).
        BadChangesetDownload = 112 => "BAD_CHANGESET_DOWNLOAD", Sync, Fatal;
        /// Client: a bad request identifier (MARK).
        BadRequestIdent = 113 => "BAD_REQUEST_IDENT", Sync, Fatal;
        /// Client: a bad error code (ERROR).
        BadErrorCode = 114 => "BAD_ERROR_CODE", Sync, Fatal;
        /// Client: a bad compression (DOWNLOAD).
        BadCompression = 115 => "BAD_COMPRESSION", Sync, Fatal;
        /// Client: a bad last integrated client version in a downloaded changeset's header
        /// (DOWNLOAD).
        BadClientVersionDownload = 116 => "BAD_CLIENT_VERSION_DOWNLOAD", Sync, Fatal;
    }
}

code_table! {
    /// The session-level error codes of the sync protocol (200–213): sent in an ERROR naming
    /// the session, which then ends.
    pub enum SessionErrorCode {
        /// The session was closed; not an error.
        SessionClosed = 200 => "SESSION_CLOSED", Sync, Recoverable;
        /// Any other session-level error.
        OtherSessionError = 201 => "OTHER_SESSION_ERROR", Sync, Recoverable;
        /// The access token has expired: get a new one and bind again.
        TokenExpired = 202 => "TOKEN_EXPIRED", Sync, Recoverable;
        /// The access token is not valid (not a token, or not signed by this server).
        BadAuthentication = 203 => "BAD_AUTHENTICATION", Sync, Fatal;
        /// The path is not a valid realm path.
        IllegalRealmPath = 204 => "ILLEGAL_REALM_PATH", Sync, Fatal;
        /// No realm exists at the path.
        NoSuchPath = 205 => "NO_SUCH_PATH", Sync, Fatal;
        /// The token does not grant access to the path.
        PermissionDenied = 206 => "PERMISSION_DENIED", Sync, Fatal;
        /// The server file ident is wrong (kept for numbering).
        BadServerFileIdent = 207 => "BAD_SERVER_FILE_IDENT", Sync, ClientReset;
        /// The client file ident or its salt is wrong.
        BadClientFileIdent = 208 => "BAD_CLIENT_FILE_IDENT", Sync, ClientReset;
        /// The client has a server version the server never had.
        BadServerVersion = 209 => "BAD_SERVER_VERSION", Sync, ClientReset;
        /// A client version out of order.
        BadClientVersion = 210 => "BAD_CLIENT_VERSION", Sync, Fatal;
        /// The client's and the server's histories diverge.
        DivergingHistories = 211 => "DIVERGING_HISTORIES", Sync, ClientReset;
        /// A changeset that does not decode or apply.
        BadChangeset = 212 => "BAD_CHANGESET", Sync, Fatal;
        /// The session has been disabled.
        DisabledSession = 213 => "DISABLED_SESSION", Sync, Fatal;
    }
}

code_table! {
    /// The Realm codes of the auth service's problem documents (RFC 7807 `code`).
    pub enum AuthErrorCode {
        /// A parameter is malformed, or the request is (bad JSON, too large, wrong content type).
        InvalidParameters = 601 => "INVALID_PARAMETERS", Auth, Fatal;
        /// A required parameter or header is missing.
        MissingParameters = 602 => "MISSING_PARAMETERS", Auth, Fatal;
        /// Unknown user, wrong password, or a token not signed by this server.
        InvalidCredentials = 611 => "INVALID_CREDENTIALS", Auth, Fatal;
        /// The account or user does not exist.
        UnknownAccount = 612 => "UNKNOWN_ACCOUNT", Auth, Fatal;
        /// The account to register exists already.
        ExistingAccount = 613 => "EXISTING_ACCOUNT", Auth, Fatal;
        /// The caller may not do this.
        AccessDenied = 614 => "ACCESS_DENIED", Auth, Fatal;
        /// The refresh token is expired or revoked.
        ExpiredRefreshToken = 615 => "EXPIRED_REFRESH_TOKEN", Auth, Fatal;
        /// The host is not one the server accepts (the Realm Object Server's; `shoal-server`
        /// does not send it).
        InvalidHost = 616 => "INVALID_HOST", Auth, Fatal;
        /// The server is misconfigured (the Realm Object Server's; `shoal-server` does not send
        /// it).
        ServerMisconfiguration = 801 => "SERVER_MISCONFIGURATION", Auth, Fatal;
    }
}

impl ErrorCode {
    /// The code for one of the auth server's Realm codes (601–616, 801), if it is one.
    #[must_use]
    pub fn from_auth_code(code: i32) -> Option<ErrorCode> {
        AuthErrorCode::from_code(code).and_then(|c| ErrorCode::from_code(c as i32))
    }
}

/// Every row of the table, each number once: the API's codes, then the protocol's codes whose
/// numbers the API does not use (200 is `SYNC`, the family).
pub fn all() -> impl Iterator<Item = &'static CodeInfo> {
    let api = ErrorCode::TABLE.iter();
    let protocol = ConnectionErrorCode::TABLE
        .iter()
        .chain(SessionErrorCode::TABLE)
        .filter(|row| ErrorCode::from_code(row.code).is_none());
    api.chain(protocol)
}

/// The row of a number, if the table has one (200 gives `SYNC`).
#[must_use]
pub fn info(code: i32) -> Option<&'static CodeInfo> {
    all().find(|row| row.code == code)
}

/// The text of `src/ffi/codes.rs`: a C constant for every code and category, documented by
/// the table. The C constants are plain `pub const` items because cbindgen reads the source,
/// not expanded macros; `tests/header.rs` regenerates and compares the file.
#[must_use]
pub fn c_constants() -> String {
    let mut out = String::from(
        "//! Error codes and categories as C constants. Generated from the code table in\n\
         //! `src/protocol/codes.rs` by `c_constants()`; `SHOAL_BLESS=1 cargo test --test header`\n\
         //! rewrites this file. Do not edit it by hand.\n\n",
    );
    let mut rows: Vec<&CodeInfo> = ErrorCode::TABLE
        .iter()
        .chain(ConnectionErrorCode::TABLE)
        .chain(SessionErrorCode::TABLE)
        .collect();
    // 200 is both the SYNC family and SESSION_CLOSED; the auth codes are in ErrorCode already.
    rows.sort_by_key(|row| (row.code, row.name != "SYNC"));
    rows.dedup_by(|a, b| a.name == b.name);
    for row in rows {
        let recovery = match (row.category, row.recovery) {
            (ErrorCategory::Sync, Recovery::Recoverable) => " (recoverable)",
            (ErrorCategory::Sync, Recovery::ClientReset) => " (client reset)",
            _ => "",
        };
        let prefix = match (
            ConnectionErrorCode::from_code(row.code),
            SessionErrorCode::from_code(row.code),
        ) {
            (Some(_), _) => format!("Connection {}{recovery}: ", row.code),
            (_, Some(_)) if row.name != "SYNC" => format!("Session {}{recovery}: ", row.code),
            _ => String::new(),
        };
        for (i, line) in row.doc.lines().enumerate() {
            let text = line.strip_prefix(' ').unwrap_or(line);
            let lead = if i == 0 { prefix.as_str() } else { "" };
            let _ = writeln!(out, "/// {lead}{text}");
        }
        let _ = writeln!(out, "pub const SHOAL_ERR_{}: i32 = {};", row.name, row.code);
    }
    out.push('\n');
    for category in ErrorCategory::ALL {
        let _ = writeln!(
            out,
            "/// Error category {}.\npub const SHOAL_ERR_CATEGORY_{}: i32 = {};",
            category.name(),
            category.name(),
            *category as i32
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn numbers_are_pinned_and_unique_per_enum() {
        for table in [
            ErrorCode::TABLE,
            ConnectionErrorCode::TABLE,
            SessionErrorCode::TABLE,
            AuthErrorCode::TABLE,
        ] {
            let mut seen = std::collections::HashSet::new();
            for row in table {
                assert!(seen.insert(row.code), "{} twice", row.code);
            }
        }
        // Pinned numbers of the protocol (those of `ErrorCode` are pinned in `error.rs`, but
        // for the permission codes, which are the management realms' protocol).
        assert_eq!(SessionErrorCode::BadChangeset as i32, 212);
        let permissions: Vec<i32> = [
            ErrorCode::ExpiredPermissionOffer,
            ErrorCode::AmbiguousPermissionOfferToken,
            ErrorCode::FileMayNotBeShared,
        ]
        .iter()
        .map(|c| *c as i32)
        .collect();
        assert_eq!(permissions, [701, 702, 703]);
        assert_eq!(info(703).map(|r| r.name), Some("FILE_MAY_NOT_BE_SHARED"));
        assert_eq!(ConnectionErrorCode::BadMessageOrder as i32, 109);
        // The rest of the reference's table (Realm Java's `ErrorCode` of the ROS era).
        let reference = [
            (110, "BAD_ORIGIN_FILE_IDENT"),
            (111, "BAD_SERVER_VERSION_DOWNLOAD"),
            (112, "BAD_CHANGESET_DOWNLOAD"),
            (113, "BAD_REQUEST_IDENT"),
            (114, "BAD_ERROR_CODE"),
            (115, "BAD_COMPRESSION"),
            (116, "BAD_CLIENT_VERSION_DOWNLOAD"),
            (616, "INVALID_HOST"),
            (801, "SERVER_MISCONFIGURATION"),
        ];
        for (code, name) in reference {
            let row = info(code).unwrap_or_else(|| panic!("{code} is in the table"));
            assert_eq!((row.name, row.recovery), (name, Recovery::Fatal), "{code}");
        }
        for code in 110..=116 {
            assert_eq!(info(code).map(|r| r.category), Some(ErrorCategory::Sync));
        }
        assert_eq!(ErrorCode::from_auth_code(616), Some(ErrorCode::InvalidHost));
        assert_eq!(
            ErrorCode::from_auth_code(801),
            Some(ErrorCode::ServerMisconfiguration)
        );
        assert_eq!(info(117), None);
    }

    #[test]
    fn a_number_in_two_enums_has_one_name_and_category() {
        let mut by_number: HashMap<i32, &CodeInfo> = HashMap::new();
        for row in ErrorCode::TABLE
            .iter()
            .chain(ConnectionErrorCode::TABLE)
            .chain(SessionErrorCode::TABLE)
            .chain(AuthErrorCode::TABLE)
        {
            if let Some(other) = by_number.insert(row.code, row) {
                if row.code == 200 {
                    continue; // the SYNC family and SESSION_CLOSED, by design
                }
                assert_eq!(
                    (other.name, other.category),
                    (row.name, row.category),
                    "code {}",
                    row.code
                );
            }
        }
        for code in AuthErrorCode::ALL {
            assert_eq!(
                ErrorCode::from_auth_code(*code as i32).map(|c| c.name()),
                Some(code.name())
            );
        }
    }

    #[test]
    fn realm_categories_recoverable_are_io_and_the_first_session_codes() {
        let recoverable: Vec<i32> = all()
            .filter(|row| {
                row.recovery == Recovery::Recoverable && row.category != ErrorCategory::Client
            })
            .map(|row| row.code)
            .collect();
        assert_eq!(recoverable, [200, 201, 202]);
        let resets: Vec<i32> = all()
            .filter(|row| row.recovery == Recovery::ClientReset)
            .map(|row| row.code)
            .collect();
        assert_eq!(resets, [7, 207, 208, 209, 211]);
        assert_eq!(info(200).map(|r| r.name), Some("SYNC"));
        assert_eq!(info(212).map(|r| r.name), Some("BAD_CHANGESET"));
        assert_eq!(info(4242), None);
    }
}

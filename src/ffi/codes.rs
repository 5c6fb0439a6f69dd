//! Error codes and categories as C constants. Generated from the code table in
//! `src/protocol/codes.rs` by `c_constants()`; `SHOAL_BLESS=1 cargo test --test header`
//! rewrites this file. Do not edit it by hand.

/// An error without a more specific code.
pub const SHOAL_ERR_UNKNOWN: i32 = -1;
/// An I/O or network error; usually recoverable by retrying.
pub const SHOAL_ERR_IO: i32 = 0;
/// Malformed JSON handed to the library.
pub const SHOAL_ERR_JSON: i32 = 1;
/// The synced realm must be reset from the server.
pub const SHOAL_ERR_CLIENT_RESET: i32 = 7;
/// Connection 100: The connection was closed; not an error.
pub const SHOAL_ERR_CONNECTION_CLOSED: i32 = 100;
/// Connection 101: Any other connection-level error.
pub const SHOAL_ERR_OTHER_ERROR: i32 = 101;
/// Connection 102: An unknown message type, or one sent the wrong way.
pub const SHOAL_ERR_UNKNOWN_MESSAGE: i32 = 102;
/// Connection 103: A message that does not follow the encoding.
pub const SHOAL_ERR_BAD_SYNTAX: i32 = 103;
/// Connection 104: A message, field or count beyond its limit.
pub const SHOAL_ERR_LIMITS_EXCEEDED: i32 = 104;
/// Connection 105: A message of another protocol version.
pub const SHOAL_ERR_WRONG_PROTOCOL_VERSION: i32 = 105;
/// Connection 106: A session ident that is 0 or not bound.
pub const SHOAL_ERR_BAD_SESSION_IDENT: i32 = 106;
/// Connection 107: A BIND with a session ident used before on the connection.
pub const SHOAL_ERR_REUSE_OF_SESSION_IDENT: i32 = 107;
/// Connection 108: The client file is bound in another session.
pub const SHOAL_ERR_BOUND_IN_OTHER_SESSION: i32 = 108;
/// Connection 109: A message that is not allowed at this point of the session.
pub const SHOAL_ERR_BAD_MESSAGE_ORDER: i32 = 109;
/// Connection 110: Client: a bad origin file identifier in a downloaded changeset's header (DOWNLOAD).
pub const SHOAL_ERR_BAD_ORIGIN_FILE_IDENT: i32 = 110;
/// Connection 111: Client: a bad server version in a downloaded changeset's header (DOWNLOAD).
pub const SHOAL_ERR_BAD_SERVER_VERSION_DOWNLOAD: i32 = 111;
/// Connection 112: Client: a downloaded changeset that does not decode or apply (DOWNLOAD).
pub const SHOAL_ERR_BAD_CHANGESET_DOWNLOAD: i32 = 112;
/// Connection 113: Client: a bad request identifier (MARK).
pub const SHOAL_ERR_BAD_REQUEST_IDENT: i32 = 113;
/// Connection 114: Client: a bad error code (ERROR).
pub const SHOAL_ERR_BAD_ERROR_CODE: i32 = 114;
/// Connection 115: Client: a bad compression (DOWNLOAD).
pub const SHOAL_ERR_BAD_COMPRESSION: i32 = 115;
/// Connection 116: Client: a bad last integrated client version in a downloaded changeset's header
/// (DOWNLOAD).
pub const SHOAL_ERR_BAD_CLIENT_VERSION_DOWNLOAD: i32 = 116;
/// A sync session or connection error: the protocol's code (100–116 connection,
/// 200–213 session) is what the error reports as its code (C: `shoal_error_t.code`;
/// Rust: `Error::raw_code`); 200 stands for the whole family.
pub const SHOAL_ERR_SYNC: i32 = 200;
/// Session 200 (recoverable): The session was closed; not an error.
pub const SHOAL_ERR_SESSION_CLOSED: i32 = 200;
/// Session 201 (recoverable): Any other session-level error.
pub const SHOAL_ERR_OTHER_SESSION_ERROR: i32 = 201;
/// Session 202 (recoverable): The access token has expired: get a new one and bind again.
pub const SHOAL_ERR_TOKEN_EXPIRED: i32 = 202;
/// Session 203: The access token is not valid (not a token, or not signed by this server).
pub const SHOAL_ERR_BAD_AUTHENTICATION: i32 = 203;
/// Session 204: The path is not a valid realm path.
pub const SHOAL_ERR_ILLEGAL_REALM_PATH: i32 = 204;
/// Session 205: No realm exists at the path.
pub const SHOAL_ERR_NO_SUCH_PATH: i32 = 205;
/// Session 206: The token does not grant access to the path.
pub const SHOAL_ERR_PERMISSION_DENIED: i32 = 206;
/// Session 207 (client reset): The server file ident is wrong (kept for numbering).
pub const SHOAL_ERR_BAD_SERVER_FILE_IDENT: i32 = 207;
/// Session 208 (client reset): The client file ident or its salt is wrong.
pub const SHOAL_ERR_BAD_CLIENT_FILE_IDENT: i32 = 208;
/// Session 209 (client reset): The client has a server version the server never had.
pub const SHOAL_ERR_BAD_SERVER_VERSION: i32 = 209;
/// Session 210: A client version out of order.
pub const SHOAL_ERR_BAD_CLIENT_VERSION: i32 = 210;
/// Session 211 (client reset): The client's and the server's histories diverge.
pub const SHOAL_ERR_DIVERGING_HISTORIES: i32 = 211;
/// Session 212: A changeset that does not decode or apply.
pub const SHOAL_ERR_BAD_CHANGESET: i32 = 212;
/// Session 213: The session has been disabled.
pub const SHOAL_ERR_DISABLED_SESSION: i32 = 213;
/// The auth server answered with an HTTP status (300–599) that carries no Realm code
/// of its own (an unknown route, a server error, a redirect). The status itself is what
/// the error reports as its code (C: `shoal_error_t.code`; Rust: `Error::raw_code`,
/// `Error::http_status`); 300 stands for the whole family.
pub const SHOAL_ERR_HTTP: i32 = 300;
/// Auth: a parameter of the request is malformed (the server's `601`).
pub const SHOAL_ERR_INVALID_PARAMETERS: i32 = 601;
/// Auth: a required parameter is missing (the server's `602`).
pub const SHOAL_ERR_MISSING_PARAMETERS: i32 = 602;
/// Auth: unknown user, wrong password, or a token the server did not issue (`611`).
pub const SHOAL_ERR_INVALID_CREDENTIALS: i32 = 611;
/// Auth: the account or user does not exist (`612`).
pub const SHOAL_ERR_UNKNOWN_ACCOUNT: i32 = 612;
/// Auth: the account to register exists already (`613`).
pub const SHOAL_ERR_EXISTING_ACCOUNT: i32 = 613;
/// Auth: the user may not do this, e.g. a non-admin looking up users (`614`).
pub const SHOAL_ERR_ACCESS_DENIED: i32 = 614;
/// Auth: the refresh token is expired or revoked, or the user is logged out (`615`).
pub const SHOAL_ERR_EXPIRED_REFRESH_TOKEN: i32 = 615;
/// Auth: the host the request was sent to is not one the server accepts (the Realm
/// Object Server's `616`; `shoal-server` does not send it).
pub const SHOAL_ERR_INVALID_HOST: i32 = 616;
/// Permissions: the `PermissionOffer` a `PermissionOfferResponse` names has expired, or
/// an offer was made with an `expiresAt` already past (`701`, a management realm
/// object's `statusCode`).
pub const SHOAL_ERR_EXPIRED_PERMISSION_OFFER: i32 = 701;
/// Permissions: the token matches more than one `PermissionOffer`: an offer proposed a
/// token that another offer has already (`702`).
pub const SHOAL_ERR_AMBIGUOUS_PERMISSION_OFFER_TOKEN: i32 = 702;
/// Permissions: the realm may not be shared or its permissions changed by this user: a
/// management realm, or a realm the user may not manage (`703`).
pub const SHOAL_ERR_FILE_MAY_NOT_BE_SHARED: i32 = 703;
/// The server is misconfigured and cannot answer the request (the Realm Object Server's
/// `801`; `shoal-server` does not send it).
pub const SHOAL_ERR_SERVER_MISCONFIGURATION: i32 = 801;
/// An argument is invalid (empty name, out-of-range number, bad UTF-8, ...).
pub const SHOAL_ERR_INVALID_ARGUMENT: i32 = 1000;
/// A value of the wrong type for a property or operation.
pub const SHOAL_ERR_WRONG_TYPE: i32 = 1001;
/// The operation needs a write transaction and none is open.
pub const SHOAL_ERR_NOT_IN_WRITE_TRANSACTION: i32 = 1002;
/// A write transaction is already open on this realm handle.
pub const SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION: i32 = 1003;
/// The realm handle was closed.
pub const SHOAL_ERR_REALM_CLOSED: i32 = 1004;
/// The object was deleted (or belongs to a snapshot where it does not exist).
pub const SHOAL_ERR_OBJECT_DELETED: i32 = 1005;
/// No class of that name exists in the schema.
pub const SHOAL_ERR_NO_SUCH_CLASS: i32 = 1006;
/// No property of that name exists in the class.
pub const SHOAL_ERR_NO_SUCH_PROPERTY: i32 = 1007;
/// An object with that primary key already exists.
pub const SHOAL_ERR_DUPLICATE_PRIMARY_KEY: i32 = 1008;
/// The file's schema differs from the configuration's and no migration was provided.
pub const SHOAL_ERR_MIGRATION_NEEDED: i32 = 1009;
/// The configured schema version is lower than the file's.
pub const SHOAL_ERR_SCHEMA_VERSION_LOWER: i32 = 1010;
/// The schema changed but the schema version was not raised.
pub const SHOAL_ERR_SCHEMA_CHANGED_WITHOUT_VERSION_BUMP: i32 = 1011;
/// A write on a read-only realm.
pub const SHOAL_ERR_READ_ONLY: i32 = 1012;
/// The realm file does not exist.
pub const SHOAL_ERR_FILE_NOT_FOUND: i32 = 1013;
/// The file system refused access.
pub const SHOAL_ERR_FILE_PERMISSION_DENIED: i32 = 1014;
/// The file is not a Shoal realm or is corrupt.
pub const SHOAL_ERR_INCOMPATIBLE_FILE: i32 = 1015;
/// The encryption key is wrong, missing, or the file was tampered with.
pub const SHOAL_ERR_DECRYPTION_FAILED: i32 = 1016;
/// The file was written by an older format and must be upgraded.
pub const SHOAL_ERR_FORMAT_UPGRADE_REQUIRED: i32 = 1017;
/// Another process has the realm file open.
pub const SHOAL_ERR_FILE_IN_USE: i32 = 1018;
/// The query string could not be parsed or does not fit the schema.
pub const SHOAL_ERR_INVALID_QUERY: i32 = 1019;
/// A NULL or released handle, or another misuse of the API.
pub const SHOAL_ERR_MISUSE: i32 = 1020;
/// An internal error (a bug); reported instead of a crash.
pub const SHOAL_ERR_INTERNAL: i32 = 1021;
/// An index is past the end of a list or results.
pub const SHOAL_ERR_INDEX_OUT_OF_BOUNDS: i32 = 1022;
/// The operation is not supported for this kind of realm.
pub const SHOAL_ERR_NOT_SUPPORTED: i32 = 1023;
/// A user callback (migration, initial data) reported failure.
pub const SHOAL_ERR_CALLBACK_FAILED: i32 = 1024;
/// The realm is open and the operation needs it closed.
pub const SHOAL_ERR_REALM_IN_USE: i32 = 1025;
/// The current user was asked for while more than one user is logged in.
pub const SHOAL_ERR_MULTIPLE_USERS_LOGGED_IN: i32 = 1026;
/// A wait (for upload, download or initial data) ran out of time.
pub const SHOAL_ERR_TIMEOUT: i32 = 1027;

/// Error category NONE.
pub const SHOAL_ERR_CATEGORY_NONE: i32 = 0;
/// Error category LOGIC.
pub const SHOAL_ERR_CATEGORY_LOGIC: i32 = 1;
/// Error category FILE.
pub const SHOAL_ERR_CATEGORY_FILE: i32 = 2;
/// Error category CLIENT.
pub const SHOAL_ERR_CATEGORY_CLIENT: i32 = 3;
/// Error category INTERNAL.
pub const SHOAL_ERR_CATEGORY_INTERNAL: i32 = 4;
/// Error category AUTH.
pub const SHOAL_ERR_CATEGORY_AUTH: i32 = 5;
/// Error category HTTP.
pub const SHOAL_ERR_CATEGORY_HTTP: i32 = 6;
/// Error category SYNC.
pub const SHOAL_ERR_CATEGORY_SYNC: i32 = 7;

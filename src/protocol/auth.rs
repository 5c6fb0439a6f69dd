//! The auth protocol: the JSON that clients and `shoal-server` exchange over HTTP, and the
//! token string codec (**API Boundary**). It keeps the shape of the Realm Object Server (ROS)
//! 1.x/2.x auth API so that the behaviour Realm clients relied on carries over.
//!
//! # Transport
//!
//! HTTP/1.1, JSON bodies (`Content-Type: application/json`; a request body that is not JSON,
//! is larger than [`MAX_BODY_BYTES`] or has another content type is refused; a required
//! field that is absent or `null` is `400`/`602`, one of the wrong type `400`/`601`; unknown
//! fields are ignored). The auth URL is
//! `http://HOST:PORT/auth` (`127.0.0.1:9080` by default). Endpoints that act for a user take
//! the user's **refresh token** string in the `Authorization` header, raw as ROS sent it
//! (`Authorization: <token>`); a `Bearer ` prefix is accepted too. A refresh token presented
//! there, or as `data` of the `realm` provider, is refused with `401` and: `602` if the header
//! is missing or empty; `611` if it is not a token, not signed by this server, an access
//! token, or its user does not exist; `615` if it is expired or revoked.
//!
//! | method and path | body | success |
//! |---|---|---|
//! | `POST /auth` | [`AuthRequest`] | `200` [`AuthResponse`] |
//! | `POST /auth/revoke` | [`RevokeRequest`], header `Authorization` | `204`, no body |
//! | `PUT /auth/password` | [`ChangePasswordRequest`], header `Authorization` | `204`, no body |
//! | `GET /auth/users/:provider/:provider_id` | none, header `Authorization` (an admin's) | `200` [`LookupResponse`] |
//! | `GET /auth/permissions` | none, header `Authorization` | `200` [`PermissionsResponse`] |
//! | `GET /health` | none | `200` `{"status":"ok"}` once the server serves requests |
//!
//! ## `POST /auth` by provider
//!
//! - `password` (always on): `data` is the user name (the *provider id*), `user_info` is
//!   `{"register": bool, "password": "..."}` ([`PasswordUserInfo`]; `register` defaults to
//!   false; no `password` is `602`). Registering creates a user with a fresh identity (32 lower-case hex characters);
//!   an existing name is `613`. Logging in with an unknown name or a wrong password is `611`
//!   (the two are indistinguishable, timing included). An empty password is `601`, when
//!   registering and when logging in: no account has an empty password (the built-in
//!   [`ADMIN_USER_NAME`] gets a generated one unless the operator sets one). Repeated failed
//!   logins of one user name or from one address are slowed down: `429` with `Retry-After`
//!   (seconds) until the wait is over, even with the right password; a server busy hashing
//!   answers `503` with `Retry-After`. Answer: `{"refresh_token": Token}`.
//! - `debug` (only when the server runs with `--debug-provider`, otherwise it is an unknown
//!   provider, `601`): `data` is the identity itself (a path segment: `[A-Za-z0-9_.-]+`, not
//!   `.` or `..`); the user is created on first use. The identity `admin` is an admin, as in
//!   the ROS test server. Answer: `{"refresh_token": Token}`.
//! - `realm`: `data` is a refresh token, `path` the realm path (required here, else `602`):
//!   `/`-separated segments of `[A-Za-z0-9_.-]+` (not `.`/`..`), the last one not ending in
//!   `.realm`, `.realm.lock` or `.realm.management`, at most 1024 bytes; a first segment `~`
//!   stands for the token's identity. The owner of a path (`/<identity>/...`: at least two
//!   segments, the first its own identity) and an admin get `["download","upload","manage"]`;
//!   another user gets what it has been granted (see [Permissions](#permissions)): `download`
//!   for read, `upload` for write, `manage` for manage, and `614` without read access (a
//!   management realm is never granted to anyone but its owner). Answer: `{"access_token":
//!   Token}` whose `path` is the resolved path and whose `expires` is `min(now + access TTL,
//!   refresh token's expires)`.
//! - `user_info` must be a JSON object when present. The `app_id` of a login is copied into
//!   the refresh token; an access token carries its refresh token's `app_id`.
//!
//! ## `POST /auth/revoke`
//!
//! Revokes the refresh token in the body. The `Authorization` token must be a valid refresh
//! token of the same user or of an admin (else `403`/`614`); Realm clients send the token
//! being revoked in both places. A body token that is expired, already revoked or not signed
//! by this server is answered `401`/`615` ([`AuthErrorCode::ExpiredRefreshToken`]): **clients treat 615 from this
//! endpoint as success**, as Realm's `LogoutResponse` did. A body string that is not a
//! refresh token at all (not a token, or an access token) is `400`/`601`.
//!
//! ## `PUT /auth/password`
//!
//! `{"new_password": "...", "user_id"?: "<identity>"}` (an empty password is `601`) with the
//! caller's refresh token in `Authorization`. Without `user_id` (or with the caller's own
//! identity) it changes the caller's own password; with another identity the caller must be
//! an admin (else `614`), and an unknown identity, or one without a `password` account, is `404`/`612`. Existing refresh
//! tokens stay valid.
//!
//! ## `GET /auth/users/:provider/:provider_id`
//!
//! Admin only (`Authorization` = an admin's refresh token; a non-admin gets `403`/`614`).
//! Answer: [`LookupResponse`] `{"user_id", "is_admin", "accounts": [{"provider",
//! "provider_id"}]}`. An unknown provider or account is `404`/`612`.
//!
//! ## `GET /auth/permissions`
//!
//! "Shared with me": the realms the caller (`Authorization` = its refresh token) has been
//! granted access to by others, its own realms left out. Answer: [`PermissionsResponse`]
//! `{"permissions": [{"path", "may_read", "may_write", "may_manage"}]}`, sorted by path; each
//! entry is the caller's access as the sync service applies it (its own grant and the grant to
//! everyone, `*`, together). A path is a realm path; the sync URL is `realm://` (or
//! `realms://`) + the auth server's host and port + the path.
//!
//! # Permissions
//!
//! Access to a realm has three levels: *read* (bind a sync session and download), *write*
//! (upload changes) and *manage* (share it and change others' access). The owner of a path and
//! admins always have all three; anyone else has what was granted to it, together with what
//! was granted to everyone (`*`). The access token's `access` is what the user had when the
//! token was issued; the sync service checks the grants again at BIND and REFRESH and applies
//! every later change to live sessions (see `shoal-server`'s design, "Permissions").
//!
//! Grants are made through each user's **management realm**, the synced realm
//! `/<identity>/`[`MANAGEMENT_REALM`] (only its owner and admins may open it). Its classes
//! (the Realm Object Server's `PermissionModule`, property names as there):
//!
//! | class | properties |
//! |---|---|
//! | [`PERMISSION_OFFER`] | `id` string primary key, `createdAt`, `updatedAt` timestamps, `statusCode` int?, `statusMessage` string?, `token` string? indexed, `realmUrl` string, `mayRead`, `mayWrite`, `mayManage` bool, `expiresAt` timestamp? |
//! | [`PERMISSION_OFFER_RESPONSE`] | `id`, `createdAt`, `updatedAt`, `statusCode`, `statusMessage` as above, `token` string, `realmUrl` string? |
//! | [`PERMISSION_CHANGE`] | `id`, `createdAt`, `updatedAt`, `statusCode`, `statusMessage` as above, `realmUrl` string, `userId` string, `mayRead`, `mayWrite`, `mayManage` bool? |
//!
//! A client writes such an object with `statusCode` null; the server processes it and answers
//! in the same object, a change that syncs down like any other: `statusCode` 0 on success,
//! else an error code with `statusMessage`. Each object is processed once (later edits of it
//! are ignored). A `realmUrl` is a sync URL (`realm[s]://host[:port]/path`, the host is not
//! checked) or a bare realm path; a `~` segment stands for the management realm's owner.
//!
//! - `PermissionOffer`: the owner may manage the realm → `statusCode` 0 and `token`, a new
//!   random token (256 bits from the OS, 43 base64url characters). An offer may propose its
//!   own `token` (43 to 256 characters of `[A-Za-z0-9_-]`), e.g. to share it before the
//!   server has seen the offer: it is kept if no other offer has it, else the offer is
//!   `702`. A management realm, or a realm the owner may not manage, is `703`; an
//!   `expiresAt` already past is `701`; no access level set, or a malformed `realmUrl`, is
//!   `601`. Any number of users may accept an offer until it expires.
//! - `PermissionOfferResponse`: the `token` of an offer that has not expired → the responding
//!   user (the owner of this management realm) is granted the offer's levels on the offer's
//!   realm, on top of what it had, and the response gets `statusCode` 0 and `realmUrl` (the
//!   offer's URL with its path resolved). An expired offer is `701`; a token no offer has is
//!   `601`.
//! - `PermissionChange`: if the owner may manage the realm (`realmUrl` `*`: every realm it
//!   manages) the access of `userId` (`*`: the grant to everyone, and every user's own grant)
//!   is changed: each level that is not null is set, null keeps the current one. A realm it
//!   may not manage, or a management realm, is `703`; an unknown user `612`; a malformed
//!   `realmUrl` `601`. The owner's own access never changes. Revoking read access ends the
//!   grantee's live sync sessions of that realm (`PERMISSION_DENIED`, 206); revoking write
//!   access makes their later uploads fail with 206.
//!
//! Codes (the API's [`ErrorCode`](crate::ErrorCode) numbers): 701
//! `EXPIRED_PERMISSION_OFFER`, 702 `AMBIGUOUS_PERMISSION_OFFER_TOKEN`, 703
//! `FILE_MAY_NOT_BE_SHARED`, and 601, 602 (a required property missing), 612 as in the table
//! below.
//!
//! # Errors
//!
//! Every 4xx/5xx answer is an RFC 7807 problem ([`Problem`], `Content-Type:
//! application/problem+json`): `{"type": "https://realm.io/docs/object-server/problems/<slug>",
//! "title": "...", "status": <HTTP status>, "code": <Realm code>, "hint"?: "..."}`.
//!
//! | code | slug | HTTP status |
//! |---|---|---|
//! | 601 invalid parameters | `invalid-parameters` | 400 (413 body too large, 415 not JSON) |
//! | 602 missing parameters | `missing-parameters` | 400 (401 when `Authorization` is missing) |
//! | 611 invalid credentials | `invalid-credentials` | 401 |
//! | 612 unknown account | `unknown-account` | 404 |
//! | 613 existing account | `existing-account` | 409 |
//! | 614 access denied | `access-denied` | 403 |
//! | 615 expired or revoked refresh token | `expired-refresh-token` | 401 |
//!
//! Two more codes of the Realm Object Server are known to clients (mapped to
//! [`ErrorCode`](crate::ErrorCode)s when a server sends them) but never sent by
//! `shoal-server`: 616 invalid host (`invalid-host`) and 801 server misconfiguration
//! (`server-misconfiguration`).
//!
//! Errors that are plain HTTP (an unknown route `404`, a wrong method `405`, too many failed
//! logins `429`, an internal error `500`, too many logins at once `503`) have `"type":
//! "about:blank"` and `code` equal to the status; `429` and `503` carry a `Retry-After` header
//! (seconds) and say when to retry in `hint`. Clients surface them as errors, without
//! retrying by themselves.
//!
//! # Tokens
//!
//! A token string is
//!
//! ```text
//! token   = base64url(payload) "." base64url(signature)
//! payload = the UTF-8 JSON bytes of TokenData (exactly the bytes that were signed)
//! signature = ed25519 signature (64 bytes) over payload, by the server's signing key
//! base64url = RFC 4648 §5 alphabet (A-Z a-z 0-9 - _), no padding, canonical (unused bits 0)
//! ```
//!
//! The JSON object `token_data` ([`TokenData`]) has `identity` (string), `path` (string, access
//! tokens only), `expires` (unix seconds; the token is expired once `now >= expires`),
//! `access` (array of `"download"`, `"upload"`, `"manage"`, `"refresh"`), `is_admin` (bool),
//! `app_id` (string), `token_id` (32 hex characters, refresh tokens only) and
//! `refresh_token_id` (access tokens only: the `token_id` of the refresh token the access
//! token was issued from). Readers ignore unknown fields. On the wire a token travels as `{"token": "<token string>", "token_data":
//! {...}}` ([`Token`]); `token_data` repeats the decoded payload for convenience.
//!
//! - A **refresh token** (ROS: "user token") has a `token_id`, no `path` and `access:
//!   ["refresh"]`. It is refused once expired (default life 10 years) or revoked.
//! - An **access token** has a `path`, no `token_id` and the `refresh_token_id` it came from;
//!   it grants `access` to that one realm until `expires`, or until that refresh token is
//!   revoked. The sync service checks its signature and expiry with the server's public key
//!   on every message, and its refresh token against the revocation list at BIND and REFRESH
//!   (a revocation also ends the sessions already bound with it).
//!
//! Clients only read tokens ([`decode_token_unverified`]); only the server verifies the
//! signature (the core does not depend on ed25519). A token is opaque to everyone else.
//!
//! **Version changes:** new optional fields may be added to any JSON here; a field is never
//! removed or renamed, and its meaning never changes.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The largest request body the server reads, in bytes (64 KiB); more is `413`/`601`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The largest token string accepted anywhere, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The length of an ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// The `type` prefix of every auth problem; the slug of the [`AuthErrorCode`] follows it.
pub const PROBLEM_TYPE_PREFIX: &str = "https://realm.io/docs/object-server/problems/";

/// The `password` identity provider: user name and password.
pub const PROVIDER_PASSWORD: &str = "password";
/// The `debug` identity provider: `data` is the identity (only with `--debug-provider`).
pub const PROVIDER_DEBUG: &str = "debug";
/// The `realm` provider: exchanges a refresh token for an access token to one realm path.
pub const PROVIDER_REALM: &str = "realm";

/// The access right to download a realm's changes.
pub const ACCESS_DOWNLOAD: &str = "download";
/// The access right to upload changes to a realm.
pub const ACCESS_UPLOAD: &str = "upload";
/// The access right to manage a realm: share it, change others' access (owners, admins, grants).
pub const ACCESS_MANAGE: &str = "manage";
/// The access right of a refresh token: to obtain access tokens.
pub const ACCESS_REFRESH: &str = "refresh";

/// The name of the built-in admin account of the `password` provider (ROS 2's `realm-admin`).
pub const ADMIN_USER_NAME: &str = "realm-admin";

/// The last segment of a user's management realm, `/<identity>/__management` (see
/// [Permissions](self#permissions)).
pub const MANAGEMENT_REALM: &str = "__management";
/// The management realm class that offers access to a realm: the server answers with a token.
pub const PERMISSION_OFFER: &str = "PermissionOffer";
/// The management realm class that accepts an offer by its token.
pub const PERMISSION_OFFER_RESPONSE: &str = "PermissionOfferResponse";
/// The management realm class that changes a user's access to a realm directly.
pub const PERMISSION_CHANGE: &str = "PermissionChange";

/// A signed token and its decoded payload, as sent in [`AuthResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The token string: `base64url(payload) "." base64url(signature)`.
    pub token: String,
    /// The decoded payload (the same data as inside `token`).
    pub token_data: TokenData,
}

impl Token {
    /// Decodes `token` without verifying its signature and pairs it with its payload.
    ///
    /// # Errors
    /// [`TokenFormatError`] if `token` is not a well-formed token string.
    pub fn from_string_unverified(token: String) -> Result<Token, TokenFormatError> {
        let token_data = decode_token_unverified(&token)?;
        Ok(Token { token, token_data })
    }
}

/// The signed payload of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenData {
    /// The user's identity (its user id).
    pub identity: String,
    /// The realm path an access token is for; absent in refresh tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Expiry, in unix seconds: the token is expired once `now >= expires`.
    pub expires: i64,
    /// The rights granted: [`ACCESS_DOWNLOAD`], [`ACCESS_UPLOAD`], [`ACCESS_MANAGE`],
    /// [`ACCESS_REFRESH`].
    pub access: Vec<String>,
    /// Whether the user is an admin.
    #[serde(default)]
    pub is_admin: bool,
    /// The application id given at login.
    #[serde(default)]
    pub app_id: String,
    /// The unique id of a refresh token (the key of the server's revocation list); absent in
    /// access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// In an access token: the `token_id` of the refresh token it was issued from, so that
    /// revoking that refresh token also ends what the access token opened (its sync
    /// sessions). Absent in refresh tokens, and in access tokens of servers before it existed
    /// (the sync service asks for a new token then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_id: Option<String>,
}

impl TokenData {
    /// Whether this is a refresh token (has a token id and no path).
    #[must_use]
    pub fn is_refresh_token(&self) -> bool {
        self.token_id.is_some() && self.path.is_none()
    }

    /// Whether the token is expired at `now` (unix seconds).
    #[must_use]
    pub fn is_expired_at(&self, now: i64) -> bool {
        now >= self.expires
    }
}

/// The body of `POST /auth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The identity provider: [`PROVIDER_PASSWORD`], [`PROVIDER_DEBUG`] or [`PROVIDER_REALM`].
    pub provider: String,
    /// Provider specific: the user name, the debug identity, or a refresh token.
    pub data: String,
    /// The application id; copied into the tokens.
    #[serde(default)]
    pub app_id: String,
    /// Provider specific details, a JSON object (`{}` when there are none).
    #[serde(default = "empty_object")]
    pub user_info: serde_json::Value,
    /// The realm path, for the `realm` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl AuthRequest {
    /// A `password` login (or registration when `register`).
    #[must_use]
    pub fn password(user: &str, password: &str, register: bool, app_id: &str) -> AuthRequest {
        let info = PasswordUserInfo {
            register,
            password: password.to_owned(),
        };
        AuthRequest {
            provider: PROVIDER_PASSWORD.to_owned(),
            data: user.to_owned(),
            app_id: app_id.to_owned(),
            user_info: serde_json::to_value(info).unwrap_or_else(|_| empty_object()),
            path: None,
        }
    }

    /// A `debug` login as `identity`.
    #[must_use]
    pub fn debug(identity: &str, app_id: &str) -> AuthRequest {
        AuthRequest {
            provider: PROVIDER_DEBUG.to_owned(),
            data: identity.to_owned(),
            app_id: app_id.to_owned(),
            user_info: empty_object(),
            path: None,
        }
    }

    /// A request for an access token to `path` with a refresh token.
    #[must_use]
    pub fn realm(refresh_token: &str, path: &str, app_id: &str) -> AuthRequest {
        AuthRequest {
            provider: PROVIDER_REALM.to_owned(),
            data: refresh_token.to_owned(),
            app_id: app_id.to_owned(),
            user_info: empty_object(),
            path: Some(path.to_owned()),
        }
    }
}

/// The `user_info` of a `password` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordUserInfo {
    /// Create the account (true) or log in to an existing one (false).
    #[serde(default)]
    pub register: bool,
    /// The password, in clear (send it over TLS).
    pub password: String,
}

/// The answer to `POST /auth`: a refresh token after a login, an access token for `realm`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthResponse {
    /// The user's refresh token (logins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Token>,
    /// An access token for one realm path (`realm` provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Token>,
}

/// The body of `POST /auth/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeRequest {
    /// The refresh token string to revoke.
    pub token: String,
}

/// The body of `PUT /auth/password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePasswordRequest {
    /// The new password (not empty).
    pub new_password: String,
    /// Whose password to change: absent for the caller's own, another identity for an admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// The answer to `GET /auth/users/:provider/:provider_id` (ROS 2 shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResponse {
    /// The user's identity.
    pub user_id: String,
    /// Whether the user is an admin.
    pub is_admin: bool,
    /// Every account (provider, provider id) that logs in as this user.
    pub accounts: Vec<Account>,
}

/// The answer to `GET /auth/permissions`: the realms shared with the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PermissionsResponse {
    /// One entry per realm path, sorted by path.
    pub permissions: Vec<GrantedPermission>,
}

/// A user's access to one realm of someone else's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedPermission {
    /// The realm path, e.g. `/<owner identity>/tasks`.
    pub path: String,
    /// Whether the user may read it (bind and download).
    pub may_read: bool,
    /// Whether the user may write it (upload).
    pub may_write: bool,
    /// Whether the user may share it and change others' access to it.
    pub may_manage: bool,
}

/// One way of logging in as a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The identity provider, e.g. `password`.
    pub provider: String,
    /// The user's id at that provider, e.g. the user name.
    pub provider_id: String,
}

/// An RFC 7807 problem: the body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// [`PROBLEM_TYPE_PREFIX`] + slug, or `about:blank` for plain HTTP errors.
    #[serde(rename = "type")]
    pub type_: String,
    /// A short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The Realm error code ([`AuthErrorCode`]), or the HTTP status for plain HTTP errors.
    pub code: i32,
    /// Details about this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    /// A problem of the auth service: `type` and `title` follow from `code`.
    #[must_use]
    pub fn auth(code: AuthErrorCode, status: u16, hint: Option<String>) -> Problem {
        Problem {
            type_: format!("{PROBLEM_TYPE_PREFIX}{}", code.slug()),
            title: code.title().to_owned(),
            status,
            code: code as i32,
            hint,
        }
    }

    /// A plain HTTP problem (`about:blank`, `code` = `status`).
    #[must_use]
    pub fn http(status: u16, title: &str, hint: Option<String>) -> Problem {
        Problem {
            type_: "about:blank".to_owned(),
            title: title.to_owned(),
            status,
            code: i32::from(status),
            hint,
        }
    }
}

pub use super::codes::AuthErrorCode;

impl AuthErrorCode {
    /// The last segment of the problem `type`.
    #[must_use]
    pub fn slug(self) -> &'static str {
        match self {
            AuthErrorCode::InvalidParameters => "invalid-parameters",
            AuthErrorCode::MissingParameters => "missing-parameters",
            AuthErrorCode::InvalidCredentials => "invalid-credentials",
            AuthErrorCode::UnknownAccount => "unknown-account",
            AuthErrorCode::ExistingAccount => "existing-account",
            AuthErrorCode::AccessDenied => "access-denied",
            AuthErrorCode::ExpiredRefreshToken => "expired-refresh-token",
            AuthErrorCode::InvalidHost => "invalid-host",
            AuthErrorCode::ServerMisconfiguration => "server-misconfiguration",
        }
    }

    /// The problem `title`.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            AuthErrorCode::InvalidParameters => "Your request parameters did not validate.",
            AuthErrorCode::MissingParameters => "Your request did not include all parameters.",
            AuthErrorCode::InvalidCredentials => "The provided credentials are invalid.",
            AuthErrorCode::UnknownAccount => "The account does not exist.",
            AuthErrorCode::ExistingAccount => "The account cannot be registered as it exists.",
            AuthErrorCode::AccessDenied => "You do not have access to this resource.",
            AuthErrorCode::ExpiredRefreshToken => "The refresh token is expired or revoked.",
            AuthErrorCode::InvalidHost => "The host is not valid for this server.",
            AuthErrorCode::ServerMisconfiguration => "The server is misconfigured.",
        }
    }
}

/// Why a token string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFormatError {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLong,
    /// Not exactly two parts separated by one `.`.
    Separator,
    /// A part is not canonical unpadded base64url.
    Base64 {
        /// `"payload"` or `"signature"`.
        part: &'static str,
    },
    /// The signature is not [`SIGNATURE_LEN`] bytes.
    SignatureLength(usize),
    /// The payload is not a JSON [`TokenData`] object.
    Payload(String),
}

impl fmt::Display for TokenFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenFormatError::TooLong => write!(f, "token longer than {MAX_TOKEN_LEN} bytes"),
            TokenFormatError::Separator => write!(f, "token is not two parts joined by '.'"),
            TokenFormatError::Base64 { part } => write!(f, "token {part} is not base64url"),
            TokenFormatError::SignatureLength(n) => {
                write!(f, "token signature is {n} bytes, expected {SIGNATURE_LEN}")
            }
            TokenFormatError::Payload(e) => write!(f, "token payload is not token data: {e}"),
        }
    }
}

impl std::error::Error for TokenFormatError {}

/// A token string split into its two decoded parts; the server verifies `signature` over
/// `payload` before it parses the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParts {
    /// The signed JSON bytes.
    pub payload: Vec<u8>,
    /// The signature over `payload` ([`SIGNATURE_LEN`] bytes).
    pub signature: Vec<u8>,
}

impl SignedParts {
    /// Parses the payload as [`TokenData`].
    ///
    /// # Errors
    /// [`TokenFormatError::Payload`] if it is not a JSON token data object.
    pub fn token_data(&self) -> Result<TokenData, TokenFormatError> {
        serde_json::from_slice(&self.payload).map_err(|e| TokenFormatError::Payload(e.to_string()))
    }
}

/// Joins a payload and its signature into a token string.
#[must_use]
pub fn encode_token_string(payload: &[u8], signature: &[u8]) -> String {
    let mut out = base64url_encode(payload);
    out.push('.');
    out.push_str(&base64url_encode(signature));
    out
}

/// Splits and decodes a token string without checking the signature or parsing the payload.
///
/// # Errors
/// [`TokenFormatError`] for anything but `base64url "." base64url` of a 64-byte signature.
pub fn split_token(token: &str) -> Result<SignedParts, TokenFormatError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenFormatError::TooLong);
    }
    let (payload, signature) = token.split_once('.').ok_or(TokenFormatError::Separator)?;
    if signature.contains('.') {
        return Err(TokenFormatError::Separator);
    }
    let payload = base64url_decode(payload).ok_or(TokenFormatError::Base64 { part: "payload" })?;
    let signature =
        base64url_decode(signature).ok_or(TokenFormatError::Base64 { part: "signature" })?;
    if signature.len() != SIGNATURE_LEN {
        return Err(TokenFormatError::SignatureLength(signature.len()));
    }
    Ok(SignedParts { payload, signature })
}

/// Reads a token's payload **without verifying the signature**: for clients, which only need
/// to know a token's identity, path and expiry. Never use it to make an access decision.
///
/// # Errors
/// [`TokenFormatError`] if the string is not a well-formed token.
pub fn decode_token_unverified(token: &str) -> Result<TokenData, TokenFormatError> {
    split_token(token)?.token_data()
}

/// RFC 4648 §5 base64url without padding.
fn base64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict decoding: only the base64url alphabet, no padding, and the unused low bits of the
/// last character must be zero (`URL_SAFE_NO_PAD` refuses padding and trailing bits), so every
/// byte string has exactly one encoding.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenData {
        TokenData {
            identity: "0123456789abcdef0123456789abcdef".into(),
            path: None,
            expires: 1_816_358_184,
            access: vec![ACCESS_REFRESH.into()],
            is_admin: false,
            app_id: "io.shoal.tests".into(),
            token_id: Some("fedcba9876543210fedcba9876543210".into()),
            refresh_token_id: None,
        }
    }

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64url_encode(plain.as_bytes()), encoded);
            assert_eq!(base64url_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64url_encode(&[0xfb, 0xff, 0xbf]), "-_-_");
    }

    #[test]
    fn base64url_round_trips_every_length_and_byte() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for len in 0..bytes.len() {
            let encoded = base64url_encode(&bytes[..len]);
            assert_eq!(base64url_decode(&encoded).unwrap(), &bytes[..len]);
        }
    }

    #[test]
    fn base64url_of_tricky_inputs() {
        for (bytes, encoded) in [
            (&[0u8][..], "AA"),
            (&[0, 0], "AAA"),
            (&[0, 0, 0], "AAAA"),
            (&[0xff], "_w"),
            (&[0xff, 0xff], "__8"),
            (&[0xff, 0xff, 0xff], "____"),
            (&[0x3e, 0xff, 0xbf], "Pv-_"),
            (b"{\"sub\":\"\xc3\xa9\"}", "eyJzdWIiOiLDqSJ9"),
        ] {
            assert_eq!(base64url_encode(bytes), encoded, "{bytes:?}");
            assert_eq!(base64url_decode(encoded).unwrap(), bytes, "{encoded}");
        }
        // Non-canonical or foreign forms are refused: unused low bits set, padding, the
        // standard alphabet, whitespace, a lone character, non-ASCII.
        for bad in [
            "_x", "__9", "AB", "AAB", "AA==", "AAA=", "+/+/", "AA AA", " AA", "AA\t", "A", "AAAAA",
            "AAAA_", "ÿÿ", ".",
        ] {
            assert_eq!(base64url_decode(bad), None, "{bad:?}");
        }
        assert_eq!(base64url_decode("").unwrap(), b"");
    }

    #[test]
    fn base64url_decoding_is_strict() {
        for bad in [
            "Zg==", "Z", "Zh", "Zm9", "Zm+v", "Zm/v", "Zm9v\n", "Zm 9", "é",
        ] {
            assert_eq!(base64url_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn token_string_round_trips() {
        let data = sample();
        let payload = serde_json::to_vec(&data).unwrap();
        let token = encode_token_string(&payload, &[7u8; SIGNATURE_LEN]);
        let parts = split_token(&token).unwrap();
        assert_eq!(parts.payload, payload);
        assert_eq!(parts.signature, vec![7u8; SIGNATURE_LEN]);
        assert_eq!(decode_token_unverified(&token).unwrap(), data);
        let token = Token::from_string_unverified(token).unwrap();
        assert_eq!(token.token_data, data);
        assert!(token.token_data.is_refresh_token());
    }

    #[test]
    fn malformed_tokens_are_errors_not_panics() {
        let payload = encode_token_string(b"{}", &[0u8; SIGNATURE_LEN]);
        let valid = encode_token_string(&serde_json::to_vec(&sample()).unwrap(), &[1; 64]);
        let cases: Vec<String> = vec![
            String::new(),
            ".".into(),
            "abc".into(),
            "a.b.c".into(),
            format!("{valid}."),
            format!("!{valid}"),
            encode_token_string(b"{}", &[0u8; 63]),
            payload,
            encode_token_string(b"not json", &[0u8; SIGNATURE_LEN]),
            encode_token_string(b"[1,2]", &[0u8; SIGNATURE_LEN]),
            "x".repeat(MAX_TOKEN_LEN + 1),
            valid.replacen('.', "", 1),
        ];
        for case in cases {
            assert!(decode_token_unverified(&case).is_err(), "{case:?}");
        }
        for len in 0..valid.len() {
            if valid.is_char_boundary(len) {
                let _ = decode_token_unverified(&valid[..len]);
            }
        }
    }

    #[test]
    fn token_data_ignores_unknown_fields_and_defaults_optional_ones() {
        let json = r#"{"identity":"a","expires":5,"access":["refresh"],"salt":0.25}"#;
        let data: TokenData = serde_json::from_str(json).unwrap();
        assert_eq!(data.path, None);
        assert!(!data.is_admin);
        assert_eq!(data.app_id, "");
        assert!(data.is_expired_at(5) && !data.is_expired_at(4));
        let missing = r#"{"identity":"a","access":[]}"#;
        assert!(serde_json::from_str::<TokenData>(missing).is_err());
    }

    #[test]
    fn requests_and_problems_have_the_documented_json() {
        let request = AuthRequest::password("alice", "secret", true, "app");
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"provider": "password", "data": "alice", "app_id": "app",
                "user_info": {"register": true, "password": "secret"}})
        );
        let request: AuthRequest =
            serde_json::from_str(r#"{"provider":"realm","data":"t","path":"/a/b"}"#).unwrap();
        assert_eq!(request.user_info, serde_json::json!({}));
        assert_eq!(request.path.as_deref(), Some("/a/b"));
        let problem = Problem::auth(AuthErrorCode::AccessDenied, 403, Some("no".into()));
        assert_eq!(
            serde_json::to_value(&problem).unwrap(),
            serde_json::json!({"type": "https://realm.io/docs/object-server/problems/access-denied",
                "title": "You do not have access to this resource.", "status": 403,
                "code": 614, "hint": "no"})
        );
        let change = ChangePasswordRequest {
            new_password: "p".into(),
            user_id: None,
        };
        assert_eq!(
            serde_json::to_string(&change).unwrap(),
            r#"{"new_password":"p"}"#
        );
    }

    #[test]
    fn auth_error_codes_are_never_renumbered() {
        let numbers: Vec<i32> = AuthErrorCode::ALL.iter().map(|c| *c as i32).collect();
        assert_eq!(numbers, [601, 602, 611, 612, 613, 614, 615, 616, 801]);
        for &code in AuthErrorCode::ALL {
            assert_eq!(AuthErrorCode::from_code(code as i32), Some(code));
        }
        assert_eq!(AuthErrorCode::from_code(600), None);
    }
}

//! [`User`]: a logged-in (or formerly logged-in) user of an [`App`], and [`UserInfo`], what an
//! admin's lookup tells about another user.
//!
//! A `User` is a handle: every handle of one identity in one `App` shares one state, so a
//! logout through any of them makes [`User::is_valid`] false on all, and a new login of the
//! identity makes them valid again.

use crate::app::{App, AppInner};
use crate::auth_client::AuthUrl;
use crate::error::{Error, ErrorCode, Result};
use crate::protocol::auth::{
    decode_token_unverified, AuthRequest, ChangePasswordRequest, Token, TokenData, ACCESS_REFRESH,
};
use crate::util::{spawn_library_thread, unix_now};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// How long before its expiry a cached access token is fetched anew, in seconds (Realm's
/// `REFRESH_MARGIN_DELAY`).
const ACCESS_TOKEN_MARGIN_SECS: i64 = 10;

/// The state shared by every handle of one identity.
pub(crate) struct UserState {
    identity: String,
    data: Mutex<UserData>,
}

struct UserData {
    auth_url: AuthUrl,
    /// `None` once logged out.
    refresh_token: Option<String>,
    /// Unix seconds; `None` = never expires.
    expires: Option<i64>,
    is_admin: bool,
    /// Access tokens by requested realm path, for the current refresh token.
    access_tokens: HashMap<String, Token>,
}

/// What a login (or a stored user) gives a user.
pub(crate) struct Login {
    pub auth_url: AuthUrl,
    pub refresh_token: Option<String>,
    pub expires: Option<i64>,
    pub is_admin: bool,
}

impl UserState {
    pub(crate) fn new(identity: String, login: Login) -> UserState {
        UserState {
            identity,
            data: Mutex::new(UserData {
                auth_url: login.auth_url,
                refresh_token: login.refresh_token,
                expires: login.expires,
                is_admin: login.is_admin,
                access_tokens: HashMap::new(),
            }),
        }
    }

    pub(crate) fn identity(&self) -> &str {
        &self.identity
    }

    /// Replaces the login state (a new login, or a user loaded from JSON).
    pub(crate) fn set(&self, login: Login) {
        let mut d = self.data.lock();
        if d.refresh_token != login.refresh_token {
            d.access_tokens.clear();
        }
        d.auth_url = login.auth_url;
        d.refresh_token = login.refresh_token;
        d.expires = login.expires;
        d.is_admin = login.is_admin;
    }

    /// Logs out locally: takes the refresh token (and the URL to revoke it at), if logged in.
    pub(crate) fn take_refresh_token(&self) -> Option<(String, AuthUrl)> {
        let mut d = self.data.lock();
        d.access_tokens.clear();
        let token = d.refresh_token.take()?;
        Some((token, d.auth_url.clone()))
    }

    pub(crate) fn is_valid(&self) -> bool {
        let d = self.data.lock();
        d.refresh_token.is_some() && d.expires.is_none_or(|e| unix_now() < e)
    }
}

/// A user of an [`App`]. Cheap to clone; `Send + Sync`; usable from any thread.
///
/// Handles compare equal when they are of the same identity in the same `App`. A handle keeps
/// its `App` alive.
#[derive(Clone)]
pub struct User {
    pub(crate) app: Arc<AppInner>,
    pub(crate) state: Arc<UserState>,
}

/// What an admin's [`User::lookup`] tells about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user's identity.
    pub identity: String,
    /// The provider that was asked about (e.g. `password`).
    pub provider: String,
    /// The user's id at that provider (e.g. the user name).
    pub provider_id: String,
    /// Whether the user is an admin.
    pub is_admin: bool,
}

impl UserInfo {
    /// `{"identity": .., "provider": .., "provider_id": .., "is_admin": ..}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "identity": self.identity,
            "provider": self.provider,
            "provider_id": self.provider_id,
            "is_admin": self.is_admin,
        })
        .to_string()
    }
}

impl User {
    /// The user's identity (the server's user id; for an access-token login the identity
    /// given to [`Credentials::access_token`](crate::Credentials::access_token)).
    pub fn identity(&self) -> &str {
        self.state.identity()
    }

    /// Whether the user is logged in and its refresh token has not expired. The expiry is read
    /// from the token itself when it is a Shoal token (without verifying it); a token that is
    /// not (an access-token login with a foreign token) never expires here, except that an
    /// old ROS user loaded by [`App::user_from_json`] keeps the `expires` its JSON had.
    pub fn is_valid(&self) -> bool {
        self.state.is_valid()
    }

    /// Whether the user is an admin, as the refresh token says (informational: the server
    /// decides with its own records). Stays as it was after a logout.
    pub fn is_admin(&self) -> bool {
        self.state.data.lock().is_admin
    }

    /// The auth URL of the user's last login, as it was given.
    pub fn auth_url(&self) -> String {
        self.state.data.lock().auth_url.as_str().to_owned()
    }

    /// The refresh token string (ROS: the user token; Realm's `SyncUser.getAccessToken()`),
    /// `None` after logout.
    pub fn refresh_token(&self) -> Option<String> {
        self.state.data.lock().refresh_token.clone()
    }

    /// When the refresh token expires, in unix seconds: `None` after logout or for a token
    /// that does not expire.
    pub fn refresh_token_expires(&self) -> Option<i64> {
        let d = self.state.data.lock();
        d.refresh_token.as_ref().and(d.expires)
    }

    /// The app this user belongs to.
    pub fn app(&self) -> App {
        App {
            inner: self.app.clone(),
        }
    }

    /// The user as JSON, in the shape of ROS clients' `SyncUser.toJson()` plus two keys:
    ///
    /// ```json
    /// {"authUrl": "http://127.0.0.1:9080/auth",
    ///  "userToken": {"token": "<refresh token>", "token_data": {"identity": "..",
    ///                "expires": 1816358184, "access": ["refresh"], "is_admin": false, ...}},
    ///  "identity": "..", "isAdmin": false}
    /// ```
    ///
    /// `token_data` is the token's own payload when it is a Shoal token, else one made from
    /// what is known (`expires` = `i64::MAX` for a token that does not expire). After logout
    /// `userToken` is `null`. [`App::user_from_json`] reads it back.
    pub fn to_json(&self) -> String {
        let d = self.state.data.lock();
        let user_token = match &d.refresh_token {
            None => serde_json::Value::Null,
            Some(token) => {
                let data = decode_token_unverified(token).unwrap_or_else(|_| TokenData {
                    identity: self.identity().to_owned(),
                    path: None,
                    expires: d.expires.unwrap_or(i64::MAX),
                    access: vec![ACCESS_REFRESH.to_owned()],
                    is_admin: d.is_admin,
                    app_id: self.app.app_id().to_owned(),
                    token_id: None,
                    refresh_token_id: None,
                });
                serde_json::json!({"token": token, "token_data": data})
            }
        };
        serde_json::json!({
            "authUrl": d.auth_url.as_str(),
            "userToken": user_token,
            "identity": self.identity(),
            "isAdmin": d.is_admin,
        })
        .to_string()
    }

    /// Logs the user out. Never blocks on the network and never fails:
    ///
    /// 1. at once, every handle of this user becomes invalid ([`is_valid`](Self::is_valid)
    ///    false, [`refresh_token`](Self::refresh_token) `None`) and the store records the
    ///    logout (a restarted app sees the user logged out) together with the revocation it
    ///    owes;
    /// 2. in the background, the library's revocation worker sends `POST /auth/revoke` (the
    ///    token in the body and in `Authorization`), retrying network errors and 5xx answers
    ///    with exponential backoff (100 ms doubling to 30 s, ±25 % jitter, at most 40 attempts
    ///    per process; a revocation still owed is resumed by the next [`App::new`]);
    /// 3. once the server confirmed (2xx, or `615`: already revoked or expired), the
    ///    [`AuthEvent::LoggedOut`](crate::AuthEvent::LoggedOut) callbacks run. Another 4xx is
    ///    final: it is logged, the revocation is dropped, and no callback runs.
    ///
    /// Logging out a logged-out user does nothing. Logging in again later gives the user a
    /// new refresh token and makes it valid again; only the old token is revoked.
    pub fn logout(&self) {
        self.app.logout(&self.state);
    }

    /// Changes a password: the user's own (`for_identity` `None` or the user's identity) or,
    /// for an admin, another user's. Blocks on the network. Existing tokens stay valid.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty `for_identity`; `ExpiredRefreshToken` if this user is
    /// logged out; from the server `AccessDenied` (not an admin), `UnknownAccount` (no such
    /// user with a password), `InvalidParameters` (empty password); `Io` if the server cannot
    /// be reached.
    pub fn change_password(&self, new_password: &str, for_identity: Option<&str>) -> Result<()> {
        if for_identity == Some("") {
            return Err(Error::invalid("the identity must not be empty"));
        }
        let (token, url) = self.logged_in_token()?;
        let request = ChangePasswordRequest {
            new_password: new_password.to_owned(),
            user_id: for_identity
                .filter(|id| *id != self.identity())
                .map(str::to_owned),
        };
        self.app.client.change_password(&url, &token, &request)?;
        tracing::info!(identity = %self.identity(), for_identity = ?for_identity, "changed a password");
        Ok(())
    }

    /// [`change_password`](Self::change_password) on a library thread; `callback` gets the
    /// result there.
    pub fn change_password_async(
        &self,
        new_password: &str,
        for_identity: Option<&str>,
        callback: impl FnOnce(Result<()>) + Send + 'static,
    ) {
        let user = self.clone();
        let new_password = new_password.to_owned();
        let for_identity = for_identity.map(str::to_owned);
        spawn_library_thread("shoal-auth-password", callback, move || {
            user.change_password(&new_password, for_identity.as_deref())
        });
    }

    /// An admin looks up the user that logs in with `provider_id` at `provider` (e.g.
    /// `("password", "alice")`). `None` if there is no such account or provider.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty provider or provider id; `ExpiredRefreshToken` if this
    /// user is logged out; `AccessDenied` if this user is not an admin; `Io` if the server
    /// cannot be reached.
    pub fn lookup(&self, provider: &str, provider_id: &str) -> Result<Option<UserInfo>> {
        if provider.is_empty() {
            return Err(Error::invalid("the provider must not be empty"));
        }
        if provider_id.is_empty() {
            return Err(Error::invalid("the provider id must not be empty"));
        }
        let (token, url) = self.logged_in_token()?;
        match self.app.client.lookup(&url, &token, provider, provider_id) {
            Ok(found) => Ok(Some(UserInfo {
                identity: found.user_id,
                provider: provider.to_owned(),
                provider_id: provider_id.to_owned(),
                is_admin: found.is_admin,
            })),
            Err(e) if e.code() == ErrorCode::UnknownAccount => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`lookup`](Self::lookup) on a library thread; `callback` gets the result there.
    pub fn lookup_async(
        &self,
        provider: &str,
        provider_id: &str,
        callback: impl FnOnce(Result<Option<UserInfo>>) + Send + 'static,
    ) {
        let user = self.clone();
        let (provider, provider_id) = (provider.to_owned(), provider_id.to_owned());
        spawn_library_thread("shoal-auth-lookup", callback, move || {
            user.lookup(&provider, &provider_id)
        });
    }

    /// An access token for the realm at `path` (e.g. `/~/tasks`; `~` is this user's identity),
    /// from `POST /auth` with the `realm` provider. Tokens are cached per `path` for the
    /// current refresh token and fetched anew from 10 s before they expire. Blocks on the
    /// network when it fetches.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty path; `ExpiredRefreshToken` if this user is logged out
    /// (or the server says the token is revoked or expired); `AccessDenied` for a path the
    /// user may not access; `InvalidParameters` for an invalid path; `Io` if the server cannot
    /// be reached.
    pub fn access_token(&self, path: &str) -> Result<Token> {
        if path.is_empty() {
            return Err(Error::invalid("the realm path must not be empty"));
        }
        let (refresh, url) = {
            let d = self.state.data.lock();
            if let Some(cached) = d.access_tokens.get(path) {
                if unix_now() < cached.token_data.expires - ACCESS_TOKEN_MARGIN_SECS {
                    return Ok(cached.clone());
                }
            }
            match &d.refresh_token {
                Some(t) => (t.clone(), d.auth_url.clone()),
                None => return Err(self.logged_out()),
            }
        };
        let request = AuthRequest::realm(&refresh, path, self.app.app_id());
        let answer = self.app.client.authenticate(&url, &request)?;
        let token = answer.access_token.ok_or_else(|| {
            Error::new(
                ErrorCode::Json,
                "the auth server's answer has no access_token",
            )
        })?;
        let mut d = self.state.data.lock();
        if d.refresh_token.as_deref() == Some(refresh.as_str()) {
            d.access_tokens.insert(path.to_owned(), token.clone());
        }
        Ok(token)
    }

    fn logged_out(&self) -> Error {
        Error::new(
            ErrorCode::ExpiredRefreshToken,
            format!("the user '{}' is logged out", self.identity()),
        )
    }

    fn logged_in_token(&self) -> Result<(String, AuthUrl)> {
        let d = self.state.data.lock();
        match &d.refresh_token {
            Some(t) => Ok((t.clone(), d.auth_url.clone())),
            None => Err(self.logged_out()),
        }
    }
}

impl PartialEq for User {
    fn eq(&self, other: &User) -> bool {
        Arc::ptr_eq(&self.app, &other.app) && self.identity() == other.identity()
    }
}

impl Eq for User {}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("identity", &self.identity())
            .field("auth_url", &self.auth_url())
            .field("is_valid", &self.is_valid())
            .finish_non_exhaustive()
    }
}

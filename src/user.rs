//! [`User`]: a logged-in (or formerly logged-in) user of an [`App`], and [`UserInfo`], what an
//! admin's lookup tells about another user. The [`App`] methods that hand out users (logins,
//! `current_user`, `all_users`, auth callbacks) are here too: the app's core (`app.rs`) sits
//! below this file and knows only the login states the handles share.
//!
//! A `User` is a handle: every handle of one identity in one `App` shares one state, so a
//! logout through any of them makes [`User::is_valid`] false on all, and a new login of the
//! identity makes them valid again.

use crate::app::{parse_user_json, App, AppInner, AuthCallback, AuthCallbackToken, AuthEvent};
use crate::auth_client::AuthUrl;
use crate::credentials::Credentials;
use crate::error::{Error, ErrorCode, Result};
use crate::login::UserState;
use crate::protocol::auth::{
    decode_token_unverified, AuthRequest, ChangePasswordRequest, GrantedPermission, Token,
    TokenData, ACCESS_REFRESH,
};
use crate::util::{spawn_library_thread, unix_now};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// How long before its expiry a cached access token is fetched anew, in seconds (Realm's
/// `REFRESH_MARGIN_DELAY`).
const ACCESS_TOKEN_MARGIN_SECS: i64 = 10;

/// The app's user entry points: they hand out [`User`] handles, which this file defines (the
/// app's core in `app.rs` knows only the shared login states).
impl App {
    /// Logs in with `credentials` at the auth server `auth_url`, blocking the calling thread
    /// (up to 5 s to connect, 30 s in all). On success the user is stored (replacing an
    /// earlier login of the same identity, which becomes valid again with the new token) and
    /// the [`AuthEvent::LoggedIn`] callbacks run.
    ///
    /// `auth_url` is an absolute `http://` or `https://` URL; its login endpoint is the URL
    /// itself if its path ends with `/auth` (`http://127.0.0.1:9080/auth`), else the path
    /// with `/auth` appended (`http://127.0.0.1:9080` works too).
    ///
    /// [`Credentials::AccessToken`] logs in on the device alone, without any network call:
    /// the token becomes the refresh token of the given identity, admin if the token is a
    /// Shoal token saying so.
    ///
    /// # Errors
    /// `InvalidArgument` for a malformed URL ("Invalid URL ..."), a scheme other than http(s),
    /// or an access token or identity that is empty; from the server `InvalidCredentials`
    /// (unknown user or wrong password), `ExistingAccount` (registering a taken name),
    /// `InvalidParameters`/`MissingParameters` (e.g. an unknown provider), `Http` for other
    /// statuses; `Json` for an answer that is not the expected JSON; `Io` when the server
    /// cannot be reached (recoverable: retry later).
    pub fn login(&self, credentials: &Credentials, auth_url: &str) -> Result<User> {
        let state = self.inner.login(credentials, auth_url)?;
        Ok(self.user_handle(state))
    }

    /// [`login`](Self::login) on a library thread; `callback` gets the result there. A panic
    /// in the callback is caught and logged.
    pub fn login_async(
        &self,
        credentials: Credentials,
        auth_url: &str,
        callback: impl FnOnce(Result<User>) + Send + 'static,
    ) {
        let app = self.clone();
        let auth_url = auth_url.to_owned();
        spawn_library_thread("shoal-auth-login", callback, move || {
            app.login(&credentials, &auth_url)
        });
    }

    /// The one valid user, `None` if no user is logged in.
    ///
    /// # Errors
    /// `MultipleUsersLoggedIn` if more than one user is valid (ask by identity or use
    /// [`all_users`](Self::all_users)).
    pub fn current_user(&self) -> Result<Option<User>> {
        let mut valid = self.all_users().into_values();
        match (valid.next(), valid.next()) {
            (None, _) => Ok(None),
            (Some(user), None) => Ok(Some(user)),
            (Some(_), Some(_)) => Err(Error::new(
                ErrorCode::MultipleUsersLoggedIn,
                format!(
                    "{} users are logged in: there is no current user; pick one from all_users",
                    valid.count() + 2
                ),
            )),
        }
    }

    /// Every valid user (logged in, token not expired), by identity.
    pub fn all_users(&self) -> BTreeMap<String, User> {
        let states: Vec<Arc<UserState>> = self.inner.users.lock().values().cloned().collect();
        states
            .into_iter()
            .filter(|s| s.is_valid())
            .map(|state| {
                let user = self.user_handle(state);
                (user.identity().to_owned(), user)
            })
            .collect()
    }

    /// The user of this identity known to this app — logged in or not (check
    /// [`User::is_valid`]) — or `None` if the identity never logged in here.
    pub fn user(&self, identity: &str) -> Option<User> {
        let state = self.inner.users.lock().get(identity).cloned()?;
        Some(self.user_handle(state))
    }

    /// A user from [`User::to_json`], which is also added to the store as logged in (as
    /// Realm's `SyncUser.fromJson` + `UserStore.put` did); the user is valid unless its token
    /// has expired. No [`AuthEvent::LoggedIn`] callback runs and nothing is sent anywhere.
    ///
    /// Keys read: `authUrl` (required); `userToken` (required, an object) with the token
    /// string in `token` (or `value`, older ROS clients); the identity from the top-level
    /// `identity`, else `userToken.token_data.identity`, else `userToken.identity`, else the
    /// token's own payload; the admin flag likewise from `isAdmin`,
    /// `userToken.token_data.is_admin`, `userToken.isAdmin`/`is_admin`, the token, else
    /// false; the expiry from the token's payload when it is a Shoal token, else
    /// `userToken.token_data.expires` or `userToken.expires` (unix seconds), else none.
    /// Other keys (`realms` of ROS 1 clients) are ignored, so JSON written by ROS-era Realm
    /// Java (`{"authUrl", "userToken": {"token", "token_data": {...}}, "realms": []}`) loads.
    ///
    /// # Errors
    /// `Json` for text that is not JSON or lacks a required key (a logged-out user's JSON has
    /// `"userToken": null` and cannot be loaded); `InvalidArgument` for an invalid `authUrl`.
    pub fn user_from_json(&self, json: &str) -> Result<User> {
        let (identity, login) = parse_user_json(json)?;
        let state = self.inner.log_in(identity, login)?;
        Ok(self.user_handle(state))
    }

    /// Registers `callback(user, event)` for logins and confirmed logouts of every user of
    /// this app. Callbacks run on the app's event thread, one at a time and in the order of
    /// the events; a panic in one is caught and logged. Dropping the token unregisters.
    pub fn add_auth_callback(
        &self,
        callback: impl Fn(&User, AuthEvent) + Send + Sync + 'static,
    ) -> AuthCallbackToken {
        let adapted: AuthCallback = Arc::new(move |app, state, event| {
            let user = User {
                app: app.clone(),
                state: state.clone(),
            };
            callback(&user, event);
        });
        let mut r = self.inner.callbacks.lock();
        r.next_id += 1;
        let id = r.next_id;
        r.entries.push((id, adapted));
        AuthCallbackToken {
            registry: Arc::downgrade(&self.inner.callbacks),
            id,
        }
    }

    fn user_handle(&self, state: Arc<UserState>) -> User {
        User {
            app: self.inner.clone(),
            state,
        }
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

    /// The realms other users have shared with this user ("shared with me"), with the access
    /// granted, sorted by path; its own realms are left out. Open one with a sync URL of the
    /// same server and the returned `path` (read-only unless `may_write`).
    ///
    /// # Errors
    /// `ExpiredRefreshToken` if this user is logged out; `Io` if the server cannot be reached.
    pub fn granted_permissions(&self) -> Result<Vec<GrantedPermission>> {
        let (token, url) = self.logged_in_token()?;
        Ok(self.app.client.permissions(&url, &token)?.permissions)
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

    /// Drops the cached access token of `path` (after the server refused it: the grants
    /// changed), so that the next [`access_token`](Self::access_token) asks the server.
    pub(crate) fn forget_access_token(&self, path: &str) {
        self.state.data.lock().access_tokens.remove(path);
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

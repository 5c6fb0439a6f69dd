//! A user's login state, shared by every handle of one identity in one app: the app keeps
//! it (and stores it in the user store), each [`User`](crate::User) handle reads it.

use crate::auth_client::AuthUrl;
use crate::config::Config;
use crate::protocol::auth::Token;
use crate::util::unix_now;
use parking_lot::Mutex;
use std::collections::HashMap;

/// The state shared by every handle of one identity.
pub(crate) struct UserState {
    identity: String,
    pub(crate) data: Mutex<UserData>,
    /// The management realm's configuration, built on first use (`sync/management.rs`).
    pub(crate) management: Mutex<Option<Config>>,
}

pub(crate) struct UserData {
    pub(crate) auth_url: AuthUrl,
    /// `None` once logged out.
    pub(crate) refresh_token: Option<String>,
    /// Unix seconds; `None` = never expires.
    pub(crate) expires: Option<i64>,
    pub(crate) is_admin: bool,
    /// Access tokens by requested realm path, for the current refresh token.
    pub(crate) access_tokens: HashMap<String, Token>,
    /// Counts logins and logouts: an access token fetched at another count came from another
    /// refresh token (which a logout revokes).
    pub(crate) epoch: u64,
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
                epoch: 0,
            }),
            management: Mutex::new(None),
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
            d.epoch += 1;
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
        d.epoch += 1;
        Some((token, d.auth_url.clone()))
    }

    /// The count of logins and logouts (see [`UserData::epoch`]).
    pub(crate) fn epoch(&self) -> u64 {
        self.data.lock().epoch
    }

    pub(crate) fn is_valid(&self) -> bool {
        let d = self.data.lock();
        d.refresh_token.is_some() && d.expires.is_none_or(|e| unix_now() < e)
    }
}

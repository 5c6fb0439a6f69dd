//! [`Credentials`]: how a user proves who they are to [`App::login`](crate::App::login).
//!
//! Four kinds, as Realm's `SyncCredentials` had them:
//!
//! | kind | provider | what the server gets |
//! |---|---|---|
//! | [`Credentials::password`] | `password` | `data` = user name, `user_info` = `{"register", "password"}` |
//! | [`Credentials::custom`] | any | `data` = the token, `user_info` = the given object or `{}` |
//! | [`Credentials::debug`] | `debug` | `data` = the identity (the server must run with `--debug-provider`) |
//! | [`Credentials::access_token`] | `_access_token` | nothing: the login happens on the device alone |

use crate::error::{Error, ErrorCode, Result};
use crate::protocol::auth::{PROVIDER_DEBUG, PROVIDER_PASSWORD};
use std::fmt;

/// The provider name of [`Credentials::AccessToken`] (Realm's `IdentityProvider.ACCESS_TOKEN`).
/// Such a login never contacts the server.
pub const PROVIDER_ACCESS_TOKEN: &str = "_access_token";

/// What a login presents. Build it with the constructors, which check their arguments; the
/// variants are public so that callers can inspect a value. `Debug` output hides passwords
/// and tokens.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Credentials {
    /// A user name and password of the server's `password` provider; `register` creates the
    /// account (an existing name is then [`ErrorCode::ExistingAccount`]).
    Password {
        /// The user name (the provider id); never empty.
        username: String,
        /// The password, sent in clear: use an `https://` auth URL beyond localhost.
        password: String,
        /// Create the account instead of logging in to an existing one.
        register: bool,
    },
    /// A token of another identity provider, passed to the server as it is.
    Custom {
        /// The provider's token or user id (`data` of the request); never empty.
        token: String,
        /// The provider name; never empty.
        provider: String,
        /// Extra details for the provider (`user_info` of the request).
        user_info: Option<serde_json::Map<String, serde_json::Value>>,
    },
    /// The server's `debug` provider: log in as `identity` without a secret. Only works when
    /// the server runs with `--debug-provider`; the identity `admin` is an admin there.
    Debug {
        /// The identity to log in as.
        identity: String,
    },
    /// A refresh token obtained elsewhere (e.g. another user's [`User::refresh_token`]),
    /// logged in on the device alone without contacting the server. The login always
    /// succeeds; using the token later (access tokens for synced realms) may fail if the
    /// server does not accept it.
    ///
    /// [`User::refresh_token`]: crate::User::refresh_token
    AccessToken {
        /// The token; it becomes the user's refresh token.
        token: String,
        /// The identity the user gets on this device.
        identity: String,
    },
}

impl Credentials {
    /// A user name and password; `register` creates the account.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty user name. An empty password is passed on: the server
    /// refuses it, when logging in and when registering (`InvalidParameters`).
    pub fn password(username: &str, password: &str, register: bool) -> Result<Credentials> {
        if username.is_empty() {
            return Err(Error::invalid("the user name must not be empty"));
        }
        Ok(Credentials::Password {
            username: username.to_owned(),
            password: password.to_owned(),
            register,
        })
    }

    /// A custom provider's `token` (argument order as Realm's `custom`: token, provider,
    /// user info). `user_info_json` is a JSON object or `None`.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty token or provider, or the provider
    /// [`PROVIDER_ACCESS_TOKEN`] (use [`Credentials::access_token`]); `Json` if
    /// `user_info_json` is not valid JSON or not a JSON object.
    pub fn custom(
        token: &str,
        provider: &str,
        user_info_json: Option<&str>,
    ) -> Result<Credentials> {
        if token.is_empty() {
            return Err(Error::invalid("the token must not be empty"));
        }
        if provider.is_empty() {
            return Err(Error::invalid("the provider must not be empty"));
        }
        if provider == PROVIDER_ACCESS_TOKEN {
            return Err(Error::invalid(
                "the _access_token provider logs in on the device: use Credentials::access_token",
            ));
        }
        let user_info = match user_info_json {
            None => None,
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(map)) => Some(map),
                Ok(_) => {
                    return Err(Error::new(
                        ErrorCode::Json,
                        "the user info must be a JSON object",
                    ))
                }
                Err(e) => {
                    return Err(Error::new(
                        ErrorCode::Json,
                        format!("the user info is not valid JSON: {e}"),
                    ))
                }
            },
        };
        Ok(Credentials::Custom {
            token: token.to_owned(),
            provider: provider.to_owned(),
            user_info,
        })
    }

    /// The `debug` provider's login as `identity` (the server must enable it). An empty or
    /// otherwise invalid identity is refused by the server.
    pub fn debug(identity: &str) -> Credentials {
        Credentials::Debug {
            identity: identity.to_owned(),
        }
    }

    /// A login on the device alone with `token` as the refresh token of `identity`. Neither
    /// may be empty; [`App::login`](crate::App::login) checks that (`InvalidArgument`).
    pub fn access_token(token: &str, identity: &str) -> Credentials {
        Credentials::AccessToken {
            token: token.to_owned(),
            identity: identity.to_owned(),
        }
    }

    /// The identity provider: `password`, `debug`, `_access_token` or the custom provider.
    pub fn provider(&self) -> &str {
        match self {
            Credentials::Password { .. } => PROVIDER_PASSWORD,
            Credentials::Custom { provider, .. } => provider,
            Credentials::Debug { .. } => PROVIDER_DEBUG,
            Credentials::AccessToken { .. } => PROVIDER_ACCESS_TOKEN,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password {
                username, register, ..
            } => f
                .debug_struct("Password")
                .field("username", username)
                .field("register", register)
                .finish_non_exhaustive(),
            Credentials::Custom { provider, .. } => f
                .debug_struct("Custom")
                .field("provider", provider)
                .finish_non_exhaustive(),
            Credentials::Debug { identity } => {
                f.debug_struct("Debug").field("identity", identity).finish()
            }
            Credentials::AccessToken { identity, .. } => f
                .debug_struct("AccessToken")
                .field("identity", identity)
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_check_their_arguments() {
        let p = Credentials::password("alice", "", true).unwrap();
        assert_eq!(p.provider(), "password");
        let e = Credentials::password("", "x", false).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        for (token, provider) in [("", "google"), ("t", "")] {
            let e = Credentials::custom(token, provider, None).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
        }
        let e = Credentials::custom("t", PROVIDER_ACCESS_TOKEN, None).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        for bad in ["{", "[1]", "3", "\"s\"", "null"] {
            let e = Credentials::custom("t", "google", Some(bad)).unwrap_err();
            assert_eq!(e.code(), ErrorCode::Json, "{bad}");
        }
        let c = Credentials::custom("t", "google", Some(r#"{"a": 1}"#)).unwrap();
        match &c {
            Credentials::Custom { user_info, .. } => {
                assert_eq!(user_info.as_ref().unwrap()["a"], 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.provider(), "google");
        assert_eq!(Credentials::debug("admin").provider(), "debug");
        assert_eq!(
            Credentials::access_token("t", "i").provider(),
            "_access_token"
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let text = format!(
            "{:?} {:?} {:?}",
            Credentials::password("alice", "hunter2", false).unwrap(),
            Credentials::custom("secret-token", "google", None).unwrap(),
            Credentials::access_token("secret-refresh", "bob"),
        );
        assert!(text.contains("alice") && text.contains("bob"), "{text}");
        for secret in ["hunter2", "secret-token", "secret-refresh"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

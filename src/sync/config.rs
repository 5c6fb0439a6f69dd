//! How a realm is synced: the user, the server URL and the session's options.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::session::{Session, SyncError};
use super::url::{local_realm_path, SyncUrl};
use crate::error::{Error, Result};
use crate::user::User;

/// Gets every error of a session (see [`SyncError`]). Runs on the sync callback thread.
pub type ErrorHandler = Arc<dyn Fn(&Session, &SyncError) + Send + Sync>;

/// Asked for an access token whenever the session needs one (first bind, 10 s before the
/// current one expires, after the server said it expired); answers later, from any thread,
/// with [`Session::bind_token`]. Gets the session and the server path. Runs on the sync
/// callback thread.
pub type TokenBinder = Arc<dyn Fn(&Session, &str) + Send + Sync>;

/// What a session does when the last realm handle of its file is closed.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopPolicy {
    /// Stop at once; changes not uploaded yet wait for the next open.
    Immediately = 0,
    /// Keep syncing as long as the process runs.
    LiveIndefinitely = 1,
    /// Keep uploading until every local change has been acknowledged by the server, then stop
    /// (the session is `DYING` meanwhile).
    #[default]
    AfterChangesUploaded = 2,
}

impl StopPolicy {
    /// The policy for a C constant.
    pub fn from_i32(v: i32) -> Option<StopPolicy> {
        match v {
            0 => Some(StopPolicy::Immediately),
            1 => Some(StopPolicy::LiveIndefinitely),
            2 => Some(StopPolicy::AfterChangesUploaded),
            _ => None,
        }
    }
}

/// The sync part of a realm's [`Config`](crate::Config): set it with
/// [`Config::set_sync`](crate::Config::set_sync), which also moves the realm's path to
/// [`local_path`](Self::local_path).
#[derive(Clone)]
pub struct SyncConfig {
    pub(crate) user: User,
    pub(crate) url: SyncUrl,
    pub(crate) local_path: PathBuf,
    pub(crate) error_handler: Option<ErrorHandler>,
    pub(crate) stop_policy: StopPolicy,
    pub(crate) wait_for_initial_data: Option<Duration>,
    pub(crate) token_binder: Option<TokenBinder>,
}

impl fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncConfig")
            .field("user", &self.user.identity())
            .field("url", &self.url.resolved)
            .field("local_path", &self.local_path)
            .field("stop_policy", &self.stop_policy)
            .finish_non_exhaustive()
    }
}

impl SyncConfig {
    /// A sync configuration for `user` and the realm at `url` (`realm://host[:port]/path` or
    /// `realms://` for TLS; `~` segments stand for the user's identity). The local file is
    /// `<app sync root>/<identity>/<server path>`, so two users of one URL get two files.
    ///
    /// # Errors
    /// `InvalidArgument` for a logged-out or expired user, or a URL that breaks a rule of
    /// [`SyncUrl::parse`]; file errors if the folder cannot be created.
    pub fn new(user: &User, url: &str) -> Result<SyncConfig> {
        if !user.is_valid() {
            return Err(Error::invalid(format!(
                "the user '{}' is not logged in or its login expired",
                user.identity()
            )));
        }
        let url = SyncUrl::parse(url, user.identity())?;
        let local_path = local_realm_path(&user.app().sync_root(), user.identity(), &url)?;
        if let Some(dir) = local_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::from(e).with_path(dir.display().to_string()))?;
        }
        Ok(SyncConfig {
            user: user.clone(),
            url,
            local_path,
            error_handler: None,
            stop_policy: StopPolicy::default(),
            wait_for_initial_data: None,
            token_binder: None,
        })
    }

    /// The user.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The resolved server URL (`~` replaced by the identity).
    pub fn server_url(&self) -> &str {
        &self.url.resolved
    }

    /// The server path, e.g. `/<identity>/tasks`.
    pub fn server_path(&self) -> &str {
        &self.url.path
    }

    /// The local file this realm is stored in.
    pub fn local_path(&self) -> &std::path::Path {
        &self.local_path
    }

    /// Sets the error handler (default: errors are only logged).
    pub fn set_error_handler(
        &mut self,
        handler: impl Fn(&Session, &SyncError) + Send + Sync + 'static,
    ) -> &mut SyncConfig {
        self.error_handler = Some(Arc::new(handler));
        self
    }

    /// Sets the stop policy (default [`StopPolicy::AfterChangesUploaded`]).
    pub fn set_stop_policy(&mut self, policy: StopPolicy) -> &mut SyncConfig {
        self.stop_policy = policy;
        self
    }

    /// Makes the first open of the realm wait until everything on the server has been
    /// downloaded (at most `timeout`; then the open fails with `Timeout`). `None`: never wait
    /// (the default).
    pub fn set_wait_for_initial_data(&mut self, timeout: Option<Duration>) -> &mut SyncConfig {
        self.wait_for_initial_data = timeout;
        self
    }

    /// Lets the binding supply access tokens (see [`TokenBinder`]); without one the session
    /// asks the auth server itself.
    pub fn set_token_binder(
        &mut self,
        binder: impl Fn(&Session, &str) + Send + Sync + 'static,
    ) -> &mut SyncConfig {
        self.token_binder = Some(Arc::new(binder));
        self
    }
}

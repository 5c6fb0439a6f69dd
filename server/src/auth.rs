//! The auth service: logins (`password`, `debug`), access tokens (`realm`), refresh token
//! revocation, password changes and the admin lookup. The wire format and every error code are
//! documented in `shoal::protocol::auth`; this file is the server side of that contract.
//!
//! [`AuthService`]'s methods are synchronous (argon2 and redb block); the HTTP handlers at the
//! bottom run them on tokio's blocking pool.
//!
//! **Architecture Invariant:** access decisions use the admin flag stored in redb, never the
//! `is_admin` claim of the presented token, so demoting a user takes effect at once.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use shoal::protocol::auth::{
    AuthRequest, AuthResponse, ChangePasswordRequest, LookupResponse, PasswordUserInfo,
    RevokeRequest, Token, TokenData, ACCESS_DOWNLOAD, ACCESS_MANAGE, ACCESS_REFRESH, ACCESS_UPLOAD,
    PROVIDER_DEBUG, PROVIDER_PASSWORD, PROVIDER_REALM,
};
use tracing::instrument;

use crate::config::{PasswordHashing, ServerConfig};
use crate::http::{Authorization, JsonBody};
use crate::problem::ApiError;
use crate::store::{Store, StoreError, User};
use crate::tokens::{random_id, unix_now, TokenError, TokenKeys, TokenVerifier};

/// The longest realm path accepted, in bytes.
const MAX_PATH_LEN: usize = 1024;
/// The longest user name accepted, in bytes.
const MAX_USER_NAME_LEN: usize = 256;
/// Revocations queued for each sync connection before it must re-check its sessions.
const REVOCATION_BACKLOG: usize = 256;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::internal(&e)
    }
}

/// The auth service's state, shared by every request.
pub struct AuthService {
    /// Users, accounts, password hashes, revoked token ids.
    store: Store,
    /// Signs every token this server issues.
    keys: TokenKeys,
    /// Checks tokens presented to us (the public half of `keys`).
    verifier: TokenVerifier,
    /// Hashes new passwords (verification uses the parameters stored in each hash).
    hasher: Argon2<'static>,
    /// A hash of a random password, verified against when a user name is unknown so that
    /// unknown names and wrong passwords take the same time.
    dummy_hash: String,
    /// Life of access tokens, seconds.
    access_ttl: i64,
    /// Life of refresh tokens, seconds.
    refresh_ttl: i64,
    /// Whether the `debug` provider is enabled.
    debug_provider: bool,
    /// Tells the sync service of every revocation (the token id), which ends the sessions
    /// bound with access tokens issued from it.
    revoked: tokio::sync::broadcast::Sender<String>,
}

impl AuthService {
    /// Opens the store and the signing key under `config.data_dir` (created if missing) and
    /// makes sure the built-in `realm-admin` account exists.
    ///
    /// # Errors
    /// Storage, key file or random source failures; nothing is half-created on failure (each
    /// step is atomic, and repeating them is harmless).
    pub fn open(config: &ServerConfig) -> Result<AuthService, crate::ServerError> {
        create_private_dir(&config.data_dir)?;
        let store = Store::open(&config.data_dir)?;
        let keys = TokenKeys::load_or_create(&config.data_dir)?;
        let hasher = match config.password_hashing {
            PasswordHashing::Secure => Argon2::default(),
            PasswordHashing::InsecureFastForTests => {
                tracing::warn!("insecure fast password hashing: for tests only");
                let params = Params::new(Params::MIN_M_COST, 1, 1, None)
                    .map_err(|e| crate::ServerError::Hash(e.to_string()))?;
                Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            }
        };
        let mut service = AuthService {
            store,
            verifier: keys.verifier(),
            keys,
            hasher,
            dummy_hash: String::new(),
            access_ttl: i64::try_from(config.access_token_ttl).unwrap_or(i64::MAX),
            refresh_ttl: i64::try_from(config.refresh_token_ttl).unwrap_or(i64::MAX),
            debug_provider: config.debug_provider,
            revoked: tokio::sync::broadcast::Sender::new(REVOCATION_BACKLOG),
        };
        let hash_err = |e: ApiError| crate::ServerError::Hash(e.to_string());
        service.dummy_hash = service.hash(&random_id()?).map_err(hash_err)?;
        let admin_exists = service
            .store
            .find_account(PROVIDER_PASSWORD, shoal::protocol::auth::ADMIN_USER_NAME)?
            .is_some();
        if config.admin_password.is_some() || !admin_exists {
            let password = config.admin_password.as_deref().unwrap_or("");
            let hash = service.hash(password).map_err(hash_err)?;
            service.store.ensure_admin(&hash, true)?;
        }
        Ok(service)
    }

    /// `POST /auth`: dispatches on the provider.
    ///
    /// # Errors
    /// The problems listed in `shoal::protocol::auth` for each provider.
    #[instrument(level = "debug", skip_all, fields(provider = %request.provider))]
    pub fn authenticate(&self, request: AuthRequest) -> Result<AuthResponse, ApiError> {
        if request.data.is_empty() {
            return Err(ApiError::missing("'data' must not be empty"));
        }
        if !request.user_info.is_object() {
            return Err(ApiError::invalid("'user_info' must be a JSON object"));
        }
        match request.provider.as_str() {
            PROVIDER_PASSWORD => self.password_login(&request),
            PROVIDER_DEBUG if self.debug_provider => self.debug_login(&request),
            PROVIDER_REALM => self.realm_access(&request),
            other => Err(ApiError::invalid(format!(
                "unknown or disabled provider '{other}'"
            ))),
        }
    }

    fn password_login(&self, request: &AuthRequest) -> Result<AuthResponse, ApiError> {
        let name = request.data.as_str();
        if name.len() > MAX_USER_NAME_LEN {
            return Err(ApiError::invalid(format!(
                "the user name is longer than {MAX_USER_NAME_LEN} bytes"
            )));
        }
        if request
            .user_info
            .get("password")
            .is_none_or(serde_json::Value::is_null)
        {
            return Err(ApiError::missing("'user_info.password' is required"));
        }
        let info: PasswordUserInfo = serde_json::from_value(request.user_info.clone())
            .map_err(|e| ApiError::invalid(format!("'user_info': {e}")))?;
        let user = if info.register {
            if info.password.is_empty() {
                return Err(ApiError::invalid("the password must not be empty"));
            }
            let hash = self.hash(&info.password)?;
            let user = self.store.create_password_user(name, &hash)?;
            let user = user.ok_or_else(|| {
                ApiError::existing_account(format!("the user name '{name}' is taken"))
            })?;
            tracing::info!(identity = %user.id, "registered a password user");
            user
        } else {
            let id = self.store.find_account(PROVIDER_PASSWORD, name)?;
            let hash = match &id {
                Some(id) => self.store.password_hash(id)?,
                None => None,
            };
            let matches = self.verify_password(&info.password, hash.as_deref());
            match (id, matches) {
                (Some(id), true) => self.existing_user(&id)?,
                _ => {
                    return Err(ApiError::invalid_credentials(
                        "unknown user name or wrong password",
                    ))
                }
            }
        };
        Ok(AuthResponse {
            refresh_token: Some(self.issue_refresh_token(&user, &request.app_id)?),
            access_token: None,
        })
    }

    fn debug_login(&self, request: &AuthRequest) -> Result<AuthResponse, ApiError> {
        let identity = request.data.as_str();
        if !is_path_segment(identity) {
            return Err(ApiError::invalid(
                "a debug identity is one path segment: [A-Za-z0-9_.-]+, not '.' or '..'",
            ));
        }
        let user = self.store.debug_user(identity)?;
        Ok(AuthResponse {
            refresh_token: Some(self.issue_refresh_token(&user, &request.app_id)?),
            access_token: None,
        })
    }

    fn realm_access(&self, request: &AuthRequest) -> Result<AuthResponse, ApiError> {
        let path = request
            .path
            .as_deref()
            .ok_or_else(|| ApiError::missing("'path' is required for the realm provider"))?;
        let (refresh, user) = self.check_refresh_token(&request.data)?;
        let (path, owner) = resolve_path(path, &user.id)?;
        let access: &[&str] = if user.is_admin {
            &[ACCESS_DOWNLOAD, ACCESS_UPLOAD, ACCESS_MANAGE]
        } else if owner.as_deref() == Some(user.id.as_str()) {
            &[ACCESS_DOWNLOAD, ACCESS_UPLOAD]
        } else {
            return Err(ApiError::access_denied(format!(
                "'{path}' belongs to another user"
            )));
        };
        let expires = unix_now()
            .saturating_add(self.access_ttl)
            .min(refresh.expires);
        let token = self.keys.sign(TokenData {
            identity: user.id,
            path: Some(path),
            expires,
            access: access.iter().map(|a| (*a).to_owned()).collect(),
            is_admin: user.is_admin,
            app_id: refresh.app_id,
            token_id: None,
            refresh_token_id: refresh.token_id,
        });
        Ok(AuthResponse {
            refresh_token: None,
            access_token: Some(token),
        })
    }

    /// `POST /auth/revoke`.
    ///
    /// # Errors
    /// See `shoal::protocol::auth`; an already revoked or expired token is `615`.
    #[instrument(level = "debug", skip_all)]
    pub fn revoke(&self, authorization: &str, request: &RevokeRequest) -> Result<(), ApiError> {
        let (_, caller) = self.check_refresh_token(authorization)?;
        let target = match self.verifier.verify_signature(&request.token) {
            Err(TokenError::Malformed(e)) => {
                return Err(ApiError::invalid(format!("'token': {e}")))
            }
            Err(_) => {
                return Err(ApiError::expired_refresh_token(
                    "the token was not issued by this server",
                ))
            }
            Ok(data) => data,
        };
        let Some(token_id) = target
            .token_id
            .as_deref()
            .filter(|_| target.is_refresh_token())
        else {
            return Err(ApiError::invalid("'token' is not a refresh token"));
        };
        if target.identity != caller.id && !caller.is_admin {
            return Err(ApiError::access_denied(
                "only the token's user or an admin may revoke it",
            ));
        }
        if target.is_expired_at(unix_now()) {
            return Err(ApiError::expired_refresh_token("the token is expired"));
        }
        if !self.store.revoke(token_id, target.expires)? {
            return Err(ApiError::expired_refresh_token(
                "the token is already revoked",
            ));
        }
        tracing::info!(identity = %target.identity, by = %caller.id, "revoked a refresh token");
        // Nobody listening (no sync connection) is fine: later BINDs check the store.
        let _ = self.revoked.send(token_id.to_owned());
        Ok(())
    }

    /// Every revocation from now on, as the revoked refresh token's id (the sync service's
    /// hook). A receiver that falls more than 256 behind gets `Lagged` and must check its
    /// sessions with [`is_revoked`](Self::is_revoked).
    pub(crate) fn revocations(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.revoked.subscribe()
    }

    /// Whether the refresh token with this id was revoked (entries stay until it expires).
    ///
    /// # Errors
    /// A storage failure.
    pub(crate) fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        self.store.is_revoked(token_id)
    }

    /// `PUT /auth/password`.
    ///
    /// # Errors
    /// See `shoal::protocol::auth`. On error no password has changed.
    #[instrument(level = "debug", skip_all)]
    pub fn change_password(
        &self,
        authorization: &str,
        request: &ChangePasswordRequest,
    ) -> Result<(), ApiError> {
        let (_, caller) = self.check_refresh_token(authorization)?;
        if request.new_password.is_empty() {
            return Err(ApiError::invalid("'new_password' must not be empty"));
        }
        let target = match request.user_id.as_deref() {
            None => caller.id.as_str(),
            Some(id) if id == caller.id => id,
            Some(_) if !caller.is_admin => {
                return Err(ApiError::access_denied(
                    "only an admin may change another user's password",
                ))
            }
            Some(id) => id,
        };
        if self.store.password_hash(target)?.is_none() {
            return Err(ApiError::unknown_account(format!(
                "'{target}' is not a user with a password account"
            )));
        }
        let hash = self.hash(&request.new_password)?;
        if !self.store.set_password_hash(target, &hash)? {
            return Err(ApiError::unknown_account(format!(
                "'{target}' is not a user with a password account"
            )));
        }
        tracing::info!(identity = %target, by = %caller.id, "changed a password");
        Ok(())
    }

    /// `GET /auth/users/:provider/:provider_id`.
    ///
    /// # Errors
    /// `614` for a non-admin caller, `612` for an unknown account.
    #[instrument(level = "debug", skip(self, authorization))]
    pub fn lookup(
        &self,
        authorization: &str,
        provider: &str,
        provider_id: &str,
    ) -> Result<LookupResponse, ApiError> {
        let (_, caller) = self.check_refresh_token(authorization)?;
        if !caller.is_admin {
            return Err(ApiError::access_denied("only an admin may look up users"));
        }
        let unknown = || ApiError::unknown_account(format!("no account {provider}/{provider_id}"));
        let id = self
            .store
            .find_account(provider, provider_id)?
            .ok_or_else(unknown)?;
        let user = self.store.user(&id)?.ok_or_else(unknown)?;
        Ok(LookupResponse {
            accounts: self.store.accounts(&id)?,
            user_id: user.id,
            is_admin: user.is_admin,
        })
    }

    /// Checks that `token` is a refresh token this server signed, not expired, not revoked,
    /// of a user that exists; returns its data and the user as stored now.
    fn check_refresh_token(&self, token: &str) -> Result<(TokenData, User), ApiError> {
        let data = match self.verifier.verify(token, unix_now()) {
            Ok(data) => data,
            Err(TokenError::Expired { .. }) => {
                return Err(ApiError::expired_refresh_token(
                    "the refresh token is expired",
                ))
            }
            Err(e) => return Err(ApiError::invalid_credentials(e.to_string())),
        };
        let Some(token_id) = data.token_id.as_deref().filter(|_| data.is_refresh_token()) else {
            return Err(ApiError::invalid_credentials(
                "an access token is not a refresh token",
            ));
        };
        if self.store.is_revoked(token_id)? {
            return Err(ApiError::expired_refresh_token(
                "the refresh token was revoked",
            ));
        }
        let user = self.existing_user(&data.identity)?;
        Ok((data, user))
    }

    fn existing_user(&self, id: &str) -> Result<User, ApiError> {
        self.store
            .user(id)?
            .ok_or_else(|| ApiError::invalid_credentials("the token's user does not exist"))
    }

    fn issue_refresh_token(&self, user: &User, app_id: &str) -> Result<Token, ApiError> {
        let token_id = random_id().map_err(|e| ApiError::internal(&e))?;
        Ok(self.keys.sign(TokenData {
            identity: user.id.clone(),
            path: None,
            expires: unix_now().saturating_add(self.refresh_ttl),
            access: vec![ACCESS_REFRESH.to_owned()],
            is_admin: user.is_admin,
            app_id: app_id.to_owned(),
            token_id: Some(token_id),
            refresh_token_id: None,
        }))
    }

    fn hash(&self, password: &str) -> Result<String, ApiError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| ApiError::internal(&e))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(&e))?;
        let hash = self.hasher.hash_password(password.as_bytes(), &salt);
        Ok(hash.map_err(|e| ApiError::internal(&e))?.to_string())
    }

    /// Verifies in constant time (argon2's verifier compares the outputs with `subtle`);
    /// without a stored hash it verifies against the dummy hash, which always fails, so the
    /// time taken does not tell whether the user exists.
    fn verify_password(&self, password: &str, stored: Option<&str>) -> bool {
        let Ok(parsed) = PasswordHash::new(stored.unwrap_or(&self.dummy_hash)) else {
            tracing::error!("a stored password hash does not parse");
            return false;
        };
        let ok = self
            .hasher
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && stored.is_some()
    }
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Whether `s` is one realm path segment: `[A-Za-z0-9_.-]+`, not `.` or `..`.
pub(crate) fn is_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Validates a realm path and resolves a leading `~` to `identity`. Returns the resolved path
/// and the owner (the first segment when there are at least two).
fn resolve_path(path: &str, identity: &str) -> Result<(String, Option<String>), ApiError> {
    let invalid = |why: &str| ApiError::invalid(format!("invalid realm path '{path}': {why}"));
    if path.len() > MAX_PATH_LEN {
        return Err(invalid("too long"));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(invalid("it must start with '/'"));
    };
    let mut segments: Vec<&str> = rest.split('/').collect();
    if segments.first() == Some(&"~") {
        segments[0] = identity;
    }
    if !segments.iter().all(|s| is_path_segment(s)) {
        return Err(invalid("segments are [A-Za-z0-9_.-]+, not '.' or '..'"));
    }
    let last = segments.last().copied().unwrap_or_default();
    if [".realm", ".realm.lock", ".realm.management"]
        .iter()
        .any(|suffix| last.ends_with(suffix))
    {
        return Err(invalid("the last segment ends in a reserved suffix"));
    }
    let owner = (segments.len() >= 2).then(|| segments[0].to_owned());
    Ok((format!("/{}", segments.join("/")), owner))
}

/// Runs `f` on the blocking pool (argon2 and redb block); a panic in it is a 500.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(&e)))
}

/// `POST /auth`.
pub async fn authenticate(
    State(service): State<Arc<AuthService>>,
    JsonBody(request): JsonBody<AuthRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    blocking(move || service.authenticate(request))
        .await
        .map(Json)
}

/// `POST /auth/revoke`.
pub async fn revoke(
    State(service): State<Arc<AuthService>>,
    Authorization(token): Authorization,
    JsonBody(request): JsonBody<RevokeRequest>,
) -> Result<StatusCode, ApiError> {
    blocking(move || service.revoke(&token, &request)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /auth/password`.
pub async fn change_password(
    State(service): State<Arc<AuthService>>,
    Authorization(token): Authorization,
    JsonBody(request): JsonBody<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    blocking(move || service.change_password(&token, &request)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /auth/users/:provider/:provider_id`.
pub async fn lookup(
    State(service): State<Arc<AuthService>>,
    Authorization(token): Authorization,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<Json<LookupResponse>, ApiError> {
    let Path((provider, provider_id)) =
        path.map_err(|e| ApiError::invalid(format!("path parameters: {e}")))?;
    blocking(move || service.lookup(&token, &provider, &provider_id))
        .await
        .map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_paths_are_validated_and_tilde_resolved() {
        let ok = |p: &str| resolve_path(p, "u1").unwrap();
        assert_eq!(ok("/u1/tasks"), ("/u1/tasks".into(), Some("u1".into())));
        assert_eq!(ok("/~/a/b"), ("/u1/a/b".into(), Some("u1".into())));
        assert_eq!(ok("/public"), ("/public".into(), None));
        assert_eq!(ok("/~"), ("/u1".into(), None));
        for bad in [
            "",
            "u1/x",
            "/",
            "//x",
            "/u1/",
            "/u1/../x",
            "/u1/./x",
            "/u1/x y",
            "/u1/x.realm",
            "/u1/x.realm.lock",
            "/u1/x.realm.management",
            "/u1/é",
        ] {
            assert!(resolve_path(bad, "u1").is_err(), "{bad:?}");
        }
        assert!(resolve_path(&format!("/u1/{}", "a".repeat(MAX_PATH_LEN)), "u1").is_err());
    }
}

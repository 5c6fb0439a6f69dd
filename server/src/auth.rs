//! The auth service: logins (`password`, `debug`), access tokens (`realm`), refresh token
//! revocation, password changes and the admin lookup. The wire format and every error code are
//! documented in `shoal::protocol::auth`; this file is the server side of that contract.
//!
//! [`AuthService`]'s methods are synchronous (argon2 and redb block); the HTTP handlers at the
//! bottom run them on tokio's blocking pool.
//!
//! **Architecture Invariant:** access decisions use the admin flag stored in redb, never the
//! `is_admin` claim of the presented token, so demoting a user takes effect at once.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use argon2::Params;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use shoal::protocol::auth::{
    AuthRequest, AuthResponse, ChangePasswordRequest, LookupResponse, PasswordUserInfo,
    PermissionsResponse, RevokeRequest, Token, TokenData, ACCESS_REFRESH, ADMIN_USER_NAME,
    PROVIDER_DEBUG, PROVIDER_PASSWORD, PROVIDER_REALM,
};
use shoal::protocol::path::{self as realm_path, Tilde};
use tracing::instrument;

use crate::config::{PasswordHashing, ServerConfig};
use crate::extract::{Authorization, JsonBody, Peer};
use crate::files;
use crate::login_limits::{HashPool, LoginKeys, Throttle};
use crate::password;
use crate::permissions::{Permissions, PermissionsError};
use crate::problem::ApiError;
use crate::revocations::Revocations;
use crate::store::{Store, StoreError, User};
use crate::tokens::{random_id, unix_now, TokenError, TokenKeys, TokenVerifier};

/// The longest user name accepted, in bytes.
const MAX_USER_NAME_LEN: usize = 256;
/// Where a generated `realm-admin` password is written, under the data directory.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::internal(&e)
    }
}

impl From<PermissionsError> for ApiError {
    fn from(e: PermissionsError) -> ApiError {
        ApiError::internal(&e)
    }
}

/// The auth service's state, shared by every request.
pub struct AuthService {
    /// Users, accounts, password hashes, revoked token ids.
    store: Arc<Store>,
    /// Signs every token this server issues.
    keys: TokenKeys,
    /// Checks tokens presented to us (the public half of `keys`).
    verifier: TokenVerifier,
    /// The threads all argon2 work runs on (bounded memory and queue). New hashes use the
    /// configured cost; verification uses the parameters stored in each hash.
    pool: HashPool,
    /// Failed logins per account and address, and the waits they impose.
    throttle: Arc<Throttle>,
    /// A hash of a random password, verified against when a user name is unknown so that
    /// unknown names and wrong passwords take the same time.
    dummy_hash: Arc<str>,
    /// The identity of the built-in `realm-admin`.
    admin_id: String,
    /// `DATA/admin-password`: removed when the admin's password changes.
    admin_password_file: PathBuf,
    /// Life of access tokens, seconds.
    access_ttl: i64,
    /// Life of refresh tokens, seconds.
    refresh_ttl: i64,
    /// Whether the `debug` provider is enabled.
    debug_provider: bool,
    /// Revoked refresh tokens (in `store`), shared with the sync service.
    revocations: Arc<Revocations>,
    /// Who may access which realm (grants), shared with the sync service.
    permissions: Arc<Permissions>,
}

impl AuthService {
    /// Opens the store and the signing key under `config.data_dir` (created if missing),
    /// starts the hashing threads and makes sure the built-in `realm-admin` account exists
    /// with a non-empty password ([`AuthService::bootstrap_admin`]).
    ///
    /// # Errors
    /// Storage, key file or random source failures, an empty `config.admin_password`;
    /// nothing is half-created on failure (each step is atomic, and repeating them is
    /// harmless).
    pub fn open(config: &ServerConfig) -> Result<AuthService, crate::ServerError> {
        files::create_private_dir(&config.data_dir)?;
        let store = Arc::new(Store::open(&config.data_dir)?);
        let keys = TokenKeys::load_or_create(&config.data_dir)?;
        let params = match config.password_hashing {
            // The argon2 crate's defaults: 19 MiB, 2 passes, 1 lane.
            PasswordHashing::Secure => Params::default(),
            PasswordHashing::InsecureFastForTests => {
                tracing::warn!("insecure fast password hashing: for tests only");
                Params::new(Params::MIN_M_COST, 1, 1, None)
                    .map_err(|e| crate::ServerError::Hash(e.to_string()))?
            }
        };
        let pool = HashPool::start(&params, &config.login_limits)?;
        tracing::debug!(threads = pool.threads(), "password hashing threads");
        let dummy = random_id()?;
        let dummy_hash = pool
            .run(move |hasher| hasher.hash(&dummy))
            .map_err(|e| crate::ServerError::Hash(e.to_string()))?
            .map_err(crate::ServerError::Hash)?;
        let mut service = AuthService {
            revocations: Arc::new(Revocations::new(Arc::clone(&store))),
            permissions: Arc::new(Permissions::open(
                &config.data_dir,
                Arc::clone(&store),
                config.test_abort_at,
            )?),
            store,
            verifier: keys.verifier(),
            keys,
            pool,
            throttle: Arc::new(Throttle::new(&config.login_limits)),
            dummy_hash: dummy_hash.into(),
            admin_id: String::new(),
            admin_password_file: config.data_dir.join(ADMIN_PASSWORD_FILE),
            access_ttl: i64::try_from(config.access_token_ttl).unwrap_or(i64::MAX),
            refresh_ttl: i64::try_from(config.refresh_token_ttl).unwrap_or(i64::MAX),
            debug_provider: config.debug_provider,
        };
        service.admin_id = service.bootstrap_admin(config.admin_password.as_deref())?;
        Ok(service)
    }

    /// Makes sure `realm-admin` exists with a password that is not empty; returns its
    /// identity.
    ///
    /// - `provided` (`--admin-password-file`, `SHOAL_ADMIN_PASSWORD`, `--admin-password`,
    ///   [`ServerConfig::admin_password`]) is set at every start; a generated password file is
    ///   removed (it no longer works).
    /// - Otherwise, if the account is new or its stored password is empty (data of a server
    ///   from before this rule), a password of 32 random base64url characters is generated,
    ///   written to `DATA/admin-password` (mode 0600), then stored hashed, and the file's path
    ///   is logged, never the password. A crash in between leaves the old state, and the next
    ///   start generates again.
    /// - Otherwise the stored password stays.
    fn bootstrap_admin(&self, provided: Option<&str>) -> Result<String, crate::ServerError> {
        let hash_err = |e: ApiError| crate::ServerError::Hash(e.to_string());
        let file = &self.admin_password_file;
        if let Some(password) = provided {
            if password.is_empty() {
                return Err(crate::ServerError::Config(
                    "the realm-admin password must not be empty".into(),
                ));
            }
            let hash = self.hash(password.to_owned()).map_err(hash_err)?;
            let admin = self.store.ensure_admin(&hash, true)?;
            self.remove_admin_password_file("a realm-admin password was given at start");
            return Ok(admin.id);
        }
        let existing = self
            .store
            .find_account(PROVIDER_PASSWORD, ADMIN_USER_NAME)?;
        let stored = match &existing {
            Some(id) => self.store.password_hash(id)?,
            None => None,
        };
        if let (Some(id), Some(stored)) = (&existing, &stored) {
            let stored = stored.clone();
            let empty = self
                .pool
                .run(move |hasher| hasher.verify("", &stored))
                .map_err(hash_err)?;
            if !empty {
                return Ok(id.clone());
            }
            tracing::warn!("the realm-admin password was empty; replacing it");
        }
        let password = password::generate()?;
        let hash = self.hash(password.clone()).map_err(hash_err)?;
        files::write_private(file, &format!("{password}\n"))?;
        let admin = self.store.ensure_admin(&hash, true)?;
        tracing::warn!(path = %file.display(),
            "generated a password for the built-in realm-admin account; it is in this file \
             (owner-only). Set your own with SHOAL_ADMIN_PASSWORD or --admin-password-file");
        Ok(admin.id)
    }

    /// Removes `DATA/admin-password` if it exists (its password no longer works).
    fn remove_admin_password_file(&self, why: &str) {
        match std::fs::remove_file(&self.admin_password_file) {
            Ok(()) => tracing::info!(path = %self.admin_password_file.display(),
                "{why}; removed the generated admin password file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %self.admin_password_file.display(), error = %e,
                "could not remove the generated admin password file"),
        }
    }

    /// `POST /auth`: dispatches on the provider.
    ///
    /// # Errors
    /// The problems listed in `shoal::protocol::auth` for each provider.
    #[instrument(level = "debug", skip_all, fields(provider = %request.provider))]
    pub fn authenticate(
        &self,
        request: AuthRequest,
        peer: Option<IpAddr>,
    ) -> Result<AuthResponse, ApiError> {
        if request.data.is_empty() {
            return Err(ApiError::missing("'data' must not be empty"));
        }
        if !request.user_info.is_object() {
            return Err(ApiError::invalid("'user_info' must be a JSON object"));
        }
        match request.provider.as_str() {
            PROVIDER_PASSWORD => self.password_login(&request, peer),
            PROVIDER_DEBUG if self.debug_provider => self.debug_login(&request),
            PROVIDER_REALM => self.realm_access(&request),
            other => Err(ApiError::invalid(format!(
                "unknown or disabled provider '{other}'"
            ))),
        }
    }

    /// A password login or registration. An empty password is refused before any work. A
    /// login is first checked against the throttle (429 while its account or address must
    /// wait), checked again on the hashing thread (failures of concurrent attempts count),
    /// then verified; a failure is counted, a success clears its account.
    fn password_login(
        &self,
        request: &AuthRequest,
        peer: Option<IpAddr>,
    ) -> Result<AuthResponse, ApiError> {
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
        if info.password.is_empty() {
            return Err(ApiError::invalid("the password must not be empty"));
        }
        let user = if info.register {
            let hash = self.hash(info.password)?;
            let user = self.store.create_password_user(name, &hash)?;
            let user = user.ok_or_else(|| {
                ApiError::existing_account(format!("the user name '{name}' is taken"))
            })?;
            tracing::info!(identity = %user.id, "registered a password user");
            user
        } else {
            let keys = LoginKeys::new(PROVIDER_PASSWORD, name, peer);
            self.throttle.check(&keys)?;
            let id = self.store.find_account(PROVIDER_PASSWORD, name)?;
            let stored = match &id {
                Some(id) => self.store.password_hash(id)?,
                None => None,
            };
            let throttle = Arc::clone(&self.throttle);
            let dummy = Arc::clone(&self.dummy_hash);
            let job_keys = keys.clone();
            let password = info.password;
            let matches = self.pool.run(move |hasher| {
                throttle.check(&job_keys)?;
                // Without a stored hash, verify against the dummy (which fails) so that the
                // time taken does not tell whether the user exists.
                let ok = hasher.verify(&password, stored.as_deref().unwrap_or(&dummy));
                Ok::<_, ApiError>(ok && stored.is_some())
            })??;
            match (id, matches) {
                (Some(id), true) => {
                    self.throttle.succeeded(&keys);
                    self.existing_user(&id)?
                }
                _ => {
                    self.throttle.failed(&keys);
                    return Err(ApiError::invalid_credentials(
                        "unknown user name or wrong password",
                    ));
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
        if !realm_path::is_segment(identity) {
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
        let path = resolve_path(path, &user.id)?;
        // Owners and admins have every level; others what they were granted. Without read
        // access there is nothing an access token could be used for.
        let access = self.permissions.access(&user.id, &path)?;
        if !access.read {
            return Err(ApiError::access_denied(format!(
                "'{path}' is another user's realm and was not shared with you"
            )));
        }
        let expires = unix_now()
            .saturating_add(self.access_ttl)
            .min(refresh.expires);
        let token = self.keys.sign(TokenData {
            identity: user.id,
            path: Some(path),
            expires,
            access: access.token_access(),
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
        if !self.revocations.revoke(token_id, target.expires)? {
            return Err(ApiError::expired_refresh_token(
                "the token is already revoked",
            ));
        }
        tracing::info!(identity = %target.identity, by = %caller.id, "revoked a refresh token");
        Ok(())
    }

    /// The revocation list and its feed (the sync service's view of this service).
    pub(crate) fn revocations(&self) -> Arc<Revocations> {
        Arc::clone(&self.revocations)
    }

    /// The grants and their feed (shared with the sync service).
    pub(crate) fn permissions(&self) -> Arc<Permissions> {
        Arc::clone(&self.permissions)
    }

    /// `GET /auth/permissions`: the realms shared with the caller.
    ///
    /// # Errors
    /// The refresh token problems of `shoal::protocol::auth`.
    #[instrument(level = "debug", skip_all)]
    pub fn shared_with(&self, authorization: &str) -> Result<PermissionsResponse, ApiError> {
        let (_, caller) = self.check_refresh_token(authorization)?;
        Ok(PermissionsResponse {
            permissions: self.permissions.shared_with(&caller.id)?,
        })
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
        let hash = self.hash(request.new_password.clone())?;
        if !self.store.set_password_hash(target, &hash)? {
            return Err(ApiError::unknown_account(format!(
                "'{target}' is not a user with a password account"
            )));
        }
        if target == self.admin_id {
            self.remove_admin_password_file("the realm-admin password was changed");
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
        if self.revocations.is_revoked(token_id)? {
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

    /// Hashes a new password on the hashing threads.
    fn hash(&self, password: String) -> Result<String, ApiError> {
        self.pool
            .run(move |hasher| hasher.hash(&password))?
            .map_err(|e| ApiError::internal(&e))
    }
}

/// Validates a realm path and resolves a leading `~` to `identity`
/// ([`shoal::protocol::path`]).
fn resolve_path(path: &str, identity: &str) -> Result<String, ApiError> {
    realm_path::resolve(path, identity, Tilde::FirstSegment)
        .map_err(|e| ApiError::invalid(format!("invalid realm path '{path}': {e}")))
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
    Peer(peer): Peer,
    JsonBody(request): JsonBody<AuthRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    blocking(move || service.authenticate(request, peer))
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

/// `GET /auth/permissions`.
pub async fn shared_with(
    State(service): State<Arc<AuthService>>,
    Authorization(token): Authorization,
) -> Result<Json<PermissionsResponse>, ApiError> {
    blocking(move || service.shared_with(&token))
        .await
        .map(Json)
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
    use shoal::protocol::sync::MAX_PATH_BYTES;

    /// Data of a server from before the rule: `realm-admin` with the empty password.
    #[test]
    fn a_stored_empty_admin_password_is_replaced_by_a_generated_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(dir.path());
        config.password_hashing = PasswordHashing::InsecureFastForTests;
        {
            let store = Store::open(dir.path()).unwrap();
            let params = Params::new(Params::MIN_M_COST, 1, 1, None).unwrap();
            let empty = password::Hasher::new(params).hash("").unwrap();
            store.ensure_admin(&empty, false).unwrap();
        }
        let login = |service: &AuthService, password: &str| {
            let request = AuthRequest::password(ADMIN_USER_NAME, password, false, "app");
            service.authenticate(request, None)
        };
        let service = AuthService::open(&config).unwrap();
        let file = dir.path().join(ADMIN_PASSWORD_FILE);
        let generated = std::fs::read_to_string(&file).unwrap();
        assert_eq!(login(&service, "").unwrap_err().problem.status, 400);
        let token = login(&service, generated.trim_end()).unwrap().refresh_token;
        assert!(token.unwrap().token_data.is_admin);
        drop(service);
        // The next start keeps it.
        let service = AuthService::open(&config).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), generated);
        assert!(login(&service, generated.trim_end()).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn realm_paths_are_validated_and_tilde_resolved() {
        let ok = |p: &str| resolve_path(p, "u1").unwrap();
        assert_eq!(ok("/u1/tasks"), "/u1/tasks");
        assert_eq!(ok("/~/a/b"), "/u1/a/b");
        assert_eq!(ok("/public"), "/public");
        assert_eq!(ok("/~"), "/u1");
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
        let long = |n: usize| format!("/u1/{}", "a".repeat(n));
        assert!(resolve_path(&long(MAX_PATH_BYTES - 4), "u1").is_ok());
        assert!(resolve_path(&long(MAX_PATH_BYTES - 3), "u1").is_err());
        // The limit applies to the resolved path.
        let tilde = format!("/~/{}", "a".repeat(MAX_PATH_BYTES - 3));
        assert!(resolve_path(&tilde, "u1").is_err());
        assert!(resolve_path(&tilde, "u").is_ok());
        assert!(
            resolve_path("/x/~", "u1").is_err(),
            "only a leading '~' is resolved"
        );
    }
}

//! The auth service's storage: one redb file, `DATA/auth.redb`.
//!
//! ```text
//! table                 key                                value
//! auth_meta             &str "format"                      u64 format version (1)
//! auth_users            &str user id                       (bool is_admin, i64 created unix s)
//! auth_accounts         (&str provider, &str provider id)  &str user id
//! auth_user_accounts    multimap &str user id              (&str provider, &str provider id)
//! auth_passwords        &str user id                       &str argon2 PHC hash string
//! auth_revoked          &str refresh token id              i64 the token's expiry (unix s)
//! ```
//!
//! **Invariants:** every account points at an existing user and is listed under that user in
//! `auth_user_accounts`; a user has a row in `auth_passwords` iff it has a `password` account;
//! each write below is one redb transaction, so a crash never leaves half a user.
//! `auth_revoked` keeps the expiry so that entries of expired tokens can be purged later
//! (an expired token is refused anyway). Format changes bump `auth_meta.format`; a newer
//! format than this build knows is refused at open.

use std::path::Path;

use redb::{Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition};
use shoal::protocol::auth::{Account, ADMIN_USER_NAME, PROVIDER_DEBUG, PROVIDER_PASSWORD};

use crate::tokens::{random_id, unix_now};

const META: TableDefinition<&str, u64> = TableDefinition::new("auth_meta");
const USERS: TableDefinition<&str, (bool, i64)> = TableDefinition::new("auth_users");
const ACCOUNTS: TableDefinition<(&str, &str), &str> = TableDefinition::new("auth_accounts");
const USER_ACCOUNTS: MultimapTableDefinition<&str, (&str, &str)> =
    MultimapTableDefinition::new("auth_user_accounts");
const PASSWORDS: TableDefinition<&str, &str> = TableDefinition::new("auth_passwords");
const REVOKED: TableDefinition<&str, i64> = TableDefinition::new("auth_revoked");

/// The storage format this build writes.
const FORMAT: u64 = 1;

/// The file name under the data directory.
pub const FILE_NAME: &str = "auth.redb";

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, or the file is open in another process).
    #[error("auth storage: {0}")]
    Redb(#[from] redb::Error),
    /// The file was written by a newer server.
    #[error("auth storage format {found} is newer than this server's ({FORMAT})")]
    NewerFormat {
        /// The format found in the file.
        found: u64,
    },
    /// The file could not be created, or the OS random source failed.
    #[error("auth storage: {0}")]
    Io(#[from] std::io::Error),
}

fn redb_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb(e.into())
}

/// A user as the auth service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The identity (user id).
    pub id: String,
    /// Whether the user is an admin.
    pub is_admin: bool,
}

/// The users, accounts, password hashes and revoked token ids. All methods block (redb I/O):
/// call them from a blocking thread.
pub struct Store {
    /// The open redb file; redb serialises writers and gives readers snapshots.
    db: Database,
}

impl Store {
    /// Opens or creates `DATA/auth.redb` and its tables.
    ///
    /// # Errors
    /// [`StoreError`]; nothing has been written when opening fails.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(FILE_NAME);
        // Password hashes live here: create the file owner-only before redb initialises it
        // (redb accepts an empty file as a new database).
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        drop(options.open(&path)?);
        let db = Database::create(&path).map_err(redb_err)?;
        let txn = db.begin_write().map_err(redb_err)?;
        {
            let mut meta = txn.open_table(META).map_err(redb_err)?;
            let found = meta.get("format").map_err(redb_err)?.map(|v| v.value());
            match found {
                Some(found) if found > FORMAT => return Err(StoreError::NewerFormat { found }),
                Some(_) => {}
                None => {
                    meta.insert("format", FORMAT).map_err(redb_err)?;
                }
            }
            txn.open_table(USERS).map_err(redb_err)?;
            txn.open_table(ACCOUNTS).map_err(redb_err)?;
            txn.open_multimap_table(USER_ACCOUNTS).map_err(redb_err)?;
            txn.open_table(PASSWORDS).map_err(redb_err)?;
            txn.open_table(REVOKED).map_err(redb_err)?;
        }
        txn.commit().map_err(redb_err)?;
        Ok(Store { db })
    }

    /// The user id an account logs in as.
    pub fn find_account(
        &self,
        provider: &str,
        provider_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let accounts = txn.open_table(ACCOUNTS).map_err(redb_err)?;
        let found = accounts.get((provider, provider_id)).map_err(redb_err)?;
        Ok(found.map(|v| v.value().to_owned()))
    }

    /// A user by identity.
    pub fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let users = txn.open_table(USERS).map_err(redb_err)?;
        let found = users.get(id).map_err(redb_err)?;
        Ok(found.map(|v| User {
            id: id.to_owned(),
            is_admin: v.value().0,
        }))
    }

    /// Every account of a user, sorted.
    pub fn accounts(&self, id: &str) -> Result<Vec<Account>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let table = txn.open_multimap_table(USER_ACCOUNTS).map_err(redb_err)?;
        let mut out = Vec::new();
        for entry in table.get(id).map_err(redb_err)? {
            let entry = entry.map_err(redb_err)?;
            let (provider, provider_id) = entry.value();
            out.push(Account {
                provider: provider.to_owned(),
                provider_id: provider_id.to_owned(),
            });
        }
        Ok(out)
    }

    /// The password hash of a user with a `password` account.
    pub fn password_hash(&self, id: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let table = txn.open_table(PASSWORDS).map_err(redb_err)?;
        let found = table.get(id).map_err(redb_err)?;
        Ok(found.map(|v| v.value().to_owned()))
    }

    /// Registers a new user with the `password` account `name`. `Ok(None)` if the account
    /// exists already (nothing is written then).
    pub fn create_password_user(&self, name: &str, hash: &str) -> Result<Option<User>, StoreError> {
        self.create_user(PROVIDER_PASSWORD, name, false, Some(hash))
    }

    /// The user of the `debug` account `identity`, created on first use with that identity
    /// (an admin iff the identity is `admin`). If a user with that identity exists already
    /// (from another provider), the debug account is attached to it.
    pub fn debug_user(&self, identity: &str) -> Result<User, StoreError> {
        let txn = self.db.begin_write().map_err(redb_err)?;
        let user = {
            let mut users = txn.open_table(USERS).map_err(redb_err)?;
            let existing = users.get(identity).map_err(redb_err)?.map(|v| v.value().0);
            let is_admin = match existing {
                Some(is_admin) => is_admin,
                None => {
                    let is_admin = identity == "admin";
                    users
                        .insert(identity, (is_admin, unix_now()))
                        .map_err(redb_err)?;
                    is_admin
                }
            };
            let mut accounts = txn.open_table(ACCOUNTS).map_err(redb_err)?;
            if accounts
                .get((PROVIDER_DEBUG, identity))
                .map_err(redb_err)?
                .is_none()
            {
                accounts
                    .insert((PROVIDER_DEBUG, identity), identity)
                    .map_err(redb_err)?;
                let mut by_user = txn.open_multimap_table(USER_ACCOUNTS).map_err(redb_err)?;
                by_user
                    .insert(identity, (PROVIDER_DEBUG, identity))
                    .map_err(redb_err)?;
            }
            User {
                id: identity.to_owned(),
                is_admin,
            }
        };
        txn.commit().map_err(redb_err)?;
        Ok(user)
    }

    /// Creates the built-in admin (`password` account `realm-admin`) with `hash`, or, when it
    /// exists, sets its password to `hash` if `overwrite`. Returns the admin user.
    pub fn ensure_admin(&self, hash: &str, overwrite: bool) -> Result<User, StoreError> {
        if let Some(id) = self.find_account(PROVIDER_PASSWORD, ADMIN_USER_NAME)? {
            if overwrite {
                self.set_password_hash(&id, hash)?;
            }
            return Ok(User { id, is_admin: true });
        }
        let created = self.create_user(PROVIDER_PASSWORD, ADMIN_USER_NAME, true, Some(hash))?;
        match created {
            Some(user) => Ok(user),
            // Another thread created it between the two transactions: use that one.
            None => self.ensure_admin(hash, overwrite),
        }
    }

    /// Replaces the password hash of a user that has a `password` account. `Ok(false)` if it
    /// has none (nothing is written then).
    pub fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(redb_err)?;
        let updated = {
            let mut table = txn.open_table(PASSWORDS).map_err(redb_err)?;
            let exists = table.get(id).map_err(redb_err)?.is_some();
            if exists {
                table.insert(id, hash).map_err(redb_err)?;
            }
            exists
        };
        txn.commit().map_err(redb_err)?;
        Ok(updated)
    }

    /// Adds a refresh token id to the revocation list. `Ok(false)` if it was there already.
    pub fn revoke(&self, token_id: &str, expires: i64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(redb_err)?;
        let added = {
            let mut table = txn.open_table(REVOKED).map_err(redb_err)?;
            let previous = table.insert(token_id, expires).map_err(redb_err)?;
            previous.is_none()
        };
        txn.commit().map_err(redb_err)?;
        Ok(added)
    }

    /// Whether a refresh token id is revoked.
    pub fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let table = txn.open_table(REVOKED).map_err(redb_err)?;
        Ok(table.get(token_id).map_err(redb_err)?.is_some())
    }

    /// Creates a user with a fresh random identity and one account, in one transaction.
    /// `Ok(None)` if the account exists.
    fn create_user(
        &self,
        provider: &str,
        provider_id: &str,
        is_admin: bool,
        password_hash: Option<&str>,
    ) -> Result<Option<User>, StoreError> {
        let id = random_id()?;
        let txn = self.db.begin_write().map_err(redb_err)?;
        {
            let mut accounts = txn.open_table(ACCOUNTS).map_err(redb_err)?;
            if accounts
                .get((provider, provider_id))
                .map_err(redb_err)?
                .is_some()
            {
                return Ok(None); // the transaction is dropped: nothing written
            }
            accounts
                .insert((provider, provider_id), id.as_str())
                .map_err(redb_err)?;
            let mut users = txn.open_table(USERS).map_err(redb_err)?;
            users
                .insert(id.as_str(), (is_admin, unix_now()))
                .map_err(redb_err)?;
            let mut by_user = txn.open_multimap_table(USER_ACCOUNTS).map_err(redb_err)?;
            by_user
                .insert(id.as_str(), (provider, provider_id))
                .map_err(redb_err)?;
            if let Some(hash) = password_hash {
                let mut passwords = txn.open_table(PASSWORDS).map_err(redb_err)?;
                passwords.insert(id.as_str(), hash).map_err(redb_err)?;
            }
        }
        txn.commit().map_err(redb_err)?;
        Ok(Some(User { id, is_admin }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_accounts_and_revocations_persist() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, admin) = {
            let store = Store::open(dir.path()).unwrap();
            let alice = store.create_password_user("alice", "h1").unwrap().unwrap();
            assert_eq!(store.create_password_user("alice", "h2").unwrap(), None);
            let admin = store.ensure_admin("empty", false).unwrap();
            assert!(store.revoke("t1", 5).unwrap());
            assert!(!store.revoke("t1", 5).unwrap());
            (alice, admin)
        };
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.find_account("password", "alice").unwrap(),
            Some(alice.id.clone())
        );
        assert_eq!(
            store.password_hash(&alice.id).unwrap().as_deref(),
            Some("h1")
        );
        assert_eq!(store.user(&alice.id).unwrap(), Some(alice.clone()));
        assert!(store.is_revoked("t1").unwrap() && !store.is_revoked("t2").unwrap());
        assert_eq!(store.ensure_admin("other", false).unwrap(), admin);
        assert_eq!(
            store.password_hash(&admin.id).unwrap().as_deref(),
            Some("empty")
        );
        store.ensure_admin("new", true).unwrap();
        assert_eq!(
            store.password_hash(&admin.id).unwrap().as_deref(),
            Some("new")
        );
        assert_eq!(
            store.accounts(&alice.id).unwrap(),
            [Account {
                provider: "password".into(),
                provider_id: "alice".into()
            }]
        );
    }

    #[test]
    fn debug_users_are_their_identity_and_admin_is_an_admin() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.debug_user("admin").unwrap().is_admin);
        let bob = store.debug_user("bob").unwrap();
        assert_eq!(
            bob,
            User {
                id: "bob".into(),
                is_admin: false
            }
        );
        assert_eq!(store.debug_user("bob").unwrap(), bob);
        assert_eq!(store.accounts("bob").unwrap().len(), 1);
        assert_eq!(store.password_hash("bob").unwrap(), None);
        assert!(!store.set_password_hash("bob", "x").unwrap());
    }
}

//! The user store: a metadata realm (the core's own storage) that keeps the users of an
//! [`App`](crate::App) and the token revocations still owed to the server, so both survive a
//! process restart (Realm's `RealmFileUserStore` on object-store's metadata realm).
//!
//! File: `<base_dir>/shoal-object-server/shoal-metadata/users.realm` (the directory is created
//! with mode 0700 on Unix: the file holds refresh tokens). Schema version 1:
//!
//! | class | property | type | meaning |
//! |---|---|---|---|
//! | `User` | `identity` | string, primary key | the user's identity |
//! | | `auth_url` | string | the auth URL the user logged in with, as given |
//! | | `refresh_token` | string? | the refresh token; `null` once logged out |
//! | | `token_expires` | int? | its expiry in unix seconds; `null` = never |
//! | | `is_admin` | bool | the admin flag of the last token |
//! | `PendingRevocation` | `token` | string, primary key | a logged-out refresh token not yet revoked |
//! | | `identity` | string | whose token it is |
//! | | `auth_url` | string | where to revoke it |
//! | | `created` | int | unix seconds of the logout |
//!
//! A logout is one transaction: the user's `refresh_token` becomes `null` and a
//! `PendingRevocation` row appears; the row goes once the server confirmed (or finally refused)
//! the revocation. A newer file (schema version above 1) is refused with `SchemaVersionLower`.
//!
//! Every operation takes the store's mutex: the realm handle has one write transaction at a
//! time and the store is used from the caller's and the library's threads.

use crate::config::Config;
use crate::db::Realm;
use crate::error::{Error, Result};
use crate::schema::{PropertyFlags, Schema};
use crate::value::{PropertyType, Value};
use parking_lot::Mutex;
use std::path::Path;

/// The schema version of the user store.
const SCHEMA_VERSION: u64 = 1;

const USER: &str = "User";
const REVOCATION: &str = "PendingRevocation";

/// One row of `User`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredUser {
    pub identity: String,
    pub auth_url: String,
    pub refresh_token: Option<String>,
    pub token_expires: Option<i64>,
    pub is_admin: bool,
}

/// One row of `PendingRevocation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRevocation {
    pub token: String,
    pub identity: String,
    pub auth_url: String,
}

pub(crate) struct UserStore {
    realm: Mutex<Realm>,
}

fn schema() -> Result<Schema> {
    let mut s = Schema::new();
    s.add_class(USER, Some("identity"))?;
    s.add_property(
        USER,
        "identity",
        PropertyType::String,
        PropertyFlags::NONE,
        None,
    )?;
    s.add_property(
        USER,
        "auth_url",
        PropertyType::String,
        PropertyFlags::NONE,
        None,
    )?;
    let nullable = PropertyFlags::NULLABLE;
    s.add_property(USER, "refresh_token", PropertyType::String, nullable, None)?;
    s.add_property(USER, "token_expires", PropertyType::Int, nullable, None)?;
    s.add_property(
        USER,
        "is_admin",
        PropertyType::Bool,
        PropertyFlags::NONE,
        None,
    )?;
    s.add_class(REVOCATION, Some("token"))?;
    for name in ["token", "identity", "auth_url"] {
        s.add_property(
            REVOCATION,
            name,
            PropertyType::String,
            PropertyFlags::NONE,
            None,
        )?;
    }
    s.add_property(
        REVOCATION,
        "created",
        PropertyType::Int,
        PropertyFlags::NONE,
        None,
    )?;
    Ok(s)
}

fn string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn opt_string(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

impl UserStore {
    /// Opens (creating if needed) the store at `path`.
    pub(crate) fn open(path: &Path) -> Result<UserStore> {
        let path = path
            .to_str()
            .ok_or_else(|| Error::invalid(format!("the path {path:?} is not UTF-8")))?;
        let mut config = Config::new(path);
        config.set_schema(schema()?)?;
        config.set_schema_version(SCHEMA_VERSION);
        let realm = Realm::open(&config)?;
        Ok(UserStore {
            realm: Mutex::new(realm),
        })
    }

    /// Runs `f` in a write transaction and commits; cancels on error.
    fn write<R>(realm: &Realm, f: impl FnOnce(&Realm) -> Result<R>) -> Result<R> {
        realm.begin_write()?;
        match f(realm) {
            Ok(r) => realm.commit().map(|()| r),
            Err(e) => {
                let _ = realm.cancel_write();
                Err(e)
            }
        }
    }

    /// Closes the store's realm handle at once (the file is closed when no other handle of it
    /// is open in this process); later calls fail with `RealmClosed`.
    pub(crate) fn close(&self) {
        self.realm.lock().close();
    }

    /// Every stored user.
    pub(crate) fn users(&self) -> Result<Vec<StoredUser>> {
        let realm = self.realm.lock();
        realm.refresh()?;
        let mut out = Vec::new();
        for o in realm.objects(USER)?.to_vec()? {
            let Some(identity) = string(o.get("identity")?) else {
                continue;
            };
            out.push(StoredUser {
                identity,
                auth_url: string(o.get("auth_url")?).unwrap_or_default(),
                refresh_token: string(o.get("refresh_token")?),
                token_expires: o.get("token_expires")?.as_int(),
                is_admin: o.get("is_admin")? == Value::Bool(true),
            });
        }
        Ok(out)
    }

    /// Inserts or replaces a user.
    pub(crate) fn put_user(&self, user: &StoredUser) -> Result<()> {
        let realm = self.realm.lock();
        Self::write(&realm, |r| {
            let key = Value::String(user.identity.clone());
            let o = match r.find_object(USER, &key)? {
                Some(o) => o,
                None => r.create_object(USER, Some(&key))?,
            };
            o.set("auth_url", user.auth_url.as_str())?;
            o.set("refresh_token", opt_string(user.refresh_token.as_deref()))?;
            o.set(
                "token_expires",
                user.token_expires.map_or(Value::Null, Value::Int),
            )?;
            o.set("is_admin", user.is_admin)?;
            Ok(())
        })
    }

    /// Marks `identity` logged out and records the revocation it owes, in one transaction.
    pub(crate) fn logout(&self, identity: &str, revocation: &StoredRevocation) -> Result<()> {
        let realm = self.realm.lock();
        Self::write(&realm, |r| {
            if let Some(o) = r.find_object(USER, &Value::String(identity.to_owned()))? {
                o.set("refresh_token", Value::Null)?;
            }
            let key = Value::String(revocation.token.clone());
            if r.find_object(REVOCATION, &key)?.is_none() {
                let o = r.create_object(REVOCATION, Some(&key))?;
                o.set("identity", revocation.identity.as_str())?;
                o.set("auth_url", revocation.auth_url.as_str())?;
                o.set("created", crate::util::unix_now())?;
            }
            Ok(())
        })
    }

    /// The revocations still owed, oldest first.
    pub(crate) fn revocations(&self) -> Result<Vec<StoredRevocation>> {
        let realm = self.realm.lock();
        realm.refresh()?;
        let mut rows = Vec::new();
        for o in realm.objects(REVOCATION)?.sort("created", true)?.to_vec()? {
            rows.push(StoredRevocation {
                token: string(o.get("token")?).unwrap_or_default(),
                identity: string(o.get("identity")?).unwrap_or_default(),
                auth_url: string(o.get("auth_url")?).unwrap_or_default(),
            });
        }
        Ok(rows)
    }

    /// Forgets a revocation (the server confirmed or finally refused it).
    pub(crate) fn remove_revocation(&self, token: &str) -> Result<()> {
        let realm = self.realm.lock();
        Self::write(&realm, |r| {
            if let Some(o) = r.find_object(REVOCATION, &Value::String(token.to_owned()))? {
                o.delete()?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_revocations_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.realm");
        let alice = StoredUser {
            identity: "alice".into(),
            auth_url: "http://h/auth".into(),
            refresh_token: Some("t1".into()),
            token_expires: None,
            is_admin: true,
        };
        {
            let store = UserStore::open(&path).unwrap();
            store.put_user(&alice).unwrap();
            let mut bob = alice.clone();
            bob.identity = "bob".into();
            bob.token_expires = Some(5);
            bob.is_admin = false;
            store.put_user(&bob).unwrap();
            let revocation = StoredRevocation {
                token: "t1".into(),
                identity: "bob".into(),
                auth_url: "http://h/auth".into(),
            };
            store.logout("bob", &revocation).unwrap();
            store.logout("bob", &revocation).unwrap();
            assert_eq!(store.revocations().unwrap(), vec![revocation]);
        }
        let store = UserStore::open(&path).unwrap();
        let mut users = store.users().unwrap();
        users.sort_by(|a, b| a.identity.cmp(&b.identity));
        assert_eq!(users[0], alice);
        assert_eq!(
            (users[1].refresh_token.as_deref(), users[1].token_expires),
            (None, Some(5))
        );
        store.remove_revocation("t1").unwrap();
        store.remove_revocation("t1").unwrap();
        assert!(store.revocations().unwrap().is_empty());
    }
}

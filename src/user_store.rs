//! The user store: a metadata realm (the core's own storage) that keeps the users of an
//! [`App`](crate::App), the token revocations still owed to the server and the synced realm
//! files of each user, so all survive a process restart (Realm's `RealmFileUserStore` on
//! object-store's metadata realm).
//!
//! File: `<base_dir>/shoal-object-server/shoal-metadata/users.realm` (the directory is created
//! with mode 0700 on Unix: the file holds refresh tokens). Schema version 2:
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
//! | `UserFile` (v2) | `path` | string, primary key | a synced realm file of the user (absolute) |
//! | | `identity` | string, indexed | whose file it is |
//! | | `root` | string | the root it was placed under (`<root>/<identity>/...`) |
//! | `PendingRemoval` (v2) | `identity` | string, primary key | a logged-out user whose files and metadata are still to be deleted |
//! | | `created` | int | unix seconds of the logout |
//!
//! A logout is one transaction: the user's `refresh_token` becomes `null`, a
//! `PendingRevocation` row and a `PendingRemoval` row appear. The revocation row goes once the
//! server confirmed (or finally refused) the revocation. The removal row goes with the user's
//! `User` and `UserFile` rows, in one transaction, once every file of the user is deleted (at
//! once, or at the next start); a new login of the user deletes it instead (in the transaction
//! that stores the login). A `UserFile` row is written before its file is first created.
//! Version 1 files gain the two classes on open (nothing else changes). A newer file (schema
//! version above 2) is refused with `SchemaVersionLower`.
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

/// The schema version of the user store (2: `UserFile` and `PendingRemoval`).
const SCHEMA_VERSION: u64 = 2;

const USER: &str = "User";
const REVOCATION: &str = "PendingRevocation";
const FILE: &str = "UserFile";
const REMOVAL: &str = "PendingRemoval";

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

/// The store's schema: version 1's classes, then those of version 2.
fn schema() -> Result<Schema> {
    let mut s = schema_v1()?;
    s.add_class(FILE, Some("path"))?;
    let string = PropertyType::String;
    s.add_property(FILE, "path", string, PropertyFlags::NONE, None)?;
    s.add_property(FILE, "identity", string, PropertyFlags::INDEXED, None)?;
    s.add_property(FILE, "root", string, PropertyFlags::NONE, None)?;
    s.add_class(REMOVAL, Some("identity"))?;
    s.add_property(REMOVAL, "identity", string, PropertyFlags::NONE, None)?;
    s.add_property(
        REMOVAL,
        "created",
        PropertyType::Int,
        PropertyFlags::NONE,
        None,
    )?;
    Ok(s)
}

/// Version 1's classes: `User` and `PendingRevocation`.
fn schema_v1() -> Result<Schema> {
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

/// One row of `UserFile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredFile {
    pub path: String,
    pub root: String,
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
        // Version 1 → 2 adds two classes: nothing to convert.
        config.set_migration(|_, _, _| Ok(()));
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

    /// Inserts or replaces a user (a login), cancelling a removal still owed for it.
    pub(crate) fn put_user(&self, user: &StoredUser) -> Result<()> {
        let realm = self.realm.lock();
        Self::write(&realm, |r| {
            if let Some(o) = r.find_object(REMOVAL, &Value::String(user.identity.clone()))? {
                o.delete()?;
            }
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

    /// Marks `identity` logged out, records the revocation it owes and marks its files and
    /// metadata for removal, in one transaction.
    pub(crate) fn logout(&self, identity: &str, revocation: &StoredRevocation) -> Result<()> {
        let realm = self.realm.lock();
        Self::write(&realm, |r| {
            let id = Value::String(identity.to_owned());
            if let Some(o) = r.find_object(USER, &id)? {
                o.set("refresh_token", Value::Null)?;
            }
            if r.find_object(REMOVAL, &id)?.is_none() {
                let o = r.create_object(REMOVAL, Some(&id))?;
                o.set("created", crate::util::unix_now())?;
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

    /// Records `path` as a synced realm file of `identity`, placed under `root` (nothing to
    /// write if it is recorded already).
    pub(crate) fn record_file(&self, identity: &str, path: &str, root: &str) -> Result<()> {
        let realm = self.realm.lock();
        realm.refresh()?;
        let key = Value::String(path.to_owned());
        if let Some(o) = realm.find_object(FILE, &key)? {
            if string(o.get("identity")?).as_deref() == Some(identity)
                && string(o.get("root")?).as_deref() == Some(root)
            {
                return Ok(());
            }
        }
        Self::write(&realm, |r| {
            let o = match r.find_object(FILE, &key)? {
                Some(o) => o,
                None => r.create_object(FILE, Some(&key))?,
            };
            o.set("identity", identity)?;
            o.set("root", root)?;
            Ok(())
        })
    }

    /// The synced realm files recorded for `identity`.
    pub(crate) fn files(&self, identity: &str) -> Result<Vec<StoredFile>> {
        let realm = self.realm.lock();
        realm.refresh()?;
        let mut out = Vec::new();
        let matching = realm.query(
            FILE,
            "identity == $0",
            &[Value::String(identity.to_owned())],
        )?;
        for o in matching.to_vec()? {
            out.push(StoredFile {
                path: string(o.get("path")?).unwrap_or_default(),
                root: string(o.get("root")?).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Whether `identity`'s files and metadata are marked for removal.
    pub(crate) fn is_marked_for_removal(&self, identity: &str) -> Result<bool> {
        let realm = self.realm.lock();
        realm.refresh()?;
        Ok(realm
            .find_object(REMOVAL, &Value::String(identity.to_owned()))?
            .is_some())
    }

    /// The identities whose files and metadata are marked for removal, oldest first.
    pub(crate) fn removals(&self) -> Result<Vec<String>> {
        let realm = self.realm.lock();
        realm.refresh()?;
        let mut out = Vec::new();
        for o in realm.objects(REMOVAL)?.sort("created", true)?.to_vec()? {
            out.extend(string(o.get("identity")?));
        }
        Ok(out)
    }

    /// Deletes the metadata of a removed user: its `User` row, its `UserFile` rows and its
    /// removal mark, in one transaction (its owed revocations stay until they are done).
    pub(crate) fn remove_user(&self, identity: &str) -> Result<()> {
        let realm = self.realm.lock();
        Self::write(&realm, |r| {
            let id = Value::String(identity.to_owned());
            for class in [USER, REMOVAL] {
                if let Some(o) = r.find_object(class, &id)? {
                    o.delete()?;
                }
            }
            r.query(FILE, "identity == $0", &[id])?.delete_all()?;
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

    #[test]
    fn files_and_removal_marks_follow_logouts_logins_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(&dir.path().join("users.realm")).unwrap();
        let user = StoredUser {
            identity: "alice".into(),
            auth_url: "http://h/auth".into(),
            refresh_token: Some("t1".into()),
            token_expires: None,
            is_admin: false,
        };
        store.put_user(&user).unwrap();
        store.record_file("alice", "/r/alice/a", "/r").unwrap();
        store.record_file("alice", "/r/alice/a", "/r").unwrap();
        store.record_file("alice", "/s/alice/b", "/s").unwrap();
        store.record_file("bob", "/r/bob/a", "/r").unwrap();
        let mut files = store.files("alice").unwrap();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            files,
            vec![
                StoredFile {
                    path: "/r/alice/a".into(),
                    root: "/r".into()
                },
                StoredFile {
                    path: "/s/alice/b".into(),
                    root: "/s".into()
                },
            ]
        );
        assert!(!store.is_marked_for_removal("alice").unwrap());
        let revocation = StoredRevocation {
            token: "t1".into(),
            identity: "alice".into(),
            auth_url: "http://h/auth".into(),
        };
        store.logout("alice", &revocation).unwrap();
        assert!(store.is_marked_for_removal("alice").unwrap());
        assert_eq!(store.removals().unwrap(), vec!["alice".to_owned()]);
        // A new login cancels the removal.
        store.put_user(&user).unwrap();
        assert!(!store.is_marked_for_removal("alice").unwrap());
        store.logout("alice", &revocation).unwrap();
        store.remove_user("alice").unwrap();
        assert!(store.users().unwrap().is_empty());
        assert!(store.files("alice").unwrap().is_empty());
        assert!(store.removals().unwrap().is_empty());
        assert_eq!(store.files("bob").unwrap().len(), 1, "others' files stay");
        assert_eq!(
            store.revocations().unwrap().len(),
            1,
            "the revocation is still owed"
        );
    }

    #[test]
    fn a_version_1_store_opens_with_its_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.realm");
        {
            // Version 1: `User` and `PendingRevocation` only.
            let v1 = schema_v1().unwrap();
            let mut config = Config::new(path.to_str().unwrap());
            config.set_schema(v1).unwrap();
            config.set_schema_version(1);
            let realm = Realm::open(&config).unwrap();
            realm.begin_write().unwrap();
            let o = realm
                .create_object(USER, Some(&Value::String("old".into())))
                .unwrap();
            o.set("auth_url", "http://h/auth").unwrap();
            o.set("refresh_token", "t").unwrap();
            realm.commit().unwrap();
        }
        let store = UserStore::open(&path).unwrap();
        let users = store.users().unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].refresh_token.as_deref(), Some("t"));
        store.record_file("old", "/r/old/x", "/r").unwrap();
        assert_eq!(store.files("old").unwrap().len(), 1);
    }
}

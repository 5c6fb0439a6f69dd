//! The permission storage: one redb file, `DATA/permissions.redb` (owner-only).
//!
//! ```text
//! table                key                                         value
//! permissions_meta     &str "format"                               u64 format version (1)
//! grants               (&str realm path, &str user id or "*")      u8 access bits (1 read, 2 write, 4 manage)
//! user_grants          (&str user id or "*", &str realm path)      u8 the same bits (the index by user)
//! offers               &str offer token                            (&str management realm path, &str offer id,
//!                                                                   &str realm path, &str realm URL for the
//!                                                                   response, u8 access bits,
//!                                                                   i64 expiry unix ms, i64::MAX = never)
//! processed            (&str management realm path, &str class,    (i64 status code, &str status message,
//!                       &str object id)                             &str token or realm URL; "" = none)
//! ```
//!
//! **Invariants:** `grants` and `user_grants` hold the same rows (written together), and no
//! row has no access bit (such a grant is removed); an offer token is in `offers` at most once
//! (it is the key); every object of a management realm the server has answered has a row in
//! `processed` written in the same transaction as the grants and offers its processing made,
//! so the answer written back into the realm is always the recorded one, whatever crash came
//! in between. Format changes bump `permissions_meta.format`; a newer format is refused.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition};

use super::{perr, Access, PermissionsError, EVERYONE};

const META: TableDefinition<&str, u64> = TableDefinition::new("permissions_meta");
const GRANTS: TableDefinition<(&str, &str), u8> = TableDefinition::new("grants");
const USER_GRANTS: TableDefinition<(&str, &str), u8> = TableDefinition::new("user_grants");
const OFFERS: TableDefinition<&str, (&str, &str, &str, &str, u8, i64)> =
    TableDefinition::new("offers");
const PROCESSED: TableDefinition<(&str, &str, &str), (i64, &str, &str)> =
    TableDefinition::new("processed");

/// The storage format this build writes.
const FORMAT: u64 = 1;
/// The file name under the data directory.
pub const FILE_NAME: &str = "permissions.redb";

/// An offer as recorded when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OfferRow {
    /// The management realm it was made in (its owner is the offerer).
    pub(super) management_path: String,
    /// The `PermissionOffer` object's id.
    pub(super) offer_id: String,
    /// The (resolved) realm path offered.
    pub(super) path: String,
    /// What a response's `realmUrl` becomes: the offer's URL with its path resolved.
    pub(super) url: String,
    /// The levels offered.
    pub(super) access: Access,
    /// Expiry in unix milliseconds; `i64::MAX` for never.
    pub(super) expires_ms: i64,
}

/// The answer to one management realm object, as written back into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    /// `statusCode`: 0 for success, else an error code.
    pub(super) code: i32,
    /// `statusMessage` (none on success).
    pub(super) message: Option<String>,
    /// An offer's `token` or a response's `realmUrl` (success only).
    pub(super) value: Option<String>,
}

/// Reads a grant.
pub(super) trait GrantRead {
    /// The levels granted to `user` (a user id or [`EVERYONE`]) on `path`.
    fn grant(&self, path: &str, user: &str) -> Result<Access, PermissionsError>;
}

fn grant_in(
    table: &impl ReadableTable<(&'static str, &'static str), u8>,
    path: &str,
    user: &str,
) -> Result<Access, PermissionsError> {
    Ok(table
        .get((path, user))
        .map_err(perr)?
        .map_or(Access::NONE, |v| Access::from_bits(v.value())))
}

/// The rows of `table` whose key starts with `first`: `(second key part, access)`.
fn rows_of(
    table: &impl ReadableTable<(&'static str, &'static str), u8>,
    first: &str,
) -> Result<Vec<(String, Access)>, PermissionsError> {
    let mut out = Vec::new();
    for item in table.range((first, "")..).map_err(perr)? {
        let (k, v) = item.map_err(perr)?;
        let (a, b) = k.value();
        if a != first {
            break;
        }
        out.push((b.to_owned(), Access::from_bits(v.value())));
    }
    Ok(out)
}

/// The tables of a read transaction.
pub(super) struct ReadTables {
    grants: ReadOnlyTable<(&'static str, &'static str), u8>,
    user_grants: ReadOnlyTable<(&'static str, &'static str), u8>,
}

impl GrantRead for ReadTables {
    fn grant(&self, path: &str, user: &str) -> Result<Access, PermissionsError> {
        grant_in(&self.grants, path, user)
    }
}

impl ReadTables {
    /// `identity`'s grants together with the grants to everyone, by path.
    pub(super) fn shared_with(
        &self,
        identity: &str,
    ) -> Result<BTreeMap<String, Access>, PermissionsError> {
        let mut out: BTreeMap<String, Access> = BTreeMap::new();
        for user in [identity, EVERYONE] {
            for (path, access) in rows_of(&self.user_grants, user)? {
                let entry = out.entry(path).or_default();
                *entry = entry.union(access);
            }
        }
        Ok(out)
    }
}

/// The tables of a write transaction.
pub(super) struct WriteTables<'txn> {
    grants: Table<'txn, (&'static str, &'static str), u8>,
    user_grants: Table<'txn, (&'static str, &'static str), u8>,
    offers: Table<
        'txn,
        &'static str,
        (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            u8,
            i64,
        ),
    >,
    processed:
        Table<'txn, (&'static str, &'static str, &'static str), (i64, &'static str, &'static str)>,
}

impl GrantRead for WriteTables<'_> {
    fn grant(&self, path: &str, user: &str) -> Result<Access, PermissionsError> {
        grant_in(&self.grants, path, user)
    }
}

impl WriteTables<'_> {
    /// Sets the grant of `user` on `path` (removing it when `access` has no level).
    pub(super) fn set_grant(
        &mut self,
        path: &str,
        user: &str,
        access: Access,
    ) -> Result<(), PermissionsError> {
        if access.is_none() {
            self.grants.remove((path, user)).map_err(perr)?;
            self.user_grants.remove((user, path)).map_err(perr)?;
        } else {
            let bits = access.bits();
            self.grants.insert((path, user), bits).map_err(perr)?;
            self.user_grants.insert((user, path), bits).map_err(perr)?;
        }
        Ok(())
    }

    /// Every user (and [`EVERYONE`]) with a grant on `path`.
    pub(super) fn grantees(&self, path: &str) -> Result<Vec<String>, PermissionsError> {
        Ok(rows_of(&self.grants, path)?
            .into_iter()
            .map(|(user, _)| user)
            .collect())
    }

    /// Every path `user` has been granted manage access to, by its own grant or the grant to
    /// everyone.
    pub(super) fn managed_by_grant(&self, user: &str) -> Result<Vec<String>, PermissionsError> {
        let mut out = Vec::new();
        for who in [user, EVERYONE] {
            for (path, access) in rows_of(&self.user_grants, who)? {
                if access.manage {
                    out.push(path);
                }
            }
        }
        Ok(out)
    }

    /// The offer with this token.
    pub(super) fn offer(&self, token: &str) -> Result<Option<OfferRow>, PermissionsError> {
        Ok(self.offers.get(token).map_err(perr)?.map(|v| {
            let (management_path, offer_id, path, url, bits, expires_ms) = v.value();
            OfferRow {
                management_path: management_path.to_owned(),
                offer_id: offer_id.to_owned(),
                path: path.to_owned(),
                url: url.to_owned(),
                access: Access::from_bits(bits),
                expires_ms,
            }
        }))
    }

    /// Records an offer under its token.
    pub(super) fn insert_offer(
        &mut self,
        token: &str,
        offer: &OfferRow,
    ) -> Result<(), PermissionsError> {
        self.offers
            .insert(
                token,
                (
                    offer.management_path.as_str(),
                    offer.offer_id.as_str(),
                    offer.path.as_str(),
                    offer.url.as_str(),
                    offer.access.bits(),
                    offer.expires_ms,
                ),
            )
            .map(drop)
            .map_err(perr)
    }

    /// The recorded answer to an object, if it was processed.
    pub(super) fn processed(
        &self,
        management_path: &str,
        class: &str,
        id: &str,
    ) -> Result<Option<Outcome>, PermissionsError> {
        let found = self
            .processed
            .get((management_path, class, id))
            .map_err(perr)?;
        Ok(found.map(|v| {
            let (code, message, value) = v.value();
            Outcome {
                code: i32::try_from(code).unwrap_or(i32::MAX),
                message: (!message.is_empty()).then(|| message.to_owned()),
                value: (!value.is_empty()).then(|| value.to_owned()),
            }
        }))
    }

    /// Records the answer to an object.
    pub(super) fn insert_processed(
        &mut self,
        management_path: &str,
        class: &str,
        id: &str,
        outcome: &Outcome,
    ) -> Result<(), PermissionsError> {
        self.processed
            .insert(
                (management_path, class, id),
                (
                    i64::from(outcome.code),
                    outcome.message.as_deref().unwrap_or(""),
                    outcome.value.as_deref().unwrap_or(""),
                ),
            )
            .map(drop)
            .map_err(perr)
    }
}

/// `DATA/permissions.redb`.
pub(super) struct GrantStore {
    db: Database,
}

impl GrantStore {
    /// Opens or creates the file (owner-only from creation) and its tables.
    pub(super) fn open(data_dir: &Path) -> Result<GrantStore, PermissionsError> {
        let path = data_dir.join(FILE_NAME);
        crate::files::create_private_file(&path).map_err(perr)?;
        let db = Database::create(&path).map_err(perr)?;
        let txn = db.begin_write().map_err(perr)?;
        {
            let mut meta = txn.open_table(META).map_err(perr)?;
            let found = meta.get("format").map_err(perr)?.map(|v| v.value());
            match found {
                Some(found) if found > FORMAT => {
                    return Err(PermissionsError(format!(
                        "format {found} is newer than this server's ({FORMAT})"
                    )))
                }
                Some(_) => {}
                None => {
                    meta.insert("format", FORMAT).map_err(perr)?;
                }
            }
            txn.open_table(GRANTS).map_err(perr)?;
            txn.open_table(USER_GRANTS).map_err(perr)?;
            txn.open_table(OFFERS).map_err(perr)?;
            txn.open_table(PROCESSED).map_err(perr)?;
        }
        txn.commit().map_err(perr)?;
        Ok(GrantStore { db })
    }

    /// Runs `f` on a read snapshot.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&ReadTables) -> Result<T, PermissionsError>,
    ) -> Result<T, PermissionsError> {
        let txn = self.db.begin_read().map_err(perr)?;
        let tables = ReadTables {
            grants: txn.open_table(GRANTS).map_err(perr)?,
            user_grants: txn.open_table(USER_GRANTS).map_err(perr)?,
        };
        f(&tables)
    }

    /// Runs `f` in a write transaction, committed (durably) if it returns `Ok`, else dropped.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<T, PermissionsError>,
    ) -> Result<T, PermissionsError> {
        let txn = self.db.begin_write().map_err(perr)?;
        let result = {
            let mut tables = WriteTables {
                grants: txn.open_table(GRANTS).map_err(perr)?,
                user_grants: txn.open_table(USER_GRANTS).map_err(perr)?,
                offers: txn.open_table(OFFERS).map_err(perr)?,
                processed: txn.open_table(PROCESSED).map_err(perr)?,
            };
            f(&mut tables)?
        };
        txn.commit().map_err(perr)?;
        Ok(result)
    }
}

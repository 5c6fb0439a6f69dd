//! Keeping a merged replica: a realm that other replicas' changesets are integrated into,
//! as a sync server keeps one copy of every synced realm. Such a realm keeps merge metadata
//! (registers, tombstones, the origins it integrated) and declares no schema: its classes
//! come from the changesets.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! let copy = shoal::replica::open(dir.path().join("server.realm").to_string_lossy())?;
//! shoal::replica::integrate_strictly(&copy, &[])?;
//! # Ok::<(), shoal::Error>(())
//! ```

use crate::config::Config;
use crate::db::Realm;
use crate::error::Result;

pub use crate::history::{
    changeset_header, decode_changeset_full as decode_changeset, encode_changeset, Changeset,
};

/// Opens (creating it if missing) the realm file at `path` with merge metadata on and no
/// declared schema.
pub fn open(path: impl Into<String>) -> Result<Realm> {
    let mut config = Config::new(path);
    config.set_merge_metadata(true);
    Realm::open(&config)
}

/// Integrates other replicas' changesets in one transaction, all or none, refusing what an
/// honest replica could not have made (see [`Realm::integrate_changesets_strictly`]): what a
/// server does with every upload before it hands the changesets on.
pub fn integrate_strictly(realm: &Realm, changesets: &[&[u8]]) -> Result<()> {
    realm.integrate_changesets_strictly(changesets)
}

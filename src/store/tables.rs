//! The redb tables of a realm file and how their keys are packed.
//!
//! | table            | key                                   | value                         |
//! |------------------|---------------------------------------|-------------------------------|
//! | `shoal_meta`     | name (`&str`)                         | bytes (see [`meta`] keys)     |
//! | `shoal_columns`  | `class << 96 | prop << 64 | chunk`    | encoded column chunk; reserved props: liveness bitmaps, class state |
//! | `shoal_lists`    | `class << 96 | prop << 64 | object`   | encoded chunk of list items   |
//! | `shoal_index`    | `(class << 32 | prop, hash, object)`  | index chunk (see `index.rs`)  |
//! | `shoal_history`  | version (1, 2, ...)                   | encoded changeset             |
//! | `shoal_merge`    | bytes (see `sync/merge.rs`)           | merge metadata; only in realms with merge metadata on |
//!
//! Packing class, property and chunk into one `u128` keeps all chunks of one column adjacent
//! and in chunk order, so a scan is one range read.

use redb::TableDefinition;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("shoal_meta");
pub(crate) const COLUMNS: TableDefinition<u128, &[u8]> = TableDefinition::new("shoal_columns");
pub(crate) const LISTS: TableDefinition<u128, &[u8]> = TableDefinition::new("shoal_lists");
pub(crate) const INDEX: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("shoal_index");
pub(crate) const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("shoal_history");
/// Merge metadata (registers, tombstones, integrated origins); layout in `sync/merge.rs`.
pub(crate) const MERGE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shoal_merge");

/// Names of the entries of the meta table.
pub(crate) mod meta {
    /// File format version (u32 LE). Bumped on incompatible layout changes.
    pub(crate) const FORMAT: &str = "format";
    /// The catalog JSON (see `catalog.rs`).
    pub(crate) const CATALOG: &str = "catalog";
    /// The user's schema version (u64 LE).
    pub(crate) const SCHEMA_VERSION: &str = "schema_version";
    /// 8 random bytes identifying this file; the high half of generated global ids.
    pub(crate) const FILE_SALT: &str = "file_salt";
    /// The highest changeset stamp integrated from other replicas (u64 LE; absent: 0).
    pub(crate) const HLC: &str = "hlc";
    /// Sync progress of a synced realm (see `sync::SyncProgress`).
    pub(crate) const SYNC: &str = "sync";
}

/// The storage format this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The key of chunk `n` of `prop` in `class` (also used for lists, with the object key as `n`).
pub(crate) fn column_key(class: u32, prop: u32, n: u64) -> u128 {
    (u128::from(class) << 96) | (u128::from(prop) << 64) | u128::from(n)
}

/// The first and last keys of every chunk of one column.
pub(crate) fn column_range(class: u32, prop: u32) -> std::ops::RangeInclusive<u128> {
    column_key(class, prop, 0)..=column_key(class, prop, u64::MAX)
}

/// The first and last keys of every column of one class.
pub(crate) fn class_range(class: u32) -> std::ops::RangeInclusive<u128> {
    column_key(class, 0, 0)..=column_key(class, u32::MAX, u64::MAX)
}

/// The index-table prefix of one index.
pub(crate) fn index_prefix(class: u32, prop: u32) -> u64 {
    (u64::from(class) << 32) | u64::from(prop)
}

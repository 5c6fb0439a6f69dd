//! The redb tables of a realm file and how their keys are packed.
//!
//! | table            | key                                   | value                         |
//! |------------------|---------------------------------------|-------------------------------|
//! | `shoal_meta`     | name (`&str`)                         | bytes (see [`meta`] keys)     |
//! | `shoal_columns`  | `class << 96 | prop << 64 | chunk`    | encoded column chunk; reserved props: liveness bitmaps, class state |
//! | `shoal_lists`    | `class << 96 | prop << 64 | object`   | encoded chunk of list items   |
//! | `shoal_index`    | `(class << 32 | prop, hash, object)`  | index chunk (see `index.rs`)  |
//! | `shoal_history`  | version (1, 2, ...)                   | encoded changeset             |
//! | `shoal_merge`    | bytes (see `merge/integrate.rs`)           | merge metadata; only in realms with merge metadata on |
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
/// Merge metadata (registers, tombstones, integrated origins); layout in `merge/integrate.rs`.
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
    /// Sync progress of a synced realm (see [`SyncProgress`]).
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

/// `(next object key, live count)` of a class, stored under its reserved property.
pub(crate) fn encode_state((next, live): (u64, u64)) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&next.to_le_bytes());
    b[8..].copy_from_slice(&live.to_le_bytes());
    b
}

pub(crate) fn decode_state(bytes: &[u8]) -> (u64, u64) {
    match (bytes.get(..8), bytes.get(8..16)) {
        (Some(a), Some(b)) => (
            u64::from_le_bytes(a.try_into().expect("8 bytes")),
            u64::from_le_bytes(b.try_into().expect("8 bytes")),
        ),
        _ => (0, 0),
    }
}

/// What a synced file remembers of its sync state, in the meta entry `sync` (4 × u64 LE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SyncProgress {
    /// The client file ident the server issued (0: none yet).
    pub(crate) ident: u64,
    /// The secret salt that came with `ident`.
    pub(crate) salt: u64,
    /// The last server version integrated (the download resumes after it).
    pub(crate) server_version: u64,
    /// The last local history version the server acknowledged (uploads resume after it).
    pub(crate) acked: u64,
}

impl SyncProgress {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for v in [self.ident, self.salt, self.server_version, self.acked] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes the meta entry; a malformed one reads as "never synced" (the server then
    /// issues a new ident, as after a client reset).
    pub(crate) fn decode(bytes: &[u8]) -> SyncProgress {
        if bytes.len() != 32 {
            return SyncProgress::default();
        }
        let at =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        SyncProgress {
            ident: at(0),
            salt: at(1),
            server_version: at(2),
            acked: at(3),
        }
    }
}

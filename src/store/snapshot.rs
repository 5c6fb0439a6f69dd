//! A consistent read view of a realm file at one committed version.

use crate::error::{Error, ErrorCode, Result};
use crate::store::catalog::Catalog;
use crate::store::tables::{self, meta};
use redb::{ReadOnlyTable, ReadTransaction};
use std::sync::Arc;

/// Every table of one read transaction, opened once. Reading through a snapshot never blocks
/// writers and never sees later commits.
pub(crate) struct Snapshot {
    pub(crate) meta: ReadOnlyTable<&'static str, &'static [u8]>,
    pub(crate) columns: ReadOnlyTable<u128, &'static [u8]>,
    pub(crate) lists: ReadOnlyTable<u128, &'static [u8]>,
    pub(crate) index: ReadOnlyTable<(u64, u64, u64), &'static [u8]>,
    pub(crate) classes: ReadOnlyTable<u32, (u64, u64)>,
    pub(crate) history: ReadOnlyTable<u64, &'static [u8]>,
    /// The schema with ids at this version.
    pub(crate) catalog: Arc<Catalog>,
    /// The history version this snapshot shows (0 before the first changeset).
    pub(crate) version: u64,
    /// Raw catalog bytes, to reuse the parsed catalog when the next snapshot has the same.
    pub(crate) catalog_bytes: Arc<Vec<u8>>,
}

pub(crate) fn read_u64(bytes: &[u8]) -> Result<u64> {
    bytes
        .try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| Error::new(ErrorCode::IncompatibleFile, "corrupt meta entry"))
}

impl Snapshot {
    /// Opens every table of `txn`. `previous` lends its parsed catalog when unchanged.
    pub(crate) fn open(
        txn: ReadTransaction,
        previous: Option<(&Arc<Vec<u8>>, &Arc<Catalog>)>,
    ) -> Result<Snapshot> {
        let meta_table = txn.open_table(tables::META).map_err(|e| match e {
            redb::TableError::TableDoesNotExist(_) => Error::new(
                ErrorCode::IncompatibleFile,
                "the file is not a Shoal realm (no meta table)",
            ),
            other => other.into(),
        })?;
        let format = meta_table
            .get(meta::FORMAT)?
            .map(|v| v.value().try_into().map(u32::from_le_bytes))
            .ok_or_else(|| {
                Error::new(ErrorCode::IncompatibleFile, "the file is not a Shoal realm")
            })?
            .map_err(|_| Error::new(ErrorCode::IncompatibleFile, "corrupt format entry"))?;
        if format > tables::FORMAT_VERSION {
            return Err(Error::new(
                ErrorCode::IncompatibleFile,
                format!(
                    "the file uses Shoal format {format}, newer than this library's {}",
                    tables::FORMAT_VERSION
                ),
            ));
        }
        if format < tables::FORMAT_VERSION {
            return Err(Error::new(
                ErrorCode::FormatUpgradeRequired,
                format!("the file uses old Shoal format {format}"),
            ));
        }
        let catalog_bytes: Vec<u8> = meta_table
            .get(meta::CATALOG)?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        let (catalog_bytes, catalog) = match previous {
            Some((bytes, cat)) if **bytes == catalog_bytes => (bytes.clone(), cat.clone()),
            _ => {
                let cat = if catalog_bytes.is_empty() {
                    Catalog::new()
                } else {
                    Catalog::from_json(&catalog_bytes)?
                };
                (Arc::new(catalog_bytes), Arc::new(cat))
            }
        };
        let version = match meta_table.get(meta::VERSION)? {
            Some(v) => read_u64(v.value())?,
            None => 0,
        };
        Ok(Snapshot {
            columns: txn.open_table(tables::COLUMNS)?,
            lists: txn.open_table(tables::LISTS)?,
            index: txn.open_table(tables::INDEX)?,
            classes: txn.open_table(tables::CLASSES)?,
            history: txn.open_table(tables::HISTORY)?,
            meta: meta_table,
            catalog,
            version,
            catalog_bytes,
        })
    }

    /// A u64 meta entry, 0 when absent.
    pub(crate) fn meta_u64(&self, key: &str) -> Result<u64> {
        match self.meta.get(key)? {
            Some(v) => read_u64(v.value()),
            None => Ok(0),
        }
    }

    /// `(next object key, live objects)` of a class.
    pub(crate) fn class_state(&self, class: u32) -> Result<(u64, u64)> {
        Ok(self.classes.get(class)?.map_or((0, 0), |v| v.value()))
    }
}

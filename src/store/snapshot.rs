//! A consistent read view of a realm file at one committed version.

use crate::error::{Error, ErrorCode, Result};
use crate::store::catalog::Catalog;
use crate::store::tables::{self, meta};
use parking_lot::Mutex;
use redb::{ReadOnlyTable, ReadTransaction};
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

/// Every table of one read transaction, opened once. Reading through a snapshot never blocks
/// writers and never sees later commits.
pub(crate) struct Snapshot {
    pub(crate) meta: ReadOnlyTable<&'static str, &'static [u8]>,
    pub(crate) columns: ReadOnlyTable<u128, &'static [u8]>,
    pub(crate) lists: ReadOnlyTable<u128, &'static [u8]>,
    pub(crate) index: ReadOnlyTable<(u64, u64, u64), &'static [u8]>,
    pub(crate) history: ReadOnlyTable<u64, &'static [u8]>,
    /// The schema with ids at this version.
    pub(crate) catalog: Arc<Catalog>,
    /// The history version this snapshot shows (0 before the first changeset).
    pub(crate) version: u64,
    /// Raw catalog bytes, to reuse the parsed catalog when the next snapshot has the same.
    pub(crate) catalog_bytes: Arc<Vec<u8>>,
    /// Values read through this snapshot, kept for repeated point reads (a snapshot never
    /// changes, so nothing is ever stale).
    cache: Mutex<ReadCache>,
}

/// Point-read cache of one snapshot: column chunks and index chunks by key, and each index's
/// chunk directory once an index is searched often.
/// A stored value as cached: `None` records that the key is absent.
type Cached = Option<Arc<[u8]>>;
/// An index's chunk keys in order.
type IndexDirectory = Arc<Vec<(u64, u64)>>;

#[derive(Default)]
struct ReadCache {
    columns: HashMap<u128, Cached>,
    index_chunks: HashMap<(u64, u64, u64), Cached>,
    index_dirs: HashMap<u64, IndexDir>,
    /// Bytes held by `columns` and `index_chunks`.
    bytes: usize,
}

enum IndexDir {
    /// Searches so far; the directory is loaded after [`DIR_AFTER`] of them.
    Counting(u32),
    Loaded(IndexDirectory),
}

/// Largest amount of chunk data a snapshot keeps cached.
const CACHE_BYTES: usize = 64 << 20;
/// Floor searches on one index in one snapshot after which its chunk directory is loaded, so
/// that later searches skip the B-tree (a bulk load, or many lookups).
const DIR_AFTER: u32 = 32;

impl ReadCache {
    fn make_room(&mut self, n: usize) {
        if self.bytes + n > CACHE_BYTES {
            self.columns.clear();
            self.index_chunks.clear();
            self.bytes = 0;
        }
        self.bytes += n;
    }
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
        let history = txn.open_table(tables::HISTORY)?;
        // The version is the last changeset's number; 0 before the first.
        let version = match history.range::<u64>(..)?.next_back() {
            Some(item) => item?.0.value(),
            None => 0,
        };
        Ok(Snapshot {
            columns: txn.open_table(tables::COLUMNS)?,
            lists: txn.open_table(tables::LISTS)?,
            index: txn.open_table(tables::INDEX)?,
            history,
            meta: meta_table,
            catalog,
            version,
            catalog_bytes,
            cache: Mutex::new(ReadCache::default()),
        })
    }

    /// The stored value of a column chunk (or liveness bitmap), through the cache.
    pub(crate) fn column_bytes(&self, key: u128) -> Result<Option<Arc<[u8]>>> {
        if let Some(hit) = self.cache.lock().columns.get(&key) {
            return Ok(hit.clone());
        }
        let value: Option<Arc<[u8]>> = self.columns.get(key)?.map(|g| Arc::from(g.value()));
        let mut cache = self.cache.lock();
        cache.make_room(value.as_ref().map_or(16, |v| v.len() + 16));
        cache.columns.insert(key, value.clone());
        Ok(value)
    }

    /// The stored chunk `key` of index `prefix`, through the cache.
    pub(crate) fn index_chunk(&self, prefix: u64, key: (u64, u64)) -> Result<Option<Arc<[u8]>>> {
        let full = (prefix, key.0, key.1);
        if let Some(hit) = self.cache.lock().index_chunks.get(&full) {
            return Ok(hit.clone());
        }
        let value: Option<Arc<[u8]>> = self.index.get(full)?.map(|g| Arc::from(g.value()));
        let mut cache = self.cache.lock();
        cache.make_room(value.as_ref().map_or(16, |v| v.len() + 16));
        cache.index_chunks.insert(full, value.clone());
        Ok(value)
    }

    /// The chunk directory of an index if it is (now) worth having in memory.
    fn index_dir(&self, prefix: u64) -> Result<Option<IndexDirectory>> {
        {
            let mut cache = self.cache.lock();
            match cache
                .index_dirs
                .entry(prefix)
                .or_insert(IndexDir::Counting(0))
            {
                IndexDir::Loaded(dir) => return Ok(Some(dir.clone())),
                IndexDir::Counting(n) if *n < DIR_AFTER => {
                    *n += 1;
                    return Ok(None);
                }
                IndexDir::Counting(_) => {}
            }
        }
        let mut dir = Vec::new();
        for item in self
            .index
            .range((prefix, 0, 0)..=(prefix, u64::MAX, u64::MAX))?
        {
            let (k, _) = item?;
            let (_, h, o) = k.value();
            dir.push((h, o));
        }
        let dir = Arc::new(dir);
        self.cache
            .lock()
            .index_dirs
            .insert(prefix, IndexDir::Loaded(dir.clone()));
        Ok(Some(dir))
    }

    /// The last stored chunk key of index `prefix` at or before `at`.
    pub(crate) fn index_floor(&self, prefix: u64, at: (u64, u64)) -> Result<Option<(u64, u64)>> {
        if let Some(dir) = self.index_dir(prefix)? {
            let n = dir.partition_point(|k| *k <= at);
            return Ok(n.checked_sub(1).map(|i| dir[i]));
        }
        let mut range = self.index.range((prefix, 0, 0)..=(prefix, at.0, at.1))?;
        Ok(match range.next_back() {
            Some(item) => {
                let (k, _) = item?;
                let (_, h, o) = k.value();
                Some((h, o))
            }
            None => None,
        })
    }

    /// The first stored chunk key of index `prefix` after `after`.
    pub(crate) fn index_next(&self, prefix: u64, after: (u64, u64)) -> Result<Option<(u64, u64)>> {
        if let Some(dir) = self.index_dir(prefix)? {
            let n = dir.partition_point(|k| *k <= after);
            return Ok(dir.get(n).copied());
        }
        let lower = std::ops::Bound::Excluded((prefix, after.0, after.1));
        let upper = std::ops::Bound::Included((prefix, u64::MAX, u64::MAX));
        let mut range = self.index.range::<(u64, u64, u64)>((lower, upper))?;
        Ok(match range.next() {
            Some(item) => {
                let (k, _) = item?;
                let (_, h, o) = k.value();
                Some((h, o))
            }
            None => None,
        })
    }

    /// A u64 meta entry, 0 when absent.
    pub(crate) fn meta_u64(&self, key: &str) -> Result<u64> {
        match self.meta.get(key)? {
            Some(v) => read_u64(v.value()),
            None => Ok(0),
        }
    }

    /// A meta entry's bytes, if present.
    pub(crate) fn meta_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key)?.map(|v| v.value().to_vec()))
    }

    /// `(next object key, live objects)` of a class.
    pub(crate) fn class_state(&self, class: u32) -> Result<(u64, u64)> {
        let key = tables::column_key(class, crate::store::catalog::STATE_PROP, 0);
        Ok(self
            .column_bytes(key)?
            .map_or((0, 0), |b| tables::decode_state(&b)))
    }
}

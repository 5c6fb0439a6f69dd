//! Reading a realm through a snapshot plus, inside a write transaction, the overlay of chunks
//! that transaction changed.
//!
//! A write transaction does not write into redb as it goes: it keeps changed chunks decoded in
//! an [`Overlay`] and writes each once at commit ([`Overlay::flush`]). Reads inside the
//! transaction consult the overlay first, then the snapshot the transaction started from (the
//! latest commit, since the transaction holds the file's write lock).

use crate::error::Result;
use crate::store::catalog::{Catalog, ClassInfo, PropInfo, GID_PROP, LIVE_PROP, STATE_PROP};
use crate::store::chunk::{self, ChunkView, CHUNK_ROWS};
use crate::store::index::{self, IndexAccess, IndexOverlay};
use crate::store::snapshot::Snapshot;
use crate::store::tables::{self, column_key, encode_state, meta};
use crate::value::{Value, ValueRef};
use redb::WriteTransaction;
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

/// Words in a chunk's liveness bitmap (`CHUNK_ROWS` bits).
const LIVE_WORDS: usize = (CHUNK_ROWS / 64) as usize;
/// A chunk's liveness bitmap: bit `i` set = row `i` of the chunk holds a live object.
pub(crate) type LiveBits = [u64; LIVE_WORDS];

pub(crate) fn decode_live(bytes: &[u8]) -> LiveBits {
    let mut bits = [0u64; LIVE_WORDS];
    for (w, chunk) in bits.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    bits
}

fn encode_live(bits: &LiveBits) -> Vec<u8> {
    bits.iter().flat_map(|w| w.to_le_bytes()).collect()
}

pub(crate) fn chunk_of(key: u64) -> (u64, usize) {
    (key / CHUNK_ROWS, (key % CHUNK_ROWS) as usize)
}

/// The changes of one write transaction that are not yet in redb.
#[derive(Default)]
pub(crate) struct Overlay {
    /// Changed column chunks, decoded, by column key.
    pub(crate) columns: HashMap<u128, Vec<Value>>,
    /// Changed liveness bitmaps by (class, chunk).
    pub(crate) live: HashMap<(u32, u64), LiveBits>,
    /// Changed lists by (class, prop, object) key; an empty list is deleted at flush.
    pub(crate) lists: HashMap<u128, Vec<Value>>,
    /// Changed index chunks.
    pub(crate) index: IndexOverlay,
    /// Changed `(next key, live count)` of classes.
    pub(crate) classes: HashMap<u32, (u64, u64)>,
    /// Columns (class, Some(prop)) or whole classes (class, None) to erase at flush.
    pub(crate) dropped: Vec<(u32, Option<u32>)>,
    /// Indexes (class, prop) to erase at flush while their property stays.
    pub(crate) dropped_indexes: Vec<(u32, u32)>,
    /// The catalog as changed by this transaction, if it was.
    pub(crate) catalog: Option<Arc<Catalog>>,
    /// A new schema version, if set.
    pub(crate) schema_version: Option<u64>,
}

/// A chunk as read: from the overlay, from storage, or absent (all NULL).
pub(crate) enum ChunkData<'a> {
    Dirty(&'a [Value]),
    Stored(Arc<[u8]>),
    Missing,
}

/// A readable chunk.
pub(crate) enum ChunkRef<'a> {
    Dirty(&'a [Value]),
    Stored(ChunkView<'a>),
    Missing,
}

impl<'a> ChunkData<'a> {
    pub(crate) fn view(&self, link_class: u32) -> Result<ChunkRef<'_>> {
        Ok(match self {
            ChunkData::Dirty(v) => ChunkRef::Dirty(v),
            ChunkData::Stored(g) => ChunkRef::Stored(ChunkView::new(g, link_class)?),
            ChunkData::Missing => ChunkRef::Missing,
        })
    }
}

impl ChunkRef<'_> {
    pub(crate) fn get(&self, row: usize) -> Result<ValueRef<'_>> {
        match self {
            ChunkRef::Dirty(v) => Ok(v.get(row).map_or(ValueRef::Null, Value::as_ref)),
            ChunkRef::Stored(view) => view.get(row),
            ChunkRef::Missing => Ok(ValueRef::Null),
        }
    }

    /// The integer at `row`, reading stored INT chunks without building a value.
    pub(crate) fn int_at(&self, row: usize) -> Result<Option<i64>> {
        match self {
            ChunkRef::Stored(view) if view.property_type() == crate::value::PropertyType::Int => {
                Ok(view.int_at(row))
            }
            other => Ok(match other.get(row)? {
                ValueRef::Int(i) => Some(i),
                _ => None,
            }),
        }
    }
}

/// A read view: a snapshot and, inside a write transaction, its overlay.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) snap: &'a Snapshot,
    pub(crate) overlay: Option<&'a Overlay>,
}

impl<'a> View<'a> {
    pub(crate) fn catalog(&self) -> &'a Catalog {
        match self.overlay.and_then(|o| o.catalog.as_ref()) {
            Some(c) => c,
            None => &self.snap.catalog,
        }
    }

    /// `(next object key, live count)` of a class.
    pub(crate) fn class_state(&self, class: u32) -> Result<(u64, u64)> {
        if let Some(s) = self.overlay.and_then(|o| o.classes.get(&class)) {
            return Ok(*s);
        }
        self.snap.class_state(class)
    }

    pub(crate) fn live_bits(&self, class: u32, chunk: u64) -> Result<LiveBits> {
        if let Some(bits) = self.overlay.and_then(|o| o.live.get(&(class, chunk))) {
            return Ok(*bits);
        }
        Ok(
            match self
                .snap
                .column_bytes(column_key(class, LIVE_PROP, chunk))?
            {
                Some(bytes) => decode_live(&bytes),
                None => [0; LIVE_WORDS],
            },
        )
    }

    pub(crate) fn is_live(&self, class: u32, key: u64) -> Result<bool> {
        let (chunk, row) = chunk_of(key);
        let bits = self.live_bits(class, chunk)?;
        Ok(bits[row / 64] & (1 << (row % 64)) != 0)
    }

    pub(crate) fn chunk(&self, class: u32, prop: u32, chunk: u64) -> Result<ChunkData<'a>> {
        let key = column_key(class, prop, chunk);
        if let Some(v) = self.overlay.and_then(|o| o.columns.get(&key)) {
            return Ok(ChunkData::Dirty(v));
        }
        Ok(match self.snap.column_bytes(key)? {
            Some(bytes) => ChunkData::Stored(bytes),
            None => ChunkData::Missing,
        })
    }

    /// The value of a scalar property of object `key`.
    pub(crate) fn get(&self, class: &ClassInfo, prop: &PropInfo, key: u64) -> Result<Value> {
        let (chunk, row) = chunk_of(key);
        let data = self.chunk(class.id, prop.id, chunk)?;
        let value = data.view(prop.link_class())?.get(row)?.to_owned();
        Ok(value)
    }

    /// The elements of a list property of object `key`.
    pub(crate) fn list(&self, class: u32, prop: &PropInfo, key: u64) -> Result<Vec<Value>> {
        let k = column_key(class, prop.id, key);
        if let Some(v) = self.overlay.and_then(|o| o.lists.get(&k)) {
            return Ok(v.clone());
        }
        match self.snap.lists.get(k)? {
            Some(g) => chunk::decode(g.value(), prop.link_class()),
            None => Ok(Vec::new()),
        }
    }

    /// The number of elements of a list without decoding them.
    pub(crate) fn list_len(&self, class: u32, prop: &PropInfo, key: u64) -> Result<usize> {
        let k = column_key(class, prop.id, key);
        if let Some(v) = self.overlay.and_then(|o| o.lists.get(&k)) {
            return Ok(v.len());
        }
        match self.snap.lists.get(k)? {
            Some(g) => Ok(ChunkView::new(g.value(), 0)?.len()),
            None => Ok(0),
        }
    }

    pub(crate) fn index(&self, class: u32, prop: u32) -> IndexAccess<'a> {
        IndexAccess {
            snap: self.snap,
            prefix: tables::index_prefix(class, prop),
        }
    }

    /// Candidate object keys whose indexed `prop` hashes like `value`.
    pub(crate) fn index_lookup(
        &self,
        class: u32,
        prop: u32,
        value: ValueRef<'_>,
    ) -> Result<(Vec<u64>, bool)> {
        let (hash, exact) = index::index_hash(value);
        Ok((
            self.index(class, prop)
                .lookup(self.overlay.map(|o| &o.index), hash)?,
            exact,
        ))
    }

    /// Every live object key of a class, in key order.
    pub(crate) fn live_keys(&self, class: u32) -> Result<Vec<u64>> {
        let (next, live) = self.class_state(class)?;
        let mut out = Vec::with_capacity(usize::try_from(live).unwrap_or(0));
        for chunk in 0..next.div_ceil(CHUNK_ROWS) {
            let bits = self.live_bits(class, chunk)?;
            for (w, word) in bits.iter().enumerate() {
                let mut word = *word;
                while word != 0 {
                    let bit = word.trailing_zeros() as u64;
                    out.push(chunk * CHUNK_ROWS + w as u64 * 64 + bit);
                    word &= word - 1;
                }
            }
        }
        Ok(out)
    }
}

impl Overlay {
    /// The chunk holding `key` of a column, loaded into the overlay for writing.
    pub(crate) fn column_mut(
        &mut self,
        snap: &Snapshot,
        class: u32,
        prop: &PropInfo,
        chunk: u64,
    ) -> Result<&mut Vec<Value>> {
        Ok(
            match self.columns.entry(column_key(class, prop.id, chunk)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let mut loaded = match snap.columns.get(*e.key())? {
                        Some(g) => chunk::decode(g.value(), prop.link_class())?,
                        None => Vec::new(),
                    };
                    // Appends fill a chunk row by row: one allocation instead of a doubling run.
                    loaded.reserve_exact((chunk::CHUNK_ROWS as usize).saturating_sub(loaded.len()));
                    e.insert(loaded)
                }
            },
        )
    }

    /// Writes one scalar value (already checked against the property's type).
    pub(crate) fn set_value(
        &mut self,
        snap: &Snapshot,
        class: u32,
        prop: &PropInfo,
        key: u64,
        value: Value,
    ) -> Result<()> {
        let (chunk, row) = chunk_of(key);
        let column = self.column_mut(snap, class, prop, chunk)?;
        if column.len() <= row {
            if value.is_null() {
                return Ok(());
            }
            column.resize(row + 1, Value::Null);
        }
        column[row] = value;
        Ok(())
    }

    pub(crate) fn set_live(
        &mut self,
        snap: &Snapshot,
        class: u32,
        key: u64,
        live: bool,
    ) -> Result<()> {
        let (chunk, row) = chunk_of(key);
        let bits = match self.live.get_mut(&(class, chunk)) {
            Some(b) => b,
            None => {
                let loaded = View {
                    snap,
                    overlay: None,
                }
                .live_bits(class, chunk)?;
                self.live.entry((class, chunk)).or_insert(loaded)
            }
        };
        let mask = 1u64 << (row % 64);
        if live {
            bits[row / 64] |= mask;
        } else {
            bits[row / 64] &= !mask;
        }
        Ok(())
    }

    /// Replaces a whole list.
    pub(crate) fn set_list(&mut self, class: u32, prop: u32, key: u64, items: Vec<Value>) {
        self.lists.insert(column_key(class, prop, key), items);
    }

    /// Writes everything into `txn`. Columns of classes or properties dropped in this
    /// transaction are erased first and their stale overlay entries skipped.
    pub(crate) fn flush(self, txn: &WriteTransaction, catalog: &Catalog) -> Result<()> {
        let exists = |class: u32, prop: u32| {
            catalog.class_by_id(class).is_some_and(|c| {
                prop == LIVE_PROP
                    || prop == GID_PROP
                    || prop == STATE_PROP
                    || c.prop_by_id(prop).is_some()
            })
        };
        // Only the tables that change are opened: every table written costs its own B-tree
        // pages in the commit, which dominates a small durable commit.
        let touches_columns = !self.dropped.is_empty()
            || !self.columns.is_empty()
            || !self.live.is_empty()
            || !self.classes.is_empty();
        if touches_columns {
            let mut columns = txn.open_table(tables::COLUMNS)?;
            for (class, prop) in &self.dropped {
                let range = match prop {
                    Some(p) => tables::column_range(*class, *p),
                    None => tables::class_range(*class),
                };
                columns.retain_in(range, |_, _| false)?;
            }
            let mut ordered: Vec<_> = self.columns.into_iter().collect();
            ordered.sort_unstable_by_key(|(k, _)| *k);
            for (key, values) in ordered {
                let (class, prop) = ((key >> 96) as u32, (key >> 64) as u32);
                if !exists(class, prop) {
                    continue;
                }
                let info = catalog.class_by_id(class).and_then(|c| c.prop_by_id(prop));
                let ty = info.map_or(crate::value::PropertyType::Binary, |p| p.ty);
                if values.iter().all(Value::is_null) {
                    columns.remove(key)?;
                } else {
                    columns.insert(key, chunk::encode(ty, &values)?.as_slice())?;
                }
            }
            for ((class, chunk_no), bits) in self.live {
                if catalog.class_by_id(class).is_none() {
                    continue;
                }
                let key = column_key(class, LIVE_PROP, chunk_no);
                if bits.iter().all(|w| *w == 0) {
                    columns.remove(key)?;
                } else {
                    columns.insert(key, encode_live(&bits).as_slice())?;
                }
            }
            for (class, state) in self.classes {
                if catalog.class_by_id(class).is_some() {
                    columns.insert(
                        column_key(class, STATE_PROP, 0),
                        encode_state(state).as_slice(),
                    )?;
                }
            }
        }
        if !self.dropped.is_empty() || !self.lists.is_empty() {
            let mut lists = txn.open_table(tables::LISTS)?;
            for (class, prop) in &self.dropped {
                let range = match prop {
                    Some(p) => tables::column_range(*class, *p),
                    None => tables::class_range(*class),
                };
                lists.retain_in(range, |_, _| false)?;
            }
            for (key, items) in self.lists {
                let (class, prop) = ((key >> 96) as u32, (key >> 64) as u32);
                let Some(info) = catalog.class_by_id(class).and_then(|c| c.prop_by_id(prop)) else {
                    continue;
                };
                if items.is_empty() {
                    lists.remove(key)?;
                } else {
                    lists.insert(key, chunk::encode(info.ty, &items)?.as_slice())?;
                }
            }
        }
        if !self.dropped_indexes.is_empty() || !self.index.dirty.is_empty() {
            let mut index_table = txn.open_table(tables::INDEX)?;
            for (class, prop) in &self.dropped_indexes {
                index::drop_index(&mut index_table, *class, *prop)?;
            }
            let mut idx = self.index;
            idx.dirty
                .retain(|prefix, _| exists((prefix >> 32) as u32, *prefix as u32));
            index::flush(idx, &mut index_table)?;
        }
        if self.catalog.is_some() || self.schema_version.is_some() {
            let mut meta_table = txn.open_table(tables::META)?;
            if let Some(cat) = &self.catalog {
                meta_table.insert(meta::CATALOG, cat.to_json().as_bytes())?;
            }
            if let Some(v) = self.schema_version {
                meta_table.insert(meta::SCHEMA_VERSION, v.to_le_bytes().as_slice())?;
            }
        }
        Ok(())
    }
}

//! Equality indexes (primary keys, INDEXED properties, global ids) as sorted chunks.
//!
//! An index maps a 64-bit hash of a value to the objects holding it. Its entries
//! `(hash, object key)` are kept sorted and split into chunks of at most [`MAX_ENTRIES`];
//! each chunk is one value of the `shoal_index` table under the key
//! `(index prefix, hash of its first entry, object key of its first entry)`. The first chunk
//! of an index is always keyed `(prefix, 0, 0)` so every entry has a chunk at or before it.
//!
//! ```text
//! chunk value: n × (hash u64 LE, object key u64 LE), sorted, no duplicates
//! ```
//! Chunking is what makes a bulk insert of a million objects cheap: sequential keys append to
//! the last chunk and a transaction writes a few thousand chunks instead of a million entries.
//! Hashes of integers are order-preserving and exact; other hashes may collide, so callers
//! check candidates against the stored value.
//!
//! **Invariant:** entries of a chunk with first key `f` are `>= f` and `<` the next chunk's
//! first key. Chunks are never removed inside a transaction (only emptied), which keeps the
//! floor lookup over "overlay ∪ snapshot" correct; empty chunks are dropped when flushed.

use crate::error::{Error, ErrorCode, Result};
use crate::store::snapshot::Snapshot;
use crate::store::tables;
use crate::value::ValueRef;
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Largest number of entries in one index chunk (16 bytes each).
pub(crate) const MAX_ENTRIES: usize = 128;

type Entry = (u64, u64);
type ChunkKey = (u64, u64);

/// The hash of a value in an index, and whether equal hashes imply equal values.
pub(crate) fn index_hash(v: ValueRef<'_>) -> (u64, bool) {
    match v {
        ValueRef::Null => (0, false),
        ValueRef::Int(i) => {
            let h = (i as u64) ^ (1 << 63);
            (h, h != 0)
        }
        ValueRef::Bool(b) => (u64::from(b) + 1, true),
        ValueRef::String(s) => (mix(fnv1a(s.as_bytes())), false),
        ValueRef::Binary(b) => (mix(fnv1a(b)), false),
        ValueRef::Timestamp(t) => (
            mix((t.seconds as u64).rotate_left(32) ^ u64::from(t.nanos as u32)),
            false,
        ),
        ValueRef::Float(f) => (mix(u64::from(f.to_bits())), false),
        ValueRef::Double(d) => (mix(d.to_bits()), false),
        ValueRef::Link(l) => (mix(l.key ^ (u64::from(l.class_id) << 40)), false),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// splitmix64's finalizer: spreads FNV's weak low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn decode_chunk(bytes: &[u8]) -> Result<Vec<Entry>> {
    if !bytes.len().is_multiple_of(16) {
        return Err(Error::new(
            ErrorCode::IncompatibleFile,
            "corrupt index chunk",
        ));
    }
    Ok(bytes
        .chunks_exact(16)
        .map(|e| {
            (
                u64::from_le_bytes(e[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(e[8..].try_into().expect("8 bytes")),
            )
        })
        .collect())
}

pub(crate) fn encode_chunk(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 16);
    for (h, k) in entries {
        out.extend_from_slice(&h.to_le_bytes());
        out.extend_from_slice(&k.to_le_bytes());
    }
    out
}

/// The chunks of indexes changed in the current write transaction, by index prefix.
#[derive(Default)]
pub(crate) struct IndexOverlay {
    pub(crate) dirty: HashMap<u64, BTreeMap<ChunkKey, Vec<Entry>>>,
    /// Per index, the snapshot's last chunk key, looked up once per transaction: an entry at
    /// or past both it and the last changed chunk (appending sequential keys, the bulk-insert
    /// case) then finds its chunk without a search.
    disk_last: std::cell::RefCell<HashMap<u64, Option<ChunkKey>>>,
}

/// The entries of a stored chunk, searched in place without decoding.
struct StoredEntries<'b>(&'b [u8]);

impl StoredEntries<'_> {
    fn len(&self) -> usize {
        self.0.len() / 16
    }

    fn get(&self, i: usize) -> Entry {
        let e = &self.0[i * 16..i * 16 + 16];
        (
            u64::from_le_bytes(e[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(e[8..].try_into().expect("8 bytes")),
        )
    }

    /// The first position whose hash is not below `hash`.
    fn lower_bound(&self, hash: u64) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid).0 < hash {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Reads (and, through [`IndexOverlay`], writes) one index over a snapshot plus the overlay.
pub(crate) struct IndexAccess<'a> {
    pub(crate) snap: &'a Snapshot,
    pub(crate) prefix: u64,
}

impl IndexAccess<'_> {
    fn disk_load(&self, key: ChunkKey) -> Result<Vec<Entry>> {
        match self.snap.index_chunk(self.prefix, key)? {
            Some(bytes) => decode_chunk(&bytes),
            None => Ok(Vec::new()),
        }
    }

    fn dirty_of<'o>(
        &self,
        overlay: Option<&'o IndexOverlay>,
    ) -> Option<&'o BTreeMap<ChunkKey, Vec<Entry>>> {
        overlay.and_then(|o| o.dirty.get(&self.prefix))
    }

    fn floor(&self, overlay: Option<&IndexOverlay>, at: ChunkKey) -> Result<Option<ChunkKey>> {
        if let (Some(o), Some((last, _))) = (
            overlay,
            self.dirty_of(overlay).and_then(BTreeMap::last_key_value),
        ) {
            if at >= *last {
                let cached = o.disk_last.borrow().get(&self.prefix).copied();
                let disk_last = match cached {
                    Some(d) => d,
                    None => {
                        let d = self.snap.index_floor(self.prefix, (u64::MAX, u64::MAX))?;
                        o.disk_last.borrow_mut().insert(self.prefix, d);
                        d
                    }
                };
                if disk_last.is_none_or(|d| d <= *last) {
                    return Ok(Some(*last));
                }
            }
        }
        let o = self
            .dirty_of(overlay)
            .and_then(|d| d.range(..=at).next_back().map(|(k, _)| *k));
        Ok(o.max(self.snap.index_floor(self.prefix, at)?))
    }

    fn next(&self, overlay: Option<&IndexOverlay>, after: ChunkKey) -> Result<Option<ChunkKey>> {
        // Past the last changed chunk and the snapshot's last one there is nothing.
        if let (Some(o), Some((last, _))) = (
            overlay,
            self.dirty_of(overlay).and_then(BTreeMap::last_key_value),
        ) {
            if after >= *last
                && o.disk_last
                    .borrow()
                    .get(&self.prefix)
                    .is_some_and(|d| d.is_none_or(|d| d <= after))
            {
                return Ok(None);
            }
        }
        let after_bound = (Bound::Excluded(after), Bound::Unbounded);
        let o = self
            .dirty_of(overlay)
            .and_then(|d| d.range(after_bound).next().map(|(k, _)| *k));
        let d = self.snap.index_next(self.prefix, after)?;
        Ok(match (o, d) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// The object keys whose value hashes to `hash`, in key order.
    pub(crate) fn lookup(&self, overlay: Option<&IndexOverlay>, hash: u64) -> Result<Vec<u64>> {
        let dirty = self.dirty_of(overlay);
        let mut out = Vec::new();
        let Some(mut chunk_key) = self.floor(overlay, (hash, 0))? else {
            return Ok(out);
        };
        loop {
            let past = match dirty.and_then(|d| d.get(&chunk_key)) {
                Some(entries) => {
                    let start = entries.partition_point(|e| e.0 < hash);
                    out.extend(
                        entries[start..]
                            .iter()
                            .take_while(|e| e.0 == hash)
                            .map(|e| e.1),
                    );
                    entries.last().is_some_and(|e| e.0 > hash)
                }
                None => match self.snap.index_chunk(self.prefix, chunk_key)? {
                    Some(bytes) => {
                        if bytes.len() % 16 != 0 {
                            return Err(Error::new(
                                ErrorCode::IncompatibleFile,
                                "corrupt index chunk",
                            ));
                        }
                        let entries = StoredEntries(&bytes);
                        let mut i = entries.lower_bound(hash);
                        while i < entries.len() && entries.get(i).0 == hash {
                            out.push(entries.get(i).1);
                            i += 1;
                        }
                        entries.len() > 0 && entries.get(entries.len() - 1).0 > hash
                    }
                    None => false,
                },
            };
            if past {
                return Ok(out);
            }
            match self.next(overlay, chunk_key)? {
                Some(next) if next.0 == hash => chunk_key = next,
                _ => return Ok(out),
            }
        }
    }

    /// Loads the chunk that holds (or would hold) `entry` into the overlay and returns its key.
    fn dirty_chunk<'o>(
        &self,
        overlay: &'o mut IndexOverlay,
        entry: Entry,
    ) -> Result<(&'o mut BTreeMap<ChunkKey, Vec<Entry>>, ChunkKey)> {
        let key = self.floor(Some(overlay), entry)?.unwrap_or((0, 0));
        let dirty = overlay.dirty.entry(self.prefix).or_default();
        if let std::collections::btree_map::Entry::Vacant(e) = dirty.entry(key) {
            e.insert(self.disk_load(key)?);
        }
        Ok((dirty, key))
    }

    /// Adds `(hash, key)`; adding an existing entry is a no-op.
    pub(crate) fn insert(&self, overlay: &mut IndexOverlay, hash: u64, key: u64) -> Result<()> {
        let entry = (hash, key);
        let (dirty, chunk_key) = self.dirty_chunk(overlay, entry)?;
        let chunk = dirty.get_mut(&chunk_key).expect("loaded above");
        let pos = match chunk.binary_search(&entry) {
            Ok(_) => return Ok(()),
            Err(p) => p,
        };
        chunk.insert(pos, entry);
        if chunk.len() > MAX_ENTRIES {
            // Appending at the end (sequential keys) splits off just the new entry so chunks
            // stay full; otherwise split in the middle.
            let at = if pos == chunk.len() - 1 {
                pos
            } else {
                chunk.len() / 2
            };
            let tail = chunk.split_off(at);
            dirty.insert(tail[0], tail);
        }
        Ok(())
    }

    /// Removes `(hash, key)` if present.
    pub(crate) fn remove(&self, overlay: &mut IndexOverlay, hash: u64, key: u64) -> Result<()> {
        let entry = (hash, key);
        let (dirty, chunk_key) = self.dirty_chunk(overlay, entry)?;
        let chunk = dirty.get_mut(&chunk_key).expect("loaded above");
        if let Ok(pos) = chunk.binary_search(&entry) {
            chunk.remove(pos);
        }
        Ok(())
    }
}

/// Writes the overlay's chunks into the index table.
pub(crate) fn flush(
    overlay: IndexOverlay,
    table: &mut redb::Table<(u64, u64, u64), &[u8]>,
) -> Result<()> {
    for (prefix, chunks) in overlay.dirty {
        for ((h, k), entries) in chunks {
            if entries.is_empty() && (h, k) != (0, 0) {
                table.remove((prefix, h, k))?;
            } else {
                table.insert((prefix, h, k), encode_chunk(&entries).as_slice())?;
            }
        }
    }
    Ok(())
}

/// Removes every chunk of one index.
pub(crate) fn drop_index(
    table: &mut redb::Table<(u64, u64, u64), &[u8]>,
    class: u32,
    prop: u32,
) -> Result<()> {
    let prefix = tables::index_prefix(class, prop);
    table.retain_in((prefix, 0, 0)..=(prefix, u64::MAX, u64::MAX), |_, _| false)?;
    Ok(())
}

//! The merge engine: integrates changesets from other replicas with the merge rules, and keeps
//! the metadata those rules need.
//!
//! ## Metadata (`shoal_merge`, only in realms opened with merge metadata)
//! Keys are byte strings; `class` is the file's class id (u32 BE), `gid` the object's global
//! id (`0 i64 BE` | `1 len u32 BE bytes` | `2 file u64 BE seq u64 BE`), `prop` the property id
//! (u32 BE); an order key is `stamp u64 LE, origin u64 LE, index u32 LE` (20 bytes).
//!
//! | key | value |
//! |---|---|
//! | `0x01 class gid prop` | scalar: register = order key of the winning set (all zero: no set yet), then `(order key, delta i64 LE)` for every `add_int` ordered after it |
//! | `0x01 class gid prop` | list: RGA sequence = per element, in list order, `id` order key, `set` order key, flags u8 (1 erased, 2 visible); erased elements stay as anchors |
//! | `0x02 class gid` | tombstone: order key of the latest delete |
//! | `0x03 origin u64 BE` | the stamp of the last changeset integrated from that replica (u64 LE) |
//!
//! The `hlc` meta entry holds the highest stamp this file has integrated (see `clock.rs`).
//!
//! ## Rules (order key `K` = `(stamp, origin, index)` of the instruction)
//! - create: dropped if the object is tombstoned, else idempotent;
//! - delete: tombstones the object for good, drops its registers, deletes it (links to it
//!   become NULL, list entries naming it vanish); later creates, sets, adds and links naming
//!   it are dropped (a link resolves to NULL);
//! - set: applied iff `K` is greater than the register's key; an int value then gets every
//!   recorded add ordered after `K` added to it;
//! - add_int: dropped if ordered before the register's set, else recorded and added (a NULL
//!   value stays NULL);
//! - lists are RGA sequences: an element's id is the order key of its insert; `ListInsertAfter`
//!   places it after the named element (head: none), past every element with a greater id
//!   (concurrent inserts after one element: descending id), so every insert survives in one
//!   order; `ListEraseElement` erases an id once; `ListSetElement` is a last-writer-wins
//!   register per element (an erased element stays erased); move = erase + insert of a new id;
//!   clear = erase of the ids the replica saw. Visible elements (not erased, not a link to a
//!   deleted object) are the stored list, in order; a set can show a hidden link element again.
//! - schema: additions are idempotent (same class or property from two replicas is one).
//!
//! ## Strict integration (a server's copy)
//! `Realm::integrate_changesets_strictly` is what a server integrates uploads with before it
//! logs them for everyone: the rules above, plus errors where they would skip something this
//! realm *never had* (a class, a property, an object neither alive nor tombstoned, a list
//! element, a link's target) — a replica whose state differs could apply what the server
//! skipped, and copies would diverge. Index-based list instructions (only realms without
//! merge metadata make them) and schema changes other than additions
//! (`SchemaChange::check_additive`) are errors too, and so is creating an object with a
//! generated id of another replica (ids are `(creator's replica id, key)`: a forged one would
//! collide with an object that replica creates later). An honest replica never trips these:
//! it can only name what it has, and it had it from its own earlier uploads or from the log.

use crate::error::{Error, ErrorCode, Result};
use crate::history::{decode_changeset_full, ChangeValue, Changeset, GlobalId, Instruction};
use crate::merge::clock::OrderKey;
use crate::merge::state::{never_had, object_key, MergeTxn, REGISTER, TOMBSTONE};
use crate::store::catalog::{ClassInfo, PropInfo, SchemaChange};
use crate::store::changes::ListEdit;
use crate::store::tables::{self, meta};
use crate::value::{PropertyType, Value};
use redb::ReadableTable;

const ORIGIN: u8 = 3;

fn register_key(class: u32, id: &GlobalId, prop: u32) -> Vec<u8> {
    let mut k = object_key(REGISTER, class, id);
    k.extend_from_slice(&prop.to_be_bytes());
    k
}

/// Marks the counter adds of a register: `register key, ADDS, order key (big endian, so
/// that the adds of one register sort by order key)` → delta i64 LE. One entry per add keeps
/// an add O(log n) however many a counter collects; under the object's register prefix, so a
/// delete drops them with the registers.
const ADDS: u8 = 0xA0;

fn adds_prefix(class: u32, id: &GlobalId, prop: u32) -> Vec<u8> {
    let mut k = register_key(class, id, prop);
    k.push(ADDS);
    k
}

fn add_key(class: u32, id: &GlobalId, prop: u32, at: OrderKey) -> Vec<u8> {
    let mut k = adds_prefix(class, id, prop);
    k.extend_from_slice(&at.stamp.to_be_bytes());
    k.extend_from_slice(&at.origin.to_be_bytes());
    k.extend_from_slice(&at.index.to_be_bytes());
    k
}

fn add_order_key(key: &[u8]) -> Option<OrderKey> {
    let t = key.len().checked_sub(20)?;
    let b = &key[t..];
    Some(OrderKey {
        stamp: u64::from_be_bytes(b[..8].try_into().ok()?),
        origin: u64::from_be_bytes(b[8..16].try_into().ok()?),
        index: u32::from_be_bytes(b[16..].try_into().ok()?),
    })
}

/// A last-writer-wins register: the order key of the winning set. (Files written before the
/// adds got entries of their own may still carry adds inline after it; they are read and moved
/// to entries on the next change.)
#[derive(Default)]
struct Register {
    set: OrderKey,
    adds: Vec<(OrderKey, i64)>,
}

impl Register {
    fn decode(b: &[u8]) -> Result<Register> {
        let bad = || Error::new(ErrorCode::IncompatibleFile, "corrupt merge register");
        let set = OrderKey::decode(b).ok_or_else(bad)?;
        let mut adds = Vec::new();
        let mut rest = &b[OrderKey::LEN..];
        while !rest.is_empty() {
            let k = OrderKey::decode(rest).ok_or_else(bad)?;
            let d = rest.get(OrderKey::LEN..OrderKey::LEN + 8).ok_or_else(bad)?;
            adds.push((k, i64::from_le_bytes(d.try_into().expect("8 bytes"))));
            rest = &rest[OrderKey::LEN + 8..];
        }
        Ok(Register { set, adds })
    }

    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(OrderKey::LEN * (1 + self.adds.len()));
        self.set.encode(&mut b);
        for (k, d) in &self.adds {
            k.encode(&mut b);
            b.extend_from_slice(&d.to_le_bytes());
        }
        b
    }
}

/// One element of an RGA list: its id (the order key of its insert), the order key of the set
/// that gave it its value, whether it was erased, and whether it shows in the stored list (not
/// erased and not a link to a deleted object).
/// A list being changed by one instruction: its target, stored items and sequence.
struct OpenList {
    info: ClassInfo,
    p: PropInfo,
    key: u64,
    items: Vec<Value>,
    seq: Vec<Elem>,
}

#[derive(Clone, Copy, Debug)]
struct Elem {
    id: OrderKey,
    set: OrderKey,
    erased: bool,
    visible: bool,
}

const ELEM_LEN: usize = 2 * OrderKey::LEN + 1;

fn decode_seq(b: &[u8]) -> Option<Vec<Elem>> {
    if !b.len().is_multiple_of(ELEM_LEN) {
        return None;
    }
    b.chunks_exact(ELEM_LEN)
        .map(|c| {
            Some(Elem {
                id: OrderKey::decode(c)?,
                set: OrderKey::decode(&c[OrderKey::LEN..])?,
                erased: c[ELEM_LEN - 1] & 1 != 0,
                visible: c[ELEM_LEN - 1] & 2 != 0,
            })
        })
        .collect()
}

fn encode_seq(seq: &[Elem]) -> Vec<u8> {
    let mut b = Vec::with_capacity(seq.len() * ELEM_LEN);
    for e in seq {
        e.id.encode(&mut b);
        e.set.encode(&mut b);
        b.push(u8::from(e.erased) | (u8::from(e.visible) << 1));
    }
    b
}

impl MergeTxn<'_> {
    /// The RGA sequence of a list whose stored form has `stored` items. A list without a
    /// matching sequence (written before merge metadata was on) gets ids `(0, 0, i)`.
    fn seq_load(&self, class: u32, id: &GlobalId, prop: u32, stored: usize) -> Result<Vec<Elem>> {
        let seq = match self.merge_get(&register_key(class, id, prop))? {
            Some(b) => decode_seq(&b)
                .ok_or_else(|| Error::new(ErrorCode::IncompatibleFile, "corrupt list metadata"))?,
            None => Vec::new(),
        };
        if seq.iter().filter(|e| e.visible).count() == stored {
            return Ok(seq);
        }
        Ok((0..stored)
            .map(|i| {
                let k = OrderKey {
                    stamp: 0,
                    origin: 0,
                    index: i as u32,
                };
                Elem {
                    id: k,
                    set: k,
                    erased: false,
                    visible: true,
                }
            })
            .collect())
    }

    fn seq_save(&mut self, class: u32, id: &GlobalId, prop: u32, seq: &[Elem]) -> Result<()> {
        self.merge_put(&register_key(class, id, prop), &encode_seq(seq))
    }

    /// Hides the elements at these stored positions (links to objects just deleted).
    pub(crate) fn rga_hide(
        &mut self,
        class: u32,
        id: &GlobalId,
        prop: u32,
        stored: usize,
        positions: &[usize],
    ) -> Result<()> {
        let mut seq = self.seq_load(class, id, prop, stored)?;
        let visible: Vec<usize> = (0..seq.len()).filter(|&i| seq[i].visible).collect();
        for &p in positions {
            seq[visible[p]].visible = false;
        }
        self.seq_save(class, id, prop, &seq)
    }

    /// Records a local list change of a merge realm as element-addressed instructions and
    /// updates the list's sequence. `ins` is the change by index, `items` the list after it,
    /// `before` its length before.
    pub(crate) fn rga_local(
        &mut self,
        class: &ClassInfo,
        prop: &PropInfo,
        id: &GlobalId,
        ins: &Instruction,
        items: &[Value],
        before: usize,
    ) -> Result<()> {
        let mut seq = self.seq_load(class.id, id, prop.id, before)?;
        let visible =
            |seq: &[Elem]| -> Vec<usize> { (0..seq.len()).filter(|&i| seq[i].visible).collect() };
        let (cn, pn) = (class.name.clone(), prop.name.clone());
        match ins {
            Instruction::ListInsert { index, value, .. } => {
                self.rga_insert_local(&mut seq, &cn, id, &pn, *index as usize, value.clone());
            }
            Instruction::ListSet { index, value, .. } => {
                let e = visible(&seq)[*index as usize];
                seq[e].set = self.next_order_key().expect("merge realm");
                self.record(&Instruction::ListSetElement {
                    class: cn,
                    id: id.clone(),
                    prop: pn,
                    element: seq[e].id,
                    value: value.clone(),
                });
            }
            Instruction::ListErase { index, .. } => {
                let e = visible(&seq)[*index as usize];
                self.rga_erase_local(&mut seq, e, &cn, id, &pn);
            }
            Instruction::ListMove { from, to, .. } => {
                let e = visible(&seq)[*from as usize];
                self.rga_erase_local(&mut seq, e, &cn, id, &pn);
                let value = self.change_value(prop, &items[*to as usize])?;
                self.rga_insert_local(&mut seq, &cn, id, &pn, *to as usize, value);
            }
            Instruction::ListClear { .. } => {
                for e in visible(&seq) {
                    self.rga_erase_local(&mut seq, e, &cn, id, &pn);
                }
            }
            _ => return Err(Error::internal("not a list change")),
        }
        self.seq_save(class.id, id, prop.id, &seq)
    }

    fn rga_erase_local(
        &mut self,
        seq: &mut [Elem],
        e: usize,
        class: &str,
        id: &GlobalId,
        prop: &str,
    ) {
        seq[e].erased = true;
        seq[e].visible = false;
        self.record(&Instruction::ListEraseElement {
            class: class.to_owned(),
            id: id.clone(),
            prop: prop.to_owned(),
            element: seq[e].id,
        });
    }

    /// Inserts before visible element `index`: right after the previous visible element (the
    /// new id is the largest the file knows, so RGA places it there everywhere).
    fn rga_insert_local(
        &mut self,
        seq: &mut Vec<Elem>,
        class: &str,
        id: &GlobalId,
        prop: &str,
        index: usize,
        value: ChangeValue,
    ) {
        let visible: Vec<usize> = (0..seq.len()).filter(|&i| seq[i].visible).collect();
        let (after, pos) = match index {
            0 => (None, 0),
            n => (Some(seq[visible[n - 1]].id), visible[n - 1] + 1),
        };
        let k = self.next_order_key().expect("merge realm");
        seq.insert(
            pos,
            Elem {
                id: k,
                set: k,
                erased: false,
                visible: true,
            },
        );
        self.record(&Instruction::ListInsertAfter {
            class: class.to_owned(),
            id: id.clone(),
            prop: prop.to_owned(),
            after,
            value,
        });
    }

    fn merge_put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.st.overlay.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    /// Removes every entry whose key starts with `prefix`.
    fn merge_remove_prefix(&mut self, prefix: &[u8]) -> Result<()> {
        let mut keys: Vec<Vec<u8>> = self
            .st
            .overlay
            .range(prefix.to_vec()..)
            .map(|(k, _)| k.clone())
            .take_while(|k| k.starts_with(prefix))
            .collect();
        if !self.st.fresh.contains(prefix) {
            let t = self.txn.open_table(tables::MERGE)?;
            for e in t.range(prefix..)? {
                let k = e?.0.value().to_vec();
                if !k.starts_with(prefix) {
                    break;
                }
                keys.push(k);
            }
        }
        for k in keys {
            self.st.overlay.insert(k, None);
        }
        Ok(())
    }

    /// The counter adds of a register: its entries (overlay first) and any inline ones of an
    /// older register encoding, by order key.
    fn adds_of(
        &self,
        class: u32,
        id: &GlobalId,
        prop: u32,
        r: &Register,
    ) -> Result<Vec<(OrderKey, i64)>> {
        let prefix = adds_prefix(class, id, prop);
        let mut found: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> = Default::default();
        if !self.st.fresh.contains(&object_key(REGISTER, class, id)) {
            let t = self.txn.open_table(tables::MERGE)?;
            for e in t.range(prefix.as_slice()..)? {
                let (k, v) = e?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                found.insert(k.value().to_vec(), Some(v.value().to_vec()));
            }
        }
        for (k, v) in self
            .st
            .overlay
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            found.insert(k.clone(), v.clone());
        }
        let mut out: Vec<(OrderKey, i64)> = r.adds.clone();
        for (k, v) in found {
            let (Some(v), Some(at)) = (v, add_order_key(&k)) else {
                continue;
            };
            let d = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_le_bytes)
                .ok_or_else(|| Error::new(ErrorCode::IncompatibleFile, "corrupt counter add"))?;
            out.push((at, d));
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// The fast path of a winning set on an object created by this transaction whose register
    /// was never counted: stores the register, nothing else to drop or add. False otherwise.
    fn set_uncounted(
        &mut self,
        class: u32,
        id: &GlobalId,
        prop: u32,
        at: OrderKey,
    ) -> Result<bool> {
        let key = register_key(class, id, prop);
        if !self.st.fresh.contains(&key[..key.len() - 4]) || self.st.counted.contains(&key) {
            return Ok(false);
        }
        let mut b = Vec::with_capacity(OrderKey::LEN);
        at.encode(&mut b);
        self.st.overlay.insert(key, Some(b));
        Ok(true)
    }

    fn put_add(&mut self, class: u32, id: &GlobalId, prop: u32, at: OrderKey, delta: i64) {
        self.st.counted.insert(register_key(class, id, prop));
        self.st.overlay.insert(
            add_key(class, id, prop, at),
            Some(delta.to_le_bytes().to_vec()),
        );
    }

    /// A set with key `at` won the register: stores it and drops the adds ordered before it
    /// (they can never count again). Returns the adds ordered after it.
    fn win_set(
        &mut self,
        class: u32,
        id: &GlobalId,
        prop: u32,
        old: &Register,
        at: OrderKey,
    ) -> Result<Vec<(OrderKey, i64)>> {
        let adds = self.adds_of(class, id, prop, old)?;
        let mut later = Vec::new();
        for (k, d) in adds {
            if k > at {
                later.push((k, d));
            } else {
                self.st.overlay.insert(add_key(class, id, prop, k), None);
            }
        }
        // Inline adds of an older encoding move to entries.
        for (k, d) in &old.adds {
            if *k > at {
                self.put_add(class, id, prop, *k, *d);
            }
        }
        self.put_register(
            class,
            id,
            prop,
            &Register {
                set: at,
                adds: Vec::new(),
            },
        )?;
        Ok(later)
    }

    /// Writes the merge metadata of this transaction to its table, in key order.
    pub(crate) fn flush_merge_overlay(&mut self) -> Result<()> {
        if self.st.overlay.is_empty() {
            return Ok(());
        }
        let overlay = std::mem::take(&mut self.st.overlay);
        let mut t = self.w.txn.open_table(tables::MERGE)?;
        for (k, v) in overlay {
            match v {
                Some(v) => {
                    t.insert(k.as_slice(), v.as_slice())?;
                }
                None => {
                    t.remove(k.as_slice())?;
                }
            }
        }
        Ok(())
    }

    /// Notes that an object created by this transaction has no stored registers.
    fn mark_fresh(&mut self, class: u32, id: &GlobalId) {
        self.st.fresh.insert(object_key(REGISTER, class, id));
    }

    fn register(&self, class: u32, id: &GlobalId, prop: u32) -> Result<Register> {
        match self.merge_get(&register_key(class, id, prop))? {
            Some(b) => Register::decode(&b),
            None => Ok(Register::default()),
        }
    }

    fn put_register(&mut self, class: u32, id: &GlobalId, prop: u32, r: &Register) -> Result<()> {
        self.merge_put(&register_key(class, id, prop), &r.encode())
    }

    /// Tombstones an object with order key `k` and drops its registers.
    pub(crate) fn tombstone(&mut self, class: u32, id: &GlobalId, k: OrderKey) -> Result<()> {
        self.st.tombstones.borrow_mut().insert(class, true);
        let key = object_key(TOMBSTONE, class, id);
        let old = self
            .merge_get(&key)?
            .and_then(|b| OrderKey::decode(&b))
            .unwrap_or_default();
        let mut b = Vec::new();
        old.max(k).encode(&mut b);
        self.merge_put(&key, &b)?;
        self.merge_remove_prefix(&object_key(REGISTER, class, id))
    }

    /// Updates the metadata for this transaction's own changeset (merge realms, at commit):
    /// every local instruction is newer than anything the file has seen.
    pub(crate) fn record_local_metadata(&mut self, bytes: &[u8]) -> Result<()> {
        let cs = decode_changeset_full(bytes)?;
        let catalog = self.catalog().clone();
        for (i, ins) in cs.instructions.iter().enumerate() {
            let k = OrderKey {
                stamp: cs.stamp,
                origin: cs.origin,
                index: i as u32,
            };
            let target = |class: &str, prop: &str| -> Option<(u32, u32)> {
                let c = catalog.class(class)?;
                Some((c.id, c.prop(prop)?.id))
            };
            match ins {
                Instruction::CreateObject { class, id } => {
                    // A local create always makes a new object (a taken or tombstoned key
                    // is refused), so it has no registers yet.
                    if let Some(c) = catalog.class(class) {
                        self.mark_fresh(c.id, id);
                    }
                }
                Instruction::Set {
                    class, id, prop, ..
                } => {
                    if let Some((c, p)) = target(class, prop) {
                        // A local set is newer than everything known: every add is before
                        // it and is dropped.
                        if !self.set_uncounted(c, id, p, k)? {
                            let old = self.register(c, id, p)?;
                            self.win_set(c, id, p, &old, k)?;
                        }
                    }
                }
                Instruction::AddInt {
                    class,
                    id,
                    prop,
                    delta,
                } => {
                    if let Some((c, p)) = target(class, prop) {
                        self.put_add(c, id, p, k, *delta);
                    }
                }
                Instruction::EraseObject { class, id } => {
                    if let Some(c) = catalog.class(class) {
                        self.tombstone(c.id, id, k)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Integrates a changeset from another replica with the merge rules. The changeset is
    /// recorded in this file's history as it came (its origin tells it apart from local ones).
    pub(crate) fn integrate(&mut self, bytes: &[u8]) -> Result<()> {
        let cs: Changeset = decode_changeset_full(bytes)?;
        if self.st.strict_mode {
            self.st.strict = Some(self.catalog_arc());
        }
        if cs.origin == self.file_salt || cs.stamp == 0 {
            return Err(Error::invalid(if cs.stamp == 0 {
                "a changeset without a stamp (format 1) cannot be merged"
            } else {
                "the changeset came from this realm"
            }));
        }
        let mut origin_key = vec![ORIGIN];
        origin_key.extend_from_slice(&cs.origin.to_be_bytes());
        let seen = self
            .merge_get(&origin_key)?
            .and_then(|b| b.try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0);
        if cs.stamp <= seen {
            return Ok(()); // Already integrated: changesets of one origin arrive in order.
        }
        self.st.integrating = true;
        for (i, ins) in cs.instructions.iter().enumerate() {
            let k = OrderKey {
                stamp: cs.stamp,
                origin: cs.origin,
                index: i as u32,
            };
            if let Err(e) = self.integrate_one(ins, k) {
                self.st.integrating = false;
                self.st.strict = None;
                return Err(e);
            }
        }
        self.st.integrating = false;
        self.st.strict = None;
        self.merge_put(&origin_key, &cs.stamp.to_le_bytes())?;
        let hlc = self.clock()?.max(cs.stamp);
        self.txn
            .open_table(tables::META)?
            .insert(meta::HLC, hlc.to_le_bytes().as_slice())?;
        self.w.record_verbatim(bytes.to_vec());
        Ok(())
    }

    /// In strict integration, an error for naming what this realm never had; otherwise the
    /// instruction is skipped (`Ok`).
    fn unknown(&self, what: impl FnOnce() -> String) -> Result<()> {
        match self.st.strict {
            Some(_) => Err(never_had(what())),
            None => Ok(()),
        }
    }

    /// The live, non-tombstoned object an instruction names.
    fn merge_target(&self, class: &str, id: &GlobalId) -> Result<Option<(u32, u64)>> {
        let Some(info) = self.catalog().class(class) else {
            self.unknown(|| format!("the class '{class}'"))?;
            return Ok(None);
        };
        if self.is_tombstoned(info.id, id)? {
            return Ok(None);
        }
        let found = self.find_by_gid(info, id)?.map(|key| (info.id, key));
        if found.is_none() {
            self.unknown(|| format!("the {class} object {id}"))?;
        }
        Ok(found)
    }

    /// A property an instruction names; `None` (skipped) if the class lacks it.
    fn merge_prop(&self, info: &ClassInfo, prop: &str) -> Result<Option<PropInfo>> {
        let found = info.prop(prop).cloned();
        if found.is_none() {
            self.unknown(|| format!("the property '{}.{prop}'", info.name))?;
        }
        Ok(found)
    }

    /// The class, list property and object key of a list instruction's live target.
    fn list_target(
        &self,
        class: &str,
        id: &GlobalId,
        prop: &str,
    ) -> Result<Option<(ClassInfo, PropInfo, u64)>> {
        let Some((c, key)) = self.merge_target(class, id)? else {
            return Ok(None);
        };
        let info = self.catalog().class_by_id_required(c)?.clone();
        let Some(p) = self.merge_prop(&info, prop)? else {
            return Ok(None);
        };
        if !p.is_list() {
            if self.st.strict.is_some() {
                return Err(Error::invalid(format!(
                    "a list change names '{}.{prop}', which is not a list",
                    info.name
                )));
            }
            return Ok(None);
        }
        Ok(Some((info, p, key)))
    }

    /// A list instruction's live target with its stored items and RGA sequence, or `None`
    /// (skipped) as [`list_target`](Self::list_target).
    fn open_list(&self, class: &str, id: &GlobalId, prop: &str) -> Result<Option<OpenList>> {
        let Some((info, p, key)) = self.list_target(class, id, prop)? else {
            return Ok(None);
        };
        let items = self.view().list(info.id, &p, key)?;
        let seq = self.seq_load(info.id, id, p.id, items.len())?;
        Ok(Some(OpenList {
            info,
            p,
            key,
            items,
            seq,
        }))
    }

    /// A list instruction's live target and the position of `element` in its sequence; `None`
    /// (skipped, or an error in strict integration) if the list never had the element.
    fn open_element(
        &self,
        class: &str,
        id: &GlobalId,
        prop: &str,
        element: &OrderKey,
    ) -> Result<Option<(OpenList, usize)>> {
        let Some(list) = self.open_list(class, id, prop)? else {
            return Ok(None);
        };
        match list.seq.iter().position(|e| e.id == *element) {
            Some(pos) => Ok(Some((list, pos))),
            None => {
                self.unknown(|| format!("the list element {element:?} of '{class}.{prop}'"))?;
                Ok(None)
            }
        }
    }

    /// An element value in stored form; `None` for a link to a deleted object (the element is
    /// then hidden).
    fn element_value(
        &self,
        class: &ClassInfo,
        prop: &PropInfo,
        value: &ChangeValue,
    ) -> Result<Option<Value>> {
        let v = self.w.change_to_value_in(&*self.st, prop, value)?;
        if v.is_null() && matches!(value, ChangeValue::Link(_)) {
            return Ok(None);
        }
        self.check_value(class, prop, v, true).map(Some)
    }

    fn integrate_one(&mut self, ins: &Instruction, k: OrderKey) -> Result<()> {
        match ins {
            Instruction::CreateObject { class, id } => {
                let info = self.catalog().require_class(class)?.id;
                if !self.is_tombstoned(info, id)? {
                    let class_info = self.class(info)?;
                    if self.find_by_gid(&class_info, id)?.is_none() {
                        if let (Some(_), GlobalId::Generated { file, .. }) = (&self.st.strict, id) {
                            // A generated id is `(creating file's salt, key)`, and the salt is
                            // the creator's replica id: another replica's id would collide
                            // with an object that replica creates later.
                            if *file != k.origin {
                                return Err(Error::invalid(format!(
                                    "the changeset creates the {class} object {id} with another replica's generated id"
                                )));
                            }
                        }
                        // New here and never deleted: no registers are stored for it.
                        self.ensure_object(info, id)?;
                        self.mark_fresh(info, id);
                    }
                }
                Ok(())
            }
            Instruction::EraseObject { class, id } => {
                let info = self.catalog().require_class(class)?;
                if self.st.strict.is_some()
                    && !self.is_tombstoned(info.id, id)?
                    && self.find_by_gid(info, id)?.is_none()
                {
                    return Err(never_had(format!("the {class} object {id}")));
                }
                let info = info.id;
                self.tombstone(info, id, k)?;
                self.w.apply_in(self.st, ins)
            }
            Instruction::Set {
                class,
                id,
                prop,
                value,
            } => {
                let Some((c, key)) = self.merge_target(class, id)? else {
                    return Ok(());
                };
                let info = self.catalog().class_by_id_required(c)?.clone();
                let Some(p) = self.merge_prop(&info, prop)? else {
                    return Ok(());
                };
                if info.pk == Some(p.id) {
                    return Ok(());
                }
                let r = self.register(c, id, p.id)?;
                if r.set >= k {
                    return Ok(());
                }
                let later = if self.set_uncounted(c, id, p.id, k)? {
                    Vec::new()
                } else {
                    self.win_set(c, id, p.id, &r, k)?
                };
                let mut v = self.w.change_to_value_in(&*self.st, &p, value)?;
                if let (Value::Int(x), PropertyType::Int) = (&mut v, p.ty) {
                    for (_, d) in &later {
                        *x = x.wrapping_add(*d);
                    }
                }
                self.set(c, key, p.id, v)
            }
            Instruction::AddInt {
                class,
                id,
                prop,
                delta,
            } => {
                let Some((c, key)) = self.merge_target(class, id)? else {
                    return Ok(());
                };
                let info = self.catalog().class_by_id_required(c)?.clone();
                let Some(p) = self.merge_prop(&info, prop)? else {
                    return Ok(());
                };
                let r = self.register(c, id, p.id)?;
                if r.set > k
                    || r.adds.iter().any(|(a, _)| *a == k)
                    || self.merge_get(&add_key(c, id, p.id, k))?.is_some()
                {
                    return Ok(());
                }
                self.put_add(c, id, p.id, k, *delta);
                if self.view().get(&info, &p, key)?.is_null() && p.is_nullable() {
                    return Ok(()); // NULL stays NULL; the add counts once a value is set.
                }
                self.add_int(c, key, p.id, *delta)
            }
            Instruction::ListInsertAfter {
                class,
                id,
                prop,
                after,
                value,
            } => {
                let Some(OpenList {
                    info,
                    p,
                    key,
                    mut items,
                    mut seq,
                }) = self.open_list(class, id, prop)?
                else {
                    return Ok(());
                };
                if seq.iter().any(|e| e.id == k) {
                    return Ok(());
                }
                let mut pos = match after {
                    None => 0,
                    Some(a) => match seq.iter().position(|e| e.id == *a) {
                        Some(i) => i + 1,
                        // Only lists from before merge metadata miss an anchor.
                        None => {
                            self.unknown(|| format!("the list element {a:?} of '{class}.{prop}'"))?;
                            return Ok(());
                        }
                    },
                };
                // RGA: concurrent inserts after one element are ordered by descending id.
                while pos < seq.len() && seq[pos].id > k {
                    pos += 1;
                }
                let v = self.element_value(&info, &p, value)?;
                let at = seq[..pos].iter().filter(|e| e.visible).count();
                seq.insert(
                    pos,
                    Elem {
                        id: k,
                        set: k,
                        erased: false,
                        visible: v.is_some(),
                    },
                );
                if let Some(v) = v {
                    items.insert(at, v);
                    self.overlay.set_list(info.id, p.id, key, items);
                    self.log_list_edit(info.id, p.id, key, ListEdit::Insert(at));
                }
                self.seq_save(info.id, id, p.id, &seq)
            }
            Instruction::ListEraseElement {
                class,
                id,
                prop,
                element,
            } => {
                let Some((list, pos)) = self.open_element(class, id, prop, element)? else {
                    return Ok(());
                };
                let OpenList {
                    info,
                    p,
                    key,
                    mut items,
                    mut seq,
                } = list;
                if seq[pos].erased {
                    return Ok(());
                }
                if seq[pos].visible {
                    let at = seq[..pos].iter().filter(|e| e.visible).count();
                    items.remove(at);
                    self.overlay.set_list(info.id, p.id, key, items);
                    self.log_list_edit(info.id, p.id, key, ListEdit::Erase(at));
                }
                seq[pos].erased = true;
                seq[pos].visible = false;
                self.seq_save(info.id, id, p.id, &seq)
            }
            Instruction::ListSetElement {
                class,
                id,
                prop,
                element,
                value,
            } => {
                let Some((list, pos)) = self.open_element(class, id, prop, element)? else {
                    return Ok(());
                };
                let OpenList {
                    info,
                    p,
                    key,
                    mut items,
                    mut seq,
                } = list;
                if seq[pos].erased || seq[pos].set >= k {
                    return Ok(());
                }
                let v = self.element_value(&info, &p, value)?;
                let shown = v.is_some();
                let at = seq[..pos].iter().filter(|e| e.visible).count();
                let edit = match (seq[pos].visible, v) {
                    (true, Some(v)) => {
                        items[at] = v;
                        Some(ListEdit::Set(at))
                    }
                    (true, None) => {
                        items.remove(at);
                        Some(ListEdit::Erase(at))
                    }
                    (false, Some(v)) => {
                        items.insert(at, v);
                        Some(ListEdit::Insert(at))
                    }
                    (false, None) => None,
                };
                if let Some(edit) = edit {
                    self.log_list_edit(info.id, p.id, key, edit);
                }
                seq[pos].set = k;
                seq[pos].visible = shown;
                self.overlay.set_list(info.id, p.id, key, items);
                self.seq_save(info.id, id, p.id, &seq)
            }
            Instruction::ListInsert { class, id, .. }
            | Instruction::ListSet { class, id, .. }
            | Instruction::ListErase { class, id, .. }
            | Instruction::ListMove { class, id, .. }
            | Instruction::ListClear { class, id, .. } => {
                // Index-based list instructions come only from realms without merge metadata;
                // they apply where they still fit (no convergence guarantee).
                if self.st.strict.is_some() {
                    return Err(Error::invalid(
                        "index-based list changes come only from realms without merge metadata and cannot be merged",
                    ));
                }
                if self.merge_target(class, id)?.is_none() {
                    return Ok(());
                }
                match self.w.apply_in(self.st, ins) {
                    Err(e) if e.code() == ErrorCode::IndexOutOfBounds => Ok(()),
                    r => r,
                }
            }
            // Schema: additions and flag changes are idempotent in `apply_schema_change`.
            _ => {
                if let (Some(before), Some(change)) =
                    (&self.st.strict, SchemaChange::of_instruction(ins))
                {
                    change.check_additive(before, self.catalog())?;
                }
                self.w.apply_in(self.st, ins)
            }
        }
    }
}

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
//! | `0x01 class gid prop` | register: order key of the winning set (all zero: no set yet), then `(order key, delta i64 LE)` for every `add_int` ordered after it |
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
//! - list replace: a last-writer-wins register of the whole list (like set);
//! - schema: additions are idempotent (same class or property from two replicas is one).

use crate::error::{Error, ErrorCode, Result};
use crate::history::{decode_changeset_full, ChangeValue, Changeset, GlobalId, Instruction};
use crate::store::tables::{self, meta};
use crate::store::write::WriteTxn;
use crate::sync::clock::OrderKey;
use crate::value::{PropertyType, Value};
use redb::ReadableTable;

const REGISTER: u8 = 1;
const TOMBSTONE: u8 = 2;
const ORIGIN: u8 = 3;

fn gid_bytes(out: &mut Vec<u8>, id: &GlobalId) {
    match id {
        GlobalId::Int(i) => {
            out.push(0);
            out.extend_from_slice(&i.to_be_bytes());
        }
        GlobalId::String(s) => {
            out.push(1);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        GlobalId::Generated { file, seq } => {
            out.push(2);
            out.extend_from_slice(&file.to_be_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
        }
    }
}

fn object_key(kind: u8, class: u32, id: &GlobalId) -> Vec<u8> {
    let mut k = vec![kind];
    k.extend_from_slice(&class.to_be_bytes());
    gid_bytes(&mut k, id);
    k
}

fn register_key(class: u32, id: &GlobalId, prop: u32) -> Vec<u8> {
    let mut k = object_key(REGISTER, class, id);
    k.extend_from_slice(&prop.to_be_bytes());
    k
}

/// A last-writer-wins register with the counter adds ordered after its set.
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

impl WriteTxn {
    fn merge_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let t = self.txn.open_table(tables::MERGE)?;
        let v = t.get(key)?.map(|v| v.value().to_vec());
        Ok(v)
    }

    fn merge_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.txn.open_table(tables::MERGE)?.insert(key, value)?;
        Ok(())
    }

    /// Removes every entry whose key starts with `prefix`.
    fn merge_remove_prefix(&self, prefix: &[u8]) -> Result<()> {
        let mut t = self.txn.open_table(tables::MERGE)?;
        let keys: Vec<Vec<u8>> = t
            .range(prefix..)?
            .map(|e| e.map(|(k, _)| k.value().to_vec()))
            .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(prefix)))
            .collect::<std::result::Result<_, _>>()?;
        for k in keys {
            t.remove(k.as_slice())?;
        }
        Ok(())
    }

    fn register(&self, class: u32, id: &GlobalId, prop: u32) -> Result<Register> {
        match self.merge_get(&register_key(class, id, prop))? {
            Some(b) => Register::decode(&b),
            None => Ok(Register::default()),
        }
    }

    fn put_register(&self, class: u32, id: &GlobalId, prop: u32, r: &Register) -> Result<()> {
        self.merge_put(&register_key(class, id, prop), &r.encode())
    }

    /// Whether the object was ever deleted (tombstones are permanent).
    pub(crate) fn is_tombstoned(&self, class: u32, id: &GlobalId) -> Result<bool> {
        Ok(self.merge_get(&object_key(TOMBSTONE, class, id))?.is_some())
    }

    /// Tombstones an object with order key `k` and drops its registers.
    pub(crate) fn tombstone(&self, class: u32, id: &GlobalId, k: OrderKey) -> Result<()> {
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

    /// The highest stamp this file has produced or integrated.
    pub(crate) fn clock(&self) -> Result<u64> {
        let hlc = self.base.meta_u64(meta::HLC)?;
        let last = match self.base.history.last()? {
            Some((_, v)) => crate::history::changeset_header(v.value())
                .map(|(s, _)| s)
                .unwrap_or(0),
            None => 0,
        };
        Ok(hlc.max(last))
    }

    /// Updates the metadata for this transaction's own changeset (merge realms, at commit):
    /// every local instruction is newer than anything the file has seen.
    pub(crate) fn record_local_metadata(&self, bytes: &[u8]) -> Result<()> {
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
                Instruction::Set {
                    class, id, prop, ..
                }
                | Instruction::ListReplace {
                    class, id, prop, ..
                } => {
                    if let Some((c, p)) = target(class, prop) {
                        self.put_register(
                            c,
                            id,
                            p,
                            &Register {
                                set: k,
                                adds: vec![],
                            },
                        )?;
                    }
                }
                Instruction::AddInt {
                    class,
                    id,
                    prop,
                    delta,
                } => {
                    if let Some((c, p)) = target(class, prop) {
                        let mut r = self.register(c, id, p)?;
                        r.adds.push((k, *delta));
                        self.put_register(c, id, p, &r)?;
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
        for (i, ins) in cs.instructions.iter().enumerate() {
            let k = OrderKey {
                stamp: cs.stamp,
                origin: cs.origin,
                index: i as u32,
            };
            self.integrate_one(ins, k)?;
        }
        self.merge_put(&origin_key, &cs.stamp.to_le_bytes())?;
        let hlc = self.clock()?.max(cs.stamp);
        self.txn
            .open_table(tables::META)?
            .insert(meta::HLC, hlc.to_le_bytes().as_slice())?;
        self.raw = Some(bytes.to_vec());
        Ok(())
    }

    /// The live, non-tombstoned object an instruction names.
    fn merge_target(&self, class: &str, id: &GlobalId) -> Result<Option<(u32, u64)>> {
        let Some(info) = self.catalog().class(class) else {
            return Ok(None);
        };
        if self.is_tombstoned(info.id, id)? {
            return Ok(None);
        }
        Ok(self.find_by_gid(info, id)?.map(|key| (info.id, key)))
    }

    fn integrate_one(&mut self, ins: &Instruction, k: OrderKey) -> Result<()> {
        match ins {
            Instruction::CreateObject { class, id } => {
                let info = self.catalog().require_class(class)?.id;
                if !self.is_tombstoned(info, id)? {
                    self.ensure_object(info, id)?;
                }
                Ok(())
            }
            Instruction::EraseObject { class, id } => {
                let info = self.catalog().require_class(class)?.id;
                self.tombstone(info, id, k)?;
                self.apply(ins)
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
                let Some(p) = info.prop(prop).cloned() else {
                    return Ok(());
                };
                if info.pk == Some(p.id) {
                    return Ok(());
                }
                let mut r = self.register(c, id, p.id)?;
                if r.set >= k {
                    return Ok(());
                }
                r.set = k;
                r.adds.retain(|(a, _)| *a > k);
                let mut v = self.change_to_value(&p, value)?;
                if let (Value::Int(x), PropertyType::Int) = (&mut v, p.ty) {
                    for (_, d) in &r.adds {
                        *x = x.wrapping_add(*d);
                    }
                }
                self.put_register(c, id, p.id, &r)?;
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
                let Some(p) = info.prop(prop).cloned() else {
                    return Ok(());
                };
                let mut r = self.register(c, id, p.id)?;
                if r.set > k || r.adds.iter().any(|(a, _)| *a == k) {
                    return Ok(());
                }
                r.adds.push((k, *delta));
                self.put_register(c, id, p.id, &r)?;
                if self.view().get(&info, &p, key)?.is_null() && p.is_nullable() {
                    return Ok(()); // NULL stays NULL; the add counts once a value is set.
                }
                self.add_int(c, key, p.id, *delta)
            }
            Instruction::ListReplace {
                class,
                id,
                prop,
                values,
            } => {
                let Some((c, key)) = self.merge_target(class, id)? else {
                    return Ok(());
                };
                let info = self.catalog().class_by_id_required(c)?.clone();
                let Some(p) = info.prop(prop).cloned() else {
                    return Ok(());
                };
                let mut r = self.register(c, id, p.id)?;
                if r.set >= k {
                    return Ok(());
                }
                r.set = k;
                self.put_register(c, id, p.id, &r)?;
                let mut items = Vec::with_capacity(values.len());
                for v in values {
                    match self.change_to_value(&p, v)? {
                        // A link to a deleted object vanishes from the list.
                        Value::Null if matches!(v, ChangeValue::Link(_)) => {}
                        v => items.push(v),
                    }
                }
                self.replace_list(c, key, p.id, items)
            }
            Instruction::ListInsert { class, id, .. }
            | Instruction::ListSet { class, id, .. }
            | Instruction::ListErase { class, id, .. }
            | Instruction::ListMove { class, id, .. }
            | Instruction::ListClear { class, id, .. } => {
                // Index-based list instructions come only from realms without merge metadata;
                // they apply where they still fit (no convergence guarantee).
                if self.merge_target(class, id)?.is_none() {
                    return Ok(());
                }
                match self.apply(ins) {
                    Err(e) if e.code() == ErrorCode::IndexOutOfBounds => Ok(()),
                    r => r,
                }
            }
            // Schema: additions and flag changes are idempotent in `apply_schema_change`.
            _ => self.apply(ins),
        }
    }
}

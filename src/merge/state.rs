//! The merge state of one write transaction ([`MergeState`]), the hooks through which the
//! store's write transaction reaches it, and [`MergeTxn`], the pair the merge engine works on.

use crate::error::{Error, ErrorCode, Result};
use crate::history::{GlobalId, Instruction};
use crate::merge::clock::{self, OrderKey};
use crate::store::catalog::{Catalog, ClassInfo, PropInfo};
use crate::store::tables;
use crate::store::write::{WriteHooks, WriteTxn};
use crate::value::Value;
use redb::ReadableTable;
use std::sync::Arc;

/// What a write transaction carries for the merge layer: the stamp of merge realms and the
/// merge metadata it wrote, flushed at commit.
#[derive(Default)]
pub(crate) struct MergeState {
    /// With merge metadata on: this transaction's stamp (fixed when it began).
    pub(crate) stamp: Option<u64>,
    /// Set while a remote changeset is integrated (its deletes carry their own order keys).
    pub(crate) integrating: bool,
    /// Strict integration (a server's copy): `Some(schema before the changeset being
    /// integrated)`. Instructions that name what this realm never had, index-based list
    /// changes and schema changes other than additions are then errors instead of being
    /// skipped or applied.
    pub(crate) strict: Option<Arc<Catalog>>,
    /// Whether integrations of this transaction are strict.
    pub(crate) strict_mode: bool,
    /// Merge metadata written by this transaction (`None`: removed), flushed in key order at
    /// commit: reads see it first, and the table gets one sorted batch.
    pub(crate) overlay: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Register-key prefixes of objects known to have no stored registers (created by this
    /// transaction): their register reads skip the table.
    pub(crate) fresh: rustc_hash::FxHashSet<Vec<u8>>,
    /// Register keys this transaction stored counter adds for (with `fresh`: a register of a
    /// new object without adds has nothing to drop when a set wins).
    pub(crate) counted: rustc_hash::FxHashSet<Vec<u8>>,
    /// Per class: whether the table may hold tombstones of it (checked once per transaction).
    pub(crate) tombstones: std::cell::RefCell<rustc_hash::FxHashMap<u32, bool>>,
}

/// Installs the merge layer on a new write transaction: the clock, and with `merge_metadata`
/// the metadata (the transaction's stamp is fixed now).
pub(crate) fn begin(w: &mut WriteTxn, merge_metadata: bool) -> Result<()> {
    let mut st = MergeState::default();
    if merge_metadata {
        st.stamp = Some(clock::next_stamp(
            clock::last_stamp(w)?,
            crate::util::now_ms(),
        ));
    }
    w.set_hooks(Box::new(st));
    Ok(())
}

/// Integrates a changeset from another replica with the merge rules (strictly: see
/// `integrate.rs`) inside `w`, which [`begin`] set up with merge metadata.
pub(crate) fn integrate_changeset(w: &mut WriteTxn, bytes: &[u8], strict: bool) -> Result<()> {
    let mut hooks = w
        .take_hooks()
        .ok_or_else(|| Error::internal("a write transaction without the merge layer"))?;
    let r = match hooks.as_any_mut().downcast_mut::<MergeState>() {
        Some(st) if st.stamp.is_some() => {
            st.strict_mode = strict;
            MergeTxn { w, st }.integrate(bytes)
        }
        _ => Err(Error::invalid(
            "integrating changesets needs a realm opened with merge metadata",
        )),
    };
    w.set_hooks(hooks);
    r
}

/// A write transaction with its merge state, as the merge engine sees it: store operations
/// through the transaction, metadata through the state.
pub(crate) struct MergeTxn<'a> {
    pub(crate) w: &'a mut WriteTxn,
    pub(crate) st: &'a mut MergeState,
}

impl std::ops::Deref for MergeTxn<'_> {
    type Target = WriteTxn;
    fn deref(&self) -> &WriteTxn {
        self.w
    }
}

impl std::ops::DerefMut for MergeTxn<'_> {
    fn deref_mut(&mut self) -> &mut WriteTxn {
        self.w
    }
}

impl MergeTxn<'_> {
    pub(crate) fn merge_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        merge_get(self.w, self.st, key)
    }

    /// Whether the object was ever deleted (tombstones are permanent).
    pub(crate) fn is_tombstoned(&self, class: u32, id: &GlobalId) -> Result<bool> {
        is_tombstoned(self.w, self.st, class, id)
    }

    /// The order key the next recorded instruction of this transaction gets (merge realms).
    pub(crate) fn next_order_key(&self) -> Option<OrderKey> {
        self.st.stamp.map(|stamp| OrderKey {
            stamp,
            origin: self.w.file_salt,
            index: self.w.recorded_len() as u32,
        })
    }

    /// The highest stamp this file has produced or integrated.
    pub(crate) fn clock(&self) -> Result<u64> {
        clock::last_stamp(self.w)
    }
}

impl WriteHooks for MergeState {
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn merge_metadata(&self) -> bool {
        self.stamp.is_some()
    }

    fn stamp(&mut self, w: &WriteTxn) -> Result<u64> {
        match self.stamp {
            Some(s) => Ok(s),
            None => Ok(clock::next_stamp(
                clock::last_stamp(w)?,
                crate::util::now_ms(),
            )),
        }
    }

    fn creating(&mut self, w: &mut WriteTxn, class: &ClassInfo, id: &GlobalId) -> Result<()> {
        if self.stamp.is_some() && (MergeTxn { w, st: self }).is_tombstoned(class.id, id)? {
            return Err(Error::new(
                ErrorCode::DuplicatePrimaryKey,
                format!(
                    "the {} object with primary key {id} was deleted; a realm with merge metadata cannot create it again",
                    class.name
                ),
            ));
        }
        Ok(())
    }

    fn deleting(&mut self, w: &mut WriteTxn, class: u32, id: &GlobalId) -> Result<()> {
        let mut m = MergeTxn { w, st: self };
        if let (Some(k), false) = (m.next_order_key(), m.st.integrating) {
            m.tombstone(class, id, k)?;
        }
        Ok(())
    }

    fn record_list(
        &mut self,
        w: &mut WriteTxn,
        class: &ClassInfo,
        prop: &PropInfo,
        id: &GlobalId,
        ins: &Instruction,
        items: &[Value],
        before: usize,
    ) -> Result<bool> {
        if self.stamp.is_none() {
            return Ok(false);
        }
        // Lists of merge realms are RGA sequences: record element-addressed instructions.
        MergeTxn { w, st: self }.rga_local(class, prop, id, ins, items, before)?;
        Ok(true)
    }

    fn list_entries_hidden(
        &mut self,
        w: &mut WriteTxn,
        class: u32,
        id: &GlobalId,
        prop: u32,
        stored: usize,
        positions: &[usize],
    ) -> Result<()> {
        MergeTxn { w, st: self }.rga_hide(class, id, prop, stored, positions)
    }

    fn missing_link_target(&self, w: &WriteTxn, target: &ClassInfo, id: &GlobalId) -> Result<()> {
        if self.strict.is_some() && !is_tombstoned(w, self, target.id, id)? {
            return Err(never_had(format!(
                "the {} object {id} (a link's target)",
                target.name
            )));
        }
        Ok(())
    }

    fn committing(&mut self, w: &mut WriteTxn, local: Option<&[u8]>) -> Result<()> {
        let mut m = MergeTxn { w, st: self };
        if let (Some(bytes), true) = (local, m.st.stamp.is_some()) {
            m.record_local_metadata(bytes)?;
        }
        m.flush_merge_overlay()
    }
}

/// Kinds of merge-metadata keys (layout: `integrate.rs`).
pub(crate) const REGISTER: u8 = 1;
pub(crate) const TOMBSTONE: u8 = 2;

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

pub(crate) fn object_key(kind: u8, class: u32, id: &GlobalId) -> Vec<u8> {
    let mut k = vec![kind];
    k.extend_from_slice(&class.to_be_bytes());
    gid_bytes(&mut k, id);
    k
}

/// The error of strict integration for an instruction naming what the realm never had.
pub(crate) fn never_had(what: String) -> Error {
    Error::invalid(format!(
        "the changeset names {what}, which this realm never had"
    ))
}

pub(crate) fn merge_get(w: &WriteTxn, st: &MergeState, key: &[u8]) -> Result<Option<Vec<u8>>> {
    if let Some(v) = st.overlay.get(key) {
        return Ok(v.clone());
    }
    if key.first() == Some(&REGISTER) && key.len() > 4 && st.fresh.contains(&key[..key.len() - 4]) {
        return Ok(None);
    }
    let t = w.txn.open_table(tables::MERGE)?;
    let v = t.get(key)?.map(|v| v.value().to_vec());
    Ok(v)
}
/// Whether the table may hold a tombstone of `class` (one range probe per transaction).
fn may_have_tombstones(w: &WriteTxn, st: &MergeState, class: u32) -> Result<bool> {
    if let Some(&known) = st.tombstones.borrow().get(&class) {
        return Ok(known);
    }
    let mut prefix = vec![TOMBSTONE];
    prefix.extend_from_slice(&class.to_be_bytes());
    let t = w.txn.open_table(tables::MERGE)?;
    let any = match t.range(prefix.as_slice()..)?.next() {
        Some(e) => e?.0.value().starts_with(&prefix),
        None => false,
    };
    st.tombstones.borrow_mut().insert(class, any);
    Ok(any)
}
/// Whether the object was ever deleted (tombstones are permanent).
pub(crate) fn is_tombstoned(
    w: &WriteTxn,
    st: &MergeState,
    class: u32,
    id: &GlobalId,
) -> Result<bool> {
    if !may_have_tombstones(w, st, class)? {
        return Ok(false);
    }
    Ok(merge_get(w, st, &object_key(TOMBSTONE, class, id))?.is_some())
}

//! What a commit changed, object by object: the input of fine-grained notifications.
//!
//! A write transaction fills a [`ChangeLog`] as it applies each write to the store — local
//! writes, replayed changesets and sync downloads alike, since all of them go through the same
//! store operations — so a commit's notifications never decode its changeset or compare
//! snapshots. Object keys are never reused in a file, which makes two facts cheap: an object
//! with a key at or above its class's next key at the start of the transaction was created by
//! it, and a key names the same object in every version.

use rustc_hash::{FxHashMap, FxHashSet};

/// The changes of one class.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClassChanges {
    /// The class's next object key when the transaction began: every live object at or above
    /// it was created by the transaction.
    pub(crate) first_new_key: u64,
    /// Objects that existed before and were deleted.
    pub(crate) deleted: FxHashSet<u64>,
    /// Objects that existed before and still exist, with the property ids written (a list
    /// property counts when any of its elements changed).
    pub(crate) modified: FxHashMap<u64, PropSet>,
}

/// A set of property ids: a bit per id below 64 (no allocation for the common case, so a
/// transaction that updates a million objects keeps one small entry per object), a list for
/// the rest.
#[derive(Debug, Clone, Default)]
pub(crate) struct PropSet {
    low: u64,
    high: Vec<u32>,
}

impl PropSet {
    pub(crate) fn insert(&mut self, prop: u32) {
        if prop < 64 {
            self.low |= 1 << prop;
        } else if !self.high.contains(&prop) {
            self.high.push(prop);
        }
    }

    pub(crate) fn contains(&self, prop: u32) -> bool {
        if prop < 64 {
            self.low & (1 << prop) != 0
        } else {
            self.high.contains(&prop)
        }
    }

    fn union(&mut self, other: &PropSet) {
        self.low |= other.low;
        for &p in &other.high {
            self.insert(p);
        }
    }
}

impl ClassChanges {
    fn new(first_new_key: u64) -> ClassChanges {
        ClassChanges {
            first_new_key,
            ..ClassChanges::default()
        }
    }

    /// Whether the object with `key` existed before the transaction.
    pub(crate) fn existed_before(&self, key: u64) -> bool {
        key < self.first_new_key
    }

    fn modify(&mut self, key: u64, prop: u32) {
        if !self.existed_before(key) || self.deleted.contains(&key) {
            return;
        }
        self.modified.entry(key).or_default().insert(prop);
    }

    fn delete(&mut self, key: u64) {
        if self.existed_before(key) {
            self.modified.remove(&key);
            self.deleted.insert(key);
        }
    }

    /// Folds in the changes of a later commit.
    fn then(&mut self, later: &ClassChanges) {
        for &key in &later.deleted {
            self.delete(key);
        }
        for (&key, props) in &later.modified {
            if self.existed_before(key) && !self.deleted.contains(&key) {
                self.modified.entry(key).or_default().union(props);
            }
        }
    }
}

/// One step applied to a list, with indices as the list stood at that step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListEdit {
    Insert(usize),
    Erase(usize),
    Set(usize),
    Move { from: usize, to: usize },
    Clear,
}

/// A list: `(class id, property id, object key)`.
pub(crate) type ListId = (u32, u32, u64);

/// Everything one commit (or several, folded together) changed.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChangeLog {
    pub(crate) classes: FxHashMap<u32, ClassChanges>,
    /// The edits of each changed list, in the order they were applied.
    pub(crate) lists: FxHashMap<ListId, Vec<ListEdit>>,
    /// Classes or properties were added or removed: observers recompute from scratch.
    pub(crate) schema_changed: bool,
}

impl ChangeLog {
    /// The class's changes, started with `first_new_key()` on its first change.
    fn class(&mut self, class: u32, first_new_key: impl FnOnce() -> u64) -> &mut ClassChanges {
        self.classes
            .entry(class)
            .or_insert_with(|| ClassChanges::new(first_new_key()))
    }

    pub(crate) fn created(&mut self, class: u32, first_new_key: impl FnOnce() -> u64) {
        self.class(class, first_new_key);
    }

    pub(crate) fn modified(
        &mut self,
        class: u32,
        key: u64,
        prop: u32,
        first_new_key: impl FnOnce() -> u64,
    ) {
        self.class(class, first_new_key).modify(key, prop);
    }

    pub(crate) fn deleted(&mut self, class: u32, key: u64, first_new_key: impl FnOnce() -> u64) {
        self.class(class, first_new_key).delete(key);
    }

    pub(crate) fn list_edit(&mut self, list: ListId, edit: ListEdit) {
        self.lists.entry(list).or_default().push(edit);
    }

    /// Folds in a later commit's log: the result describes both commits as one.
    pub(crate) fn then(&mut self, later: &ChangeLog) {
        self.schema_changed |= later.schema_changed;
        for (&class, changes) in &later.classes {
            match self.classes.get_mut(&class) {
                Some(mine) => mine.then(changes),
                None => {
                    self.classes.insert(class, changes.clone());
                }
            }
        }
        for (list, edits) in &later.lists {
            self.lists
                .entry(*list)
                .or_default()
                .extend_from_slice(edits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_created_in_the_transaction_are_neither_modified_nor_deleted() {
        let mut log = ChangeLog::default();
        log.created(1, || 10);
        log.modified(1, 10, 3, || unreachable!());
        log.modified(1, 4, 3, || unreachable!());
        log.modified(1, 4, 3, || unreachable!());
        log.deleted(1, 11, || unreachable!());
        let c = &log.classes[&1];
        assert_eq!(c.modified.len(), 1);
        assert!(c.modified[&4].contains(3) && !c.modified[&4].contains(4));
        assert!(c.deleted.is_empty());
    }

    #[test]
    fn property_sets_hold_low_and_high_ids() {
        let mut p = PropSet::default();
        for id in [0, 63, 64, 1000, 1000] {
            p.insert(id);
        }
        assert!([0, 63, 64, 1000].iter().all(|&id| p.contains(id)));
        assert!(!p.contains(1) && !p.contains(65));
        assert_eq!(p.high, vec![64, 1000]);
    }

    #[test]
    fn folding_keeps_the_earliest_first_new_key_and_drops_modifications_of_deleted_objects() {
        let mut a = ChangeLog::default();
        a.created(1, || 10);
        a.modified(1, 2, 7, || 10);
        let mut b = ChangeLog::default();
        b.deleted(1, 2, || 12);
        b.deleted(1, 10, || 12); // created by `a`: gone again, nothing to report
        b.modified(1, 3, 8, || 12);
        a.then(&b);
        let c = &a.classes[&1];
        assert_eq!(c.first_new_key, 10);
        assert_eq!(c.deleted.iter().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(c.modified.keys().copied().collect::<Vec<_>>(), vec![3]);
    }
}

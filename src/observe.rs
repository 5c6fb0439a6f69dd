//! Fine-grained notifications: what changed in observed results, lists and objects.
//!
//! `Results::observe`, `List::observe` and `Object::observe` register an observer with the
//! file's notifier. Once per batch of commits, on the notifier thread, each observer turns the
//! commits' [`ChangeLog`]s into a change set — without re-running anything when the commits did
//! not touch what it observes — and posts the callback to the handle's scheduler. The first
//! callback delivers the initial state (`initial` set, no changes).
//!
//! Indices follow `realm.h`: deletions are indices in the old collection, insertions and
//! modifications indices in the new one; a move (an element whose order relative to the others
//! changed) is reported as a deletion of its old index and an insertion of its new one, and
//! listed in `moves` too. Applying deletions (descending), then insertions (ascending), turns
//! the old collection into the new one.

use crate::db::{Realm, RealmInner};
use crate::error::Result;
use crate::notify::{ChangeToken, Commit, Observer};
use crate::object::{List, Object, PropertyKey};
use crate::query::eval;
use crate::results::{Results, Spec};
use crate::scheduler::Scheduler;
use crate::store::catalog::{Catalog, ClassInfo};
use crate::store::changes::{ChangeLog, ClassChanges, ListEdit};
use crate::store::view::View;
use crate::value::Value;
use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// What changed in an observed collection (results or list) between two notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionChanges {
    /// The realm version the change set brings the collection to.
    pub version: u64,
    /// The first callback: the collection's initial state, with no changes listed.
    pub initial: bool,
    /// Indices in the old collection of the elements removed (moved ones included), ascending.
    pub deletions: Vec<usize>,
    /// Indices in the new collection of the elements added (moved ones included), ascending.
    pub insertions: Vec<usize>,
    /// Indices in the new collection of elements that stayed in place and changed, ascending.
    pub modifications: Vec<usize>,
    /// The same elements' indices in the old collection, in the same order.
    pub modifications_old: Vec<usize>,
    /// `(old index, new index)` of elements whose order relative to the others changed.
    pub moves: Vec<(usize, usize)>,
    /// The collection itself is gone (a list whose object was deleted, results whose class was
    /// removed): no further callbacks follow.
    pub collection_deleted: bool,
}

impl CollectionChanges {
    /// Whether nothing changed (never true of an initial or final notification).
    pub fn is_empty(&self) -> bool {
        !self.initial
            && !self.collection_deleted
            && self.deletions.is_empty()
            && self.insertions.is_empty()
            && self.modifications.is_empty()
    }
}

/// What changed in an observed object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectChange {
    /// The realm version the change brings the object to.
    pub version: u64,
    /// The first callback: the object's initial state, with nothing listed.
    pub initial: bool,
    /// The object was deleted (no further callbacks follow).
    pub deleted: bool,
    /// The properties written (a list counts when any of its elements changed), in schema order.
    pub changed: Vec<PropertyKey>,
    /// Their names, in the same order.
    pub changed_names: Vec<String>,
}

// ----- the change-set arithmetic -----

/// The change set between an old collection of `old_len` elements and a new one where
/// `sources[j]` is the old index of the element now at `j` (`None`: inserted).
/// `modified(new, old)` says whether the element kept from `old` at `new` changed.
pub(crate) fn changes_from_sources(
    old_len: usize,
    sources: &[Option<usize>],
    modified: impl Fn(usize, usize) -> bool,
) -> CollectionChanges {
    let mut present = vec![false; old_len];
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut c = CollectionChanges::default();
    for (j, s) in sources.iter().enumerate() {
        match s {
            Some(i) => {
                present[*i] = true;
                kept.push((j, *i));
            }
            None => c.insertions.push(j),
        }
    }
    c.deletions = (0..old_len).filter(|&i| !present[i]).collect();
    // Elements outside a longest run that kept its relative order are the moved ones.
    let in_order = kept.windows(2).all(|w| w[0].1 < w[1].1);
    let stays: Vec<bool> = if in_order {
        vec![true; kept.len()]
    } else {
        longest_increasing(&kept.iter().map(|&(_, i)| i).collect::<Vec<_>>())
    };
    for (&(j, i), stays) in kept.iter().zip(stays) {
        if stays {
            if modified(j, i) {
                c.modifications.push(j);
                c.modifications_old.push(i);
            }
        } else {
            c.moves.push((i, j));
            c.deletions.push(i);
            c.insertions.push(j);
        }
    }
    if !c.moves.is_empty() {
        c.deletions.sort_unstable();
        c.insertions.sort_unstable();
    }
    c
}

/// Marks the members of one longest strictly increasing subsequence of `seq`
/// (patience sorting, O(n log n)).
fn longest_increasing(seq: &[usize]) -> Vec<bool> {
    let mut tails: Vec<usize> = Vec::new(); // index into seq of the smallest tail per length
    let mut prev = vec![usize::MAX; seq.len()];
    for (k, &x) in seq.iter().enumerate() {
        let pos = tails.partition_point(|&t| seq[t] < x);
        if pos > 0 {
            prev[k] = tails[pos - 1];
        }
        if pos == tails.len() {
            tails.push(k);
        } else {
            tails[pos] = k;
        }
    }
    let mut member = vec![false; seq.len()];
    let mut k = tails.last().copied().unwrap_or(usize::MAX);
    while k != usize::MAX {
        member[k] = true;
        k = prev[k];
    }
    member
}

/// The change set between two key lists, `modified(key)` telling which kept objects changed.
pub(crate) fn diff_keys(
    old: &[u64],
    new: &[u64],
    modified: impl Fn(u64) -> bool,
) -> CollectionChanges {
    let ascending = |keys: &[u64]| keys.windows(2).all(|w| w[0] < w[1]);
    if ascending(old) && ascending(new) {
        // Both in key order (unsorted results): one merge walk, no moves possible.
        let mut c = CollectionChanges::default();
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    if modified(*a) {
                        c.modifications.push(j);
                        c.modifications_old.push(i);
                    }
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    c.deletions.push(i);
                    i += 1;
                }
                (Some(_), None) => {
                    c.deletions.push(i);
                    i += 1;
                }
                _ => {
                    c.insertions.push(j);
                    j += 1;
                }
            }
        }
        return c;
    }
    let at: FxHashMap<u64, usize> = old.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let sources: Vec<Option<usize>> = new.iter().map(|k| at.get(k).copied()).collect();
    changes_from_sources(old.len(), &sources, |j, _| modified(new[j]))
}

/// The change set between two key lists where only the objects in `touched` can have moved:
/// every other key keeps its relative order (sorted results updated by placement). Costs one
/// pass over each list with lookups in the small `touched` set, instead of hashing every key.
pub(crate) fn diff_touched(
    old: &[u64],
    new: &[u64],
    touched: &FxHashSet<u64>,
    modified: impl Fn(u64) -> bool,
) -> CollectionChanges {
    let find = |keys: &[u64]| -> Vec<(u64, usize)> {
        keys.iter()
            .enumerate()
            .filter(|(_, k)| touched.contains(k))
            .map(|(i, k)| (*k, i))
            .collect()
    };
    let (in_old, in_new) = (find(old), find(new));
    let old_at: FxHashMap<u64, usize> = in_old.iter().copied().collect();
    let new_keys: FxHashSet<u64> = in_new.iter().map(|(k, _)| *k).collect();
    let mut c = CollectionChanges {
        deletions: in_old
            .iter()
            .filter(|(k, _)| !new_keys.contains(k))
            .map(|(_, i)| *i)
            .collect(),
        ..CollectionChanges::default()
    };
    // Touched objects in both lists, in new order: one stays in place when it keeps its order
    // among the other touched ones (a longest increasing run of old indices) and has as many
    // untouched objects before it as before.
    let both: Vec<(usize, usize, u64)> = in_new
        .iter()
        .filter_map(|(k, j)| old_at.get(k).map(|i| (*j, *i, *k)))
        .collect();
    let runs = longest_increasing(&both.iter().map(|(_, i, _)| *i).collect::<Vec<_>>());
    let touched_before = |list: &[(u64, usize)], at: usize| list.partition_point(|(_, i)| *i < at);
    for (&(j, i, key), in_run) in both.iter().zip(runs) {
        let untouched_old = i - touched_before(&in_old, i);
        let untouched_new = j - touched_before(&in_new, j);
        if in_run && untouched_old == untouched_new {
            if modified(key) {
                c.modifications.push(j);
                c.modifications_old.push(i);
            }
        } else {
            c.moves.push((i, j));
            c.deletions.push(i);
            c.insertions.push(j);
        }
    }
    c.insertions.extend(
        in_new
            .iter()
            .filter(|(k, _)| !old_at.contains_key(k))
            .map(|(_, j)| *j),
    );
    c.deletions.sort_unstable();
    c.insertions.sort_unstable();
    c
}

/// Replays a list's edits over its `old_len` old elements: for each element of the new list,
/// the old index it came from (`None`: inserted) and whether it was set in place.
fn replay_list(old_len: usize, edits: &[ListEdit]) -> (Vec<Option<usize>>, Vec<bool>) {
    let mut tags: Vec<(Option<usize>, bool)> = (0..old_len).map(|i| (Some(i), false)).collect();
    for edit in edits {
        match *edit {
            ListEdit::Insert(i) => tags.insert(i.min(tags.len()), (None, false)),
            ListEdit::Erase(i) if i < tags.len() => {
                tags.remove(i);
            }
            ListEdit::Set(i) if i < tags.len() => tags[i].1 = true,
            ListEdit::Move { from, to } if from < tags.len() && to < tags.len() => {
                let t = tags.remove(from);
                tags.insert(to, t);
            }
            ListEdit::Clear => tags.clear(),
            _ => {}
        }
    }
    tags.into_iter().unzip()
}

// ----- folding the commits an observer has not seen -----

/// The commits after `seen`, folded into one log (`None`: there are none).
fn unseen(commits: &[Commit], seen: u64) -> Option<Cow<'_, ChangeLog>> {
    let mut logs = commits.iter().filter(|c| c.version > seen).map(|c| &*c.log);
    let first = logs.next()?;
    let mut folded: Option<ChangeLog> = None;
    for later in logs {
        folded.get_or_insert_with(|| first.clone()).then(later);
    }
    Some(folded.map_or(Cow::Borrowed(first), Cow::Owned))
}

/// Whether `class` had changes that can be seen.
fn class_changed(log: &ChangeLog, class: u32, view: View<'_>) -> bool {
    log.classes.get(&class).is_some_and(|c| {
        !c.deleted.is_empty()
            || !c.modified.is_empty()
            || view
                .class_state(class)
                .is_ok_and(|(next, _)| next > c.first_new_key)
    })
}

/// `class` and every class its objects can reach through links.
fn reachable_classes(catalog: &Catalog, class: &ClassInfo) -> FxHashSet<u32> {
    let mut seen = FxHashSet::default();
    let mut todo = vec![class.id];
    while let Some(c) = todo.pop() {
        if !seen.insert(c) {
            continue;
        }
        if let Some(info) = catalog.class_by_id(c) {
            todo.extend(info.props.iter().filter_map(|p| p.target));
        }
    }
    seen
}

// ----- delivery -----

type Callback<T> = dyn Fn(&T) + Send + Sync;

/// How an observer's results reach the app: the callback, posted on the handle's scheduler.
struct Delivery<T> {
    callback: Arc<Callback<T>>,
    scheduler: Arc<dyn Scheduler>,
    realm: Weak<RealmInner>,
    closed: Arc<AtomicBool>,
}

impl<T: Send + Sync + 'static> Delivery<T> {
    fn new(realm: &Realm, callback: impl Fn(&T) + Send + Sync + 'static) -> Delivery<T> {
        Delivery {
            callback: Arc::new(callback),
            scheduler: realm.scheduler(),
            realm: Arc::downgrade(&realm.inner),
            closed: realm.closed_flag(),
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.realm.strong_count() == 0
    }

    /// Posts `value` to the callback. The handle first moves to at least `version` (unless it
    /// is writing), so that what the callback reads agrees with the indices it gets. A callback
    /// unregistered before the work runs is not called.
    fn send(&self, version: u64, value: T) {
        let callback = Arc::downgrade(&self.callback);
        let realm = self.realm.clone();
        let closed = self.closed.clone();
        self.scheduler.post(Box::new(move || {
            if closed.load(Ordering::Acquire) {
                return;
            }
            let Some(callback) = callback.upgrade() else {
                return;
            };
            if let Some(inner) = realm.upgrade() {
                Realm { inner }.advance_to(version);
            }
            callback(&value);
        }));
    }
}

fn log_failure(what: &str, e: &crate::Error) {
    tracing::error!(target: "shoal::notify", error = %e, "{what}: change notification skipped");
}

/// `impl Observer` for an observer with a `compute` method and a `delivery`: a failure is
/// logged and the observer waits for the next commit.
macro_rules! observer_runs_compute {
    ($observer:ty, $what:literal) => {
        impl Observer for $observer {
            fn run(&self, view: View<'_>, version: u64, commits: &[Commit]) {
                if let Err(e) = self.compute(view, version, commits) {
                    log_failure($what, &e);
                }
            }

            fn is_closed(&self) -> bool {
                self.delivery.is_closed()
            }
        }
    };
}

// ----- results -----

/// Up to how many changed objects sorted results place them one by one rather than sorting
/// again (each placement is a binary search and an insertion into the key list).
const PLACE_LIMIT: u64 = 1024;

struct ResultsObserver {
    class: String,
    spec: Arc<Spec>,
    /// The keys and version last delivered; `None` until the initial state.
    seen: Mutex<Option<(u64, Vec<u64>)>>,
    delivery: Delivery<CollectionChanges>,
}

impl ResultsObserver {
    fn compute(&self, view: View<'_>, version: u64, commits: &[Commit]) -> Result<()> {
        let mut seen = self.seen.lock();
        let Some(class) = view.catalog().class(&self.class) else {
            if seen.take().is_some() {
                self.delivery.send(
                    version,
                    CollectionChanges {
                        version,
                        collection_deleted: true,
                        ..CollectionChanges::default()
                    },
                );
            }
            return Ok(());
        };
        let Some((seen_version, old)) = seen.as_mut() else {
            let keys = self.spec.evaluate(view, class)?;
            *seen = Some((version, keys));
            let initial = CollectionChanges {
                version,
                initial: true,
                ..CollectionChanges::default()
            };
            self.delivery.send(version, initial);
            return Ok(());
        };
        let Some(log) = unseen(commits, *seen_version) else {
            return Ok(());
        };
        *seen_version = version;
        let own_only = self.spec.reads_only_own_objects();
        let touched = if log.schema_changed {
            true
        } else if own_only {
            class_changed(&log, class.id, view)
        } else {
            reachable_classes(view.catalog(), class)
                .into_iter()
                .any(|c| class_changed(&log, c, view))
        };
        if !touched {
            return Ok(());
        }
        let mine = log.classes.get(&class.id);
        let modified = |key: u64| mine.is_some_and(|c| c.modified.contains_key(&key));
        let placed = match mine {
            Some(changes) if !log.schema_changed && self.spec.is_sorted_incremental() => {
                self.apply_sorted(view, class, old, changes)?
            }
            _ => None,
        };
        let (new, mut changes) = match (placed, mine) {
            (Some((new, matched)), Some(c)) => {
                let mut touched: FxHashSet<u64> = c.deleted.iter().copied().collect();
                touched.extend(c.modified.keys().copied());
                touched.extend(matched);
                let changes = diff_touched(old, &new, &touched, modified);
                (new, changes)
            }
            _ => {
                let new = match mine {
                    Some(c) if !log.schema_changed && self.spec.is_incremental() => {
                        self.apply_incrementally(view, class, old, c)?
                    }
                    _ => self.spec.evaluate(view, class)?,
                };
                let changes = diff_keys(old, &new, modified);
                (new, changes)
            }
        };
        *old = new;
        if changes.is_empty() {
            return Ok(());
        }
        changes.version = version;
        self.delivery.send(version, changes);
        Ok(())
    }

    /// The modified and created objects that match the filter, in key order: the filter
    /// runs on those rows alone.
    fn changed_matches(
        &self,
        view: View<'_>,
        class: &ClassInfo,
        changes: &ClassChanges,
    ) -> Result<Vec<u64>> {
        let mut candidates: Vec<u64> = changes.modified.keys().copied().collect();
        candidates.sort_unstable();
        let (next, _) = view.class_state(class.id)?;
        candidates.extend(changes.first_new_key..next);
        eval::matching_among(view, class, &self.spec.pred, &candidates)
    }

    /// The new keys of sorted results (see `Spec::is_sorted_incremental`): the old order
    /// without the deleted and changed objects, with the changed and created objects that match
    /// placed by binary search; and those placed. `None` when so many objects changed that
    /// running the query again is cheaper.
    fn apply_sorted(
        &self,
        view: View<'_>,
        class: &ClassInfo,
        old: &[u64],
        changes: &ClassChanges,
    ) -> Result<Option<(Vec<u64>, Vec<u64>)>> {
        let (next, _) = view.class_state(class.id)?;
        let changed = changes.modified.len() as u64 + next.saturating_sub(changes.first_new_key);
        if changed > PLACE_LIMIT {
            return Ok(None);
        }
        let matched = self.changed_matches(view, class, changes)?;
        let kept: Vec<u64> = unchanged(old, changes).collect();
        let new = self.spec.place_sorted(view, class, kept, &matched)?;
        Ok(Some((new, matched)))
    }

    /// The new keys of unsorted results whose filter reads only the objects' own
    /// properties: the old keys minus the deleted and changed objects, plus the changed and
    /// created objects that match — the filter runs on those alone.
    fn apply_incrementally(
        &self,
        view: View<'_>,
        class: &ClassInfo,
        old: &[u64],
        changes: &ClassChanges,
    ) -> Result<Vec<u64>> {
        let matched = self.changed_matches(view, class, changes)?;
        let kept = unchanged(old, changes);
        // Two ascending runs merged.
        let mut out = Vec::with_capacity(old.len() + matched.len());
        let mut matched = matched.into_iter().peekable();
        for k in kept {
            while let Some(m) = matched.next_if(|m| *m < k) {
                out.push(m);
            }
            out.push(k);
        }
        out.extend(matched);
        Ok(out)
    }
}

/// The old keys of objects the commit neither deleted nor modified, in their old order.
fn unchanged<'a>(old: &'a [u64], changes: &'a ClassChanges) -> impl Iterator<Item = u64> + 'a {
    old.iter()
        .copied()
        .filter(|k| !changes.deleted.contains(k) && !changes.modified.contains_key(k))
}

observer_runs_compute!(ResultsObserver, "results");

impl Results {
    /// Calls `callback` with what changed in these results after every commit that changed
    /// them — local commits and sync downloads alike — starting with their initial state
    /// (`initial` set). Callbacks run on the realm's scheduler (`Config::set_scheduler`;
    /// default: a library thread), which first moves the handle to the notified version.
    /// Dropping the token stops the callbacks.
    ///
    /// The change set is computed once per commit, on the notifier thread: commits that touch
    /// none of the classes the query reads cost nothing; results whose filter and sorts read
    /// only the objects' own properties test just the objects the commit created or changed
    /// (and place them by binary search when sorted) instead of running the query again.
    pub fn observe(
        &self,
        callback: impl Fn(&CollectionChanges) + Send + Sync + 'static,
    ) -> Result<ChangeToken> {
        let (realm, class, spec) = self.observed();
        realm.class_id(&class)?;
        let observer = ResultsObserver {
            class,
            spec,
            seen: Mutex::new(None),
            delivery: Delivery::new(&realm, callback),
        };
        realm.add_observer(Arc::new(observer))
    }
}

// ----- lists -----

enum ListSeen {
    Unseen,
    Seen {
        version: u64,
        len: usize,
    },
    /// The owner was deleted and told so.
    Gone,
}

struct ListObserver {
    class_id: u32,
    prop_id: u32,
    key: u64,
    seen: Mutex<ListSeen>,
    delivery: Delivery<CollectionChanges>,
}

impl ListObserver {
    fn compute(&self, view: View<'_>, version: u64, commits: &[Commit]) -> Result<()> {
        let mut seen = self.seen.lock();
        let prop = view
            .catalog()
            .class_by_id(self.class_id)
            .and_then(|c| c.prop_by_id(self.prop_id))
            .cloned();
        let gone = |seen: &mut ListSeen, old_len: usize| {
            *seen = ListSeen::Gone;
            self.delivery.send(
                version,
                CollectionChanges {
                    version,
                    collection_deleted: true,
                    deletions: (0..old_len).collect(),
                    ..CollectionChanges::default()
                },
            );
        };
        let (seen_version, old_len) = match *seen {
            ListSeen::Gone => return Ok(()),
            ListSeen::Unseen => {
                let len = match &prop {
                    Some(p) if view.is_live(self.class_id, self.key)? => {
                        view.list_len(self.class_id, p, self.key)?
                    }
                    _ => {
                        gone(&mut seen, 0);
                        return Ok(());
                    }
                };
                *seen = ListSeen::Seen { version, len };
                let initial = CollectionChanges {
                    version,
                    initial: true,
                    ..CollectionChanges::default()
                };
                self.delivery.send(version, initial);
                return Ok(());
            }
            ListSeen::Seen { version, len } => (version, len),
        };
        let Some(log) = unseen(commits, seen_version) else {
            return Ok(());
        };
        let Some(prop) = prop.filter(|_| view.is_live(self.class_id, self.key).unwrap_or(false))
        else {
            gone(&mut seen, old_len);
            return Ok(());
        };
        let new_len = view.list_len(self.class_id, &prop, self.key)?;
        *seen = ListSeen::Seen {
            version,
            len: new_len,
        };
        let edits = log.lists.get(&(self.class_id, self.prop_id, self.key));
        // For lists of links: elements whose target object changed are modified too.
        let targets_modified = prop
            .target
            .and_then(|t| log.classes.get(&t))
            .filter(|c| !c.modified.is_empty());
        if edits.is_none() && targets_modified.is_none() && !log.schema_changed {
            return Ok(());
        }
        let (sources, set) = match edits {
            Some(edits) => replay_list(old_len, edits),
            None => ((0..old_len).map(Some).collect(), vec![false; old_len]),
        };
        let mut changes = if sources.len() != new_len {
            // The edits do not explain the list (it cannot happen short of a schema change
            // that rewrote it): report it as replaced.
            CollectionChanges {
                deletions: (0..old_len).collect(),
                insertions: (0..new_len).collect(),
                ..CollectionChanges::default()
            }
        } else {
            let items: Vec<Value> = match targets_modified {
                Some(_) => view.list(self.class_id, &prop, self.key)?,
                None => Vec::new(),
            };
            let target_changed = |j: usize| match (targets_modified, items.get(j)) {
                (Some(c), Some(Value::Link(l))) => c.modified.contains_key(&l.key),
                _ => false,
            };
            changes_from_sources(old_len, &sources, |j, _| set[j] || target_changed(j))
        };
        if changes.is_empty() {
            return Ok(());
        }
        changes.version = version;
        self.delivery.send(version, changes);
        Ok(())
    }
}

observer_runs_compute!(ListObserver, "list");

impl List {
    /// Calls `callback` with what changed in this list after every commit that changed it
    /// (its elements, or for a list of links the objects it links to), starting with its
    /// initial state. When the list's object is deleted, a last callback has
    /// `collection_deleted` set. Delivery as for [`Results::observe`].
    pub fn observe(
        &self,
        callback: impl Fn(&CollectionChanges) + Send + Sync + 'static,
    ) -> Result<ChangeToken> {
        let object = self.object();
        let realm = object.realm();
        let observer = ListObserver {
            class_id: object.class_id(),
            prop_id: self.prop_id(),
            key: object.key(),
            seen: Mutex::new(ListSeen::Unseen),
            delivery: Delivery::new(realm, callback),
        };
        realm.add_observer(Arc::new(observer))
    }
}

// ----- objects -----

struct ObjectObserver {
    class_id: u32,
    key: u64,
    /// The version last delivered (`None`: not yet; `Some(u64::MAX)`: deleted and told).
    seen: Mutex<Option<u64>>,
    delivery: Delivery<ObjectChange>,
}

impl ObjectObserver {
    fn compute(&self, view: View<'_>, version: u64, commits: &[Commit]) -> Result<()> {
        let mut seen = self.seen.lock();
        let deleted = |seen: &mut Option<u64>| {
            *seen = Some(u64::MAX);
            self.delivery.send(
                version,
                ObjectChange {
                    version,
                    deleted: true,
                    ..ObjectChange::default()
                },
            );
        };
        let Some(seen_version) = *seen else {
            if !view.is_live(self.class_id, self.key)? {
                deleted(&mut seen);
                return Ok(());
            }
            *seen = Some(version);
            let initial = ObjectChange {
                version,
                initial: true,
                ..ObjectChange::default()
            };
            self.delivery.send(version, initial);
            return Ok(());
        };
        let Some(log) = unseen(commits, seen_version) else {
            return Ok(());
        };
        *seen = Some(version);
        let Some(changes) = log.classes.get(&self.class_id) else {
            return Ok(());
        };
        if changes.deleted.contains(&self.key) || !view.is_live(self.class_id, self.key)? {
            deleted(&mut seen);
            return Ok(());
        }
        let Some(props) = changes.modified.get(&self.key) else {
            return Ok(());
        };
        let Some(class) = view.catalog().class_by_id(self.class_id) else {
            return Ok(());
        };
        let mut change = ObjectChange {
            version,
            ..ObjectChange::default()
        };
        for p in class.props.iter().filter(|p| props.contains(p.id)) {
            change.changed.push(PropertyKey {
                class_id: self.class_id,
                prop_id: p.id,
            });
            change.changed_names.push(p.name.clone());
        }
        if !change.changed.is_empty() {
            self.delivery.send(version, change);
        }
        Ok(())
    }
}

observer_runs_compute!(ObjectObserver, "object");

impl Object {
    /// Calls `callback` with the properties written after every commit that changed this
    /// object, starting with its initial state; when the object is deleted, a last callback
    /// has `deleted` set. Delivery as for [`Results::observe`].
    pub fn observe(
        &self,
        callback: impl Fn(&ObjectChange) + Send + Sync + 'static,
    ) -> Result<ChangeToken> {
        let realm = self.realm();
        let observer = ObjectObserver {
            class_id: self.class_id(),
            key: self.key(),
            seen: Mutex::new(None),
            delivery: Delivery::new(realm, callback),
        };
        realm.add_observer(Arc::new(observer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_is_a_deletion_an_insertion_and_a_move() {
        // [a b c d] -> [b c d a]
        let c = changes_from_sources(4, &[Some(1), Some(2), Some(3), Some(0)], |_, _| false);
        assert_eq!(c.moves, vec![(0, 3)]);
        assert_eq!(c.deletions, vec![0]);
        assert_eq!(c.insertions, vec![3]);
        assert!(c.modifications.is_empty());
    }

    #[test]
    fn key_diffs_give_old_deletions_and_new_insertions_and_modifications() {
        let c = diff_keys(&[1, 2, 3, 5], &[1, 3, 4, 5, 9], |k| k == 5 || k == 2);
        assert_eq!(c.deletions, vec![1]);
        assert_eq!(c.insertions, vec![2, 4]);
        assert_eq!(c.modifications, vec![3]);
        assert_eq!(c.modifications_old, vec![3]);
        assert!(c.moves.is_empty());
        // Sorted results: 3 moved to the front.
        let c = diff_keys(&[10, 20, 30], &[30, 10, 20], |_| false);
        assert_eq!(c.moves, vec![(2, 0)]);
        assert_eq!((c.deletions, c.insertions), (vec![2], vec![0]));
    }

    #[test]
    fn list_replay_tracks_where_each_element_came_from() {
        let edits = [
            ListEdit::Insert(0),
            ListEdit::Erase(2), // old element 1
            ListEdit::Set(1),   // old element 0
            ListEdit::Move { from: 2, to: 0 },
        ];
        let (sources, set) = replay_list(3, &edits);
        assert_eq!(sources, vec![Some(2), None, Some(0)]);
        assert_eq!(set, vec![false, false, true]);
    }

    #[test]
    fn diffs_of_touched_objects_agree_with_full_diffs() {
        let (a, k, k2, b, x, n) = (1, 2, 3, 4, 5, 6);
        let cases: Vec<(Vec<u64>, Vec<u64>, Vec<u64>)> = vec![
            (vec![a, k, k2, b], vec![a, k2, k, b], vec![k, k2]),
            (vec![a, k, x, b], vec![n, a, b, k], vec![k, x, n]),
            (vec![k, a, b], vec![a, b, k], vec![k]),
            (vec![a, k, b], vec![a, k, b], vec![k]),
        ];
        for (old, new, touched) in cases {
            let touched: FxHashSet<u64> = touched.into_iter().collect();
            let fast = diff_touched(&old, &new, &touched, |key| key == k);
            let full = diff_keys(&old, &new, |key| key == k);
            for changes in [&fast, &full] {
                let mut mirror = old.clone();
                for &i in changes.deletions.iter().rev() {
                    mirror.remove(i);
                }
                for &j in &changes.insertions {
                    mirror.insert(j, new[j]);
                }
                assert_eq!(mirror, new, "{old:?} -> {new:?}");
            }
            assert_eq!(fast.moves.len(), full.moves.len(), "{old:?} -> {new:?}");
        }
    }

    #[test]
    fn longest_increasing_run_is_kept() {
        assert_eq!(
            longest_increasing(&[3, 0, 1, 2]),
            vec![false, true, true, true]
        );
        assert_eq!(longest_increasing(&[]), Vec::<bool>::new());
    }
}

//! A write transaction: every mutation of a realm, with its index maintenance and its history
//! record, in one place.
//!
//! Both the public API (objects, lists, migrations) and changeset replay go through these
//! methods, so a replayed changeset performs exactly the same steps as the original writes.
//! Derived effects (defaults of new objects, links nulled when their target is deleted) are not
//! recorded: replaying the instruction that caused them produces them again.

use crate::error::{Error, ErrorCode, Result};
use crate::history::{ChangeRef, ChangeValue, ChangesetBuilder, GlobalId, Instruction};
use crate::schema::PropertyFlags;
use crate::store::catalog::{Catalog, ClassInfo, ClassRef, PropInfo, SchemaChange, GID_PROP};
use crate::store::changes::{ChangeLog, ListEdit};
use crate::store::index::index_hash;
use crate::store::retention;
use crate::store::snapshot::Snapshot;
use crate::store::tables::{self, meta};
use crate::store::view::{Overlay, View};
use crate::value::{ObjLink, PropertyType, Value, ValueRef};
use std::collections::HashSet;
use std::sync::Arc;

/// What the layer above a write transaction adds to its writes: the stamp of the changeset
/// and, in realms with merge metadata, that metadata. The store calls these at fixed points
/// and knows nothing else of them, so it stays below the merge layer.
pub(crate) trait WriteHooks: Send + std::any::Any {
    /// For a caller that installed the hooks and wants its own type back.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// Whether the realm keeps merge metadata (its lists and upload needs differ).
    fn merge_metadata(&self) -> bool {
        false
    }
    /// The stamp of this transaction's own changeset, at commit.
    fn stamp(&mut self, w: &WriteTxn) -> Result<u64>;
    /// Before an object with global id `id` is created by a local write.
    fn creating(&mut self, _w: &mut WriteTxn, _class: &ClassInfo, _id: &GlobalId) -> Result<()> {
        Ok(())
    }
    /// Before the object `id` of class `class` is deleted.
    fn deleting(&mut self, _w: &mut WriteTxn, _class: u32, _id: &GlobalId) -> Result<()> {
        Ok(())
    }
    /// Records a list change given by index (`ins`; `items`: the list after it, `before` its
    /// length before); `false` leaves the recording to the store.
    #[allow(clippy::too_many_arguments)]
    fn record_list(
        &mut self,
        _w: &mut WriteTxn,
        _class: &ClassInfo,
        _prop: &PropInfo,
        _id: &GlobalId,
        _ins: &Instruction,
        _items: &[Value],
        _before: usize,
    ) -> Result<bool> {
        Ok(false)
    }
    /// The entries at these positions of a list of `stored` items vanished (links to objects
    /// just deleted).
    fn list_entries_hidden(
        &mut self,
        _w: &mut WriteTxn,
        _class: u32,
        _id: &GlobalId,
        _prop: u32,
        _stored: usize,
        _positions: &[usize],
    ) -> Result<()> {
        Ok(())
    }
    /// A recorded link names an object this realm does not have (it reads as NULL unless
    /// this is an error).
    fn missing_link_target(
        &self,
        _w: &WriteTxn,
        _target: &ClassInfo,
        _id: &GlobalId,
    ) -> Result<()> {
        Ok(())
    }
    /// At commit, before anything is written: `local` is this transaction's own changeset.
    fn committing(&mut self, _w: &mut WriteTxn, _local: Option<&[u8]>) -> Result<()> {
        Ok(())
    }
}

/// A transaction without a layer above (copies, store tests): it must not record changes.
struct NoHooks;

impl WriteHooks for NoHooks {
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn stamp(&mut self, _w: &WriteTxn) -> Result<u64> {
        Err(Error::internal("changes recorded without a clock"))
    }
}

/// Reads a stored value, giving required properties their default where nothing was written.
pub(crate) fn or_default<'v>(v: ValueRef<'v>, prop: &PropInfo) -> ValueRef<'v> {
    if v.is_null() && !prop.is_nullable() {
        match prop.ty {
            PropertyType::Bool => ValueRef::Bool(false),
            PropertyType::Int => ValueRef::Int(0),
            PropertyType::Float => ValueRef::Float(0.0),
            PropertyType::Double => ValueRef::Double(0.0),
            PropertyType::String => ValueRef::String(""),
            PropertyType::Binary => ValueRef::Binary(&[]),
            PropertyType::Timestamp => ValueRef::Timestamp(crate::value::Timestamp::new(0, 0)),
            PropertyType::Link => ValueRef::Null,
        }
    } else {
        v
    }
}

/// An open write transaction of one realm file.
pub(crate) struct WriteTxn {
    pub(crate) txn: redb::WriteTransaction,
    /// The latest commit, which this transaction builds on.
    pub(crate) base: Snapshot,
    pub(crate) overlay: Overlay,
    changes: ChangesetBuilder,
    /// The file's salt: the high half of generated global ids, and the replica id that
    /// stamps this file's changesets.
    pub(crate) file_salt: u64,
    /// Changesets recorded in history as they came (one version each) instead of `changes`:
    /// other replicas' changesets that the layer above integrated.
    raw: Vec<Vec<u8>>,
    /// What the layer above adds to the writes (merge metadata, the changeset stamp); `None`
    /// while a caller holds it (see [`WriteTxn::take_hooks`]).
    hooks: Option<Box<dyn WriteHooks>>,
    /// An error after which history and data may disagree: the commit is refused.
    poisoned: Option<Error>,
    /// The object the last write named, with its global id: a run of writes to one object
    /// (create, then set each property) skips the liveness check and the id lookup.
    recent: Option<(u32, u64, GlobalId)>,
    /// The file's per-class floor of new object keys (see `SharedFile`).
    key_floor: Arc<parking_lot::Mutex<rustc_hash::FxHashMap<u32, u64>>>,
    /// What the transaction changed, object by object, for fine-grained notifications.
    pub(crate) log: ChangeLog,
}

/// A class's next object key in `base`: the first key a transaction on it can create.
pub(crate) fn first_new_key(base: &Snapshot, class: u32) -> u64 {
    base.class_state(class).map(|(next, _)| next).unwrap_or(0)
}

/// What a commit produced.
pub(crate) struct CommitOutcome {
    /// The new history version, if the transaction recorded changes.
    pub(crate) version: Option<u64>,
    /// What it changed, object by object.
    pub(crate) log: ChangeLog,
}

impl WriteTxn {
    pub(crate) fn new(
        txn: redb::WriteTransaction,
        base: Snapshot,
        key_floor: Arc<parking_lot::Mutex<rustc_hash::FxHashMap<u32, u64>>>,
    ) -> Result<WriteTxn> {
        let file_salt = base.meta_u64(meta::FILE_SALT)?;
        Ok(WriteTxn {
            txn,
            base,
            overlay: Overlay::default(),
            changes: ChangesetBuilder::default(),
            file_salt,
            raw: Vec::new(),
            hooks: None,
            poisoned: None,
            recent: None,
            key_floor,
            log: ChangeLog::default(),
        })
    }

    /// Initializes a brand-new file: format, salt, empty tables.
    pub(crate) fn init_file(txn: &redb::WriteTransaction) -> Result<()> {
        let mut m = txn.open_table(tables::META)?;
        m.insert(
            meta::FORMAT,
            tables::FORMAT_VERSION.to_le_bytes().as_slice(),
        )?;
        let salt = crate::util::random_u64();
        m.insert(meta::FILE_SALT, salt.to_le_bytes().as_slice())?;
        m.insert(meta::SCHEMA_VERSION, 0u64.to_le_bytes().as_slice())?;
        drop(m);
        txn.open_table(tables::COLUMNS)?;
        txn.open_table(tables::LISTS)?;
        txn.open_table(tables::INDEX)?;
        txn.open_table(tables::HISTORY)?;
        Ok(())
    }

    pub(crate) fn view(&self) -> View<'_> {
        View {
            snap: &self.base,
            overlay: Some(&self.overlay),
        }
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        self.view().catalog()
    }

    fn catalog_mut(&mut self) -> &mut Catalog {
        let base = &self.base.catalog;
        Arc::make_mut(self.overlay.catalog.get_or_insert_with(|| base.clone()))
    }

    pub(crate) fn record(&mut self, ins: &Instruction) {
        self.changes.push(ins);
    }

    /// Writes a meta entry in this transaction (sync progress lives there).
    pub(crate) fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<()> {
        self.txn.open_table(tables::META)?.insert(name, value)?;
        Ok(())
    }

    pub(crate) fn set_schema_version(&mut self, v: u64) {
        self.overlay.schema_version = Some(v);
    }

    /// Installs what the layer above adds to this transaction's writes.
    pub(crate) fn set_hooks(&mut self, hooks: Box<dyn WriteHooks>) {
        self.hooks = Some(hooks);
    }

    /// Takes the hooks out, for a caller that drives this transaction with them itself (the
    /// `*_in` methods); give them back with [`set_hooks`](Self::set_hooks).
    pub(crate) fn take_hooks(&mut self) -> Option<Box<dyn WriteHooks>> {
        self.hooks.take()
    }

    /// Runs `f` with the installed hooks (or none), put back afterwards.
    fn with_hooks<R>(
        &mut self,
        f: impl FnOnce(&mut WriteTxn, &mut dyn WriteHooks) -> Result<R>,
    ) -> Result<R> {
        match self.hooks.take() {
            Some(mut h) => {
                let r = f(self, h.as_mut());
                self.hooks = Some(h);
                r
            }
            None => f(self, &mut NoHooks),
        }
    }

    /// How many instructions this transaction has recorded so far.
    pub(crate) fn recorded_len(&self) -> usize {
        self.changes.len()
    }

    /// Records a changeset in history as it is (one version), instead of this transaction's
    /// own changes.
    pub(crate) fn record_verbatim(&mut self, changeset: Vec<u8>) {
        self.raw.push(changeset);
    }

    /// Writes everything, trims the history to what is still needed (see
    /// [`retention::append_and_trim`]) and commits durably. `needed_after`: every changeset
    /// after this version is needed by something outside the file (a handle keeping the full
    /// history, a change notification not yet delivered). After an error nothing of the
    /// transaction is visible (redb discards an uncommitted transaction).
    pub(crate) fn commit(mut self, needed_after: Option<u64>) -> Result<CommitOutcome> {
        let mut hooks = self.hooks.take();
        let mut records = std::mem::take(&mut self.raw);
        let local = match records.is_empty() {
            false => None,
            true if self.changes.is_empty() || self.poisoned.is_some() => None,
            true => {
                let stamp = match hooks.as_mut() {
                    Some(h) => h.stamp(&self)?,
                    None => return Err(Error::internal("changes recorded without a clock")),
                };
                let changes = std::mem::take(&mut self.changes);
                Some(changes.finish(stamp, self.file_salt))
            }
        };
        if let Some(h) = hooks.as_mut() {
            h.committing(&mut self, local.as_deref())?;
        }
        records.extend(local);
        let merge = hooks.as_ref().is_some_and(|h| h.merge_metadata());
        let WriteTxn {
            txn,
            base,
            overlay,
            poisoned,
            file_salt,
            log,
            ..
        } = self;
        if let Some(e) = poisoned {
            return Err(Error::new(
                e.code(),
                format!(
                    "the transaction cannot commit after a failed write: {}",
                    e.message()
                ),
            ));
        }
        let catalog = overlay
            .catalog
            .clone()
            .unwrap_or_else(|| base.catalog.clone());
        overlay.flush(&txn, &catalog)?;
        let upload = retention::upload_need(&txn, &base, merge, file_salt)?;
        let version =
            retention::append_and_trim(&txn, base.version, &records, needed_after, upload)?;
        txn.commit()?;
        Ok(CommitOutcome { version, log })
    }

    // ----- schema -----

    /// Applies schema changes (from [`catalog::diff`](crate::store::catalog::diff) or replay),
    /// recording each. Changes that are already true are skipped, so the same addition from
    /// two sources is one.
    ///
    /// A change that would give the file a schema [`Schema`](crate::Schema) refuses (a bad
    /// name, a DOUBLE primary key, an indexed list, a scalar turned into a list, ...) fails
    /// with `InvalidArgument` before anything is changed: changesets come from other
    /// replicas and are checked like a schema built in code.
    pub(crate) fn apply_schema_change(&mut self, change: &SchemaChange) -> Result<()> {
        self.recent = None;
        self.log.schema_changed = true;
        match change {
            SchemaChange::AddClass { name } => {
                if self.catalog().class(name).is_none() {
                    crate::schema::check_class_name(name)?;
                    self.catalog_mut().add_class(name);
                    self.record(&Instruction::AddClass { name: name.clone() });
                }
            }
            SchemaChange::AddProperty {
                class,
                name,
                ty,
                flags,
                target,
            } => {
                if let Some(existing) = self.catalog().require_class(class)?.prop(name) {
                    let target_id = match target {
                        Some(t) => Some(self.catalog().require_class(t)?.id),
                        None => None,
                    };
                    if existing.ty != *ty
                        || existing.flags != *flags
                        || existing.target != target_id
                    {
                        return Err(Error::invalid(format!(
                            "property '{class}.{name}' already exists with another type"
                        )));
                    }
                    return Ok(());
                }
                crate::schema::check_property(class, name, *ty, *flags, target.as_deref())?;
                let id =
                    self.catalog_mut()
                        .add_property(class, name, *ty, *flags, target.as_deref())?;
                self.record(&Instruction::AddProperty {
                    class: class.clone(),
                    name: name.clone(),
                    ty: *ty,
                    flags: *flags,
                    target: target.clone(),
                });
                if flags.contains(PropertyFlags::INDEXED) {
                    self.rebuild_index(class, id)?;
                }
            }
            SchemaChange::SetPrimaryKey { class, prop } => {
                let info = self.catalog().require_class(class)?;
                let current = info.pk_prop().map(|p| p.name.clone());
                if current == *prop {
                    return Ok(());
                }
                if let Some(p) = prop {
                    let key = info.require_prop(p)?;
                    crate::schema::check_primary_key(class, p, key.ty, key.flags)?;
                }
                let class_id = info.id;
                let old_pk = info.pk_prop().cloned();
                if let Some(old) = &old_pk {
                    if !old.is_indexed() {
                        self.overlay.dropped_indexes.push((class_id, old.id));
                        self.clear_index_overlay(class_id, old.id);
                    }
                } else {
                    // The generated ids give way to the key.
                    self.overlay.dropped_indexes.push((class_id, GID_PROP));
                    self.overlay.dropped.push((class_id, Some(GID_PROP)));
                    self.clear_index_overlay(class_id, GID_PROP);
                }
                self.catalog_mut().set_primary_key(class, prop.as_deref())?;
                self.record(&Instruction::SetPrimaryKey {
                    class: class.clone(),
                    prop: prop.clone(),
                });
                match (prop, old_pk) {
                    (Some(p), _) => {
                        let prop_id = self.catalog().require_class(class)?.require_prop(p)?.id;
                        self.rebuild_index(class, prop_id)?;
                        self.check_unique(class_id, prop_id)?;
                    }
                    (None, Some(old)) => self.ids_from_former_key(class_id, &old)?,
                    (None, None) => {}
                }
            }
            SchemaChange::SetFlags { class, name, flags } => self.set_flags(class, name, *flags)?,
            SchemaChange::RemoveProperty { class, name } => {
                let info = self.catalog().require_class(class)?;
                let Some(prop) = info.prop(name) else {
                    return Ok(());
                };
                if info.pk == Some(prop.id) {
                    // Only a changeset erases the key property itself (a migration drops the
                    // key first): e.g. a replica that erased it before another made it the
                    // key. The class drops its key first, so that its objects keep ids (made
                    // from the key values, the same on every replica).
                    self.apply_schema_change(&SchemaChange::SetPrimaryKey {
                        class: class.clone(),
                        prop: None,
                    })?;
                }
                let info = self.catalog().require_class(class)?;
                let prop = info.require_prop(name)?;
                let (class_id, prop_id) = (info.id, prop.id);
                self.overlay.dropped.push((class_id, Some(prop_id)));
                self.overlay.dropped_indexes.push((class_id, prop_id));
                self.clear_index_overlay(class_id, prop_id);
                self.catalog_mut().remove_property(class, name);
                self.record(&Instruction::EraseProperty {
                    class: class.clone(),
                    name: name.clone(),
                });
            }
            SchemaChange::RemoveClass { name } => {
                let Some(info) = self.catalog().class(name) else {
                    return Ok(());
                };
                let class_id = info.id;
                // Links of other classes to this one go with it. A migration removes them
                // first (a schema has no dangling target), a changeset need not: e.g. a
                // replica erased the class while another added a link to it.
                let links: Vec<(String, String)> = self
                    .catalog()
                    .classes
                    .iter()
                    .filter(|c| c.id != class_id)
                    .flat_map(|c| {
                        c.props
                            .iter()
                            .filter(|p| p.target == Some(class_id))
                            .map(|p| (c.name.clone(), p.name.clone()))
                    })
                    .collect();
                for (class, name) in links {
                    self.apply_schema_change(&SchemaChange::RemoveProperty { class, name })?;
                }
                let info = self.catalog().require_class(name)?;
                let indexed: Vec<u32> = info
                    .props
                    .iter()
                    .filter(|p| p.is_indexed() || Some(p.id) == info.pk)
                    .map(|p| p.id)
                    .collect();
                for p in indexed.into_iter().chain([GID_PROP]) {
                    self.overlay.dropped_indexes.push((class_id, p));
                    self.clear_index_overlay(class_id, p);
                }
                self.overlay.dropped.push((class_id, None));
                self.catalog_mut().remove_class(name);
                self.record(&Instruction::EraseClass {
                    class: name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Gives every object of a class that lost its primary key a generated id derived from
    /// the former key, so that every copy of the realm derives the same ids.
    fn ids_from_former_key(&mut self, class_id: u32, former: &PropInfo) -> Result<()> {
        let class = self.class(class_id)?;
        for key in self.view().live_keys(class_id)? {
            let id = match self.view().get(&class, former, key)? {
                Value::Int(i) => GlobalId::Generated {
                    file: 0,
                    seq: i as u64,
                },
                Value::String(s) => GlobalId::Generated {
                    file: 1,
                    seq: index_hash(ValueRef::String(&s)).0,
                },
                _ => continue,
            };
            let GlobalId::Generated { file, seq } = id else {
                continue;
            };
            let stored = Value::Binary(GlobalId::generated_bytes(file, seq));
            let (h, _) = index_hash(stored.as_ref());
            index_of(&self.base, class_id, GID_PROP).insert(&mut self.overlay.index, h, key)?;
            self.overlay
                .set_value(&self.base, class_id, gid_prop(), key, stored)?;
        }
        Ok(())
    }

    /// Changes only the NULLABLE/INDEXED flags of a property, keeping its values.
    fn set_flags(&mut self, class: &str, name: &str, flags: PropertyFlags) -> Result<()> {
        let info = self.class(self.catalog().require_class(class)?.id)?;
        let prop = info.require_prop(name)?.clone();
        if prop.flags == flags {
            return Ok(());
        }
        if prop.is_list() != flags.contains(PropertyFlags::LIST) {
            return Err(Error::invalid(format!(
                "property '{class}.{name}' cannot become or stop being a list"
            )));
        }
        let target = match prop.target {
            Some(t) => Some(self.catalog().class_by_id_required(t)?.name.clone()),
            None => None,
        };
        crate::schema::check_property(class, name, prop.ty, flags, target.as_deref())?;
        let now_nullable = flags.contains(PropertyFlags::NULLABLE);
        if now_nullable && !prop.is_nullable() {
            // An unwritten slot of a required property reads as its default; once the
            // property is nullable it would read as NULL, so the defaults are written out.
            for key in self.view().live_keys(info.id)? {
                let v = self.view().get(&info, &prop, key)?;
                if v.is_null() {
                    let d = or_default(ValueRef::Null, &prop).to_owned();
                    self.overlay.set_value(&self.base, info.id, &prop, key, d)?;
                }
            }
        }
        self.catalog_mut().set_flags(class, name, flags)?;
        self.record(&Instruction::SetPropertyFlags {
            class: class.to_owned(),
            name: name.to_owned(),
            flags,
        });
        let is_pk = info.pk == Some(prop.id);
        match (prop.is_indexed(), flags.contains(PropertyFlags::INDEXED)) {
            (false, true) if !is_pk => self.rebuild_index(class, prop.id)?,
            (true, false) if !is_pk => {
                self.overlay.dropped_indexes.push((info.id, prop.id));
                self.clear_index_overlay(info.id, prop.id);
            }
            _ => {}
        }
        Ok(())
    }

    fn clear_index_overlay(&mut self, class: u32, prop: u32) {
        self.overlay
            .index
            .dirty
            .remove(&tables::index_prefix(class, prop));
    }

    /// Indexes every existing object's value of a newly indexed property.
    fn rebuild_index(&mut self, class: &str, prop_id: u32) -> Result<()> {
        let info = self.catalog().require_class(class)?.clone();
        let prop = info.prop_by_id(prop_id).expect("just added").clone();
        for key in self.view().live_keys(info.id)? {
            let v = self.view().get(&info, &prop, key)?;
            let (h, _) = index_hash(or_default(v.as_ref(), &prop));
            index_of(&self.base, info.id, prop_id).insert(&mut self.overlay.index, h, key)?;
        }
        Ok(())
    }

    fn check_unique(&self, class_id: u32, prop_id: u32) -> Result<()> {
        let info = self.catalog().class_by_id_required(class_id)?;
        let prop = info.prop_by_id(prop_id).expect("exists");
        let mut seen = HashSet::new();
        for key in self.view().live_keys(class_id)? {
            let v = self.view().get(info, prop, key)?;
            if !seen.insert(format!("{v:?}")) {
                return Err(Error::new(
                    ErrorCode::DuplicatePrimaryKey,
                    format!(
                        "'{}.{}' cannot become the primary key: the value {v} appears twice",
                        info.name, prop.name
                    ),
                ));
            }
        }
        Ok(())
    }

    // ----- objects -----

    pub(crate) fn catalog_arc(&self) -> Arc<Catalog> {
        self.overlay
            .catalog
            .clone()
            .unwrap_or_else(|| self.base.catalog.clone())
    }

    pub(crate) fn class(&self, class_id: u32) -> Result<ClassRef> {
        ClassRef::by_id(self.catalog_arc(), class_id)
    }

    /// The object of `class` whose global id is `id`, if it exists.
    pub(crate) fn find_by_gid(&self, class: &ClassInfo, id: &GlobalId) -> Result<Option<u64>> {
        find_by_gid(self.view(), class, id)
    }

    /// Creates an object with a primary key (`Some`) or a generated id (`None`); records it.
    ///
    /// Fails with `DuplicatePrimaryKey` if the key exists, `WrongType`/`InvalidArgument` for a
    /// key that does not fit the class; nothing changes then.
    pub(crate) fn create_object(&mut self, class_id: u32, pk: Option<&Value>) -> Result<u64> {
        self.with_hooks(|w, h| w.create_object_in(h, class_id, pk))
    }

    fn create_object_in(
        &mut self,
        h: &mut dyn WriteHooks,
        class_id: u32,
        pk: Option<&Value>,
    ) -> Result<u64> {
        let class = self.class(class_id)?;
        let gid = match (class.pk_prop(), pk) {
            (Some(p), Some(v)) => pk_to_gid(&class, p, v)?,
            (Some(p), None) => {
                return Err(Error::invalid(format!(
                    "class '{}' has primary key '{}': a value for it is required",
                    class.name, p.name
                )))
            }
            (None, Some(_)) => {
                return Err(Error::invalid(format!(
                    "class '{}' has no primary key, so none can be given",
                    class.name
                )))
            }
            (None, None) => {
                // The key `insert_object` is about to hand out: ids name the creating key.
                let (next, _) = self.view().class_state(class_id)?;
                let floor = self.key_floor.lock().get(&class_id).copied().unwrap_or(0);
                GlobalId::Generated {
                    file: self.file_salt,
                    seq: next.max(floor),
                }
            }
        };
        h.creating(self, &class, &gid)?;
        if self.find_by_gid(&class, &gid)?.is_some() {
            return Err(Error::new(
                ErrorCode::DuplicatePrimaryKey,
                format!(
                    "an object of class '{}' with primary key {gid} already exists",
                    class.name
                ),
            ));
        }
        let key = self.insert_object(&class, &gid)?;
        self.changes.create(&class.name, &gid);
        self.recent = Some((class_id, key, gid));
        Ok(key)
    }

    /// Creates the object with `id` unless it exists (replay: two creations of one primary key
    /// are one object). Returns its key.
    pub(crate) fn ensure_object(&mut self, class_id: u32, id: &GlobalId) -> Result<u64> {
        let class = self.class(class_id)?;
        if let Some(key) = self.find_by_gid(&class, id)? {
            return Ok(key);
        }
        if let Some(p) = class.pk_prop() {
            let v = match id {
                GlobalId::Int(i) => Value::Int(*i),
                GlobalId::String(s) => Value::String(s.clone()),
                GlobalId::Generated { .. } => {
                    return Err(Error::invalid(
                        "generated id for a class with a primary key",
                    ))
                }
            };
            pk_to_gid(&class, p, &v)?;
        } else if !matches!(id, GlobalId::Generated { .. }) {
            return Err(Error::invalid(format!(
                "class '{}' has no primary key; its objects need generated ids",
                class.name
            )));
        }
        let key = self.insert_object(&class, id)?;
        self.changes.create(&class.name, id);
        Ok(key)
    }

    fn insert_object(&mut self, class: &ClassInfo, gid: &GlobalId) -> Result<u64> {
        let (next, live) = self.view().class_state(class.id)?;
        let key = {
            let mut floor = self.key_floor.lock();
            let slot = floor.entry(class.id).or_insert(0);
            let key = next.max(*slot);
            *slot = key + 1;
            key
        };
        self.overlay.classes.insert(class.id, (key + 1, live + 1));
        let base = &self.base;
        self.log.created(class.id, || first_new_key(base, class.id));
        self.overlay.set_live(&self.base, class.id, key, true)?;
        let (stored, index_prop) = match (class.pk_prop(), gid) {
            (Some(p), GlobalId::Int(i)) => (Value::Int(*i), p),
            (Some(p), GlobalId::String(s)) => (Value::String(s.clone()), p),
            (_, GlobalId::Generated { file, seq }) => (
                Value::Binary(GlobalId::generated_bytes(*file, *seq)),
                gid_prop(),
            ),
            _ => return Err(Error::internal("global id does not match the class")),
        };
        let (h, _) = index_hash(stored.as_ref());
        index_of(&self.base, class.id, index_prop.id).insert(&mut self.overlay.index, h, key)?;
        self.overlay
            .set_value(&self.base, class.id, index_prop, key, stored)?;
        // Other indexed properties start at their default value, which must be indexed too
        // (as `rebuild_index` does): `store_scalar` only moves an entry when the value changes.
        for prop in class
            .props
            .iter()
            .filter(|p| p.is_indexed() && !p.is_list() && Some(p.id) != class.pk)
        {
            let (h, _) = index_hash(or_default(ValueRef::Null, prop));
            index_of(&self.base, class.id, prop.id).insert(&mut self.overlay.index, h, key)?;
        }
        Ok(key)
    }

    /// The global id of a live object.
    pub(crate) fn gid_of(&self, class: &ClassInfo, key: u64) -> Result<GlobalId> {
        if let Some((c, k, id)) = &self.recent {
            if *c == class.id && *k == key {
                return Ok(id.clone());
            }
        }
        gid_of(self.view(), class, key)
    }

    fn check_live(&self, class: &ClassInfo, key: u64) -> Result<()> {
        if self
            .recent
            .as_ref()
            .is_some_and(|(c, k, _)| *c == class.id && *k == key)
        {
            return Ok(());
        }
        if self.view().is_live(class.id, key)? {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::ObjectDeleted,
                format!("the {} object was deleted", class.name),
            ))
        }
    }

    /// Checks `value` against a scalar or element of `prop` and returns it in stored form.
    pub(crate) fn check_value(
        &self,
        class: &ClassInfo,
        prop: &PropInfo,
        value: Value,
        element: bool,
    ) -> Result<Value> {
        if value.is_null() {
            let nullable = if element {
                prop.flags.contains(PropertyFlags::NULLABLE) && prop.ty != PropertyType::Link
            } else {
                prop.is_nullable()
            };
            if !nullable {
                return Err(Error::wrong_type(format!(
                    "'{}.{}' is required and cannot be set to NULL",
                    class.name, prop.name
                )));
            }
            return Ok(Value::Null);
        }
        match (&value, prop.ty) {
            (Value::Link(link), PropertyType::Link) => {
                if Some(link.class_id) != prop.target {
                    let want = prop
                        .target
                        .and_then(|t| self.catalog().class_by_id(t))
                        .map_or("?", |c| c.name.as_str());
                    return Err(Error::wrong_type(format!(
                        "'{}.{}' links to {want} objects, not to this one",
                        class.name, prop.name
                    )));
                }
                if !self.view().is_live(link.class_id, link.key)? {
                    return Err(Error::new(
                        ErrorCode::ObjectDeleted,
                        "cannot link to a deleted object",
                    ));
                }
            }
            (Value::Timestamp(t), PropertyType::Timestamp)
                if t.nanos.unsigned_abs() >= 1_000_000_000
                    || (t.seconds > 0 && t.nanos < 0)
                    || (t.seconds < 0 && t.nanos > 0) =>
            {
                return Err(Error::invalid(format!(
                    "timestamp ({}, {}) is invalid: nanoseconds must be within ±999999999 and have the sign of the seconds",
                    t.seconds, t.nanos
                )))
            }
            (v, ty) if v.property_type() != Some(ty) => {
                return Err(Error::wrong_type(format!(
                    "'{}.{}' holds {} values, not {}",
                    class.name,
                    prop.name,
                    ty.name(),
                    v.type_name()
                )))
            }
            _ => {}
        }
        Ok(value)
    }

    pub(crate) fn change_value(&self, prop: &PropInfo, value: &Value) -> Result<ChangeValue> {
        Ok(match value {
            Value::Link(link) => {
                let target = self.catalog().class_by_id_required(link.class_id)?;
                ChangeValue::Link(self.gid_of(target, link.key)?)
            }
            v => {
                let _ = prop;
                ChangeValue::Value(v.clone())
            }
        })
    }

    /// The class of a write to object `key` and the position of property `prop_id` in it;
    /// the object must be live.
    fn write_target(&self, class_id: u32, key: u64, prop_id: u32) -> Result<(ClassRef, usize)> {
        let class = self.class(class_id)?;
        let at = class
            .props
            .iter()
            .position(|p| p.id == prop_id)
            .ok_or_else(|| Error::internal("stale property id"))?;
        self.check_live(&class, key)?;
        Ok((class, at))
    }

    /// Sets a scalar property.
    ///
    /// Fails with `ObjectDeleted`, `WrongType`, `InvalidArgument` (a list, or the primary key)
    /// and changes nothing then.
    pub(crate) fn set(
        &mut self,
        class_id: u32,
        key: u64,
        prop_id: u32,
        value: Value,
    ) -> Result<()> {
        let (class, at) = self.write_target(class_id, key, prop_id)?;
        let prop = &class.props[at];
        if prop.is_list() {
            return Err(Error::wrong_type(format!(
                "'{}.{}' is a list; use the list functions",
                class.name, prop.name
            )));
        }
        if class.pk == Some(prop.id) {
            let current = self.view().get(&class, prop, key)?;
            if current == value {
                return Ok(());
            }
            return Err(Error::invalid(format!(
                "the primary key '{}.{}' cannot be changed",
                class.name, prop.name
            )));
        }
        let value = self.check_value(&class, prop, value, false)?;
        let id = self.gid_of(&class, key)?;
        match &value {
            Value::Link(link) => {
                let target = self.class(link.class_id)?;
                let target_id = self.gid_of(&target, link.key)?;
                self.changes
                    .set(&class.name, &id, &prop.name, ChangeRef::Link(&target_id));
            }
            v => self
                .changes
                .set(&class.name, &id, &prop.name, ChangeRef::Value(v)),
        }
        // Recorded first so that the value need not be copied; a failure past this point
        // poisons the transaction rather than leave history and data apart.
        self.store_scalar(&class, prop, key, value)
            .inspect_err(|e| self.poisoned = Some(e.clone()))
    }

    fn store_scalar(
        &mut self,
        class: &ClassInfo,
        prop: &PropInfo,
        key: u64,
        value: Value,
    ) -> Result<()> {
        let base = &self.base;
        self.log
            .modified(class.id, key, prop.id, || first_new_key(base, class.id));
        if prop.is_indexed() {
            let old = self.view().get(class, prop, key)?;
            let (old_h, _) = index_hash(or_default(old.as_ref(), prop));
            let (new_h, _) = index_hash(or_default(value.as_ref(), prop));
            if old_h != new_h {
                let index = index_of(&self.base, class.id, prop.id);
                index.remove(&mut self.overlay.index, old_h, key)?;
                index.insert(&mut self.overlay.index, new_h, key)?;
            }
        }
        self.overlay
            .set_value(&self.base, class.id, prop, key, value)
    }

    /// Adds `delta` to an INT property (a counter: merges by addition under sync).
    pub(crate) fn add_int(
        &mut self,
        class_id: u32,
        key: u64,
        prop_id: u32,
        delta: i64,
    ) -> Result<()> {
        let (class, at) = self.write_target(class_id, key, prop_id)?;
        let prop = &class.props[at];
        if prop.ty != PropertyType::Int || prop.is_list() {
            return Err(Error::wrong_type(format!(
                "'{}.{}' is not an int property",
                class.name, prop.name
            )));
        }
        if class.pk == Some(prop.id) {
            return Err(Error::invalid("the primary key cannot be changed"));
        }
        let current = self.view().get(&class, prop, key)?;
        let base = match or_default(current.as_ref(), prop) {
            ValueRef::Int(i) => i,
            _ => {
                return Err(Error::invalid(format!(
                    "cannot add to '{}.{}' while it is NULL",
                    class.name, prop.name
                )))
            }
        };
        self.store_scalar(&class, prop, key, Value::Int(base.wrapping_add(delta)))?;
        let id = self.gid_of(&class, key)?;
        self.changes.add_int(&class.name, &id, &prop.name, delta);
        Ok(())
    }

    // ----- lists -----

    fn list_prop(&self, class_id: u32, key: u64, prop_id: u32) -> Result<(ClassRef, PropInfo)> {
        let (class, at) = self.write_target(class_id, key, prop_id)?;
        let prop = class.props[at].clone();
        if !prop.is_list() {
            return Err(Error::wrong_type(format!(
                "'{}.{}' is not a list",
                class.name, prop.name
            )));
        }
        Ok((class, prop))
    }

    /// Applies one list operation; `op` validates indexes against the current items.
    pub(crate) fn list_op(
        &mut self,
        class_id: u32,
        key: u64,
        prop_id: u32,
        op: ListOp,
    ) -> Result<()> {
        self.with_hooks(|w, h| w.list_op_in(h, class_id, key, prop_id, op))
    }

    fn list_op_in(
        &mut self,
        h: &mut dyn WriteHooks,
        class_id: u32,
        key: u64,
        prop_id: u32,
        op: ListOp,
    ) -> Result<()> {
        let (class, prop) = self.list_prop(class_id, key, prop_id)?;
        let mut items = self.view().list(class.id, &prop, key)?;
        let len = items.len() as u64;
        let oob = |i: u64, _len: u64| {
            Error::new(
                ErrorCode::IndexOutOfBounds,
                format!(
                    "index {i} is out of bounds for '{}.{}' of size {len}",
                    class.name, prop.name
                ),
            )
        };
        let id = self.gid_of(&class, key)?;
        let (cn, pn) = (class.name.clone(), prop.name.clone());
        let edit = match &op {
            ListOp::Insert(i, _) => ListEdit::Insert(*i as usize),
            ListOp::Set(i, _) => ListEdit::Set(*i as usize),
            ListOp::Erase(i) => ListEdit::Erase(*i as usize),
            ListOp::Move(from, to) => ListEdit::Move {
                from: *from as usize,
                to: *to as usize,
            },
            ListOp::Clear => ListEdit::Clear,
        };
        let ins = match op {
            ListOp::Insert(index, value) => {
                if index > len {
                    return Err(oob(index, len));
                }
                let value = self.check_value(&class, &prop, value, true)?;
                let recorded = self.change_value(&prop, &value)?;
                items.insert(index as usize, value);
                Instruction::ListInsert {
                    class: cn,
                    id,
                    prop: pn,
                    index,
                    value: recorded,
                }
            }
            ListOp::Set(index, value) => {
                if index >= len {
                    return Err(oob(index, len));
                }
                let value = self.check_value(&class, &prop, value, true)?;
                let recorded = self.change_value(&prop, &value)?;
                items[index as usize] = value;
                Instruction::ListSet {
                    class: cn,
                    id,
                    prop: pn,
                    index,
                    value: recorded,
                }
            }
            ListOp::Erase(index) => {
                if index >= len {
                    return Err(oob(index, len));
                }
                items.remove(index as usize);
                Instruction::ListErase {
                    class: cn,
                    id,
                    prop: pn,
                    index,
                }
            }
            ListOp::Move(from, to) => {
                if from >= len || to >= len {
                    return Err(oob(from.max(to), len));
                }
                let v = items.remove(from as usize);
                items.insert(to as usize, v);
                Instruction::ListMove {
                    class: cn,
                    id,
                    prop: pn,
                    from,
                    to,
                }
            }
            ListOp::Clear => {
                items.clear();
                Instruction::ListClear {
                    class: cn,
                    id,
                    prop: pn,
                }
            }
        };
        let id = self.gid_of(&class, key)?;
        if !h.record_list(self, &class, &prop, &id, &ins, &items, len as usize)? {
            self.record(&ins);
        }
        self.overlay.set_list(class.id, prop.id, key, items);
        self.log_list_edit(class.id, prop.id, key, edit);
        Ok(())
    }

    /// Records a change to a list in the change log (the owner counts as modified).
    pub(crate) fn log_list_edit(&mut self, class: u32, prop: u32, key: u64, edit: ListEdit) {
        let base = &self.base;
        self.log
            .modified(class, key, prop, || first_new_key(base, class));
        self.log.list_edit((class, prop, key), edit);
    }

    /// A recorded value in stored form for `prop` (links to missing objects are NULL unless
    /// `h` makes that an error).
    pub(crate) fn change_to_value_in(
        &self,
        h: &dyn WriteHooks,
        prop: &PropInfo,
        value: &ChangeValue,
    ) -> Result<Value> {
        Ok(match value {
            ChangeValue::Value(v) => v.clone(),
            ChangeValue::Link(id) => {
                let target = self.catalog().class_by_id_required(prop.link_class())?;
                match self.find_by_gid(target, id)? {
                    Some(key) => Value::Link(ObjLink {
                        class_id: target.id,
                        key,
                    }),
                    None => {
                        h.missing_link_target(self, target, id)?;
                        Value::Null
                    }
                }
            }
        })
    }

    // ----- deletion -----

    /// Deletes objects of one class: links to them become NULL and list entries naming them
    /// vanish. Already-deleted keys are skipped.
    pub(crate) fn delete_objects(&mut self, class_id: u32, keys: &[u64]) -> Result<()> {
        self.with_hooks(|w, h| w.delete_objects_in(h, class_id, keys))
    }

    /// [`delete_objects`](Self::delete_objects) with these hooks.
    pub(crate) fn delete_objects_in(
        &mut self,
        h: &mut dyn WriteHooks,
        class_id: u32,
        keys: &[u64],
    ) -> Result<()> {
        self.recent = None;
        let class = self.class(class_id)?;
        let mut deleted = HashSet::new();
        for &key in keys {
            if !self.view().is_live(class_id, key)? || !deleted.insert(key) {
                continue;
            }
            let id = self.gid_of(&class, key)?;
            h.deleting(self, class_id, &id)?;
            self.erase_row(&class, key)?;
            self.record(&Instruction::EraseObject {
                class: class.name.clone(),
                id,
            });
        }
        if !deleted.is_empty() {
            self.unlink(h, class_id, &deleted)?;
        }
        Ok(())
    }

    fn erase_row(&mut self, class: &ClassInfo, key: u64) -> Result<()> {
        let base = &self.base;
        self.log
            .deleted(class.id, key, || first_new_key(base, class.id));
        let (next, live) = self.view().class_state(class.id)?;
        self.overlay
            .classes
            .insert(class.id, (next, live.saturating_sub(1)));
        self.overlay.set_live(&self.base, class.id, key, false)?;
        let mut props: Vec<PropInfo> = class.props.clone();
        if class.pk.is_none() {
            props.push(gid_prop().clone());
        }
        for prop in &props {
            if prop.is_list() {
                self.overlay.set_list(class.id, prop.id, key, Vec::new());
                continue;
            }
            if prop.is_indexed() || Some(prop.id) == class.pk || prop.id == GID_PROP {
                let old = self.view().get(class, prop, key)?;
                let (h, _) = index_hash(or_default(old.as_ref(), prop));
                index_of(&self.base, class.id, prop.id).remove(&mut self.overlay.index, h, key)?;
            }
            self.overlay
                .set_value(&self.base, class.id, prop, key, Value::Null)?;
        }
        Ok(())
    }

    /// Nulls links and removes list entries that point at deleted objects of `target`.
    fn unlink(
        &mut self,
        h: &mut dyn WriteHooks,
        target: u32,
        deleted: &HashSet<u64>,
    ) -> Result<()> {
        let sources: Vec<(ClassInfo, PropInfo)> = self
            .catalog()
            .classes
            .iter()
            .flat_map(|c| {
                c.props
                    .iter()
                    .filter(|p| p.target == Some(target))
                    .map(move |p| (c.clone(), p.clone()))
            })
            .collect();
        for (class, prop) in sources {
            for key in self.view().live_keys(class.id)? {
                if prop.is_list() {
                    let items = self.view().list(class.id, &prop, key)?;
                    let kept: Vec<Value> = items
                        .iter()
                        .filter(|v| !matches!(v, Value::Link(l) if deleted.contains(&l.key)))
                        .cloned()
                        .collect();
                    if kept.len() != items.len() {
                        // Erased from the back so that each index holds as the list stood.
                        for i in (0..items.len()).rev() {
                            if matches!(&items[i], Value::Link(l) if deleted.contains(&l.key)) {
                                self.log_list_edit(class.id, prop.id, key, ListEdit::Erase(i));
                            }
                        }
                        if h.merge_metadata() {
                            let removed: Vec<usize> = (0..items.len())
                                .filter(|&i| {
                                    matches!(&items[i], Value::Link(l) if deleted.contains(&l.key))
                                })
                                .collect();
                            let id = self.gid_of(&class, key)?;
                            h.list_entries_hidden(
                                self,
                                class.id,
                                &id,
                                prop.id,
                                items.len(),
                                &removed,
                            )?;
                        }
                        self.overlay.set_list(class.id, prop.id, key, kept);
                    }
                } else if let Value::Link(l) = self.view().get(&class, &prop, key)? {
                    if deleted.contains(&l.key) {
                        let base = &self.base;
                        self.log
                            .modified(class.id, key, prop.id, || first_new_key(base, class.id));
                        self.overlay
                            .set_value(&self.base, class.id, &prop, key, Value::Null)?;
                    }
                }
            }
        }
        Ok(())
    }

    // ----- replay -----

    fn class_named(&self, name: &str) -> Result<ClassRef> {
        ClassRef::by_name(self.catalog_arc(), name)
    }

    fn resolve(&mut self, class: &str, id: &GlobalId) -> Result<(ClassRef, u64)> {
        let info = self.class_named(class)?;
        let key = self.find_by_gid(&info, id)?.ok_or_else(|| {
            Error::new(
                ErrorCode::ObjectDeleted,
                format!("changeset names {class} object {id}, which does not exist"),
            )
        })?;
        Ok((info, key))
    }

    fn value_from_change(
        &self,
        class: &ClassInfo,
        prop: &str,
        value: &ChangeValue,
    ) -> Result<(u32, Value)> {
        let prop = class.require_prop(prop)?;
        let v = match value {
            ChangeValue::Value(v) => v.clone(),
            ChangeValue::Link(id) => {
                let target = self.catalog().class_by_id_required(prop.link_class())?;
                match self.find_by_gid(target, id)? {
                    Some(key) => Value::Link(ObjLink {
                        class_id: target.id,
                        key,
                    }),
                    None => Value::Null,
                }
            }
        };
        Ok((prop.id, v))
    }

    /// Applies one instruction of a changeset (recording it again in this transaction).
    pub(crate) fn apply(&mut self, ins: &Instruction) -> Result<()> {
        self.with_hooks(|w, h| w.apply_in(h, ins))
    }

    /// [`apply`](Self::apply) with these hooks.
    pub(crate) fn apply_in(&mut self, h: &mut dyn WriteHooks, ins: &Instruction) -> Result<()> {
        if let Some(change) = SchemaChange::of_instruction(ins) {
            return self.apply_schema_change(&change);
        }
        match ins {
            Instruction::AddClass { .. }
            | Instruction::AddProperty { .. }
            | Instruction::SetPrimaryKey { .. }
            | Instruction::SetPropertyFlags { .. }
            | Instruction::EraseClass { .. }
            | Instruction::EraseProperty { .. } => Ok(()), // schema: applied above
            Instruction::CreateObject { class, id } => {
                let info = self.class_named(class)?;
                self.ensure_object(info.id, id).map(|_| ())
            }
            Instruction::EraseObject { class, id } => {
                let info = self.class_named(class)?;
                match self.find_by_gid(&info, id)? {
                    Some(key) => self.delete_objects_in(h, info.id, &[key]),
                    None => Ok(()),
                }
            }
            Instruction::Set {
                class,
                id,
                prop,
                value,
            } => {
                let (info, key) = self.resolve(class, id)?;
                let (prop_id, v) = self.value_from_change(&info, prop, value)?;
                if info.pk == Some(prop_id) {
                    return Ok(());
                }
                self.set(info.id, key, prop_id, v)
            }
            Instruction::AddInt {
                class,
                id,
                prop,
                delta,
            } => {
                let (info, key) = self.resolve(class, id)?;
                let prop_id = info.require_prop(prop)?.id;
                self.add_int(info.id, key, prop_id, *delta)
            }
            Instruction::ListInsert {
                class,
                id,
                prop,
                index,
                value,
            }
            | Instruction::ListSet {
                class,
                id,
                prop,
                index,
                value,
            } => {
                let (info, key) = self.resolve(class, id)?;
                let (prop_id, v) = self.value_from_change(&info, prop, value)?;
                let op = if matches!(ins, Instruction::ListInsert { .. }) {
                    ListOp::Insert(*index, v)
                } else {
                    ListOp::Set(*index, v)
                };
                self.list_op_in(h, info.id, key, prop_id, op)
            }
            Instruction::ListErase {
                class,
                id,
                prop,
                index,
            } => {
                let (info, key) = self.resolve(class, id)?;
                let prop_id = info.require_prop(prop)?.id;
                self.list_op_in(h, info.id, key, prop_id, ListOp::Erase(*index))
            }
            Instruction::ListMove {
                class,
                id,
                prop,
                from,
                to,
            } => {
                let (info, key) = self.resolve(class, id)?;
                let prop_id = info.require_prop(prop)?.id;
                self.list_op_in(h, info.id, key, prop_id, ListOp::Move(*from, *to))
            }
            Instruction::ListClear { class, id, prop } => {
                let (info, key) = self.resolve(class, id)?;
                let prop_id = info.require_prop(prop)?.id;
                self.list_op_in(h, info.id, key, prop_id, ListOp::Clear)
            }
            Instruction::ListInsertAfter { .. }
            | Instruction::ListEraseElement { .. }
            | Instruction::ListSetElement { .. } => Err(Error::invalid(
                "element-addressed list instructions apply only through integrate_changeset",
            )),
        }
    }
}

/// One list mutation.
pub(crate) enum ListOp {
    Insert(u64, Value),
    Set(u64, Value),
    Erase(u64),
    Move(u64, u64),
    Clear,
}

/// An index of the snapshot, borrowed apart from the overlay so both can be used at once.
fn index_of(base: &Snapshot, class: u32, prop: u32) -> crate::store::index::IndexAccess<'_> {
    crate::store::index::IndexAccess {
        snap: base,
        prefix: tables::index_prefix(class, prop),
    }
}

/// The hidden global-id property of classes without a primary key.
pub(crate) fn gid_prop() -> &'static PropInfo {
    static GID: std::sync::LazyLock<PropInfo> = std::sync::LazyLock::new(|| PropInfo {
        id: GID_PROP,
        name: "__gid".into(),
        ty: PropertyType::Binary,
        flags: PropertyFlags::NONE,
        target: None,
    });
    &GID
}

fn pk_to_gid(class: &ClassInfo, pk: &PropInfo, value: &Value) -> Result<GlobalId> {
    match (pk.ty, value) {
        (PropertyType::Int, Value::Int(i)) => Ok(GlobalId::Int(*i)),
        (PropertyType::String, Value::String(s)) => Ok(GlobalId::String(s.clone())),
        (_, v) => Err(Error::wrong_type(format!(
            "primary key '{}.{}' is {}, not {}",
            class.name,
            pk.name,
            pk.ty.name(),
            v.type_name()
        ))),
    }
}

/// The global id of object `key`, read from its primary key or hidden id column.
pub(crate) fn gid_of(view: View<'_>, class: &ClassInfo, key: u64) -> Result<GlobalId> {
    match class.pk_prop() {
        Some(p) => match view.get(class, p, key)? {
            Value::Int(i) => Ok(GlobalId::Int(i)),
            Value::String(s) => Ok(GlobalId::String(s)),
            _ => Err(Error::new(
                ErrorCode::ObjectDeleted,
                format!("the {} object was deleted", class.name),
            )),
        },
        None => match view.get(class, gid_prop(), key)? {
            Value::Binary(b) => {
                GlobalId::from_generated_bytes(&b).ok_or_else(|| Error::internal("bad stored id"))
            }
            _ => Err(Error::new(
                ErrorCode::ObjectDeleted,
                format!("the {} object was deleted", class.name),
            )),
        },
    }
}

/// The live object of `class` with global id `id`.
pub(crate) fn find_by_gid(view: View<'_>, class: &ClassInfo, id: &GlobalId) -> Result<Option<u64>> {
    let (prop, value) = match (class.pk_prop(), id) {
        (Some(p), GlobalId::Int(i)) => (p, Value::Int(*i)),
        (Some(p), GlobalId::String(s)) => (p, Value::String(s.clone())),
        (None, GlobalId::Generated { file, seq }) => (
            gid_prop(),
            Value::Binary(GlobalId::generated_bytes(*file, *seq)),
        ),
        _ => return Ok(None),
    };
    find_by_value(view, class, prop, &value)
}

/// The first live object whose indexed `prop` equals `value`.
pub(crate) fn find_by_value(
    view: View<'_>,
    class: &ClassInfo,
    prop: &PropInfo,
    value: &Value,
) -> Result<Option<u64>> {
    let (candidates, exact) = view.index_lookup(class.id, prop.id, value.as_ref())?;
    for key in candidates {
        if exact || view.get(class, prop, key)? == *value {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

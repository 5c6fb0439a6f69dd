//! The catalog: a file's schema with the stable numeric ids that storage keys use.
//!
//! Class and property ids are assigned once, when the class or property is added, and never
//! reused in that file, so a key written for a dropped property can never be read as another.
//! The catalog is stored as JSON under the meta key `catalog`:
//! `{"next_class_id":N,"classes":[{"id":..,"name":..,"pk":prop_id|null,"next_prop_id":..,
//! "props":[{"id":..,"name":..,"type":"int","flags":bits,"target":class_id|null}]}]}`.

use crate::error::{Error, ErrorCode, Result};
use crate::schema::{PropertyFlags, Schema};
use crate::value::PropertyType;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

/// Reserved property id of the per-chunk liveness bitmap of a class.
pub(crate) const LIVE_PROP: u32 = u32::MAX;
/// Reserved property id of the hidden global-id column (classes without a primary key) and of
/// the global-id index.
pub(crate) const GID_PROP: u32 = u32::MAX - 1;
/// Reserved property id under which chunk 0 holds a class's `(next object key, live count)`.
pub(crate) const STATE_PROP: u32 = u32::MAX - 2;

/// One property as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PropInfo {
    pub id: u32,
    pub name: String,
    pub ty: PropertyType,
    pub flags: PropertyFlags,
    /// Target class id of links.
    pub target: Option<u32>,
}

impl PropInfo {
    pub(crate) fn is_list(&self) -> bool {
        self.flags.contains(PropertyFlags::LIST)
    }
    pub(crate) fn is_nullable(&self) -> bool {
        self.flags.contains(PropertyFlags::NULLABLE)
            || (self.ty == PropertyType::Link && !self.is_list())
    }
    pub(crate) fn is_indexed(&self) -> bool {
        self.flags.contains(PropertyFlags::INDEXED)
    }
    pub(crate) fn link_class(&self) -> u32 {
        self.target.unwrap_or(0)
    }
}

/// One class as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassInfo {
    pub id: u32,
    pub name: String,
    /// Property id of the primary key.
    pub pk: Option<u32>,
    pub props: Vec<PropInfo>,
    pub next_prop_id: u32,
}

impl ClassInfo {
    pub(crate) fn prop(&self, name: &str) -> Option<&PropInfo> {
        self.props.iter().find(|p| p.name == name)
    }
    pub(crate) fn prop_by_id(&self, id: u32) -> Option<&PropInfo> {
        self.props.iter().find(|p| p.id == id)
    }
    pub(crate) fn pk_prop(&self) -> Option<&PropInfo> {
        self.pk.and_then(|id| self.prop_by_id(id))
    }
    pub(crate) fn require_prop(&self, name: &str) -> Result<&PropInfo> {
        self.prop(name)
            .ok_or_else(|| Error::no_such_property(&self.name, name))
    }
}

/// A class of a shared catalog, held without copying it (the hot write paths look classes up
/// on every call).
#[derive(Clone)]
pub(crate) struct ClassRef {
    catalog: Arc<Catalog>,
    index: usize,
}

impl ClassRef {
    /// The class with id `id` of `catalog`.
    pub(crate) fn by_id(catalog: Arc<Catalog>, id: u32) -> Result<ClassRef> {
        let index = catalog
            .classes
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::NoSuchClass,
                    format!("class id {id} is not in the schema"),
                )
            })?;
        Ok(ClassRef { catalog, index })
    }

    /// The class named `name` of `catalog`.
    pub(crate) fn by_name(catalog: Arc<Catalog>, name: &str) -> Result<ClassRef> {
        let index = *catalog
            .by_name
            .get(name)
            .ok_or_else(|| Error::no_such_class(name))?;
        Ok(ClassRef { catalog, index })
    }
}

impl std::ops::Deref for ClassRef {
    type Target = ClassInfo;
    fn deref(&self) -> &ClassInfo {
        &self.catalog.classes[self.index]
    }
}

/// All classes of a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Catalog {
    pub classes: Vec<ClassInfo>,
    pub next_class_id: u32,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    pub(crate) fn new() -> Catalog {
        Catalog {
            classes: Vec::new(),
            next_class_id: 1,
            by_name: HashMap::new(),
        }
    }

    fn reindex(&mut self) {
        self.by_name = self
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
    }

    pub(crate) fn class(&self, name: &str) -> Option<&ClassInfo> {
        self.by_name.get(name).map(|&i| &self.classes[i])
    }

    pub(crate) fn require_class(&self, name: &str) -> Result<&ClassInfo> {
        self.class(name).ok_or_else(|| Error::no_such_class(name))
    }

    pub(crate) fn class_by_id(&self, id: u32) -> Option<&ClassInfo> {
        self.classes.iter().find(|c| c.id == id)
    }

    pub(crate) fn class_by_id_required(&self, id: u32) -> Result<&ClassInfo> {
        self.class_by_id(id).ok_or_else(|| {
            Error::new(
                ErrorCode::NoSuchClass,
                format!("class id {id} is not in the schema"),
            )
        })
    }

    /// The user-facing schema.
    pub(crate) fn to_schema(&self) -> Schema {
        let mut schema = Schema::new();
        for c in &self.classes {
            let pk = c.pk_prop().map(|p| p.name.as_str());
            schema
                .add_class(&c.name, pk)
                .expect("catalog names are valid");
            for p in &c.props {
                let target = p
                    .target
                    .and_then(|t| self.class_by_id(t))
                    .map(|t| t.name.as_str());
                schema
                    .add_property(&c.name, &p.name, p.ty, p.flags, target)
                    .expect("catalog properties are valid");
            }
        }
        schema
    }

    /// Adds a class (no properties yet); a class of that name must not exist.
    pub(crate) fn add_class(&mut self, name: &str) -> u32 {
        let id = self.next_class_id;
        self.next_class_id += 1;
        self.classes.push(ClassInfo {
            id,
            name: name.to_owned(),
            pk: None,
            props: Vec::new(),
            next_prop_id: 1,
        });
        self.reindex();
        id
    }

    /// Adds a property to an existing class; returns its id.
    pub(crate) fn add_property(
        &mut self,
        class: &str,
        name: &str,
        ty: PropertyType,
        flags: PropertyFlags,
        target: Option<&str>,
    ) -> Result<u32> {
        let target = match target {
            Some(t) => Some(self.require_class(t)?.id),
            None => None,
        };
        let idx = *self
            .by_name
            .get(class)
            .ok_or_else(|| Error::no_such_class(class))?;
        let c = &mut self.classes[idx];
        let id = c.next_prop_id;
        c.next_prop_id += 1;
        c.props.push(PropInfo {
            id,
            name: name.to_owned(),
            ty,
            flags,
            target,
        });
        Ok(id)
    }

    pub(crate) fn set_primary_key(&mut self, class: &str, prop: Option<&str>) -> Result<()> {
        let idx = *self
            .by_name
            .get(class)
            .ok_or_else(|| Error::no_such_class(class))?;
        let id = match prop {
            Some(p) => Some(self.classes[idx].require_prop(p)?.id),
            None => None,
        };
        self.classes[idx].pk = id;
        Ok(())
    }

    pub(crate) fn set_flags(
        &mut self,
        class: &str,
        prop: &str,
        flags: PropertyFlags,
    ) -> Result<()> {
        let idx = *self
            .by_name
            .get(class)
            .ok_or_else(|| Error::no_such_class(class))?;
        let c = &mut self.classes[idx];
        let p = c
            .props
            .iter_mut()
            .find(|p| p.name == prop)
            .ok_or_else(|| Error::no_such_property(class, prop))?;
        p.flags = flags;
        Ok(())
    }

    pub(crate) fn remove_class(&mut self, name: &str) {
        self.classes.retain(|c| c.name != name);
        self.reindex();
    }

    pub(crate) fn remove_property(&mut self, class: &str, prop: &str) {
        if let Some(&idx) = self.by_name.get(class) {
            let c = &mut self.classes[idx];
            if c.prop(prop).map(|p| Some(p.id)) == Some(c.pk) {
                c.pk = None;
            }
            c.props.retain(|p| p.name != prop);
        }
    }

    pub(crate) fn to_json(&self) -> String {
        let classes: Vec<Json> = self
            .classes
            .iter()
            .map(|c| {
                let props: Vec<Json> = c
                    .props
                    .iter()
                    .map(|p| json!({"id": p.id, "name": p.name, "type": p.ty.name(), "flags": p.flags.bits(), "target": p.target}))
                    .collect();
                json!({"id": c.id, "name": c.name, "pk": c.pk, "next_prop_id": c.next_prop_id, "props": props})
            })
            .collect();
        json!({"next_class_id": self.next_class_id, "classes": classes}).to_string()
    }

    pub(crate) fn from_json(text: &[u8]) -> Result<Catalog> {
        let bad = || {
            Error::new(
                ErrorCode::IncompatibleFile,
                "the realm file's catalog is corrupt",
            )
        };
        let doc: Json = serde_json::from_slice(text).map_err(|_| bad())?;
        let u32_of = |v: &Json| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(bad)
        };
        let mut cat = Catalog::new();
        cat.next_class_id = u32_of(&doc["next_class_id"])?;
        for c in doc["classes"].as_array().ok_or_else(bad)? {
            let mut props = Vec::new();
            for p in c["props"].as_array().ok_or_else(bad)? {
                props.push(PropInfo {
                    id: u32_of(&p["id"])?,
                    name: p["name"].as_str().ok_or_else(bad)?.to_owned(),
                    ty: p["type"]
                        .as_str()
                        .and_then(PropertyType::from_name)
                        .ok_or_else(bad)?,
                    flags: PropertyFlags::from_bits(u32_of(&p["flags"])?).map_err(|_| bad())?,
                    target: if p["target"].is_null() {
                        None
                    } else {
                        Some(u32_of(&p["target"])?)
                    },
                });
            }
            cat.classes.push(ClassInfo {
                id: u32_of(&c["id"])?,
                name: c["name"].as_str().ok_or_else(bad)?.to_owned(),
                pk: if c["pk"].is_null() {
                    None
                } else {
                    Some(u32_of(&c["pk"])?)
                },
                next_prop_id: u32_of(&c["next_prop_id"])?,
                props,
            });
        }
        cat.reindex();
        Ok(cat)
    }
}

/// One difference between a file's schema and a wanted schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SchemaChange {
    AddClass {
        name: String,
    },
    AddProperty {
        class: String,
        name: String,
        ty: PropertyType,
        flags: PropertyFlags,
        target: Option<String>,
    },
    /// Only the NULLABLE/INDEXED flags of a property change; its values stay.
    SetFlags {
        class: String,
        name: String,
        flags: PropertyFlags,
    },
    /// A new class's key, or a changed key of an existing class (`None`: no key any more).
    SetPrimaryKey {
        class: String,
        prop: Option<String>,
    },
    RemoveProperty {
        class: String,
        name: String,
    },
    RemoveClass {
        name: String,
    },
}

impl SchemaChange {
    /// The schema change a changeset instruction makes, if it is one.
    pub(crate) fn of_instruction(ins: &crate::history::Instruction) -> Option<SchemaChange> {
        use crate::history::Instruction as I;
        Some(match ins {
            I::AddClass { name } => SchemaChange::AddClass { name: name.clone() },
            I::AddProperty {
                class,
                name,
                ty,
                flags,
                target,
            } => SchemaChange::AddProperty {
                class: class.clone(),
                name: name.clone(),
                ty: *ty,
                flags: *flags,
                target: target.clone(),
            },
            I::SetPrimaryKey { class, prop } => SchemaChange::SetPrimaryKey {
                class: class.clone(),
                prop: prop.clone(),
            },
            I::SetPropertyFlags { class, name, flags } => SchemaChange::SetFlags {
                class: class.clone(),
                name: name.clone(),
                flags: *flags,
            },
            I::EraseClass { class } => SchemaChange::RemoveClass {
                name: class.clone(),
            },
            I::EraseProperty { class, name } => SchemaChange::RemoveProperty {
                class: class.clone(),
                name: name.clone(),
            },
            _ => return None,
        })
    }

    /// The rule of synced realms' schemas (Realm's additive rule): a class or property may be
    /// added (`apply_schema_change` then checks it as `Schema` would), and a class that is
    /// new may get its primary key; nothing is removed, no flag changes, no existing class
    /// gets another key. `before` is the schema before the changes (the file's at open; the
    /// realm's before the changeset, in strict integration), `now` the one this change
    /// applies to: naming the primary key a class already has changes nothing and passes.
    /// Opening a synced realm and a server's strict integration both apply it.
    ///
    /// Fails with `InvalidArgument`.
    pub(crate) fn check_additive(&self, before: &Catalog, now: &Catalog) -> crate::Result<()> {
        let allowed = match self {
            SchemaChange::AddClass { .. } | SchemaChange::AddProperty { .. } => true,
            SchemaChange::SetPrimaryKey { class, prop } => {
                before.class(class).is_none()
                    || now
                        .class(class)
                        .is_some_and(|c| c.pk_prop().map(|p| p.name.as_str()) == prop.as_deref())
            }
            SchemaChange::SetFlags { .. }
            | SchemaChange::RemoveProperty { .. }
            | SchemaChange::RemoveClass { .. } => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(crate::Error::invalid(format!(
                "synced realms only allow additive schema changes, not {self:?}"
            )))
        }
    }
}

/// The changes that turn a file's schema into a wanted one, split so that a migration can run
/// between them and still read the old properties.
#[derive(Debug, Default)]
pub(crate) struct SchemaDiff {
    /// Additions, and the removal of properties that are re-added with another type.
    pub(crate) first: Vec<SchemaChange>,
    /// Properties and classes that the wanted schema no longer has.
    pub(crate) last: Vec<SchemaChange>,
}

impl SchemaDiff {
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_empty() && self.last.is_empty()
    }
}

/// The changes that turn the file's schema into `wanted`. A property whose type or flags
/// changed is removed and re-added.
pub(crate) fn diff(current: &Catalog, wanted: &Schema) -> SchemaDiff {
    let mut new_classes = Vec::new();
    let mut adds = Vec::new();
    let mut key_changes = Vec::new();
    let mut removes = Vec::new();
    for class in wanted.classes() {
        let existing = current.class(&class.name);
        if existing.is_none() {
            // Classes come before every property so that links can name any of them.
            new_classes.push(SchemaChange::AddClass {
                name: class.name.clone(),
            });
        }
        for p in &class.properties {
            let same = existing.and_then(|c| c.prop(&p.name)).is_some_and(|old| {
                old.ty == p.ty
                    && old.flags == p.flags
                    && old
                        .target
                        .and_then(|t| current.class_by_id(t))
                        .map(|t| &t.name)
                        == p.target.as_ref()
            });
            let flags_only = existing.and_then(|c| c.prop(&p.name)).is_some_and(|old| {
                const VALUE_FLAGS: u32 =
                    PropertyFlags::NULLABLE.bits() | PropertyFlags::INDEXED.bits();
                old.ty == p.ty
                    && (old.flags.bits() & !VALUE_FLAGS) == (p.flags.bits() & !VALUE_FLAGS)
                    && old
                        .target
                        .and_then(|t| current.class_by_id(t))
                        .map(|t| &t.name)
                        == p.target.as_ref()
                    && (old.ty != PropertyType::Link || old.is_list())
            });
            if !same && flags_only {
                adds.push(SchemaChange::SetFlags {
                    class: class.name.clone(),
                    name: p.name.clone(),
                    flags: p.flags,
                });
            } else if !same {
                if existing.and_then(|c| c.prop(&p.name)).is_some() {
                    removes.push(SchemaChange::RemoveProperty {
                        class: class.name.clone(),
                        name: p.name.clone(),
                    });
                }
                adds.push(SchemaChange::AddProperty {
                    class: class.name.clone(),
                    name: p.name.clone(),
                    ty: p.ty,
                    flags: p.flags,
                    target: p.target.clone(),
                });
            }
        }
        let old_pk = existing.and_then(|c| c.pk_prop()).map(|p| p.name.clone());
        if old_pk != class.primary_key {
            let change = SchemaChange::SetPrimaryKey {
                class: class.name.clone(),
                prop: class.primary_key.clone(),
            };
            // A new class gets its key with its properties; an existing class's key changes
            // after the migration, which may first have to make the new key's values unique.
            if existing.is_some() {
                key_changes.push(change);
            } else {
                adds.push(change);
            }
        }
        if let Some(c) = existing {
            for old in &c.props {
                if class.property(&old.name).is_none() {
                    removes.push(SchemaChange::RemoveProperty {
                        class: class.name.clone(),
                        name: old.name.clone(),
                    });
                }
            }
        }
    }
    for c in &current.classes {
        if wanted.class(&c.name).is_none() {
            removes.push(SchemaChange::RemoveClass {
                name: c.name.clone(),
            });
        }
    }
    // A re-added property must be removed before it is added again.
    let (retyped, pure_removes): (Vec<_>, Vec<_>) = removes.into_iter().partition(|r| match r {
        SchemaChange::RemoveProperty { class, name } => adds.iter().any(
            |a| matches!(a, SchemaChange::AddProperty { class: c, name: n, .. } if c == class && n == name),
        ),
        _ => false,
    });
    SchemaDiff {
        first: retyped.into_iter().chain(new_classes).chain(adds).collect(),
        last: key_changes.into_iter().chain(pure_removes).collect(),
    }
}

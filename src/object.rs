//! [`Object`]: one object of a realm, and [`List`]: one of its list properties.

use crate::db::Realm;
use crate::error::{Error, ErrorCode, Result};
use crate::history::GlobalId;
use crate::store::catalog::{ClassInfo, PropInfo};
use crate::store::view::View;
use crate::store::write::{self, ListOp};
use crate::value::{ObjLink, Value};

/// The object entry points of a realm handle.
impl Realm {
    /// Creates an object. Classes with a primary key need `Some(key)`; others `None`.
    /// Required properties start at their type's zero value, nullable ones at NULL.
    ///
    /// Fails with `NotInWriteTransaction`, `NoSuchClass`, `DuplicatePrimaryKey`, `WrongType`.
    pub fn create_object(&self, class: &str, primary_key: Option<&Value>) -> Result<Object> {
        let class_id = self.class_id(class)?;
        let key = self.with_write(|w| w.create_object(class_id, primary_key))?;
        Ok(Object::new(self.clone(), class_id, key))
    }

    /// The object of `class` with this primary key, if it exists.
    pub fn find_object(&self, class: &str, primary_key: &Value) -> Result<Option<Object>> {
        let found = self.with_view(|v| {
            let info = v.catalog().require_class(class)?;
            let Some(pk) = info.pk_prop() else {
                return Err(Error::invalid(format!(
                    "class '{class}' has no primary key"
                )));
            };
            if primary_key.property_type() != Some(pk.ty) {
                return Err(Error::wrong_type(format!(
                    "primary key '{class}.{}' is {}, not {}",
                    pk.name,
                    pk.ty.name(),
                    primary_key.type_name()
                )));
            }
            Ok(write::find_by_value(v, info, pk, primary_key)?.map(|k| (info.id, k)))
        })?;
        Ok(found.map(|(class_id, k)| Object::new(self.clone(), class_id, k)))
    }

    /// The object with this global id, if it exists.
    pub fn find_by_global_id(&self, class: &str, id: &GlobalId) -> Result<Option<Object>> {
        let (class_id, key) = self.with_view(|v| {
            let info = v.catalog().require_class(class)?;
            Ok((info.id, write::find_by_gid(v, info, id)?))
        })?;
        Ok(key.map(|k| Object::new(self.clone(), class_id, k)))
    }

    /// A key for fast repeated access to one property.
    pub fn property_key(&self, class: &str, property: &str) -> Result<PropertyKey> {
        self.with_view(|v| {
            let info = v.catalog().require_class(class)?;
            let prop = info.require_prop(property)?;
            Ok(PropertyKey {
                class_id: info.id,
                prop_id: prop.id,
            })
        })
    }
}

/// A property resolved once for fast repeated access (`_by_key` calls). It stays valid while
/// the property exists in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PropertyKey {
    pub(crate) class_id: u32,
    pub(crate) prop_id: u32,
}

/// An object in a realm. It reads and writes through its realm handle, so it sees what the
/// handle sees; after the object is deleted every access fails with `ObjectDeleted`.
#[derive(Clone, Debug)]
pub struct Object {
    realm: Realm,
    class_id: u32,
    key: u64,
}

fn deleted(class: &ClassInfo) -> Error {
    Error::new(
        ErrorCode::ObjectDeleted,
        format!("the {} object was deleted", class.name),
    )
}

impl Object {
    pub(crate) fn new(realm: Realm, class_id: u32, key: u64) -> Object {
        Object {
            realm,
            class_id,
            key,
        }
    }

    pub(crate) fn class_id(&self) -> u32 {
        self.class_id
    }

    /// The realm this object belongs to.
    pub fn realm(&self) -> &Realm {
        &self.realm
    }

    /// The object's key inside its class (stable for the object's life in this file).
    pub fn key(&self) -> u64 {
        self.key
    }

    /// A link value pointing at this object, for [`set`](Self::set) and list inserts.
    pub fn link(&self) -> Value {
        Value::Link(ObjLink {
            class_id: self.class_id,
            key: self.key,
        })
    }

    /// The class name.
    pub fn class_name(&self) -> Result<String> {
        self.realm.with_view(|v| {
            Ok(v.catalog()
                .class_by_id_required(self.class_id)?
                .name
                .clone())
        })
    }

    /// Whether the object still exists in what the realm handle sees.
    pub fn is_valid(&self) -> bool {
        self.realm
            .with_view(|v| v.is_live(self.class_id, self.key))
            .unwrap_or(false)
    }

    /// The object's device-independent id.
    pub fn global_id(&self) -> Result<GlobalId> {
        self.with_class(|v, class| write::gid_of(v, class, self.key))
    }

    fn with_class<R>(&self, f: impl FnOnce(View<'_>, &ClassInfo) -> Result<R>) -> Result<R> {
        self.realm.with_view(|v| {
            let class = v.catalog().class_by_id_required(self.class_id)?;
            if !v.is_live(self.class_id, self.key)? {
                return Err(deleted(class));
            }
            f(v, class)
        })
    }

    fn read(&self, v: View<'_>, class: &ClassInfo, prop: &PropInfo) -> Result<Value> {
        if prop.is_list() {
            return Err(Error::wrong_type(format!(
                "'{}.{}' is a list; use list()",
                class.name, prop.name
            )));
        }
        let value = v.get(class, prop, self.key)?;
        Ok(write::or_default(value.as_ref(), prop).to_owned())
    }

    /// The value of a scalar property (a link reads as [`Value::Link`] or NULL).
    ///
    /// Fails with `NoSuchProperty`, `ObjectDeleted`, `WrongType` for a list property.
    pub fn get(&self, property: &str) -> Result<Value> {
        self.with_class(|v, class| self.read(v, class, class.require_prop(property)?))
    }

    /// Like [`get`](Self::get) with a [`PropertyKey`].
    pub fn get_by_key(&self, key: PropertyKey) -> Result<Value> {
        if key.class_id != self.class_id {
            return Err(Error::invalid("the property key belongs to another class"));
        }
        self.realm.with_view(|v| {
            let class = v.catalog().class_by_id_required(self.class_id)?;
            let prop = class.prop_by_id(key.prop_id).ok_or_else(|| {
                Error::new(ErrorCode::NoSuchProperty, "the property no longer exists")
            })?;
            if prop.is_list() {
                return self.read(v, class, prop);
            }
            // Deleting an object clears every slot of its row, so a stored non-NULL value
            // proves the object is live; only a NULL needs the liveness bitmap.
            let value = v.get(class, prop, self.key)?;
            if value.is_null() && !v.is_live(self.class_id, self.key)? {
                return Err(deleted(class));
            }
            Ok(write::or_default(value.as_ref(), prop).to_owned())
        })
    }

    /// The object a link property points to, if any.
    pub fn get_link(&self, property: &str) -> Result<Option<Object>> {
        match self.get(property)? {
            Value::Link(l) => Ok(Some(Object::new(self.realm.clone(), l.class_id, l.key))),
            Value::Null => Ok(None),
            other => Err(Error::wrong_type(format!(
                "'{property}' is not a link but {}",
                other.type_name()
            ))),
        }
    }

    fn prop_id(&self, property: &str) -> Result<u32> {
        self.realm.with_view(|v| {
            Ok(v.catalog()
                .class_by_id_required(self.class_id)?
                .require_prop(property)?
                .id)
        })
    }

    /// Sets a scalar property. Needs a write transaction.
    ///
    /// Fails with `NotInWriteTransaction`, `NoSuchProperty`, `WrongType` (including NULL for a
    /// required property), `ObjectDeleted`, `InvalidArgument` for the primary key.
    pub fn set(&self, property: &str, value: impl Into<Value>) -> Result<()> {
        let prop = self.prop_id(property)?;
        self.realm
            .with_write(|w| w.set(self.class_id, self.key, prop, value.into()))
    }

    /// Like [`set`](Self::set) with a [`PropertyKey`].
    pub fn set_by_key(&self, key: PropertyKey, value: impl Into<Value>) -> Result<()> {
        if key.class_id != self.class_id {
            return Err(Error::invalid("the property key belongs to another class"));
        }
        self.realm
            .with_write(|w| w.set(self.class_id, self.key, key.prop_id, value.into()))
    }

    /// Adds `delta` to an INT property; concurrent additions from other devices add up.
    pub fn add_int(&self, property: &str, delta: i64) -> Result<()> {
        let prop = self.prop_id(property)?;
        self.realm
            .with_write(|w| w.add_int(self.class_id, self.key, prop, delta))
    }

    /// Deletes the object: links to it become NULL, list entries naming it vanish.
    pub fn delete(&self) -> Result<()> {
        self.realm.with_write(|w| {
            if !w.view().is_live(self.class_id, self.key)? {
                return Err(deleted(w.catalog().class_by_id_required(self.class_id)?));
            }
            w.delete_objects(self.class_id, &[self.key])
        })
    }

    /// A list property of this object.
    pub fn list(&self, property: &str) -> Result<List> {
        let prop_id = self.with_class(|_, class| {
            let prop = class.require_prop(property)?;
            if !prop.is_list() {
                return Err(Error::wrong_type(format!(
                    "'{}.{property}' is not a list",
                    class.name
                )));
            }
            Ok(prop.id)
        })?;
        Ok(List {
            object: self.clone(),
            prop_id,
        })
    }
}

/// A list property of one object. Reads and writes go through the object's realm handle.
#[derive(Clone, Debug)]
pub struct List {
    object: Object,
    prop_id: u32,
}

impl List {
    fn with_prop<R>(
        &self,
        f: impl FnOnce(View<'_>, &ClassInfo, &PropInfo) -> Result<R>,
    ) -> Result<R> {
        self.object.with_class(|v, class| {
            let prop = class.prop_by_id(self.prop_id).ok_or_else(|| {
                Error::new(
                    ErrorCode::NoSuchProperty,
                    "the list property no longer exists",
                )
            })?;
            f(v, class, prop)
        })
    }

    pub(crate) fn prop_id(&self) -> u32 {
        self.prop_id
    }

    /// The object the list belongs to.
    pub fn object(&self) -> &Object {
        &self.object
    }

    /// The number of elements.
    pub fn len(&self) -> Result<usize> {
        self.with_prop(|v, class, prop| v.list_len(class.id, prop, self.object.key))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The element at `index` (a link element reads as [`Value::Link`]).
    pub fn get(&self, index: usize) -> Result<Value> {
        self.with_prop(|v, class, prop| {
            let items = v.list(class.id, prop, self.object.key)?;
            items.get(index).cloned().ok_or_else(|| {
                Error::new(
                    ErrorCode::IndexOutOfBounds,
                    format!(
                        "index {index} is out of bounds for a list of {}",
                        items.len()
                    ),
                )
            })
        })
    }

    /// Every element.
    pub fn to_vec(&self) -> Result<Vec<Value>> {
        self.with_prop(|v, class, prop| v.list(class.id, prop, self.object.key))
    }

    fn op(&self, op: ListOp) -> Result<()> {
        self.object
            .realm
            .with_write(|w| w.list_op(self.object.class_id, self.object.key, self.prop_id, op))
    }

    /// Inserts before `index` (`index == len` appends).
    pub fn insert(&self, index: usize, value: impl Into<Value>) -> Result<()> {
        self.op(ListOp::Insert(index as u64, value.into()))
    }

    /// Appends.
    pub fn push(&self, value: impl Into<Value>) -> Result<()> {
        let len = self.len()?;
        self.insert(len, value)
    }

    /// Replaces the element at `index`.
    pub fn set(&self, index: usize, value: impl Into<Value>) -> Result<()> {
        self.op(ListOp::Set(index as u64, value.into()))
    }

    /// Removes the element at `index`.
    pub fn erase(&self, index: usize) -> Result<()> {
        self.op(ListOp::Erase(index as u64))
    }

    /// Moves the element at `from` so that it ends up at `to`.
    pub fn move_item(&self, from: usize, to: usize) -> Result<()> {
        self.op(ListOp::Move(from as u64, to as u64))
    }

    /// Removes every element.
    pub fn clear(&self) -> Result<()> {
        self.op(ListOp::Clear)
    }
}

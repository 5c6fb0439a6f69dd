//! Schemas: the classes of a realm and their properties, built in code or read from JSON.
//!
//! ```
//! use shoal::{Schema, PropertyType, PropertyFlags};
//! let mut schema = Schema::new();
//! schema.add_class("Person", Some("id")).unwrap();
//! schema.add_property("Person", "id", PropertyType::Int, PropertyFlags::NONE, None).unwrap();
//! schema.add_property("Person", "name", PropertyType::String, PropertyFlags::INDEXED, None).unwrap();
//! assert_eq!(Schema::from_json(&schema.to_json()).unwrap(), schema);
//! ```

use crate::error::{Error, ErrorCode, Result};
use crate::value::PropertyType;
use serde_json::{json, Map, Value as Json};

/// Modifiers of a property: a bit set of `NULLABLE`, `INDEXED` and `LIST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PropertyFlags(u32);

impl PropertyFlags {
    /// No flags: a required scalar.
    pub const NONE: PropertyFlags = PropertyFlags(0);
    /// The property may hold NULL (links always may).
    pub const NULLABLE: PropertyFlags = PropertyFlags(1);
    /// Equality queries on the property use an index.
    pub const INDEXED: PropertyFlags = PropertyFlags(2);
    /// The property is an ordered list of values of its type.
    pub const LIST: PropertyFlags = PropertyFlags(4);
    const ALL: u32 = 7;

    /// The flags from their bits; unknown bits are an error.
    pub fn from_bits(bits: u32) -> Result<PropertyFlags> {
        if bits & !Self::ALL != 0 {
            return Err(Error::invalid(format!(
                "unknown property flag bits {bits:#x}"
            )));
        }
        Ok(PropertyFlags(bits))
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag in `other` is set.
    pub fn contains(self, other: PropertyFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for PropertyFlags {
    type Output = PropertyFlags;
    fn bitor(self, rhs: PropertyFlags) -> PropertyFlags {
        PropertyFlags(self.0 | rhs.0)
    }
}

/// One property of a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The property's name, unique within its class.
    pub name: String,
    /// The value type (element type for a list).
    pub ty: PropertyType,
    /// NULLABLE, INDEXED, LIST.
    pub flags: PropertyFlags,
    /// The target class of a link or list of links.
    pub target: Option<String>,
}

impl Property {
    /// Whether the property holds a list.
    pub fn is_list(&self) -> bool {
        self.flags.contains(PropertyFlags::LIST)
    }

    /// Whether the property (or, for a list, each element) may be NULL. Single links always may.
    pub fn is_nullable(&self) -> bool {
        self.flags.contains(PropertyFlags::NULLABLE)
            || (self.ty == PropertyType::Link && !self.is_list())
    }

    /// Whether equality lookups on the property use an index.
    pub fn is_indexed(&self) -> bool {
        self.flags.contains(PropertyFlags::INDEXED)
    }
}

/// One class: a name, an optional primary key and its properties in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSchema {
    /// The class name, unique in the schema.
    pub name: String,
    /// The name of the primary-key property (INT or STRING), if any.
    pub primary_key: Option<String>,
    /// The properties.
    pub properties: Vec<Property>,
}

impl ObjectSchema {
    /// The property with this name.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// A set of classes. Order is kept for display; equality ignores it.
#[derive(Debug, Clone, Default, Eq)]
pub struct Schema {
    classes: Vec<ObjectSchema>,
}

impl PartialEq for Schema {
    fn eq(&self, other: &Schema) -> bool {
        self.classes.len() == other.classes.len()
            && self.classes.iter().all(|c| {
                other.class(&c.name).is_some_and(|o| {
                    o.primary_key == c.primary_key
                        && o.properties.len() == c.properties.len()
                        && c.properties.iter().all(|p| o.property(&p.name) == Some(p))
                })
            })
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("{what} name must not be empty")));
    }
    if name.starts_with("__") {
        return Err(Error::invalid(format!(
            "{what} name '{name}' is reserved: names starting with '__' belong to Shoal"
        )));
    }
    if name.len() > 63 {
        return Err(Error::invalid(format!(
            "{what} name '{name}' is longer than 63 bytes"
        )));
    }
    Ok(())
}

/// The rules for a class name ([`Schema::add_class`]).
pub(crate) fn check_class_name(name: &str) -> Result<()> {
    check_name("class", name)
}

/// The rules for one property, whatever else the class holds: its name, that links and only
/// links name a target class, which types can be indexed, and that a list of links holds no
/// NULL. [`Schema::add_property`] and the schema changes of a changeset (`store/write.rs`)
/// both apply them, so a realm never ends up with a schema this module would refuse.
///
/// Fails with `InvalidArgument`.
pub(crate) fn check_property(
    class: &str,
    name: &str,
    ty: PropertyType,
    flags: PropertyFlags,
    target: Option<&str>,
) -> Result<()> {
    check_name("property", name)?;
    match (ty, target) {
        (PropertyType::Link, None | Some("")) => {
            return Err(Error::invalid(format!(
                "link property '{class}.{name}' needs a target class"
            )))
        }
        (PropertyType::Link, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(Error::invalid(format!(
                "property '{class}.{name}' is not a link but names a target class"
            )))
        }
    }
    if flags.contains(PropertyFlags::INDEXED)
        && (flags.contains(PropertyFlags::LIST)
            || !matches!(
                ty,
                PropertyType::Bool
                    | PropertyType::Int
                    | PropertyType::String
                    | PropertyType::Timestamp
            ))
    {
        return Err(Error::invalid(format!(
            "property '{class}.{name}' of type {} cannot be indexed (only bool, int, string and timestamp scalars can)",
            ty.name()
        )));
    }
    if ty == PropertyType::Link
        && flags.contains(PropertyFlags::LIST)
        && flags.contains(PropertyFlags::NULLABLE)
    {
        return Err(Error::invalid(format!(
            "list of links '{class}.{name}' cannot hold NULL"
        )));
    }
    Ok(())
}

/// The rule for a primary key: an INT or STRING scalar. Shared as [`check_property`] is.
///
/// Fails with `InvalidArgument`.
pub(crate) fn check_primary_key(
    class: &str,
    name: &str,
    ty: PropertyType,
    flags: PropertyFlags,
) -> Result<()> {
    if flags.contains(PropertyFlags::LIST)
        || !matches!(ty, PropertyType::Int | PropertyType::String)
    {
        return Err(Error::invalid(format!(
            "primary key '{class}.{name}' must be an int or string property"
        )));
    }
    Ok(())
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Schema {
        Schema::default()
    }

    /// The classes in declaration order.
    pub fn classes(&self) -> &[ObjectSchema] {
        &self.classes
    }

    /// The class with this name.
    pub fn class(&self, name: &str) -> Option<&ObjectSchema> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// Adds a class. `primary_key` names a property added later with
    /// [`add_property`](Self::add_property); it must be INT or STRING and not a list.
    ///
    /// Fails with `InvalidArgument` if the name is empty, reserved or taken; the schema is then
    /// unchanged.
    pub fn add_class(&mut self, name: &str, primary_key: Option<&str>) -> Result<()> {
        check_class_name(name)?;
        if self.class(name).is_some() {
            return Err(Error::invalid(format!("class '{name}' is declared twice")));
        }
        if let Some(pk) = primary_key {
            check_name("primary key", pk)?;
        }
        self.classes.push(ObjectSchema {
            name: name.to_owned(),
            primary_key: primary_key.map(str::to_owned),
            properties: Vec::new(),
        });
        Ok(())
    }

    /// Adds a property to `class`. `target` names the linked class for LINK properties and must
    /// be `None` otherwise. The target class may be added later; [`validate`](Self::validate)
    /// checks it.
    ///
    /// Fails with `NoSuchClass` or `InvalidArgument`; the schema is then unchanged.
    pub fn add_property(
        &mut self,
        class: &str,
        name: &str,
        ty: PropertyType,
        flags: PropertyFlags,
        target: Option<&str>,
    ) -> Result<()> {
        check_name("property", name)?;
        let object = self
            .classes
            .iter_mut()
            .find(|c| c.name == class)
            .ok_or_else(|| Error::no_such_class(class))?;
        if object.property(name).is_some() {
            return Err(Error::invalid(format!(
                "property '{class}.{name}' is declared twice"
            )));
        }
        check_property(class, name, ty, flags, target)?;
        object.properties.push(Property {
            name: name.to_owned(),
            ty,
            flags,
            target: target.map(str::to_owned),
        });
        Ok(())
    }

    /// Checks the whole schema: primary keys exist and are INT or STRING scalars, link targets
    /// exist. Called by [`Config`](crate::Config) before a realm opens.
    pub fn validate(&self) -> Result<()> {
        for class in &self.classes {
            if let Some(pk) = &class.primary_key {
                let prop = class.property(pk).ok_or_else(|| {
                    Error::invalid(format!(
                        "primary key '{pk}' of class '{}' is not one of its properties",
                        class.name
                    ))
                })?;
                check_primary_key(&class.name, pk, prop.ty, prop.flags)?;
            }
            for prop in &class.properties {
                if let Some(target) = &prop.target {
                    if self.class(target).is_none() {
                        return Err(Error::invalid(format!(
                            "property '{}.{}' links to class '{target}', which is not in the schema",
                            class.name, prop.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The schema as JSON:
    /// `{"classes":[{"name":..,"primary_key":..|null,"properties":[{"name":..,"type":"int",
    /// "nullable":bool,"indexed":bool,"list":bool,"target":..|null}]}]}`.
    pub fn to_json(&self) -> String {
        let classes: Vec<Json> = self
            .classes
            .iter()
            .map(|c| {
                let props: Vec<Json> = c
                    .properties
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name,
                            "type": p.ty.name(),
                            "nullable": p.flags.contains(PropertyFlags::NULLABLE),
                            "indexed": p.is_indexed(),
                            "list": p.is_list(),
                            "target": p.target,
                        })
                    })
                    .collect();
                json!({"name": c.name, "primary_key": c.primary_key, "properties": props})
            })
            .collect();
        json!({ "classes": classes }).to_string()
    }

    /// Parses the JSON form written by [`to_json`](Self::to_json). A bare array of classes is
    /// accepted too, and flags may be omitted (false). The result is validated.
    ///
    /// Fails with `Json` for malformed JSON and `InvalidArgument` for a schema that does not
    /// make sense.
    pub fn from_json(text: &str) -> Result<Schema> {
        let doc: Json = serde_json::from_str(text)
            .map_err(|e| Error::new(ErrorCode::Json, format!("schema JSON is malformed: {e}")))?;
        let classes = match &doc {
            Json::Array(items) => items,
            Json::Object(map) => map
                .get("classes")
                .and_then(Json::as_array)
                .ok_or_else(|| Error::invalid("schema JSON needs a \"classes\" array"))?,
            _ => return Err(Error::invalid("schema JSON must be an object or an array")),
        };
        let mut schema = Schema::new();
        for class in classes {
            let class = class
                .as_object()
                .ok_or_else(|| Error::invalid("each class must be a JSON object"))?;
            let name = str_field(class, "name")?
                .ok_or_else(|| Error::invalid("a class has no \"name\""))?;
            let pk = str_field(class, "primary_key")?;
            schema.add_class(name, pk)?;
            let props = match class.get("properties") {
                None | Some(Json::Null) => &[][..],
                Some(Json::Array(p)) => p.as_slice(),
                Some(_) => {
                    return Err(Error::invalid(format!(
                        "\"properties\" of class '{name}' must be an array"
                    )))
                }
            };
            for prop in props {
                let prop = prop
                    .as_object()
                    .ok_or_else(|| Error::invalid("each property must be a JSON object"))?;
                let pname = str_field(prop, "name")?.ok_or_else(|| {
                    Error::invalid(format!("a property of '{name}' has no \"name\""))
                })?;
                let tname = str_field(prop, "type")?.ok_or_else(|| {
                    Error::invalid(format!("property '{name}.{pname}' has no \"type\""))
                })?;
                let ty = PropertyType::from_name(tname).ok_or_else(|| {
                    Error::invalid(format!(
                        "property '{name}.{pname}' has unknown type '{tname}'"
                    ))
                })?;
                let mut flags = PropertyFlags::NONE;
                for (key, flag) in [
                    ("nullable", PropertyFlags::NULLABLE),
                    ("indexed", PropertyFlags::INDEXED),
                    ("list", PropertyFlags::LIST),
                ] {
                    match prop.get(key) {
                        None | Some(Json::Null) | Some(Json::Bool(false)) => {}
                        Some(Json::Bool(true)) => flags = flags | flag,
                        Some(_) => {
                            return Err(Error::invalid(format!(
                                "\"{key}\" of '{name}.{pname}' must be a boolean"
                            )))
                        }
                    }
                }
                schema.add_property(name, pname, ty, flags, str_field(prop, "target")?)?;
            }
        }
        schema.validate()?;
        Ok(schema)
    }
}

fn str_field<'a>(obj: &'a Map<String, Json>, key: &str) -> Result<Option<&'a str>> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(format!("\"{key}\" must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person_dog() -> Schema {
        let mut s = Schema::new();
        s.add_class("Person", Some("id")).unwrap();
        s.add_property("Person", "id", PropertyType::Int, PropertyFlags::NONE, None)
            .unwrap();
        s.add_property(
            "Person",
            "name",
            PropertyType::String,
            PropertyFlags::INDEXED | PropertyFlags::NULLABLE,
            None,
        )
        .unwrap();
        s.add_property(
            "Person",
            "dogs",
            PropertyType::Link,
            PropertyFlags::LIST,
            Some("Dog"),
        )
        .unwrap();
        s.add_class("Dog", None).unwrap();
        s.add_property("Dog", "age", PropertyType::Int, PropertyFlags::NONE, None)
            .unwrap();
        s
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let s = person_dog();
        s.validate().unwrap();
        let back = Schema::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.class("Person")
                .unwrap()
                .property("dogs")
                .unwrap()
                .target
                .as_deref(),
            Some("Dog")
        );
    }

    #[test]
    fn bad_schemas_are_rejected() {
        let mut s = Schema::new();
        assert_eq!(
            s.add_class("", None).unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        s.add_class("A", Some("id")).unwrap();
        assert_eq!(
            s.add_class("A", None).unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            s.add_property("B", "x", PropertyType::Int, PropertyFlags::NONE, None)
                .unwrap_err()
                .code(),
            ErrorCode::NoSuchClass
        );
        assert!(s
            .add_property("A", "l", PropertyType::Link, PropertyFlags::NONE, None)
            .is_err());
        assert!(s
            .add_property("A", "d", PropertyType::Double, PropertyFlags::INDEXED, None)
            .is_err());
        s.add_property("A", "id", PropertyType::Double, PropertyFlags::NONE, None)
            .unwrap();
        assert!(s.validate().is_err(), "double primary key must be refused");
        assert_eq!(Schema::from_json("{").unwrap_err().code(), ErrorCode::Json);
        assert!(
            Schema::from_json(r#"[{"name":"A","properties":[{"name":"x","type":"nope"}]}]"#)
                .is_err()
        );
        assert!(Schema::from_json(
            r#"[{"name":"A","properties":[{"name":"x","type":"link","target":"Z"}]}]"#
        )
        .is_err());
    }
}

//! Values stored in properties, and the property types that hold them.

use std::cmp::Ordering;
use std::fmt;

/// The type of a property (for a list property: the type of its elements).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyType {
    /// `true` / `false`.
    Bool = 0,
    /// A signed 64-bit integer.
    Int = 1,
    /// A 32-bit float.
    Float = 2,
    /// A 64-bit float.
    Double = 3,
    /// UTF-8 text.
    String = 4,
    /// Bytes.
    Binary = 5,
    /// A point in time: seconds and nanoseconds since the Unix epoch.
    Timestamp = 6,
    /// A link to an object of the property's target class.
    Link = 7,
}

impl PropertyType {
    /// The name used in schema JSON (`"int"`, `"string"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            PropertyType::Bool => "bool",
            PropertyType::Int => "int",
            PropertyType::Float => "float",
            PropertyType::Double => "double",
            PropertyType::String => "string",
            PropertyType::Binary => "binary",
            PropertyType::Timestamp => "timestamp",
            PropertyType::Link => "link",
        }
    }

    /// Parses a schema JSON type name; accepts Realm's aliases (`"date"`, `"data"`, `"object"`).
    pub fn from_name(name: &str) -> Option<PropertyType> {
        Some(match name {
            "bool" => PropertyType::Bool,
            "int" => PropertyType::Int,
            "float" => PropertyType::Float,
            "double" => PropertyType::Double,
            "string" => PropertyType::String,
            "binary" | "data" => PropertyType::Binary,
            "timestamp" | "date" => PropertyType::Timestamp,
            "link" | "object" => PropertyType::Link,
            _ => return None,
        })
    }

    /// The type with this numeric code (the C ABI's `SHOAL_PROPERTY_TYPE_*`).
    pub fn from_code(code: i32) -> Option<PropertyType> {
        Some(match code {
            0 => PropertyType::Bool,
            1 => PropertyType::Int,
            2 => PropertyType::Float,
            3 => PropertyType::Double,
            4 => PropertyType::String,
            5 => PropertyType::Binary,
            6 => PropertyType::Timestamp,
            7 => PropertyType::Link,
            _ => return None,
        })
    }

    /// Whether values of this type can be summed and averaged.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            PropertyType::Int | PropertyType::Float | PropertyType::Double
        )
    }
}

/// A point in time: seconds since the Unix epoch plus nanoseconds (`0..1_000_000_000` for
/// non-negative seconds; the sign of `nanos` follows `seconds` as in Realm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Nanoseconds added to `seconds`.
    pub nanos: i32,
}

impl Timestamp {
    /// A timestamp from its parts.
    pub fn new(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    /// The wall clock now (the epoch if the clock is before it).
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::new(
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            // Below one billion: fits an i32.
            i32::try_from(since.subsec_nanos()).unwrap_or(0),
        )
    }
}

/// A reference to an object: its class and its object key inside this realm file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjLink {
    /// The class's id in this file's schema.
    pub class_id: u32,
    /// The object's key (row) inside its class.
    pub key: u64,
}

/// A value of a property, a query argument, or a list element.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (a nullable property, an empty link).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A 32-bit float.
    Float(f32),
    /// A 64-bit float.
    Double(f64),
    /// UTF-8 text.
    String(String),
    /// Bytes.
    Binary(Vec<u8>),
    /// A point in time.
    Timestamp(Timestamp),
    /// A link to an object.
    Link(ObjLink),
}

impl Value {
    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The property type this value belongs to, `None` for NULL.
    pub fn property_type(&self) -> Option<PropertyType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => PropertyType::Bool,
            Value::Int(_) => PropertyType::Int,
            Value::Float(_) => PropertyType::Float,
            Value::Double(_) => PropertyType::Double,
            Value::String(_) => PropertyType::String,
            Value::Binary(_) => PropertyType::Binary,
            Value::Timestamp(_) => PropertyType::Timestamp,
            Value::Link(_) => PropertyType::Link,
        })
    }

    /// A short name of the value's type for error messages.
    pub fn type_name(&self) -> &'static str {
        self.property_type().map_or("null", PropertyType::name)
    }

    /// The value as a borrowed [`ValueRef`].
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Double(d) => ValueRef::Double(*d),
            Value::String(s) => ValueRef::String(s),
            Value::Binary(b) => ValueRef::Binary(b),
            Value::Timestamp(t) => ValueRef::Timestamp(*t),
            Value::Link(l) => ValueRef::Link(*l),
        }
    }

    /// The integer inside, if this is an `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The text inside, if this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Double(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Binary(v)
    }
}
impl From<Timestamp> for Value {
    fn from(v: Timestamp) -> Value {
        Value::Timestamp(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Binary(b) => write!(f, "<{} bytes>", b.len()),
            Value::Timestamp(t) => write!(f, "T{}:{}", t.seconds, t.nanos),
            Value::Link(l) => write!(f, "link({}, {})", l.class_id, l.key),
        }
    }
}

/// A borrowed view of a value, as read straight out of storage without copying strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A 32-bit float.
    Float(f32),
    /// A 64-bit float.
    Double(f64),
    /// UTF-8 text.
    String(&'a str),
    /// Bytes.
    Binary(&'a [u8]),
    /// A point in time.
    Timestamp(Timestamp),
    /// A link.
    Link(ObjLink),
}

impl ValueRef<'_> {
    /// An owned copy.
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Double(d) => Value::Double(d),
            ValueRef::String(s) => Value::String(s.to_owned()),
            ValueRef::Binary(b) => Value::Binary(b.to_vec()),
            ValueRef::Timestamp(t) => Value::Timestamp(t),
            ValueRef::Link(l) => Value::Link(l),
        }
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, ValueRef::Null)
    }

    /// The value as an `f64` when it is numeric (for comparisons across number types and for
    /// aggregates).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ValueRef::Int(i) => Some(i as f64),
            ValueRef::Float(f) => Some(f64::from(f)),
            ValueRef::Double(d) => Some(d),
            _ => None,
        }
    }
}

/// Orders two values for sorting and range comparisons.
///
/// NULL sorts before everything. Numbers compare by numeric value across Int/Float/Double
/// (an Int is compared exactly against another Int). Values of unrelated types have no order
/// (`None`), which makes a range comparison false.
pub fn compare_values(a: ValueRef<'_>, b: ValueRef<'_>) -> Option<Ordering> {
    use ValueRef as V;
    match (a, b) {
        (V::Null, V::Null) => Some(Ordering::Equal),
        (V::Null, _) => Some(Ordering::Less),
        (_, V::Null) => Some(Ordering::Greater),
        (V::Int(x), V::Int(y)) => Some(x.cmp(&y)),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(&y)),
        (V::String(x), V::String(y)) => Some(x.cmp(y)),
        (V::Binary(x), V::Binary(y)) => Some(x.cmp(y)),
        (V::Timestamp(x), V::Timestamp(y)) => Some(x.cmp(&y)),
        (V::Link(x), V::Link(y)) => Some(x.cmp(&y)),
        (x, y) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p.partial_cmp(&q),
            _ => None,
        },
    }
}

/// A total order used for sorting: like [`compare_values`], with unrelated types and NaN
/// ordered by a fixed rule so that sorting is deterministic.
pub(crate) fn sort_order(a: ValueRef<'_>, b: ValueRef<'_>) -> Ordering {
    compare_values(a, b).unwrap_or_else(|| type_rank(a).cmp(&type_rank(b)))
}

fn type_rank(v: ValueRef<'_>) -> u8 {
    match v {
        ValueRef::Null => 0,
        ValueRef::Bool(_) => 1,
        ValueRef::Int(_) | ValueRef::Float(_) | ValueRef::Double(_) => 2,
        ValueRef::String(_) => 3,
        ValueRef::Binary(_) => 4,
        ValueRef::Timestamp(_) => 5,
        ValueRef::Link(_) => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_across_types() {
        assert_eq!(
            compare_values(ValueRef::Int(2), ValueRef::Double(2.5)),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_values(ValueRef::Float(3.0), ValueRef::Int(3)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_values(ValueRef::String("a"), ValueRef::Int(1)),
            None
        );
    }

    #[test]
    fn null_sorts_first() {
        assert_eq!(
            sort_order(ValueRef::Null, ValueRef::Int(i64::MIN)),
            Ordering::Less
        );
    }

    #[test]
    fn type_names_round_trip() {
        for code in 0..8 {
            let t = PropertyType::from_code(code).unwrap();
            assert_eq!(PropertyType::from_name(t.name()), Some(t));
        }
        assert_eq!(PropertyType::from_code(8), None);
    }
}

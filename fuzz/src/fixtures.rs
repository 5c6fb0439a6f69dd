//! What the targets and the seed corpus share: a schema with every property type and
//! in-memory realms.

use std::sync::atomic::{AtomicU64, Ordering};

use shoal::{Config, PropertyFlags as F, PropertyType as T, Realm, Schema, Timestamp, Value};

/// Every property type, required, nullable and as a list, on a class with an int primary key
/// (`AllTypes`); `Dog` has no primary key (its objects get generated global ids) and `Tag` a
/// string one.
///
/// | property | type |
/// |---|---|
/// | `id` | int, primary key |
/// | `b i f d s bin t` | bool, int (indexed), float, double, string (indexed), binary, timestamp |
/// | `nb ni nf nd ns nbin nt` | the same, nullable |
/// | `lb li lf ld ls lbin lt` | lists of the same |
/// | `dog`, `dogs`, `tag` | link to `Dog`, list of links to `Dog`, link to `Tag` |
#[must_use]
pub fn all_types_schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("AllTypes", Some("id")).expect("class");
    let add = |s: &mut Schema, class: &str, name: &str, ty, flags, target| {
        s.add_property(class, name, ty, flags, target)
            .expect("property");
    };
    add(&mut s, "AllTypes", "id", T::Int, F::NONE, None);
    for (suffix, ty) in SCALARS {
        let indexed = if matches!(ty, T::Int | T::String) {
            F::INDEXED
        } else {
            F::NONE
        };
        add(&mut s, "AllTypes", suffix, ty, indexed, None);
        add(
            &mut s,
            "AllTypes",
            &format!("n{suffix}"),
            ty,
            F::NULLABLE,
            None,
        );
        add(&mut s, "AllTypes", &format!("l{suffix}"), ty, F::LIST, None);
    }
    add(&mut s, "AllTypes", "dog", T::Link, F::NONE, Some("Dog"));
    add(&mut s, "AllTypes", "dogs", T::Link, F::LIST, Some("Dog"));
    add(&mut s, "AllTypes", "tag", T::Link, F::NONE, Some("Tag"));
    s.add_class("Dog", None).expect("class");
    add(&mut s, "Dog", "name", T::String, F::NONE, None);
    add(&mut s, "Dog", "age", T::Int, F::NONE, None);
    s.add_class("Tag", Some("name")).expect("class");
    add(&mut s, "Tag", "name", T::String, F::NONE, None);
    s
}

/// The scalar property names of [`all_types_schema`] and their types.
pub const SCALARS: [(&str, T); 7] = [
    ("b", T::Bool),
    ("i", T::Int),
    ("f", T::Float),
    ("d", T::Double),
    ("s", T::String),
    ("bin", T::Binary),
    ("t", T::Timestamp),
];

/// A sample value of a scalar type, varied by `n`.
#[must_use]
pub fn sample(ty: T, n: i64) -> Value {
    match ty {
        T::Bool => Value::Bool(n % 2 == 0),
        T::Int => Value::Int(n * 7 - 10),
        T::Float => Value::Float(n as f32 / 4.0),
        T::Double => Value::Double(n as f64 * 1.5 - 2.0),
        T::String => Value::String(["", "a", "Ab", "b\u{e9}", "ccc"][n as usize % 5].to_owned()),
        T::Binary => Value::Binary(vec![n as u8; n as usize % 4]),
        T::Timestamp => Value::Timestamp(Timestamp {
            seconds: 1_700_000_000 + n * 3600,
            nanos: (n as i32) * 1000,
        }),
        T::Link => Value::Null,
    }
}

/// A configuration for a new in-memory realm with a name no other realm of this process has
/// (the data of an in-memory realm lives while a handle of its name is open).
#[must_use]
pub fn in_memory_config(schema: Option<Schema>, merge_metadata: bool) -> Config {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut config = Config::new(format!("shoal-fuzz-{n}"));
    config.set_in_memory(true);
    config.set_merge_metadata(merge_metadata);
    // The soundness checks decode the whole history: keep it (retention would trim it).
    config.set_keep_full_history(true);
    if let Some(schema) = schema {
        config.set_schema(schema).expect("a valid schema");
    }
    config
}

/// Fills a realm of [`all_types_schema`]: `AllTypes` 0..5 with sample values (list lengths
/// vary, `AllTypes` 4 has every nullable property NULL), three dogs and two tags.
///
/// # Panics
/// When a write fails (the fixture is valid, so that is a bug).
pub fn populate(realm: &Realm) {
    realm.begin_write().expect("begin");
    let mut dogs = Vec::new();
    for n in 0..3 {
        let dog = realm.create_object("Dog", None).expect("dog");
        dog.set("name", ["Rex", "fido", ""][n]).expect("set");
        dog.set("age", n as i64 * 3).expect("set");
        dogs.push(dog);
    }
    let tags: Vec<_> = ["x", "y"]
        .iter()
        .map(|t| {
            realm
                .create_object("Tag", Some(&Value::from(*t)))
                .expect("tag")
        })
        .collect();
    for n in 0..5_i64 {
        let o = realm
            .create_object("AllTypes", Some(&Value::Int(n)))
            .expect("object");
        for (name, ty) in SCALARS {
            o.set(name, sample(ty, n)).expect("set");
            if n != 4 {
                o.set(&format!("n{name}"), sample(ty, n + 1)).expect("set");
            }
            let list = o.list(&format!("l{name}")).expect("list");
            for k in 0..n {
                list.push(sample(ty, n + k)).expect("push");
            }
        }
        o.set("dog", dogs[n as usize % 3].link()).expect("set");
        let list = o.list("dogs").expect("list");
        for k in 0..n as usize {
            list.push(dogs[k % 3].link()).expect("push");
        }
        if n % 2 == 0 {
            o.set("tag", tags[n as usize / 2 % 2].link()).expect("set");
        }
    }
    realm.commit().expect("commit");
}

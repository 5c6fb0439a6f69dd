//! Helpers shared by the integration tests.
#![allow(dead_code)]

use shoal::{Config, PropertyFlags as F, PropertyType as T, Realm, Schema};

/// A temporary folder and a realm path inside it.
pub struct TempRealm {
    pub dir: tempfile::TempDir,
    pub path: String,
}

impl TempRealm {
    pub fn new() -> TempRealm {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.realm").to_string_lossy().into_owned();
        TempRealm { dir, path }
    }

    pub fn config(&self, schema: Schema) -> Config {
        let mut c = Config::new(self.path.clone());
        c.set_schema(schema).expect("valid schema");
        c
    }
}

/// Person {id: int pk, name: string? indexed, age: int, score: double, dog: Dog?, dogs: [Dog],
/// tags: [string], born: timestamp?, photo: binary?, active: bool, ratio: float}
/// Dog {name: string, age: int} (no primary key)
pub fn people_schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Person", Some("id")).unwrap();
    s.add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Person", "name", T::String, F::NULLABLE | F::INDEXED, None)
        .unwrap();
    s.add_property("Person", "age", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Person", "score", T::Double, F::NONE, None)
        .unwrap();
    s.add_property("Person", "dog", T::Link, F::NONE, Some("Dog"))
        .unwrap();
    s.add_property("Person", "dogs", T::Link, F::LIST, Some("Dog"))
        .unwrap();
    s.add_property("Person", "tags", T::String, F::LIST, None)
        .unwrap();
    s.add_property("Person", "born", T::Timestamp, F::NULLABLE, None)
        .unwrap();
    s.add_property("Person", "photo", T::Binary, F::NULLABLE, None)
        .unwrap();
    s.add_property("Person", "active", T::Bool, F::NONE, None)
        .unwrap();
    s.add_property("Person", "ratio", T::Float, F::NONE, None)
        .unwrap();
    s.add_class("Dog", None).unwrap();
    s.add_property("Dog", "name", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Dog", "age", T::Int, F::NONE, None).unwrap();
    s
}

pub fn open_people(t: &TempRealm) -> Realm {
    Realm::open(&t.config(people_schema())).expect("open")
}
pub mod ops;
pub mod server;

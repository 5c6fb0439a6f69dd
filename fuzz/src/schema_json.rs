//! Schema JSON (`Schema::from_json`, what `shoal_schema_from_json` and the bindings read) on
//! any text.
//!
//! Checks: no panic; a schema that parses is valid, writes itself back as JSON that parses to
//! the same schema (and the same text), and opens an in-memory realm in which one object of
//! every class can be created and read back.

use shoal::{Realm, Schema, Value};

use crate::assert_not_internal;
use crate::changeset::assert_sound;
use crate::fixtures::in_memory_config;

/// Runs the checks on one input (not UTF-8: ignored, the API takes `&str`).
///
/// # Panics
/// When a check fails.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = match Schema::from_json(text) {
        Ok(schema) => schema,
        Err(e) => {
            assert_not_internal(&e, "Schema::from_json");
            return;
        }
    };
    schema.validate().expect("a parsed schema is valid");
    let json = schema.to_json();
    let back = Schema::from_json(&json).expect("to_json's output parses");
    assert_eq!(back, schema, "the JSON round trip changed the schema");
    assert_eq!(back.to_json(), json);

    let realm = match Realm::open(&in_memory_config(Some(schema.clone()), false)) {
        Ok(realm) => realm,
        Err(e) => panic!("a valid schema does not open: {e:?}\n{json}"),
    };
    let stored = realm.schema().expect("the realm's schema");
    for class in schema.classes() {
        assert!(
            stored.class(&class.name).is_some(),
            "class {} is missing",
            class.name
        );
    }
    realm.begin_write().expect("begin_write");
    for class in schema.classes() {
        let key = class
            .primary_key
            .as_deref()
            .map(|pk| match class.property(pk).map(|p| p.ty) {
                Some(shoal::PropertyType::String) => Value::from("k"),
                _ => Value::Int(1),
            });
        if let Err(e) = realm.create_object(&class.name, key.as_ref()) {
            assert_not_internal(&e, "create_object");
            panic!("cannot create an object of '{}': {e:?}\n{json}", class.name);
        }
    }
    realm.commit().expect("commit");
    assert_sound(&realm);
}

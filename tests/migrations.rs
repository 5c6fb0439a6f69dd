//! Schemas and migrations: initial data, version checks, migration callbacks, starting over,
//! dynamic opens and the schema's JSON form.

mod common;
use common::*;
use shoal::{
    Config, Error, ErrorCode, PropertyFlags as F, PropertyType as T, Realm, Schema, Value,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Person {id: int pk, name: string, age: int}
fn v1_schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Person", Some("id")).unwrap();
    s.add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Person", "name", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Person", "age", T::Int, F::NONE, None)
        .unwrap();
    s
}

/// v1 with `name` renamed to `fullName`.
fn v2_schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Person", Some("id")).unwrap();
    s.add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Person", "fullName", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Person", "age", T::Int, F::NONE, None)
        .unwrap();
    s
}

/// Keeps the whole history: some tests replay it after a migration.
fn config(t: &TempRealm, schema: Schema, version: u64) -> Config {
    let mut c = t.config(schema);
    c.set_schema_version(version);
    c.set_keep_full_history(true);
    c
}

/// A v1 file (schema version 1) with three people, closed again.
fn v1_file(t: &TempRealm) {
    let realm = Realm::open(&config(t, v1_schema(), 1)).unwrap();
    realm.begin_write().unwrap();
    for (id, name, age) in [
        (1, "Ann Lee", 31),
        (2, "Bob Stone", 25),
        (3, "Cy Twombly", 40),
    ] {
        let p = realm
            .create_object("Person", Some(&Value::Int(id)))
            .unwrap();
        p.set("name", name).unwrap();
        p.set("age", age).unwrap();
    }
    realm.commit().unwrap();
}

fn get(realm: &Realm, id: i64, prop: &str) -> Value {
    realm
        .find_object("Person", &Value::Int(id))
        .unwrap()
        .expect("person exists")
        .get(prop)
        .unwrap()
}

// ----- initial data -----

#[test]
fn initial_data_runs_once_inside_the_creating_transaction() {
    let t = TempRealm::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut c = t.config(people_schema());
    let r = runs.clone();
    c.set_initial_data(move |realm| {
        r.fetch_add(1, Ordering::SeqCst);
        assert!(
            realm.is_in_transaction(),
            "initial data runs in a write transaction"
        );
        realm
            .create_object("Person", Some(&Value::Int(1)))?
            .set("name", "seed")?;
        realm.create_object("Dog", None)?.set("name", "Rex")?;
        Ok(())
    });
    let realm = Realm::open(&c).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!realm.is_in_transaction());
    assert_eq!(get(&realm, 1, "name"), Value::from("seed"));
    assert_eq!(realm.objects("Dog").unwrap().count().unwrap(), 1);
    // Schema and initial data are one transaction: one changeset, one version.
    assert_eq!(realm.history_since(0).unwrap().len(), 1);
    assert_eq!(realm.version().unwrap(), 1);

    // Another handle while open, and reopening after closing, do not run it again.
    let second = Realm::open(&c).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    drop(second);
    drop(realm);
    let realm = Realm::open(&c).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 1);
    assert_eq!(realm.objects("Dog").unwrap().count().unwrap(), 1);
}

#[test]
fn initial_data_does_not_run_for_an_existing_file_that_is_empty() {
    let t = TempRealm::new();
    drop(Realm::open(&t.config(people_schema())).unwrap());
    let runs = Arc::new(AtomicUsize::new(0));
    let mut c = t.config(people_schema());
    let r = runs.clone();
    c.set_initial_data(move |_| {
        r.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let realm = Realm::open(&c).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert!(realm.is_empty().unwrap());
}

#[test]
fn a_failing_initial_data_callback_fails_the_open_and_leaves_nothing_behind() {
    let t = TempRealm::new();
    let mut bad = t.config(people_schema());
    bad.set_initial_data(|realm| {
        realm.create_object("Person", Some(&Value::Int(1)))?;
        Err(Error::new(ErrorCode::CallbackFailed, "seeding failed"))
    });
    let err = Realm::open(&bad).unwrap_err();
    assert_eq!(err.code(), ErrorCode::CallbackFailed);
    // The next open creates the file properly and runs its initial data.
    let runs = Arc::new(AtomicUsize::new(0));
    let mut good = t.config(people_schema());
    let r = runs.clone();
    good.set_initial_data(move |realm| {
        r.fetch_add(1, Ordering::SeqCst);
        realm.create_object("Person", Some(&Value::Int(2)))?;
        Ok(())
    });
    let realm = Realm::open(&good).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(realm
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .is_none());
    assert!(realm
        .find_object("Person", &Value::Int(2))
        .unwrap()
        .is_some());
    assert_eq!(realm.schema().unwrap(), people_schema());
}

// ----- version checks -----

#[test]
fn a_changed_schema_with_a_higher_version_and_no_migration_is_migration_needed() {
    let t = TempRealm::new();
    v1_file(&t);
    let err = Realm::open(&config(&t, v2_schema(), 2)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::MigrationNeeded);
    // The file is unchanged.
    let realm = Realm::open(&config(&t, v1_schema(), 1)).unwrap();
    assert_eq!(realm.schema_version().unwrap(), 1);
    assert_eq!(get(&realm, 1, "name"), Value::from("Ann Lee"));
}

#[test]
fn a_changed_schema_with_the_same_version_is_migration_needed_even_with_a_callback() {
    let t = TempRealm::new();
    v1_file(&t);
    let ran = Arc::new(AtomicUsize::new(0));
    let mut c = config(&t, v2_schema(), 1);
    let r = ran.clone();
    c.set_migration(move |_, _, _| {
        r.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    assert_eq!(
        Realm::open(&c).unwrap_err().code(),
        ErrorCode::MigrationNeeded
    );
    assert_eq!(
        Realm::open(&config(&t, v2_schema(), 1)).unwrap_err().code(),
        ErrorCode::MigrationNeeded
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn a_config_version_lower_than_the_files_is_refused() {
    let t = TempRealm::new();
    v1_file(&t);
    let realm = Realm::open(&config(&t, v1_schema(), 5));
    // Same schema, higher version: allowed, and the file's version follows.
    let realm = realm.unwrap();
    assert_eq!(realm.schema_version().unwrap(), 5);
    drop(realm);
    for (schema, version) in [(v1_schema(), 4), (v1_schema(), 0), (v2_schema(), 4)] {
        let err = Realm::open(&config(&t, schema, version)).unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::SchemaVersionLower,
            "version {version}"
        );
    }
    let realm = Realm::open(&config(&t, v1_schema(), 5)).unwrap();
    assert_eq!(realm.schema_version().unwrap(), 5);
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 3);
}

#[test]
fn schema_version_is_reported_for_new_and_existing_files() {
    let t = TempRealm::new();
    let realm = Realm::open(&config(&t, v1_schema(), 7)).unwrap();
    assert_eq!(realm.schema_version().unwrap(), 7);
    drop(realm);
    let dynamic = Realm::open(&Config::new(t.path.clone())).unwrap();
    assert_eq!(dynamic.schema_version().unwrap(), 7);
    let u = TempRealm::new();
    assert_eq!(
        Realm::open(&u.config(v1_schema()))
            .unwrap()
            .schema_version()
            .unwrap(),
        0,
        "the default version is 0"
    );
}

// ----- migration callbacks -----

#[test]
fn a_migration_renames_a_property_by_copying_it() {
    let t = TempRealm::new();
    v1_file(&t);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut c = config(&t, v2_schema(), 2);
    let seen = calls.clone();
    c.set_migration(move |realm, old, new| {
        seen.lock().unwrap().push((old, new));
        assert!(realm.is_in_transaction());
        // Both the old and the new property exist during the migration.
        for p in realm.objects("Person")?.to_vec()? {
            let name = p.get("name")?;
            assert_eq!(
                p.get("fullName")?,
                Value::from(""),
                "new properties start at their default"
            );
            p.set("fullName", name)?;
        }
        // The old property can still be queried.
        assert_eq!(
            realm
                .query("Person", "name BEGINSWITH 'Bob'", &[])?
                .count()?,
            1
        );
        Ok(())
    });
    let realm = Realm::open(&c).unwrap();
    assert_eq!(*calls.lock().unwrap(), vec![(1, 2)]);
    assert_eq!(realm.schema().unwrap(), v2_schema());
    assert_eq!(realm.schema_version().unwrap(), 2);
    assert_eq!(get(&realm, 1, "fullName"), Value::from("Ann Lee"));
    assert_eq!(get(&realm, 2, "fullName"), Value::from("Bob Stone"));
    assert_eq!(get(&realm, 3, "fullName"), Value::from("Cy Twombly"));
    assert_eq!(
        get(&realm, 3, "age"),
        Value::Int(40),
        "untouched properties keep their values"
    );
    let p = realm
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .unwrap();
    assert_eq!(
        p.get("name").unwrap_err().code(),
        ErrorCode::NoSuchProperty,
        "the old property was dropped"
    );
    assert_eq!(
        realm
            .query("Person", "name == 'Ann Lee'", &[])
            .unwrap_err()
            .code(),
        ErrorCode::InvalidQuery
    );
    assert_eq!(
        realm
            .query("Person", "fullName ENDSWITH 'Stone'", &[])
            .unwrap()
            .count()
            .unwrap(),
        1
    );
    // The migration is done: reopening with the same config does not run it again.
    drop(p);
    drop(realm);
    let realm = Realm::open(&c).unwrap();
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(get(&realm, 2, "fullName"), Value::from("Bob Stone"));
}

#[test]
fn a_migration_can_add_classes_links_and_indexed_properties() {
    let t = TempRealm::new();
    v1_file(&t);
    let mut v3 = v1_schema();
    v3.add_property("Person", "nick", T::String, F::INDEXED, None)
        .unwrap();
    v3.add_property("Person", "pet", T::Link, F::NONE, Some("Pet"))
        .unwrap();
    v3.add_class("Pet", Some("name")).unwrap();
    v3.add_property("Pet", "name", T::String, F::NONE, None)
        .unwrap();
    v3.add_property("Pet", "owners", T::Link, F::LIST, Some("Person"))
        .unwrap();
    let mut c = config(&t, v3.clone(), 3);
    c.set_migration(|realm, old, new| {
        assert_eq!((old, new), (1, 3));
        let rex = realm.create_object("Pet", Some(&Value::from("Rex")))?;
        for p in realm.objects("Person")?.to_vec()? {
            let age = p.get("age")?.as_int().unwrap();
            if age > 30 {
                p.set("nick", "senior")?;
                p.set("pet", rex.link())?;
                rex.list("owners")?.push(p.link())?;
            }
        }
        Ok(())
    });
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.schema().unwrap(), v3);
    // The index of the new property covers the values set in the migration and the defaults.
    let ids = |pred: &str| {
        let mut v: Vec<i64> = realm
            .query("Person", pred, &[])
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .map(|p| p.get("id").unwrap().as_int().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(ids("nick == 'senior'"), vec![1, 3]);
    assert_eq!(ids("nick == ''"), vec![2]);
    assert_eq!(ids("pet.name == 'Rex'"), vec![1, 3]);
    assert_eq!(ids("pet == nil"), vec![2]);
    let rex = realm
        .find_object("Pet", &Value::from("Rex"))
        .unwrap()
        .unwrap();
    assert_eq!(rex.list("owners").unwrap().len().unwrap(), 2);
    // New objects after the migration are indexed too.
    realm.begin_write().unwrap();
    realm
        .create_object("Person", Some(&Value::Int(4)))
        .unwrap()
        .set("name", "Di")
        .unwrap();
    realm.commit().unwrap();
    assert_eq!(ids("nick == ''"), vec![2, 4]);
}

#[test]
fn a_migration_can_remove_a_class_after_reading_it() {
    let t = TempRealm::new();
    let mut with_dogs = v1_schema();
    with_dogs.add_class("Dog", None).unwrap();
    with_dogs
        .add_property("Dog", "owner", T::Int, F::NONE, None)
        .unwrap();
    with_dogs
        .add_property("Person", "dogCount", T::Int, F::NONE, None)
        .unwrap();
    {
        let realm = Realm::open(&config(&t, with_dogs, 1)).unwrap();
        realm.begin_write().unwrap();
        for id in 1..=2 {
            realm
                .create_object("Person", Some(&Value::Int(id)))
                .unwrap();
        }
        for owner in [1, 1, 2, 1] {
            realm
                .create_object("Dog", None)
                .unwrap()
                .set("owner", owner)
                .unwrap();
        }
        realm.commit().unwrap();
    }
    let mut without = v1_schema();
    without
        .add_property("Person", "dogCount", T::Int, F::NONE, None)
        .unwrap();
    let mut c = config(&t, without.clone(), 2);
    c.set_migration(|realm, _, _| {
        for d in realm.objects("Dog")?.to_vec()? {
            let owner = d.get("owner")?;
            realm
                .find_object("Person", &owner)?
                .expect("owner")
                .add_int("dogCount", 1)?;
        }
        Ok(())
    });
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.schema().unwrap(), without);
    assert_eq!(
        realm.objects("Dog").unwrap_err().code(),
        ErrorCode::NoSuchClass
    );
    assert_eq!(get(&realm, 1, "dogCount"), Value::Int(3));
    assert_eq!(get(&realm, 2, "dogCount"), Value::Int(1));
}

#[test]
fn a_failing_migration_fails_the_open_and_leaves_the_file_as_it_was() {
    let t = TempRealm::new();
    v1_file(&t);
    let mut c = config(&t, v2_schema(), 2);
    c.set_migration(|realm, _, _| {
        for p in realm.objects("Person")?.to_vec()? {
            p.set("fullName", "half done")?;
        }
        Err(Error::new(ErrorCode::CallbackFailed, "migration gave up"))
    });
    assert_eq!(
        Realm::open(&c).unwrap_err().code(),
        ErrorCode::CallbackFailed
    );
    let realm = Realm::open(&config(&t, v1_schema(), 1)).unwrap();
    assert_eq!(realm.schema().unwrap(), v1_schema());
    assert_eq!(realm.schema_version().unwrap(), 1);
    assert_eq!(get(&realm, 1, "name"), Value::from("Ann Lee"));
    assert_eq!(
        realm.history_since(0).unwrap().len(),
        2,
        "no changeset from the failed migration"
    );
}

#[test]
fn a_version_bump_without_schema_changes_runs_the_migration() {
    let t = TempRealm::new();
    v1_file(&t);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut c = config(&t, v1_schema(), 4);
    let seen = calls.clone();
    c.set_migration(move |realm, old, new| {
        seen.lock().unwrap().push((old, new));
        realm
            .find_object("Person", &Value::Int(2))?
            .expect("bob")
            .add_int("age", 1)?;
        Ok(())
    });
    let realm = Realm::open(&c).unwrap();
    assert_eq!(*calls.lock().unwrap(), vec![(1, 4)]);
    assert_eq!(realm.schema_version().unwrap(), 4);
    assert_eq!(get(&realm, 2, "age"), Value::Int(26));
}

#[test]
fn making_a_property_indexed_keeps_its_values() {
    let t = TempRealm::new();
    v1_file(&t);
    let mut indexed = Schema::new();
    indexed.add_class("Person", Some("id")).unwrap();
    indexed
        .add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    indexed
        .add_property("Person", "name", T::String, F::INDEXED, None)
        .unwrap();
    indexed
        .add_property("Person", "age", T::Int, F::NONE, None)
        .unwrap();
    let mut c = config(&t, indexed.clone(), 2);
    c.set_migration(|_, _, _| Ok(()));
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.schema().unwrap(), indexed);
    assert_eq!(
        get(&realm, 1, "name"),
        Value::from("Ann Lee"),
        "adding an index must not lose the data"
    );
    assert_eq!(
        realm
            .query("Person", "name == 'Bob Stone'", &[])
            .unwrap()
            .count()
            .unwrap(),
        1
    );
}

#[test]
fn making_a_required_property_nullable_keeps_its_values() {
    let t = TempRealm::new();
    v1_file(&t);
    let mut optional = Schema::new();
    optional.add_class("Person", Some("id")).unwrap();
    optional
        .add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    optional
        .add_property("Person", "name", T::String, F::NULLABLE, None)
        .unwrap();
    optional
        .add_property("Person", "age", T::Int, F::NULLABLE, None)
        .unwrap();
    let mut c = config(&t, optional.clone(), 2);
    c.set_migration(|_, _, _| Ok(()));
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.schema().unwrap(), optional);
    assert_eq!(
        get(&realm, 1, "name"),
        Value::from("Ann Lee"),
        "making a property optional must not lose the data"
    );
    assert_eq!(get(&realm, 3, "age"), Value::Int(40));
}

#[test]
fn a_migration_that_changes_a_type_starts_the_property_over() {
    let t = TempRealm::new();
    v1_file(&t);
    let mut retyped = Schema::new();
    retyped.add_class("Person", Some("id")).unwrap();
    retyped
        .add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    retyped
        .add_property("Person", "name", T::String, F::NONE, None)
        .unwrap();
    retyped
        .add_property("Person", "age", T::String, F::NULLABLE, None)
        .unwrap();
    let mut c = config(&t, retyped.clone(), 2);
    c.set_migration(|realm, _, _| {
        realm
            .find_object("Person", &Value::Int(1))?
            .expect("ann")
            .set("age", "thirty-one")?;
        Ok(())
    });
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.schema().unwrap(), retyped);
    assert_eq!(get(&realm, 1, "age"), Value::from("thirty-one"));
    assert_eq!(get(&realm, 2, "age"), Value::Null);
    assert_eq!(get(&realm, 2, "name"), Value::from("Bob Stone"));
    assert_eq!(
        realm
            .query("Person", "age == nil", &[])
            .unwrap()
            .count()
            .unwrap(),
        2
    );
}

// ----- starting over -----

#[test]
fn delete_if_migration_needed_starts_over_with_the_new_schema() {
    let t = TempRealm::new();
    v1_file(&t);
    let runs = Arc::new(AtomicUsize::new(0));
    let mut c = config(&t, v2_schema(), 2);
    c.set_delete_if_migration_needed(true);
    let r = runs.clone();
    c.set_initial_data(move |realm| {
        r.fetch_add(1, Ordering::SeqCst);
        realm
            .create_object("Person", Some(&Value::Int(9)))?
            .set("fullName", "fresh")?;
        Ok(())
    });
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.schema().unwrap(), v2_schema());
    assert_eq!(realm.schema_version().unwrap(), 2);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "a fresh file gets its initial data"
    );
    assert!(
        realm
            .find_object("Person", &Value::Int(1))
            .unwrap()
            .is_none(),
        "the old data is gone"
    );
    assert_eq!(get(&realm, 9, "fullName"), Value::from("fresh"));
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 1);
    // The same schema again needs nothing: the data stays.
    drop(realm);
    let realm = Realm::open(&c).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(get(&realm, 9, "fullName"), Value::from("fresh"));
}

#[test]
fn delete_if_migration_needed_keeps_a_file_that_needs_no_migration() {
    let t = TempRealm::new();
    v1_file(&t);
    let mut c = config(&t, v1_schema(), 1);
    c.set_delete_if_migration_needed(true);
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 3);
}

#[test]
fn delete_if_migration_needed_cannot_start_over_while_the_file_is_open() {
    let t = TempRealm::new();
    v1_file(&t);
    let old = Realm::open(&config(&t, v1_schema(), 1)).unwrap();
    let mut c = config(&t, v2_schema(), 1);
    c.set_delete_if_migration_needed(true);
    assert_eq!(Realm::open(&c).unwrap_err().code(), ErrorCode::RealmInUse);
    assert_eq!(
        old.objects("Person").unwrap().count().unwrap(),
        3,
        "the open handle's data is intact"
    );
}

// ----- dynamic opens and schema JSON -----

#[test]
fn opening_without_a_schema_gives_the_files_schema() {
    let t = TempRealm::new();
    {
        let realm = Realm::open(&config(&t, people_schema(), 3)).unwrap();
        realm.begin_write().unwrap();
        realm
            .create_object("Person", Some(&Value::Int(1)))
            .unwrap()
            .set("name", "Ann")
            .unwrap();
        realm.commit().unwrap();
    }
    let dynamic = Realm::open(&Config::new(t.path.clone())).unwrap();
    assert_eq!(dynamic.schema().unwrap(), people_schema());
    assert_eq!(dynamic.schema_version().unwrap(), 3);
    assert_eq!(get(&dynamic, 1, "name"), Value::from("Ann"));
    // A dynamic handle can write with the file's schema.
    dynamic.begin_write().unwrap();
    dynamic
        .create_object("Dog", None)
        .unwrap()
        .set("name", "Rex")
        .unwrap();
    dynamic.commit().unwrap();
    assert_eq!(dynamic.objects("Dog").unwrap().count().unwrap(), 1);
    // A brand-new file opened without a schema is empty, with version 0.
    let u = TempRealm::new();
    let empty = Realm::open(&Config::new(u.path.clone())).unwrap();
    assert!(empty.schema().unwrap().classes().is_empty());
    assert!(empty.is_empty().unwrap());
    assert_eq!(empty.schema_version().unwrap(), 0);
    assert_eq!(
        empty.objects("Person").unwrap_err().code(),
        ErrorCode::NoSuchClass
    );
}

#[test]
fn a_dynamic_handle_sees_a_schema_change_made_by_another_handle_after_refresh() {
    let t = TempRealm::new();
    v1_file(&t);
    let dynamic = Realm::open(&Config::new(t.path.clone())).unwrap();
    assert_eq!(dynamic.schema().unwrap(), v1_schema());
    let mut more = v1_schema();
    more.add_property("Person", "email", T::String, F::NULLABLE, None)
        .unwrap();
    let mut c = config(&t, more.clone(), 2);
    c.set_migration(|_, _, _| Ok(()));
    let migrated = Realm::open(&c).unwrap();
    assert_eq!(migrated.schema().unwrap(), more);
    assert_eq!(
        dynamic.schema().unwrap(),
        v1_schema(),
        "snapshot until refresh"
    );
    assert!(dynamic.refresh().unwrap());
    assert_eq!(dynamic.schema().unwrap(), more);
    assert_eq!(get(&dynamic, 1, "email"), Value::Null);
}

#[test]
fn is_empty_reports_whether_any_object_exists() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    assert!(realm.is_empty().unwrap());
    realm.begin_write().unwrap();
    let d = realm.create_object("Dog", None).unwrap();
    assert!(!realm.is_empty().unwrap());
    realm.commit().unwrap();
    assert!(!realm.is_empty().unwrap());
    realm.begin_write().unwrap();
    d.delete().unwrap();
    realm.commit().unwrap();
    assert!(realm.is_empty().unwrap());
}

#[test]
fn schemas_survive_a_json_round_trip() {
    let s = people_schema();
    let back = Schema::from_json(&s.to_json()).unwrap();
    assert_eq!(back, s);
    let person = back.class("Person").unwrap();
    assert_eq!(person.primary_key.as_deref(), Some("id"));
    let name = person.property("name").unwrap();
    assert!(name.is_indexed() && name.is_nullable() && !name.is_list());
    let dogs = person.property("dogs").unwrap();
    assert!(dogs.is_list());
    assert_eq!(dogs.ty, T::Link);
    assert_eq!(dogs.target.as_deref(), Some("Dog"));
    assert_eq!(back.class("Dog").unwrap().primary_key, None);
    // The schema a realm reports round-trips as well, and a realm opened with it matches.
    let t = TempRealm::new();
    let realm = open_people(&t);
    let reported = realm.schema().unwrap();
    assert_eq!(Schema::from_json(&reported.to_json()).unwrap(), s);
    let u = TempRealm::new();
    let copy = Realm::open(&u.config(Schema::from_json(&reported.to_json()).unwrap())).unwrap();
    assert_eq!(copy.schema().unwrap(), s);
    // Declaration order does not matter for equality.
    let mut reordered = Schema::new();
    reordered.add_class("Dog", None).unwrap();
    reordered
        .add_property("Dog", "age", T::Int, F::NONE, None)
        .unwrap();
    reordered
        .add_property("Dog", "name", T::String, F::NONE, None)
        .unwrap();
    let mut dog_only = Schema::new();
    dog_only.add_class("Dog", None).unwrap();
    dog_only
        .add_property("Dog", "name", T::String, F::NONE, None)
        .unwrap();
    dog_only
        .add_property("Dog", "age", T::Int, F::NONE, None)
        .unwrap();
    assert_eq!(reordered, dog_only);
    assert_eq!(Schema::from_json("{").unwrap_err().code(), ErrorCode::Json);
}

// ----- primary key changes -----

/// v1 with `name` as the primary key instead of `id`.
fn keyed_by_name() -> Schema {
    let mut s = Schema::new();
    s.add_class("Person", Some("name")).unwrap();
    s.add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Person", "name", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Person", "age", T::Int, F::NONE, None)
        .unwrap();
    s
}

#[test]
fn a_migration_can_move_the_primary_key_to_a_unique_property() {
    let t = TempRealm::new();
    v1_file(&t);
    let mut c = config(&t, keyed_by_name(), 2);
    c.set_migration(|_, _, _| Ok(()));
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.schema().unwrap(), keyed_by_name());
    let bob = realm
        .find_object("Person", &Value::from("Bob Stone"))
        .unwrap()
        .expect("found by the new key");
    assert_eq!(bob.get("id").unwrap(), Value::Int(2));
    assert_eq!(
        bob.global_id().unwrap(),
        shoal::GlobalId::String("Bob Stone".into())
    );
    assert_eq!(
        realm
            .find_object("Person", &Value::Int(2))
            .unwrap_err()
            .code(),
        ErrorCode::WrongType
    );
    realm.begin_write().unwrap();
    assert_eq!(
        realm
            .create_object("Person", Some(&Value::from("Ann Lee")))
            .unwrap_err()
            .code(),
        ErrorCode::DuplicatePrimaryKey
    );
    realm
        .create_object("Person", Some(&Value::from("Di")))
        .unwrap()
        .set("id", 2)
        .unwrap();
    realm.commit().unwrap();
    // The old key is an ordinary property now: duplicates are fine.
    assert_eq!(
        realm
            .query("Person", "id == 2", &[])
            .unwrap()
            .count()
            .unwrap(),
        2
    );
}

#[test]
fn moving_the_primary_key_to_a_property_with_duplicates_fails_the_open() {
    let t = TempRealm::new();
    v1_file(&t);
    {
        let realm = Realm::open(&config(&t, v1_schema(), 1)).unwrap();
        realm.begin_write().unwrap();
        realm
            .create_object("Person", Some(&Value::Int(4)))
            .unwrap()
            .set("name", "Ann Lee")
            .unwrap();
        realm.commit().unwrap();
    }
    let mut c = config(&t, keyed_by_name(), 2);
    c.set_migration(|_, _, _| Ok(()));
    assert_eq!(
        Realm::open(&c).unwrap_err().code(),
        ErrorCode::DuplicatePrimaryKey
    );
    let realm = Realm::open(&config(&t, v1_schema(), 1)).unwrap();
    assert_eq!(
        realm.objects("Person").unwrap().count().unwrap(),
        4,
        "the failed migration changed nothing"
    );
    drop(realm);
}

#[test]
fn a_migration_can_make_values_unique_before_they_become_the_primary_key() {
    let t = TempRealm::new();
    v1_file(&t);
    {
        let realm = Realm::open(&config(&t, v1_schema(), 1)).unwrap();
        realm.begin_write().unwrap();
        realm
            .create_object("Person", Some(&Value::Int(4)))
            .unwrap()
            .set("name", "Ann Lee")
            .unwrap();
        realm.commit().unwrap();
    }
    let mut c = config(&t, keyed_by_name(), 2);
    c.set_migration(|realm, _, _| {
        realm
            .query("Person", "id == 4", &[])?
            .get(0)?
            .set("name", "Ann Lee II")?;
        Ok(())
    });
    let realm = Realm::open(&c).unwrap();
    assert_eq!(
        realm
            .find_object("Person", &Value::from("Ann Lee II"))
            .unwrap()
            .unwrap()
            .get("id")
            .unwrap(),
        Value::Int(4)
    );
    assert_eq!(
        realm
            .find_object("Person", &Value::from("Ann Lee"))
            .unwrap()
            .unwrap()
            .get("id")
            .unwrap(),
        Value::Int(1)
    );
}

#[test]
fn a_migration_can_drop_the_primary_key_and_objects_keep_working() {
    let t = TempRealm::new();
    v1_file(&t);
    let mut unkeyed = Schema::new();
    unkeyed.add_class("Person", None).unwrap();
    unkeyed
        .add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    unkeyed
        .add_property("Person", "name", T::String, F::NONE, None)
        .unwrap();
    unkeyed
        .add_property("Person", "age", T::Int, F::NONE, None)
        .unwrap();
    let mut c = config(&t, unkeyed.clone(), 2);
    c.set_migration(|_, _, _| Ok(()));
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.schema().unwrap(), unkeyed);
    assert_eq!(
        realm
            .find_object("Person", &Value::Int(1))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
    let people = realm
        .query("Person", "TRUEPREDICATE SORT(id ASC)", &[])
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(people.len(), 3);
    assert_eq!(people[1].get("name").unwrap(), Value::from("Bob Stone"));
    // Every object still has a global id, and changes to the old objects are recorded.
    for p in &people {
        p.global_id()
            .expect("an object without a primary key still has a global id");
    }
    realm.begin_write().unwrap();
    people[0].set("age", 32).unwrap();
    realm
        .create_object("Person", None)
        .unwrap()
        .set("id", 1)
        .unwrap();
    realm.commit().unwrap();
    assert_eq!(
        realm
            .query("Person", "id == 1", &[])
            .unwrap()
            .count()
            .unwrap(),
        2
    );
    realm.dump_json().expect("the content can be dumped");
    // The history still replays to the same content.
    let u = TempRealm::new();
    let replica = Realm::open(&Config::new(u.path.clone())).unwrap();
    replica.begin_write().unwrap();
    for (_, bytes) in realm.history_since(0).unwrap() {
        replica.apply_changeset(&bytes).unwrap();
    }
    replica.commit().unwrap();
    assert_eq!(replica.dump_json().unwrap(), realm.dump_json().unwrap());
}

#[test]
fn a_migration_can_give_a_class_a_primary_key() {
    let t = TempRealm::new();
    let mut dogs = Schema::new();
    dogs.add_class("Dog", None).unwrap();
    dogs.add_property("Dog", "name", T::String, F::NONE, None)
        .unwrap();
    {
        let realm = Realm::open(&config(&t, dogs.clone(), 1)).unwrap();
        realm.begin_write().unwrap();
        for name in ["Rex", "Fido"] {
            realm
                .create_object("Dog", None)
                .unwrap()
                .set("name", name)
                .unwrap();
        }
        realm.commit().unwrap();
    }
    let mut keyed = Schema::new();
    keyed.add_class("Dog", Some("name")).unwrap();
    keyed
        .add_property("Dog", "name", T::String, F::NONE, None)
        .unwrap();
    let mut c = config(&t, keyed.clone(), 2);
    c.set_migration(|_, _, _| Ok(()));
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.schema().unwrap(), keyed);
    let rex = realm
        .find_object("Dog", &Value::from("Rex"))
        .unwrap()
        .expect("found by the new key");
    assert_eq!(
        rex.global_id().unwrap(),
        shoal::GlobalId::String("Rex".into())
    );
    realm.begin_write().unwrap();
    assert_eq!(
        realm
            .create_object("Dog", Some(&Value::from("Fido")))
            .unwrap_err()
            .code(),
        ErrorCode::DuplicatePrimaryKey
    );
    realm
        .create_object("Dog", Some(&Value::from("Spot")))
        .unwrap();
    realm.commit().unwrap();
    let u = TempRealm::new();
    let replica = Realm::open(&Config::new(u.path.clone())).unwrap();
    replica.begin_write().unwrap();
    for (_, bytes) in realm.history_since(0).unwrap() {
        replica.apply_changeset(&bytes).unwrap();
    }
    replica.commit().unwrap();
    assert_eq!(replica.dump_json().unwrap(), realm.dump_json().unwrap());
}

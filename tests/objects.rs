//! Objects, properties, links, lists and deletion through the Rust API.

mod common;
use common::*;
use shoal::{ErrorCode, Realm, Timestamp, Value};

#[test]
fn create_find_and_read_every_type() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = realm.create_object("Person", Some(&Value::Int(7))).unwrap();
    // Required properties start at zero values, nullable ones at NULL.
    assert_eq!(p.get("age").unwrap(), Value::Int(0));
    assert_eq!(p.get("name").unwrap(), Value::Null);
    assert_eq!(p.get("active").unwrap(), Value::Bool(false));
    p.set("name", "Ann").unwrap();
    p.set("age", 31).unwrap();
    p.set("score", 2.5).unwrap();
    p.set("born", Timestamp::new(1_500_000_000, 5)).unwrap();
    p.set("photo", vec![1u8, 2, 3]).unwrap();
    p.set("active", true).unwrap();
    p.set("ratio", 0.5f32).unwrap();
    realm.commit().unwrap();

    let found = realm
        .find_object("Person", &Value::Int(7))
        .unwrap()
        .expect("found by primary key");
    assert_eq!(found.get("name").unwrap(), Value::from("Ann"));
    assert_eq!(found.get("age").unwrap(), Value::Int(31));
    assert_eq!(found.get("score").unwrap(), Value::Double(2.5));
    assert_eq!(
        found.get("born").unwrap(),
        Value::Timestamp(Timestamp::new(1_500_000_000, 5))
    );
    assert_eq!(found.get("photo").unwrap(), Value::Binary(vec![1, 2, 3]));
    assert_eq!(found.get("active").unwrap(), Value::Bool(true));
    assert_eq!(found.get("ratio").unwrap(), Value::Float(0.5));
    assert!(realm
        .find_object("Person", &Value::Int(8))
        .unwrap()
        .is_none());
}

#[test]
fn values_survive_reopen() {
    let t = TempRealm::new();
    {
        let realm = open_people(&t);
        realm.begin_write().unwrap();
        for i in 0..1000 {
            let p = realm.create_object("Person", Some(&Value::Int(i))).unwrap();
            p.set("name", format!("name-{i}")).unwrap();
            p.set("age", i % 100).unwrap();
        }
        realm.commit().unwrap();
    }
    let realm = open_people(&t);
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 1000);
    let p = realm
        .find_object("Person", &Value::Int(777))
        .unwrap()
        .unwrap();
    assert_eq!(p.get("name").unwrap(), Value::from("name-777"));
    assert_eq!(p.get("age").unwrap(), Value::Int(77));
}

#[test]
fn duplicate_primary_key_is_refused_and_transaction_stays_usable() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    let err = realm
        .create_object("Person", Some(&Value::Int(1)))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DuplicatePrimaryKey);
    realm.create_object("Person", Some(&Value::Int(2))).unwrap();
    realm.commit().unwrap();
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 2);
    realm.begin_write().unwrap();
    assert_eq!(
        realm
            .create_object("Person", Some(&Value::Int(2)))
            .unwrap_err()
            .code(),
        ErrorCode::DuplicatePrimaryKey
    );
    realm.cancel_write().unwrap();
}

#[test]
fn wrong_types_and_unknown_names_are_errors() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    assert_eq!(
        realm
            .create_object("Person", Some(&Value::Int(1)))
            .unwrap_err()
            .code(),
        ErrorCode::NotInWriteTransaction
    );
    realm.begin_write().unwrap();
    assert_eq!(
        realm.create_object("Nope", None).unwrap_err().code(),
        ErrorCode::NoSuchClass
    );
    assert_eq!(
        realm
            .create_object("Person", Some(&Value::from("x")))
            .unwrap_err()
            .code(),
        ErrorCode::WrongType
    );
    assert_eq!(
        realm.create_object("Person", None).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    let p = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    assert_eq!(
        p.set("age", "old").unwrap_err().code(),
        ErrorCode::WrongType
    );
    assert_eq!(
        p.set("age", Value::Null).unwrap_err().code(),
        ErrorCode::WrongType
    );
    assert_eq!(
        p.set("nope", 1).unwrap_err().code(),
        ErrorCode::NoSuchProperty
    );
    assert_eq!(
        p.set("id", 5).unwrap_err().code(),
        ErrorCode::InvalidArgument,
        "primary keys are immutable"
    );
    assert_eq!(p.get("dogs").unwrap_err().code(), ErrorCode::WrongType);
    assert_eq!(
        p.get("age").unwrap(),
        Value::Int(0),
        "failed sets change nothing"
    );
    realm.commit().unwrap();
    assert_eq!(
        p.set("age", 3).unwrap_err().code(),
        ErrorCode::NotInWriteTransaction
    );
}

#[test]
fn links_and_lists() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    let rex = realm.create_object("Dog", None).unwrap();
    rex.set("name", "Rex").unwrap();
    let fido = realm.create_object("Dog", None).unwrap();
    fido.set("name", "Fido").unwrap();
    p.set("dog", rex.link()).unwrap();
    let dogs = p.list("dogs").unwrap();
    dogs.push(rex.link()).unwrap();
    dogs.push(fido.link()).unwrap();
    dogs.insert(0, fido.link()).unwrap();
    assert_eq!(dogs.len().unwrap(), 3);
    dogs.move_item(0, 2).unwrap();
    assert_eq!(
        dogs.to_vec().unwrap(),
        vec![rex.link(), fido.link(), fido.link()]
    );
    dogs.erase(1).unwrap();
    dogs.set(1, rex.link()).unwrap();
    assert_eq!(dogs.to_vec().unwrap(), vec![rex.link(), rex.link()]);
    assert_eq!(dogs.get(5).unwrap_err().code(), ErrorCode::IndexOutOfBounds);
    assert_eq!(
        dogs.insert(9, rex.link()).unwrap_err().code(),
        ErrorCode::IndexOutOfBounds
    );
    assert_eq!(
        dogs.push(Value::Int(3)).unwrap_err().code(),
        ErrorCode::WrongType
    );
    assert_eq!(
        p.set("dog", p.link()).unwrap_err().code(),
        ErrorCode::WrongType,
        "link to the wrong class"
    );
    let tags = p.list("tags").unwrap();
    tags.push("a").unwrap();
    tags.push("b").unwrap();
    tags.clear().unwrap();
    assert!(tags.is_empty().unwrap());
    tags.push("c").unwrap();
    realm.commit().unwrap();
    assert_eq!(
        p.get_link("dog").unwrap().unwrap().get("name").unwrap(),
        Value::from("Rex")
    );
    assert_eq!(
        p.list("tags").unwrap().to_vec().unwrap(),
        vec![Value::from("c")]
    );
}

#[test]
fn deleting_nulls_links_and_removes_list_entries() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    let rex = realm.create_object("Dog", None).unwrap();
    let fido = realm.create_object("Dog", None).unwrap();
    p.set("dog", rex.link()).unwrap();
    let dogs = p.list("dogs").unwrap();
    dogs.push(rex.link()).unwrap();
    dogs.push(fido.link()).unwrap();
    dogs.push(rex.link()).unwrap();
    realm.commit().unwrap();

    realm.begin_write().unwrap();
    rex.delete().unwrap();
    assert!(!rex.is_valid());
    assert_eq!(
        rex.get("name").unwrap_err().code(),
        ErrorCode::ObjectDeleted
    );
    assert_eq!(rex.delete().unwrap_err().code(), ErrorCode::ObjectDeleted);
    realm.commit().unwrap();
    assert_eq!(p.get("dog").unwrap(), Value::Null);
    assert_eq!(p.list("dogs").unwrap().to_vec().unwrap(), vec![fido.link()]);
    assert_eq!(realm.objects("Dog").unwrap().count().unwrap(), 1);

    // A deleted primary key can be used again.
    realm.begin_write().unwrap();
    p.delete().unwrap();
    let again = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    assert_eq!(again.get("dog").unwrap(), Value::Null);
    realm.commit().unwrap();
    assert!(realm
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .is_some());
}

#[test]
fn counters_add_up() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    p.add_int("age", 5).unwrap();
    p.add_int("age", -2).unwrap();
    assert_eq!(
        p.add_int("score", 1).unwrap_err().code(),
        ErrorCode::WrongType
    );
    realm.commit().unwrap();
    assert_eq!(p.get("age").unwrap(), Value::Int(3));
}

#[test]
fn string_primary_keys_work() {
    let t = TempRealm::new();
    let mut s = shoal::Schema::new();
    s.add_class("Tag", Some("name")).unwrap();
    s.add_property(
        "Tag",
        "name",
        shoal::PropertyType::String,
        shoal::PropertyFlags::NONE,
        None,
    )
    .unwrap();
    s.add_property(
        "Tag",
        "uses",
        shoal::PropertyType::Int,
        shoal::PropertyFlags::NONE,
        None,
    )
    .unwrap();
    let realm = Realm::open(&t.config(s)).unwrap();
    realm.begin_write().unwrap();
    for i in 0..2000 {
        realm
            .create_object("Tag", Some(&Value::from(format!("tag-{i}"))))
            .unwrap()
            .set("uses", i)
            .unwrap();
    }
    assert_eq!(
        realm
            .create_object("Tag", Some(&Value::from("tag-5")))
            .unwrap_err()
            .code(),
        ErrorCode::DuplicatePrimaryKey
    );
    realm.commit().unwrap();
    let tag = realm
        .find_object("Tag", &Value::from("tag-1234"))
        .unwrap()
        .unwrap();
    assert_eq!(tag.get("uses").unwrap(), Value::Int(1234));
    assert!(realm
        .find_object("Tag", &Value::from("tag-x"))
        .unwrap()
        .is_none());
    assert_eq!(
        realm.find_object("Tag", &Value::Int(1)).unwrap_err().code(),
        ErrorCode::WrongType
    );
}

#[test]
fn results_cannot_be_sorted_or_made_distinct_by_a_list() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let all = realm.objects("Person").unwrap();
    assert_eq!(
        all.sort("tags", true).unwrap_err().code(),
        ErrorCode::WrongType
    );
    assert_eq!(
        all.distinct("dogs").unwrap_err().code(),
        ErrorCode::WrongType
    );
    assert_eq!(
        all.sort("nope", true).unwrap_err().code(),
        ErrorCode::NoSuchProperty
    );
}

//! History: one changeset per write transaction, decoded instructions, and replaying a realm's
//! whole history onto an empty realm to get identical content.

mod common;
use common::ops::{apply_op, Op};
use common::*;
use proptest::prelude::*;
use shoal::{
    decode_changeset, ChangeValue, Config, ErrorCode, GlobalId, Instruction, Object,
    PropertyFlags as F, PropertyType as T, Realm, Schema, Timestamp, Value,
};

/// A realm of `schema` (none: the file's) that keeps its whole history: these tests replay it.
fn keeping(path: &str, schema: Option<Schema>) -> Config {
    let mut c = Config::new(path.to_owned());
    if let Some(s) = schema {
        c.set_schema(s).unwrap();
    }
    c.set_keep_full_history(true);
    c
}

/// [`open_people`], keeping the whole history.
fn open_keeping(t: &TempRealm) -> Realm {
    Realm::open(&keeping(&t.path, Some(people_schema()))).unwrap()
}

/// Opens a new realm without a schema and applies `changesets` in one write transaction.
fn replay(path: &str, changesets: &[(u64, Vec<u8>)]) -> Realm {
    let replica = Realm::open(&keeping(path, None)).unwrap();
    assert!(replica.schema().unwrap().classes().is_empty());
    replica.begin_write().unwrap();
    for (version, bytes) in changesets {
        replica
            .apply_changeset(bytes)
            .unwrap_or_else(|e| panic!("applying changeset {version}: {e}"));
    }
    replica.commit().unwrap();
    replica
}

/// Opens a new realm without a schema and applies each changeset in its own transaction.
fn replay_one_by_one(path: &str, changesets: &[(u64, Vec<u8>)]) -> Realm {
    let replica = Realm::open(&keeping(path, None)).unwrap();
    for (version, bytes) in changesets {
        replica.begin_write().unwrap();
        replica
            .apply_changeset(bytes)
            .unwrap_or_else(|e| panic!("applying changeset {version}: {e}"));
        replica.commit().unwrap();
    }
    replica
}

fn all_instructions(changesets: &[(u64, Vec<u8>)]) -> Vec<Instruction> {
    changesets
        .iter()
        .flat_map(|(_, b)| decode_changeset(b).unwrap())
        .collect()
}

fn gid(o: &Object) -> GlobalId {
    o.global_id().unwrap()
}

#[test]
fn each_write_transaction_appends_one_changeset() {
    let t = TempRealm::new();
    let realm = open_keeping(&t);
    let h = realm.history_since(0).unwrap();
    assert_eq!(
        h.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        vec![1],
        "creating the schema is the first transaction"
    );
    assert_eq!(realm.version().unwrap(), 1);
    for i in 0..3 {
        realm.begin_write().unwrap();
        // Several writes in one transaction still make one changeset.
        let p = realm.create_object("Person", Some(&Value::Int(i))).unwrap();
        p.set("age", i).unwrap();
        p.set("name", "x").unwrap();
        realm.commit().unwrap();
    }
    // Neither an empty commit nor a cancel adds one.
    realm.begin_write().unwrap();
    realm.commit().unwrap();
    realm.begin_write().unwrap();
    realm.create_object("Person", Some(&Value::Int(9))).unwrap();
    realm.cancel_write().unwrap();
    let h = realm.history_since(0).unwrap();
    assert_eq!(
        h.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(realm.version().unwrap(), 4);
    assert_eq!(
        realm
            .history_since(2)
            .unwrap()
            .iter()
            .map(|(v, _)| *v)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(realm.history_since(2).unwrap()[0], h[2]);
    assert!(realm.history_since(4).unwrap().is_empty());
    assert!(realm.history_since(1000).unwrap().is_empty());
    for (_, bytes) in &h[1..] {
        assert_eq!(
            decode_changeset(bytes).unwrap().len(),
            3,
            "create, set, set"
        );
    }
    // History lives in the file and is shared by every handle.
    let other = open_keeping(&t);
    assert_eq!(other.history_since(0).unwrap(), h);
    drop(other);
    drop(realm);
    assert_eq!(open_keeping(&t).history_since(0).unwrap(), h);
}

#[test]
fn history_is_seen_through_the_handles_snapshot() {
    let t = TempRealm::new();
    let a = open_keeping(&t);
    let b = open_keeping(&t);
    a.begin_write().unwrap();
    a.create_object("Person", Some(&Value::Int(1))).unwrap();
    a.commit().unwrap();
    assert_eq!(a.history_since(0).unwrap().len(), 2);
    assert_eq!(b.history_since(0).unwrap().len(), 1, "b has not refreshed");
    b.refresh().unwrap();
    assert_eq!(b.history_since(0).unwrap().len(), 2);
}

#[test]
fn the_schema_changeset_adds_classes_before_their_properties() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let h = realm.history_since(0).unwrap();
    let ins = decode_changeset(&h[0].1).unwrap();
    let add_prop =
        |class: &str, name: &str, ty: T, flags: F, target: Option<&str>| Instruction::AddProperty {
            class: class.into(),
            name: name.into(),
            ty,
            flags,
            target: target.map(Into::into),
        };
    let expected = vec![
        Instruction::AddClass {
            name: "Person".into(),
        },
        Instruction::AddClass { name: "Dog".into() },
        add_prop("Person", "id", T::Int, F::NONE, None),
        add_prop("Person", "name", T::String, F::NULLABLE | F::INDEXED, None),
        add_prop("Person", "age", T::Int, F::NONE, None),
        add_prop("Person", "score", T::Double, F::NONE, None),
        add_prop("Person", "dog", T::Link, F::NONE, Some("Dog")),
        add_prop("Person", "dogs", T::Link, F::LIST, Some("Dog")),
        add_prop("Person", "tags", T::String, F::LIST, None),
        add_prop("Person", "born", T::Timestamp, F::NULLABLE, None),
        add_prop("Person", "photo", T::Binary, F::NULLABLE, None),
        add_prop("Person", "active", T::Bool, F::NONE, None),
        add_prop("Person", "ratio", T::Float, F::NONE, None),
        Instruction::SetPrimaryKey {
            class: "Person".into(),
            prop: Some("id".into()),
        },
        add_prop("Dog", "name", T::String, F::NONE, None),
        add_prop("Dog", "age", T::Int, F::NONE, None),
    ];
    assert_eq!(ins, expected);
}

#[test]
fn decoding_a_changeset_gives_its_instructions_in_order() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    let rex = realm.create_object("Dog", None).unwrap();
    p.set("name", "Ann").unwrap();
    p.add_int("age", -3).unwrap();
    p.set("dog", rex.link()).unwrap();
    p.set("born", Timestamp::new(-5, -7)).unwrap();
    p.set("photo", vec![0u8, 255]).unwrap();
    p.set("ratio", 1.5f32).unwrap();
    p.set("score", -0.25).unwrap();
    p.set("active", true).unwrap();
    let dogs = p.list("dogs").unwrap();
    dogs.push(rex.link()).unwrap();
    let tags = p.list("tags").unwrap();
    tags.push("a").unwrap();
    tags.insert(0, "b").unwrap();
    tags.set(1, "c").unwrap();
    tags.move_item(0, 1).unwrap();
    tags.erase(0).unwrap();
    tags.clear().unwrap();
    rex.set("name", "Rex").unwrap();
    p.set("name", Value::Null).unwrap();
    rex.delete().unwrap();
    assert_eq!(
        realm.history_since(0).unwrap().len(),
        1,
        "nothing is in history before the commit"
    );
    realm.commit().unwrap();

    let h = realm.history_since(1).unwrap();
    assert_eq!(h.len(), 1);
    let ins = decode_changeset(&h[0].1).unwrap();
    let rex_gid = match &ins[1] {
        Instruction::CreateObject { class, id } if class == "Dog" => id.clone(),
        other => panic!("expected the dog's creation, got {other:?}"),
    };
    assert!(matches!(rex_gid, GlobalId::Generated { .. }));
    let pid = GlobalId::Int(1);
    let person = || "Person".to_string();
    let v = |x: Value| ChangeValue::Value(x);
    let expected = vec![
        Instruction::CreateObject {
            class: person(),
            id: pid.clone(),
        },
        Instruction::CreateObject {
            class: "Dog".into(),
            id: rex_gid.clone(),
        },
        Instruction::Set {
            class: person(),
            id: pid.clone(),
            prop: "name".into(),
            value: v(Value::from("Ann")),
        },
        Instruction::AddInt {
            class: person(),
            id: pid.clone(),
            prop: "age".into(),
            delta: -3,
        },
        Instruction::Set {
            class: person(),
            id: pid.clone(),
            prop: "dog".into(),
            value: ChangeValue::Link(rex_gid.clone()),
        },
        Instruction::Set {
            class: person(),
            id: pid.clone(),
            prop: "born".into(),
            value: v(Value::Timestamp(Timestamp::new(-5, -7))),
        },
        Instruction::Set {
            class: person(),
            id: pid.clone(),
            prop: "photo".into(),
            value: v(Value::Binary(vec![0, 255])),
        },
        Instruction::Set {
            class: person(),
            id: pid.clone(),
            prop: "ratio".into(),
            value: v(Value::Float(1.5)),
        },
        Instruction::Set {
            class: person(),
            id: pid.clone(),
            prop: "score".into(),
            value: v(Value::Double(-0.25)),
        },
        Instruction::Set {
            class: person(),
            id: pid.clone(),
            prop: "active".into(),
            value: v(Value::Bool(true)),
        },
        Instruction::ListInsert {
            class: person(),
            id: pid.clone(),
            prop: "dogs".into(),
            index: 0,
            value: ChangeValue::Link(rex_gid.clone()),
        },
        Instruction::ListInsert {
            class: person(),
            id: pid.clone(),
            prop: "tags".into(),
            index: 0,
            value: v(Value::from("a")),
        },
        Instruction::ListInsert {
            class: person(),
            id: pid.clone(),
            prop: "tags".into(),
            index: 0,
            value: v(Value::from("b")),
        },
        Instruction::ListSet {
            class: person(),
            id: pid.clone(),
            prop: "tags".into(),
            index: 1,
            value: v(Value::from("c")),
        },
        Instruction::ListMove {
            class: person(),
            id: pid.clone(),
            prop: "tags".into(),
            from: 0,
            to: 1,
        },
        Instruction::ListErase {
            class: person(),
            id: pid.clone(),
            prop: "tags".into(),
            index: 0,
        },
        Instruction::ListClear {
            class: person(),
            id: pid.clone(),
            prop: "tags".into(),
        },
        Instruction::Set {
            class: "Dog".into(),
            id: rex_gid.clone(),
            prop: "name".into(),
            value: v(Value::from("Rex")),
        },
        Instruction::Set {
            class: person(),
            id: pid.clone(),
            prop: "name".into(),
            value: v(Value::Null),
        },
        // The link and list entry that vanish with the dog are derived, not recorded.
        Instruction::EraseObject {
            class: "Dog".into(),
            id: rex_gid,
        },
    ];
    assert_eq!(ins, expected);
}

#[test]
fn global_ids_name_objects_across_realms() {
    let t = TempRealm::new();
    let realm = open_keeping(&t);
    realm.begin_write().unwrap();
    let p = realm
        .create_object("Person", Some(&Value::Int(42)))
        .unwrap();
    let d = realm.create_object("Dog", None).unwrap();
    d.set("name", "Rex").unwrap();
    realm.commit().unwrap();
    assert_eq!(gid(&p), GlobalId::Int(42));
    let dog_id = gid(&d);
    assert!(matches!(dog_id, GlobalId::Generated { .. }));
    assert_eq!(
        realm
            .find_by_global_id("Dog", &dog_id)
            .unwrap()
            .unwrap()
            .get("name")
            .unwrap(),
        Value::from("Rex")
    );
    assert_eq!(
        realm
            .find_by_global_id("Person", &GlobalId::Int(42))
            .unwrap()
            .unwrap()
            .key(),
        p.key()
    );
    assert!(realm
        .find_by_global_id("Person", &GlobalId::Int(43))
        .unwrap()
        .is_none());
    // The replica finds the same objects by the same ids.
    let u = TempRealm::new();
    let replica = replay(&u.path, &realm.history_since(0).unwrap());
    assert_eq!(
        replica
            .find_by_global_id("Dog", &dog_id)
            .unwrap()
            .unwrap()
            .get("name")
            .unwrap(),
        Value::from("Rex")
    );
    assert!(replica
        .find_by_global_id("Person", &GlobalId::Int(42))
        .unwrap()
        .is_some());
    // Two realms generate different ids for their own new objects.
    let other = open_people(&u);
    drop(other);
    let v = TempRealm::new();
    let fresh = open_people(&v);
    fresh.begin_write().unwrap();
    let d2 = fresh.create_object("Dog", None).unwrap();
    fresh.commit().unwrap();
    assert_ne!(gid(&d2), dog_id);
}

#[test]
fn applying_changesets_needs_a_write_transaction_and_well_formed_bytes() {
    let t = TempRealm::new();
    let source = open_people(&t);
    let h = source.history_since(0).unwrap();
    let u = TempRealm::new();
    let replica = Realm::open(&Config::new(u.path.clone())).unwrap();
    assert_eq!(
        replica.apply_changeset(&h[0].1).unwrap_err().code(),
        ErrorCode::NotInWriteTransaction
    );
    replica.begin_write().unwrap();
    for bad in [
        &[][..],
        &[0x53][..],
        &[0x00, 0x01][..],
        &[0x53, 0x09][..],
        &[0x53, 0x01, 20, 0][..],
        &[0x53, 0x01, 99][..],
    ] {
        assert_eq!(
            replica.apply_changeset(bad).unwrap_err().code(),
            ErrorCode::InvalidArgument,
            "{bad:?}"
        );
    }
    for (_, bytes) in &h {
        for cut in 2..bytes.len() {
            // Truncations either decode a prefix or fail; never panic.
            let _ = decode_changeset(&bytes[..cut]);
        }
    }
    replica.apply_changeset(&h[0].1).unwrap();
    replica.commit().unwrap();
    assert_eq!(replica.schema().unwrap(), people_schema());
    assert_eq!(replica.dump_json().unwrap(), source.dump_json().unwrap());
}

/// Builds a realm through every kind of change, including two migrations.
fn build_everything(t: &TempRealm) -> Realm {
    let mut c = keeping(&t.path, Some(people_schema()));
    c.set_schema_version(1);
    let realm = Realm::open(&c).unwrap();
    // Creation and every type set.
    realm.begin_write().unwrap();
    let p1 = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    let p2 = realm
        .create_object("Person", Some(&Value::Int(i64::MIN)))
        .unwrap();
    let p3 = realm
        .create_object("Person", Some(&Value::Int(i64::MAX)))
        .unwrap();
    let a = realm.create_object("Dog", None).unwrap();
    let b = realm.create_object("Dog", None).unwrap();
    let c_dog = realm.create_object("Dog", None).unwrap();
    for (d, name, age) in [(&a, "A", 1), (&b, "B", 2), (&c_dog, "Ç ☃", 3)] {
        d.set("name", name).unwrap();
        d.set("age", age).unwrap();
    }
    p1.set("name", "Ann ünïcødé 🐟").unwrap();
    p1.set("age", -7).unwrap();
    p1.set("score", 1e300).unwrap();
    p1.set("ratio", -0.125f32).unwrap();
    p1.set("active", true).unwrap();
    p1.set("born", Timestamp::new(-86_400, -5)).unwrap();
    p1.set("photo", vec![0u8, 1, 254, 255]).unwrap();
    p1.set("dog", b.link()).unwrap();
    p2.set("name", "").unwrap();
    p2.set("photo", Vec::<u8>::new()).unwrap();
    p2.set("born", Timestamp::new(1_700_000_000, 999_999_999))
        .unwrap();
    p2.set("dog", a.link()).unwrap();
    p3.set("age", i64::MAX).unwrap();
    for d in [&a, &b, &c_dog, &b] {
        p1.list("dogs").unwrap().push(d.link()).unwrap();
    }
    p2.list("dogs").unwrap().push(b.link()).unwrap();
    for tag in ["x", "y", "z", "w"] {
        p1.list("tags").unwrap().push(tag).unwrap();
    }
    p3.list("tags").unwrap().push("only").unwrap();
    realm.commit().unwrap();

    // Counters, list edits, nulling values.
    realm.begin_write().unwrap();
    p1.add_int("age", 100).unwrap();
    p1.add_int("age", -1).unwrap();
    p3.add_int("age", 1).unwrap(); // wraps
    let dogs = p1.list("dogs").unwrap();
    dogs.set(0, c_dog.link()).unwrap();
    dogs.move_item(0, 3).unwrap();
    dogs.insert(2, a.link()).unwrap();
    dogs.erase(1).unwrap();
    let tags = p1.list("tags").unwrap();
    tags.set(1, "Y").unwrap();
    tags.move_item(3, 0).unwrap();
    tags.erase(2).unwrap();
    tags.insert(3, "end").unwrap();
    p2.set("name", Value::Null).unwrap();
    p2.set("born", Value::Null).unwrap();
    p2.set("photo", Value::Null).unwrap();
    p2.set("dog", Value::Null).unwrap();
    realm.commit().unwrap();

    // Deletions with derived effects; a list cleared; a primary key reused.
    realm.begin_write().unwrap();
    b.delete().unwrap(); // linked from p1.dog, p1.dogs (twice) and p2.dogs
    p3.list("tags").unwrap().clear().unwrap();
    p3.delete().unwrap();
    let p3 = realm
        .create_object("Person", Some(&Value::Int(i64::MAX)))
        .unwrap();
    p3.set("name", "again").unwrap();
    let d = realm.create_object("Dog", None).unwrap();
    d.set("name", "D").unwrap();
    p3.set("dog", d.link()).unwrap();
    realm.commit().unwrap();
    // A transaction that is cancelled leaves no trace.
    realm.begin_write().unwrap();
    p1.set("name", "cancelled").unwrap();
    realm
        .create_object("Person", Some(&Value::Int(77)))
        .unwrap();
    realm.cancel_write().unwrap();
    drop((p1, p2, p3, a, b, c_dog, d, dogs, tags));
    drop(realm);

    // Migration 1: a new class with a string key, a new indexed property, a new link, and
    // Dog.name renamed to Dog.title.
    let mut v2 = people_schema();
    v2.add_property(
        "Person",
        "nickname",
        T::String,
        F::INDEXED | F::NULLABLE,
        None,
    )
    .unwrap();
    v2.add_property("Person", "best", T::Link, F::NONE, Some("Tag"))
        .unwrap();
    v2.add_class("Tag", Some("label")).unwrap();
    v2.add_property("Tag", "label", T::String, F::NONE, None)
        .unwrap();
    v2.add_property("Tag", "weight", T::Double, F::NULLABLE, None)
        .unwrap();
    v2.add_property("Tag", "people", T::Link, F::LIST, Some("Person"))
        .unwrap();
    v2.add_property("Tag", "scores", T::Int, F::LIST | F::NULLABLE, None)
        .unwrap();
    let mut dog = v2.clone();
    // Rebuild Dog with title instead of name.
    dog = {
        let mut s = Schema::new();
        for class in dog.classes() {
            s.add_class(&class.name, class.primary_key.as_deref())
                .unwrap();
        }
        for class in dog.classes() {
            for p in &class.properties {
                let name = if class.name == "Dog" && p.name == "name" {
                    "title"
                } else {
                    p.name.as_str()
                };
                s.add_property(&class.name, name, p.ty, p.flags, p.target.as_deref())
                    .unwrap();
            }
        }
        s
    };
    let mut c2 = keeping(&t.path, Some(dog.clone()));
    c2.set_schema_version(2);
    c2.set_migration(|realm, _, _| {
        for d in realm.objects("Dog")?.to_vec()? {
            let name = d.get("name")?;
            d.set("title", name)?;
        }
        let tag = realm.create_object("Tag", Some(&Value::from("vip")))?;
        tag.set("weight", 2.5)?;
        for p in realm.objects("Person")?.to_vec()? {
            p.set("nickname", format!("nick-{}", p.get("age")?))?;
            p.set("best", tag.link())?;
            tag.list("people")?.push(p.link())?;
        }
        let scores = tag.list("scores")?;
        scores.push(1)?;
        scores.push(Value::Null)?;
        scores.push(-3)?;
        Ok(())
    });
    let realm = Realm::open(&c2).unwrap();

    // After the migration: more objects of the new class, one erased, links to it nulled.
    realm.begin_write().unwrap();
    let other = realm
        .create_object("Tag", Some(&Value::from("other")))
        .unwrap();
    let gone = realm
        .create_object("Tag", Some(&Value::from("gone")))
        .unwrap();
    let p1 = realm
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .unwrap();
    p1.set("best", gone.link()).unwrap();
    other.list("people").unwrap().push(p1.link()).unwrap();
    other.list("scores").unwrap().push(Value::Null).unwrap();
    gone.delete().unwrap();
    let vip = realm
        .find_object("Tag", &Value::from("vip"))
        .unwrap()
        .unwrap();
    vip.list("scores").unwrap().move_item(2, 0).unwrap();
    vip.set("weight", Value::Null).unwrap();
    realm.commit().unwrap();
    drop((other, gone, p1, vip));

    // Migration 2: a class removed (after its links are dropped).
    drop(realm);
    let mut v3 = Schema::new();
    for class in dog.classes().iter().filter(|c| c.name != "Tag") {
        v3.add_class(&class.name, class.primary_key.as_deref())
            .unwrap();
        for p in class
            .properties
            .iter()
            .filter(|p| p.target.as_deref() != Some("Tag"))
        {
            v3.add_property(&class.name, &p.name, p.ty, p.flags, p.target.as_deref())
                .unwrap();
        }
    }
    let mut c3 = keeping(&t.path, Some(v3.clone()));
    c3.set_schema_version(3);
    c3.set_migration(|_, _, _| Ok(()));
    let realm = Realm::open(&c3).unwrap();
    assert_eq!(realm.schema().unwrap(), v3);
    realm.begin_write().unwrap();
    realm
        .create_object("Person", Some(&Value::Int(5)))
        .unwrap()
        .set("nickname", "last")
        .unwrap();
    realm.commit().unwrap();
    realm
}

#[test]
fn replaying_the_whole_history_on_an_empty_realm_gives_identical_content() {
    let t = TempRealm::new();
    let source = build_everything(&t);
    let history = source.history_since(0).unwrap();
    let versions: Vec<u64> = history.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions,
        (1..=versions.len() as u64).collect::<Vec<_>>(),
        "consecutive versions from 1"
    );
    let expected = source.dump_json().unwrap();
    // The content is what the steps above made (spot checks), so the comparison is meaningful.
    assert!(expected.contains("Ann ünïcødé 🐟"));
    let p1 = source
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .unwrap();
    assert_eq!(p1.get("age").unwrap(), Value::Int(92));
    assert_eq!(p1.get("dog").unwrap(), Value::Null);
    assert_eq!(
        p1.list("tags").unwrap().to_vec().unwrap(),
        vec![
            Value::from("w"),
            Value::from("x"),
            Value::from("z"),
            Value::from("end")
        ]
    );
    let titles: Vec<Value> = p1
        .list("dogs")
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .map(|l| match l {
            Value::Link(_) => source
                .objects("Dog")
                .unwrap()
                .to_vec()
                .unwrap()
                .into_iter()
                .find(|d| d.link() == *l)
                .unwrap()
                .get("title")
                .unwrap(),
            other => panic!("not a link: {other:?}"),
        })
        .collect();
    assert_eq!(titles, vec![Value::from("A"), Value::from("Ç ☃")]);
    assert_eq!(p1.get("nickname").unwrap(), Value::from("nick-92"));
    let max = source
        .find_object("Person", &Value::Int(i64::MAX))
        .unwrap()
        .unwrap();
    assert_eq!(max.get("name").unwrap(), Value::from("again"));
    assert_eq!(
        max.get("age").unwrap(),
        Value::Int(0),
        "the re-created object starts fresh"
    );
    assert_eq!(source.objects("Dog").unwrap().count().unwrap(), 3);

    let u = TempRealm::new();
    let replica = replay(&u.path, &history);
    assert_eq!(replica.dump_json().unwrap(), expected);
    assert_eq!(replica.schema().unwrap(), source.schema().unwrap());
    // The replica recorded the same instructions as its own history.
    assert_eq!(
        all_instructions(&replica.history_since(0).unwrap()),
        all_instructions(&history)
    );

    // One transaction per changeset gives the same result, and so does a replica of a replica.
    let w = TempRealm::new();
    let stepwise = replay_one_by_one(&w.path, &history);
    assert_eq!(stepwise.dump_json().unwrap(), expected);
    let x = TempRealm::new();
    let second = replay(&x.path, &replica.history_since(0).unwrap());
    assert_eq!(second.dump_json().unwrap(), expected);

    // Replaying a suffix onto a copy of the prefix also converges.
    let y = TempRealm::new();
    let partial = replay(&y.path, &history[..4]);
    assert_ne!(partial.dump_json().unwrap(), expected);
    partial.begin_write().unwrap();
    for (_, bytes) in &history[4..] {
        partial.apply_changeset(bytes).unwrap();
    }
    partial.commit().unwrap();
    assert_eq!(partial.dump_json().unwrap(), expected);
}

#[test]
fn a_replica_can_keep_following_its_source() {
    let t = TempRealm::new();
    let source = open_people(&t);
    let u = TempRealm::new();
    let replica = Realm::open(&Config::new(u.path.clone())).unwrap();
    let mut seen = 0;
    let sync = |seen: &mut u64| {
        let new = source.history_since(*seen).unwrap();
        replica.begin_write().unwrap();
        for (v, bytes) in &new {
            replica.apply_changeset(bytes).unwrap();
            *seen = *v;
        }
        replica.commit().unwrap();
        assert_eq!(replica.dump_json().unwrap(), source.dump_json().unwrap());
    };
    sync(&mut seen);
    for round in 0..5i64 {
        source.begin_write().unwrap();
        let p = source
            .create_object("Person", Some(&Value::Int(round)))
            .unwrap();
        p.set("age", round * 10).unwrap();
        if round > 0 {
            source
                .find_object("Person", &Value::Int(round - 1))
                .unwrap()
                .unwrap()
                .list("tags")
                .unwrap()
                .push(format!("r{round}"))
                .unwrap();
        }
        if round == 3 {
            source
                .find_object("Person", &Value::Int(1))
                .unwrap()
                .unwrap()
                .delete()
                .unwrap();
        }
        source.commit().unwrap();
        sync(&mut seen);
    }
    assert_eq!(seen, source.version().unwrap());
}

// ----- retention -----

/// Commits one new person per transaction and returns the version after each.
fn commit_people(realm: &Realm, ids: std::ops::Range<i64>) -> Vec<u64> {
    ids.map(|id| {
        realm.begin_write().unwrap();
        realm
            .create_object("Person", Some(&Value::Int(id)))
            .unwrap();
        realm.commit().unwrap();
        realm.version().unwrap()
    })
    .collect()
}

#[test]
fn a_local_realm_keeps_only_the_changesets_something_needs() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let versions = commit_people(&realm, 0..20);
    assert_eq!(
        versions,
        (2..22).collect::<Vec<u64>>(),
        "versions still count"
    );
    // Nothing needs the older changesets: only the newest stays (it carries the version).
    let kept = realm.history_since(20).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, 21);
    assert_eq!(
        decode_changeset(&kept[0].1).unwrap()[0],
        Instruction::CreateObject {
            class: "Person".into(),
            id: GlobalId::Int(19)
        }
    );
    let err = realm.history_since(0).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.message().contains("no longer keeps"), "{err}");
    assert!(realm.history_since(21).unwrap().is_empty());
    // The version survives a reopen and the next commit continues from it.
    drop(realm);
    let realm = open_people(&t);
    assert_eq!(realm.version().unwrap(), 21);
    assert_eq!(commit_people(&realm, 20..21), vec![22]);
    assert_eq!(realm.history_since(21).unwrap().len(), 1);
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 21);
}

#[test]
fn a_snapshot_keeps_seeing_the_history_of_its_version() {
    let t = TempRealm::new();
    let (a, b) = (open_people(&t), open_people(&t));
    commit_people(&a, 0..1);
    b.refresh().unwrap();
    assert_eq!(b.history_since(1).unwrap().len(), 1);
    commit_people(&a, 1..5);
    // b has not refreshed: its snapshot still has the changeset of its version.
    assert_eq!(b.history_since(1).unwrap()[0].0, 2);
    b.refresh().unwrap();
    assert!(b.history_since(1).is_err());
    assert_eq!(b.history_since(5).unwrap()[0].0, 6);
}

#[test]
fn a_handle_keeping_the_full_history_keeps_it_for_every_handle_while_open() {
    let t = TempRealm::new();
    let plain = open_people(&t);
    commit_people(&plain, 0..3);
    assert!(
        plain.history_since(0).is_err(),
        "trimmed before the keeper came"
    );
    let keeper = open_keeping(&t);
    commit_people(&plain, 3..8);
    // Everything since the keeper opened is kept, whoever writes.
    keeper.refresh().unwrap();
    assert_eq!(
        keeper
            .history_since(4)
            .unwrap()
            .iter()
            .map(|(v, _)| *v)
            .collect::<Vec<_>>(),
        (5..10).collect::<Vec<u64>>()
    );
    // Once it is closed, the next commit trims again.
    keeper.close();
    commit_people(&plain, 8..9);
    assert!(plain.history_since(4).is_err());
    assert_eq!(plain.history_since(9).unwrap().len(), 1);
}

#[test]
fn compaction_drops_what_the_history_no_longer_needs() {
    let t = TempRealm::new();
    {
        // A file written with the whole history kept (as every file was before trimming).
        let keeper = open_keeping(&t);
        keeper.begin_write().unwrap();
        for id in 0..2_000 {
            let p = keeper
                .create_object("Person", Some(&Value::Int(id)))
                .unwrap();
            p.set("photo", vec![7u8; 1_000]).unwrap();
        }
        keeper.commit().unwrap();
        keeper.begin_write().unwrap();
        keeper.objects("Person").unwrap().delete_all().unwrap();
        keeper.commit().unwrap();
        assert_eq!(keeper.history_since(0).unwrap().len(), 3);
    }
    let realm = open_people(&t);
    realm.compact().unwrap();
    assert_eq!(realm.history_since(2).unwrap().len(), 1);
    assert_eq!(realm.version().unwrap(), 3);
    let size = std::fs::metadata(&t.path).unwrap().len();
    assert!(size < 256 << 10, "the 2 MB changeset is gone: {size} bytes");
}

// ----- randomized replay -----

fn op_strategy() -> impl Strategy<Value = Op> {
    let ix = || 0usize..16;
    let text = || "[a-zA-Z0-9 ]{0,6}|\\PC{0,4}";
    prop_oneof![
        3 => (-5i64..15).prop_map(Op::CreatePerson),
        2 => text().prop_map(Op::CreateDog),
        1 => ix().prop_map(Op::DeletePerson),
        1 => ix().prop_map(Op::DeleteDog),
        2 => (ix(), proptest::option::of(text())).prop_map(|(i, s)| Op::SetName(i, s)),
        2 => (ix(), any::<i64>()).prop_map(|(i, v)| Op::SetAge(i, v)),
        2 => (ix(), -1000i64..1000).prop_map(|(i, v)| Op::AddAge(i, v)),
        1 => (ix(), -1e9f64..1e9).prop_map(|(i, v)| Op::SetScore(i, v)),
        1 => (ix(), -1e6f32..1e6).prop_map(|(i, v)| Op::SetRatio(i, v)),
        1 => (ix(), any::<bool>()).prop_map(|(i, v)| Op::SetActive(i, v)),
        1 => (ix(), proptest::option::of((-2_000_000_000i64..2_000_000_000, 0i32..1_000_000_000)))
            .prop_map(|(i, t)| Op::SetBorn(i, t.map(|(s, n)| if s < 0 { (s, -n) } else { (s, n) }))),
        1 => (ix(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))).prop_map(|(i, b)| Op::SetPhoto(i, b)),
        2 => (ix(), proptest::option::of(ix())).prop_map(|(i, d)| Op::SetDog(i, d)),
        1 => (ix(), text()).prop_map(|(i, s)| Op::SetDogName(i, s)),
        3 => (ix(), ix(), ix()).prop_map(|(p, i, d)| Op::DogsInsert(p, i, d)),
        1 => (ix(), ix(), ix()).prop_map(|(p, i, d)| Op::DogsSet(p, i, d)),
        1 => (ix(), ix()).prop_map(|(p, i)| Op::DogsErase(p, i)),
        1 => (ix(), ix(), ix()).prop_map(|(p, a, b)| Op::DogsMove(p, a, b)),
        1 => ix().prop_map(Op::DogsClear),
        3 => (ix(), ix(), text()).prop_map(|(p, i, s)| Op::TagsInsert(p, i, s)),
        1 => (ix(), ix(), text()).prop_map(|(p, i, s)| Op::TagsSet(p, i, s)),
        1 => (ix(), ix()).prop_map(|(p, i)| Op::TagsErase(p, i)),
        1 => (ix(), ix(), ix()).prop_map(|(p, a, b)| Op::TagsMove(p, a, b)),
        1 => ix().prop_map(Op::TagsClear),
        1 => (-1000i64..1000).prop_map(Op::DeleteOldPeople),
        2 => Just(Op::Commit),
        1 => Just(Op::Cancel),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn replaying_the_history_of_random_operations_gives_identical_content(ops in proptest::collection::vec(op_strategy(), 1..80)) {
        let t = TempRealm::new();
        let source = open_keeping(&t);
        source.begin_write().unwrap();
        for op in &ops {
            apply_op(&source, op);
        }
        source.commit().unwrap();
        let history = source.history_since(0).unwrap();
        let expected = source.dump_json().unwrap();

        let u = TempRealm::new();
        let replica = replay(&u.path, &history);
        prop_assert_eq!(replica.dump_json().unwrap(), expected.clone());
        prop_assert_eq!(
            replica.objects("Person").unwrap().count().unwrap(),
            source.objects("Person").unwrap().count().unwrap()
        );
        let w = TempRealm::new();
        let stepwise = replay_one_by_one(&w.path, &history);
        prop_assert_eq!(stepwise.dump_json().unwrap(), expected);
    }
}

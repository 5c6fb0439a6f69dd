//! `Realm::integrate_changesets_strictly`, what a server integrates uploads with: everything
//! an honest replica makes goes through, what the merge rules would skip because the realm
//! never had it, index-based list changes and schema changes other than additions are refused
//! (and change nothing), where `integrate_changesets` skips or applies them.

use shoal::{
    encode_changeset, ChangeValue, Changeset, Config, GlobalId, Instruction, PropertyFlags as F,
    PropertyType as T, Realm, Schema, Value,
};

fn merge_realm(dir: &tempfile::TempDir, name: &str, schema: Option<Schema>) -> Realm {
    let mut config = Config::new(dir.path().join(name).to_string_lossy());
    config.set_merge_metadata(true);
    if let Some(schema) = schema {
        config.set_schema(schema).unwrap();
    }
    Realm::open(&config).unwrap()
}

fn schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Task", Some("id")).unwrap();
    s.add_property("Task", "id", T::Int, F::NONE, None).unwrap();
    s.add_property("Task", "title", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Task", "tags", T::String, F::LIST, None)
        .unwrap();
    s.add_class("Tag", None).unwrap();
    s.add_property("Tag", "name", T::String, F::NONE, None)
        .unwrap();
    s
}

fn changeset(stamp: u64, instructions: Vec<Instruction>) -> Vec<u8> {
    encode_changeset(&Changeset {
        stamp,
        origin: 77,
        instructions,
    })
}

fn state(realm: &Realm) -> (String, String) {
    (
        realm.dump_json().unwrap(),
        realm.schema().unwrap().to_json(),
    )
}

#[test]
fn an_honest_replicas_changesets_integrate_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let device = merge_realm(&dir, "device.realm", Some(schema()));
    device.begin_write().unwrap();
    let task = device.create_object("Task", Some(&Value::Int(1))).unwrap();
    task.set("title", "one").unwrap();
    let tags = task.list("tags").unwrap();
    tags.insert(0, "a").unwrap();
    tags.insert(1, "b").unwrap();
    device.commit().unwrap();
    device.begin_write().unwrap();
    let task = device.find_object("Task", &Value::Int(1)).unwrap().unwrap();
    task.list("tags").unwrap().erase(0).unwrap();
    task.set("title", "changed").unwrap();
    device.commit().unwrap();
    device.begin_write().unwrap();
    device
        .find_object("Task", &Value::Int(1))
        .unwrap()
        .unwrap()
        .delete()
        .unwrap();
    device.commit().unwrap();

    let server = merge_realm(&dir, "server.realm", None);
    let local: Vec<Vec<u8>> = device
        .local_changesets_since(0)
        .unwrap()
        .into_iter()
        .map(|(_, data)| data)
        .collect();
    let refs: Vec<&[u8]> = local.iter().map(Vec::as_slice).collect();
    server.integrate_changesets_strictly(&refs).unwrap();
    assert_eq!(server.dump_json().unwrap(), device.dump_json().unwrap());
    // The same class from another replica (its key named again) is an addition too, and a set
    // on the deleted task is skipped as the merge rules say.
    let again = changeset(
        u64::MAX / 2,
        vec![
            Instruction::AddClass {
                name: "Task".into(),
            },
            Instruction::SetPrimaryKey {
                class: "Task".into(),
                prop: Some("id".into()),
            },
            Instruction::Set {
                class: "Task".into(),
                id: GlobalId::Int(1),
                prop: "title".into(),
                value: ChangeValue::Value(Value::String("late".into())),
            },
            // An object of a class without a key, with this replica's generated id (77).
            Instruction::CreateObject {
                class: "Tag".into(),
                id: GlobalId::Generated { file: 77, seq: 5 },
            },
        ],
    );
    server.integrate_changesets_strictly(&[&again]).unwrap();
    assert_eq!(server.objects("Tag").unwrap().count().unwrap(), 1);
    assert_eq!(
        server.objects("Task").unwrap().count().unwrap(),
        device.objects("Task").unwrap().count().unwrap()
    );
}

#[test]
fn what_a_replica_never_had_and_destructive_schema_changes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let device = merge_realm(&dir, "device.realm", Some(schema()));
    device.begin_write().unwrap();
    device.create_object("Task", Some(&Value::Int(1))).unwrap();
    device.commit().unwrap();
    let strict = merge_realm(&dir, "strict.realm", None);
    let local = device.local_changesets_since(0).unwrap();
    for (_, data) in &local {
        strict.integrate_changesets_strictly(&[data]).unwrap();
    }
    let set = |id: i64, prop: &str, value: ChangeValue| Instruction::Set {
        class: "Task".into(),
        id: GlobalId::Int(id),
        prop: prop.into(),
        value,
    };
    let string = |s: &str| ChangeValue::Value(Value::String(s.into()));
    let cases: Vec<(&str, Vec<Instruction>)> = vec![
        (
            "an object never created",
            vec![set(9, "title", string("x"))],
        ),
        ("a property it never had", vec![set(1, "nope", string("x"))]),
        (
            "a class it never had",
            vec![Instruction::Set {
                class: "Nope".into(),
                id: GlobalId::Int(1),
                prop: "title".into(),
                value: string("x"),
            }],
        ),
        (
            "a delete of an object never created",
            vec![Instruction::EraseObject {
                class: "Task".into(),
                id: GlobalId::Int(8),
            }],
        ),
        (
            "a list change on a scalar",
            vec![Instruction::ListInsertAfter {
                class: "Task".into(),
                id: GlobalId::Int(1),
                prop: "title".into(),
                after: None,
                value: string("x"),
            }],
        ),
        (
            "an index-based list change",
            vec![Instruction::ListInsert {
                class: "Task".into(),
                id: GlobalId::Int(1),
                prop: "tags".into(),
                index: 0,
                value: string("x"),
            }],
        ),
        (
            "a class removed",
            vec![Instruction::EraseClass {
                class: "Task".into(),
            }],
        ),
        (
            "a property removed",
            vec![Instruction::EraseProperty {
                class: "Task".into(),
                name: "title".into(),
            }],
        ),
        (
            "flags changed",
            vec![Instruction::SetPropertyFlags {
                class: "Task".into(),
                name: "title".into(),
                flags: F::NULLABLE,
            }],
        ),
        (
            "an object with another replica's generated id",
            vec![Instruction::CreateObject {
                class: "Tag".into(),
                id: GlobalId::Generated { file: 78, seq: 5 },
            }],
        ),
        (
            "a key changed",
            vec![Instruction::SetPrimaryKey {
                class: "Task".into(),
                prop: None,
            }],
        ),
    ];
    for (n, (what, instructions)) in cases.into_iter().enumerate() {
        let data = changeset(1 << 40 | n as u64, instructions);
        let before = state(&strict);
        let e = strict.integrate_changesets_strictly(&[&data]).unwrap_err();
        assert_eq!(e.code(), shoal::ErrorCode::InvalidArgument, "{what}: {e}");
        assert_eq!(state(&strict), before, "{what} changed the realm");
        let lenient = merge_realm(&dir, &format!("lenient-{n}.realm"), None);
        for (_, data) in &local {
            lenient.integrate_changesets(&[data]).unwrap();
        }
        lenient
            .integrate_changesets(&[&data])
            .unwrap_or_else(|e| panic!("{what}: integrate_changesets refused it: {e}"));
    }
}

//! Random operations on a people realm (see `people_schema`), shared by the replay test
//! (`tests/history.rs`) and the merge property test (`tests/convergence.rs`). Each test draws
//! them with its own strategy: its own ranges, and the operations it needs.
#![allow(dead_code)]

use shoal::{ErrorCode, Realm, Timestamp, Value};

/// One operation; indexes pick among the live objects of a class.
#[derive(Debug, Clone)]
pub enum Op {
    CreatePerson(i64),
    CreateDog(String),
    DeletePerson(usize),
    DeleteDog(usize),
    SetName(usize, Option<String>),
    SetAge(usize, i64),
    AddAge(usize, i64),
    SetScore(usize, f64),
    SetRatio(usize, f32),
    SetActive(usize, bool),
    SetBorn(usize, Option<(i64, i32)>),
    SetPhoto(usize, Option<Vec<u8>>),
    SetDog(usize, Option<usize>),
    SetDogName(usize, String),
    DogsInsert(usize, usize, usize),
    DogsSet(usize, usize, usize),
    DogsErase(usize, usize),
    DogsMove(usize, usize, usize),
    DogsClear(usize),
    TagsInsert(usize, usize, String),
    TagsSet(usize, usize, String),
    TagsErase(usize, usize),
    TagsMove(usize, usize, usize),
    TagsClear(usize),
    DeleteOldPeople(i64),
    Commit,
    Cancel,
}

/// Applies one operation inside the open write transaction; operations that cannot apply (no
/// object, an existing or deleted primary key) are skipped. `Commit` and `Cancel` end the
/// transaction and begin the next.
pub fn apply_op(realm: &Realm, op: &Op) {
    let people = realm.objects("Person").unwrap().to_vec().unwrap();
    let dogs = realm.objects("Dog").unwrap().to_vec().unwrap();
    let person = |i: usize| (!people.is_empty()).then(|| &people[i % people.len()]);
    let dog = |i: usize| (!dogs.is_empty()).then(|| &dogs[i % dogs.len()]);
    let slot = |i: usize, len: usize| (len > 0).then(|| i % len);
    match op {
        Op::CreatePerson(id) => match realm.create_object("Person", Some(&Value::Int(*id))) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.code(), ErrorCode::DuplicatePrimaryKey),
        },
        Op::CreateDog(name) => realm
            .create_object("Dog", None)
            .unwrap()
            .set("name", name.as_str())
            .unwrap(),
        Op::DeletePerson(i) => {
            if let Some(p) = person(*i) {
                p.delete().unwrap()
            }
        }
        Op::DeleteDog(i) => {
            if let Some(d) = dog(*i) {
                d.delete().unwrap()
            }
        }
        Op::SetName(i, s) => {
            if let Some(p) = person(*i) {
                p.set("name", s.clone()).unwrap()
            }
        }
        Op::SetAge(i, v) => {
            if let Some(p) = person(*i) {
                p.set("age", *v).unwrap()
            }
        }
        Op::AddAge(i, v) => {
            if let Some(p) = person(*i) {
                p.add_int("age", *v).unwrap()
            }
        }
        Op::SetScore(i, v) => {
            if let Some(p) = person(*i) {
                p.set("score", *v).unwrap()
            }
        }
        Op::SetRatio(i, v) => {
            if let Some(p) = person(*i) {
                p.set("ratio", *v).unwrap()
            }
        }
        Op::SetActive(i, v) => {
            if let Some(p) = person(*i) {
                p.set("active", *v).unwrap()
            }
        }
        Op::SetBorn(i, v) => {
            if let Some(p) = person(*i) {
                p.set("born", v.map(|(s, n)| Timestamp::new(s, n))).unwrap()
            }
        }
        Op::SetPhoto(i, v) => {
            if let Some(p) = person(*i) {
                p.set("photo", v.clone()).unwrap()
            }
        }
        Op::SetDog(i, d) => {
            if let Some(p) = person(*i) {
                let target = d.and_then(dog).map_or(Value::Null, |d| d.link());
                p.set("dog", target).unwrap()
            }
        }
        Op::SetDogName(i, s) => {
            if let Some(d) = dog(*i) {
                d.set("name", s.as_str()).unwrap()
            }
        }
        Op::DogsInsert(p, i, d) => {
            if let (Some(p), Some(d)) = (person(*p), dog(*d)) {
                let list = p.list("dogs").unwrap();
                let at = i % (list.len().unwrap() + 1);
                list.insert(at, d.link()).unwrap()
            }
        }
        Op::DogsSet(p, i, d) => {
            if let (Some(p), Some(d)) = (person(*p), dog(*d)) {
                let list = p.list("dogs").unwrap();
                if let Some(at) = slot(*i, list.len().unwrap()) {
                    list.set(at, d.link()).unwrap()
                }
            }
        }
        Op::DogsErase(p, i) => {
            if let Some(p) = person(*p) {
                let list = p.list("dogs").unwrap();
                if let Some(at) = slot(*i, list.len().unwrap()) {
                    list.erase(at).unwrap()
                }
            }
        }
        Op::DogsMove(p, a, b) => {
            if let Some(p) = person(*p) {
                let list = p.list("dogs").unwrap();
                let len = list.len().unwrap();
                if let (Some(a), Some(b)) = (slot(*a, len), slot(*b, len)) {
                    list.move_item(a, b).unwrap()
                }
            }
        }
        Op::DogsClear(p) => {
            if let Some(p) = person(*p) {
                p.list("dogs").unwrap().clear().unwrap()
            }
        }
        Op::TagsInsert(p, i, s) => {
            if let Some(p) = person(*p) {
                let list = p.list("tags").unwrap();
                let at = i % (list.len().unwrap() + 1);
                list.insert(at, s.as_str()).unwrap()
            }
        }
        Op::TagsSet(p, i, s) => {
            if let Some(p) = person(*p) {
                let list = p.list("tags").unwrap();
                if let Some(at) = slot(*i, list.len().unwrap()) {
                    list.set(at, s.as_str()).unwrap()
                }
            }
        }
        Op::TagsErase(p, i) => {
            if let Some(p) = person(*p) {
                let list = p.list("tags").unwrap();
                if let Some(at) = slot(*i, list.len().unwrap()) {
                    list.erase(at).unwrap()
                }
            }
        }
        Op::TagsMove(p, a, b) => {
            if let Some(p) = person(*p) {
                let list = p.list("tags").unwrap();
                let len = list.len().unwrap();
                if let (Some(a), Some(b)) = (slot(*a, len), slot(*b, len)) {
                    list.move_item(a, b).unwrap()
                }
            }
        }
        Op::TagsClear(p) => {
            if let Some(p) = person(*p) {
                p.list("tags").unwrap().clear().unwrap()
            }
        }
        Op::DeleteOldPeople(age) => {
            realm
                .query("Person", "age > $0", &[Value::Int(*age)])
                .unwrap()
                .delete_all()
                .unwrap();
        }
        Op::Commit => {
            realm.commit().unwrap();
            realm.begin_write().unwrap();
        }
        Op::Cancel => {
            realm.cancel_write().unwrap();
            realm.begin_write().unwrap();
        }
    }
}

//! The merge engine: changesets integrated from other replicas converge whatever the arrival
//! order. Targeted tests per merge rule, then a property test with several replicas, a
//! simulated server, random delivery delays and disconnects.

mod common;
use common::ops::{apply_op, Op};
use common::*;
use proptest::prelude::*;
use shoal::{
    changeset_header, Config, ErrorCode, PropertyFlags as F, PropertyType as T, Realm, Schema,
    Value,
};

fn merge_config(t: &TempRealm, schema: Schema) -> Config {
    let mut c = t.config(schema);
    c.set_merge_metadata(true);
    c
}

fn replica(t: &TempRealm) -> Realm {
    Realm::open(&merge_config(t, people_schema())).unwrap()
}

/// The changesets `realm` made itself after `after`.
fn local(realm: &Realm, after: u64) -> Vec<Vec<u8>> {
    realm
        .local_changesets_since(after)
        .unwrap()
        .into_iter()
        .map(|(_, b)| b)
        .collect()
}

/// Integrates every changeset of `from` into `to`.
fn pull(to: &Realm, from: &Realm) {
    for c in local(from, 0) {
        to.integrate_changeset(&c).unwrap();
    }
}

/// A copy of `bytes` with its stamp replaced (the header is `S 2 stamp origin`).
fn restamp(bytes: &[u8], stamp: u64) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[2..10].copy_from_slice(&stamp.to_le_bytes());
    b
}

fn write(realm: &Realm, f: impl FnOnce(&Realm)) -> Vec<u8> {
    let before = realm.version().unwrap();
    realm.begin_write().unwrap();
    f(realm);
    realm.commit().unwrap();
    let mut l = local(realm, before);
    assert_eq!(l.len(), 1);
    l.pop().unwrap()
}

fn person(realm: &Realm, id: i64) -> Option<shoal::Object> {
    realm.find_object("Person", &Value::Int(id)).unwrap()
}

/// A stamp later than any the test's realms made (one minute ahead).
fn future(ms_ahead: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (now + 60_000 + ms_ahead) << 16
}

/// Replicas A and B sharing one Person 1 (created by A), plus two fresh observers.
struct World {
    _t: Vec<TempRealm>,
    a: Realm,
    b: Realm,
    c: Realm,
    d: Realm,
}

fn world() -> World {
    let t: Vec<TempRealm> = (0..4).map(|_| TempRealm::new()).collect();
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| replica(&t[i]));
    write(&a, |r| {
        r.create_object("Person", Some(&Value::Int(1))).unwrap();
    });
    for r in [&b, &c, &d] {
        pull(r, &a);
    }
    World { _t: t, a, b, c, d }
}

/// Integrates `x` then `y` into `c` and `y` then `x` into `d`; asserts both copies are equal
/// and returns the dump. (For re-stamped changesets, whose authors' own metadata carries the
/// original stamps.)
fn observers(w: &World, x: &[u8], y: &[u8]) -> String {
    w.c.integrate_changeset(x).unwrap();
    w.c.integrate_changeset(y).unwrap();
    w.d.integrate_changeset(y).unwrap();
    w.d.integrate_changeset(x).unwrap();
    let dump = w.c.dump_json().unwrap();
    assert_eq!(w.d.dump_json().unwrap(), dump);
    dump
}

/// As [`observers`], and each changeset also goes to the author of the other: all four
/// copies must be equal.
fn both_orders(w: &World, x: &[u8], y: &[u8]) -> String {
    observers(w, x, y);
    w.a.integrate_changeset(y).unwrap();
    w.b.integrate_changeset(x).unwrap();
    let dump = w.a.dump_json().unwrap();
    for r in [&w.b, &w.c, &w.d] {
        assert_eq!(r.dump_json().unwrap(), dump);
    }
    dump
}

#[test]
fn changesets_carry_increasing_stamps_and_the_origin() {
    let t = TempRealm::new();
    let r = replica(&t);
    let me = r.replica_id().unwrap();
    let mut last = 0;
    for i in 0..5 {
        let c = write(&r, |r| {
            r.create_object("Person", Some(&Value::Int(i))).unwrap();
        });
        let (stamp, origin) = changeset_header(&c).unwrap();
        assert_eq!(origin, me);
        assert!(stamp > last);
        last = stamp;
    }
    // Plain realms stamp their changesets too.
    let u = TempRealm::new();
    let plain = open_people(&u);
    let (stamp, origin) = changeset_header(&plain.history_since(0).unwrap()[0].1).unwrap();
    assert!(stamp > 0);
    assert_eq!(origin, plain.replica_id().unwrap());
}

#[test]
fn integrating_needs_merge_metadata_and_refuses_own_or_unstamped_changesets() {
    let (t, u) = (TempRealm::new(), TempRealm::new());
    let plain = open_people(&t);
    let merging = replica(&u);
    let c = plain.history_since(0).unwrap()[0].1.clone();
    assert_eq!(
        plain.integrate_changeset(&c).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    let own = merging.history_since(0).unwrap()[0].1.clone();
    assert_eq!(
        merging.integrate_changeset(&own).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    // Format 1 (no stamp): AddClass "A".
    assert_eq!(
        merging
            .integrate_changeset(&[0x53, 1, 1, 0, 1, b'A'])
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
    // Integrating twice changes nothing; remote changesets are not "local".
    merging.integrate_changeset(&c).unwrap();
    let v = merging.version().unwrap();
    merging.integrate_changeset(&c).unwrap();
    assert_eq!(merging.version().unwrap(), v, "a duplicate is skipped");
    assert_eq!(local(&merging, 0).len(), 1);
    assert_eq!(merging.history_since(0).unwrap().len(), 2);
}

#[test]
fn a_merge_realm_keeps_its_unsent_changesets_and_lets_integrated_ones_go() {
    let (t, u) = (TempRealm::new(), TempRealm::new());
    let a = replica(&t);
    let written: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            write(&a, |r| {
                r.create_object("Person", Some(&Value::Int(i))).unwrap();
            })
        })
        .collect();
    // `a` never synced: nothing is acknowledged, so every local changeset stays.
    let all = local(&a, 0);
    assert_eq!(all.len(), 6, "the schema and five writes");
    assert_eq!(all[1..], written[..]);
    // A copy with no writes of its own (no schema) needs none of what it integrates; its
    // own later writes stay until acknowledged.
    let mut c = Config::new(u.path.clone());
    c.set_merge_metadata(true);
    let b = Realm::open(&c).unwrap();
    pull(&b, &a);
    let v = b.version().unwrap();
    assert_eq!(v, 6);
    assert_eq!(b.history_since(v - 1).unwrap().len(), 1);
    assert!(b.history_since(0).is_err());
    let mine: Vec<Vec<u8>> = (10..13)
        .map(|i| {
            write(&b, |r| {
                r.create_object("Person", Some(&Value::Int(i))).unwrap();
            })
        })
        .collect();
    pull(&a, &b);
    assert_eq!(local(&b, 0), mine);
    assert_eq!(a.dump_json().unwrap(), b.dump_json().unwrap());
}

#[test]
fn last_writer_wins_in_both_orders() {
    let w = world();
    let x = write(&w.a, |r| person(r, 1).unwrap().set("name", "a").unwrap());
    let y = write(&w.b, |r| person(r, 1).unwrap().set("name", "b").unwrap());
    let (x, y) = (restamp(&x, future(2)), restamp(&y, future(1)));
    observers(&w, &x, &y);
    assert_eq!(
        person(&w.c, 1).unwrap().get("name").unwrap(),
        Value::from("a"),
        "the later stamp wins even when it arrives first"
    );
}

#[test]
fn equal_stamps_are_ordered_by_origin() {
    let w = world();
    let x = write(&w.a, |r| person(r, 1).unwrap().set("age", 10).unwrap());
    let y = write(&w.b, |r| person(r, 1).unwrap().set("age", 20).unwrap());
    let (x, y) = (restamp(&x, future(1)), restamp(&y, future(1)));
    observers(&w, &x, &y);
    let winner = if w.a.replica_id().unwrap() > w.b.replica_id().unwrap() {
        10
    } else {
        20
    };
    assert_eq!(
        person(&w.d, 1).unwrap().get("age").unwrap(),
        Value::Int(winner)
    );
}

#[test]
fn delete_wins_over_concurrent_sets_in_both_orders() {
    let w = world();
    let x = write(&w.a, |r| person(r, 1).unwrap().delete().unwrap());
    let y = write(&w.b, |r| {
        let p = person(r, 1).unwrap();
        p.set("name", "late").unwrap();
        p.add_int("age", 4).unwrap();
    });
    // The set is even stamped after the delete: a delete is final.
    let (x, y) = (restamp(&x, future(1)), restamp(&y, future(2)));
    observers(&w, &x, &y);
    w.b.integrate_changeset(&x).unwrap();
    for r in [&w.a, &w.b, &w.c, &w.d] {
        assert!(person(r, 1).is_none());
    }
    // Creating the deleted key again is refused where deletes merge.
    w.a.begin_write().unwrap();
    assert_eq!(
        w.a.create_object("Person", Some(&Value::Int(1)))
            .unwrap_err()
            .code(),
        ErrorCode::DuplicatePrimaryKey
    );
    w.a.cancel_write().unwrap();
}

#[test]
fn links_to_a_deleted_object_become_null_in_both_orders() {
    let w = world();
    let dog = write(&w.a, |r| {
        r.create_object("Dog", None)
            .unwrap()
            .set("name", "Rex")
            .unwrap()
    });
    for r in [&w.b, &w.c, &w.d] {
        r.integrate_changeset(&dog).unwrap();
    }
    let x = write(&w.a, |r| {
        r.objects("Dog").unwrap().to_vec().unwrap()[0]
            .delete()
            .unwrap()
    });
    let y = write(&w.b, |r| {
        let d = r.objects("Dog").unwrap().to_vec().unwrap()[0].link();
        let p = person(r, 1).unwrap();
        p.set("dog", d.clone()).unwrap();
        p.list("dogs").unwrap().push(d).unwrap();
    });
    let (x, y) = (restamp(&x, future(1)), restamp(&y, future(2)));
    observers(&w, &x, &y);
    let p = person(&w.c, 1).unwrap();
    assert_eq!(p.get("dog").unwrap(), Value::Null);
    assert_eq!(p.list("dogs").unwrap().len().unwrap(), 0);
}

#[test]
fn counters_add_up_around_a_concurrent_set() {
    let w = world();
    let add5 = write(&w.a, |r| person(r, 1).unwrap().add_int("age", 5).unwrap());
    let add3 = write(&w.b, |r| person(r, 1).unwrap().add_int("age", 3).unwrap());
    let set = write(&w.c, |r| person(r, 1).unwrap().set("age", 100).unwrap());
    // add5 before the set, the set, then add3: 100 + 3.
    let (add5, set, add3) = (
        restamp(&add5, future(1)),
        restamp(&set, future(2)),
        restamp(&add3, future(3)),
    );
    let orders: [[&Vec<u8>; 3]; 3] = [
        [&add5, &set, &add3],
        [&add3, &set, &add5],
        [&set, &add3, &add5],
    ];
    let t: Vec<TempRealm> = (0..3).map(|_| TempRealm::new()).collect();
    for (i, order) in orders.iter().enumerate() {
        let r = replica(&t[i]);
        pull(&r, &w.a);
        for c in order {
            r.integrate_changeset(c).unwrap();
        }
        assert_eq!(
            person(&r, 1).unwrap().get("age").unwrap(),
            Value::Int(103),
            "order {i}"
        );
    }
    // Concurrent adds without a set all count.
    let w = world();
    let x = write(&w.a, |r| person(r, 1).unwrap().add_int("age", 5).unwrap());
    let y = write(&w.b, |r| person(r, 1).unwrap().add_int("age", -2).unwrap());
    both_orders(&w, &x, &y);
    assert_eq!(person(&w.a, 1).unwrap().get("age").unwrap(), Value::Int(3));
}

#[test]
fn the_same_primary_key_created_on_two_replicas_is_one_object() {
    let w = world();
    let x = write(&w.a, |r| {
        r.create_object("Person", Some(&Value::Int(7)))
            .unwrap()
            .set("name", "from a")
            .unwrap()
    });
    let y = write(&w.b, |r| {
        let p = r.create_object("Person", Some(&Value::Int(7))).unwrap();
        p.set("score", 2.5).unwrap();
    });
    both_orders(&w, &x, &y);
    assert_eq!(w.c.objects("Person").unwrap().count().unwrap(), 2);
    let p = person(&w.d, 7).unwrap();
    assert_eq!(p.get("name").unwrap(), Value::from("from a"));
    assert_eq!(p.get("score").unwrap(), Value::Double(2.5));
}

#[test]
fn schema_additions_from_two_replicas_merge() {
    let extended = |extra: &str| {
        let mut s = people_schema();
        s.add_class("Note", None).unwrap();
        s.add_property("Note", "text", T::String, F::NONE, None)
            .unwrap();
        s.add_property("Person", extra, T::Int, F::NULLABLE, None)
            .unwrap();
        s
    };
    let (t, u) = (TempRealm::new(), TempRealm::new());
    let a = Realm::open(&merge_config(&t, extended("a_only"))).unwrap();
    let b = Realm::open(&merge_config(&u, extended("b_only"))).unwrap();
    write(&a, |r| {
        r.create_object("Note", None)
            .unwrap()
            .set("text", "hi")
            .unwrap()
    });
    pull(&a, &b);
    pull(&b, &a);
    assert_eq!(a.dump_json().unwrap(), b.dump_json().unwrap());
    let schema = b.schema().unwrap();
    let person = schema.class("Person").unwrap();
    assert!(person.property("a_only").is_some() && person.property("b_only").is_some());
    assert_eq!(
        schema.classes().iter().filter(|c| c.name == "Note").count(),
        1
    );
}

fn tags(realm: &Realm) -> Vec<String> {
    let list = person(realm, 1).unwrap().list("tags").unwrap();
    (0..list.len().unwrap())
        .map(|i| match list.get(i).unwrap() {
            Value::String(s) => s,
            v => panic!("{v:?}"),
        })
        .collect()
}

fn push_tags(realm: &Realm, items: &[&str]) -> Vec<u8> {
    write(realm, |r| {
        let list = person(r, 1).unwrap().list("tags").unwrap();
        for i in items {
            list.push(*i).unwrap();
        }
    })
}

#[test]
fn concurrent_list_inserts_all_survive_in_the_same_order() {
    let w = world();
    let base = push_tags(&w.a, &["m"]);
    for r in [&w.b, &w.c, &w.d] {
        r.integrate_changeset(&base).unwrap();
    }
    // Both insert at the head and after "m", concurrently.
    let x = write(&w.a, |r| {
        let l = person(r, 1).unwrap().list("tags").unwrap();
        l.insert(0, "a0").unwrap();
        l.push("a1").unwrap();
        l.push("a2").unwrap();
    });
    let y = write(&w.b, |r| {
        let l = person(r, 1).unwrap().list("tags").unwrap();
        l.insert(0, "b0").unwrap();
        l.push("b1").unwrap();
    });
    both_orders(&w, &x, &y);
    let t = tags(&w.c);
    assert_eq!(t.len(), 6, "{t:?}");
    // Each replica's run stays together and in its own order.
    let pos = |s: &str| t.iter().position(|x| x == s).unwrap();
    assert!(pos("a0") < pos("m") && pos("b0") < pos("m"));
    assert!(pos("m") < pos("a1") && pos("a1") < pos("a2") && pos("m") < pos("b1"));
    assert_eq!(pos("a2"), pos("a1") + 1, "{t:?}");
}

#[test]
fn list_erase_and_move_apply_once_and_set_loses_to_erase() {
    let w = world();
    let base = push_tags(&w.a, &["p", "q", "r", "s"]);
    for r in [&w.b, &w.c, &w.d] {
        r.integrate_changeset(&base).unwrap();
    }
    // Both erase "q"; a moves "s" to the front; b sets "r" and "p".
    let x = write(&w.a, |r| {
        let l = person(r, 1).unwrap().list("tags").unwrap();
        l.erase(1).unwrap();
        l.move_item(2, 0).unwrap();
        l.erase(1).unwrap(); // "p"
    });
    let y = write(&w.b, |r| {
        let l = person(r, 1).unwrap().list("tags").unwrap();
        l.erase(1).unwrap();
        l.set(1, "R").unwrap();
        l.set(0, "P").unwrap();
    });
    both_orders(&w, &x, &y);
    assert_eq!(tags(&w.d), vec!["s", "R"]);
    // A concurrent clear erases only the elements its replica saw.
    let x = write(&w.a, |r| {
        person(r, 1).unwrap().list("tags").unwrap().clear().unwrap()
    });
    let y = push_tags(&w.b, &["new"]);
    both_orders(&w, &x, &y);
    assert_eq!(tags(&w.c), vec!["new"]);
}

#[test]
fn a_list_entry_naming_a_deleted_object_comes_back_when_set() {
    let w = world();
    let dogs = write(&w.a, |r| {
        for n in ["x", "y"] {
            r.create_object("Dog", None)
                .unwrap()
                .set("name", n)
                .unwrap();
        }
    });
    for r in [&w.b, &w.c, &w.d] {
        r.integrate_changeset(&dogs).unwrap();
    }
    let dog = |r: &Realm, n: &str| {
        r.query("Dog", "name == $0", &[Value::from(n)])
            .unwrap()
            .to_vec()
            .unwrap()[0]
            .clone()
    };
    let add = write(&w.a, |r| {
        let d = dog(r, "x").link();
        person(r, 1).unwrap().list("dogs").unwrap().push(d).unwrap();
    });
    for r in [&w.b, &w.c, &w.d] {
        r.integrate_changeset(&add).unwrap();
    }
    // b deletes dog x; a re-points the entry at y (a later set).
    let x = write(&w.b, |r| dog(r, "x").delete().unwrap());
    let y = write(&w.a, |r| {
        let d = dog(r, "y").link();
        person(r, 1)
            .unwrap()
            .list("dogs")
            .unwrap()
            .set(0, d)
            .unwrap();
    });
    both_orders(&w, &y, &x);
    assert_eq!(
        person(&w.c, 1)
            .unwrap()
            .list("dogs")
            .unwrap()
            .len()
            .unwrap(),
        1
    );
}

// ----- randomized: several replicas, a server, delays and disconnects -----

fn op_strategy() -> impl Strategy<Value = Op> {
    let ix = || 0usize..8;
    let text = || "[a-z]{0,4}";
    prop_oneof![
        3 => (0i64..8).prop_map(Op::CreatePerson),
        2 => text().prop_map(Op::CreateDog),
        1 => ix().prop_map(Op::DeletePerson),
        1 => ix().prop_map(Op::DeleteDog),
        2 => (ix(), proptest::option::of(text())).prop_map(|(i, s)| Op::SetName(i, s)),
        2 => (ix(), -100i64..100).prop_map(|(i, v)| Op::SetAge(i, v)),
        3 => (ix(), -10i64..10).prop_map(|(i, v)| Op::AddAge(i, v)),
        1 => (ix(), -1e3f64..1e3).prop_map(|(i, v)| Op::SetScore(i, v)),
        1 => (ix(), -1e3f32..1e3).prop_map(|(i, v)| Op::SetRatio(i, v)),
        1 => (ix(), any::<bool>()).prop_map(|(i, v)| Op::SetActive(i, v)),
        1 => (ix(), proptest::option::of((0i64..1_000_000, 0i32..1_000_000_000)))
            .prop_map(|(i, t)| Op::SetBorn(i, t)),
        1 => (ix(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4))).prop_map(|(i, b)| Op::SetPhoto(i, b)),
        2 => (ix(), proptest::option::of(ix())).prop_map(|(i, d)| Op::SetDog(i, d)),
        2 => (ix(), ix(), ix()).prop_map(|(p, i, d)| Op::DogsInsert(p, i, d)),
        1 => (ix(), ix()).prop_map(|(p, i)| Op::DogsErase(p, i)),
        1 => (ix(), ix(), ix()).prop_map(|(p, i, d)| Op::DogsSet(p, i, d)),
        1 => (ix(), ix(), ix()).prop_map(|(p, a, b)| Op::DogsMove(p, a, b)),
        1 => (ix(), ix()).prop_map(|(p, i)| Op::TagsErase(p, i)),
        2 => (ix(), ix(), text()).prop_map(|(p, i, s)| Op::TagsInsert(p, i, s)),
        1 => (ix(), ix(), text()).prop_map(|(p, i, s)| Op::TagsSet(p, i, s)),
        1 => (ix(), ix(), ix()).prop_map(|(p, a, b)| Op::TagsMove(p, a, b)),
        1 => ix().prop_map(Op::TagsClear),
    ]
}

/// One step of the simulation.
#[derive(Debug, Clone)]
enum Step {
    /// A replica commits a small transaction.
    Write(usize, Vec<Op>),
    /// A connected replica uploads what it committed since its last upload.
    Upload(usize),
    /// A connected replica integrates up to this many changesets it has not seen yet.
    Download(usize, usize),
    /// A replica disconnects or reconnects (no uploads or downloads while disconnected).
    Toggle(usize),
    /// A replica reopens with one more property (`extra0`..`extra2`, int?) on Person, or an
    /// `Extra{k}` class, under a higher schema version; the others may add the same.
    AddSchema(usize, u8),
    /// A replica sets an extra property if its schema has it.
    SetExtra(usize, usize, u8, i64),
}

const REPLICAS: usize = 3;

fn step_strategy() -> impl Strategy<Value = Step> {
    let r = || 0..REPLICAS;
    prop_oneof![
        5 => (r(), proptest::collection::vec(op_strategy(), 1..4)).prop_map(|(r, o)| Step::Write(r, o)),
        2 => r().prop_map(Step::Upload),
        3 => (r(), 1usize..4).prop_map(|(r, n)| Step::Download(r, n)),
        1 => r().prop_map(Step::Toggle),
        1 => (r(), 0u8..6).prop_map(|(r, k)| Step::AddSchema(r, k)),
        2 => (r(), 0usize..8, 0u8..3, -50i64..50).prop_map(|(r, i, k, v)| Step::SetExtra(r, i, k, v)),
    ]
}

struct Client {
    realm: Realm,
    id: u64,
    uploaded: u64,
    downloaded: usize,
    connected: bool,
}

impl Client {
    fn upload(&mut self, server: &mut Vec<(u64, Vec<u8>)>) {
        for (v, bytes) in self.realm.local_changesets_since(self.uploaded).unwrap() {
            server.push((self.id, bytes));
            self.uploaded = v;
        }
        self.uploaded = self.uploaded.max(self.realm.version().unwrap());
    }

    fn download(&mut self, server: &[(u64, Vec<u8>)], n: usize) {
        let mut done = 0;
        while done < n && self.downloaded < server.len() {
            let (origin, bytes) = &server[self.downloaded];
            self.downloaded += 1;
            if *origin != self.id {
                self.realm.integrate_changeset(bytes).unwrap();
                done += 1;
            }
        }
    }
}

fn simulate(steps: &[Step]) -> Vec<String> {
    let dirs: Vec<TempRealm> = (0..REPLICAS).map(|_| TempRealm::new()).collect();
    let mut clients: Vec<Client> = dirs
        .iter()
        .map(|t| {
            let realm = replica(t);
            Client {
                id: realm.replica_id().unwrap(),
                realm,
                uploaded: 0,
                downloaded: 0,
                connected: true,
            }
        })
        .collect();
    let mut server: Vec<(u64, Vec<u8>)> = Vec::new();
    for step in steps {
        match step {
            Step::Write(r, ops) => {
                let realm = &clients[*r].realm;
                realm.begin_write().unwrap();
                for op in ops {
                    apply_op(realm, op);
                }
                realm.commit().unwrap();
            }
            Step::Upload(r) if clients[*r].connected => clients[*r].upload(&mut server),
            Step::Download(r, n) if clients[*r].connected => clients[*r].download(&server, *n),
            Step::Toggle(r) => clients[*r].connected = !clients[*r].connected,
            Step::AddSchema(r, k) => {
                let realm = &clients[*r].realm;
                let mut schema = realm.schema().unwrap();
                let added = if *k < 3 {
                    schema.add_property("Person", &format!("extra{k}"), T::Int, F::NULLABLE, None)
                } else {
                    let class = format!("Extra{k}");
                    schema
                        .add_class(&class, None)
                        .and_then(|()| schema.add_property(&class, "v", T::String, F::NONE, None))
                };
                if added.is_ok() {
                    let version = realm.schema_version().unwrap() + 1;
                    realm.close();
                    let mut config = merge_config(&dirs[*r], schema);
                    config
                        .set_schema_version(version)
                        .set_migration(|_, _, _| Ok(()));
                    clients[*r].realm = Realm::open(&config).unwrap();
                }
            }
            Step::SetExtra(r, i, k, v) => {
                let realm = &clients[*r].realm;
                let people = realm.objects("Person").unwrap().to_vec().unwrap();
                let name = format!("extra{k}");
                let has = realm
                    .schema()
                    .unwrap()
                    .class("Person")
                    .unwrap()
                    .property(&name)
                    .is_some();
                if has && !people.is_empty() {
                    realm.begin_write().unwrap();
                    people[i % people.len()].set(&name, *v).unwrap();
                    realm.commit().unwrap();
                }
            }
            _ => {}
        }
    }
    // Everyone reconnects and syncs until the server has everything.
    for c in clients.iter_mut() {
        c.connected = true;
        c.upload(&mut server);
    }
    for c in clients.iter_mut() {
        c.download(&server, usize::MAX);
    }
    clients
        .iter()
        .map(|c| c.realm.dump_json().unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn replicas_converge_whatever_the_delivery_order(steps in proptest::collection::vec(step_strategy(), 1..60)) {
        let dumps = simulate(&steps);
        for d in &dumps[1..] {
            prop_assert_eq!(d, &dumps[0]);
        }
    }
}

#[test]
fn a_batch_of_changesets_integrates_in_one_transaction_or_not_at_all() {
    let (ta, tb) = (TempRealm::new(), TempRealm::new());
    let (a, b) = (replica(&ta), replica(&tb));
    let c1 = write(&a, |r| {
        r.create_object("Person", Some(&Value::Int(1))).unwrap();
    });
    let c2 = write(&a, |r| {
        person(r, 1).unwrap().set("age", 7).unwrap();
    });
    let before = b.version().unwrap();
    // A malformed changeset anywhere in the batch: nothing of it is applied.
    let bad = vec![0x53, 2, 1];
    let e = b.integrate_changesets(&[&c1, &bad]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    b.refresh().unwrap();
    assert_eq!(b.version().unwrap(), before);
    assert!(person(&b, 1).is_none());
    // A good batch: one commit, every changeset recorded as it came.
    b.integrate_changesets(&[&c1, &c2]).unwrap();
    b.refresh().unwrap();
    assert_eq!(b.version().unwrap(), before + 2);
    assert_eq!(person(&b, 1).unwrap().get("age").unwrap(), Value::Int(7));
    let history: Vec<Vec<u8>> = b
        .history_since(before)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(history, vec![c1.clone(), c2.clone()]);
    // Again: already integrated, nothing changes.
    b.integrate_changesets(&[&c1, &c2]).unwrap();
    assert_eq!(a.dump_json().unwrap(), b.dump_json().unwrap());
}

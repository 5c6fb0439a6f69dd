//! Fine-grained notifications: results, lists and objects report exactly what a commit
//! deleted, inserted, modified and moved; the first callback is the initial state; delivery
//! runs on the app's scheduler when it has one; sync downloads notify like local commits.

mod common;
use common::server::{Server, APP_ID, WAIT};
use common::*;
use shoal::{
    App, AppScheduler, ChangeToken, CollectionChanges, Config, Credentials, ObjectChange, Realm,
    SyncConfig, Value,
};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

fn next<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(PATIENCE)
        .expect("a notification within the time limit")
}

/// Nothing more arrives for a while (used after the last expected callback).
fn quiet<T: std::fmt::Debug>(rx: &Receiver<T>) {
    if let Ok(extra) = rx.recv_timeout(Duration::from_millis(300)) {
        panic!("unexpected notification: {extra:?}");
    }
}

fn watch_results(results: &shoal::Results) -> (ChangeToken, Receiver<CollectionChanges>) {
    let (tx, rx) = mpsc::channel();
    let token = results
        .observe(move |c| {
            let _ = tx.send(c.clone());
        })
        .unwrap();
    let first = next(&rx);
    assert!(first.initial, "the first callback is the initial state");
    assert!(first.deletions.is_empty() && first.insertions.is_empty());
    (token, rx)
}

fn person(realm: &Realm, id: i64, age: i64) -> shoal::Object {
    let p = realm
        .create_object("Person", Some(&Value::Int(id)))
        .unwrap();
    p.set("age", Value::Int(age)).unwrap();
    p
}

fn find(realm: &Realm, id: i64) -> shoal::Object {
    realm
        .find_object("Person", &Value::Int(id))
        .unwrap()
        .expect("the person exists")
}

fn write(realm: &Realm, f: impl FnOnce()) {
    realm.begin_write().unwrap();
    f();
    realm.commit().unwrap();
}

#[test]
fn one_commit_that_deletes_inserts_and_modifies_gives_exactly_those_indices() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    // ids 1..=6 with ages: 1:5 2:20 3:30 4:40 5:50 6:60
    write(&realm, || {
        for (id, age) in [(1, 5), (2, 20), (3, 30), (4, 40), (5, 50), (6, 60)] {
            person(&realm, id, age);
        }
    });
    let adults = realm.query("Person", "age > 10", &[]).unwrap();
    let (_token, rx) = watch_results(&adults);
    // Old results: [2, 3, 4, 5, 6] (key order).
    write(&realm, || {
        find(&realm, 3).delete().unwrap(); // deleted: old index 1
        find(&realm, 5).set("age", Value::Int(7)).unwrap(); // leaves: old index 3
        find(&realm, 1).set("age", Value::Int(70)).unwrap(); // enters: new index 0
        find(&realm, 4).set("name", Value::from("Ann")).unwrap(); // modified in place
        person(&realm, 7, 99); // inserted at the end
        person(&realm, 8, 1); // created, does not match
    });
    let c = next(&rx);
    // New results: [1, 2, 4, 6, 7].
    assert_eq!(c.deletions, vec![1, 3]);
    assert_eq!(c.insertions, vec![0, 4]);
    assert_eq!(c.modifications, vec![2]);
    assert_eq!(c.modifications_old, vec![2]);
    assert!(c.moves.is_empty());
    assert!(!c.initial);
    assert_eq!(c.version, realm.version().unwrap());
    // The handle moved to the notified version: reads agree with the indices.
    assert_eq!(adults.count().unwrap(), 5);
    assert_eq!(
        adults.get(2).unwrap().get("name").unwrap(),
        Value::from("Ann")
    );
    quiet(&rx);
}

#[test]
fn commits_that_do_not_touch_the_results_do_not_call_back() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    write(&realm, || {
        person(&realm, 1, 20);
    });
    let adults = realm.query("Person", "age > 10", &[]).unwrap();
    let (_token, rx) = watch_results(&adults);
    // Another class.
    write(&realm, || {
        realm.create_object("Dog", None).unwrap();
    });
    // The class, but no object of the results and no new match.
    write(&realm, || {
        person(&realm, 2, 3);
    });
    quiet(&rx);
    write(&realm, || {
        find(&realm, 2).set("age", Value::Int(30)).unwrap();
    });
    assert_eq!(next(&rx).insertions, vec![1]);
}

#[test]
fn sorted_results_report_moves() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    write(&realm, || {
        for (id, age) in [(1, 10), (2, 20), (3, 30), (4, 40)] {
            person(&realm, id, age);
        }
    });
    let by_age = realm.objects("Person").unwrap().sort("age", true).unwrap();
    let (_token, rx) = watch_results(&by_age);
    write(&realm, || {
        find(&realm, 1).set("age", Value::Int(35)).unwrap(); // [2, 3, 1, 4]
        find(&realm, 4).set("name", Value::from("Dan")).unwrap();
    });
    let c = next(&rx);
    assert_eq!(c.moves, vec![(0, 2)]);
    assert_eq!(c.deletions, vec![0]);
    assert_eq!(c.insertions, vec![2]);
    assert_eq!(c.modifications, vec![3], "4 stayed in place and changed");
    let ids: Vec<Value> = (0..4)
        .map(|i| by_age.get(i).unwrap().get("id").unwrap())
        .collect();
    assert_eq!(ids, [2, 3, 1, 4].map(Value::Int).to_vec());
}

#[test]
fn filters_through_links_see_changes_of_the_linked_objects() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let dog = {
        realm.begin_write().unwrap();
        let d = realm.create_object("Dog", None).unwrap();
        d.set("name", Value::from("Rex")).unwrap();
        let p = person(&realm, 1, 30);
        p.set("dog", d.link()).unwrap();
        realm.commit().unwrap();
        d
    };
    let rex_owners = realm.query("Person", "dog.name == 'Rex'", &[]).unwrap();
    let (_token, rx) = watch_results(&rex_owners);
    write(&realm, || dog.set("name", Value::from("Max")).unwrap());
    assert_eq!(next(&rx).deletions, vec![0]);
}

#[test]
fn list_notifications_report_inserts_erases_sets_and_moves() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let p = {
        realm.begin_write().unwrap();
        let p = person(&realm, 1, 30);
        let tags = p.list("tags").unwrap();
        for t in ["a", "b", "c", "d"] {
            tags.push(Value::from(t)).unwrap();
        }
        realm.commit().unwrap();
        p
    };
    let tags = p.list("tags").unwrap();
    let (tx, rx) = mpsc::channel();
    let _token = tags
        .observe(move |c| {
            let _ = tx.send(c.clone());
        })
        .unwrap();
    assert!(next(&rx).initial);

    write(&realm, || tags.move_item(0, 3).unwrap()); // [b c d a]
    let c = next(&rx);
    assert_eq!(c.moves, vec![(0, 3)]);
    assert_eq!(
        (c.deletions.clone(), c.insertions.clone()),
        (vec![0], vec![3])
    );

    write(&realm, || {
        tags.insert(0, Value::from("z")).unwrap(); // [z b c d a]
        tags.erase(2).unwrap(); // [z b d a]  (old index 1: c)
        tags.set(1, Value::from("B")).unwrap(); // [z B d a]
    });
    let c = next(&rx);
    assert_eq!(c.insertions, vec![0]);
    assert_eq!(c.deletions, vec![1]);
    assert_eq!(c.modifications, vec![1]);
    assert_eq!(c.modifications_old, vec![0]);
    assert!(c.moves.is_empty());

    // Another list of the same object does not notify this one.
    write(&realm, || {
        p.list("dogs")
            .unwrap()
            .push(realm.create_object("Dog", None).unwrap().link())
            .unwrap()
    });
    quiet(&rx);

    write(&realm, || p.delete().unwrap());
    let c = next(&rx);
    assert!(c.collection_deleted);
    assert_eq!(c.deletions, vec![0, 1, 2, 3]);
    quiet(&rx);
}

#[test]
fn a_list_of_links_reports_changes_of_the_linked_objects_as_modifications() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = person(&realm, 1, 30);
    let dogs = p.list("dogs").unwrap();
    let d: Vec<shoal::Object> = (0..3)
        .map(|_| realm.create_object("Dog", None).unwrap())
        .collect();
    for dog in &d {
        dogs.push(dog.link()).unwrap();
    }
    realm.commit().unwrap();
    let (tx, rx) = mpsc::channel();
    let _token = dogs
        .observe(move |c| {
            let _ = tx.send(c.clone());
        })
        .unwrap();
    assert!(next(&rx).initial);
    write(&realm, || d[2].set("name", Value::from("Rex")).unwrap());
    assert_eq!(next(&rx).modifications, vec![2]);
    // Deleting a linked object removes it from the list.
    write(&realm, || d[0].delete().unwrap());
    let c = next(&rx);
    assert_eq!(c.deletions, vec![0]);
    assert!(c.insertions.is_empty());
}

#[test]
fn object_notifications_name_the_changed_properties_then_the_deletion() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = person(&realm, 1, 30);
    let other = person(&realm, 2, 40);
    realm.commit().unwrap();
    let (tx, rx) = mpsc::channel::<ObjectChange>();
    let _token = p
        .observe(move |c| {
            let _ = tx.send(c.clone());
        })
        .unwrap();
    assert!(next(&rx).initial);
    write(&realm, || {
        p.set("name", Value::from("Ann")).unwrap();
        p.set("age", Value::Int(31)).unwrap();
        p.list("tags").unwrap().push(Value::from("x")).unwrap();
    });
    let c = next(&rx);
    assert_eq!(c.changed_names, vec!["name", "age", "tags"]);
    assert_eq!(
        c.changed,
        vec![
            realm.property_key("Person", "name").unwrap(),
            realm.property_key("Person", "age").unwrap(),
            realm.property_key("Person", "tags").unwrap(),
        ]
    );
    assert!(!c.deleted);
    // Another object's change is not this object's.
    write(&realm, || other.set("age", Value::Int(41)).unwrap());
    quiet(&rx);
    write(&realm, || p.delete().unwrap());
    assert!(next(&rx).deleted);
    write(&realm, || other.set("age", Value::Int(42)).unwrap());
    quiet(&rx);
}

#[test]
fn notifications_wait_for_the_app_to_perform_work_on_its_own_thread() {
    let t = TempRealm::new();
    let (wake_tx, wake_rx) = mpsc::channel::<()>();
    let scheduler = AppScheduler::new(move || {
        let _ = wake_tx.send(());
    });
    let mut config = t.config(people_schema());
    config.set_scheduler(scheduler.clone());
    let realm = Realm::open(&config).unwrap();
    let all = realm.objects("Person").unwrap();
    let app_thread = std::thread::current().id();
    let (tx, rx) = mpsc::channel();
    let _token = all
        .observe(move |c| {
            let _ = tx.send((std::thread::current().id(), c.clone()));
        })
        .unwrap();
    // The initial state waits for the app.
    next(&wake_rx);
    assert!(rx.try_recv().is_err(), "nothing runs before perform_work");
    assert_eq!(scheduler.perform_work(), 1);
    let (thread, initial) = rx.try_recv().expect("delivered by perform_work");
    assert_eq!(thread, app_thread);
    assert!(initial.initial);

    write(&realm, || {
        person(&realm, 1, 20);
    });
    next(&wake_rx);
    assert!(rx.try_recv().is_err());
    scheduler.perform_work();
    let (thread, c) = rx.try_recv().expect("delivered by perform_work");
    assert_eq!(thread, app_thread);
    assert_eq!(c.insertions, vec![0]);

    // The realm-wide callback goes through the scheduler too.
    let (vtx, vrx) = mpsc::channel();
    let _realm_token = realm
        .add_change_callback(move |v| {
            let _ = vtx.send((std::thread::current().id(), v));
        })
        .unwrap();
    write(&realm, || {
        person(&realm, 2, 20);
    });
    next(&wake_rx);
    scheduler.perform_work();
    let (thread, v) = vrx.try_recv().expect("delivered by perform_work");
    assert_eq!((thread, v), (app_thread, realm.version().unwrap()));
}

#[test]
fn dropping_the_token_stops_notifications_even_when_work_is_queued() {
    let t = TempRealm::new();
    let scheduler = AppScheduler::new(|| {});
    let mut config = t.config(people_schema());
    config.set_scheduler(scheduler.clone());
    let realm = Realm::open(&config).unwrap();
    let all = realm.objects("Person").unwrap();
    let (tx, rx) = mpsc::channel();
    let token = all
        .observe(move |c| {
            let _ = tx.send(c.clone());
        })
        .unwrap();
    let wait_queued = || {
        let deadline = std::time::Instant::now() + PATIENCE;
        while scheduler.pending() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(scheduler.pending(), 1);
    };
    wait_queued();
    scheduler.perform_work();
    assert!(next(&rx).initial);
    write(&realm, || {
        person(&realm, 1, 20);
    });
    // The notifier has queued the callback; the token goes before the app runs it.
    wait_queued();
    drop(token);
    scheduler.perform_work();
    assert!(rx.try_recv().is_err());
}

#[test]
fn changes_downloaded_by_sync_notify_like_local_ones() {
    let server = Server::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (app_a, app_b) = (
        App::new(dir_a.path(), APP_ID).unwrap(),
        App::new(dir_b.path(), APP_ID).unwrap(),
    );
    let name = format!("fg-{}", std::process::id());
    let creds = |register| Credentials::password(&name, "myPassw0rd", register).unwrap();
    let ua = app_a.login(&creds(true), &server.auth_url()).unwrap();
    let ub = app_b.login(&creds(false), &server.auth_url()).unwrap();
    let url = format!("realm://{}/~/people", server.addr);
    let open = |user: &shoal::User| {
        let mut c = Config::new("unused");
        c.set_schema(people_schema()).unwrap();
        c.set_sync(SyncConfig::new(user, &url).unwrap());
        Realm::open(&c).unwrap()
    };
    let (ra, rb) = (open(&ua), open(&ub));
    write(&ra, || {
        for id in 1..=3 {
            person(&ra, id, id * 10);
        }
        let tags = find(&ra, 1).list("tags").unwrap();
        tags.push(Value::from("a")).unwrap();
        tags.push(Value::from("b")).unwrap();
    });
    ra.session().unwrap().wait_for_upload(WAIT).unwrap();
    rb.session().unwrap().wait_for_download(WAIT).unwrap();
    rb.refresh().unwrap();

    let results = rb.query("Person", "age >= 20", &[]).unwrap();
    let (_rt, results_rx) = watch_results(&results);
    let tags = find(&rb, 1).list("tags").unwrap();
    let (ltx, lrx) = mpsc::channel();
    let _lt = tags
        .observe(move |c| {
            let _ = ltx.send(c.clone());
        })
        .unwrap();
    assert!(next(&lrx).initial);
    let (otx, orx) = mpsc::channel();
    let _ot = find(&rb, 2)
        .observe(move |c| {
            let _ = otx.send(c.clone());
        })
        .unwrap();
    assert!(next(&orx).initial);

    // Device A: delete 3, modify 2, insert 4; insert at the head of the list and set its last.
    write(&ra, || {
        find(&ra, 3).delete().unwrap();
        find(&ra, 2).set("name", Value::from("Bo")).unwrap();
        person(&ra, 4, 40);
        let tags = find(&ra, 1).list("tags").unwrap();
        tags.insert(0, Value::from("z")).unwrap();
        tags.set(2, Value::from("B")).unwrap();
    });
    ra.session().unwrap().wait_for_upload(WAIT).unwrap();

    // Old results [2, 3] -> new [2, 4].
    let c = next(&results_rx);
    assert_eq!(c.deletions, vec![1]);
    assert_eq!(c.insertions, vec![1]);
    assert_eq!(c.modifications, vec![0]);
    let c = next(&lrx);
    assert_eq!(c.insertions, vec![0]);
    assert_eq!(c.modifications, vec![2]);
    assert!(c.deletions.is_empty());
    let c = next(&orx);
    assert_eq!(c.changed_names, vec!["name"]);
    assert_eq!(
        tags.to_vec().unwrap(),
        vec![Value::from("z"), Value::from("a"), Value::from("B")]
    );
}

#[test]
fn list_and_object_observers_on_one_object_through_an_app_scheduler() {
    let t = TempRealm::new();
    let scheduler = AppScheduler::new(|| {});
    let mut config = t.config(people_schema());
    config.set_scheduler(scheduler.clone());
    let realm = Realm::open(&config).unwrap();
    write(&realm, || {
        person(&realm, 1, 10);
    });
    let p = find(&realm, 1);
    let (otx, orx) = mpsc::channel();
    let _ot = p
        .observe(move |c| {
            let _ = otx.send(c.clone());
        })
        .unwrap();
    let tags = p.list("tags").unwrap();
    write(&realm, || {
        for t in ["a", "b", "c"] {
            tags.push(Value::from(t)).unwrap();
        }
    });
    let (ltx, lrx) = mpsc::channel();
    let _lt = tags
        .observe(move |c| {
            let _ = ltx.send(c.clone());
        })
        .unwrap();
    let pump_until = |done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + PATIENCE;
        while !done() && std::time::Instant::now() < deadline {
            scheduler.perform_work();
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let lists = std::cell::RefCell::new(Vec::new());
    pump_until(&|| {
        lists.borrow_mut().extend(lrx.try_iter());
        !lists.borrow().is_empty()
    });
    assert!(lists.borrow()[0].initial);
    write(&realm, || tags.move_item(0, 2).unwrap());
    pump_until(&|| {
        lists.borrow_mut().extend(lrx.try_iter());
        lists.borrow().len() == 2
    });
    assert_eq!(lists.borrow().len(), 2);
    assert_eq!(lists.borrow()[1].moves, vec![(0, 2)]);
    let objects: Vec<ObjectChange> = orx.try_iter().collect();
    assert!(objects[0].initial);
    assert_eq!(objects.last().unwrap().changed_names, vec!["tags"]);
}

/// Applies a change set to a mirror of the results' ids: deletions (descending), then
/// insertions (ascending) with the ids the results now hold there.
fn apply(mirror: &mut Vec<i64>, c: &CollectionChanges, now: &[i64]) {
    for &i in c.deletions.iter().rev() {
        mirror.remove(i);
    }
    for &i in &c.insertions {
        mirror.insert(i, now[i]);
    }
}

#[test]
fn change_sets_replayed_on_a_mirror_give_the_results_after_random_commits() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let queries: Vec<shoal::Results> = vec![
        realm.query("Person", "age > 30", &[]).unwrap(),
        realm
            .query("Person", "age > 30", &[])
            .unwrap()
            .sort("age", true)
            .unwrap(),
        realm
            .objects("Person")
            .unwrap()
            .sort("score", false)
            .unwrap()
            .sort("age", true)
            .unwrap(),
        realm.query("Person", "dog.age > 5", &[]).unwrap(),
        realm.objects("Person").unwrap().distinct("age").unwrap(),
    ];
    let ids = |r: &shoal::Results| -> Vec<i64> {
        r.to_vec()
            .unwrap()
            .iter()
            .map(|o| match o.get("id").unwrap() {
                Value::Int(i) => i,
                other => panic!("id {other:?}"),
            })
            .collect()
    };
    let mut watchers = Vec::new();
    for q in &queries {
        let (token, rx) = watch_results(q);
        watchers.push((token, rx, ids(q)));
    }
    let mut seed: u64 = 0x5eed;
    let mut rand = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut next_id = 0i64;
    let mut dogs = Vec::new();
    for _round in 0..60 {
        realm.begin_write().unwrap();
        for _ in 0..1 + rand(6) {
            let live: Vec<i64> = ids(&realm.objects("Person").unwrap());
            match rand(5) {
                0 | 1 => {
                    let p = person(&realm, next_id, rand(60) as i64);
                    p.set("score", Value::Double(rand(5) as f64)).unwrap();
                    if rand(2) == 0 {
                        let d = realm.create_object("Dog", None).unwrap();
                        d.set("age", Value::Int(rand(10) as i64)).unwrap();
                        p.set("dog", d.link()).unwrap();
                        dogs.push(d);
                    }
                    next_id += 1;
                }
                2 if !live.is_empty() => {
                    find(&realm, live[rand(live.len() as u64) as usize])
                        .set("age", Value::Int(rand(60) as i64))
                        .unwrap();
                }
                3 if !live.is_empty() => {
                    find(&realm, live[rand(live.len() as u64) as usize])
                        .delete()
                        .unwrap();
                }
                _ if !dogs.is_empty() => {
                    let d = &dogs[rand(dogs.len() as u64) as usize];
                    if d.is_valid() {
                        d.set("age", Value::Int(rand(10) as i64)).unwrap();
                    }
                }
                _ => {}
            }
        }
        realm.commit().unwrap();
        let version = realm.version().unwrap();
        for (q, (_token, rx, mirror)) in queries.iter().zip(watchers.iter_mut()) {
            let now = ids(q);
            // Notifications until this version (none when nothing the results read changed).
            while let Ok(c) = rx.recv_timeout(Duration::from_millis(if *mirror == now {
                50
            } else {
                PATIENCE.as_millis() as u64
            })) {
                apply(mirror, &c, &now);
                if c.version >= version {
                    break;
                }
            }
            assert_eq!(*mirror, now, "replayed change sets agree with the results");
        }
    }
}

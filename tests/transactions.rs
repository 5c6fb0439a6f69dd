//! Transactions: one writer per file, unblocked readers, snapshots, many handles and threads,
//! cancel, close, deleting files, and a second process.

mod common;
use common::*;
use shoal::{delete_realm_files, Config, ErrorCode, Realm, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

/// Long enough that a working implementation never hits it; only a hang would.
const PATIENCE: Duration = Duration::from_secs(30);

fn person_count(realm: &Realm) -> usize {
    realm.objects("Person").unwrap().count().unwrap()
}

#[test]
fn a_second_writer_waits_until_the_first_commits() {
    let t = TempRealm::new();
    let first = open_people(&t);
    let second = open_people(&t);
    first.begin_write().unwrap();
    first.create_object("Person", Some(&Value::Int(1))).unwrap();

    let (trying_tx, trying_rx) = mpsc::channel();
    let (acquired_tx, acquired_rx) = mpsc::channel();
    let first_committed = Arc::new(AtomicBool::new(false));
    let committed_seen = first_committed.clone();
    let writer = thread::spawn(move || {
        trying_tx.send(()).unwrap();
        second.begin_write().unwrap();
        // The first writer's flag is set before its commit starts, so if this transaction
        // could begin while the first was open, the object would be missing here.
        let saw_flag = committed_seen.load(Ordering::SeqCst);
        let saw_object = second
            .find_object("Person", &Value::Int(1))
            .unwrap()
            .is_some();
        second
            .create_object("Person", Some(&Value::Int(2)))
            .unwrap();
        second.commit().unwrap();
        acquired_tx.send((saw_flag, saw_object)).unwrap();
    });
    trying_rx.recv_timeout(PATIENCE).unwrap();
    // The second writer must not get in while the first holds the write lock.
    assert!(matches!(
        acquired_rx.recv_timeout(Duration::from_millis(200)),
        Err(mpsc::RecvTimeoutError::Timeout)
    ));
    first.create_object("Person", Some(&Value::Int(3))).unwrap();
    first_committed.store(true, Ordering::SeqCst);
    first.commit().unwrap();
    let (saw_flag, saw_object) = acquired_rx
        .recv_timeout(PATIENCE)
        .expect("the second writer got in after the commit");
    assert!(
        saw_flag,
        "the second write began before the first committed"
    );
    assert!(
        saw_object,
        "the second write transaction must start from the first one's commit"
    );
    writer.join().unwrap();
    first.refresh().unwrap();
    assert_eq!(person_count(&first), 3);
}

#[test]
fn a_second_writer_proceeds_after_the_first_cancels() {
    let t = TempRealm::new();
    let first = open_people(&t);
    let second = open_people(&t);
    first.begin_write().unwrap();
    first.create_object("Person", Some(&Value::Int(1))).unwrap();
    let (tx, rx) = mpsc::channel();
    let writer = thread::spawn(move || {
        second.begin_write().unwrap();
        let seen = second
            .find_object("Person", &Value::Int(1))
            .unwrap()
            .is_some();
        second.cancel_write().unwrap();
        tx.send(seen).unwrap();
    });
    first.cancel_write().unwrap();
    assert!(
        !rx.recv_timeout(PATIENCE).unwrap(),
        "a cancelled object is never seen"
    );
    writer.join().unwrap();
}

#[test]
fn concurrent_writers_never_lose_updates() {
    let t = TempRealm::new();
    {
        let realm = open_people(&t);
        realm.begin_write().unwrap();
        realm.create_object("Person", Some(&Value::Int(0))).unwrap();
        realm.commit().unwrap();
    }
    const THREADS: usize = 8;
    const ROUNDS: i64 = 25;
    let shared = open_people(&t);
    let start = Arc::new(Barrier::new(THREADS));
    let mut handles = Vec::new();
    for n in 0..THREADS {
        let start = start.clone();
        // Half the threads open their own handle, half share one handle through clones.
        let realm = if n % 2 == 0 {
            open_people(&t)
        } else {
            shared.clone()
        };
        let own = n % 2 == 0;
        handles.push(thread::spawn(move || {
            start.wait();
            for _ in 0..ROUNDS {
                if own {
                    realm.begin_write().unwrap();
                } else {
                    // A shared handle holds one transaction at a time: wait for our turn.
                    loop {
                        match realm.begin_write() {
                            Ok(()) => break,
                            Err(e) if e.code() == ErrorCode::AlreadyInWriteTransaction => {
                                thread::yield_now()
                            }
                            Err(e) => panic!("begin_write: {e}"),
                        }
                    }
                }
                // Read-modify-write: only correct if writers are serialized.
                let p = realm
                    .find_object("Person", &Value::Int(0))
                    .unwrap()
                    .unwrap();
                let age = p.get("age").unwrap().as_int().unwrap();
                p.set("age", age + 1).unwrap();
                realm.commit().unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let realm = open_people(&t);
    let p = realm
        .find_object("Person", &Value::Int(0))
        .unwrap()
        .unwrap();
    assert_eq!(p.get("age").unwrap(), Value::Int(THREADS as i64 * ROUNDS));
    assert_eq!(
        realm.version().unwrap(),
        2 + THREADS as u64 * ROUNDS as u64,
        "one changeset each: schema, create, one per round"
    );
}

#[test]
fn readers_are_not_blocked_by_an_open_write_and_see_the_old_snapshot() {
    let t = TempRealm::new();
    let writer = open_people(&t);
    writer.begin_write().unwrap();
    writer
        .create_object("Person", Some(&Value::Int(1)))
        .unwrap();
    writer.commit().unwrap();

    writer.begin_write().unwrap();
    writer
        .create_object("Person", Some(&Value::Int(2)))
        .unwrap();
    writer
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .unwrap()
        .set("age", 99)
        .unwrap();
    assert_eq!(person_count(&writer), 2, "the writer sees its own changes");

    // A reader on this thread, through another handle.
    let reader = open_people(&t);
    assert_eq!(person_count(&reader), 1);
    assert!(
        !reader.refresh().unwrap(),
        "uncommitted changes are not a new version"
    );
    assert_eq!(person_count(&reader), 1);
    assert_eq!(
        reader
            .find_object("Person", &Value::Int(1))
            .unwrap()
            .unwrap()
            .get("age")
            .unwrap(),
        Value::Int(0)
    );
    assert_eq!(
        reader
            .query("Person", "age == 99", &[])
            .unwrap()
            .count()
            .unwrap(),
        0
    );

    // Readers on other threads, while the write is still open.
    let mut threads = Vec::new();
    for _ in 0..4 {
        let t_path = t.path.clone();
        threads.push(thread::spawn(move || {
            let mut c = Config::new(t_path);
            c.set_schema(people_schema()).unwrap();
            let r = Realm::open(&c).unwrap();
            let n = r.objects("Person").unwrap().count().unwrap();
            let age = r
                .find_object("Person", &Value::Int(1))
                .unwrap()
                .unwrap()
                .get("age")
                .unwrap();
            (n, age)
        }));
    }
    let (tx, rx) = mpsc::channel();
    for h in threads {
        let tx = tx.clone();
        thread::spawn(move || tx.send(h.join().unwrap()).unwrap());
    }
    for _ in 0..4 {
        // A blocked reader would hang here while the write stays open.
        assert_eq!(
            rx.recv_timeout(PATIENCE)
                .expect("a reader was blocked by the writer"),
            (1, Value::Int(0))
        );
    }
    writer.commit().unwrap();
    assert_eq!(
        person_count(&reader),
        1,
        "still the old snapshot until refresh"
    );
    assert!(reader.refresh().unwrap());
    assert_eq!(person_count(&reader), 2);
    assert_eq!(
        reader
            .find_object("Person", &Value::Int(1))
            .unwrap()
            .unwrap()
            .get("age")
            .unwrap(),
        Value::Int(99)
    );
}

#[test]
fn a_handle_keeps_a_consistent_snapshot_until_it_refreshes() {
    let t = TempRealm::new();
    let writer = open_people(&t);
    writer.begin_write().unwrap();
    for i in 0..10 {
        writer
            .create_object("Person", Some(&Value::Int(i)))
            .unwrap()
            .set("age", 1)
            .unwrap();
    }
    writer.commit().unwrap();
    let reader = open_people(&t);
    let version = reader.version().unwrap();
    let all = reader.objects("Person").unwrap();
    let p0 = reader
        .find_object("Person", &Value::Int(0))
        .unwrap()
        .unwrap();
    let p9 = reader
        .find_object("Person", &Value::Int(9))
        .unwrap()
        .unwrap();

    // Writers on another thread: each commit moves one unit of age from one object to another,
    // so the sum of ages is 10 in every consistent state.
    let w = thread::spawn(move || {
        for round in 0..20 {
            writer.begin_write().unwrap();
            let from = writer
                .find_object("Person", &Value::Int(round % 10))
                .unwrap()
                .unwrap();
            let to = writer
                .find_object("Person", &Value::Int((round + 3) % 10))
                .unwrap()
                .unwrap();
            from.add_int("age", -1).unwrap();
            to.add_int("age", 1).unwrap();
            if round == 5 {
                writer
                    .create_object("Person", Some(&Value::Int(100)))
                    .unwrap();
            }
            writer.commit().unwrap();
        }
        writer
    });
    // While and after the writes happen, the reader's snapshot does not move.
    for _ in 0..50 {
        assert_eq!(all.count().unwrap(), 10);
        assert_eq!(all.sum("age").unwrap(), Value::Int(10));
        assert_eq!(p0.get("age").unwrap(), Value::Int(1));
        assert_eq!(p9.get("age").unwrap(), Value::Int(1));
        assert_eq!(reader.version().unwrap(), version);
    }
    let writer = w.join().unwrap();
    assert_eq!(all.count().unwrap(), 10);
    assert_eq!(p0.get("age").unwrap(), Value::Int(1));
    assert!(reader
        .find_object("Person", &Value::Int(100))
        .unwrap()
        .is_none());
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.version().unwrap(), version + 20);
    assert_eq!(all.count().unwrap(), 11);
    assert_eq!(all.sum("age").unwrap(), Value::Int(10));
    assert_eq!(writer.version().unwrap(), version + 20);
    // Both rounds 0 and 10 moved a unit away from 0; rounds 7 and 17 moved one to it.
    assert_eq!(p0.get("age").unwrap(), Value::Int(1));
    assert_eq!(p9.get("age").unwrap(), Value::Int(1));
    assert_eq!(
        reader
            .find_object("Person", &Value::Int(1))
            .unwrap()
            .unwrap()
            .get("age")
            .unwrap(),
        Value::Int(1)
    );
}

#[test]
fn refreshing_reports_whether_anything_changed() {
    let t = TempRealm::new();
    let a = open_people(&t);
    let b = open_people(&t);
    assert!(!b.refresh().unwrap());
    a.begin_write().unwrap();
    a.commit().unwrap();
    assert!(
        !b.refresh().unwrap(),
        "an empty commit is not a new version"
    );
    a.begin_write().unwrap();
    a.create_object("Person", Some(&Value::Int(1))).unwrap();
    a.commit().unwrap();
    assert!(b.refresh().unwrap());
    assert!(!b.refresh().unwrap());
    assert_eq!(a.version().unwrap(), b.version().unwrap());
    // begin_write moves to the latest version too.
    a.begin_write().unwrap();
    a.create_object("Person", Some(&Value::Int(2))).unwrap();
    a.commit().unwrap();
    b.begin_write().unwrap();
    assert_eq!(person_count(&b), 2);
    assert!(!b.refresh().unwrap(), "refresh inside a write does nothing");
    b.cancel_write().unwrap();
}

#[test]
fn many_threads_share_one_handle_and_many_handles_share_one_file() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let handles: Vec<Realm> = (0..6).map(|_| open_people(&t)).collect();
    let done = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for (n, h) in handles.iter().enumerate() {
        let h = h.clone();
        let done = done.clone();
        threads.push(thread::spawn(move || {
            for i in 0..20 {
                h.begin_write().unwrap();
                h.create_object("Person", Some(&Value::Int((n * 100 + i) as i64)))
                    .unwrap()
                    .set("name", format!("t{n}"))
                    .unwrap();
                h.commit().unwrap();
                // Reads in between writes, from this thread.
                assert!(h.objects("Person").unwrap().count().unwrap() > i);
            }
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    // Meanwhile other threads read through one shared handle.
    let mut readers = Vec::new();
    for _ in 0..4 {
        let r = realm.clone();
        readers.push(thread::spawn(move || {
            let mut last = 0;
            for _ in 0..50 {
                r.refresh().unwrap();
                let n = r.objects("Person").unwrap().count().unwrap();
                assert!(n >= last, "a later snapshot never has fewer objects here");
                last = n;
            }
        }));
    }
    for th in threads.into_iter().chain(readers) {
        th.join().unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 6);
    realm.refresh().unwrap();
    assert_eq!(person_count(&realm), 120);
    for h in &handles {
        h.refresh().unwrap();
        assert_eq!(
            h.query("Person", "name == 't3'", &[])
                .unwrap()
                .count()
                .unwrap(),
            20
        );
    }
}

#[test]
fn a_second_write_on_the_same_thread_is_refused_instead_of_deadlocking() {
    let t = TempRealm::new();
    let a = open_people(&t);
    let b = open_people(&t);
    a.begin_write().unwrap();
    assert_eq!(
        a.begin_write().unwrap_err().code(),
        ErrorCode::AlreadyInWriteTransaction,
        "same handle"
    );
    assert_eq!(
        b.begin_write().unwrap_err().code(),
        ErrorCode::AlreadyInWriteTransaction,
        "other handle, same thread"
    );
    assert!(!b.is_in_transaction());
    a.create_object("Person", Some(&Value::Int(1))).unwrap();
    a.commit().unwrap();
    // Once the first is done, the other handle can write on this thread.
    b.begin_write().unwrap();
    assert!(b.find_object("Person", &Value::Int(1)).unwrap().is_some());
    assert_eq!(
        a.begin_write().unwrap_err().code(),
        ErrorCode::AlreadyInWriteTransaction
    );
    b.cancel_write().unwrap();
    a.begin_write().unwrap();
    a.cancel_write().unwrap();
}

#[test]
fn cancel_discards_every_change_of_the_transaction() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    p.set("name", "Ann").unwrap();
    p.set("age", 30).unwrap();
    p.list("tags").unwrap().push("x").unwrap();
    realm.commit().unwrap();
    let version = realm.version().unwrap();
    let history = realm.history_since(version - 1).unwrap();
    let dump = realm.dump_json().unwrap();

    realm.begin_write().unwrap();
    p.set("name", "Bob").unwrap();
    p.add_int("age", 5).unwrap();
    p.list("tags").unwrap().clear().unwrap();
    realm.create_object("Person", Some(&Value::Int(2))).unwrap();
    realm.create_object("Dog", None).unwrap();
    assert_eq!(p.get("name").unwrap(), Value::from("Bob"));
    realm.cancel_write().unwrap();

    assert!(!realm.is_in_transaction());
    assert_eq!(p.get("name").unwrap(), Value::from("Ann"));
    assert_eq!(p.get("age").unwrap(), Value::Int(30));
    assert_eq!(
        p.list("tags").unwrap().to_vec().unwrap(),
        vec![Value::from("x")]
    );
    assert_eq!(person_count(&realm), 1);
    assert!(realm
        .find_object("Person", &Value::Int(2))
        .unwrap()
        .is_none());
    assert!(realm.objects("Dog").unwrap().is_empty().unwrap());
    assert_eq!(realm.version().unwrap(), version);
    assert_eq!(realm.history_since(version - 1).unwrap(), history);
    assert_eq!(realm.dump_json().unwrap(), dump);
    // Another handle never saw any of it.
    let other = open_people(&t);
    assert_eq!(other.dump_json().unwrap(), dump);
    // The key of the cancelled object is free again.
    realm.begin_write().unwrap();
    realm.create_object("Person", Some(&Value::Int(2))).unwrap();
    realm.commit().unwrap();
    assert_eq!(person_count(&realm), 2);
}

#[test]
fn is_in_transaction_follows_begin_commit_and_cancel() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let other = open_people(&t);
    assert!(!realm.is_in_transaction());
    realm.begin_write().unwrap();
    assert!(realm.is_in_transaction());
    assert!(!other.is_in_transaction(), "the flag is per handle");
    assert!(realm.clone().is_in_transaction(), "clones share the handle");
    realm.commit().unwrap();
    assert!(!realm.is_in_transaction());
    realm.begin_write().unwrap();
    realm.cancel_write().unwrap();
    assert!(!realm.is_in_transaction());
    assert_eq!(
        realm.commit().unwrap_err().code(),
        ErrorCode::NotInWriteTransaction
    );
    assert_eq!(
        realm.cancel_write().unwrap_err().code(),
        ErrorCode::NotInWriteTransaction
    );
    // A failed operation inside a transaction leaves it open.
    realm.begin_write().unwrap();
    assert!(realm.create_object("Nope", None).is_err());
    assert!(realm.is_in_transaction());
    realm.cancel_write().unwrap();
}

#[test]
fn a_closed_realm_refuses_every_use() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    realm.commit().unwrap();
    let results = realm.objects("Person").unwrap();
    let clone = realm.clone();
    assert!(!realm.is_closed());
    realm.close();
    assert!(realm.is_closed());
    assert!(clone.is_closed(), "clones share the handle");
    let closed = |e: shoal::Error| assert_eq!(e.code(), ErrorCode::RealmClosed, "{e}");
    closed(realm.begin_write().unwrap_err());
    closed(realm.commit().unwrap_err());
    closed(realm.cancel_write().unwrap_err());
    closed(realm.refresh().unwrap_err());
    closed(realm.objects("Person").unwrap_err());
    closed(realm.query("Person", "age > 1", &[]).unwrap_err());
    closed(realm.find_object("Person", &Value::Int(1)).unwrap_err());
    closed(
        realm
            .create_object("Person", Some(&Value::Int(2)))
            .unwrap_err(),
    );
    closed(realm.is_empty().unwrap_err());
    closed(realm.schema().unwrap_err());
    closed(realm.schema_version().unwrap_err());
    closed(realm.version().unwrap_err());
    closed(realm.history_since(0).unwrap_err());
    closed(realm.dump_json().unwrap_err());
    closed(realm.add_change_callback(|_| {}).unwrap_err());
    closed(realm.apply_changeset(&[0x53, 1]).unwrap_err());
    closed(results.count().unwrap_err());
    closed(results.to_vec().unwrap_err());
    closed(p.get("age").unwrap_err());
    closed(p.set("age", 1).unwrap_err());
    assert!(!p.is_valid());
    assert!(!realm.is_in_transaction());
    realm.close(); // twice is harmless
                   // The data is still in the file.
    let again = open_people(&t);
    assert_eq!(person_count(&again), 1);
}

#[test]
fn closing_a_handle_cancels_its_write_and_releases_the_lock() {
    let t = TempRealm::new();
    let a = open_people(&t);
    let b = open_people(&t);
    a.begin_write().unwrap();
    a.create_object("Person", Some(&Value::Int(1))).unwrap();
    a.close();
    assert!(!a.is_in_transaction());
    // On this thread a second write would be refused if the lock were still held.
    b.begin_write().unwrap();
    assert!(
        b.find_object("Person", &Value::Int(1)).unwrap().is_none(),
        "the closed write was cancelled"
    );
    b.commit().unwrap();

    // Dropping the last reference with a write open releases it too, also for other threads.
    let c = open_people(&t);
    c.begin_write().unwrap();
    c.create_object("Person", Some(&Value::Int(2))).unwrap();
    drop(c);
    let (tx, rx) = mpsc::channel();
    let b2 = b.clone();
    thread::spawn(move || {
        b2.begin_write().unwrap();
        let found = b2.find_object("Person", &Value::Int(2)).unwrap().is_some();
        b2.cancel_write().unwrap();
        tx.send(found).unwrap();
    });
    assert!(!rx
        .recv_timeout(PATIENCE)
        .expect("the dropped handle's write lock was released"));
}

#[test]
fn delete_realm_files_is_refused_while_any_handle_is_open() {
    let t = TempRealm::new();
    let config = t.config(people_schema());
    let a = Realm::open(&config).unwrap();
    let b = Realm::open(&config).unwrap();
    a.begin_write().unwrap();
    a.create_object("Person", Some(&Value::Int(1))).unwrap();
    a.commit().unwrap();
    assert_eq!(
        delete_realm_files(&config).unwrap_err().code(),
        ErrorCode::RealmInUse
    );
    drop(a);
    assert_eq!(
        delete_realm_files(&config).unwrap_err().code(),
        ErrorCode::RealmInUse,
        "b is still open"
    );
    // A schemaless config naming the same file is refused too.
    assert_eq!(
        delete_realm_files(&Config::new(t.path.clone()))
            .unwrap_err()
            .code(),
        ErrorCode::RealmInUse
    );
    assert!(std::path::Path::new(&t.path).exists());
    let results = b.objects("Person").unwrap();
    drop(b);
    assert_eq!(
        delete_realm_files(&config).unwrap_err().code(),
        ErrorCode::RealmInUse,
        "results keep the handle open"
    );
    drop(results);
    delete_realm_files(&config).unwrap();
    assert!(!std::path::Path::new(&t.path).exists());
    delete_realm_files(&config).unwrap(); // a missing file is fine
    let fresh = Realm::open(&config).unwrap();
    assert!(fresh.is_empty().unwrap(), "the data is gone");
}

#[test]
fn delete_realm_files_succeeds_once_every_handle_is_closed() {
    let t = TempRealm::new();
    let config = t.config(people_schema());
    let a = Realm::open(&config).unwrap();
    let b = a.clone();
    a.begin_write().unwrap();
    a.create_object("Person", Some(&Value::Int(1))).unwrap();
    a.commit().unwrap();
    a.close();
    // b is a clone of the closed handle: nothing is open any more.
    assert!(b.is_closed());
    delete_realm_files(&config).unwrap();
    assert!(!std::path::Path::new(&t.path).exists());
}

/// Set by the parent test for the child process.
const CHILD_ENV: &str = "SHOAL_CHILD_OPEN";
const CHILD_MARKER: &str = "SHOAL-CHILD-SAW-FILE-IN-USE";

/// Runs only in the child process started by
/// [`a_second_process_opening_a_file_in_use_gets_file_in_use`]; does nothing otherwise.
#[test]
fn child_process_helper_opens_the_file_named_by_the_environment() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut config = Config::new(path.clone());
    config.set_schema(people_schema()).unwrap();
    let err = Realm::open(&config).expect_err("the file is open in the parent process");
    assert_eq!(err.code(), ErrorCode::FileInUse, "{err}");
    // A schemaless open is refused the same way.
    let err = Realm::open(&Config::new(path)).expect_err("the file is open in the parent process");
    assert_eq!(err.code(), ErrorCode::FileInUse, "{err}");
    println!("{CHILD_MARKER}");
}

#[test]
fn a_second_process_opening_a_file_in_use_gets_file_in_use() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    realm.commit().unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_helper_opens_the_file_named_by_the_environment",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &t.path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(CHILD_MARKER),
        "the child did not run its check:\n{stdout}"
    );
    assert!(
        stdout.contains("1 passed"),
        "exactly the helper ran:\n{stdout}"
    );
    // The parent is unaffected.
    assert_eq!(person_count(&realm), 1);
    drop(realm);

    // Once the parent has closed the file, a child can open it.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_helper_opens_the_file_named_by_the_environment",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &t.path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "with the file closed, the child's open succeeds and its FileInUse check fails"
    );
    assert!(
        stdout.contains("the file is open in the parent process")
            || stderr.contains("the file is open in the parent process"),
        "the child failed for another reason:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn a_writer_that_waited_is_still_refused_a_second_write_on_its_thread() {
    // Handing the write lock from one thread to a waiting one must leave the waiting thread
    // marked as the writer: otherwise its second begin_write (through another handle) would
    // wait for itself forever instead of failing.
    let t = TempRealm::new();
    let a = open_people(&t);
    let b = open_people(&t);
    let c = open_people(&t);
    for round in 0..300 {
        a.begin_write().unwrap();
        let (trying_tx, trying_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        let (b2, c2) = (b.clone(), c.clone());
        thread::spawn(move || {
            trying_tx.send(()).unwrap();
            b2.begin_write().unwrap();
            let second = c2.begin_write().map_err(|e| e.code());
            if second.is_ok() {
                c2.cancel_write().unwrap();
            }
            b2.cancel_write().unwrap();
            tx.send(second).unwrap();
        });
        trying_rx.recv().unwrap();
        if round % 2 == 0 {
            a.commit().unwrap();
        } else {
            a.cancel_write().unwrap();
        }
        let second = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            panic!("round {round}: the second begin_write on the waiting thread deadlocked")
        });
        assert_eq!(
            second,
            Err(ErrorCode::AlreadyInWriteTransaction),
            "round {round}"
        );
    }
}

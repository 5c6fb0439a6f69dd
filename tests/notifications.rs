//! Change callbacks: after every commit that changed the file, from any handle or thread; not
//! after empty commits or cancels; never after their token is dropped.

mod common;
use common::*;
use shoal::{decode_changeset, ChangeToken, GlobalId, Instruction, Realm, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Long enough that a working implementation never hits it; only a missing callback would.
const PATIENCE: Duration = Duration::from_secs(30);

/// Registers a callback that sends every version it is called with.
fn listen(realm: &Realm) -> (ChangeToken, Receiver<u64>) {
    let (tx, rx) = mpsc::channel();
    let token = realm
        .add_change_callback(move |version| {
            let _ = tx.send(version);
        })
        .unwrap();
    (token, rx)
}

fn next(rx: &Receiver<u64>) -> u64 {
    rx.recv_timeout(PATIENCE)
        .expect("a change callback within the time limit")
}

/// Commits one change (a new person) and returns the new version.
fn commit_change(realm: &Realm, id: i64) -> u64 {
    realm.begin_write().unwrap();
    realm
        .create_object("Person", Some(&Value::Int(id)))
        .unwrap();
    realm.commit().unwrap();
    realm.version().unwrap()
}

#[test]
fn a_commit_on_the_same_handle_calls_back_with_the_new_version() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let (_token, rx) = listen(&realm);
    let v1 = commit_change(&realm, 1);
    assert_eq!(next(&rx), v1);
    let v2 = commit_change(&realm, 2);
    assert_eq!(v2, v1 + 1);
    assert_eq!(next(&rx), v2);
    // Commits of one thread are announced in order, even when they come faster than delivery.
    let versions: Vec<u64> = (3..13).map(|id| commit_change(&realm, id)).collect();
    let seen: Vec<u64> = (0..10).map(|_| next(&rx)).collect();
    assert_eq!(seen, versions);
}

#[test]
fn commits_from_other_handles_and_threads_call_back_once_each() {
    let t = TempRealm::new();
    let listener = open_people(&t);
    let (_token, rx) = listen(&listener);
    let start = listener.version().unwrap();
    let writers: Vec<_> = (0..3)
        .map(|n| {
            let realm = open_people(&t);
            thread::spawn(move || {
                for i in 0..5 {
                    commit_change(&realm, n * 100 + i);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut seen: Vec<u64> = (0..15).map(|_| next(&rx)).collect();
    // Commits of different threads announce themselves after releasing the write lock, so
    // their calls may be reordered; each commit is still announced exactly once.
    seen.sort_unstable();
    let expected: Vec<u64> = (start + 1..=start + 15).collect();
    assert_eq!(seen, expected, "one call per commit");
    // And a commit from a handle on this thread after that.
    let other = open_people(&t);
    let v = commit_change(&other, 1000);
    assert_eq!(next(&rx), v);
}

#[test]
fn callbacks_of_every_handle_on_the_file_are_called() {
    let t = TempRealm::new();
    let a = open_people(&t);
    let b = open_people(&t);
    let (_ta, rx_a) = listen(&a);
    let (_tb, rx_b) = listen(&b);
    let (_tb2, rx_b2) = listen(&b);
    let v = commit_change(&a, 1);
    assert_eq!(next(&rx_a), v);
    assert_eq!(next(&rx_b), v);
    assert_eq!(next(&rx_b2), v);
}

#[test]
fn empty_commits_and_cancels_do_not_call_back() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let other = open_people(&t);
    let (_token, rx) = listen(&realm);
    let before = realm.version().unwrap();
    // An empty commit on this handle and on another.
    realm.begin_write().unwrap();
    realm.commit().unwrap();
    other.begin_write().unwrap();
    other.commit().unwrap();
    // A cancelled change.
    realm.begin_write().unwrap();
    realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    realm.cancel_write().unwrap();
    // A failed change leaves the transaction empty.
    realm.begin_write().unwrap();
    assert!(realm.create_object("Nope", None).is_err());
    realm.commit().unwrap();
    assert_eq!(
        realm.version().unwrap(),
        before,
        "none of these made a version"
    );
    // Callbacks run in commit order on one thread: a call for any of the above would arrive
    // before the one for this real change.
    let v = commit_change(&other, 2);
    assert_eq!(next(&rx), v);
    assert_eq!(v, before + 1);
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
}

#[test]
fn dropping_the_token_stops_the_callback() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    // Registered first, so if it were still called it would run before the kept callback.
    let (dropped, rx_dropped) = listen(&realm);
    let (_kept, rx_kept) = listen(&realm);
    let v1 = commit_change(&realm, 1);
    assert_eq!(next(&rx_dropped), v1);
    assert_eq!(next(&rx_kept), v1);
    drop(dropped);
    let v2 = commit_change(&realm, 2);
    assert_eq!(next(&rx_kept), v2);
    let v3 = commit_change(&realm, 3);
    assert_eq!(next(&rx_kept), v3);
    // The dropped callback's sender went away with it: nothing was sent and nothing ever will be.
    assert_eq!(
        rx_dropped.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn a_callback_can_read_the_realm_and_sees_the_commit() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let reader = open_people(&t);
    let (tx, rx) = mpsc::channel();
    let r = reader.clone();
    let _token = realm
        .add_change_callback(move |version| {
            // Calling back into Shoal from the callback must not deadlock.
            r.refresh().unwrap();
            let count = r.objects("Person").unwrap().count().unwrap();
            let _ = tx.send((version, r.version().unwrap(), count));
        })
        .unwrap();
    let v = commit_change(&realm, 1);
    let (called_with, reader_version, count) = rx.recv_timeout(PATIENCE).unwrap();
    assert_eq!(called_with, v);
    assert!(reader_version >= v);
    assert_eq!(count, 1);
}

#[test]
fn a_slow_callback_can_read_every_changeset_since_its_last_call() {
    // The history keeps a commit's changeset until its callbacks have run, however far the
    // writer has moved on meanwhile.
    let t = TempRealm::new();
    let realm = open_people(&t);
    let reader = open_people(&t);
    let (tx, rx) = mpsc::channel();
    let r = reader.clone();
    let seen = AtomicU64::new(realm.version().unwrap());
    let _token = realm
        .add_change_callback(move |version| {
            thread::sleep(Duration::from_millis(20));
            r.refresh().unwrap();
            let changes = r.history_since(seen.load(Ordering::SeqCst)).unwrap();
            let created: Vec<GlobalId> = changes
                .iter()
                .filter(|(v, _)| *v <= version)
                .flat_map(|(_, bytes)| decode_changeset(bytes).unwrap())
                .filter_map(|i| match i {
                    Instruction::CreateObject { id, .. } => Some(id),
                    _ => None,
                })
                .collect();
            seen.store(version, Ordering::SeqCst);
            let _ = tx.send(created);
        })
        .unwrap();
    for id in 0..20 {
        commit_change(&realm, id);
    }
    let mut created = Vec::new();
    while created.len() < 20 {
        created.extend(rx.recv_timeout(PATIENCE).unwrap());
    }
    assert_eq!(created, (0..20).map(GlobalId::Int).collect::<Vec<_>>());
    // Once delivered, the next commit lets them go.
    drop(_token);
    commit_change(&realm, 20);
    assert_eq!(
        realm
            .history_since(realm.version().unwrap() - 1)
            .unwrap()
            .len(),
        1
    );
    assert!(realm.history_since(1).is_err());
}

#[test]
fn a_callback_may_write_to_the_realm_itself() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let writer = open_people(&t);
    let (tx, rx) = mpsc::channel();
    let w = writer.clone();
    let first = Arc::new(AtomicBool::new(true));
    let _token = realm
        .add_change_callback(move |version| {
            // React to the first commit only, with a commit of its own.
            if first.swap(false, Ordering::SeqCst) {
                w.begin_write().unwrap();
                w.create_object("Person", Some(&Value::Int(99))).unwrap();
                w.commit().unwrap();
            }
            let _ = tx.send(version);
        })
        .unwrap();
    let v = commit_change(&realm, 1);
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), v);
    // The callback's own commit is announced too.
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), v + 1);
    realm.refresh().unwrap();
    assert!(realm
        .find_object("Person", &Value::Int(99))
        .unwrap()
        .is_some());
}

#[test]
fn a_panicking_callback_does_not_stop_the_others() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let _bad = realm
        .add_change_callback(|_| panic!("callback failure (expected by the test)"))
        .unwrap();
    let (_good, rx) = listen(&realm);
    let v1 = commit_change(&realm, 1);
    assert_eq!(next(&rx), v1);
    let v2 = commit_change(&realm, 2);
    assert_eq!(next(&rx), v2);
}

#[test]
fn a_panicking_callback_is_logged_not_swallowed() {
    let (log_tx, log_rx) = mpsc::channel::<(shoal::LogLevel, String, String)>();
    let log_tx = std::sync::Mutex::new(log_tx);
    shoal::set_log_callback(Some(Arc::new(
        move |level, category: &str, message: &str| {
            let _ = log_tx
                .lock()
                .unwrap()
                .send((level, category.to_owned(), message.to_owned()));
        },
    )))
    .unwrap();
    let t = TempRealm::new();
    let realm = open_people(&t);
    let _bad = realm
        .add_change_callback(|_| panic!("callback failure (expected by the test)"))
        .unwrap();
    let v1 = commit_change(&realm, 1);
    let found = loop {
        let (level, category, message) =
            log_rx.recv_timeout(PATIENCE).expect("the panic is logged");
        if message.contains("change callback panicked") {
            break (level, category, message);
        }
    };
    shoal::set_log_callback(None).unwrap();
    assert_eq!(found.0, shoal::LogLevel::Error);
    assert_eq!(found.1, "shoal::notify");
    assert!(found.2.contains(&v1.to_string()), "{}", found.2);
}

#[test]
fn every_kind_of_change_calls_back() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    let p = realm.create_object("Person", Some(&Value::Int(1))).unwrap();
    let d = realm.create_object("Dog", None).unwrap();
    realm.commit().unwrap();
    let (_token, rx) = listen(&realm);
    let steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| p.set("name", "Ann").unwrap()),
        Box::new(|| p.add_int("age", 2).unwrap()),
        Box::new(|| p.set("dog", d.link()).unwrap()),
        Box::new(|| p.list("dogs").unwrap().push(d.link()).unwrap()),
        Box::new(|| p.list("tags").unwrap().push("x").unwrap()),
        Box::new(|| p.list("tags").unwrap().clear().unwrap()),
        Box::new(|| d.delete().unwrap()),
    ];
    for (i, step) in steps.iter().enumerate() {
        realm.begin_write().unwrap();
        step();
        realm.commit().unwrap();
        assert_eq!(next(&rx), realm.version().unwrap(), "step {i}");
    }
}

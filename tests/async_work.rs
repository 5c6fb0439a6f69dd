//! Asynchronous work (issue 13): writes on a library thread with their completion on the
//! realm's scheduler (`Realm::write_async`), and opens that can be cancelled
//! (`Realm::open_async`; Realm Java's `getInstanceAsync`, seed 001's
//! `waitForInitialData_resilientInCaseOfRetriesAsync`), local and synced against a real
//! `shoal-server` in this process on a loopback port.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use common::server::{Server, APP_ID, WAIT};
use common::{people_schema, TempRealm};
use shoal::{
    App, AppScheduler, Config, Credentials, Error, ErrorCode, PropertyFlags as F,
    PropertyType as T, Realm, Schema, SyncConfig, User, Value,
};

// ---- helpers ------------------------------------------------------------------------------

/// An app scheduler that counts its wake-ups.
fn app_scheduler() -> (Arc<AppScheduler>, Arc<AtomicUsize>) {
    let notified = Arc::new(AtomicUsize::new(0));
    let n = notified.clone();
    let s = AppScheduler::new(move || {
        n.fetch_add(1, Ordering::SeqCst);
    });
    (s, notified)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn add_person(realm: &Realm, id: i64) -> shoal::Result<()> {
    realm
        .create_object("Person", Some(&Value::Int(id)))?
        .set("age", Value::Int(id))
}

fn people(realm: &Realm) -> usize {
    realm.objects("Person").unwrap().count().unwrap()
}

/// What a completion saw: its result and the thread it ran on.
type Seen<T> = Arc<Mutex<Vec<(shoal::Result<T>, ThreadId)>>>;

/// A completion that records what it saw.
type Completion<T> = Box<dyn FnOnce(shoal::Result<T>) + Send>;

/// The record and a maker of completions that fill it.
fn recorder<T: Send + 'static>() -> (Seen<T>, impl Fn() -> Completion<T>) {
    let seen: Seen<T> = Arc::default();
    let s = seen.clone();
    let make = move || {
        let s = s.clone();
        Box::new(move |r: shoal::Result<T>| {
            s.lock().unwrap().push((r, std::thread::current().id()))
        }) as Completion<T>
    };
    (seen, make)
}

// ---- write_async ----------------------------------------------------------------------------

#[test]
fn write_async_runs_on_a_library_thread_and_completes_on_the_app_scheduler() {
    let t = TempRealm::new();
    let (scheduler, notified) = app_scheduler();
    let mut config = t.config(people_schema());
    config.set_scheduler(scheduler.clone());
    let realm = Realm::open(&config).unwrap();
    let me = std::thread::current().id();

    // The write function waits for the test: were write_async to run it on this thread, or
    // to wait for it, this would never get past write_async.
    let (go, wait_for_go) = mpsc::channel::<()>();
    let writer_thread = Arc::new(Mutex::new(None));
    let w = writer_thread.clone();
    let (seen, completion) = recorder::<u64>();
    realm
        .write_async(
            move |r| {
                *w.lock().unwrap() = Some(std::thread::current().id());
                wait_for_go
                    .recv_timeout(WAIT)
                    .expect("the test lets the write go on");
                for id in 0..3 {
                    add_person(r, id)?;
                }
                Ok(())
            },
            completion(),
        )
        .unwrap();
    wait_until("the write to start", || {
        writer_thread.lock().unwrap().is_some()
    });
    assert_ne!(
        writer_thread.lock().unwrap().unwrap(),
        me,
        "not on the caller's thread"
    );
    // The app keeps using its handle meanwhile, outside the transaction.
    assert!(!realm.is_in_transaction());
    assert_eq!(people(&realm), 0);
    go.send(()).unwrap();

    // The completion waits in the scheduler's queue until the app runs it.
    wait_until("the app to be told", || {
        notified.load(Ordering::SeqCst) == 1
    });
    assert_eq!(scheduler.pending(), 1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing runs before perform_work"
    );
    assert_eq!(people(&realm), 0, "the handle has not moved yet");

    assert_eq!(scheduler.perform_work(), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (result, thread) = &seen[0];
    assert_eq!(
        *thread, me,
        "the completion runs on the thread that performs the work"
    );
    let version = *result.as_ref().expect("committed");
    // The handle was refreshed before the completion: it sees the write.
    assert_eq!(people(&realm), 3);
    assert_eq!(realm.version().unwrap(), version);
}

#[test]
fn an_error_or_a_panic_in_the_write_function_writes_nothing() {
    let t = TempRealm::new();
    let (scheduler, _) = app_scheduler();
    let mut config = t.config(people_schema());
    config.set_scheduler(scheduler.clone());
    let realm = Realm::open(&config).unwrap();
    let before = realm.version().unwrap();
    let (seen, completion) = recorder::<u64>();
    realm
        .write_async(
            |r| {
                add_person(r, 1)?;
                Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "the app changed its mind",
                ))
            },
            completion(),
        )
        .unwrap();
    realm
        .write_async(
            |r| {
                add_person(r, 2)?;
                panic!("boom");
            },
            completion(),
        )
        .unwrap();
    // A failing write does not stop the ones after it.
    realm
        .write_async(|r| add_person(r, 3), completion())
        .unwrap();
    wait_until("three completions", || scheduler.pending() == 3);
    assert_eq!(scheduler.perform_work(), 3);
    let seen = seen.lock().unwrap();
    let e = seen[0].0.as_ref().unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert_eq!(e.message(), "the app changed its mind");
    let e = seen[1].0.as_ref().unwrap_err();
    assert_eq!(e.code(), ErrorCode::CallbackFailed);
    assert!(e.message().contains("panicked"), "{e}");
    let v3 = *seen[2].0.as_ref().unwrap();
    assert_eq!(v3, before + 1, "the failed writes made no version");
    realm.refresh().unwrap();
    assert!(realm
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .is_none());
    assert!(realm
        .find_object("Person", &Value::Int(2))
        .unwrap()
        .is_none());
    assert!(realm
        .find_object("Person", &Value::Int(3))
        .unwrap()
        .is_some());
}

#[test]
fn async_writes_of_one_handle_commit_in_the_order_asked_with_the_default_scheduler() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let me = std::thread::current().id();
    let (tx, rx) = mpsc::channel();
    for id in 0..20 {
        let tx = tx.clone();
        realm
            .write_async(
                move |r| add_person(r, id),
                move |result| {
                    tx.send((
                        id,
                        result.map_err(|e| e.to_string()),
                        std::thread::current().id(),
                    ))
                    .unwrap();
                },
            )
            .unwrap();
    }
    let mut last = 0;
    for expected in 0..20 {
        let (id, version, thread) = rx.recv_timeout(WAIT).expect("a completion");
        assert_eq!(id, expected, "completions in order");
        let version = version.expect("committed");
        assert!(version > last, "each write has its own, later version");
        last = version;
        assert_ne!(thread, me, "the default scheduler is a library thread");
    }
    // The library thread does not refresh the app's handle: it moves when asked.
    realm.refresh().unwrap();
    assert_eq!(people(&realm), 20);
    let ages: Vec<i64> = (0..20)
        .map(|id| {
            let o = realm
                .find_object("Person", &Value::Int(id))
                .unwrap()
                .unwrap();
            o.get("age").unwrap().as_int().unwrap()
        })
        .collect();
    assert_eq!(ages, (0..20).collect::<Vec<_>>());
}

fn open_people(t: &TempRealm) -> Realm {
    common::open_people(t)
}

#[test]
fn write_async_refuses_closed_and_read_only_realms_at_once() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.close();
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    let e = realm
        .write_async(
            |_| Ok(()),
            move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::RealmClosed);
    let mut ro = t.config(people_schema());
    ro.set_read_only(true);
    let ro = Realm::open(&ro).unwrap();
    let c = called.clone();
    let e = ro
        .write_async(
            |_| Ok(()),
            move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReadOnly);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(called.load(Ordering::SeqCst), 0);
}

#[test]
fn closing_the_handle_cancels_the_writes_not_started_and_lets_the_running_one_commit() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let (go, wait_for_go) = mpsc::channel::<()>();
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let (seen, completion) = recorder::<u64>();
    realm
        .write_async(
            move |r| {
                s.fetch_add(1, Ordering::SeqCst);
                wait_for_go.recv_timeout(WAIT).unwrap();
                add_person(r, 1)
            },
            completion(),
        )
        .unwrap();
    realm
        .write_async(|r| add_person(r, 2), completion())
        .unwrap();
    wait_until("the first write to start", || {
        started.load(Ordering::SeqCst) == 1
    });
    realm.close();
    go.send(()).unwrap();
    wait_until("two completions", || seen.lock().unwrap().len() == 2);
    let seen = seen.lock().unwrap();
    assert!(seen[0].0.is_ok(), "{:?}", seen[0].0);
    assert_eq!(
        seen[1].0.as_ref().unwrap_err().code(),
        ErrorCode::RealmClosed
    );
    let reopened = open_people(&t);
    assert_eq!(people(&reopened), 1);
    assert!(reopened
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .is_some());
}

// ---- open_async, local ----------------------------------------------------------------------

#[test]
fn a_local_async_open_calls_back_on_the_configs_scheduler() {
    let t = TempRealm::new();
    let (scheduler, _) = app_scheduler();
    let mut config = t.config(people_schema());
    config.set_scheduler(scheduler.clone());
    config.set_initial_data(|r| add_person(r, 7));
    let (seen, callback) = recorder::<Realm>();
    let task = Realm::open_async(&config, callback()).unwrap();
    wait_until("the callback to be posted", || scheduler.pending() == 1);
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(scheduler.perform_work(), 1);
    let realm = seen.lock().unwrap().pop().unwrap().0.expect("opened");
    assert_eq!(people(&realm), 1);
    assert!(!task.cancel(), "too late: the callback has the realm");
    assert!(!realm.is_closed());

    // Errors arrive the same way.
    let mut bad = config.clone();
    bad.set_schema_version(0);
    let mut other = Schema::new();
    other.add_class("Other", None).unwrap();
    other
        .add_property("Other", "x", T::Int, F::NONE, None)
        .unwrap();
    bad.set_schema(other).unwrap();
    let (seen, callback) = recorder::<Realm>();
    Realm::open_async(&bad, callback()).unwrap();
    wait_until("the error to be posted", || scheduler.pending() == 1);
    scheduler.perform_work();
    let e = seen.lock().unwrap().pop().unwrap().0.unwrap_err();
    assert_eq!(e.code(), ErrorCode::MigrationNeeded);
}

#[test]
fn a_cancelled_local_async_open_calls_nothing_and_leaves_no_file() {
    let t = TempRealm::new();
    let (scheduler, _) = app_scheduler();
    let mut config = t.config(people_schema());
    config.set_scheduler(scheduler.clone());
    let (seen, callback) = recorder::<Realm>();
    let task = Realm::open_async(&config, callback()).unwrap();
    // The open is done and its callback queued, but the app has not run it: not too late.
    wait_until("the callback to be posted", || scheduler.pending() == 1);
    assert!(Path::new(&t.path).exists());
    assert!(task.cancel());
    assert!(task.is_cancelled());
    assert!(!Path::new(&t.path).exists(), "the new file is gone");
    assert!(task.cancel(), "cancelling twice is harmless");
    scheduler.perform_work();
    assert!(seen.lock().unwrap().is_empty(), "no callback");

    // A file that existed before stays.
    drop(open_people(&t));
    let (seen, callback) = recorder::<Realm>();
    let task = Realm::open_async(&config, callback()).unwrap();
    assert!(task.cancel());
    scheduler.perform_work();
    std::thread::sleep(Duration::from_millis(50));
    scheduler.perform_work();
    assert!(seen.lock().unwrap().is_empty());
    assert!(Path::new(&t.path).exists());
    // No handle was left open by the cancelled open.
    shoal::delete_realm_files(&config).unwrap();
}

// ---- open_async, synced ---------------------------------------------------------------------

struct Device {
    app: App,
    _dir: tempfile::TempDir,
}

fn device() -> Device {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).expect("app");
    Device { app, _dir: dir }
}

fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn login(d: &Device, server: &Server, name: &str, register: bool) -> User {
    d.app
        .login(
            &Credentials::password(name, "myPassw0rd", register).unwrap(),
            &server.auth_url(),
        )
        .expect("login")
}

/// Item {id: int pk, name: string}
fn item_schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Item", Some("id")).unwrap();
    s.add_property("Item", "id", T::Int, F::NONE, None).unwrap();
    s.add_property("Item", "name", T::String, F::NONE, None)
        .unwrap();
    s
}

fn synced_config(user: &User, url: &str, wait: bool) -> Config {
    let mut sync = SyncConfig::new(user, url).unwrap();
    if wait {
        sync.set_wait_for_initial_data(Some(WAIT));
    }
    let mut c = Config::new("unused");
    c.set_schema(item_schema()).unwrap();
    c.set_sync(sync);
    c
}

/// A user's realm on the server with `n` items of about 1 KB each, uploaded by device A;
/// returns the user's name.
fn server_realm_with_items(server: &Server, url_path: &str, n: i64) -> String {
    let a = device();
    let name = unique("u");
    let user = login(&a, server, &name, true);
    let url = format!("realm://{}{url_path}", server.addr);
    let realm = Realm::open(&synced_config(&user, &url, false)).unwrap();
    realm.begin_write().unwrap();
    for id in 0..n {
        let o = realm.create_object("Item", Some(&Value::Int(id))).unwrap();
        o.set("name", Value::String(format!("{id:>1000}"))).unwrap();
    }
    realm.commit().unwrap();
    realm.session().unwrap().wait_for_upload(WAIT).unwrap();
    name
}

#[test]
fn a_synced_async_open_downloads_the_initial_data_before_the_callback() {
    let server = Server::start();
    let name = server_realm_with_items(&server, "/~/initial-async", 50);
    let b = device();
    let user = login(&b, &server, &name, false);
    let url = format!("realm://{}/~/initial-async", server.addr);
    let (scheduler, _) = app_scheduler();
    let mut config = synced_config(&user, &url, true);
    config.set_scheduler(scheduler.clone());
    let (seen, callback) = recorder::<Realm>();
    let _task = Realm::open_async(&config, callback()).unwrap();
    // The caller was not blocked: the download takes a round trip at least.
    wait_until("the callback to be posted", || scheduler.pending() == 1);
    assert_eq!(scheduler.perform_work(), 1);
    let realm = seen.lock().unwrap().pop().unwrap().0.expect("opened");
    assert_eq!(realm.objects("Item").unwrap().count().unwrap(), 50);
    assert!(realm.session().is_some());
    // Its writes sync like any other handle's, through write_async too.
    let (tx, rx) = mpsc::channel();
    realm
        .write_async(
            |r| {
                r.create_object("Item", Some(&Value::Int(1000)))?;
                Ok(())
            },
            move |result| tx.send(result.is_ok()).unwrap(),
        )
        .unwrap();
    wait_until("the write's completion", || scheduler.pending() == 1);
    scheduler.perform_work();
    assert!(rx.recv_timeout(WAIT).unwrap());
    realm.session().unwrap().wait_for_upload(WAIT).unwrap();
}

/// Seed 001's `waitForInitialData_resilientInCaseOfRetriesAsync`: ten times, an async open
/// that waits for the initial data is cancelled after 0–4 ms; neither callback ever fires,
/// and the file, new before each open, is gone after each cancel.
#[test]
fn async_opens_cancelled_after_0_to_4_ms_call_nothing_and_leave_no_file() {
    let server = Server::start();
    // Enough data that the download takes longer than 4 ms.
    let name = server_realm_with_items(&server, "/~/cancelled", 2000);
    let b = device();
    let user = login(&b, &server, &name, false);
    let url = format!("realm://{}/~/cancelled", server.addr);
    let config = synced_config(&user, &url, true);
    let path = config.path().to_owned();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut cancelled_with_a_file = 0;
    for i in 0..10u64 {
        assert!(!Path::new(&path).exists());
        let c = calls.clone();
        let task = Realm::open_async(&config, move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(i % 5));
        if Path::new(&path).exists() {
            cancelled_with_a_file += 1; // the open was waiting for the download
        }
        assert!(task.cancel(), "round {i}: cancelled in time");
        assert!(
            !Path::new(&path).exists(),
            "round {i}: no file after the cancel"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "neither success nor error fired"
    );
    assert!(!Path::new(&path).exists());
    eprintln!("{cancelled_with_a_file} of 10 cancels came while the file existed");

    // The next open waits for the data again and gets all of it.
    let (tx, rx) = mpsc::channel();
    let _task = Realm::open_async(&config, move |r| {
        tx.send(r.map(|realm| realm.objects("Item").unwrap().count().unwrap()))
            .unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().unwrap(), 2000);
}

#[test]
fn a_cancel_while_the_initial_download_waits_returns_at_once() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    // Nothing listens there: the wait for the initial data would last its whole timeout.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = synced_config(&user, &format!("realm://{nowhere}/~/never"), true);
    let path = config.path().to_owned();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let task = Realm::open_async(&config, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    wait_until("the file to be created", || Path::new(&path).exists());
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    assert!(task.cancel());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!Path::new(&path).exists());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// The race the guarantee is about: the cancel comes while the session downloads into the
/// new file. Cancelled then: no callback, no file; too late: the callback got the realm.
#[test]
fn a_cancel_that_comes_while_the_initial_data_downloads_leaves_no_file() {
    let server = Server::start();
    let name = server_realm_with_items(&server, "/~/mid-download", 3000);
    let b = device();
    let user = login(&b, &server, &name, false);
    let url = format!("realm://{}/~/mid-download", server.addr);
    let config = synced_config(&user, &url, true);
    let path = config.path().to_owned();
    let mut mid_download = 0;
    for round in 0..10 {
        assert!(!Path::new(&path).exists());
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let task = Realm::open_async(&config, move |r| {
            drop(r);
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        // The file exists once the open waits for the download.
        wait_until("the new file", || Path::new(&path).exists());
        if task.cancel() {
            mid_download += 1;
            assert!(
                !Path::new(&path).exists(),
                "round {round}: no file after the cancel"
            );
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(
                calls.load(Ordering::SeqCst),
                0,
                "round {round}: no callback"
            );
        } else {
            // The download won the race: the callback ran, once.
            wait_until("the callback", || calls.load(Ordering::SeqCst) == 1);
            wait_until("the file to be free", || {
                shoal::delete_realm_files(&config).is_ok()
            });
        }
        if mid_download >= 3 {
            break;
        }
    }
    assert!(mid_download >= 1, "no cancel came during the download");
}

//! Synced realms against a real `shoal-server` in this process, on a loopback port: sessions,
//! progress, waits, stop policies, tokens, logout, client reset and convergence (the
//! behaviours of Realm Java's SyncSessionTests, ProgressListenerTests, SyncConfigurationTests
//! and SessionTests). Background events are awaited with deadlines.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{Server, ADMIN_PASSWORD, APP_ID, WAIT};
use shoal::{
    App, Config, ConnectionState, Credentials, ErrorCode, Progress, ProgressDirection,
    ProgressMode, PropertyFlags as F, PropertyType as T, Realm, Schema, SessionState,
    StopPolicy, SyncConfig, SyncError, User, Value,
};

// ---- helpers ------------------------------------------------------------------------------

/// A device: an app in its own temporary directory.
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
    format!("{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn login(d: &Device, server: &Server, name: &str, register: bool) -> User {
    d.app
        .login(
            &Credentials::password(name, "myPassw0rd", register).unwrap(),
            &server.auth_url(),
        )
        .expect("login")
}

fn admin(d: &Device, server: &Server) -> User {
    d.app
        .login(
            &Credentials::password("realm-admin", ADMIN_PASSWORD, false).unwrap(),
            &server.auth_url(),
        )
        .expect("admin login")
}

fn sync_url(server: &Server, path: &str) -> String {
    format!("realm://{}{path}", server.addr)
}

/// Item {id: int pk, name: string, count: int}
fn schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Item", Some("id")).unwrap();
    s.add_property("Item", "id", T::Int, F::NONE, None).unwrap();
    s.add_property("Item", "name", T::String, F::NONE, None).unwrap();
    s.add_property("Item", "count", T::Int, F::NONE, None).unwrap();
    s
}

fn config(user: &User, url: &str) -> Config {
    config_with(user, url, |_| {})
}

fn config_with(user: &User, url: &str, edit: impl FnOnce(&mut SyncConfig)) -> Config {
    let mut sync = SyncConfig::new(user, url).expect("sync config");
    edit(&mut sync);
    let mut c = Config::new("unused");
    c.set_schema(schema()).unwrap();
    c.set_sync(sync);
    c
}

fn add_items(realm: &Realm, ids: std::ops::Range<i64>) {
    realm.begin_write().unwrap();
    for id in ids {
        let o = realm.create_object("Item", Some(&Value::Int(id))).unwrap();
        o.set("name", Value::String(format!("item {id}"))).unwrap();
    }
    realm.commit().unwrap();
}

fn count(realm: &Realm) -> usize {
    realm.refresh().unwrap();
    realm.objects("Item").unwrap().count().unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- the basics ---------------------------------------------------------------------------

#[test]
fn two_devices_of_one_user_converge_through_the_server() {
    let server = Server::start();
    let name = unique("u");
    let (a, b) = (device(), device());
    let ua = login(&a, &server, &name, true);
    let ub = login(&b, &server, &name, false);
    let url = sync_url(&server, "/~/tasks");
    let ra = Realm::open(&config(&ua, &url)).unwrap();
    add_items(&ra, 0..10);
    let sa = ra.session().expect("a synced realm has a session");
    sa.wait_for_upload(WAIT).unwrap();

    let rb = Realm::open(&config(&ub, &url)).unwrap();
    let sb = rb.session().unwrap();
    sb.wait_for_download(WAIT).unwrap();
    assert_eq!(count(&rb), 10);
    add_items(&rb, 10..15);
    sb.wait_for_upload(WAIT).unwrap();
    sa.wait_for_download(WAIT).unwrap();
    assert_eq!(count(&ra), 15);
    assert_eq!(ra.dump_json().unwrap(), rb.dump_json().unwrap());
    assert_eq!(sa.state(), SessionState::Active);
    assert_eq!(sa.connection_state(), ConnectionState::Connected);
}

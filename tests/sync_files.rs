//! The local files of synced realms against a real `shoal-server` in this process: where they
//! live (`SyncConfig::set_name` / `set_directory`, Realm Java's `SyncConfiguration.Builder`
//! `name()` / `directory()`), what logout does to them (Realm Java's `SyncUser.logout`: deleted
//! at once when nothing has them open, else at the next app start, with the user's metadata),
//! and that a stopped session never pins an old configuration of its file.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::server::{Server, APP_ID, WAIT};
use shoal::{
    App, Config, Credentials, ErrorCode, PropertyFlags as F, PropertyType as T, Realm, Schema,
    SessionState, StopPolicy, SyncConfig, User, Value,
};

// ---- helpers ------------------------------------------------------------------------------

fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn login(app: &App, server: &Server, name: &str, register: bool) -> User {
    app.login(
        &Credentials::password(name, "myPassw0rd", register).unwrap(),
        &server.auth_url(),
    )
    .expect("login")
}

fn sync_url(server: &Server, path: &str) -> String {
    format!("realm://{}{path}", server.addr)
}

/// Item {id: int pk, name: string}
fn schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Item", Some("id")).unwrap();
    s.add_property("Item", "id", T::Int, F::NONE, None).unwrap();
    s.add_property("Item", "name", T::String, F::NONE, None)
        .unwrap();
    s
}

fn config_of(sync: SyncConfig) -> Config {
    let mut c = Config::new("unused");
    c.set_schema(schema()).unwrap();
    c.set_sync(sync);
    c
}

fn config_with(user: &User, url: &str, edit: impl FnOnce(&mut SyncConfig)) -> Config {
    let mut sync = SyncConfig::new(user, url).expect("sync config");
    edit(&mut sync);
    config_of(sync)
}

fn add_item(realm: &Realm, id: i64) {
    realm.begin_write().unwrap();
    let o = realm.create_object("Item", Some(&Value::Int(id))).unwrap();
    o.set("name", Value::String(format!("item {id}"))).unwrap();
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

fn wait_state(session: &shoal::Session, state: SessionState) {
    wait_until(&format!("session state {state:?}"), || {
        session.state() == state
    });
}

// ---- a stopped session never pins its old configuration -----------------------------------

#[test]
fn a_stopped_session_does_not_pin_the_old_encryption_key() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).unwrap();
    let name = unique("pin");
    let user = login(&app, &server, &name, true);
    let url = sync_url(&server, "/~/pinned");
    let key = [7u8; 64];
    let encrypted = config_with(&user, &url, |s| {
        s.set_stop_policy(StopPolicy::Immediately);
    });
    let mut encrypted = encrypted;
    encrypted.set_encryption_key(Some(&key)).unwrap();
    let realm = Realm::open(&encrypted).unwrap();
    add_item(&realm, 1);
    let old_session = realm.session().unwrap();
    old_session.wait_for_upload(WAIT).unwrap();
    realm.close();
    drop(realm);
    wait_state(&old_session, SessionState::Inactive);

    user.logout();
    // Whatever logout did with the files, they are gone now.
    let _ = shoal::delete_realm_files(&encrypted);
    assert!(!std::path::Path::new(encrypted.path()).exists());

    let again = login(&app, &server, &name, false);
    let plain = config_with(&again, &url, |_| {});
    assert_eq!(plain.path(), encrypted.path(), "the same local file");
    let realm = Realm::open(&plain).expect("the old key is not pinned by the old session");
    let session = realm.session().unwrap();
    assert_eq!(session, old_session, "one session per file, reconfigured");
    session.wait_for_download(WAIT).unwrap();
    assert_eq!(count(&realm), 1, "the server's object came back");
    add_item(&realm, 2);
    session.wait_for_upload(WAIT).unwrap();
    assert!(session.error().is_none(), "{:?}", session.error());
    assert_eq!(session.state(), SessionState::Active);
}

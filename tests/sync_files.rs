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

// ---- name() and directory() (SyncConfigurationTests) ---------------------------------------

#[test]
fn a_synced_realm_lives_under_the_given_directory_and_name_and_syncs() {
    let server = Server::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (app_a, app_b) = (
        App::new(dir_a.path(), APP_ID).unwrap(),
        App::new(dir_b.path(), APP_ID).unwrap(),
    );
    let name = unique("placed");
    let ua = login(&app_a, &server, &name, true);
    let ub = login(&app_b, &server, &name, false);
    let url = sync_url(&server, "/~/sub/tasks");
    let elsewhere = tempfile::tempdir().unwrap();
    let root = elsewhere.path().join("realms");
    let mut sync = SyncConfig::new(&ua, &url).unwrap();
    assert_eq!(sync.directory(), app_a.sync_root());
    sync.set_name("SendOneCommit").unwrap();
    sync.set_directory(&root).unwrap();
    let canonical = std::fs::canonicalize(&root).unwrap();
    assert_eq!(sync.directory(), canonical);
    let expected = canonical
        .join(ua.identity())
        .join(ua.identity())
        .join("sub")
        .join("SendOneCommit");
    assert_eq!(
        sync.local_path(),
        expected,
        "<directory>/<identity>/<server path>/<name>"
    );
    // The order of the two calls does not matter.
    let mut other_order = SyncConfig::new(&ua, &url).unwrap();
    other_order.set_directory(&root).unwrap();
    other_order.set_name("SendOneCommit").unwrap();
    assert_eq!(other_order.local_path(), expected);
    // Realm Java's replacements in the name.
    let mut cleaned = SyncConfig::new(&ua, &url).unwrap();
    cleaned.set_name("a:b?c").unwrap();
    assert_eq!(cleaned.local_path().file_name().unwrap(), "a_b_c");

    let config = config_of(sync);
    assert_eq!(config.path(), expected.to_str().unwrap());
    let realm = Realm::open(&config).unwrap();
    add_item(&realm, 1);
    realm.session().unwrap().wait_for_upload(WAIT).unwrap();
    assert!(expected.is_file());
    let default_place = app_a
        .sync_root()
        .join(ua.identity())
        .join(ua.identity())
        .join("sub")
        .join("tasks");
    assert!(!default_place.exists(), "nothing at the default place");

    // Another device with the default place gets the same server realm.
    let rb = Realm::open(&config_with(&ub, &url, |_| {})).unwrap();
    rb.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(count(&rb), 1);
}

#[test]
fn bad_names_and_directories_are_refused_with_the_config_unchanged() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).unwrap();
    let user = login(&app, &server, &unique("refuse"), true);
    let mut sync = SyncConfig::new(&user, &sync_url(&server, "/~/default")).unwrap();
    let before = sync.local_path().to_path_buf();
    let refused = |r: shoal::Result<&mut SyncConfig>, what: &str| {
        let e = r.err().unwrap_or_else(|| panic!("{what} accepted"));
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{what}: {e}");
        e.message().to_owned()
    };
    assert!(refused(sync.set_name(""), "an empty name").contains("empty"));
    refused(sync.set_name(".."), "'..'");
    refused(sync.set_name("x.compact"), "a companion suffix");
    assert!(refused(sync.set_directory(""), "an empty directory").contains("empty"));
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let m = refused(sync.set_directory(&file), "a file");
    assert!(m.contains("is a file") && m.contains("a-file"), "{m}");
    assert!(
        refused(sync.set_directory(file.join("below")), "below a file")
            .contains("cannot be created")
    );
    // Not writable: /proc refuses new files even to root; a 0555 directory refuses them to
    // anyone else.
    assert!(refused(sync.set_directory("/proc"), "/proc").contains("not writable"));
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    if std::fs::write(locked.join("probe"), b"").is_err() {
        assert!(refused(sync.set_directory(&locked), "a 0555 directory").contains("not writable"));
    }
    assert_eq!(sync.local_path(), before, "unchanged after every refusal");
    assert_eq!(sync.directory(), app.sync_root());
}

// ---- logout deletes the user's files (SyncUser.logout, logoutUserShouldDeleteRealmAfterRestart)

/// The rows of `class` in the app's user store whose `key` is `value`.
fn store_rows(app: &App, class: &str, key: &str, value: &str) -> usize {
    let store = app.sync_root().join("shoal-metadata").join("users.realm");
    let realm = Realm::open(&Config::new(store.to_str().unwrap())).unwrap();
    let found = realm
        .query(class, &format!("{key} == $0"), &[Value::from(value)])
        .unwrap()
        .count()
        .unwrap();
    found
}

/// A new app of `dir`, once the app that had it is gone (its library threads may hold it a
/// moment longer than the test's handles): as a restarted process would see it.
fn restart(dir: &std::path::Path) -> App {
    wait_until("the previous app closes", || {
        match App::new(dir, "io.shoal.tests.probe") {
            Ok(_) => true,
            Err(e) => {
                assert!(e.message().contains("is open"), "{e}");
                false
            }
        }
    });
    App::new(dir, APP_ID).unwrap()
}

fn wait_revoked(app: &App) {
    wait_until("the revocation is confirmed", || {
        app.pending_revocations().unwrap() == 0
    });
}

#[test]
fn logout_with_no_open_realm_deletes_the_users_files_and_metadata_at_once() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).unwrap();
    let name = unique("gone");
    let user = login(&app, &server, &name, true);
    let other = login(&app, &server, &unique("stays"), true);
    let key = [3u8; 64];
    let mut encrypted = config_with(&user, &sync_url(&server, "/~/a/tasks"), |s| {
        s.set_stop_policy(StopPolicy::Immediately);
    });
    encrypted.set_encryption_key(Some(&key)).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let placed = config_with(&user, &sync_url(&server, "/~/b"), |s| {
        s.set_directory(elsewhere.path().join("mine")).unwrap();
        s.set_name("named").unwrap();
        s.set_stop_policy(StopPolicy::Immediately);
    });
    let others = config_with(&other, &sync_url(&server, "/~/a/tasks"), |_| {});
    let (session, placed_session) = {
        let r1 = Realm::open(&encrypted).unwrap();
        let r2 = Realm::open(&placed).unwrap();
        let r3 = Realm::open(&others).unwrap();
        add_item(&r1, 1);
        add_item(&r2, 1);
        add_item(&r3, 1);
        let (s1, s2) = (r1.session().unwrap(), r2.session().unwrap());
        s1.wait_for_upload(WAIT).unwrap();
        s2.wait_for_upload(WAIT).unwrap();
        (s1, s2)
    };
    wait_state(&session, SessionState::Inactive);
    wait_state(&placed_session, SessionState::Inactive);
    let user_dir = app.sync_root().join(user.identity());
    assert!(user_dir.is_dir());
    assert_eq!(store_rows(&app, "UserFile", "identity", user.identity()), 2);

    user.logout();
    for path in [encrypted.path(), placed.path()] {
        assert!(
            !std::path::Path::new(path).exists(),
            "{path} deleted at once"
        );
    }
    assert!(!user_dir.exists(), "the user's folders went with its files");
    assert!(
        !elsewhere.path().join("mine").join(user.identity()).exists(),
        "below a given directory too (the directory itself stays)"
    );
    assert!(elsewhere.path().join("mine").is_dir());
    assert!(
        std::path::Path::new(others.path()).exists(),
        "another user's file stays"
    );
    assert_eq!(store_rows(&app, "User", "identity", user.identity()), 0);
    assert_eq!(store_rows(&app, "UserFile", "identity", user.identity()), 0);
    assert_eq!(store_rows(&app, "User", "identity", other.identity()), 1);
    assert!(!user.is_valid());
    assert!(app.user(user.identity()).is_some(), "known in this process");

    // Logging in again starts afresh; the old session (still held) does not pin the old key.
    let again = login(&app, &server, &name, false);
    let plain = config_with(&again, &sync_url(&server, "/~/a/tasks"), |_| {});
    let realm = Realm::open(&plain).unwrap();
    let s = realm.session().unwrap();
    assert_eq!(s, session);
    s.wait_for_download(WAIT).unwrap();
    assert_eq!(count(&realm), 1, "the server's copy came back");
    assert_eq!(store_rows(&app, "User", "identity", user.identity()), 1);
    drop((realm, s, session, placed_session));

    // The new login is stored as any other: after a restart both users are back, with the
    // file of the new login.
    wait_revoked(&app);
    let identity = user.identity().to_owned();
    let new_file = plain.path().to_owned();
    drop((user, again, other, app, encrypted, placed, others, plain));
    let app = restart(dir.path());
    assert_eq!(app.all_users().len(), 2);
    assert!(app.user(&identity).unwrap().is_valid());
    assert!(std::path::Path::new(&new_file).exists());
}

#[test]
fn logout_right_after_closing_deletes_the_files_once_the_session_stopped() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).unwrap();
    let user = login(&app, &server, &unique("closing"), true);
    // The default policy keeps the session uploading after the close.
    let config = config_with(&user, &sync_url(&server, "/~/tasks"), |_| {});
    let realm = Realm::open(&config).unwrap();
    for id in 0..50 {
        add_item(&realm, id);
    }
    let session = realm.session().unwrap();
    // A sync configuration creates its folder before any file exists.
    let never_opened = SyncConfig::new(&user, &sync_url(&server, "/~/never/opened")).unwrap();
    assert!(never_opened.local_path().parent().unwrap().is_dir());
    drop(realm);
    user.logout();
    wait_until("the file is deleted", || {
        !std::path::Path::new(config.path()).exists()
    });
    wait_until("the user's folders are deleted", || {
        !app.sync_root().join(user.identity()).exists()
    });
    wait_until("the metadata is deleted", || {
        store_rows(&app, "User", "identity", user.identity()) == 0
    });
    assert_eq!(session.state(), SessionState::Inactive);
}

#[test]
fn logout_with_an_open_realm_deletes_the_files_at_the_next_start() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("later");
    let (path, identity) = {
        let app = App::new(dir.path(), APP_ID).unwrap();
        let user = login(&app, &server, &name, true);
        let config = config_with(&user, &sync_url(&server, "/~/tests"), |_| {});
        let realm = Realm::open(&config).unwrap();
        add_item(&realm, 1);
        realm.session().unwrap().wait_for_upload(WAIT).unwrap();
        user.logout();
        wait_state(&realm.session().unwrap(), SessionState::Inactive);
        realm.close();
        // As in the reference: the file is still there after the close.
        assert!(std::path::Path::new(config.path()).exists());
        assert_eq!(
            store_rows(&app, "PendingRemoval", "identity", user.identity()),
            1
        );
        assert_eq!(store_rows(&app, "User", "identity", user.identity()), 1);
        wait_revoked(&app);
        (config.path().to_owned(), user.identity().to_owned())
    };
    let app = restart(dir.path());
    assert!(
        !std::path::Path::new(&path).exists(),
        "deleted at the start"
    );
    assert!(!app.sync_root().join(&identity).exists());
    assert!(
        app.user(&identity).is_none(),
        "its metadata went with the files"
    );
    assert_eq!(store_rows(&app, "PendingRemoval", "identity", &identity), 0);
    assert_eq!(store_rows(&app, "UserFile", "identity", &identity), 0);
    // The user can log in again and gets the server's copy.
    let user = login(&app, &server, &name, false);
    let realm = Realm::open(&config_with(&user, &sync_url(&server, "/~/tests"), |_| {})).unwrap();
    realm.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(count(&realm), 1);
}

#[test]
fn a_removal_interrupted_after_the_files_went_finishes_at_the_next_start() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let identity = {
        let app = App::new(dir.path(), APP_ID).unwrap();
        let user = login(&app, &server, &unique("crashed"), true);
        let config = config_with(&user, &sync_url(&server, "/~/deep/tests"), |_| {});
        let realm = Realm::open(&config).unwrap();
        add_item(&realm, 1);
        user.logout(); // with the realm open: recorded for the next start
        realm.close();
        wait_revoked(&app);
        // As if a removal had deleted the files and folders, then crashed before the rows.
        std::fs::remove_dir_all(app.sync_root().join(user.identity())).unwrap();
        assert_eq!(store_rows(&app, "UserFile", "identity", user.identity()), 1);
        user.identity().to_owned()
    };
    let app = restart(dir.path());
    assert!(
        app.user(&identity).is_none(),
        "the metadata went at the start"
    );
    assert_eq!(store_rows(&app, "UserFile", "identity", &identity), 0);
    assert_eq!(store_rows(&app, "PendingRemoval", "identity", &identity), 0);
}

#[test]
fn logging_in_again_before_the_next_start_keeps_the_files() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("back");
    let path = {
        let app = App::new(dir.path(), APP_ID).unwrap();
        let user = login(&app, &server, &name, true);
        let config = config_with(&user, &sync_url(&server, "/~/tests"), |_| {});
        let realm = Realm::open(&config).unwrap();
        add_item(&realm, 1);
        user.logout();
        add_item(&realm, 2); // written while logged out: uploads after the next login
        let again = login(&app, &server, &name, false);
        assert_eq!(
            store_rows(&app, "PendingRemoval", "identity", again.identity()),
            0
        );
        realm.session().unwrap().wait_for_upload(WAIT).unwrap();
        config.path().to_owned()
    };
    let app = restart(dir.path());
    assert!(
        std::path::Path::new(&path).exists(),
        "an active user's files stay"
    );
    let user = app.current_user().unwrap().expect("still logged in");
    let realm = Realm::open(&config_with(&user, &sync_url(&server, "/~/tests"), |_| {})).unwrap();
    assert_eq!(count(&realm), 2);
}

// ---- a user's sessions and the default error handler (SyncUser, SyncManager) -------------

#[test]
fn a_users_sessions_leave_out_those_stopped_by_an_error() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).unwrap();
    let owner = login(&app, &server, &unique("owner"), true);
    let user = login(&app, &server, &unique("sessions"), true);
    let good = Realm::open(&config_with(&user, &sync_url(&server, "/~/b-good"), |_| {})).unwrap();
    let other = Realm::open(&config_with(
        &user,
        &sync_url(&server, "/~/a-other"),
        |_| {},
    ))
    .unwrap();
    let private = format!("/{}/private", owner.identity());
    let refused = config_with(&user, &sync_url(&server, &private), |s| {
        s.set_error_handler(|_, _| {});
    });
    let bad = Realm::open(&refused).unwrap();
    wait_state(&bad.session().unwrap(), SessionState::Error);
    let paths: Vec<String> = user
        .all_sessions()
        .iter()
        .map(|s| s.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        vec![other.path().to_owned(), good.path().to_owned()],
        "by path, the ERROR session left out"
    );
    assert!(owner.all_sessions().is_empty());
}

#[test]
fn configs_take_the_default_error_handler_and_the_built_in_one_logs() {
    use std::sync::{Arc, Mutex};
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).unwrap();
    let owner = login(&app, &server, &unique("owner"), true);
    let user = login(&app, &server, &unique("default"), true);
    let private = |name: &str| sync_url(&server, &format!("/{}/{name}", owner.identity()));

    // A default handler set before a config is made gets that config's errors.
    let got = Arc::new(Mutex::new(Vec::<(String, i32, bool)>::new()));
    let sink = got.clone();
    shoal::set_default_error_handler(Some(Arc::new(
        move |s: &shoal::Session, e: &shoal::SyncError| {
            sink.lock()
                .unwrap()
                .push((s.path().to_owned(), e.code, e.is_fatal));
        },
    )));
    let handled = config_with(&user, &private("handled"), |_| {});
    shoal::set_default_error_handler(None);
    let logged = config_with(&user, &private("logged"), |_| {});
    assert!(logged.sync_config().unwrap().error_handler().is_none());

    // The built-in handler logs fatal errors at ERROR as "Session Error[<url>]: <message>".
    let lines = Arc::new(Mutex::new(Vec::<(shoal::LogLevel, String, String)>::new()));
    let log = lines.clone();
    shoal::set_log_callback(Some(Arc::new(move |level, target: &str, message: &str| {
        if message.starts_with("Session Error[") {
            log.lock()
                .unwrap()
                .push((level, target.to_owned(), message.to_owned()));
        }
    })))
    .unwrap();
    let r1 = Realm::open(&handled).unwrap();
    let r2 = Realm::open(&logged).unwrap();
    // ... and recoverable ones at INFO: an offline user whose auth server is down cannot get
    // an access token, and the session retries.
    let offline = app
        .login(
            &Credentials::access_token("token", &unique("offline")),
            &common::server::closed_port_url(),
        )
        .unwrap();
    let retrying = config_with(&offline, &sync_url(&server, "/~/retrying"), |_| {});
    let r3 = Realm::open(&retrying).unwrap();
    wait_state(&r1.session().unwrap(), SessionState::Error);
    wait_state(&r2.session().unwrap(), SessionState::Error);
    let line_of = |url: &str| {
        let mut found = None;
        wait_until("the built-in handler's log line", || {
            found = lines
                .lock()
                .unwrap()
                .iter()
                .find(|(_, _, m)| m.starts_with(&format!("Session Error[{url}]: ")))
                .cloned();
            found.is_some()
        });
        found.unwrap()
    };
    let fatal = line_of(logged.sync_config().unwrap().server_url());
    assert_eq!(
        (fatal.0, fatal.1.as_str()),
        (shoal::LogLevel::Error, "shoal::sync")
    );
    let recoverable = line_of(retrying.sync_config().unwrap().server_url());
    assert_eq!(recoverable.0, shoal::LogLevel::Info, "{recoverable:?}");
    assert_ne!(r3.session().unwrap().state(), SessionState::Error);
    shoal::set_log_callback(None).unwrap();
    let handled_url = handled.sync_config().unwrap().server_url().to_owned();
    assert!(
        !lines
            .lock()
            .unwrap()
            .iter()
            .any(|(_, _, m)| m.contains(&handled_url)),
        "a config with a handler is not logged by the built-in one"
    );
    wait_until("the default handler's call", || {
        !got.lock().unwrap().is_empty()
    });
    let (path, code, fatal) = got.lock().unwrap()[0].clone();
    assert_eq!(path, handled.path());
    assert_eq!(code, ErrorCode::AccessDenied as i32);
    assert!(fatal);
}

//! Synced realms against a real `shoal-server` in this process, on a loopback port: sessions,
//! progress, waits, stop policies, tokens, logout, client reset and convergence (the
//! behaviours of Realm Java's SyncSessionTests, ProgressListenerTests, SyncConfigurationTests
//! and SessionTests). Background events are awaited with deadlines.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{Server, ADMIN_PASSWORD, APP_ID, WAIT};
use shoal::protocol::sync::{
    Message, MAX_CHANGESET_BYTES, PROTOCOL_VERSION, WEBSOCKET_SUBPROTOCOL,
};
use shoal::{
    App, Config, ConnectionState, Credentials, ErrorCode, Progress, ProgressDirection,
    ProgressMode, PropertyFlags as F, PropertyType as T, Realm, Schema, SessionState, StopPolicy,
    SyncConfig, SyncError, User, Value,
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
    s.add_property("Item", "name", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Item", "count", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Item", "tags", T::String, F::LIST, None)
        .unwrap();
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

fn find(realm: &Realm, id: i64) -> Option<shoal::Object> {
    realm.refresh().unwrap();
    realm.find_object("Item", &Value::Int(id)).unwrap()
}

/// Records every error the handler gets.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<SyncError>>>);

impl Errors {
    fn install(&self, sync: &mut SyncConfig) {
        let me = self.clone();
        sync.set_error_handler(move |_, e| me.0.lock().unwrap().push(e.clone()));
    }
    fn all(&self) -> Vec<SyncError> {
        self.0.lock().unwrap().clone()
    }
    fn wait_for(&self, what: &str, f: impl Fn(&SyncError) -> bool) -> SyncError {
        let mut found = None;
        wait_until(what, || {
            found = self.all().into_iter().find(|e| f(e));
            found.is_some()
        });
        found.unwrap()
    }
}

fn wait_state(session: &shoal::Session, state: SessionState) {
    wait_until(&format!("session state {state:?}"), || {
        session.state() == state
    });
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

// ---- sessions (SyncSessionTests) ----------------------------------------------------------

#[test]
fn session_states_follow_login_and_logout_for_every_session_of_the_user() {
    let server = Server::start();
    let d = device();
    let name = unique("u");
    let user = login(&d, &server, &name, true);
    let c1 = config(&user, &sync_url(&server, "/~/tests"));
    let r1 = Realm::open(&c1).unwrap();
    let r2 = Realm::open(&config(&user, &sync_url(&server, "/~/tests2"))).unwrap();
    let (s1, s2) = (r1.session().unwrap(), r2.session().unwrap());
    assert_ne!(s1, s2, "two files, two sessions");
    assert_eq!(s1, r1.session().unwrap(), "one session per file");
    assert_eq!(s1, d.app.session(&c1).unwrap());
    wait_state(&s1, SessionState::Active);
    wait_state(&s2, SessionState::Active);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let _t = s1.add_state_callback(move |old, new| rec.lock().unwrap().push((old, new)));

    user.logout();
    wait_state(&s1, SessionState::Inactive);
    wait_state(&s2, SessionState::Inactive);
    add_items(&r1, 0..1); // writes go on while logged out

    let again = login(&d, &server, &name, false);
    assert_eq!(again.identity(), user.identity());
    wait_state(&s1, SessionState::Active);
    wait_state(&s2, SessionState::Active);
    s1.wait_for_upload(WAIT).unwrap();
    let transitions = seen.lock().unwrap().clone();
    assert!(
        transitions.contains(&(SessionState::Active, SessionState::Inactive)),
        "{transitions:?}"
    );
    assert!(
        transitions.contains(&(SessionState::Inactive, SessionState::WaitingForAccessToken)),
        "{transitions:?}"
    );
    assert!(
        transitions.contains(&(SessionState::WaitingForAccessToken, SessionState::Active)),
        "{transitions:?}"
    );
}

#[test]
fn a_user_and_an_admin_sync_the_same_path() {
    let server = Server::start();
    let (a, b) = (device(), device());
    let user = login(&a, &server, &unique("u"), true);
    let admin = admin(&b, &server);
    let ru = Realm::open(&config(&user, &sync_url(&server, "/~/shared"))).unwrap();
    add_items(&ru, 0..1);
    ru.session().unwrap().wait_for_upload(WAIT).unwrap();

    let path = format!("/{}/shared", user.identity());
    let ra = Realm::open(&config(&admin, &sync_url(&server, &path))).unwrap();
    let sa = ra.session().unwrap();
    sa.wait_for_download(WAIT).unwrap();
    assert_eq!(count(&ra), 1);
    assert_ne!(ra.path(), ru.path(), "each user has its own local copy");
    add_items(&ra, 1..3);
    sa.wait_for_upload(WAIT).unwrap();
    ru.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(count(&ru), 3);
}

#[test]
fn writes_made_while_logged_out_upload_after_the_next_login() {
    // The reference's logBackResumeUpload.
    let server = Server::start();
    let (a, b) = (device(), device());
    let name = unique("u");
    let user = login(&a, &server, &name, true);
    let admin = admin(&b, &server);
    let realm = Realm::open(&config(&user, &sync_url(&server, "/~/resume"))).unwrap();
    add_items(&realm, 1..2);
    let session = realm.session().unwrap();
    session.wait_for_upload(WAIT).unwrap();
    user.logout();
    wait_state(&session, SessionState::Inactive);
    add_items(&realm, 2..3);

    let path = format!("/{}/resume", user.identity());
    let watcher = Realm::open(&config(&admin, &sync_url(&server, &path))).unwrap();
    watcher.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(count(&watcher), 1, "nothing uploads while logged out");

    login(&a, &server, &name, false);
    wait_until("the admin sees both objects", || count(&watcher) == 2);
    let names: Vec<Value> = (1..3)
        .map(|id| find(&watcher, id).unwrap().get("name").unwrap())
        .collect();
    assert_eq!(names, vec![Value::from("item 1"), Value::from("item 2")]);
}

#[test]
fn changes_upload_after_the_realm_is_closed() {
    // The reference's uploadChangesWhenRealmOutOfScope: 25 values of 1,000,000 characters,
    // the realm closed at once; the default stop policy uploads them all.
    let server = Server::start();
    let (a, b) = (device(), device());
    let user = login(&a, &server, &unique("u"), true);
    let admin = admin(&b, &server);
    let big = "x".repeat(1_000_000);
    let session = {
        let realm = Realm::open(&config(&user, &sync_url(&server, "/~/big"))).unwrap();
        for id in 0..25 {
            realm.begin_write().unwrap();
            let o = realm.create_object("Item", Some(&Value::Int(id))).unwrap();
            o.set("name", Value::String(big.clone())).unwrap();
            realm.commit().unwrap();
        }
        let session = realm.session().unwrap();
        realm.close();
        session
    };
    assert_eq!(session.state(), SessionState::Dying);
    wait_state(&session, SessionState::Inactive);

    let path = format!("/{}/big", user.identity());
    let watcher = Realm::open(&config(&admin, &sync_url(&server, &path))).unwrap();
    wait_until("25 big values", || count(&watcher) == 25);
    for id in 0..25 {
        let name = find(&watcher, id).unwrap().get("name").unwrap();
        assert_eq!(name.as_str().map(str::len), Some(1_000_000));
    }
}

#[test]
fn stop_policies_decide_what_closing_the_last_handle_does() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let url = sync_url(&server, "/~/policies");
    let immediately = config_with(&user, &url, |s| {
        s.set_stop_policy(StopPolicy::Immediately);
    });
    let realm = Realm::open(&immediately).unwrap();
    let session = realm.session().unwrap();
    wait_state(&session, SessionState::Active);
    realm.close();
    wait_state(&session, SessionState::Inactive);

    let live = config_with(&user, &sync_url(&server, "/~/live"), |s| {
        s.set_stop_policy(StopPolicy::LiveIndefinitely);
    });
    let realm = Realm::open(&live).unwrap();
    let session = realm.session().unwrap();
    wait_state(&session, SessionState::Active);
    drop(realm);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(session.state(), SessionState::Active);

    // Reopening a stopped session's file starts it again.
    let realm = Realm::open(&immediately).unwrap();
    wait_state(&realm.session().unwrap(), SessionState::Active);
}

#[test]
fn pause_stops_syncing_until_resume() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let realm = Realm::open(&config(&user, &sync_url(&server, "/~/pause"))).unwrap();
    let session = realm.session().unwrap();
    wait_state(&session, SessionState::Active);
    session.pause();
    wait_state(&session, SessionState::Inactive);
    add_items(&realm, 0..3);
    let e = session
        .wait_for_upload(Duration::from_millis(300))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout);
    session.resume();
    session.wait_for_upload(WAIT).unwrap();
    assert_eq!(session.state(), SessionState::Active);
}

#[test]
fn wait_for_initial_data_downloads_before_the_open_returns() {
    let server = Server::start();
    let (a, b) = (device(), device());
    let name = unique("u");
    let ua = login(&a, &server, &name, true);
    let url = sync_url(&server, "/~/initial");
    let ra = Realm::open(&config(&ua, &url)).unwrap();
    add_items(&ra, 0..10);
    ra.session().unwrap().wait_for_upload(WAIT).unwrap();

    let ub = login(&b, &server, &name, false);
    let waiting = config_with(&ub, &url, |s| {
        s.set_wait_for_initial_data(Some(WAIT));
    });
    let rb = Realm::open(&waiting).unwrap();
    assert_eq!(rb.objects("Item").unwrap().count().unwrap(), 10);
    add_items(&rb, 10..20);
    assert_eq!(count(&rb), 20);
}

#[test]
fn the_token_binder_supplies_access_tokens() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let rec = asked.clone();
    let binder_user = user.clone();
    let cfg = config_with(&user, &sync_url(&server, "/~/bound"), move |s| {
        s.set_token_binder(move |session, path| {
            rec.lock().unwrap().push(path.to_owned());
            let session = session.clone();
            let user = binder_user.clone();
            let path = path.to_owned();
            // Answer later, from another thread, as a binding would.
            std::thread::spawn(move || {
                let token = user.access_token(&path).unwrap();
                session.bind_token(&token.token).unwrap();
            });
        });
    });
    let realm = Realm::open(&cfg).unwrap();
    add_items(&realm, 0..2);
    let session = realm.session().unwrap();
    session.wait_for_upload(WAIT).unwrap();
    assert_eq!(
        *asked.lock().unwrap(),
        vec![format!("/{}/bound", user.identity())]
    );
    assert!(session.bind_token("").is_err());
}

// ---- errors -------------------------------------------------------------------------------

#[test]
fn another_users_path_is_a_fatal_error_for_the_handler() {
    let server = Server::start();
    let d = device();
    let owner = login(&d, &server, &unique("owner"), true);
    let other = login(&d, &server, &unique("other"), true);
    let errors = Errors::default();
    let path = format!("/{}/private", owner.identity());
    let cfg = config_with(&other, &sync_url(&server, &path), |s| errors.install(s));
    let realm = Realm::open(&cfg).unwrap(); // opening never waits on the network
    let session = realm.session().unwrap();
    wait_state(&session, SessionState::Error);
    let e = errors.wait_for("an access error", |e| e.is_fatal);
    assert_eq!(e.code, ErrorCode::AccessDenied as i32, "{e:?}");
    assert!(!e.is_client_reset);
    let wait = session.wait_for_upload(WAIT).unwrap_err();
    assert_eq!(wait.code(), ErrorCode::AccessDenied);
    // The realm itself still works offline.
    add_items(&realm, 0..1);
    assert_eq!(count(&realm), 1);
}

#[test]
fn a_forged_token_is_bad_authentication() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let errors = Errors::default();
    let cfg = config_with(&user, &sync_url(&server, "/~/forged"), |s| {
        errors.install(s);
        s.set_token_binder(|session, _| {
            let session = session.clone();
            std::thread::spawn(move || session.bind_token("not-a-token").unwrap());
        });
    });
    // A good session of the same user shares the connection the whole time.
    let good = Realm::open(&config(&user, &sync_url(&server, "/~/good"))).unwrap();
    let realm = Realm::open(&cfg).unwrap();
    let session = realm.session().unwrap();
    let e = errors.wait_for("BAD_AUTHENTICATION", |e| e.code == 203);
    assert!(e.is_fatal, "{e:?}");
    assert_eq!(e.name(), "BAD_AUTHENTICATION");
    wait_state(&session, SessionState::Error);
    add_items(&good, 0..3);
    let s = good.session().unwrap();
    s.wait_for_upload(WAIT).unwrap();
    assert_eq!(s.state(), SessionState::Active);
}

#[test]
fn an_expired_access_token_is_renewed_without_user_action() {
    let server = Server::start_with(|c| c.access_token_ttl = 5);
    let (a, b) = (device(), device());
    let name = unique("u");
    let ua = login(&a, &server, &name, true);
    let ub = login(&b, &server, &name, false);
    let errors = Errors::default();
    let url = sync_url(&server, "/~/ttl");
    let ra = Realm::open(&config_with(&ua, &url, |s| errors.install(s))).unwrap();
    let rb = Realm::open(&config(&ub, &url)).unwrap();
    add_items(&ra, 0..1);
    ra.session().unwrap().wait_for_upload(WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(7)); // the first tokens have expired
    add_items(&ra, 1..2);
    ra.session().unwrap().wait_for_upload(WAIT).unwrap();
    wait_until("B gets both", || count(&rb) == 2);
    assert!(
        errors.all().iter().all(|e| !e.is_fatal),
        "{:?}",
        errors.all()
    );
    assert_eq!(ra.session().unwrap().state(), SessionState::Active);
}

#[test]
fn a_server_restart_mid_upload_loses_nothing() {
    let server = Server::start();
    let (a, b) = (device(), device());
    let name = unique("u");
    let ua = login(&a, &server, &name, true);
    let ub = login(&b, &server, &name, false);
    let url = sync_url(&server, "/~/restart");
    let ra = Realm::open(&config(&ua, &url)).unwrap();
    let sa = ra.session().unwrap();
    wait_state(&sa, SessionState::Active);
    for batch in 0..40 {
        add_items(&ra, batch * 50..batch * 50 + 50);
    }
    // Stop while the upload is under way, write more while the server is down.
    let stopped = server.stopped();
    add_items(&ra, 2000..2100);
    let server = stopped.restart();
    sa.wait_for_upload(WAIT).unwrap();
    let rb = Realm::open(&config(&ub, &url)).unwrap();
    rb.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(count(&rb), 2100);
    assert_eq!(ra.dump_json().unwrap(), rb.dump_json().unwrap());
    drop(server);
}

#[test]
fn a_server_that_lost_the_realm_triggers_a_client_reset_with_a_backup() {
    let server = Server::start();
    let d = device();
    let name = unique("u");
    let user = login(&d, &server, &name, true);
    let errors = Errors::default();
    // Encrypted, as the reference's errorHandler_useClientResetEncrypted: the backup stays
    // encrypted with the same key.
    let key = [7u8; 64];
    let mut cfg = config_with(&user, &sync_url(&server, "/~/reset"), |s| errors.install(s));
    cfg.set_encryption_key(Some(&key)).unwrap();
    let original_path = cfg.path().to_owned();
    {
        let realm = Realm::open(&cfg).unwrap();
        add_items(&realm, 0..1);
        realm.session().unwrap().wait_for_upload(WAIT).unwrap();
    }
    let session = d.app.session(&cfg).unwrap();
    wait_state(&session, SessionState::Inactive);
    // The server loses its sync data (users and keys stay).
    let stopped = server.stopped();
    let data = stopped.config.data_dir.clone();
    std::fs::remove_file(data.join("sync.redb")).unwrap();
    std::fs::remove_dir_all(data.join("realms")).unwrap();
    let server = stopped.restart();

    let realm = Realm::open(&cfg).unwrap();
    let e = errors.wait_for("a client reset", |e| e.is_client_reset);
    assert_eq!(e.code, ErrorCode::ClientReset as i32);
    assert_eq!(e.name(), "CLIENT_RESET");
    assert!(e.is_fatal);
    assert_eq!(e.original_path.as_deref(), Some(original_path.as_str()));
    let backup = e.backup_path.clone().unwrap();
    assert!(!std::path::Path::new(&backup).exists());
    wait_state(&realm.session().unwrap(), SessionState::Error);
    let busy = d.app.execute_client_reset(&original_path).unwrap_err();
    assert_eq!(busy.code(), ErrorCode::RealmInUse);
    realm.close();
    drop(realm);
    wait_until("the session lets go of the file", || {
        d.app
            .execute_client_reset(&original_path)
            .map(|b| assert_eq!(b, backup))
            .is_ok()
    });
    assert!(!std::path::Path::new(&original_path).exists());
    assert!(std::path::Path::new(&backup).exists());

    let wrong = Config::for_recovery(backup.clone(), Some(&[8u8; 64]), None).unwrap();
    assert_eq!(
        Realm::open(&wrong).unwrap_err().code(),
        ErrorCode::DecryptionFailed
    );
    let no_key = Config::for_recovery(backup.clone(), None, None).unwrap();
    assert_eq!(
        Realm::open(&no_key).unwrap_err().code(),
        ErrorCode::DecryptionFailed
    );
    let recovered =
        Realm::open(&Config::for_recovery(backup, Some(&key), Some(schema())).unwrap()).unwrap();
    assert_eq!(recovered.objects("Item").unwrap().count().unwrap(), 1);
    assert_eq!(
        recovered.begin_write().unwrap_err().code(),
        ErrorCode::ReadOnly
    );

    // A fresh open starts over with the server.
    let realm = Realm::open(&cfg).unwrap();
    add_items(&realm, 5..6);
    realm.session().unwrap().wait_for_upload(WAIT).unwrap();
    drop(server);
}

/// Makes the server refuse the history of `cfg`'s file with BAD_CLIENT_FILE_IDENT (208), so
/// that opening it raises a client reset: the file of another path of the same user, synced
/// (with `items`) and closed, is copied over it, and its client file ident is unknown to
/// `cfg`'s path.
fn plant_a_foreign_file(
    server: &Server,
    user: &User,
    cfg: &Config,
    key: Option<&[u8; 64]>,
    items: std::ops::Range<i64>,
) {
    let mut donor = config(user, &sync_url(server, &format!("/~/{}", unique("donor"))));
    donor.set_encryption_key(key.map(|k| &k[..])).unwrap();
    let realm = Realm::open(&donor).unwrap();
    let session = realm.session().unwrap();
    add_items(&realm, items);
    session.wait_for_upload(WAIT).unwrap();
    drop(realm);
    // AFTER_CHANGES_UPLOADED: the session stops, and lets go of the file, by itself.
    wait_state(&session, SessionState::Inactive);
    std::fs::copy(donor.path(), cfg.path()).unwrap();
}

/// A backup path of the seed's form: `<sync root>/recovered-realms/recovered_realm-YYYYMMDD-
/// HHMMSS-XXXXXXXX` (local time; 8 letters or digits).
fn check_backup_path(app: &App, backup: &std::path::Path) {
    assert_eq!(
        backup.parent().unwrap(),
        app.sync_root().join("recovered-realms")
    );
    let name = backup.file_name().unwrap().to_str().unwrap();
    let parts: Vec<&str> = name.split('-').collect();
    assert_eq!(parts.len(), 4, "{name}");
    assert_eq!(parts[0], "recovered_realm", "{name}");
    assert!(
        parts[1].len() == 8 && parts[1].bytes().all(|b| b.is_ascii_digit()),
        "{name}"
    );
    assert!(
        parts[2].len() == 6 && parts[2].bytes().all(|b| b.is_ascii_digit()),
        "{name}"
    );
    assert!(
        parts[3].len() == 8 && parts[3].bytes().all(|b| b.is_ascii_alphanumeric()),
        "{name}"
    );
}

#[test]
fn a_client_reset_not_executed_by_hand_runs_at_the_next_open_once_every_handle_closed() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let errors = Errors::default();
    let key = [3u8; 64];
    let mut cfg = config_with(&user, &sync_url(&server, "/~/auto-reset"), |s| {
        errors.install(s)
    });
    cfg.set_encryption_key(Some(&key)).unwrap();
    plant_a_foreign_file(&server, &user, &cfg, Some(&key), 0..3);

    let first = Realm::open(&cfg).unwrap();
    let second = Realm::open(&cfg).unwrap();
    let e = errors.wait_for("a client reset", |e| e.is_client_reset);
    assert_eq!(e.code, ErrorCode::ClientReset as i32);
    assert!(e.is_fatal);
    assert!(e.message.contains("BAD_CLIENT_FILE_IDENT"), "{}", e.message);
    assert_eq!(e.original_path.as_deref(), Some(cfg.path()));
    let backup = std::path::PathBuf::from(e.backup_path.clone().unwrap());
    check_backup_path(&d.app, &backup);
    assert!(
        !backup.exists(),
        "the backup exists only once the reset ran"
    );
    // The ready backup configuration: the backup, read-only and unsynced, with the original's
    // key and schema.
    let backup_config = *e.backup_config.clone().unwrap();
    assert_eq!(backup_config.path(), backup.to_str().unwrap());
    assert!(backup_config.is_encrypted());
    assert!(backup_config.sync_config().is_none());
    assert_eq!(backup_config.schema(), Some(&schema()));
    // The app keeps the session handle throughout: it does not keep the reset from running.
    let old_session = first.session().unwrap();
    wait_state(&old_session, SessionState::Error);
    // Written after the error: not synced, in the backup only.
    add_items(&first, 10..11);
    // While a handle is open, opening again does not reset.
    drop(first);
    let third = Realm::open(&cfg).unwrap();
    assert_eq!(count(&third), 4);
    assert_eq!(third.session().unwrap().state(), SessionState::Error);
    assert!(!backup.exists());
    drop(second);
    drop(third);

    // Every handle closed: the next open runs the reset and starts over with the server.
    let realm = Realm::open(&cfg).unwrap();
    assert!(backup.exists());
    assert_eq!(count(&realm), 0);
    let session = realm.session().unwrap();
    assert_ne!(session, old_session, "a new file gets a new session");
    add_items(&realm, 20..21);
    session.wait_for_upload(WAIT).unwrap();
    assert_eq!(session.state(), SessionState::Active);
    assert_eq!(old_session.state(), SessionState::Error);
    assert_eq!(errors.all().iter().filter(|e| e.is_client_reset).count(), 1);
    // Nothing is left to do: executing it by hand now finds the new file and no record; the
    // realm is open, so it is refused.
    assert_eq!(
        d.app.execute_client_reset(cfg.path()).unwrap_err().code(),
        ErrorCode::RealmInUse
    );

    // The backup configuration opens the backup, with what was written after the error.
    let recovered = Realm::open(&backup_config).unwrap();
    assert_eq!(recovered.objects("Item").unwrap().count().unwrap(), 4);
    assert!(find(&recovered, 10).is_some());
    assert!(recovered.schema().unwrap().class("Item").is_some());
    assert_eq!(
        recovered.begin_write().unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    let wrong = Config::for_recovery(backup.display().to_string(), Some(&[4u8; 64]), None);
    assert_eq!(
        Realm::open(&wrong.unwrap()).unwrap_err().code(),
        ErrorCode::DecryptionFailed
    );
    drop(server);
}

#[test]
fn a_client_reset_raised_before_a_restart_runs_at_the_first_open_after_it() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("u");
    let url = sync_url(&server, "/~/reset-restart");
    let key = [5u8; 64];
    let errors = Errors::default();
    let (original, backup) = {
        let app = App::new(dir.path(), APP_ID).unwrap();
        let user = app
            .login(
                &Credentials::password(&name, "myPassw0rd", true).unwrap(),
                &server.auth_url(),
            )
            .unwrap();
        let mut cfg = config_with(&user, &url, |s| errors.install(s));
        cfg.set_encryption_key(Some(&key)).unwrap();
        plant_a_foreign_file(&server, &user, &cfg, Some(&key), 0..2);
        let realm = Realm::open(&cfg).unwrap();
        let e = errors.wait_for("a client reset", |e| e.is_client_reset);
        let session = realm.session().unwrap();
        wait_state(&session, SessionState::Error);
        add_items(&realm, 7..8);
        (cfg.path().to_owned(), e.backup_path.clone().unwrap())
        // The app, its user, sessions and realm are all gone here: the process "exits"
        // without the reset having run.
    };
    assert!(std::path::Path::new(&original).exists());
    assert!(!std::path::Path::new(&backup).exists());

    // The next start of the app, on the same directory: its first open of the realm runs the
    // recorded reset, to the very path the error announced.
    let app = App::new(dir.path(), APP_ID).unwrap();
    let user = app
        .current_user()
        .unwrap()
        .expect("the user is still logged in");
    let mut cfg = config(&user, &url);
    cfg.set_encryption_key(Some(&key)).unwrap();
    assert_eq!(cfg.path(), original);
    let realm = Realm::open(&cfg).unwrap();
    assert!(std::path::Path::new(&backup).exists());
    check_backup_path(&app, std::path::Path::new(&backup));
    assert_eq!(count(&realm), 0);
    add_items(&realm, 30..31);
    realm.session().unwrap().wait_for_upload(WAIT).unwrap();
    let recovered =
        Realm::open(&Config::for_recovery(backup, Some(&key), Some(schema())).unwrap()).unwrap();
    assert_eq!(recovered.objects("Item").unwrap().count().unwrap(), 3);
    // The record is gone with the reset: a later open does not move the new file.
    drop(realm);
    let realm = Realm::open(&cfg).unwrap();
    assert_eq!(count(&realm), 1);
    drop(server);
}

#[test]
fn the_backup_path_of_a_reset_by_hand_is_the_announced_one_with_or_without_the_session_handle() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    for hold_the_session in [true, false] {
        let errors = Errors::default();
        let cfg = config_with(
            &user,
            &sync_url(&server, &format!("/~/{}", unique("exact"))),
            |s| errors.install(s),
        );
        plant_a_foreign_file(&server, &user, &cfg, None, 0..1);
        let realm = Realm::open(&cfg).unwrap();
        let e = errors.wait_for("a client reset", |e| e.is_client_reset);
        let session = realm.session().unwrap();
        wait_state(&session, SessionState::Error);
        drop(realm);
        let held = hold_the_session.then_some(session);
        // A second later a recomputed name would differ (it has the time to the second).
        std::thread::sleep(Duration::from_millis(1100));
        let backup = d.app.execute_client_reset(cfg.path()).unwrap();
        assert_eq!(
            Some(&backup),
            e.backup_path.as_ref(),
            "held: {hold_the_session}"
        );
        check_backup_path(&d.app, std::path::Path::new(&backup));
        assert!(std::path::Path::new(&backup).exists());
        assert!(!std::path::Path::new(cfg.path()).exists());
        let recovered = Realm::open(e.backup_config.as_deref().unwrap()).unwrap();
        assert_eq!(recovered.objects("Item").unwrap().count().unwrap(), 1);
        drop(held);
        // Executed: nothing is pending any more, and the next open starts a new file.
        let realm = Realm::open(&cfg).unwrap();
        assert_eq!(count(&realm), 0);
        assert!(std::path::Path::new(&backup).exists());
    }
    drop(server);
}

// ---- large transactions (issue 13) ----------------------------------------------------------

#[test]
fn a_transaction_larger_than_a_message_uploads_in_parts_and_reaches_a_second_client() {
    // The reference's uploadChangesWhenRealmOutOfScope: 25 strings of 1,000,000 characters
    // in one transaction, the realm closed at once (AFTER_CHANGES_UPLOADED uploads it).
    let server = Server::start();
    let (a, b) = (device(), device());
    let name = unique("u");
    let ua = login(&a, &server, &name, true);
    let ub = login(&b, &server, &name, false);
    let url = sync_url(&server, "/~/large");
    let errors = Errors::default();
    let cfg = config_with(&ua, &url, |s| errors.install(s));
    let (reports, recorder) = recorder();
    let (session, _token) = {
        let realm = Realm::open(&cfg).unwrap();
        let session = realm.session().unwrap();
        let token = session
            .add_progress_callback(
                ProgressDirection::Upload,
                ProgressMode::Indefinitely,
                recorder,
            )
            .unwrap();
        realm.begin_write().unwrap();
        for i in 0..25i64 {
            let o = realm.create_object("Item", Some(&Value::Int(i))).unwrap();
            let c = char::from(b'a' + i as u8);
            o.set("name", Value::String(c.to_string().repeat(1_000_000)))
                .unwrap();
        }
        realm.commit().unwrap();
        (session, token)
    };
    wait_state(&session, SessionState::Inactive);
    // One changeset of more than 25 MB went up (more than a message of 16 MiB may carry).
    let last = *reports.lock().unwrap().last().unwrap();
    assert!(
        last.is_complete() && last.transferable > 25_000_000,
        "{last:?}"
    );
    assert!(
        errors.all().is_empty(),
        "no error, fatal or not: {:?}",
        errors.all()
    );

    let rb = Realm::open(&config(&ub, &url)).unwrap();
    rb.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(count(&rb), 25);
    for i in 0..25i64 {
        let name = find(&rb, i).unwrap().get("name").unwrap();
        let Value::String(name) = name else {
            panic!("not a string: {name:?}")
        };
        assert_eq!(name.len(), 1_000_000);
        assert!(name.starts_with(char::from(b'a' + i as u8)));
    }
    // Small changes go on syncing both ways after it.
    add_items(&rb, 100..101);
    rb.session().unwrap().wait_for_upload(WAIT).unwrap();
    let ra = Realm::open(&cfg).unwrap();
    ra.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(count(&ra), 26);
    drop(server);
}

// ---- progress (ProgressListenerTests) -----------------------------------------------------

type Reports = Arc<Mutex<Vec<Progress>>>;

fn recorder() -> (Reports, impl Fn(Progress) + Send + Sync + 'static) {
    let reports: Reports = Arc::default();
    let rec = reports.clone();
    (reports, move |p| rec.lock().unwrap().push(p))
}

fn wait_complete(reports: &Reports, non_zero: bool) -> Progress {
    let mut last = None;
    wait_until("a complete progress report", || {
        last = reports
            .lock()
            .unwrap()
            .iter()
            .copied()
            .find(|p| p.is_complete() && (!non_zero || p.transferred > 0));
        last.is_some()
    });
    let p = last.unwrap();
    assert_eq!(p.fraction(), 1.0);
    assert_eq!(p.transferred, p.transferable);
    p
}

#[test]
fn upload_progress_current_changes_completes_after_a_write() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let realm = Realm::open(&config(&user, &sync_url(&server, "/~/up"))).unwrap();
    let session = realm.session().unwrap();
    for round in 0..5 {
        add_items(&realm, round * 10..round * 10 + 10);
        let (reports, cb) = recorder();
        let _t = session
            .add_progress_callback(ProgressDirection::Upload, ProgressMode::CurrentChanges, cb)
            .unwrap();
        wait_complete(&reports, true);
        let all = reports.lock().unwrap().clone();
        assert!(
            all.windows(2).all(|w| w[0].transferred <= w[1].transferred),
            "{all:?}"
        );
        assert!(
            all.iter().all(|p| p.transferable == all[0].transferable),
            "fixed target: {all:?}"
        );
    }
}

#[test]
fn download_progress_current_changes_completes_with_the_data() {
    let server = Server::start();
    let (a, b) = (device(), device());
    let user = login(&a, &server, &unique("u"), true);
    let ra = Realm::open(&config(&user, &sync_url(&server, "/~/down"))).unwrap();
    add_items(&ra, 0..10);
    ra.session().unwrap().wait_for_upload(WAIT).unwrap();

    let admin = admin(&b, &server);
    let path = format!("/{}/down", user.identity());
    let rb = Realm::open(&config(&admin, &sync_url(&server, &path))).unwrap();
    let (reports, cb) = recorder();
    let _t = rb
        .session()
        .unwrap()
        .add_progress_callback(
            ProgressDirection::Download,
            ProgressMode::CurrentChanges,
            cb,
        )
        .unwrap();
    wait_complete(&reports, true);
    assert_eq!(count(&rb), 10);
}

#[test]
fn download_progress_indefinitely_reports_each_completion() {
    let server = Server::start();
    let (a, b) = (device(), device());
    let name = unique("u");
    let ua = login(&a, &server, &name, true);
    let ub = login(&b, &server, &name, false);
    let url = sync_url(&server, "/~/forever");
    let rb = Realm::open(&config(&ub, &url)).unwrap();
    let sb = rb.session().unwrap();
    sb.wait_for_download(WAIT).unwrap();
    let (reports, cb) = recorder();
    let _t = sb
        .add_progress_callback(ProgressDirection::Download, ProgressMode::Indefinitely, cb)
        .unwrap();
    wait_until("the immediate report", || {
        !reports.lock().unwrap().is_empty()
    });
    let ra = Realm::open(&config(&ua, &url)).unwrap();
    let sa = ra.session().unwrap();
    add_items(&ra, 0..10);
    sa.wait_for_upload(WAIT).unwrap();
    wait_until("10 objects", || count(&rb) == 10);
    add_items(&ra, 10..20);
    sa.wait_for_upload(WAIT).unwrap();
    wait_until("20 objects", || count(&rb) == 20);
    sb.wait_for_download(WAIT).unwrap();
    let completes: Vec<Progress> = reports
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|p| p.is_complete() && p.transferred > 0)
        .collect();
    assert!(completes.len() >= 2, "{completes:?}");
    assert!(completes
        .windows(2)
        .all(|w| w[0].transferred < w[1].transferred));
    let all = reports.lock().unwrap().clone();
    assert!(
        all.windows(2).all(|w| w[0] != w[1]),
        "repeats are left out: {all:?}"
    );
}

#[test]
fn progress_callbacks_fire_at_registration_and_may_register_and_write() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let realm = Realm::open(&config(&user, &sync_url(&server, "/~/inside"))).unwrap();
    let session = realm.session().unwrap();
    session.wait_for_download(WAIT).unwrap();
    for mode in [ProgressMode::CurrentChanges, ProgressMode::Indefinitely] {
        let (reports, cb) = recorder();
        let _t = session
            .add_progress_callback(ProgressDirection::Download, mode, cb)
            .unwrap();
        wait_until("the immediate report", || {
            !reports.lock().unwrap().is_empty()
        });
    }

    // An INDEFINITELY upload callback that writes more on its first completion and adds a
    // CURRENT_CHANGES callback, which must complete too.
    let (tx, rx) = mpsc::channel::<&'static str>();
    let inner_tokens = Arc::new(Mutex::new(Vec::new()));
    let first = Arc::new(AtomicUsize::new(0));
    let cb_realm = realm.clone();
    let cb_session = session.clone();
    let tokens = inner_tokens.clone();
    let tx2 = tx.clone();
    add_items(&realm, 0..5);
    let _outer = session
        .add_progress_callback(
            ProgressDirection::Upload,
            ProgressMode::Indefinitely,
            move |p| {
                if !p.is_complete() || p.transferred == 0 {
                    return;
                }
                if first.fetch_add(1, Ordering::SeqCst) == 0 {
                    let r = cb_realm.clone();
                    add_items(&r, 100..105);
                    let tx3 = tx2.clone();
                    let t = cb_session
                        .add_progress_callback(
                            ProgressDirection::Upload,
                            ProgressMode::CurrentChanges,
                            move |p| {
                                if p.is_complete() {
                                    let _ = tx3.send("inner complete");
                                }
                            },
                        )
                        .unwrap();
                    tokens.lock().unwrap().push(t);
                    let _ = tx2.send("outer first");
                } else {
                    let _ = tx2.send("outer again");
                }
            },
        )
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(rx.recv_timeout(WAIT).expect("progress events"));
    }
    got.sort_unstable();
    assert_eq!(got, ["inner complete", "outer again", "outer first"]);
}

// ---- configuration and schema (SyncConfigurationTests) ------------------------------------

#[test]
fn sync_configs_check_the_user_and_place_files_per_user() {
    let server = Server::start();
    let d = device();
    let u1 = login(&d, &server, &unique("u1"), true);
    let u2 = login(&d, &server, &unique("u2"), true);
    let host = server.addr;
    let shared = format!("realm://{host}/42/default");
    let c1 = SyncConfig::new(&u1, &shared).unwrap();
    let c2 = SyncConfig::new(&u2, &shared).unwrap();
    assert_ne!(c1.local_path(), c2.local_path());
    let root = d.app.sync_root();
    assert_eq!(
        c1.local_path(),
        root.join(u1.identity()).join("42").join("default")
    );

    let mine = SyncConfig::new(&u1, &format!("realm://{host}/~/sub/default")).unwrap();
    assert_eq!(
        mine.server_path(),
        format!("/{}/sub/default", u1.identity())
    );
    assert_eq!(
        mine.server_url(),
        format!("realm://{host}/{}/sub/default", u1.identity())
    );
    assert_eq!(
        mine.local_path(),
        root.join(u1.identity())
            .join(u1.identity())
            .join("sub")
            .join("default")
    );
    for bad in [
        "http://host/~/default".to_owned(),
        format!("realm://{host}/~/default.realm"),
        format!("realm://{host}/~/default.realm.lock"),
        format!("realm://{host}/~/default.realm.management"),
        format!("realm://{host}/~/a/../b"),
        format!("realm://{host}/~/<~>"),
        format!("realm://{host}/~/default/"),
        String::new(),
    ] {
        let e = SyncConfig::new(&u1, &bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}");
    }
    u2.logout();
    let e = SyncConfig::new(&u2, &shared).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    // A configuration made before the logout still opens (offline).
    let mut c = Config::new("x");
    c.set_schema(schema()).unwrap();
    c.set_sync(c2);
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.session().unwrap().state(), SessionState::Inactive);
}

fn schema_with_extra() -> Schema {
    let mut s = schema();
    s.add_class("Extra", None).unwrap();
    s.add_property("Extra", "note", T::String, F::NONE, None)
        .unwrap();
    s
}

#[test]
fn synced_schemas_are_additive_and_need_a_version_bump() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let url = sync_url(&server, "/~/schema");
    let open = |schema: Schema, version: u64| {
        let mut c = Config::new("x");
        c.set_schema(schema).unwrap();
        c.set_schema_version(version);
        c.set_sync(SyncConfig::new(&user, &url).unwrap());
        Realm::open(&c)
    };
    let realm = open(schema(), 1).unwrap();
    add_items(&realm, 0..1);
    drop(realm);
    // Same version with an addition: an error, nothing changed.
    let e = open(schema_with_extra(), 1).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SchemaChangedWithoutVersionBump);
    // Lower version: an error.
    let e = open(schema(), 0).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SchemaVersionLower);
    // Higher version applies the addition, no migration needed.
    let realm = open(schema_with_extra(), 2).unwrap();
    assert_eq!(realm.schema_version().unwrap(), 2);
    assert!(realm.schema().unwrap().class("Extra").is_some());
    drop(realm);
    // A schema without a class the file has: the class stays (additive only).
    let mut only_extra = Schema::new();
    only_extra.add_class("Extra", None).unwrap();
    only_extra
        .add_property("Extra", "note", T::String, F::NONE, None)
        .unwrap();
    let realm = open(only_extra, 2).unwrap();
    assert!(realm.schema().unwrap().class("Item").is_some());
    assert_eq!(count(&realm), 1);
    // A changed property type is not additive.
    let mut changed = schema();
    changed.add_class("Extra", None).unwrap();
    changed
        .add_property("Extra", "note", T::Int, F::NONE, None)
        .unwrap();
    let e = open(changed, 3).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    // Synced realms cannot be compacted.
    let realm = open(schema_with_extra(), 2).unwrap();
    assert_eq!(realm.compact().unwrap_err().code(), ErrorCode::NotSupported);
}

// ---- convergence through the server -------------------------------------------------------

/// A tiny deterministic generator (the test prints its seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn three_devices_converge_through_the_server_with_pauses_and_concurrent_edits() {
    // SHOAL_SYNC_SEED replays a failing run.
    let first = std::env::var("SHOAL_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    for trial in 0..4u64 {
        converge_once(first.wrapping_add(trial.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
    }
}

fn converge_once(seed: u64) {
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let server = Server::start();
    let name = unique("u");
    let devices: Vec<Device> = (0..3).map(|_| device()).collect();
    let url = sync_url(&server, "/~/converge");
    let realms: Vec<Realm> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let user = login(d, &server, &name, i == 0);
            Realm::open(&config(&user, &url)).unwrap()
        })
        .collect();
    for round in 0..6 {
        // Some devices go offline for the round.
        let offline: Vec<bool> = (0..3).map(|_| rng.below(3) == 0).collect();
        for (i, r) in realms.iter().enumerate() {
            if offline[i] {
                r.session().unwrap().pause();
            }
        }
        for _ in 0..30 {
            let r = &realms[rng.below(3) as usize];
            let id = rng.below(12) as i64;
            r.begin_write().unwrap();
            match (
                rng.below(8),
                r.find_object("Item", &Value::Int(id)).unwrap(),
            ) {
                (0, Some(o)) => o.delete().unwrap(),
                (1 | 2, Some(o)) => o.add_int("count", rng.below(10) as i64 + 1).unwrap(),
                (3 | 4, Some(o)) => {
                    let tags = o.list("tags").unwrap();
                    let at = rng.below(tags.len().unwrap() as u64 + 1) as usize;
                    tags.insert(at, Value::String(format!("t{round}-{}", rng.below(100))))
                        .unwrap();
                }
                (5, Some(o)) => {
                    let tags = o.list("tags").unwrap();
                    let n = tags.len().unwrap() as u64;
                    match (n, rng.below(3)) {
                        (0, _) => {}
                        (_, 0) => tags
                            .move_item(rng.below(n) as usize, rng.below(n) as usize)
                            .unwrap(),
                        (_, 1) => tags
                            .set(rng.below(n) as usize, Value::String(format!("s{round}")))
                            .unwrap(),
                        _ => tags.erase(rng.below(n) as usize).unwrap(),
                    }
                }
                (_, Some(o)) => o
                    .set(
                        "name",
                        Value::String(format!("r{round}-{}", rng.below(100))),
                    )
                    .unwrap(),
                (_, None) => match r.create_object("Item", Some(&Value::Int(id))) {
                    Ok(o) => o.set("name", Value::String(format!("new{round}"))).unwrap(),
                    // A deleted primary key cannot be created again under merge rules.
                    Err(e) => assert_eq!(e.code(), ErrorCode::DuplicatePrimaryKey),
                },
            }
            r.commit().unwrap();
            if rng.below(4) == 0 {
                std::thread::sleep(Duration::from_millis(rng.below(5)));
            }
        }
        for r in &realms {
            r.session().unwrap().resume();
        }
    }
    for _ in 0..2 {
        for r in &realms {
            r.session().unwrap().wait_for_upload(WAIT).unwrap();
        }
        for r in &realms {
            r.session().unwrap().wait_for_download(WAIT).unwrap();
        }
    }
    let dumps: Vec<String> = realms
        .iter()
        .map(|r| {
            r.refresh().unwrap();
            r.dump_json().unwrap()
        })
        .collect();
    assert_eq!(dumps[0], dumps[1], "seed {seed}");
    assert_eq!(dumps[1], dumps[2], "seed {seed}");
    // The server's own copy of the path (the only realm it hosts) ends identical too.
    let realms_dir = server.config.data_dir.join("realms");
    let copies: Vec<_> = std::fs::read_dir(&realms_dir)
        .unwrap()
        .map(|e| e.unwrap().path().join("server.realm"))
        .collect();
    assert_eq!(copies.len(), 1);
    let mut c = Config::new(copies[0].display().to_string());
    c.set_read_only(true);
    let server_copy = Realm::open(&c).unwrap();
    server_copy.refresh().unwrap();
    assert_eq!(server_copy.dump_json().unwrap(), dumps[0], "seed {seed}");
}

// ---- hostile servers ----------------------------------------------------------------------

/// A WebSocket "server" speaking the subprotocol that answers every connection's first
/// message with `reply`, then waits for the client to go. Counts connections.
fn hostile_server(reply: Vec<u8>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::Message as Ws;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let reply = reply.clone();
                tokio::spawn(async move {
                    // The handshake callback's signature is tungstenite's (a large Err type).
                    #[allow(clippy::result_large_err)]
                    let agree = |_: &Request, mut r: Response| {
                        r.headers_mut().insert(
                            "Sec-WebSocket-Protocol",
                            WEBSOCKET_SUBPROTOCOL.parse().unwrap(),
                        );
                        Ok(r)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, agree).await else {
                        return;
                    };
                    if ws.next().await.is_some() {
                        let _ = ws.send(Ws::Binary(reply.into())).await;
                    }
                    while let Some(Ok(_)) = ws.next().await {}
                });
            }
        });
    });
    (addr, connections)
}

#[test]
fn hostile_frames_from_a_server_are_errors_and_the_client_reconnects() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let v = PROTOCOL_VERSION;
    // A DOWNLOAD_PART announcing a changeset beyond the limit: refused before anything is
    // buffered.
    let oversized_part = Message::DownloadPart {
        session: 1,
        total_bytes: MAX_CHANGESET_BYTES as u64 + 1,
        data: vec![1],
    }
    .encode();
    for (i, (reply, code)) in [
        (vec![0xff, 0x01], 105),
        (vec![0x01, 0x01], 105),
        (vec![v, 0x04, 0xff, 0xff], 103),
        (vec![v, 0x63], 102),
        (oversized_part, 104),
    ]
    .into_iter()
    .enumerate()
    {
        let (addr, connections) = hostile_server(reply);
        let errors = Errors::default();
        let cfg = config_with(&user, &format!("realm://{addr}/~/hostile{i}"), |s| {
            errors.install(s)
        });
        let realm = Realm::open(&cfg).unwrap();
        let e = errors.wait_for("a protocol error", |e| e.code == code);
        assert!(!e.is_fatal, "{e:?}");
        wait_until("a reconnect", || connections.load(Ordering::SeqCst) >= 2);
        let session = realm.session().unwrap();
        assert_ne!(session.state(), SessionState::Error);
        add_items(&realm, 0..1); // the realm keeps working
        assert_eq!(count(&realm), 1);
    }
}

#[test]
fn a_progress_callback_that_panics_keeps_being_called() {
    // The reference's uploadListener_worksEvenIfCrashed.
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let realm = Realm::open(&config(&user, &sync_url(&server, "/~/crash"))).unwrap();
    let session = realm.session().unwrap();
    add_items(&realm, 0..3);
    let completes = Arc::new(AtomicUsize::new(0));
    let seen = completes.clone();
    let writer = realm.clone();
    let _t = session
        .add_progress_callback(
            ProgressDirection::Upload,
            ProgressMode::Indefinitely,
            move |p| {
                if p.is_complete() && p.transferred > 0 && seen.fetch_add(1, Ordering::SeqCst) == 0
                {
                    add_items(&writer, 10..13);
                    panic!("a callback that fails");
                }
            },
        )
        .unwrap();
    wait_until("a second completion after the panic", || {
        completes.load(Ordering::SeqCst) >= 2
    });
    session.wait_for_upload(WAIT).unwrap();
}

#[test]
fn token_expired_from_the_server_asks_for_a_new_token() {
    let server = Server::start_with(|c| c.access_token_ttl = 2);
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let calls = Arc::new(AtomicUsize::new(0));
    let errors = Errors::default();
    let (counter, binder_user) = (calls.clone(), user.clone());
    let cfg = config_with(&user, &sync_url(&server, "/~/expired"), |s| {
        errors.install(s);
        s.set_token_binder(move |session, path| {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            let (session, user, path) = (session.clone(), binder_user.clone(), path.to_owned());
            std::thread::spawn(move || {
                let token = user.access_token(&path).unwrap();
                if first {
                    // Hand over a token that has expired by the time the server sees it.
                    std::thread::sleep(Duration::from_millis(3100));
                }
                session.bind_token(&token.token).unwrap();
            });
        });
    });
    let realm = Realm::open(&cfg).unwrap();
    add_items(&realm, 0..2);
    let session = realm.session().unwrap();
    session.wait_for_upload(WAIT).unwrap();
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "the binder was asked again after TOKEN_EXPIRED"
    );
    // TOKEN_EXPIRED is handled by renewing the token, not reported as an error.
    assert!(
        errors.all().iter().all(|e| !e.is_fatal && e.code != 202),
        "{:?}",
        errors.all()
    );
    assert_eq!(session.state(), SessionState::Active);
}

#[test]
fn a_realms_url_speaks_tls_and_a_plain_server_is_retried_not_fatal() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let errors = Errors::default();
    // The server speaks plain HTTP: the TLS handshake of realms:// fails, again and again.
    let url = format!("realms://{}/~/tls", server.addr);
    let realm = Realm::open(&config_with(&user, &url, |s| errors.install(s))).unwrap();
    let session = realm.session().unwrap();
    assert_eq!(
        session.server_url(),
        format!("realms://{}/{}/tls", server.addr, user.identity())
    );
    let e = session
        .wait_for_download(Duration::from_millis(1500))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout);
    assert_ne!(session.connection_state(), ConnectionState::Connected);
    assert_eq!(session.state(), SessionState::Active);
    assert!(
        errors.all().iter().all(|e| !e.is_fatal),
        "{:?}",
        errors.all()
    );
    add_items(&realm, 0..1);
    assert_eq!(count(&realm), 1);
}

/// A TCP proxy to `upstream` that counts the connections it accepted.
fn counting_proxy(upstream: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = std::net::TcpStream::connect(upstream) else {
                continue;
            };
            let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c2, mut s2) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut s1);
                let _ = s1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, count)
}

#[test]
fn the_sessions_of_an_app_share_one_connection_per_server() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let (proxy, connections) = counting_proxy(server.addr);
    let realms: Vec<Realm> = ["/~/one", "/~/two", "/~/three"]
        .iter()
        .map(|p| Realm::open(&config(&user, &format!("realm://{proxy}{p}"))).unwrap())
        .collect();
    for (i, r) in realms.iter().enumerate() {
        add_items(r, 0..(i as i64 + 1));
        r.session().unwrap().wait_for_upload(WAIT).unwrap();
        r.session().unwrap().wait_for_download(WAIT).unwrap();
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one WebSocket for three sessions"
    );
}

#[test]
fn an_initial_download_that_times_out_leaves_no_file() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("u"), true);
    let nowhere = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cfg = config_with(&user, &format!("realm://{nowhere}/~/never"), |s| {
        s.set_wait_for_initial_data(Some(Duration::from_millis(300)));
    });
    for _ in 0..2 {
        let e = Realm::open(&cfg).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Timeout);
        assert!(
            !std::path::Path::new(cfg.path()).exists(),
            "no partial file"
        );
    }
    // Without the wait it opens offline, and the file stays.
    let offline = config(&user, &format!("realm://{nowhere}/~/never"));
    let realm = Realm::open(&offline).unwrap();
    add_items(&realm, 0..1);
    assert!(std::path::Path::new(offline.path()).exists());
}

// ---- history retention ----------------------------------------------------------------------

#[test]
fn the_history_keeps_local_changesets_until_the_server_acknowledged_them() {
    let server = Server::start();
    let name = unique("u");
    let (a, b) = (device(), device());
    let user = login(&a, &server, &name, true);
    let url = sync_url(&server, "/~/trimmed");
    let realm = Realm::open(&config(&user, &url)).unwrap();
    let session = realm.session().unwrap();
    wait_state(&session, SessionState::Active);
    session.pause();
    wait_state(&session, SessionState::Inactive);
    // Offline: nothing is acknowledged, so every local changeset stays.
    let versions: Vec<u64> = (0..10)
        .map(|round| {
            add_items(&realm, round * 10..round * 10 + 10);
            realm.version().unwrap()
        })
        .collect();
    let kept: Vec<u64> = realm
        .local_changesets_since(0)
        .unwrap()
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    assert!(versions.iter().all(|v| kept.contains(v)), "{kept:?}");

    // Once the server has them, the file records the acknowledgement and lets them go: only
    // the newest changeset (which carries the version) stays.
    session.resume();
    session.wait_for_upload(WAIT).unwrap();
    let last = *versions.last().unwrap();
    wait_until("the acknowledged changesets to leave the history", || {
        realm.refresh().unwrap();
        realm.history_since(0).is_err()
    });
    assert_eq!(realm.version().unwrap(), last);
    assert_eq!(realm.history_since(last - 1).unwrap().len(), 1);

    // Syncing goes on as before, and a second device gets everything; what it integrated
    // from the server leaves its history too.
    add_items(&realm, 100..101);
    session.wait_for_upload(WAIT).unwrap();
    let other = login(&b, &server, &name, false);
    let rb = Realm::open(&config(&other, &url)).unwrap();
    let sb = rb.session().unwrap();
    sb.wait_for_download(WAIT).unwrap();
    sb.wait_for_upload(WAIT).unwrap();
    assert_eq!(count(&rb), 101);
    let mut next = 1_000;
    wait_until("the integrated changesets to leave the history", || {
        add_items(&rb, next..next + 1); // any commit trims
        next += 1;
        sb.wait_for_upload(WAIT).unwrap();
        rb.refresh().unwrap();
        let v = rb.version().unwrap();
        rb.history_since(v.saturating_sub(3)).is_err()
    });
    session.wait_for_download(WAIT).unwrap();
    assert_eq!(count(&realm), 101 + (next - 1_000) as usize);
}

// ---- read-only synced realms (SyncedRealmTests.waitForInitialRemoteData_readOnly*) ---------

/// A read-only configuration of `url` for `user` with wait-for-initial-data.
fn read_only_config(user: &User, url: &str, schema: Schema) -> Config {
    let mut sync = SyncConfig::new(user, url).unwrap();
    sync.set_wait_for_initial_data(Some(WAIT));
    let mut c = Config::new("unused");
    c.set_schema(schema).unwrap();
    c.set_read_only(true);
    c.set_sync(sync);
    c
}

#[test]
fn a_read_only_synced_realm_downloads_first_receives_changes_and_refuses_writes() {
    let server = Server::start();
    let name = unique("ro");
    let (a, b) = (device(), device());
    let writer_user = login(&a, &server, &name, true);
    let reader_user = login(&b, &server, &name, false);
    let url = sync_url(&server, "/~/read-only");
    let writer = Realm::open(&config(&writer_user, &url)).unwrap();
    add_items(&writer, 0..10);
    writer.session().unwrap().wait_for_upload(WAIT).unwrap();

    let c = read_only_config(&reader_user, &url, schema());
    assert!(!std::path::Path::new(c.path()).exists());
    let reader = Realm::open(&c).unwrap();
    assert_eq!(
        count(&reader),
        10,
        "the initial data came before the open returned"
    );
    let session = reader
        .session()
        .expect("a read-only synced realm has a session");

    add_items(&writer, 10..15);
    writer.session().unwrap().wait_for_upload(WAIT).unwrap();
    wait_until("the reader to receive the writer's changes", || {
        count(&reader) == 15
    });
    assert_eq!(
        session.state(),
        SessionState::Active,
        "{:?}",
        session.error()
    );

    let refused = reader.begin_write().unwrap_err();
    assert_eq!(refused.code(), ErrorCode::ReadOnly);
    assert_eq!(count(&reader), 15, "nothing lost");

    // An existing file opens read-only again (the session keeps syncing, no ERROR).
    drop(session);
    reader.close();
    drop(reader);
    let reader = Realm::open(&c).unwrap();
    add_items(&writer, 15..16);
    writer.session().unwrap().wait_for_upload(WAIT).unwrap();
    wait_until("changes after the reopen", || count(&reader) == 16);
    assert_eq!(
        reader.session().unwrap().state(),
        SessionState::Active,
        "{:?}",
        reader.session().unwrap().error()
    );
}

#[test]
fn a_read_only_synced_realm_needs_the_servers_schema_and_initial_data() {
    let server = Server::start();
    let name = unique("ro");
    let d = device();
    let user = login(&d, &server, &name, true);
    // An empty server realm: the configured schema is not there (MIGRATION_NEEDED), and no
    // partial file is left behind.
    let url = sync_url(&server, "/~/empty");
    let c = read_only_config(&user, &url, schema());
    let e = Realm::open(&c).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MigrationNeeded, "{e}");
    wait_until("the partial file to go", || {
        !std::path::Path::new(c.path()).exists()
    });

    // A new read-only file without wait-for-initial-data has nothing to read.
    let mut sync = SyncConfig::new(&user, &sync_url(&server, "/~/never")).unwrap();
    sync.set_stop_policy(StopPolicy::Immediately);
    let mut no_wait = Config::new("unused");
    no_wait.set_read_only(true).set_sync(sync);
    let e = Realm::open(&no_wait).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.message().contains("wait_for_initial_data"), "{e}");
}

#[test]
fn synced_configs_refuse_migrations_and_delete_if_migration_needed() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("mig"), true);
    let url = sync_url(&server, "/~/migrations");
    let mut with_migration = config(&user, &url);
    with_migration.set_migration(|_, _, _| Ok(()));
    let e = Realm::open(&with_migration).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.message().contains("migration callback"), "{e}");
    let mut with_delete = config(&user, &url);
    with_delete.set_delete_if_migration_needed(true);
    let e = Realm::open(&with_delete).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(!std::path::Path::new(with_delete.path()).exists());
}

// ---- the management realm (SyncUserTests.getManagementRealm*) ----------------------------

#[test]
fn the_management_realm_is_the_users_own_synced_realm_with_the_permission_classes() {
    use shoal::management::{self, Access};
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("m"), true);
    let config = user.management_realm_config().unwrap();
    let sync = config.sync_config().unwrap();
    assert_eq!(
        sync.server_url(),
        format!("realm://{}/{}/__management", server.addr, user.identity())
    );
    assert_eq!(
        user.management_realm_config().unwrap().path(),
        config.path(),
        "cached per user"
    );
    let realm = user.open_management_realm().unwrap();
    let schema = realm.schema().unwrap();
    for class in management::MANAGEMENT_CLASSES {
        assert!(schema.class(class).is_some(), "{class}");
    }
    realm.begin_write().unwrap();
    let offer = management::create_offer(
        &realm,
        "/~/shared",
        Access {
            read: true,
            write: true,
            manage: false,
        },
        None,
    )
    .unwrap();
    let id = offer.get("id").unwrap();
    assert!(matches!(&id, Value::String(s) if s.len() == 36), "{id:?}");
    assert_eq!(
        offer.get("statusCode").unwrap(),
        Value::Null,
        "not processed yet"
    );
    assert_eq!(offer.get("mayWrite").unwrap(), Value::Bool(true));
    let empty = management::create_offer_response(&realm, "").unwrap_err();
    assert_eq!(empty.code(), ErrorCode::InvalidArgument);
    realm.commit().unwrap();
    realm.session().unwrap().wait_for_upload(WAIT).unwrap();

    // https auth → realms://, same host and port.
    let tls_device = device();
    let token = user.refresh_token().unwrap();
    let offline = tls_device
        .app
        .login(
            &Credentials::access_token(&token, user.identity()),
            "https://example.invalid:8443/auth",
        )
        .unwrap();
    let tls = offline.management_realm_config().unwrap();
    assert_eq!(
        tls.sync_config().unwrap().server_url(),
        format!(
            "realms://example.invalid:8443/{}/__management",
            user.identity()
        )
    );
}

// ---- the default error handler and a user's sessions (SyncManager, SyncUser) -------------

#[test]
fn new_sync_configs_start_with_the_default_error_handler_and_users_list_their_sessions() {
    let server = Server::start();
    let d = device();
    let user = login(&d, &server, &unique("default"), true);
    let url = sync_url(&server, "/~/default-handler");
    assert!(SyncConfig::new(&user, &url)
        .unwrap()
        .error_handler()
        .is_none());
    let handler: shoal::ErrorHandler = Arc::new(|_, _| {});
    shoal::set_default_error_handler(Some(handler.clone()));
    let with_default = SyncConfig::new(&user, &url).unwrap();
    shoal::set_default_error_handler(None);
    assert!(Arc::ptr_eq(with_default.error_handler().unwrap(), &handler));
    assert!(
        SyncConfig::new(&user, &url)
            .unwrap()
            .error_handler()
            .is_none(),
        "None restores the built-in handler"
    );

    assert!(user.all_sessions().is_empty());
    let r1 = Realm::open(&config(&user, &sync_url(&server, "/~/one"))).unwrap();
    let r2 = Realm::open(&config(&user, &sync_url(&server, "/~/two"))).unwrap();
    let mut paths: Vec<String> = user
        .all_sessions()
        .iter()
        .map(|s| s.path().to_owned())
        .collect();
    paths.sort();
    let mut expected = vec![r1.path().to_owned(), r2.path().to_owned()];
    expected.sort();
    assert_eq!(paths, expected);
    let other = login(&d, &server, &unique("other"), true);
    assert!(
        other.all_sessions().is_empty(),
        "another user's sessions are not listed"
    );
}

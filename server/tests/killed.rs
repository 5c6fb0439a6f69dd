//! The real `shoal-server` binary killed (SIGKILL) while a client uploads, then restarted on
//! the same port and data: nothing acknowledged is lost, nothing is duplicated, and the
//! clients resume by themselves.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shoal::{
    App, Config, Credentials, PropertyFlags as F, PropertyType as T, Realm, Schema, SyncConfig,
    Value,
};

const WAIT: Duration = Duration::from_secs(60);

/// Spawns the binary on `listen` with `data`; the address from its first line, if it got one.
fn spawn(data: &std::path::Path, listen: &str) -> (Child, Option<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-server"))
        .arg("--data")
        .arg(data)
        .args(["--listen", listen, "--insecure-fast-password-hashing"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn shoal-server");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    let addr = line.trim().strip_prefix("listening on ").map(str::to_owned);
    (child, addr)
}

/// Starts the binary on a free port; returns it and its address.
fn start(data: &std::path::Path) -> (Child, String) {
    match spawn(data, "127.0.0.1:0") {
        (child, Some(addr)) => (child, addr),
        (_, None) => panic!("shoal-server did not announce its address"),
    }
}

/// Restarts on `addr`, retrying while the port is still held by the dead process's socket.
fn restart(data: &std::path::Path, addr: &str) -> Child {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match spawn(data, addr) {
            (child, Some(_)) => return child,
            (mut child, None) => {
                let _ = child.wait();
                assert!(
                    std::time::Instant::now() < deadline,
                    "cannot restart on {addr}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn config(user: &shoal::User, url: &str) -> Config {
    let mut s = Schema::new();
    s.add_class("Item", Some("id")).unwrap();
    s.add_property("Item", "id", T::Int, F::NONE, None).unwrap();
    s.add_property("Item", "name", T::String, F::NONE, None)
        .unwrap();
    let mut c = Config::new("unused");
    c.set_schema(s).unwrap();
    c.set_sync(SyncConfig::new(user, url).unwrap());
    c
}

fn add(realm: &Realm, ids: std::ops::Range<i64>) {
    realm.begin_write().unwrap();
    for id in ids {
        let o = realm.create_object("Item", Some(&Value::Int(id))).unwrap();
        o.set(
            "name",
            Value::String(format!("item {id} {}", "x".repeat(200))),
        )
        .unwrap();
    }
    realm.commit().unwrap();
}

#[test]
fn a_killed_server_loses_nothing_and_clients_resume() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(data.path());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (app_a, app_b) = (
        App::new(dir_a.path(), "io.shoal.tests.killed").unwrap(),
        App::new(dir_b.path(), "io.shoal.tests.killed").unwrap(),
    );
    let auth = format!("http://{addr}/auth");
    let deadline = std::time::Instant::now() + WAIT;
    let ua = loop {
        match app_a.login(&Credentials::password("killed", "pw", true).unwrap(), &auth) {
            Ok(u) => break u,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("login: {e}"),
        }
    };
    let url = format!("realm://{addr}/~/killed");
    let ra = Realm::open(&config(&ua, &url)).unwrap();
    let session = ra.session().unwrap();
    session.wait_for_download(WAIT).unwrap();
    // Many transactions written offline, then the upload starts and the server is killed
    // before it has acknowledged them all.
    session.pause();
    for batch in 0..60 {
        add(&ra, batch * 100..batch * 100 + 100);
    }
    let progress = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = progress.clone();
    let _t = session
        .add_progress_callback(
            shoal::ProgressDirection::Upload,
            shoal::ProgressMode::Indefinitely,
            move |p| *seen.lock().unwrap() = Some(p),
        )
        .unwrap();
    session.resume();
    std::thread::sleep(Duration::from_millis(30));
    server.kill().expect("SIGKILL");
    let at_kill = progress.lock().unwrap().expect("a progress report");
    assert!(
        !at_kill.is_complete(),
        "the upload was over before the kill: {at_kill:?}"
    );
    server.wait().unwrap();
    add(&ra, 6000..6100); // written while the server is dead
    let mut server = restart(data.path(), &addr);

    session.wait_for_upload(WAIT).unwrap();
    let ub = app_b
        .login(
            &Credentials::password("killed", "pw", false).unwrap(),
            &auth,
        )
        .unwrap();
    let rb = Realm::open(&config(&ub, &url)).unwrap();
    rb.session().unwrap().wait_for_download(WAIT).unwrap();
    rb.refresh().unwrap();
    assert_eq!(rb.objects("Item").unwrap().count().unwrap(), 6100);
    ra.refresh().unwrap();
    assert_eq!(ra.dump_json().unwrap(), rb.dump_json().unwrap());
    server.kill().unwrap();
    server.wait().unwrap();
}

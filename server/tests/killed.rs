//! The real `shoal-server` binary killed (SIGKILL) again and again at random moments while three
//! devices of one user write and upload to one realm, each time restarted on the same port and
//! data: nothing the server acknowledged is lost, nothing is duplicated, and the clients resume
//! by themselves and converge.
//!
//! Each device writes a transaction every 30–90 ms, also while the server is down (some items
//! of its own, an update of one of its items, the name of one item every device sets, +1 on a
//! counter every device adds to; at most 30 transactions ahead of the server), and a thread per
//! device records which of its transactions the server has acknowledged (`wait_for_upload`
//! returned after they were committed). After each kill, with the server
//! down, a copy of the server's realm must hold every acknowledged transaction; after each
//! restart, a new device downloading from the server must get every one of them. At the end all
//! devices, a new one and the server's realm hold the same objects, and the counter equals the
//! number of transactions written.
//!
//! `SHOAL_SERVER_KILL_SOAK=<kills>` runs more kills (default 8); every run prints its seed and
//! `SHOAL_SERVER_KILL_SEED=<u64>` replays the kill timing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal::{
    App, Config, Credentials, Progress, ProgressDirection, ProgressMode, PropertyFlags as F,
    PropertyType as T, Realm, Schema, SyncConfig, Value,
};

const WAIT: Duration = Duration::from_secs(60);
const DEVICES: u64 = 3;
/// How many transactions a device may have written that the server has not acknowledged.
const BACKLOG: u64 = 30;
/// The item every device renames, and the counter every device adds to.
const SHARED: i64 = -1;
const COUNTER: i64 = 0;

/// Spawns the binary on `listen` with `data`; the address from its first line, if it got one.
fn spawn(data: &Path, listen: &str) -> (Child, Option<String>) {
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
fn start(data: &Path) -> (Child, String) {
    match spawn(data, "127.0.0.1:0") {
        (child, Some(addr)) => (child, addr),
        (_, None) => panic!("shoal-server did not announce its address"),
    }
}

/// Restarts on `addr`, retrying while the port is still held by the dead process's socket.
fn restart(data: &Path, addr: &str) -> Child {
    let deadline = Instant::now() + WAIT;
    loop {
        match spawn(data, addr) {
            (child, Some(_)) => return child,
            (mut child, None) => {
                let _ = child.wait();
                assert!(Instant::now() < deadline, "cannot restart on {addr}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The running server, killed when dropped (also when the test fails half way).
struct Server(Child);

impl Server {
    /// SIGKILL, and wait for the process to end.
    fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// splitmix64: the seeded kill timing, and how many items a transaction creates.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How many items transaction `txn` (from 1) of `device` creates: 1–8.
fn items_in(device: u64, txn: u64) -> u64 {
    1 + mix((device << 32) | txn) % 8
}

/// How many items transactions `1..=txns` of `device` create.
fn items_upto(device: u64, txns: u64) -> u64 {
    (1..=txns).map(|t| items_in(device, t)).sum()
}

fn config(user: &shoal::User, url: &str) -> Config {
    let mut s = Schema::new();
    s.add_class("Item", Some("id")).unwrap();
    for p in ["id", "owner", "txn"] {
        s.add_property("Item", p, T::Int, F::NONE, None).unwrap();
    }
    s.add_property("Item", "name", T::String, F::NONE, None)
        .unwrap();
    s.add_class("Counter", Some("id")).unwrap();
    s.add_property("Counter", "id", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Counter", "total", T::Int, F::NONE, None)
        .unwrap();
    let mut c = Config::new("unused");
    c.set_schema(s).unwrap();
    c.set_sync(SyncConfig::new(user, url).unwrap());
    c
}

fn login(app: &App, auth: &str, register: bool) -> shoal::User {
    let credentials = Credentials::password("killed", "pw", register).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match app.login(&credentials, auth) {
            Ok(u) => return u,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("login: {e}"),
        }
    }
}

/// One device: its app and realm, a writer thread and a thread recording acknowledgements.
struct Device {
    dir: tempfile::TempDir,
    app: App,
    /// Transactions committed (they are numbered from 1).
    committed: Arc<AtomicU64>,
    /// Transactions the server has acknowledged.
    acked: Arc<AtomicU64>,
    /// The last upload progress reported.
    progress: Arc<Mutex<Option<Progress>>>,
    _token: shoal::SyncCallbackToken,
    session: shoal::Session,
    /// The writer, which hands the realm back when it stops.
    writer: std::thread::JoinHandle<Realm>,
    acker: std::thread::JoinHandle<()>,
}

/// A new device: its directory, app (logged in) and realm.
fn new_device(auth: &str, url: &str, register: bool) -> (tempfile::TempDir, App, Realm) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), "io.shoal.tests.killed").unwrap();
    let user = login(&app, auth, register);
    let realm = Realm::open(&config(&user, url)).unwrap();
    (dir, app, realm)
}

impl Device {
    /// Starts writing as device `number` until `stop`, except while `paused`.
    fn start(
        number: u64,
        auth: &str,
        url: &str,
        stop: &Arc<AtomicBool>,
        paused: &Arc<AtomicBool>,
    ) -> Device {
        let (dir, app, realm) = new_device(auth, url, false);
        let session = realm.session().unwrap();
        session.wait_for_download(WAIT).unwrap();
        realm.refresh().unwrap();
        let progress = Arc::new(Mutex::new(None));
        let seen = progress.clone();
        let token = session
            .add_progress_callback(
                ProgressDirection::Upload,
                ProgressMode::Indefinitely,
                move |p| *seen.lock().unwrap() = Some(p),
            )
            .unwrap();
        let (committed, acked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let writer = {
            let (committed, acked, stop, paused) = (
                committed.clone(),
                acked.clone(),
                stop.clone(),
                paused.clone(),
            );
            std::thread::spawn(move || {
                let mut txn = 0;
                while !stop.load(Ordering::Relaxed) {
                    // At most BACKLOG transactions ahead of the server (also while it is down).
                    if paused.load(Ordering::Relaxed)
                        || txn - acked.load(Ordering::SeqCst) >= BACKLOG
                    {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    txn += 1;
                    write(&realm, number, txn);
                    committed.store(txn, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30 + mix(txn) % 60));
                }
                realm
            })
        };
        let acker = {
            let (committed, acked, stop, session) = (
                committed.clone(),
                acked.clone(),
                stop.clone(),
                session.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Every transaction committed before the wait is acknowledged if it succeeds.
                    let before = committed.load(Ordering::SeqCst);
                    if session.wait_for_upload(Duration::from_secs(1)).is_ok() {
                        acked.fetch_max(before, Ordering::SeqCst);
                    }
                }
            })
        };
        Device {
            dir,
            app,
            committed,
            acked,
            progress,
            _token: token,
            session,
            writer,
            acker,
        }
    }

    /// Whether the last upload progress reported bytes not yet acknowledged.
    fn uploading(&self) -> bool {
        self.progress
            .lock()
            .unwrap()
            .is_some_and(|p| !p.is_complete())
    }
}

/// Transaction `txn` of device `number`.
fn write(realm: &Realm, number: u64, txn: u64) {
    realm.begin_write().unwrap();
    let first = items_upto(number, txn - 1);
    for n in first..first + items_in(number, txn) {
        let id = ((number << 32) | n) as i64;
        let o = realm.create_object("Item", Some(&Value::Int(id))).unwrap();
        o.set("owner", number as i64).unwrap();
        o.set("txn", txn as i64).unwrap();
        o.set(
            "name",
            format!("device {number} item {n} {}", "x".repeat(100)),
        )
        .unwrap();
    }
    // An update of one of its earlier items (never changes which transaction created it).
    let earlier = ((number << 32) | (mix(txn) % (first + 1))) as i64;
    let o = realm.find_object("Item", &Value::Int(earlier)).unwrap();
    o.unwrap()
        .set("name", format!("device {number} renamed in {txn}"))
        .unwrap();
    let shared = realm.find_object("Item", &Value::Int(SHARED)).unwrap();
    shared
        .unwrap()
        .set("name", format!("device {number} txn {txn}"))
        .unwrap();
    let counter = realm.find_object("Counter", &Value::Int(COUNTER)).unwrap();
    counter.unwrap().add_int("total", 1).unwrap();
    realm.commit().unwrap();
}

/// Checks that `realm` holds every transaction of `txns` (per device) — at least those, or
/// exactly those — and returns a description of what is missing, if anything.
fn holds(realm: &Realm, txns: &[u64], exactly: bool) -> Result<(), String> {
    realm.refresh().unwrap();
    let mut problems = Vec::new();
    for (device, &n) in (0..).zip(txns) {
        let have = realm
            .query(
                "Item",
                "owner == $0 AND txn <= $1",
                &[Value::Int(device as i64), Value::Int(n as i64)],
            )
            .unwrap()
            .count()
            .unwrap() as u64;
        let mine = realm
            .query("Item", "owner == $0", &[Value::Int(device as i64)])
            .unwrap()
            .count()
            .unwrap() as u64;
        let want = items_upto(device, n);
        if have != want || (exactly && mine != want) {
            problems.push(format!(
                "device {device}: {have} items of its first {n} transactions (of {want}), {mine} in all"
            ));
        }
    }
    let total = match realm.find_object("Counter", &Value::Int(COUNTER)).unwrap() {
        Some(c) => match c.get("total").unwrap() {
            Value::Int(t) => t as u64,
            other => panic!("total {other:?}"),
        },
        None => 0,
    };
    let sum: u64 = txns.iter().sum();
    if total < sum || (exactly && total != sum) {
        problems.push(format!("counter {total} after {sum} transactions"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The server's copy of the realm (the only one in the data directory), opened from a copy of
/// the file so that its recovery after a kill is left to the server.
fn server_copy(data: &Path) -> (tempfile::TempDir, Realm) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("server.realm");
    std::fs::copy(data.join("realms/1/server.realm"), &to).unwrap();
    let mut config = Config::new(to.to_str().unwrap());
    config.set_merge_metadata(true);
    let realm = Realm::open(&config).expect("the server's realm opens after a kill");
    (dir, realm)
}

#[test]
fn a_server_killed_again_and_again_loses_nothing_and_clients_converge() {
    let kills: u64 = std::env::var("SHOAL_SERVER_KILL_SOAK")
        .map(|v| v.parse().expect("SHOAL_SERVER_KILL_SOAK=<kills>"))
        .unwrap_or(8);
    let seed: u64 = std::env::var("SHOAL_SERVER_KILL_SEED")
        .map(|v| v.parse().expect("SHOAL_SERVER_KILL_SEED=<u64>"))
        .unwrap_or_else(|_| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            t.unwrap().as_nanos() as u64
        });
    println!("seed {seed} (SHOAL_SERVER_KILL_SEED={seed} replays the timing), {kills} kills");
    let started = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let (server, addr) = start(data.path());
    let mut server = Server(server);
    let auth = format!("http://{addr}/auth");
    let url = format!("realm://{addr}/~/killed");

    // The shared item and the counter exist before the devices start.
    let (_dir, _app, first) = new_device(&auth, &url, true);
    first.begin_write().unwrap();
    first
        .create_object("Item", Some(&Value::Int(SHARED)))
        .unwrap()
        .set("owner", -1)
        .unwrap();
    first
        .create_object("Counter", Some(&Value::Int(COUNTER)))
        .unwrap();
    first.commit().unwrap();
    first.session().unwrap().wait_for_upload(WAIT).unwrap();

    let (stop, paused) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let devices: Vec<Device> = (0..DEVICES)
        .map(|d| Device::start(d, &auth, &url, &stop, &paused))
        .collect();
    let acked = || -> Vec<u64> {
        devices
            .iter()
            .map(|d| d.acked.load(Ordering::SeqCst))
            .collect()
    };

    let mut uploading_at_kill = 0;
    for kill in 1..=kills {
        // Every device gets something acknowledged by this server process first.
        let since = acked();
        let t = Instant::now();
        let deadline = t + WAIT;
        while acked().iter().zip(&since).any(|(now, then)| now <= then) {
            assert!(
                Instant::now() < deadline,
                "kill {kill}: no progress since {since:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        println!(
            "  all devices acknowledged after {:.1} s",
            t.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(mix(seed ^ kill) % 500));
        // Aim at an upload in flight: on a fast machine uploads finish within milliseconds,
        // so wait (briefly) for a moment when one is under way.
        let aim = Instant::now() + Duration::from_secs(3);
        while !devices.iter().any(|d| d.uploading()) && Instant::now() < aim {
            std::thread::sleep(Duration::from_micros(200));
        }
        let uploading = devices.iter().filter(|d| d.uploading()).count();
        let acked_before = acked();
        server.kill();
        uploading_at_kill += usize::from(uploading > 0);

        // Down: the server's realm holds everything it acknowledged.
        let (_copy, copy) = server_copy(data.path());
        if let Err(e) = holds(&copy, &acked_before, false) {
            panic!("kill {kill}: the server's realm lost acknowledged transactions: {e}");
        }
        drop(copy);
        let committed: Vec<u64> = devices
            .iter()
            .map(|d| d.committed.load(Ordering::SeqCst))
            .collect();
        println!(
            "kill {kill} at {:.1} s: {uploading} devices uploading, acknowledged {acked_before:?} of {committed:?}",
            started.elapsed().as_secs_f64()
        );
        // The devices write on while the server is down.
        std::thread::sleep(Duration::from_millis(mix(seed ^ kill ^ (1 << 63)) % 300));
        server = Server(restart(data.path(), &addr));

        // Up again: a new device downloads everything acknowledged before the kill (the devices
        // pause meanwhile, or the downloads would grow with the time they take).
        paused.store(true, Ordering::Relaxed);
        let t = Instant::now();
        let (_dir, _app, fresh) = new_device(&auth, &url, false);
        fresh.session().unwrap().wait_for_download(WAIT).unwrap();
        if let Err(e) = holds(&fresh, &acked_before, false) {
            panic!("kill {kill}: the restarted server lost acknowledged transactions: {e}");
        }
        println!(
            "  a new device downloaded in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        paused.store(false, Ordering::Relaxed);
    }
    assert!(
        uploading_at_kill * 2 >= kills as usize,
        "only {uploading_at_kill} of {kills} kills came while a device was uploading"
    );

    // Stop writing; everything uploads and downloads.
    stop.store(true, Ordering::Relaxed);
    let mut realms = Vec::new();
    let mut committed = Vec::new();
    for d in devices {
        let realm = d.writer.join().unwrap();
        d.acker.join().unwrap();
        d.session.wait_for_upload(WAIT).unwrap();
        committed.push(d.committed.load(Ordering::SeqCst));
        realms.push((realm, d.session, d.dir, d.app));
    }
    let (_dir, _app, fresh) = new_device(&auth, &url, false);
    fresh.session().unwrap().wait_for_download(WAIT).unwrap();
    holds(&fresh, &committed, true).unwrap();
    let expected = fresh.dump_json().unwrap();
    for (device, (realm, session, _, _)) in realms.iter().enumerate() {
        session.wait_for_download(WAIT).unwrap();
        realm.refresh().unwrap();
        assert!(
            realm.dump_json().unwrap() == expected,
            "device {device} differs from a new device"
        );
    }
    first.session().unwrap().wait_for_download(WAIT).unwrap();
    first.refresh().unwrap();
    assert!(first.dump_json().unwrap() == expected);

    server.kill();
    let (_copy, copy) = server_copy(data.path());
    holds(&copy, &committed, true).unwrap();
    assert!(
        copy.dump_json().unwrap() == expected,
        "the server's realm differs from the devices'"
    );
    println!(
        "{kills} kills ({uploading_at_kill} while uploading), {} transactions, converged in {:.1} s",
        committed.iter().sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
}

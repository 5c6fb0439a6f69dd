//! Sync end to end on loopback, against automerge's sync protocol (the peer of `PERFORMANCE.md`).
//!
//! Shoal: a real `shoal-server` in this process (temporary data dir) and two devices (two
//! `App`s in two temporary dirs, the same user logged in on both) opening the same synced realm.
//! Every byte between the clients and the server goes through a byte-counting TCP proxy in this
//! process, so "bytes on the wire" are the real WebSocket bytes (frames, headers, handshake) in
//! both directions; the auth HTTP requests go through it too and are counted apart.
//!
//! - throughput: device A writes the objects `Item {id, name, count}` in transactions of 1,000;
//!   timed from just before A's first commit until B's change callback sees the last object
//!   (A's writes overlap the upload, as in an app);
//! - sync alone: A writes as many objects again with its session paused, then resumes; timed
//!   from the resume until B's change callback sees the last one (automerge's figure is of this
//!   kind);
//! - latency: 1,000 single small changes (`count` of one object, one transaction each), each
//!   from just before A's commit until B's change callback reads the new value.
//!
//! Automerge (in memory, no network, no disk): doc A gets the same objects (a map per object
//! under the root map, keyed by id) in the same 1,000-object commits; then the two docs run
//! `automerge::sync` (every message encoded to bytes and decoded, the bytes counted) until B has
//! everything; the latency is one small change on A until B has it through one sync message.
//!
//! `cargo bench --bench sync_bench`; `SYNC_BENCH_OBJECTS=10000` for a quick run (default 100,000).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use automerge::sync::{Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ReadDoc, ScalarValue, ROOT};
use shoal::{
    App, Config, ConnectionState, Credentials, PropertyFlags as F, PropertyKey, PropertyType as T,
    Realm, Schema, Session, SyncConfig, Value,
};
use shoal_server::{PasswordHashing, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEFAULT_OBJECTS: i64 = 100_000;
/// Objects per write transaction (per automerge commit) in the throughput phase.
const BATCH: i64 = 1_000;
/// Single small changes in the latency phase.
const CHANGES: usize = 1_000;
/// The longest any one wait may take before the run fails.
const WAIT: Duration = Duration::from_secs(120);
const APP_ID: &str = "io.shoal.bench";

/// Goals of `PERFORMANCE.md`.
const GOAL_OBJECTS_PER_S: f64 = 50_000.0;
const GOAL_P50_MS: f64 = 5.0;
const GOAL_P99_MS: f64 = 20.0;
/// The moonshot: ahead of automerge with a real network and durable storage on both ends.
const MOONSHOT_OBJECTS_PER_S: f64 = 150_000.0;
const MOONSHOT_BYTES_RATIO: f64 = 2.0;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn name_of(id: i64) -> String {
    format!("item-{id}")
}

/// The objects changed by the latency phase: spread over the whole set.
fn changed_id(i: usize, n: i64) -> i64 {
    (i as i64 * 7919) % n
}

/// The new `count` of the `i`th small change (never a value written before).
fn changed_count(i: usize) -> i64 {
    1_000_000 + i as i64
}

/// p50, p99 and max of `samples` (sorted here).
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.50), at(0.99), samples[samples.len() - 1])
}

// ---------------------------------------------------------------------------------------------
// The server, on its own runtime in a background thread.

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(data_dir: &std::path::Path) -> Server {
        let mut config = ServerConfig::new(data_dir);
        // Logins are not measured: the cheapest password hashing will do.
        config.password_hashing = PasswordHashing::InsecureFastForTests;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("server: bind");
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let shutdown = async move {
                    let _ = stopped.await;
                };
                shoal_server::run(listener, config, shutdown)
                    .await
                    .expect("server runs");
            });
        });
        let addr = addr_rx.recv_timeout(WAIT).expect("server bound");
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the server, waiting for it at most `patience`.
    fn stop(&mut self, patience: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + patience;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The byte-counting proxy.

/// Bytes through the proxy. WebSocket connections (an HTTP upgrade request) are counted apart
/// from plain HTTP (logins, access tokens), each WebSocket connection on its own.
#[derive(Default)]
struct Wire {
    /// Per WebSocket connection in the order they were opened: (client → server, server → client).
    sockets: Mutex<Vec<Arc<(AtomicU64, AtomicU64)>>>,
    http: AtomicU64,
    connections: AtomicUsize,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default)]
struct WireBytes {
    /// (up, down) per WebSocket connection.
    sockets: Vec<(u64, u64)>,
    http: u64,
}

impl WireBytes {
    fn ws_total(&self) -> u64 {
        self.sockets.iter().map(|(u, d)| u + d).sum()
    }

    /// The bytes since `before`, socket by socket.
    fn since(&self, before: &WireBytes) -> WireBytes {
        let sockets = self
            .sockets
            .iter()
            .enumerate()
            .map(|(i, &(u, d))| {
                let (bu, bd) = before.sockets.get(i).copied().unwrap_or((0, 0));
                (u - bu, d - bd)
            })
            .collect();
        WireBytes {
            sockets,
            http: self.http - before.http,
        }
    }
}

impl Wire {
    fn snapshot(&self) -> WireBytes {
        WireBytes {
            sockets: self
                .sockets
                .lock()
                .unwrap()
                .iter()
                .map(|c| (c.0.load(Ordering::Relaxed), c.1.load(Ordering::Relaxed)))
                .collect(),
            http: self.http.load(Ordering::Relaxed),
        }
    }

    fn websockets(&self) -> usize {
        self.sockets.lock().unwrap().len()
    }
}

/// Starts the proxy to `upstream` on a free loopback port, on its own thread.
fn start_proxy(upstream: SocketAddr, wire: Arc<Wire>) -> SocketAddr {
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("proxy runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("proxy: bind");
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let wire = wire.clone();
                tokio::spawn(async move {
                    match proxy_connection(client, upstream, wire).await {
                        // A peer that hangs up first (the devices closing at the end) is fine.
                        Err(e)
                            if !matches!(
                                e.kind(),
                                std::io::ErrorKind::BrokenPipe
                                    | std::io::ErrorKind::ConnectionReset
                                    | std::io::ErrorKind::ConnectionAborted
                            ) =>
                        {
                            eprintln!("proxy: {e}")
                        }
                        _ => {}
                    }
                });
            }
        });
    });
    addr_rx.recv_timeout(WAIT).expect("proxy bound")
}

async fn proxy_connection(
    client: tokio::net::TcpStream,
    upstream: SocketAddr,
    wire: Arc<Wire>,
) -> std::io::Result<()> {
    wire.connections.fetch_add(1, Ordering::Relaxed);
    let server = tokio::net::TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();

    // The first request tells a WebSocket upgrade from a plain HTTP request.
    let mut buf = vec![0u8; 64 * 1024];
    let n = client_read.read(&mut buf).await?;
    if n == 0 {
        return Ok(());
    }
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    let counters: Arc<(AtomicU64, AtomicU64)> = Arc::default();
    let websocket = head.contains("upgrade: websocket");
    if websocket {
        wire.sockets.lock().unwrap().push(counters.clone());
    }
    let count = move |up: bool, bytes: usize| {
        let bytes = bytes as u64;
        if websocket {
            let c = if up { &counters.0 } else { &counters.1 };
            c.fetch_add(bytes, Ordering::Relaxed);
        } else {
            wire.http.fetch_add(bytes, Ordering::Relaxed);
        }
    };
    count(true, n);
    server_write.write_all(&buf[..n]).await?;

    let count_up = count.clone();
    let up = async move {
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                let _ = server_write.shutdown().await;
                return Ok::<_, std::io::Error>(());
            }
            count_up(true, n);
            server_write.write_all(&buf[..n]).await?;
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                let _ = client_write.shutdown().await;
                return Ok::<_, std::io::Error>(());
            }
            count(false, n);
            client_write.write_all(&buf[..n]).await?;
        }
    };
    let (a, b) = tokio::join!(up, down);
    a.and(b)
}

// ---------------------------------------------------------------------------------------------
// Shoal's two devices.

fn schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Item", Some("id")).expect("add_class");
    for (p, t) in [("id", T::Int), ("name", T::String), ("count", T::Int)] {
        s.add_property("Item", p, t, F::NONE, None)
            .expect("add_property");
    }
    s
}

struct Device {
    _dir: tempfile::TempDir,
    _app: App,
    realm: Realm,
    session: Session,
}

fn open_device(user_name: &str, register: bool, auth_url: &str, realm_url: &str) -> Device {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = App::new(dir.path(), APP_ID).expect("App::new");
    let user = app
        .login(
            &Credentials::password(user_name, "bench-password", register).expect("credentials"),
            auth_url,
        )
        .expect("login");
    let sync = SyncConfig::new(&user, realm_url).expect("SyncConfig::new");
    let mut config = Config::new("unused");
    config.set_schema(schema()).expect("set_schema");
    config.set_sync(sync);
    let realm = Realm::open(&config).expect("Realm::open (synced)");
    let session = realm.session().expect("a synced realm has a session");
    let deadline = Instant::now() + WAIT;
    while session.connection_state() != ConnectionState::Connected {
        assert!(
            Instant::now() < deadline,
            "the session never connected (state {:?}, error {:?})",
            session.state(),
            session.error()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Device {
        _dir: dir,
        _app: app,
        realm,
        session,
    }
}

/// What B's change callback waits for.
#[derive(Clone, Copy)]
enum Watch {
    Nothing,
    /// The object with this id exists.
    Exists(i64),
    /// The object with this id has this count.
    Count(i64, i64),
}

struct ShoalResult {
    n: i64,
    writes_done: Duration,
    upload_acked: Duration,
    all_on_b: Duration,
    wire: WireBytes,
    /// Sync alone: from resuming A's session (n objects written offline) to B having them.
    sync_only: Duration,
    sync_only_bytes: u64,
    login_http: u64,
    latencies: Vec<Duration>,
    latency_wire: WireBytes,
}

fn run_shoal(n: i64) -> ShoalResult {
    let server_dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(server_dir.path());
    let wire = Arc::new(Wire::default());
    let proxy = start_proxy(server.addr, wire.clone());
    eprintln!("shoal: server on {}, proxy on {proxy}", server.addr);
    let auth_url = format!("http://{proxy}/auth");
    let realm_url = format!("realm://{proxy}/~/items");

    // Device A connects first, so WebSocket 0 is A's and 1 is B's.
    let a = open_device("bench-user", true, &auth_url, &realm_url);
    assert_eq!(wire.websockets(), 1, "device A: one WebSocket");
    let b = open_device("bench-user", false, &auth_url, &realm_url);
    assert_eq!(wire.websockets(), 2, "device B: one WebSocket");
    a.session
        .wait_for_download(WAIT)
        .expect("A: first download");
    b.session
        .wait_for_download(WAIT)
        .expect("B: first download");
    let login_http = wire.snapshot().http;

    // B's change callback: reads its realm after every commit (synced ones included) and
    // reports the moment the awaited state is there.
    let watch = Arc::new(Mutex::new(Watch::Nothing));
    let (seen_tx, seen_rx) = mpsc::channel::<Instant>();
    let _token = {
        let watch = watch.clone();
        let rb = b.realm.clone();
        b.realm
            .add_change_callback(move |_version| {
                let mut w = watch.lock().unwrap();
                let done = match *w {
                    Watch::Nothing => false,
                    Watch::Exists(id) => {
                        rb.refresh().expect("B: refresh");
                        rb.find_object("Item", &Value::Int(id))
                            .expect("B: find_object")
                            .is_some()
                    }
                    Watch::Count(id, count) => {
                        rb.refresh().expect("B: refresh");
                        rb.find_object("Item", &Value::Int(id))
                            .expect("B: find_object")
                            .map(|o| o.get("count").expect("B: get(count)"))
                            == Some(Value::Int(count))
                    }
                };
                if done {
                    *w = Watch::Nothing;
                    let _ = seen_tx.send(Instant::now());
                }
            })
            .expect("B: add_change_callback")
    };

    // --- throughput: A writes while it syncs ---
    let key = |p| a.realm.property_key("Item", p).expect("property_key");
    let (name_key, count_key): (PropertyKey, PropertyKey) = (key("name"), key("count"));
    // Objects `ids` on A, in transactions of BATCH.
    let write = |ids: std::ops::Range<i64>| {
        for first in ids.clone().step_by(BATCH as usize) {
            a.realm.begin_write().expect("A: begin_write");
            for id in first..(first + BATCH).min(ids.end) {
                let o = a
                    .realm
                    .create_object("Item", Some(&Value::Int(id)))
                    .expect("A: create_object");
                o.set_by_key(name_key, Value::String(name_of(id)))
                    .expect("A: set(name)");
                o.set_by_key(count_key, Value::Int(0))
                    .expect("A: set(count)");
            }
            a.realm.commit().expect("A: commit");
        }
    };
    // Waits for B's callback to see object `last`, then checks that B has `total` objects.
    let wait_on_b = |last: i64, total: i64| -> Instant {
        let arrived = match seen_rx.recv_timeout(WAIT) {
            Ok(t) => t,
            Err(_) => {
                b.realm.refresh().ok();
                let on_b = b.realm.objects("Item").and_then(|r| r.count()).unwrap_or(0);
                panic!(
                    "B did not get object {last} within {WAIT:?}: it has {on_b} objects of {total}"
                );
            }
        };
        // Let the last acknowledgements and progress messages through before reading counters.
        b.session.wait_for_download(WAIT).expect("B: download");
        a.session.wait_for_download(WAIT).expect("A: download");
        b.realm.refresh().expect("B: refresh");
        let on_b = b
            .realm
            .objects("Item")
            .and_then(|r| r.count())
            .expect("B: count");
        assert_eq!(on_b, total as usize, "B has every object");
        let middle = b
            .realm
            .find_object("Item", &Value::Int(last - (total / 4)))
            .expect("B: find")
            .expect("B has an object in the middle");
        assert_eq!(
            middle.get("name").expect("B: name"),
            Value::String(name_of(last - (total / 4)))
        );
        arrived
    };
    *watch.lock().unwrap() = Watch::Exists(n - 1);
    eprintln!("shoal: A writes {n} objects in transactions of {BATCH} while syncing...");
    let before = wire.snapshot();
    let start = Instant::now();
    write(0..n);
    let writes_done = start.elapsed();
    a.session
        .wait_for_upload(WAIT)
        .expect("A: upload within the time limit");
    let upload_acked = start.elapsed();
    let all_on_b = wait_on_b(n - 1, n) - start;
    let wire_throughput = wire.snapshot().since(&before);

    // --- sync alone: A writes as many again offline (session paused), then syncs ---
    eprintln!("shoal: A writes {n} more objects offline, then syncs...");
    a.session.pause();
    write(n..2 * n);
    *watch.lock().unwrap() = Watch::Exists(2 * n - 1);
    let before = wire.snapshot();
    let start = Instant::now();
    a.session.resume();
    let sync_only = wait_on_b(2 * n - 1, 2 * n) - start;
    let sync_only_bytes = wire.snapshot().since(&before).ws_total();

    // --- latency ---
    eprintln!("shoal: {CHANGES} single changes A -> B...");
    let before = wire.snapshot();
    let mut latencies = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let (id, count) = (changed_id(i, n), changed_count(i));
        *watch.lock().unwrap() = Watch::Count(id, count);
        let start = Instant::now();
        a.realm.begin_write().expect("A: begin_write");
        a.realm
            .find_object("Item", &Value::Int(id))
            .expect("A: find_object")
            .expect("A has the object")
            .set_by_key(count_key, Value::Int(count))
            .expect("A: set(count)");
        a.realm.commit().expect("A: commit");
        match seen_rx.recv_timeout(WAIT) {
            Ok(t) => latencies.push(t - start),
            Err(_) => {
                panic!("change {i} (Item {id}.count = {count}) did not reach B within {WAIT:?}")
            }
        }
    }
    a.session.wait_for_upload(WAIT).expect("A: upload");
    b.session.wait_for_download(WAIT).expect("B: download");
    let latency_wire = wire.snapshot().since(&before);

    drop(_token);
    drop(a);
    drop(b);
    server.stop(Duration::from_secs(2));
    ShoalResult {
        n,
        writes_done,
        upload_acked,
        all_on_b,
        wire: wire_throughput,
        sync_only,
        sync_only_bytes,
        login_http,
        latencies,
        latency_wire,
    }
}

// ---------------------------------------------------------------------------------------------
// Automerge.

struct AutomergeResult {
    write: Duration,
    sync: Duration,
    messages: usize,
    bytes: u64,
    latencies: Vec<Duration>,
    round_trips: Vec<Duration>,
    latency_bytes: u64,
}

/// Sends one message from `from` to `to` (encoded to bytes and decoded, as on a wire); the
/// number of bytes, or `None` if `from` had nothing to say.
fn send(
    from: &Automerge,
    from_state: &mut State,
    to: &mut Automerge,
    to_state: &mut State,
) -> Option<u64> {
    let message = from.generate_sync_message(from_state)?;
    let bytes = message.encode();
    let message = Message::decode(&bytes).expect("automerge: decode");
    to.receive_sync_message(to_state, message)
        .expect("automerge: receive_sync_message");
    Some(bytes.len() as u64)
}

/// Exchanges messages until neither doc has anything to send: (messages, bytes).
fn sync_until_quiet(
    a: &mut Automerge,
    sa: &mut State,
    b: &mut Automerge,
    sb: &mut State,
) -> (usize, u64) {
    let (mut messages, mut bytes) = (0, 0);
    loop {
        let ab = send(a, sa, b, sb);
        let ba = send(b, sb, a, sa);
        for m in [ab, ba].into_iter().flatten() {
            messages += 1;
            bytes += m;
        }
        if ab.is_none() && ba.is_none() {
            return (messages, bytes);
        }
    }
}

fn count_in(doc: &Automerge, key: &str) -> Option<i64> {
    let (_, obj) = doc.get(ROOT, key).expect("automerge: get")?;
    match doc.get(&obj, "count").expect("automerge: get(count)")? {
        (automerge::Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Int(c) => Some(*c),
            other => panic!("automerge: count is {other:?}"),
        },
        other => panic!("automerge: count is {other:?}"),
    }
}

fn run_automerge(n: i64) -> AutomergeResult {
    let mut a = Automerge::new();
    let mut b = Automerge::new();
    let (mut sa, mut sb) = (State::new(), State::new());

    eprintln!("automerge: A writes {n} objects in commits of {BATCH}...");
    let start = Instant::now();
    let mut id = 0;
    while id < n {
        let mut tx = a.transaction();
        for id in id..(id + BATCH).min(n) {
            let obj = tx
                .put_object(ROOT, id.to_string(), ObjType::Map)
                .expect("automerge: put_object");
            tx.put(&obj, "id", id).expect("automerge: put(id)");
            tx.put(&obj, "name", name_of(id))
                .expect("automerge: put(name)");
            tx.put(&obj, "count", 0i64).expect("automerge: put(count)");
        }
        tx.commit();
        id += BATCH;
    }
    let write = start.elapsed();

    eprintln!("automerge: sync A -> B...");
    let start = Instant::now();
    let (messages, bytes) = sync_until_quiet(&mut a, &mut sa, &mut b, &mut sb);
    let sync = start.elapsed();
    assert_eq!(b.length(ROOT), n as usize, "automerge: B has every object");
    assert_eq!(count_in(&b, &(n / 2).to_string()), Some(0));

    eprintln!("automerge: {CHANGES} single changes A -> B...");
    let mut latencies = Vec::with_capacity(CHANGES);
    let mut round_trips = Vec::with_capacity(CHANGES);
    let mut latency_bytes = 0;
    for i in 0..CHANGES {
        let (id, count) = (changed_id(i, n), changed_count(i));
        let key = id.to_string();
        let start = Instant::now();
        let (_, obj) = a
            .get(ROOT, &key)
            .expect("automerge: get")
            .expect("automerge: A has the object");
        let mut tx = a.transaction();
        tx.put(&obj, "count", count).expect("automerge: put(count)");
        tx.commit();
        latency_bytes +=
            send(&a, &mut sa, &mut b, &mut sb).expect("automerge: A has a change to send");
        assert_eq!(
            count_in(&b, &key),
            Some(count),
            "automerge: B has change {i}"
        );
        latencies.push(start.elapsed());
        // B's answer, and whatever else until both are quiet.
        latency_bytes += sync_until_quiet(&mut a, &mut sa, &mut b, &mut sb).1;
        round_trips.push(start.elapsed());
    }
    AutomergeResult {
        write,
        sync,
        messages,
        bytes,
        latencies,
        round_trips,
        latency_bytes,
    }
}

// ---------------------------------------------------------------------------------------------
// Report.

fn met(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISSED"
    }
}

fn main() {
    let n: i64 = match std::env::var("SYNC_BENCH_OBJECTS") {
        Ok(s) => s
            .parse()
            .expect("SYNC_BENCH_OBJECTS must be a positive integer"),
        Err(_) => DEFAULT_OBJECTS,
    };
    assert!(n >= 1, "SYNC_BENCH_OBJECTS must be positive");
    eprintln!(
        "sync_bench: {n} objects in transactions of {BATCH}, then {CHANGES} single changes; shoal over loopback through a counting proxy, automerge in memory"
    );

    let mut s = run_shoal(n);
    let mut am = run_automerge(n);

    let nf = n as f64;
    let shoal_rate = nf / s.all_on_b.as_secs_f64();
    let am_rate = nf / am.sync.as_secs_f64();
    let am_rate_with_writes = nf / (am.write + am.sync).as_secs_f64();
    let shoal_sync_rate = nf / s.sync_only.as_secs_f64();
    let shoal_bytes = s.wire.ws_total();
    let shoal_hop = s.wire.sockets.first().map_or(0, |(u, d)| u + d);
    let (sp50, sp99, smax) = percentiles(&mut s.latencies);
    let (ap50, ap99, amax) = percentiles(&mut am.latencies);
    let (rp50, rp99, _) = percentiles(&mut am.round_trips);
    let ratio = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:.2}", x / y)
        } else {
            "-".into()
        }
    };

    println!();
    println!("| measure | shoal | automerge | shoal/automerge |");
    println!("|---|---:|---:|---:|");
    println!(
        "| {n} objects A -> B end to end, objects/s (shoal: A's first commit to B's callback, A's writes overlapping the sync; automerge: A's writes, then the sync) | {shoal_rate:.0} | {am_rate_with_writes:.0} | {} |",
        ratio(shoal_rate, am_rate_with_writes)
    );
    println!(
        "| sync alone, objects/s (shoal: {n} more objects written with A's session paused, from resume to B's callback; automerge: the sync protocol after the writes) | {shoal_sync_rate:.0} | {am_rate:.0} | {} |",
        ratio(shoal_sync_rate, am_rate)
    );
    println!(
        "| time to B ms, end to end | {:.0} | {:.0} | {} |",
        ms(s.all_on_b),
        ms(am.write + am.sync),
        ratio(ms(s.all_on_b), ms(am.write + am.sync))
    );
    println!(
        "| time to B ms, sync alone | {:.0} | {:.0} | {} |",
        ms(s.sync_only),
        ms(am.sync),
        ratio(ms(s.sync_only), ms(am.sync))
    );
    println!(
        "| writes on A ms ({} transactions) | {:.0} | {:.0} | {} |",
        (n + BATCH - 1) / BATCH,
        ms(s.writes_done),
        ms(am.write),
        ratio(ms(s.writes_done), ms(am.write))
    );
    println!(
        "| bytes on the wire, both ways (shoal: both WebSockets, A-server and server-B; automerge: {} messages) | {shoal_bytes} | {} | {} |",
        am.messages,
        am.bytes,
        ratio(shoal_bytes as f64, am.bytes as f64)
    );
    println!(
        "| bytes/object | {:.1} | {:.1} | {} |",
        shoal_bytes as f64 / nf,
        am.bytes as f64 / nf,
        ratio(shoal_bytes as f64, am.bytes as f64)
    );
    println!(
        "| bytes/object on one hop (shoal: A's WebSocket only) | {:.1} | {:.1} | {} |",
        shoal_hop as f64 / nf,
        am.bytes as f64 / nf,
        ratio(shoal_hop as f64, am.bytes as f64)
    );
    println!(
        "| small change A -> B p50 ms (shoal: commit to B's callback; automerge: one message) | {:.2} | {:.3} | {} |",
        ms(sp50),
        ms(ap50),
        ratio(ms(sp50), ms(ap50))
    );
    println!(
        "| small change p99 ms | {:.2} | {:.3} | {} |",
        ms(sp99),
        ms(ap99),
        ratio(ms(sp99), ms(ap99))
    );
    println!(
        "| small change max ms | {:.2} | {:.3} | {} |",
        ms(smax),
        ms(amax),
        ratio(ms(smax), ms(amax))
    );
    println!(
        "| bytes per small change, both ways (automerge: with B's answer) | {:.0} | {:.0} | {} |",
        s.latency_wire.ws_total() as f64 / CHANGES as f64,
        am.latency_bytes as f64 / CHANGES as f64,
        ratio(s.latency_wire.ws_total() as f64, am.latency_bytes as f64)
    );

    println!();
    println!(
        "shoal detail: end to end, A's writes done at {:.0} ms, its upload acknowledged at {:.0} ms, all on B at {:.0} ms; WebSocket bytes (up, down): A {:?}, B {:?}; sync alone {} bytes; auth HTTP before the run {} bytes, during it {} bytes",
        ms(s.writes_done),
        ms(s.upload_acked),
        ms(s.all_on_b),
        s.wire.sockets.first().copied().unwrap_or_default(),
        s.wire.sockets.get(1).copied().unwrap_or_default(),
        s.sync_only_bytes,
        s.login_http,
        s.wire.http,
    );
    println!(
        "automerge detail: writes {:.0} ms, sync {:.0} ms in {} messages; small change incl. B's answer p50 {:.3} ms, p99 {:.3} ms",
        ms(am.write),
        ms(am.sync),
        am.messages,
        ms(rp50),
        ms(rp99)
    );
    if s.n != DEFAULT_OBJECTS {
        println!("(a run of {n} objects; the goals are set for {DEFAULT_OBJECTS})");
    }

    println!();
    println!(
        "{}: sync end to end >= {GOAL_OBJECTS_PER_S:.0} objects/s — {shoal_rate:.0} objects/s",
        met(shoal_rate >= GOAL_OBJECTS_PER_S)
    );
    println!(
        "{}: small change commit -> other device's callback p50 < {GOAL_P50_MS} ms — {:.2} ms",
        met(ms(sp50) < GOAL_P50_MS),
        ms(sp50)
    );
    println!(
        "{}: small change p99 < {GOAL_P99_MS} ms — {:.2} ms",
        met(ms(sp99) < GOAL_P99_MS),
        ms(sp99)
    );
    println!(
        "{} (moonshot): >= {MOONSHOT_OBJECTS_PER_S:.0} objects/s end to end — {shoal_rate:.0} objects/s",
        met(shoal_rate >= MOONSHOT_OBJECTS_PER_S)
    );
    println!(
        "{} (moonshot): bytes on the wire <= {MOONSHOT_BYTES_RATIO}x automerge's — ratio {:.2} (both hops; {:.2} on A's hop alone)",
        met(shoal_bytes as f64 <= MOONSHOT_BYTES_RATIO * am.bytes as f64),
        shoal_bytes as f64 / am.bytes as f64,
        shoal_hop as f64 / am.bytes as f64
    );
}

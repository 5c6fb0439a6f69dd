//! Connection limits of the real `shoal-server` binary: a flood of idle connections and of
//! WebSockets that never bind (from many loopback addresses) does not lock out an honest
//! client; silent connections and unbound WebSockets are closed after their deadlines (PINGs
//! do not count); per-address caps refuse with 503; upgraded WebSockets count against the
//! total; the server survives running out of file descriptors.
//!
//! Linux routes all of 127.0.0.0/8 to loopback, so a client socket bound to 127.0.0.x before
//! connecting is a distinct client address for the server's per-address limits.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::binary::Binary;
use common::notes_config;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use shoal::protocol::sync::{Message, WEBSOCKET_SUBPROTOCOL};
use shoal::Value as V;
use shoal::{App, Credentials, Realm};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::WebSocketStream;

/// The flood of the issue: idle TCP connections and idle, unbound WebSockets.
const FLOOD_TCP: usize = 1_100;
const FLOOD_WS: usize = 1_000;
/// Source addresses of each half of the flood: 127.0.0.2.. for TCP, then as many for
/// WebSockets. 20 addresses keep every address under the default per-address cap (64), so
/// the total cap (1,024) and its eviction are what the flood meets.
const FLOOD_ADDRESSES: usize = 20;
/// How long a flood connection waits before reconnecting once the server closed it.
const RECONNECT: Duration = Duration::from_millis(500);
/// What the honest client gets for its whole login and sync.
const HONEST_BUDGET: Duration = Duration::from_secs(2);

/// Raises this test process's soft open-file limit to its hard limit (the flood needs more
/// than the usual 1,024 descriptors); returns the soft limit in force.
fn raise_own_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read or write exactly one `rlimit` through pointers to
    // live values of this frame, and change only this process's limit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit), 0);
    }
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let soft = limit.rlim_cur as u64;
    soft
}

fn loopback(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, u8::try_from(n).expect("a loopback host number"))
}

/// A TCP connection to `server` from `source` (port picked by the kernel).
async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(server))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect"))?
}

/// The sync WebSocket handshake over `stream`.
async fn websocket(stream: TcpStream, server: SocketAddr) -> Option<WebSocketStream<TcpStream>> {
    let mut request = format!("ws://{server}/realm-sync")
        .into_client_request()
        .ok()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        WEBSOCKET_SUBPROTOCOL.parse().ok()?,
    );
    let handshake = tokio_tungstenite::client_async(request, stream);
    match tokio::time::timeout(Duration::from_secs(5), handshake).await {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

/// A sync PING and a WebSocket ping: what keeps a connection "alive" without binding.
async fn ping(ws: &mut WebSocketStream<TcpStream>) -> bool {
    let sync_ping = Message::Ping { timestamp: 1 }.encode();
    ws.send(Ws::Binary(sync_ping.into())).await.is_ok()
        && ws.send(Ws::Ping(Vec::new().into())).await.is_ok()
}

#[derive(Default)]
struct FloodStats {
    /// Connections (TCP) or handshakes (WebSocket) that succeeded, in all.
    opened: AtomicU64,
    /// Those open now (as far as the client knows).
    open: AtomicU64,
    /// Those the server closed.
    closed: AtomicU64,
    /// Connects or handshakes that failed or timed out.
    failed: AtomicU64,
}

/// One idle TCP connection from `source`, reconnected whenever the server closes it, until
/// `stop`.
async fn idle_tcp(
    server: SocketAddr,
    source: Ipv4Addr,
    stats: Arc<FloodStats>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        if let Ok(mut stream) = connect_from(source, server).await {
            stats.opened.fetch_add(1, Ordering::Relaxed);
            stats.open.fetch_add(1, Ordering::Relaxed);
            let mut buf = [0u8; 256];
            let closed = loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break true,
                        Ok(_) => {}
                    },
                    _ = stop.changed() => break false,
                }
            };
            stats.open.fetch_sub(1, Ordering::Relaxed);
            if closed {
                stats.closed.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One sync WebSocket from `source` that PINGs every second and never binds, reconnected
/// whenever the server closes it, until `stop`.
async fn idle_websocket(
    server: SocketAddr,
    source: Ipv4Addr,
    stats: Arc<FloodStats>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let ws = match connect_from(source, server).await {
            Ok(stream) => websocket(stream, server).await,
            Err(_) => None,
        };
        if let Some(mut ws) = ws {
            stats.opened.fetch_add(1, Ordering::Relaxed);
            stats.open.fetch_add(1, Ordering::Relaxed);
            let mut pings = tokio::time::interval(Duration::from_secs(1));
            let closed = loop {
                tokio::select! {
                    frame = ws.next() => match frame {
                        None | Some(Err(_) | Ok(Ws::Close(_))) => break true,
                        Some(Ok(_)) => {}
                    },
                    _ = pings.tick() => if !ping(&mut ws).await { break true },
                    _ = stop.changed() => break false,
                }
            };
            stats.open.fetch_sub(1, Ordering::Relaxed);
            if closed {
                stats.closed.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT) => {}
            _ = stop.changed() => {}
        }
    }
}

/// How many descriptors process `pid` has open (Linux).
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Waits (at most 30 s) until `done`.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not get going"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /health` on a fresh connection; the status (0: no answer) and how long it took.
fn health(server: SocketAddr) -> (u16, Duration) {
    let started = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let status = agent
        .get(&format!("http://{server}/health"))
        .call()
        .map_or(0, |r| r.status().as_u16());
    (status, started.elapsed())
}

/// What the honest client took: two logins and a change synced from one device to another.
struct Honest {
    health: Duration,
    login: Duration,
    upload: Duration,
    download: Duration,
    total: Duration,
}

/// Logs in on two devices, writes on one and waits for the other to have it.
fn honest_client(server: SocketAddr) -> Honest {
    let started = Instant::now();
    let (status, health) = health(server);
    assert_eq!(status, 200, "health answered");
    let auth = format!("http://{server}/auth");
    let url = format!("realm://{server}/~/notes");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let app_a = App::new(dir_a.path(), "io.shoal.tests.limits").unwrap();
    let app_b = App::new(dir_b.path(), "io.shoal.tests.limits").unwrap();
    let login_started = Instant::now();
    let alice = app_a
        .login(&Credentials::password("alice", "pw", true).unwrap(), &auth)
        .expect("login under the flood");
    let alice_b = app_b
        .login(&Credentials::password("alice", "pw", false).unwrap(), &auth)
        .expect("second login under the flood");
    let login = login_started.elapsed();

    let sync_started = Instant::now();
    let realm_a = Realm::open(&notes_config(&alice, &url)).unwrap();
    realm_a.begin_write().unwrap();
    realm_a
        .create_object("Note", Some(&V::Int(1)))
        .unwrap()
        .set("text", "written under a flood")
        .unwrap();
    realm_a.commit().unwrap();
    let session_a = realm_a.session().unwrap();
    session_a
        .wait_for_upload(Duration::from_secs(30))
        .expect("upload under the flood");
    let upload = sync_started.elapsed();
    let download_started = Instant::now();
    let realm_b = Realm::open(&notes_config(&alice_b, &url)).unwrap();
    realm_b
        .session()
        .unwrap()
        .wait_for_download(Duration::from_secs(30))
        .expect("download under the flood");
    realm_b.refresh().unwrap();
    let note = realm_b
        .find_object("Note", &V::Int(1))
        .unwrap()
        .expect("the note arrived");
    assert_eq!(
        note.get("text").unwrap(),
        V::String("written under a flood".into())
    );
    Honest {
        health,
        login,
        upload,
        download: download_started.elapsed(),
        total: started.elapsed(),
    }
}

#[test]
fn a_flood_of_idle_connections_and_unbound_websockets_does_not_lock_out_an_honest_client() {
    let limit = raise_own_open_file_limit();
    assert!(
        limit >= 4 * (FLOOD_TCP + FLOOD_WS) as u64,
        "the test needs more open files than {limit}"
    );
    // The defaults: 1,024 connections, 64 per address, 10 s header and bind deadlines.
    let server = Binary::start(&[], "warn");
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let tcp = Arc::new(FloodStats::default());
    let ws = Arc::new(FloodStats::default());
    // The idle connections first (as in the issue: they alone filled the old cap), then the
    // WebSockets.
    let flood_started = Instant::now();
    // Paced (100 every 20 ms), so that the kernel's accept queue does not overflow: a
    // connection dropped there looks open to the client but is not the server's yet.
    for i in 0..FLOOD_TCP {
        let source = loopback(2 + i % FLOOD_ADDRESSES);
        runtime.spawn(idle_tcp(addr, source, tcp.clone(), stop.clone()));
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    wait_for("the idle connections", || {
        tcp.opened.load(Ordering::Relaxed) >= FLOOD_TCP as u64
    });
    // The server holds about a thousand of them (each is a descriptor of its process).
    wait_for("the server to accept the idle connections", || {
        open_descriptors(server.pid()) >= 1_000
    });
    for i in 0..FLOOD_WS {
        let source = loopback(2 + FLOOD_ADDRESSES + i % FLOOD_ADDRESSES);
        runtime.spawn(idle_websocket(addr, source, ws.clone(), stop.clone()));
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Every WebSocket has been tried (a handshake gives up after 5 s).
    wait_for("the WebSockets", || {
        ws.opened.load(Ordering::Relaxed) + ws.failed.load(Ordering::Relaxed) >= FLOOD_WS as u64
    });
    let flood_setup = flood_started.elapsed();
    let open_before = (
        tcp.open.load(Ordering::Relaxed),
        ws.open.load(Ordering::Relaxed),
    );

    let honest = honest_client(addr);
    let open_after = (
        tcp.open.load(Ordering::Relaxed),
        ws.open.load(Ordering::Relaxed),
    );
    let (status, health_after) = health(addr);
    eprintln!(
        "flood: {FLOOD_TCP} idle TCP + {FLOOD_WS} unbound WebSockets from {} addresses, set up \
         in {flood_setup:?}; open (tcp, ws) before the honest client {open_before:?}, after \
         {open_after:?}; opened in all tcp {} ws {}, closed by the server tcp {} ws {}, failed \
         tcp {} ws {}\nhonest client: health {:?}, two logins {:?}, write + upload {:?}, \
         second device download {:?}, total {:?}; health afterwards {health_after:?}",
        2 * FLOOD_ADDRESSES,
        tcp.opened.load(Ordering::Relaxed),
        ws.opened.load(Ordering::Relaxed),
        tcp.closed.load(Ordering::Relaxed),
        ws.closed.load(Ordering::Relaxed),
        tcp.failed.load(Ordering::Relaxed),
        ws.failed.load(Ordering::Relaxed),
        honest.health,
        honest.login,
        honest.upload,
        honest.download,
        honest.total,
    );
    assert_eq!(status, 200);
    // The flood really held the server: more connections open than it may serve.
    assert!(
        open_before.0 + open_before.1 >= 900,
        "the flood held {open_before:?} connections"
    );
    assert!(
        honest.total < HONEST_BUDGET,
        "the honest client took {:?} (health {:?}, logins {:?}, upload {:?}, download {:?})",
        honest.total,
        honest.health,
        honest.login,
        honest.upload,
        honest.download
    );
    stop_tx.send_replace(true);
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// Reads until the server closes the connection; what it sent, or `None` if it did not
/// close within `within`.
fn read_until_closed(stream: &mut std::net::TcpStream, within: Duration) -> Option<String> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(String::from_utf8_lossy(&got).into_owned()),
        }
    }
}

fn std_connect_from(source: Ipv4Addr, server: SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime
        .block_on(connect_from(source, server))
        .expect("connect");
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// Binds a new client file in `session` and waits until the server has finished the BIND
/// (the PONG of a PING sent after it: frames are handled in order), so that the connection
/// counts as bound.
async fn bind(ws: &mut WebSocketStream<TcpStream>, session: u64, path: &str, token: &str) {
    let bind = Message::Bind {
        session,
        path: path.to_owned(),
        access_token: token.to_owned(),
        client_file_ident: 0,
        client_file_salt: 0,
    };
    ws.send(Ws::Binary(bind.encode().into())).await.unwrap();
    let ping = Message::Ping { timestamp: 7 };
    ws.send(Ws::Binary(ping.encode().into())).await.unwrap();
    let mut ident = false;
    loop {
        match ws.next().await {
            Some(Ok(Ws::Binary(b))) => match Message::decode(&b).unwrap() {
                Message::Ident { .. } => ident = true,
                Message::Pong { timestamp: 7 } => break,
                other => panic!("bind {session}: {other:?}"),
            },
            Some(Ok(_)) => {}
            other => panic!("bind {session}: {other:?}"),
        }
    }
    assert!(ident, "bind {session}: no IDENT");
}

/// Registers `user` and returns an access token for `/~/notes` with its identity's path.
fn access_token(server: SocketAddr, user: &str) -> (String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |body: Value| -> Value {
        agent
            .post(&format!("http://{server}/auth"))
            .send_json(body)
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    };
    let login = post(json!({"provider": "password", "data": user,
        "user_info": {"register": true, "password": "pw"}}));
    let refresh = login["refresh_token"]["token"].as_str().unwrap().to_owned();
    let access = post(
        json!({"provider": "realm", "data": refresh, "app_id": "limits",
        "path": "/~/notes", "user_info": {}}),
    );
    let token = access["access_token"]["token"].as_str().unwrap().to_owned();
    let path = access["access_token"]["token_data"]["path"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            shoal::protocol::auth::decode_token_unverified(&token)
                .unwrap()
                .path
                .unwrap()
        });
    (token, path)
}

#[test]
fn silent_connections_and_unbound_websockets_are_closed_in_time_pings_do_not_count() {
    let server = Binary::start(
        &["--header-timeout", "1", "--sync-bind-timeout", "2"],
        "info",
    );
    let addr = server.addr;

    // A connection that never sends a byte is closed after the header deadline.
    let started = Instant::now();
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    assert!(read_until_closed(&mut silent, Duration::from_secs(5)).is_some());
    let silent_closed = started.elapsed();
    assert!(silent_closed < Duration::from_secs(3), "{silent_closed:?}");

    // Headers that never finish: the same.
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(read_until_closed(&mut slow, Duration::from_secs(5)).is_some());

    // A keep-alive connection is answered, then closed once idle for the deadline.
    let mut kept = std::net::TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answered = read_until_closed(&mut kept, Duration::from_secs(5)).expect("closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (token, path) = access_token(addr, "bob");
    runtime.block_on(async {
        // A WebSocket that PINGs (sync PINGs and WebSocket pings) but never binds: an ERROR
        // CONNECTION_CLOSED, then closed, after the bind deadline.
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut unbound = websocket(stream, addr).await.expect("handshake");
        let opened = Instant::now();
        let mut pings = tokio::time::interval(Duration::from_millis(200));
        let mut error = None;
        let closed_after = loop {
            tokio::select! {
                frame = unbound.next() => match frame {
                    None | Some(Err(_) | Ok(Ws::Close(_))) => break opened.elapsed(),
                    Some(Ok(Ws::Binary(bytes))) => match Message::decode(&bytes).unwrap() {
                        Message::Pong { .. } => {}
                        other => error = Some(other),
                    },
                    Some(Ok(_)) => {}
                },
                _ = pings.tick() => { let _ = ping(&mut unbound).await; }
            }
            assert!(opened.elapsed() < Duration::from_secs(10), "never closed");
        };
        assert!(
            closed_after >= Duration::from_millis(1900) && closed_after < Duration::from_secs(4),
            "{closed_after:?}"
        );
        match error {
            Some(Message::Error {
                session: 0,
                code: 100,
                try_again: true,
                ..
            }) => {}
            other => panic!("expected CONNECTION_CLOSED, got {other:?}"),
        }

        // A WebSocket with a bound session stays open past the deadline.
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut bound = websocket(stream, addr).await.expect("handshake");
        let bind = Message::Bind {
            session: 1,
            path: path.clone(),
            access_token: token.clone(),
            client_file_ident: 0,
            client_file_salt: 0,
        };
        bound.send(Ws::Binary(bind.encode().into())).await.unwrap();
        let until = Instant::now() + Duration::from_secs(4);
        let mut pings = tokio::time::interval(Duration::from_millis(500));
        let mut got_ident = false;
        while Instant::now() < until {
            tokio::select! {
                frame = bound.next() => match frame {
                    Some(Ok(Ws::Binary(bytes))) => {
                        if let Message::Ident { .. } = Message::decode(&bytes).unwrap() {
                            got_ident = true;
                        }
                    }
                    Some(Ok(_)) => {}
                    other => panic!("a bound WebSocket was closed: {other:?}"),
                },
                _ = pings.tick() => assert!(ping(&mut bound).await),
            }
        }
        assert!(got_ident);
    });
    assert!(
        server
            .log()
            .contains("closing a sync connection without a bound session"),
        "{}",
        server.log()
    );
}

#[test]
fn a_per_address_cap_refuses_with_503_and_other_addresses_are_served() {
    let server = Binary::start(&["--max-connections-per-address", "4"], "info");
    let addr = server.addr;
    let flood = loopback(50);
    let held: Vec<_> = (0..4).map(|_| std_connect_from(flood, addr)).collect();
    // Let the server accept the four before the fifth arrives.
    std::thread::sleep(Duration::from_millis(300));
    let mut fifth = std_connect_from(flood, addr);
    let answer = read_until_closed(&mut fifth, Duration::from_secs(5)).expect("closed at once");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    // Another address is served meanwhile.
    let mut other = std_connect_from(loopback(51), addr);
    other
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut other, Duration::from_secs(5)).expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    // A slot of the capped address frees when one of its connections closes.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let mut again = std_connect_from(flood, addr);
    again
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut again, Duration::from_secs(5)).expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[test]
fn bound_websockets_count_against_the_cap_and_unbound_ones_make_room() {
    let server = Binary::start(
        &[
            "--max-connections",
            "6",
            "--max-connections-per-address",
            "0",
        ],
        "info",
    );
    let addr = server.addr;
    let (token, path) = access_token(addr, "carol");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Six WebSockets with bound sessions take every slot.
        let mut bound = Vec::new();
        for session in 1..=6u64 {
            let stream = TcpStream::connect(addr).await.unwrap();
            let mut ws = websocket(stream, addr).await.expect("handshake");
            bind(&mut ws, session, &path, &token).await;
            bound.push(ws);
        }
        // Nothing may be evicted: a new connection is refused.
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), refused.read_to_string(&mut answer))
            .await
            .expect("refused at once")
            .ok();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");

        // Once one closes, there is room again; unbound WebSockets fill it and are evicted
        // for the next connection.
        let mut first = bound.remove(0);
        first.close(None).await.unwrap();
        drop(first);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut unbound = websocket(stream, addr).await.expect("a free slot");
        let (status, _) = tokio::task::spawn_blocking(move || health(addr))
            .await
            .unwrap();
        assert_eq!(status, 200, "the unbound WebSocket made room");
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match unbound.next().await {
                    None | Some(Err(_) | Ok(Ws::Close(_))) => break,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the unbound WebSocket was evicted");
        for ws in &mut bound {
            assert!(ping(ws).await, "bound WebSockets were left alone");
        }
    });
}

#[test]
fn running_out_of_file_descriptors_does_not_stop_the_server_for_good() {
    // A hard limit of 48 descriptors: the server lowers its connection cap to fit, and when
    // the descriptors run out anyway, it evicts and goes on accepting.
    let server = Binary::start_command(&["--max-connections", "1000"], "info", |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe and
        // touches only the child's own limit.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 48,
                    rlim_max: 48,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let addr = server.addr;
    let log = server.log();
    assert!(log.contains("lowered to fit the open-file limit"), "{log}");
    // Sixty silent connections from many addresses: more than the process has descriptors.
    let flood: Vec<_> = (0..60)
        .map(|i| std_connect_from(loopback(60 + i % 30), addr))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (status, took) = health(addr);
    assert_eq!(status, 200, "answered under the flood");
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(flood);
    std::thread::sleep(Duration::from_millis(200));
    let (status, _) = health(addr);
    assert_eq!(status, 200, "answered after the flood");
}

//! The sync service over real sockets: `GET /realm-sync` on an in-process server, raw
//! tokio-tungstenite clients speaking `shoal::protocol::sync`, changesets made by real local
//! realms with merge metadata.

mod common;

use std::time::Duration;

use common::sync_client::*;
use common::*;
use futures_util::SinkExt;
use shoal::protocol::sync::{Message, UploadChangeset};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

/// A server with the debug provider.
fn server() -> TestServer {
    TestServer::start_with(|c| c.debug_provider = true)
}

#[tokio::test(flavor = "multi_thread")]
async fn bind_checks_the_token_path_and_permission() {
    let server = server();
    let alice = access_token(&server, "alice", "/alice/tasks");
    let bob = access_token(&server, "bob", "/bob/tasks");
    let mut client = Client::connect(server.addr).await;

    // A good token: IDENT, then the first UPLOAD gets an empty DOWNLOAD.
    let (ident, salt) = client.bind_new(1, "/alice/tasks", &alice).await;
    assert!(ident > 0 && salt > 0);
    client.upload(1, 0, vec![]).await;
    let got = client.sync_to_mark(1, 7).await;
    assert_eq!((got.acked, got.server_version), (0, 0));
    client.send(&Message::Ping { timestamp: 42 }).await;
    assert_eq!(client.recv().await, Message::Pong { timestamp: 42 });

    // Errors end the session only.
    client.bind(2, "/alice/tasks", "not-a-token", 0, 0).await;
    assert_eq!(session_error(client.recv().await), (2, 203, false));
    client.bind(3, "/alice/other", &alice, 0, 0).await;
    assert_eq!(session_error(client.recv().await), (3, 206, false));
    client.bind(4, "/alice/tasks", &bob, 0, 0).await;
    assert_eq!(session_error(client.recv().await), (4, 206, false));
    client.bind(5, "/bob/../x", &alice, 0, 0).await;
    assert_eq!(session_error(client.recv().await), (5, 204, false));
    client
        .bind(6, "/alice/tasks", &alice, ident, salt ^ 1)
        .await;
    assert_eq!(session_error(client.recv().await), (6, 208, false));
    // Messages of an ended session are dropped; UNBIND is accepted.
    client.upload(2, 0, vec![]).await;
    client.send(&Message::Unbind { session: 2 }).await;
    // The rebinding of the known file with its salt works.
    client.bind(8, "/alice/tasks", &alice, ident, salt).await;
    client.upload(8, 0, vec![]).await;
    let got = client.sync_to_mark(8, 1).await;
    assert_eq!(got.downloads, 1);
    // REFRESH with a foreign token ends the session.
    client
        .send(&Message::Refresh {
            session: 8,
            access_token: bob.clone(),
        })
        .await;
    assert_eq!(session_error(client.recv().await), (8, 206, false));

    // Reusing a session ident closes the connection.
    client.bind(1, "/alice/tasks", &alice, 0, 0).await;
    assert_eq!(session_error(client.recv().await), (0, 107, false));
    assert!(client.recv_or_close().await.is_none());

    // Without the subprotocol the upgrade is refused.
    let request = format!("ws://{}/realm-sync", server.addr)
        .into_client_request()
        .unwrap();
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_tokens_are_token_expired() {
    let server = TestServer::start_with(|c| {
        c.debug_provider = true;
        c.access_token_ttl = 1;
    });
    let token = access_token(&server, "alice", "/alice/tasks");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut client = Client::connect(server.addr).await;
    client.bind(1, "/alice/tasks", &token, 0, 0).await;
    assert_eq!(session_error(client.recv().await), (1, 202, true));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_converge_with_the_server_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.debug_provider = true;
    let server = TestServer::start_config(config, None);
    let path = "/alice/tasks";
    let token = access_token(&server, "alice", path);
    let (mut a, mut b) = (Replica::new(), Replica::new());
    let mut ca = Client::connect(server.addr).await;
    let mut cb = Client::connect(server.addr).await;
    ca.bind_new(1, path, &token).await;
    cb.bind_new(5, path, &token).await;
    ca.upload(1, 0, vec![]).await;
    cb.upload(5, 0, vec![]).await;
    ca.sync_to_mark(1, 1).await;
    cb.sync_to_mark(5, 1).await;

    // Concurrent edits, including the same object on both sides.
    a.task(1, "from a", 1);
    a.task(2, "only a", 0);
    b.task(1, "from b", 2);
    b.task(3, "only b", 0);
    let pa = a.pending();
    let pb = b.pending();
    let (va, vb) = (
        pa.last().unwrap().client_version,
        pb.last().unwrap().client_version,
    );
    ca.upload(1, 0, pa).await;
    let got = ca.until_acked(1, va).await;
    a.integrate(&got.changesets);
    cb.upload(5, 0, pb).await;
    let got_b = cb.until_acked(5, vb).await;
    b.integrate(&got_b.changesets);

    // Fan-out: each receives the other's changesets, never its own.
    let got_a = ca.sync_to_mark(1, 2).await;
    let got_b2 = cb.sync_to_mark(5, 2).await;
    a.integrate(&got_a.changesets);
    b.integrate(&got_b2.changesets);
    let a_seen = got.changesets.len() + got_a.changesets.len();
    let b_seen = got_b.changesets.len() + got_b2.changesets.len();
    assert!(a_seen > 0 && b_seen > 0);
    let reached = |x: &Downloaded, y: &Downloaded| x.server_version.max(y.server_version);
    assert_eq!(reached(&got, &got_a), reached(&got_b, &got_b2));

    // A later edit reaches the other side too.
    a.task(2, "a again", 5);
    let pa = a.pending();
    let va = pa.last().unwrap().client_version;
    ca.upload(1, got_a.server_version, pa).await;
    ca.until_acked(1, va).await;
    let got_b3 = cb.sync_to_mark(5, 3).await;
    assert!(!got_b3.changesets.is_empty());
    b.integrate(&got_b3.changesets);

    assert_eq!(a.dump(), b.dump());
    let expected = a.dump();
    assert!(expected.contains("a again") && expected.contains("only b"));
    drop((ca, cb));
    server.stop();
    assert_eq!(server_copy(dir.path()), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_changeset_is_refused_and_not_logged() {
    let server = server();
    let token = access_token(&server, "alice", "/alice/tasks");
    let mut client = Client::connect(server.addr).await;
    client.bind_new(1, "/alice/tasks", &token).await;
    client
        .upload(
            1,
            0,
            vec![UploadChangeset {
                client_version: 1,
                stamp: 1,
                data: b"garbage".to_vec(),
            }],
        )
        .await;
    assert_eq!(session_error(client.recv().await), (1, 212, false));
    // Nothing was appended: a new session sees an empty log.
    client.bind_new(2, "/alice/tasks", &token).await;
    client.upload(2, 0, vec![]).await;
    let got = client.sync_to_mark(2, 1).await;
    assert_eq!(got.server_version, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_close_only_their_connection() {
    let server = server();
    let token = access_token(&server, "alice", "/alice/tasks");
    let mut good = Client::connect(server.addr).await;
    good.bind_new(1, "/alice/tasks", &token).await;
    good.upload(1, 0, vec![]).await;
    good.sync_to_mark(1, 1).await;

    let mut bad = Client::connect(server.addr).await;
    let v = shoal::protocol::sync::PROTOCOL_VERSION;
    bad.ws.send(Ws::Binary(vec![v, 99].into())).await.unwrap();
    assert_eq!(session_error(bad.recv().await), (0, 102, false));
    assert!(bad.recv_or_close().await.is_none());

    let mut bad = Client::connect(server.addr).await;
    bad.ws
        .send(Ws::Binary(vec![v, 1, 0x80].into()))
        .await
        .unwrap();
    assert_eq!(session_error(bad.recv().await), (0, 103, false));
    assert!(bad.recv_or_close().await.is_none());

    let mut bad = Client::connect(server.addr).await;
    bad.ws.send(Ws::Text("hello".into())).await.unwrap();
    assert_eq!(session_error(bad.recv().await), (0, 103, false));
    assert!(bad.recv_or_close().await.is_none());

    // Another version's message (a PING of version 1, and of version 3).
    for other in [1, 3] {
        let mut bad = Client::connect(server.addr).await;
        bad.ws
            .send(Ws::Binary(vec![other, 9, 0].into()))
            .await
            .unwrap();
        assert_eq!(session_error(bad.recv().await), (0, 105, false));
    }

    let mut bad = Client::connect(server.addr).await;
    let mut oversized = Message::Ping { timestamp: 1 }.encode();
    oversized.resize(shoal::protocol::sync::MAX_MESSAGE_BYTES + 1, 0);
    bad.ws.send(Ws::Binary(oversized.into())).await.unwrap();
    assert_eq!(session_error(bad.recv().await), (0, 104, false));

    // The good connection still works.
    good.send(&Message::Ping { timestamp: 5 }).await;
    assert_eq!(good.recv().await, Message::Pong { timestamp: 5 });
    let got = good.sync_to_mark(1, 2).await;
    assert_eq!(got.downloads, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_resumes_after_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.debug_provider = true;
    let path = "/alice/tasks";

    let server = TestServer::start_config(config.clone(), None);
    let token = access_token(&server, "alice", path);
    let (mut a, b) = (Replica::new(), Replica::new());
    let mut ca = Client::connect(server.addr).await;
    let mut cb = Client::connect(server.addr).await;
    let (ident_a, salt_a) = ca.bind_new(1, path, &token).await;
    let (ident_b, salt_b) = cb.bind_new(1, path, &token).await;
    ca.upload(1, 0, vec![]).await;
    cb.upload(1, 0, vec![]).await;
    ca.sync_to_mark(1, 1).await;
    cb.sync_to_mark(1, 1).await;
    a.task(1, "first", 0);
    let pa = a.pending();
    ca.upload(1, 0, pa).await;
    ca.until_acked(1, a.uploaded).await;
    let got = cb.sync_to_mark(1, 2).await;
    b.integrate(&got.changesets);
    let b_version = got.server_version;
    assert!(b_version > 0);
    drop(cb); // b goes offline

    for i in 2..6 {
        a.task(i, "while b was away", i);
    }
    let pa = a.pending();
    ca.upload(1, 0, pa).await;
    ca.until_acked(1, a.uploaded).await;
    drop(ca);
    server.stop();

    // Same data directory: the log and the idents survived.
    let server = TestServer::start_config(config, None);
    let token = access_token(&server, "alice", path);
    let mut cb = Client::connect(server.addr).await;
    cb.bind(1, path, &token, ident_b, salt_b).await;
    cb.upload(1, b_version, vec![]).await;
    let got = cb.sync_to_mark(1, 3).await;
    assert_eq!(got.changesets.len(), 4);
    assert!(got.changesets.iter().all(|c| c.server_version > b_version));
    b.integrate(&got.changesets);
    assert_eq!(a.dump(), b.dump());

    // a reconnects with its ident: already acknowledged uploads are not appended again.
    let mut ca = Client::connect(server.addr).await;
    ca.bind(1, path, &token, ident_a, salt_a).await;
    let all = a.realm.local_changesets_since(0).unwrap();
    let again: Vec<UploadChangeset> = all
        .into_iter()
        .map(|(version, data)| UploadChangeset {
            client_version: version,
            stamp: shoal::changeset_header(&data).unwrap().0,
            data,
        })
        .collect();
    ca.upload(1, got.server_version, again).await;
    let resumed = ca.sync_to_mark(1, 4).await;
    assert!(resumed.changesets.is_empty());
    assert_eq!(resumed.server_version, got.server_version);
    drop((ca, cb));
    server.stop();
    assert_eq!(server_copy(dir.path()), a.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_connection_is_closed_and_a_pinging_one_is_kept() {
    let server = TestServer::start_with(|c| {
        c.debug_provider = true;
        c.sync_idle_timeout = Duration::from_millis(800);
    });
    let token = access_token(&server, "alice", "/alice/tasks");
    let mut silent = Client::connect(server.addr).await;
    silent.bind_new(1, "/alice/tasks", &token).await;
    let mut pinging = Client::connect(server.addr).await;
    let started = std::time::Instant::now();
    // The pinging client keeps its connection for well over the idle timeout.
    for t in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        pinging.send(&Message::Ping { timestamp: t }).await;
        assert_eq!(pinging.recv().await, Message::Pong { timestamp: t });
    }
    // The silent one got CONNECTION_CLOSED (try again) and a close.
    assert_eq!(session_error(silent.recv().await), (0, 100, true));
    assert!(silent.recv_or_close().await.is_none());
    assert!(started.elapsed() >= Duration::from_millis(800));
}

//! The server as the gatekeeper of what it stores and sends, against the real `shoal-server`
//! binary (issue 10, items 4 and 5):
//!
//! - tokens are checked for every message both ways: a session whose access token expired is
//!   sent nothing more (TOKEN_EXPIRED), and picks up where it stopped once it binds with a new
//!   one; a session that REFRESHes ahead of expiry never notices;
//! - revoking a refresh token ends the sessions bound with access tokens issued from it at once
//!   (BAD_AUTHENTICATION), and those tokens cannot BIND again; another login of the same user
//!   goes on;
//! - every kind of changeset the local API would refuse is BAD_CHANGESET (212), nothing of it
//!   is logged or sent to anyone, and the other clients of the path keep syncing;
//! - client versions beyond what the file can have made are BAD_CLIENT_VERSION (210), and the
//!   file's real uploads are taken afterwards;
//! - a changeset larger than a message goes up in UPLOAD_PARTs and down in DOWNLOAD_PARTs
//!   (issue 13), and what the server buffers of partial changesets is bounded: parts need a
//!   bound session whose token is still valid, a total within the changeset limit, parts
//!   within their total, and room in the server's part budget.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::sync_client::*;
use common::*;
use shoal::protocol::sync::{
    take_parts, Message, UploadChangeset, MAX_CHANGESET_BYTES, MAX_MESSAGE_BYTES,
};
use shoal::{
    encode_changeset, ChangeValue, Changeset, GlobalId, Instruction, OrderKey, PropertyFlags as F,
    PropertyType as T, Value,
};

const PATH: &str = "/alice/tasks";

/// The binary with the debug provider and `extra` flags.
fn debug_server(extra: &[&str]) -> TestServer {
    let mut args = vec!["--debug-provider"];
    args.extend_from_slice(extra);
    TestServer::binary(&args)
}

/// A debug login of `identity`: its refresh token and an access token for `path`.
fn login(server: &TestServer, identity: &str, path: &str) -> (String, String) {
    let (status, body) = server.debug_login(identity);
    assert_eq!(status, 200, "{body}");
    let refresh = refresh_token(&body);
    (refresh.clone(), access(server, &refresh, path))
}

/// A new access token for `path` from a refresh token.
fn access(server: &TestServer, refresh: &str, path: &str) -> String {
    let (status, body) = server.access(refresh, path);
    assert_eq!(status, 200, "{body}");
    body["access_token"]["token"].as_str().unwrap().to_owned()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Sleeps until the unix clock reads at least `at` (plus a little).
async fn sleep_until_unix(at: i64) {
    while unix_now() < at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// An honest raw client: a replica, its connection and one bound session.
struct Honest {
    replica: Replica,
    client: Client,
    session: u64,
    /// The last server version it has integrated.
    server_version: u64,
}

impl Honest {
    async fn new(server: &TestServer, token: &str) -> Honest {
        let mut client = Client::connect(server.addr).await;
        client.bind_new(1, PATH, token).await;
        client.upload(1, 0, vec![]).await;
        let mut honest = Honest {
            replica: Replica::new(),
            client,
            session: 1,
            server_version: 0,
        };
        let got = honest.client.sync_to_mark(1, 1).await;
        honest.take(&got);
        honest
    }

    fn take(&mut self, got: &Downloaded) {
        self.replica.integrate(&got.changesets);
        self.server_version = self.server_version.max(got.server_version);
    }

    /// Writes a task and uploads it; returns once the server acknowledged it.
    async fn write(&mut self, id: i64, title: &str) {
        self.replica.task(id, title, 0);
        let pending = self.replica.pending();
        let last = pending.last().unwrap().client_version;
        self.client
            .upload(self.session, self.server_version, pending)
            .await;
        let got = self.client.until_acked(self.session, last).await;
        self.take(&got);
    }

    /// Everything the server has: the changesets that came, integrated.
    async fn catch_up(&mut self, request: u64) -> Downloaded {
        let got = self.client.sync_to_mark(self.session, request).await;
        self.take(&got);
        got
    }
}

fn task(id: i64) -> GlobalId {
    GlobalId::Int(id)
}

fn string(s: &str) -> ChangeValue {
    ChangeValue::Value(Value::String(s.into()))
}

fn add_property(class: &str, name: &str, ty: T, flags: F, target: Option<&str>) -> Instruction {
    Instruction::AddProperty {
        class: class.into(),
        name: name.into(),
        ty,
        flags,
        target: target.map(Into::into),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_session_is_sent_nothing_and_resumes_with_a_new_token() {
    let server = debug_server(&["--access-token-ttl", "4"]);
    let (refresh, token) = login(&server, "alice", PATH);
    let expires = token_data(&token).expires;

    // Two readers bound with the same short-lived token.
    let mut lapsing = Client::connect(server.addr).await;
    let (ident, salt) = lapsing.bind_new(1, PATH, &token).await;
    lapsing.upload(1, 0, vec![]).await;
    let start = lapsing.sync_to_mark(1, 1).await.server_version;
    let mut renewing = Client::connect(server.addr).await;
    renewing.bind_new(1, PATH, &token).await;
    renewing.upload(1, 0, vec![]).await;
    renewing.sync_to_mark(1, 1).await;

    // One renews ahead of expiry, as clients do (10 s ahead, or at half life).
    sleep_until_unix(expires - 2).await;
    let renewed = access(&server, &refresh, PATH);
    assert!(token_data(&renewed).expires > expires);
    renewing
        .send(&Message::Refresh {
            session: 1,
            access_token: renewed,
        })
        .await;

    // After expiry, a writer uploads.
    sleep_until_unix(expires).await;
    let mut writer = Honest::new(&server, &access(&server, &refresh, PATH)).await;
    writer.write(1, "after expiry").await;

    // The lapsed session gets TOKEN_EXPIRED (try again) instead of the changeset.
    assert_eq!(session_error(lapsing.recv().await), (1, 202, true));
    assert_eq!(lapsing.recv_within(Duration::from_millis(500)).await, None);
    // The renewed one got it (the writer's schema and its task).
    let got = renewing.sync_to_mark(1, 2).await;
    assert_eq!(got.changesets.len(), 2);

    // Bound again with a new token, the lapsed file resumes from where it stopped.
    let fresh = access(&server, &refresh, PATH);
    lapsing.bind(2, PATH, &fresh, ident, salt).await;
    lapsing.upload(2, start, vec![]).await;
    let got = lapsing.sync_to_mark(2, 3).await;
    assert_eq!(got.changesets.len(), 2);
    assert_eq!(got.server_version, writer.server_version);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_refresh_token_ends_its_sessions_at_once_and_cannot_bind_again() {
    let server = debug_server(&[]);
    // Two logins of one user (two devices): two refresh tokens.
    let (revoked, token) = login(&server, "alice", PATH);
    let (kept, other) = login(&server, "alice", PATH);
    let mut device = Client::connect(server.addr).await;
    let (ident, salt) = device.bind_new(1, PATH, &token).await;
    device.upload(1, 0, vec![]).await;
    device.sync_to_mark(1, 1).await;
    let mut second = Client::connect(server.addr).await;
    second.bind_new(1, PATH, &other).await;
    second.upload(1, 0, vec![]).await;
    second.sync_to_mark(1, 1).await;

    // The user logs out of the first device: its refresh token is revoked.
    let revoked_at = Instant::now();
    let (status, body) = server.revoke(&revoked, &revoked);
    assert_eq!(status, 204, "{body}");
    assert_eq!(session_error(device.recv().await), (1, 203, false));
    assert!(revoked_at.elapsed() < Duration::from_secs(1));

    // Its access token is still within its life, but binds no more (the file's nor a new one).
    device.bind(2, PATH, &token, ident, salt).await;
    assert_eq!(session_error(device.recv().await), (2, 203, false));
    device.bind(3, PATH, &token, 0, 0).await;
    assert_eq!(session_error(device.recv().await), (3, 203, false));

    // The other login goes on: it receives what is written, and it can REFRESH.
    let mut writer = Honest::new(&server, &access(&server, &kept, PATH)).await;
    writer.write(1, "after the revocation").await;
    let got = second.sync_to_mark(1, 2).await;
    assert_eq!(got.changesets.len(), 2);
    second
        .send(&Message::Refresh {
            session: 1,
            access_token: access(&server, &kept, PATH),
        })
        .await;
    writer.write(2, "still syncing").await;
    assert_eq!(second.sync_to_mark(1, 3).await.changesets.len(), 1);
    // Nothing more reached the revoked device's connection.
    assert_eq!(device.recv_within(Duration::from_millis(300)).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_invalid_changeset_is_refused_with_212_and_the_others_keep_syncing() {
    let server = debug_server(&[]);
    let (_, token) = login(&server, "alice", PATH);
    let mut a = Honest::new(&server, &token).await;
    let mut b = Honest::new(&server, &token).await;
    a.write(1, "one").await;
    b.catch_up(2).await;
    let mut h = Hostile::new(server.addr, PATH, &token, 0x5eed).await;

    // A valid changeset of the hostile client is taken: a class of its own with a list and a
    // link to a task, and an object.
    let note = GlobalId::Int(1);
    let valid = h.changeset(vec![
        Instruction::AddClass {
            name: "Note".into(),
        },
        add_property("Note", "id", T::Int, F::NONE, None),
        Instruction::SetPrimaryKey {
            class: "Note".into(),
            prop: Some("id".into()),
        },
        add_property("Note", "tags", T::String, F::LIST, None),
        add_property("Note", "task", T::Link, F::NULLABLE, Some("Task")),
        Instruction::CreateObject {
            class: "Note".into(),
            id: note.clone(),
        },
        Instruction::Set {
            class: "Note".into(),
            id: note.clone(),
            prop: "task".into(),
            value: ChangeValue::Link(task(1)),
        },
    ]);
    assert_eq!(h.upload_next(valid).await, Answer::Acked(1));
    let valid_stamp = h.stamp;
    let got = b.catch_up(3).await;
    assert_eq!(got.changesets.len(), 1);
    assert!(b.replica.dump().contains("Note"));

    let set = |prop: &str, value: ChangeValue| Instruction::Set {
        class: "Task".into(),
        id: task(1),
        prop: prop.into(),
        value,
    };
    // What the local API refuses (schema rules shared with `Schema`), what a synced realm may
    // not do (remove, change flags or keys), and what names things the realm never had.
    let kinds: Vec<(&str, Vec<Instruction>)> = vec![
        (
            "an empty class name",
            vec![Instruction::AddClass { name: "".into() }],
        ),
        (
            "an empty property name",
            vec![add_property("Task", "", T::Int, F::NONE, None)],
        ),
        (
            "a non-link property naming a target class",
            vec![add_property("Task", "x", T::Int, F::NONE, Some("Task"))],
        ),
        (
            "a link without a target",
            vec![add_property("Task", "l", T::Link, F::NULLABLE, None)],
        ),
        (
            "an index on a double",
            vec![add_property("Task", "d", T::Double, F::INDEXED, None)],
        ),
        (
            "an index on a list",
            vec![add_property(
                "Task",
                "ls",
                T::String,
                F::LIST | F::INDEXED,
                None,
            )],
        ),
        (
            "a reserved class name",
            vec![Instruction::AddClass { name: "__x".into() }],
        ),
        (
            "an existing property with another type",
            vec![add_property("Task", "title", T::Int, F::NONE, None)],
        ),
        (
            "a class removed",
            vec![Instruction::EraseClass {
                class: "Task".into(),
            }],
        ),
        (
            "a property removed",
            vec![Instruction::EraseProperty {
                class: "Task".into(),
                name: "title".into(),
            }],
        ),
        (
            "flags changed",
            vec![Instruction::SetPropertyFlags {
                class: "Task".into(),
                name: "title".into(),
                flags: F::NULLABLE,
            }],
        ),
        (
            "a primary key changed",
            vec![Instruction::SetPrimaryKey {
                class: "Task".into(),
                prop: Some("done".into()),
            }],
        ),
        (
            "a value of the wrong type",
            vec![set("title", ChangeValue::Value(Value::Int(5)))],
        ),
        ("an unknown property", vec![set("nope", string("x"))]),
        (
            "an unknown class",
            vec![Instruction::Set {
                class: "Nope".into(),
                id: task(1),
                prop: "title".into(),
                value: string("x"),
            }],
        ),
        (
            "an object never created",
            vec![Instruction::Set {
                class: "Task".into(),
                id: task(99),
                prop: "title".into(),
                value: string("x"),
            }],
        ),
        (
            "an object never created, deleted",
            vec![Instruction::EraseObject {
                class: "Task".into(),
                id: task(98),
            }],
        ),
        (
            "a link to an object never created",
            vec![Instruction::Set {
                class: "Note".into(),
                id: note.clone(),
                prop: "task".into(),
                value: ChangeValue::Link(task(97)),
            }],
        ),
        (
            "a list change on a property that is not a list",
            vec![Instruction::ListInsertAfter {
                class: "Task".into(),
                id: task(1),
                prop: "title".into(),
                after: None,
                value: string("x"),
            }],
        ),
        (
            "a list element never inserted",
            vec![Instruction::ListInsertAfter {
                class: "Note".into(),
                id: note.clone(),
                prop: "tags".into(),
                after: Some(OrderKey {
                    stamp: 1,
                    origin: 2,
                    index: 3,
                }),
                value: string("x"),
            }],
        ),
        (
            "an index-based list change",
            vec![Instruction::ListInsert {
                class: "Note".into(),
                id: note.clone(),
                prop: "tags".into(),
                index: 0,
                value: string("x"),
            }],
        ),
    ];
    let mut raw: Vec<(&str, UploadChangeset)> = Vec::new();
    let next = h.acked + 1;
    raw.push((
        "bytes that are no changeset",
        Hostile::entry(next, b"garbage".to_vec()),
    ));
    raw.push((
        "a changeset without a stamp (format 1)",
        Hostile::entry(next, vec![0x53, 0x01]),
    ));
    let far = ((now_ms() + 2 * 24 * 3600 * 1000) << 16).max(h.stamp + 1);
    let future = encode_changeset(&Changeset {
        stamp: far,
        origin: h.origin,
        instructions: vec![set("title", string("from the future"))],
    });
    raw.push((
        "a stamp two days ahead of the server",
        Hostile::entry(next, future),
    ));
    let mut mismatched = Hostile::entry(next, h.changeset(vec![set("title", string("x"))]));
    mismatched.stamp += 1;
    raw.push(("a stamp that is not the header's", mismatched));
    let old = encode_changeset(&Changeset {
        stamp: valid_stamp,
        origin: h.origin,
        instructions: vec![set("title", string("x"))],
    });
    raw.push((
        "a stamp below the replica's last",
        Hostile::entry(next, old),
    ));
    let replayed = got_a_changeset(&mut b, &mut a).await;
    raw.push((
        "another client's changeset, replayed",
        Hostile::entry(next, replayed),
    ));

    let mut request = 10;
    let mut uploads: Vec<(&str, UploadChangeset)> = Vec::new();
    for (what, instructions) in kinds {
        let data = h.changeset(instructions);
        uploads.push((what, Hostile::entry(next, data)));
    }
    uploads.extend(raw);
    for (what, upload) in uploads {
        let before = b.server_version;
        assert_eq!(
            h.upload(vec![upload]).await,
            Answer::Refused(212),
            "{what}: {}",
            server.stderr()
        );
        h.rebind().await;
        assert_eq!(h.acked, 1, "{what}: nothing was acknowledged");
        // Nothing was logged or sent to the others ...
        request += 1;
        let got = b.catch_up(request).await;
        assert!(got.changesets.is_empty(), "{what} reached another client");
        assert_eq!(b.server_version, before, "{what} was logged");
        // ... who keep syncing.
        a.write(request as i64, what).await;
        request += 1;
        let got = b.catch_up(request).await;
        assert_eq!(got.changesets.len(), 1, "{what}");
    }
    assert_eq!(a.replica.dump(), b.replica.dump());

    // In one UPLOAD, the changesets before a refused one stay, nothing from it on is logged.
    let before = b.server_version;
    let first = h.changeset(vec![set("title", string("kept"))]);
    let refused = h.changeset(vec![set("nope", string("x"))]);
    let after = h.changeset(vec![set("title", string("after"))]);
    let batch = vec![
        Hostile::entry(2, first),
        Hostile::entry(3, refused),
        Hostile::entry(4, after),
    ];
    assert_eq!(h.upload(batch).await, Answer::Refused(212));
    h.rebind().await;
    assert_eq!(h.acked, 2);
    let got = b.catch_up(1000).await;
    assert_eq!(got.changesets.len(), 1);
    assert_eq!(b.server_version, before + 1);
    assert!(b.replica.dump().contains("kept") && !b.replica.dump().contains("after"));
    a.catch_up(1001).await;
    let expected = a.replica.dump();
    assert_eq!(b.replica.dump(), expected);

    // The server's copy is what the clients have.
    drop((a, b, h));
    let (data, _keep) = server.stop_keeping_data();
    assert_eq!(server_copy(&data), expected);
}

/// One changeset `a` made, as the log holds it (what a hostile client could replay).
async fn got_a_changeset(b: &mut Honest, a: &mut Honest) -> Vec<u8> {
    a.write(500, "to replay").await;
    let got = b.catch_up(500).await;
    got.changesets.last().unwrap().data.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_versions_beyond_the_files_history_are_refused_and_nothing_is_acknowledged() {
    let server = debug_server(&[]);
    let (_, token) = login(&server, "alice", PATH);
    let mut reader = Honest::new(&server, &token).await;
    let mut device = Replica::new();
    device.task(1, "one", 1);
    device.task(2, "two", 2);
    let pending = device.pending();
    assert_eq!(
        pending.iter().map(|c| c.client_version).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let mut client = Client::connect(server.addr).await;
    let (ident, salt) = client.bind_new(1, PATH, &token).await;
    client.upload(1, 0, vec![]).await;
    client.sync_to_mark(1, 1).await;
    // 2^64 - 1: the file has made nothing like it.
    let mut claimed = pending[0].clone();
    claimed.client_version = u64::MAX;
    client.upload(1, 0, vec![claimed]).await;
    assert_eq!(session_error(client.recv().await), (1, 210, false));
    // The bound: what it logged (0) + its place in the UPLOAD + what it integrated (0).
    client.bind(2, PATH, &token, ident, salt).await;
    client.upload(2, 0, vec![]).await;
    assert_eq!(client.sync_to_mark(2, 1).await.acked, 0);
    let mut jump = pending[0].clone();
    jump.client_version = 2;
    client.upload(2, 0, vec![jump]).await;
    assert_eq!(session_error(client.recv().await), (2, 210, false));
    let got = reader.catch_up(2).await;
    assert!(got.changesets.is_empty());

    // Its real changesets are taken, all of them.
    client.bind(3, PATH, &token, ident, salt).await;
    client.upload(3, 0, vec![]).await;
    assert_eq!(client.sync_to_mark(3, 1).await.acked, 0);
    client.upload(3, 0, pending).await;
    assert_eq!(client.until_acked(3, 3).await.acked, 3);
    let got = reader.catch_up(3).await;
    assert_eq!(got.changesets.len(), 3);
    assert_eq!(reader.replica.dump(), device.dump());

    // After integrating two changesets from the log, a file's versions may be two higher.
    let mut other = Replica::new();
    other.integrate(&got.changesets[1..]);
    other.task(3, "three", 3);
    let mine = other.pending();
    let versions: Vec<u64> = mine.iter().map(|c| c.client_version).collect();
    assert_eq!(versions, [1, 4], "schema, then a task after two integrated");
    let mut client = Client::connect(server.addr).await;
    client.bind_new(1, PATH, &token).await;
    client.upload(1, 0, vec![]).await;
    client.sync_to_mark(1, 1).await;
    // Claiming to have integrated nothing, version 4 is out of reach ...
    client.upload(1, 0, mine.clone()).await;
    assert_eq!(session_error(client.recv().await), (1, 210, false));
    // ... with the server version it reached, it is fine.
    let mut client = Client::connect(server.addr).await;
    client.bind_new(1, PATH, &token).await;
    client.upload(1, reader.server_version, vec![]).await;
    client.sync_to_mark(1, 1).await;
    client.upload(1, reader.server_version, mine).await;
    assert_eq!(client.until_acked(1, 4).await.acked, 4);
}

/// A device of the real client: its app (logged in as `user`), a synced realm of `Task`s, and
/// the sync errors its handler saw.
struct Device {
    _dir: tempfile::TempDir,
    app: shoal::App,
    realm: shoal::Realm,
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Device {
    fn new(server: &TestServer, register: bool) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let app = shoal::App::new(dir.path(), APP_ID).unwrap();
        let credentials = shoal::Credentials::password("honest", "pw", register).unwrap();
        let user = app
            .login(&credentials, &server.url("/auth"))
            .unwrap_or_else(|e| panic!("login: {e}\n{}", server.stderr()));
        let mut sync =
            shoal::SyncConfig::new(&user, &format!("realm://{}/~/tasks", server.addr)).unwrap();
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = errors.clone();
        sync.set_error_handler(move |_, e| {
            seen.lock()
                .unwrap()
                .push(format!("{} {}: {}", e.code, e.is_fatal, e.message))
        });
        let mut config = shoal::Config::new("unused");
        config.set_schema(schema()).unwrap();
        config.set_sync(sync);
        let realm = shoal::Realm::open(&config).unwrap();
        Device {
            _dir: dir,
            app,
            realm,
            errors,
        }
    }

    fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    fn write(&self, id: i64) {
        self.realm.begin_write().unwrap();
        let task = self
            .realm
            .create_object("Task", Some(&Value::Int(id)))
            .unwrap();
        task.set("title", format!("task {id}")).unwrap();
        self.realm.commit().unwrap();
    }

    fn tasks(&self) -> usize {
        self.realm.refresh().unwrap();
        self.realm.objects("Task").unwrap().count().unwrap()
    }
}

/// Honest clients never notice: with access tokens living 3 s, two devices sync for several
/// token lives (renewing ahead of expiry), and logging one out (which revokes its refresh
/// token and so ends its sessions on the server) reports nothing to it and leaves the other
/// syncing.
#[test]
fn honest_clients_renew_their_tokens_and_log_out_without_an_error() {
    let server = TestServer::binary(&["--access-token-ttl", "3"]);
    let a = Device::new(&server, true);
    let b = Device::new(&server, false);
    let wait = Duration::from_secs(30);
    let started = Instant::now();
    let mut id = 0;
    while started.elapsed() < Duration::from_secs(7) {
        id += 1;
        a.write(id);
        std::thread::sleep(Duration::from_millis(200));
    }
    let session_a = a.realm.session().unwrap();
    let session_b = b.realm.session().unwrap();
    session_a.wait_for_upload(wait).unwrap();
    session_b.wait_for_download(wait).unwrap();
    assert_eq!(b.tasks(), usize::try_from(id).unwrap());
    assert_eq!(a.errors(), Vec::<String>::new());
    assert_eq!(b.errors(), Vec::<String>::new());

    // A logs out: its refresh token is revoked in the background.
    let user = a.app.current_user().unwrap().unwrap();
    user.logout();
    let deadline = Instant::now() + wait;
    while server
        .stderr()
        .lines()
        .all(|l| !l.contains("revoked a refresh token"))
    {
        assert!(Instant::now() < deadline, "never revoked");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(a.errors(), Vec::<String>::new());
    b.write(1000);
    session_b.wait_for_upload(wait).unwrap();
    assert_eq!(b.errors(), Vec::<String>::new());
}

// ---- changesets in parts (issue 13) ----------------------------------------------------------

const MIB: usize = 1024 * 1024;

/// An UPLOAD_PART of `len` bytes of a `total`-byte changeset.
fn part(session: u64, total: u64, len: usize) -> Message {
    Message::UploadPart {
        session,
        total_bytes: total,
        data: vec![7; len],
    }
}

/// A connection with session 1 bound on `PATH` and its first UPLOAD done.
async fn bound(server: &TestServer, token: &str) -> Client {
    let mut c = Client::connect(server.addr).await;
    c.bind_new(1, PATH, token).await;
    c.upload(1, 0, vec![]).await;
    c.sync_to_mark(1, 1).await;
    c
}

/// Everything sent so far was handled without an answer: a MARK comes straight back.
async fn no_answer_yet(c: &mut Client, request: u64) {
    c.send(&Message::Mark {
        session: 1,
        request,
    })
    .await;
    assert_eq!(
        c.recv().await,
        Message::Mark {
            session: 1,
            request
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changeset_larger_than_a_message_goes_up_and_down_in_parts() {
    let server = debug_server(&[]);
    let (_, token) = login(&server, "alice", PATH);
    let mut a = Honest::new(&server, &token).await;
    let mut b = Honest::new(&server, &token).await;
    a.write(0, "the schema and a small task first").await;
    // One transaction of 20 MB: more than a whole message may carry.
    let title = "p".repeat(20 * MIB);
    a.replica.task(1, &title, 0);
    let mut pending = a.replica.pending();
    assert_eq!(pending.len(), 1);
    let mut big = pending.remove(0);
    assert!(big.data.len() > MAX_MESSAGE_BYTES);
    let (total, parts) = take_parts(&mut big.data);
    assert_eq!(parts.len(), 20);
    for data in parts {
        a.client
            .send(&Message::UploadPart {
                session: 1,
                total_bytes: total,
                data,
            })
            .await;
    }
    let version = big.client_version;
    a.client.upload(1, a.server_version, vec![big]).await;
    let got = a.client.until_acked(1, version).await;
    a.take(&got);
    // The other client gets it in DOWNLOAD_PARTs (joined by its connection) and converges.
    let got = b.catch_up(2).await;
    assert_eq!(got.changesets.len(), 3);
    assert_eq!(got.changesets[2].data.len() as u64, total);
    assert_eq!(b.client.parts_received, 20);
    assert_eq!(b.replica.dump(), a.replica.dump());
    // And a small write after it syncs as usual.
    a.write(2, "small").await;
    b.catch_up(3).await;
    assert_eq!(b.replica.dump(), a.replica.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_parts_get_an_error_before_the_server_buffers_them() {
    // A part budget of 3 MiB for the whole server.
    let server = debug_server(&["--sync-part-buffer", "3"]);
    let (_, token) = login(&server, "alice", PATH);
    let huge = 100 * MIB as u64;

    // No session bound (no token): nothing is buffered, the connection closes.
    let mut c = Client::connect(server.addr).await;
    c.send(&part(1, huge, MIB)).await;
    assert_eq!(session_error(c.recv().await), (0, 106, false));
    assert!(c.recv_or_close().await.is_none());

    // A session whose BIND failed (a forged token) has ended: its parts are dropped.
    let mut c = Client::connect(server.addr).await;
    c.bind(1, PATH, "not-a-token", 0, 0).await;
    assert_eq!(session_error(c.recv().await), (1, 203, false));
    c.send(&part(1, huge, MIB)).await;
    assert_eq!(c.recv_within(Duration::from_millis(500)).await, None);

    // Bound, but before the session's first UPLOAD.
    let mut c = Client::connect(server.addr).await;
    c.bind_new(1, PATH, &token).await;
    c.send(&part(1, huge, MIB)).await;
    assert_eq!(session_error(c.recv().await), (0, 109, false));

    // A changeset announced beyond the protocol's limit: refused at its first part.
    let mut c = bound(&server, &token).await;
    c.send(&part(1, MAX_CHANGESET_BYTES as u64 + 1, 1)).await;
    assert_eq!(session_error(c.recv().await), (0, 104, false));
    assert!(c.recv_or_close().await.is_none());

    // Parts that never end their changeset: refused at the part that would reach its total.
    let mut c = bound(&server, &token).await;
    c.send(&part(1, 2 * MIB as u64, MIB)).await;
    no_answer_yet(&mut c, 2).await;
    c.send(&part(1, 2 * MIB as u64, MIB)).await;
    assert_eq!(session_error(c.recv().await), (0, 103, false));
    // Parts of another total, and an UPLOAD that does not end them exactly.
    let mut c = bound(&server, &token).await;
    c.send(&part(1, 2 * MIB as u64, MIB)).await;
    c.send(&part(1, 3 * MIB as u64, 1)).await;
    assert_eq!(session_error(c.recv().await), (0, 103, false));
    let mut c = bound(&server, &token).await;
    c.send(&part(1, 2 * MIB as u64, MIB)).await;
    c.upload(1, 0, vec![]).await;
    assert_eq!(session_error(c.recv().await), (0, 103, false));

    // Within its total but beyond the server's budget: the session ends (try again later),
    // its parts are dropped, the connection goes on.
    let mut c = bound(&server, &token).await;
    for _ in 0..3 {
        c.send(&part(1, huge, MIB)).await;
    }
    no_answer_yet(&mut c, 2).await;
    c.send(&part(1, huge, MIB)).await;
    assert_eq!(session_error(c.recv().await), (1, 201, true));
    c.send(&part(1, huge, MIB)).await;
    assert_eq!(c.recv_within(Duration::from_millis(500)).await, None);
    // The budget is the server's, across connections: one connection holding it all leaves
    // nothing for another; once its session ends, the other gets it.
    let mut holder = bound(&server, &token).await;
    for _ in 0..3 {
        holder.send(&part(1, huge, MIB)).await;
    }
    no_answer_yet(&mut holder, 2).await;
    let mut other = bound(&server, &token).await;
    other.send(&part(1, huge, 1)).await;
    assert_eq!(session_error(other.recv().await), (1, 201, true));
    holder.send(&Message::Unbind { session: 1 }).await;
    no_answer_yet_on(&mut holder).await;
    let mut other = bound(&server, &token).await;
    for _ in 0..3 {
        other.send(&part(1, huge, MIB)).await;
    }
    no_answer_yet(&mut other, 2).await;
    // An honest client is still served: a small write syncs.
    drop(other);
    let mut honest = Honest::new(&server, &token).await;
    honest.write(1, "still here").await;
}

/// After an UNBIND the session's messages are dropped: a PING's PONG shows the server has
/// handled everything before it.
async fn no_answer_yet_on(c: &mut Client) {
    c.send(&Message::Ping { timestamp: 9 }).await;
    assert_eq!(c.recv().await, Message::Pong { timestamp: 9 });
}

#[tokio::test(flavor = "multi_thread")]
async fn parts_need_a_token_that_has_not_expired() {
    let server = debug_server(&["--access-token-ttl", "3"]);
    let (_, token) = login(&server, "alice", PATH);
    let expires = token_data(&token).expires;
    let mut c = bound(&server, &token).await;
    c.send(&part(1, 4 * MIB as u64, MIB)).await;
    no_answer_yet(&mut c, 2).await;
    sleep_until_unix(expires).await;
    // Every message's token is checked: the next part ends the session (and drops its parts).
    c.send(&part(1, 4 * MIB as u64, MIB)).await;
    assert_eq!(session_error(c.recv().await), (1, 202, true));
}

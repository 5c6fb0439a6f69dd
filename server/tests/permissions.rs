//! Sharing realms between users (issue 12), end to end: real servers (in-process on a
//! loopback port, or the binary for the crash tests), real clients (`shoal::App` users with
//! synced realms, and raw WebSocket clients where a client must misbehave).
//!
//! Each user writes `PermissionOffer`, `PermissionOfferResponse` and `PermissionChange`
//! objects into its management realm `/~/__management` with the seed's schema, declared here
//! as an application would; the server answers in the same objects.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sync_client::Client;
use common::{TestServer, APP_ID};
use serde_json::Value as Json;
use shoal::protocol::sync::{Message, SessionErrorCode as Sess, UploadChangeset};
use shoal::{
    App, Config, Credentials, ErrorCode, PropertyFlags as F, PropertyType as T, Realm, Schema,
    SessionState, SyncConfig, SyncError, Timestamp, User, Value,
};

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "pw";
const OFFER: &str = "PermissionOffer";
const RESPONSE: &str = "PermissionOfferResponse";
const CHANGE: &str = "PermissionChange";

// ---- helpers ------------------------------------------------------------------------------

/// A device: an app in its own directory, with one logged-in user.
struct Device {
    name: String,
    user: User,
    /// Keeps the user's sessions running.
    _app: App,
    _dir: tempfile::TempDir,
}

impl Device {
    /// Registers `name` (or logs it in) against the auth service at `auth`, retrying while a
    /// server is starting.
    fn new(auth: &str, name: &str, register: bool) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), APP_ID).unwrap();
        let credentials = Credentials::password(name, PASSWORD, register).unwrap();
        let deadline = Instant::now() + WAIT;
        let user = loop {
            match app.login(&credentials, auth) {
                Ok(user) => break user,
                Err(e) if e.code() == ErrorCode::Io && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("login {name}: {e}"),
            }
        };
        Device {
            name: name.to_owned(),
            user,
            _app: app,
            _dir: dir,
        }
    }

    fn id(&self) -> String {
        self.user.identity().to_owned()
    }
}

/// A fresh user name.
fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn auth_url(server: &TestServer) -> String {
    server.url("/auth")
}

fn realm_url(addr: std::net::SocketAddr, path: &str) -> String {
    format!("realm://{addr}{path}")
}

/// The seed's `PermissionModule`, exactly.
fn management_schema() -> Schema {
    let mut s = Schema::new();
    let base = |s: &mut Schema, class: &str| {
        s.add_class(class, Some("id")).unwrap();
        s.add_property(class, "id", T::String, F::NONE, None)
            .unwrap();
        s.add_property(class, "createdAt", T::Timestamp, F::NONE, None)
            .unwrap();
        s.add_property(class, "updatedAt", T::Timestamp, F::NONE, None)
            .unwrap();
        s.add_property(class, "statusCode", T::Int, F::NULLABLE, None)
            .unwrap();
        s.add_property(class, "statusMessage", T::String, F::NULLABLE, None)
            .unwrap();
    };
    base(&mut s, OFFER);
    s.add_property(OFFER, "token", T::String, F::NULLABLE | F::INDEXED, None)
        .unwrap();
    s.add_property(OFFER, "realmUrl", T::String, F::NONE, None)
        .unwrap();
    for level in ["mayRead", "mayWrite", "mayManage"] {
        s.add_property(OFFER, level, T::Bool, F::NONE, None)
            .unwrap();
    }
    s.add_property(OFFER, "expiresAt", T::Timestamp, F::NULLABLE, None)
        .unwrap();
    base(&mut s, RESPONSE);
    s.add_property(RESPONSE, "token", T::String, F::NONE, None)
        .unwrap();
    s.add_property(RESPONSE, "realmUrl", T::String, F::NULLABLE, None)
        .unwrap();
    base(&mut s, CHANGE);
    s.add_property(CHANGE, "realmUrl", T::String, F::NONE, None)
        .unwrap();
    s.add_property(CHANGE, "userId", T::String, F::NONE, None)
        .unwrap();
    for level in ["mayRead", "mayWrite", "mayManage"] {
        s.add_property(CHANGE, level, T::Bool, F::NULLABLE, None)
            .unwrap();
    }
    s
}

/// `Dog {name: string, age: int}` (no primary key), as in Realm's tests.
fn dog_schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Dog", None).unwrap();
    s.add_property("Dog", "name", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Dog", "age", T::Int, F::NONE, None).unwrap();
    s
}

/// Every sync error of one realm.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<SyncError>>>);

impl Errors {
    fn all(&self) -> Vec<SyncError> {
        self.0.lock().unwrap().clone()
    }
}

fn synced(user: &User, url: &str, schema: Schema, errors: &Errors) -> Realm {
    let mut sync = SyncConfig::new(user, url).unwrap();
    let errors = errors.clone();
    sync.set_error_handler(move |_, e| errors.0.lock().unwrap().push(e.clone()));
    let mut config = Config::new("unused");
    config.set_schema(schema).unwrap();
    config.set_sync(sync);
    Realm::open(&config).unwrap()
}

/// A device's management realm `/~/__management`.
fn management(device: &Device, addr: std::net::SocketAddr) -> Realm {
    let url = realm_url(addr, "/~/__management");
    synced(&device.user, &url, management_schema(), &Errors::default())
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn now() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    Timestamp::new(since.as_secs() as i64, 0)
}

/// Creates a management object of `class` with the base fields and `fields`; returns its id.
fn request(realm: &Realm, class: &str, fields: &[(&str, Value)]) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let id = format!(
        "{class}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    realm.begin_write().unwrap();
    let object = realm
        .create_object(class, Some(&Value::String(id.clone())))
        .unwrap();
    object.set("createdAt", Value::Timestamp(now())).unwrap();
    object.set("updatedAt", Value::Timestamp(now())).unwrap();
    for (name, value) in fields {
        object.set(name, value.clone()).unwrap();
    }
    realm.commit().unwrap();
    id
}

fn offer(realm: &Realm, url: &str, levels: [bool; 3], expires: Option<Timestamp>) -> String {
    request(
        realm,
        OFFER,
        &[
            ("realmUrl", Value::String(url.into())),
            ("mayRead", Value::Bool(levels[0])),
            ("mayWrite", Value::Bool(levels[1])),
            ("mayManage", Value::Bool(levels[2])),
            ("expiresAt", expires.map_or(Value::Null, Value::Timestamp)),
        ],
    )
}

fn respond(realm: &Realm, token: &str) -> String {
    request(realm, RESPONSE, &[("token", Value::String(token.into()))])
}

fn change(realm: &Realm, url: &str, user: &str, levels: [Option<bool>; 3]) -> String {
    let level = |v: Option<bool>| v.map_or(Value::Null, Value::Bool);
    request(
        realm,
        CHANGE,
        &[
            ("realmUrl", Value::String(url.into())),
            ("userId", Value::String(user.into())),
            ("mayRead", level(levels[0])),
            ("mayWrite", level(levels[1])),
            ("mayManage", level(levels[2])),
        ],
    )
}

/// The server's answer in an object: `statusCode`, `statusMessage`, and the offer's `token`
/// or the response's `realmUrl`.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    code: i64,
    message: Option<String>,
    value: Option<String>,
}

/// Waits until the server has answered object `id` of `class`.
fn answer(realm: &Realm, class: &str, id: &str) -> Answer {
    let mut found = None;
    wait_until(&format!("the answer to {class} {id}"), || {
        realm.refresh().unwrap();
        let Some(object) = realm.find_object(class, &Value::String(id.into())).unwrap() else {
            return false;
        };
        let Value::Int(code) = object.get("statusCode").unwrap() else {
            return false;
        };
        let text = |name: &str| match object.get(name).unwrap() {
            Value::String(s) => Some(s),
            _ => None,
        };
        let value = match class {
            OFFER => text("token"),
            RESPONSE => text("realmUrl"),
            _ => None,
        };
        found = Some(Answer {
            code,
            message: text("statusMessage"),
            value,
        });
        true
    });
    found.unwrap()
}

/// Asserts a successful answer and returns its value.
#[track_caller]
fn succeeded(answer: Answer) -> Option<String> {
    assert_eq!((answer.code, &answer.message), (0, &None), "{answer:?}");
    answer.value
}

#[track_caller]
fn failed(answer: &Answer, code: ErrorCode) {
    assert_eq!(answer.code, code as i64, "{answer:?}");
    assert!(answer.message.is_some(), "{answer:?}");
    assert_eq!(answer.value, None, "{answer:?}");
}

/// The access of a new access token for `path` (`POST /auth`, provider `realm`; the client
/// caches the tokens it got, so this asks the server itself), or the auth error's code.
fn access(device: &Device, path: &str) -> Result<Vec<String>, ErrorCode> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = serde_json::json!({"provider": "realm", "app_id": APP_ID, "path": path,
        "data": device.user.refresh_token().unwrap(), "user_info": {}});
    let mut response = agent
        .post(&device.user.auth_url())
        .send_json(&body)
        .unwrap();
    let answer: Json = response.body_mut().read_json().unwrap();
    match response.status().as_u16() {
        200 => {
            let token = answer["access_token"]["token_data"]["access"].clone();
            Ok(serde_json::from_value(token).unwrap())
        }
        _ => {
            let code = i32::try_from(answer["code"].as_i64().unwrap()).unwrap();
            Err(ErrorCode::from_code(code).unwrap())
        }
    }
}

/// `GET /auth/permissions` for a device's user.
fn shared_with(server: &TestServer, device: &Device) -> Json {
    let refresh = device.user.refresh_token().unwrap();
    let (status, body) = server.get("/auth/permissions", Some(&refresh));
    assert_eq!(status, 200, "{body}");
    body
}

fn dogs(realm: &Realm) -> usize {
    realm.refresh().unwrap();
    realm.objects("Dog").unwrap().count().unwrap()
}

fn add_dog(realm: &Realm, name: &str) {
    realm.begin_write().unwrap();
    let dog = realm.create_object("Dog", None).unwrap();
    dog.set("name", Value::String(name.into())).unwrap();
    realm.commit().unwrap();
}

fn upload_and_download(realm: &Realm) {
    let session = realm.session().unwrap();
    session.wait_for_upload(WAIT).unwrap();
    session.wait_for_download(WAIT).unwrap();
    realm.refresh().unwrap();
}

/// User 1's realm with one `Dog`, uploaded: its path and URL.
fn realm_with_a_dog(server: &TestServer, owner: &Device, name: &str) -> (Realm, String, String) {
    let path = format!("/{}/{name}", owner.id());
    let url = realm_url(server.addr, &path);
    let realm = synced(&owner.user, &url, dog_schema(), &Errors::default());
    add_dog(&realm, "fido");
    upload_and_download(&realm);
    (realm, path, url)
}

/// Offers `levels` of `url` from `owner`'s management realm and accepts the offer from
/// `grantee`'s; returns the token.
fn share(
    server: &TestServer,
    owner: &Device,
    grantee: &Device,
    url: &str,
    levels: [bool; 3],
) -> String {
    let owner_management = management(owner, server.addr);
    let id = offer(&owner_management, url, levels, None);
    let token = succeeded(answer(&owner_management, OFFER, &id)).expect("a token");
    let grantee_management = management(grantee, server.addr);
    let id = respond(&grantee_management, &token);
    assert_eq!(
        succeeded(answer(&grantee_management, RESPONSE, &id)).as_deref(),
        Some(url)
    );
    token
}

// ---- the seed's flow ----------------------------------------------------------------------

/// `ManagementRealmTests.create_acceptOffer`: user1 writes a `Dog` into
/// `/~/permission-offer-test`, offers read and write; user2 accepts by token and sees the
/// `Dog` in its own local copy; then both edit and converge.
#[test]
fn create_accept_offer_shares_a_realm_and_both_users_converge() {
    let server = TestServer::start();
    let auth = auth_url(&server);
    let user1 = Device::new(&auth, &unique("user1"), true);
    let user2 = Device::new(&auth, &unique("user2"), true);
    let (realm1, path, url) = realm_with_a_dog(&server, &user1, "permission-offer-test");

    // Not shared yet: no access token, nothing shared with user2.
    assert_eq!(access(&user2, &path), Err(ErrorCode::AccessDenied));
    assert_eq!(
        shared_with(&server, &user2)["permissions"],
        serde_json::json!([])
    );
    assert_eq!(
        access(&user1, &path).unwrap(),
        ["download", "upload", "manage"]
    );

    let management1 = management(&user1, server.addr);
    let offer_id = offer(&management1, &url, [true, true, false], None);
    let token = succeeded(answer(&management1, OFFER, &offer_id)).expect("a token");
    assert_eq!(token.len(), 43, "256 random bits, base64url");
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

    let management2 = management(&user2, server.addr);
    let response_id = respond(&management2, &token);
    let answered = succeeded(answer(&management2, RESPONSE, &response_id));
    assert_eq!(answered.as_deref(), Some(url.as_str()));

    // user2 opens user1's URL with its own configuration: its own local copy, with the Dog.
    let errors2 = Errors::default();
    let realm2 = synced(&user2.user, &url, dog_schema(), &errors2);
    assert_ne!(realm2.path(), realm1.path());
    realm2.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(dogs(&realm2), 1);
    assert_eq!(access(&user2, &path).unwrap(), ["download", "upload"]);
    assert_eq!(
        shared_with(&server, &user2)["permissions"],
        serde_json::json!([{"path": path, "may_read": true, "may_write": true,
            "may_manage": false}])
    );
    assert_eq!(
        shared_with(&server, &user1)["permissions"],
        serde_json::json!([])
    );

    // Both edit the same Dog and add their own; both converge.
    realm2.begin_write().unwrap();
    let dog = realm2.objects("Dog").unwrap().get(0).unwrap();
    dog.set("name", Value::String("rex".into())).unwrap();
    realm2
        .create_object("Dog", None)
        .unwrap()
        .set("name", "from user2")
        .unwrap();
    realm2.commit().unwrap();
    realm1.begin_write().unwrap();
    let dog = realm1.objects("Dog").unwrap().get(0).unwrap();
    dog.set("age", 7).unwrap();
    realm1
        .create_object("Dog", None)
        .unwrap()
        .set("name", "from user1")
        .unwrap();
    realm1.commit().unwrap();
    for _ in 0..2 {
        upload_and_download(&realm2);
        upload_and_download(&realm1);
    }
    assert_eq!(dogs(&realm1), 3);
    assert_eq!(realm1.dump_json().unwrap(), realm2.dump_json().unwrap());
    let named_rex = realm1
        .query("Dog", "name == 'rex' AND age == 7", &[])
        .unwrap();
    assert_eq!(named_rex.count().unwrap(), 1);
    assert!(errors2.all().is_empty(), "{:?}", errors2.all());
}

// ---- read-only grants ---------------------------------------------------------------------

/// A read-only grantee receives changes; an upload it forges with a raw client is refused
/// with `PERMISSION_DENIED` and changes nothing of the owner's data.
#[test]
fn a_read_only_grant_receives_changes_and_a_forged_upload_is_refused() {
    let server = TestServer::start();
    let auth = auth_url(&server);
    let owner = Device::new(&auth, &unique("owner"), true);
    let reader = Device::new(&auth, &unique("reader"), true);
    let (realm, path, url) = realm_with_a_dog(&server, &owner, "read-only");
    share(&server, &owner, &reader, &url, [true, false, false]);
    assert_eq!(access(&reader, &path).unwrap(), ["download"]);
    let token = reader.user.access_token(&path).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = Client::connect(server.addr).await;
        client.bind_new(1, &path, &token.token).await;
        client.upload(1, 0, vec![]).await;
        let first = client.sync_to_mark(1, 1).await;
        assert!(!first.changesets.is_empty(), "the owner's Dog comes down");

        // The owner writes on: the reader receives it.
        add_dog(&realm, "second");
        realm.session().unwrap().wait_for_upload(WAIT).unwrap();
        let more = client.sync_to_mark(1, 2).await;
        assert_eq!(more.changesets.len(), 1);

        // A forged upload: a real changeset creating a Dog, from a replica of the reader's.
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().join("forged.realm").to_string_lossy());
        config.set_schema(dog_schema()).unwrap();
        config.set_merge_metadata(true);
        let forged = Realm::open(&config).unwrap();
        add_dog(&forged, "forged");
        let changesets: Vec<UploadChangeset> = forged
            .local_changesets_since(0)
            .unwrap()
            .into_iter()
            .map(|(version, data)| UploadChangeset {
                client_version: version,
                stamp: shoal::changeset_header(&data).unwrap().0,
                data,
            })
            .collect();
        client.upload(1, more.server_version, changesets).await;
        match client.recv().await {
            Message::Error { session, code, .. } => {
                assert_eq!((session, code), (1, Sess::PermissionDenied as i32));
            }
            other => panic!("expected PERMISSION_DENIED, got {other:?}"),
        }
    });

    // Nothing of it reached the owner, nor a new device of the owner's downloading it all.
    upload_and_download(&realm);
    assert_eq!(dogs(&realm), 2);
    assert_eq!(
        realm
            .query("Dog", "name == 'forged'", &[])
            .unwrap()
            .count()
            .unwrap(),
        0
    );
    let fresh = Device::new(&auth, &owner.name, false);
    let copy = synced(&fresh.user, &url, dog_schema(), &Errors::default());
    copy.session().unwrap().wait_for_download(WAIT).unwrap();
    copy.refresh().unwrap();
    assert_eq!(copy.dump_json().unwrap(), realm.dump_json().unwrap());
}

// ---- PermissionChange ---------------------------------------------------------------------

/// `userId = "*"` sets the grant to everyone (and every user's own grant), `realmUrl = "*"`
/// every realm the user manages; null levels keep the current ones; an unknown user is 612;
/// the owner's own access never changes.
#[test]
fn permission_changes_for_every_user_and_every_realm() {
    let server = TestServer::start();
    let auth = auth_url(&server);
    let owner = Device::new(&auth, &unique("owner"), true);
    let second = Device::new(&auth, &unique("second"), true);
    let third = Device::new(&auth, &unique("third"), true);
    let (_a, path_a, url_a) = realm_with_a_dog(&server, &owner, "everyone-a");
    let (_b, path_b, _) = realm_with_a_dog(&server, &owner, "everyone-b");
    let m = management(&owner, server.addr);
    let applied = |url: &str, user: &str, levels| {
        let id = change(&m, url, user, levels);
        succeeded(answer(&m, CHANGE, &id));
    };

    applied(&url_a, "*", [Some(true), Some(false), None]);
    for user in [&second, &third] {
        assert_eq!(access(user, &path_a).unwrap(), ["download"]);
        assert_eq!(access(user, &path_b), Err(ErrorCode::AccessDenied));
    }
    assert_eq!(
        shared_with(&server, &third)["permissions"],
        serde_json::json!([{"path": path_a, "may_read": true, "may_write": false,
            "may_manage": false}])
    );

    // One user's own grant adds to everyone's.
    applied(&url_a, &second.id(), [None, Some(true), None]);
    assert_eq!(access(&second, &path_a).unwrap(), ["download", "upload"]);
    assert_eq!(access(&third, &path_a).unwrap(), ["download"]);

    // Read revoked for everyone: the grant to everyone and every user's own grant.
    applied(&url_a, "*", [Some(false), None, None]);
    assert_eq!(access(&second, &path_a), Err(ErrorCode::AccessDenied));
    assert_eq!(access(&third, &path_a), Err(ErrorCode::AccessDenied));

    // Every realm the owner manages, for one user; never its management realm.
    applied("*", &third.id(), [Some(true), Some(true), None]);
    for path in [&path_a, &path_b] {
        assert_eq!(access(&third, path).unwrap(), ["download", "upload"]);
    }
    let management_path = format!("/{}/__management", owner.id());
    assert_eq!(
        access(&third, &management_path),
        Err(ErrorCode::AccessDenied)
    );
    assert_eq!(access(&second, &path_b), Err(ErrorCode::AccessDenied));

    // An unknown user; the owner itself (always every level).
    let id = change(&m, &url_a, "no-such-user", [Some(true), None, None]);
    failed(&answer(&m, CHANGE, &id), ErrorCode::UnknownAccount);
    applied(&url_a, &owner.id(), [Some(false), Some(false), Some(false)]);
    assert_eq!(
        access(&owner, &path_a).unwrap(),
        ["download", "upload", "manage"]
    );
}

/// Revoking write access makes the grantee's next upload fail (nothing of it is kept);
/// revoking read access ends its live session at once and it gets no access token again.
#[test]
fn revoking_write_refuses_uploads_and_revoking_read_ends_a_live_session() {
    let server = TestServer::start();
    let auth = auth_url(&server);
    let owner = Device::new(&auth, &unique("owner"), true);
    let grantee = Device::new(&auth, &unique("grantee"), true);
    let (realm, path, url) = realm_with_a_dog(&server, &owner, "revoked");
    share(&server, &owner, &grantee, &url, [true, true, false]);
    let m = management(&owner, server.addr);
    let applied = |levels| {
        let id = change(&m, &url, &grantee.id(), levels);
        succeeded(answer(&m, CHANGE, &id));
    };

    let errors = Errors::default();
    let shared = synced(&grantee.user, &url, dog_schema(), &errors);
    upload_and_download(&shared);
    assert_eq!(dogs(&shared), 1);

    applied([None, Some(false), None]);
    add_dog(&shared, "not allowed");
    let session = shared.session().unwrap();
    wait_until("the refused upload", || {
        session.state() == SessionState::Error
    });
    let refused = errors.all();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].code, Sess::PermissionDenied as i32);
    assert!(refused[0].is_fatal);
    upload_and_download(&realm);
    assert_eq!(dogs(&realm), 1, "nothing of the refused upload is kept");
    assert_eq!(access(&grantee, &path).unwrap(), ["download"]);
    drop(shared);

    // Write access back; a new device of the grantee syncs, then loses read access.
    applied([None, Some(true), None]);
    let device = Device::new(&auth, &grantee.name, false);
    let errors = Errors::default();
    let live = synced(&device.user, &url, dog_schema(), &errors);
    upload_and_download(&live);
    assert_eq!(dogs(&live), 1);
    let old_token = device.user.access_token(&path).unwrap().token;
    applied([Some(false), None, None]);
    let session = live.session().unwrap();
    wait_until("the session's end", || {
        session.state() == SessionState::Error
    });
    let ended = errors.all();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0].code, Sess::PermissionDenied as i32);
    assert_eq!(access(&device, &path), Err(ErrorCode::AccessDenied));
    // An access token from before the revocation, still valid, no longer binds.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = Client::connect(server.addr).await;
        client.bind(1, &path, &old_token, 0, 0).await;
        match client.recv().await {
            Message::Error { session, code, .. } => {
                assert_eq!((session, code), (1, Sess::PermissionDenied as i32));
            }
            other => panic!("expected PERMISSION_DENIED, got {other:?}"),
        }
    });
    // The owner is not affected.
    add_dog(&realm, "still mine");
    upload_and_download(&realm);
    assert_eq!(dogs(&realm), 2);
}

// ---- offers that fail -----------------------------------------------------------------------

/// An offer made already expired is 701; so is a response to an offer that expired since.
#[test]
fn an_expired_offer_is_701() {
    let server = TestServer::start();
    let auth = auth_url(&server);
    let owner = Device::new(&auth, &unique("owner"), true);
    let other = Device::new(&auth, &unique("other"), true);
    let (_realm, path, url) = realm_with_a_dog(&server, &owner, "expiring");
    let m = management(&owner, server.addr);

    let past = Timestamp::new(now().seconds - 60, 0);
    let id = offer(&m, &url, [true, false, false], Some(past));
    failed(&answer(&m, OFFER, &id), ErrorCode::ExpiredPermissionOffer);

    let soon = Timestamp::new(now().seconds + 5, 0);
    let id = offer(&m, &url, [true, false, false], Some(soon));
    let token = succeeded(answer(&m, OFFER, &id)).unwrap();
    wait_until("the offer's expiry", || now().seconds > soon.seconds);
    let m2 = management(&other, server.addr);
    let id = respond(&m2, &token);
    failed(
        &answer(&m2, RESPONSE, &id),
        ErrorCode::ExpiredPermissionOffer,
    );
    assert_eq!(access(&other, &path), Err(ErrorCode::AccessDenied));
}

/// A token no offer has is 601. An offer may propose its own token; one that another offer
/// has already is 702 (the token would match two offers), and the token keeps meaning the
/// first offer alone.
#[test]
fn unknown_and_ambiguous_tokens() {
    let server = TestServer::start();
    let auth = auth_url(&server);
    let owner = Device::new(&auth, &unique("owner"), true);
    let other = Device::new(&auth, &unique("other"), true);
    let rival = Device::new(&auth, &unique("rival"), true);
    let (_realm, path, url) = realm_with_a_dog(&server, &owner, "tokens");
    let (_rival_realm, rival_path, rival_url) = realm_with_a_dog(&server, &rival, "tokens");
    let m_other = management(&other, server.addr);

    let id = respond(&m_other, "no-offer-has-this-token");
    failed(
        &answer(&m_other, RESPONSE, &id),
        ErrorCode::InvalidParameters,
    );
    let id = respond(&m_other, "");
    failed(
        &answer(&m_other, RESPONSE, &id),
        ErrorCode::MissingParameters,
    );

    let proposed = "printed-on-a-qr-code-0123456789-abcdefghijk".to_owned();
    assert_eq!(proposed.len(), 43);
    let propose = |m: &Realm, url: &str, token: &str| {
        request(
            m,
            OFFER,
            &[
                ("realmUrl", Value::String(url.into())),
                ("mayRead", Value::Bool(true)),
                ("token", Value::String(token.into())),
            ],
        )
    };
    let m_owner = management(&owner, server.addr);
    let id = propose(&m_owner, &url, &proposed);
    assert_eq!(
        succeeded(answer(&m_owner, OFFER, &id)),
        Some(proposed.clone())
    );
    let m_rival = management(&rival, server.addr);
    let id = propose(&m_rival, &rival_url, &proposed);
    failed(
        &answer(&m_rival, OFFER, &id),
        ErrorCode::AmbiguousPermissionOfferToken,
    );
    let id = propose(&m_rival, &rival_url, "too-short");
    failed(&answer(&m_rival, OFFER, &id), ErrorCode::InvalidParameters);

    let id = respond(&m_other, &proposed);
    assert_eq!(
        succeeded(answer(&m_other, RESPONSE, &id)),
        Some(url.clone())
    );
    assert_eq!(access(&other, &path).unwrap(), ["download"]);
    assert_eq!(access(&other, &rival_path), Err(ErrorCode::AccessDenied));
}

/// Only a manager may share a realm or change its permissions (703 otherwise); management
/// realms are never shared, nor opened by anyone but their owner; a manager's offers stop
/// working when it loses manage access.
#[test]
fn only_managers_may_share_and_management_realms_never_are_703() {
    let server = TestServer::start();
    let auth = auth_url(&server);
    let owner = Device::new(&auth, &unique("owner"), true);
    let manager = Device::new(&auth, &unique("manager"), true);
    let third = Device::new(&auth, &unique("third"), true);
    let fourth = Device::new(&auth, &unique("fourth"), true);
    let (_realm, path, url) = realm_with_a_dog(&server, &owner, "managed");
    let m_manager = management(&manager, server.addr);

    let id = offer(&m_manager, &url, [true, false, false], None);
    failed(
        &answer(&m_manager, OFFER, &id),
        ErrorCode::FileMayNotBeShared,
    );
    let id = change(&m_manager, &url, &third.id(), [Some(true), None, None]);
    failed(
        &answer(&m_manager, CHANGE, &id),
        ErrorCode::FileMayNotBeShared,
    );
    let owners_management = format!("/{}/__management", owner.id());
    let id = offer(&m_manager, &owners_management, [true, false, false], None);
    failed(
        &answer(&m_manager, OFFER, &id),
        ErrorCode::FileMayNotBeShared,
    );
    let id = offer(&m_manager, "/~/__management", [true, true, true], None);
    failed(
        &answer(&m_manager, OFFER, &id),
        ErrorCode::FileMayNotBeShared,
    );
    let m_owner = management(&owner, server.addr);
    let id = change(
        &m_owner,
        "/~/__management",
        &third.id(),
        [Some(true), None, None],
    );
    failed(
        &answer(&m_owner, CHANGE, &id),
        ErrorCode::FileMayNotBeShared,
    );
    assert_eq!(
        access(&manager, &owners_management),
        Err(ErrorCode::AccessDenied)
    );
    let id = offer(&m_owner, "ftp://host/~/managed", [true, false, false], None);
    failed(&answer(&m_owner, OFFER, &id), ErrorCode::InvalidParameters);
    let id = offer(&m_owner, &url, [false, false, false], None);
    failed(&answer(&m_owner, OFFER, &id), ErrorCode::InvalidParameters);

    // Granted manage access, the manager shares and changes permissions.
    share(&server, &owner, &manager, &url, [true, false, true]);
    assert_eq!(access(&manager, &path).unwrap(), ["download", "manage"]);
    share(&server, &manager, &third, &url, [true, true, false]);
    assert_eq!(access(&third, &path).unwrap(), ["download", "upload"]);
    let id = change(&m_manager, &url, &third.id(), [None, Some(false), None]);
    succeeded(answer(&m_manager, CHANGE, &id));
    assert_eq!(access(&third, &path).unwrap(), ["download"]);

    // Its offers end with its manage access.
    let id = offer(&m_manager, &url, [true, false, false], None);
    let token = succeeded(answer(&m_manager, OFFER, &id)).unwrap();
    let id = change(&m_owner, &url, &manager.id(), [None, None, Some(false)]);
    succeeded(answer(&m_owner, CHANGE, &id));
    let m_fourth = management(&fourth, server.addr);
    let id = respond(&m_fourth, &token);
    failed(
        &answer(&m_fourth, RESPONSE, &id),
        ErrorCode::FileMayNotBeShared,
    );
    assert_eq!(access(&fourth, &path), Err(ErrorCode::AccessDenied));
}

/// A management realm whose classes a client declared wrongly: objects whose fields have the
/// wrong type are answered 601; a class the server cannot answer in is left alone; the server
/// goes on serving.
#[test]
fn a_management_realm_with_a_wrong_schema_is_answered_601() {
    let server = TestServer::start();
    let auth = auth_url(&server);
    let user = Device::new(&auth, &unique("user"), true);
    let mut schema = Schema::new();
    schema.add_class(OFFER, Some("id")).unwrap();
    schema
        .add_property(OFFER, "id", T::String, F::NONE, None)
        .unwrap();
    schema
        .add_property(OFFER, "statusCode", T::Int, F::NULLABLE, None)
        .unwrap();
    schema
        .add_property(OFFER, "statusMessage", T::String, F::NULLABLE, None)
        .unwrap();
    schema
        .add_property(OFFER, "token", T::String, F::NULLABLE, None)
        .unwrap();
    schema
        .add_property(OFFER, "realmUrl", T::Int, F::NONE, None)
        .unwrap();
    schema.add_class(CHANGE, Some("id")).unwrap();
    schema
        .add_property(CHANGE, "id", T::String, F::NONE, None)
        .unwrap();
    schema
        .add_property(CHANGE, "statusCode", T::String, F::NULLABLE, None)
        .unwrap();
    let url = realm_url(server.addr, "/~/__management");
    let m = synced(&user.user, &url, schema, &Errors::default());
    m.begin_write().unwrap();
    m.create_object(OFFER, Some(&Value::String("bad".into())))
        .unwrap()
        .set("realmUrl", 7)
        .unwrap();
    m.create_object(CHANGE, Some(&Value::String("unanswerable".into())))
        .unwrap();
    m.commit().unwrap();
    failed(&answer(&m, OFFER, "bad"), ErrorCode::InvalidParameters);
    upload_and_download(&m);
    let change = m
        .find_object(CHANGE, &Value::String("unanswerable".into()))
        .unwrap()
        .unwrap();
    assert_eq!(change.get("statusCode").unwrap(), Value::Null);
    // The same user's own realms still sync.
    let (realm, _, _) = realm_with_a_dog(&server, &user, "after");
    assert_eq!(dogs(&realm), 1);
}

// ---- restarts and crashes -----------------------------------------------------------------

/// The server stopped and started again between the offer and the response: the offer still
/// works, and the grant survives a further restart.
#[test]
fn a_restart_between_offer_and_response_loses_nothing() {
    let server = TestServer::start();
    let auth = auth_url(&server);
    let (owner_name, grantee_name) = (unique("owner"), unique("grantee"));
    let owner = Device::new(&auth, &owner_name, true);
    Device::new(&auth, &grantee_name, true);
    let (realm, path, url) = realm_with_a_dog(&server, &owner, "restarted");
    let m = management(&owner, server.addr);
    let offer_id = offer(&m, &url, [true, true, false], None);
    let token = succeeded(answer(&m, OFFER, &offer_id)).unwrap();
    drop((realm, m, owner));

    let (data, tmp) = server.stop_keeping_data();
    let server = TestServer::start_config(common::config(&data), tmp);
    let grantee = Device::new(&auth_url(&server), &grantee_name, false);
    let m = management(&grantee, server.addr);
    let id = respond(&m, &token);
    let answered = succeeded(answer(&m, RESPONSE, &id)).unwrap();
    assert_eq!(answered, url, "the offer's URL, as it was made");
    let new_url = realm_url(server.addr, &path);
    let shared = synced(&grantee.user, &new_url, dog_schema(), &Errors::default());
    shared.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(dogs(&shared), 1);
    drop((shared, m, grantee));

    let (data, tmp) = server.stop_keeping_data();
    let server = TestServer::start_config(common::config(&data), tmp);
    let grantee = Device::new(&auth_url(&server), &grantee_name, false);
    assert_eq!(access(&grantee, &path).unwrap(), ["download", "upload"]);
    // A new device of the owner downloads the answered offer.
    let owner = Device::new(&auth_url(&server), &owner_name, false);
    let m = management(&owner, server.addr);
    m.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(succeeded(answer(&m, OFFER, &offer_id)), Some(token));
}

/// The real binary, on `listen`, with `abort_at` (`--test-abort-at`); killed when dropped.
struct Binary {
    child: Child,
    addr: String,
}

impl Binary {
    fn spawn(data: &std::path::Path, listen: &str, abort_at: Option<&str>) -> Option<Binary> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shoal-server"));
        command
            .arg("--data")
            .arg(data)
            .args(["--listen", listen, "--insecure-fast-password-hashing"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(point) = abort_at {
            command.args(["--test-abort-at", point]);
        }
        let mut child = command.spawn().expect("spawn shoal-server");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        match line.trim().strip_prefix("listening on ") {
            Some(addr) => Some(Binary {
                child,
                addr: addr.to_owned(),
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// Starts on `listen`, retrying while the port is still taken.
    fn start(data: &std::path::Path, listen: &str, abort_at: Option<&str>) -> Binary {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(binary) = Binary::spawn(data, listen, abort_at) {
                return binary;
            }
            assert!(Instant::now() < deadline, "cannot start on {listen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn socket_addr(&self) -> std::net::SocketAddr {
        self.addr.parse().unwrap()
    }

    /// Waits for the process to abort by itself.
    fn wait_for_abort(mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(status.signal(), Some(6), "aborted (SIGABRT): {status:?}");
                return;
            }
            assert!(Instant::now() < deadline, "the server did not abort");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait (storage closed).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rows of `permissions.redb`'s `offers` made by the offer object `offer_id`, and the rows of
/// `processed` (read with the server stopped).
fn recorded(data: &std::path::Path, offer_id: &str) -> (usize, usize) {
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
    type OfferRow = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        u8,
        i64,
    );
    const OFFERS: TableDefinition<&str, OfferRow> = TableDefinition::new("offers");
    const PROCESSED: TableDefinition<(&str, &str, &str), (i64, &str, &str)> =
        TableDefinition::new("processed");
    let db = redb::Database::open(data.join("permissions.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let offers = txn.open_table(OFFERS).unwrap();
    let mine = offers
        .iter()
        .unwrap()
        .filter(|item| item.as_ref().unwrap().1.value().1 == offer_id)
        .count();
    let processed = txn.open_table(PROCESSED).unwrap().len().unwrap();
    (mine, usize::try_from(processed).unwrap())
}

/// A binary server that will abort at `abort_at`, an owner with a realm holding one `Dog`, and
/// a grantee: where both crash tests start.
struct CrashScene {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    server: Binary,
    listen: String,
    addr: std::net::SocketAddr,
    owner: Device,
    grantee: Device,
    path: String,
    url: String,
    realm: Realm,
}

impl CrashScene {
    fn start(abort_at: &str) -> CrashScene {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let server = Binary::start(&data, "127.0.0.1:0", Some(abort_at));
        let listen = server.addr.clone();
        let addr = server.socket_addr();
        let auth = format!("http://{listen}/auth");
        let owner = Device::new(&auth, &unique("owner"), true);
        let grantee = Device::new(&auth, &unique("grantee"), true);
        let path = format!("/{}/crash", owner.id());
        let url = realm_url(addr, &path);
        let realm = synced(&owner.user, &url, dog_schema(), &Errors::default());
        add_dog(&realm, "fido");
        upload_and_download(&realm);
        CrashScene {
            _tmp: tmp,
            data,
            server,
            listen,
            addr,
            owner,
            grantee,
            path,
            url,
            realm,
        }
    }
}

/// The binary aborts right after it recorded an answer (the offer's token, the response's
/// grant) and before writing it into the management realm: after the restart the recorded
/// answer is written, the same token, one offer, the grant there once.
#[test]
fn a_crash_after_recording_answers_neither_repeats_nor_loses_them() {
    let CrashScene {
        _tmp,
        data,
        server,
        listen,
        addr,
        owner,
        grantee,
        path,
        url,
        realm,
    } = CrashScene::start("permissions-recorded");

    // The offer: recorded, then the server dies before answering.
    let m_owner = management(&owner, addr);
    let offer_id = offer(&m_owner, &url, [true, false, false], None);
    server.wait_for_abort();
    let server = Binary::start(&data, &listen, Some("permissions-recorded"));
    // At the BIND after the restart the recorded answer is written back (nothing is decided
    // again, so the abort point is not reached).
    let token = succeeded(answer(&m_owner, OFFER, &offer_id)).unwrap();

    // The response: the grant recorded, then the server dies again.
    let m_grantee = management(&grantee, addr);
    let response_id = respond(&m_grantee, &token);
    server.wait_for_abort();
    let server = Binary::start(&data, &listen, None);
    assert_eq!(
        succeeded(answer(&m_grantee, RESPONSE, &response_id)),
        Some(url.clone())
    );
    assert_eq!(access(&grantee, &path).unwrap(), ["download"]);
    drop((realm, m_owner, m_grantee));
    server.stop();
    assert_eq!(recorded(&data, &offer_id), (1, 2), "one offer, two answers");
}

/// The binary aborts after writing the answers into its copy of the management realm, before
/// logging them: at the restart the copy's unlogged changes are logged, and the clients get
/// the answers.
#[test]
fn a_crash_after_writing_answers_logs_them_at_the_restart() {
    let CrashScene {
        _tmp,
        data,
        server,
        listen,
        addr,
        owner,
        grantee,
        path: _,
        url,
        realm,
    } = CrashScene::start("answers-written");

    let m_owner = management(&owner, addr);
    let offer_id = offer(&m_owner, &url, [true, true, false], None);
    server.wait_for_abort();
    let server = Binary::start(&data, &listen, None);
    let token = succeeded(answer(&m_owner, OFFER, &offer_id)).unwrap();
    let m_grantee = management(&grantee, addr);
    let response_id = respond(&m_grantee, &token);
    succeeded(answer(&m_grantee, RESPONSE, &response_id));
    let shared = synced(&grantee.user, &url, dog_schema(), &Errors::default());
    shared.session().unwrap().wait_for_download(WAIT).unwrap();
    assert_eq!(dogs(&shared), 1);
    drop((realm, shared, m_owner, m_grantee));
    server.stop();
    assert_eq!(recorded(&data, &offer_id), (1, 2));
}

// ---- the client library's own management API ----------------------------------------------

/// The seed's flow through `User::open_management_realm` and the `shoal::management` helpers
/// (not a schema declared by the test), with the grantee opening the shared realm the way a
/// read-only grantee must: read-only, waiting for the initial data. It receives the owner's
/// changes, its local writes are refused, its session stays active, and "shared with me" lists
/// the grant.
#[test]
fn a_read_only_grantee_opens_the_shared_realm_read_only_through_the_client_api() {
    use shoal::management::{self, Access};
    let server = TestServer::start();
    let auth = auth_url(&server);
    let owner = Device::new(&auth, &unique("owner"), true);
    let reader = Device::new(&auth, &unique("reader"), true);
    assert_eq!(
        management::management_schema().to_json(),
        management_schema().to_json(),
        "the library's schema is the seed's"
    );
    let (realm, path, url) = realm_with_a_dog(&server, &owner, "read-only-client");

    let owner_management = owner.user.open_management_realm().unwrap();
    owner_management.begin_write().unwrap();
    let offer = management::create_offer(
        &owner_management,
        &url,
        Access {
            read: true,
            ..Access::default()
        },
        None,
    )
    .unwrap();
    let offer_id = offer.get("id").unwrap();
    owner_management.commit().unwrap();
    let Value::String(offer_id) = offer_id else {
        panic!("a string id")
    };
    let token = succeeded(answer(&owner_management, OFFER, &offer_id)).expect("a token");

    let reader_management = reader.user.open_management_realm().unwrap();
    reader_management.begin_write().unwrap();
    let response = management::create_offer_response(&reader_management, &token).unwrap();
    let Value::String(response_id) = response.get("id").unwrap() else {
        panic!("a string id")
    };
    reader_management.commit().unwrap();
    assert_eq!(
        succeeded(answer(&reader_management, RESPONSE, &response_id)).as_deref(),
        Some(url.as_str())
    );
    let granted = reader.user.granted_permissions().unwrap();
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0].path, path);
    assert!(granted[0].may_read && !granted[0].may_write && !granted[0].may_manage);
    assert!(owner.user.granted_permissions().unwrap().is_empty());

    let errors = Errors::default();
    let mut sync = SyncConfig::new(&reader.user, &url).unwrap();
    sync.set_wait_for_initial_data(Some(WAIT));
    let recorded = errors.clone();
    sync.set_error_handler(move |_, e| recorded.0.lock().unwrap().push(e.clone()));
    let mut config = Config::new("unused");
    config.set_schema(dog_schema()).unwrap();
    config.set_read_only(true);
    config.set_sync(sync);
    let shared = Realm::open(&config).unwrap();
    assert_eq!(
        dogs(&shared),
        1,
        "the owner's Dog came with the initial data"
    );
    add_dog(&realm, "second");
    realm.session().unwrap().wait_for_upload(WAIT).unwrap();
    wait_until("the reader receives the owner's change", || {
        dogs(&shared) == 2
    });
    assert_eq!(
        shared.begin_write().unwrap_err().code(),
        ErrorCode::ReadOnly,
        "local writes are refused"
    );
    let session = shared.session().unwrap();
    assert_eq!(session.state(), SessionState::Active);
    assert!(
        errors.0.lock().unwrap().is_empty(),
        "{:?}",
        errors.0.lock().unwrap()
    );
}

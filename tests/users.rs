//! Users, credentials and the auth client against a real `shoal-server` started in this
//! process on a loopback port (the behaviours of Realm Java's `AuthTests` and
//! `SyncUserTests`). Background events are awaited through channels with deadlines.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use shoal::protocol::auth::{decode_token_unverified, encode_token_string, TokenData};
use shoal::{App, AuthEvent, Credentials, ErrorCategory, ErrorCode, User};

mod common;

use common::server::{agent, closed_port_url, Server, ADMIN_PASSWORD, APP_ID, WAIT};

// ---- apps, users and events ---------------------------------------------------------------

/// An app in a fresh temporary directory.
struct TestApp {
    app: App,
    dir: tempfile::TempDir,
}

fn new_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).expect("app");
    TestApp { app, dir }
}

fn password(name: &str, pw: &str, register: bool) -> Credentials {
    Credentials::password(name, pw, register).unwrap()
}

fn register(app: &App, server: &Server, name: &str) -> User {
    app.login(&password(name, "myPassw0rd", true), &server.auth_url())
        .expect("register")
}

fn admin(app: &App, server: &Server) -> User {
    let admin = app
        .login(
            &password("realm-admin", ADMIN_PASSWORD, false),
            &server.auth_url(),
        )
        .expect("admin login");
    assert!(admin.is_admin() && admin.is_valid());
    admin
}

/// Auth events of an app, as `(identity, event)` on a channel.
struct Events {
    rx: mpsc::Receiver<(String, AuthEvent, std::thread::ThreadId)>,
    _token: shoal::AuthCallbackToken,
}

impl Events {
    fn of(app: &App) -> Events {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let token = app.add_auth_callback(move |user, event| {
            let _ = tx.lock().unwrap().send((
                user.identity().to_owned(),
                event,
                std::thread::current().id(),
            ));
        });
        Events { rx, _token: token }
    }

    /// The next event (fails the test after a deadline).
    #[track_caller]
    fn next(&self) -> (String, AuthEvent) {
        let (identity, event, thread) = self.rx.recv_timeout(WAIT).expect("an auth event");
        assert_ne!(
            thread,
            std::thread::current().id(),
            "callbacks run on a library thread"
        );
        (identity, event)
    }

    /// The next `event` of `identity`, skipping others.
    #[track_caller]
    fn wait_for(&self, identity: &str, event: AuthEvent) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (who, what, _) = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {event:?} for {identity}"));
            if who == identity && what == event {
                return;
            }
        }
    }

    fn try_next(&self, within: Duration) -> Option<(String, AuthEvent)> {
        self.rx.recv_timeout(within).ok().map(|(i, e, _)| (i, e))
    }
}

#[track_caller]
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(result: shoal::Result<T>, code: ErrorCode) -> shoal::Error {
    let e = result.expect_err("an error");
    assert_eq!(e.code(), code, "{e}");
    e
}

fn is_identity(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---- AuthTests ------------------------------------------------------------------------------

#[test]
fn login_of_an_unknown_user_is_invalid_credentials() {
    let server = Server::start();
    let t = new_app();
    let e = assert_code(
        t.app.login(
            &password("IWantToHackYou", "GeneralPassword", false),
            &server.auth_url(),
        ),
        ErrorCode::InvalidCredentials,
    );
    assert_eq!(e.category(), ErrorCategory::Auth);
    assert_eq!(e.raw_code(), 611);
    assert!(t.app.all_users().is_empty());
}

#[test]
fn login_async_calls_back_on_a_library_thread() {
    let server = Server::start();
    let t = new_app();
    let (tx, rx) = mpsc::channel();
    let creds = password("IWantToHackYou", "GeneralPassword", false);
    let sender = tx.clone();
    t.app.login_async(creds, &server.auth_url(), move |result| {
        sender
            .send((
                result.map(|u| u.identity().to_owned()),
                std::thread::current().id(),
            ))
            .unwrap();
    });
    let (result, thread) = rx.recv_timeout(WAIT).unwrap();
    assert_ne!(thread, std::thread::current().id());
    assert_code(result, ErrorCode::InvalidCredentials);

    // A new user, registered asynchronously (login_newUser); a panicking callback is harmless.
    t.app.login_async(
        password("async-user", "pw", true),
        &server.auth_url(),
        move |r| {
            tx.send((
                r.map(|u| u.identity().to_owned()),
                std::thread::current().id(),
            ))
            .unwrap();
        },
    );
    let identity = rx.recv_timeout(WAIT).unwrap().0.expect("registered");
    let user = t.app.user(&identity).expect("stored");
    assert!(user.is_valid() && !user.is_admin());
    assert_eq!(user.auth_url(), server.auth_url());
    t.app
        .login_async(password("x", "y", false), &server.auth_url(), |_| {
            panic!("BOOM (loginAsync_errorHandlerThrows)")
        });
    assert!(register(&t.app, &server, "still-works").is_valid());
}

#[test]
fn register_then_login_gives_the_same_identity() {
    let server = Server::start();
    let t = new_app();
    let user = register(&t.app, &server, "alice");
    assert!(is_identity(user.identity()), "{}", user.identity());
    assert!(user.is_valid() && !user.is_admin());
    assert_eq!(user.auth_url(), server.auth_url());
    let token = user.refresh_token().expect("token");
    let data = decode_token_unverified(&token).unwrap();
    assert_eq!(
        (data.identity.as_str(), data.app_id.as_str()),
        (user.identity(), APP_ID)
    );
    assert_eq!(user.refresh_token_expires(), Some(data.expires));

    let again = t
        .app
        .login(&password("alice", "myPassw0rd", false), &server.auth_url())
        .unwrap();
    assert_eq!(again.identity(), user.identity());
    assert_eq!(again, user);
    assert_ne!(again.refresh_token(), Some(token));
    // Both handles share the state: the first sees the new token too.
    assert_eq!(user.refresh_token(), again.refresh_token());
    assert_code(
        t.app
            .login(&password("alice", "wrong", false), &server.auth_url()),
        ErrorCode::InvalidCredentials,
    );
}

#[test]
fn registering_an_existing_account_is_613() {
    let server = Server::start();
    let t = new_app();
    register(&t.app, &server, "taken");
    let e = assert_code(
        t.app
            .login(&password("taken", "other", true), &server.auth_url()),
        ErrorCode::ExistingAccount,
    );
    assert_eq!(e.raw_code(), 613);
}

#[test]
fn a_user_logs_in_and_out_repeatedly() {
    let server = Server::start();
    let t = new_app();
    let user = register(&t.app, &server, "repeat");
    assert!(user.is_valid());
    user.logout();
    assert!(!user.is_valid());
    for _ in 0..3 {
        let again = t
            .app
            .login(&password("repeat", "myPassw0rd", false), &server.auth_url())
            .unwrap();
        assert!(again.is_valid() && user.is_valid());
        again.logout();
        assert!(!again.is_valid() && !user.is_valid());
        assert_eq!(again.refresh_token(), None);
    }
}

#[test]
fn several_users_are_logged_in_at_once() {
    let server = Server::start();
    let t = new_app();
    let users: Vec<User> = ["u1", "u2", "u3"]
        .iter()
        .map(|n| register(&t.app, &server, n))
        .collect();
    let all = t.app.all_users();
    assert_eq!(all.len(), 3);
    for user in &users {
        assert!(user.is_valid());
        assert_eq!(all[user.identity()], *user);
    }
    let e = assert_code(t.app.current_user(), ErrorCode::MultipleUsersLoggedIn);
    assert!(e.message().contains('3'), "{e}");
    for user in &users {
        user.logout();
    }
    assert!(users.iter().all(|u| !u.is_valid()));
    assert!(t.app.all_users().is_empty());
    assert_eq!(t.app.current_user().unwrap(), None);
}

#[test]
fn logout_invalidates_every_handle_of_the_user() {
    let server = Server::start();
    let t = new_app();
    let events = Events::of(&t.app);
    let user = register(&t.app, &server, "handles");
    assert_eq!(
        events.next(),
        (user.identity().to_owned(), AuthEvent::LoggedIn)
    );
    let current = t.app.current_user().unwrap().expect("current user");
    let by_identity = t.app.user(user.identity()).unwrap();
    let cloned = user.clone();
    assert_eq!(current, user);
    current.logout(); // loggingOutCurrentUserShouldImpactOtherInstances
    for handle in [&user, &current, &by_identity, &cloned] {
        assert!(!handle.is_valid());
        assert_eq!(handle.refresh_token(), None);
    }
    assert_eq!(t.app.current_user().unwrap(), None);
    let known = t
        .app
        .user(user.identity())
        .expect("a logged-out user stays known");
    assert!(!known.is_valid());
    assert!(known.to_json().contains("\"userToken\":null"));
    user.logout(); // again: nothing happens, no second revocation
    let id = user.identity().to_owned();
    assert_eq!(events.next(), (id.clone(), AuthEvent::LoggedOut));
    t.app
        .login(
            &password("handles", "myPassw0rd", false),
            &server.auth_url(),
        )
        .unwrap();
    assert_eq!(events.next(), (id, AuthEvent::LoggedIn));
    assert_eq!(t.app.pending_revocations().unwrap(), 0);
}

#[test]
fn current_user_after_logging_out_one_of_two() {
    let server = Server::start();
    let t = new_app();
    let first = register(&t.app, &server, "first");
    t.app.current_user().unwrap().unwrap().logout();
    assert!(!first.is_valid());
    let second = register(&t.app, &server, "second");
    assert_eq!(t.app.current_user().unwrap(), Some(second.clone()));
    let first = t
        .app
        .login(&password("first", "myPassw0rd", false), &server.auth_url())
        .unwrap();
    assert_code(t.app.current_user(), ErrorCode::MultipleUsersLoggedIn);
    second.logout();
    assert_eq!(t.app.current_user().unwrap(), Some(first));
}

#[test]
fn a_revoked_token_is_refused_and_a_new_login_gets_another_token() {
    let server = Server::start();
    let t = new_app();
    let user = register(&t.app, &server, "revoker");
    let identity = user.identity().to_owned();
    let old_token = user.refresh_token().unwrap();
    assert_eq!(server.access(&old_token, "/~/tasks").0, 200);

    // In the LoggedOut callback (which runs only after the server confirmed), log in again:
    // callbacks may call back into Shoal.
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let app = t.app.clone();
    let url = server.auth_url();
    let _token = t.app.add_auth_callback(move |u, event| {
        if event == AuthEvent::LoggedOut {
            let again = app.login(&password("revoker", "myPassw0rd", false), &url);
            let _ = tx.lock().unwrap().send((u.identity().to_owned(), again));
        }
    });
    user.logout();
    let (who, again) = rx
        .recv_timeout(WAIT)
        .expect("LoggedOut after the revocation");
    assert_eq!(who, identity);
    // The server had revoked the old token before the callback ran.
    assert_eq!(server.access(&old_token, "/~/tasks"), (401, Some(615)));
    let again = again.expect("login again");
    assert_eq!(again.identity(), identity);
    let new_token = again.refresh_token().unwrap();
    assert_ne!(new_token, old_token);
    assert_eq!(
        decode_token_unverified(&new_token).unwrap().identity,
        identity
    );
    assert!(user.is_valid(), "the old handle is valid again");
    assert_eq!(server.access(&new_token, "/~/tasks").0, 200);
    assert_eq!(t.app.pending_revocations().unwrap(), 0);
}

#[test]
fn logged_out_fires_only_after_the_server_confirms_and_network_errors_are_retried() {
    let server = Server::start();
    let t = new_app();
    let events = Events::of(&t.app);
    let user = register(&t.app, &server, "patient");
    assert_eq!(
        events.next(),
        (user.identity().to_owned(), AuthEvent::LoggedIn)
    );
    let token = user.refresh_token().unwrap();

    let stopped = server.stopped();
    let started = Instant::now();
    user.logout();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "logout does not wait"
    );
    assert!(!user.is_valid());
    assert_eq!(t.app.pending_revocations().unwrap(), 1);
    // While the server is down the revocation fails (connection refused) and is retried: no
    // LoggedOut yet.
    assert_eq!(events.try_next(Duration::from_millis(700)), None);
    assert_eq!(t.app.pending_revocations().unwrap(), 1);

    let server = stopped.restart();
    assert_eq!(
        events.next(),
        (user.identity().to_owned(), AuthEvent::LoggedOut)
    );
    assert_eq!(server.access(&token, "/~/tasks"), (401, Some(615)));
    wait_until("the revocation leaves the store", || {
        t.app.pending_revocations().unwrap() == 0
    });
}

#[test]
fn logging_out_an_already_revoked_or_expired_token_counts_as_confirmed() {
    // LogoutResponse.isValid(): 615 from /auth/revoke is a successful logout.
    let server = Server::start_with(|c| c.refresh_token_ttl = 2);
    let t = new_app();
    let events = Events::of(&t.app);
    let revoked = register(&t.app, &server, "revoked-elsewhere");
    let token = revoked.refresh_token().unwrap();
    let body = json!({ "token": token });
    let answer = agent()
        .post(&format!("{}/revoke", server.auth_url()))
        .header("Authorization", &token)
        .content_type("application/json")
        .send(serde_json::to_vec(&body).unwrap())
        .unwrap();
    assert_eq!(answer.status().as_u16(), 204);
    revoked.logout();
    events.wait_for(revoked.identity(), AuthEvent::LoggedOut);

    let expired = register(&t.app, &server, "expired");
    wait_until("the refresh token expires", || !expired.is_valid());
    expired.logout();
    events.wait_for(expired.identity(), AuthEvent::LoggedOut);
    wait_until("no revocation is owed", || {
        t.app.pending_revocations().unwrap() == 0
    });
}

#[test]
fn a_refused_revocation_is_final_and_sends_no_logged_out() {
    let server = Server::start();
    let t = new_app();
    let events = Events::of(&t.app);
    // A well-formed token this server did not sign: the revocation is refused with 611.
    let data = TokenData {
        identity: "forged".into(),
        path: None,
        expires: i64::MAX / 2,
        access: vec!["refresh".into()],
        is_admin: false,
        app_id: APP_ID.into(),
        token_id: Some("0".repeat(32)),
        refresh_token_id: None,
    };
    let forged = encode_token_string(&serde_json::to_vec(&data).unwrap(), &[7; 64]);
    let json = json!({"authUrl": server.auth_url(), "userToken": {"token": forged}});
    let user = t.app.user_from_json(&json.to_string()).unwrap();
    assert!(user.is_valid());
    assert_eq!(user.identity(), "forged");
    user.logout();
    wait_until("the refused revocation is dropped", || {
        t.app.pending_revocations().unwrap() == 0
    });
    // Events come in order from one worker: a real user's LoggedOut arriving next proves the
    // forged one sent none.
    let real = register(&t.app, &server, "real");
    assert_eq!(
        events.next(),
        (real.identity().to_owned(), AuthEvent::LoggedIn)
    );
    real.logout();
    assert_eq!(
        events.next(),
        (real.identity().to_owned(), AuthEvent::LoggedOut)
    );
}

#[test]
fn change_password_of_oneself() {
    let server = Server::start();
    let t = new_app();
    let user = register(&t.app, &server, "changer");
    let identity = user.identity().to_owned();
    user.change_password("new-password", None).unwrap();
    user.logout();
    assert_code(
        t.app.login(
            &password("changer", "myPassw0rd", false),
            &server.auth_url(),
        ),
        ErrorCode::InvalidCredentials,
    );
    let again = t
        .app
        .login(
            &password("changer", "new-password", false),
            &server.auth_url(),
        )
        .unwrap();
    assert!(again.is_valid());
    assert_eq!(again.identity(), identity);
    // Naming oneself is the same as no identity.
    again.change_password("third", Some(&identity)).unwrap();
    t.app
        .login(&password("changer", "third", false), &server.auth_url())
        .unwrap();
    // A logged-out user cannot (changePassword_throwWhenUserIsLoggedOut).
    again.logout();
    assert_code(
        again.change_password("fourth", None),
        ErrorCode::ExpiredRefreshToken,
    );
    assert_code(
        again.change_password("", Some("")),
        ErrorCode::InvalidArgument,
    );
}

#[test]
fn an_admin_changes_another_users_password_and_a_user_may_not() {
    let server = Server::start();
    let t = new_app();
    let user = register(&t.app, &server, "victim");
    let other = register(&t.app, &server, "other");
    let admin = admin(&t.app, &server);
    admin
        .change_password("new-password", Some(user.identity()))
        .unwrap();
    user.logout();
    let again = t
        .app
        .login(
            &password("victim", "new-password", false),
            &server.auth_url(),
        )
        .unwrap();
    assert_eq!(again.identity(), user.identity());
    assert_code(
        other.change_password("hacked", Some(user.identity())),
        ErrorCode::AccessDenied,
    );
    assert_code(
        admin.change_password("x", Some("0123456789abcdef0123456789abcdef")),
        ErrorCode::UnknownAccount,
    );
    assert_code(
        admin.change_password("", Some(user.identity())),
        ErrorCode::InvalidParameters,
    );
}

#[test]
fn an_admin_changes_a_password_asynchronously() {
    let server = Server::start();
    let t = new_app();
    let user = register(&t.app, &server, "async-victim");
    let admin = admin(&t.app, &server);
    let (tx, rx) = mpsc::channel();
    admin.change_password_async("new-password", Some(user.identity()), move |result| {
        tx.send((result, std::thread::current().id())).unwrap();
    });
    let (result, thread) = rx.recv_timeout(WAIT).unwrap();
    assert_ne!(thread, std::thread::current().id());
    result.unwrap();
    user.logout();
    let again = t
        .app
        .login(
            &password("async-victim", "new-password", false),
            &server.auth_url(),
        )
        .unwrap();
    assert!(again.is_valid());
    assert_eq!(again.identity(), user.identity());
}

#[test]
fn admins_look_up_users_and_others_may_not() {
    let server = Server::start();
    let t = new_app();
    let user = register(&t.app, &server, "findme");
    let admin = admin(&t.app, &server);
    let info = admin.lookup("password", "findme").unwrap().expect("found");
    assert_eq!(info.identity, user.identity());
    assert_eq!(
        (info.provider.as_str(), info.provider_id.as_str()),
        ("password", "findme")
    );
    assert!(!info.is_admin);
    let json: Json = serde_json::from_str(&info.to_json()).unwrap();
    assert_eq!(
        json,
        json!({"identity": user.identity(), "provider": "password", "provider_id": "findme",
            "is_admin": false})
    );
    let admin_info = admin.lookup("password", "realm-admin").unwrap().unwrap();
    assert!(admin_info.is_admin);
    // Unknown account or provider: None (retrieve_unknownProviderId, retrieve_invalidProvider).
    assert_eq!(admin.lookup("password", "doesNotExist").unwrap(), None);
    assert_eq!(admin.lookup("invalid", "findme").unwrap(), None);
    assert_eq!(admin.lookup("password", "a b/?#%").unwrap(), None);
    // A non-admin may not (retrieve_notAdmin).
    assert_code(user.lookup("password", "findme"), ErrorCode::AccessDenied);
    assert_code(admin.lookup("", "findme"), ErrorCode::InvalidArgument);
    assert_code(admin.lookup("password", ""), ErrorCode::InvalidArgument);
    // After the user's logout was confirmed the admin still finds it (retrieve_logout).
    let events = Events::of(&t.app);
    user.logout();
    events.wait_for(user.identity(), AuthEvent::LoggedOut);
    assert!(!user.is_valid());
    let after = admin.lookup("password", "findme").unwrap().unwrap();
    assert_eq!(after.identity, user.identity());
    // retrieve_async
    let (tx, rx) = mpsc::channel();
    admin.lookup_async("password", "findme", move |r| tx.send(r).unwrap());
    let found = rx.recv_timeout(WAIT).unwrap().unwrap().unwrap();
    assert_eq!(found.identity, user.identity());
    // A logged-out admin cannot look up.
    admin.logout();
    assert_code(
        admin.lookup("password", "findme"),
        ErrorCode::ExpiredRefreshToken,
    );
}

#[test]
fn debug_and_custom_credentials_reach_their_providers() {
    let server = Server::start();
    let t = new_app();
    // UserFactory.createAdminUser: custom("admin", "debug", null).
    let admin = t
        .app
        .login(
            &Credentials::custom("admin", "debug", None).unwrap(),
            &server.auth_url(),
        )
        .unwrap();
    assert_eq!(admin.identity(), "admin");
    assert!(admin.is_admin());
    let john = t
        .app
        .login(&Credentials::debug("JohnDoe"), &server.auth_url())
        .unwrap();
    assert_eq!((john.identity(), john.is_admin()), ("JohnDoe", false));
    // A provider the server does not have: 601.
    let facebook = Credentials::custom("fb-token", "facebook", Some(r#"{"x": 1}"#)).unwrap();
    assert_code(
        t.app.login(&facebook, &server.auth_url()),
        ErrorCode::InvalidParameters,
    );
    // The debug provider is off by default.
    let strict = Server::start_with(|c| c.debug_provider = false);
    assert_code(
        t.app
            .login(&Credentials::debug("JohnDoe"), &strict.auth_url()),
        ErrorCode::InvalidParameters,
    );
}

#[test]
fn access_tokens_are_fetched_per_path_and_cached() {
    let server = Server::start();
    let t = new_app();
    let user = register(&t.app, &server, "syncer");
    let token = user.access_token("/~/tasks").unwrap();
    assert_eq!(
        token.token_data.path.as_deref(),
        Some(format!("/{}/tasks", user.identity()).as_str())
    );
    assert_eq!(token.token_data.identity, user.identity());
    assert_code(
        user.access_token("/someone-else/tasks"),
        ErrorCode::AccessDenied,
    );
    assert_code(user.access_token(""), ErrorCode::InvalidArgument);
    // Cached: served without the server.
    let stopped = server.stopped();
    assert_eq!(user.access_token("/~/tasks").unwrap(), token);
    assert_code(user.access_token("/~/other"), ErrorCode::Io);
    user.logout();
    assert_code(
        user.access_token("/~/tasks"),
        ErrorCode::ExpiredRefreshToken,
    );
    drop(stopped);

    // Tokens that live less than the 10 s margin are fetched every time.
    let short = Server::start_with(|c| c.access_token_ttl = 5);
    let user = register(&t.app, &short, "short");
    user.access_token("/~/tasks").unwrap();
    let _stopped = short.stopped();
    assert_code(user.access_token("/~/tasks"), ErrorCode::Io);
}

#[test]
fn an_expired_refresh_token_makes_the_user_invalid() {
    let server = Server::start_with(|c| c.refresh_token_ttl = 2);
    let t = new_app();
    let user = register(&t.app, &server, "shortlived");
    let expires = user.refresh_token_expires().unwrap();
    wait_until("the refresh token expires", || !user.is_valid());
    assert!(shoal_now() >= expires);
    assert!(t.app.all_users().is_empty());
    assert_eq!(t.app.current_user().unwrap(), None);
    assert!(t.app.user(user.identity()).is_some());
}

fn shoal_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---- SyncUserTests ---------------------------------------------------------------------------

#[test]
fn user_json_round_trips() {
    let server = Server::start();
    let t = new_app();
    let user = register(&t.app, &server, "jsonuser");
    let text = user.to_json();
    let json: Json = serde_json::from_str(&text).unwrap();
    let token = user.refresh_token().unwrap();
    assert_eq!(json["authUrl"], server.auth_url());
    assert_eq!(json["identity"], user.identity());
    assert_eq!(json["isAdmin"], false);
    assert_eq!(json["userToken"]["token"], token);
    assert_eq!(json["userToken"]["token_data"]["identity"], user.identity());
    assert_eq!(
        json["userToken"]["token_data"]["expires"],
        user.refresh_token_expires().unwrap()
    );

    // In the same app: the same user.
    assert_eq!(t.app.user_from_json(&text).unwrap(), user);
    // In another app: an equal user, stored there and valid.
    let other = new_app();
    let copy = other.app.user_from_json(&text).unwrap();
    assert_eq!(copy.identity(), user.identity());
    assert_eq!(copy.refresh_token(), Some(token));
    assert_eq!(copy.auth_url(), user.auth_url());
    assert_eq!(copy.is_admin(), user.is_admin());
    assert!(copy.is_valid());
    assert_eq!(other.app.current_user().unwrap(), Some(copy.clone()));
    assert_eq!(copy.to_json(), text);
    // The copy works against the server.
    copy.access_token("/~/tasks").unwrap();

    let admin = admin(&t.app, &server);
    let admin_copy = other.app.user_from_json(&admin.to_json()).unwrap();
    assert!(admin_copy.is_admin());

    // A logged-out user's JSON has no token and cannot be loaded.
    user.logout();
    let logged_out: Json = serde_json::from_str(&user.to_json()).unwrap();
    assert_eq!(logged_out["userToken"], Json::Null);
    assert_code(other.app.user_from_json(&user.to_json()), ErrorCode::Json);
    assert_code(other.app.user_from_json("{"), ErrorCode::Json);
    assert_code(
        other.app.user_from_json(
            r#"{"authUrl":"ftp://h/auth","userToken":{"token":"t","identity":"i"}}"#,
        ),
        ErrorCode::InvalidArgument,
    );
}

#[test]
fn json_of_ros_era_realm_java_still_loads() {
    // SyncUserTests.fromJson_WorkWithRemovedObjectServerUser: the exact 3.5-format JSON.
    let old = r#"{"authUrl":"http:\/\/192.168.1.151:9080\/auth","userToken":{"token":"eyJpZGVudGl0eSI6IjY4OWQ5MGMxNDIyYTIwMmZkNTljNDYwM2M0ZTRmNmNjIiwiZXhwaXJlcyI6MTgxNjM1ODE4NCwiYXBwX2lkIjoiaW8ucmVhbG0ucmVhbG10YXNrcyIsImFjY2VzcyI6WyJyZWZyZXNoIl0sImlzX2FkbWluIjpmYWxzZSwic2FsdCI6MC4yMTEwMjQyNDgwOTEyMzg1NH0=:lEDa83o1zu8rkwdZVpTyunLHh1wmjxPPSGmZQNxdEM7xDmpbiU7V+8dgDWGevJNHMFluNDAOmrcAOI9TLfhI4rMDl70NI1K9rv\/Aeq5uIOzq\/Gf7JTeTUKY5Z7yRoppd8NArlNBKesLFxzdLRlfm1hflF9wH23xQXA19yUZ67JIlkhDPL5e3bau8O3Pr\/St0unW3KzPOiZUk1l9KRrs2iMCCiXCfq4rf6rp7B2M7rBUMQm68GnB1Ot7l1CblxEWcREcbpyhBKTWIOFRGMwg2TW\/zRR3cRNglx+ZC4FOeO0mfkX+nf+slyFODAnQkOzPZcGO8xc3I1emafX58Wl\/Guw==","token_data":{"identity":"689d90c1422a202fd59c4603c4e4f6cc","path":"","expires":1816358184,"access":["unknown"],"is_admin":false}},"realms":[]}"#;
    let t = new_app();
    let user = t.app.user_from_json(old).unwrap();
    assert_eq!(user.identity(), "689d90c1422a202fd59c4603c4e4f6cc");
    assert_eq!(user.auth_url(), "http://192.168.1.151:9080/auth");
    assert!(user
        .refresh_token()
        .unwrap()
        .starts_with("eyJpZGVudGl0eSI6"));
    // 1816358184 s = 23 July 2027, 15:56:24 UTC.
    assert_eq!(user.refresh_token_expires(), Some(1_816_358_184));
    assert_eq!(user.is_valid(), shoal_now() < 1_816_358_184);
    assert!(!user.is_admin());
    // Written back in today's shape, it loads again.
    let again = new_app().app.user_from_json(&user.to_json()).unwrap();
    assert_eq!(again.refresh_token_expires(), Some(1_816_358_184));
    assert_eq!(again.identity(), user.identity());
}

#[test]
fn the_user_store_survives_a_restart() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, alice_token) = {
        let app = App::new(dir.path(), APP_ID).unwrap();
        let events = Events::of(&app);
        let alice = register(&app, &server, "alice");
        let bob = register(&app, &server, "bob");
        bob.logout();
        events.wait_for(bob.identity(), AuthEvent::LoggedOut);
        assert_eq!(app.pending_revocations().unwrap(), 0);
        (
            alice.identity().to_owned(),
            bob.identity().to_owned(),
            alice.refresh_token().unwrap(),
        )
    };
    let app = App::new(dir.path(), APP_ID).unwrap();
    // The store file itself holds alice, logged in; bob's metadata went with his logout
    // (SyncUser.logout: "user credentials will be deleted from this device").
    let store = dir
        .path()
        .join("shoal-object-server/shoal-metadata/users.realm");
    let realm = shoal::Realm::open(&shoal::Config::new(store.to_str().unwrap())).unwrap();
    let row = |id: &str| {
        realm
            .find_object("User", &shoal::Value::String(id.into()))
            .unwrap()
    };
    let token = row(&alice)
        .expect("stored user")
        .get("refresh_token")
        .unwrap();
    assert_eq!(token, shoal::Value::String(alice_token.clone()));
    assert!(
        row(&bob).is_none(),
        "a logged-out user's metadata is removed"
    );
    drop(realm);

    let all = app.all_users();
    assert_eq!(all.keys().collect::<Vec<_>>(), vec![&alice]);
    let restored = app.current_user().unwrap().unwrap();
    assert_eq!(restored.identity(), alice);
    assert_eq!(restored.refresh_token(), Some(alice_token));
    assert_eq!(restored.auth_url(), server.auth_url());
    restored.access_token("/~/tasks").unwrap();
    // (Not `app.user(&bob)`: the event thread that delivered bob's LoggedOut may still have
    // held the first app when this one was asked for, and then this is that app.)
    assert_eq!(app.sync_root(), app.base_dir().join("shoal-object-server"));
}

#[test]
fn a_revocation_owed_at_exit_is_resumed_by_the_next_app() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path(), APP_ID).unwrap();
    let user = register(&app, &server, "leaver");
    let identity = user.identity().to_owned();
    let token = user.refresh_token().unwrap();
    let stopped = server.stopped();
    user.logout();
    assert_eq!(app.pending_revocations().unwrap(), 1);
    drop((user, app));

    // The next app (the server still down, so the revocation waits) knows the user, logged
    // out, only for the revocation it owes: its metadata is gone.
    let app = App::new(dir.path(), APP_ID).unwrap();
    let events = Events::of(&app);
    assert!(app.all_users().is_empty());
    assert!(!app.user(&identity).expect("owed a revocation").is_valid());
    let server = stopped.restart();
    wait_until("the resumed revocation is confirmed", || {
        app.pending_revocations().unwrap() == 0
    });
    events.wait_for(&identity, AuthEvent::LoggedOut);
    assert_eq!(server.access(&token, "/~/tasks"), (401, Some(615)));
}

#[test]
fn an_access_token_login_makes_no_network_call() {
    // login_withAccessToken: nothing listens on the auth URL's port.
    let url = closed_port_url();
    let t = new_app();
    let events = Events::of(&t.app);
    let user = t
        .app
        .login(&Credentials::access_token("foo", "bar"), &url)
        .unwrap();
    assert!(user.is_valid());
    assert_eq!((user.identity(), user.is_admin()), ("bar", false));
    assert_eq!(user.refresh_token().as_deref(), Some("foo"));
    assert_eq!(user.refresh_token_expires(), None);
    assert_eq!(user.auth_url(), url);
    assert_eq!(events.next(), ("bar".to_owned(), AuthEvent::LoggedIn));
    // Anything that needs the server fails with a recoverable I/O error.
    assert_code(user.access_token("/~/tasks"), ErrorCode::Io);

    // An admin's real token (AuthTests.login_withAccessToken): admin here too.
    let server = Server::start();
    let admin = admin(&t.app, &server);
    let token = admin.refresh_token().unwrap();
    let alias = t
        .app
        .login(
            &Credentials::access_token(&token, "custom-admin-user"),
            &url,
        )
        .unwrap();
    assert!(alias.is_valid() && alias.is_admin());
    assert_eq!(alias.refresh_token_expires(), admin.refresh_token_expires());
    assert_eq!(t.app.all_users().len(), 3);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let t = new_app();
    assert_code(
        Credentials::password("", "pw", true),
        ErrorCode::InvalidArgument,
    );
    assert_code(Credentials::custom("t", "p", Some("[1]")), ErrorCode::Json);
    let creds = password("alice", "pw", false);
    for url in ["", "not a url", "127.0.0.1:9080/auth", "http://", "/auth"] {
        let e = assert_code(t.app.login(&creds, url), ErrorCode::InvalidArgument);
        assert!(e.message().starts_with("Invalid URL"), "{e}");
    }
    for url in [
        "ftp://127.0.0.1/auth",
        "realm://127.0.0.1:9080/auth",
        "ws://h/auth",
    ] {
        let e = assert_code(t.app.login(&creds, url), ErrorCode::InvalidArgument);
        assert!(e.message().contains("scheme"), "{e}");
    }
    for creds in [
        Credentials::access_token("", "identity"),
        Credentials::access_token("token", ""),
    ] {
        assert_code(
            t.app.login(&creds, "http://h/auth"),
            ErrorCode::InvalidArgument,
        );
    }
    assert_code(App::new(t.dir.path(), ""), ErrorCode::InvalidArgument);
    assert_code(App::new("", APP_ID), ErrorCode::InvalidArgument);
    assert!(t.app.all_users().is_empty());
}

#[test]
fn a_server_that_is_down_is_a_recoverable_io_error() {
    let server = Server::start();
    let t = new_app();
    let stopped = server.stopped();
    let creds = password("later", "pw", true);
    let e = assert_code(t.app.login(&creds, &stopped.auth_url()), ErrorCode::Io);
    assert_eq!(e.category(), ErrorCategory::Client);
    let (tx, rx) = mpsc::channel();
    t.app
        .login_async(creds.clone(), &stopped.auth_url(), move |r| {
            tx.send(r).unwrap()
        });
    assert_code(rx.recv_timeout(WAIT).unwrap(), ErrorCode::Io);
    // The same call works once the server is back.
    let server = stopped.restart();
    let user = t.app.login(&creds, &server.auth_url()).unwrap();
    assert!(user.is_valid());
    // The auth URL may also be given without `/auth`.
    let bare = format!("http://{}", server.addr);
    let again = t.app.login(&password("later", "pw", false), &bare).unwrap();
    assert_eq!(again.identity(), user.identity());
    assert_eq!(again.auth_url(), bare);
}

#[test]
fn https_auth_urls_speak_tls() {
    // A plain-HTTP server on the other end: the TLS handshake fails, which shows that https
    // URLs go through rustls (and that the failure is a recoverable I/O error).
    let server = Server::start();
    let t = new_app();
    let url = format!("https://{}/auth", server.addr);
    let e = assert_code(
        t.app.login(&password("tls", "pw", true), &url),
        ErrorCode::Io,
    );
    // rustls reading an HTTP answer as a TLS record.
    assert!(e.message().contains("InvalidContentType"), "{e}");
}

#[test]
fn auth_callbacks_unregister_when_their_token_is_dropped() {
    let server = Server::start();
    let t = new_app();
    let dropped_calls = Arc::new(AtomicUsize::new(0));
    let counter = dropped_calls.clone();
    let dropped = t.app.add_auth_callback(move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let events = Events::of(&t.app); // registered after, so called after
    drop(dropped);
    let user = register(&t.app, &server, "watched");
    assert_eq!(
        events.next(),
        (user.identity().to_owned(), AuthEvent::LoggedIn)
    );
    assert_eq!(dropped_calls.load(Ordering::SeqCst), 0);
    // A panicking callback does not stop the ones after it.
    let _panicky = t.app.add_auth_callback(|_, _| panic!("callback panics"));
    let after = Events::of(&t.app);
    user.logout();
    assert_eq!(
        after.next(),
        (user.identity().to_owned(), AuthEvent::LoggedOut)
    );
    assert_eq!(
        events.next(),
        (user.identity().to_owned(), AuthEvent::LoggedOut)
    );
}

#[test]
fn one_app_per_base_dir_in_a_process() {
    let t = new_app();
    let same = App::new(t.dir.path(), APP_ID).unwrap();
    assert_eq!(same, t.app);
    assert_code(
        App::new(t.dir.path(), "another.app"),
        ErrorCode::InvalidArgument,
    );
    assert!(t
        .dir
        .path()
        .join("shoal-object-server/shoal-metadata/users.realm")
        .exists());
    assert_eq!(t.app.app_id(), APP_ID);
    assert_eq!(
        t.app.base_dir(),
        std::fs::canonicalize(t.dir.path()).unwrap().as_path()
    );
    let other = new_app();
    assert_ne!(other.app, t.app);
    let path: PathBuf = t.app.sync_root();
    assert!(path.ends_with("shoal-object-server"));
}

#[test]
fn apps_and_users_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<App>();
    check::<User>();
    check::<Credentials>();
    check::<shoal::UserInfo>();
}

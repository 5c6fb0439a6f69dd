//! The auth service over real sockets: every endpoint, every documented error, tokens,
//! restarts. Each test runs its own server on an ephemeral 127.0.0.1 port.

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_problem, identity, refresh_token, token_data, TestServer, ADMIN_PASSWORD, APP_ID,
};
use serde_json::{json, Value};
use shoal::protocol::auth::{encode_token_string, split_token, AuthResponse, LookupResponse};
use shoal_server::TokenError;

#[test]
fn health_answers_once_ready() {
    let server = TestServer::start();
    assert_eq!(server.get("/health", None), (200, json!({"status": "ok"})));
}

#[test]
fn register_then_login_gives_the_same_identity() {
    let server = TestServer::start();
    let (status, body) = server.password("alice", "s3cret", true);
    assert_eq!(status, 200, "{body}");
    let response: AuthResponse = serde_json::from_value(body.clone()).expect("AuthResponse");
    let token = response.refresh_token.expect("refresh token");
    assert!(response.access_token.is_none());
    let data = &token.token_data;
    assert_eq!(data.identity.len(), 32);
    assert!(data.identity.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(data.access, ["refresh"]);
    assert_eq!((data.path.as_deref(), data.is_admin), (None, false));
    assert_eq!(data.app_id, APP_ID);
    assert!(data.is_refresh_token());
    assert_eq!(
        token_data(&token.token),
        *data,
        "token_data repeats the signed payload"
    );

    let again = server.login("alice", "s3cret");
    assert_eq!(identity(&again), data.identity);
    assert_ne!(again, token.token, "every login gets a new refresh token");
}

#[test]
fn registering_an_existing_name_is_613() {
    let server = TestServer::start();
    server.register("bob", "pw");
    assert_problem(&server.password("bob", "other", true), 409, 613);
    assert_problem(&server.password("realm-admin", "x", true), 409, 613);
}

#[test]
fn unknown_user_and_wrong_password_are_611() {
    let server = TestServer::start();
    server.register("carol", "right");
    assert_problem(&server.password("carol", "wrong", false), 401, 611);
    assert_problem(
        &server.password("IWantToHackYou", "GeneralPassword", false),
        401,
        611,
    );
    assert_eq!(server.password("carol", "right", false).0, 200);
}

#[test]
fn missing_parameters_are_602() {
    let server = TestServer::start();
    let post = |body: Value| server.post_json("/auth", None, &body);
    assert_problem(&post(json!({"data": "x", "user_info": {}})), 400, 602);
    assert_problem(
        &post(json!({"provider": "password", "user_info": {}})),
        400,
        602,
    );
    assert_problem(
        &post(json!({"provider": "password", "data": null})),
        400,
        602,
    );
    assert_problem(&post(json!({"provider": "password", "data": ""})), 400, 602);
    assert_problem(
        &post(json!({"provider": "password", "data": "x", "user_info": {}})),
        400,
        602,
    );
    let token = server.register("dave", "pw");
    assert_problem(&post(json!({"provider": "realm", "data": token})), 400, 602);
    assert_problem(
        &server.put_json("/auth/password", Some(&token), &json!({})),
        400,
        602,
    );
    assert_problem(&server.revoke(&token, ""), 400, 601);
    assert_problem(
        &server.post_json("/auth/revoke", Some(&token), &json!({})),
        400,
        602,
    );
    let no_auth = json!({"new_password": "x"});
    assert_problem(&server.put_json("/auth/password", None, &no_auth), 401, 602);
    assert_problem(
        &server.post_json("/auth/revoke", None, &json!({"token": token})),
        401,
        602,
    );
    assert_problem(&server.get("/auth/users/password/dave", None), 401, 602);
}

#[test]
fn malformed_requests_are_4xx_problems_never_500() {
    let server = TestServer::start();
    let raw = |body: &str| {
        server.request(
            "POST",
            "/auth",
            None,
            Some("application/json"),
            Some(body.into()),
        )
    };
    assert_problem(&raw("{not json"), 400, 601);
    assert_problem(&raw(""), 400, 601);
    assert_problem(&raw("[1, 2]"), 400, 601);
    assert_problem(&raw("\"string\""), 400, 601);
    assert_problem(&raw(r#"{"provider": 5, "data": "x"}"#), 400, 601);
    assert_problem(
        &raw(r#"{"provider": "password", "data": "x", "user_info": 3}"#),
        400,
        601,
    );
    let wrong_types = r#"{"provider":"password","data":"x","user_info":{"password":1}}"#;
    assert_problem(&raw(wrong_types), 400, 601);
    let empty_password =
        r#"{"provider":"password","data":"x","user_info":{"password":"","register":true}}"#;
    assert_problem(&raw(empty_password), 400, 601);
    let long_name = json!({"provider": "password", "data": "n".repeat(300),
        "user_info": {"password": "p", "register": true}});
    assert_problem(&server.post_json("/auth", None, &long_name), 400, 601);

    for bad in [
        "{",
        "null",
        "{\"provider\":{}}",
        "{\"data\":[]}",
        "\u{0}",
        "{}}",
    ] {
        let (status, body) = raw(bad);
        assert!((400..500).contains(&status), "{bad:?} → {status} {body}");
    }
}

#[test]
fn wrong_content_type_is_415() {
    let server = TestServer::start();
    let body = br#"{"provider":"password","data":"x","user_info":{"password":"p"}}"#.to_vec();
    let answer = server.request(
        "POST",
        "/auth",
        None,
        Some("text/plain"),
        Some(body.clone()),
    );
    assert_problem(&answer, 415, 601);
    assert_problem(
        &server.request("POST", "/auth", None, None, Some(body.clone())),
        415,
        601,
    );
    let charset = Some("application/json; charset=utf-8");
    assert_problem(
        &server.request("POST", "/auth", None, charset, Some(body)),
        401,
        611,
    );
}

#[test]
fn huge_body_is_413() {
    let server = TestServer::start();
    let big = json!({"provider": "password", "data": "x",
        "user_info": {"password": "p".repeat(100 * 1024)}});
    assert_problem(&server.post_json("/auth", None, &big), 413, 601);
    // The connection (or the next one) still works.
    assert_eq!(server.get("/health", None).0, 200);
}

#[test]
fn unknown_provider_and_routes_are_4xx() {
    let server = TestServer::start();
    let answer = server.post_json("/auth", None, &json!({"provider": "facebook", "data": "t"}));
    assert_problem(&answer, 400, 601);
    assert_problem(&server.get("/nope", None), 404, 404);
    assert_problem(&server.get("/auth", None), 405, 405);
    assert_problem(
        &server.request("DELETE", "/auth/password", None, None, None),
        405,
        405,
    );
}

#[test]
fn debug_provider_is_off_by_default() {
    let server = TestServer::start();
    assert_problem(&server.debug_login("admin"), 400, 601);
}

#[test]
fn debug_provider_when_enabled_logs_in_any_identity_and_admin_is_an_admin() {
    let server = TestServer::start_with(|c| c.debug_provider = true);
    let (status, body) = server.debug_login("admin");
    assert_eq!(status, 200, "{body}");
    let admin = token_data(&refresh_token(&body));
    assert_eq!((admin.identity.as_str(), admin.is_admin), ("admin", true));
    let (status, body) = server.debug_login("JohnDoe");
    assert_eq!(status, 200, "{body}");
    let john = token_data(&refresh_token(&body));
    assert_eq!((john.identity.as_str(), john.is_admin), ("JohnDoe", false));
    assert_problem(&server.debug_login("../etc"), 400, 601);
}

#[test]
fn access_tokens_for_own_paths_others_are_614_and_admins_get_any_path() {
    let server = TestServer::start_with(|c| c.access_token_ttl = 120);
    let alice = server.register("alice", "pw");
    let alice_id = identity(&alice);
    let bob = server.register("bob", "pw");

    let (status, body) = server.access(&alice, &format!("/{alice_id}/tasks"));
    assert_eq!(status, 200, "{body}");
    let response: AuthResponse = serde_json::from_value(body).expect("AuthResponse");
    assert!(response.refresh_token.is_none());
    let token = response.access_token.expect("access token");
    let data = &token.token_data;
    assert_eq!(
        data.path.as_deref(),
        Some(format!("/{alice_id}/tasks").as_str())
    );
    assert_eq!(data.access, ["download", "upload", "manage"]);
    assert_eq!(
        (data.identity.as_str(), data.is_admin),
        (alice_id.as_str(), false)
    );
    assert_eq!(data.token_id, None);
    let now = shoal_server::tokens::unix_now();
    assert!(
        (now + 118..=now + 121).contains(&data.expires),
        "{}",
        data.expires
    );

    let (status, body) = server.access(&alice, "/~/notes");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["access_token"]["token_data"]["path"],
        format!("/{alice_id}/notes")
    );

    assert_problem(
        &server.access(&bob, &format!("/{alice_id}/tasks")),
        403,
        614,
    );
    assert_problem(&server.access(&alice, "/shared"), 403, 614);
    assert_problem(&server.access(&alice, "/~/x.realm"), 400, 601);
    assert_problem(&server.access(&alice, "relative/path"), 400, 601);
    let access_token = token.token.clone();
    assert_problem(&server.access(&access_token, "/~/tasks"), 401, 611);

    let admin = server.login("realm-admin", ADMIN_PASSWORD);
    let (status, body) = server.access(&admin, &format!("/{alice_id}/tasks"));
    assert_eq!(status, 200, "{body}");
    let data = token_data(body["access_token"]["token"].as_str().expect("token"));
    assert_eq!(data.access, ["download", "upload", "manage"]);
    assert!(data.is_admin);
    assert_eq!(server.access(&admin, "/anything").0, 200);
}

#[test]
fn tokens_verify_with_the_public_key_and_tampered_tokens_are_refused() {
    let server = TestServer::start();
    let refresh = server.register("erin", "pw");
    let verifier = server.verifier();
    let now = shoal_server::tokens::unix_now();
    assert_eq!(
        verifier.verify(&refresh, now).expect("valid"),
        token_data(&refresh)
    );
    let (_, body) = server.access(&refresh, "/~/r");
    let access = body["access_token"]["token"]
        .as_str()
        .expect("access token");
    assert!(verifier.verify(access, now).is_ok());

    // Claim admin rights with the original signature: refused everywhere.
    let mut forged = token_data(&refresh);
    forged.is_admin = true;
    let signature = split_token(&refresh).expect("parts").signature;
    let tampered = encode_token_string(&serde_json::to_vec(&forged).expect("json"), &signature);
    assert_eq!(
        verifier.verify(&tampered, now),
        Err(TokenError::BadSignature)
    );
    assert_problem(&server.access(&tampered, "/other/r"), 401, 611);
    assert_problem(&server.access("not-a-token", "/~/r"), 401, 611);
    assert_problem(
        &server.get("/auth/users/password/erin", Some(&tampered)),
        401,
        611,
    );

    // A flipped bit in the signature.
    let mut chars: Vec<char> = refresh.chars().collect();
    let last = chars.len() - 2;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    assert_problem(&server.access(&flipped, "/~/r"), 401, 611);
}

#[test]
fn an_expired_refresh_token_is_615() {
    let server = TestServer::start_with(|c| c.refresh_token_ttl = 1);
    let refresh = server.register("frank", "pw");
    let expires = token_data(&refresh).expires;
    assert!(expires <= shoal_server::tokens::unix_now() + 1);
    // Poll rather than sleep a fixed time: expiry is whole seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = server.access(&refresh, "/~/r");
        if answer.0 != 200 || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_problem(&answer, 401, 615);
    assert_problem(
        &server.put_json(
            "/auth/password",
            Some(&refresh),
            &json!({"new_password": "x"}),
        ),
        401,
        615,
    );
}

#[test]
fn a_revoked_refresh_token_is_615_and_a_new_login_gets_a_new_token() {
    let server = TestServer::start();
    let revoked = server.register("grace", "pw");
    assert_eq!(server.access(&revoked, "/~/r").0, 200);
    // Logout as Realm clients do it: the token revokes itself.
    assert_eq!(server.revoke(&revoked, &revoked), (204, Value::Null));
    assert_problem(&server.access(&revoked, "/~/r"), 401, 615);
    // Revoking again is 615, which clients treat as success.
    assert_problem(&server.revoke(&revoked, &revoked), 401, 615);

    let fresh = server.login("grace", "pw");
    assert_ne!(fresh, revoked);
    assert_eq!(identity(&fresh), identity(&revoked));
    assert_eq!(server.access(&fresh, "/~/r").0, 200);
    // Revoking an already revoked token with a valid token is 615 too.
    assert_problem(&server.revoke(&fresh, &revoked), 401, 615);
}

#[test]
fn only_the_owner_or_an_admin_revokes_a_token() {
    let server = TestServer::start();
    let heidi = server.register("heidi", "pw");
    let ivan = server.register("ivan", "pw");
    assert_problem(&server.revoke(&ivan, &heidi), 403, 614);
    assert_eq!(server.access(&heidi, "/~/r").0, 200);
    let admin = server.login("realm-admin", ADMIN_PASSWORD);
    assert_eq!(server.revoke(&admin, &heidi).0, 204);
    assert_problem(&server.access(&heidi, "/~/r"), 401, 615);
    let (_, body) = server.access(&ivan, "/~/r");
    let access = body["access_token"]["token"]
        .as_str()
        .expect("access token")
        .to_owned();
    assert_problem(&server.revoke(&ivan, &access), 400, 601);
    assert_problem(&server.revoke(&ivan, "garbage"), 400, 601);
    assert_problem(&server.revoke("garbage", &ivan), 401, 611);
}

#[test]
fn a_user_changes_its_own_password() {
    let server = TestServer::start();
    let token = server.register("judy", "old");
    let id = identity(&token);
    let change = json!({"new_password": "new"});
    assert_eq!(
        server.put_json("/auth/password", Some(&token), &change),
        (204, Value::Null)
    );
    assert_problem(&server.password("judy", "old", false), 401, 611);
    assert_eq!(identity(&server.login("judy", "new")), id);
    // Naming oneself is the same as naming no one; the old refresh token stays valid.
    let change = json!({"new_password": "newer", "user_id": id});
    assert_eq!(
        server.put_json("/auth/password", Some(&token), &change).0,
        204
    );
    assert_eq!(identity(&server.login("judy", "newer")), id);
    let empty = json!({"new_password": ""});
    assert_problem(
        &server.put_json("/auth/password", Some(&token), &empty),
        400,
        601,
    );
}

#[test]
fn an_admin_changes_another_users_password_and_a_user_may_not() {
    let server = TestServer::start();
    let karl = server.register("karl", "pw");
    let karl_id = identity(&karl);
    let lena = server.register("lena", "pw");
    let lena_id = identity(&lena);

    let change = json!({"new_password": "hijacked", "user_id": karl_id});
    assert_problem(
        &server.put_json("/auth/password", Some(&lena), &change),
        403,
        614,
    );
    assert_eq!(identity(&server.login("karl", "pw")), karl_id);

    let admin = server.login("realm-admin", ADMIN_PASSWORD);
    let change = json!({"new_password": "reset", "user_id": karl_id});
    assert_eq!(
        server.put_json("/auth/password", Some(&admin), &change).0,
        204
    );
    assert_eq!(identity(&server.login("karl", "reset")), karl_id);
    assert_problem(&server.password("karl", "pw", false), 401, 611);
    assert_eq!(identity(&server.login("lena", "pw")), lena_id);

    let change = json!({"new_password": "x", "user_id": "0000"});
    assert_problem(
        &server.put_json("/auth/password", Some(&admin), &change),
        404,
        612,
    );
}

#[test]
fn admins_look_up_users_by_provider_id() {
    let server = TestServer::start_with(|c| c.debug_provider = true);
    let mike = server.register("mike", "pw");
    let admin = server.login("realm-admin", ADMIN_PASSWORD);

    let (status, body) = server.get("/auth/users/password/mike", Some(&admin));
    assert_eq!(status, 200, "{body}");
    let found: LookupResponse = serde_json::from_value(body.clone()).expect("LookupResponse");
    assert_eq!(found.user_id, identity(&mike));
    assert!(!found.is_admin);
    assert_eq!(
        body["accounts"],
        json!([{"provider": "password", "provider_id": "mike"}])
    );

    let (status, body) = server.get("/auth/users/password/realm-admin", Some(&admin));
    assert_eq!((status, body["is_admin"].as_bool()), (200, Some(true)));
    let (_, debug_admin) = server.debug_login("admin");
    let debug_admin = refresh_token(&debug_admin);
    let (status, body) = server.get("/auth/users/debug/admin", Some(&debug_admin));
    assert_eq!(
        (status, body["user_id"].as_str()),
        (200, Some("admin")),
        "{body}"
    );

    assert_problem(
        &server.get("/auth/users/password/doesNotExist", Some(&admin)),
        404,
        612,
    );
    assert_problem(
        &server.get("/auth/users/invalid/mike", Some(&admin)),
        404,
        612,
    );
    assert_problem(
        &server.get("/auth/users/password/mike", Some(&mike)),
        403,
        614,
    );
    let bearer = format!("Bearer {admin}");
    assert_eq!(
        server.get("/auth/users/password/mike", Some(&bearer)).0,
        200
    );
}

#[test]
fn realm_admin_never_has_an_empty_password() {
    // Without a configured password, one is generated into DATA/admin-password (0600).
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = common::config(dir.path());
    config.admin_password = None;
    let server = TestServer::start_config(config.clone(), None);
    assert_problem(&server.password("realm-admin", "", false), 400, 601);
    let file = dir.path().join("admin-password");
    let generated = std::fs::read_to_string(&file).expect("generated password");
    let generated = generated.trim_end();
    assert_eq!(generated.len(), 32);
    let admin = server.login("realm-admin", generated);
    let data = token_data(&admin);
    assert!(data.is_admin);
    assert_eq!(data.identity.len(), 32);
    server.stop();

    // A configured one replaces it, and the file, which no longer works, goes.
    let mut with_password = config.clone();
    with_password.admin_password = Some("hunter2".into());
    let server = TestServer::start_config(with_password, None);
    assert!(!file.exists());
    assert_problem(&server.password("realm-admin", generated, false), 401, 611);
    assert!(token_data(&server.login("realm-admin", "hunter2")).is_admin);
    server.stop();

    // An empty one is refused at start.
    let mut empty = config;
    empty.admin_password = Some(String::new());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let refused = runtime.block_on(shoal_server::router(&empty));
    assert!(
        matches!(&refused, Err(shoal_server::ServerError::Config(why)) if why.contains("empty")),
        "{:?}",
        refused.err()
    );
}

#[test]
fn empty_passwords_are_refused_everywhere() {
    let server = TestServer::start();
    assert_problem(&server.password("frank", "", true), 400, 601);
    let frank = server.register("frank", "pw");
    assert_problem(&server.password("frank", "", false), 400, 601);
    let change = json!({"new_password": ""});
    assert_problem(
        &server.put_json("/auth/password", Some(&frank), &change),
        400,
        601,
    );
    assert_eq!(server.password("frank", "pw", false).0, 200);
}

#[test]
fn repeated_failed_logins_are_slowed_down_per_account_and_per_address() {
    use std::net::Ipv4Addr;
    // Waits of 3 s (base = max), long enough that a loaded machine does not outlast them
    // between two requests.
    const WAIT: Duration = Duration::from_secs(3);
    let server = TestServer::start_with(|c| {
        c.login_limits.free_failures_per_account = 3;
        c.login_limits.free_failures_per_address = 5;
        c.login_limits.base_delay = WAIT;
        c.login_limits.max_delay = WAIT;
    });
    // `Retry-After` is whole seconds, at most the wait; sleeps until it has passed.
    let wait_out = |retry_after: Option<String>| {
        let seconds: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
        assert!((1..=WAIT.as_secs()).contains(&seconds), "{seconds}");
        std::thread::sleep(Duration::from_secs(seconds) + Duration::from_millis(200));
    };
    let here = Ipv4Addr::LOCALHOST;
    let elsewhere = Ipv4Addr::new(127, 0, 0, 2);
    server.register("dave", "right");
    for _ in 0..3 {
        let (status, _, body) = server.password_from(here, "dave", "wrong");
        assert_problem(&(status, body), 401, 611);
    }
    // The account waits: even the right password is refused, without being checked.
    let (status, retry_after, body) = server.password_from(elsewhere, "dave", "right");
    assert_problem(&(status, body.clone()), 429, 429);
    assert!(body["hint"].as_str().unwrap().contains("account"), "{body}");
    wait_out(retry_after);
    // After the wait the right password works and clears the account's failures.
    assert_eq!(server.password_from(here, "dave", "right").0, 200);
    let (status, _, _) = server.password_from(here, "dave", "wrong");
    assert_eq!(status, 401, "the account's count restarted");

    // The address has failed 4 times now (3 for dave, 1 more); a 5th, for an unknown name,
    // makes it wait: any login from it is 429, from elsewhere fine.
    assert_eq!(server.password_from(here, "nobody", "x").0, 401);
    let (status, retry_after, body) = server.password_from(here, "dave", "right");
    assert_problem(&(status, body.clone()), 429, 429);
    assert!(body["hint"].as_str().unwrap().contains("address"), "{body}");
    assert_eq!(server.password_from(elsewhere, "dave", "right").0, 200);
    wait_out(retry_after);
    assert_eq!(server.password_from(here, "dave", "right").0, 200);
}

#[test]
fn users_keys_and_tokens_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = || {
        let mut config = common::config(dir.path());
        config.admin_password = None;
        config
    };
    let server = TestServer::start_config(config(), None);
    let refresh = server.register("nina", "pw");
    let (_, body) = server.access(&refresh, "/~/r");
    let access = body["access_token"]["token"]
        .as_str()
        .expect("access")
        .to_owned();
    let revoked = server.login("nina", "pw");
    assert_eq!(server.revoke(&revoked, &revoked).0, 204);
    // The generated admin password changed through the API: its file goes, and the next
    // start generates nothing.
    let admin_file = dir.path().join("admin-password");
    let generated = std::fs::read_to_string(&admin_file).expect("generated password");
    let admin = server.login("realm-admin", generated.trim_end());
    let change = json!({"new_password": "changed"});
    assert_eq!(
        server.put_json("/auth/password", Some(&admin), &change).0,
        204
    );
    assert!(!admin_file.exists());
    let public_key = server.verifier().key();
    server.stop();

    let server = TestServer::start_config(config(), None);
    assert_eq!(
        server.verifier().key(),
        public_key,
        "the signing key persisted"
    );
    let now = shoal_server::tokens::unix_now();
    assert!(server.verifier().verify(&access, now).is_ok());
    assert_eq!(identity(&server.login("nina", "pw")), identity(&refresh));
    assert_eq!(
        server.access(&refresh, "/~/r").0,
        200,
        "old refresh tokens still work"
    );
    assert_problem(&server.access(&revoked, "/~/r"), 401, 615);
    assert_problem(&server.password("realm-admin", "", false), 400, 601);
    assert!(token_data(&server.login("realm-admin", "changed")).is_admin);
    assert!(!admin_file.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for secret in [
            shoal_server::tokens::SIGNING_KEY_FILE,
            shoal_server::tokens::PUBLIC_KEY_FILE,
            "auth.redb",
            "sync.redb",
        ] {
            let path = dir.path().join(secret);
            let mode = std::fs::metadata(path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{secret}");
        }
    }
    server.stop();
}

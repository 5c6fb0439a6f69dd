//! The server's auth API (`POST /auth`, `POST /auth/revoke`, `PUT /auth/password`,
//! `GET /auth/users/…`) on any request body: the real router of `shoal-server`
//! (`shoal_server::router`) driven in-process with `tower::ServiceExt::oneshot`, so the JSON
//! extractor, the validation and the handlers all run, on a server with the `debug` provider
//! and cheap password hashing whose state is in a temporary folder.
//!
//! The first byte of the input picks the request; the rest is the body (or, for the lookup,
//! the end of the path):
//!
//! | bits | meaning |
//! |---|---|
//! | 0–1 | 0 `POST /auth`, 1 `POST /auth/revoke`, 2 `PUT /auth/password`, 3 `GET /auth/users/<rest>` |
//! | 2–3 | `Authorization`: 0 or 3 the refresh token of the admin `admin`, 1 that of the plain user `alice`, 2 none |
//! | 4 | `Content-Type`: 0 `application/json`, 1 `text/plain` |
//!
//! `$TOKEN` in the body stands for a valid refresh token, so that the fuzzer gets past the
//! signature checks: `admin`'s, except in a revocation, where each `$TOKEN` is a fresh token
//! of the user `victim` (so the tokens in the headers are never revoked).
//!
//! Checks: no panic; never a 5xx (bad input is a 4xx, `problem.rs`'s invariant); every error
//! is an `application/problem+json` body whose `status` is the HTTP status; a successful login
//! or access request carries exactly one token whose `token_data` is what its string says.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use shoal::protocol::auth::{AuthRequest, AuthResponse, Problem, Token};
use tower::ServiceExt;

/// The largest body read back from the router.
const MAX_RESPONSE: usize = 1 << 20;

/// The server, and the refresh tokens of `admin` and `alice`.
struct Server {
    /// Keeps the state folder alive.
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    router: Router,
    admin: String,
    alice: String,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut config = shoal_server::ServerConfig::new(dir.path().join("data"));
        config.debug_provider = true;
        config.password_hashing = shoal_server::PasswordHashing::InsecureFastForTests;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let router = runtime
            .block_on(shoal_server::router(&config))
            .expect("open the server");
        let mut server = Server {
            _dir: dir,
            runtime,
            router,
            admin: String::new(),
            alice: String::new(),
        };
        server.admin = server.debug_login("admin");
        server.alice = server.debug_login("alice");
        server
    })
}

impl Server {
    fn send(&self, request: Request<Body>) -> (StatusCode, Option<String>, Vec<u8>) {
        self.runtime.block_on(async {
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = axum::body::to_bytes(response.into_body(), MAX_RESPONSE)
                .await
                .expect("read the answer");
            (status, content_type, body.to_vec())
        })
    }

    /// A fresh refresh token of `identity`.
    fn debug_login(&self, identity: &str) -> String {
        let body = serde_json::to_vec(&AuthRequest::debug(identity, "fuzz")).expect("JSON");
        let request = Request::post("/auth")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("a request");
        let (status, _, body) = self.send(request);
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let answer: AuthResponse = serde_json::from_slice(&body).expect("an AuthResponse");
        answer.refresh_token.expect("a refresh token").token
    }
}

/// Replaces every `$TOKEN` in `body` with `token()`.
fn substitute(body: &[u8], mut token: impl FnMut() -> String) -> Vec<u8> {
    const MARK: &[u8] = b"$TOKEN";
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.windows(MARK.len()).position(|w| w == MARK) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(token().as_bytes());
        rest = &rest[at + MARK.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Runs the checks on one input.
///
/// # Panics
/// When a check fails.
pub fn check(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let server = server();
    let route = selector & 3;
    let (method, uri, body) = match route {
        0 => (
            Method::POST,
            "/auth".to_owned(),
            substitute(body, || server.admin.clone()),
        ),
        1 => (
            Method::POST,
            "/auth/revoke".to_owned(),
            substitute(body, || server.debug_login("victim")),
        ),
        2 => (
            Method::PUT,
            "/auth/password".to_owned(),
            substitute(body, || server.admin.clone()),
        ),
        _ => {
            let Ok(rest) = std::str::from_utf8(body) else {
                return;
            };
            (Method::GET, format!("/auth/users/{rest}"), Vec::new())
        }
    };
    let mut request = Request::builder().method(method).uri(&uri);
    match (selector >> 2) & 3 {
        1 => request = request.header(header::AUTHORIZATION, &server.alice),
        2 => {}
        _ => request = request.header(header::AUTHORIZATION, &server.admin),
    }
    let content_type = if selector & 16 == 0 {
        "application/json"
    } else {
        "text/plain"
    };
    request = request.header(header::CONTENT_TYPE, content_type);
    let Ok(request) = request.body(Body::from(body)) else {
        return; // not a valid URI: never reaches a server
    };
    let (status, content_type, answer) = server.send(request);
    let text = String::from_utf8_lossy(&answer);
    assert!(!status.is_server_error(), "{status} for bad input: {text}");
    if status.is_client_error() {
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{status}: {text}"
        );
        let problem: Problem = serde_json::from_slice(&answer)
            .unwrap_or_else(|e| panic!("{status} without a problem body ({e}): {text}"));
        assert_eq!(problem.status, status.as_u16(), "{text}");
        return;
    }
    assert!(status.is_success(), "{status}: {text}");
    if route == 0 {
        let answer: AuthResponse = serde_json::from_slice(&answer)
            .unwrap_or_else(|e| panic!("a login answer is not an AuthResponse ({e}): {text}"));
        let tokens: Vec<&Token> = [&answer.refresh_token, &answer.access_token]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(tokens.len(), 1, "{text}");
        let token = Token::from_string_unverified(tokens[0].token.clone())
            .expect("the server's token decodes");
        assert_eq!(&token, tokens[0], "token_data is not what the token says");
    }
}

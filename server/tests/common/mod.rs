//! A real `shoal-server` in this process on an ephemeral 127.0.0.1 port, and a blocking HTTP
//! client for it.

#![allow(dead_code)]

pub mod binary;
pub mod sync_client;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shoal::protocol::auth::{decode_token_unverified, TokenData};
use shoal_server::{PasswordHashing, ServerConfig, TokenVerifier};

pub const APP_ID: &str = "io.shoal.tests";
/// The `realm-admin` password of [`config`].
pub const ADMIN_PASSWORD: &str = "admin-password";

/// A server running on its own tokio runtime in a background thread, or the real binary in a
/// child process ([`TestServer::binary`]).
pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Keeps the temporary data directory alive (None when the caller owns the directory).
    _tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The `shoal-server` process, for servers started with [`TestServer::binary`].
    child: Option<Child>,
    /// Where the process writes its stderr.
    log: Option<PathBuf>,
    agent: ureq::Agent,
}

/// A test configuration: cheap argon2 (a debug build would take seconds per hash otherwise)
/// and the `realm-admin` password [`ADMIN_PASSWORD`].
pub fn config(data_dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(data_dir);
    config.password_hashing = PasswordHashing::InsecureFastForTests;
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config
}

impl TestServer {
    /// A server with the test defaults in a fresh temporary directory.
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// A server in a fresh temporary directory, with `edit` applied to the test config.
    pub fn start_with(edit: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut config = config(tmp.path());
        edit(&mut config);
        TestServer::start_config(config, Some(tmp))
    }

    /// A server with exactly `config`; waits until `GET /health` answers.
    pub fn start_config(config: ServerConfig, tmp: Option<tempfile::TempDir>) -> TestServer {
        let data_dir = config.data_dir.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let shutdown = async move {
                    let _ = stopped.await;
                };
                shoal_server::run(listener, config, shutdown)
                    .await
                    .expect("server runs");
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server bound");
        let server = TestServer {
            addr,
            data_dir,
            _tmp: tmp,
            stop: Some(stop),
            thread: Some(thread),
            child: None,
            log: None,
            agent: agent(),
        };
        server.wait_healthy();
        server
    }

    /// The real `shoal-server` binary in a child process, on a free 127.0.0.1 port, with cheap
    /// password hashing and `args` on top; data in `<tmp>/data`, stderr in `<tmp>/stderr.log`
    /// ([`TestServer::stderr`]). `stop` (and drop) send SIGTERM and wait for it.
    pub fn binary(args: &[&str]) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let log = tmp.path().join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-server"))
            .arg("--data")
            .arg(&data_dir)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--insecure-fast-password-hashing",
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn shoal-server");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("shoal-server did not start: {line:?}\n{stderr}");
        };
        let server = TestServer {
            addr: addr.parse().expect("address"),
            data_dir,
            _tmp: Some(tmp),
            stop: None,
            thread: None,
            child: Some(child),
            log: Some(log),
            agent: agent(),
        };
        server.wait_healthy();
        server
    }

    /// What the binary wrote to stderr so far (empty for an in-process server).
    pub fn stderr(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }

    /// Polls `GET /health` until it answers 200 (at most 30 s).
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.get("/health", None).0 == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "server never became healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and waits until its storage is closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Stops the server and hands over its data directory, which the returned guard keeps
    /// (`None` when the caller owns the directory).
    pub fn stop_keeping_data(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.shutdown();
        (self.data_dir.clone(), self._tmp.take())
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
        if let Some(mut child) = self.child.take() {
            // SIGTERM (a clean shutdown) through kill(1); SIGKILL if it does not end in 10 s.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's token verifier, from the public key file it wrote.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::from_data_dir(&self.data_dir).expect("public key file")
    }

    /// Sends a request; returns the status and the body as JSON (`Value::Null` if empty or
    /// not JSON).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let url = self.url(path);
        let response = match method {
            "GET" => {
                let mut request = self.agent.get(&url);
                if let Some(auth) = auth {
                    request = request.header("Authorization", auth);
                }
                request.call()
            }
            "POST" | "PUT" => {
                let mut request = if method == "POST" {
                    self.agent.post(&url)
                } else {
                    self.agent.put(&url)
                };
                if let Some(auth) = auth {
                    request = request.header("Authorization", auth);
                }
                if let Some(content_type) = content_type {
                    request = request.content_type(content_type);
                }
                request.send(body.unwrap_or_default())
            }
            "DELETE" => self.agent.delete(&url).call(),
            other => panic!("method {other}"),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        if status >= 400 {
            let content_type = response
                .headers()
                .get("content-type")
                .expect("content type");
            assert_eq!(content_type, "application/problem+json", "{text}");
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str, auth: Option<&str>) -> (u16, Value) {
        self.request("GET", path, auth, None, None)
    }

    pub fn post_json(&self, path: &str, auth: Option<&str>, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        self.request("POST", path, auth, Some("application/json"), Some(bytes))
    }

    pub fn put_json(&self, path: &str, auth: Option<&str>, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        self.request("PUT", path, auth, Some("application/json"), Some(bytes))
    }

    /// `POST /auth` with the password provider.
    pub fn password(&self, user: &str, password: &str, register: bool) -> (u16, Value) {
        self.post_json(
            "/auth",
            None,
            &json!({"provider": "password", "data": user, "app_id": APP_ID,
                "user_info": {"register": register, "password": password}}),
        )
    }

    /// Registers `user` and returns its refresh token string.
    pub fn register(&self, user: &str, password: &str) -> String {
        let (status, body) = self.password(user, password, true);
        assert_eq!(status, 200, "{body}");
        refresh_token(&body)
    }

    /// Logs `user` in and returns its refresh token string.
    pub fn login(&self, user: &str, password: &str) -> String {
        let (status, body) = self.password(user, password, false);
        assert_eq!(status, 200, "{body}");
        refresh_token(&body)
    }

    /// `POST /auth` with the debug provider.
    pub fn debug_login(&self, identity: &str) -> (u16, Value) {
        self.post_json(
            "/auth",
            None,
            &json!({"provider": "debug", "data": identity, "app_id": APP_ID, "user_info": {}}),
        )
    }

    /// `POST /auth` with the realm provider: an access token request.
    pub fn access(&self, refresh: &str, path: &str) -> (u16, Value) {
        self.post_json(
            "/auth",
            None,
            &json!({"provider": "realm", "data": refresh, "app_id": APP_ID, "path": path,
                "user_info": {}}),
        )
    }

    /// `POST /auth` with the password provider over a new connection from the loopback
    /// address `from` (e.g. 127.0.0.2): the status, the `Retry-After` header and the body.
    pub fn password_from(
        &self,
        from: std::net::Ipv4Addr,
        user: &str,
        password: &str,
    ) -> (u16, Option<String>, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = json!({"provider": "password", "data": user, "app_id": APP_ID,
            "user_info": {"password": password}})
        .to_string();
        let request = format!(
            "POST /auth HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let addr = self.addr;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let answer = runtime.block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((from, 0)))?;
            let mut stream = socket.connect(addr).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut answer = String::new();
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_string(&mut answer))
                .await??;
            Ok::<_, std::io::Error>(answer)
        });
        let answer = answer.unwrap_or_else(|e| panic!("POST /auth from {from}: {e}"));
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let retry_after = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("retry-after")
                .then(|| value.trim().to_owned())
        });
        (
            status,
            retry_after,
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    pub fn revoke(&self, auth: &str, token: &str) -> (u16, Value) {
        self.post_json("/auth/revoke", Some(auth), &json!({ "token": token }))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// The `refresh_token.token` string of a login answer.
pub fn refresh_token(body: &Value) -> String {
    body["refresh_token"]["token"]
        .as_str()
        .expect("refresh token")
        .to_owned()
}

/// The identity inside a token string (read without verification).
pub fn identity(token: &str) -> String {
    decode_token_unverified(token).expect("token").identity
}

pub fn token_data(token: &str) -> TokenData {
    decode_token_unverified(token).expect("token")
}

/// Asserts a problem answer: status, code, and the documented `type`.
#[track_caller]
pub fn assert_problem(answer: &(u16, Value), status: u16, code: i64) {
    let (got, body) = answer;
    assert_eq!(
        (*got, body["code"].as_i64()),
        (status, Some(code)),
        "{body}"
    );
    assert_eq!(body["status"].as_u64(), Some(u64::from(status)), "{body}");
    assert!(body["title"].is_string(), "{body}");
    let kind = body["type"].as_str().expect("type");
    if (600..700).contains(&code) {
        assert!(
            kind.starts_with("https://realm.io/docs/object-server/problems/"),
            "{body}"
        );
    } else {
        assert_eq!(kind, "about:blank");
    }
}

/// A synced configuration of `url` with one class, `Note {id: int (primary key), text: string}`.
pub fn notes_config(user: &shoal::User, url: &str) -> shoal::Config {
    let mut schema = shoal::Schema::new();
    schema.add_class("Note", Some("id")).unwrap();
    schema
        .add_property(
            "Note",
            "id",
            shoal::PropertyType::Int,
            shoal::PropertyFlags::NONE,
            None,
        )
        .unwrap();
    schema
        .add_property(
            "Note",
            "text",
            shoal::PropertyType::String,
            shoal::PropertyFlags::NONE,
            None,
        )
        .unwrap();
    let mut config = shoal::Config::new("unused");
    config.set_schema(schema).unwrap();
    config.set_sync(shoal::SyncConfig::new(user, url).unwrap());
    config
}

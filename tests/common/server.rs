//! A real `shoal-server` in the test process, on a loopback port, with its own runtime.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use shoal_server::{PasswordHashing, ServerConfig};

pub const APP_ID: &str = "io.shoal.tests";
pub const ADMIN_PASSWORD: &str = "admin-password";
pub const WAIT: Duration = Duration::from_secs(20);

/// A `shoal-server` on its own tokio runtime in a background thread.
pub struct Server {
    pub addr: SocketAddr,
    pub config: ServerConfig,
    pub tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The test configuration: fast (insecure) argon2, the debug provider, an admin password.
pub fn server_config(data_dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(data_dir);
    config.password_hashing = PasswordHashing::InsecureFastForTests;
    config.debug_provider = true;
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(|_| {})
    }

    pub fn start_with(edit: impl FnOnce(&mut ServerConfig)) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut config = server_config(tmp.path());
        edit(&mut config);
        Server::start_at(None, config, Some(tmp))
    }

    /// Starts on `addr` (retrying while the port is still taken) or on a free port.
    pub fn start_at(
        addr: Option<SocketAddr>,
        config: ServerConfig,
        tmp: Option<tempfile::TempDir>,
    ) -> Server {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = mpsc::channel();
        let run_config = config.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let want = addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
                let deadline = Instant::now() + WAIT;
                let listener = loop {
                    match tokio::net::TcpListener::bind(want).await {
                        Ok(l) => break l,
                        Err(e) if Instant::now() < deadline => {
                            eprintln!("bind {want}: {e}; retrying");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("bind {want}: {e}"),
                    }
                };
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let shutdown = async move {
                    let _ = stopped.await;
                };
                shoal_server::run(listener, run_config, shutdown)
                    .await
                    .expect("server runs");
            });
        });
        let addr = addr_rx.recv_timeout(WAIT).expect("server bound");
        let server = Server {
            addr,
            config,
            tmp,
            stop: Some(stop),
            thread: Some(thread),
        };
        server.wait_healthy();
        server
    }

    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + WAIT;
        while http_get(&format!("http://{}/health", self.addr)).0 != 200 {
            assert!(Instant::now() < deadline, "server never became healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The auth URL as ROS clients wrote it.
    pub fn auth_url(&self) -> String {
        format!("http://{}/auth", self.addr)
    }

    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }

    /// Stops the server and starts it again on the same port with the same data.
    pub fn stopped(mut self) -> StoppedServer {
        self.shutdown();
        StoppedServer {
            addr: self.addr,
            config: self.config.clone(),
            tmp: self.tmp.take(),
        }
    }

    /// `POST /auth` with the `realm` provider: the status and Realm code of the answer.
    pub fn access(&self, refresh_token: &str, path: &str) -> (u16, Option<i64>) {
        let body = json!({"provider": "realm", "data": refresh_token, "app_id": APP_ID,
            "path": path, "user_info": {}});
        let (status, answer) = http_post(&self.auth_url(), &body);
        (status, answer["code"].as_i64())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A stopped server whose port and data are kept for a restart.
pub struct StoppedServer {
    pub addr: SocketAddr,
    pub config: ServerConfig,
    pub tmp: Option<tempfile::TempDir>,
}

impl StoppedServer {
    pub fn auth_url(&self) -> String {
        format!("http://{}/auth", self.addr)
    }

    pub fn restart(self) -> Server {
        Server::start_at(Some(self.addr), self.config, self.tmp)
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

pub fn http_get(url: &str) -> (u16, Json) {
    match agent().get(url).call() {
        Ok(mut r) => {
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (
                r.status().as_u16(),
                serde_json::from_str(&text).unwrap_or(Json::Null),
            )
        }
        Err(_) => (0, Json::Null),
    }
}

pub fn http_post(url: &str, body: &Json) -> (u16, Json) {
    let mut r = agent()
        .post(url)
        .content_type("application/json")
        .send(serde_json::to_vec(body).unwrap())
        .expect("request");
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        r.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Json::Null),
    )
}

/// A loopback address nothing listens on.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/auth")
}

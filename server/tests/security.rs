//! The real `shoal-server` binary exposed: no admin with an empty password, a generated admin
//! password in a 0600 file, configuration from `SHOAL_*` variables, a flood of wrong-password
//! logins with the server's memory measured, and the modes of everything under `--data`.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shoal::{App, Config, Credentials, PropertyFlags, PropertyType, Realm, Schema, SyncConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(60);

/// A `shoal-server` child process; killed when dropped. Its stderr goes to `log`.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _logs: tempfile::TempDir,
}

impl Server {
    /// Starts the binary with `--data data --listen 127.0.0.1:0`, `args` and `env` (and no
    /// other `SHOAL_*` variable of the test's environment).
    fn start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::try_start(data, args, env).unwrap_or_else(|log| panic!("no address; log:\n{log}"))
    }

    /// As [`Server::start`]; `Err(its log)` if it exits without announcing an address.
    fn try_start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Server, String> {
        let logs = tempfile::tempdir().unwrap();
        let log = logs.path().join("stderr");
        let mut command = Command::new(env!("CARGO_BIN_EXE_shoal-server"));
        for (name, _) in std::env::vars() {
            if name.starts_with("SHOAL_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("spawn shoal-server");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.wait();
            return Err(fs::read_to_string(&log).unwrap_or_default());
        };
        let mut server = Server {
            addr: addr.parse().unwrap(),
            child,
            log,
            _logs: logs,
        };
        // The address is printed before the state is opened: a bad configuration ends the
        // process after it.
        let deadline = Instant::now() + WAIT;
        while http(server.addr, "GET", "/health", None, None).0 != 200 {
            if server.child.try_wait().unwrap().is_some() {
                return Err(server.log());
            }
            assert!(
                Instant::now() < deadline,
                "never healthy:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn auth_url(&self) -> String {
        format!("http://{}/auth", self.addr)
    }

    /// `POST /auth` with the password provider.
    fn password(&self, user: &str, password: &str, register: bool) -> (u16, Value) {
        let body = json!({"provider": "password", "data": user, "app_id": "security",
            "user_info": {"register": register, "password": password}});
        http(self.addr, "POST", "/auth", None, Some(&body))
    }

    /// Stops it with SIGTERM and waits (the storage is closed afterwards).
    fn stop(mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // Safety: `pid` is our own child, not waited for yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}\n{}", self.log());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One blocking HTTP request; the status and the body as JSON (`Null` if none).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let url = format!("http://{addr}{path}");
    let response = match (method, body) {
        ("GET", _) => {
            let mut request = agent.get(&url);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        }
        (_, body) => {
            let mut request = if method == "PUT" {
                agent.put(&url)
            } else {
                agent.post(&url)
            };
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request
                .content_type("application/json")
                .send(serde_json::to_vec(body.unwrap_or(&Value::Null)).unwrap())
        }
    };
    match response {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

fn refresh_token(body: &Value) -> String {
    body["refresh_token"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token in {body}"))
        .to_owned()
}

fn is_admin(body: &Value) -> bool {
    body["refresh_token"]["token_data"]["is_admin"] == true
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `VmRSS` or `VmHWM` of a process, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or(0)
}

// --- The built-in admin ----------------------------------------------------------------------

#[test]
fn a_fresh_server_refuses_the_empty_admin_password_and_generates_one_in_a_0600_file() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--insecure-fast-password-hashing"], &[]);
    let (status, body) = server.password("realm-admin", "", false);
    assert_eq!((status, body["code"].as_i64()), (400, Some(601)), "{body}");

    let file = data.path().join("admin-password");
    assert_eq!(mode(&file), 0o600);
    let generated = fs::read_to_string(&file).unwrap();
    let generated = generated.trim_end_matches('\n');
    assert!(generated.len() >= 24, "{generated:?}");
    let (status, body) = server.password("realm-admin", generated, false);
    assert_eq!(status, 200, "{body}");
    assert!(is_admin(&body));
    // The log says where the password is, never the password.
    let log = server.log();
    assert!(log.contains(&file.display().to_string()), "{log}");
    assert!(!log.contains(generated), "{log}");

    // A restart keeps the generated password (and its file).
    server.stop();
    let server = Server::start(data.path(), &["--insecure-fast-password-hashing"], &[]);
    assert_eq!(fs::read_to_string(&file).unwrap().trim_end(), generated);
    assert_eq!(server.password("realm-admin", generated, false).0, 200);
    assert_eq!(server.password("realm-admin", "", false).0, 400);
}

#[test]
fn the_admin_password_comes_from_the_environment_or_a_file_and_replaces_the_generated_one() {
    let data = tempfile::tempdir().unwrap();
    let generated_file = data.path().join("admin-password");
    let server = Server::start(data.path(), &["--insecure-fast-password-hashing"], &[]);
    let generated = fs::read_to_string(&generated_file).unwrap();
    server.stop();

    // SHOAL_ADMIN_PASSWORD: the operator's password replaces the generated one, whose file
    // goes away.
    let server = Server::start(
        data.path(),
        &[],
        &[
            ("SHOAL_ADMIN_PASSWORD", "from the environment"),
            ("SHOAL_INSECURE_FAST_PASSWORD_HASHING", "true"),
        ],
    );
    assert!(!generated_file.exists());
    let (status, body) = server.password("realm-admin", "from the environment", false);
    assert!(status == 200 && is_admin(&body), "{body}");
    assert_eq!(
        server
            .password("realm-admin", generated.trim_end(), false)
            .0,
        401
    );
    assert!(!server.log().contains("from the environment"));
    server.stop();

    // --admin-password-file (one trailing newline is not part of the password).
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("admin");
    fs::write(&secret, "from a file\n").unwrap();
    let mut args = vec!["--insecure-fast-password-hashing", "--admin-password-file"];
    let secret_arg = secret.to_str().unwrap().to_owned();
    args.push(&secret_arg);
    let server = Server::start(data.path(), &args, &[]);
    assert_eq!(server.password("realm-admin", "from a file", false).0, 200);
    assert_eq!(
        server
            .password("realm-admin", "from the environment", false)
            .0,
        401
    );
    server.stop();

    // Without any, the operator's last password stays (nothing is generated over it).
    let server = Server::start(data.path(), &["--insecure-fast-password-hashing"], &[]);
    assert!(!generated_file.exists());
    assert_eq!(server.password("realm-admin", "from a file", false).0, 200);
    server.stop();

    // An empty one is refused at start; so is a command-line password together with a file.
    let empty = secrets.path().join("empty");
    fs::write(&empty, "\n").unwrap();
    let empty_arg = empty.to_str().unwrap().to_owned();
    let refused = Server::try_start(data.path(), &["--admin-password-file", &empty_arg], &[]);
    assert!(refused.is_err_and(|log| log.contains("empty")));
    let refused = Server::try_start(data.path(), &[], &[("SHOAL_ADMIN_PASSWORD", "")]);
    assert!(refused.is_err_and(|log| log.contains("empty")));
}

#[test]
fn an_admin_password_on_the_command_line_is_warned_about() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            "--insecure-fast-password-hashing",
            "--admin-password",
            "visible in ps",
        ],
        &[],
    );
    assert_eq!(
        server.password("realm-admin", "visible in ps", false).0,
        200
    );
    let log = server.log();
    assert!(
        log.contains("WARN") && log.contains("SHOAL_ADMIN_PASSWORD"),
        "{log}"
    );
    assert!(!log.contains("visible in ps"), "{log}");
    let help = Command::new(env!("CARGO_BIN_EXE_shoal-server"))
        .arg("--help")
        .env("SHOAL_ADMIN_PASSWORD", "not in the help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("[env: SHOAL_ADMIN_PASSWORD]"), "{help}");
    assert!(!help.contains("not in the help"), "{help}");
}

#[test]
fn every_flag_can_come_from_a_shoal_variable() {
    let help = Command::new(env!("CARGO_BIN_EXE_shoal-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for variable in [
        "SHOAL_DATA",
        "SHOAL_LISTEN",
        "SHOAL_ACCESS_TOKEN_TTL",
        "SHOAL_REFRESH_TOKEN_TTL",
        "SHOAL_DEBUG_PROVIDER",
        "SHOAL_ADMIN_PASSWORD_FILE",
        "SHOAL_MAX_CONNECTIONS",
        "SHOAL_SYNC_IDLE_TIMEOUT",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "{variable}:\n{help}"
        );
    }
    // Configured entirely through the environment: data, debug provider, TTL.
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-server"))
        .env("SHOAL_DATA", data.path())
        .env("SHOAL_LISTEN", "127.0.0.1:0")
        .env("SHOAL_DEBUG_PROVIDER", "true")
        .env("SHOAL_ACCESS_TOKEN_TTL", "77")
        .env("SHOAL_INSECURE_FAST_PASSWORD_HASHING", "true")
        .stdout(Stdio::piped())
        .stderr(File::create(logs.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let body = json!({"provider": "debug", "data": "bob", "app_id": "a", "user_info": {}});
    let (status, login) = http(addr, "POST", "/auth", None, Some(&body));
    assert_eq!(status, 200, "{login}");
    let access = json!({"provider": "realm", "data": refresh_token(&login), "app_id": "a",
        "path": "/~/x", "user_info": {}});
    let (status, access) = http(addr, "POST", "/auth", None, Some(&access));
    assert_eq!(status, 200, "{access}");
    let data_of = |t: &Value| t["access_token"]["token_data"]["expires"].as_i64().unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!(
        (now + 70..=now + 80).contains(&data_of(&access)),
        "{access}"
    );
    assert!(data.path().join("auth.redb").exists());
    let _ = child.kill();
    let _ = child.wait();
}

// --- A flood of logins -----------------------------------------------------------------------

/// `POST /auth` over a fresh connection from the loopback address `from`; the status (0 if
/// the connection failed).
async fn login_from(from: Ipv4Addr, server: SocketAddr, user: String, password: &str) -> u16 {
    let attempt = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((from, 0)))?;
        let mut stream = socket.connect(server).await?;
        let body = json!({"provider": "password", "data": user, "app_id": "flood",
            "user_info": {"password": password}})
        .to_string();
        let request = format!(
            "POST /auth HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(120), attempt).await {
        Ok(Ok(answer)) => answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// 256 wrong-password logins at once, each from its own loopback address (so that throttling
/// by address does not stop them) and for its own unknown user name (unknown names cost a
/// hash as well: the time must not tell them apart), against the real binary with the real
/// argon2 cost. Its peak RSS stays bounded, and an honest login works afterwards.
#[test]
fn a_flood_of_wrong_password_logins_keeps_the_server_memory_bounded() {
    const ATTEMPTS: u32 = 256;
    const LIMIT_MIB: u64 = 160;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[], &[("SHOAL_ADMIN_PASSWORD", "admin pw")]);
    assert_eq!(server.password("honest", "right password", true).0, 200);
    let pid = server.pid();
    let before = status_kib(pid, "VmRSS");

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(status_kib(pid, "VmRSS"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = server.addr;
    let statuses: Vec<u16> = runtime.block_on(async move {
        let tasks: Vec<_> = (0..ATTEMPTS)
            .map(|i| {
                let from = Ipv4Addr::new(
                    127,
                    1,
                    u8::try_from(i / 200).unwrap(),
                    u8::try_from(1 + i % 200).unwrap(),
                );
                tokio::spawn(login_from(from, addr, format!("nobody-{i}"), "wrong"))
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    });
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let hwm = status_kib(pid, "VmHWM");
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count();
    println!(
        "{ATTEMPTS} concurrent wrong-password logins in {elapsed:.1?}: RSS before {} MiB, peak \
         sampled {} MiB, VmHWM {} MiB; answers: {} × 401, {} × 429, {} × 503, {} other",
        before / 1024,
        peak / 1024,
        hwm / 1024,
        count(401),
        count(429),
        count(503),
        statuses.len() - count(401) - count(429) - count(503),
    );
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}\n{}",
        server.log()
    );
    assert!(
        hwm.max(peak) < LIMIT_MIB * 1024,
        "peak {} MiB",
        hwm.max(peak) / 1024
    );
    // An honest user still gets in.
    let (status, body) = server.password("honest", "right password", false);
    assert_eq!(status, 200, "{body}");
}

// --- File modes ------------------------------------------------------------------------------

/// Every file under `dir` is 0600 and every directory 0700 (`dir` itself is not checked).
fn assert_private_tree(dir: &Path) -> usize {
    let mut seen = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            seen += 1 + assert_private_tree(&path);
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
            seen += 1;
        }
    }
    seen
}

/// Logs a user in and syncs a realm with one object through the server.
fn sync_one_realm(server: &Server, base: &Path, register: bool) {
    let app = App::new(base, "io.shoal.security").unwrap();
    let credentials = Credentials::password("modes", "pw", register).unwrap();
    let user = app.login(&credentials, &server.auth_url()).unwrap();
    let mut schema = Schema::new();
    schema.add_class("Item", Some("id")).unwrap();
    schema
        .add_property("Item", "id", PropertyType::Int, PropertyFlags::NONE, None)
        .unwrap();
    let mut config = Config::new("unused");
    config.set_schema(schema).unwrap();
    let url = format!("realm://{}/~/items", server.addr);
    config.set_sync(SyncConfig::new(&user, &url).unwrap());
    let realm = Realm::open(&config).unwrap();
    realm.begin_write().unwrap();
    realm
        .create_object("Item", Some(&shoal::Value::Int(i64::from(register))))
        .unwrap();
    realm.commit().unwrap();
    realm.session().unwrap().wait_for_upload(WAIT).unwrap();
}

#[test]
fn everything_under_a_precreated_0755_data_directory_is_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    let clients = tempfile::tempdir().unwrap();

    let server = Server::start(&data, &["--insecure-fast-password-hashing"], &[]);
    sync_one_realm(&server, clients.path(), true);
    let log = server.log();
    assert!(
        log.contains("WARN") && log.contains("readable by its group or others"),
        "no warning about the 0755 data directory:\n{log}"
    );
    server.stop();
    // auth.redb, the keys, admin-password, sync.redb, realms/, realms/1/{log.redb,server.realm,…}
    assert!(assert_private_tree(&data) >= 8);
    assert_eq!(
        mode(&data),
        0o755,
        "the operator's directory itself is left alone"
    );

    // What an older server left readable by others is tightened at the next start.
    for path in [data.join("sync.redb"), data.join("realms/1/log.redb")] {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    fs::set_permissions(data.join("realms"), fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start(&data, &["--insecure-fast-password-hashing"], &[]);
    sync_one_realm(&server, clients.path(), false);
    server.stop();
    assert_private_tree(&data);
}

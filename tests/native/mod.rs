//! What the C and C++ ABI tests share: finding the static library and the `shoal-server`
//! binary of this build, running the server on a free loopback port, and running a test
//! program with a deadline. (`tests/c_abi.rs` documents the lookup rules.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// How long a test program may run before it is killed (it waits on threads and callbacks; a
/// deadlock must fail the test, not hang it).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// `target/<profile>` (or `target/<triple>/<profile>`) of this build: the test executable is
/// `<that>/deps/c_abi-<hash>`.
pub fn profile_dir_of_this_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    Some(deps.parent()?.to_path_buf())
}

/// Finds `libshoal.a` of this build. `cargo test` compiles the library with every crate type
/// of Cargo.toml (staticlib, cdylib, rlib) into `target/<profile>/deps/`; only `cargo build`
/// also copies them up to `target/<profile>/`, where a copy can be older than the code under
/// test. So both places are looked at, for the profile directory of this test executable and
/// for `$CARGO_TARGET_DIR` (else `<manifest>/target`), and the newest file wins.
pub fn find_static_lib() -> PathBuf {
    find_built_library(if cfg!(windows) {
        "shoal.lib"
    } else {
        "libshoal.a"
    })
}

/// Finds the shared library of this build (`libshoal.so`), as [`find_static_lib`] does.
pub fn find_shared_lib() -> PathBuf {
    find_built_library(if cfg!(windows) {
        "shoal.dll"
    } else if cfg!(target_os = "macos") {
        "libshoal.dylib"
    } else {
        "libshoal.so"
    })
}

/// The newest `lib_name` of this build (see [`find_static_lib`]).
fn find_built_library(lib_name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = Vec::new();
    let profile_dir = profile_dir_of_this_exe();
    if let Some(dir) = &profile_dir {
        dirs.push(dir.clone());
    }
    let profile = profile_dir
        .as_ref()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "debug".to_owned());
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { manifest.join(d) })
        .unwrap_or_else(|| manifest.join("target"));
    dirs.push(target_dir.join(&profile));
    dirs.push(manifest.join("target").join(&profile));
    let mut candidates: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        for p in [dir.join("deps").join(lib_name), dir.join(lib_name)] {
            if !candidates.contains(&p) {
                candidates.push(p);
            }
        }
    }
    let newest = candidates
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p.clone());
    match newest {
        Some(p) => p,
        None => panic!(
            "the library {lib_name} was not found; looked at:\n  {}\n\
             `cargo test` builds it with the library (crate-types in Cargo.toml); \
             try `cargo build --lib` (with the same profile and target) first",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join("\n  ")
        ),
    }
}

/// `dir` and what lies below it, newest modification time first.
pub fn newest_file_under(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let modified = if path.is_dir() {
            newest_file_under(&path)
        } else {
            entry.metadata().ok().and_then(|m| m.modified().ok())
        };
        newest = newest.max(modified);
    }
    newest
}

/// The `shoal-server` binary of this build: `$SHOAL_SERVER`, else `shoal-server` in the profile
/// directory of this test executable, `$CARGO_TARGET_DIR/<profile>` or `<manifest>/target/<profile>`.
/// Panics saying how to build it when it is missing; warns when it is older than its sources.
pub fn find_server_binary() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe_name = format!("shoal-server{}", std::env::consts::EXE_SUFFIX);
    if let Some(explicit) = std::env::var_os("SHOAL_SERVER") {
        let p = PathBuf::from(explicit);
        assert!(p.is_file(), "SHOAL_SERVER={} is not a file", p.display());
        return p;
    }
    let profile_dir = profile_dir_of_this_exe();
    let profile = profile_dir
        .as_ref()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "debug".to_owned());
    let mut candidates: Vec<PathBuf> = profile_dir.iter().map(|d| d.join(&exe_name)).collect();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        let t = if t.is_absolute() { t } else { manifest.join(t) };
        candidates.push(t.join(&profile).join(&exe_name));
    }
    candidates.push(manifest.join("target").join(&profile).join(&exe_name));
    let Some(found) = candidates.iter().find(|p| p.is_file()) else {
        panic!(
            "the shoal-server binary was not found (the C users test needs it); build it with \
             `cargo build -p shoal-server` (same profile) or `cargo build`, or set SHOAL_SERVER. \
             Looked at:\n  {}",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join("\n  ")
        )
    };
    let built = std::fs::metadata(found).and_then(|m| m.modified()).ok();
    let sources = [manifest.join("server/src"), manifest.join("src")]
        .iter()
        .filter_map(|d| newest_file_under(d))
        .max();
    if let (Some(built), Some(sources)) = (built, sources) {
        if sources > built {
            eprintln!(
                "warning: {} is older than its sources; run `cargo build -p shoal-server`",
                found.display()
            );
        }
    }
    found.clone()
}

/// A `shoal-server` child process on a free loopback port; killed on drop.
pub struct AuthServer {
    pub auth_url: String,
    child: Child,
    log: PathBuf,
}

impl AuthServer {
    /// Starts the server with its state in `dir` and waits for its `listening on ADDR` line.
    pub fn start(dir: &Path) -> AuthServer {
        let exe = find_server_binary();
        println!("starting {}", exe.display());
        let data = dir.join("server-data");
        let log = dir.join("server.log");
        let log_file = std::fs::File::create(&log).expect("server log file");
        let mut child = Command::new(&exe)
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--debug-provider"])
            // Hidden flag: the cheapest argon2 parameters (insecure; tests only).
            .arg("--insecure-fast-password-hashing")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // A file, not a pipe: nobody reads the server's log while it runs.
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", exe.display()));
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Drain anything else until the server exits.
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(30));
        let addr = match line {
            Ok(Some(Ok(l))) if l.starts_with("listening on ") => {
                l["listening on ".len()..].trim().to_owned()
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "shoal-server did not announce its address ({other:?}); its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        AuthServer {
            child,
            auth_url: format!("http://{addr}/auth"),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion with a timeout, returning (status, stdout, stderr).
pub fn run_with_timeout(
    mut cmd: Command,
    timeout: Duration,
) -> (std::process::ExitStatus, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the test program");
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the test program") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let status = child.wait().expect("wait for the killed test program");
            let stdout = out_thread.join().unwrap_or_default();
            let stderr = err_thread.join().unwrap_or_default();
            panic!(
                "the test program did not finish within {timeout:?} (deadlock?); killed ({status})\n\
                 --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        out_thread.join().unwrap_or_default(),
        err_thread.join().unwrap_or_default(),
    )
}

/// Runs the compiled test program `exe` (described as `what`, e.g. "C++ test program") in
/// `work` against a fresh `shoal-server`, with `SHOAL_TEST_TMPDIR=files` and
/// `SHOAL_TEST_AUTH_URL`; requires exit 0 and a last line `N passed, 0 failed` where N is the
/// number of `test ...` lines it printed. Returns what the program printed on stderr.
pub fn run_program_against_server(exe: &Path, work: &Path, files: &Path, what: &str) -> String {
    run_program_against_server_with_env(exe, work, files, what, &[])
}

/// [`run_program_against_server`] with extra environment variables for the program (the
/// sanitizer options of a sanitized build, say).
pub fn run_program_against_server_with_env(
    exe: &Path,
    work: &Path,
    files: &Path,
    what: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> String {
    let server = AuthServer::start(work);
    println!("auth server at {}", server.auth_url);
    let mut run = Command::new(exe);
    run.env("SHOAL_TEST_TMPDIR", files)
        .env("SHOAL_TEST_AUTH_URL", &server.auth_url)
        .envs(env.iter().copied())
        .current_dir(work);
    let (status, stdout, stderr) = run_with_timeout(run, RUN_TIMEOUT);
    let server_log = server.log_text();
    drop(server);
    println!("--- {what} stdout ---\n{stdout}");
    if !stderr.is_empty() {
        println!("--- {what} stderr ---\n{stderr}");
    }
    assert!(
        status.success(),
        "the {what} failed ({status}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n\
         --- shoal-server log ---\n{server_log}"
    );
    // The last line is the summary, and every test function ran and passed.
    let summary = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let passed: usize = summary
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!("unexpected summary line {summary:?} (want \"N passed, 0 failed\")")
        });
    let ran = stdout.lines().filter(|l| l.starts_with("test ")).count();
    assert!(passed > 0, "no tests of the {what} ran");
    assert_eq!(passed, ran, "the summary does not match the tests that ran");
    stderr
}

//! The C++ binding (`bindings/cpp/shoal.hpp`) as C++ sees it: compiles `tests/cpp/test_shoal.cpp`
//! with `$CXX` (else `c++`) and `-std=c++17 -Wall -Wextra -Werror -pedantic` against the static
//! library of this build, starts a real `shoal-server` (as `tests/c_abi.rs` does: same binary
//! lookup, `--debug-provider`, cheap password hashing, a free loopback port), runs the program
//! with the server's auth URL in `SHOAL_TEST_AUTH_URL`, and requires exit 0 with the summary
//! `N passed, 0 failed` and no skipped test. A missing C++ compiler fails the test.
//!
//! `cargo test --test cpp_abi -- --nocapture` shows the program's output.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the program may run before it is killed (a deadlock must fail, not hang).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// `target/<profile>` of this build (this executable is `<that>/deps/cpp_abi-<hash>`), and
/// `$CARGO_TARGET_DIR/<profile>` and `<manifest>/target/<profile>`.
fn profile_dirs() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()));
    let profile = own
        .as_ref()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "debug".to_owned());
    let mut dirs: Vec<PathBuf> = own.into_iter().collect();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        dirs.push(if t.is_absolute() { t } else { manifest.join(t) }.join(&profile));
    }
    dirs.push(manifest.join("target").join(&profile));
    dirs.dedup();
    dirs
}

/// The newest `libshoal.a` in `deps/` or beside it (`cargo build` copies it up, possibly older
/// than the code under test).
fn find_static_lib() -> PathBuf {
    let candidates: Vec<PathBuf> = profile_dirs()
        .iter()
        .flat_map(|d| [d.join("deps/libshoal.a"), d.join("libshoal.a")])
        .collect();
    candidates
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| {
            panic!(
                "libshoal.a not found (try `cargo build --lib`); looked at:\n  {}",
                show(&candidates)
            )
        })
}

/// `$SHOAL_SERVER`, else `shoal-server` of this build (`cargo build` builds it).
fn find_server_binary() -> PathBuf {
    if let Some(explicit) = std::env::var_os("SHOAL_SERVER") {
        return PathBuf::from(explicit);
    }
    let exe = format!("shoal-server{}", std::env::consts::EXE_SUFFIX);
    let candidates: Vec<PathBuf> = profile_dirs().iter().map(|d| d.join(&exe)).collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the shoal-server binary was not found; build it with `cargo build -p shoal-server` \
                 (same profile) or set SHOAL_SERVER. Looked at:\n  {}",
                show(&candidates)
            )
        })
}

fn show(paths: &[PathBuf]) -> String {
    let v: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    v.join("\n  ")
}

/// A `shoal-server` child on a free loopback port; killed on drop.
struct Server {
    child: Child,
    auth_url: String,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let exe = find_server_binary();
        let log = dir.join("server.log");
        let mut child = Command::new(&exe)
            .arg("--data")
            .arg(dir.join("server-data"))
            .args(["--listen", "127.0.0.1:0", "--debug-provider"])
            .arg("--insecure-fast-password-hashing")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("server log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", exe.display()));
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(30));
        let mut server = Server {
            child,
            auth_url: String::new(),
            log,
        };
        match line {
            Ok(Some(Ok(l))) if l.starts_with("listening on ") => {
                server.auth_url = format!("http://{}/auth", l["listening on ".len()..].trim());
                server
            }
            other => panic!(
                "shoal-server did not announce its address ({other:?}); its log:\n{}",
                server.log_text()
            ),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion (killed after `timeout`): (status, stdout, stderr).
fn run_with_timeout(
    mut cmd: Command,
    timeout: Duration,
) -> (std::process::ExitStatus, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the C++ test program");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the C++ test program") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the C++ test program did not finish within {timeout:?} (deadlock?)\n\
                 --- stdout ---\n{}\n--- stderr ---\n{}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

#[test]
fn cpp_program_passes_against_the_binding_and_static_library() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = find_static_lib();
    println!("linking {}", lib.display());
    let work = tempfile::tempdir().expect("temp dir");
    let exe = work.path().join("test_shoal_cpp");
    let files = work.path().join("files");
    std::fs::create_dir(&files).expect("files dir");

    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_owned());
    let mut compile = Command::new(&cxx);
    compile
        .args([
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-g",
        ])
        .arg("-I")
        .arg(manifest.join("include"))
        .arg("-I")
        .arg(manifest.join("bindings/cpp"))
        .arg(manifest.join("tests/cpp/test_shoal.cpp"))
        .arg(&lib)
        // The system libraries a Rust staticlib needs, after the archive (see tests/c_abi.rs).
        .args(["-lpthread", "-ldl", "-lm"])
        .arg("-o")
        .arg(&exe);
    let output = match compile.output() {
        Ok(output) => output,
        Err(e) => panic!(
            "no C++ compiler: could not run `{cxx}` ({e}). Install one (e.g. `apt-get install g++`) \
             or point CXX at it; this test does not skip without it."
        ),
    };
    assert!(
        output.status.success(),
        "compiling tests/cpp/test_shoal.cpp failed ({}):\n{compile:?}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let server = Server::start(work.path());
    println!("auth server at {}", server.auth_url);
    let mut run = Command::new(&exe);
    run.env("SHOAL_TEST_TMPDIR", &files)
        .env("SHOAL_TEST_AUTH_URL", &server.auth_url)
        .current_dir(work.path());
    let (status, stdout, stderr) = run_with_timeout(run, RUN_TIMEOUT);
    let server_log = server.log_text();
    drop(server);
    println!("--- C++ test program stdout ---\n{stdout}");
    if !stderr.is_empty() {
        println!("--- C++ test program stderr ---\n{stderr}");
    }
    assert!(
        status.success(),
        "the C++ test program failed ({status}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n\
         --- shoal-server log ---\n{server_log}"
    );
    let summary = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let passed: usize = summary
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected summary {summary:?} (want \"N passed, 0 failed\")"));
    let ran = stdout.lines().filter(|l| l.starts_with("test ")).count();
    assert!(passed > 0, "no C++ tests ran");
    assert_eq!(passed, ran, "the summary does not match the tests that ran");
}

//! The C++ binding (`bindings/cpp/shoal.hpp`) as C++ sees it: compiles `tests/cpp/test_shoal.cpp`
//! with `$CXX` (else `c++`) and `-std=c++17 -Wall -Wextra -Werror -pedantic` against the static
//! library of this build, starts a real `shoal-server` (as `tests/c_abi.rs` does: same binary
//! lookup, `--debug-provider`, cheap password hashing, a free loopback port), runs the program
//! with the server's auth URL in `SHOAL_TEST_AUTH_URL`, and requires exit 0 with the summary
//! `N passed, 0 failed` and no skipped test. A missing C++ compiler fails the test.
//!
//! `cargo test --test cpp_abi -- --nocapture` shows the program's output.

mod native;

use native::{find_static_lib, run_with_timeout, AuthServer, RUN_TIMEOUT};
use std::path::Path;
use std::process::Command;

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

    let server = AuthServer::start(work.path());
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

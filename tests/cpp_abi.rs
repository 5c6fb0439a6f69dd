//! The C++ binding (`bindings/cpp/shoal.hpp`) as C++ sees it: compiles `tests/cpp/test_shoal.cpp`
//! with `$CXX` (else `c++`) and `-std=c++17 -Wall -Wextra -Werror -pedantic` against the static
//! library of this build, starts a real `shoal-server` (as `tests/c_abi.rs` does: same binary
//! lookup, `--debug-provider`, cheap password hashing, a free loopback port), runs the program
//! with the server's auth URL in `SHOAL_TEST_AUTH_URL`, and requires exit 0 with the summary
//! `N passed, 0 failed` and no skipped test. A missing C++ compiler fails the test.
//!
//! `cargo test --test cpp_abi -- --nocapture` shows the program's output.

mod native;

use native::{find_static_lib, run_program_against_server};
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

    run_program_against_server(&exe, work.path(), &files, "C++ test program");
}

//! The C ABI as C sees it: compiles `tests/c/test_shoal.c` against `include/shoal.h` and the
//! static library that `cargo test` just built (`target/<profile>/deps/libshoal.a`, or
//! `target/<profile>/libshoal.a` if newer), runs it, and requires it to exit 0 with a summary
//! line `N passed, 0 failed`.
//!
//! Needs a C compiler (`$CC`, else `cc`). Run with `cargo test --test c_abi -- --nocapture` to
//! see the C program's output.
//!
//! The users and sync tests of the C program talk to a real `shoal-server`: this test starts
//! the binary of the same build (`target/<profile>/shoal-server`, built by `cargo build`, since
//! the server is a default member of the workspace; `cargo test --test c_abi` alone does not
//! build it) on a free loopback port with the `debug` provider and cheap password hashing,
//! hands its auth URL to the C program in `SHOAL_TEST_AUTH_URL` (the sync tests derive
//! `realm://HOST:PORT` from it: the sync endpoint shares the listener), and kills it afterwards.

mod native;

use native::{find_static_lib, run_program_against_server};
use std::path::Path;
use std::process::Command;

#[test]
fn c_program_passes_against_the_header_and_static_library() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = find_static_lib();
    println!("linking {}", lib.display());
    let source = manifest.join("tests/c/test_shoal.c");
    let include = manifest.join("include");
    assert!(source.is_file(), "missing {}", source.display());
    assert!(include.join("shoal.h").is_file(), "missing include/shoal.h");

    let work = tempfile::tempdir().expect("temp dir");
    let exe = work.path().join("test_shoal");
    let files = work.path().join("files");
    std::fs::create_dir(&files).expect("files dir");

    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut compile = Command::new(&cc);
    compile
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(&include)
        .arg(&source)
        .arg(&lib)
        // A Rust staticlib bundles the Rust standard library but not the C system libraries
        // it calls into: threads, mutexes, condition variables and thread-local destructors
        // (-lpthread), dynamic symbol lookup used by std for optional libc functions and
        // backtraces (-ldl), and floating-point math such as pow/fmod (-lm). They must follow
        // the archive on the link line (`rustc --print native-static-libs` lists them). On
        // glibc >= 2.34 pthread and dl live in libc itself, but naming them keeps older
        // systems linking.
        .args(["-lpthread", "-ldl", "-lm"])
        .arg("-o")
        .arg(&exe);
    let output = compile
        .output()
        .unwrap_or_else(|e| panic!("could not run the C compiler `{cc}`: {e}"));
    assert!(
        output.status.success(),
        "compiling tests/c/test_shoal.c failed ({}):\n{:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        compile,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    run_program_against_server(&exe, work.path(), &files, "C test program");
}

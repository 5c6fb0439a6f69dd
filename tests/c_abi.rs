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
//!
//! A second test runs the same program built with `-fsanitize=address,undefined` (and
//! LeakSanitizer) and requires it to finish without a single report.

mod native;

use native::{find_static_lib, run_program_against_server, run_program_against_server_with_env};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn c_program_passes_against_the_header_and_static_library() {
    let work = tempfile::tempdir().expect("temp dir");
    let (exe, files) = compile_test_program(work.path(), &[]);
    run_program_against_server(&exe, work.path(), &files, "C test program");
}

/// The same program built with AddressSanitizer, UndefinedBehaviorSanitizer and
/// LeakSanitizer (`-fsanitize=address,undefined`; LeakSanitizer is part of ASan on Linux),
/// stopping at the first report of any of them: the ABI is used as the header says (handles,
/// strings and buffers it returns are freed with the matching function, nothing is read past
/// a length it gives) and the library leaks nothing the program released. The Rust code of
/// the library is not instrumented, but its allocations go through the sanitizer's `malloc`,
/// so a handle the library forgets to free is a leak report too. `tests/c/lsan.supp` lists
/// what is suppressed, and why.
///
/// Needs the compiler's sanitizer runtimes (gcc: Debian's `libasan8` and `libubsan1`, which
/// `.ci/run` installs).
#[test]
fn c_program_is_clean_under_address_undefined_and_leak_sanitizers() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().expect("temp dir");
    let (exe, files) = compile_test_program(
        work.path(),
        &[
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ],
    );
    let suppressions = manifest.join("tests/c/lsan.supp");
    assert!(suppressions.is_file(), "missing {}", suppressions.display());
    let mut lsan_options = std::ffi::OsString::from("suppressions=");
    lsan_options.push(&suppressions);
    lsan_options.push(":print_suppressions=1");
    let env: [(&str, &OsStr); 3] = [
        (
            "ASAN_OPTIONS",
            OsStr::new("detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1"),
        ),
        (
            "UBSAN_OPTIONS",
            OsStr::new("halt_on_error=1:print_stacktrace=1"),
        ),
        ("LSAN_OPTIONS", &lsan_options),
    ];
    let stderr = run_program_against_server_with_env(
        &exe,
        work.path(),
        &files,
        "sanitized C test program",
        &env,
    );
    // Every report fails the run (halt_on_error, a leak's exit code 23); this also catches
    // a report printed by a runtime that was told to carry on.
    for marker in [
        "ERROR: AddressSanitizer",
        "ERROR: LeakSanitizer",
        "runtime error:",
    ] {
        assert!(
            !stderr.contains(marker),
            "the sanitized C test program reported a problem:\n{stderr}"
        );
    }
}

/// Compiles `tests/c/test_shoal.c` against `include/shoal.h` and the static library into
/// `work`, with `extra` compiler flags; returns the executable and an empty `files` folder for
/// the program's realms.
fn compile_test_program(work: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = find_static_lib();
    println!("linking {}", lib.display());
    let source = manifest.join("tests/c/test_shoal.c");
    let include = manifest.join("include");
    assert!(source.is_file(), "missing {}", source.display());
    assert!(include.join("shoal.h").is_file(), "missing include/shoal.h");

    let exe = work.join("test_shoal");
    let files = work.join("files");
    std::fs::create_dir(&files).expect("files dir");

    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut compile = Command::new(&cc);
    compile
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .args(extra)
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
    (exe, files)
}

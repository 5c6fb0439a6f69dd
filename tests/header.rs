//! `include/shoal.h` is generated from `src/ffi/` by cbindgen and checked in; this test fails
//! when it is stale. Run `SHOAL_BLESS=1 cargo test --test header` to regenerate it.

use std::path::Path;

#[test]
fn checked_in_header_matches_the_generated_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen can parse src/ffi")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 header");
    let path = root.join("include/shoal.h");
    if std::env::var_os("SHOAL_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/shoal.h");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "include/shoal.h is stale: run `SHOAL_BLESS=1 cargo test --test header` and commit it"
    );
}

/// Everything the header declares is Shoal's: a stray Rust item (a protocol constant, an enum
/// with bare variant names) would clash with names in C programs.
#[test]
fn header_declares_only_prefixed_names() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/shoal.h"))
            .unwrap();
    for line in header.lines() {
        let declared = if let Some(rest) = line.strip_prefix("#define ") {
            rest.split_whitespace().next()
        } else if let Some(rest) = line
            .strip_prefix("typedef struct ")
            .or_else(|| line.strip_prefix("typedef enum "))
        {
            rest.split_whitespace().next()
        } else if let Some(rest) = line.strip_prefix("enum ") {
            rest.split_whitespace().next()
        } else {
            None
        };
        if let Some(name) = declared.filter(|n| *n != "{") {
            assert!(
                name.starts_with("shoal_") || name.starts_with("SHOAL_"),
                "include/shoal.h declares `{name}`, which is not prefixed: exclude it in cbindgen.toml"
            );
        }
    }
}

/// `src/ffi/codes.rs` (the C constants of every error code and category) is generated from the
/// code table in `src/protocol/codes.rs`; this test fails when it is stale. Run
/// `SHOAL_BLESS=1 cargo test --test header` to regenerate it (then the header).
#[test]
fn c_error_constants_are_generated_from_the_code_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi/codes.rs");
    let generated = shoal::protocol::codes::c_constants();
    if std::env::var_os("SHOAL_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write src/ffi/codes.rs");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "src/ffi/codes.rs is stale: run `SHOAL_BLESS=1 cargo test --test header` and commit it"
    );
}

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

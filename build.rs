//! Gives the shared library an ELF SONAME, so that programs linked with `-lshoal` record
//! `libshoal.so.<compat>` and the loader finds the installed library by that name (see
//! `scripts/install.sh`, which installs the file and its symlinks under that name).
//!
//! `<compat>` is the part of the crate version that changes on a breaking change, by Cargo's
//! rule: the major version from 1.0 on (`libshoal.so.1`), the major and minor before it
//! (`libshoal.so.0.1`), since before 1.0 every minor release may change the C ABI.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // Mach-O (install names) and Windows (DLLs) name shared libraries differently.
    if matches!(os.as_str(), "macos" | "ios" | "windows") {
        return;
    }
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,-soname,{}",
        soname(
            &std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap(),
            &std::env::var("CARGO_PKG_VERSION_MINOR").unwrap(),
        )
    );
}

/// `libshoal.so.1` for 1.y.z, `libshoal.so.0.1` for 0.1.z.
fn soname(major: &str, minor: &str) -> String {
    if major == "0" {
        format!("libshoal.so.0.{minor}")
    } else {
        format!("libshoal.so.{major}")
    }
}

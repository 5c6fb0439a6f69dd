//! The packaging glue stays in step with the header and with what `scripts/install.sh`
//! installs: the Swift module map (`bindings/swift/module.modulemap`) and the Kotlin/Native
//! cinterop definition (`bindings/kotlin/shoal.def.in`) name the installed header and library,
//! the templates use only placeholders the script fills, the header parses on its own (Swift's
//! and Kotlin's importers read it alone) and the shared library carries the SONAME the script
//! links to. Neither Swift nor Kotlin/Native can be run here; `scripts/check_install.sh` checks
//! the installed files themselves.

mod native;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `install ...` command lines of `scripts/install.sh` (continuation lines joined).
fn install_commands() -> Vec<String> {
    read("scripts/install.sh")
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("install "))
        .map(str::to_owned)
        .collect()
}

/// The folder (relative to the prefix, e.g. `include/shoal`) into which `install.sh` installs
/// `source` (a path in the repository, e.g. `include/shoal.h`).
fn installed_folder_of(source: &str) -> String {
    let quoted = format!("\"$repo/{source}\"");
    let command = install_commands()
        .into_iter()
        .find(|c| c.contains(&quoted))
        .unwrap_or_else(|| panic!("scripts/install.sh installs no {source}"));
    let destination = command.split_whitespace().last().unwrap().trim_matches('"');
    destination
        .strip_prefix("$root/")
        .unwrap_or_else(|| panic!("{source} goes to {destination}, outside the prefix"))
        .trim_end_matches('/')
        .to_owned()
}

/// The value `install.sh` fills in for `@NAME@`, e.g. `$prefix/include/shoal`.
fn filled_value(name: &str) -> String {
    let script = read("scripts/install.sh");
    let marker = format!("s|@{name}@|$(sed_escape \"");
    let start = script
        .find(&marker)
        .unwrap_or_else(|| panic!("install.sh does not fill @{name}@"))
        + marker.len();
    script[start..].split('"').next().unwrap().to_owned()
}

/// `key = value` lines of a Kotlin/Native .def file (before a `---` separator).
fn def_properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .take_while(|l| l.trim() != "---")
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// The library name programs link with (`-lshoal`): the package's library target.
fn library_name() -> String {
    env!("CARGO_PKG_NAME").replace('-', "_")
}

#[test]
fn swift_module_map_names_the_installed_header_and_library() {
    let map = read("bindings/swift/module.modulemap");
    let quoted_after = |keyword: &str| -> Vec<String> {
        map.lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix(keyword))
            .map(|rest| rest.trim().trim_matches('"').to_owned())
            .collect()
    };
    assert!(
        map.contains("module Shoal [system] {"),
        "the module is not `Shoal`"
    );
    assert_eq!(quoted_after("header "), ["shoal.h"]);
    assert!(repo().join("include/shoal.h").is_file());
    assert_eq!(quoted_after("link "), [library_name()]);
    // `header "shoal.h"` is relative to the module map: both are installed in one folder.
    assert_eq!(
        installed_folder_of("bindings/swift/module.modulemap"),
        installed_folder_of("include/shoal.h")
    );
}

#[test]
fn kotlin_def_names_the_installed_header_and_library() {
    let def = def_properties(&read("bindings/kotlin/shoal.def.in"));
    let get = |key: &str| -> &str {
        &def.iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("shoal.def.in has no {key}"))
            .1
    };
    assert_eq!(get("headers"), "shoal.h");
    assert_eq!(get("headerFilter"), "shoal.h");
    assert_eq!(get("package"), "shoal");
    assert_eq!(get("compilerOpts"), "-I@INCLUDEDIR@");
    assert_eq!(
        get("linkerOpts"),
        format!("-L@LIBDIR@ -l{}", library_name())
    );
    // @INCLUDEDIR@ is where install.sh puts the header, @LIBDIR@ where it puts the library.
    assert_eq!(
        filled_value("INCLUDEDIR"),
        format!("$prefix/{}", installed_folder_of("include/shoal.h"))
    );
    let script = read("scripts/install.sh");
    assert!(
        script.contains(r#"install -m 755 "$built/libshoal.so" "$root/lib/libshoal.so.$version""#)
            && script.contains(r#"ln -sfn "$soname" "$root/lib/libshoal.so""#),
        "install.sh no longer installs lib/libshoal.so"
    );
    assert_eq!(filled_value("LIBDIR"), "$prefix/lib");
}

#[test]
fn templates_use_only_placeholders_install_sh_fills() {
    let mut templates: Vec<PathBuf> = std::fs::read_dir(repo().join("packaging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    templates.push(repo().join("bindings/kotlin/shoal.def.in"));
    let mut used = BTreeSet::new();
    for template in &templates {
        let text = std::fs::read_to_string(template).unwrap();
        for piece in text.split('@').skip(1).step_by(2) {
            if !piece.is_empty() && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                used.insert(piece.to_owned());
            }
        }
        let fills = read("scripts/install.sh");
        assert!(
            fills.contains(&format!(
                "\"$repo/{}\"",
                template.strip_prefix(repo()).unwrap().display()
            )),
            "install.sh does not install {}",
            template.display()
        );
    }
    assert!(used.contains("PREFIX") && used.contains("VERSION"));
    let script = read("scripts/install.sh");
    for name in used {
        assert!(
            script.contains(&format!("s|@{name}@|")),
            "install.sh does not fill @{name}@"
        );
    }
}

/// Swift's ClangImporter and Kotlin's cinterop parse `shoal.h` on its own, as C: it must
/// include what it uses and nothing outside the C standard library.
#[test]
fn header_parses_on_its_own_as_c_and_cpp() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    for (language, standard) in [("c", "-std=c99"), ("c++", "-std=c++11")] {
        let output = Command::new(&cc)
            .args([
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-x",
                language,
                standard,
            ])
            .arg(repo().join("include/shoal.h"))
            .output()
            .unwrap_or_else(|e| panic!("could not run the C compiler `{cc}`: {e}"));
        assert!(
            output.status.success(),
            "include/shoal.h does not parse alone as {language}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for include in read("include/shoal.h")
        .lines()
        .filter(|l| l.starts_with("#include"))
    {
        assert!(
            ["<stdbool.h>", "<stddef.h>", "<stdint.h>", "<string.h>"]
                .iter()
                .any(|h| include.ends_with(h)),
            "shoal.h includes more than the C standard library: {include}"
        );
    }
}

/// `build.rs` names the shared library `libshoal.so.<compat>`, the name `install.sh` links to
/// and the Python binding asks the loader for.
#[cfg(target_os = "linux")]
#[test]
fn shared_library_carries_the_soname_install_sh_links_to() {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let minor = env!("CARGO_PKG_VERSION_MINOR");
    let expected = if major == "0" {
        format!("libshoal.so.0.{minor}")
    } else {
        format!("libshoal.so.{major}")
    };
    let lib = native::find_shared_lib();
    let output = Command::new("readelf")
        .arg("-d")
        .arg(&lib)
        .output()
        .expect("readelf (binutils, installed with gcc) reads the library's dynamic section");
    let dynamic = String::from_utf8_lossy(&output.stdout);
    assert!(
        dynamic.contains(&format!("Library soname: [{expected}]")),
        "{} has no SONAME {expected}:\n{dynamic}",
        lib.display()
    );
    // install.sh derives the same name from the header's version.
    let script = read("scripts/install.sh");
    assert!(
        script.contains(r#"if [ "$major" = 0 ]; then compat="0.$minor"; else compat="$major"; fi"#)
    );
    assert!(script.contains(r#"soname="libshoal.so.$compat""#));
    assert!(read("include/shoal.h").contains(&format!(
        "#define SHOAL_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
}

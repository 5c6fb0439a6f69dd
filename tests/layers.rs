//! The import layering, checked from the sources (issue 11).
//!
//! - The module import graphs of the core (`src/`), the server (`server/src/`) and the Python
//!   binding (`bindings/python/shoal/*.py`) have no cycles.
//! - `src/ffi/` is the top layer: it may import anything, and nothing else imports it.
//! - The storage engine (`src/store/`) imports neither the merge nor the sync layer
//!   (`crate::sync::`, `crate::merge::`).
//! - The core's layers above the store import only downwards ([`CORE_LAYERS`]): the realm
//!   knows neither users nor sync, users do not know sync.
//!
//! Rust edges are the `crate::…` and `super::…` paths of a file (in `use` trees, grouped ones
//! included, and anywhere in the code), after comments, string and char literals and
//! `#[cfg(test)] mod tests { … }` blocks are removed. A path names the file of its longest
//! module prefix that exists (`a/b.rs` or `a/b/mod.rs`); a name the crate root re-exports
//! (`crate::Realm`) is followed to the module it comes from. Python edges are the
//! `from .x import …`, `from . import x`, `import shoal.x` and `from shoal.x import …`
//! statements, at module level and inside functions alike (an import moved into a function
//! still closes the circle at run time).
//! - DESIGN.md's code map names every source file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Files and their imports: file → files it imports. Files are named relative to the root.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The core's API layers, bottom to top, by file (a name ending in `/` is a folder). A file of
/// one layer may import files of its own layer or of layers below, never above.
const CORE_LAYERS: &[(&str, &[&str])] = &[
    (
        "realm",
        &[
            "scheduler.rs",
            "db.rs",
            "config.rs",
            "object.rs",
            "results.rs",
            "observe.rs",
            "open.rs",
        ],
    ),
    ("users", &["login.rs", "app.rs", "user.rs", "user_store.rs"]),
    ("sync client", &["sync/"]),
];

#[test]
fn ffi_is_the_top_layer_and_the_store_imports_neither_merge_nor_sync() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = String::new();
    let core = rust_graph(&root.join("src"), "lib.rs");
    for (file, imports) in &core {
        if file.starts_with("ffi/") {
            continue;
        }
        for target in imports.iter().filter(|t| t.starts_with("ffi/")) {
            let _ = writeln!(
                problems,
                "src/{file} imports src/{target}: src/ffi/ is the top layer, nothing imports it"
            );
        }
    }
    for (file, forbidden) in store_violations(&root.join("src")) {
        let _ = writeln!(
            problems,
            "src/{file} uses `{forbidden}`: the storage engine must not import the merge or \
             sync layers"
        );
    }
    assert!(
        problems.is_empty(),
        "the import layering is broken:\n{problems}"
    );
}

#[test]
fn the_server_and_the_python_package_have_no_import_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = String::new();
    report_cycles(
        &mut problems,
        "server/src/",
        &rust_graph(&root.join("server/src"), "lib.rs"),
    );
    report_cycles(
        &mut problems,
        "bindings/python/shoal/",
        &python_graph(&root.join("bindings/python/shoal")),
    );
    assert!(problems.is_empty(), "import circles:\n{problems}");
}

#[test]
fn the_core_has_no_import_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = String::new();
    report_cycles(
        &mut problems,
        "src/",
        &rust_graph(&root.join("src"), "lib.rs"),
    );
    assert!(problems.is_empty(), "import circles:\n{problems}");
}

#[test]
fn the_core_layers_import_only_downwards() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let core = rust_graph(&root.join("src"), "lib.rs");
    let layer_of = |file: &str| {
        CORE_LAYERS.iter().position(|(_, files)| {
            files
                .iter()
                .any(|f| file == *f || (f.ends_with('/') && file.starts_with(f)))
        })
    };
    let mut problems = String::new();
    for (file, imports) in &core {
        let Some(from) = layer_of(file) else { continue };
        for imported in imports {
            if let Some(to) = layer_of(imported).filter(|to| *to > from) {
                let _ = writeln!(
                    problems,
                    "src/{file} ({}) imports src/{imported} ({}), a layer above",
                    CORE_LAYERS[from].0, CORE_LAYERS[to].0
                );
            }
        }
    }
    // Every file the layers name exists, so that a rename cannot silently empty a layer.
    for (_, files) in CORE_LAYERS {
        for f in *files {
            let found = core
                .keys()
                .any(|file| file == f || (f.ends_with('/') && file.starts_with(f)));
            assert!(found, "CORE_LAYERS names src/{f}, which does not exist");
        }
    }
    assert!(
        problems.is_empty(),
        "the core's layering is broken:\n{problems}"
    );
}

/// Every source file of the core and the server is named in DESIGN.md's code map, either by
/// its whole path or by its name under an entry for its folder (`src/store/` … `tables.rs`).
#[test]
fn the_design_code_map_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = fs::read_to_string(root.join("docs/DESIGN.md")).expect("docs/DESIGN.md");
    let map_start = design.find("## Code map").expect("a '## Code map' section");
    let map_len = design[map_start + 3..]
        .find("\n## ")
        .map_or(design.len() - map_start, |n| n + 3);
    let map = &design[map_start..map_start + map_len];
    let mut missing = Vec::new();
    for (dir, shown) in [("src", "src/"), ("server/src", "")] {
        for rel in rust_files(&root.join(dir)) {
            if rel.starts_with("ffi/") {
                continue; // the C ABI has its own section
            }
            let whole = format!("{shown}{rel}");
            let named = match rel.rsplit_once('/') {
                None => map.contains(&format!("`{whole}`")),
                Some((folder, name)) => {
                    map.contains(&format!("`{whole}`"))
                        || (map.contains(&format!("`{shown}{folder}/`"))
                            && map.contains(&format!("`{name}`")))
                        || map.contains(&format!("`{folder}/{name}`"))
                }
            };
            if !named {
                missing.push(format!("{dir}/{rel}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/DESIGN.md's code map does not name: {}",
        missing.join(", ")
    );
}

/// The core's graph without `src/ffi/` (the top layer, which may import anything).
fn report_cycles(out: &mut String, prefix: &str, graph: &Graph) {
    for component in cycles(graph) {
        let files: Vec<String> = component.iter().map(|f| format!("{prefix}{f}")).collect();
        let example = example_cycle(graph, &component);
        let _ = writeln!(
            out,
            "import cycle among {} files: {}\n  for example: {}",
            files.len(),
            files.join(", "),
            example
                .iter()
                .map(|f| format!("{prefix}{f}"))
                .collect::<Vec<_>>()
                .join(" -> ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Cycles

/// The strongly connected components that contain a cycle (two or more files, or a file that
/// imports itself), each sorted, in a stable order (Tarjan's algorithm, iterative).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut nodes: BTreeSet<&str> = graph.keys().map(String::as_str).collect();
    nodes.extend(graph.values().flatten().map(String::as_str));
    let nodes: Vec<&str> = nodes.into_iter().collect();
    let index_of: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let succ: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            graph
                .get(*n)
                .into_iter()
                .flatten()
                .map(|t| index_of[t.as_str()])
                .collect()
        })
        .collect();

    let n = nodes.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        // (node, next successor to visit)
        let mut work = vec![(start, 0usize)];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if let Some(&w) = succ[v].get(*i) {
                *i += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                loop {
                    let w = stack.pop().expect("on the stack");
                    on_stack[w] = false;
                    component.push(nodes[w].to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 || succ[v].contains(&v) {
                    component.sort();
                    out.push(component);
                }
            }
        }
    }
    out.sort();
    out
}

/// One concrete cycle through the component's first file (a shortest one, breadth-first).
fn example_cycle(graph: &Graph, component: &[String]) -> Vec<String> {
    let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let start = component[0].as_str();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flatten().map(String::as_str) {
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                let mut back = Vec::new();
                let mut at = v;
                while at != start {
                    back.push(at.to_owned());
                    at = came_from[at];
                }
                back.reverse();
                let mut path = vec![start.to_owned()];
                path.extend(back);
                path.push(start.to_owned());
                return path;
            }
            if w != start && !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    component.to_vec()
}

// ---------------------------------------------------------------------------------------------
// Rust sources

/// Every `.rs` file under `dir`, relative to it with `/` separators, sorted.
fn rust_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(base).expect("under the base");
                out.push(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The module path of a file: `a/b.rs` and `a/b/mod.rs` are `[a, b]`, the root is `[]`.
fn module_of(file: &str, root_file: &str) -> Vec<String> {
    if file == root_file || file == "main.rs" {
        return Vec::new();
    }
    let stem = file.strip_suffix(".rs").expect(".rs file");
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    stem.split('/').map(str::to_owned).collect()
}

/// Removes comments (doc comments included), the contents of string and char literals, and
/// `#[cfg(test)] mod tests { … }` blocks. Lifetimes stay (they are not literals).
fn strip_rust(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        match c[i] {
            '/' if at(i + 1) == '/' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            'r' if (i == 0 || !ident(c[i - 1])) && (at(i + 1) == '"' || at(i + 1) == '#') => {
                // A raw string r"…" / r#"…"# (br"…" too: the b stays as an identifier).
                let mut j = i + 1;
                let mut hashes = 0;
                while at(j) == '#' {
                    hashes += 1;
                    j += 1;
                }
                if at(j) != '"' {
                    // r#ident, not a raw string.
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (1..=hashes).all(|h| at(j + h) == '#') {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' if at(i + 1) == '\\' => {
                // An escaped char literal: '\n', '\'', '\u{..}'.
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            '\'' if at(i + 2) == '\'' => {
                i += 3;
                out.push_str("' '");
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    cut_test_modules(&out)
}

/// Removes every `#[cfg(test)]` + `mod tests { … }` block (braces matched; literals and
/// comments are gone already).
fn cut_test_modules(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let trimmed = trimmed.strip_prefix("pub ").unwrap_or(trimmed).trim_start();
        let Some(module) = trimmed.strip_prefix("mod tests") else {
            out.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..at]);
        let module = module.trim_start();
        if let Some(body) = module.strip_prefix('{') {
            let mut depth = 1;
            let mut end = body.len();
            for (k, ch) in body.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &body[end..];
        } else {
            // `mod tests;`: the declaration only.
            rest = module.strip_prefix(';').unwrap_or(module);
        }
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokenize(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(c[start..i].iter().collect()));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Token::PathSep);
            i += 2;
        } else if ch.is_whitespace() || ch.is_ascii_digit() {
            i += 1;
        } else {
            out.push(Token::Punct(ch));
            i += 1;
        }
    }
    out
}

/// A path a file uses, with the name it is imported as (for `pub use … as`).
struct UsedPath {
    segments: Vec<String>,
    alias: Option<String>,
    /// From a `pub use` (a re-export).
    reexport: bool,
}

/// Every `crate::`/`super::` path and every `use` path of the tokens.
fn used_paths(tokens: &[Token]) -> Vec<UsedPath> {
    let mut out = Vec::new();
    let mut i = 0;
    let is = |k: usize, t: &str| matches!(tokens.get(k), Some(Token::Ident(s)) if s == t);
    while i < tokens.len() {
        if is(i, "use") {
            let reexport =
                i > 0 && (is(i - 1, "pub") || matches!(tokens[i - 1], Token::Punct(')')));
            let mut paths = Vec::new();
            i = use_tree(tokens, i + 1, Vec::new(), &mut paths);
            out.extend(paths.into_iter().map(|(segments, alias)| UsedPath {
                segments,
                alias,
                reexport,
            }));
            continue;
        }
        if (is(i, "crate") || is(i, "super")) && tokens.get(i + 1) == Some(&Token::PathSep) {
            let mut segments = Vec::new();
            let mut k = i;
            while let Some(Token::Ident(s)) = tokens.get(k) {
                segments.push(s.clone());
                if tokens.get(k + 1) != Some(&Token::PathSep) {
                    break;
                }
                k += 2;
            }
            out.push(UsedPath {
                segments,
                alias: None,
                reexport: false,
            });
            i = k + 1;
            continue;
        }
        i += 1;
    }
    out
}

/// Parses one use tree from `i`, pushing each leaf path (with its alias); returns the index
/// after the tree.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    mut path: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    loop {
        match tokens.get(i) {
            Some(Token::PathSep) => i += 1,
            Some(Token::Ident(s)) => {
                if s != "self" || path.is_empty() {
                    path.push(s.clone());
                }
                i += 1;
                if tokens.get(i) == Some(&Token::PathSep) {
                    i += 1;
                    continue;
                }
                let mut alias = None;
                if matches!(tokens.get(i), Some(Token::Ident(a)) if a == "as") {
                    if let Some(Token::Ident(a)) = tokens.get(i + 1) {
                        alias = Some(a.clone());
                    }
                    i += 2;
                }
                out.push((path, alias));
                return i;
            }
            Some(Token::Punct('*')) => {
                out.push((path, None));
                return i + 1;
            }
            Some(Token::Punct('{')) => {
                i += 1;
                loop {
                    match tokens.get(i) {
                        None => return i,
                        Some(Token::Punct('}')) => return i + 1,
                        Some(Token::Punct(',')) => i += 1,
                        _ => {
                            let before = i;
                            i = use_tree(tokens, i, path.clone(), out);
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => return i,
        }
    }
}

/// A crate's sources: file → (module path, used paths).
struct RustCrate {
    dir: PathBuf,
    root_file: String,
    files: BTreeMap<String, (Vec<String>, Vec<UsedPath>)>,
}

impl RustCrate {
    fn read(dir: &Path, root_file: &str) -> RustCrate {
        let files = rust_files(dir)
            .into_iter()
            .map(|f| {
                let src = fs::read_to_string(dir.join(&f)).expect("readable source");
                let paths = used_paths(&tokenize(&strip_rust(&src)));
                let module = module_of(&f, root_file);
                (f, (module, paths))
            })
            .collect();
        RustCrate {
            dir: dir.to_owned(),
            root_file: root_file.to_owned(),
            files,
        }
    }

    /// The file of a module path, if there is one.
    fn file_of(&self, module: &[String]) -> Option<String> {
        if module.is_empty() {
            return Some(self.root_file.clone());
        }
        let stem = module.join("/");
        [format!("{stem}.rs"), format!("{stem}/mod.rs")]
            .into_iter()
            .find(|f| self.dir.join(f).is_file())
    }

    /// The file a crate-absolute path names: that of its longest existing module prefix, and
    /// for a name re-exported by the crate root, that of the module it comes from.
    fn resolve(&self, absolute: &[String]) -> String {
        let k = (0..=absolute.len())
            .rev()
            .find(|&k| self.file_of(&absolute[..k]).is_some())
            .unwrap_or(0);
        if k == 0 {
            if let Some(first) = absolute.first() {
                if let Some(target) = self.root_reexport(first) {
                    let target: Vec<String> = target
                        .into_iter()
                        .chain(absolute[1..].iter().cloned())
                        .collect();
                    if let Some(k) = (1..=target.len())
                        .rev()
                        .find(|&k| self.file_of(&target[..k]).is_some())
                    {
                        return self.file_of(&target[..k]).expect("exists");
                    }
                }
            }
        }
        self.file_of(&absolute[..k]).expect("exists")
    }

    /// Where the crate root's `pub use` of `name` points (a path relative to the root).
    fn root_reexport(&self, name: &str) -> Option<Vec<String>> {
        let (_, paths) = self.files.get(&self.root_file)?;
        paths.iter().filter(|p| p.reexport).find_map(|p| {
            let imported = p.alias.as_deref().or(p.segments.last().map(String::as_str));
            if imported != Some(name) {
                return None;
            }
            let mut segments = p.segments.clone();
            if segments
                .first()
                .is_some_and(|s| s == "crate" || s == "self")
            {
                segments.remove(0);
            }
            Some(segments)
        })
    }

    /// A used path made crate-absolute (`None` for paths outside the crate).
    fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
        match path.first().map(String::as_str) {
            Some("crate") => Some(path[1..].to_vec()),
            Some("super") => {
                let mut base = module.to_vec();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                Some(base)
            }
            _ => None,
        }
    }
}

/// The import graph of the crate whose sources are in `dir`.
fn rust_graph(dir: &Path, root_file: &str) -> Graph {
    let krate = RustCrate::read(dir, root_file);
    let mut graph = Graph::new();
    for (file, (module, paths)) in &krate.files {
        let imports = graph.entry(file.clone()).or_default();
        for p in paths {
            let Some(absolute) = RustCrate::absolute(module, &p.segments) else {
                continue;
            };
            let target = krate.resolve(&absolute);
            if &target != file {
                imports.insert(target);
            }
        }
    }
    graph
}

/// Files under `src/store/` that use a merge or sync layer path, with the path.
fn store_violations(src: &Path) -> BTreeSet<(String, String)> {
    let krate = RustCrate::read(src, "lib.rs");
    let mut out = BTreeSet::new();
    for (file, (module, paths)) in &krate.files {
        if !file.starts_with("store/") {
            continue;
        }
        for p in paths {
            let Some(absolute) = RustCrate::absolute(module, &p.segments) else {
                continue;
            };
            if absolute
                .first()
                .is_some_and(|s| s == "sync" || s == "merge")
            {
                out.insert((file.clone(), format!("crate::{}", absolute.join("::"))));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Python sources

/// Removes `#` comments and the contents of triple-quoted strings (docstrings).
fn strip_python(src: &str) -> String {
    let mut out = String::new();
    let mut in_triple: Option<&str> = None;
    for line in src.lines() {
        let mut rest = line;
        let mut kept = String::new();
        loop {
            if let Some(q) = in_triple {
                match rest.find(q) {
                    Some(end) => {
                        rest = &rest[end + 3..];
                        in_triple = None;
                    }
                    None => break,
                }
            } else {
                let next = ["\"\"\"", "'''"]
                    .into_iter()
                    .filter_map(|q| rest.find(q).map(|at| (at, q)))
                    .min();
                let hash = rest.find('#');
                match next {
                    Some((at, q)) if hash.is_none_or(|h| at < h) => {
                        kept.push_str(&rest[..at]);
                        rest = &rest[at + 3..];
                        in_triple = Some(q);
                    }
                    _ => {
                        kept.push_str(&rest[..hash.unwrap_or(rest.len())]);
                        break;
                    }
                }
            }
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// The modules of the package that one Python source imports (module names without `.py`).
fn python_imports(src: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let module_name = |dotted: &str| dotted.split('.').next().unwrap_or("").to_owned();
    let names = |list: &str| -> Vec<String> {
        list.trim()
            .trim_start_matches('(')
            .split(',')
            .filter_map(|n| n.split_whitespace().next())
            .map(|n| n.trim_matches(|c| c == '(' || c == ')').to_owned())
            .filter(|n| !n.is_empty())
            .collect()
    };
    for line in strip_python(src).lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("from ") {
            let Some((from, imported)) = rest.split_once(" import ") else {
                continue;
            };
            let from = from.trim();
            if from == "." || from == "shoal" {
                // from . import x, y: the submodules x and y (or names of __init__).
                for n in names(imported) {
                    if modules.contains(&n) {
                        out.insert(n);
                    } else {
                        out.insert("__init__".to_owned());
                    }
                }
            } else if let Some(dotted) = from.strip_prefix('.').filter(|d| !d.starts_with('.')) {
                out.insert(module_name(dotted));
            } else if let Some(dotted) = from.strip_prefix("shoal.") {
                out.insert(module_name(dotted));
            }
        } else if let Some(rest) = line.strip_prefix("import ") {
            for n in rest.split(',') {
                let n = n.split_whitespace().next().unwrap_or("");
                if let Some(dotted) = n.strip_prefix("shoal.") {
                    out.insert(module_name(dotted));
                } else if n == "shoal" {
                    out.insert("__init__".to_owned());
                }
            }
        }
    }
    out.retain(|m| modules.contains(m) || m == "__init__");
    out
}

/// The import graph of the Python package in `dir`: `x.py` → the `y.py` it imports.
fn python_graph(dir: &Path) -> Graph {
    let mut files: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|f| f.ends_with(".py"))
        .collect();
    files.sort();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| f.trim_end_matches(".py").to_owned())
        .collect();
    let mut graph = Graph::new();
    for f in &files {
        let src = fs::read_to_string(dir.join(f)).expect("readable source");
        let me = f.trim_end_matches(".py");
        let imports = python_imports(&src, &modules)
            .into_iter()
            .filter(|m| m != me)
            .map(|m| format!("{m}.py"))
            .collect();
        graph.insert(f.clone(), imports);
    }
    graph
}

// ---------------------------------------------------------------------------------------------
// The checker's own tests

fn graph(edges: &[(&str, &str)]) -> Graph {
    let mut g = Graph::new();
    for (a, b) in edges {
        g.entry((*a).to_owned())
            .or_default()
            .insert((*b).to_owned());
        g.entry((*b).to_owned()).or_default();
    }
    g
}

#[test]
fn the_cycle_finder_finds_exactly_the_cycles() {
    // a -> b -> c -> a is a cycle, d -> e -> d another, f imports itself; c -> d, e -> g and
    // h -> a join them but are on no cycle.
    let g = graph(&[
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "d"),
        ("d", "e"),
        ("e", "d"),
        ("e", "g"),
        ("f", "f"),
        ("h", "a"),
    ]);
    assert_eq!(
        cycles(&g),
        vec![
            vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
            vec!["d".to_owned(), "e".to_owned()],
            vec!["f".to_owned()],
        ]
    );
    assert_eq!(
        example_cycle(&g, &["a".to_owned(), "b".to_owned(), "c".to_owned()]),
        ["a", "b", "c", "a"]
    );
    assert_eq!(example_cycle(&g, &["f".to_owned()]), ["f", "f"]);
    // A layered graph (a diamond) has none.
    assert!(cycles(&graph(&[
        ("top", "l"),
        ("top", "r"),
        ("l", "low"),
        ("r", "low")
    ]))
    .is_empty());
    let mut report = String::new();
    report_cycles(
        &mut report,
        "src/",
        &graph(&[("x.rs", "y.rs"), ("y.rs", "x.rs")]),
    );
    assert_eq!(
        report,
        "import cycle among 2 files: src/x.rs, src/y.rs\n  for example: src/x.rs -> src/y.rs -> src/x.rs\n"
    );
}

#[test]
fn rust_paths_are_read_from_code_only() {
    let src = r##"
//! Doc comment: crate::doc::Nothing
use crate::a::{b::{C, D as E}, f, self};
use super::g::H;
pub use crate::i::J as K;
/* block crate::block::X /* nested */ crate::block::Y */
fn x<'a>(s: &'a str) -> char {
    let _ = "crate::string::Z";
    let _ = r#"crate::raw::Z"#;
    crate::l::m(s);
    '"'
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_only::T;
}
fn after() { crate::n::o(); }
"##;
    let paths: Vec<String> = used_paths(&tokenize(&strip_rust(src)))
        .iter()
        .map(|p| p.segments.join("::") + if p.reexport { " (pub)" } else { "" })
        .collect();
    assert_eq!(
        paths,
        [
            "crate::a::b::C",
            "crate::a::b::D",
            "crate::a::f",
            "crate::a",
            "super::g::H",
            "crate::i::J (pub)",
            "crate::l::m",
            "crate::n::o",
        ]
    );
    assert_eq!(
        RustCrate::absolute(&["x".into(), "y".into()], &["super".into(), "z".into()]),
        Some(vec!["x".to_owned(), "z".to_owned()])
    );
    assert_eq!(
        RustCrate::absolute(&["x".into()], &["super".into(), "super".into()]),
        None
    );
}

#[test]
fn python_imports_at_module_level_and_in_functions_count() {
    let modules: BTreeSet<String> = ["_core", "_ffi", "app", "realm", "sync", "errors"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let src = r#"
"""Docstring: from .errors import Nothing"""
from . import _core, _ffi
from .app import (
    App,
)
import shoal.errors as e  # from .sync import Commented

def f():
    from .realm import Token
"#;
    assert_eq!(
        python_imports(src, &modules),
        ["_core", "_ffi", "app", "errors", "realm"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}

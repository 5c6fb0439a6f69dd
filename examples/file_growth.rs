//! File growth and reopen time of a plain realm under repeated unclean shutdowns (issue 9).
//!
//! Figures on stdout:
//!
//! 1. *Commit cost*: `COMMITS` durable transactions of one small record each (ms per commit).
//! 2. *Bulk then delete*: 5 MB in one transaction, then everything deleted, then compaction.
//! 3. *Crash cycles*: `CYCLES` times, a child process (this binary again) opens the realm and
//!    commits transactions that each create `PER_TXN` records of ~10 KB and delete one older
//!    record; after `TXNS` commits the parent kills it with SIGKILL (mid-commit, usually), then
//!    reopens the file and times the open (redb repairs a file that was not closed). At the end:
//!    file size over live data, the space of each table, three more crashes each followed by a
//!    cold open (page cache dropped) with the timing of redb's repair phases, and the size
//!    after compaction.
//!
//! `cargo run --release --example file_growth`; `CYCLES=300` for the reported case (default
//! 40), `KEEP=1` keeps the file (its path is printed). `file_growth commits [N]` measures only
//! the commit cost (to compare builds).

use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
use shoal::{Config, PropertyFlags as F, PropertyType as T, Realm, Schema, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PAYLOAD: usize = 10_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(path: &str) -> Config {
    let mut s = Schema::new();
    s.add_class("Record", Some("id")).unwrap();
    s.add_property("Record", "id", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Record", "payload", T::Binary, F::NONE, None)
        .unwrap();
    let mut c = Config::new(path);
    c.set_schema(s).unwrap();
    c
}

/// `n` bytes that differ per record (a file must not get away with storing one pattern).
fn payload(id: i64, n: usize) -> Vec<u8> {
    let mut x = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The child: commits forever (until killed), printing a line after each commit.
fn child(path: &str, per_txn: i64) {
    let realm = Realm::open(&config(path)).unwrap();
    let records = realm.objects("Record").unwrap();
    let mut next = match records.max("id").unwrap() {
        Value::Int(i) => i + 1,
        _ => 0,
    };
    let mut out = std::io::stdout();
    let mut rng = next as u64 | 1;
    loop {
        realm.begin_write().unwrap();
        for _ in 0..per_txn {
            let o = realm
                .create_object("Record", Some(&Value::Int(next)))
                .unwrap();
            o.set("payload", Value::Binary(payload(next, PAYLOAD)))
                .unwrap();
            next += 1;
        }
        // Delete one older record (a random one), as an app retiring old data would.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let victim = (rng % next as u64) as i64;
        if let Some(o) = realm.find_object("Record", &Value::Int(victim)).unwrap() {
            o.delete().unwrap();
        }
        realm.commit().unwrap();
        if writeln!(out, "c").and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}

fn mib(b: u64) -> String {
    if b < 1 << 20 {
        format!("{:.0} KiB", b as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    }
}

/// Space per table, read with redb directly (the file must be closed by Shoal).
fn table_space(path: &str) {
    let db = redb::Database::open(path).unwrap();
    let w = db.begin_write().unwrap();
    let s = w.stats().unwrap();
    println!(
        "  redb: allocated {} (pages), stored leaf {}, metadata {}, fragmented {}",
        mib(s.allocated_pages() * s.page_size() as u64),
        mib(s.stored_bytes()),
        mib(s.metadata_bytes()),
        mib(s.fragmented_bytes())
    );
    drop(w);
    let r = db.begin_read().unwrap();
    for name in [
        "shoal_columns",
        "shoal_lists",
        "shoal_index",
        "shoal_history",
        "shoal_meta",
    ] {
        let mut entries = None;
        let stats = match name {
            "shoal_history" => {
                let t = r
                    .open_table(TableDefinition::<u64, &[u8]>::new(name))
                    .unwrap();
                entries = Some(t.len().unwrap());
                t.stats()
            }
            "shoal_meta" => r
                .open_table(TableDefinition::<&str, &[u8]>::new(name))
                .unwrap()
                .stats(),
            "shoal_index" => r
                .open_table(TableDefinition::<(u64, u64, u64), &[u8]>::new(name))
                .unwrap()
                .stats(),
            _ => r
                .open_table(TableDefinition::<u128, &[u8]>::new(name))
                .unwrap()
                .stats(),
        }
        .unwrap();
        println!(
            "  {name:<14} stored {:>10}  fragmented {:>10}  leaf pages {:>6}  branch pages {:>4}{}",
            mib(stats.stored_bytes()),
            mib(stats.fragmented_bytes()),
            stats.leaf_pages(),
            stats.branch_pages(),
            entries.map_or(String::new(), |n| format!("  ({n} changesets)"))
        );
    }
}

fn crash_cycles(dir: &std::path::Path) {
    let cycles = env("CYCLES", 40);
    let txns = env("TXNS", 20);
    let per_txn = env("PER_TXN", 4) as i64;
    let path = dir.join("growth.realm").to_string_lossy().into_owned();
    println!(
        "crash cycles: {cycles} × (child commits {txns} transactions of {per_txn} × {PAYLOAD} B records and 1 delete, then SIGKILL)"
    );
    let mut worst_open = Duration::ZERO;
    let mut opens = Vec::new();
    for cycle in 0..cycles {
        crash_child(&path, txns, per_txn);
        let start = Instant::now();
        let realm = Realm::open(&config(&path)).unwrap();
        let took = start.elapsed();
        worst_open = worst_open.max(took);
        opens.push(took);
        if cycle + 1 == cycles || (cycle + 1) % 10 == 0 {
            let live = realm.objects("Record").unwrap().count().unwrap() as u64;
            let size = std::fs::metadata(&path).unwrap().len();
            let data = live * PAYLOAD as u64;
            println!(
                "  after {:>3} crashes: {live:>6} records ({}), file {} = {:.2}× data; reopen {:.0} ms (worst so far {:.0} ms)",
                cycle + 1,
                mib(data),
                mib(size),
                size as f64 / data.max(1) as f64,
                took.as_secs_f64() * 1e3,
                worst_open.as_secs_f64() * 1e3,
            );
        }
        drop(realm);
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let realm = Realm::open(&config(&path)).unwrap();
    let live = realm.objects("Record").unwrap().count().unwrap() as u64;
    let (_, used) = realm.file_space().unwrap();
    println!(
        "final: {live} records ({} of payload), file {} ({:.2}× data), redb in use {}",
        mib(live * PAYLOAD as u64),
        mib(size),
        size as f64 / (live * PAYLOAD as u64).max(1) as f64,
        mib(used),
    );
    drop(realm);
    table_space(&path);
    let clean_open = {
        let start = Instant::now();
        let realm = Realm::open(&config(&path)).unwrap();
        let t = start.elapsed();
        drop(realm);
        t
    };
    println!(
        "reopen after a clean close: {:.1} ms; after a crash (warm page cache): median {:.0} ms, worst {:.0} ms",
        clean_open.as_secs_f64() * 1e3,
        median(&mut opens).as_secs_f64() * 1e3,
        worst_open.as_secs_f64() * 1e3
    );
    repair_phases(&path, txns, per_txn);
    let realm = Realm::open(&config(&path)).unwrap();
    realm.compact().unwrap();
    let compacted = std::fs::metadata(&path).unwrap().len();
    println!(
        "compacted: {} ({:.2}× data)",
        mib(compacted),
        compacted as f64 / (live * PAYLOAD as u64).max(1) as f64
    );
    drop(realm);
    if env("KEEP", 0) == 1 {
        println!("kept: {path}");
    }
}

/// Runs a child that commits `txns` transactions, then kills it with SIGKILL.
fn crash_child(path: &str, txns: u64, per_txn: i64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .arg(path)
        .arg(per_txn.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..txns {
        lines.next().unwrap().unwrap();
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Drops the file's pages from the OS page cache (GNU dd's `nocache` flag asks the kernel with
/// `posix_fadvise(DONTNEED)`), so that the next open reads from the disk as after a reboot.
fn evict_from_page_cache(path: &str) {
    let status = Command::new("dd")
        .arg(format!("if={path}"))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .unwrap();
    assert!(status.success(), "dd could not drop the page cache");
}

/// Where the reopen time after a crash goes: a few more crashes, each followed by redb's open
/// of the file with a repair callback that notes when each of its phases starts; the file's
/// pages are dropped from the page cache first (a cold open, as after a power loss).
fn repair_phases(path: &str, txns: u64, per_txn: i64) {
    for _ in 0..3 {
        crash_child(path, txns, per_txn);
        evict_from_page_cache(path);
        let marks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let m = marks.clone();
        let start = Instant::now();
        let mut builder = redb::Builder::new();
        builder
            .set_repair_callback(move |s| m.lock().unwrap().push((s.progress(), start.elapsed())));
        let db = builder.open(path).unwrap();
        let total = start.elapsed();
        drop(db);
        let marks = marks.lock().unwrap();
        let phases: Vec<String> = marks
            .iter()
            .map(|(p, t)| format!("{p:.1} at {:.0} ms", t.as_secs_f64() * 1e3))
            .collect();
        println!(
            "redb open after a crash, cold page cache: {:.0} ms; repair progress marks: {}",
            total.as_secs_f64() * 1e3,
            if phases.is_empty() {
                "none (no repair)".to_owned()
            } else {
                phases.join(", ")
            }
        );
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn bulk_then_delete(dir: &std::path::Path) {
    let path = dir.join("bulk.realm").to_string_lossy().into_owned();
    let fresh = {
        let realm = Realm::open(&config(&path)).unwrap();
        drop(realm);
        std::fs::metadata(&path).unwrap().len()
    };
    let realm = Realm::open(&config(&path)).unwrap();
    realm.begin_write().unwrap();
    for id in 0..500 {
        let o = realm
            .create_object("Record", Some(&Value::Int(id)))
            .unwrap();
        o.set("payload", Value::Binary(payload(id, PAYLOAD)))
            .unwrap();
    }
    realm.commit().unwrap();
    let full = std::fs::metadata(&path).unwrap().len();
    realm.begin_write().unwrap();
    realm.objects("Record").unwrap().delete_all().unwrap();
    realm.commit().unwrap();
    let emptied = std::fs::metadata(&path).unwrap().len();
    realm.compact().unwrap();
    let compacted = std::fs::metadata(&path).unwrap().len();
    println!(
        "bulk: fresh file {}, after 5 MB in one transaction {}, after deleting all {}, compacted {}",
        mib(fresh),
        mib(full),
        mib(emptied),
        mib(compacted),
    );
    drop(realm);
    table_space(&path);
}

/// The cost of a durable commit: `n` transactions of one small record each, in ms per commit.
fn commit_cost(dir: &std::path::Path, n: i64) -> f64 {
    let path = dir.join("commits.realm").to_string_lossy().into_owned();
    let realm = Realm::open(&config(&path)).unwrap();
    let start = Instant::now();
    for id in 0..n {
        realm.begin_write().unwrap();
        let o = realm
            .create_object("Record", Some(&Value::Int(id)))
            .unwrap();
        o.set("payload", Value::Binary(payload(id, 16))).unwrap();
        realm.commit().unwrap();
    }
    let per = start.elapsed().as_secs_f64() * 1e3 / n as f64;
    drop(realm);
    std::fs::remove_file(&path).unwrap();
    per
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2], args[3].parse().unwrap());
        return;
    }
    let dir = tempfile_dir();
    if args.get(1).map(String::as_str) == Some("commits") {
        // Only the commit cost (for A/B runs of builds): `file_growth commits [N]`.
        let n = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(500);
        println!(
            "durable single-record commit: {:.2} ms",
            commit_cost(&dir, n)
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    println!(
        "durable single-record commit: {:.2} ms",
        commit_cost(&dir, env("COMMITS", 500) as i64)
    );
    bulk_then_delete(&dir);
    crash_cycles(&dir);
    if env("KEEP", 0) != 1 {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A fresh directory under the system temp dir (examples cannot use dev-dependencies' guards
/// across the child processes, and the kept file must outlive the run).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-file-growth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

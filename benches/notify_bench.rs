//! The cost of fine-grained notifications on 100,000-object results.
//!
//! A realm holds `N` people (default 100,000; `SHOAL_BENCH_N` to change). Each scenario makes
//! 200 commits and times each from just before the commit until the observer's callback has the
//! change set; medians and the 99th percentile are printed.
//!
//! - unsorted: `age >= 0` (every object), one object's `age` changed per commit — the
//!   incremental path (the filter runs on the changed object only);
//! - sorted: the same results sorted by `age` — the query runs again and the keys are diffed;
//! - untouched: a commit to another class — nothing runs;
//! - insert: one new object per commit into the unsorted results;
//! - baseline: what an app without fine-grained notifications does — a realm-wide callback that
//!   runs the query again and diffs old and new keys with a hash set (the "re-run and diff
//!   everything" the issue asks to avoid). Ratios are fine-grained / baseline.
//!
//! `cargo bench --bench notify_bench`

use shoal::{Config, PropertyFlags as F, PropertyType as T, Realm, Schema, Value};
use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const COMMITS: usize = 200;
const WAIT: Duration = Duration::from_secs(60);

fn schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Person", Some("id")).unwrap();
    s.add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Person", "age", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Person", "name", T::String, F::NONE, None)
        .unwrap();
    s.add_class("Log", None).unwrap();
    s.add_property("Log", "n", T::Int, F::NONE, None).unwrap();
    s
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

struct Figures {
    p50: f64,
    p99: f64,
}

/// Times `COMMITS` commits made by `commit(i)`, each until `rx` gets a notification.
fn time_commits<T>(
    realm: &Realm,
    rx: &mpsc::Receiver<T>,
    mut commit: impl FnMut(usize),
) -> Figures {
    let mut samples = Vec::with_capacity(COMMITS);
    for i in 0..COMMITS {
        let start = Instant::now();
        realm.begin_write().unwrap();
        commit(i);
        realm.commit().unwrap();
        rx.recv_timeout(WAIT).expect("a notification");
        samples.push(start.elapsed());
    }
    Figures {
        p50: percentile(&mut samples, 0.5),
        p99: percentile(&mut samples, 0.99),
    }
}

fn report(name: &str, f: &Figures, baseline: Option<&Figures>) {
    match baseline {
        Some(b) => println!(
            "{name:<34} p50 {:>8.3} ms  p99 {:>8.3} ms   fine-grained/baseline p50 {:.3}",
            f.p50,
            f.p99,
            f.p50 / b.p50
        ),
        None => println!("{name:<34} p50 {:>8.3} ms  p99 {:>8.3} ms", f.p50, f.p99),
    }
}

fn main() {
    let n: i64 = std::env::var("SHOAL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("notify.realm").to_str().unwrap());
    config.set_schema(schema()).unwrap();
    let realm = Realm::open(&config).unwrap();
    realm.begin_write().unwrap();
    for id in 0..n {
        let p = realm
            .create_object("Person", Some(&Value::Int(id)))
            .unwrap();
        p.set("age", Value::Int(id % 100)).unwrap();
    }
    realm.commit().unwrap();
    println!("notify_bench: {n} objects, {COMMITS} commits per scenario (median, p99 of commit → callback)");
    let person = |id: i64| {
        realm
            .find_object("Person", &Value::Int(id))
            .unwrap()
            .unwrap()
    };
    let mut next_id = n;

    // Baseline: re-run the query and diff everything on a realm-wide callback.
    let baseline = {
        let (tx, rx) = mpsc::channel();
        let watcher = Realm::open(&config).unwrap();
        let results = watcher.query("Person", "age >= 0", &[]).unwrap();
        let mut old: Vec<u64> = results.to_vec().unwrap().iter().map(|o| o.key()).collect();
        let w = watcher.clone();
        let old_cell = std::sync::Mutex::new(std::mem::take(&mut old));
        let _token = realm
            .add_change_callback(move |_| {
                w.refresh().unwrap();
                let new: Vec<u64> = results.to_vec().unwrap().iter().map(|o| o.key()).collect();
                let mut old = old_cell.lock().unwrap();
                let before: HashSet<u64> = old.iter().copied().collect();
                let after: HashSet<u64> = new.iter().copied().collect();
                let deletions = old.iter().filter(|k| !after.contains(k)).count();
                let insertions = new.iter().filter(|k| !before.contains(k)).count();
                *old = new;
                let _ = tx.send((deletions, insertions));
            })
            .unwrap();
        time_commits(&realm, &rx, |i| {
            person(i as i64).set("age", Value::Int(50)).unwrap();
        })
    };
    report("baseline: re-run + diff (unsorted)", &baseline, None);

    // Fine-grained, unsorted: the incremental path.
    let unsorted = {
        let results = realm.query("Person", "age >= 0", &[]).unwrap();
        let (tx, rx) = mpsc::channel();
        let _token = results
            .observe(move |c| {
                let _ = tx.send(c.modifications.len());
            })
            .unwrap();
        rx.recv_timeout(WAIT).unwrap(); // initial
        time_commits(&realm, &rx, |i| {
            person(1000 + i as i64).set("age", Value::Int(51)).unwrap();
        })
    };
    report(
        "results.observe, unsorted, modify",
        &unsorted,
        Some(&baseline),
    );

    let inserts = {
        let results = realm.query("Person", "age >= 0", &[]).unwrap();
        let (tx, rx) = mpsc::channel();
        let _token = results
            .observe(move |c| {
                let _ = tx.send(c.insertions.len());
            })
            .unwrap();
        rx.recv_timeout(WAIT).unwrap();
        time_commits(&realm, &rx, |_| {
            let p = realm
                .create_object("Person", Some(&Value::Int(next_id)))
                .unwrap();
            next_id += 1;
            p.set("age", Value::Int(1)).unwrap();
        })
    };
    report(
        "results.observe, unsorted, insert",
        &inserts,
        Some(&baseline),
    );

    let sorted = {
        let results = realm
            .query("Person", "age >= 0", &[])
            .unwrap()
            .sort("age", true)
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let _token = results
            .observe(move |c| {
                let _ = tx.send(c.moves.len());
            })
            .unwrap();
        rx.recv_timeout(WAIT).unwrap();
        time_commits(&realm, &rx, |i| {
            person(2000 + i as i64).set("age", Value::Int(99)).unwrap();
        })
    };
    report("results.observe, sorted, modify", &sorted, Some(&baseline));

    // A commit to another class: the results observer does nothing; a realm-wide callback
    // (registered after it, so it runs after it) marks the end of the batch.
    let untouched = {
        let results = realm.query("Person", "age >= 0", &[]).unwrap();
        let (tx, rx) = mpsc::channel();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c2 = calls.clone();
        let _token = results
            .observe(move |_| {
                c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .unwrap();
        let _realm_token = realm
            .add_change_callback(move |v| {
                let _ = tx.send(v);
            })
            .unwrap();
        while calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let f = time_commits(&realm, &rx, |_| {
            realm.create_object("Log", None).unwrap();
        });
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "commits to another class never call the results observer"
        );
        f
    };
    report("results.observe, other class", &untouched, Some(&baseline));
}

//! Shoal against SQLite and raw redb on the workload of `PERFORMANCE.md`.
//!
//! The machines are shared and noisy, so the figures that matter are the *ratios* measured in
//! this one process: every engine gets the same rows, each in its own temporary directory, and
//! each phase runs the three engines back to back. Every engine must compute the same answers
//! (counts, sums, looked-up names); the run panics otherwise, since a benchmark of different
//! answers says nothing.
//!
//! `cargo bench --bench shoal_bench`; `SHOAL_BENCH_N=100000` for a quick run (default 1,000,000).

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use rusqlite::{params, Connection, OptionalExtension};
use shoal::{Config, PropertyFlags, PropertyKey, PropertyType, Realm, Schema, Value};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const DEFAULT_N: i64 = 1_000_000;
/// Single-object durable commits, each its own transaction.
const SINGLE_COMMITS: i64 = 1_000;
/// Random primary-key lookups.
const LOOKUPS: usize = 100_000;
/// Scans are short, so each runs this many times and the median counts.
const SCAN_RUNS: usize = 5;
/// The `count(age > AGE_FLOOR)` query.
const AGE_FLOOR: i64 = 50;

// ---------------------------------------------------------------------------------------------
// The workload's rows, shared by every engine.

/// The fields of the object with primary key `id`.
fn row(id: i64) -> (String, i64, f64) {
    (format!("name-{id}"), id % 100, id as f64 * 0.5)
}

/// splitmix64: a fixed-seed generator, so every engine looks up the same keys in the same order.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `count` random ids, all of existing objects (`1..=max_id`).
fn random_ids(count: usize, max_id: i64) -> Vec<i64> {
    let mut rng = SplitMix(0x5EED_5EED);
    (0..count)
        .map(|_| 1 + (rng.next() % max_id as u64) as i64)
        .collect()
}

/// What a batch of lookups found, folded so that engines can be compared without keeping the
/// names. Hashing costs about 1 ms per 100,000 names, the same for every engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct NameDigest {
    found: usize,
    bytes: usize,
    hash: u64,
}

impl NameDigest {
    fn add(&mut self, name: &str) {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.found += 1;
        self.bytes += name.len();
        self.hash = self.hash.wrapping_add(h);
    }
}

/// The answer of the sum/average phase.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Aggregates {
    sum_score: f64,
    avg_age: f64,
}

// ---------------------------------------------------------------------------------------------
// Timing.

/// Runs `f` once and times it.
fn time<R>(f: impl FnOnce() -> R) -> (Duration, R) {
    let start = Instant::now();
    let r = f();
    (start.elapsed(), r)
}

/// Runs `f` [`SCAN_RUNS`] times: the median time, and the answer (which must not change).
fn median<R: PartialEq + std::fmt::Debug>(what: &str, mut f: impl FnMut() -> R) -> (Duration, R) {
    let mut times = Vec::with_capacity(SCAN_RUNS);
    let (t, first) = time(&mut f);
    times.push(t);
    for _ in 1..SCAN_RUNS {
        let (t, r) = time(&mut f);
        assert_eq!(r, first, "{what}: the answer changed between runs");
        times.push(t);
    }
    times.sort();
    (times[SCAN_RUNS / 2], first)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// The engines, each behind the same five operations.

trait Engine {
    fn name(&self) -> &'static str;
    /// Inserts objects `ids` in one transaction.
    fn bulk_insert(&mut self, ids: RangeInclusive<i64>);
    /// Inserts objects `ids`, each in its own durable transaction.
    fn single_commits(&mut self, ids: RangeInclusive<i64>);
    /// The number of objects with `age > floor`, without an index.
    fn count_age_over(&mut self, floor: i64) -> u64;
    /// `sum(score)` and `avg(age)` over every object.
    fn aggregates(&mut self) -> Aggregates;
    /// Looks each id up by primary key and reads its name.
    fn names_of(&mut self, ids: &[i64]) -> NameDigest;
}

// --- Shoal -----------------------------------------------------------------------------------

struct ShoalEngine {
    _dir: TempDir,
    encrypted: bool,
    realm: Realm,
    name: PropertyKey,
    age: PropertyKey,
    score: PropertyKey,
}

impl ShoalEngine {
    /// A plain realm, or (`encrypted`) one encrypted at rest with a 64-byte key.
    fn open(encrypted: bool) -> ShoalEngine {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut schema = Schema::new();
        schema
            .add_class("Person", Some("id"))
            .expect("shoal: add_class");
        for (prop, ty) in [
            ("id", PropertyType::Int),
            ("name", PropertyType::String),
            ("age", PropertyType::Int),
            ("score", PropertyType::Double),
        ] {
            schema
                .add_property("Person", prop, ty, PropertyFlags::NONE, None)
                .expect("shoal: add_property");
        }
        let mut config = Config::new(
            dir.path()
                .join("bench.realm")
                .to_string_lossy()
                .into_owned(),
        );
        config.set_schema(schema).expect("shoal: set_schema");
        if encrypted {
            let key: Vec<u8> = (0..64u8).collect();
            config
                .set_encryption_key(Some(&key))
                .expect("shoal: set_encryption_key");
        }
        let realm = Realm::open(&config).expect("shoal: Realm::open");
        let key = |p| {
            realm
                .property_key("Person", p)
                .expect("shoal: property_key")
        };
        let (name, age, score) = (key("name"), key("age"), key("score"));
        ShoalEngine {
            _dir: dir,
            encrypted,
            realm,
            name,
            age,
            score,
        }
    }

    /// Creates one object inside the open write transaction.
    fn create(&self, id: i64) {
        let (name, age, score) = row(id);
        let obj = self
            .realm
            .create_object("Person", Some(&Value::Int(id)))
            .expect("shoal: create_object");
        obj.set_by_key(self.name, Value::String(name))
            .expect("shoal: set_by_key(name)");
        obj.set_by_key(self.age, Value::Int(age))
            .expect("shoal: set_by_key(age)");
        obj.set_by_key(self.score, Value::Double(score))
            .expect("shoal: set_by_key(score)");
    }
}

impl Engine for ShoalEngine {
    fn name(&self) -> &'static str {
        if self.encrypted {
            "shoal (encrypted)"
        } else {
            "shoal"
        }
    }

    fn bulk_insert(&mut self, ids: RangeInclusive<i64>) {
        self.realm.begin_write().expect("shoal: begin_write");
        for id in ids {
            self.create(id);
        }
        self.realm.commit().expect("shoal: commit (bulk)");
    }

    fn single_commits(&mut self, ids: RangeInclusive<i64>) {
        for id in ids {
            self.realm.begin_write().expect("shoal: begin_write");
            self.create(id);
            self.realm.commit().expect("shoal: commit (single)");
        }
    }

    fn count_age_over(&mut self, floor: i64) -> u64 {
        // A fresh Results each run: its cache must not turn later runs into lookups.
        let results = self
            .realm
            .query("Person", "age > $0", &[Value::Int(floor)])
            .expect("shoal: query");
        results.count().expect("shoal: Results::count") as u64
    }

    fn aggregates(&mut self) -> Aggregates {
        // One Results for both, as an app would write it (SQLite also does both in one scan).
        let all = self.realm.objects("Person").expect("shoal: objects");
        let sum_score = match all.sum("score").expect("shoal: Results::sum(score)") {
            Value::Double(d) => d,
            other => panic!("shoal: sum(score) returned {other:?}"),
        };
        let avg_age = match all.average("age").expect("shoal: Results::average(age)") {
            Value::Double(d) => d,
            other => panic!("shoal: average(age) returned {other:?}"),
        };
        Aggregates { sum_score, avg_age }
    }

    fn names_of(&mut self, ids: &[i64]) -> NameDigest {
        let mut digest = NameDigest::default();
        for &id in ids {
            if let Some(obj) = self
                .realm
                .find_object("Person", &Value::Int(id))
                .expect("shoal: find_object")
            {
                match obj.get_by_key(self.name).expect("shoal: get_by_key(name)") {
                    Value::String(s) => digest.add(&s),
                    other => panic!("shoal: name of {id} is {other:?}"),
                }
            }
        }
        digest
    }
}

// --- SQLite ----------------------------------------------------------------------------------

struct SqliteEngine {
    _dir: TempDir,
    conn: Connection,
}

const SQL_INSERT: &str = "INSERT INTO person (id, name, age, score) VALUES (?1, ?2, ?3, ?4)";

impl SqliteEngine {
    fn open() -> SqliteEngine {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = Connection::open(dir.path().join("bench.sqlite")).expect("sqlite: open");
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .expect("sqlite: WAL");
        assert_eq!(mode, "wal");
        conn.execute_batch(
            "PRAGMA synchronous=FULL;
             CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                  age INTEGER NOT NULL, score REAL NOT NULL);",
        )
        .expect("sqlite: schema");
        SqliteEngine { _dir: dir, conn }
    }
}

impl Engine for SqliteEngine {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn bulk_insert(&mut self, ids: RangeInclusive<i64>) {
        let tx = self.conn.transaction().expect("sqlite: begin");
        {
            let mut stmt = tx.prepare_cached(SQL_INSERT).expect("sqlite: prepare");
            for id in ids {
                let (name, age, score) = row(id);
                stmt.execute(params![id, name, age, score])
                    .expect("sqlite: insert");
            }
        }
        tx.commit().expect("sqlite: commit");
    }

    fn single_commits(&mut self, ids: RangeInclusive<i64>) {
        for id in ids {
            let (name, age, score) = row(id);
            let tx = self.conn.transaction().expect("sqlite: begin");
            tx.prepare_cached(SQL_INSERT)
                .expect("sqlite: prepare")
                .execute(params![id, name, age, score])
                .expect("sqlite: insert");
            tx.commit().expect("sqlite: commit");
        }
    }

    fn count_age_over(&mut self, floor: i64) -> u64 {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT count(*) FROM person WHERE age > ?1")
            .expect("sqlite: prepare");
        stmt.query_row([floor], |r| r.get::<_, i64>(0))
            .expect("sqlite: count") as u64
    }

    fn aggregates(&mut self) -> Aggregates {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sum(score), avg(age) FROM person")
            .expect("sqlite: prepare");
        stmt.query_row([], |r| {
            Ok(Aggregates {
                sum_score: r.get(0)?,
                avg_age: r.get(1)?,
            })
        })
        .expect("sqlite: aggregates")
    }

    fn names_of(&mut self, ids: &[i64]) -> NameDigest {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM person WHERE id = ?1")
            .expect("sqlite: prepare");
        let mut digest = NameDigest::default();
        for &id in ids {
            if let Some(name) = stmt
                .query_row([id], |r| r.get::<_, String>(0))
                .optional()
                .expect("sqlite: lookup")
            {
                digest.add(&name);
            }
        }
        digest
    }
}

// --- raw redb --------------------------------------------------------------------------------

/// One key/value per object: the naive layout Shoal's goals are measured against.
const PERSON: TableDefinition<u64, &[u8]> = TableDefinition::new("person");

/// The packed value: name bytes, then age (i64 LE), then score (f64 LE).
fn pack(buf: &mut Vec<u8>, id: i64) {
    let (name, age, score) = row(id);
    buf.clear();
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(&age.to_le_bytes());
    buf.extend_from_slice(&score.to_le_bytes());
}

fn unpack(v: &[u8]) -> (&str, i64, f64) {
    let n = v.len() - 16;
    let name = std::str::from_utf8(&v[..n]).expect("redb: name is UTF-8");
    let age = i64::from_le_bytes(v[n..n + 8].try_into().unwrap());
    let score = f64::from_le_bytes(v[n + 8..].try_into().unwrap());
    (name, age, score)
}

struct RedbEngine {
    _dir: TempDir,
    db: redb::Database,
}

impl RedbEngine {
    fn open() -> RedbEngine {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = redb::Database::create(dir.path().join("bench.redb")).expect("redb: create");
        RedbEngine { _dir: dir, db }
    }

    /// Inserts `ids` in one write transaction with redb's default (immediate) durability.
    fn insert_txn(&self, ids: RangeInclusive<i64>) {
        let txn = self.db.begin_write().expect("redb: begin_write");
        {
            let mut table = txn.open_table(PERSON).expect("redb: open_table");
            let mut buf = Vec::with_capacity(64);
            for id in ids {
                pack(&mut buf, id);
                table
                    .insert(id as u64, buf.as_slice())
                    .expect("redb: insert");
            }
        }
        txn.commit().expect("redb: commit");
    }

    /// Folds every stored value in key order.
    fn scan<A>(&self, init: A, mut f: impl FnMut(A, &[u8]) -> A) -> A {
        let txn = self.db.begin_read().expect("redb: begin_read");
        let table = txn.open_table(PERSON).expect("redb: open_table");
        let mut acc = init;
        for item in table.iter().expect("redb: iter") {
            let (_, v) = item.expect("redb: next");
            acc = f(acc, v.value());
        }
        acc
    }
}

impl Engine for RedbEngine {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn bulk_insert(&mut self, ids: RangeInclusive<i64>) {
        self.insert_txn(ids);
    }

    fn single_commits(&mut self, ids: RangeInclusive<i64>) {
        for id in ids {
            self.insert_txn(id..=id);
        }
    }

    fn count_age_over(&mut self, floor: i64) -> u64 {
        self.scan(0u64, |n, v| n + u64::from(unpack(v).1 > floor))
    }

    fn aggregates(&mut self) -> Aggregates {
        let (count, ages, scores) = self.scan((0u64, 0i64, 0f64), |(c, a, s), v| {
            let (_, age, score) = unpack(v);
            (c + 1, a + age, s + score)
        });
        Aggregates {
            sum_score: scores,
            avg_age: ages as f64 / count as f64,
        }
    }

    fn names_of(&mut self, ids: &[i64]) -> NameDigest {
        // One read transaction for the batch, as Shoal reads from one snapshot.
        let txn = self.db.begin_read().expect("redb: begin_read");
        let table = txn.open_table(PERSON).expect("redb: open_table");
        let mut digest = NameDigest::default();
        for &id in ids {
            if let Some(v) = table.get(id as u64).expect("redb: get") {
                digest.add(unpack(v.value()).0);
            }
        }
        digest
    }
}

// ---------------------------------------------------------------------------------------------
// The phases: each runs every engine, checks they agree, and returns one time per engine.

type Engines = Vec<Box<dyn Engine>>;

fn progress(phase: &str, engine: &dyn Engine) {
    eprintln!("{phase}: {}...", engine.name());
}

fn phase_bulk_insert(engines: &mut Engines, n: i64) -> Vec<Duration> {
    engines
        .iter_mut()
        .map(|e| {
            progress("bulk insert", e.as_ref());
            time(|| e.bulk_insert(1..=n)).0
        })
        .collect()
}

fn phase_single_commits(engines: &mut Engines, n: i64) -> Vec<Duration> {
    engines
        .iter_mut()
        .map(|e| {
            progress("single commits", e.as_ref());
            time(|| e.single_commits(n + 1..=n + SINGLE_COMMITS)).0
        })
        .collect()
}

fn phase_count(engines: &mut Engines, total: i64) -> Vec<Duration> {
    // Ages cycle through 0..100, so the count is known without any engine.
    let expected = (1..=total).filter(|id| id % 100 > AGE_FLOOR).count() as u64;
    engines
        .iter_mut()
        .map(|e| {
            progress("count(age > 50)", e.as_ref());
            let (t, count) = median("count", || e.count_age_over(AGE_FLOOR));
            assert_eq!(
                count,
                expected,
                "{}: count(age > {AGE_FLOOR}) is wrong",
                e.name()
            );
            t
        })
        .collect()
}

fn phase_aggregates(engines: &mut Engines, total: i64) -> Vec<Duration> {
    // Every partial sum of halves below 2^53 is exact, so the sums must agree to the bit.
    let expected_sum = (total as f64) * (total as f64 + 1.0) / 4.0;
    let expected_avg = (1..=total).map(|id| id % 100).sum::<i64>() as f64 / total as f64;
    engines
        .iter_mut()
        .map(|e| {
            progress("sum(score) + avg(age)", e.as_ref());
            let (t, agg) = median("aggregates", || e.aggregates());
            assert_eq!(
                agg.sum_score,
                expected_sum,
                "{}: sum(score) is wrong",
                e.name()
            );
            assert!(
                (agg.avg_age - expected_avg).abs() <= 1e-9 * expected_avg,
                "{}: avg(age) {} != {expected_avg}",
                e.name(),
                agg.avg_age
            );
            t
        })
        .collect()
}

fn phase_lookups(engines: &mut Engines, total: i64) -> Vec<Duration> {
    let ids = random_ids(LOOKUPS, total);
    let mut expected = NameDigest::default();
    for &id in &ids {
        expected.add(&row(id).0);
    }
    engines
        .iter_mut()
        .map(|e| {
            progress("pk lookups", e.as_ref());
            let (t, digest) = time(|| e.names_of(&ids));
            assert_eq!(
                digest,
                expected,
                "{}: the looked-up names are wrong",
                e.name()
            );
            t
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Report.

struct Line {
    operation: String,
    /// shoal, sqlite, redb, encrypted shoal.
    times: Vec<Duration>,
}

impl Line {
    fn ratio(&self, peer: usize) -> f64 {
        self.times[0].as_secs_f64() / self.times[peer].as_secs_f64()
    }
}

fn print_table(lines: &[Line]) {
    println!();
    println!("| operation | shoal ms | sqlite ms | redb ms | shoal/sqlite | shoal/redb | encrypted ms | encrypted/plain |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for l in lines {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} | {:.2} |",
            l.operation,
            ms(l.times[0]),
            ms(l.times[1]),
            ms(l.times[2]),
            l.ratio(1),
            l.ratio(2),
            ms(l.times[ENCRYPTED]),
            l.times[ENCRYPTED].as_secs_f64() / l.times[0].as_secs_f64()
        );
    }
}

const SQLITE: usize = 1;
const REDB: usize = 2;
const ENCRYPTED: usize = 3;

/// The goals of `PERFORMANCE.md`: (line index, peer, largest allowed ratio, inclusive, text).
fn print_goals(lines: &[Line]) {
    let goals: [(usize, usize, f64, bool, &str); 5] = [
        (
            0,
            SQLITE,
            1.0,
            false,
            "bulk insert faster than SQLite (shoal/sqlite < 1.0)",
        ),
        (
            1,
            REDB,
            1.25,
            true,
            "single durable commit <= 1.25x raw redb",
        ),
        (4, REDB, 1.5, true, "primary-key lookup <= 1.5x raw redb"),
        (
            2,
            SQLITE,
            0.2,
            true,
            "count(age > 50) >= 5x faster than SQLite (shoal/sqlite <= 0.20)",
        ),
        (
            3,
            SQLITE,
            0.2,
            true,
            "sum(score) + avg(age) >= 5x faster than SQLite (shoal/sqlite <= 0.20)",
        ),
    ];
    println!();
    // Encryption at rest: within 1.5x of the plain realm on bulk insert and on reads.
    for (line, text) in [
        (0, "encrypted bulk insert <= 1.5x plain"),
        (2, "encrypted count scan <= 1.5x plain"),
        (4, "encrypted pk lookups <= 1.5x plain"),
    ] {
        let r = lines[line].times[ENCRYPTED].as_secs_f64() / lines[line].times[0].as_secs_f64();
        println!(
            "{}: {text} — ratio {r:.2}",
            if r <= 1.5 { "MET" } else { "MISSED" }
        );
    }
    for (line, peer, limit, inclusive, text) in goals {
        let r = lines[line].ratio(peer);
        let met = if inclusive { r <= limit } else { r < limit };
        println!(
            "{}: {text} — ratio {r:.2}",
            if met { "MET" } else { "MISSED" }
        );
    }
}

fn main() {
    let n: i64 = match std::env::var("SHOAL_BENCH_N") {
        Ok(s) => s.parse().expect("SHOAL_BENCH_N must be a positive integer"),
        Err(_) => DEFAULT_N,
    };
    assert!(n > 0, "SHOAL_BENCH_N must be positive");
    let total = n + SINGLE_COMMITS;
    eprintln!("shoal_bench: {n} objects, then {SINGLE_COMMITS} single commits; scans median of {SCAN_RUNS}");

    // The order is the table's column order: shoal, sqlite, redb, encrypted shoal.
    let mut engines: Engines = vec![
        Box::new(ShoalEngine::open(false)),
        Box::new(SqliteEngine::open()),
        Box::new(RedbEngine::open()),
        Box::new(ShoalEngine::open(true)),
    ];

    let lines = vec![
        Line {
            operation: format!("bulk insert {n} (1 txn)"),
            times: phase_bulk_insert(&mut engines, n),
        },
        Line {
            operation: format!("{SINGLE_COMMITS} single durable commits"),
            times: phase_single_commits(&mut engines, n),
        },
        Line {
            operation: format!("count(age > {AGE_FLOOR}), median of {SCAN_RUNS}"),
            times: phase_count(&mut engines, total),
        },
        Line {
            operation: format!("sum(score) + avg(age), median of {SCAN_RUNS}"),
            times: phase_aggregates(&mut engines, total),
        },
        Line {
            operation: format!("{LOOKUPS} random pk lookups + name"),
            times: phase_lookups(&mut engines, total),
        },
    ];
    print_table(&lines);
    print_goals(&lines);
}

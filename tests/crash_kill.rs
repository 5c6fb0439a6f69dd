//! Realms SIGKILLed at random moments, over and over: a crash never loses a returned commit and
//! never leaves one half applied, for plain and for encrypted files.
//!
//! Each test re-runs its own test binary as the child (`<exe> <test> --exact`, with
//! `SHOAL_KILL_CHILD` set). The child opens the realm and commits in a loop — small
//! transactions inserting, updating and deleting objects with 1–10 KB strings, now and then a
//! large one (10–40 objects) or a mass delete — and reports on stdout when each commit starts
//! (`commit N`), returns (`done N`) and changed the file's length (`grew N`, `shrunk N`). What
//! transaction N does is a pure function of the run's seed, N and the realm's content before
//! it, so the parent can compute the exact content after any number of transactions.
//!
//! The parent kills the child (`Child::kill`, SIGKILL) at a random moment: a quarter of the time
//! anywhere (also while it starts, opens or recovers the file), otherwise a random time into one
//! of its next commits, just after one returned, or just after one changed the file's length.
//! It then reopens the file in its own process and checks that it opens, that its sequence
//! number `S` (a counter object every transaction writes) is at least the last commit reported
//! as returned and at most the one in flight, and that its content is exactly the one after `S`
//! transactions: every object, every string byte, the counter's item count and byte total. The
//! next child goes on with the same file; every 1–8 kills the loop starts a new one. A file that
//! does not open is copied to `$CARGO_TARGET_TMPDIR/crash_kill/<mode>.realm`, and the loop goes
//! on with a new file, so that a soak counts how often it happens.
//!
//! Two more tests aim at moments the loop rarely hits: right after a commit that made the file
//! smaller (deterministic), and while the writer creates its file.
//!
//! Environment:
//! - `SHOAL_KILL_SOAK=<kills>`: kills per mode (default 200, what CI runs).
//! - `SHOAL_KILL_SEED=<u64>`: replays a run (every run prints its seed).
//!
//! ```sh
//! cargo test --test crash_kill -- --nocapture                          # CI: 200 kills per mode
//! SHOAL_KILL_SOAK=2000 cargo test --release --test crash_kill -- --nocapture
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shoal::{Config, PropertyFlags as F, PropertyType as T, Realm, Schema, Value};

/// Set only in the child: `<realm file>` `<seed>` `plain|encrypted` `run|stop-on-shrink`.
const CHILD_ENV: &str = "SHOAL_KILL_CHILD";
/// Starts every line the child reports, wherever libtest's own output puts it.
const MARK: &str = "SHOAL-KILL ";
/// At most this many objects after a transaction (their strings average 5.5 KB).
const MAX_LIVE: usize = 30;
/// Each file lives for 1 to this many kills, then the loop starts over with a new one. A realm
/// keeps every transaction's changeset (its history), and reopening after a crash reads the
/// whole file (redb's repair), which debug builds decrypt at about 2 MB/s: this keeps each
/// reopen well under a second.
const MAX_KILLS_PER_FILE: u64 = 8;
/// Long enough that only a hang hits it.
const PATIENCE: Duration = Duration::from_secs(60);
const KEY: [u8; 64] = {
    let mut k = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        k[i] = (i as u8).wrapping_mul(37).wrapping_add(11);
        i += 1;
    }
    k
};

#[test]
fn a_killed_writer_loses_nothing_plain() {
    kill_loop("a_killed_writer_loses_nothing_plain", false);
}

#[test]
fn a_killed_writer_loses_nothing_encrypted() {
    kill_loop("a_killed_writer_loses_nothing_encrypted", true);
}

/// Deterministic: the writer is killed right after the first commit that made the file
/// smaller (redb gives back free space at the end of the file as part of a commit, which young
/// files do often), before it writes anything else.
#[test]
fn a_writer_killed_right_after_its_file_shrank_loses_nothing() {
    let name = "a_writer_killed_right_after_its_file_shrank_loses_nothing";
    run_child_if_asked();
    let mut failures = Vec::new();
    for encrypted in [false, true] {
        let mode = if encrypted { "encrypted" } else { "plain" };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrunk.realm");
        let path = path.to_str().unwrap();
        let seed = 1;
        let mut running = Running::spawn(name, path, seed, encrypted, true, dir.path());
        let mut shrunk = None;
        while let Some(line) = running.next_line() {
            if let Some((_, n)) = line.split_once(&format!("{MARK}shrunk ")) {
                shrunk = Some(n.trim().parse::<u64>().unwrap());
                break;
            }
        }
        let heard = running.kill();
        let seq = shrunk.expect("a commit made the file smaller");
        println!("{mode}: commit {seq} made the file smaller; killed");
        assert_eq!((heard.done, heard.started), (Some(seq), Some(seq)));
        match Realm::open(&config(path, encrypted)) {
            Ok(realm) => {
                let found = Model::read(&realm).unwrap();
                assert_eq!(found.seq, seq, "{mode}: commit {seq} returned");
                assert_eq!(found, Model::new().advanced(seed, seq), "{mode}");
            }
            Err(e) => failures.push(format!(
                "{mode}: the file does not open after commit {seq} shrank it: {e}"
            )),
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// A writer killed while it creates its file, at a random moment between the file appearing
/// and the realm being open (redb sizes the file, writes its header, then its magic number;
/// Shoal then writes the schema): no commit returned, so the file must open as a new realm.
#[test]
fn a_writer_killed_while_it_creates_its_file_leaves_a_file_that_opens() {
    let name = "a_writer_killed_while_it_creates_its_file_leaves_a_file_that_opens";
    run_child_if_asked();
    let mut rng = Rng(std::process::id().into());
    let mut failures = Vec::new();
    for encrypted in [false, true] {
        let mode = if encrypted { "encrypted" } else { "plain" };
        let (mut caught, mut attempts) = (0, 0);
        // Until 10 kills came before the realm was open (a bounded number of tries).
        while caught < 10 && attempts < 100 {
            attempts += 1;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("new.realm");
            let path = path.to_str().unwrap();
            let running = Running::spawn(name, path, 1, encrypted, false, dir.path());
            let deadline = Instant::now() + PATIENCE;
            while !Path::new(path).exists() && Instant::now() < deadline {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_micros(rng.below(5_000)));
            let heard = running.kill();
            if heard.opened {
                continue; // too late
            }
            caught += 1;
            let len = std::fs::metadata(path).map_or(0, |m| m.len());
            match Realm::open(&config(path, encrypted)) {
                Ok(realm) => assert_eq!(Model::read(&realm).unwrap(), Model::new(), "{mode}"),
                Err(e) => failures.push(format!(
                    "{mode}: killed while creating the file ({len} bytes by then), it does not \
                     open: {e}"
                )),
            }
        }
        println!("{mode}: {caught} kills while the file was created, in {attempts} tries");
        assert!(caught > 0, "{mode}: no kill came before the realm was open");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// splitmix64: small, seedable, good enough to pick operations and fill strings.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Counter", Some("id")).unwrap();
    for p in ["id", "seq", "next_id", "items", "bytes"] {
        s.add_property("Counter", p, T::Int, F::NONE, None).unwrap();
    }
    s.add_class("Item", Some("id")).unwrap();
    s.add_property("Item", "id", T::Int, F::NONE, None).unwrap();
    s.add_property("Item", "seq", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Item", "body", T::String, F::NONE, None)
        .unwrap();
    s
}

fn config(path: &str, encrypted: bool) -> Config {
    let mut c = Config::new(path);
    c.set_schema(schema()).unwrap();
    if encrypted {
        c.set_encryption_key(Some(&KEY)).unwrap();
    }
    c
}

/// The string object `id` holds after transaction `seq` wrote it with length `len`.
fn body(id: i64, seq: u64, len: usize) -> String {
    let mut rng = Rng((id as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) ^ seq);
    let mut s = Vec::with_capacity(len + 8);
    while s.len() < len {
        s.extend(rng.next().to_le_bytes().map(|b| b'a' + b % 26));
    }
    s.truncate(len);
    String::from_utf8(s).unwrap()
}

/// One change of a transaction: `Put` creates or overwrites an object, `Delete` removes one.
enum Op {
    Put { id: i64, len: usize },
    Delete(i64),
}

/// What a realm holds after `seq` transactions: per object, the transaction that last wrote it
/// and its string length (the string itself is `body(id, seq, len)`).
#[derive(Clone, Debug, PartialEq)]
struct Model {
    seq: u64,
    next_id: i64,
    items: BTreeMap<i64, (u64, usize)>,
}

impl Model {
    fn new() -> Model {
        Model {
            seq: 0,
            next_id: 0,
            items: BTreeMap::new(),
        }
    }

    fn bytes(&self) -> usize {
        self.items.values().map(|&(_, len)| len).sum()
    }

    /// Transaction `seq` (the next one) of the run `seed`, given this content.
    fn plan(&self, seed: u64, seq: u64) -> Vec<Op> {
        let mut rng = Rng(seed ^ seq.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut live: Vec<i64> = self.items.keys().copied().collect();
        let mut next = self.next_id;
        let mut ops = Vec::new();
        let len = |rng: &mut Rng| 1024 + rng.below(9 * 1024) as usize;
        let delete_one = |rng: &mut Rng, live: &mut Vec<i64>, ops: &mut Vec<Op>| {
            if !live.is_empty() {
                let i = rng.below(live.len() as u64) as usize;
                ops.push(Op::Delete(live.swap_remove(i)));
            }
        };
        match rng.below(100) {
            // Large: 10–40 new objects (about 0.05–0.2 MB).
            0..=3 => {
                for _ in 0..10 + rng.below(31) {
                    ops.push(Op::Put {
                        id: next,
                        len: len(&mut rng),
                    });
                    live.push(next);
                    next += 1;
                }
            }
            // Mass delete: about half of everything.
            4..=5 => {
                for _ in 0..live.len() / 2 {
                    delete_one(&mut rng, &mut live, &mut ops);
                }
            }
            _ => {
                for _ in 0..1 + rng.below(5) {
                    match rng.below(10) {
                        0..=4 => {
                            ops.push(Op::Put {
                                id: next,
                                len: len(&mut rng),
                            });
                            live.push(next);
                            next += 1;
                        }
                        5..=7 if !live.is_empty() => {
                            let id = live[rng.below(live.len() as u64) as usize];
                            ops.push(Op::Put {
                                id,
                                len: len(&mut rng),
                            });
                        }
                        _ => delete_one(&mut rng, &mut live, &mut ops),
                    }
                }
            }
        }
        while live.len() > MAX_LIVE {
            delete_one(&mut rng, &mut live, &mut ops);
        }
        ops
    }

    fn apply(&mut self, seq: u64, ops: &[Op]) {
        for op in ops {
            match *op {
                Op::Put { id, len } => {
                    self.items.insert(id, (seq, len));
                    self.next_id = self.next_id.max(id + 1);
                }
                Op::Delete(id) => {
                    self.items.remove(&id);
                }
            }
        }
        self.seq = seq;
    }

    /// The content after `seq` transactions of the run, from this one (or from nothing).
    fn advanced(&self, seed: u64, seq: u64) -> Model {
        let mut m = if seq >= self.seq {
            self.clone()
        } else {
            Model::new()
        };
        while m.seq < seq {
            let s = m.seq + 1;
            let ops = m.plan(seed, s);
            m.apply(s, &ops);
        }
        m
    }

    /// Reads a realm's content, checking every string against its generator and the counter
    /// object against the objects.
    fn read(realm: &Realm) -> Result<Model, String> {
        let int = |o: &shoal::Object, p: &str| match o.get(p) {
            Ok(Value::Int(i)) => Ok(i),
            other => Err(format!("{p}: {other:?}")),
        };
        let mut m = Model::new();
        for o in realm.objects("Item").unwrap().to_vec().unwrap() {
            let (id, seq) = (int(&o, "id")?, int(&o, "seq")? as u64);
            let Ok(Value::String(s)) = o.get("body") else {
                return Err(format!("item {id}: no string"));
            };
            if s != body(id, seq, s.len()) {
                return Err(format!(
                    "item {id}: its {} bytes are not what transaction {seq} wrote",
                    s.len()
                ));
            }
            m.items.insert(id, (seq, s.len()));
        }
        match realm.find_object("Counter", &Value::Int(0)).unwrap() {
            None if m.items.is_empty() => {}
            None => return Err(format!("{} items and no counter", m.items.len())),
            Some(c) => {
                m.seq = int(&c, "seq")? as u64;
                m.next_id = int(&c, "next_id")?;
                let (items, bytes) = (int(&c, "items")?, int(&c, "bytes")?);
                if items as usize != m.items.len() || bytes as usize != m.bytes() {
                    return Err(format!(
                        "the counter says {items} items of {bytes} bytes; the realm has {} of {}",
                        m.items.len(),
                        m.bytes()
                    ));
                }
            }
        }
        Ok(m)
    }
}

/// Runs the child instead of the test if this process is one (never returns then).
fn run_child_if_asked() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args: Vec<&str> = args.split('\n').collect();
    let [path, seed, mode, stop] = args[..] else {
        panic!("{CHILD_ENV}={args:?}");
    };
    child(
        path,
        mode == "encrypted",
        seed.parse().unwrap(),
        stop == "stop-on-shrink",
    );
}

/// The child: commits until killed, reporting each commit on stdout (`commit N` before, `done N`
/// after, then `grew N` or `shrunk N` if the commit changed the file's length); with
/// `stop_on_shrink`, it waits to be killed after the first commit that left the file smaller.
fn child(path: &str, encrypted: bool, seed: u64, stop_on_shrink: bool) -> ! {
    let realm = Realm::open(&config(path, encrypted)).expect("child: open");
    let mut model = Model::read(&realm).expect("child: a consistent realm");
    let mut out = std::io::stdout().lock();
    let mut report = |line: String| {
        // A write error means the parent is gone: end with it.
        writeln!(out, "{MARK}{line}").expect("report to the parent");
        out.flush().expect("report to the parent");
    };
    let file_len = || std::fs::metadata(path).unwrap().len();
    report(format!("open {}", model.seq));
    loop {
        let seq = model.seq + 1;
        let ops = model.plan(seed, seq);
        realm.begin_write().unwrap();
        for op in &ops {
            match *op {
                Op::Put { id, len } => {
                    let o = match realm.find_object("Item", &Value::Int(id)).unwrap() {
                        Some(o) => o,
                        None => realm.create_object("Item", Some(&Value::Int(id))).unwrap(),
                    };
                    o.set("seq", seq as i64).unwrap();
                    o.set("body", body(id, seq, len)).unwrap();
                }
                Op::Delete(id) => realm
                    .find_object("Item", &Value::Int(id))
                    .unwrap()
                    .expect("a live object")
                    .delete()
                    .unwrap(),
            }
        }
        model.apply(seq, &ops);
        let c = match realm.find_object("Counter", &Value::Int(0)).unwrap() {
            Some(c) => c,
            None => realm
                .create_object("Counter", Some(&Value::Int(0)))
                .unwrap(),
        };
        c.set("seq", seq as i64).unwrap();
        c.set("next_id", model.next_id).unwrap();
        c.set("items", model.items.len() as i64).unwrap();
        c.set("bytes", model.bytes() as i64).unwrap();
        let before = file_len();
        report(format!("commit {seq}"));
        realm.commit().unwrap();
        report(format!("done {seq}"));
        let after = file_len();
        if after != before {
            report(format!(
                "{} {seq}",
                if after < before { "shrunk" } else { "grew" }
            ));
            if stop_on_shrink && after < before {
                loop {
                    std::thread::park();
                }
            }
        }
        assert!(seq < 10_000, "child: never killed");
    }
}

/// A child process and the lines of its stdout, each with the time the parent read it.
struct Running {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: PathBuf,
    heard: Heard,
}

impl Drop for Running {
    /// A test failing half way does not leave the child writing.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts this test binary as a child running `test` (which must call
    /// [`run_child_if_asked`] first) on the realm at `path`; its stderr goes to a file in `dir`.
    fn spawn(
        test: &str,
        path: &str,
        seed: u64,
        encrypted: bool,
        stop_on_shrink: bool,
        dir: &Path,
    ) -> Running {
        let mode = if encrypted { "encrypted" } else { "plain" };
        let stop = if stop_on_shrink {
            "stop-on-shrink"
        } else {
            "run"
        };
        let stderr = dir.join("child-stderr.txt");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{path}\n{seed}\n{mode}\n{stop}"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start the child");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                let _ = tx.send((Instant::now(), line));
            }
        });
        Running {
            child,
            lines,
            reader: Some(reader),
            stderr,
            heard: Heard::default(),
        }
    }

    /// The child's next line (`None` if it ended or said nothing for [`PATIENCE`]).
    fn next_line(&mut self) -> Option<String> {
        let (at, line) = self.lines.recv_timeout(PATIENCE).ok()?;
        self.heard.take(at, &line);
        Some(line)
    }

    /// SIGKILLs the child and returns all it reported.
    /// Panics if the child had ended by itself.
    fn kill(mut self) -> Heard {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "the child ended by itself ({status}):\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        while let Ok((at, line)) = self.lines.try_recv() {
            self.heard.take(at, &line);
        }
        std::mem::take(&mut self.heard)
    }
}

/// What the parent heard from one child.
#[derive(Default)]
struct Heard {
    opened: bool,
    /// The last commit that returned.
    done: Option<u64>,
    /// The last commit that started, and when the parent heard of it.
    started: Option<u64>,
    started_at: Option<Instant>,
    /// The last commit that changed the file's length.
    resized: Option<u64>,
    /// How long the commits took, from `commit N` to `done N` as the parent heard them.
    commit_times: Vec<Duration>,
}

impl Heard {
    /// Takes one line of the child's output, heard at `at`.
    fn take(&mut self, at: Instant, line: &str) {
        let Some((_, event)) = line.split_once(MARK) else {
            return;
        };
        let (what, n) = event.split_once(' ').expect("event and number");
        let n: u64 = n.trim().parse().expect("a number");
        match what {
            "open" => self.opened = true,
            "commit" => {
                self.started = Some(n);
                self.started_at = Some(at);
            }
            "done" => {
                self.done = Some(n);
                if let Some(s) = self.started_at.take() {
                    self.commit_times.push(at.duration_since(s));
                }
            }
            "grew" | "shrunk" => self.resized = Some(n),
            _ => panic!("unknown report {line}"),
        }
    }
}

#[derive(Default)]
struct Stats {
    kills: usize,
    /// Killed before the child had opened the realm (during open or recovery).
    during_open: usize,
    /// Killed between `commit N` and `done N`: commit N in flight.
    during_commit: usize,
    /// ... of which the reopened file had commit N.
    in_flight_applied: usize,
    /// Killed after a commit that changed the file's length, before the next one returned.
    after_resize: usize,
    commits: u64,
    open_failures: Vec<String>,
    lost_commits: u64,
    wrong_content: Vec<String>,
    max_reopen: Duration,
}

fn kill_loop(name: &str, encrypted: bool) {
    run_child_if_asked();
    let mode = if encrypted { "encrypted" } else { "plain" };
    let kills: usize = std::env::var("SHOAL_KILL_SOAK")
        .map(|v| v.parse().expect("SHOAL_KILL_SOAK=<kills>"))
        .unwrap_or(200);
    let seed: u64 = std::env::var("SHOAL_KILL_SEED")
        .map(|v| v.parse().expect("SHOAL_KILL_SEED=<u64>"))
        .unwrap_or_else(|_| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            t.unwrap().as_nanos() as u64 ^ u64::from(std::process::id())
        });
    println!("{mode}: seed {seed} (SHOAL_KILL_SEED={seed} replays it), {kills} kills");
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.realm");
    let path = path.to_str().unwrap();
    let mut rng = Rng(seed);
    let mut expected = Model::new();
    let mut stats = Stats::default();
    // How long commits take (from `commit N` to `done N`), to aim kills inside them.
    let mut commit_time = Duration::from_millis(5);
    let mut file_ends = 0;

    while stats.kills < kills {
        if stats.kills == file_ends {
            // A new file: young files change their layout most (grow, shrink).
            file_ends += 1 + rng.below(MAX_KILLS_PER_FILE) as usize;
            if expected.seq > 0 {
                std::fs::remove_file(path).unwrap();
                expected = Model::new();
            }
        }
        let mut running = Running::spawn(name, path, seed, encrypted, false, dir.path());
        match rng.below(8) {
            // Anywhere: also while the child starts, opens and recovers the file.
            0..=1 => std::thread::sleep(Duration::from_micros(rng.below(300_000))),
            // Inside a commit (mostly), just after one returned (redb's work after the commit,
            // the next transaction starting), or just after one changed the file's length (redb
            // grows the file by doubling and gives back free space at its end), among the
            // child's next few.
            strategy => {
                let (events, aim, nth): (&[&str], _, _) = match strategy {
                    2..=3 => (&["commit"], commit_time, 1 + rng.below(4)),
                    4..=5 => (&["done"], commit_time / 2, 1 + rng.below(4)),
                    _ => (&["grew", "shrunk"], commit_time / 2, 1),
                };
                let mut seen = 0;
                let mut commits = 0;
                // At most 20 commits (a file can keep its length for long).
                while seen < nth && commits < 20 {
                    // `None`: the child died or hangs, which `kill` tells.
                    let Some(line) = running.next_line() else {
                        break;
                    };
                    let event = line.split_once(MARK).map(|(_, e)| e.split(' ').next());
                    seen += u64::from(events.iter().any(|e| event == Some(Some(e))));
                    commits += u64::from(event == Some(Some("commit")));
                }
                let aim = aim.as_micros() as u64;
                std::thread::sleep(Duration::from_micros(rng.below(aim.max(1))));
            }
        }
        let heard = running.kill();
        stats.kills += 1;
        for &t in &heard.commit_times {
            // A moving average, weighted to recent commits.
            commit_time = (commit_time * 7 + t) / 8;
        }
        let in_flight = match (heard.started, heard.done) {
            (Some(s), d) if Some(s) > d => Some(s),
            _ => None,
        };
        stats.during_open += usize::from(!heard.opened);
        stats.during_commit += usize::from(in_flight.is_some());
        stats.after_resize += usize::from(heard.resized.is_some() && heard.resized == heard.done);

        // Reopen and check.
        let t = Instant::now();
        let realm = match Realm::open(&config(path, encrypted)) {
            Ok(r) => r,
            Err(e) => {
                let mut what = format!("kill {}: {e}", stats.kills);
                if stats.open_failures.is_empty() {
                    what += &format!(" (file kept at {})", keep_broken(path, mode));
                }
                println!("{mode}: REOPEN FAILED after {what}");
                stats.open_failures.push(what);
                // Go on with a new file, so a soak counts how often this happens.
                std::fs::remove_file(path).unwrap();
                expected = Model::new();
                continue;
            }
        };
        stats.max_reopen = stats.max_reopen.max(t.elapsed());
        let found = Model::read(&realm);
        realm.close();
        drop(realm);
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                let what = format!("kill {}: {e}", stats.kills);
                println!("{mode}: WRONG CONTENT after {what}");
                stats.wrong_content.push(what);
                break; // the child cannot go on from an inconsistent realm
            }
        };
        let lowest = heard.done.unwrap_or(0).max(expected.seq);
        let highest = in_flight.unwrap_or(0).max(lowest);
        if found.seq < lowest {
            println!(
                "{mode}: LOST COMMITS after kill {}: the file is at {}, commit {lowest} had returned",
                stats.kills, found.seq
            );
            stats.lost_commits += lowest - found.seq;
        } else if found.seq > highest {
            let what = format!(
                "kill {}: the file is at commit {} but no commit after {highest} started",
                stats.kills, found.seq
            );
            println!("{mode}: WRONG CONTENT after {what}");
            stats.wrong_content.push(what);
        }
        if in_flight.is_some_and(|s| found.seq >= s) {
            stats.in_flight_applied += 1;
        }
        stats.commits += found.seq.saturating_sub(expected.seq);
        expected = expected.advanced(seed, found.seq);
        if found != expected {
            let what = format!(
                "kill {}: the content at commit {} is not what the transactions wrote ({} objects, expected {})",
                stats.kills,
                found.seq,
                found.items.len(),
                expected.items.len()
            );
            println!("{mode}: WRONG CONTENT after {what}");
            stats.wrong_content.push(what);
            expected = found; // the child goes on from what is there
        }
    }

    let file_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let data_bytes = expected.bytes();
    let ratio = if data_bytes > 0 {
        format!("{:.1}×", file_bytes as f64 / data_bytes as f64)
    } else {
        "-".into()
    };
    println!(
        "{mode}: {} kills in {:.1} s: {} while opening, {} with a commit in flight ({} of them \
         kept it), {} after a commit that resized the file; {} commits",
        stats.kills,
        started.elapsed().as_secs_f64(),
        stats.during_open,
        stats.during_commit,
        stats.in_flight_applied,
        stats.after_resize,
        stats.commits,
    );
    println!(
        "{mode}: reopen failures {}, lost commits {}, wrong contents {}, max reopen {:.0} ms; \
         last file {file_bytes} bytes for {data_bytes} bytes of strings in {} objects ({ratio})",
        stats.open_failures.len(),
        stats.lost_commits,
        stats.wrong_content.len(),
        stats.max_reopen.as_secs_f64() * 1000.0,
        expected.items.len(),
    );
    assert!(
        stats.open_failures.is_empty(),
        "{mode} (seed {seed}): {} of {} reopens failed: {:?}",
        stats.open_failures.len(),
        stats.kills,
        stats.open_failures
    );
    assert_eq!(stats.lost_commits, 0, "{mode} (seed {seed}): lost commits");
    assert!(
        stats.wrong_content.is_empty(),
        "{mode} (seed {seed}): {:?}",
        stats.wrong_content
    );
    // Not vacuous: the kills landed mid-commit, and the child got work done between them.
    assert!(
        stats.during_commit >= stats.kills / 5,
        "{mode}: only {} of {} kills hit a commit in flight",
        stats.during_commit,
        stats.kills
    );
    assert!(
        stats.commits >= stats.kills as u64,
        "{mode}: too few commits"
    );
}

/// Copies a file that failed to reopen to `$CARGO_TARGET_TMPDIR/crash_kill/<mode>.realm` (the
/// latest run's first failure); returns where.
fn keep_broken(path: &str, mode: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("crash_kill");
    std::fs::create_dir_all(&dir).unwrap();
    let to = dir.join(format!("{mode}.realm"));
    std::fs::copy(path, &to).unwrap();
    to.display().to_string()
}

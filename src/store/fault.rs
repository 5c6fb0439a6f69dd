//! Fault injection for the storage formats (unit tests only).
//!
//! [`Recorded`] sits between redb (or the encryption layer) and the real file of a realm and,
//! for the paths a test registered with [`record`], logs every write, length change and sync
//! that reaches the file, with the test's own markers ("commit n returned") in between. From
//! such a log, [`crash_image`] builds what a disk could hold after a crash at any write: all
//! synced operations, the unsynced ones before it kept or lost, the write itself torn at any
//! offset (its first or its last part reached the disk), nothing after it. The sweep writes
//! each image to a real file, opens it with the normal code path and checks that it opens and
//! holds every commit whose call returned before the crash, and nothing half-applied.

use parking_lot::Mutex;
use redb::StorageBackend;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, LazyLock};

/// One operation that reached the file, or a marker of the test.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
    Sync,
    /// Commit `n` returned to the caller.
    Returned(#[allow(dead_code)] u64),
    /// The file was opened at its own path (before: while being created beside it).
    OpenedInPlace,
}

/// The operations of one file, in order.
pub(crate) type Log = Arc<Mutex<Vec<Op>>>;

static LOGS: LazyLock<Mutex<HashMap<String, Log>>> = LazyLock::new(Default::default);

/// Starts recording what reaches the file at `path` (as the registry names it: canonical) the
/// next time it is opened, including its creation as `<path>.creating` (the same file, linked
/// into place once complete).
pub(crate) fn record(path: &str) -> Log {
    let log = Log::default();
    let mut logs = LOGS.lock();
    logs.insert(path.to_owned(), log.clone());
    logs.insert(format!("{path}.creating"), log.clone());
    log
}

/// redb's file backend, recording when its path is registered.
#[derive(Debug)]
pub(crate) struct Recorded {
    inner: redb::backends::FileBackend,
    log: Option<Log>,
}

impl Recorded {
    pub(crate) fn wrap(path: &str, inner: redb::backends::FileBackend) -> Recorded {
        let log = LOGS.lock().get(path).cloned();
        if let Some(log) = &log {
            if !path.ends_with(".creating") {
                log.lock().push(Op::OpenedInPlace);
            }
        }
        Recorded { inner, log }
    }

    fn push(&self, op: impl FnOnce() -> Op) {
        if let Some(log) = &self.log {
            log.lock().push(op());
        }
    }
}

impl StorageBackend for Recorded {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.push(|| Op::SetLen(len));
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.inner.sync_data()?;
        self.push(|| Op::Sync);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.push(|| Op::Write(offset, data.to_vec()));
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }
    forward_range_locks!();
}

/// Which unsynced operations before the crashing write reached the disk.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unsynced {
    Kept,
    Lost,
    /// Each one independently, by the bits of this number (repeating).
    Some(u64),
}

/// Which part of the crashing write reached the disk.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tear {
    /// Bytes `..at`.
    Head(usize),
    /// Bytes `at..`.
    Tail(usize),
}

fn apply(image: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(offset, data) => write_at(image, *offset, data),
        Op::SetLen(len) => image.resize(*len as usize, 0),
        Op::Sync | Op::Returned(_) | Op::OpenedInPlace => {}
    }
}

fn write_at(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let (start, end) = (offset as usize, offset as usize + data.len());
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
}

/// The file after a crash during operation `at` (a write) of `log`, and how many commits had
/// returned before it.
pub(crate) fn crash_image(log: &[Op], at: usize, unsynced: Unsynced, tear: Tear) -> (Vec<u8>, u64) {
    let last_sync = log[..at]
        .iter()
        .rposition(|op| matches!(op, Op::Sync))
        .map_or(0, |i| i + 1);
    let mut image = Vec::new();
    for op in &log[..last_sync] {
        apply(&mut image, op);
    }
    for (n, op) in log[last_sync..at].iter().enumerate() {
        let keep = match unsynced {
            Unsynced::Kept => true,
            Unsynced::Lost => false,
            Unsynced::Some(bits) => bits.rotate_right(n as u32) & 1 == 1,
        };
        if keep {
            apply(&mut image, op);
        }
    }
    if let Op::Write(offset, data) = &log[at] {
        match tear {
            Tear::Head(k) => write_at(&mut image, *offset, &data[..k]),
            Tear::Tail(k) => write_at(&mut image, *offset + k as u64, &data[k..]),
        }
    }
    let returned = log[..at]
        .iter()
        .filter(|op| matches!(op, Op::Returned(_)))
        .count() as u64;
    (image, returned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, PropertyFlags, PropertyType, Realm, Schema, Value};
    use std::collections::BTreeMap;

    const PAGE: u64 = 4096;

    /// The content a commit leaves: id → (payload length, payload seed, commit that wrote it).
    type Model = BTreeMap<i64, (usize, u64, i64)>;

    fn payload(len: usize, seed: u64) -> String {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect()
    }

    fn config(path: &str, key: Option<&[u8; 64]>) -> Config {
        let mut schema = Schema::new();
        schema.add_class("Item", Some("id")).unwrap();
        for (name, ty) in [
            ("id", PropertyType::Int),
            ("data", PropertyType::String),
            ("commit", PropertyType::Int),
        ] {
            schema
                .add_property("Item", name, ty, PropertyFlags::NONE, None)
                .unwrap();
        }
        schema.add_class("Meta", Some("id")).unwrap();
        schema
            .add_property("Meta", "id", PropertyType::Int, PropertyFlags::NONE, None)
            .unwrap();
        schema
            .add_property(
                "Meta",
                "commits",
                PropertyType::Int,
                PropertyFlags::NONE,
                None,
            )
            .unwrap();
        let mut config = Config::new(path);
        config.set_schema(schema).unwrap();
        if let Some(key) = key {
            config.set_encryption_key(Some(key)).unwrap();
        }
        config
    }

    /// Runs the workload on a recorded file; returns the log and the model after each commit
    /// (index 0: the freshly created realm).
    fn run_workload(
        dir: &std::path::Path,
        key: Option<&[u8; 64]>,
        commits: u64,
    ) -> (Vec<Op>, Vec<Model>) {
        let path = dir.join("recorded.realm");
        let path = path.to_str().unwrap();
        let log = record(path);
        let mut models = vec![Model::new()];
        let mut model = Model::new();
        {
            let realm = Realm::open(&config(path, key)).unwrap();
            log.lock().push(Op::Returned(0));
            let mut next_id = 0i64;
            for n in 1..=commits {
                realm.begin_write().unwrap();
                let mut rng = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                // Mostly small commits, with a few big ones that grow the file and write
                // multi-page runs, and deletes that free pages for reuse.
                let creates = if n % 5 == 0 { 40 } else { 1 + next() % 4 };
                for _ in 0..creates {
                    let len = if n % 5 == 0 {
                        2_000 + (next() % 9_000) as usize
                    } else {
                        50 + (next() % 3_000) as usize
                    };
                    let seed = next();
                    let obj = realm
                        .create_object("Item", Some(&Value::Int(next_id)))
                        .unwrap();
                    obj.set("data", payload(len, seed)).unwrap();
                    obj.set("commit", n as i64).unwrap();
                    model.insert(next_id, (len, seed, n as i64));
                    next_id += 1;
                }
                let ids: Vec<i64> = model.keys().copied().collect();
                for _ in 0..(next() % 3) {
                    let id = ids[(next() % ids.len() as u64) as usize];
                    let Some(entry) = model.get_mut(&id) else {
                        continue;
                    };
                    let obj = realm.find_object("Item", &Value::Int(id)).unwrap().unwrap();
                    if next() % 2 == 0 {
                        obj.delete().unwrap();
                        model.remove(&id);
                    } else {
                        let (len, seed) = (100 + (next() % 5_000) as usize, next());
                        obj.set("data", payload(len, seed)).unwrap();
                        obj.set("commit", n as i64).unwrap();
                        *entry = (len, seed, n as i64);
                    }
                }
                let meta = match realm.find_object("Meta", &Value::Int(0)).unwrap() {
                    Some(m) => m,
                    None => realm.create_object("Meta", Some(&Value::Int(0))).unwrap(),
                };
                meta.set("commits", n as i64).unwrap();
                realm.commit().unwrap();
                log.lock().push(Op::Returned(n));
                models.push(model.clone());
            }
        }
        let ops = std::mem::take(&mut *log.lock());
        (ops, models)
    }

    /// Opens the image and checks it holds the state of a commit `>= returned` (the one in
    /// flight may have made it), exactly.
    fn check_image(
        dir: &std::path::Path,
        image: &[u8],
        key: Option<&[u8; 64]>,
        returned: u64,
        models: &[Model],
    ) -> Result<(), String> {
        let path = dir.join("crashed.realm");
        std::fs::write(&path, image).unwrap();
        let path = path.to_str().unwrap();
        let realm = Realm::open(&config(path, key)).map_err(|e| format!("open failed: {e}"))?;
        let commits = match realm
            .find_object("Meta", &Value::Int(0))
            .map_err(|e| e.to_string())?
        {
            Some(m) => m.get("commits").map_err(|e| e.to_string())?,
            None => Value::Int(0),
        };
        let Value::Int(commits) = commits else {
            return Err(format!("commit counter is {commits:?}"));
        };
        let commits = commits as u64;
        // A crash before the first commit returned may leave a file with no realm in it yet;
        // opening it creates the realm, which is the state of "commit 0".
        let floor = returned.saturating_sub(1);
        if commits < floor || commits > returned {
            return Err(format!(
                "holds commit {commits}, but commit {floor} had returned (and {returned} was at most in flight)"
            ));
        }
        let model = &models[commits as usize];
        let items = realm.objects("Item").map_err(|e| e.to_string())?;
        if items.count().map_err(|e| e.to_string())? != model.len() {
            return Err(format!(
                "commit {commits}: {} items, expected {}",
                items.count().unwrap(),
                model.len()
            ));
        }
        for (id, (len, seed, commit)) in model {
            let obj = realm
                .find_object("Item", &Value::Int(*id))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("commit {commits}: item {id} missing"))?;
            let data = obj.get("data").map_err(|e| e.to_string())?;
            if data != Value::String(payload(*len, *seed))
                || obj.get("commit").unwrap() != Value::Int(*commit)
            {
                return Err(format!(
                    "commit {commits}: item {id} differs (half-applied)"
                ));
            }
        }
        drop(items);
        drop(realm);
        std::fs::remove_file(path).unwrap();
        Ok(())
    }

    /// The tear points of a write at `offset` of `len` bytes: every file-page boundary inside
    /// it, plus two pseudo-random offsets.
    fn tears(offset: u64, len: usize, salt: u64) -> Vec<usize> {
        let mut points: Vec<usize> = (1..len)
            .filter(|&i| (offset + i as u64).is_multiple_of(PAGE))
            .collect();
        if len > 1 {
            let r = salt.wrapping_mul(0x2545_F491_4F6C_DD1D);
            points.push(1 + (r % (len as u64 - 1)) as usize);
            points.push(1 + ((r >> 32) % (len as u64 - 1)) as usize);
        }
        points.sort_unstable();
        points.dedup();
        points
    }

    fn sweep(key: Option<&[u8; 64]>) {
        let dir = tempfile::tempdir().unwrap();
        let dir_path = dir.path().canonicalize().unwrap();
        let (log, models) = run_workload(&dir_path, key, 16);
        // Crash images are checked on tmpfs where there is one: their own durability is not
        // under test, and fsyncs on a real disk would make the sweep take minutes.
        let scratch = match std::path::Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm").unwrap(),
            false => tempfile::tempdir().unwrap(),
        };
        let (mut images, mut failures) = (0u64, Vec::new());
        let writes = log.iter().filter(|op| matches!(op, Op::Write(..))).count();
        let started = std::time::Instant::now();
        // Before the file is linked into place a crash leaves no file at all.
        let placed = log
            .iter()
            .position(|op| matches!(op, Op::OpenedInPlace))
            .expect("the recorded file was opened in place");
        for (at, op) in log.iter().enumerate().skip(placed) {
            let Op::Write(offset, data) = op else {
                continue;
            };
            for (k, point) in tears(*offset, data.len(), at as u64)
                .into_iter()
                .enumerate()
            {
                let variants = [
                    (Unsynced::Kept, Tear::Head(point)),
                    (Unsynced::Lost, Tear::Head(point)),
                    (Unsynced::Some(at as u64 * 31 + k as u64), Tear::Tail(point)),
                ];
                for (unsynced, tear) in variants {
                    let (image, returned) = crash_image(&log, at, unsynced, tear);
                    images += 1;
                    if images % 1000 == 0 {
                        println!(
                            "{images} images, {} failed, {:?}",
                            failures.len(),
                            started.elapsed()
                        );
                    }
                    if let Err(e) = check_image(scratch.path(), &image, key, returned, &models) {
                        let failure = format!(
                            "op {at} ({offset}+{}) {unsynced:?} {tear:?}: {e}",
                            data.len()
                        );
                        if failures.len() < 5 {
                            println!("{failure}");
                        }
                        failures.push(failure);
                        let _ = std::fs::remove_file(scratch.path().join("crashed.realm"));
                    }
                }
            }
        }
        println!(
            "{} realm: {} operations ({writes} writes, {} syncs), {images} crash images, {} failed",
            if key.is_some() { "encrypted" } else { "plain" },
            log.len(),
            log.iter().filter(|op| matches!(op, Op::Sync)).count(),
            failures.len()
        );
        assert!(
            images > 500,
            "the sweep must cover many crash points, got {images}"
        );
        assert!(
            failures.is_empty(),
            "{} of {images} crash images failed:\n{}",
            failures.len(),
            failures[..failures.len().min(20)].join("\n")
        );
    }

    #[test]
    fn torn_and_lost_writes_never_lose_a_returned_commit_of_a_plain_realm() {
        sweep(None);
    }

    #[test]
    fn torn_and_lost_writes_never_lose_a_returned_commit_of_an_encrypted_realm() {
        sweep(Some(&[0x5Au8; 64]));
    }

    #[test]
    fn crash_images_apply_synced_writes_and_tear_the_crashing_one() {
        let log = vec![
            Op::Write(0, vec![1; 8]),
            Op::Sync,
            Op::Returned(1),
            Op::Write(8, vec![2; 4]),
            Op::Write(0, vec![3; 8]),
        ];
        let (image, returned) = crash_image(&log, 4, Unsynced::Kept, Tear::Head(3));
        assert_eq!(image, [3, 3, 3, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(returned, 1);
        let (image, _) = crash_image(&log, 4, Unsynced::Lost, Tear::Tail(5));
        assert_eq!(image, [1, 1, 1, 1, 1, 3, 3, 3]);
    }
}

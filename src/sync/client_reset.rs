//! Client reset: when the server cannot continue a file's history (errors 207, 208, 209,
//! 211), the file is moved aside to `<sync root>/recovered-realms/` so that the next open
//! starts a fresh copy from the server; the moved file can still be read with the backup
//! configuration the error carries (or [`Config::for_recovery`](crate::Config::for_recovery)).
//!
//! **The backup path is chosen once**, when the error is raised ([`schedule`]), and recorded
//! durably before the error handler hears of it: a record
//! `<sync root>/shoal-metadata/client-resets/<backup name>.json` = `{"format": 1, "original":
//! <realm file>, "backup": <backup path>}`. Whoever executes the reset later — the app by hand
//! ([`execute`]), or the next open of the realm once every handle is closed, in this process
//! or after a restart ([`run_pending`]) — moves the file to exactly that path, and only then
//! removes the record. See `docs/DESIGN.md` ("Client reset") for the crash argument.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::error::SyncError;
use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};

/// The folder under the sync root the backups go to.
pub(crate) const RECOVERY_DIR: &str = "recovered-realms";
/// The folder under the sync root's metadata folder that holds the pending resets.
const RECORDS_DIR: &str = "client-resets";
/// The format of a record.
const RECORD_FORMAT: u32 = 1;
/// The characters of a backup name's random suffix (those of `mkstemp`).
const SUFFIX_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Serializes the record operations of this process (records are few and small; a reset is
/// rare).
static RECORDS: Mutex<()> = Mutex::new(());

/// A pending client reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    format: u32,
    /// The realm file to move.
    original: String,
    /// Where it goes: the path the error announced.
    backup: String,
}

fn records_dir(root: &Path) -> PathBuf {
    root.join(crate::app::METADATA_DIR).join(RECORDS_DIR)
}

/// `recovered_realm-YYYYMMDD-HHMMSS-XXXXXXXX`: the local time of `unix_secs` and 8 random
/// letters or digits (Realm's `create_timestamped_template("recovered_realm")` filled in by
/// `mkstemp`).
pub(crate) fn backup_name(unix_secs: i64, random: u64) -> String {
    let (y, mo, d, h, mi, s) = local_time(unix_secs);
    let mut suffix = String::with_capacity(8);
    let mut r = random;
    for _ in 0..8 {
        suffix.push(SUFFIX_CHARS[(r % SUFFIX_CHARS.len() as u64) as usize] as char);
        r /= SUFFIX_CHARS.len() as u64;
    }
    format!("recovered_realm-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{suffix}")
}

/// `(year, month, day, hour, minute, second)` of `unix_secs` in local time (UTC where the
/// platform has no `localtime_r`).
fn local_time(unix_secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    #[cfg(unix)]
    {
        let t = unix_secs as libc::time_t;
        // Safety: `tm` is plain data, filled in by localtime_r, which is thread-safe.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if !unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return (
                i64::from(tm.tm_year) + 1900,
                (tm.tm_mon + 1) as u32,
                tm.tm_mday as u32,
                tm.tm_hour as u32,
                tm.tm_min as u32,
                tm.tm_sec as u32,
            );
        }
    }
    utc_time(unix_secs)
}

/// `(year, month, day, hour, minute, second)` of `unix_secs` in UTC (civil-from-days).
fn utc_time(unix_secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}

/// Makes sure a directory entry change (a create, rename or remove in `dir`) is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::from(e).with_path(dir.display().to_string()))
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::from(e).with_path(dir.display().to_string()))
}

/// Every record in `dir` with its file; records that do not parse are removed (an
/// interrupted [`schedule`] left them: their error was never reported, and the server raises
/// it again at the next bind).
fn read_records(dir: &Path) -> Result<Vec<(PathBuf, Record)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::from(e).with_path(dir.display().to_string())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::from(e).with_path(dir.display().to_string()))?;
        let file = entry.path();
        if file.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let parsed = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
            .filter(|r| r.format == RECORD_FORMAT);
        match parsed {
            Some(record) => out.push((file, record)),
            None => {
                tracing::warn!(record = %file.display(), "removing an unreadable client reset record");
                let _ = std::fs::remove_file(&file);
            }
        }
    }
    Ok(out)
}

fn find(root: &Path, original: &str) -> Result<Option<(PathBuf, Record)>> {
    let original = Path::new(original);
    Ok(read_records(&records_dir(root))?
        .into_iter()
        .find(|(_, r)| Path::new(&r.original) == original))
}

/// The backup path of the client reset pending for `original`, if one is recorded.
pub(crate) fn pending(root: &Path, original: &str) -> Result<Option<PathBuf>> {
    let _lock = RECORDS.lock();
    Ok(find(root, original)?.map(|(_, r)| PathBuf::from(r.backup)))
}

/// Chooses where a client reset of `original` will move it, and records it durably before
/// returning (the caller then reports the path): `<root>/recovered-realms/<backup name>`. A
/// reset already pending for the file keeps its path.
pub(crate) fn schedule(root: &Path, original: &str) -> Result<PathBuf> {
    let _lock = RECORDS.lock();
    if let Some((_, record)) = find(root, original)? {
        return Ok(PathBuf::from(record.backup));
    }
    let dir = records_dir(root);
    create_dir(&dir)?;
    let backups = root.join(RECOVERY_DIR);
    loop {
        let name = backup_name(crate::util::unix_now(), crate::util::random_u64());
        let backup = backups.join(&name);
        if backup.exists() {
            continue;
        }
        let record = Record {
            format: RECORD_FORMAT,
            original: original.to_owned(),
            backup: backup.display().to_string(),
        };
        let file = dir.join(format!("{name}.json"));
        // `create_new` reserves the name: a record of the same name (one chance in 62^8
        // within the same second) picks another.
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::from(e).with_path(file.display().to_string())),
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| Error::internal(format!("cannot encode a reset record: {e}")))?;
        use std::io::Write as _;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::from(e).with_path(file.display().to_string()))?;
        sync_dir(&dir)?;
        tracing::debug!(original, backup = %backup.display(), "client reset scheduled");
        return Ok(backup);
    }
}

/// A backup path that is not recorded, for when recording failed (the error still names a
/// path; a reset by hand while the session is alive uses it).
pub(crate) fn unrecorded_backup_path(root: &Path) -> PathBuf {
    root.join(RECOVERY_DIR).join(backup_name(
        crate::util::unix_now(),
        crate::util::random_u64(),
    ))
}

/// The configuration that opens the backup of a realm `config` describes: read-only,
/// unsynced, with the same encryption key, schema and schema version (Realm's
/// `SyncConfiguration.forRecovery(path, key, modules)`).
pub(crate) fn backup_config(config: &Config, backup: &Path) -> Config {
    let mut c = Config::new(backup.display().to_string());
    c.read_only = true;
    c.encryption_key = config.encryption_key;
    c.schema = config.schema.clone();
    c.schema_version = config.schema_version;
    c
}

/// The `CLIENT_RESET` error for the realm `config` describes, the server having refused its
/// history with `code` and `message`; the reset will move the file to `backup`.
pub(crate) fn reset_error(config: &Config, code: i32, message: &str, backup: &Path) -> SyncError {
    let mut error = SyncError::new(
        ErrorCode::ClientReset as i32,
        format!(
            "A client reset is required: the server cannot continue this file's history ({} {code}: {message}). \
             Close every handle of the realm and execute the reset, or it runs at the next open once every handle \
             is closed; the file is then at the backup path",
            super::error::code_name(code)
        ),
        true,
    );
    error.is_client_reset = true;
    error.original_path = Some(config.path.clone());
    error.backup_path = Some(backup.display().to_string());
    error.backup_config = Some(Box::new(backup_config(config, backup)));
    error
}

/// What [`run_pending`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// No reset is pending for the file.
    None,
    /// A handle of the file is open in this process: the reset waits for the next open after
    /// every handle has closed.
    Open,
    /// The reset ran: the file (if there was one) is at this backup path now.
    Done(PathBuf),
}

/// Executes the client reset pending for `original`, if there is one and no handle of the
/// file is open in this process (checked while holding the realm registry, so that no handle
/// opens meanwhile).
pub(crate) fn run_pending(root: &Path, original: &str) -> Result<Pending> {
    let _lock = RECORDS.lock();
    let Some((file, record)) = find(root, original)? else {
        return Ok(Pending::None);
    };
    let backup = PathBuf::from(&record.backup);
    match move_aside(original, &backup)? {
        None => Ok(Pending::Open),
        Some(()) => {
            forget_record(&file)?;
            Ok(Pending::Done(backup))
        }
    }
}

/// Executes a client reset by hand: moves `original` to `backup` (the recorded path, or one
/// the caller chose) and removes the record.
///
/// Fails with `RealmInUse` while any handle of the file is open in this process,
/// `FileNotFound` if there is no file, or a file error.
pub(crate) fn execute(root: &Path, original: &str, backup: &Path) -> Result<()> {
    let _lock = RECORDS.lock();
    if !Path::new(original).exists() {
        return Err(
            Error::new(ErrorCode::FileNotFound, "no realm file to reset").with_path(original),
        );
    }
    match move_aside(original, backup)? {
        None => Err(Error::new(
            ErrorCode::RealmInUse,
            "the realm has not been fully closed: close every handle of it before the client reset",
        )
        .with_path(original)),
        Some(()) => {
            if let Some((file, _)) = find(root, original)? {
                forget_record(&file)?;
            }
            Ok(())
        }
    }
}

fn forget_record(file: &Path) -> Result<()> {
    match std::fs::remove_file(file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::from(e).with_path(file.display().to_string())),
    }
    if let Some(dir) = file.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Moves `original` to `backup` unless a handle of it is open in this process (`None`). A
/// missing original counts as moved (an earlier reset moved it and was interrupted before its
/// record went, or the app deleted the file). A backup that exists already is never
/// overwritten.
fn move_aside(original: &str, backup: &Path) -> Result<Option<()>> {
    let key = match crate::store::file::registry_key(original, false) {
        Ok(key) => key,
        // No folder: no file, nothing open.
        Err(e) if e.code() == ErrorCode::FileNotFound => return Ok(Some(())),
        Err(e) => return Err(e),
    };
    crate::store::file::while_closed(&key, || {
        let from = Path::new(&key);
        if !from.exists() {
            return Ok(());
        }
        if backup.exists() {
            return Err(Error::new(
                ErrorCode::Io,
                "the client reset's backup path exists already; the realm was not moved",
            )
            .with_path(backup.display().to_string()));
        }
        let dir = backup
            .parent()
            .ok_or_else(|| Error::invalid("the backup path has no folder"))?;
        create_dir(dir)?;
        std::fs::rename(from, backup).map_err(|e| Error::from(e).with_path(original))?;
        sync_dir(dir)?;
        if let Some(from_dir) = from.parent() {
            sync_dir(from_dir)?;
        }
        // What an interrupted creation, compaction or upgrade of the file left beside it
        // belongs to the old file.
        for side in ["creating", "compact", "upgrade"] {
            let _ = std::fs::remove_file(format!("{key}.{side}"));
        }
        tracing::info!(original, backup = %backup.display(), "client reset executed");
        Ok(())
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_backup_name(name: &str) -> bool {
        let parts: Vec<&str> = name.split('-').collect();
        parts.len() == 4
            && parts[0] == "recovered_realm"
            && parts[1].len() == 8
            && parts[1].bytes().all(|b| b.is_ascii_digit())
            && parts[2].len() == 6
            && parts[2].bytes().all(|b| b.is_ascii_digit())
            && parts[3].len() == 8
            && parts[3].bytes().all(|b| b.is_ascii_alphanumeric())
    }

    #[test]
    fn backup_names_have_the_seeds_form() {
        let name = backup_name(1_700_000_000, 0);
        assert!(is_backup_name(&name), "{name}");
        assert!(name.ends_with("-AAAAAAAA"), "{name}");
        let name = backup_name(1_700_000_000, u64::MAX);
        assert!(is_backup_name(&name), "{name}");
        assert_ne!(backup_name(0, 1), backup_name(0, 2));
    }

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc_time(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_time(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc_time(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(utc_time(-1), (1969, 12, 31, 23, 59, 59));
    }

    #[test]
    fn a_schedule_is_recorded_once_and_executed_to_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let original = root.join("user").join("tasks");
        std::fs::create_dir_all(original.parent().unwrap()).unwrap();
        std::fs::write(&original, b"realm").unwrap();
        let original = original.display().to_string();
        assert_eq!(pending(root, &original).unwrap(), None);
        let backup = schedule(root, &original).unwrap();
        assert_eq!(backup.parent().unwrap(), root.join(RECOVERY_DIR));
        assert!(is_backup_name(
            backup.file_name().unwrap().to_str().unwrap()
        ));
        assert!(!backup.exists());
        // Scheduled again (a second error): the same path.
        assert_eq!(schedule(root, &original).unwrap(), backup);
        assert_eq!(pending(root, &original).unwrap(), Some(backup.clone()));
        assert_eq!(
            run_pending(root, &original).unwrap(),
            Pending::Done(backup.clone())
        );
        assert_eq!(std::fs::read(&backup).unwrap(), b"realm");
        assert!(!Path::new(&original).exists());
        assert_eq!(pending(root, &original).unwrap(), None);
        assert_eq!(run_pending(root, &original).unwrap(), Pending::None);
    }

    #[test]
    fn interrupted_steps_are_finished_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let original = root.join("f").display().to_string();
        // A record whose file was already moved (a crash before the record went): dropped.
        let backup = schedule(root, &original).unwrap();
        assert_eq!(run_pending(root, &original).unwrap(), Pending::Done(backup));
        assert_eq!(pending(root, &original).unwrap(), None);
        // A torn record (a crash while scheduling): removed, as never reported.
        create_dir(&records_dir(root)).unwrap();
        let torn = records_dir(root).join("recovered_realm-x.json");
        std::fs::write(&torn, b"{\"format\":1,\"orig").unwrap();
        assert_eq!(pending(root, &original).unwrap(), None);
        assert!(!torn.exists());
        // An existing backup is never overwritten.
        std::fs::write(&original, b"new").unwrap();
        let backup = schedule(root, &original).unwrap();
        create_dir(backup.parent().unwrap()).unwrap();
        std::fs::write(&backup, b"old").unwrap();
        assert_eq!(
            run_pending(root, &original).unwrap_err().code(),
            ErrorCode::Io
        );
        assert_eq!(std::fs::read(&backup).unwrap(), b"old");
        assert_eq!(std::fs::read(&original).unwrap(), b"new");
    }
}

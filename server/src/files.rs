//! File modes under the data directory: everything the server keeps there (password hashes,
//! the signing key, the generated admin password, every user's synced data) is readable by the
//! server's user only: files 0600, directories 0700, whether or not the directory existed.
//!
//! - What the server creates itself is created with those modes ([`create_private_dir`],
//!   [`create_private_file`], [`write_private`]), whatever the process umask.
//! - Files created for it by redb or the core's realm code follow the umask; the binary sets a
//!   umask of 077 before anything else, and the sync service tightens each realm directory
//!   after opening it ([`restrict_tree`]), so an in-process server (tests, embedding) is
//!   owner-only too.
//! - At every start [`secure_data_dir`] tightens whatever is readable by others (left by an
//!   older server, a backup restore, a `cp` without `-p`) and warns, once, about a data
//!   directory that its group or others may read. The directory itself is the operator's and
//!   is left as it is.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Modes everything under the data directory gets.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left as they are).
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)
}

/// Creates `path` empty with mode 0600 if it does not exist (redb then initialises it: it
/// accepts an empty file as a new database).
pub(crate) fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path).map(drop)
}

/// Writes `contents` to `path` with mode 0600, through a new temporary file (`create_new`: no
/// file of someone else's is reused) renamed into place, so that a crash leaves the old
/// content or the new, whole.
pub(crate) fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    let mut file = options.open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Make the rename durable; not every platform can open a directory, so best effort.
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Makes sure `data_dir` exists, warns if its group or others may read it, and tightens
/// everything inside it to 0600/0700 ([`restrict_tree`]).
pub(crate) fn secure_data_dir(data_dir: &Path) -> io::Result<()> {
    create_private_dir(data_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(data_dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(data = %data_dir.display(), mode = format!("{mode:o}"),
                "the data directory is readable by its group or others; what the server \
                 keeps in it is owner-only, but consider `chmod 700` on it");
        }
    }
    let tightened = restrict_tree(data_dir)?;
    if tightened > 0 {
        tracing::warn!(data = %data_dir.display(), tightened,
            "files or directories under the data directory were readable by others; \
             made them owner-only");
    }
    Ok(())
}

/// Sets every file under `dir` to 0600 and every directory to 0700 (`dir` itself excluded;
/// symbolic links are not followed). Returns how many modes changed.
pub(crate) fn restrict_tree(dir: &Path) -> io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut changed = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                // Removed meanwhile (a temporary file): nothing to protect.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let wanted = if meta.is_dir() {
                DIR_MODE
            } else if meta.is_file() {
                FILE_MODE
            } else {
                continue;
            };
            if meta.permissions().mode() & 0o777 != wanted {
                fs::set_permissions(&path, fs::Permissions::from_mode(wanted))?;
                changed += 1;
            }
            if meta.is_dir() {
                changed += restrict_tree(&path)?;
            }
        }
        Ok(changed)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(0)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn everything_under_the_data_directory_becomes_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir_all(data.join("realms/1")).unwrap();
        fs::write(data.join("realms/1/log.redb"), "x").unwrap();
        fs::write(data.join("sync.redb"), "x").unwrap();
        for (path, m) in [
            (data.clone(), 0o755),
            (data.join("realms"), 0o755),
            (data.join("realms/1"), 0o775),
            (data.join("realms/1/log.redb"), 0o644),
            (data.join("sync.redb"), 0o666),
        ] {
            fs::set_permissions(&path, fs::Permissions::from_mode(m)).unwrap();
        }
        std::os::unix::fs::symlink("/etc/hostname", data.join("link")).unwrap();
        secure_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o755, "the directory itself is the operator's");
        assert_eq!(mode(&data.join("realms")), 0o700);
        assert_eq!(mode(&data.join("realms/1")), 0o700);
        assert_eq!(mode(&data.join("realms/1/log.redb")), 0o600);
        assert_eq!(mode(&data.join("sync.redb")), 0o600);
        assert_eq!(restrict_tree(&data).unwrap(), 0);

        let fresh = tmp.path().join("fresh/nested");
        secure_data_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        create_private_file(&fresh.join("f")).unwrap();
        write_private(&fresh.join("g"), "secret").unwrap();
        assert_eq!(mode(&fresh.join("f")), 0o600);
        assert_eq!(mode(&fresh.join("g")), 0o600);
        assert_eq!(fs::read_to_string(fresh.join("g")).unwrap(), "secret");
    }
}

//! Client reset: when the server cannot continue a file's history (errors 207, 208, 209,
//! 211), the file is moved aside to `<sync root>/recovered-realms/` so that the next open
//! starts a fresh copy from the server; the moved file can still be read with
//! [`Config::for_recovery`](crate::Config::for_recovery).

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};

/// Where a reset moves a file: `<root>/recovered-realms/recovered_realm-<timestamp>-<rand>`.
pub(crate) fn backup_path(root: &Path) -> PathBuf {
    let stamp = crate::util::now_ms();
    let rand = crate::util::random_u64() % 1_000_000;
    root.join("recovered-realms")
        .join(format!("recovered_realm-{stamp}-{rand:06}"))
}

/// Moves `original` to `backup` (the path the error handler was given).
///
/// Fails with `RealmInUse` while any handle of the file is open in this process,
/// `FileNotFound` if there is no file, or a file error.
pub(crate) fn execute(original: &Path, backup: &Path) -> Result<()> {
    let original_str = original.display().to_string();
    let key = crate::store::file::registry_key(&original_str, false)?;
    if crate::store::file::is_open(&key) {
        return Err(Error::new(
            ErrorCode::RealmInUse,
            "close every handle of the realm before the client reset",
        )
        .with_path(original_str));
    }
    if !original.exists() {
        return Err(
            Error::new(ErrorCode::FileNotFound, "no realm file to reset").with_path(original_str),
        );
    }
    if let Some(dir) = backup.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::from(e).with_path(dir.display().to_string()))?;
    }
    std::fs::rename(original, backup)
        .map_err(|e| Error::from(e).with_path(original_str.clone()))?;
    // Side files a realm may have (the lock file of redb lives inside the file itself).
    tracing::info!(original = %original_str, backup = %backup.display(), "client reset executed");
    Ok(())
}

//! History retention: which changesets the history keeps, and dropping the rest at commit.
//!
//! Every commit appends its changesets (see `write.rs`), but a changeset stays only while
//! something needs it:
//! - the newest one, always: the file's version and its clock are read from it;
//! - all of them while a handle opened with `Config::set_keep_full_history(true)` is open in
//!   this process (replay, tests);
//! - those of commits whose change notification has not been delivered to every callback yet
//!   (a callback may read what changed with `history_since`);
//! - in files with merge metadata or sync progress: the local changesets the server has not
//!   acknowledged (what the session uploads; integrated remote ones are never uploaded).
//!
//! The history is a dense run of versions ending at the newest: a prefix goes once every
//! changeset in it is unneeded, so whatever `history_since` returns has no holes. Trimming is
//! part of every commit (an empty one included): a plain realm that writes one changeset per
//! commit deletes the previous one in the same B-tree leaf, which costs next to nothing.

use crate::error::Result;
use crate::store::snapshot::Snapshot;
use crate::store::tables::{self, meta};
use redb::ReadableTable;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Per file: how many open handles keep the full history.
#[derive(Default)]
pub(crate) struct HistoryHolds {
    full: Arc<AtomicUsize>,
}

/// Keeps every changeset of the file while it lives (a handle opened with
/// `keep_full_history`).
pub(crate) struct FullHistoryHold {
    full: Arc<AtomicUsize>,
}

impl HistoryHolds {
    /// Whether some handle keeps the full history.
    pub(crate) fn any_full(&self) -> bool {
        self.full.load(Ordering::Acquire) > 0
    }

    pub(crate) fn hold_full(&self) -> FullHistoryHold {
        self.full.fetch_add(1, Ordering::AcqRel);
        FullHistoryHold {
            full: self.full.clone(),
        }
    }
}

impl Drop for FullHistoryHold {
    fn drop(&mut self) {
        self.full.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Local changesets a sync upload still needs: those of `origin` (or of none: format 1) after
/// the version the server acknowledged.
#[derive(Clone, Copy)]
pub(crate) struct UploadNeed {
    pub(crate) acked: u64,
    pub(crate) origin: u64,
}

/// What a commit on `base` must keep for the sync upload: in a file with merge metadata (or
/// one that has synced), the local changesets after the acknowledged version.
pub(crate) fn upload_need(
    txn: &redb::WriteTransaction,
    base: &Snapshot,
    merge: bool,
    origin: u64,
) -> Result<Option<UploadNeed>> {
    let before = base.meta_bytes(meta::SYNC)?;
    if !merge && before.is_none() {
        return Ok(None);
    }
    // The transaction may have stored newer progress itself (with a downloaded batch).
    let progress = match txn.open_table(tables::META)?.get(meta::SYNC)? {
        Some(v) => Some(v.value().to_vec()),
        None => before,
    };
    let acked = progress.map_or(0, |b| tables::SyncProgress::decode(&b).acked);
    Ok(Some(UploadNeed { acked, origin }))
}

impl UploadNeed {
    fn needs(&self, version: u64, changeset: &[u8]) -> bool {
        version > self.acked
            && crate::history::changeset_header(changeset)
                .is_ok_and(|(_, origin)| origin == self.origin || origin == 0)
    }
}

/// Appends a commit's `records` after version `base` and drops the changesets nothing needs
/// any more (see the module documentation); returns the new version if `records` made one.
/// `needed_after`: every changeset after it is needed. Records of this very commit that would
/// go at once are not written at all (an integrated batch in a realm nobody listens to).
pub(crate) fn append_and_trim(
    txn: &redb::WriteTransaction,
    base: u64,
    records: &[Vec<u8>],
    needed_after: Option<u64>,
    upload: Option<UploadNeed>,
) -> Result<Option<u64>> {
    let newest = base + records.len() as u64;
    // Nothing above `limit` goes; at or below it, what the upload needs stays.
    let limit = needed_after
        .unwrap_or(u64::MAX)
        .min(newest.saturating_sub(1));
    let needed = |v: u64, bytes: &[u8]| v > limit || upload.is_some_and(|u| u.needs(v, bytes));
    let mut history = txn.open_table(tables::HISTORY)?;
    let mut last_unneeded = None;
    let mut all_stored_unneeded = true;
    for item in history.range(..=base)? {
        let (k, v) = item?;
        let k = k.value();
        if needed(k, v.value()) {
            all_stored_unneeded = false;
            break;
        }
        last_unneeded = Some(k);
    }
    if let Some(last) = last_unneeded {
        history.retain_in(..=last, |_, _| false)?;
    }
    // The run must stay dense: a record is left out only while everything before it goes.
    let mut dropping = all_stored_unneeded;
    for (i, bytes) in records.iter().enumerate() {
        let v = base + 1 + i as u64;
        dropping = dropping && !needed(v, bytes);
        if !dropping {
            history.insert(v, bytes.as_slice())?;
        }
    }
    Ok((!records.is_empty()).then_some(newest))
}

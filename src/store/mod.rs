//! Storage: how realms are laid out in redb tables, read through snapshots and written
//! through transactions.

/// Inside an `impl redb::StorageBackend` of a wrapper backend: forwards the byte-range lock
/// methods to the wrapped backend `self.inner` (wrappers change what is written, never how
/// processes share the file).
macro_rules! forward_range_locks {
    () => {
        fn try_lock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.inner.try_lock_range(start, end)
        }

        fn try_lock_shared_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.inner.try_lock_shared_range(start, end)
        }

        fn lock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.inner.lock_range(start, end)
        }

        fn lock_shared_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.inner.lock_shared_range(start, end)
        }

        fn unlock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.inner.unlock_range(start, end)
        }

        fn query_lock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.inner.query_lock_range(start, end)
        }
    };
}

pub(crate) mod catalog;
pub(crate) mod changes;
pub(crate) mod chunk;
pub(crate) mod crypto;
mod crypto_v1;
#[cfg(test)]
pub(crate) mod fault;
pub(crate) mod file;
pub(crate) mod index;
pub(crate) mod retention;
pub(crate) mod snapshot;
pub(crate) mod tables;
pub(crate) mod view;
pub(crate) mod write;

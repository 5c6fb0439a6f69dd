//! Permissions (**security boundary**): who may read, write and manage each realm path, the
//! grants that decide it for users other than the owner, and the processing of management
//! realms that makes grants (the protocol is documented in `shoal::protocol::auth`,
//! "Permissions"; the design in DESIGN.md, "Permissions").
//!
//! - `mod.rs`: [`Permissions`], the one place access is decided ([`Permissions::access`]):
//!   the auth service issues access tokens by it, the sync service checks BINDs and REFRESHes
//!   by it and re-checks live sessions on every [`GrantChange`]; "shared with me".
//! - `store.rs`: `DATA/permissions.redb`: grants, offers and the objects processed.
//! - `rules.rs`: what an offer, a response and a change do, decided and recorded in one
//!   transaction.
//! - `management.rs`: reading the requests out of a management realm's server copy and
//!   writing the outcomes back into it.
//!
//! Access of `identity` to `path`: admins and the owner (`/<identity>/...`) have all three
//! levels; a management realm (`/<owner>/__management`) is nobody else's; anyone else has the
//! union of its own grant and the grant to everyone (`*`).

mod management;
mod rules;
mod store;

use std::path::Path;
use std::sync::Arc;

use shoal::protocol::auth::{
    GrantedPermission, ACCESS_DOWNLOAD, ACCESS_MANAGE, ACCESS_UPLOAD, MANAGEMENT_REALM,
};
use tokio::sync::broadcast;

use crate::config::AbortPoint;
use crate::store::{Store, StoreError};

/// Grant changes queued for each subscriber before it must re-check every session.
const BACKLOG: usize = 256;

/// The user id of the grant to everyone.
pub const EVERYONE: &str = "*";

/// A failure of the permission storage (redb, the management realm copy, the auth store).
#[derive(Debug, thiserror::Error)]
#[error("permissions: {0}")]
pub struct PermissionsError(String);

impl PermissionsError {
    /// A failure of the storage something needed for a decision (e.g. the sync index).
    pub fn storage(e: impl std::fmt::Display) -> PermissionsError {
        PermissionsError(e.to_string())
    }
}

fn perr(e: impl std::fmt::Display) -> PermissionsError {
    PermissionsError(e.to_string())
}

impl From<StoreError> for PermissionsError {
    fn from(e: StoreError) -> PermissionsError {
        perr(e)
    }
}

/// Access levels to one realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// Bind a sync session and download.
    pub read: bool,
    /// Upload changes.
    pub write: bool,
    /// Share the realm and change others' access to it.
    pub manage: bool,
}

impl Access {
    /// Every level: owners and admins.
    pub const ALL: Access = Access {
        read: true,
        write: true,
        manage: true,
    };
    /// No access.
    pub const NONE: Access = Access {
        read: false,
        write: false,
        manage: false,
    };

    /// The stored form: bit 0 read, bit 1 write, bit 2 manage.
    fn bits(self) -> u8 {
        u8::from(self.read) | u8::from(self.write) << 1 | u8::from(self.manage) << 2
    }

    fn from_bits(bits: u8) -> Access {
        Access {
            read: bits & 1 != 0,
            write: bits & 2 != 0,
            manage: bits & 4 != 0,
        }
    }

    /// Every level either has.
    #[must_use]
    pub fn union(self, other: Access) -> Access {
        Access::from_bits(self.bits() | other.bits())
    }

    /// Whether no level is set.
    #[must_use]
    pub fn is_none(self) -> bool {
        self.bits() == 0
    }

    /// The `access` of an access token: `download` for read, `upload` for write, `manage`.
    #[must_use]
    pub fn token_access(self) -> Vec<String> {
        [
            (self.read, ACCESS_DOWNLOAD),
            (self.write, ACCESS_UPLOAD),
            (self.manage, ACCESS_MANAGE),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| (*name).to_owned())
        .collect()
    }
}

/// A grant of `path` to `user` ([`EVERYONE`] for the grant to everyone) changed: sessions of
/// that path and user must be checked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantChange {
    /// The realm path.
    pub path: String,
    /// The user whose grant changed, or [`EVERYONE`].
    pub user: String,
}

/// The owner of a realm path: its first segment when it has at least two (`/<owner>/...`).
#[must_use]
pub fn owner_of(path: &str) -> Option<&str> {
    let (owner, rest) = path.strip_prefix('/')?.split_once('/')?;
    (!rest.is_empty()).then_some(owner)
}

/// The owner of `path` if it is a management realm, `/<owner>/__management`.
#[must_use]
pub fn management_realm_owner(path: &str) -> Option<&str> {
    let (owner, rest) = path.strip_prefix('/')?.split_once('/')?;
    (rest == MANAGEMENT_REALM).then_some(owner)
}

/// Whether `path` may never be shared: a management realm (any path whose last segment is
/// `__management`, to be safe).
fn is_unshareable(path: &str) -> bool {
    path.rsplit('/').next() == Some(MANAGEMENT_REALM)
}

/// The grants and the management realm processing; shared by the auth and sync services.
pub struct Permissions {
    /// `DATA/permissions.redb`.
    store: store::GrantStore,
    /// The auth store: admin flags (never a token's claim) and which users exist.
    auth: Arc<Store>,
    /// Every grant change, once committed.
    feed: broadcast::Sender<GrantChange>,
    /// Crash tests only: where to abort the process.
    abort_at: Option<AbortPoint>,
}

impl Permissions {
    /// Opens (or creates, owner-only) `DATA/permissions.redb`. Blocks (redb I/O).
    ///
    /// # Errors
    /// [`PermissionsError`] when the file cannot be opened or is of a newer format.
    pub fn open(
        data_dir: &Path,
        auth: Arc<Store>,
        abort_at: Option<AbortPoint>,
    ) -> Result<Permissions, PermissionsError> {
        Ok(Permissions {
            store: store::GrantStore::open(data_dir)?,
            auth,
            feed: broadcast::Sender::new(BACKLOG),
            abort_at,
        })
    }

    /// Crash tests: aborts the process if it was told to at `point`.
    fn abort_if_at(&self, point: AbortPoint) {
        if self.abort_at == Some(point) {
            tracing::error!(?point, "aborting for a crash test (--test-abort-at)");
            std::process::abort();
        }
    }

    /// Whether `identity` is an admin, by the stored flag. Blocks (redb I/O).
    fn is_admin(&self, identity: &str) -> Result<bool, PermissionsError> {
        Ok(self.auth.user(identity)?.is_some_and(|u| u.is_admin))
    }

    /// The access of `identity` to the (resolved) realm `path` now. Blocks (redb I/O).
    ///
    /// # Errors
    /// A storage failure.
    pub fn access(&self, identity: &str, path: &str) -> Result<Access, PermissionsError> {
        let is_admin = self.is_admin(identity)?;
        self.store
            .read(|tables| rules::access(tables, identity, is_admin, path))
    }

    /// "Shared with me": `identity`'s access to every realm of others it has a grant for
    /// (its own and the grant to everyone together), sorted by path. Blocks (redb I/O).
    ///
    /// # Errors
    /// A storage failure.
    pub fn shared_with(&self, identity: &str) -> Result<Vec<GrantedPermission>, PermissionsError> {
        let grants = self.store.read(|tables| tables.shared_with(identity))?;
        Ok(grants
            .into_iter()
            .filter(|(path, access)| {
                owner_of(path) != Some(identity) && !is_unshareable(path) && !access.is_none()
            })
            .map(|(path, access)| GrantedPermission {
                path,
                may_read: access.read,
                may_write: access.write,
                may_manage: access.manage,
            })
            .collect())
    }

    /// Every grant change from now on. A receiver that falls more than 256 behind gets
    /// `Lagged` and must check all of its sessions with [`access`](Self::access).
    pub fn subscribe(&self) -> broadcast::Receiver<GrantChange> {
        self.feed.subscribe()
    }

    /// Tells every subscriber (nobody listening is fine: BINDs check the grants).
    fn announce(&self, changes: Vec<GrantChange>) {
        for change in changes {
            let _ = self.feed.send(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_management_realms_are_read_from_the_path() {
        assert_eq!(owner_of("/u1/tasks"), Some("u1"));
        assert_eq!(owner_of("/u1/a/b"), Some("u1"));
        assert_eq!(owner_of("/u1"), None);
        assert_eq!(owner_of("u1/x"), None);
        assert_eq!(management_realm_owner("/u1/__management"), Some("u1"));
        assert_eq!(management_realm_owner("/u1/x/__management"), None);
        assert_eq!(management_realm_owner("/u1/tasks"), None);
        assert!(is_unshareable("/u1/__management"));
        assert!(is_unshareable("/u1/x/__management"));
        assert!(!is_unshareable("/u1/__management2"));
    }

    #[test]
    fn access_levels_round_trip_and_name_token_rights() {
        for bits in 0..8 {
            assert_eq!(Access::from_bits(bits).bits(), bits);
        }
        assert_eq!(Access::ALL.token_access(), ["download", "upload", "manage"]);
        let read = Access {
            read: true,
            ..Access::NONE
        };
        assert_eq!(read.token_access(), ["download"]);
        assert_eq!(
            read.union(Access {
                manage: true,
                ..Access::NONE
            })
            .bits(),
            5
        );
        assert!(Access::NONE.is_none());
    }
}

//! Revoked refresh tokens: the list kept in the auth store (`auth_revoked`, entries stay until
//! the token would have expired) and a feed of each new revocation.
//!
//! The auth service revokes ([`Revocations::revoke`]) and refuses revoked refresh tokens;
//! the sync service checks the refresh token behind each BIND and REFRESH
//! ([`Revocations::is_revoked`]) and ends the sessions bound with access tokens issued from a
//! token revoked later ([`Revocations::subscribe`]). This is all the sync service knows of
//! the auth service.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::store::{Store, StoreError};

/// Revocations queued for each subscriber before it must re-check its sessions.
const BACKLOG: usize = 256;

/// The revocation list and its feed; shared by the auth and sync services.
pub struct Revocations {
    /// The auth store, which holds the list.
    store: Arc<Store>,
    /// Every new revocation, as the revoked refresh token's id.
    feed: broadcast::Sender<String>,
}

impl Revocations {
    /// The revocations recorded in `store`.
    pub fn new(store: Arc<Store>) -> Revocations {
        Revocations {
            store,
            feed: broadcast::Sender::new(BACKLOG),
        }
    }

    /// Adds the refresh token `token_id` (expiring at `expires`, unix seconds) to the list and
    /// tells every subscriber. Blocks (redb I/O). `Ok(false)` if it was revoked already.
    ///
    /// # Errors
    /// A storage failure (nothing is announced then).
    pub fn revoke(&self, token_id: &str, expires: i64) -> Result<bool, StoreError> {
        if !self.store.revoke(token_id, expires)? {
            return Ok(false);
        }
        // Nobody listening (no sync connection) is fine: later BINDs check the list.
        let _ = self.feed.send(token_id.to_owned());
        Ok(true)
    }

    /// Whether the refresh token with this id was revoked. Blocks (redb I/O).
    ///
    /// # Errors
    /// A storage failure.
    pub fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        self.store.is_revoked(token_id)
    }

    /// Every revocation from now on, as the revoked refresh token's id. A receiver that falls
    /// more than 256 behind gets `Lagged` and must check its sessions with
    /// [`is_revoked`](Self::is_revoked).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.feed.subscribe()
    }
}

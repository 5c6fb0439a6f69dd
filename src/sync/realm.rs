//! Synced realms: opening one (the file through the realm layer, then its session, waiting
//! for the initial data if asked), the handles' count that drives the stop policy, and the
//! realm-side accessors (`Config::set_sync`, `Realm::session`). The realm layer below knows a
//! synced configuration only as a `SyncedOpen` and a handle's count only as an opaque
//! attachment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::SyncClient;
use super::session::{Session, SessionState, StopPolicy, SyncConfig};
use crate::config::{Config, SyncedOpen};
use crate::db::Realm;
use crate::error::{Error, Result};
use crate::util::Cancellation;

impl Config {
    /// Makes this a synced realm: the path becomes the sync configuration's local file and
    /// the file keeps the metadata the merge rules need. Synced realms are additive-only (a
    /// schema with additions needs a higher schema version; nothing is ever removed; no
    /// migration callback runs) and cannot be compacted.
    pub fn set_sync(&mut self, sync: SyncConfig) -> &mut Config {
        self.path = sync.local_path.display().to_string();
        self.merge_metadata = true;
        self.sync = Some(Arc::new(sync));
        self
    }

    /// The sync configuration, for synced realms.
    pub fn sync_config(&self) -> Option<&SyncConfig> {
        let sync: &dyn std::any::Any = self.sync.as_deref()?;
        sync.downcast_ref::<SyncConfig>()
    }
}

impl SyncedOpen for SyncConfig {
    /// Opens a synced realm: the file, then its session (started, never waited on unless the
    /// configuration asks to wait for the initial data on a new file).
    ///
    /// A read-only synced realm is written by its session alone: the session's own
    /// read-write handle opens the file first (creating it if new), so that the app's
    /// read-only handle shares it; a new file needs wait-for-initial-data (there is nothing
    /// to read before the first download), and its schema must then match the
    /// configuration's (else `MigrationNeeded`).
    ///
    /// A client reset pending for the file runs first if no handle of it is open (see
    /// `client_reset.rs`): the open then starts a new file. `cancel` (an asynchronous
    /// open's) stops the wait for the initial data at once; a new file is then discarded as
    /// after a wait that timed out.
    fn open_or_cancel(&self, config: &Config, cancel: &Cancellation) -> Result<Realm> {
        config.check()?;
        let client = SyncClient::of(&self.user.app)?;
        client.run_pending_reset(self.user.app.sync_root(), &config.path);
        // Recorded before the file can be created: a logout deletes the user's files.
        self.user
            .app
            .record_synced_file(self.user.identity(), &config.path, &self.root);
        // A logout removes the user's folders too; a configuration made before it still opens.
        if let Some(dir) = std::path::Path::new(&config.path).parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::Error::from(e).with_path(dir.display().to_string()))?;
        }
        let is_new = !std::path::Path::new(&config.path).exists();
        let session = client.session(config, is_new)?;
        if cancel.is_cancelled() {
            if is_new {
                session.discard_new_file();
            }
            return Err(Cancellation::error());
        }
        if config.read_only {
            return self.open_read_only(config, &session, is_new, cancel);
        }
        let realm = Realm::open_local(config)?;
        realm.attach(Box::new(session.attach_handle()));
        if let (Some(timeout), true) = (self.wait_for_initial_data, is_new) {
            if let Err(e) = session.wait_for_download_or_cancel(timeout, cancel) {
                // As Realm did: a download that did not complete leaves no file behind, so
                // the next open waits for the initial data again.
                realm.close();
                drop(realm);
                session.discard_new_file();
                return Err(e);
            }
            realm.refresh()?;
        }
        Ok(realm)
    }

    fn discard_new_file(&self, config: &Config) {
        let is_new = !std::path::Path::new(&config.path).exists();
        match SyncClient::of(&self.user.app).and_then(|client| client.session(config, is_new)) {
            Ok(session) => session.discard_new_file(),
            Err(e) => {
                tracing::warn!(path = %config.path, error = %e, "could not discard the new file")
            }
        }
    }
}

impl SyncConfig {
    fn open_read_only(
        &self,
        config: &Config,
        session: &Session,
        is_new: bool,
        cancel: &Cancellation,
    ) -> Result<Realm> {
        let wait =
            match (self.wait_for_initial_data, is_new) {
                (None, true) => return Err(Error::invalid(
                    "a new read-only synced realm needs wait_for_initial_data: there is nothing \
                     to read before the first download",
                )
                .with_path(config.path.clone())),
                (wait, _) => wait.filter(|_| is_new),
            };
        // The session's read-write handle, held until the app's handle shares the file.
        let writer = session.inner.open_internal()?;
        let guard = session.attach_handle();
        let opened = match wait {
            Some(timeout) => session
                .wait_for_download_or_cancel(timeout, cancel)
                .and_then(|()| writer.refresh().map(drop))
                .and_then(|()| Realm::open_local(config)),
            None => Realm::open_local(config),
        };
        drop(writer);
        match opened {
            Ok(realm) => {
                realm.attach(Box::new(guard));
                Ok(realm)
            }
            Err(e) => {
                drop(guard);
                if is_new {
                    session.discard_new_file();
                }
                Err(e)
            }
        }
    }
}

impl Realm {
    /// The sync session of a synced realm.
    pub fn session(&self) -> Option<Session> {
        self.with_attachment(|guard: &HandleGuard| guard.session.clone())
    }
}

impl Session {
    /// Waits (at most `timeout`) until the session's task has stopped.
    pub(crate) fn wait_stopped(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut s = self.inner.shared.lock();
        while s.running {
            if self.inner.changed.wait_until(&mut s, deadline).timed_out() {
                return;
            }
        }
    }

    /// After a failed wait for the initial data of a new file: stops the session, deletes
    /// the file if no handle of it is left, and forgets the session (best effort; logged).
    pub(crate) fn discard_new_file(&self) {
        let inner = &self.inner;
        if inner.shared.lock().handles > 0 {
            // Another handle opened it meanwhile: keep everything.
            tracing::info!(path = %inner.path, "the new file stays: another handle has it open");
            return;
        }
        self.pause();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut s = inner.shared.lock();
        while s.running {
            if inner.changed.wait_until(&mut s, deadline).timed_out() {
                tracing::warn!(path = %inner.path, "the session did not stop; the partial file stays");
                return;
            }
        }
        drop(s);
        inner.drop_scan_realm();
        match crate::delete_realm_files(&inner.conf().config) {
            Ok(()) => inner
                .client
                .forget_session(std::path::Path::new(&inner.path)),
            Err(e) => {
                tracing::warn!(path = %inner.path, error = %e, "could not delete the partial file")
            }
        }
    }
}

/// One open realm handle of a session's file: counted while alive; the last one to go applies
/// the stop policy.
pub(crate) struct HandleGuard {
    session: Session,
}

impl Session {
    /// Counts a newly opened realm handle and (re)starts the session.
    pub(crate) fn attach_handle(&self) -> HandleGuard {
        {
            let mut s = self.inner.shared.lock();
            s.handles += 1;
            s.dying = false;
            s.stopped = false;
        }
        self.inner.client.start(&self.inner);
        HandleGuard {
            session: self.clone(),
        }
    }
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        let inner = &self.session.inner;
        let last = {
            let mut s = inner.shared.lock();
            s.handles = s.handles.saturating_sub(1);
            s.handles == 0
        };
        if !last {
            return;
        }
        match inner.conf().sync.stop_policy {
            StopPolicy::LiveIndefinitely => {}
            StopPolicy::Immediately => {
                inner.shared.lock().stopped = true;
            }
            StopPolicy::AfterChangesUploaded => {
                // Count the last commits before deciding what is left to upload.
                if let Err(e) = inner.scan() {
                    tracing::warn!(error = %e, "could not read the realm's history at close");
                }
                let mut s = inner.shared.lock();
                if s.handles == 0 {
                    s.dying = true;
                    if s.running && s.state == SessionState::Active {
                        inner.set_state(&mut s, SessionState::Dying);
                    }
                }
            }
        }
        inner.wake.notify_one();
    }
}

//! The task that drives one session: gets access tokens, binds on the server's connection,
//! uploads local changesets, integrates downloads, answers waits, and stops by the session's
//! stop policy. It runs on the sync runtime; file work runs on its blocking pool, and
//! callbacks on the callback thread, so neither holds up other sessions.
//!
//! The task reads what users asked for (pause, waits, tokens, handle counts) from the
//! session's shared state whenever it is woken, so nothing a user does can be lost between
//! two steps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connection::{backoff, ConnEvent, ConnectionHandle};
use super::error::SyncError;
use super::session::{log_session_error, ConnectionState, Session, SessionInner, SessionState};
use crate::db::Realm;
use crate::error::{Error, ErrorCode};
use crate::protocol::auth::decode_token_unverified;
use crate::protocol::sync::{
    take_parts, ConnectionErrorCode, Message, SessionErrorCode, UploadChangeset, UploadProgress,
    CHANGESET_PART_BYTES, MAX_CHANGESET_BYTES,
};
use crate::store::tables::SyncProgress;

/// Session idents on the wire: unique per process, so never reused on a connection.
static WIRE_IDENTS: AtomicU64 = AtomicU64::new(1);
/// Keys of sessions attached to connections.
static ATTACH_KEYS: AtomicU64 = AtomicU64::new(1);

/// Upload batches stay well under the message limit.
const UPLOAD_BATCH_BYTES: usize = 256 * 1024;
const UPLOAD_BATCH_COUNT: usize = 1000;
/// Access tokens are renewed this long before they expire.
const REFRESH_MARGIN_SECS: i64 = 10;

/// Runs the session until it should stop, then records why.
pub(crate) async fn run(inner: Arc<SessionInner>) {
    let mut runner = match Runner::start(inner.clone()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(path = %inner.path, error = %e, "the sync session cannot open its realm");
            let error = SyncError::from_error(&e, true);
            report(&inner, error.clone());
            inner.drop_scan_realm();
            let mut s = inner.shared.lock();
            s.fatal = Some(error);
            s.running = false;
            inner.set_state(&mut s, SessionState::Error);
            inner.changed.notify_all();
            return;
        }
    };
    runner.main().await;
    runner.finish().await;
}

fn report(inner: &Arc<SessionInner>, error: SyncError) {
    tracing::debug!(path = %inner.path, code = error.code, fatal = error.is_fatal, message = %error.message, "sync error");
    let session = Session {
        inner: inner.clone(),
    };
    match inner.conf().sync.error_handler.clone() {
        Some(handler) => inner
            .client
            .callback(Box::new(move || handler(&session, &error))),
        None => log_session_error(&session, &error),
    }
}

/// One binding of the session on the current connection.
struct Binding {
    wire: u64,
    /// The client file has its ident (IDENT came, or the file had one).
    identified: bool,
    /// The first DOWNLOAD arrived: the server's acknowledgement is known.
    synced: bool,
    /// Local versions up to here were sent on this binding.
    uploaded: u64,
    /// The file's history was read for uploads up to this version.
    checked: u64,
    /// The last MARK request sent on this binding.
    mark_sent: u64,
}

struct Runner {
    inner: Arc<SessionInner>,
    realm: Realm,
    progress: SyncProgress,
    saved: SyncProgress,
    conn: ConnectionHandle,
    key: u64,
    /// Only the connection task holds the sending side, so `None` means it has ended.
    events: mpsc::UnboundedReceiver<ConnEvent>,
    connected: bool,
    binding: Option<Binding>,
    token: Option<String>,
    refresh_at: Option<Instant>,
    /// A token is being fetched (or asked of the binder).
    refreshing: bool,
    /// The binder was asked and has not answered yet.
    token_requested: bool,
    /// The user's login epoch when the current token was fetched from its refresh token
    /// (`None` for a binder's token).
    token_epoch: Option<u64>,
    /// Retry token or bind errors after this.
    retry_at: Option<Instant>,
    failures: u32,
    _changes: crate::notify::ChangeToken,
}

impl Runner {
    async fn start(inner: Arc<SessionInner>) -> crate::Result<Runner> {
        let opener = inner.clone();
        let realm = blocking(move || opener.open_internal()).await?;
        let scanner = inner.clone();
        let r = realm.clone();
        let progress = blocking(move || {
            scanner.scan()?;
            r.sync_progress()
        })
        .await?;
        {
            let mut s = inner.shared.lock();
            if progress.acked > s.acked {
                inner.on_acked(&mut s, progress.acked);
            }
        }
        let waker = Arc::downgrade(&inner);
        let changes = realm.add_change_callback(move |_| {
            if let Some(inner) = waker.upgrade() {
                inner.wake.notify_one();
            }
        })?;
        let key = ATTACH_KEYS.fetch_add(1, Ordering::Relaxed);
        let (conn, events) = attach(&inner, key);
        Ok(Runner {
            inner,
            realm,
            progress,
            saved: progress,
            conn,
            key,
            events,
            connected: false,
            binding: None,
            token: None,
            refresh_at: None,
            refreshing: false,
            token_requested: false,
            token_epoch: None,
            retry_at: None,
            failures: 0,
            _changes: changes,
        })
    }

    async fn main(&mut self) {
        loop {
            if self.should_stop() {
                return;
            }
            match self.step().await {
                Ok(()) => {}
                Err(e) => {
                    let error = SyncError::from_error(&e, true);
                    report(&self.inner, error.clone());
                    self.inner.shared.lock().fatal = Some(error);
                    return;
                }
            }
            if self.should_stop() {
                return;
            }
            self.wait().await;
        }
    }

    /// Whether the session should end now (checked under the lock, so that a wake-up that
    /// asks it to go on is seen).
    fn should_stop(&self) -> bool {
        let s = self.inner.shared.lock();
        if !SessionInner::wants_to_run(&s, self.inner.user().is_valid()) {
            return true;
        }
        s.dying && s.upload_known && s.pending.is_empty()
    }

    /// One round: act on the shared state and the connection.
    async fn step(&mut self) -> crate::Result<()> {
        // The history keeps local changesets until the file records their acknowledgement:
        // record the acknowledgements that came since the last round (one commit for all of
        // them), so that what the server has leaves the history while the session runs.
        if self.progress.acked > self.saved.acked {
            self.save().await?;
        }
        // Tokens.
        if self.token.is_none() || self.refresh_due() || self.refreshing {
            // The renewal is under way until a token is installed (no timer meanwhile).
            self.refresh_at = None;
            self.refreshing = true;
            if !self.get_token().await? {
                self.set_state(SessionState::WaitingForAccessToken);
                return Ok(());
            }
        }
        let dying = self.inner.shared.lock().dying;
        self.set_state(if dying {
            SessionState::Dying
        } else {
            SessionState::Active
        });
        if !self.connected {
            self.set_connection(ConnectionState::Connecting);
            return Ok(());
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        self.retry_at = None;
        if self.binding.is_none() {
            self.bind();
            return Ok(());
        }
        let ready = self
            .binding
            .as_ref()
            .is_some_and(|b| b.identified && b.synced);
        if ready {
            self.upload().await?;
            self.send_mark();
        }
        Ok(())
    }

    fn refresh_due(&self) -> bool {
        self.refresh_at.is_some_and(|t| Instant::now() >= t)
    }

    /// Gets an access token (new, or a renewal of the current one). False while waiting.
    async fn get_token(&mut self) -> crate::Result<bool> {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(self.token.is_some()); // backing off after a failure
        }
        let binder = self.inner.conf().sync.token_binder.clone();
        let token = if let Some(binder) = binder {
            let handed = self.inner.shared.lock().bound_token.take();
            match handed {
                Some(t) => {
                    self.token_requested = false;
                    t
                }
                None => {
                    if !self.token_requested {
                        self.token_requested = true;
                        let session = Session {
                            inner: self.inner.clone(),
                        };
                        let path = self.inner.url.path.clone();
                        self.inner
                            .client
                            .callback(Box::new(move || binder(&session, &path)));
                    }
                    return Ok(self.token.is_some());
                }
            }
        } else {
            let user = self.inner.user();
            let path = self.inner.url.path.clone();
            let epoch = user.state.epoch();
            match blocking(move || user.access_token(&path)).await {
                Ok(t) => {
                    self.token_epoch = Some(epoch);
                    t.token
                }
                Err(e) if e.code() == ErrorCode::ExpiredRefreshToken => {
                    // Logged out: the session goes inactive (checked by the caller's loop).
                    return Ok(false);
                }
                Err(e) if e.code() == ErrorCode::Io || e.code() == ErrorCode::Http => {
                    report(&self.inner, SyncError::from_error(&e, false));
                    self.failures += 1;
                    self.retry_at = Some(Instant::now() + backoff(self.failures));
                    return Ok(self.token.is_some());
                }
                Err(e) => return Err(e),
            }
        };
        self.install_token(token);
        Ok(true)
    }

    fn install_token(&mut self, token: String) {
        let now = crate::util::unix_now();
        let expires = decode_token_unverified(&token).map_or(i64::MAX, |d| d.expires);
        let left = expires.saturating_sub(now);
        let wait = (left - REFRESH_MARGIN_SECS)
            .max(left / 2)
            .clamp(1, 86_400 * 365);
        self.refresh_at = Some(Instant::now() + Duration::from_secs(wait as u64));
        self.refreshing = false;
        let renewing = self.token.is_some();
        self.token = Some(token.clone());
        if let (true, Some(b)) = (renewing, &self.binding) {
            self.conn.send(
                self.key,
                Message::Refresh {
                    session: b.wire,
                    access_token: token,
                },
            );
        }
    }

    fn bind(&mut self) {
        let Some(token) = self.token.clone() else {
            return;
        };
        let wire = WIRE_IDENTS.fetch_add(1, Ordering::Relaxed);
        self.conn.send(
            self.key,
            Message::Bind {
                session: wire,
                path: self.inner.url.path.clone(),
                access_token: token,
                client_file_ident: self.progress.ident,
                client_file_salt: self.progress.salt,
            },
        );
        let identified = self.progress.ident != 0;
        self.binding = Some(Binding {
            wire,
            identified,
            synced: false,
            uploaded: self.progress.acked,
            checked: 0,
            mark_sent: 0,
        });
        if identified {
            self.send_first_upload();
        }
    }

    /// The UPLOAD right after binding: where to resume the download; the answer tells which
    /// local changesets the server already has.
    fn send_first_upload(&mut self) {
        let Some(b) = &self.binding else { return };
        self.conn.send(
            self.key,
            Message::Upload {
                session: b.wire,
                progress: UploadProgress {
                    client_version: self.progress.acked,
                    last_integrated_server_version: self.progress.server_version,
                },
                changesets: Vec::new(),
            },
        );
    }

    /// Sends the local changesets the server does not have yet.
    async fn upload(&mut self) -> crate::Result<()> {
        // Local changesets up to `checked` were all sent: read only what came after.
        let Some(after) = self.binding.as_ref().map(|b| b.uploaded.max(b.checked)) else {
            return Ok(());
        };
        let realm = self.realm.clone();
        let scanner = self.inner.clone();
        let (version, changesets) = blocking(move || {
            scanner.scan()?;
            realm.refresh()?;
            let version = realm.version()?;
            Ok((version, realm.local_changesets_since(after)?))
        })
        .await?;
        let Some(b) = self.binding.as_mut() else {
            return Ok(());
        };
        b.checked = b.checked.max(version);
        let mut batch: Vec<UploadChangeset> = Vec::new();
        let mut bytes = 0;
        let count = changesets.len();
        let wire = b.wire;
        let integrated = self.progress.server_version;
        let send_batch = |b: &mut Binding, batch: &mut Vec<UploadChangeset>| {
            let Some(version) = batch.last().map(|c| c.client_version) else {
                return;
            };
            b.uploaded = version;
            self.conn.send(
                self.key,
                Message::Upload {
                    session: wire,
                    progress: UploadProgress {
                        client_version: version,
                        last_integrated_server_version: integrated,
                    },
                    changesets: std::mem::take(batch),
                },
            );
        };
        for (i, (version, mut data)) in changesets.into_iter().enumerate() {
            if data.len() > MAX_CHANGESET_BYTES {
                return Err(Error::sync(
                    ConnectionErrorCode::LimitsExceeded as i32,
                    format!(
                        "the changeset of local version {version} is {} bytes, more than a changeset may have ({MAX_CHANGESET_BYTES}); write it in smaller transactions",
                        data.len()
                    ),
                ));
            }
            let stamp = crate::history::changeset_header(&data).map_or(0, |(s, _)| s);
            if data.len() > CHANGESET_PART_BYTES {
                // A large changeset: its first bytes go in UPLOAD_PARTs, the rest as the
                // first changeset of the next UPLOAD (the server joins them).
                send_batch(b, &mut batch);
                bytes = 0;
                let (total_bytes, parts) = take_parts(&mut data);
                for part in parts {
                    self.conn.send(
                        self.key,
                        Message::UploadPart {
                            session: wire,
                            total_bytes,
                            data: part,
                        },
                    );
                }
            }
            bytes += data.len();
            batch.push(UploadChangeset {
                client_version: version,
                stamp,
                data,
            });
            let last = i + 1 == count;
            if last || bytes >= UPLOAD_BATCH_BYTES || batch.len() >= UPLOAD_BATCH_COUNT {
                send_batch(b, &mut batch);
                bytes = 0;
            }
        }
        Ok(())
    }

    fn send_mark(&mut self) {
        let requested = self.inner.shared.lock().mark_requested;
        let Some(b) = self.binding.as_mut() else {
            return;
        };
        if requested > b.mark_sent {
            b.mark_sent = requested;
            self.conn.send(
                self.key,
                Message::Mark {
                    session: b.wire,
                    request: requested,
                },
            );
        }
    }

    /// Sleeps until something happens: a wake-up, a connection event, a timer.
    async fn wait(&mut self) {
        let timer = match (self.refresh_at, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match timer {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.inner.wake.notified() => {}
            _ = sleep => {}
            event = self.events.recv() => match event {
                Some(event) => self.on_event(event).await,
                None => self.reattach(),
            },
        }
        // Handle whatever else is queued before the next round.
        while let Ok(event) = self.events.try_recv() {
            self.on_event(event).await;
        }
    }

    /// The connection task ended (it had no other session and lingered out just as this one
    /// attached): attach to a fresh one.
    fn reattach(&mut self) {
        self.connected = false;
        self.binding = None;
        self.set_connection(ConnectionState::Disconnected);
        (self.conn, self.events) = attach(&self.inner, self.key);
    }

    async fn on_event(&mut self, event: ConnEvent) {
        match event {
            ConnEvent::Connected => {
                self.connected = true;
                self.binding = None;
                self.set_connection(ConnectionState::Connecting);
            }
            ConnEvent::Disconnected(error) => {
                self.connected = false;
                self.binding = None;
                self.set_connection(ConnectionState::Disconnected);
                if let Some(e) = error.filter(|e| e.category == crate::ErrorCategory::Sync) {
                    if e.is_fatal {
                        self.inner.shared.lock().fatal = Some(e.clone());
                    }
                    report(&self.inner, e);
                }
            }
            ConnEvent::Message(m) => {
                if let Err(e) = self.on_message(m).await {
                    let error = SyncError::from_error(&e, true);
                    report(&self.inner, error.clone());
                    self.inner.shared.lock().fatal = Some(error);
                }
            }
        }
    }

    async fn on_message(&mut self, message: Message) -> crate::Result<()> {
        let Some(wire) = self.binding.as_ref().map(|b| b.wire) else {
            return Ok(());
        };
        if message.session() != Some(wire) {
            return Ok(()); // For an earlier binding.
        }
        match message {
            Message::Ident {
                client_file_ident,
                salt,
                ..
            } => {
                self.progress = SyncProgress {
                    ident: client_file_ident,
                    salt,
                    server_version: 0,
                    acked: self.progress.acked,
                };
                self.save().await?;
                if let Some(b) = self.binding.as_mut() {
                    b.identified = true;
                }
                self.send_first_upload();
            }
            Message::Download {
                acked_client_version,
                progress,
                changesets,
                ..
            } => {
                let own = self.progress.ident;
                let bytes: u64 = changesets.iter().map(|c| c.data.len() as u64).sum();
                let mut next = self.progress;
                next.server_version = next.server_version.max(progress.server_version);
                next.acked = next.acked.max(acked_client_version);
                let foreign: Vec<Vec<u8>> = changesets
                    .into_iter()
                    .filter(|c| c.origin_file_ident != own)
                    .map(|c| c.data)
                    .collect();
                if !foreign.is_empty() {
                    let realm = self.realm.clone();
                    blocking(move || {
                        let refs: Vec<&[u8]> = foreign.iter().map(Vec::as_slice).collect();
                        realm.integrate_download(&refs, &next)
                    })
                    .await
                    .map_err(|e| {
                        Error::sync(
                            ConnectionErrorCode::BadChangesetDownload as i32,
                            format!("a downloaded changeset could not be integrated: {e}"),
                        )
                    })?;
                    self.saved = next;
                }
                self.progress = next;
                self.failures = 0;
                if let Some(b) = self.binding.as_mut() {
                    if !b.synced {
                        b.synced = true;
                        b.uploaded = b.uploaded.max(acked_client_version);
                    }
                }
                self.set_connection(ConnectionState::Connected);
                let mut s = self.inner.shared.lock();
                s.downloaded += bytes;
                s.downloadable = progress.downloadable_bytes;
                s.download_known = true;
                self.inner.on_acked(&mut s, acked_client_version);
                self.inner.report_progress(&mut s);
                self.inner.changed.notify_all();
            }
            Message::Mark { request, .. } => {
                let mut s = self.inner.shared.lock();
                s.mark_done = s.mark_done.max(request);
                self.inner.changed.notify_all();
            }
            Message::Error {
                code,
                message,
                try_again,
                ..
            } => {
                self.conn.send(self.key, Message::Unbind { session: wire });
                self.binding = None;
                self.on_session_error(code, message, try_again).await;
            }
            _ => {}
        }
        Ok(())
    }

    /// The `CLIENT_RESET` error for a server error `code`: its backup path is chosen and
    /// recorded durably first (see `client_reset.rs`), so that the path the handler is told is
    /// where the reset moves the file, whoever runs it and whenever.
    async fn client_reset_error(&self, code: i32, message: &str) -> SyncError {
        let root = self.inner.user().app.sync_root().to_path_buf();
        let original = self.inner.path.clone();
        let scheduled = {
            let root = root.clone();
            blocking(move || super::client_reset::schedule(&root, &original)).await
        };
        let backup = scheduled.unwrap_or_else(|e| {
            tracing::error!(path = %self.inner.path, error = %e,
                "could not record the client reset; it runs only when executed by hand");
            super::client_reset::unrecorded_backup_path(&root)
        });
        super::client_reset::reset_error(&self.inner.conf().config, code, message, &backup)
    }

    async fn on_session_error(&mut self, code: i32, message: String, try_again: bool) {
        use SessionErrorCode as E;
        if code == E::BadAuthentication as i32 && !self.inner.user().is_valid() {
            // The user logged out, which revokes the refresh token, and the server ended the
            // sessions of its access tokens: this session is stopping anyway, and a later
            // login binds with a new token. Not an error for the application.
            tracing::info!(path = %self.inner.path, "session ended by the logout");
            self.token = None;
            return;
        }
        if code == E::BadAuthentication as i32
            && self
                .token_epoch
                .is_some_and(|e| e != self.inner.user().state.epoch())
        {
            // The token came from a login the user has since logged out of (revoked by that
            // logout) and the user logged in again before this session noticed: bind again
            // with a token of the new login.
            tracing::info!(path = %self.inner.path, "session ended by an earlier logout; renewing the token");
            self.token = None;
            self.refresh_at = Some(Instant::now());
            return;
        }
        if code == E::PermissionDenied as i32 {
            // The grants changed: a cached token carries the old access, so a later bind
            // (after a new grant) must fetch a new one.
            self.inner.user().forget_access_token(&self.inner.url.path);
            self.token = None;
        }
        match SessionErrorCode::from_code(code) {
            Some(E::TokenExpired) => {
                tracing::info!(path = %self.inner.path, "access token expired; renewing");
                self.refresh_at = Some(Instant::now());
                self.token = None;
                self.token_requested = false;
            }
            Some(
                E::BadServerFileIdent
                | E::BadClientFileIdent
                | E::BadServerVersion
                | E::DivergingHistories,
            ) => {
                let error = self.client_reset_error(code, &message).await;
                self.inner.shared.lock().fatal = Some(error.clone());
                report(&self.inner, error);
            }
            _ if try_again => {
                report(&self.inner, SyncError::new(code, message, false));
                self.failures += 1;
                self.retry_at = Some(Instant::now() + backoff(self.failures));
            }
            _ => {
                let error = SyncError::new(code, message, true);
                self.inner.shared.lock().fatal = Some(error.clone());
                report(&self.inner, error);
            }
        }
    }

    async fn save(&mut self) -> crate::Result<()> {
        let realm = self.realm.clone();
        let progress = self.progress;
        blocking(move || realm.save_sync_progress(&progress)).await?;
        self.saved = progress;
        Ok(())
    }

    fn set_state(&self, state: SessionState) {
        let mut s = self.inner.shared.lock();
        self.inner.set_state(&mut s, state);
    }

    fn set_connection(&self, state: ConnectionState) {
        let mut s = self.inner.shared.lock();
        self.inner.set_connection(&mut s, state);
    }

    /// Ends the task: unbinds, saves progress, lets go of the file and records the final
    /// state. If something asked the session to go on meanwhile, starts it again.
    async fn finish(mut self) {
        if let Some(b) = self.binding.take() {
            self.conn
                .send(self.key, Message::Unbind { session: b.wire });
        }
        self.conn.detach(self.key);
        if self.progress != self.saved {
            if let Err(e) = self.save().await {
                tracing::warn!(error = %e, "could not save sync progress");
            }
        }
        let inner = self.inner.clone();
        drop(self);
        inner.drop_scan_realm();
        let restart = {
            let mut s = inner.shared.lock();
            if s.dying && s.pending.is_empty() {
                s.dying = false;
                s.stopped = true;
            }
            s.running = false;
            inner.set_connection(&mut s, ConnectionState::Disconnected);
            let user_valid = inner.user().is_valid();
            let again = SessionInner::wants_to_run(&s, user_valid) && (s.handles > 0 || s.dying);
            if !again {
                let state = if s.fatal.is_some() {
                    SessionState::Error
                } else {
                    SessionState::Inactive
                };
                inner.set_state(&mut s, state);
            }
            inner.changed.notify_all();
            again
        };
        if restart {
            inner.client.start(&inner);
        }
    }
}

/// Attaches session `key` to the connection for its server (a new one if the current task
/// has just ended).
fn attach(
    inner: &Arc<SessionInner>,
    key: u64,
) -> (ConnectionHandle, mpsc::UnboundedReceiver<ConnEvent>) {
    let url = inner.url.websocket_url();
    loop {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = inner.client.connection(&url);
        if conn.attach(key, tx) {
            return (conn, rx);
        }
    }
}

/// Runs file work on the runtime's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::internal(format!("a sync file task failed: {e}"))))
}

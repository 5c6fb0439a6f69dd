//! The sync connections: one task per WebSocket serving its sessions. BIND checks the path,
//! the access token (signature, expiry, path, access, revocation of its refresh token) and
//! the user's read access now (`permissions/`), and registers or checks the client file;
//! UPLOAD goes through the path's log (`log.rs`) if the user may write now, a large changeset
//! after the UPLOAD_PARTs that carry its first bytes (buffered per session, bounded by the
//! service's part budget); the log after each session's cursor goes down in DOWNLOADs (a large
//! changeset in DOWNLOAD_PARTs first) whenever the path moves; MARK, REFRESH and UNBIND;
//! revocations end the sessions of a revoked refresh token, and grant changes re-check the
//! sessions they concern (read access lost: the session ends with `PERMISSION_DENIED`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shoal::protocol::auth::TokenData;
use shoal::protocol::sync::{
    take_parts, ConnectionErrorCode as Conn, DownloadProgress, Message, PartAssembler, Sender,
    SessionErrorCode as Sess, UploadChangeset, UploadProgress, MAX_MESSAGE_BYTES,
    WEBSOCKET_SUBPROTOCOL,
};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::log::{blocking, lock, store_err, RealmHost, SyncStoreError};
use super::{PartBudget, SyncService};
use crate::connection_limits::{Stage, Tracked, TrackedConnection};
use crate::permissions::{GrantChange, EVERYONE};
use crate::tokens::{unix_now, TokenError};

/// `GET /realm-sync`: upgrades to the sync WebSocket if the client offers `shoal-sync/2`
/// (otherwise 400, as no version in common).
pub async fn realm_sync(
    State(service): State<Arc<SyncService>>,
    tracked: Option<Extension<TrackedConnection>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The connection's slot in the accept loop's limits (absent for in-process routers).
    let tracked = tracked.map(|Extension(TrackedConnection(t))| t);
    let upgrade = upgrade
        .protocols([WEBSOCKET_SUBPROTOCOL])
        // Room for a little more than the limit, so that a slightly oversized message gets
        // the codec's LIMITS_EXCEEDED; beyond this the read fails and gets it too.
        .max_message_size(MAX_MESSAGE_BYTES + 64 * 1024)
        .max_frame_size(MAX_MESSAGE_BYTES + 64 * 1024);
    if upgrade.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            format!("the sync endpoint needs the WebSocket subprotocol {WEBSOCKET_SUBPROTOCOL}"),
        )
            .into_response();
    }
    upgrade.on_upgrade(move |socket| async move {
        let Some(alive) = lock(&service.connections).clone() else {
            return; // shutting down
        };
        Connection::new(service, socket, tracked).serve().await;
        drop(alive);
    })
}

/// What a session is.
enum SessionState {
    /// Bound and working.
    Bound(Box<Session>),
    /// Ended by a session-level ERROR or an UNBIND: its messages are dropped.
    Ended,
}

/// A bound session.
struct Session {
    path: String,
    host: Arc<RealmHost>,
    /// The access token's payload (checked at BIND and REFRESH).
    token: TokenData,
    /// The client file ident.
    ident: u64,
    /// The server version sent up to; `None` until the first UPLOAD says where to start.
    cursor: Option<u64>,
    /// The client's last changeset in the log.
    acked: u64,
    /// The acknowledgement last sent.
    acked_sent: u64,
    /// Changeset bytes sent in this session.
    downloaded: u64,
    /// The UPLOAD_PARTs of a changeset not complete yet.
    parts: Parts,
    /// Forwards changes of the path's latest version to the connection.
    watcher: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// A session's buffered UPLOAD_PARTs, with the share of the service's part budget they hold
/// (given back when they are used or dropped: the session ends, the connection closes).
struct Parts {
    assembler: PartAssembler,
    budget: Arc<PartBudget>,
    held: usize,
}

impl Parts {
    fn new(budget: Arc<PartBudget>) -> Parts {
        Parts {
            assembler: PartAssembler::default(),
            budget,
            held: 0,
        }
    }

    /// Takes the buffered bytes out (to join them to the rest of their changeset).
    fn release(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.held));
    }
}

impl Drop for Parts {
    fn drop(&mut self) {
        self.release();
    }
}

/// What the connection does after handling a frame, a move of a path or a revocation.
enum Flow {
    /// Go on serving.
    Continue,
    /// The peer is gone (or closed): stop, sending nothing more.
    PeerGone,
    /// Send this connection-level ERROR, then close.
    Close(Message),
}

/// Closes the connection with a connection-level ERROR.
fn conn_error(code: Conn, message: impl Into<String>) -> Flow {
    Flow::Close(Message::error(0, code as i32, &message.into(), false))
}

/// A session-level failure.
struct SessionError {
    code: Sess,
    message: String,
    try_again: bool,
}

fn sess_error(code: Sess, message: impl Into<String>) -> SessionError {
    SessionError {
        code,
        message: message.into(),
        try_again: false,
    }
}

impl From<SyncStoreError> for SessionError {
    fn from(e: SyncStoreError) -> SessionError {
        tracing::error!(error = %e, "sync storage failed");
        SessionError {
            code: Sess::OtherSessionError,
            message: "server storage error".into(),
            try_again: true,
        }
    }
}

/// One WebSocket connection and its sessions.
struct Connection {
    service: Arc<SyncService>,
    socket: WebSocket,
    sessions: HashMap<u64, SessionState>,
    /// Session idents whose path moved on; fed by the sessions' watchers.
    moved_tx: mpsc::Sender<u64>,
    moved_rx: mpsc::Receiver<u64>,
    /// The connection's slot in the accept loop's limits: told whether a session is bound
    /// (a connection without one may be evicted to make room for others).
    tracked: Option<Arc<Tracked>>,
    /// Revoked refresh token ids, from the revocation feed (`None` once it is gone).
    revocations: Option<broadcast::Receiver<String>>,
    /// Grant changes, from the permission feed (`None` once it is gone).
    grants: Option<broadcast::Receiver<GrantChange>>,
}

impl Connection {
    fn new(
        service: Arc<SyncService>,
        socket: WebSocket,
        tracked: Option<Arc<Tracked>>,
    ) -> Connection {
        let (moved_tx, moved_rx) = mpsc::channel(64);
        // Subscribed before any BIND is checked, so a revocation or a grant change racing a
        // BIND is seen by one or the other.
        let revocations = Some(service.revocations.subscribe());
        let grants = Some(service.permissions.subscribe());
        Connection {
            service,
            socket,
            sessions: HashMap::new(),
            moved_tx,
            moved_rx,
            tracked,
            revocations,
            grants,
        }
    }

    fn has_bound_session(&self) -> bool {
        self.sessions
            .values()
            .any(|s| matches!(s, SessionState::Bound(_)))
    }

    /// Tells the limits whether a session is bound.
    fn set_bound(&self, bound: bool) {
        if let Some(tracked) = &self.tracked {
            let stage = if bound {
                Stage::WebSocketBound
            } else {
                Stage::WebSocketUnbound
            };
            tracked.set_stage(stage);
        }
    }

    async fn serve(mut self) {
        let mut shutdown = self.service.shutdown.subscribe();
        let idle = self.service.idle_timeout;
        let mut heard = tokio::time::Instant::now();
        // Until a session is bound with a valid token (and again once none is), the
        // connection must bind one by this deadline; frames (PINGs included) do not move it.
        let bind_timeout = self.service.bind_timeout;
        let mut bind_by = Some(heard + bind_timeout);
        self.set_bound(false);
        let close = loop {
            if *shutdown.borrow_and_update() {
                break Some(Message::error(
                    0,
                    Conn::ConnectionClosed as i32,
                    "the server is shutting down",
                    true,
                ));
            }
            let flow = tokio::select! {
                frame = self.socket.recv() => match frame {
                    None => break None,
                    Some(Ok(frame)) => {
                        heard = tokio::time::Instant::now();
                        self.on_frame(frame).await
                    }
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("too big") {
                            conn_error(Conn::LimitsExceeded, text)
                        } else {
                            tracing::debug!(error = %text, "sync connection failed");
                            break None;
                        }
                    }
                },
                Some(session) = self.moved_rx.recv() => self.on_moved(session).await,
                revoked = next_revocation(&mut self.revocations) => self.on_revoked(revoked).await,
                change = next_grant_change(&mut self.grants) => self.on_grant_change(change).await,
                _ = shutdown.changed() => continue,
                () = sleep_until_some(bind_by) => {
                    tracing::info!(seconds = bind_timeout.as_secs(),
                        "closing a sync connection without a bound session");
                    break Some(Message::error(
                        0,
                        Conn::ConnectionClosed as i32,
                        "no session was bound with a valid access token in time",
                        true,
                    ));
                }
                _ = tokio::time::sleep_until(heard + idle) => {
                    tracing::info!(seconds = idle.as_secs(), "closing a silent sync connection");
                    break Some(Message::error(
                        0,
                        Conn::ConnectionClosed as i32,
                        "nothing was heard from the client for too long",
                        true,
                    ));
                }
            };
            match (self.has_bound_session(), bind_by) {
                (true, Some(_)) => {
                    bind_by = None;
                    self.set_bound(true);
                }
                (false, None) => {
                    bind_by = Some(tokio::time::Instant::now() + bind_timeout);
                    self.set_bound(false);
                }
                _ => {}
            }
            match flow {
                Flow::Continue => {}
                Flow::PeerGone => break None,
                Flow::Close(error) => break Some(error),
            }
        };
        self.sessions.clear();
        if let Some(error) = close {
            if let Message::Error { code, message, .. } = &error {
                tracing::info!(code, message = %message, "closing sync connection");
            }
            let _ = self
                .socket
                .send(WsMessage::Binary(error.encode().into()))
                .await;
            let _ = self
                .socket
                .send(WsMessage::Close(Some(CloseFrame {
                    code: 1000,
                    reason: "".into(),
                })))
                .await;
        }
    }

    /// Sends one message: [`Flow::PeerGone`] when the peer is gone.
    async fn send(&mut self, message: &Message) -> Flow {
        match self
            .socket
            .send(WsMessage::Binary(message.encode().into()))
            .await
        {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::PeerGone,
        }
    }

    /// Handles one frame.
    async fn on_frame(&mut self, frame: WsMessage) -> Flow {
        let bytes = match frame {
            WsMessage::Binary(bytes) => bytes,
            WsMessage::Text(_) => {
                return conn_error(
                    Conn::BadSyntax,
                    "text frame: every message is one binary frame",
                )
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => return Flow::Continue,
            WsMessage::Close(_) => return Flow::PeerGone,
        };
        let message = match Message::decode(&bytes) {
            Ok(message) => message,
            Err(e) => return Flow::Close(e.to_message()),
        };
        if message.sender() == Sender::Server {
            return conn_error(
                Conn::UnknownMessage,
                format!("{} is sent by the server only", message.name()),
            );
        }
        match message {
            Message::Ping { timestamp } => self.send(&Message::Pong { timestamp }).await,
            Message::Bind {
                session,
                path,
                access_token,
                client_file_ident,
                client_file_salt,
            } => {
                if session == 0 {
                    return conn_error(Conn::BadSessionIdent, "session ident 0");
                }
                if self.sessions.contains_key(&session) {
                    return conn_error(
                        Conn::ReuseOfSessionIdent,
                        format!("session {session} was used before on this connection"),
                    );
                }
                self.sessions.insert(session, SessionState::Ended);
                let bound = self
                    .bind(
                        session,
                        path,
                        &access_token,
                        client_file_ident,
                        client_file_salt,
                    )
                    .await;
                self.session_result(session, bound).await
            }
            other => {
                let Some(session) = other.session() else {
                    return Flow::Continue;
                };
                match self.sessions.get(&session) {
                    None => {
                        return conn_error(
                            Conn::BadSessionIdent,
                            format!("session {session} is not bound"),
                        )
                    }
                    // Dropped: the session has ended (UNBIND included).
                    Some(SessionState::Ended) => return Flow::Continue,
                    Some(SessionState::Bound(_)) => {}
                }
                let result = match other {
                    Message::Upload {
                        progress,
                        mut changesets,
                        ..
                    } => {
                        if let Err(flow) = self.end_parts(session, &mut changesets) {
                            return flow;
                        }
                        self.upload(session, progress, changesets).await
                    }
                    Message::UploadPart {
                        total_bytes, data, ..
                    } => self.upload_part(session, total_bytes, &data).await,
                    Message::Mark { request, .. } => self.mark(session, request).await,
                    Message::Refresh { access_token, .. } => {
                        self.refresh(session, &access_token).await
                    }
                    Message::Unbind { .. } => {
                        tracing::info!(session, "unbound");
                        self.sessions.insert(session, SessionState::Ended);
                        Ok(Flow::Continue)
                    }
                    _ => Ok(Flow::Continue),
                };
                self.session_result(session, result).await
            }
        }
    }

    /// Turns a session-level failure into its ERROR and ends the session.
    async fn session_result(&mut self, session: u64, result: Result<Flow, SessionError>) -> Flow {
        match result {
            Ok(flow) => flow,
            Err(e) => self.fail_session(session, e).await,
        }
    }

    /// Sends the session its ERROR and ends it (its later messages are dropped).
    async fn fail_session(&mut self, session: u64, e: SessionError) -> Flow {
        tracing::info!(session, code = e.code as i32, message = %e.message, "session error");
        self.sessions.insert(session, SessionState::Ended);
        self.send(&Message::error(
            session,
            e.code as i32,
            &e.message,
            e.try_again,
        ))
        .await
    }

    /// `TOKEN_EXPIRED` (try again) if the session's access token has expired by the server's
    /// clock: checked for every message the session sends or is sent, so a session stops
    /// receiving changesets when its token expires (clients REFRESH ahead of that).
    fn expired(&mut self, session: u64) -> Option<SessionError> {
        let s = self.session(session)?;
        s.token.is_expired_at(unix_now()).then(|| SessionError {
            code: Sess::TokenExpired,
            message: format!(
                "the access token expired at {}; REFRESH it or bind again with a new one",
                s.token.expires
            ),
            try_again: true,
        })
    }

    /// A refresh token was revoked (`Ok(id)`), or revocations were missed (`Lagged`): ends
    /// every bound session whose access token was issued from a revoked refresh token with
    /// `BAD_AUTHENTICATION` (the token will never be valid again).
    async fn on_revoked(&mut self, revoked: Result<String, broadcast::error::RecvError>) -> Flow {
        let bound = self.sessions.iter().filter_map(|(id, state)| match state {
            SessionState::Bound(s) => Some((*id, s.token.refresh_token_id.clone())),
            SessionState::Ended => None,
        });
        let bound: Vec<(u64, Option<String>)> = bound.collect();
        let mut ended = Vec::new();
        match revoked {
            Ok(token_id) => ended.extend(
                bound
                    .into_iter()
                    .filter(|(_, id)| id.as_deref() == Some(token_id.as_str()))
                    .map(|(session, _)| session),
            ),
            Err(broadcast::error::RecvError::Closed) => {
                self.revocations = None;
                return Flow::Continue;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "missed revocations; checking every session");
                for (session, id) in bound {
                    if let Some(id) = id {
                        match is_revoked(&self.service, id).await {
                            Ok(false) => {}
                            Ok(true) => ended.push(session),
                            Err(e) => {
                                let flow = self.fail_session(session, e).await;
                                if !matches!(flow, Flow::Continue) {
                                    return flow;
                                }
                            }
                        }
                    }
                }
            }
        }
        for session in ended {
            let error = sess_error(
                Sess::BadAuthentication,
                "the refresh token this session's access token was issued from was revoked",
            );
            let flow = self.fail_session(session, error).await;
            if !matches!(flow, Flow::Continue) {
                return flow;
            }
        }
        Flow::Continue
    }

    /// A grant changed (`Ok`), or changes were missed (`Lagged`): checks the access of every
    /// session it may concern (all of them after a lag) again. A session whose user lost read
    /// access ends with `PERMISSION_DENIED` at once. (Write access is checked at each UPLOAD.)
    async fn on_grant_change(
        &mut self,
        change: Result<GrantChange, broadcast::error::RecvError>,
    ) -> Flow {
        let concerned: Vec<u64> = match &change {
            Err(broadcast::error::RecvError::Closed) => {
                self.grants = None;
                return Flow::Continue;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "missed grant changes; checking every session");
                self.bound_sessions(|_| true)
            }
            Ok(change) => self.bound_sessions(|s| {
                s.path == change.path
                    && (change.user == EVERYONE || change.user == s.token.identity)
            }),
        };
        for session in concerned {
            let Some(s) = self.session(session) else {
                continue;
            };
            let (token, path) = (s.token.clone(), s.path.clone());
            let flow = match may_write(Arc::clone(&self.service), &token, &path).await {
                Ok(_) => Flow::Continue,
                Err(e) => self.fail_session(session, e).await,
            };
            if !matches!(flow, Flow::Continue) {
                return flow;
            }
        }
        Flow::Continue
    }

    /// The bound sessions for which `f` holds.
    fn bound_sessions(&self, f: impl Fn(&Session) -> bool) -> Vec<u64> {
        self.sessions
            .iter()
            .filter_map(|(id, state)| match state {
                SessionState::Bound(s) if f(s) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Checks an access token for `path`: signature, expiry, path, download access, and that
    /// the refresh token it was issued from is not revoked.
    async fn check_token(
        service: Arc<SyncService>,
        path: &str,
        token: &str,
    ) -> Result<TokenData, SessionError> {
        let data = match service.verifier.verify(token, unix_now()) {
            Ok(data) => data,
            Err(TokenError::Expired { expires }) => {
                return Err(SessionError {
                    code: Sess::TokenExpired,
                    message: format!("the access token expired at {expires}"),
                    try_again: true,
                })
            }
            Err(e) => return Err(sess_error(Sess::BadAuthentication, e.to_string())),
        };
        let Some(refresh_id) = data.refresh_token_id.clone() else {
            // Issued before access tokens named their refresh token: it cannot be checked
            // against revocations, so the client is asked for a new one (honest clients
            // renew silently on TOKEN_EXPIRED).
            return Err(SessionError {
                code: Sess::TokenExpired,
                message: "the access token does not name its refresh token; get a new one".into(),
                try_again: true,
            });
        };
        if data.path.as_deref() != Some(path) {
            return Err(sess_error(
                Sess::PermissionDenied,
                format!("the access token is not for '{path}'"),
            ));
        }
        if !data.access.iter().any(|a| a == "download") {
            return Err(sess_error(
                Sess::PermissionDenied,
                "the access token does not grant download",
            ));
        }
        if is_revoked(&service, refresh_id).await? {
            return Err(sess_error(
                Sess::BadAuthentication,
                "the refresh token this access token was issued from was revoked",
            ));
        }
        Ok(data)
    }

    async fn bind(
        &mut self,
        session: u64,
        path: String,
        token: &str,
        ident: u64,
        salt: u64,
    ) -> Result<Flow, SessionError> {
        if !shoal::protocol::path::is_realm_path(&path) {
            return Err(sess_error(
                Sess::IllegalRealmPath,
                format!("'{path}' is not a realm path"),
            ));
        }
        let token = Self::check_token(Arc::clone(&self.service), &path, token).await?;
        may_write(Arc::clone(&self.service), &token, &path).await?;
        let host = self.service.logs.host(&path).await?;
        if host.is_management() {
            // Requests a crash or a storage failure left unanswered are answered now. A
            // failure leaves them for the next UPLOAD or BIND; the session goes on.
            if let Err(e) = host.process_management().await {
                tracing::error!(path = %path, error = %e,
                    "answering the management realm's requests failed");
            }
        }
        let (ident, acked) = if ident == 0 {
            let (ident, salt) = host.new_client().await?;
            let ident_message = Message::Ident {
                session,
                client_file_ident: ident,
                salt,
            };
            if let Flow::PeerGone = self.send(&ident_message).await {
                return Ok(Flow::PeerGone);
            }
            (ident, 0)
        } else {
            match host.client(ident).await? {
                Some((stored, acked)) if stored == salt => (ident, acked),
                _ => {
                    return Err(sess_error(
                        Sess::BadClientFileIdent,
                        format!("client file {ident} is unknown or its salt is wrong"),
                    ))
                }
            }
        };
        tracing::info!(session, path = %path, ident, identity = %token.identity, "bound");
        let mut watch = host.latest.subscribe();
        let moved = self.moved_tx.clone();
        let watcher = tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                if moved.send(session).await.is_err() {
                    break;
                }
            }
        });
        self.sessions.insert(
            session,
            SessionState::Bound(Box::new(Session {
                path,
                host,
                token,
                ident,
                cursor: None,
                acked,
                acked_sent: acked,
                downloaded: 0,
                parts: Parts::new(Arc::clone(&self.service.part_budget)),
                watcher,
            })),
        );
        Ok(Flow::Continue)
    }

    fn session(&mut self, session: u64) -> Option<&mut Session> {
        match self.sessions.get_mut(&session) {
            Some(SessionState::Bound(s)) => Some(s),
            _ => None,
        }
    }

    async fn upload(
        &mut self,
        session: u64,
        progress: UploadProgress,
        changesets: Vec<UploadChangeset>,
    ) -> Result<Flow, SessionError> {
        if let Some(e) = self.expired(session) {
            return Err(e);
        }
        let Some(s) = self.session(session) else {
            return Ok(Flow::Continue);
        };
        if !changesets.is_empty() {
            // Checked at every UPLOAD that carries changesets, against the grants as they are
            // now; a refusal integrates and logs nothing: the realm's data stays as it is.
            let (token, path) = (s.token.clone(), s.path.clone());
            if !may_write(Arc::clone(&self.service), &token, &path).await? {
                return Err(sess_error(
                    Sess::PermissionDenied,
                    format!("'{}' may not write to '{path}'", token.identity),
                ));
            }
        }
        let Some(s) = self.session(session) else {
            return Ok(Flow::Continue);
        };
        if changesets
            .windows(2)
            .any(|w| w[1].client_version <= w[0].client_version)
        {
            return Err(sess_error(
                Sess::BadClientVersion,
                "changesets must be in increasing client version order",
            ));
        }
        let latest = *s.host.latest.borrow();
        let first = s.cursor.is_none();
        if first {
            if progress.last_integrated_server_version > latest {
                return Err(sess_error(
                    Sess::BadServerVersion,
                    format!(
                        "server version {} is beyond the log ({latest})",
                        progress.last_integrated_server_version
                    ),
                ));
            }
            s.cursor = Some(progress.last_integrated_server_version);
        }
        if !changesets.is_empty() {
            let host = Arc::clone(&s.host);
            // What the client can have integrated: at most what it has been sent.
            let integrated = progress
                .last_integrated_server_version
                .min(s.cursor.unwrap_or(0));
            let outcome = host.upload(s.ident, changesets, integrated).await?;
            s.acked = outcome.acked;
            if let Some(refused) = outcome.refused {
                return Err(sess_error(refused.code, refused.message));
            }
        }
        Ok(self.catch_up(session, first).await)
    }

    /// An UPLOAD_PART: the next bytes of a changeset too large for one UPLOAD, buffered until
    /// the UPLOAD that ends it. Checked as an UPLOAD is (the session's token has not expired,
    /// its user may write now) before anything is buffered, and against the service's part
    /// budget: beyond it the session ends with `OTHER_SESSION_ERROR` (`try_again`) and its
    /// parts are dropped. Inconsistent parts close the connection (`BAD_SYNTAX`).
    async fn upload_part(
        &mut self,
        session: u64,
        total_bytes: u64,
        data: &[u8],
    ) -> Result<Flow, SessionError> {
        if self.session(session).is_some_and(|s| s.cursor.is_none()) {
            return Ok(conn_error(
                Conn::BadMessageOrder,
                "UPLOAD_PART before the session's first UPLOAD",
            ));
        }
        if let Some(e) = self.expired(session) {
            return Err(e);
        }
        let Some(s) = self.session(session) else {
            return Ok(Flow::Continue);
        };
        let (token, path) = (s.token.clone(), s.path.clone());
        if !may_write(Arc::clone(&self.service), &token, &path).await? {
            return Err(sess_error(
                Sess::PermissionDenied,
                format!("'{}' may not write to '{path}'", token.identity),
            ));
        }
        let buffered = self.service.buffered_part_bytes();
        let Some(s) = self.session(session) else {
            return Ok(Flow::Continue);
        };
        if !s.parts.budget.take(data.len()) {
            tracing::warn!(
                session,
                buffered,
                part = data.len(),
                "the sync part buffer is full; a large upload has to wait"
            );
            return Err(SessionError {
                code: Sess::OtherSessionError,
                message: "the server is receiving too many large changesets; try again later"
                    .into(),
                try_again: true,
            });
        }
        s.parts.held += data.len();
        if let Err(e) = s.parts.assembler.add(total_bytes, data) {
            return Ok(Flow::Close(e.to_message()));
        }
        Ok(Flow::Continue)
    }

    /// Joins the session's buffered parts (if any) to the first changeset of the UPLOAD that
    /// ends them. `Err` with the flow to follow when they do not fit together.
    fn end_parts(&mut self, session: u64, changesets: &mut [UploadChangeset]) -> Result<(), Flow> {
        let Some(s) = self.session(session) else {
            return Ok(());
        };
        if s.parts.assembler.is_empty() {
            return Ok(());
        }
        let rest = changesets.first_mut().map(|c| std::mem::take(&mut c.data));
        let joined = s.parts.assembler.finish(rest);
        s.parts.release();
        match joined {
            Ok(Some(data)) => {
                if let Some(first) = changesets.first_mut() {
                    first.data = data;
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(Flow::Close(e.to_message())),
        }
    }

    async fn mark(&mut self, session: u64, request: u64) -> Result<Flow, SessionError> {
        if self.session(session).is_some_and(|s| s.cursor.is_none()) {
            return Ok(conn_error(
                Conn::BadMessageOrder,
                "MARK before the session's first UPLOAD",
            ));
        }
        if let Some(e) = self.expired(session) {
            return Err(e);
        }
        match self.catch_up(session, false).await {
            Flow::Continue => Ok(self.send(&Message::Mark { session, request }).await),
            other => Ok(other),
        }
    }

    async fn refresh(&mut self, session: u64, token: &str) -> Result<Flow, SessionError> {
        let Some(path) = self.session(session).map(|s| s.path.clone()) else {
            return Ok(Flow::Continue);
        };
        let data = Self::check_token(Arc::clone(&self.service), &path, token).await?;
        may_write(Arc::clone(&self.service), &data, &path).await?;
        if let Some(s) = self.session(session) {
            s.token = data;
        }
        Ok(Flow::Continue)
    }

    /// The path of `session` moved on: send what is new.
    async fn on_moved(&mut self, session: u64) -> Flow {
        self.catch_up(session, false).await
    }

    /// Sends the log after the session's cursor up to the latest version, in DOWNLOADs; with
    /// `force`, or when the acknowledgement moved, at least one (possibly empty) DOWNLOAD.
    async fn catch_up(&mut self, session: u64, force: bool) -> Flow {
        let mut force = force;
        loop {
            // Nothing goes down once the token has expired; the session ends with
            // TOKEN_EXPIRED and its client binds again from where it got to.
            if let Some(e) = self.expired(session) {
                return self.fail_session(session, e).await;
            }
            let Some(s) = self.session(session) else {
                return Flow::Continue;
            };
            let Some(cursor) = s.cursor else {
                return Flow::Continue;
            };
            let latest = *s.host.latest.borrow();
            let host = Arc::clone(&s.host);
            let own = s.ident;
            let batch = if cursor < latest {
                match host.read_after(cursor, own).await {
                    Ok(batch) => Some(batch),
                    Err(e) => {
                        tracing::error!(error = %e, "reading the sync log failed");
                        return conn_error(Conn::OtherError, "server storage error");
                    }
                }
            } else {
                None
            };
            let Some(s) = self.session(session) else {
                return Flow::Continue;
            };
            let message = match batch {
                Some(batch) if batch.last > cursor => {
                    let bytes: u64 = batch.changesets.iter().map(|c| c.data.len() as u64).sum();
                    s.downloaded += bytes;
                    s.cursor = Some(batch.last);
                    s.acked_sent = s.acked;
                    Message::Download {
                        session,
                        acked_client_version: s.acked,
                        progress: DownloadProgress {
                            server_version: batch.last,
                            downloaded_bytes: s.downloaded,
                            downloadable_bytes: batch.total.saturating_sub(batch.cumulative),
                        },
                        changesets: batch.changesets,
                    }
                }
                _ if force || s.acked != s.acked_sent => {
                    s.acked_sent = s.acked;
                    Message::Download {
                        session,
                        acked_client_version: s.acked,
                        progress: DownloadProgress {
                            server_version: cursor,
                            downloaded_bytes: s.downloaded,
                            downloadable_bytes: 0,
                        },
                        changesets: Vec::new(),
                    }
                }
                _ => return Flow::Continue,
            };
            force = false;
            let more = matches!(&message, Message::Download { progress, .. }
                if progress.server_version < latest);
            let message = match self.send_parts(session, message).await {
                Ok(message) => message,
                Err(flow) => return flow,
            };
            let flow = self.send(&message).await;
            if !more || !matches!(flow, Flow::Continue) {
                return flow;
            }
        }
    }
}

impl Connection {
    /// Sends the DOWNLOAD_PARTs of a DOWNLOAD's first changeset if it is larger than a part,
    /// and returns the DOWNLOAD with the rest of it. The token is checked before each part,
    /// as before every message a session is sent. `Err` with the flow to follow when sending
    /// stopped (the peer is gone, or the session ended).
    async fn send_parts(&mut self, session: u64, mut message: Message) -> Result<Message, Flow> {
        let Message::Download { changesets, .. } = &mut message else {
            return Ok(message);
        };
        let Some(first) = changesets.first_mut() else {
            return Ok(message);
        };
        let (total_bytes, parts) = take_parts(&mut first.data);
        for data in parts {
            if let Some(e) = self.expired(session) {
                return Err(self.fail_session(session, e).await);
            }
            let part = Message::DownloadPart {
                session,
                total_bytes,
                data,
            };
            match self.send(&part).await {
                Flow::Continue => {}
                other => return Err(other),
            }
        }
        Ok(message)
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Checks that the token's user may read `path` now (`PERMISSION_DENIED` if not) and says
/// whether its session may write: the token grants `upload` and the user has write access.
/// An access token carries the access its user had when it was issued; the grants decide
/// what is left of it.
async fn may_write(
    service: Arc<SyncService>,
    token: &TokenData,
    path: &str,
) -> Result<bool, SessionError> {
    let permissions = Arc::clone(&service.permissions);
    let (identity, owned_path) = (token.identity.clone(), path.to_owned());
    let access = blocking(move || {
        permissions
            .access(&identity, &owned_path)
            .map_err(store_err)
    })
    .await?;
    if !access.read {
        return Err(sess_error(
            Sess::PermissionDenied,
            format!("'{}' has no read access to '{path}'", token.identity),
        ));
    }
    Ok(access.write && token.access.iter().any(|a| a == "upload"))
}

/// The next grant change; never ready once the feed has closed.
async fn next_grant_change(
    feed: &mut Option<broadcast::Receiver<GrantChange>>,
) -> Result<GrantChange, broadcast::error::RecvError> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether the refresh token `id` is revoked (the list on disk).
async fn is_revoked(service: &Arc<SyncService>, id: String) -> Result<bool, SessionError> {
    let revocations = Arc::clone(&service.revocations);
    Ok(blocking(move || revocations.is_revoked(&id).map_err(store_err)).await?)
}

/// The next revocation; never ready once the feed has closed.
async fn next_revocation(
    feed: &mut Option<broadcast::Receiver<String>>,
) -> Result<String, broadcast::error::RecvError> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

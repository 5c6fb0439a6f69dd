//! One WebSocket per server, multiplexing the sessions of this process that sync with it.
//!
//! A connection task owns the socket. Sessions *attach* with a channel for [`ConnEvent`]s and
//! send messages through [`ConnectionHandle::send`]; the task routes server messages to the
//! session whose BIND used the message's session ident. While any session is attached the
//! task keeps a connection up: it reconnects after failures with exponential backoff and
//! jitter (250 ms doubling to 30 s, ±25 %), and sends a PING every 10 s; a connection that
//! has not answered within 30 s is dropped and reconnected.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::error::SyncError;
use crate::error::ErrorCode;
use crate::protocol::sync::{Message, PartAssembler, MAX_MESSAGE_BYTES, WEBSOCKET_SUBPROTOCOL};

const PING_INTERVAL: Duration = Duration::from_secs(10);
const PONG_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a connection without sessions stays open (a realm reopened soon reuses it).
const IDLE_LINGER: Duration = Duration::from_secs(5);

/// What a connection tells an attached session.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// The socket is up: bind.
    Connected,
    /// The socket is gone (every binding with it); the error says why, when the server said.
    Disconnected(Option<SyncError>),
    /// A message for one of this session's bindings.
    Message(Message),
}

enum Command {
    Attach {
        key: u64,
        events: mpsc::UnboundedSender<ConnEvent>,
    },
    Detach {
        key: u64,
    },
    Send {
        key: u64,
        message: Message,
    },
}

/// A handle of a connection task; cheap to clone.
#[derive(Clone)]
pub(crate) struct ConnectionHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl ConnectionHandle {
    /// Starts the task for the server at `url` (`ws://…/realm-sync`) on the current runtime;
    /// `wss://` URLs use `tls` if given, else the public roots.
    pub(crate) fn spawn(
        runtime: &tokio::runtime::Handle,
        url: String,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> ConnectionHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        runtime.spawn(run(url, tls, rx));
        ConnectionHandle { tx }
    }

    /// Whether the task has ended (it ends after lingering without sessions).
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Attaches a session; it gets `Connected` at once if the socket is up. False if the task
    /// has ended.
    pub(crate) fn attach(&self, key: u64, events: mpsc::UnboundedSender<ConnEvent>) -> bool {
        self.tx.send(Command::Attach { key, events }).is_ok()
    }

    pub(crate) fn detach(&self, key: u64) {
        let _ = self.tx.send(Command::Detach { key });
    }

    /// Sends `message` for session `key` (dropped if the socket is down: the session binds
    /// again after the next `Connected`).
    pub(crate) fn send(&self, key: u64, message: Message) {
        let _ = self.tx.send(Command::Send { key, message });
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Sessions {
    attached: HashMap<u64, mpsc::UnboundedSender<ConnEvent>>,
    /// Wire session ident → attached session key.
    routes: HashMap<u64, u64>,
    /// Wire session ident → the DOWNLOAD_PARTs of a changeset not complete yet (joined to
    /// the DOWNLOAD that ends it before the session sees it).
    parts: HashMap<u64, PartAssembler>,
}

impl Sessions {
    fn tell_all(&mut self, event: impl Fn() -> ConnEvent) {
        self.attached.retain(|_, tx| tx.send(event()).is_ok());
    }

    /// Applies a command while no socket is up; messages are dropped.
    fn apply_offline(&mut self, command: Command) {
        match command {
            Command::Attach { key, events } => {
                self.attached.insert(key, events);
            }
            Command::Detach { key } => self.detach(key),
            Command::Send { .. } => {}
        }
    }

    fn detach(&mut self, key: u64) {
        self.attached.remove(&key);
        self.routes.retain(|_, k| *k != key);
        let routes = &self.routes;
        self.parts.retain(|wire, _| routes.contains_key(wire));
    }

    /// Forgets every binding (the socket is gone).
    fn clear_routes(&mut self) {
        self.routes.clear();
        self.parts.clear();
    }

    /// Takes a DOWNLOAD_PART into its session's buffer, or joins the buffer to the DOWNLOAD
    /// that ends it; other messages pass. `Ok(None)`: nothing to route yet. `Err`: the parts
    /// do not fit together (the server broke the protocol).
    fn assemble(&mut self, message: Message) -> Result<Option<Message>, SyncError> {
        let bad = |e: crate::protocol::sync::ProtocolError| {
            SyncError::new(e.code as i32, e.message, false)
        };
        match message {
            Message::DownloadPart {
                session,
                total_bytes,
                data,
            } => {
                if self.routes.contains_key(&session) {
                    self.parts
                        .entry(session)
                        .or_default()
                        .add(total_bytes, &data)
                        .map_err(bad)?;
                }
                Ok(None)
            }
            Message::Download {
                session,
                acked_client_version,
                progress,
                mut changesets,
            } => {
                if let Some(mut parts) = self.parts.remove(&session) {
                    let rest = changesets.first_mut().map(|c| std::mem::take(&mut c.data));
                    if let (Some(first), Some(data)) =
                        (changesets.first_mut(), parts.finish(rest).map_err(bad)?)
                    {
                        first.data = data;
                    }
                }
                Ok(Some(Message::Download {
                    session,
                    acked_client_version,
                    progress,
                    changesets,
                }))
            }
            other => Ok(Some(other)),
        }
    }
}

async fn run(
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut sessions = Sessions {
        attached: HashMap::new(),
        routes: HashMap::new(),
        parts: HashMap::new(),
    };
    let mut failures: u32 = 0;
    loop {
        // Without sessions, linger a little, then end.
        while sessions.attached.is_empty() {
            match tokio::time::timeout(IDLE_LINGER, commands.recv()).await {
                Ok(Some(c)) => sessions.apply_offline(c),
                Ok(None) | Err(_) => return,
            }
        }
        // Sessions may attach or detach while the connection is being made; it goes on.
        let connecting = connect(&url, tls.clone());
        tokio::pin!(connecting);
        let socket = loop {
            tokio::select! {
                r = &mut connecting => break r,
                c = commands.recv() => match c {
                    Some(c) => sessions.apply_offline(c),
                    None => return,
                },
            }
        };
        match socket {
            Ok(mut socket) if sessions.attached.is_empty() => {
                // Everyone left while connecting: close, then linger without a socket.
                let _ = socket.close(None).await;
                continue;
            }
            Ok(socket) => {
                tracing::debug!(url = %url, "sync connection up");
                sessions.clear_routes();
                sessions.tell_all(|| ConnEvent::Connected);
                let outcome = serve(socket, &mut sessions, &mut commands, &mut failures).await;
                sessions.clear_routes();
                match outcome {
                    Served::Ended => return,
                    Served::Lost(error) => {
                        tracing::info!(url = %url, error = ?error, "sync connection lost");
                        sessions.tell_all(|| ConnEvent::Disconnected(error.clone()));
                    }
                }
            }
            Err(e) => {
                tracing::debug!(url = %url, error = %e.message, "sync connection failed");
                sessions.tell_all(|| ConnEvent::Disconnected(None));
            }
        }
        failures = failures.saturating_add(1);
        let delay = backoff(failures);
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                c = commands.recv() => match c {
                    Some(c) => sessions.apply_offline(c),
                    None => return,
                },
            }
        }
    }
}

/// The delay before reconnect attempt `failures` (≥ 1): 250 ms doubling to 30 s, ±25 %.
pub(crate) fn backoff(failures: u32) -> Duration {
    let base = BACKOFF_FIRST
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    let jitter = 0.75 + 0.5 * (crate::util::random_u64() % 10_000) as f64 / 10_000.0;
    base.mul_f64(jitter)
}

async fn connect(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Socket, SyncError> {
    let io = |m: String| SyncError::new(ErrorCode::Io as i32, m, false);
    let mut request = url
        .into_client_request()
        .map_err(|e| io(format!("bad sync URL {url}: {e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(WEBSOCKET_SUBPROTOCOL),
    );
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES + 1024))
        .max_frame_size(Some(MAX_MESSAGE_BYTES + 1024));
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    let (socket, response) = tokio::time::timeout(Duration::from_secs(15), connecting)
        .await
        .map_err(|_| io(format!("connecting to {url} timed out")))?
        .map_err(|e| io(format!("cannot connect to {url}: {e}")))?;
    let agreed = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if agreed != Some(WEBSOCKET_SUBPROTOCOL) {
        return Err(io(format!(
            "the server at {url} does not speak {WEBSOCKET_SUBPROTOCOL}"
        )));
    }
    Ok(socket)
}

enum Served {
    /// The command channel closed: the client is gone.
    Ended,
    /// The socket is gone; reconnect (with the server's error, if it sent one).
    Lost(Option<SyncError>),
}

async fn serve(
    mut socket: Socket,
    sessions: &mut Sessions,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    failures: &mut u32,
) -> Served {
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut last_heard = Instant::now();
    let started = std::time::Instant::now();
    loop {
        tokio::select! {
            frame = socket.next() => {
                let frame = match frame {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => return Served::Lost(Some(SyncError::new(ErrorCode::Io as i32, format!("connection error: {e}"), false))),
                    None => return Served::Lost(None),
                };
                last_heard = Instant::now();
                let bytes = match frame {
                    WsMessage::Binary(b) => b,
                    WsMessage::Close(_) => return Served::Lost(None),
                    WsMessage::Text(_) => {
                        return Served::Lost(Some(SyncError::new(103, "the server sent a text frame", false)));
                    }
                    _ => continue,
                };
                let message = match Message::decode(&bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable message from the sync server");
                        let _ = socket.close(None).await;
                        return Served::Lost(Some(SyncError::new(e.code as i32, e.message, false)));
                    }
                };
                // A connection that works for a while resets the backoff.
                if started.elapsed() > Duration::from_secs(2) || !matches!(message, Message::Error { .. }) {
                    *failures = 0;
                }
                match message {
                    Message::Pong { .. } => {}
                    Message::Error { session: 0, code, message, try_again } => {
                        let _ = socket.close(None).await;
                        return Served::Lost(Some(SyncError::new(code, message, !try_again && code != 100)));
                    }
                    other => {
                        let other = match sessions.assemble(other) {
                            Ok(Some(message)) => message,
                            Ok(None) => continue,
                            Err(e) => {
                                tracing::warn!(error = %e.message, "inconsistent changeset parts from the sync server");
                                let _ = socket.close(None).await;
                                return Served::Lost(Some(e));
                            }
                        };
                        let Some(session) = other.session() else { continue };
                        let Some(key) = sessions.routes.get(&session).copied() else { continue };
                        if let Some(tx) = sessions.attached.get(&key) {
                            let _ = tx.send(ConnEvent::Message(other));
                        }
                    }
                }
            }
            command = commands.recv() => {
                let Some(command) = command else {
                    let _ = socket.close(None).await;
                    return Served::Ended;
                };
                match command {
                    Command::Attach { key, events } => {
                        if events.send(ConnEvent::Connected).is_ok() {
                            sessions.attached.insert(key, events);
                        }
                    }
                    Command::Detach { key } => {
                        sessions.detach(key);
                        if sessions.attached.is_empty() {
                            // Linger with the socket open: a reopened realm reuses it.
                            match linger(&mut socket, sessions, commands).await {
                                Some(served) => return served,
                                None => continue,
                            }
                        }
                    }
                    Command::Send { key, message } => {
                        if !sessions.attached.contains_key(&key) {
                            continue;
                        }
                        match &message {
                            Message::Bind { session, .. } => {
                                sessions.routes.insert(*session, key);
                            }
                            Message::Unbind { session } => {
                                sessions.routes.remove(session);
                                sessions.parts.remove(session);
                            }
                            _ => {}
                        }
                        if let Err(e) = socket.send(WsMessage::Binary(message.encode().into())).await {
                            return Served::Lost(Some(SyncError::new(ErrorCode::Io as i32, format!("cannot send: {e}"), false)));
                        }
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > PONG_TIMEOUT {
                    return Served::Lost(Some(SyncError::new(ErrorCode::Io as i32, "the server stopped answering", false)));
                }
                let now = crate::util::now_ms();
                if socket.send(WsMessage::Binary(Message::Ping { timestamp: now }.encode().into())).await.is_err() {
                    return Served::Lost(None);
                }
            }
        }
    }
}

/// Keeps an idle socket open for [`IDLE_LINGER`]; `None` when a session attached again.
async fn linger(
    socket: &mut Socket,
    sessions: &mut Sessions,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Option<Served> {
    let until = Instant::now() + IDLE_LINGER;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {
                let _ = socket.close(None).await;
                return Some(Served::Ended);
            }
            frame = socket.next() => match frame {
                Some(Ok(_)) => {}
                _ => return Some(Served::Lost(None)),
            },
            command = commands.recv() => match command {
                None => {
                    let _ = socket.close(None).await;
                    return Some(Served::Ended);
                }
                Some(Command::Attach { key, events }) => {
                    if events.send(ConnEvent::Connected).is_ok() {
                        sessions.attached.insert(key, events);
                        return None;
                    }
                }
                Some(other) => sessions.apply_offline(other),
            },
        }
    }
}

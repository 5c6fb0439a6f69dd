//! Raw sync clients for the server's tests: a tokio-tungstenite WebSocket speaking
//! `shoal::protocol::sync` ([`Client`]), what it downloads ([`Downloaded`]), local replicas
//! with merge metadata that make real changesets ([`Replica`]), and token helpers.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use shoal::protocol::sync::{
    DownloadChangeset, Message, PartAssembler, UploadChangeset, UploadProgress,
    WEBSOCKET_SUBPROTOCOL,
};
use shoal::{
    encode_changeset, Changeset, Config, Instruction, PropertyFlags as F, PropertyType as T, Realm,
    Schema, Value,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{refresh_token, TestServer};

pub const WAIT: Duration = Duration::from_secs(20);

/// One raw sync connection. Its receiving methods join DOWNLOAD_PARTs to the DOWNLOAD that
/// ends them, as a real client does (counting them in `parts_received`).
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Buffered DOWNLOAD_PARTs by session.
    parts: std::collections::HashMap<u64, PartAssembler>,
    /// DOWNLOAD_PARTs received so far.
    pub parts_received: usize,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let mut request = format!("ws://{addr}/realm-sync")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            WEBSOCKET_SUBPROTOCOL.parse().unwrap(),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            WEBSOCKET_SUBPROTOCOL
        );
        Client {
            ws,
            parts: std::collections::HashMap::new(),
            parts_received: 0,
        }
    }

    /// A received message after part assembly: `None` for a part (buffered).
    fn assemble(&mut self, message: Message) -> Option<Message> {
        match message {
            Message::DownloadPart {
                session,
                total_bytes,
                data,
            } => {
                self.parts_received += 1;
                self.parts
                    .entry(session)
                    .or_default()
                    .add(total_bytes, &data)
                    .expect("consistent DOWNLOAD_PARTs");
                None
            }
            Message::Download {
                session,
                acked_client_version,
                progress,
                mut changesets,
            } => {
                if let Some(mut parts) = self.parts.remove(&session) {
                    let rest = changesets.first_mut().map(|c| std::mem::take(&mut c.data));
                    let whole = parts.finish(rest).expect("a DOWNLOAD that ends its parts");
                    changesets[0].data = whole.unwrap();
                }
                Some(Message::Download {
                    session,
                    acked_client_version,
                    progress,
                    changesets,
                })
            }
            other => Some(other),
        }
    }

    pub async fn send(&mut self, message: &Message) {
        self.ws
            .send(Ws::Binary(message.encode().into()))
            .await
            .unwrap();
    }

    /// The next message; `None` when the server closed the connection.
    pub async fn recv_or_close(&mut self) -> Option<Message> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time");
            match frame {
                None | Some(Err(_)) | Some(Ok(Ws::Close(_))) => return None,
                Some(Ok(Ws::Binary(bytes))) => {
                    if let Some(m) = self.assemble(Message::decode(&bytes).unwrap()) {
                        return Some(m);
                    }
                }
                Some(Ok(other)) if other.is_ping() || other.is_pong() => {}
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
            }
        }
    }

    pub async fn recv(&mut self) -> Message {
        self.recv_or_close().await.expect("connection open")
    }

    /// The next message if one comes within `wait` (heartbeat frames skipped).
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Message> {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) | Ok(None | Some(Err(_)) | Some(Ok(Ws::Close(_)))) => return None,
                Ok(Some(Ok(Ws::Binary(bytes)))) => {
                    if let Some(m) = self.assemble(Message::decode(&bytes).unwrap()) {
                        return Some(m);
                    }
                }
                Ok(Some(Ok(other))) if other.is_ping() || other.is_pong() => {}
                Ok(Some(Ok(other))) => panic!("unexpected frame {other:?}"),
            }
        }
    }

    pub async fn bind(&mut self, session: u64, path: &str, token: &str, ident: u64, salt: u64) {
        self.send(&Message::Bind {
            session,
            path: path.into(),
            access_token: token.into(),
            client_file_ident: ident,
            client_file_salt: salt,
        })
        .await;
    }

    /// Binds a new file and returns its `(ident, salt)` from IDENT.
    pub async fn bind_new(&mut self, session: u64, path: &str, token: &str) -> (u64, u64) {
        self.bind(session, path, token, 0, 0).await;
        match self.recv().await {
            Message::Ident {
                session: s,
                client_file_ident,
                salt,
            } if s == session => (client_file_ident, salt),
            other => panic!("expected IDENT, got {other:?}"),
        }
    }

    pub async fn upload(
        &mut self,
        session: u64,
        last_integrated: u64,
        changesets: Vec<UploadChangeset>,
    ) {
        let client_version = changesets.last().map_or(0, |c| c.client_version);
        self.send(&Message::Upload {
            session,
            progress: UploadProgress {
                client_version,
                last_integrated_server_version: last_integrated,
            },
            changesets,
        })
        .await;
    }

    /// Sends a MARK and collects every DOWNLOAD until it comes back: the changesets and the
    /// last acknowledgement and server version seen.
    pub async fn sync_to_mark(&mut self, session: u64, request: u64) -> Downloaded {
        self.send(&Message::Mark { session, request }).await;
        let mut out = Downloaded::default();
        loop {
            match self.recv().await {
                Message::Mark {
                    session: s,
                    request: r,
                } if s == session && r == request => return out,
                message => out.add(session, message),
            }
        }
    }

    /// Receives DOWNLOADs until one acknowledges `client_version`.
    pub async fn until_acked(&mut self, session: u64, client_version: u64) -> Downloaded {
        let mut out = Downloaded::default();
        while out.acked < client_version {
            let message = self.recv().await;
            out.add(session, message);
        }
        out
    }
}

#[derive(Default)]
pub struct Downloaded {
    pub changesets: Vec<DownloadChangeset>,
    pub acked: u64,
    pub server_version: u64,
    pub downloads: usize,
}

impl Downloaded {
    pub fn add(&mut self, session: u64, message: Message) {
        match message {
            Message::Download {
                session: s,
                acked_client_version,
                progress,
                changesets,
            } if s == session => {
                self.downloads += 1;
                self.acked = self.acked.max(acked_client_version);
                assert!(progress.server_version >= self.server_version);
                self.server_version = progress.server_version;
                self.changesets.extend(changesets);
            }
            other => panic!("expected a DOWNLOAD of session {session}, got {other:?}"),
        }
    }
}

pub fn schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Task", Some("id")).unwrap();
    s.add_property("Task", "id", T::Int, F::NONE, None).unwrap();
    s.add_property("Task", "title", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Task", "done", T::Int, F::NONE, None)
        .unwrap();
    s
}

/// A local replica with merge metadata, and how far it has uploaded.
pub struct Replica {
    _dir: tempfile::TempDir,
    pub realm: Realm,
    pub uploaded: u64,
}

impl Replica {
    pub fn new() -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().join("r.realm").to_string_lossy());
        config.set_schema(schema()).unwrap();
        config.set_merge_metadata(true);
        let realm = Realm::open(&config).unwrap();
        Replica {
            _dir: dir,
            realm,
            uploaded: 0,
        }
    }

    pub fn task(&self, id: i64, title: &str, done: i64) {
        self.realm.begin_write().unwrap();
        let task = match self.realm.find_object("Task", &Value::Int(id)).unwrap() {
            Some(task) => task,
            None => self
                .realm
                .create_object("Task", Some(&Value::Int(id)))
                .unwrap(),
        };
        task.set("title", title).unwrap();
        task.set("done", done).unwrap();
        self.realm.commit().unwrap();
    }

    /// The local changesets not uploaded yet, as UPLOAD entries.
    pub fn pending(&mut self) -> Vec<UploadChangeset> {
        let local = self.realm.local_changesets_since(self.uploaded).unwrap();
        if let Some((version, _)) = local.last() {
            self.uploaded = *version;
        }
        local
            .into_iter()
            .map(|(version, data)| UploadChangeset {
                client_version: version,
                stamp: shoal::changeset_header(&data).unwrap().0,
                data,
            })
            .collect()
    }

    pub fn integrate(&self, changesets: &[DownloadChangeset]) {
        for c in changesets {
            self.realm.integrate_changeset(&c.data).unwrap();
        }
    }

    pub fn dump(&self) -> String {
        self.realm.dump_json().unwrap()
    }
}

pub fn access_token(server: &TestServer, identity: &str, path: &str) -> String {
    let (status, body) = server.debug_login(identity);
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.access(&refresh_token(&body), path);
    assert_eq!(status, 200, "{body}");
    body["access_token"]["token"].as_str().unwrap().to_owned()
}

/// The server's copy of the first realm path synced in `data_dir` (number 1).
pub fn server_copy(data_dir: &std::path::Path) -> String {
    server_copy_of(data_dir, 1)
}

/// The server's copy of realm path number `n` of `data_dir` (numbered in order of first use).
pub fn server_copy_of(data_dir: &std::path::Path, n: u64) -> String {
    let mut config = Config::new(
        data_dir
            .join(format!("realms/{n}/server.realm"))
            .to_string_lossy()
            .into_owned(),
    );
    config.set_merge_metadata(true);
    Realm::open(&config).unwrap().dump_json().unwrap()
}

pub fn session_error(message: Message) -> (u64, i32, bool) {
    match message {
        Message::Error {
            session,
            code,
            try_again,
            ..
        } => (session, code, try_again),
        other => panic!("expected ERROR, got {other:?}"),
    }
}

/// The wall clock in unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .try_into()
        .unwrap()
}

/// A hostile client file: a raw connection bound with a token of the path's owner, uploading
/// changesets built by hand (its own replica id; stamps from the clock).
pub struct Hostile {
    pub client: Client,
    path: String,
    token: String,
    pub session: u64,
    ident: u64,
    salt: u64,
    /// The replica id its changesets carry.
    pub origin: u64,
    /// The stamp of its last changeset.
    pub stamp: u64,
    /// Its last changeset in the log.
    pub acked: u64,
    /// The last server version it was sent.
    pub server_version: u64,
    /// Every changeset it was sent (material to replay or mutate).
    pub material: Vec<Vec<u8>>,
}

/// How an upload was answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Acknowledged up to this client version.
    Acked(u64),
    /// A session ERROR with this code.
    Refused(i32),
}

impl Hostile {
    /// Binds a new file on `path` with `token`; its changesets carry replica id `origin`.
    pub async fn new(addr: SocketAddr, path: &str, token: &str, origin: u64) -> Hostile {
        let mut client = Client::connect(addr).await;
        let (ident, salt) = client.bind_new(1, path, token).await;
        let mut hostile = Hostile {
            client,
            path: path.to_owned(),
            token: token.to_owned(),
            session: 1,
            ident,
            salt,
            origin,
            stamp: 0,
            acked: 0,
            server_version: 0,
            material: Vec::new(),
        };
        hostile.client.upload(1, 0, vec![]).await;
        let got = hostile.client.sync_to_mark(1, 1).await;
        hostile.take(got);
        hostile
    }

    fn take(&mut self, got: Downloaded) {
        self.server_version = self.server_version.max(got.server_version);
        self.acked = self.acked.max(got.acked);
        self.material
            .extend(got.changesets.into_iter().map(|c| c.data));
    }

    /// Everything the server has, as material.
    pub async fn catch_up(&mut self, request: u64) {
        let got = self.client.sync_to_mark(self.session, request).await;
        self.take(got);
    }

    /// A changeset of its own replica with the next stamp.
    pub fn changeset(&mut self, instructions: Vec<Instruction>) -> Vec<u8> {
        self.stamp = (now_ms() << 16).max(self.stamp + 1);
        encode_changeset(&Changeset {
            stamp: self.stamp,
            origin: self.origin,
            instructions,
        })
    }

    /// The UPLOAD entry for `data` at `client_version` (the stamp read from its header).
    pub fn entry(client_version: u64, data: Vec<u8>) -> UploadChangeset {
        UploadChangeset {
            client_version,
            stamp: shoal::changeset_header(&data).map_or(1, |(stamp, _)| stamp),
            data,
        }
    }

    /// Uploads `changesets`: `Acked(its last acknowledged version)` once the server has dealt
    /// with them, or `Refused(code)` for a session ERROR.
    pub async fn upload(&mut self, changesets: Vec<UploadChangeset>) -> Answer {
        self.client
            .upload(self.session, self.server_version, changesets)
            .await;
        // The MARK comes back once the UPLOAD is dealt with (an UPLOAD of changesets the log
        // already has gets no answer of its own); an ERROR comes before it.
        const REQUEST: u64 = u64::MAX;
        self.client
            .send(&Message::Mark {
                session: self.session,
                request: REQUEST,
            })
            .await;
        loop {
            match self.client.recv().await {
                Message::Download {
                    session,
                    acked_client_version,
                    progress,
                    changesets,
                } if session == self.session => {
                    self.server_version = self.server_version.max(progress.server_version);
                    self.acked = self.acked.max(acked_client_version);
                    self.material.extend(changesets.into_iter().map(|c| c.data));
                }
                Message::Mark { session, request }
                    if session == self.session && request == REQUEST =>
                {
                    return Answer::Acked(self.acked)
                }
                Message::Error { session, code, .. } if session == self.session => {
                    return Answer::Refused(code)
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Uploads one changeset as its next client version.
    pub async fn upload_next(&mut self, data: Vec<u8>) -> Answer {
        let version = self.acked + 1;
        self.upload(vec![Hostile::entry(version, data)]).await
    }

    /// Binds the same file again in a new session (after an ERROR ended the last one); the
    /// first DOWNLOAD tells what the server acknowledged.
    pub async fn rebind(&mut self) {
        self.session += 1;
        self.client
            .bind(self.session, &self.path, &self.token, self.ident, self.salt)
            .await;
        self.client
            .upload(self.session, self.server_version, vec![])
            .await;
        let got = self.client.sync_to_mark(self.session, 1).await;
        self.take(got);
    }
}

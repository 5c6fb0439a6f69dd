//! The sync protocol's binary message codec, shared by the sync client and `shoal-server`
//! (**API Boundary**). This file only turns [`Message`]s into bytes and back; sessions,
//! networking and storage live elsewhere. The merge rules the messages carry changesets for
//! are in `docs/DESIGN.md` ("Sync").
//!
//! # Transport and version negotiation
//!
//! One WebSocket connection per client and server, multiplexing any number of *sessions* (one
//! per synced realm file). The client offers the subprotocol in the HTTP upgrade,
//! `Sec-WebSocket-Protocol: shoal-sync/2` ([`WEBSOCKET_SUBPROTOCOL`]); the server answers with
//! the same value, or refuses the upgrade when it speaks none of the offered versions (a future
//! client may offer several, newest first). After the upgrade every message is **one binary
//! frame** holding exactly one encoded [`Message`]; a text frame is `BAD_SYNTAX`. The first
//! byte of every message repeats the protocol version ([`PROTOCOL_VERSION`]), so a frame of
//! another version is recognised as such (`WRONG_PROTOCOL_VERSION`) rather than misread.
//!
//! # Encoding
//!
//! ```text
//! message  = version:u8 tag:u8 body      version = 2; nothing may follow the body
//! varint   = unsigned LEB128, 1..=10 bytes, canonical: no overlong form (a last byte of 0x00
//!            after others), and a 10th byte of 0x00 or 0x01 only (the value fits in a u64)
//! zigzag32 = varint of the zigzag-mapped i32, (n << 1) ^ (n >> 31); at most 0xFFFF_FFFF
//! string   = varint byte length, then that many bytes of UTF-8
//! blob     = varint byte length, then that many bytes
//! bool     = u8, 0x00 (false) or 0x01 (true)
//! list<T>  = varint count, then count items T
//!
//! tag  message   body, field by field
//!  1   BIND      session:varint path:string access_token:string
//!                client_file_ident:varint client_file_salt:varint
//!  2   IDENT     session:varint client_file_ident:varint salt:varint
//!  3   UPLOAD    session:varint client_version:varint last_integrated_server_version:varint
//!                changesets:list<client_version:varint stamp:varint data:blob>
//!  4   DOWNLOAD  session:varint acked_client_version:varint server_version:varint
//!                downloaded_bytes:varint downloadable_bytes:varint
//!                changesets:list<server_version:varint origin_file_ident:varint
//!                                origin_client_version:varint stamp:varint data:blob>
//!  5   MARK      session:varint request:varint
//!  6   REFRESH   session:varint access_token:string
//!  7   UNBIND    session:varint
//!  8   ERROR     session:varint code:zigzag32 message:string try_again:bool
//!  9   PING      timestamp:varint
//! 10   PONG      timestamp:varint
//! 11   UPLOAD_PART    session:varint total_bytes:varint data:blob
//! 12   DOWNLOAD_PART  session:varint total_bytes:varint data:blob
//! ```
//!
//! Tag 0 and tags above 12 are unknown. Every value has exactly one encoding, so decoding and
//! re-encoding a message gives back the same bytes. For example `BIND {session: 1, path:
//! "/a/b", access_token: "t", client_file_ident: 0, client_file_salt: 0}` is
//! `02 01 01 04 2f 61 2f 62 01 74 00 00`, and `ERROR {session: 0, code: 103, message: "bad",
//! try_again: false}` is `02 08 00 ce 01 03 62 61 64 00`. A changeset's `data` is the history
//! changeset format of `docs/DESIGN.md`, opaque to this codec.
//!
//! # Limits
//!
//! | what | limit | beyond it |
//! |---|---|---|
//! | a whole message | [`MAX_MESSAGE_BYTES`] (16 MiB) | `LIMITS_EXCEEDED` |
//! | `path` | [`MAX_PATH_BYTES`] (1024) | `LIMITS_EXCEEDED` |
//! | `access_token` | [`MAX_ACCESS_TOKEN_BYTES`] (8 KiB, the auth token limit) | `LIMITS_EXCEEDED` |
//! | ERROR `message` | [`MAX_ERROR_MESSAGE_BYTES`] (4 KiB) | `LIMITS_EXCEEDED` |
//! | changesets in one UPLOAD or DOWNLOAD | [`MAX_CHANGESETS_PER_MESSAGE`] (100 000) | `LIMITS_EXCEEDED` |
//! | one changeset (`total_bytes` of its parts) | [`MAX_CHANGESET_BYTES`] (128 MiB) | `LIMITS_EXCEEDED` |
//!
//! A length or count that claims more than the bytes left in the message could hold is
//! `BAD_SYNTAX` (checked before anything is allocated, so a short message never makes the
//! receiver reserve a large buffer); so are a truncated field, a non-canonical varint, a bool
//! other than 0/1, a string that is not UTF-8, bytes after the body, and a part that carries
//! no bytes or all of its `total_bytes` (a part never ends its changeset). An unknown tag is
//! `UNKNOWN_MESSAGE`, a first byte other than 2 `WRONG_PROTOCOL_VERSION`. [`Message::decode`]
//! reports these as a [`ProtocolError`] carrying the [`ConnectionErrorCode`] to send back;
//! it never panics. [`Message::encode`] does not check limits: a sender keeps its messages
//! within them, splitting long runs of changesets over several UPLOADs or DOWNLOADs
//! ([`Message::encoded_len`], [`UploadChangeset::encoded_len`] and
//! [`DownloadChangeset::encoded_len`] size a batch without encoding it), and a large
//! changeset into parts (below).
//!
//! # Messages and the session flow
//!
//! *Client versions* number the changesets of one client file's history, *server versions*
//! the server's ordered log of a path; both start at 1, and 0 means "none yet". A *stamp* is
//! the hybrid logical clock of `docs/DESIGN.md`: instruction `i` of a changeset is ordered by
//! `(stamp, origin file ident, i)`.
//!
//! - **BIND** (client) opens session `session` on `path` with an access token for that path.
//!   Session idents are chosen by the client, nonzero, and never reused on one connection
//!   (a reused one is `REUSE_OF_SESSION_IDENT`; an unknown one in any other message is
//!   `BAD_SESSION_IDENT`). `client_file_ident` is 0 (with salt 0) the first time a file is
//!   bound; otherwise the ident and salt the server issued for this file, which the server
//!   checks (`BAD_CLIENT_FILE_IDENT` 208). A bad token is `BAD_AUTHENTICATION` 203 or
//!   `PERMISSION_DENIED` 206, an expired one `TOKEN_EXPIRED` 202.
//! - **IDENT** (server), only when BIND had `client_file_ident` 0: the file's new ident and its
//!   secret salt. The client persists both before using them and sends nothing else on the
//!   session until IDENT has arrived.
//! - **UPLOAD** (client): local changesets in increasing `client_version` order, each after the
//!   last one the server acknowledged, at most once per session. `progress.client_version`
//!   says the client's history has been scanned up to there (every changeset up to it has been
//!   sent), `progress.last_integrated_server_version` is the last server version the client
//!   has integrated: the server resumes the download after it. The client therefore sends an
//!   UPLOAD right after BIND (or IDENT), with no changesets if it has none, and again whenever
//!   either number moves on. The server applies each changeset with the merge rules (a
//!   malformed one is `BAD_CHANGESET` 212), appends it to the path's log durably, and only
//!   then acknowledges it.
//! - **DOWNLOAD** (server): changesets of the path's log in increasing `server_version` order,
//!   each with the file ident, client version and stamp of its origin.
//!   `acked_client_version` acknowledges the client's uploads: every changeset of this client
//!   up to it is durably in the log (the client may then forget them). The server need not send
//!   a client its own changesets (an `origin_file_ident` equal to the client's own is skipped).
//!   `progress.server_version` is the log version the client has reached once it has
//!   integrated this message (it persists it with the changesets, and reports it back as
//!   `last_integrated_server_version`); `downloaded_bytes` and `downloadable_bytes` count
//!   changeset bytes for progress notifications (downloaded so far in this session, and still
//!   to come). A DOWNLOAD may carry no changesets, only an acknowledgement or progress.
//! - **MARK** (both ways) is how a client waits for download completion: it sends a MARK with a
//!   fresh `request` number, and the server echoes the same MARK once every change that was in
//!   the log when the MARK arrived has been sent in DOWNLOADs before it.
//! - **REFRESH** (client) installs a new access token for the bound session before the old one
//!   expires, without rebinding; the server checks it as in BIND.
//! - **UNBIND** (client) ends a session. After a session-level ERROR the client must send it.
//!   Messages that arrive for a session the client has unbound are dropped.
//! - **ERROR** (server): `session` 0 is a connection-level error ([`ConnectionErrorCode`],
//!   100–109; 110–116 are the client's own) after which the server closes the connection; a
//!   nonzero `session` is a session-level error ([`SessionErrorCode`], 200–213) that ends
//!   that session only. `try_again` says whether the same request may succeed later (with
//!   backoff). The client does not send ERROR: when a message from the server fails to
//!   decode it closes the connection.
//! - **PING** (client) / **PONG** (server): heartbeats on an idle connection; the server
//!   answers every PING at once with a PONG of the same `timestamp` (the client's clock, in
//!   milliseconds), which gives the round-trip time and detects dead connections.
//! - **UPLOAD_PART** (client) / **DOWNLOAD_PART** (server): a changeset larger than
//!   [`CHANGESET_PART_BYTES`] (1 MiB) is sent in pieces, since one changeset may be larger
//!   than a message (a 25 MB transaction): zero or more PARTs carry the first bytes of its
//!   `data`, in order, each with the changeset's full size `total_bytes` (the same in every
//!   part, at most [`MAX_CHANGESET_BYTES`]); the UPLOAD (DOWNLOAD) that follows them on the
//!   session carries the changeset as its **first** changeset, with the rest of its `data`
//!   (at least one byte). The receiver appends each part to the session's buffer and
//!   prepends the buffer to that changeset's data; nothing of the changeset is used before it
//!   is whole, so it is integrated (and, on the server, checked, logged and acknowledged)
//!   atomically, exactly as if it had come in one message. A part whose `total_bytes` differs
//!   from the buffered parts', parts that reach `total_bytes`, and an UPLOAD (DOWNLOAD) after
//!   parts that has no changeset or whose first changeset does not bring the buffer exactly to
//!   `total_bytes` are `BAD_SYNTAX` ([`PartAssembler`] checks all of it); an UPLOAD_PART
//!   before the session's first UPLOAD is `BAD_MESSAGE_ORDER`. The buffer belongs to the
//!   session: it is dropped when the session ends (UNBIND, ERROR) or the connection closes.
//!   Senders use [`take_parts`] (parts of [`CHANGESET_PART_BYTES`]); receivers take any part
//!   size within the message limit. A receiver bounds what it buffers: at most
//!   [`MAX_CHANGESET_BYTES`] per session by the rules above, and the server also bounds the
//!   parts of all sessions together (beyond its budget a part ends the session with
//!   `OTHER_SESSION_ERROR` 201, `try_again`).
//!
//! A message sent the wrong way (a DOWNLOAD to the server, say) is `UNKNOWN_MESSAGE` for the
//! receiver ([`Message::sender`]); one that arrives out of order (an UPLOAD before IDENT) is
//! `BAD_MESSAGE_ORDER`.
//!
//! **Version changes:** this layout is frozen for version 2 (golden-bytes tests pin it). A
//! change of any kind, a new message included, is a new protocol version and a new
//! subprotocol name. Version 2 (`shoal-sync/2`) added UPLOAD_PART and DOWNLOAD_PART to
//! version 1, which could not sync a changeset larger than a message; the other messages are
//! encoded as in version 1 but for the version byte. A server speaks one version: a client
//! offering only `shoal-sync/1` is refused at the upgrade (no version in common).

use std::fmt;

use super::auth::MAX_TOKEN_LEN;
use super::varint::{self, unzigzag32, zigzag32, VarintError};

/// The protocol version: the first byte of every message.
pub const PROTOCOL_VERSION: u8 = 2;

/// The WebSocket subprotocol (`Sec-WebSocket-Protocol`) of this version.
pub const WEBSOCKET_SUBPROTOCOL: &str = "shoal-sync/2";

/// The largest encoded message, in bytes (16 MiB).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The largest realm path in BIND, in bytes (the auth service's path limit).
pub const MAX_PATH_BYTES: usize = 1024;

/// The largest access token in BIND or REFRESH, in bytes.
pub const MAX_ACCESS_TOKEN_BYTES: usize = MAX_TOKEN_LEN;

/// The largest ERROR message text, in bytes (4 KiB).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4 * 1024;

/// The most changesets one UPLOAD or DOWNLOAD may carry.
pub const MAX_CHANGESETS_PER_MESSAGE: usize = 100_000;

/// The largest changeset, in bytes (128 MiB): the most a PART's `total_bytes` may claim, and
/// so the most a receiver buffers for one session.
pub const MAX_CHANGESET_BYTES: usize = 128 * 1024 * 1024;

/// The part size senders use: a changeset larger than this (1 MiB) is sent in parts of this
/// size ([`take_parts`]), so that no message is much larger than it and other sessions'
/// messages interleave with a large changeset's.
pub const CHANGESET_PART_BYTES: usize = 1024 * 1024;

const TAG_BIND: u8 = 1;
const TAG_IDENT: u8 = 2;
const TAG_UPLOAD: u8 = 3;
const TAG_DOWNLOAD: u8 = 4;
const TAG_MARK: u8 = 5;
const TAG_REFRESH: u8 = 6;
const TAG_UNBIND: u8 = 7;
const TAG_ERROR: u8 = 8;
const TAG_PING: u8 = 9;
const TAG_PONG: u8 = 10;
const TAG_UPLOAD_PART: u8 = 11;
const TAG_DOWNLOAD_PART: u8 = 12;

/// The fewest bytes an encoded [`UploadChangeset`] takes (three one-byte varints).
const MIN_UPLOAD_CHANGESET_BYTES: usize = 3;
/// The fewest bytes an encoded [`DownloadChangeset`] takes (five one-byte varints).
const MIN_DOWNLOAD_CHANGESET_BYTES: usize = 5;

/// One message of the sync protocol. See the module documentation for the wire format and
/// what each message means.
///
/// `Debug` does not print access tokens or changeset bytes, only their lengths, so messages
/// can be logged.
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// Client: open session `session` for the realm at `path`.
    Bind {
        /// The session ident chosen by the client (nonzero, unique on the connection).
        session: u64,
        /// The server path of the realm, e.g. `/0123…/tasks`.
        path: String,
        /// An access token for `path` (a token string of the auth protocol).
        access_token: String,
        /// The file's ident from an earlier IDENT, or 0 if it has none yet.
        client_file_ident: u64,
        /// The salt that came with `client_file_ident` (0 when it is 0).
        client_file_salt: u64,
    },
    /// Server: the new ident of a client file bound without one.
    Ident {
        /// The session.
        session: u64,
        /// The file's ident, unique for the path.
        client_file_ident: u64,
        /// A secret that proves the client owns `client_file_ident` in later BINDs.
        salt: u64,
    },
    /// Client: local changesets and upload/download progress.
    Upload {
        /// The session.
        session: u64,
        /// How far the client's history has been scanned and integrated.
        progress: UploadProgress,
        /// Changesets in increasing client version order.
        changesets: Vec<UploadChangeset>,
    },
    /// Server: changesets of the server's log, and the acknowledgement of uploads.
    Download {
        /// The session.
        session: u64,
        /// Every changeset of this client up to this client version is durable on the server.
        acked_client_version: u64,
        /// The server version reached, and byte counts for progress.
        progress: DownloadProgress,
        /// Changesets in increasing server version order.
        changesets: Vec<DownloadChangeset>,
    },
    /// Both ways: a download-completion request and, echoed by the server, its answer.
    Mark {
        /// The session.
        session: u64,
        /// The request number chosen by the client.
        request: u64,
    },
    /// Client: a new access token for the bound session.
    Refresh {
        /// The session.
        session: u64,
        /// The new access token for the session's path.
        access_token: String,
    },
    /// Client: end a session.
    Unbind {
        /// The session.
        session: u64,
    },
    /// Server: a connection-level (`session` 0) or session-level error.
    Error {
        /// The session, or 0 for the whole connection.
        session: u64,
        /// A [`ConnectionErrorCode`] or [`SessionErrorCode`] number.
        code: i32,
        /// A human-readable description.
        message: String,
        /// Whether the same request may succeed later.
        try_again: bool,
    },
    /// Client: a heartbeat.
    Ping {
        /// The client's clock in milliseconds, echoed in the PONG.
        timestamp: u64,
    },
    /// Server: the answer to a PING.
    Pong {
        /// The PING's timestamp.
        timestamp: u64,
    },
    /// Client: the next bytes of a changeset too large for one UPLOAD (see the module
    /// documentation).
    UploadPart {
        /// The session.
        session: u64,
        /// The size of the whole changeset's data.
        total_bytes: u64,
        /// The next bytes of its data (at least one; never all of it).
        data: Vec<u8>,
    },
    /// Server: the next bytes of a changeset too large for one DOWNLOAD.
    DownloadPart {
        /// The session.
        session: u64,
        /// The size of the whole changeset's data.
        total_bytes: u64,
        /// The next bytes of its data (at least one; never all of it).
        data: Vec<u8>,
    },
}

/// The progress fields of an UPLOAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UploadProgress {
    /// Every local changeset up to this client version has been sent.
    pub client_version: u64,
    /// The last server version the client has integrated; the download resumes after it.
    pub last_integrated_server_version: u64,
}

/// A local changeset in an UPLOAD.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct UploadChangeset {
    /// The client version the changeset produced.
    pub client_version: u64,
    /// Its stamp (hybrid logical clock).
    pub stamp: u64,
    /// The changeset (history format).
    pub data: Vec<u8>,
}

/// The progress fields of a DOWNLOAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DownloadProgress {
    /// The server version the client reaches by integrating this message.
    pub server_version: u64,
    /// Changeset bytes downloaded in this session so far, this message included.
    pub downloaded_bytes: u64,
    /// Changeset bytes still to download (an estimate).
    pub downloadable_bytes: u64,
}

/// A changeset of the server's log in a DOWNLOAD.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DownloadChangeset {
    /// Its version in the server's log.
    pub server_version: u64,
    /// The client file ident of the client that made it.
    pub origin_file_ident: u64,
    /// Its client version at that client.
    pub origin_client_version: u64,
    /// Its stamp (hybrid logical clock).
    pub stamp: u64,
    /// The changeset (history format).
    pub data: Vec<u8>,
}

/// Which side sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// Only the client.
    Client,
    /// Only the server.
    Server,
    /// Either side (MARK).
    Both,
}

pub use super::codes::{ConnectionErrorCode, SessionErrorCode};

/// Why bytes did not decode as a [`Message`]: the code to send back in a connection-level
/// ERROR ([`ProtocolError::to_message`]) and a description naming the message, the field and
/// the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// `BAD_SYNTAX`, `LIMITS_EXCEEDED`, `UNKNOWN_MESSAGE` or `WRONG_PROTOCOL_VERSION`.
    pub code: ConnectionErrorCode,
    /// What was wrong, e.g. `UPLOAD changesets: count 5 needs at least 15 bytes, 2 left (at
    /// byte 5)`.
    pub message: String,
}

impl ProtocolError {
    /// The connection-level ERROR (session 0, `try_again` false) that answers this error.
    #[must_use]
    pub fn to_message(&self) -> Message {
        Message::error(0, self.code as i32, &self.message, false)
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {})",
            self.message,
            self.code.name(),
            self.code as i32
        )
    }
}

impl std::error::Error for ProtocolError {}

impl Message {
    /// An ERROR whose `message` is cut to [`MAX_ERROR_MESSAGE_BYTES`] (at a character
    /// boundary), so that it always decodes.
    #[must_use]
    pub fn error(session: u64, code: i32, message: &str, try_again: bool) -> Message {
        let mut end = message.len().min(MAX_ERROR_MESSAGE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Message::Error {
            session,
            code,
            message: message[..end].to_owned(),
            try_again,
        }
    }

    /// The message's name on the wire documentation: `BIND`, `IDENT`, `UPLOAD`, …
    #[must_use]
    pub fn name(&self) -> &'static str {
        tag_name(self.tag()).unwrap_or("?")
    }

    /// The session the message belongs to (0 for a connection-level ERROR); `None` for PING
    /// and PONG.
    #[must_use]
    pub fn session(&self) -> Option<u64> {
        match self {
            Message::Bind { session, .. }
            | Message::Ident { session, .. }
            | Message::Upload { session, .. }
            | Message::Download { session, .. }
            | Message::Mark { session, .. }
            | Message::Refresh { session, .. }
            | Message::Unbind { session }
            | Message::Error { session, .. }
            | Message::UploadPart { session, .. }
            | Message::DownloadPart { session, .. } => Some(*session),
            Message::Ping { .. } | Message::Pong { .. } => None,
        }
    }

    /// Which side may send this message; the other side answers a message it may not receive
    /// with `UNKNOWN_MESSAGE`.
    #[must_use]
    pub fn sender(&self) -> Sender {
        match self {
            Message::Bind { .. }
            | Message::Upload { .. }
            | Message::Refresh { .. }
            | Message::Unbind { .. }
            | Message::Ping { .. }
            | Message::UploadPart { .. } => Sender::Client,
            Message::Ident { .. }
            | Message::Download { .. }
            | Message::DownloadPart { .. }
            | Message::Error { .. }
            | Message::Pong { .. } => Sender::Server,
            Message::Mark { .. } => Sender::Both,
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Message::Bind { .. } => TAG_BIND,
            Message::Ident { .. } => TAG_IDENT,
            Message::Upload { .. } => TAG_UPLOAD,
            Message::Download { .. } => TAG_DOWNLOAD,
            Message::Mark { .. } => TAG_MARK,
            Message::Refresh { .. } => TAG_REFRESH,
            Message::Unbind { .. } => TAG_UNBIND,
            Message::Error { .. } => TAG_ERROR,
            Message::Ping { .. } => TAG_PING,
            Message::Pong { .. } => TAG_PONG,
            Message::UploadPart { .. } => TAG_UPLOAD_PART,
            Message::DownloadPart { .. } => TAG_DOWNLOAD_PART,
        }
    }

    /// Encodes the message (one WebSocket binary frame). Limits are not checked here.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    /// The length of [`Message::encode`]'s result, computed without encoding.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut counter = Counter(0);
        self.write(&mut counter);
        counter.0
    }

    fn write<S: Sink>(&self, out: &mut S) {
        out.byte(PROTOCOL_VERSION);
        out.byte(self.tag());
        match self {
            Message::Bind {
                session,
                path,
                access_token,
                client_file_ident,
                client_file_salt,
            } => {
                put_varint(out, *session);
                put_blob(out, path.as_bytes());
                put_blob(out, access_token.as_bytes());
                put_varint(out, *client_file_ident);
                put_varint(out, *client_file_salt);
            }
            Message::Ident {
                session,
                client_file_ident,
                salt,
            } => {
                put_varint(out, *session);
                put_varint(out, *client_file_ident);
                put_varint(out, *salt);
            }
            Message::Upload {
                session,
                progress,
                changesets,
            } => {
                put_varint(out, *session);
                put_varint(out, progress.client_version);
                put_varint(out, progress.last_integrated_server_version);
                put_varint(out, changesets.len() as u64);
                for changeset in changesets {
                    changeset.write(out);
                }
            }
            Message::Download {
                session,
                acked_client_version,
                progress,
                changesets,
            } => {
                put_varint(out, *session);
                put_varint(out, *acked_client_version);
                put_varint(out, progress.server_version);
                put_varint(out, progress.downloaded_bytes);
                put_varint(out, progress.downloadable_bytes);
                put_varint(out, changesets.len() as u64);
                for changeset in changesets {
                    changeset.write(out);
                }
            }
            Message::Mark { session, request } => {
                put_varint(out, *session);
                put_varint(out, *request);
            }
            Message::Refresh {
                session,
                access_token,
            } => {
                put_varint(out, *session);
                put_blob(out, access_token.as_bytes());
            }
            Message::Unbind { session } => put_varint(out, *session),
            Message::Error {
                session,
                code,
                message,
                try_again,
            } => {
                put_varint(out, *session);
                put_varint(out, u64::from(zigzag32(*code)));
                put_blob(out, message.as_bytes());
                out.byte(u8::from(*try_again));
            }
            Message::Ping { timestamp } | Message::Pong { timestamp } => {
                put_varint(out, *timestamp);
            }
            Message::UploadPart {
                session,
                total_bytes,
                data,
            }
            | Message::DownloadPart {
                session,
                total_bytes,
                data,
            } => {
                put_varint(out, *session);
                put_varint(out, *total_bytes);
                put_blob(out, data);
            }
        }
    }

    /// Decodes one message, strictly: see the module documentation for the format and the
    /// limits.
    ///
    /// # Errors
    /// [`ProtocolError`] with `WRONG_PROTOCOL_VERSION` (first byte not
    /// [`PROTOCOL_VERSION`]), `UNKNOWN_MESSAGE` (unknown tag), `LIMITS_EXCEEDED` (a limit) or
    /// `BAD_SYNTAX` (anything else: truncation, a bad varint, bool or UTF-8, trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Message, ProtocolError> {
        let mut r = Reader {
            bytes,
            pos: 0,
            message: "message",
        };
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(r.fail(
                0,
                ConnectionErrorCode::LimitsExceeded,
                "length",
                format_args!(
                    "{} bytes exceed the limit of {MAX_MESSAGE_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let version = r.byte("protocol version")?;
        if version != PROTOCOL_VERSION {
            return Err(r.fail(
                0,
                ConnectionErrorCode::WrongProtocolVersion,
                "protocol version",
                format_args!("{version}, this side speaks {PROTOCOL_VERSION}"),
            ));
        }
        let tag = r.byte("type")?;
        r.message = tag_name(tag).ok_or_else(|| {
            r.fail(
                1,
                ConnectionErrorCode::UnknownMessage,
                "type",
                format_args!("unknown message type {tag}"),
            )
        })?;
        let message = match tag {
            TAG_BIND => Message::Bind {
                session: r.varint("session")?,
                path: r.string("path", MAX_PATH_BYTES)?,
                access_token: r.string("access_token", MAX_ACCESS_TOKEN_BYTES)?,
                client_file_ident: r.varint("client_file_ident")?,
                client_file_salt: r.varint("client_file_salt")?,
            },
            TAG_IDENT => Message::Ident {
                session: r.varint("session")?,
                client_file_ident: r.varint("client_file_ident")?,
                salt: r.varint("salt")?,
            },
            TAG_UPLOAD => {
                let session = r.varint("session")?;
                let progress = UploadProgress {
                    client_version: r.varint("client_version")?,
                    last_integrated_server_version: r.varint("last_integrated_server_version")?,
                };
                let count = r.count(MIN_UPLOAD_CHANGESET_BYTES)?;
                let mut changesets = Vec::with_capacity(count);
                for _ in 0..count {
                    changesets.push(UploadChangeset {
                        client_version: r.varint("changeset client_version")?,
                        stamp: r.varint("changeset stamp")?,
                        data: r.blob("changeset data", MAX_MESSAGE_BYTES)?.to_vec(),
                    });
                }
                Message::Upload {
                    session,
                    progress,
                    changesets,
                }
            }
            TAG_DOWNLOAD => {
                let session = r.varint("session")?;
                let acked_client_version = r.varint("acked_client_version")?;
                let progress = DownloadProgress {
                    server_version: r.varint("server_version")?,
                    downloaded_bytes: r.varint("downloaded_bytes")?,
                    downloadable_bytes: r.varint("downloadable_bytes")?,
                };
                let count = r.count(MIN_DOWNLOAD_CHANGESET_BYTES)?;
                let mut changesets = Vec::with_capacity(count);
                for _ in 0..count {
                    changesets.push(DownloadChangeset {
                        server_version: r.varint("changeset server_version")?,
                        origin_file_ident: r.varint("changeset origin_file_ident")?,
                        origin_client_version: r.varint("changeset origin_client_version")?,
                        stamp: r.varint("changeset stamp")?,
                        data: r.blob("changeset data", MAX_MESSAGE_BYTES)?.to_vec(),
                    });
                }
                Message::Download {
                    session,
                    acked_client_version,
                    progress,
                    changesets,
                }
            }
            TAG_MARK => Message::Mark {
                session: r.varint("session")?,
                request: r.varint("request")?,
            },
            TAG_REFRESH => Message::Refresh {
                session: r.varint("session")?,
                access_token: r.string("access_token", MAX_ACCESS_TOKEN_BYTES)?,
            },
            TAG_UNBIND => Message::Unbind {
                session: r.varint("session")?,
            },
            TAG_ERROR => Message::Error {
                session: r.varint("session")?,
                code: r.zigzag32("code")?,
                message: r.string("message", MAX_ERROR_MESSAGE_BYTES)?,
                try_again: r.bool("try_again")?,
            },
            TAG_PING => Message::Ping {
                timestamp: r.varint("timestamp")?,
            },
            TAG_UPLOAD_PART | TAG_DOWNLOAD_PART => {
                let session = r.varint("session")?;
                let (total_bytes, data) = r.part()?;
                if tag == TAG_UPLOAD_PART {
                    Message::UploadPart {
                        session,
                        total_bytes,
                        data,
                    }
                } else {
                    Message::DownloadPart {
                        session,
                        total_bytes,
                        data,
                    }
                }
            }
            // tag_name accepted the tag, so it is TAG_PONG.
            _ => Message::Pong {
                timestamp: r.varint("timestamp")?,
            },
        };
        r.finish()?;
        Ok(message)
    }
}

impl UploadChangeset {
    /// The bytes this changeset adds to an UPLOAD (the list's count aside).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut counter = Counter(0);
        self.write(&mut counter);
        counter.0
    }

    fn write<S: Sink>(&self, out: &mut S) {
        put_varint(out, self.client_version);
        put_varint(out, self.stamp);
        put_blob(out, &self.data);
    }
}

impl DownloadChangeset {
    /// The bytes this changeset adds to a DOWNLOAD (the list's count aside).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut counter = Counter(0);
        self.write(&mut counter);
        counter.0
    }

    fn write<S: Sink>(&self, out: &mut S) {
        put_varint(out, self.server_version);
        put_varint(out, self.origin_file_ident);
        put_varint(out, self.origin_client_version);
        put_varint(out, self.stamp);
        put_blob(out, &self.data);
    }
}

/// For a sender: takes the leading parts off a changeset's `data` when it is larger than
/// [`CHANGESET_PART_BYTES`], leaving in `data` the rest, for the UPLOAD or DOWNLOAD that ends
/// it (between 1 and [`CHANGESET_PART_BYTES`] bytes). Returns the changeset's size (the parts'
/// `total_bytes`) and the parts, in order (none for a changeset that fits in one part).
#[must_use]
pub fn take_parts(data: &mut Vec<u8>) -> (u64, Vec<Vec<u8>>) {
    let total = data.len();
    if total <= CHANGESET_PART_BYTES {
        return (total as u64, Vec::new());
    }
    let cut = (total - 1) / CHANGESET_PART_BYTES * CHANGESET_PART_BYTES;
    let rest = data.split_off(cut);
    let parts = data
        .chunks(CHANGESET_PART_BYTES)
        .map(<[u8]>::to_vec)
        .collect();
    *data = rest;
    (total as u64, parts)
}

/// For a receiver: the parts of one session's changeset so far (UPLOAD_PART or
/// DOWNLOAD_PART), checked as they come, and joined to the rest of the changeset when the
/// UPLOAD or DOWNLOAD that ends it arrives. Holds at most `total_bytes - 1` bytes, so at most
/// [`MAX_CHANGESET_BYTES`] (the codec refuses a larger total).
#[derive(Debug, Default)]
pub struct PartAssembler {
    total: u64,
    data: Vec<u8>,
}

impl PartAssembler {
    /// Whether no part is buffered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The bytes buffered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Appends a part (as decoded: 1 ≤ `data.len()` < `total_bytes` ≤ [`MAX_CHANGESET_BYTES`]).
    ///
    /// # Errors
    /// `BAD_SYNTAX` when `total_bytes` differs from the buffered parts' or the part would
    /// bring the buffer to `total_bytes` or beyond; the buffer is then left as it was.
    pub fn add(&mut self, total_bytes: u64, data: &[u8]) -> Result<(), ProtocolError> {
        if !self.data.is_empty() && total_bytes != self.total {
            return Err(part_error(format_args!(
                "a part of a {total_bytes}-byte changeset after parts of a {}-byte one",
                self.total
            )));
        }
        let after = self.data.len() as u64 + data.len() as u64;
        if after >= total_bytes {
            return Err(part_error(format_args!(
                "parts of {after} bytes for a {total_bytes}-byte changeset (the UPLOAD or \
                 DOWNLOAD that ends it carries at least one byte)"
            )));
        }
        self.total = total_bytes;
        self.data.extend_from_slice(data);
        Ok(())
    }

    /// Ends the buffered changeset with `rest`, the data of the first changeset of the UPLOAD
    /// or DOWNLOAD that follows the parts (`None`: that message has no changeset), and
    /// returns the whole data; the assembler is empty again. Without buffered parts, returns
    /// `rest` as it is.
    ///
    /// # Errors
    /// `BAD_SYNTAX` when parts are buffered and `rest` is missing or does not bring them to
    /// exactly their `total_bytes`.
    pub fn finish(&mut self, rest: Option<Vec<u8>>) -> Result<Option<Vec<u8>>, ProtocolError> {
        if self.data.is_empty() {
            return Ok(rest);
        }
        let buffered = std::mem::take(&mut self.data);
        let Some(rest) = rest else {
            return Err(part_error(format_args!(
                "the message after {} bytes of parts carries no changeset",
                buffered.len()
            )));
        };
        let whole = buffered.len() as u64 + rest.len() as u64;
        if whole != self.total {
            return Err(part_error(format_args!(
                "parts of {} bytes and a rest of {} make {whole}, not the {} announced",
                buffered.len(),
                rest.len(),
                self.total
            )));
        }
        let mut data = buffered;
        data.extend_from_slice(&rest);
        Ok(Some(data))
    }
}

fn part_error(problem: fmt::Arguments<'_>) -> ProtocolError {
    ProtocolError {
        code: ConnectionErrorCode::BadSyntax,
        message: format!("changeset parts: {problem}"),
    }
}

fn tag_name(tag: u8) -> Option<&'static str> {
    Some(match tag {
        TAG_BIND => "BIND",
        TAG_IDENT => "IDENT",
        TAG_UPLOAD => "UPLOAD",
        TAG_DOWNLOAD => "DOWNLOAD",
        TAG_MARK => "MARK",
        TAG_REFRESH => "REFRESH",
        TAG_UNBIND => "UNBIND",
        TAG_ERROR => "ERROR",
        TAG_PING => "PING",
        TAG_PONG => "PONG",
        TAG_UPLOAD_PART => "UPLOAD_PART",
        TAG_DOWNLOAD_PART => "DOWNLOAD_PART",
        _ => return None,
    })
}

/// Shows a secret or a byte string by its length only.
struct Len(&'static str, usize);

impl fmt::Debug for Len {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes{}>", self.1, self.0)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct(self.name());
        match self {
            Message::Bind {
                session,
                path,
                access_token,
                client_file_ident,
                client_file_salt,
            } => s
                .field("session", session)
                .field("path", path)
                .field("access_token", &Len(", redacted", access_token.len()))
                .field("client_file_ident", client_file_ident)
                .field("client_file_salt", client_file_salt),
            Message::Ident {
                session,
                client_file_ident,
                salt,
            } => s
                .field("session", session)
                .field("client_file_ident", client_file_ident)
                .field("salt", salt),
            Message::Upload {
                session,
                progress,
                changesets,
            } => s
                .field("session", session)
                .field("progress", progress)
                .field("changesets", changesets),
            Message::Download {
                session,
                acked_client_version,
                progress,
                changesets,
            } => s
                .field("session", session)
                .field("acked_client_version", acked_client_version)
                .field("progress", progress)
                .field("changesets", changesets),
            Message::Mark { session, request } => {
                s.field("session", session).field("request", request)
            }
            Message::Refresh {
                session,
                access_token,
            } => s
                .field("session", session)
                .field("access_token", &Len(", redacted", access_token.len())),
            Message::Unbind { session } => s.field("session", session),
            Message::Error {
                session,
                code,
                message,
                try_again,
            } => s
                .field("session", session)
                .field("code", code)
                .field("message", message)
                .field("try_again", try_again),
            Message::Ping { timestamp } | Message::Pong { timestamp } => {
                s.field("timestamp", timestamp)
            }
            Message::UploadPart {
                session,
                total_bytes,
                data,
            }
            | Message::DownloadPart {
                session,
                total_bytes,
                data,
            } => s
                .field("session", session)
                .field("total_bytes", total_bytes)
                .field("data", &Len("", data.len())),
        };
        s.finish()
    }
}

impl fmt::Debug for UploadChangeset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadChangeset")
            .field("client_version", &self.client_version)
            .field("stamp", &self.stamp)
            .field("data", &Len("", self.data.len()))
            .finish()
    }
}

impl fmt::Debug for DownloadChangeset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadChangeset")
            .field("server_version", &self.server_version)
            .field("origin_file_ident", &self.origin_file_ident)
            .field("origin_client_version", &self.origin_client_version)
            .field("stamp", &self.stamp)
            .field("data", &Len("", self.data.len()))
            .finish()
    }
}

/// Where encoded bytes go: a buffer, or a counter for [`Message::encoded_len`].
trait Sink {
    fn byte(&mut self, b: u8);
    fn slice(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn byte(&mut self, b: u8) {
        self.push(b);
    }
    fn slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Counter(usize);

impl Sink for Counter {
    fn byte(&mut self, _: u8) {
        self.0 += 1;
    }
    fn slice(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

fn put_varint<S: Sink>(out: &mut S, v: u64) {
    out.slice(varint::encode(v).as_slice());
}

fn put_blob<S: Sink>(out: &mut S, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.slice(bytes);
}

/// A cursor over a message being decoded; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The message's name, for error texts.
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn fail(
        &self,
        at: usize,
        code: ConnectionErrorCode,
        field: &str,
        problem: fmt::Arguments<'_>,
    ) -> ProtocolError {
        ProtocolError {
            code,
            message: format!("{} {field}: {problem} (at byte {at})", self.message),
        }
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn byte(&mut self, field: &str) -> Result<u8, ProtocolError> {
        let Some(&b) = self.bytes.get(self.pos) else {
            return Err(self.fail(
                self.pos,
                ConnectionErrorCode::BadSyntax,
                field,
                format_args!("truncated"),
            ));
        };
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self, field: &str) -> Result<u64, ProtocolError> {
        let at = self.pos;
        match varint::decode(&self.bytes[self.pos..]) {
            Ok((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            // The missing byte is the one just past the message.
            Err(e @ VarintError::Truncated) => Err(self.fail(
                self.bytes.len(),
                ConnectionErrorCode::BadSyntax,
                field,
                format_args!("{e}"),
            )),
            Err(e) => Err(self.fail(
                at,
                ConnectionErrorCode::BadSyntax,
                field,
                format_args!("{e}"),
            )),
        }
    }

    fn zigzag32(&mut self, field: &str) -> Result<i32, ProtocolError> {
        let at = self.pos;
        let v = self.varint(field)?;
        let v = u32::try_from(v).map_err(|_| {
            self.fail(
                at,
                ConnectionErrorCode::BadSyntax,
                field,
                format_args!("{v} does not fit in 32 bits"),
            )
        })?;
        Ok(unzigzag32(v))
    }

    fn bool(&mut self, field: &str) -> Result<bool, ProtocolError> {
        let at = self.pos;
        match self.byte(field)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.fail(
                at,
                ConnectionErrorCode::BadSyntax,
                field,
                format_args!("bool byte {b}, expected 0 or 1"),
            )),
        }
    }

    /// A length-prefixed byte string of at most `max` bytes.
    fn blob(&mut self, field: &str, max: usize) -> Result<&'a [u8], ProtocolError> {
        let at = self.pos;
        let len = self.varint(field)?;
        let left = self.left();
        let Some(len) = usize::try_from(len).ok().filter(|&n| n <= left) else {
            return Err(self.fail(
                at,
                ConnectionErrorCode::BadSyntax,
                field,
                format_args!("length {len} exceeds the {left} bytes left"),
            ));
        };
        if len > max {
            return Err(self.fail(
                at,
                ConnectionErrorCode::LimitsExceeded,
                field,
                format_args!("length {len} exceeds the limit of {max} bytes"),
            ));
        }
        let bytes = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    fn string(&mut self, field: &str, max: usize) -> Result<String, ProtocolError> {
        let at = self.pos;
        let bytes = self.blob(field, max)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.fail(
                at,
                ConnectionErrorCode::BadSyntax,
                field,
                format_args!("not UTF-8: {e}"),
            )),
        }
    }

    /// A changeset count, checked against the bytes left (each item takes at least
    /// `min_item_bytes`) and [`MAX_CHANGESETS_PER_MESSAGE`] before anything is allocated.
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, ProtocolError> {
        let field = "changesets";
        let at = self.pos;
        let n = self.varint(field)?;
        let left = self.left();
        let Some(n) = usize::try_from(n)
            .ok()
            .filter(|&n| n <= left / min_item_bytes)
        else {
            return Err(self.fail(
                at,
                ConnectionErrorCode::BadSyntax,
                field,
                format_args!("count {n} needs at least {min_item_bytes} bytes each, {left} left"),
            ));
        };
        if n > MAX_CHANGESETS_PER_MESSAGE {
            return Err(self.fail(
                at,
                ConnectionErrorCode::LimitsExceeded,
                field,
                format_args!("count {n} exceeds the limit of {MAX_CHANGESETS_PER_MESSAGE}"),
            ));
        }
        Ok(n)
    }

    /// A part's `total_bytes` and `data`: the total at most [`MAX_CHANGESET_BYTES`]
    /// (`LIMITS_EXCEEDED`), the data not empty and shorter than the total (`BAD_SYNTAX`).
    fn part(&mut self) -> Result<(u64, Vec<u8>), ProtocolError> {
        let at = self.pos;
        let total = self.varint("total_bytes")?;
        if total > MAX_CHANGESET_BYTES as u64 {
            return Err(self.fail(
                at,
                ConnectionErrorCode::LimitsExceeded,
                "total_bytes",
                format_args!("{total} exceeds the limit of {MAX_CHANGESET_BYTES} bytes"),
            ));
        }
        let at = self.pos;
        let data = self.blob("data", MAX_MESSAGE_BYTES)?;
        if data.is_empty() || data.len() as u64 >= total {
            return Err(self.fail(
                at,
                ConnectionErrorCode::BadSyntax,
                "data",
                format_args!(
                    "a part carries {} of the changeset's {total} bytes: at least 1, and fewer \
                     than all",
                    data.len()
                ),
            ));
        }
        Ok((total, data.to_vec()))
    }

    fn finish(self) -> Result<(), ProtocolError> {
        if self.pos == self.bytes.len() {
            return Ok(());
        }
        Err(self.fail(
            self.pos,
            ConnectionErrorCode::BadSyntax,
            "end",
            format_args!("{} trailing bytes after the message", self.left()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version byte, in hand-made messages.
    const V: u8 = PROTOCOL_VERSION;

    /// splitmix64: a small deterministic generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        /// Biased to the edges of the varint encoding.
        fn value(&mut self) -> u64 {
            match self.below(8) {
                0 => 0,
                1 => u64::MAX,
                2 => 1 << self.below(64),
                3 => (1 << self.below(64)) - 1,
                4 => self.next_u64() >> self.below(64),
                _ => self.next_u64(),
            }
        }

        fn string(&mut self, max_chars: usize) -> String {
            const CHARS: [char; 8] = ['a', 'Z', '/', '\0', 'é', '€', '𝄞', '😀'];
            let len = self.below(max_chars + 1);
            (0..len).map(|_| CHARS[self.below(CHARS.len())]).collect()
        }

        fn bytes(&mut self, max: usize) -> Vec<u8> {
            let len = self.below(max + 1);
            (0..len).map(|_| self.next_u64() as u8).collect()
        }

        fn message(&mut self) -> Message {
            match self.below(12) {
                0 => Message::Bind {
                    session: self.value(),
                    path: self.string(12),
                    access_token: self.string(12),
                    client_file_ident: self.value(),
                    client_file_salt: self.value(),
                },
                1 => Message::Ident {
                    session: self.value(),
                    client_file_ident: self.value(),
                    salt: self.value(),
                },
                2 => Message::Upload {
                    session: self.value(),
                    progress: UploadProgress {
                        client_version: self.value(),
                        last_integrated_server_version: self.value(),
                    },
                    changesets: (0..self.below(4))
                        .map(|_| UploadChangeset {
                            client_version: self.value(),
                            stamp: self.value(),
                            data: self.bytes(8),
                        })
                        .collect(),
                },
                3 => Message::Download {
                    session: self.value(),
                    acked_client_version: self.value(),
                    progress: DownloadProgress {
                        server_version: self.value(),
                        downloaded_bytes: self.value(),
                        downloadable_bytes: self.value(),
                    },
                    changesets: (0..self.below(4))
                        .map(|_| DownloadChangeset {
                            server_version: self.value(),
                            origin_file_ident: self.value(),
                            origin_client_version: self.value(),
                            stamp: self.value(),
                            data: self.bytes(8),
                        })
                        .collect(),
                },
                4 => Message::Mark {
                    session: self.value(),
                    request: self.value(),
                },
                5 => Message::Refresh {
                    session: self.value(),
                    access_token: self.string(12),
                },
                6 => Message::Unbind {
                    session: self.value(),
                },
                7 => Message::Error {
                    session: self.value(),
                    code: self.value() as i32,
                    message: self.string(12),
                    try_again: self.below(2) == 1,
                },
                8 => Message::Ping {
                    timestamp: self.value(),
                },
                9 => Message::Pong {
                    timestamp: self.value(),
                },
                n => {
                    let mut data = self.bytes(8);
                    data.push(self.next_u64() as u8);
                    let extra = self.value() % (MAX_CHANGESET_BYTES as u64 - data.len() as u64);
                    let total_bytes = data.len() as u64 + 1 + extra;
                    let session = self.value();
                    if n == 10 {
                        Message::UploadPart {
                            session,
                            total_bytes,
                            data,
                        }
                    } else {
                        Message::DownloadPart {
                            session,
                            total_bytes,
                            data,
                        }
                    }
                }
            }
        }
    }

    /// One message of every kind, with edge values: zeros, `u64::MAX`, empty and
    /// limit-sized non-ASCII strings, empty and large vectors.
    fn edge_messages() -> Vec<Message> {
        let max = u64::MAX;
        let path = "/ü/".to_owned() + &"é".repeat((MAX_PATH_BYTES - 4) / 2);
        let token = "t".repeat(MAX_ACCESS_TOKEN_BYTES - 4) + "😀";
        let text = "€".repeat(MAX_ERROR_MESSAGE_BYTES / 3) + "x";
        let uploads: Vec<UploadChangeset> = (0..1000u64)
            .map(|i| UploadChangeset {
                client_version: i,
                stamp: max - i,
                data: vec![i as u8; (i % 7) as usize],
            })
            .collect();
        let downloads = vec![
            DownloadChangeset::default(),
            DownloadChangeset {
                server_version: max,
                origin_file_ident: max,
                origin_client_version: max,
                stamp: max,
                data: vec![0xff; 70_000],
            },
        ];
        vec![
            Message::Bind {
                session: 0,
                path: String::new(),
                access_token: String::new(),
                client_file_ident: 0,
                client_file_salt: 0,
            },
            Message::Bind {
                session: max,
                path: path.clone(),
                access_token: token.clone(),
                client_file_ident: max,
                client_file_salt: max,
            },
            Message::Ident {
                session: 0,
                client_file_ident: 0,
                salt: 0,
            },
            Message::Ident {
                session: max,
                client_file_ident: max,
                salt: max,
            },
            Message::Upload {
                session: 0,
                progress: UploadProgress::default(),
                changesets: vec![],
            },
            Message::Upload {
                session: max,
                progress: UploadProgress {
                    client_version: max,
                    last_integrated_server_version: max,
                },
                changesets: uploads,
            },
            Message::Download {
                session: 0,
                acked_client_version: 0,
                progress: DownloadProgress::default(),
                changesets: vec![],
            },
            Message::Download {
                session: max,
                acked_client_version: max,
                progress: DownloadProgress {
                    server_version: max,
                    downloaded_bytes: max,
                    downloadable_bytes: max,
                },
                changesets: downloads,
            },
            Message::Mark {
                session: 0,
                request: 0,
            },
            Message::Mark {
                session: max,
                request: max,
            },
            Message::Refresh {
                session: 0,
                access_token: String::new(),
            },
            Message::Refresh {
                session: max,
                access_token: token,
            },
            Message::Unbind { session: 0 },
            Message::Unbind { session: max },
            Message::Error {
                session: 0,
                code: 0,
                message: String::new(),
                try_again: false,
            },
            Message::Error {
                session: max,
                code: i32::MIN,
                message: text.clone(),
                try_again: true,
            },
            Message::Error {
                session: 1,
                code: i32::MAX,
                message: "ça".into(),
                try_again: false,
            },
            Message::Error {
                session: 1,
                code: -1,
                message: path,
                try_again: true,
            },
            Message::Ping { timestamp: 0 },
            Message::Ping { timestamp: max },
            Message::Pong { timestamp: 0 },
            Message::Pong { timestamp: max },
            Message::UploadPart {
                session: 0,
                total_bytes: 2,
                data: vec![0],
            },
            Message::UploadPart {
                session: max,
                total_bytes: MAX_CHANGESET_BYTES as u64,
                data: vec![0xff; 70_000],
            },
            Message::DownloadPart {
                session: 0,
                total_bytes: 2,
                data: vec![0],
            },
            Message::DownloadPart {
                session: max,
                total_bytes: MAX_CHANGESET_BYTES as u64,
                data: vec![0xff; 70_000],
            },
        ]
    }

    fn small_messages() -> Vec<Message> {
        let mut rng = Rng(1);
        (0..300).map(|_| rng.message()).collect()
    }

    fn code_of(bytes: &[u8]) -> ConnectionErrorCode {
        match Message::decode(bytes) {
            Ok(m) => panic!("decoded {m:?} from {bytes:02x?}"),
            Err(e) => e.code,
        }
    }

    fn upload_with_data(len: usize) -> Message {
        Message::Upload {
            session: 1,
            progress: UploadProgress::default(),
            changesets: vec![UploadChangeset {
                client_version: 1,
                stamp: 1,
                data: vec![7; len],
            }],
        }
    }

    #[test]
    fn every_message_round_trips_with_edge_values() {
        let messages = edge_messages();
        let mut tags: Vec<u8> = messages.iter().map(Message::tag).collect();
        tags.dedup();
        assert_eq!(
            tags,
            (1..=12).collect::<Vec<u8>>(),
            "every message is covered"
        );
        for message in messages.into_iter().chain(small_messages()) {
            let bytes = message.encode();
            assert_eq!(bytes.len(), message.encoded_len(), "{message:?}");
            assert_eq!(bytes[..2], [PROTOCOL_VERSION, message.tag()]);
            assert_eq!(Message::decode(&bytes).as_ref(), Ok(&message));
        }
    }

    #[test]
    fn golden_bytes_pin_the_format() {
        let bind = Message::Bind {
            session: 1,
            path: "/a/b".into(),
            access_token: "t".into(),
            client_file_ident: 0,
            client_file_salt: 0,
        };
        let error = Message::Error {
            session: 0,
            code: 103,
            message: "bad".into(),
            try_again: false,
        };
        let upload = Message::Upload {
            session: 300,
            progress: UploadProgress {
                client_version: 2,
                last_integrated_server_version: 127,
            },
            changesets: vec![UploadChangeset {
                client_version: 2,
                stamp: 128,
                data: vec![0xaa, 0xbb],
            }],
        };
        let download = Message::Download {
            session: 1,
            acked_client_version: 2,
            progress: DownloadProgress {
                server_version: u64::MAX,
                downloaded_bytes: 1,
                downloadable_bytes: 0,
            },
            changesets: vec![DownloadChangeset {
                server_version: 9,
                origin_file_ident: 5,
                origin_client_version: 4,
                stamp: 3,
                data: vec![],
            }],
        };
        let cases: Vec<(Message, Vec<u8>)> = vec![
            (
                bind,
                vec![2, 1, 1, 4, b'/', b'a', b'/', b'b', 1, b't', 0, 0],
            ),
            (error, vec![2, 8, 0, 0xce, 0x01, 3, b'b', b'a', b'd', 0]),
            (Message::error(7, -1, "", true), vec![2, 8, 7, 0x01, 0, 1]),
            (
                upload,
                vec![2, 3, 0xac, 0x02, 2, 0x7f, 1, 2, 0x80, 0x01, 2, 0xaa, 0xbb],
            ),
            (
                download,
                vec![
                    2, 4, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0,
                    1, 9, 5, 4, 3, 0,
                ],
            ),
            (
                Message::Ident {
                    session: 1,
                    client_file_ident: 2,
                    salt: 3,
                },
                vec![2, 2, 1, 2, 3],
            ),
            (
                Message::Mark {
                    session: 1,
                    request: 2,
                },
                vec![2, 5, 1, 2],
            ),
            (
                Message::Refresh {
                    session: 1,
                    access_token: "é".into(),
                },
                vec![2, 6, 1, 2, 0xc3, 0xa9],
            ),
            (Message::Unbind { session: 1 }, vec![2, 7, 1]),
            (Message::Ping { timestamp: 1 }, vec![2, 9, 1]),
            (Message::Pong { timestamp: 1 }, vec![2, 10, 1]),
            (
                Message::UploadPart {
                    session: 1,
                    total_bytes: 300,
                    data: vec![0xaa, 0xbb],
                },
                vec![2, 11, 1, 0xac, 0x02, 2, 0xaa, 0xbb],
            ),
            (
                Message::DownloadPart {
                    session: 2,
                    total_bytes: 2,
                    data: vec![7],
                },
                vec![2, 12, 2, 2, 1, 7],
            ),
        ];
        for (message, bytes) in cases {
            assert_eq!(message.encode(), bytes, "{message:?}");
            assert_eq!(Message::decode(&bytes), Ok(message));
        }
        assert_eq!(
            WEBSOCKET_SUBPROTOCOL,
            format!("shoal-sync/{PROTOCOL_VERSION}")
        );
    }

    #[test]
    fn every_truncation_is_a_syntax_error() {
        for message in edge_messages().into_iter().chain(small_messages()) {
            let bytes = message.encode();
            // The large edge messages: every cut in the first and last 300 bytes, and a sample
            // in between.
            let cuts: Vec<usize> = if bytes.len() <= 1000 {
                (0..bytes.len()).collect()
            } else {
                (0..300)
                    .chain((300..bytes.len() - 300).step_by(997))
                    .chain(bytes.len() - 300..bytes.len())
                    .collect()
            };
            for cut in cuts {
                let err = Message::decode(&bytes[..cut]).unwrap_err();
                assert_eq!(err.code, ConnectionErrorCode::BadSyntax, "{err}");
            }
        }
    }

    #[test]
    fn random_garbage_never_panics_and_what_decodes_is_canonical() {
        let mut rng = Rng(0x5eed);
        let valid: Vec<Vec<u8>> = small_messages().iter().map(Message::encode).collect();
        let mut decoded = 0;
        for i in 0..20_000 {
            let input = if i % 2 == 0 {
                // Pure noise, mostly behind a valid version and a known tag to reach the bodies.
                let mut bytes = rng.bytes(40);
                if bytes.len() >= 2 && rng.below(4) != 0 {
                    bytes[0] = PROTOCOL_VERSION;
                    bytes[1] = rng.below(14) as u8;
                }
                bytes
            } else {
                // A valid message with a few bytes changed, inserted or removed.
                let mut bytes = valid[rng.below(valid.len())].clone();
                for _ in 0..=rng.below(3) {
                    let at = rng.below(bytes.len() + 1);
                    match rng.below(3) {
                        0 if at < bytes.len() => bytes[at] = rng.next_u64() as u8,
                        1 => bytes.insert(at, rng.next_u64() as u8),
                        _ if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        _ => {}
                    }
                }
                bytes
            };
            if let Ok(message) = Message::decode(&input) {
                decoded += 1;
                assert_eq!(message.encode(), input, "one encoding per message");
            }
        }
        assert!(
            decoded > 100,
            "the mutations reach valid messages too ({decoded})"
        );
    }

    #[test]
    fn oversized_counts_and_lengths_are_rejected_before_allocating() {
        let huge = 1u64 << 60;
        let mut varint = Vec::new();
        put_varint(&mut varint, huge);
        // UPLOAD and DOWNLOAD claiming 2^60 changesets in a handful of bytes.
        let upload = [&[V, TAG_UPLOAD, 1, 0, 0][..], &varint].concat();
        let download = [&[V, TAG_DOWNLOAD, 1, 0, 0, 0, 0][..], &varint].concat();
        assert!(upload.len() <= 14 && download.len() <= 16);
        assert_eq!(code_of(&upload), ConnectionErrorCode::BadSyntax);
        assert_eq!(code_of(&download), ConnectionErrorCode::BadSyntax);
        // A count that the bytes could almost hold: 4 changesets, 11 bytes left.
        let upload = [&[V, TAG_UPLOAD, 1, 0, 0, 4][..], &[0; 11]].concat();
        assert_eq!(code_of(&upload), ConnectionErrorCode::BadSyntax);
        // Lengths of u64::MAX and 2^60 for strings and blobs.
        let bind = [
            V, TAG_BIND, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1,
        ];
        assert_eq!(code_of(&bind), ConnectionErrorCode::BadSyntax);
        let blob = [&[V, TAG_UPLOAD, 1, 0, 0, 1, 1, 1][..], &varint].concat();
        let err = Message::decode(&blob).unwrap_err();
        assert_eq!(err.code, ConnectionErrorCode::BadSyntax);
        assert!(err.message.contains("changeset data"), "{err}");
    }

    #[test]
    fn limits_are_enforced() {
        let limits = ConnectionErrorCode::LimitsExceeded;
        // A whole message: exactly the limit decodes, one more byte does not.
        let mut len = MAX_MESSAGE_BYTES - 100;
        len += MAX_MESSAGE_BYTES - upload_with_data(len).encoded_len();
        let at_limit = upload_with_data(len).encode();
        assert_eq!(at_limit.len(), MAX_MESSAGE_BYTES);
        assert!(Message::decode(&at_limit).is_ok());
        assert_eq!(code_of(&upload_with_data(len + 1).encode()), limits);
        assert_eq!(code_of(&vec![0; MAX_MESSAGE_BYTES + 1]), limits);
        // Strings.
        let bind = |path: String, access_token: String| Message::Bind {
            session: 1,
            path,
            access_token,
            client_file_ident: 0,
            client_file_salt: 0,
        };
        let at = |n: usize| "p".repeat(n);
        assert!(
            Message::decode(&bind(at(MAX_PATH_BYTES), at(MAX_ACCESS_TOKEN_BYTES)).encode()).is_ok()
        );
        assert_eq!(
            code_of(&bind(at(MAX_PATH_BYTES + 1), String::new()).encode()),
            limits
        );
        assert_eq!(
            code_of(&bind(String::new(), at(MAX_ACCESS_TOKEN_BYTES + 1)).encode()),
            limits
        );
        let refresh = Message::Refresh {
            session: 1,
            access_token: at(MAX_ACCESS_TOKEN_BYTES + 1),
        };
        assert_eq!(code_of(&refresh.encode()), limits);
        let error = Message::Error {
            session: 0,
            code: 1,
            message: at(MAX_ERROR_MESSAGE_BYTES + 1),
            try_again: false,
        };
        assert_eq!(code_of(&error.encode()), limits);
        // Changeset counts.
        let uploads = |n: usize| Message::Upload {
            session: 1,
            progress: UploadProgress::default(),
            changesets: vec![UploadChangeset::default(); n],
        };
        assert!(Message::decode(&uploads(MAX_CHANGESETS_PER_MESSAGE).encode()).is_ok());
        assert_eq!(
            code_of(&uploads(MAX_CHANGESETS_PER_MESSAGE + 1).encode()),
            limits
        );
        let downloads = Message::Download {
            session: 1,
            acked_client_version: 0,
            progress: DownloadProgress::default(),
            changesets: vec![DownloadChangeset::default(); MAX_CHANGESETS_PER_MESSAGE + 1],
        };
        assert_eq!(code_of(&downloads.encode()), limits);
    }

    #[test]
    fn error_text_is_cut_at_a_char_boundary() {
        let long = "€".repeat(MAX_ERROR_MESSAGE_BYTES);
        let Message::Error { message, .. } = Message::error(1, 212, &long, false) else {
            unreachable!()
        };
        assert!(
            message.len() <= MAX_ERROR_MESSAGE_BYTES && message.len() + 3 > MAX_ERROR_MESSAGE_BYTES
        );
        let error = Message::error(1, 212, &long, false);
        assert!(Message::decode(&error.encode()).is_ok());
        assert_eq!(
            Message::error(2, 202, "expired", true),
            Message::Error {
                session: 2,
                code: 202,
                message: "expired".into(),
                try_again: true
            }
        );
    }

    #[test]
    fn malformed_values_are_syntax_errors() {
        let syntax = ConnectionErrorCode::BadSyntax;
        // Varints: overlong forms, more than 64 bits, more than 10 bytes.
        assert_eq!(code_of(&[V, TAG_UNBIND, 0x80, 0x00]), syntax);
        assert_eq!(code_of(&[V, TAG_UNBIND, 0x81, 0x80, 0x00]), syntax);
        let mut eleven = vec![V, TAG_UNBIND];
        eleven.extend([0xff; 10]);
        eleven.push(0x01);
        assert_eq!(code_of(&eleven), syntax);
        let mut overflow = vec![V, TAG_UNBIND];
        overflow.extend([0xff; 9]);
        overflow.push(0x02);
        assert_eq!(code_of(&overflow), syntax);
        overflow.pop();
        overflow.push(0x01);
        assert_eq!(
            Message::decode(&overflow),
            Ok(Message::Unbind { session: u64::MAX })
        );
        // An error code beyond 32 bits.
        let mut code = vec![V, TAG_ERROR, 0];
        put_varint(&mut code, 1 << 32);
        code.extend([0, 0]);
        assert_eq!(code_of(&code), syntax);
        // try_again other than 0 or 1.
        assert_eq!(code_of(&[V, TAG_ERROR, 0, 0, 0, 2]), syntax);
        assert_eq!(code_of(&[V, TAG_ERROR, 0, 0, 0, 0xff]), syntax);
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let bad: [&[u8]; 6] = [
            &[0xff],
            &[0xc0, 0x80],
            &[0xed, 0xa0, 0x80],
            &[0xe2, 0x82],
            &[b'a', 0x80],
            &[0xf4, 0x90, 0x80, 0x80],
        ];
        for bytes in bad {
            let mut path = vec![V, TAG_BIND, 1];
            put_varint(&mut path, bytes.len() as u64);
            path.extend_from_slice(bytes);
            path.extend([1, b't', 0, 0]);
            let err = Message::decode(&path).unwrap_err();
            assert_eq!(err.code, ConnectionErrorCode::BadSyntax);
            assert!(err.message.contains("BIND path: not UTF-8"), "{err}");
            let mut refresh = vec![V, TAG_REFRESH, 1, bytes.len() as u8];
            refresh.extend_from_slice(bytes);
            assert_eq!(code_of(&refresh), ConnectionErrorCode::BadSyntax);
            let mut error = vec![V, TAG_ERROR, 0, 0, bytes.len() as u8];
            error.extend_from_slice(bytes);
            error.push(0);
            assert_eq!(code_of(&error), ConnectionErrorCode::BadSyntax);
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        for message in edge_messages().into_iter().chain(small_messages()) {
            for extra in [&[0u8][..], &[1], &[1, 1, 1], &[0xff, 0xff]] {
                let bytes = [message.encode(), extra.to_vec()].concat();
                let err = Message::decode(&bytes).unwrap_err();
                assert_eq!(err.code, ConnectionErrorCode::BadSyntax);
                assert!(err.message.contains("trailing"), "{err}");
            }
        }
    }

    #[test]
    fn wrong_versions_and_unknown_types_are_rejected() {
        assert_eq!(code_of(&[]), ConnectionErrorCode::BadSyntax);
        assert_eq!(code_of(&[V]), ConnectionErrorCode::BadSyntax);
        for message in edge_messages() {
            let mut bytes = message.encode();
            // Version 1 included: its messages are refused, not misread.
            for version in [0, 1, 3, 0x7f, 0xff] {
                bytes[0] = version;
                let err = Message::decode(&bytes).unwrap_err();
                assert_eq!(err.code, ConnectionErrorCode::WrongProtocolVersion, "{err}");
            }
        }
        assert_eq!(code_of(&[1]), ConnectionErrorCode::WrongProtocolVersion);
        for tag in [0, 13, 14, 0x80, 0xff] {
            let err = Message::decode(&[V, tag, 1]).unwrap_err();
            assert_eq!(err.code, ConnectionErrorCode::UnknownMessage);
            assert!(
                err.message.contains(&format!("unknown message type {tag}")),
                "{err}"
            );
        }
    }

    #[test]
    fn protocol_errors_become_connection_errors() {
        let err = Message::decode(&[V, TAG_UNBIND]).unwrap_err();
        assert_eq!(err.message, "UNBIND session: truncated (at byte 2)");
        assert_eq!(
            err.to_string(),
            "UNBIND session: truncated (at byte 2) (BAD_SYNTAX 103)"
        );
        assert_eq!(
            err.to_message(),
            Message::Error {
                session: 0,
                code: 103,
                message: err.message.clone(),
                try_again: false
            }
        );
        let err = Message::decode(&[V, TAG_UPLOAD, 1, 0, 0, 5, 0, 0]).unwrap_err();
        assert_eq!(
            err.message,
            "UPLOAD changesets: count 5 needs at least 3 bytes each, 2 left (at byte 5)"
        );
    }

    #[test]
    fn error_codes_are_never_renumbered() {
        let numbers: Vec<i32> = ConnectionErrorCode::ALL.iter().map(|c| *c as i32).collect();
        assert_eq!(numbers, (100..=116).collect::<Vec<i32>>());
        for &code in ConnectionErrorCode::ALL {
            assert_eq!(ConnectionErrorCode::from_code(code as i32), Some(code));
        }
        assert_eq!(ConnectionErrorCode::BadSyntax.name(), "BAD_SYNTAX");
        assert_eq!(
            ConnectionErrorCode::BadChangesetDownload.name(),
            "BAD_CHANGESET_DOWNLOAD"
        );
        assert_eq!(ConnectionErrorCode::from_code(117), None);
        let numbers: Vec<i32> = SessionErrorCode::ALL.iter().map(|c| *c as i32).collect();
        assert_eq!(numbers, (200..=213).collect::<Vec<i32>>());
        for &code in SessionErrorCode::ALL {
            assert_eq!(SessionErrorCode::from_code(code as i32), Some(code));
        }
        assert_eq!(SessionErrorCode::BadChangeset.name(), "BAD_CHANGESET");
        assert_eq!(SessionErrorCode::from_code(214), None);
    }

    #[test]
    fn helpers_name_sessions_senders_and_sizes() {
        let message = edge_messages()[1].clone();
        assert_eq!(message.name(), "BIND");
        assert_eq!(message.session(), Some(u64::MAX));
        assert_eq!(message.sender(), Sender::Client);
        assert_eq!(Message::Ping { timestamp: 1 }.session(), None);
        assert_eq!(
            Message::Mark {
                session: 1,
                request: 1
            }
            .sender(),
            Sender::Both
        );
        assert_eq!(Message::Pong { timestamp: 1 }.sender(), Sender::Server);
        // Debug shows token and changeset lengths, not their contents.
        let shown = format!("{message:?}");
        assert!(
            shown.contains("redacted") && !shown.contains("ttt"),
            "{shown}"
        );
        let upload = upload_with_data(3);
        assert!(format!("{upload:?}").contains("data: <3 bytes>"));
        // A batch's size from its changesets: header + count varint + items.
        let Message::Upload { changesets, .. } = &edge_messages()[5] else {
            unreachable!()
        };
        let items: usize = changesets.iter().map(UploadChangeset::encoded_len).sum();
        assert_eq!(
            edge_messages()[5].encoded_len(),
            2 + 10 + 10 + 10 + 2 + items
        );
    }

    #[test]
    fn parts_are_checked_by_the_codec() {
        let part = |total_bytes: u64, data: Vec<u8>| Message::UploadPart {
            session: 1,
            total_bytes,
            data,
        };
        let max = MAX_CHANGESET_BYTES as u64;
        assert!(Message::decode(&part(max, vec![1; 10]).encode()).is_ok());
        // A total beyond the changeset limit: refused before anything is buffered.
        let err = Message::decode(&part(max + 1, vec![1]).encode()).unwrap_err();
        assert_eq!(err.code, ConnectionErrorCode::LimitsExceeded);
        assert!(err.message.contains("total_bytes"), "{err}");
        assert_eq!(
            code_of(&part(u64::MAX, vec![1]).encode()),
            ConnectionErrorCode::LimitsExceeded
        );
        // Empty parts and parts that would end their changeset.
        for (total, len) in [(5, 0), (5, 5), (5, 6), (0, 0), (1, 1)] {
            let bytes = Message::DownloadPart {
                session: 1,
                total_bytes: total,
                data: vec![9; len],
            }
            .encode();
            let err = Message::decode(&bytes).unwrap_err();
            assert_eq!(err.code, ConnectionErrorCode::BadSyntax, "{total} {len}");
            assert!(err.message.contains("DOWNLOAD_PART data"), "{err}");
        }
        // A part is sent by one side only.
        assert_eq!(part(2, vec![1]).sender(), Sender::Client);
        assert_eq!(part(2, vec![1]).name(), "UPLOAD_PART");
        let down = Message::DownloadPart {
            session: 3,
            total_bytes: 2,
            data: vec![1],
        };
        assert_eq!(down.sender(), Sender::Server);
        assert_eq!(down.session(), Some(3));
        assert!(format!("{down:?}").contains("data: <1 bytes>"));
    }

    #[test]
    fn take_parts_splits_large_changesets_and_the_assembler_joins_them() {
        let p = CHANGESET_PART_BYTES;
        for len in [0, 1, p - 1, p, p + 1, 2 * p, 2 * p + 1, 5 * p + 7] {
            let original: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut rest = original.clone();
            let (total, parts) = take_parts(&mut rest);
            assert_eq!(total, len as u64);
            assert_eq!(parts.is_empty(), len <= p, "{len}");
            assert!(parts.iter().all(|part| part.len() == p));
            assert!(len == 0 || (1..=p).contains(&rest.len()), "{len}");
            // Each part is a valid message, and the assembler gives back the changeset.
            let mut assembler = PartAssembler::default();
            for part in &parts {
                let message = Message::UploadPart {
                    session: 1,
                    total_bytes: total,
                    data: part.clone(),
                };
                let Ok(Message::UploadPart {
                    total_bytes, data, ..
                }) = Message::decode(&message.encode())
                else {
                    panic!("a part decodes")
                };
                assembler.add(total_bytes, &data).unwrap();
            }
            assert_eq!(assembler.len(), len - rest.len().min(len));
            let whole = assembler.finish(Some(rest)).unwrap().unwrap();
            assert_eq!(whole, original);
            assert!(assembler.is_empty());
        }
    }

    #[test]
    fn the_assembler_refuses_inconsistent_parts() {
        let mut a = PartAssembler::default();
        // Nothing buffered: the message's own data (or none) passes through.
        assert_eq!(a.finish(None).unwrap(), None);
        assert_eq!(a.finish(Some(vec![1])).unwrap(), Some(vec![1]));
        a.add(10, &[1, 2, 3]).unwrap();
        // Another total, or parts that reach the total: refused, the buffer unchanged.
        let err = a.add(11, &[4]).unwrap_err();
        assert_eq!(err.code, ConnectionErrorCode::BadSyntax);
        assert_eq!(
            a.add(10, &[0; 7]).unwrap_err().code,
            ConnectionErrorCode::BadSyntax
        );
        assert_eq!(a.len(), 3);
        a.add(10, &[4, 5, 6]).unwrap();
        // The message that ends it must have a changeset, of exactly the bytes left.
        let mut b = PartAssembler::default();
        b.add(10, &[1]).unwrap();
        assert!(b.finish(None).unwrap_err().message.contains("no changeset"));
        assert!(b.is_empty(), "a failed finish drops the parts");
        let mut c = PartAssembler::default();
        c.add(10, &[1]).unwrap();
        assert_eq!(
            c.finish(Some(vec![0; 8])).unwrap_err().code,
            ConnectionErrorCode::BadSyntax
        );
        assert_eq!(
            a.finish(Some(vec![7, 8, 9, 10])).unwrap(),
            Some((1..=10).collect())
        );
    }
}

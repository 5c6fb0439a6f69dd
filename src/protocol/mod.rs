//! The wire protocol between Shoal clients and `shoal-server` (**API Boundary**).
//!
//! Only this module and the server's HTTP layer derive `Serialize`/`Deserialize`; the rest of
//! the core keeps serde out of its types. [`auth`] holds the auth service's JSON shapes and the
//! token string codec; [`sync`] holds the sync protocol's binary message codec; [`codes`] is
//! the table of every numeric error code; `varint` is the LEB128 varint both binary codecs
//! (sync messages and history changesets) use.

pub mod auth;
pub mod codes;
pub mod path;
pub mod sync;
pub(crate) mod varint;

//! Storage: how realms are laid out in redb tables, read through snapshots and written
//! through transactions.

pub(crate) mod catalog;
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

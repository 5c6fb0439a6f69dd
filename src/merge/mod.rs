//! Merge: the layer between the store and everything that writes a realm. It owns what a
//! write transaction adds to plain storage: the hybrid logical clock that stamps changesets
//! ([`clock`]), and, in realms with merge metadata, that metadata ([`state::MergeState`]) and
//! the engine that integrates other replicas' changesets so that every copy converges
//! whatever the arrival order ([`integrate`]).
//!
//! The store's write transaction calls it only through the `WriteHooks` trait it defines
//! (`store/write.rs`); [`begin`] installs the hooks on every write transaction.

pub(crate) mod clock;
pub(crate) mod integrate;
pub(crate) mod state;

pub(crate) use state::{begin, integrate_changeset};

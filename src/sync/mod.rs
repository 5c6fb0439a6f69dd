//! Sync foundations: the hybrid logical clock that stamps changesets ([`clock`]) and the
//! merge engine that integrates changesets from other replicas so that every copy converges
//! whatever the arrival order ([`merge`]). No networking lives here.

pub(crate) mod clock;
pub(crate) mod merge;

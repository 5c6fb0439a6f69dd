//! Queries: Realm's predicate language parsed by [`parser`], bound to a class by [`bind`] and
//! run chunk by chunk over the columns by [`eval`].

pub(crate) mod bind;
pub(crate) mod eval;
#[allow(clippy::all, clippy::pedantic)]
pub(crate) mod parser;

//! The checks behind Shoal's fuzz targets. Each module takes the raw bytes libFuzzer hands
//! its target (`fuzz_targets/<module>.rs`) and drives one parser of untrusted input with them,
//! asserting what must hold for *any* input: no panic, no `Internal` error, and the property
//! its module documents (round trips, "a refused change changes nothing", the realm still
//! works afterwards). A failed assertion is a bug in Shoal, not in the target.
//!
//! `examples/gen_corpus.rs` writes the seed corpus (`corpus/<target>/`) from real values
//! made with the same fixtures. `scripts/fuzz.sh` at the repository root runs everything.

pub mod auth_body;
pub mod changeset;
pub mod fixtures;
pub mod query;
pub mod schema_json;
pub mod sync_message;
pub mod user_json;

/// Fails the run on an error that can only come from a bug: bad input must be refused with a
/// specific code, never with `Internal` or `Unknown`.
///
/// # Panics
/// When `error` is `Internal` or `Unknown`.
pub fn assert_not_internal(error: &shoal::Error, what: &str) {
    assert!(
        !matches!(
            error.code(),
            shoal::ErrorCode::Internal | shoal::ErrorCode::Unknown
        ),
        "{what}: an internal error for bad input: {error:?}"
    );
}

//! The history changeset decoder (`shoal::decode_changeset_full`) and the merge engine behind
//! it, on any bytes: what a server integrates from an UPLOAD and a client from a DOWNLOAD.
//!
//! The input is one or more changesets separated by [`SEPARATOR`]. Each goes through:
//!
//! 1. the decoders (`decode_changeset_full`, `changeset_header`): no panic;
//! 2. `Realm::integrate_changesets` as one batch into an empty in-memory realm with merge
//!    metadata and no schema (as the server opens its copy of a path);
//! 3. `Realm::integrate_changeset` one by one into a second such realm;
//! 4. `Realm::apply_changeset` (local replay) into an empty plain in-memory realm, in one
//!    write transaction that is committed if every changeset applied and cancelled otherwise.
//!
//! Checks: no `Internal` error; a refused integration changes nothing (content and schema as
//! before); when the batch is accepted, so is every changeset one by one, with the same
//! result; and afterwards every realm is sound ([`assert_sound`]).

use shoal::{decode_changeset_full, Realm, Schema};

use crate::assert_not_internal;
use crate::fixtures::in_memory_config;

/// Separates the changesets of one input.
pub const SEPARATOR: &[u8] = b"|8<|";

/// Splits `data` at every [`SEPARATOR`].
#[must_use]
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        parts.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

/// Joins changesets into one input ([`split`] gives them back).
#[must_use]
pub fn join(changesets: &[Vec<u8>]) -> Vec<u8> {
    changesets.join(SEPARATOR)
}

/// Runs the checks on one input.
///
/// # Panics
/// When a check fails.
pub fn check(data: &[u8]) {
    let parts = split(data);
    let mut decoded = 0;
    for part in &parts {
        if let Ok(changeset) = decode_changeset_full(part) {
            assert_eq!(
                shoal::changeset_header(part).expect("the header of a decoded changeset"),
                (changeset.stamp, changeset.origin)
            );
            decoded += 1;
        }
    }
    if decoded == 0 {
        // Every entry point decodes first and refuses before touching the realm; skipping
        // the realms here makes the many undecodable mutations cheap.
        return;
    }

    let batch = merge_realm();
    let before = state(&batch);
    let batch_result = batch.integrate_changesets(&parts);
    if let Err(e) = &batch_result {
        assert_not_internal(e, "integrate_changesets");
        assert_eq!(state(&batch), before, "a refused batch changed the realm");
    }
    assert_sound(&batch);

    let single = merge_realm();
    let mut all_accepted = true;
    for part in &parts {
        let before = state(&single);
        if let Err(e) = single.integrate_changeset(part) {
            assert_not_internal(&e, "integrate_changeset");
            assert_eq!(
                state(&single),
                before,
                "a refused changeset changed the realm"
            );
            all_accepted = false;
        }
    }
    assert_sound(&single);
    if batch_result.is_ok() {
        assert!(
            all_accepted,
            "a batch was accepted but not its changesets one by one"
        );
        assert_eq!(state(&single), state(&batch), "batch and one by one differ");
    }

    let plain = Realm::open(&in_memory_config(None, false)).expect("open a plain realm");
    plain.begin_write().expect("begin_write");
    let mut applied = true;
    for part in &parts {
        if let Err(e) = plain.apply_changeset(part) {
            assert_not_internal(&e, "apply_changeset");
            applied = false;
            break;
        }
    }
    if applied {
        if let Err(e) = plain.commit() {
            assert_not_internal(&e, "commit after apply_changeset");
            plain.cancel_write().expect("cancel after a failed commit");
        }
    } else {
        plain.cancel_write().expect("cancel_write");
    }
    assert_sound(&plain);
}

fn merge_realm() -> Realm {
    Realm::open(&in_memory_config(None, true)).expect("open a merge realm")
}

/// The realm's content and schema, to compare before and after.
fn state(realm: &Realm) -> (String, String) {
    (
        realm.dump_json().expect("dump_json"),
        realm.schema().expect("schema").to_json(),
    )
}

/// What must hold of a realm after anything was done to it: no write transaction is left
/// open, content and schema read back (the schema is one `Schema::from_json` accepts), every
/// class can be counted and every object read, every changeset in its history decodes, and
/// a new write transaction opens.
///
/// # Panics
/// When any of that fails.
pub fn assert_sound(realm: &Realm) {
    assert!(
        !realm.is_in_transaction(),
        "a write transaction was left open"
    );
    realm.dump_json().expect("dump_json of a realm");
    let schema = realm.schema().expect("schema of a realm");
    if let Err(e) = Schema::from_json(&schema.to_json()) {
        panic!(
            "the realm's schema is not valid: {e:?}\n{}",
            schema.to_json()
        );
    }
    for class in schema.classes() {
        let objects = realm.objects(&class.name).expect("objects of a class");
        for object in objects.to_vec().expect("read the objects") {
            for property in &class.properties {
                if property.is_list() {
                    let list = object.list(&property.name).expect("a list property");
                    list.to_vec().expect("read a list");
                } else {
                    object.get(&property.name).expect("read a property");
                }
            }
        }
    }
    for (_, bytes) in realm.history_since(0).expect("history") {
        if let Err(e) = decode_changeset_full(&bytes) {
            panic!("a changeset in the realm's history does not decode: {e:?}");
        }
    }
    // A write transaction still opens (nothing holds the writer); committing it is left
    // out: an empty commit costs as much as the rest of these checks.
    realm.begin_write().expect("begin_write after the checks");
    realm.cancel_write().expect("cancel_write after the checks");
}

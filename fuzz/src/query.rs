//! The query language (`Realm::query`: lexer, parser, binding to the schema, evaluation) on
//! any text, against an in-memory realm of [`all_types_schema`] filled by [`populate`], with
//! one argument of every type (`$0` … `$8`, see [`arguments`]).
//!
//! Checks: no panic and no `Internal` error; a query that is accepted evaluates, gives at most
//! every object once, and the same answer when run again; sorting and aggregating its
//! results works or fails cleanly.
//!
//! [`all_types_schema`]: crate::fixtures::all_types_schema
//! [`populate`]: crate::fixtures::populate

use std::collections::BTreeSet;

use shoal::{Realm, Results, Timestamp, Value};

use crate::assert_not_internal;
use crate::fixtures::{all_types_schema, in_memory_config, populate};

/// The class queried.
pub const CLASS: &str = "AllTypes";

/// `Results::min` and its kind.
type Aggregate = fn(&Results, &str) -> shoal::Result<Value>;

thread_local! {
    /// One realm for the whole run: queries do not change it.
    static REALM: (Realm, Vec<Value>) = {
        let realm = Realm::open(&in_memory_config(Some(all_types_schema()), false))
            .expect("open the query realm");
        populate(&realm);
        let args = arguments(&realm);
        (realm, args)
    };
}

/// `$0` int 7, `$1` string "Ab", `$2` double 1.0, `$3` bool true, `$4` NULL, `$5` timestamp,
/// `$6` binary, `$7` float 0.5, `$8` a link to the first `Dog`.
///
/// # Panics
/// When `realm` has no `Dog`.
#[must_use]
pub fn arguments(realm: &Realm) -> Vec<Value> {
    let dog = realm.objects("Dog").and_then(|r| r.get(0)).expect("a dog");
    vec![
        Value::Int(7),
        Value::from("Ab"),
        Value::Double(1.0),
        Value::Bool(true),
        Value::Null,
        Value::Timestamp(Timestamp {
            seconds: 1_700_003_600,
            nanos: 1000,
        }),
        Value::Binary(vec![2, 2]),
        Value::Float(0.5),
        dog.link(),
    ]
}

/// Runs the checks on one input (not UTF-8: ignored, the API takes `&str`).
///
/// # Panics
/// When a check fails.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    REALM.with(|(realm, args)| {
        let results = match realm.query(CLASS, text, args) {
            Ok(results) => results,
            Err(e) => {
                assert_not_internal(&e, "query");
                return;
            }
        };
        let keys = match results.to_vec() {
            Ok(objects) => objects.iter().map(shoal::Object::key).collect::<Vec<_>>(),
            Err(e) => {
                assert_not_internal(&e, "evaluating a query");
                return;
            }
        };
        let unique: BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "an object appears twice");
        assert!(keys.len() <= 5, "more results than objects");
        assert_eq!(results.count().expect("count"), keys.len());
        let again = realm
            .query(CLASS, text, args)
            .expect("the same query again");
        let keys_again: Vec<_> = again
            .to_vec()
            .expect("evaluate again")
            .iter()
            .map(shoal::Object::key)
            .collect();
        assert_eq!(keys_again, keys, "the same query gave another answer");
        for (property, _) in crate::fixtures::SCALARS {
            match results.sort(property, false) {
                Ok(sorted) => assert_eq!(sorted.count().expect("count sorted"), keys.len()),
                Err(e) => assert_not_internal(&e, "sort"),
            }
            for aggregate in [
                Results::min as Aggregate,
                Results::max,
                Results::sum,
                Results::average,
            ] {
                if let Err(e) = aggregate(&results, property) {
                    assert_not_internal(&e, "aggregate");
                }
            }
        }
    });
}

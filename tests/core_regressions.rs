//! Regressions of core bugs first found through the Python binding
//! (`bindings/python/tests/test_core_bugs.py`), asserted here against the Rust API as well, so
//! that the core's own test suite keeps them fixed.

mod common;
use common::*;
use shoal::{Config, PropertyFlags as F, PropertyType as T, Realm, Results, Schema, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

/// Person {id: int pk, age: int, score: double}, Item {sku: string pk, price: double},
/// Dog {name: string} (no primary key): the parts of the Python tests' schema these use.
fn schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Person", Some("id")).unwrap();
    s.add_property("Person", "id", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Person", "age", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Person", "score", T::Double, F::NONE, None)
        .unwrap();
    s.add_class("Item", Some("sku")).unwrap();
    s.add_property("Item", "sku", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Item", "price", T::Double, F::NONE, None)
        .unwrap();
    s.add_class("Dog", None).unwrap();
    s.add_property("Dog", "name", T::String, F::NONE, None)
        .unwrap();
    s
}

fn open(t: &TempRealm) -> Realm {
    Realm::open(&t.config(schema())).expect("open")
}

/// People with ids 1..=5 aged 31, 25, 40, 25, 58 (the Python tests' `people` fixture).
fn people(t: &TempRealm) -> Realm {
    let realm = open(t);
    realm.begin_write().unwrap();
    for (id, age) in [(1, 31), (2, 25), (3, 40), (4, 25), (5, 58)] {
        realm
            .create_object("Person", Some(&Value::Int(id)))
            .unwrap()
            .set("age", age)
            .unwrap();
    }
    realm.commit().unwrap();
    realm
}

fn ids_in_order(r: &Results) -> Vec<i64> {
    r.to_vec()
        .unwrap()
        .iter()
        .map(|o| match o.get("id").unwrap() {
            Value::Int(i) => i,
            other => panic!("id {other:?}"),
        })
        .collect()
}

#[test]
fn max_ignores_the_order_of_nan() {
    let t = TempRealm::new();
    let realm = open(&t);
    realm.begin_write().unwrap();
    for (id, score) in [(1, f64::NAN), (2, 1.0), (3, 2.0)] {
        realm
            .create_object("Person", Some(&Value::Int(id)))
            .unwrap()
            .set("score", score)
            .unwrap();
    }
    realm.commit().unwrap();
    // The same values in another order.
    realm.begin_write().unwrap();
    for (sku, price) in [("a", 1.0), ("b", f64::NAN), ("c", 2.0)] {
        realm
            .create_object("Item", Some(&Value::from(sku)))
            .unwrap()
            .set("price", price)
            .unwrap();
    }
    realm.commit().unwrap();
    assert_eq!(
        realm.objects("Item").unwrap().max("price").unwrap(),
        Value::Double(2.0)
    );
    // NaN first: this returned NaN.
    assert_eq!(
        realm.objects("Person").unwrap().max("score").unwrap(),
        Value::Double(2.0)
    );
}

/// Opens `config` from `n` threads at once; once all have opened, each refreshes and returns
/// `after` of its realm (or the open's error).
fn open_concurrently<R: Send + 'static>(
    config: &Config,
    n: usize,
    after: fn(&Realm) -> R,
) -> Vec<Result<R, String>> {
    let start = Arc::new(Barrier::new(n));
    let opened = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (config, start, opened) = (config.clone(), start.clone(), opened.clone());
            thread::spawn(move || {
                start.wait();
                let result = Realm::open(&config);
                opened.wait();
                let realm = result.map_err(|e| e.to_string())?;
                realm.refresh().map_err(|e| e.to_string())?;
                Ok(after(&realm))
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("no panic"))
        .collect()
}

#[test]
fn concurrent_first_opens_of_a_new_file_all_succeed() {
    let t = TempRealm::new();
    let mut failures = Vec::new();
    for attempt in 0..5 {
        let path = t.dir.path().join(format!("new{attempt}.realm"));
        let mut config = Config::new(path.to_string_lossy().into_owned());
        config.set_schema(schema()).unwrap();
        failures.extend(
            open_concurrently(&config, 4, |_| ())
                .into_iter()
                .filter_map(Result::err),
        );
    }
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn initial_data_runs_once_under_concurrent_opens() {
    let t = TempRealm::new();
    let runs = Arc::new(AtomicUsize::new(0));
    for attempt in 0..5 {
        let path = t
            .dir
            .path()
            .join(format!("seed{attempt}.realm"))
            .to_string_lossy()
            .into_owned();
        // An initialized file without a schema.
        drop(Realm::open(&Config::new(path.clone())).unwrap());
        // Kept open: the threads share the file with it.
        let kept = Realm::open(&Config::new(path.clone())).unwrap();
        let mut config = Config::new(path);
        config.set_schema(schema()).unwrap();
        let r = runs.clone();
        config.set_initial_data(move |realm| {
            r.fetch_add(1, Ordering::SeqCst);
            realm.create_object("Dog", None)?.set("name", "seed")?;
            Ok(())
        });
        let dogs = open_concurrently(&config, 2, |realm| {
            realm.objects("Dog").unwrap().count().unwrap()
        });
        assert_eq!(dogs, vec![Ok(1), Ok(1)], "attempt {attempt}");
        drop(kept);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 5);
}

#[test]
fn distinct_after_sort_keeps_the_first_in_sorted_order() {
    let t = TempRealm::new();
    let realm = people(&t);
    // By id descending, age 25 is first met at id 4.
    let r = realm
        .objects("Person")
        .unwrap()
        .sort("id", false)
        .unwrap()
        .distinct("age")
        .unwrap();
    assert_eq!(ids_in_order(&r), vec![5, 4, 3, 1]);
}

#[test]
fn sort_after_limit_only_reorders() {
    let t = TempRealm::new();
    let realm = people(&t);
    let top2 = realm
        .query("Person", "TRUEPREDICATE SORT(age DESC) LIMIT(2)", &[])
        .unwrap();
    let mut ids = ids_in_order(&top2);
    ids.sort_unstable();
    assert_eq!(ids, vec![3, 5]);
    assert_eq!(ids_in_order(&top2.sort("id", true).unwrap()), vec![3, 5]);
}

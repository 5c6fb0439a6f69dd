//! Queries: the predicate language on every type, links and lists, clauses, sorting, distinct,
//! aggregates, indexes, live results and query errors.

mod common;
use common::*;
use shoal::{
    Config, ErrorCode, Object, PropertyFlags as F, PropertyType as T, Realm, Results, Schema,
    Timestamp, Value,
};

/// The objects of a fixture, kept to build link arguments.
struct Fixture {
    realm: Realm,
    rex: Object,
    fido: Object,
    spot: Object,
    people: Vec<Object>,
}

/// Five people and three dogs:
///
/// | id | name      | age | score | ratio | active | born          | photo   | dog  | dogs             | tags      |
/// |----|-----------|-----|-------|-------|--------|---------------|---------|------|------------------|-----------|
/// | 1  | "Ann"     | 31  | 2.5   | 0.5   | true   | T(1000, 0)    | [1,2,3] | rex  | [rex, fido]      | [a, b]    |
/// | 2  | "bob"     | 25  | 1.0   | 1.5   | false  | T(2000, 0)    | [1,2]   | fido | [fido]           | [b]       |
/// | 3  | "Carol"   | 40  | -3.25 | 0.25  | true   | null          | null    | null | []               | []        |
/// | 4  | null      | 18  | 2.5   | 2.0   | false  | T(1000, 500)  | [9]     | rex  | [rex, rex, fido] | [c]       |
/// | 5  | "annabel" | 31  | 100.0 | -1.0  | true   | T(-5, 0)      | []      | null | []               | [a]       |
///
/// Dogs: rex {"Rex", 3}, fido {"Fido", 7}, spot {"Spot", 1} (nobody links to spot).
fn fixture(t: &TempRealm) -> Fixture {
    let realm = open_people(t);
    realm.begin_write().unwrap();
    let dog = |name: &str, age: i64| {
        let d = realm.create_object("Dog", None).unwrap();
        d.set("name", name).unwrap();
        d.set("age", age).unwrap();
        d
    };
    let rex = dog("Rex", 3);
    let fido = dog("Fido", 7);
    let spot = dog("Spot", 1);
    struct Row {
        id: i64,
        name: Option<&'static str>,
        age: i64,
        score: f64,
        ratio: f32,
        active: bool,
        born: Option<Timestamp>,
        photo: Option<Vec<u8>>,
        dog: Option<Value>,
        dogs: Vec<Value>,
        tags: Vec<&'static str>,
    }
    let rows = vec![
        Row {
            id: 1,
            name: Some("Ann"),
            age: 31,
            score: 2.5,
            ratio: 0.5,
            active: true,
            born: Some(Timestamp::new(1000, 0)),
            photo: Some(vec![1, 2, 3]),
            dog: Some(rex.link()),
            dogs: vec![rex.link(), fido.link()],
            tags: vec!["a", "b"],
        },
        Row {
            id: 2,
            name: Some("bob"),
            age: 25,
            score: 1.0,
            ratio: 1.5,
            active: false,
            born: Some(Timestamp::new(2000, 0)),
            photo: Some(vec![1, 2]),
            dog: Some(fido.link()),
            dogs: vec![fido.link()],
            tags: vec!["b"],
        },
        Row {
            id: 3,
            name: Some("Carol"),
            age: 40,
            score: -3.25,
            ratio: 0.25,
            active: true,
            born: None,
            photo: None,
            dog: None,
            dogs: vec![],
            tags: vec![],
        },
        Row {
            id: 4,
            name: None,
            age: 18,
            score: 2.5,
            ratio: 2.0,
            active: false,
            born: Some(Timestamp::new(1000, 500)),
            photo: Some(vec![9]),
            dog: Some(rex.link()),
            dogs: vec![rex.link(), rex.link(), fido.link()],
            tags: vec!["c"],
        },
        Row {
            id: 5,
            name: Some("annabel"),
            age: 31,
            score: 100.0,
            ratio: -1.0,
            active: true,
            born: Some(Timestamp::new(-5, 0)),
            photo: Some(vec![]),
            dog: None,
            dogs: vec![],
            tags: vec!["a"],
        },
    ];
    let mut people = Vec::new();
    for r in rows {
        let p = realm
            .create_object("Person", Some(&Value::Int(r.id)))
            .unwrap();
        p.set("name", r.name).unwrap();
        p.set("age", r.age).unwrap();
        p.set("score", r.score).unwrap();
        p.set("ratio", r.ratio).unwrap();
        p.set("active", r.active).unwrap();
        p.set("born", r.born).unwrap();
        p.set("photo", r.photo).unwrap();
        p.set("dog", r.dog.unwrap_or(Value::Null)).unwrap();
        let dogs = p.list("dogs").unwrap();
        for d in r.dogs {
            dogs.push(d).unwrap();
        }
        let tags = p.list("tags").unwrap();
        for tag in r.tags {
            tags.push(tag).unwrap();
        }
        people.push(p);
    }
    realm.commit().unwrap();
    Fixture {
        realm,
        rex,
        fido,
        spot,
        people,
    }
}

fn id_of(o: &Object) -> i64 {
    o.get("id").unwrap().as_int().expect("int id")
}

/// The ids of the results, in result order.
fn ids_in_order(r: &Results) -> Vec<i64> {
    r.to_vec().unwrap().iter().map(id_of).collect()
}

/// The ids of the results, sorted (for predicates, whose order is unspecified).
fn ids(r: &Results) -> Vec<i64> {
    let mut v = ids_in_order(r);
    v.sort_unstable();
    v
}

/// The ids matching `predicate` with `args`, sorted; also checks `count` agrees.
fn q(realm: &Realm, predicate: &str, args: &[Value]) -> Vec<i64> {
    let r = realm
        .query("Person", predicate, args)
        .unwrap_or_else(|e| panic!("query {predicate:?} failed: {e}"));
    let found = ids(&r);
    assert_eq!(r.count().unwrap(), found.len(), "count() of {predicate:?}");
    found
}

fn check(realm: &Realm, cases: &[(&str, &[i64])]) {
    for (predicate, expected) in cases {
        assert_eq!(
            q(realm, predicate, &[]),
            expected.to_vec(),
            "query {predicate:?}"
        );
    }
}

fn query_error(realm: &Realm, predicate: &str, args: &[Value]) -> ErrorCode {
    match realm.query("Person", predicate, args) {
        Ok(r) => panic!(
            "query {predicate:?} was accepted and matched {} objects",
            r.count().unwrap()
        ),
        Err(e) => e.code(),
    }
}

// ----- comparisons on every type -----

#[test]
fn int_comparisons_select_exactly_the_matching_objects() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("age == 31", &[1, 5]),
            ("age = 31", &[1, 5]),
            ("age != 31", &[2, 3, 4]),
            ("age <> 31", &[2, 3, 4]),
            ("age < 25", &[4]),
            ("age <= 25", &[2, 4]),
            ("age > 31", &[3]),
            ("age >= 31", &[1, 3, 5]),
            ("age == 99", &[]),
            ("age > -1", &[1, 2, 3, 4, 5]),
            ("age == 0x1F", &[1, 5]),
            ("id == 3", &[3]),
            ("id != 3", &[1, 2, 4, 5]),
        ],
    );
    // An int property compared with a double argument compares numerically.
    assert_eq!(q(&f.realm, "age == $0", &[Value::Double(31.0)]), vec![1, 5]);
    assert_eq!(q(&f.realm, "age < $0", &[Value::Double(25.5)]), vec![2, 4]);
    assert_eq!(q(&f.realm, "age == 31.5", &[]), Vec::<i64>::new());
}

#[test]
fn double_and_float_comparisons_select_exactly_the_matching_objects() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("score == 2.5", &[1, 4]),
            ("score != 2.5", &[2, 3, 5]),
            ("score < 0", &[3]),
            ("score <= 1", &[2, 3]),
            ("score > 2.5", &[5]),
            ("score >= 2.5", &[1, 4, 5]),
            ("score == -3.25", &[3]),
            ("score > 1e1", &[5]),
            ("ratio == 0.5", &[1]),
            ("ratio != 0.5", &[2, 3, 4, 5]),
            ("ratio < 0.5", &[3, 5]),
            ("ratio <= 0.5", &[1, 3, 5]),
            ("ratio > 1.5", &[4]),
            ("ratio >= 1.5", &[2, 4]),
            ("ratio == 2", &[4]),
        ],
    );
    assert_eq!(q(&f.realm, "score == $0", &[Value::Int(100)]), vec![5]);
    assert_eq!(q(&f.realm, "ratio == $0", &[Value::Float(1.5)]), vec![2]);
    assert_eq!(q(&f.realm, "ratio < $0", &[Value::Float(0.0)]), vec![5]);
}

#[test]
fn bool_comparisons_select_exactly_the_matching_objects() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("active == true", &[1, 3, 5]),
            ("active == TRUE", &[1, 3, 5]),
            ("active == false", &[2, 4]),
            ("active != true", &[2, 4]),
            ("active != false", &[1, 3, 5]),
        ],
    );
    assert_eq!(
        q(&f.realm, "active == $0", &[Value::Bool(false)]),
        vec![2, 4]
    );
}

#[test]
fn string_comparisons_select_exactly_the_matching_objects() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("name == 'Ann'", &[1]),
            ("name == \"Ann\"", &[1]),
            ("name == 'ann'", &[]),
            ("name ==[c] 'ANN'", &[1]),
            ("name != 'Ann'", &[2, 3, 4, 5]),
            ("name !=[c] 'ann'", &[2, 3, 4, 5]),
            ("name == nil", &[4]),
            ("name == NULL", &[4]),
            ("name != nil", &[1, 2, 3, 5]),
            // Strings order by bytes: upper case before lower case; NULL never matches < or >.
            ("name < 'B'", &[1]),
            ("name <= 'Ann'", &[1]),
            ("name > 'Carol'", &[2, 5]),
            ("name >= 'b'", &[2]),
            ("name >= 'Carol'", &[2, 3, 5]),
        ],
    );
    assert_eq!(q(&f.realm, "name == $0", &[Value::from("bob")]), vec![2]);
    assert_eq!(q(&f.realm, "name == $0", &[Value::Null]), vec![4]);
}

#[test]
fn string_operators_honour_case_and_wildcards() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("name BEGINSWITH 'Ann'", &[1]),
            ("name BEGINSWITH 'ann'", &[5]),
            ("name BEGINSWITH[c] 'ann'", &[1, 5]),
            ("name BEGINSWITH ''", &[1, 2, 3, 5]),
            ("name ENDSWITH 'l'", &[3, 5]),
            ("name ENDSWITH 'OL'", &[]),
            ("name ENDSWITH[c] 'OL'", &[3]),
            ("name CONTAINS 'nn'", &[1, 5]),
            ("name CONTAINS 'B'", &[]),
            ("name CONTAINS[c] 'B'", &[2, 5]),
            ("name CONTAINS 'x'", &[]),
            ("name LIKE 'A*'", &[1]),
            ("name LIKE 'a*'", &[5]),
            ("name LIKE[c] 'a*'", &[1, 5]),
            ("name LIKE '?ob'", &[2]),
            ("name LIKE '???'", &[1, 2]),
            ("name LIKE '*a*e*'", &[5]),
            ("name LIKE 'C?r*l'", &[3]),
            ("name LIKE '*'", &[1, 2, 3, 5]),
            ("name LIKE 'Ann'", &[1]),
            ("name LIKE 'An'", &[]),
            ("name like[c] 'BO?'", &[2]),
            ("name beginswith 'C'", &[3]),
        ],
    );
    assert_eq!(
        q(&f.realm, "name CONTAINS[c] $0", &[Value::from("NNA")]),
        vec![5]
    );
}

#[test]
fn binary_comparisons_distinguish_empty_from_null() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let bin = |b: &[u8]| Value::Binary(b.to_vec());
    assert_eq!(q(&f.realm, "photo == $0", &[bin(&[1, 2, 3])]), vec![1]);
    assert_eq!(
        q(&f.realm, "photo != $0", &[bin(&[1, 2, 3])]),
        vec![2, 3, 4, 5]
    );
    assert_eq!(
        q(&f.realm, "photo == $0", &[bin(&[])]),
        vec![5],
        "an empty binary is not NULL"
    );
    assert_eq!(q(&f.realm, "photo == nil", &[]), vec![3]);
    assert_eq!(q(&f.realm, "photo != nil", &[]), vec![1, 2, 4, 5]);
    assert_eq!(q(&f.realm, "photo == B64\"AQID\"", &[]), vec![1]);
    assert_eq!(
        q(&f.realm, "photo BEGINSWITH $0", &[bin(&[1, 2])]),
        vec![1, 2]
    );
    assert_eq!(q(&f.realm, "photo ENDSWITH $0", &[bin(&[2])]), vec![2]);
    assert_eq!(q(&f.realm, "photo CONTAINS $0", &[bin(&[2])]), vec![1, 2]);
    assert_eq!(
        q(&f.realm, "photo CONTAINS $0", &[bin(&[3, 1])]),
        Vec::<i64>::new()
    );
}

#[test]
fn timestamp_comparisons_order_by_seconds_then_nanoseconds() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let ts = |s, n| Value::Timestamp(Timestamp::new(s, n));
    assert_eq!(q(&f.realm, "born == $0", &[ts(1000, 0)]), vec![1]);
    assert_eq!(q(&f.realm, "born != $0", &[ts(1000, 0)]), vec![2, 3, 4, 5]);
    assert_eq!(q(&f.realm, "born > $0", &[ts(1000, 0)]), vec![2, 4]);
    assert_eq!(q(&f.realm, "born >= $0", &[ts(1000, 0)]), vec![1, 2, 4]);
    assert_eq!(q(&f.realm, "born < $0", &[ts(1000, 500)]), vec![1, 5]);
    assert_eq!(q(&f.realm, "born <= $0", &[ts(1000, 500)]), vec![1, 4, 5]);
    check(
        &f.realm,
        &[
            ("born == T1000:500", &[4]),
            ("born < T1000:500", &[1, 5]),
            ("born < T0:0", &[5]),
            ("born == nil", &[3]),
            ("born != nil", &[1, 2, 4, 5]),
            // 1970-01-01@00:16:40 is 1000 seconds after the epoch.
            ("born == 1970-01-01@00:16:40", &[1]),
            ("born < 1970-01-01@00:16:40", &[5]),
            ("born > 1970-01-01@00:16:40", &[2, 4]),
            ("born <= 1970-01-01@00:16:40:500", &[1, 4, 5]),
        ],
    );
}

#[test]
fn links_compare_with_null_and_with_other_objects() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let r = &f.realm;
    assert_eq!(q(r, "dog == nil", &[]), vec![3, 5]);
    assert_eq!(q(r, "dog != nil", &[]), vec![1, 2, 4]);
    assert_eq!(q(r, "dog == $0", &[f.rex.link()]), vec![1, 4]);
    assert_eq!(q(r, "dog == $0", &[f.fido.link()]), vec![2]);
    assert_eq!(q(r, "dog == $0", &[f.spot.link()]), Vec::<i64>::new());
    assert_eq!(q(r, "dog != $0", &[f.rex.link()]), vec![2, 3, 5]);
    assert_eq!(
        q(r, "dog == $0 OR dog == $1", &[f.rex.link(), f.fido.link()]),
        vec![1, 2, 4]
    );
    // A list of links matches when any element does.
    assert_eq!(q(r, "dogs == $0", &[f.fido.link()]), vec![1, 2, 4]);
    assert_eq!(q(r, "dogs == $0", &[f.rex.link()]), vec![1, 4]);
}

#[test]
fn queries_follow_links_and_lists_of_links() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("dog.name == 'Fido'", &[2]),
            ("dog.name == 'Rex'", &[1, 4]),
            ("dog.name BEGINSWITH 'R'", &[1, 4]),
            ("dog.name ==[c] 'fido'", &[2]),
            ("dog.age > 2", &[1, 2, 4]),
            ("dog.age > 5", &[2]),
            // Without a dog the path has no value, which compares like NULL.
            ("dog.name == nil", &[3, 5]),
            ("dogs.name == 'Fido'", &[1, 2, 4]),
            ("dogs.name == 'Spot'", &[]),
            ("dogs.age >= 7", &[1, 2, 4]),
            ("dogs.age < 7", &[1, 4]),
            ("dog.name == 'Rex' AND dogs.name == 'Fido'", &[1, 4]),
        ],
    );
}

#[test]
fn count_and_size_measure_lists() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("dogs.@count == 0", &[3, 5]),
            ("dogs.@count > 1", &[1, 4]),
            ("dogs.@size == 3", &[4]),
            ("dogs.@count == 1", &[2]),
            ("tags.@count == 1", &[2, 4, 5]),
            ("tags.@size >= 2", &[1]),
            ("tags.@count == 0", &[3]),
            ("tags.@count < dogs.@count", &[4]),
        ],
    );
}

#[test]
fn lists_of_values_match_when_any_element_does() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("tags == 'b'", &[1, 2]),
            ("tags == 'a'", &[1, 5]),
            ("tags BEGINSWITH 'c'", &[4]),
            ("tags == 'z'", &[]),
        ],
    );
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_and_not_regroup() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("age > 20 AND active == true", &[1, 3, 5]),
            ("age > 20 && active == true", &[1, 3, 5]),
            ("age < 20 OR name == 'bob'", &[2, 4]),
            ("age < 20 || name == 'bob'", &[2, 4]),
            // AND first: 18 OR (25 AND active); grouping as (18 OR 25) AND active would give none.
            ("age == 18 OR age == 25 AND active == true", &[4]),
            ("(age == 18 OR age == 25) AND active == true", &[]),
            ("(age == 18 OR age == 25) AND active == false", &[2, 4]),
            ("active == true AND (age == 40 OR score > 50)", &[3, 5]),
            ("NOT age == 31", &[2, 3, 4]),
            ("NOT (age == 31)", &[2, 3, 4]),
            ("!(age > 20 AND active == true)", &[2, 4]),
            ("NOT (name == nil)", &[1, 2, 3, 5]),
            ("NOT NOT active == true", &[1, 3, 5]),
            ("NOT age == 31 AND active == true", &[3]),
            ("((age == 31))", &[1, 5]),
            ("age > 20 and active == true or age == 18", &[1, 3, 4, 5]),
        ],
    );
}

#[test]
fn truepredicate_and_falsepredicate_match_everything_and_nothing() {
    let t = TempRealm::new();
    let f = fixture(&t);
    check(
        &f.realm,
        &[
            ("TRUEPREDICATE", &[1, 2, 3, 4, 5]),
            ("FALSEPREDICATE", &[]),
            ("TRUEPREDICATE AND age == 40", &[3]),
            ("FALSEPREDICATE OR age == 40", &[3]),
            ("NOT FALSEPREDICATE", &[1, 2, 3, 4, 5]),
        ],
    );
    assert_eq!(f.realm.objects("Person").unwrap().count().unwrap(), 5);
    assert_eq!(f.realm.objects("Dog").unwrap().count().unwrap(), 3);
}

#[test]
fn arguments_bind_by_number_and_constants_may_come_first() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let r = &f.realm;
    assert_eq!(
        q(
            r,
            "age > $1 AND name BEGINSWITH[c] $0",
            &[Value::from("a"), Value::Int(30)]
        ),
        vec![1, 5]
    );
    assert_eq!(q(r, "age == $0 OR age == $0", &[Value::Int(40)]), vec![3]);
    assert_eq!(q(r, "31 == age", &[]), vec![1, 5]);
    assert_eq!(q(r, "25 < age", &[]), vec![1, 3, 5]);
    assert_eq!(q(r, "$0 >= age", &[Value::Int(25)]), vec![2, 4]);
    // Unused extra arguments are fine.
    assert_eq!(
        q(r, "age == $0", &[Value::Int(18), Value::from("unused")]),
        vec![4]
    );
}

// ----- clauses, sorting, distinct -----

#[test]
fn sort_distinct_and_limit_clauses_shape_the_results() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let r = &f.realm;
    let ordered = |p: &str| ids_in_order(&r.query("Person", p, &[]).unwrap());
    assert_eq!(
        ordered("TRUEPREDICATE SORT(age DESC, id ASC)"),
        vec![3, 1, 5, 2, 4]
    );
    assert_eq!(
        ordered("TRUEPREDICATE SORT(age DESC, id DESC)"),
        vec![3, 5, 1, 2, 4]
    );
    assert_eq!(ordered("active == true SORT(score ASC)"), vec![3, 1, 5]);
    assert_eq!(
        ordered("active == true SORT(score DESCENDING)"),
        vec![5, 1, 3]
    );
    assert_eq!(ordered("TRUEPREDICATE SORT(age ASC) LIMIT(2)"), vec![4, 2]);
    assert_eq!(
        ordered("TRUEPREDICATE SORT(age ASC, id ASC) LIMIT(100)"),
        vec![4, 2, 1, 5, 3]
    );
    assert_eq!(
        ordered("TRUEPREDICATE SORT(age ASC, id ASC)"),
        vec![4, 2, 1, 5, 3]
    );
    assert_eq!(ordered("TRUEPREDICATE LIMIT(0)"), Vec::<i64>::new());
    assert_eq!(
        r.query("Person", "TRUEPREDICATE LIMIT(3)", &[])
            .unwrap()
            .count()
            .unwrap(),
        3
    );
    assert_eq!(ordered("age > 100 LIMIT(5)"), Vec::<i64>::new());
    // Sorting through a link: people without a dog (NULL) first.
    assert_eq!(
        ordered("TRUEPREDICATE SORT(dog.name ASC, id ASC)"),
        vec![3, 5, 2, 1, 4]
    );
    // DISTINCT keeps the first object of each value.
    assert_eq!(
        ids(&r
            .query("Person", "TRUEPREDICATE DISTINCT(age)", &[])
            .unwrap()),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        ordered("TRUEPREDICATE DISTINCT(age) SORT(age DESC)"),
        vec![3, 1, 2, 4]
    );
    assert_eq!(
        ids(&r
            .query("Person", "TRUEPREDICATE DISTINCT(active)", &[])
            .unwrap()),
        vec![1, 2]
    );
    assert_eq!(
        ids(&r
            .query("Person", "TRUEPREDICATE DISTINCT(active, age)", &[])
            .unwrap()),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        r.query("Person", "TRUEPREDICATE DISTINCT(score)", &[])
            .unwrap()
            .count()
            .unwrap(),
        4
    );
}

#[test]
fn results_sort_by_several_keys_with_the_first_most_significant() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let all = f.realm.objects("Person").unwrap();
    let sorted = all
        .sort_by(&[("active", false), ("age", true), ("id", false)])
        .unwrap();
    assert_eq!(ids_in_order(&sorted), vec![5, 1, 3, 4, 2]);
    let sorted = all.sort_by(&[("age", true), ("score", false)]).unwrap();
    assert_eq!(ids_in_order(&sorted), vec![4, 2, 5, 1, 3]);
    // sort() replaces an earlier sort.
    assert_eq!(
        ids_in_order(&all.sort("age", true).unwrap().sort("id", false).unwrap()),
        vec![5, 4, 3, 2, 1]
    );
    // Strings sort by bytes with NULL first.
    assert_eq!(
        ids_in_order(&all.sort("name", true).unwrap()),
        vec![4, 1, 3, 5, 2]
    );
    assert_eq!(
        ids_in_order(&all.sort("name", false).unwrap()),
        vec![2, 5, 3, 1, 4]
    );
    assert_eq!(
        ids_in_order(
            &all.sort("score", true)
                .unwrap()
                .sort_by(&[("score", true), ("id", true)])
                .unwrap()
        ),
        vec![3, 2, 1, 4, 5]
    );
    assert_eq!(
        ids_in_order(&all.sort_by(&[("ratio", true)]).unwrap()),
        vec![5, 3, 1, 2, 4]
    );
    assert_eq!(
        ids_in_order(&all.sort_by(&[("born", true)]).unwrap()),
        vec![3, 5, 1, 4, 2]
    );
    assert_eq!(
        ids_in_order(&all.sort_by(&[("dog.age", false), ("id", true)]).unwrap()),
        vec![2, 1, 4, 3, 5]
    );
    // Sorting a filtered result keeps the filter.
    let active = f.realm.query("Person", "active == true", &[]).unwrap();
    assert_eq!(
        id_of(&active.sort("age", false).unwrap().get(0).unwrap()),
        3
    );
    assert_eq!(
        ids_in_order(&active.sort_by(&[("age", false), ("id", true)]).unwrap()),
        vec![3, 1, 5]
    );
    assert_eq!(
        f.realm
            .objects("Dog")
            .unwrap()
            .sort("name", true)
            .unwrap()
            .to_vec()
            .unwrap()[0]
            .get("name")
            .unwrap(),
        Value::from("Fido")
    );
}

#[test]
fn results_distinct_keeps_one_object_per_value() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let all = f.realm.objects("Person").unwrap();
    assert_eq!(ids(&all.distinct("age").unwrap()), vec![1, 2, 3, 4]);
    assert_eq!(all.distinct("age").unwrap().count().unwrap(), 4);
    assert_eq!(ids(&all.distinct("active").unwrap()), vec![1, 2]);
    // Each NULL counts as one value.
    assert_eq!(all.distinct("born").unwrap().count().unwrap(), 5);
    assert_eq!(
        all.distinct("dog").unwrap().count().unwrap(),
        3,
        "rex, fido and no dog"
    );
    // Distinct over two properties keeps one object per combination; chained distincts
    // apply one after the other, as Realm does.
    assert_eq!(
        ids(&f
            .realm
            .query("Person", "TRUEPREDICATE DISTINCT(active, age)", &[])
            .unwrap()),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        ids(&all.distinct("active").unwrap().distinct("age").unwrap()),
        vec![1, 2]
    );
    let active = f.realm.query("Person", "active == true", &[]).unwrap();
    assert_eq!(
        ids_in_order(&active.distinct("age").unwrap().sort("age", false).unwrap()),
        vec![3, 1]
    );
    assert_eq!(
        f.realm
            .objects("Dog")
            .unwrap()
            .distinct("name")
            .unwrap()
            .count()
            .unwrap(),
        3
    );
}

// ----- aggregates -----

#[test]
fn aggregates_compute_over_the_matching_objects() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let all = f.realm.objects("Person").unwrap();
    assert_eq!(all.count().unwrap(), 5);
    assert_eq!(all.min("age").unwrap(), Value::Int(18));
    assert_eq!(all.max("age").unwrap(), Value::Int(40));
    assert_eq!(all.sum("age").unwrap(), Value::Int(145));
    assert_eq!(all.average("age").unwrap(), Value::Double(29.0));
    assert_eq!(all.min("score").unwrap(), Value::Double(-3.25));
    assert_eq!(all.max("score").unwrap(), Value::Double(100.0));
    assert_eq!(all.sum("score").unwrap(), Value::Double(102.75));
    assert_eq!(all.average("score").unwrap(), Value::Double(102.75 / 5.0));
    assert_eq!(all.min("ratio").unwrap(), Value::Float(-1.0));
    assert_eq!(all.max("ratio").unwrap(), Value::Float(2.0));
    assert_eq!(all.sum("ratio").unwrap(), Value::Double(3.25));
    assert_eq!(all.average("ratio").unwrap(), Value::Double(0.65));
    // NULLs are skipped.
    assert_eq!(
        all.min("born").unwrap(),
        Value::Timestamp(Timestamp::new(-5, 0))
    );
    assert_eq!(
        all.max("born").unwrap(),
        Value::Timestamp(Timestamp::new(2000, 0))
    );

    let active = f.realm.query("Person", "active == true", &[]).unwrap();
    assert_eq!(active.sum("age").unwrap(), Value::Int(102));
    assert_eq!(active.average("age").unwrap(), Value::Double(34.0));
    assert_eq!(active.min("score").unwrap(), Value::Double(-3.25));
    assert_eq!(
        active.max("born").unwrap(),
        Value::Timestamp(Timestamp::new(1000, 0))
    );

    // Aggregates see only what LIMIT keeps.
    let top2 = f
        .realm
        .query(
            "Person",
            "TRUEPREDICATE SORT(age DESC, id ASC) LIMIT(2)",
            &[],
        )
        .unwrap();
    assert_eq!(top2.sum("age").unwrap(), Value::Int(71));
    assert_eq!(top2.min("age").unwrap(), Value::Int(31));

    let dogs = f.realm.objects("Dog").unwrap();
    assert_eq!(dogs.sum("age").unwrap(), Value::Int(11));
}

#[test]
fn aggregates_of_nothing_are_zero_sums_and_null_otherwise() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let none = f.realm.query("Person", "age > 1000", &[]).unwrap();
    assert_eq!(none.count().unwrap(), 0);
    assert!(none.is_empty().unwrap());
    assert_eq!(none.sum("age").unwrap(), Value::Int(0));
    assert_eq!(none.sum("score").unwrap(), Value::Double(0.0));
    assert_eq!(none.sum("ratio").unwrap(), Value::Double(0.0));
    assert_eq!(none.min("age").unwrap(), Value::Null);
    assert_eq!(none.max("score").unwrap(), Value::Null);
    assert_eq!(none.average("age").unwrap(), Value::Null);
    assert_eq!(none.average("score").unwrap(), Value::Null);
    assert_eq!(none.min("born").unwrap(), Value::Null);
    // Only NULLs: nothing to aggregate.
    let no_birth = f.realm.query("Person", "born == nil", &[]).unwrap();
    assert_eq!(no_birth.count().unwrap(), 1);
    assert_eq!(no_birth.max("born").unwrap(), Value::Null);
}

#[test]
fn aggregates_refuse_properties_they_cannot_compute() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let all = f.realm.objects("Person").unwrap();
    assert_eq!(all.sum("name").unwrap_err().code(), ErrorCode::WrongType);
    assert_eq!(all.min("name").unwrap_err().code(), ErrorCode::WrongType);
    assert_eq!(all.sum("born").unwrap_err().code(), ErrorCode::WrongType);
    assert_eq!(
        all.average("born").unwrap_err().code(),
        ErrorCode::WrongType
    );
    assert_eq!(all.max("active").unwrap_err().code(), ErrorCode::WrongType);
    assert_eq!(all.max("photo").unwrap_err().code(), ErrorCode::WrongType);
    assert_eq!(all.max("dog").unwrap_err().code(), ErrorCode::WrongType);
    assert_eq!(all.sum("dogs").unwrap_err().code(), ErrorCode::WrongType);
    assert_eq!(
        all.max("nope").unwrap_err().code(),
        ErrorCode::NoSuchProperty
    );
}

#[test]
fn results_index_past_the_end_is_an_error() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let r = f
        .realm
        .query("Person", "age == 31 SORT(id ASC)", &[])
        .unwrap();
    assert_eq!(id_of(&r.get(1).unwrap()), 5);
    assert_eq!(r.get(2).unwrap_err().code(), ErrorCode::IndexOutOfBounds);
    assert_eq!(r.class_name(), "Person");
}

// ----- deleting -----

#[test]
fn delete_all_removes_exactly_the_matching_objects() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let old = f.realm.query("Person", "age > 30", &[]).unwrap();
    assert_eq!(
        old.delete_all().unwrap_err().code(),
        ErrorCode::NotInWriteTransaction
    );
    f.realm.begin_write().unwrap();
    assert_eq!(old.delete_all().unwrap(), 3);
    assert_eq!(
        old.count().unwrap(),
        0,
        "live results are empty after their objects are deleted"
    );
    assert!(!f.people[0].is_valid());
    assert!(f.people[1].is_valid());
    f.realm.commit().unwrap();
    assert_eq!(q(&f.realm, "TRUEPREDICATE", &[]), vec![2, 4]);
    assert!(f
        .realm
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .is_none());
    assert_eq!(
        f.people[2].get("age").unwrap_err().code(),
        ErrorCode::ObjectDeleted
    );
    // Deleting nothing is fine.
    f.realm.begin_write().unwrap();
    assert_eq!(old.delete_all().unwrap(), 0);
    f.realm.commit().unwrap();
    assert_eq!(f.realm.objects("Person").unwrap().count().unwrap(), 2);
}

#[test]
fn deleting_dogs_through_results_nulls_links_and_empties_lists() {
    let t = TempRealm::new();
    let f = fixture(&t);
    f.realm.begin_write().unwrap();
    // rex and fido; spot stays.
    assert_eq!(
        f.realm
            .query("Dog", "age > 2", &[])
            .unwrap()
            .delete_all()
            .unwrap(),
        2
    );
    f.realm.commit().unwrap();
    assert!(!f.rex.is_valid());
    assert!(!f.fido.is_valid());
    assert!(f.spot.is_valid());
    assert_eq!(q(&f.realm, "dog == nil", &[]), vec![1, 2, 3, 4, 5]);
    assert_eq!(q(&f.realm, "dogs.@count == 0", &[]), vec![1, 2, 3, 4, 5]);
    assert_eq!(q(&f.realm, "dog.name == 'Rex'", &[]), Vec::<i64>::new());
    for p in &f.people {
        assert_eq!(p.get("dog").unwrap(), Value::Null);
        assert!(p.get_link("dog").unwrap().is_none());
        assert!(p.list("dogs").unwrap().is_empty().unwrap());
    }
    assert_eq!(f.realm.objects("Dog").unwrap().count().unwrap(), 1);
}

#[test]
fn deleting_one_list_target_keeps_the_other_entries_in_order() {
    let t = TempRealm::new();
    let f = fixture(&t);
    f.realm.begin_write().unwrap();
    f.rex.delete().unwrap();
    // Inside the transaction the effects are visible already.
    assert_eq!(
        f.people[3].list("dogs").unwrap().to_vec().unwrap(),
        vec![f.fido.link()]
    );
    f.realm.commit().unwrap();
    assert_eq!(
        f.people[0].list("dogs").unwrap().to_vec().unwrap(),
        vec![f.fido.link()]
    );
    assert_eq!(
        f.people[3].list("dogs").unwrap().to_vec().unwrap(),
        vec![f.fido.link()]
    );
    assert_eq!(f.people[1].get("dog").unwrap(), f.fido.link());
    assert_eq!(q(&f.realm, "dog == nil", &[]), vec![1, 3, 4, 5]);
    assert_eq!(q(&f.realm, "dogs.@count == 1", &[]), vec![1, 2, 4]);
    assert_eq!(
        f.rex.get("name").unwrap_err().code(),
        ErrorCode::ObjectDeleted
    );
    assert_eq!(
        f.rex.list("dogs").unwrap_err().code(),
        ErrorCode::ObjectDeleted
    );
}

#[test]
fn an_object_stays_valid_on_another_handle_until_it_refreshes() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let other = open_people(&t);
    let ann_there = other
        .find_object("Person", &Value::Int(1))
        .unwrap()
        .unwrap();
    f.realm.begin_write().unwrap();
    f.people[0].delete().unwrap();
    f.realm.commit().unwrap();
    assert!(!f.people[0].is_valid());
    assert!(
        ann_there.is_valid(),
        "the other handle still reads its snapshot"
    );
    assert_eq!(ann_there.get("name").unwrap(), Value::from("Ann"));
    assert!(other.refresh().unwrap());
    assert!(!ann_there.is_valid());
    assert_eq!(
        ann_there.get("name").unwrap_err().code(),
        ErrorCode::ObjectDeleted
    );
}

// ----- indexes and primary keys -----

#[test]
fn indexed_equality_agrees_with_a_full_scan_after_updates_and_deletes() {
    let t = TempRealm::new();
    let realm = Realm::open(&t.config(people_schema())).unwrap();
    realm.begin_write().unwrap();
    for i in 0..600 {
        let p = realm.create_object("Person", Some(&Value::Int(i))).unwrap();
        p.set("name", format!("n{}", i % 37)).unwrap();
        p.set("age", i % 5).unwrap();
    }
    realm.commit().unwrap();

    // The expected matches from reading every object.
    let scan = |name: &Value| -> Vec<i64> {
        let mut v: Vec<i64> = realm
            .objects("Person")
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .filter(|p| p.get("name").unwrap() == *name)
            .map(id_of)
            .collect();
        v.sort_unstable();
        v
    };
    let check_all = |label: &str| {
        for n in 0..40 {
            let name = Value::from(format!("n{n}"));
            assert_eq!(
                q(&realm, "name == $0", std::slice::from_ref(&name)),
                scan(&name),
                "{label}: name == n{n}"
            );
        }
        assert_eq!(
            q(&realm, "name == nil", &[]),
            scan(&Value::Null),
            "{label}: name == nil"
        );
        assert_eq!(
            q(&realm, "name == 'renamed'", &[]),
            scan(&Value::from("renamed")),
            "{label}: renamed"
        );
    };
    check_all("initial");
    assert_eq!(q(&realm, "name == 'n3'", &[]).len(), 17);

    realm.begin_write().unwrap();
    for i in (0..600).step_by(3) {
        let p = realm
            .find_object("Person", &Value::Int(i))
            .unwrap()
            .unwrap();
        match i % 4 {
            0 => p.set("name", "renamed").unwrap(),
            1 => p.set("name", Value::Null).unwrap(),
            2 => p.set("name", format!("n{}", (i + 1) % 37)).unwrap(),
            _ => p.delete().unwrap(),
        }
    }
    // Inside the transaction the index already reflects the changes.
    check_all("in transaction");
    realm.commit().unwrap();
    check_all("after commit");

    // A value that only deleted objects had is not found; reusing it finds the new object.
    realm.begin_write().unwrap();
    for p in realm
        .query("Person", "name == 'n5'", &[])
        .unwrap()
        .to_vec()
        .unwrap()
    {
        p.delete().unwrap();
    }
    assert!(q(&realm, "name == 'n5'", &[]).is_empty());
    let p = realm
        .create_object("Person", Some(&Value::Int(10_000)))
        .unwrap();
    p.set("name", "n5").unwrap();
    realm.commit().unwrap();
    assert_eq!(q(&realm, "name == 'n5'", &[]), vec![10_000]);
    check_all("after reuse");

    // The index survives a reopen.
    drop(p);
    drop(realm);
    let realm = Realm::open(&t.config(people_schema())).unwrap();
    assert_eq!(q(&realm, "name == 'n5'", &[]), vec![10_000]);
    assert_eq!(q(&realm, "name == 'n5' AND age == 0", &[]), vec![10_000]);
    assert_eq!(
        q(&realm, "name == 'n5' AND age == 1", &[]),
        Vec::<i64>::new()
    );
}

#[test]
fn thousands_of_duplicates_of_an_indexed_value_are_all_found() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    // 2000 "dup" interleaved with unique names, so the duplicates span many index chunks and
    // sit between other values.
    for i in 0..4000 {
        let p = realm.create_object("Person", Some(&Value::Int(i))).unwrap();
        if i % 2 == 0 {
            p.set("name", "dup").unwrap();
        } else {
            p.set("name", format!("u{i}")).unwrap();
        }
        p.set("age", i % 10).unwrap();
    }
    realm.commit().unwrap();
    let dups: Vec<i64> = (0..4000).step_by(2).collect();
    assert_eq!(q(&realm, "name == 'dup'", &[]), dups);
    assert_eq!(q(&realm, "name == 'u3999'", &[]), vec![3999]);

    // Delete every other duplicate (1000 of them).
    realm.begin_write().unwrap();
    for i in (0..4000).step_by(4) {
        realm
            .find_object("Person", &Value::Int(i))
            .unwrap()
            .unwrap()
            .delete()
            .unwrap();
    }
    realm.commit().unwrap();
    let remaining: Vec<i64> = (2..4000).step_by(4).collect();
    assert_eq!(remaining.len(), 1000);
    assert_eq!(q(&realm, "name == 'dup'", &[]), remaining);
    assert_eq!(
        q(&realm, "name == 'dup' AND age == 2", &[]),
        (2..4000).step_by(20).collect::<Vec<i64>>()
    );
    assert_eq!(
        q(&realm, "age == 2 AND name == 'dup'", &[]),
        (2..4000).step_by(20).collect::<Vec<i64>>()
    );

    // Rename the first 500 remaining duplicates; add 700 new ones.
    realm.begin_write().unwrap();
    for &i in &remaining[..500] {
        realm
            .find_object("Person", &Value::Int(i))
            .unwrap()
            .unwrap()
            .set("name", "other")
            .unwrap();
    }
    for i in 0..700 {
        realm
            .create_object("Person", Some(&Value::Int(100_000 + i)))
            .unwrap()
            .set("name", "dup")
            .unwrap();
    }
    let mut expected: Vec<i64> = remaining[500..].to_vec();
    expected.extend(100_000..100_700);
    assert_eq!(
        q(&realm, "name == 'dup'", &[]),
        expected,
        "inside the transaction"
    );
    realm.commit().unwrap();
    assert_eq!(q(&realm, "name == 'dup'", &[]), expected);
    assert_eq!(q(&realm, "name == 'other'", &[]), remaining[..500].to_vec());

    // A cancelled transaction leaves the index as it was.
    realm.begin_write().unwrap();
    realm
        .query("Person", "name == 'dup'", &[])
        .unwrap()
        .delete_all()
        .unwrap();
    assert!(q(&realm, "name == 'dup'", &[]).is_empty());
    realm.cancel_write().unwrap();
    assert_eq!(q(&realm, "name == 'dup'", &[]), expected);
}

#[test]
fn primary_key_equality_finds_objects_after_updates_and_deletes() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.begin_write().unwrap();
    for i in 0..3000 {
        realm
            .create_object("Person", Some(&Value::Int(i * 7 - 5000)))
            .unwrap()
            .set("age", i)
            .unwrap();
    }
    realm.commit().unwrap();
    // Keys are i * 7 - 5000 with age i.
    assert_eq!(q(&realm, "id == 5", &[]), vec![5]);
    assert_eq!(q(&realm, "id == -5000", &[]), vec![-5000]);
    assert_eq!(q(&realm, "id == 6", &[]), Vec::<i64>::new());
    assert_eq!(q(&realm, "id == $0", &[Value::Int(15_993)]), vec![15_993]);
    // A double argument is not the key's type but still compares numerically.
    assert_eq!(q(&realm, "id == $0", &[Value::Double(5.0)]), vec![5]);
    assert_eq!(q(&realm, "id == 5 AND age == 715", &[]), vec![5]);
    assert_eq!(q(&realm, "age == 715 AND id == 5", &[]), vec![5]);
    assert_eq!(q(&realm, "id == 5 AND age == 714", &[]), Vec::<i64>::new());
    realm.begin_write().unwrap();
    realm
        .find_object("Person", &Value::Int(5))
        .unwrap()
        .unwrap()
        .delete()
        .unwrap();
    assert_eq!(q(&realm, "id == 5", &[]), Vec::<i64>::new());
    realm
        .create_object("Person", Some(&Value::Int(6)))
        .unwrap()
        .set("age", -1)
        .unwrap();
    realm.commit().unwrap();
    assert_eq!(q(&realm, "id == 5", &[]), Vec::<i64>::new());
    assert_eq!(q(&realm, "id == 6 AND age == -1", &[]), vec![6]);
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 3000);
}

fn items_schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Item", None).unwrap();
    s.add_property("Item", "code", T::Int, F::INDEXED, None)
        .unwrap();
    s.add_property("Item", "flag", T::Bool, F::INDEXED, None)
        .unwrap();
    s.add_property("Item", "at", T::Timestamp, F::INDEXED | F::NULLABLE, None)
        .unwrap();
    s.add_property("Item", "label", T::String, F::INDEXED, None)
        .unwrap();
    s.add_property("Item", "n", T::Int, F::NONE, None).unwrap();
    s
}

#[test]
fn indexed_int_bool_and_timestamp_properties_find_exactly_their_matches() {
    let t = TempRealm::new();
    let realm = Realm::open(&t.config(items_schema())).unwrap();
    realm.begin_write().unwrap();
    let mut items = Vec::new();
    for i in 0..1200i64 {
        let it = realm.create_object("Item", None).unwrap();
        it.set("n", i).unwrap();
        it.set("code", i % 7 - 3).unwrap();
        it.set("flag", i % 3 == 0).unwrap();
        if i % 5 != 0 {
            it.set("at", Timestamp::new(i % 4, (i % 2) as i32)).unwrap();
        }
        it.set("label", ["", "x", "X"][(i % 3) as usize]).unwrap();
        items.push(it);
    }
    realm.commit().unwrap();

    let ns = |pred: &str, args: &[Value]| -> Vec<i64> {
        let mut v: Vec<i64> = realm
            .query("Item", pred, args)
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .map(|o| o.get("n").unwrap().as_int().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    let expect = |f: &dyn Fn(i64) -> bool| (0..1200).filter(|&i| f(i)).collect::<Vec<i64>>();
    assert_eq!(ns("code == -3", &[]), expect(&|i| i % 7 == 0));
    assert_eq!(ns("code == 0", &[]), expect(&|i| i % 7 == 3));
    assert_eq!(
        ns("code == 0.0", &[]),
        expect(&|i| i % 7 == 3),
        "a double literal on an indexed int"
    );
    assert_eq!(
        ns("code == $0", &[Value::Float(3.0)]),
        expect(&|i| i % 7 == 6)
    );
    assert_eq!(ns("flag == true", &[]), expect(&|i| i % 3 == 0));
    assert_eq!(ns("flag == false", &[]), expect(&|i| i % 3 != 0));
    assert_eq!(
        ns("at == $0", &[Value::Timestamp(Timestamp::new(1, 1))]),
        expect(&|i| i % 5 != 0 && i % 4 == 1 && i % 2 == 1)
    );
    assert_eq!(
        ns("at == $0", &[Value::Timestamp(Timestamp::new(2, 0))]),
        expect(&|i| i % 5 != 0 && i % 4 == 2)
    );
    assert_eq!(ns("at == nil", &[]), expect(&|i| i % 5 == 0));
    assert_eq!(ns("label == ''", &[]), expect(&|i| i % 3 == 0));
    assert_eq!(ns("label == 'x'", &[]), expect(&|i| i % 3 == 1));
    // Case-insensitive equality cannot use the index but must still find both spellings.
    assert_eq!(ns("label ==[c] 'x'", &[]), expect(&|i| i % 3 != 0));
    assert_eq!(
        ns("code == 0 AND flag == true", &[]),
        expect(&|i| i % 7 == 3 && i % 3 == 0)
    );

    // Update every item: indexes follow.
    realm.begin_write().unwrap();
    for (i, it) in items.iter().enumerate() {
        let i = i as i64;
        if i % 11 == 0 {
            it.delete().unwrap();
            continue;
        }
        it.set("code", i % 2).unwrap();
        it.set("flag", i % 3 != 0).unwrap();
        it.set(
            "at",
            if i % 5 == 0 {
                Value::Timestamp(Timestamp::new(9, 9))
            } else {
                Value::Null
            },
        )
        .unwrap();
    }
    realm.commit().unwrap();
    let live = |i: i64| i % 11 != 0;
    assert_eq!(ns("code == -3", &[]), Vec::<i64>::new());
    assert_eq!(ns("code == 1", &[]), expect(&|i| live(i) && i % 2 == 1));
    assert_eq!(ns("code == 0", &[]), expect(&|i| live(i) && i % 2 == 0));
    assert_eq!(ns("flag == true", &[]), expect(&|i| live(i) && i % 3 != 0));
    assert_eq!(
        ns("at == $0", &[Value::Timestamp(Timestamp::new(9, 9))]),
        expect(&|i| live(i) && i % 5 == 0)
    );
    assert_eq!(
        ns("at == $0", &[Value::Timestamp(Timestamp::new(1, 1))]),
        Vec::<i64>::new()
    );
    assert_eq!(ns("at == nil", &[]), expect(&|i| live(i) && i % 5 != 0));
}

// ----- live results -----

#[test]
fn results_rerun_after_a_commit_on_the_same_handle() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let old = f.realm.query("Person", "age > 30", &[]).unwrap();
    let sorted = f
        .realm
        .query("Person", "TRUEPREDICATE SORT(age DESC, id ASC)", &[])
        .unwrap();
    assert_eq!(ids(&old), vec![1, 3, 5]);
    assert_eq!(id_of(&sorted.get(0).unwrap()), 3);
    f.realm.begin_write().unwrap();
    let p = f
        .realm
        .create_object("Person", Some(&Value::Int(6)))
        .unwrap();
    p.set("age", 90).unwrap();
    // Inside the transaction the results show the uncommitted state.
    assert_eq!(ids(&old), vec![1, 3, 5, 6]);
    f.people[2].set("age", 1).unwrap();
    assert_eq!(ids(&old), vec![1, 5, 6]);
    f.realm.commit().unwrap();
    assert_eq!(ids(&old), vec![1, 5, 6]);
    assert_eq!(ids_in_order(&sorted), vec![6, 1, 5, 2, 4, 3]);
    assert_eq!(id_of(&sorted.get(0).unwrap()), 6);
    assert_eq!(id_of(&sorted.get(5).unwrap()), 3);
    assert_eq!(old.sum("age").unwrap(), Value::Int(31 + 31 + 90));
    // A cancelled change disappears from the results again.
    f.realm.begin_write().unwrap();
    p.set("age", 0).unwrap();
    assert_eq!(ids(&old), vec![1, 5]);
    f.realm.cancel_write().unwrap();
    assert_eq!(ids(&old), vec![1, 5, 6]);
}

#[test]
fn results_of_another_handle_change_only_after_it_refreshes() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let other = open_people(&t);
    let theirs = other.query("Person", "age > 30", &[]).unwrap();
    let all_theirs = other.objects("Person").unwrap();
    assert_eq!(ids(&theirs), vec![1, 3, 5]);
    f.realm.begin_write().unwrap();
    f.realm
        .create_object("Person", Some(&Value::Int(6)))
        .unwrap()
        .set("age", 50)
        .unwrap();
    f.people[0].set("age", 10).unwrap();
    f.realm.commit().unwrap();
    assert_eq!(
        ids(&theirs),
        vec![1, 3, 5],
        "the other handle still reads its snapshot"
    );
    assert_eq!(all_theirs.count().unwrap(), 5);
    assert!(other.refresh().unwrap());
    assert_eq!(ids(&theirs), vec![3, 5, 6]);
    assert_eq!(all_theirs.count().unwrap(), 6);
    assert!(!other.refresh().unwrap(), "nothing new");
    assert_eq!(ids(&theirs), vec![3, 5, 6]);
}

// ----- errors -----

#[test]
fn bad_queries_are_invalid_query_errors() {
    let t = TempRealm::new();
    let f = fixture(&t);
    let r = &f.realm;
    let two = [Value::Int(1), Value::Int(2)];
    let cases: &[(&str, &[Value])] = &[
        // Syntax.
        ("", &[]),
        ("age >", &[]),
        ("age == == 3", &[]),
        ("age == 1 AND", &[]),
        ("(age == 1", &[]),
        ("age == 1)", &[]),
        ("name == 'unterminated", &[]),
        ("age ~ 3", &[]),
        ("SORT(age ASC)", &[]),
        ("TRUEPREDICATE SORT(age)", &[]),
        ("TRUEPREDICATE LIMIT(-1)", &[]),
        // Unknown properties and paths.
        ("nope == 1", &[]),
        ("dog.nope == 1", &[]),
        ("age.foo == 1", &[]),
        ("age.@count == 1", &[]),
        ("dogs.@count.x == 1", &[]),
        ("TRUEPREDICATE SORT(nope ASC)", &[]),
        ("TRUEPREDICATE DISTINCT(nope)", &[]),
        // Types.
        ("age == 'x'", &[]),
        ("name == 5", &[]),
        ("active == 1", &[]),
        ("active == 'true'", &[]),
        ("score == 'x'", &[]),
        ("born == 5", &[]),
        ("born == 'x'", &[]),
        ("dog == 5", &[]),
        ("dog == 'Rex'", &[]),
        ("age BEGINSWITH 'a'", &[]),
        ("active CONTAINS 'a'", &[]),
        ("active > false", &[]),
        ("photo < B64\"AQID\"", &[]),
        ("dogs.@count == 'x'", &[]),
        ("age == $0", &[Value::from("x")]),
        ("name == $0", &[Value::Int(1)]),
        ("born == $0", &[Value::Int(1)]),
        // Arguments.
        ("age == $3", &two),
        ("age == $0", &[]),
        // No property at all.
        ("1 == 1", &[]),
    ];
    for (predicate, args) in cases {
        assert_eq!(
            query_error(r, predicate, args),
            ErrorCode::InvalidQuery,
            "query {predicate:?}"
        );
    }
    assert_eq!(
        r.query("Nope", "TRUEPREDICATE", &[]).unwrap_err().code(),
        ErrorCode::NoSuchClass
    );
    // Unknown properties named through the API (not a query string) are NoSuchProperty,
    // as for Object::get and the aggregates.
    let all = r.objects("Person").unwrap();
    assert_eq!(
        all.sort("nope", true).unwrap_err().code(),
        ErrorCode::NoSuchProperty
    );
    assert_eq!(
        all.sort_by(&[("age", true), ("dog.nope", true)])
            .unwrap_err()
            .code(),
        ErrorCode::NoSuchProperty
    );
    assert_eq!(
        all.distinct("nope").unwrap_err().code(),
        ErrorCode::NoSuchProperty
    );
    // An error does not disturb later queries.
    assert_eq!(q(r, "age == 40", &[]), vec![3]);
}

#[test]
fn queries_on_a_realm_opened_without_a_schema_use_the_files_schema() {
    let t = TempRealm::new();
    let f = fixture(&t);
    drop(f);
    let dynamic = Realm::open(&Config::new(t.path.clone())).unwrap();
    assert_eq!(q(&dynamic, "dog.name == 'Rex' AND age > 20", &[]), vec![1]);
    assert_eq!(
        query_error(&dynamic, "nope == 1", &[]),
        ErrorCode::InvalidQuery
    );
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn indexed_lookups_match_a_model_through_random_updates_commits_and_cancels() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // The model: id -> name (None for NULL). Few distinct names, so each has many duplicates
    // spread over many index chunks.
    let mut model: std::collections::BTreeMap<i64, Option<String>> = Default::default();
    let mut next_id = 0i64;
    let name_for = |r: u64| -> Option<String> {
        match r % 10 {
            0 => None,
            1..=6 => Some(format!("common{}", r % 3)),
            _ => Some(format!("rare{}", r % 50)),
        }
    };
    for round in 0..12 {
        realm.begin_write().unwrap();
        let mut pending = model.clone();
        let ops = 200 + rng.below(800);
        for _ in 0..ops {
            match rng.below(10) {
                0..=3 => {
                    let name = name_for(rng.next());
                    realm
                        .create_object("Person", Some(&Value::Int(next_id)))
                        .unwrap()
                        .set("name", name.clone())
                        .unwrap();
                    pending.insert(next_id, name);
                    next_id += 1;
                }
                4..=7 if !pending.is_empty() => {
                    let id = *pending
                        .keys()
                        .nth(rng.below(pending.len() as u64) as usize)
                        .unwrap();
                    let name = name_for(rng.next());
                    realm
                        .find_object("Person", &Value::Int(id))
                        .unwrap()
                        .unwrap()
                        .set("name", name.clone())
                        .unwrap();
                    pending.insert(id, name);
                }
                _ if !pending.is_empty() => {
                    let id = *pending
                        .keys()
                        .nth(rng.below(pending.len() as u64) as usize)
                        .unwrap();
                    realm
                        .find_object("Person", &Value::Int(id))
                        .unwrap()
                        .unwrap()
                        .delete()
                        .unwrap();
                    pending.remove(&id);
                }
                _ => {}
            }
        }
        let commit = rng.below(4) != 0;
        if commit {
            realm.commit().unwrap();
            model = pending;
        } else {
            realm.cancel_write().unwrap();
        }
        let mut names: Vec<String> = (0..3).map(|i| format!("common{i}")).collect();
        names.extend((0..50).map(|i| format!("rare{i}")));
        names.push("absent".into());
        for name in &names {
            let expected: Vec<i64> = model
                .iter()
                .filter(|(_, n)| n.as_deref() == Some(name.as_str()))
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(
                q(&realm, "name == $0", &[Value::from(name.as_str())]),
                expected,
                "round {round} ({}): {name}",
                if commit { "commit" } else { "cancel" }
            );
        }
        let nulls: Vec<i64> = model
            .iter()
            .filter(|(_, n)| n.is_none())
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(q(&realm, "name == nil", &[]), nulls, "round {round}: NULL");
        assert_eq!(
            realm.objects("Person").unwrap().count().unwrap(),
            model.len()
        );
    }
}

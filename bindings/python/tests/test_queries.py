"""Queries (every operator of the predicate language) and results."""

from __future__ import annotations

import datetime as dt

import pytest

import shoal

UTC = dt.timezone.utc


def ids(results):
    return sorted(o["id"] for o in results)


@pytest.mark.parametrize(
    "predicate,args,expected",
    [
        ("age == 25", (), [2, 4]),
        ("age = 25", (), [2, 4]),
        ("age != 25", (), [1, 3, 5]),
        ("age < 31", (), [2, 4]),
        ("age <= 31", (), [1, 2, 4]),
        ("age > 40", (), [5]),
        ("age >= 40", (), [3, 5]),
        ("age == $0", (25,), [2, 4]),
        ("$0 < age", (40,), [5]),
        ("score > $0", (8.0,), [1, 3, 5]),
        ("height > $0", (1.7,), [2, 4]),
        ("height == nil", (), [3]),
        ("height == $0", (None,), [3]),
        ("height != NULL", (), [1, 2, 4, 5]),
        ("active == true", (), [1, 3, 5]),
        ("active == $0", (False,), [2, 4]),
        ("name == 'Ann'", (), [1]),
        ("name == $0", ("bob",), [2]),
        ("name ==[c] 'BOB'", (), [2]),
        ("name != 'Ann'", (), [2, 3, 4, 5]),
        ("name BEGINSWITH 'Ca'", (), [3]),
        ("name BEGINSWITH[c] 'b'", (), [2]),
        ("name ENDSWITH 'ob'", (), [2]),
        ("name ENDSWITH[c] 'LA'", (), [3]),
        ("name CONTAINS 'a'", (), [3, 4, 5]),
        ("name CONTAINS[c] 'A'", (), [1, 3, 4, 5]),
        ("name LIKE '?a*'", (), [3, 4]),
        ("name LIKE[c] 'a*'", (), [1]),
        ("name LIKE '*v*'", (), [4, 5]),
        ("name BEGINSWITH $0", ("É",), [5]),
        ("age == 25 AND active == false", (), [2, 4]),
        ("age == 25 && name == 'bob'", (), [2]),
        ("age == 31 OR age == 58", (), [1, 5]),
        ("age == 31 || name == 'dave'", (), [1, 4]),
        ("NOT age == 25", (), [1, 3, 5]),
        ("!(age == 25)", (), [1, 3, 5]),
        ("(age == 25 OR age == 31) AND active == true", (), [1]),
        ("age == 25 OR (age == 31 AND active == true)", (), [1, 2, 4]),
        ("TRUEPREDICATE", (), [1, 2, 3, 4, 5]),
        ("FALSEPREDICATE", (), []),
        ("best_friend.name == 'Ann'", (), [2]),
        ("best_friend == $0", ("__ann__",), [2]),
        ("best_friend == nil", (), [1, 3, 4, 5]),
        ("dogs.@count == 2", (), [1]),
        ("tags.@count > 0", (), [1, 3, 4]),
        ("tags.@size == 3", (), [4]),
        ("tags == 'a'", (), [1, 3]),
        ("tags == 'admin'", (), [1]),
        ("dogs.name == 'Rex'", (), [1]),
        ("dogs.age > 5", (), [1]),
    ],
)
def test_operators(people, predicate, args, expected):
    args = tuple(people.find("Person", 1) if a == "__ann__" else a for a in args)
    with people.query("Person", predicate, *args) as results:
        assert ids(results) == expected


def test_query_on_timestamps_and_binary(realm):
    t0 = dt.datetime(2020, 1, 1, tzinfo=UTC)
    with realm.write():
        for i in range(4):
            realm.create("Item", f"s{i}", price=i * 1.5, qty=i, added=t0 + dt.timedelta(days=i))
        realm.create("Person", 1, photo=b"\x00\x01")
        realm.create("Person", 2, photo=b"\x02")
    assert len(realm.query("Item", "added > $0", t0 + dt.timedelta(hours=36))) == 2
    assert len(realm.query("Item", "added >= $0 AND added < $1", t0, t0 + dt.timedelta(days=1))) == 1
    assert [o["id"] for o in realm.query("Person", "photo == $0", b"\x00\x01")] == [1]
    assert len(realm.query("Item", "sku == 's1' OR sku == 's3'")) == 2


def test_predicate_sort_distinct_limit(people):
    r = people.query("Person", "TRUEPREDICATE SORT(age DESC, name ASC)")
    assert [o["id"] for o in r] == [5, 3, 1, 2, 4]
    r = people.query("Person", "age < 50 DISTINCT(age)")
    assert sorted(o["age"] for o in r) == [25, 31, 40]
    r = people.query("Person", "TRUEPREDICATE SORT(id ASC) LIMIT(2)")
    assert [o["id"] for o in r] == [1, 2]


@pytest.mark.parametrize(
    "predicate,args",
    [
        ("age ==", ()),
        ("age == 'old'", ()),
        ("wings == 2", ()),
        ("age == $0", ()),  # a missing argument
        ("name BEGINSWITH 5", ()),
        ("(age == 1", ()),
        ("age === 1", ()),
        ("", ()),
    ],
)
def test_invalid_queries(people, predicate, args):
    with pytest.raises(shoal.InvalidQuery) as e:
        people.query("Person", predicate, *args)
    assert isinstance(e.value, ValueError)


def test_query_unknown_class(people):
    with pytest.raises(shoal.NoSuchClass):
        people.query("Cat", "TRUEPREDICATE")


def test_results_len_index_iteration(people):
    r = people.objects("Person").sort("id")
    assert len(r) == 5 and bool(r)
    assert r[0]["id"] == 1 and r[-1]["id"] == 5 and r[-5]["id"] == 1
    assert [o["id"] for o in r[1:3]] == [2, 3]
    with pytest.raises(shoal.IndexOutOfBounds):
        r[5]
    with pytest.raises(IndexError):
        r[-6]
    assert [o["id"] for o in r] == [1, 2, 3, 4, 5]
    assert r.first()["id"] == 1
    assert people.query("Person", "FALSEPREDICATE").first() is None
    assert not people.query("Person", "FALSEPREDICATE")


def test_sort_and_sort_by(people):
    by_name = people.objects("Person").sort("name")
    assert [o["name"] for o in by_name][:2] == ["Ann", "Carla"]
    desc = people.objects("Person").sort("age", ascending=False)
    assert [o["age"] for o in desc] == [58, 40, 31, 25, 25]
    multi = people.objects("Person").sort_by([("age", True), ("name", False)])
    assert [o["id"] for o in multi] == [4, 2, 1, 3, 5]
    multi = people.objects("Person").sort_by(["active", ("score", False)])
    assert [o["id"] for o in multi] == [2, 4, 1, 5, 3]
    by_friend = people.objects("Person").sort("best_friend.name")  # a path through a link
    assert len(by_friend) == 5
    with pytest.raises(shoal.ShoalError):
        people.objects("Person").sort("wings")


def test_distinct(people):
    d = people.objects("Person").sort("id").distinct("age")
    assert [o["id"] for o in d] == [1, 2, 3, 5]
    assert len(people.objects("Person").distinct("active")) == 2


def test_aggregates(people):
    r = people.objects("Person")
    assert r.min("age") == 25 and r.max("age") == 58
    assert r.sum("age") == 179 and isinstance(r.sum("age"), int)
    assert r.average("age") == pytest.approx(179 / 5)
    assert r.sum("score") == pytest.approx(40.25)
    assert r.min("height") == pytest.approx(1.60) and r.max("height") == pytest.approx(1.80)
    assert r.average("height") == pytest.approx((1.62 + 1.80 + 1.75 + 1.60) / 4, rel=1e-6)  # NULL skipped
    adults = people.query("Person", "age > 30")
    assert adults.sum("age") == 31 + 40 + 58


def test_aggregates_of_empty_results(people):
    r = people.query("Person", "FALSEPREDICATE")
    assert r.min("age") is None and r.max("age") is None and r.average("age") is None
    assert r.sum("age") == 0 and r.sum("score") == 0.0


def test_aggregate_errors(people):
    r = people.objects("Person")
    with pytest.raises(shoal.WrongType):
        r.sum("name")
    with pytest.raises(shoal.WrongType):
        r.average("active")
    with pytest.raises(shoal.NoSuchProperty):
        r.min("wings")


def test_timestamp_min_max(realm):
    t0 = dt.datetime(2020, 1, 1, tzinfo=UTC)
    with realm.write():
        for i in range(3):
            realm.create("Item", f"s{i}", added=t0 + dt.timedelta(days=i))
    r = realm.objects("Item")
    assert r.min("added") == t0 and r.max("added") == t0 + dt.timedelta(days=2)


def test_results_are_live(people):
    young = people.query("Person", "age < 30")
    assert len(young) == 2
    with people.write():
        people.create("Person", 6, age=20)
        assert len(young) == 3  # sees the write transaction
    assert len(young) == 3
    with people.write():
        people.find("Person", 2)["age"] = 33
    assert ids(young) == [4, 6]


def test_delete_all(people):
    dogs = people.objects("Dog")
    with people.write():
        assert dogs.delete_all() == 2
    assert len(dogs) == 0
    assert len(people.find("Person", 1)["dogs"]) == 0
    with people.write():
        assert people.query("Person", "age == 25").delete_all() == 2
    assert ids(people.objects("Person")) == [1, 3, 5]


def test_deleting_while_iterating(people):
    with people.write():
        for o in people.objects("Person"):
            o.delete()
    assert people.is_empty is False  # Items/Dogs left
    assert len(people.objects("Person")) == 0


def test_results_handles_release(people):
    with people.objects("Person") as r:
        assert len(r) == 5
    with pytest.raises(shoal.Misuse):
        len(r)

"""Core bugs found through the binding (outside src/ffi): each test asserts the correct
behaviour; all were fixed in the core and stay as regression tests."""

from __future__ import annotations

import threading

import pytest

import shoal

from conftest import SCHEMA


def test_max_ignores_order_of_nan(realm):
    with realm.write():
        realm.create("Person", 1, score=float("nan"))
        realm.create("Person", 2, score=1.0)
        realm.create("Person", 3, score=2.0)
    with realm.write():  # the same values in another order
        realm.create("Item", "a", price=1.0)
        realm.create("Item", "b", price=float("nan"))
        realm.create("Item", "c", price=2.0)
    assert realm.objects("Item").max("price") == 2.0
    assert realm.objects("Person").max("score") == 2.0  # NaN first: returns NaN


def _open_concurrently(path, n, **config):
    barrier = threading.Barrier(n)
    realms, errors = [], []
    lock = threading.Lock()

    def go():
        cfg = shoal.Config(path, schema=SCHEMA, **config)
        barrier.wait()
        try:
            r = shoal.Realm.open(cfg)
            with lock:
                realms.append(r)
        except shoal.ShoalError as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return realms, errors


def test_concurrent_first_open_of_a_new_file(tmp_path):
    failures = []
    for attempt in range(5):
        realms, errors = _open_concurrently(str(tmp_path / f"new{attempt}.realm"), 4)
        failures += errors
        for r in realms:
            r.close()
    assert failures == []


def test_initial_data_runs_once_under_concurrent_opens(tmp_path):
    runs = []
    lock = threading.Lock()

    def seed(realm):
        with lock:
            runs.append(1)
        realm.create("Dog", name="seed")

    for attempt in range(5):
        path = str(tmp_path / f"seed{attempt}.realm")
        shoal.Realm.open(shoal.Config(path)).close()  # an initialized file without a schema
        with shoal.Realm.open(shoal.Config(path)):  # kept open: both threads share the file
            realms, errors = _open_concurrently(path, 2, initial_data=seed)
            assert errors == []
            realms[0].refresh()
            dogs = len(realms[0].objects("Dog"))
            for r in realms:
                r.close()
        assert dogs == 1
    assert len(runs) == 5


def test_distinct_after_sort_keeps_the_first_in_sorted_order(people):
    # ages by id: 1:31, 2:25, 3:40, 4:25, 5:58; by id descending, age 25 is first met at id 4
    r = people.objects("Person").sort("id", ascending=False).distinct("age")
    assert [o["id"] for o in r] == [5, 4, 3, 1]


def test_sort_after_limit_only_reorders(people):
    top2 = people.query("Person", "TRUEPREDICATE SORT(age DESC) LIMIT(2)")
    assert sorted(o["id"] for o in top2) == [3, 5]
    assert [o["id"] for o in top2.sort("id")] == [3, 5]

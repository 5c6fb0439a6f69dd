"""Threads: concurrent writers and change callbacks delivered on a library thread."""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time

import pytest

import shoal

TIMEOUT = 20


def test_second_writer_waits_for_the_first(config):
    a = shoal.Realm.open(config)
    b = shoal.Realm.open(config)
    events: "queue.Queue[str]" = queue.Queue()
    ready = threading.Event()
    seen_by_b = []

    def writer_b():
        ready.set()
        b.begin_write()  # blocks while `a` writes
        events.put("b began")
        seen_by_b.append(b.find("Person", 1) is not None)
        b.create("Person", 2)
        b.commit()
        events.put("b committed")

    a.begin_write()
    a.create("Person", 1)
    t = threading.Thread(target=writer_b)
    t.start()
    assert ready.wait(TIMEOUT)
    with pytest.raises(queue.Empty):  # b cannot have begun: a still holds the write lock
        events.get(timeout=0.2)
    events.put("a commits")
    a.commit()
    t.join(TIMEOUT)
    assert not t.is_alive()
    assert [events.get_nowait() for _ in range(3)] == ["a commits", "b began", "b committed"]
    assert seen_by_b == [True]  # b's transaction started from a's commit
    a.refresh()
    assert sorted(o["id"] for o in a.objects("Person")) == [1, 2]
    a.close()
    b.close()


def test_same_thread_second_handle_is_already_in_write_transaction(config):
    with shoal.Realm.open(config) as a, shoal.Realm.open(config) as b:
        a.begin_write()
        with pytest.raises(shoal.AlreadyInWriteTransaction) as e:
            b.begin_write()  # would wait for itself forever
        assert "thread" in e.value.message
        a.commit()
        b.begin_write()  # fine once a is done
        b.cancel_write()


def test_closing_a_realm_in_a_write_releases_the_lock(config):
    a = shoal.Realm.open(config)
    a.begin_write()
    a.close()
    with shoal.Realm.open(config) as b:
        with b.write():
            b.create("Person", 1)
        assert len(b.objects("Person")) == 1


def test_handles_are_usable_from_another_thread(people):
    out = []

    def work():
        out.append([o["name"] for o in people.objects("Person").sort("id")])
        with people.write():
            people.find("Person", 1)["age"] = 77

    t = threading.Thread(target=work)
    t.start()
    t.join(TIMEOUT)
    assert out == [["Ann", "bob", "Carla", "dave", "Éva"]]
    assert people.find("Person", 1)["age"] == 77


def test_errors_are_per_thread(realm):
    with pytest.raises(shoal.NoSuchClass):
        realm.objects("Cat")
    other = []
    t = threading.Thread(target=lambda: other.append(shoal.errors.last_error()))
    t.start()
    t.join(TIMEOUT)
    assert other == [None]


def test_change_callback_from_another_thread(config):
    calls: "queue.Queue[tuple[int, int]]" = queue.Queue()
    with shoal.Realm.open(config) as listener:
        token = listener.add_change_callback(lambda v: calls.put((v, threading.get_ident())))
        committed = []

        def commit_elsewhere():
            with shoal.Realm.open(config) as w:
                with w.write():
                    w.create("Person", 1)
                committed.append((w.version, threading.get_ident()))

        t = threading.Thread(target=commit_elsewhere)
        t.start()
        t.join(TIMEOUT)
        version, thread = calls.get(timeout=TIMEOUT)
        assert version == committed[0][0]
        assert thread not in (threading.get_ident(), committed[0][1])  # a library thread
        assert listener.refresh() and listener.find("Person", 1) is not None
        token.release()


def test_change_callback_may_call_shoal(config, realm):
    got: "queue.Queue[object]" = queue.Queue()

    def on_change(version):
        with shoal.Realm.open(config) as r:  # any Shoal call is allowed here
            got.put((version, len(r.objects("Person"))))

    with realm.add_change_callback(on_change):
        with realm.write():
            realm.create("Person", 1)
        assert got.get(timeout=TIMEOUT) == (realm.version, 1)


def test_no_callback_for_a_commit_without_changes_and_one_per_commit(realm):
    got: "queue.Queue[int]" = queue.Queue()
    with realm.add_change_callback(got.put):
        with realm.write():
            pass  # nothing changed
        with realm.write():
            realm.create("Person", 1)
        with realm.write():
            realm.create("Person", 2)
        assert [got.get(timeout=TIMEOUT), got.get(timeout=TIMEOUT)] == [realm.version - 1, realm.version]
        with pytest.raises(queue.Empty):
            got.get_nowait()


def test_released_token_stops_callbacks(realm):
    first: "queue.Queue[int]" = queue.Queue()
    second: "queue.Queue[int]" = queue.Queue()
    t1 = realm.add_change_callback(first.put)
    t2 = realm.add_change_callback(second.put)
    with realm.write():
        realm.create("Person", 1)
    assert first.get(timeout=TIMEOUT) == second.get(timeout=TIMEOUT)
    t1.release()
    t1.release()  # harmless
    with realm.write():
        realm.create("Person", 2)
    # callbacks run in registration order on one thread: once the second saw the commit,
    # the first would have too
    assert second.get(timeout=TIMEOUT) == realm.version
    assert first.empty()
    t2.release()


def test_token_context_manager_and_registry_cleanup(realm):
    before = shoal._core.registry_size()
    with realm.add_change_callback(lambda v: None) as token:
        assert shoal._core.registry_size() == before + 1
    assert token.released
    deadline = time.monotonic() + TIMEOUT
    while shoal._core.registry_size() != before and time.monotonic() < deadline:
        time.sleep(0.01)  # free_userdata may run on the notifier thread after a last call
    assert shoal._core.registry_size() == before


def test_callback_outlives_every_python_reference(realm):
    got: "queue.Queue[int]" = queue.Queue()
    token = realm.add_change_callback(lambda v: got.put(v))  # the lambda is only in the registry
    gc.collect()
    with realm.write():
        realm.create("Person", 1)
    assert got.get(timeout=TIMEOUT) == realm.version
    token.release()


def test_callback_exception_is_logged_and_delivery_goes_on(realm, caplog):
    got: "queue.Queue[int]" = queue.Queue()
    calls = []

    def bad(version):
        calls.append(version)
        raise ValueError("callback bug")

    caplog.set_level(logging.ERROR, logger="shoal")
    with realm.add_change_callback(bad), realm.add_change_callback(got.put):
        with realm.write():
            realm.create("Person", 1)
        assert got.get(timeout=TIMEOUT) == realm.version
        with realm.write():
            realm.create("Person", 2)
        assert got.get(timeout=TIMEOUT) == realm.version
    assert len(calls) == 2
    assert any("change callback raised" in r.message and r.exc_info for r in caplog.records)


def test_add_change_callback_errors(config):
    realm = shoal.Realm.open(config)
    with pytest.raises(TypeError):
        realm.add_change_callback(42)
    before = shoal._core.registry_size()
    # a second handle of the same realm, closed through the library
    clone = shoal.Realm(shoal._ffi.lib.shoal_clone(realm._h))
    assert shoal._ffi.lib.shoal_realm_close(realm._h)
    with pytest.raises(shoal.RealmClosed):
        clone.add_change_callback(lambda v: None)  # reported by the library...
    assert shoal._core.registry_size() == before  # ...which freed the registration
    assert clone.is_closed
    clone.release()
    realm.close()
    with pytest.raises(shoal.RealmClosed):
        realm.add_change_callback(lambda v: None)

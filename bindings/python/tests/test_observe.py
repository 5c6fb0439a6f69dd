"""Fine-grained notifications through the C ABI: results, lists and objects report exactly what
each commit changed; asyncio streams deliver them on the running loop."""

from __future__ import annotations

import asyncio
import queue
import threading

import shoal

TIMEOUT = 20


def _watch(thing):
    q: "queue.Queue[object]" = queue.Queue()
    token = thing.observe(q.put)
    first = q.get(timeout=TIMEOUT)
    assert first.initial
    return token, q


def _quiet(q):
    try:
        extra = q.get(timeout=0.3)
    except queue.Empty:
        return
    raise AssertionError(f"unexpected notification {extra!r}")


def test_results_report_the_deletions_insertions_and_modifications_of_one_commit(realm):
    with realm.write():
        for pid, age in [(1, 5), (2, 20), (3, 30), (4, 40), (5, 50)]:
            realm.create("Person", pid, age=age)
    adults = realm.query("Person", "age > 10")
    token, q = _watch(adults)  # old: [2 3 4 5]
    with realm.write():
        realm.find("Person", 3).delete()
        realm.find("Person", 4)["name"] = "Dee"
        realm.find("Person", 1)["age"] = 11
        realm.create("Person", 6, age=60)
    c = q.get(timeout=TIMEOUT)  # new: [1 2 4 5 6]
    assert isinstance(c, shoal.CollectionChanges)
    assert (c.deletions, c.insertions, c.modifications) == ([1], [0, 4], [2])
    assert c.modifications_old == [2] and c.moves == []
    assert c.version == realm.version
    assert len(adults) == 5
    # Another class does not notify.
    with realm.write():
        realm.create("Dog", name="Rex")
    _quiet(q)
    token.release()
    with realm.write():
        realm.create("Person", 7, age=70)
    _quiet(q)


def test_sorted_results_and_lists_report_moves(realm):
    with realm.write():
        p = realm.create("Person", 1, age=10, tags=["a", "b", "c"])
        realm.create("Person", 2, age=20)
    by_age = realm.objects("Person").sort("age")
    _rt, rq = _watch(by_age)
    tags = p["tags"]
    _lt, lq = _watch(tags)
    with realm.write():
        p["age"] = 30
        tags.move(0, 2)
    c = rq.get(timeout=TIMEOUT)
    assert c.moves == [(0, 1)] or c.moves == [(1, 0)]
    lc = lq.get(timeout=TIMEOUT)
    assert lc.moves == [(0, 2)]
    assert (lc.deletions, lc.insertions) == ([0], [2])
    with realm.write():
        p.delete()
    assert lq.get(timeout=TIMEOUT).collection_deleted


def test_object_changes_name_the_properties(realm):
    with realm.write():
        p = realm.create("Person", 1, age=10)
    _t, q = _watch(p)
    with realm.write():
        p["name"] = "Ann"
        p["visits"] = 3
    c = q.get(timeout=TIMEOUT)
    assert isinstance(c, shoal.ObjectChange)
    assert c.changed == ["name", "visits"] and not c.deleted
    with realm.write():
        p.delete()
    assert q.get(timeout=TIMEOUT).deleted


def test_asyncio_streams_deliver_changes_on_the_running_loop(realm):
    with realm.write():
        realm.create("Person", 1, age=10)

    async def main():
        loop_thread = threading.get_ident()
        results = realm.objects("Person")
        async with results.changes() as stream:
            first = await stream.next(timeout=TIMEOUT)
            assert first.initial and threading.get_ident() == loop_thread

            def writer():
                with realm.write():
                    realm.create("Person", 2, age=20)

            await asyncio.get_running_loop().run_in_executor(None, writer)
            seen = []
            async for change in stream:
                seen.append(change)
                break
            assert seen[0].insertions == [1]
        # Closed: no more items.
        try:
            await stream.next()
        except StopAsyncIteration:
            pass
        else:
            raise AssertionError("a closed stream yields nothing")

    asyncio.run(main())


def test_bad_observers_are_refused(realm):
    import pytest

    with pytest.raises(TypeError):
        realm.objects("Person").observe(None)


def test_observers_run_on_the_asyncio_loop_through_its_scheduler(config):
    import shoal.aio

    async def main():
        loop_thread = threading.get_ident()
        shoal.aio.bind_to_loop(config)
        with shoal.Realm.open(config) as realm:
            seen = []
            initial, changed = asyncio.Event(), asyncio.Event()

            def on_change(change):
                seen.append((threading.get_ident(), change))
                (initial if change.initial else changed).set()

            token = realm.objects("Person").observe(on_change)
            await asyncio.wait_for(initial.wait(), TIMEOUT)

            def writer():
                # Another handle on a worker thread, without the scheduler.
                with shoal.Realm.open(shoal.Config(config.path, schema=None)) as other:
                    with other.write():
                        other.create("Person", 1, age=3)

            await asyncio.get_running_loop().run_in_executor(None, writer)
            await asyncio.wait_for(changed.wait(), TIMEOUT)
            assert all(thread == loop_thread for thread, _ in seen)
            assert seen[-1][1].insertions == [0]
            token.release()

    asyncio.run(main())

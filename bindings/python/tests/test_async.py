"""Asynchronous work through Python and asyncio: the loop's scheduler (shoal.aio), writes on a
library thread (Realm.write_async), opens that asyncio cancellation stops (Realm.open_async,
seed 001's getInstanceAsync tests against a real server) and admin lookups (User.lookup_async).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import pytest

import shoal
from shoal import aio

from conftest import APP_ID, SCHEMA

WAIT = 20.0
PASSWORD = "myPassw0rd"

ITEMS = {
    "classes": [
        {
            "name": "Item",
            "primary_key": "id",
            "properties": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}],
        }
    ]
}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---- the loop's scheduler ---------------------------------------------------------------------


def test_the_asyncio_scheduler_runs_change_callbacks_on_the_loop(realm_path):
    async def main():
        loop_thread = threading.get_ident()
        config = aio.bind_to_loop(shoal.Config(realm_path, schema=SCHEMA))
        assert isinstance(config.scheduler, aio.AsyncioScheduler)
        assert config.scheduler is aio.scheduler_for_loop(), "one scheduler per loop"
        assert config.scheduler.loop is asyncio.get_running_loop()
        seen = asyncio.Queue()
        with shoal.Realm.open(config) as realm:
            token = realm.add_change_callback(lambda v: seen.put_nowait((v, threading.get_ident())))

            def writer():
                with shoal.Realm.open(shoal.Config(realm_path, schema=SCHEMA)) as other:
                    with other.write():
                        other.create("Person", 1, name="Ann")

            await asyncio.to_thread(writer)
            version, thread = await seen.get()
            assert thread == loop_thread
            assert version > 0
            token.release()

    run(main())


def test_a_scheduler_runs_nothing_until_the_app_performs_its_work(realm_path):
    wakeups = []
    scheduler = aio.Scheduler(lambda: wakeups.append(threading.get_ident()))
    config = shoal.Config(realm_path, schema=SCHEMA).set_scheduler(scheduler)
    with shoal.Realm.open(config) as realm:
        done = []
        future = realm.write_async(lambda r: r.create("Person", 7), lambda v, e: done.append((v, e)))
        deadline = time.monotonic() + WAIT
        while not wakeups:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert wakeups[0] != threading.get_ident(), "notify runs on a library thread"
        time.sleep(0.05)
        assert not done and not future.done()
        assert scheduler.perform_work() == 1
        version, error = done[0]
        assert error is None and future.result(0) == version == realm.version
        assert realm.find("Person", 7) is not None
    with pytest.raises(TypeError):
        shoal.Config(realm_path).set_scheduler(object())
    with pytest.raises(TypeError):
        aio.Scheduler(42)


def test_an_asyncio_scheduler_needs_a_loop():
    with pytest.raises(RuntimeError):
        aio.AsyncioScheduler()


# ---- write_async ------------------------------------------------------------------------------


def test_write_async_runs_off_the_loop_and_resumes_on_it_with_the_write_visible(realm_path):
    async def main():
        loop_thread = threading.get_ident()
        config = aio.bind_to_loop(shoal.Config(realm_path, schema=SCHEMA))
        realm = await shoal.Realm.open_async(config)
        seen = {}

        def write(r):
            seen["writer"] = threading.get_ident()
            assert r is not realm and r.in_transaction
            for i in range(3):
                r.create("Person", i, name=f"p{i}")

        def done(version, error):
            seen["callback"] = (threading.get_ident(), version, error)

        future = realm.write_async(write, done)
        assert not realm.in_transaction  # the app's handle is free meanwhile
        version = await future
        assert seen["writer"] != loop_thread
        assert seen["callback"] == (loop_thread, version, None)
        assert realm.version == version
        assert len(realm.objects("Person")) == 3  # refreshed before the completion
        realm.close()

    run(main())


def test_an_exception_in_the_write_function_writes_nothing_and_is_raised(realm_path):
    class Oops(Exception):
        pass

    async def main():
        config = aio.bind_to_loop(shoal.Config(realm_path, schema=SCHEMA))
        with shoal.Realm.open(config) as realm:
            before = realm.version

            def write(r):
                r.create("Person", 1)
                raise Oops("no")

            with pytest.raises(Oops):
                await realm.write_async(write)

            def refuse(r):
                r.create("Person", 2)
                return False

            with pytest.raises(shoal.CallbackFailed):
                await realm.write_async(refuse)
            realm.refresh()
            assert realm.version == before
            assert len(realm.objects("Person")) == 0
            # The next write is not disturbed.
            await realm.write_async(lambda r: r.create("Person", 3))
            assert len(realm.objects("Person")) == 1

    run(main())


def test_write_async_without_a_scheduler_is_a_future_too(realm):
    results = [realm.write_async(lambda r, i=i: r.create("Person", i)) for i in range(10)]
    versions = [f.result(WAIT) for f in results]
    assert versions == sorted(versions) and len(set(versions)) == 10  # in the order asked
    realm.refresh()
    assert len(realm.objects("Person")) == 10
    realm.close()
    with pytest.raises(shoal.RealmClosed):
        realm.write_async(lambda r: None)


# ---- open_async -------------------------------------------------------------------------------


def test_open_async_of_a_local_realm(realm_path):
    async def main():
        realm = await shoal.Realm.open_async(shoal.Config(realm_path, schema=SCHEMA, initial_data=lambda r: r.create("Person", 1)))
        assert realm.find("Person", 1) is not None
        realm.close()
        # Errors are raised by the await.
        lower = _lower(realm_path)
        with pytest.raises(shoal.SchemaVersionLower):
            await shoal.Realm.open_async(lower)

    run(main())


def _lower(path):
    # A file at schema version 2, opened with version 1.
    with shoal.Realm.open(shoal.Config(path, schema=SCHEMA, schema_version=2, migration=lambda *a: None)):
        pass
    return shoal.Config(path, schema=SCHEMA, schema_version=1)


def test_a_cancelled_local_open_leaves_no_file(tmp_path):
    path = str(tmp_path / "cancelled.realm")

    async def main():
        config = aio.bind_to_loop(shoal.Config(path, schema=SCHEMA))
        for _ in range(5):
            task = asyncio.ensure_future(shoal.Realm.open_async(config))
            await asyncio.sleep(0)  # the open starts
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not os.path.exists(path)

    run(main())


@pytest.fixture
def server_realm(shoal_server, tmp_path):
    """A user's realm on the server with 2000 items; returns (name, url)."""
    name = unique("async")
    url = f"realm://{shoal_server.address}/~/async-open"
    with shoal.App(tmp_path / "device-a", APP_ID) as app:
        user = app.login(shoal.Credentials.password(name, PASSWORD, register=True), shoal_server.auth_url)
        with shoal.Realm.open(shoal.Config(sync=shoal.SyncConfig(user, url), schema=ITEMS)) as realm:
            with realm.write():
                for i in range(2000):
                    realm.create("Item", i, name=f"{i:>200}")
            realm.session.wait_for_upload(WAIT)
    return name, url


def test_async_opens_cancelled_after_0_to_4_ms_deliver_nothing_and_leave_no_file(shoal_server, server_realm, tmp_path):
    """Seed 001's waitForInitialData_resilientInCaseOfRetriesAsync, with asyncio cancellation."""
    name, url = server_realm
    with shoal.App(tmp_path / "device-b", APP_ID) as app:
        user = app.login(shoal.Credentials.password(name, PASSWORD), shoal_server.auth_url)
        sync = shoal.SyncConfig(user, url)
        sync.set_wait_for_initial_data(WAIT)
        path = sync.path

        async def main():
            config = aio.bind_to_loop(shoal.Config(sync=sync, schema=ITEMS))
            for i in range(10):
                assert not os.path.exists(path)
                task = asyncio.ensure_future(shoal.Realm.open_async(config))
                await asyncio.sleep(0)  # the open starts on a library thread
                time.sleep((i % 5) / 1000)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert not os.path.exists(path), f"round {i}: a file after the cancel"
            await asyncio.sleep(0.5)
            assert not os.path.exists(path)
            # Not cancelled: every item is there when the open completes.
            realm = await shoal.Realm.open_async(config)
            assert len(realm.objects("Item")) == 2000
            realm.close()

        run(main())


def test_open_async_times_out_through_asyncio_wait_for(shoal_server, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = s.getsockname()
    with shoal.App(tmp_path / "device", APP_ID) as app:
        user = app.login(shoal.Credentials.password(unique("u"), PASSWORD, register=True), shoal_server.auth_url)
        sync = shoal.SyncConfig(user, f"realm://{nowhere[0]}:{nowhere[1]}/~/never")
        sync.set_wait_for_initial_data(WAIT)

        async def main():
            config = shoal.Config(sync=sync, schema=ITEMS)
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(shoal.Realm.open_async(config), 0.3)
            assert time.monotonic() - started < 5
            assert not os.path.exists(sync.path)

        run(main())


# ---- lookup_async -----------------------------------------------------------------------------


def test_lookup_async_on_the_loop_and_on_a_library_thread(shoal_server, tmp_path):
    with shoal.App(tmp_path / "app", APP_ID) as app:
        name = unique("findme")
        user = app.login(shoal.Credentials.password(name, PASSWORD, register=True), shoal_server.auth_url)
        boss = app.login(shoal.Credentials.debug("admin"), shoal_server.auth_url)

        async def main():
            loop_thread = threading.get_ident()
            seen = []
            found = await boss.lookup_async(
                "password", name, lambda f, e: seen.append(threading.get_ident()), scheduler=aio.scheduler_for_loop()
            )
            assert found == {"identity": user.identity, "provider": "password", "provider_id": name, "is_admin": False}
            assert seen == [loop_thread]
            assert await boss.lookup_async("password", unique("nobody")) is None
            with pytest.raises(shoal.AccessDenied):
                await user.lookup_async("password", name)

        run(main())
        # Outside a loop it is a plain future.
        assert boss.lookup_async("password", name).result(WAIT)["identity"] == user.identity
        with pytest.raises(TypeError):
            boss.lookup_async("password", name, scheduler=object())

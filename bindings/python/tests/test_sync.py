"""Synced realms through the Python binding against a real `shoal-server` process: sync
configurations, sessions (states, progress, waits, pause, tokens), errors reaching the error
handler, client reset and recovery (the behaviours of the Rust tests/sync.rs). Background events
are awaited with deadlines, never with fixed sleeps."""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

import shoal
from shoal import _core, _ffi, errors
from shoal._ffi import lib
from shoal.sync import sync_code_name
from shoal_server import http

from conftest import APP_ID, PACKAGE_PARENT

WAIT = 20.0
PASSWORD = "myPassw0rd"

SCHEMA = {
    "classes": [
        {
            "name": "Item",
            "primary_key": "id",
            "properties": [
                {"name": "id", "type": "int"},
                {"name": "name", "type": "string"},
                {"name": "count", "type": "int"},
            ],
        }
    ]
}


# ---- helpers ------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A user name no other test (or earlier run against the session server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def register(app: shoal.App, server, name: str) -> shoal.User:
    return app.login(shoal.Credentials.password(name, PASSWORD, register=True), server.auth_url)


def login(app: shoal.App, server, name: str) -> shoal.User:
    return app.login(shoal.Credentials.password(name, PASSWORD), server.auth_url)


def sync_url(server, path: str) -> str:
    return f"realm://{server.address}{path}"


def synced(user: shoal.User, url: str, edit=None) -> shoal.Config:
    """A synced config of SCHEMA; `edit(sync_config)` sets options before it is copied."""
    sync = shoal.SyncConfig(user, url)
    if edit is not None:
        edit(sync)
    return shoal.Config(sync=sync, schema=SCHEMA)


def add_items(realm: shoal.Realm, ids) -> None:
    with realm.write():
        for i in ids:
            realm.create("Item", i, name=f"item {i}")


def count(realm: shoal.Realm) -> int:
    realm.refresh()
    return len(realm.objects("Item"))


def wait_until(what: str, condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def wait_state(session: shoal.Session, state: shoal.SessionState) -> None:
    wait_until(f"the session is {state.name} (it is {session.state.name})", lambda: session.state == state)


class Errors:
    """Records what an error handler gets: (session, SyncError)."""

    def __init__(self):
        self.items: list[tuple[shoal.Session | None, shoal.SyncError]] = []
        self.lock = threading.Lock()

    def __call__(self, session, error):
        with self.lock:
            self.items.append((session, error))

    def all(self) -> list[shoal.SyncError]:
        with self.lock:
            return [e for _, e in self.items]

    def wait_for(self, what: str, pred) -> tuple[shoal.Session | None, shoal.SyncError]:
        found = []

        def look():
            with self.lock:
                found[:] = [item for item in self.items if pred(item[1])]
            return bool(found)

        wait_until(what, look)
        return found[0]


class Reports:
    """Records progress reports: [(transferred, transferable)]."""

    def __init__(self):
        self.items: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, transferred, transferable):
        with self.lock:
            self.items.append((transferred, transferable))

    def all(self) -> list[tuple[int, int]]:
        with self.lock:
            return list(self.items)

    def wait_complete(self, non_zero: bool = True) -> tuple[int, int]:
        found = []

        def look():
            found[:] = [p for p in self.all() if p[0] >= p[1] and (not non_zero or p[0] > 0)]
            return bool(found)

        wait_until("a complete progress report", look)
        return found[0]


def access_token(server, user: shoal.User, path: str) -> str:
    """An access token for `path` through the binding (``shoal_user_access_token``), checked
    against what the auth server answers the user's refresh token directly."""
    token = user.access_token(path)
    status, answer = http(
        "POST",
        server.auth_url,
        {"provider": "realm", "data": user.refresh_token, "app_id": APP_ID, "path": path, "user_info": {}},
    )
    assert status == 200, answer
    assert token.split(":")[0] and isinstance(token, str) and token
    return token


@pytest.fixture
def devices(tmp_path):
    """Two apps (two devices) in their own base directories, closed at the end."""
    with shoal.App(tmp_path / "a", APP_ID) as a, shoal.App(tmp_path / "b", APP_ID) as b:
        yield a, b


# ---- no server needed ---------------------------------------------------------------------------


def test_sync_error_classes_and_names():
    for code, cls in [
        (100, shoal.ConnectionClosed),
        (103, shoal.BadSyntax),
        (109, shoal.BadMessageOrder),
        (200, shoal.SessionClosed),
        (202, shoal.TokenExpired),
        (203, shoal.BadAuthentication),
        (206, shoal.PermissionDenied),
        (211, shoal.DivergingHistories),
        (213, shoal.DisabledSession),
    ]:
        e = errors.error_for(code, _ffi.SHOAL_ERR_CATEGORY_SYNC, "m")
        assert type(e) is cls and isinstance(e, shoal.SyncProtocolError) and e.code == code
        assert e.name == lib.shoal_error_name(code).decode()
    assert errors.error_for(200, 7, "m").name == "SYNC"  # the family's number
    assert sync_code_name(200) == "SESSION_CLOSED" and sync_code_name(203) == "BAD_AUTHENTICATION"
    assert sync_code_name(7, 3) == "CLIENT_RESET" and sync_code_name(614, 5) == "ACCESS_DENIED"
    # A protocol code of a newer library is still a sync error.
    assert type(errors.error_for(214, _ffi.SHOAL_ERR_CATEGORY_SYNC, "m")) is shoal.SyncProtocolError
    t = errors.error_for(_ffi.SHOAL_ERR_TIMEOUT, 1, "slow")
    assert type(t) is shoal.Timeout and isinstance(t, TimeoutError) and t.name == "TIMEOUT"

    e = shoal.SyncError(614, "ACCESS_DENIED", 5, "no", True, False)
    assert type(e.exception()) is shoal.AccessDenied and "fatal" in str(e)
    with pytest.raises(Exception):
        e.code = 1  # frozen


def test_sync_error_struct_matches_c():
    ptr = ctypes.sizeof(ctypes.c_void_p)
    s = _ffi.shoal_sync_error_t
    assert s.message.offset == 8
    assert s.is_fatal.offset == 8 + ptr and s.is_client_reset.offset == 9 + ptr
    assert s.original_path.offset == 8 + 2 * ptr and s.backup_path.offset == 8 + 3 * ptr
    assert s.backup_config.offset == 8 + 4 * ptr
    assert ctypes.sizeof(s) == 8 + 5 * ptr
    # The enums mirror the header's constants.
    assert shoal.SessionState.ERROR == _ffi.SHOAL_SESSION_ERROR == 4
    assert shoal.StopPolicy.AFTER_CHANGES_UPLOADED == _ffi.SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED
    assert shoal.ProgressDirection.UPLOAD == _ffi.SHOAL_PROGRESS_UPLOAD


def test_recovery_configs_check_their_arguments(tmp_path):
    c = shoal.Config.for_recovery(tmp_path / "nothing-here")
    assert c.read_only and c.sync is None and c.path.endswith("nothing-here")
    with pytest.raises(shoal.FileNotFound):
        shoal.Realm.open(c)
    with pytest.raises(shoal.InvalidArgument):
        shoal.Config.for_recovery(tmp_path / "x", key=b"short")
    with pytest.raises(shoal.InvalidArgument):
        shoal.Config.for_recovery("")
    with pytest.raises(TypeError):
        shoal.Config()  # neither a path nor sync=
    with pytest.raises(TypeError):
        shoal.Config(tmp_path / "y").set_sync("realm://h/~/x")


# ---- configurations -----------------------------------------------------------------------------


def test_sync_urls_are_checked_and_logged_out_users_refused(app, shoal_server):
    user = register(app, shoal_server, unique("urls"))
    host = shoal_server.address
    for url in [
        f"http://{host}/~/tasks",
        f"ws://{host}/~/tasks",
        f"realm://{host}/~/tasks.realm",
        f"realm://{host}/~/tasks.realm.lock",
        f"realm://{host}/~/tasks.realm.management",
        f"realm://{host}/~/../tasks",
        f"realm://{host}/a/./b",
        f"realm://{host}/~/sp ace",
        f"realm://{host}/",
        "not a url",
        "",
    ]:
        with pytest.raises(shoal.InvalidArgument):
            shoal.SyncConfig(user, url)
    with pytest.raises(ValueError):
        shoal.SyncConfig(user, f"realm://{host}/~/nul\0")
    with pytest.raises(TypeError):
        shoal.SyncConfig("alice", f"realm://{host}/~/tasks")
    with shoal.SyncConfig(user, f"realms://{host}/~/tls") as tls:
        assert tls.server_url.startswith("realms://")

    url = f"realm://{host}/~/tasks"
    user.logout()
    with pytest.raises(shoal.InvalidArgument) as info:
        shoal.SyncConfig(user, url)
    assert "not logged in" in info.value.message, info.value
    user.release()
    with pytest.raises(shoal.Misuse):
        shoal.SyncConfig(user, url)


def test_paths_are_per_user_and_tilde_is_the_identity(app, shoal_server):
    u1 = register(app, shoal_server, unique("u1"))
    u2 = register(app, shoal_server, unique("u2"))
    host = shoal_server.address
    shared = f"realm://{host}/42/default"
    c1, c2 = shoal.SyncConfig(u1, shared), shoal.SyncConfig(u2, shared)
    assert c1.path != c2.path, "two users of one URL get two files"
    root = os.path.join(os.path.realpath(app.base_dir), "shoal-object-server")
    assert os.path.realpath(c1.path) == os.path.join(root, u1.identity, "42", "default")
    assert c1.server_url == shared and c1.server_path == "/42/default"
    assert os.path.isdir(os.path.dirname(c1.path)), "the folder is created"

    mine = shoal.SyncConfig(u1, f"realm://{host}/~/sub/default")
    assert mine.server_path == f"/{u1.identity}/sub/default"
    assert mine.server_url == f"realm://{host}/{u1.identity}/sub/default"
    assert mine.url == f"realm://{host}/~/sub/default" and mine.user == u1
    assert os.path.realpath(mine.path) == os.path.join(root, u1.identity, u1.identity, "sub", "default")

    # A config takes the sync configuration's file, with or without a path of its own.
    config = shoal.Config(sync=mine, schema=SCHEMA)
    assert config.path == mine.path and config.sync is mine
    other = shoal.Config("unused.realm", schema=SCHEMA)
    assert other.set_sync(mine) is other and other.path == mine.path
    assert "synced with" in repr(other)
    for c in (c1, c2, mine, config, other):
        c.release()


# ---- syncing ------------------------------------------------------------------------------------


def test_two_devices_of_one_user_converge_through_the_server(devices, shoal_server):
    a, b = devices
    name = unique("dev")
    ua = register(a, shoal_server, name)
    ub = login(b, shoal_server, name)
    assert ua.identity == ub.identity
    url = sync_url(shoal_server, "/~/converge")
    with shoal.Realm.open(synced(ua, url)) as ra:
        sa = ra.session
        add_items(ra, range(10))
        sa.wait_for_upload(timeout=WAIT)
        with shoal.Realm.open(synced(ub, url)) as rb:
            assert rb.config.path != ra.config.path, "each device has its own file"
            sb = rb.session
            sb.wait_for_download(timeout=WAIT)
            assert count(rb) == 10
            assert rb.find("Item", 7)["name"] == "item 7"
            with rb.write():
                rb.create("Item", 100, name="from B", count=3)
            sb.wait_for_upload(WAIT)
            sa.wait_for_download(WAIT)
            assert count(ra) == 11
            assert ra.find("Item", 100).to_dict()["name"] == "from B"
            assert ra.dump_json() == rb.dump_json()
            wait_state(sa, shoal.SessionState.ACTIVE)
            wait_until("A is connected", lambda: sa.connection_state == shoal.ConnectionState.CONNECTED)
            assert isinstance(sa.state, shoal.SessionState)
        sa.release()
        sb.release()


def test_sessions_follow_logout_and_login(app, shoal_server):
    name = unique("states")
    user = register(app, shoal_server, name)
    config = synced(user, sync_url(shoal_server, "/~/states"))
    with shoal.Realm.open(config) as realm:
        session = realm.session
        assert session == realm.session == app.get_session(config), "one session per file"
        assert session.path == config.path
        assert session.server_url == sync_url(shoal_server, f"/{user.identity}/states")
        assert session.user == user
        assert "Session" in repr(session)
        wait_state(session, shoal.SessionState.ACTIVE)
        seen: "queue.Queue[tuple]" = queue.Queue()
        connections: "queue.Queue[tuple]" = queue.Queue()
        token = session.add_state_callback(lambda old, new: seen.put((old, new)))
        conn_token = session.add_connection_callback(lambda old, new: connections.put((old, new)))

        user.logout()
        wait_state(session, shoal.SessionState.INACTIVE)
        add_items(realm, range(1))  # writes go on while logged out
        again = login(app, shoal_server, name)
        assert again == user
        wait_state(session, shoal.SessionState.ACTIVE)
        session.wait_for_upload(WAIT)

        transitions = []
        wait_until(
            "the state callback saw INACTIVE and ACTIVE again",
            lambda: (transitions.extend(_drain(seen)) or True)
            and (shoal.SessionState.ACTIVE, shoal.SessionState.INACTIVE) in transitions
            and transitions[-1][1] == shoal.SessionState.ACTIVE,
        )
        assert (shoal.SessionState.WAITING_FOR_ACCESS_TOKEN, shoal.SessionState.ACTIVE) in transitions
        assert all(isinstance(s, shoal.SessionState) for t in transitions for s in t)
        conns: list = []
        wait_until(
            "the connection callback saw a reconnect",
            lambda: (conns.extend(_drain(connections)) or True) and conns and conns[-1][1] == shoal.ConnectionState.CONNECTED,
        )
        assert all(isinstance(s, shoal.ConnectionState) for t in conns for s in t)
        token.close()
        assert token.released
        with conn_token:
            pass
        assert conn_token.released
        session.release()


def _drain(q: queue.Queue) -> list:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def test_upload_progress_current_changes_completes(app, shoal_server):
    user = register(app, shoal_server, unique("up"))
    with shoal.Realm.open(synced(user, sync_url(shoal_server, "/~/up"))) as realm:
        session = realm.session
        for round_ in range(3):
            add_items(realm, range(round_ * 10, round_ * 10 + 10))
            reports = Reports()
            with session.add_progress_callback(
                shoal.ProgressDirection.UPLOAD, shoal.ProgressMode.CURRENT_CHANGES, reports
            ) as token:
                transferred, transferable = reports.wait_complete()
                assert transferred == transferable > 0
                everything = reports.all()
                assert all(x[0] <= y[0] for x, y in zip(everything, everything[1:])), everything
                assert all(p[1] == everything[0][1] for p in everything), f"a fixed target: {everything}"
            assert token.released
        # Names work too, and an INDEFINITELY callback reports at once.
        reports = Reports()
        token = session.add_progress_callback("upload", "indefinitely", reports)
        wait_until("the first upload report", lambda: reports.all())
        token.close()
        session.release()


def test_download_progress_is_reported_at_registration(devices, shoal_server):
    a, b = devices
    name = unique("down")
    ua = register(a, shoal_server, name)
    ub = login(b, shoal_server, name)
    url = sync_url(shoal_server, "/~/down")
    with shoal.Realm.open(synced(ua, url)) as ra:
        add_items(ra, range(10))
        ra.session.wait_for_upload(WAIT)
    with shoal.Realm.open(synced(ub, url)) as rb:
        session = rb.session
        reports = Reports()
        with session.add_progress_callback(
            shoal.ProgressDirection.DOWNLOAD, shoal.ProgressMode.CURRENT_CHANGES, reports
        ):
            transferred, transferable = reports.wait_complete()
            assert transferred == transferable > 0
        session.wait_for_download(WAIT)
        assert count(rb) == 10
        # Registered once everything is here: called at once, complete.
        for mode in shoal.ProgressMode:
            later = Reports()
            with session.add_progress_callback(shoal.ProgressDirection.DOWNLOAD, mode, later):
                wait_until(f"the report at registration ({mode.name})", lambda: later.all())
                t, tt = later.all()[0]
                assert t == tt > 0
        session.release()


def test_pause_makes_waits_time_out_until_resume(app, shoal_server):
    user = register(app, shoal_server, unique("pause"))
    with shoal.Realm.open(synced(user, sync_url(shoal_server, "/~/pause"))) as realm:
        session = realm.session
        wait_state(session, shoal.SessionState.ACTIVE)
        session.pause()
        wait_state(session, shoal.SessionState.INACTIVE)
        add_items(realm, range(3))
        started = time.monotonic()
        with pytest.raises(shoal.Timeout) as info:
            session.wait_for_upload(timeout=0.3)
        assert time.monotonic() - started < WAIT
        assert isinstance(info.value, TimeoutError) and info.value.code == _ffi.SHOAL_ERR_TIMEOUT
        with pytest.raises(shoal.Timeout):
            session.wait_for_download(0.2)
        session.resume()
        session.wait_for_upload(WAIT)
        assert session.state == shoal.SessionState.ACTIVE
        session.release()


def test_wait_for_initial_data_and_stop_policies(devices, shoal_server):
    a, b = devices
    name = unique("initial")
    ua = register(a, shoal_server, name)
    ub = login(b, shoal_server, name)
    url = sync_url(shoal_server, "/~/initial")
    with shoal.Realm.open(synced(ua, url)) as ra:
        add_items(ra, range(10))
        ra.session.wait_for_upload(WAIT)

    def edit(sync):
        assert sync.set_wait_for_initial_data(WAIT) is sync
        assert sync.wait_for_initial_data == WAIT
        sync.set_stop_policy(shoal.StopPolicy.IMMEDIATELY)
        assert sync.stop_policy is shoal.StopPolicy.IMMEDIATELY

    config = synced(ub, url, edit)
    rb = shoal.Realm.open(config)
    assert len(rb.objects("Item")) == 10, "the open waited for the server's data"
    session = rb.session
    wait_state(session, shoal.SessionState.ACTIVE)
    rb.close()
    wait_state(session, shoal.SessionState.INACTIVE)  # IMMEDIATELY: stops with the last handle
    session.release()

    with shoal.SyncConfig(ub, url) as sync:
        sync.set_wait_for_initial_data(None)
        assert sync.wait_for_initial_data is None
        for policy in ("live_indefinitely", 2):
            sync.set_stop_policy(policy)
        with pytest.raises(shoal.InvalidArgument):
            sync.set_stop_policy(7)
        with pytest.raises(ValueError):
            sync.set_stop_policy("sometimes")
        with pytest.raises(ValueError):
            sync.set_wait_for_initial_data(-1)


def test_waiting_for_initial_data_offline_times_out(app):
    from shoal_server import closed_port_url

    auth = closed_port_url()  # nothing listens there
    user = app.login(shoal.Credentials.access_token("token", "offline"), auth)
    url = auth.replace("http://", "realm://").replace("/auth", "/~/never")
    got = Errors()
    config = synced(user, url, lambda s: s.set_error_handler(got).set_wait_for_initial_data(0.3))
    started = time.monotonic()
    with pytest.raises(shoal.Timeout):
        shoal.Realm.open(config)
    assert time.monotonic() - started < WAIT
    got.wait_for("a recoverable network error", lambda e: e.code == _ffi.SHOAL_ERR_IO and not e.is_fatal)
    # Without the wait, the same realm opens offline.
    with shoal.Realm.open(synced(user, url)) as realm:
        add_items(realm, range(2))
        assert count(realm) == 2
        with pytest.raises(shoal.Timeout):
            realm.session.wait_for_upload(0.2)


# ---- errors ---------------------------------------------------------------------------------------


def test_another_users_path_is_a_fatal_access_denied(app, shoal_server):
    owner = register(app, shoal_server, unique("owner"))
    other = register(app, shoal_server, unique("other"))
    got = Errors()
    config = synced(other, sync_url(shoal_server, f"/{owner.identity}/x"), lambda s: s.set_error_handler(got))
    with shoal.Realm.open(config) as realm:  # opening never waits on the network
        session = realm.session
        handler_session, e = got.wait_for("a fatal error", lambda e: e.is_fatal)
        assert isinstance(e, shoal.SyncError)
        assert (e.code, e.name, e.category) == (614, "ACCESS_DENIED", _ffi.SHOAL_ERR_CATEGORY_AUTH), e
        assert not e.is_client_reset and e.original_path is None and e.backup_path is None
        assert isinstance(handler_session, shoal.Session) and handler_session == session
        assert handler_session.path == config.path
        wait_state(session, shoal.SessionState.ERROR)
        with pytest.raises(shoal.AccessDenied):
            session.wait_for_upload(WAIT)
        with pytest.raises(shoal.AccessDenied):
            session.wait_for_download(WAIT)
        # The realm itself still works offline.
        add_items(realm, range(1))
        assert count(realm) == 1
        session.release()
        handler_session.release()


def test_the_token_binder_supplies_access_tokens(app, shoal_server):
    user = register(app, shoal_server, unique("binder"))
    asked: list[str] = []
    failures: list[BaseException] = []

    def later(session, server_path):
        # Answer from another thread, as an app fetching tokens asynchronously would.
        asked.append(server_path)

        def fetch():
            try:
                session.bind_token(access_token(shoal_server, user, server_path))
            except BaseException as e:  # pragma: no cover - reported below
                failures.append(e)

        threading.Thread(target=fetch, daemon=True).start()

    returned: list[str] = []

    def at_once(session, server_path):
        returned.append(server_path)
        return access_token(shoal_server, user, server_path)  # the binding binds it

    with shoal.Realm.open(synced(user, sync_url(shoal_server, "/~/bound"), lambda s: s.set_token_binder(later))) as r1, \
            shoal.Realm.open(synced(user, sync_url(shoal_server, "/~/bound2"), lambda s: s.set_token_binder(at_once))) as r2:
        for realm in (r1, r2):
            add_items(realm, range(2))
            realm.session.wait_for_upload(WAIT)
        assert not failures, failures
        assert asked == [f"/{user.identity}/bound"]
        assert returned == [f"/{user.identity}/bound2"]
        s = r1.session
        with pytest.raises(shoal.InvalidArgument):
            s.bind_token("")
        with pytest.raises(TypeError):
            s.bind_token(None)
        with pytest.raises(ValueError):
            s.bind_token("a\0b")
        s.release()


def test_a_forged_token_is_bad_authentication(app, shoal_server):
    user = register(app, shoal_server, unique("forged"))
    got = Errors()

    def edit(sync):
        sync.set_error_handler(got)
        sync.set_token_binder(lambda session, path: "not-a-token")

    with shoal.Realm.open(synced(user, sync_url(shoal_server, "/~/forged"), edit)) as realm:
        _, e = got.wait_for("BAD_AUTHENTICATION", lambda e: e.code == 203)
        assert e.is_fatal and e.name == "BAD_AUTHENTICATION" and e.category == _ffi.SHOAL_ERR_CATEGORY_SYNC
        assert type(e.exception()) is shoal.BadAuthentication
        session = realm.session
        wait_state(session, shoal.SessionState.ERROR)
        with pytest.raises(shoal.BadAuthentication) as info:
            session.wait_for_upload(WAIT)
        assert isinstance(info.value, shoal.SyncProtocolError)
        session.release()


def test_exceptions_in_sync_callbacks_are_logged(app, shoal_server, caplog):
    user = register(app, shoal_server, unique("raising"))
    other = register(app, shoal_server, unique("victim"))

    def bad_handler(session, error):
        raise RuntimeError("handler boom")

    def bad_binder(session, path):
        raise RuntimeError("binder boom")

    def bad_progress(t, tt):
        raise RuntimeError("progress boom")

    def bad_state(old, new):
        raise RuntimeError("state boom")

    caplog.set_level(logging.ERROR, logger="shoal")
    denied = synced(user, sync_url(shoal_server, f"/{other.identity}/x"), lambda s: s.set_error_handler(bad_handler))
    binder = synced(user, sync_url(shoal_server, "/~/binder"), lambda s: s.set_token_binder(bad_binder))
    good = synced(user, sync_url(shoal_server, "/~/good"))
    with shoal.Realm.open(denied) as r1, shoal.Realm.open(binder) as r2, shoal.Realm.open(good) as r3:
        wait_state(r1.session, shoal.SessionState.ERROR)
        s3 = r3.session
        state_token = s3.add_state_callback(bad_state)
        progress_token = s3.add_progress_callback("upload", "indefinitely", bad_progress)
        wait_state(s3, shoal.SessionState.ACTIVE)
        s3.pause()  # ACTIVE -> INACTIVE -> ... -> ACTIVE: the state callback raises each time
        wait_state(s3, shoal.SessionState.INACTIVE)
        s3.resume()
        add_items(r3, range(2))
        s3.wait_for_upload(WAIT)
        messages = lambda: " ".join(r.getMessage() + str(r.exc_info and r.exc_info[1]) for r in caplog.records)  # noqa: E731
        for what in ("handler boom", "binder boom", "progress boom", "state boom"):
            wait_until(f"{what!r} is logged", lambda: what in messages())
        assert r2.session.state == shoal.SessionState.WAITING_FOR_ACCESS_TOKEN
        state_token.close()
        progress_token.close()
        s3.release()


def test_a_server_that_lost_the_realm_triggers_a_client_reset(app, server_factory):
    server = server_factory()
    user = register(app, server, unique("reset"))
    got = Errors()
    config = synced(user, sync_url(server, "/~/reset"), lambda s: s.set_error_handler(got))
    original_path = config.path
    with shoal.Realm.open(config) as realm:
        add_items(realm, range(1))
        realm.session.wait_for_upload(WAIT)
    session = app.get_session(config)
    wait_state(session, shoal.SessionState.INACTIVE)
    # The server loses its sync data (users and keys stay).
    server.stop()
    os.remove(server.data_dir / "sync.redb")
    shutil.rmtree(server.data_dir / "realms")
    server.start()

    realm = shoal.Realm.open(config)
    handler_session, e = got.wait_for("a client reset", lambda e: e.is_client_reset)
    assert (e.code, e.name, e.is_fatal) == (_ffi.SHOAL_ERR_CLIENT_RESET, "CLIENT_RESET", True), e
    assert type(e.exception()) is shoal.ClientReset
    assert e.original_path == original_path
    backup = e.backup_path
    assert backup and not os.path.exists(backup)
    wait_state(realm.session, shoal.SessionState.ERROR)
    with pytest.raises(shoal.RealmInUse):
        app.execute_client_reset(original_path)
    realm.close()
    result = []

    def reset():
        try:
            result.append(app.execute_client_reset(original_path))
            return True
        except shoal.RealmInUse:
            return False

    wait_until("the session lets go of the file", reset)
    assert result == [backup]
    assert not os.path.exists(original_path) and os.path.exists(backup)
    with pytest.raises(shoal.FileNotFound):
        app.execute_client_reset(original_path)

    with shoal.Realm.open(shoal.Config.for_recovery(backup)) as recovered:
        assert [o["name"] for o in recovered.objects("Item")] == ["item 0"]
        with pytest.raises(shoal.ReadOnly):
            recovered.begin_write()
    with shoal.Realm.open(shoal.Config.for_recovery(backup, schema=SCHEMA)) as recovered:
        assert len(recovered.objects("Item")) == 1

    # A fresh open starts over with the server.
    with shoal.Realm.open(config) as fresh:
        add_items(fresh, range(5, 6))
        fresh.session.wait_for_upload(WAIT)
        assert count(fresh) == 1
    for s in (session, handler_session):
        s.release()


def plant_a_foreign_file(server, user: shoal.User, config: shoal.Config, key: bytes | None, ids) -> None:
    """Makes the server refuse the history of `config`'s file with BAD_CLIENT_FILE_IDENT (a
    client reset): the file of another path of the same user, synced (with `ids`) and closed,
    is copied over it, and its client file ident is unknown to `config`'s path."""
    donor = synced(user, sync_url(server, f"/~/{unique('donor')}"))
    donor.encryption_key = key
    realm = shoal.Realm.open(donor)
    session = realm.session
    add_items(realm, ids)
    session.wait_for_upload(WAIT)
    realm.close()
    wait_state(session, shoal.SessionState.INACTIVE)  # AFTER_CHANGES_UPLOADED: it stops
    session.release()
    shutil.copyfile(donor.path, config.path)


def is_backup_path(path: str) -> bool:
    """`<base>/shoal-object-server/recovered-realms/recovered_realm-YYYYMMDD-HHMMSS-XXXXXXXX`."""
    folder, name = os.path.split(path)
    parts = name.split("-")
    return (
        folder.endswith(os.path.join("shoal-object-server", "recovered-realms"))
        and len(parts) == 4
        and parts[0] == "recovered_realm"
        and len(parts[1]) == 8 and parts[1].isdigit()
        and len(parts[2]) == 6 and parts[2].isdigit()
        and len(parts[3]) == 8 and parts[3].isascii() and parts[3].isalnum()
    )


def test_a_client_reset_runs_at_the_next_open_and_its_backup_config_opens_the_backup(app, shoal_server):
    user = register(app, shoal_server, unique("auto-reset"))
    got = Errors()
    key = bytes(range(64))
    config = synced(user, sync_url(shoal_server, "/~/auto-reset"), lambda s: s.set_error_handler(got))
    config.encryption_key = key
    plant_a_foreign_file(shoal_server, user, config, key, range(2))

    realm = shoal.Realm.open(config)
    handler_session, e = got.wait_for("a client reset", lambda e: e.is_client_reset)
    assert (e.name, e.is_fatal, e.original_path) == ("CLIENT_RESET", True, config.path), e
    assert "BAD_CLIENT_FILE_IDENT" in e.message
    assert is_backup_path(e.backup_path), e.backup_path
    assert not os.path.exists(e.backup_path)
    backup = e.backup_config
    assert isinstance(backup, shoal.Config)
    assert backup.path == e.backup_path and backup.read_only and backup.sync is None
    assert backup.encryption_key == key and backup.schema_version == 0
    assert backup.schema is not None and "Item" in backup.schema.classes()
    wait_state(realm.session, shoal.SessionState.ERROR)
    add_items(realm, range(10, 11))  # after the error: in the backup only

    # Not executed by hand: once every handle is closed, the next open runs it, to the very
    # path announced, and starts over with the server.
    realm.close()
    with shoal.Realm.open(config) as fresh:
        assert os.path.exists(e.backup_path) and count(fresh) == 0
        add_items(fresh, range(20, 21))
        fresh.session.wait_for_upload(WAIT)
        assert fresh.session.state == shoal.SessionState.ACTIVE
    assert sum(1 for x in got.all() if x.is_client_reset) == 1

    with shoal.Realm.open(backup) as recovered:
        assert sorted(o["id"] for o in recovered.objects("Item")) == [0, 1, 10]
        with pytest.raises(shoal.ReadOnly):
            recovered.begin_write()
    with pytest.raises(shoal.DecryptionFailed):
        shoal.Realm.open(shoal.Config.for_recovery(e.backup_path, key=bytes(64)))
    handler_session.release()
    backup.release()


def test_a_reset_by_hand_moves_the_file_to_the_announced_path_without_the_session(app, shoal_server):
    user = register(app, shoal_server, unique("exact"))
    got = Errors()
    config = synced(user, sync_url(shoal_server, "/~/exact"), lambda s: s.set_error_handler(got))
    plant_a_foreign_file(shoal_server, user, config, None, range(1))
    realm = shoal.Realm.open(config)
    handler_session, e = got.wait_for("a client reset", lambda e: e.is_client_reset)
    wait_state(realm.session, shoal.SessionState.ERROR)
    realm.close()
    handler_session.release()  # no session handle is left
    time.sleep(1.1)  # a name made now would differ (it has the time to the second)
    assert app.execute_client_reset(config.path) == e.backup_path
    assert os.path.exists(e.backup_path) and not os.path.exists(config.path)
    with shoal.Realm.open(e.backup_config) as recovered:
        assert len(recovered.objects("Item")) == 1


def test_handlers_are_freed_once_nothing_uses_them(app, shoal_server):
    user = register(app, shoal_server, unique("freed"))

    def first(session, e):
        pass

    def handler(session, e):
        pass

    def binder(session, path):
        return access_token(shoal_server, user, path)

    def state(old, new):
        pass

    def held(fn) -> bool:
        """Whether the binding still holds a registration of `fn` (its id is the userdata)."""
        return any(entry is fn or (isinstance(entry, tuple) and entry[0] is fn) for entry in list(_core._registry.values()))

    def edit(sync):
        sync.set_error_handler(first)
        sync.set_token_binder(None)
        sync.set_error_handler(handler)
        sync.set_token_binder(binder)

    config = synced(user, sync_url(shoal_server, "/~/freed"), edit)
    assert not held(first), "a replaced handler is freed at once"
    assert held(handler) and held(binder)
    realm = shoal.Realm.open(config)
    session = realm.session
    token = session.add_state_callback(state)
    add_items(realm, range(3))
    realm.close()  # the session uploads the rest (DYING), then stops
    wait_until("the session stops", lambda: session.state == shoal.SessionState.INACTIVE)
    token.close()
    session.release()
    config.sync.release()
    config.release()
    wait_until(
        "every registration is freed",
        lambda: (gc_collect() or True) and not any(held(fn) for fn in (handler, binder, state)),
    )


def gc_collect() -> None:
    import gc

    gc.collect()
    _core.drain_pending()


# ---- misuse ---------------------------------------------------------------------------------------


def test_misuse_is_reported_clearly(app, shoal_server, tmp_path):
    user = register(app, shoal_server, unique("misuse"))
    config = synced(user, sync_url(shoal_server, "/~/misuse"))
    realm = shoal.Realm.open(config)
    session = realm.session
    session.release()
    for use in (
        lambda: session.state,
        lambda: session.pause(),
        lambda: session.wait_for_upload(1),
        lambda: session.bind_token("t"),
        lambda: session.add_state_callback(print),
    ):
        with pytest.raises(shoal.Misuse) as info:
            use()
        assert "session was released" in info.value.message
    assert "released" in repr(session)
    # The same through the raw C ABI: errors, never crashes.
    assert lib.shoal_session_state(None) == -1
    assert isinstance(errors.last_error(), shoal.Misuse)
    assert not lib.shoal_session_wait_for_upload(None, 1)
    assert isinstance(errors.last_error(), shoal.Misuse)
    schema = lib.shoal_schema_new()
    assert lib.shoal_session_state(schema) == -1, "a handle of another kind"
    assert isinstance(errors.last_error(), shoal.Misuse)
    assert not lib.shoal_sync_config_path(schema)
    assert isinstance(errors.last_error(), shoal.Misuse)
    lib.shoal_release(schema)

    s = realm.session
    before = _core.registry_size()
    with pytest.raises(ValueError):
        s.add_progress_callback("sideways", "indefinitely", print)
    with pytest.raises(TypeError):
        s.add_progress_callback(shoal.ProgressDirection.UPLOAD, shoal.ProgressMode.INDEFINITELY, "not callable")
    assert not lib.shoal_session_add_progress_callback(s._h, 9, 0, shoal.sync.PROGRESS, None, _ffi.shoal_free_userdata_fn_t())
    assert isinstance(errors.last_error(), shoal.InvalidArgument)
    with pytest.raises(shoal.InvalidArgument):
        s.add_progress_callback(9, 0, print)
    assert _core.registry_size() == before, "a failed registration is freed"
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError):
            s.wait_for_upload(bad)
    with pytest.raises(TypeError):
        s.wait_for_download("soon")
    s.release()

    realm.close()
    with pytest.raises(shoal.RealmClosed):
        realm.session
    with shoal.Realm.open(tmp_path / "local.realm") as local:
        with pytest.raises(shoal.InvalidArgument):
            local.session
    with shoal.Config(tmp_path / "local2.realm") as local_config:
        with pytest.raises(shoal.InvalidArgument):
            app.get_session(local_config)
    with pytest.raises(TypeError):
        app.get_session("realm://h/~/x")
    with pytest.raises(TypeError):
        shoal.SyncConfig(user, sync_url(shoal_server, "/~/x")).set_error_handler("not callable")


# ---- the process exits cleanly while sessions run -------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    import shoal
    app = shoal.App(sys.argv[1], sys.argv[2])
    user = app.login(shoal.Credentials.access_token("token", "offline"), sys.argv[3])
    errors = []
    sync = shoal.SyncConfig(user, sys.argv[4])
    sync.set_error_handler(lambda session, e: errors.append(e))
    sync.set_stop_policy(shoal.StopPolicy.LIVE_INDEFINITELY)
    schema = {"classes": [{"name": "Item", "primary_key": "id", "properties": [{"name": "id", "type": "int"}]}]}
    realm = shoal.Realm.open(shoal.Config(sync=sync, schema=schema))
    session = realm.session
    token = session.add_state_callback(lambda old, new: None)
    with realm.write():
        realm.create("Item", 1)
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    print("errors seen:", len(errors), errors[0].name if errors else None, flush=True)
    # Exits with the realm open, the session retrying and the error handler still installed.
    """
)


def test_the_process_exits_cleanly_while_a_session_retries(tmp_path):
    from shoal_server import closed_port_url

    auth = closed_port_url()  # nothing listens: the session keeps failing and retrying
    url = auth.replace("http://", "realm://").replace("/auth", "/~/offline")
    env = dict(os.environ, SHOAL_LIBRARY=str(shoal.LIBRARY_PATH), PYTHONPATH=str(PACKAGE_PARENT))
    # Without the binding's exit handler, a sync callback calling into the finalizing
    # interpreter aborts the process about every other run: run it a few times.
    for run in range(3):
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp_path / f"child{run}"), APP_ID, auth, url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "errors seen: " in out.stdout and "errors seen: 0" not in out.stdout, out.stdout
        assert time.monotonic() - started < 15, "the exit handler waits only as long as needed"


def test_access_tokens_and_stopping_sync(shoal_server, devices):
    a, _ = devices
    user = register(a, shoal_server, unique("tokens"))
    assert user.access_token(f"/{user.identity}/tokens")
    with pytest.raises(shoal.AccessDenied):
        user.access_token("/someone-else/x")
    with pytest.raises(shoal.InvalidArgument):
        user.access_token("")
    with shoal.Realm.open(synced(user, sync_url(shoal_server, "/~/stop"))) as realm:
        session = realm.session
        wait_until("active", lambda: session.state == shoal.SessionState.ACTIVE)
        assert shoal._ffi.lib.shoal_app_stop_sync(a._ptr, 10_000)
        assert session.state == shoal.SessionState.INACTIVE
        session.resume()
        wait_until("active again", lambda: session.state == shoal.SessionState.ACTIVE)


def test_access_tokens_expiring_every_5_s_are_renewed_without_user_action(devices, server_factory):
    """The binary started with --access-token-ttl 5: the sessions keep syncing past several
    token lifetimes with no error and no user action."""
    server = server_factory("--access-token-ttl", "5")
    a, b = devices
    name = unique("ttl")
    ua = register(a, server, name)
    ub = login(b, server, name)
    errors = []
    url = sync_url(server, "/~/ttl")
    with shoal.Realm.open(synced(ua, url, lambda s: s.set_error_handler(lambda _s, e: errors.append(e)))) as ra, \
            shoal.Realm.open(synced(ub, url)) as rb:
        add_items(ra, range(0, 2))
        ra.session.wait_for_upload(timeout=WAIT)
        time.sleep(6.5)  # the first access tokens have expired by now
        add_items(ra, range(2, 4))
        ra.session.wait_for_upload(timeout=WAIT)
        wait_until("B has all four", lambda: count(rb) == 4)
        assert ra.session.state == shoal.SessionState.ACTIVE
    assert not [e for e in errors if e.is_fatal], errors


def test_the_management_realm_holds_permission_objects_and_syncs(app, shoal_server):
    """``shoal_user_open_management_realm`` through the binding: the user's own synced realm at
    ``/~/__management`` with the permission classes; offers written with the helpers sync up."""
    from shoal import management

    user = register(app, shoal_server, unique("mgmt"))
    realm = management.open_management_realm(user)
    try:
        assert set(management.MANAGEMENT_CLASSES) <= set(realm.schema())
        with realm.write():
            offer = management.create_offer(realm, "/~/shared", read=True, write=True)
        assert len(offer["id"]) == 36
        assert offer["statusCode"] is None, "not processed yet"
        assert offer["mayWrite"] is True and offer["mayManage"] is False
        session = realm.session
        assert session.server_url.endswith(f"/{user.identity}/__management")
        session.wait_for_upload(WAIT)
        with pytest.raises(ValueError):
            with realm.write():
                management.create_offer_response(realm, "")
    finally:
        realm.close()


def test_a_read_only_synced_realm_gets_the_initial_data_and_refuses_writes(devices, shoal_server):
    a, b = devices
    name = unique("ro")
    writer_user = register(a, shoal_server, name)
    reader_user = login(b, shoal_server, name)
    url = sync_url(shoal_server, "/~/read-only")
    with shoal.Realm.open(synced(writer_user, url)) as writer:
        add_items(writer, range(5))
        writer.session.wait_for_upload(WAIT)

        def read_only(sync):
            sync.set_wait_for_initial_data(WAIT)

        config = synced(reader_user, url, read_only)
        config.read_only = True
        with shoal.Realm.open(config) as reader:
            assert count(reader) == 5
            with pytest.raises(shoal.ReadOnly):
                reader.begin_write()
            add_items(writer, range(5, 7))
            writer.session.wait_for_upload(WAIT)
            wait_until("the reader has the new items", lambda: count(reader) == 7)


DOG_SCHEMA = shoal.Schema().add_class("Dog").add_property("Dog", "name", "string")


def _answer(realm: shoal.Realm, cls: str, obj_id: str):
    """Waits until the server answered the management object ``obj_id``; returns it."""
    found = {}

    def answered():
        realm.refresh()
        obj = realm.find(cls, obj_id)
        if obj is not None and obj["statusCode"] is not None:
            found["obj"] = obj
            return True
        return False

    wait_until(f"the server answers the {cls}", answered)
    return found["obj"]


def test_create_accept_offer_shares_a_realm_between_two_users(devices, shoal_server):
    """ManagementRealmTests.create_acceptOffer through the binding: user1 writes a Dog into
    /~/permission-offer-test and offers read+write; user2 accepts with the token, sees the Dog in
    its own copy, and both edit and converge."""
    from shoal import management

    a, b = devices
    user1 = register(a, shoal_server, unique("offerer"))
    user2 = register(b, shoal_server, unique("taker"))
    url = sync_url(shoal_server, f"/{user1.identity}/permission-offer-test")
    with shoal.Realm.open(shoal.Config(sync=shoal.SyncConfig(user1, url), schema=DOG_SCHEMA)) as r1:
        with r1.write():
            r1.create("Dog", name="Fido")
        r1.session.wait_for_upload(WAIT)

        m1 = management.open_management_realm(user1)
        m2 = management.open_management_realm(user2)
        try:
            with m1.write():
                offer = management.create_offer(m1, url, read=True, write=True)
            offer = _answer(m1, "PermissionOffer", offer["id"])
            assert offer["statusCode"] == 0, offer["statusMessage"]
            token = offer["token"]
            assert token

            with m2.write():
                response = management.create_offer_response(m2, token)
            response = _answer(m2, "PermissionOfferResponse", response["id"])
            assert response["statusCode"] == 0, response["statusMessage"]
            assert response["realmUrl"] == url
        finally:
            m1.close()
            m2.close()

        granted = user2.granted_permissions()
        assert [g["path"] for g in granted] == [f"/{user1.identity}/permission-offer-test"]
        assert granted[0]["may_write"] and not granted[0]["may_manage"]

        with shoal.Realm.open(shoal.Config(sync=shoal.SyncConfig(user2, url), schema=DOG_SCHEMA)) as r2:
            r2.session.wait_for_download(WAIT)
            r2.refresh()
            assert [d["name"] for d in r2.objects("Dog")] == ["Fido"]
            assert r2.config.path != r1.config.path, "user2 has its own local copy"
            with r2.write():
                r2.create("Dog", name="Rex")
            with r1.write():
                r1.create("Dog", name="Bella")
            r2.session.wait_for_upload(WAIT)
            r1.session.wait_for_upload(WAIT)
            r1.session.wait_for_download(WAIT)
            r2.session.wait_for_download(WAIT)
            r1.refresh()
            r2.refresh()
            names = lambda r: sorted(d["name"] for d in r.objects("Dog"))  # noqa: E731
            assert names(r1) == names(r2) == ["Bella", "Fido", "Rex"]

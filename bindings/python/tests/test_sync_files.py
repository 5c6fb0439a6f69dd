"""Where synced realm files live and when they go, through the Python binding against a real
`shoal-server`: ``SyncConfig.set_name`` / ``set_directory`` (Realm's ``name()`` /
``directory()``), logout deleting the user's files (at once, or at the next app start),
``User.all_sessions``, the default sync error handler, and the reference's remaining error
codes (the behaviours of the Rust tests/sync_files.rs)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import shoal
from shoal import errors

from conftest import APP_ID, PACKAGE_PARENT

WAIT = 20.0
PASSWORD = "myPassw0rd"
SCHEMA = {
    "classes": [
        {
            "name": "Item",
            "primary_key": "id",
            "properties": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}],
        }
    ]
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def register(app: shoal.App, server, name: str) -> shoal.User:
    return app.login(shoal.Credentials.password(name, PASSWORD, register=True), server.auth_url)


def sync_url(server, path: str) -> str:
    return f"realm://{server.address}{path}"


def wait_until(what: str, condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def add_items(realm: shoal.Realm, ids) -> None:
    with realm.write():
        for i in ids:
            realm.create("Item", i, name=f"item {i}")


def test_the_reference_codes_have_their_exceptions():
    for code, cls, name in [
        (110, errors.BadOriginFileIdent, "BAD_ORIGIN_FILE_IDENT"),
        (111, errors.BadServerVersionDownload, "BAD_SERVER_VERSION_DOWNLOAD"),
        (112, errors.BadChangesetDownload, "BAD_CHANGESET_DOWNLOAD"),
        (113, errors.BadRequestIdent, "BAD_REQUEST_IDENT"),
        (114, errors.BadErrorCode, "BAD_ERROR_CODE"),
        (115, errors.BadCompression, "BAD_COMPRESSION"),
        (116, errors.BadClientVersionDownload, "BAD_CLIENT_VERSION_DOWNLOAD"),
    ]:
        e = errors.error_for(code, shoal._ffi.SHOAL_ERR_CATEGORY_SYNC, "m")
        assert type(e) is cls and isinstance(e, shoal.SyncProtocolError)
        assert e.name == name
    for code, cls, name in [
        (616, shoal.InvalidHost, "INVALID_HOST"),
        (801, shoal.ServerMisconfiguration, "SERVER_MISCONFIGURATION"),
    ]:
        e = errors.error_for(code, shoal._ffi.SHOAL_ERR_CATEGORY_AUTH, "m")
        assert type(e) is cls and isinstance(e, shoal.AuthError)
        assert e.name == name
    assert errors.error_for(117, shoal._ffi.SHOAL_ERR_CATEGORY_SYNC, "m").name == "UNKNOWN"


def test_name_and_directory_place_the_file_and_bad_ones_are_refused(app, shoal_server, tmp_path):
    user = register(app, shoal_server, unique("placed"))
    sync = shoal.SyncConfig(user, sync_url(shoal_server, "/~/sub/tasks"))
    default_path = sync.path
    assert sync.directory == os.path.join(os.path.realpath(app.base_dir), "shoal-object-server")
    for bad in ["", ".", "..", "x.compact"]:
        with pytest.raises(shoal.InvalidArgument):
            sync.set_name(bad)
    with pytest.raises(TypeError):
        sync.set_name(None)  # type: ignore[arg-type]
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    for bad, why in [("", "empty"), (a_file, "is a file"), (a_file / "below", "cannot be created"), ("/proc", "not writable")]:
        with pytest.raises(shoal.InvalidArgument) as e:
            sync.set_directory(bad)
        assert why in str(e.value), e.value
    assert sync.path == default_path, "unchanged after the refusals"

    root = tmp_path / "elsewhere"
    assert sync.set_directory(root).set_name("my:file") is sync
    real = os.path.realpath(root)
    assert sync.directory == real
    expected = os.path.join(real, user.identity, user.identity, "sub", "my_file")
    assert sync.path == expected
    with shoal.Realm.open(shoal.Config(sync=sync, schema=SCHEMA)) as realm:
        add_items(realm, range(3))
        realm.session.wait_for_upload(WAIT)
        assert realm.session.path == expected
    assert os.path.isfile(expected)


def test_logout_deletes_the_users_files_at_once_and_all_sessions_leaves_out_errors(app, shoal_server, tmp_path):
    owner = register(app, shoal_server, unique("owner"))
    user = register(app, shoal_server, unique("leaver"))

    def immediately(sync):
        return sync.set_stop_policy(shoal.StopPolicy.IMMEDIATELY)

    placed = immediately(shoal.SyncConfig(user, sync_url(shoal_server, "/~/b"))).set_directory(tmp_path / "mine")
    default = immediately(shoal.SyncConfig(user, sync_url(shoal_server, "/~/a")))
    refused = shoal.SyncConfig(user, sync_url(shoal_server, f"/{owner.identity}/private"))
    seen = []
    refused.set_error_handler(lambda session, error: seen.append(error))
    paths = [placed.path, default.path]
    sessions = []
    for sync in (placed, default):
        with shoal.Realm.open(shoal.Config(sync=sync, schema=SCHEMA)) as realm:
            add_items(realm, range(2))
            realm.session.wait_for_upload(WAIT)
            sessions.append(realm.session)
    with shoal.Realm.open(shoal.Config(sync=refused, schema=SCHEMA)) as bad:
        wait_until("the fatal error", lambda: any(e.is_fatal for e in seen))
        wait_until("state ERROR", lambda: bad.session.state == shoal.SessionState.ERROR)
        listed = user.all_sessions
        assert [s.path for s in listed] == sorted(paths), "by path, the ERROR session left out"
        assert all(s.user == user for s in listed)
    assert owner.all_sessions == []
    for s in sessions:
        wait_until("the session stopped", lambda s=s: s.state == shoal.SessionState.INACTIVE)
    assert all(os.path.exists(p) for p in paths)

    user.logout()
    assert not any(os.path.exists(p) for p in paths), "deleted at once"
    assert not (tmp_path / "mine" / user.identity).exists()
    assert (tmp_path / "mine").is_dir()


CHILD = textwrap.dedent(
    """
    import sys, shoal
    base, app_id, auth, url = sys.argv[1:5]
    schema = {"classes": [{"name": "Item", "primary_key": "id", "properties": [
        {"name": "id", "type": "int"}, {"name": "name", "type": "string"}]}]}
    app = shoal.App(base, app_id)
    user = app.login(shoal.Credentials.password(sys.argv[5], "myPassw0rd", register=True), auth)
    realm = shoal.Realm.open(shoal.Config(sync=shoal.SyncConfig(user, url), schema=schema))
    with realm.write():
        realm.create("Item", 1, name="one")
    realm.session.wait_for_upload(20)
    path = realm.session.path
    user.logout()  # with the realm open: the file stays for now
    realm.close()
    import os
    print("path", path, os.path.exists(path), user.identity, flush=True)
    """
)


def test_logout_with_an_open_realm_deletes_the_files_at_the_next_start(shoal_server, tmp_path):
    """The reference's logoutUserShouldDeleteRealmAfterRestart, with a real restart: the first
    process logs out with the realm open and exits; the next app start deletes the file and
    forgets the user."""
    base = tmp_path / "app"
    env = dict(os.environ, SHOAL_LIBRARY=str(shoal.LIBRARY_PATH), PYTHONPATH=str(PACKAGE_PARENT))
    name = unique("restart")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(base), APP_ID, shoal_server.auth_url, sync_url(shoal_server, "/~/tests"), name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    _, path, existed, identity = out.stdout.split()
    assert existed == "True", "still there after logout and close"
    with shoal.App(base, APP_ID) as app:
        assert not os.path.exists(path), "deleted at the next start"
        assert app.user(identity) is None or not app.user(identity).is_valid
        user = app.login(shoal.Credentials.password(name, PASSWORD), shoal_server.auth_url)
        with shoal.Realm.open(shoal.Config(sync=shoal.SyncConfig(user, sync_url(shoal_server, "/~/tests")), schema=SCHEMA)) as realm:
            realm.session.wait_for_download(WAIT)
            realm.refresh()
            assert len(realm.objects("Item")) == 1, "the server's copy comes back"


def test_the_default_error_handler_and_the_built_in_one(app, shoal_server, caplog):
    owner = register(app, shoal_server, unique("owner"))
    user = register(app, shoal_server, unique("defaults"))
    got = []

    def handler(session, error):
        got.append((session.path if session else None, error))

    shoal.set_default_sync_error_handler(handler)
    try:
        handled = shoal.SyncConfig(user, sync_url(shoal_server, f"/{owner.identity}/handled"))
        assert handled.error_handler is handler
    finally:
        shoal.set_default_sync_error_handler(None)
    logged = shoal.SyncConfig(user, sync_url(shoal_server, f"/{owner.identity}/logged"))
    assert logged.error_handler is None
    with pytest.raises(TypeError):
        shoal.set_default_sync_error_handler(42)  # type: ignore[arg-type]

    with caplog.at_level(logging.INFO, logger="shoal"):
        with shoal.Realm.open(shoal.Config(sync=handled, schema=SCHEMA)) as r1, shoal.Realm.open(
            shoal.Config(sync=logged, schema=SCHEMA)
        ) as r2:
            wait_until("the default handler's call", lambda: any(e.is_fatal for _, e in got))
            path, error = next((p, e) for p, e in got if e.is_fatal)
            assert path == r1.session.path
            assert isinstance(error.exception(), shoal.AccessDenied)
            prefix = f"Session Error[{logged.server_url}]: "
            wait_until(
                "the built-in handler's log line",
                lambda: any(r.getMessage().startswith(prefix) for r in caplog.records),
            )
            line = next(r for r in caplog.records if r.getMessage().startswith(prefix))
            assert (line.name, line.levelno) == ("shoal.sync", logging.ERROR)
            assert not any(handled.server_url in r.getMessage() for r in caplog.records if r.name == "shoal.sync")
            assert r2.session.state == shoal.SessionState.ERROR

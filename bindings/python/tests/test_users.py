"""Users, credentials and logins against a real `shoal-server` process (the behaviours of Realm
Java's AuthTests and SyncUserTests, through the Python binding). Background events are awaited
with deadlines, never with fixed sleeps."""

from __future__ import annotations

import concurrent.futures
import gc
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

import shoal
from shoal import _core, _ffi, errors
from shoal_server import ADMIN_PASSWORD, closed_port_url, http

from conftest import APP_ID, PACKAGE_PARENT

WAIT = 20.0
PASSWORD = "myPassw0rd"


def unique(prefix: str) -> str:
    """A user name no other test (or earlier run against the session server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def register(app: shoal.App, server, name: str, password: str = PASSWORD) -> shoal.User:
    return app.login(shoal.Credentials.password(name, password, register=True), server.auth_url)


def login(app: shoal.App, server, name: str, password: str = PASSWORD) -> shoal.User:
    return app.login(shoal.Credentials.password(name, password), server.auth_url)


def admin(app: shoal.App, server) -> shoal.User:
    a = login(app, server, "realm-admin", ADMIN_PASSWORD)
    assert a.is_admin and a.is_valid
    return a


class Events:
    """Collects auth events of an app: (identity, event, thread id)."""

    def __init__(self, app: shoal.App):
        self.queue: queue.Queue = queue.Queue()
        self.token = app.add_auth_callback(
            lambda user, event: self.queue.put((user.identity, event, threading.get_ident()))
        )

    def next(self, timeout: float = WAIT) -> tuple[str, shoal.AuthEvent]:
        try:
            identity, event, _ = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no auth event within {timeout} s") from None
        return identity, event

    def try_next(self, within: float):
        try:
            identity, event, _ = self.queue.get(timeout=within)
            return identity, event
        except queue.Empty:
            return None

    def wait_for(self, identity: str, event: shoal.AuthEvent) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {event!r} for {identity}"
            if self.next(left) == (identity, event):
                return


def wait_until(what: str, condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def is_identity(s: str) -> bool:
    return len(s) == 32 and all(c in "0123456789abcdef" for c in s)


# ---- errors ----------------------------------------------------------------------------------


def test_auth_and_http_error_classes():
    for code, cls in [
        (601, shoal.InvalidParameters),
        (602, shoal.MissingParameters),
        (611, shoal.InvalidCredentials),
        (612, shoal.UnknownAccount),
        (613, shoal.ExistingAccount),
        (614, shoal.AccessDenied),
        (615, shoal.ExpiredRefreshToken),
    ]:
        e = errors.error_for(code, _ffi.SHOAL_ERR_CATEGORY_AUTH, "m")
        assert type(e) is cls and isinstance(e, shoal.AuthError) and e.code == code
        assert e.name == _ffi.lib.shoal_error_name(code).decode()
    e = errors.error_for(1026, _ffi.SHOAL_ERR_CATEGORY_LOGIC, "m")
    assert type(e) is shoal.MultipleUsersLoggedIn and e.name == "MULTIPLE_USERS_LOGGED_IN"
    # HTTP statuses without a Realm code pass through as themselves.
    for status in (300, 404, 500, 502, 599):
        e = errors.error_for(status, _ffi.SHOAL_ERR_CATEGORY_HTTP, "m")
        assert type(e) is shoal.HttpError and e.code == e.status == status and e.name == "HTTP"
    assert type(errors.error_for(600, 0, "m")) is shoal.ShoalError
    assert type(errors.error_for(299, 0, "m")) is shoal.ShoalError


# ---- logging in --------------------------------------------------------------------------------


def test_login_of_an_unknown_user_is_invalid_credentials(app, shoal_server):
    with pytest.raises(shoal.InvalidCredentials) as info:
        login(app, shoal_server, unique("nobody"))
    e = info.value
    assert e.code == 611 and e.category == _ffi.SHOAL_ERR_CATEGORY_AUTH and e.message
    assert isinstance(e, shoal.AuthError)
    assert app.all_users == {} and app.current_user is None
    # A wrong password is the same error.
    name = unique("wrongpw")
    register(app, shoal_server, name).logout()
    with pytest.raises(shoal.InvalidCredentials):
        login(app, shoal_server, name, "not-the-password")


def test_register_then_login_gives_the_same_identity(app, shoal_server):
    name = unique("alice")
    user = register(app, shoal_server, name)
    assert user.is_valid and not user.is_admin
    assert is_identity(user.identity), user.identity
    assert user.auth_url == shoal_server.auth_url
    token = user.refresh_token
    assert token and isinstance(token, str)
    assert app.current_user == user
    user.logout()
    assert not user.is_valid

    again = login(app, shoal_server, name)
    assert again.identity == user.identity and again == user and hash(again) == hash(user)
    assert again.refresh_token != token
    assert user.is_valid, "the old object is valid again"
    assert repr(again).startswith("<shoal.User")


def test_registering_an_existing_account_is_613(app, shoal_server):
    name = unique("taken")
    register(app, shoal_server, name)
    with pytest.raises(shoal.ExistingAccount) as info:
        register(app, shoal_server, name, "other-password")
    assert info.value.code == 613


def test_a_user_logs_in_and_out_repeatedly(app, shoal_server):
    name = unique("yoyo")
    register(app, shoal_server, name).logout()
    identities = set()
    for _ in range(5):
        user = login(app, shoal_server, name)
        assert user.is_valid and app.current_user == user
        identities.add(user.identity)
        user.logout()
        assert not user.is_valid and user.refresh_token is None
        assert app.current_user is None and app.all_users == {}
    assert len(identities) == 1


def test_several_users_are_logged_in_at_once(app, shoal_server):
    a = register(app, shoal_server, unique("first"))
    b = register(app, shoal_server, unique("second"))
    with pytest.raises(shoal.MultipleUsersLoggedIn) as info:
        app.current_user
    assert info.value.code == _ffi.SHOAL_ERR_MULTIPLE_USERS_LOGGED_IN == 1026
    users = app.all_users
    assert set(users) == {a.identity, b.identity}
    assert list(users) == sorted(users), "ordered by identity"
    assert users[a.identity] == a and users[b.identity].is_valid
    assert app.user(a.identity) == a and app.user("no-such-identity") is None
    # Debug credentials are a third user, and an admin.
    dbg = app.login(shoal.Credentials.debug("admin"), shoal_server.auth_url)
    assert dbg.identity == "admin" and dbg.is_admin
    assert len(app.all_users) == 3


def test_logout_invalidates_every_handle_of_the_user(app, shoal_server):
    name = unique("many")
    user = register(app, shoal_server, name)
    handles = [
        user,
        app.current_user,
        app.user(user.identity),
        app.all_users[user.identity],
        login(app, shoal_server, name),
    ]
    assert all(h.is_valid for h in handles)
    handles[2].logout()
    for h in handles:
        assert not h.is_valid and h.refresh_token is None
    assert app.all_users == {} and app.current_user is None
    # Still known, logged out; logging out again does nothing.
    assert app.user(user.identity) == user and not app.user(user.identity).is_valid
    user.logout()
    assert json.loads(user.to_json())["userToken"] is None


def test_current_user_after_logging_out_one_of_two(app, shoal_server):
    first = register(app, shoal_server, unique("one"))
    second = register(app, shoal_server, unique("two"))
    with pytest.raises(shoal.MultipleUsersLoggedIn):
        app.current_user
    second.logout()
    assert app.current_user == first
    assert list(app.all_users) == [first.identity]


def test_a_revoked_token_is_refused_and_a_new_login_gets_another_token(app, shoal_server, tmp_path):
    name = unique("revoker")
    events = Events(app)
    user = register(app, shoal_server, name)
    assert events.next() == (user.identity, shoal.AuthEvent.LOGGED_IN)
    old_token = user.refresh_token
    old_json = user.to_json()
    assert shoal_server.access(old_token, app_id=APP_ID)[0] == 200

    user.logout()
    events.wait_for(user.identity, shoal.AuthEvent.LOGGED_OUT)
    # The server revoked the token before the LOGGED_OUT callback ran.
    assert shoal_server.access(old_token, app_id=APP_ID) == (401, 615)
    # Through the API: the old token restored in another app is refused by the server.
    with shoal.App(tmp_path / "other", APP_ID) as other:
        stale = other.user_from_json(old_json)
        assert stale.is_valid, "valid locally: only the server knows it is revoked"
        with pytest.raises(shoal.ExpiredRefreshToken) as info:
            stale.change_password("whatever")
        assert info.value.code == 615
        stale.release()

    again = login(app, shoal_server, name)
    assert again.identity == user.identity
    assert again.refresh_token != old_token
    assert user.is_valid, "the old handle is valid again"
    assert shoal_server.access(again.refresh_token, app_id=APP_ID)[0] == 200
    assert app.pending_revocations == 0
    events.token.release()


def test_logged_in_fires_on_login_on_a_library_thread(app, shoal_server):
    seen: queue.Queue = queue.Queue()

    def on_auth(user, event):
        # Callbacks may call back into Shoal.
        seen.put((user.identity, event, user.is_valid, threading.get_ident()))

    before = _core.registry_size()
    with app.add_auth_callback(on_auth) as token:
        assert repr(token).startswith("<shoal.Token")
        user = register(app, shoal_server, unique("cb"))
        identity, event, valid, thread = seen.get(timeout=WAIT)
        assert (identity, event, valid) == (user.identity, shoal.AuthEvent.LOGGED_IN, True)
        assert isinstance(event, shoal.AuthEvent) and event == _ffi.SHOAL_AUTH_LOGGED_IN
        assert thread != threading.get_ident()
        # A user loaded from JSON is no login event; an access-token login is.
        app.user_from_json(user.to_json())
        offline = app.login(shoal.Credentials.access_token("tok", "offline-cb"), closed_port_url())
        assert seen.get(timeout=WAIT)[:2] == (offline.identity, shoal.AuthEvent.LOGGED_IN)
    # Released: the registration is freed after its last call, and no more events arrive.
    wait_until("the callback is freed", lambda: _core.registry_size() == before)
    register(app, shoal_server, unique("after"))
    assert seen.empty()


def test_an_auth_callback_may_log_in_again(app, shoal_server):
    name = unique("comeback")
    user = register(app, shoal_server, name)
    old_token = user.refresh_token
    results: queue.Queue = queue.Queue()

    def on_auth(u, event):
        if event == shoal.AuthEvent.LOGGED_OUT:
            try:
                results.put(login(app, shoal_server, name))
            except BaseException as e:  # handed to the test thread
                results.put(e)

    with app.add_auth_callback(on_auth):
        user.logout()
        again = results.get(timeout=WAIT)
    assert isinstance(again, shoal.User), again
    assert again == user and user.is_valid and again.refresh_token != old_token
    assert shoal_server.access(old_token, app_id=APP_ID) == (401, 615)


def test_a_raising_auth_callback_is_logged_and_others_still_run(app, shoal_server, caplog):
    got: queue.Queue = queue.Queue()

    def bad(user, event):
        raise RuntimeError("boom")

    with app.add_auth_callback(bad), app.add_auth_callback(lambda u, e: got.put(u.identity)):
        with caplog.at_level("ERROR", logger="shoal"):
            user = register(app, shoal_server, unique("raiser"))
            assert got.get(timeout=WAIT) == user.identity
    # The callbacks run one at a time in order: the failing one was logged before the other ran.
    assert any(
        "auth callback raised" in r.getMessage() and r.exc_info and "boom" in str(r.exc_info[1])
        for r in caplog.records
    )


def test_logged_out_fires_only_after_the_server_confirms(app, server_factory):
    server = server_factory()
    events = Events(app)
    user = register(app, server, unique("patient"))
    assert events.next() == (user.identity, shoal.AuthEvent.LOGGED_IN)
    token = user.refresh_token

    server.stop()
    started = time.monotonic()
    user.logout()
    assert time.monotonic() - started < 2, "logout does not wait for the server"
    assert not user.is_valid
    assert app.pending_revocations == 1
    # The server is down: the revocation is retried, and no LOGGED_OUT is sent.
    assert events.try_next(0.7) is None
    assert app.pending_revocations == 1

    server.start()  # same port, same data
    assert events.next() == (user.identity, shoal.AuthEvent.LOGGED_OUT)
    assert server.access(token, app_id=APP_ID) == (401, 615)
    wait_until("the revocation leaves the store", lambda: app.pending_revocations == 0)
    events.token.release()


# ---- passwords and lookups --------------------------------------------------------------------


def test_change_password_of_oneself(app, shoal_server):
    name = unique("changer")
    user = register(app, shoal_server, name)
    user.change_password("new-password")
    assert user.is_valid, "existing tokens stay valid"
    user.logout()
    with pytest.raises(shoal.InvalidCredentials):
        login(app, shoal_server, name)
    again = login(app, shoal_server, name, "new-password")
    assert again.identity == user.identity
    # Naming oneself is the same as no identity.
    again.change_password("third", identity=again.identity)
    login(app, shoal_server, name, "third")
    # A logged-out user cannot.
    again.logout()
    with pytest.raises(shoal.ExpiredRefreshToken):
        again.change_password("fourth")


def test_an_admin_changes_another_users_password_and_a_user_may_not(app, shoal_server):
    victim_name = unique("victim")
    victim = register(app, shoal_server, victim_name)
    other = register(app, shoal_server, unique("other"))
    boss = admin(app, shoal_server)
    boss.change_password("new-password", identity=victim.identity)
    victim.logout()
    again = login(app, shoal_server, victim_name, "new-password")
    assert again.identity == victim.identity
    with pytest.raises(shoal.AccessDenied) as info:
        other.change_password("hacked", identity=victim.identity)
    assert info.value.code == 614
    with pytest.raises(shoal.UnknownAccount) as info:
        boss.change_password("x", identity="0123456789abcdef0123456789abcdef")
    assert info.value.code == 612
    with pytest.raises(shoal.InvalidParameters) as info:
        boss.change_password("", identity=victim.identity)
    assert info.value.code == 601


def test_an_admin_changes_a_password_asynchronously(app, shoal_server):
    name = unique("async-victim")
    victim = register(app, shoal_server, name)
    boss = admin(app, shoal_server)
    calls: queue.Queue = queue.Queue()
    future = boss.change_password_async(
        "new-password", victim.identity, lambda error: calls.put((error, threading.get_ident()))
    )
    error, thread = calls.get(timeout=WAIT)
    assert error is None and thread != threading.get_ident()
    assert future.result(timeout=WAIT) is None
    victim.logout()
    assert login(app, shoal_server, name, "new-password").identity == victim.identity

    # A refusal reaches both the callback and the future; without a callback too.
    mere = register(app, shoal_server, unique("mere"))
    future = mere.change_password_async("x", boss.identity, lambda error: calls.put((error, None)))
    error, _ = calls.get(timeout=WAIT)
    assert isinstance(error, shoal.AccessDenied)
    with pytest.raises(shoal.AccessDenied):
        future.result(timeout=WAIT)
    assert not future.cancel()
    assert isinstance(mere.change_password_async("x", boss.identity).exception(timeout=WAIT), shoal.AccessDenied)
    with pytest.raises(TypeError):
        mere.change_password_async("x", callback=42)


def test_admins_look_up_users_and_others_may_not(app, shoal_server):
    name = unique("findme")
    user = register(app, shoal_server, name)
    boss = admin(app, shoal_server)
    assert boss.lookup("password", name) == {
        "identity": user.identity,
        "provider": "password",
        "provider_id": name,
        "is_admin": False,
    }
    assert boss.lookup("password", "realm-admin")["is_admin"] is True
    # Unknown account or provider: None, and no error.
    assert boss.lookup("password", unique("doesNotExist")) is None
    assert boss.lookup("invalid", name) is None
    assert errors.last_error() is None
    with pytest.raises(shoal.AccessDenied) as info:
        user.lookup("password", name)
    assert info.value.code == 614
    with pytest.raises(shoal.InvalidArgument):
        boss.lookup("", name)


# ---- JSON, the user store, offline logins -----------------------------------------------------


def test_user_json_round_trips(app, shoal_server, tmp_path):
    user = register(app, shoal_server, unique("jsonuser"))
    text = user.to_json()
    data = json.loads(text)
    assert data["authUrl"] == shoal_server.auth_url
    assert data["identity"] == user.identity and data["isAdmin"] is False
    assert data["userToken"]["token"] == user.refresh_token
    assert data["userToken"]["token_data"]["identity"] == user.identity

    assert app.user_from_json(text) == user, "in the same app: the same user"
    with shoal.App(tmp_path / "other", APP_ID) as other:
        copy = other.user_from_json(text)
        assert copy.identity == user.identity and copy != user, "another app"
        assert (copy.refresh_token, copy.auth_url, copy.is_admin) == (user.refresh_token, user.auth_url, False)
        assert copy.is_valid and other.current_user == copy
        assert copy.to_json() == text
        boss_copy = other.user_from_json(admin(app, shoal_server).to_json())
        assert boss_copy.is_admin
        # The copy works against the server.
        assert boss_copy.lookup("password", "realm-admin")["is_admin"]

        # A logged-out user's JSON has no token and cannot be loaded.
        user.logout()
        assert json.loads(user.to_json())["userToken"] is None
        with pytest.raises(shoal.JsonError):
            other.user_from_json(user.to_json())
        with pytest.raises(shoal.JsonError):
            other.user_from_json("{")
        with pytest.raises(shoal.InvalidArgument):
            other.user_from_json('{"authUrl":"ftp://h/auth","userToken":{"token":"t","identity":"i"}}')
        for u in (copy, boss_copy):
            u.release()


CHILD = textwrap.dedent(
    """
    import json, sys
    import shoal
    try:
        with shoal.App(sys.argv[1], sys.argv[2]) as app:
            users = app.all_users
            gone = app.user(sys.argv[3])
            print(json.dumps({
                "users": {i: [u.refresh_token, u.auth_url] for i, u in users.items()},
                "gone": None if gone is None else gone.is_valid,
            }))
    except shoal.ShoalError as e:
        print(json.dumps({"error": e.code}))
    """
)


def run_child(base_dir, gone_identity: str) -> dict:
    env = dict(os.environ, SHOAL_LIBRARY=str(shoal.LIBRARY_PATH), PYTHONPATH=str(PACKAGE_PARENT))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(base_dir), APP_ID, gone_identity],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_user_store_survives_a_restart(shoal_server, tmp_path):
    base = tmp_path / "app"
    app = shoal.App(base, APP_ID)
    events = Events(app)
    alice = register(app, shoal_server, unique("alice"))
    bob = register(app, shoal_server, unique("bob"))
    bob.logout()
    events.wait_for(bob.identity, shoal.AuthEvent.LOGGED_OUT)
    alice_id, bob_id, alice_token = alice.identity, bob.identity, alice.refresh_token
    assert app.pending_revocations == 0

    # Another process cannot use the base directory while this one does.
    assert run_child(base, bob_id) == {"error": _ffi.SHOAL_ERR_FILE_IN_USE}

    # Closed in this process (every handle released), opened again in this process.
    events.token.release()
    for h in (alice, bob, app):
        h.release()
    with shoal.App(base, APP_ID) as again:
        assert list(again.all_users) == [alice_id]
        with again.current_user as restored:
            assert (restored.identity, restored.refresh_token) == (alice_id, alice_token)
            assert restored.auth_url == shoal_server.auth_url
            restored.change_password(PASSWORD)  # the restored token works against the server
        # bob logged out: his metadata went with it (Realm: "user credentials will be deleted
        # from this device"), and nothing is owed to the server any more.
        assert again.user(bob_id) is None
    gc.collect()
    _core.drain_pending()

    # And in another process.
    assert run_child(base, bob_id) == {
        "users": {alice_id: [alice_token, shoal_server.auth_url]},
        "gone": None,
    }


def test_an_access_token_login_makes_no_network_call(app, shoal_server):
    url = closed_port_url()
    events = Events(app)
    started = time.monotonic()
    user = app.login(shoal.Credentials.access_token("foo", "bar"), url)
    assert time.monotonic() - started < 2
    assert user.is_valid and (user.identity, user.is_admin) == ("bar", False)
    assert (user.refresh_token, user.auth_url) == ("foo", url)
    assert events.next() == ("bar", shoal.AuthEvent.LOGGED_IN)
    assert app.current_user == user
    # A Shoal token says whether its user is an admin.
    boss = admin(app, shoal_server)
    alias = app.login(shoal.Credentials.access_token(boss.refresh_token, "alias"), url)
    assert alias.is_admin and alias.identity == "alias"
    events.token.release()


def test_login_async_calls_back_on_a_library_thread(app, shoal_server):
    name = unique("asyncer")
    calls: queue.Queue = queue.Queue()
    before = _core.registry_size()
    future = app.login_async(
        shoal.Credentials.password(name, PASSWORD, register=True),
        shoal_server.auth_url,
        lambda user, error: calls.put((user, error, threading.get_ident())),
    )
    assert isinstance(future, concurrent.futures.Future)
    user, error, thread = calls.get(timeout=WAIT)
    assert error is None and user.is_valid and thread != threading.get_ident()
    assert future.result(timeout=WAIT) is user
    assert app.current_user == user
    first = user

    # Errors reach the callback and the future.
    future = app.login_async(
        shoal.Credentials.password(unique("unknown"), PASSWORD),
        shoal_server.auth_url,
        lambda user, error: calls.put((user, error, None)),
    )
    user, error, _ = calls.get(timeout=WAIT)
    assert user is None and isinstance(error, shoal.InvalidCredentials) and error.code == 611
    with pytest.raises(shoal.InvalidCredentials):
        future.result(timeout=WAIT)
    # Without a callback, only the future.
    ok = app.login_async(shoal.Credentials.password(name, PASSWORD), shoal_server.auth_url)
    assert ok.result(timeout=WAIT) == first
    wait_until("the registrations are freed", lambda: _core.registry_size() == before)
    # A bad URL is an invalid argument of the call itself, and nothing stays registered.
    with pytest.raises(shoal.InvalidArgument):
        app.login_async(shoal.Credentials.password(name, PASSWORD), "ftp://h/auth")
    wait_until("the registration is freed", lambda: _core.registry_size() == before)
    # A released handle fails at once, and nothing stays registered.
    gone = shoal.Credentials.password(name, PASSWORD)
    gone.release()
    with pytest.raises(shoal.Misuse):
        app.login_async(gone, shoal_server.auth_url, lambda u, e: None)
    # Through the C ABI: a refused call frees its userdata at once.
    from shoal.app import LOGIN

    userdata = _core.register(object(), on_library_thread=True)
    assert not _ffi.lib.shoal_app_login_async(app._h, None, b"http://h/auth", LOGIN, userdata, _core.FREE_USERDATA)
    assert isinstance(errors.last_error(), shoal.Misuse)
    with pytest.raises(TypeError):
        app.login_async("not credentials", shoal_server.auth_url)
    assert _core.registry_size() == before


def test_bad_inputs_are_clear_errors(app, tmp_path):
    with pytest.raises(shoal.InvalidArgument) as info:
        shoal.Credentials.password("", "pw", register=True)
    assert isinstance(info.value, ValueError) and info.value.code == _ffi.SHOAL_ERR_INVALID_ARGUMENT
    with pytest.raises(shoal.JsonError):
        shoal.Credentials.custom("t", "p", [1])
    with pytest.raises(shoal.JsonError):
        shoal.Credentials.custom("t", "p", "not json")
    with pytest.raises(shoal.InvalidArgument):
        shoal.Credentials.custom("", "p")
    assert "secret" not in repr(shoal.Credentials.password("u", "secret"))
    creds = shoal.Credentials.password("alice", "pw")
    for url in ["", "not a url", "127.0.0.1:9080/auth", "http://", "/auth"]:
        with pytest.raises(shoal.InvalidArgument) as info:
            app.login(creds, url)
        assert info.value.message.startswith("Invalid URL"), info.value
    for url in ["ftp://127.0.0.1/auth", "realm://127.0.0.1:9080/auth", "ws://h/auth"]:
        with pytest.raises(shoal.InvalidArgument) as info:
            app.login(creds, url)
        assert "scheme" in info.value.message, info.value
    for token, identity in [("", "identity"), ("token", "")]:
        with pytest.raises(shoal.InvalidArgument):
            app.login(shoal.Credentials.access_token(token, identity), "http://h/auth")
    with pytest.raises(TypeError):
        app.login("alice", "http://h/auth")
    with pytest.raises(TypeError):
        shoal.Credentials.password(42, "pw")
    with pytest.raises(ValueError):
        app.login(creds, "http://h/\0auth")
    with pytest.raises(shoal.InvalidArgument):
        shoal.App(tmp_path / "x", "")
    with pytest.raises(shoal.InvalidArgument):
        shoal.App("", APP_ID)
    assert app.all_users == {}


def test_a_server_that_is_down_is_a_recoverable_io_error(app, server_factory):
    server = server_factory()
    server.stop()
    creds = shoal.Credentials.password("later", "pw", register=True)
    with pytest.raises(shoal.IoError) as info:
        app.login(creds, server.auth_url)
    e = info.value
    assert type(e) is shoal.IoError and e.code == _ffi.SHOAL_ERR_IO == 0
    assert e.category == _ffi.SHOAL_ERR_CATEGORY_CLIENT
    assert isinstance(app.login_async(creds, server.auth_url).exception(timeout=WAIT), shoal.IoError)
    # The same call works once the server is back.
    server.start()
    user = app.login(creds, server.auth_url)
    assert user.is_valid
    # The auth URL may also be given without `/auth`.
    bare = f"http://{server.address}"
    again = app.login(shoal.Credentials.password("later", "pw"), bare)
    assert again.identity == user.identity and again.auth_url == bare


def test_an_http_status_without_a_realm_code_is_an_http_error(app, shoal_server):
    # Not the auth endpoint: the server answers 404 without a Realm code.
    url = f"http://{shoal_server.address}/no/such/auth"
    assert http("POST", url, {})[0] == 404
    with pytest.raises(shoal.HttpError) as info:
        app.login(shoal.Credentials.password("x", "y"), url)
    e = info.value
    assert (e.code, e.status, e.name, e.category) == (404, 404, "HTTP", _ffi.SHOAL_ERR_CATEGORY_HTTP)


def test_apps_share_users_by_base_dir_and_misuse_is_reported(app, shoal_server):
    user = register(app, shoal_server, unique("shared"))
    with shoal.App(app.base_dir, APP_ID) as same:
        assert same.current_user == user
    with pytest.raises(shoal.InvalidArgument):
        shoal.App(app.base_dir, "another.app.id")
    creds = shoal.Credentials.debug("someone")
    creds.release()
    with pytest.raises(shoal.Misuse):
        app.login(creds, shoal_server.auth_url)
    user.release()
    with pytest.raises(shoal.Misuse):
        user.is_valid
    assert user.identity and "released" in repr(user)

"""The app of a process, login credentials and users (``shoal_app_*``, ``shoal_credentials_*``
and ``shoal_user_*``).

>>> app = shoal.App(base_dir, "com.example.todo")                       # doctest: +SKIP
>>> alice = app.login(shoal.Credentials.password("alice", "pw", register=True),
...                   "http://127.0.0.1:9080/auth")                     # doctest: +SKIP
>>> app.current_user == alice                                            # doctest: +SKIP
True
>>> alice.logout()  # at once; the token is revoked on the server in the background

Threads: :meth:`App.login_async`, :meth:`User.change_password_async` and auth callbacks call
back on library threads. The asynchronous calls also return a ``concurrent.futures.Future``,
so ``app.login_async(creds, url).result(timeout=10)`` waits for the user (or raises the error).
Exceptions raised by a callback are logged (logger ``"shoal"``), never propagated.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
from typing import Any, Callable

from . import _ffi
from ._core import (
    FREE_USERDATA,
    AsyncResult,
    Handle,
    NamedIntEnum,
    call,
    call_bool,
    call_count,
    call_ptr,
    call_string,
    check_kind,
    live_apps,
    log,
    register,
    registered,
    Token,
)
from ._ffi import lib
from .errors import Internal, ShoalError, error_from_c, last_error
from .sync import Session

from .config import Config

__all__ = ["App", "AuthEvent", "Credentials", "User"]


def _text(s: Any, what: str) -> bytes:
    """A string argument as a C string (a NUL inside would silently cut it short)."""
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    if "\0" in s:
        raise ValueError(f"{what} {s!r} contains a NUL character")
    return s.encode("utf-8")


def _opt_text(s: Any, what: str) -> bytes | None:
    return None if s is None else _text(s, what)


class AuthEvent(NamedIntEnum):
    """What an auth callback is told (``SHOAL_AUTH_*``)."""

    #: A login succeeded (an access-token login too; not a user loaded from JSON).
    LOGGED_IN = _ffi.SHOAL_AUTH_LOGGED_IN
    #: The server confirmed the revocation of a logged-out user's refresh token.
    LOGGED_OUT = _ffi.SHOAL_AUTH_LOGGED_OUT


# ---------------------------------------------------------------------------------------------
# Callback thunks (module-level: they live as long as the process)
# ---------------------------------------------------------------------------------------------


class _Pending:
    """A registration of one asynchronous call: the optional Python callback, the Future and
    the app whose users it hands out."""

    __slots__ = ("app", "callback", "future")

    def __init__(self, app: "App", callback: Callable[..., Any] | None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError("the callback must be callable")
        self.app = app
        self.callback = callback
        self.future: concurrent.futures.Future = AsyncResult()
        # The call cannot be cancelled once started: a RUNNING future refuses cancel().
        self.future.set_running_or_notify_cancel()

    def finish(self, args: tuple[Any, ...], result: Any, error: BaseException | None) -> None:
        if self.callback is not None:
            try:
                self.callback(*args)
            except BaseException:  # never unwind into Rust
                log.exception("an asynchronous auth callback raised")
        if error is None:
            self.future.set_result(result)
        else:
            self.future.set_exception(error)


@_ffi.shoal_login_fn_t
def LOGIN(userdata, user_ptr, error):  # noqa: N802 - a C function pointer
    try:
        entry = registered(userdata)
        if entry is None:  # pragma: no cover - the library calls once, before free_userdata
            if user_ptr:
                lib.shoal_release(user_ptr)
            return
        if user_ptr:
            user = User(user_ptr, entry.app)  # a new handle: the callback owns it
            entry.finish((user, None), user, None)
        else:
            exc = error_from_c(error.contents) if error else _no_error("the login")
            entry.finish((None, exc), None, exc)
    except BaseException:
        log.exception("the login callback failed")


@_ffi.shoal_completion_fn_t
def COMPLETION(userdata, error):  # noqa: N802 - a C function pointer
    try:
        entry = registered(userdata)
        if entry is None:  # pragma: no cover
            return
        exc = error_from_c(error.contents) if error else None
        entry.finish((exc,), None, exc)
    except BaseException:
        log.exception("the completion callback failed")


@_ffi.shoal_lookup_fn_t
def LOOKUP(userdata, json_text, error):  # noqa: N802 - a C function pointer
    try:
        entry = registered(userdata)
        if entry is None:  # pragma: no cover
            return
        exc = error_from_c(error.contents) if error else None
        found = None if exc is not None or json_text is None else json.loads(json_text.decode("utf-8"))
        entry.finish((found, exc), found, exc)
    except BaseException:
        log.exception("the lookup callback failed")


@_ffi.shoal_auth_fn_t
def AUTH(userdata, user_ptr, event):  # noqa: N802 - a C function pointer
    try:
        entry = registered(userdata)
        if entry is None:
            return
        fn, app = entry
        # The handle is valid during the call only: keep a clone.
        user = User(call_ptr(lib.shoal_clone, user_ptr), app)
        try:
            ev: int = AuthEvent(event)
        except ValueError:  # an event of a newer library
            ev = event
        fn(user, ev)
    except BaseException:  # never unwind into Rust
        log.exception("an auth callback raised")


def _no_error(what: str) -> ShoalError:
    return Internal(_ffi.SHOAL_ERR_INTERNAL, _ffi.SHOAL_ERR_CATEGORY_INTERNAL, f"{what} failed without an error")


# ---------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------


class Credentials(Handle):
    """How a user proves who they are to :meth:`App.login`. Build them with the class methods;
    one value may be used for several logins. Passwords and tokens are never shown by
    ``repr``."""

    _kind = "credentials"

    def __init__(self, ptr: int, description: str) -> None:
        super().__init__(ptr)
        self._description = description

    @classmethod
    def password(cls, username: str, password: str | None, register: bool = False) -> "Credentials":
        """A user name and password of the server's ``password`` provider; ``register``
        creates the account (:class:`~shoal.ExistingAccount` if it exists). An empty user
        name is :class:`~shoal.InvalidArgument`."""
        p = call_ptr(
            lib.shoal_credentials_password,
            _text(username, "the username"),
            _opt_text(password, "the password"),
            bool(register),
        )
        return cls(p, f"password {username!r}{' (register)' if register else ''}")

    @classmethod
    def custom(cls, token: str, provider: str, user_info: "dict[str, Any] | str | None" = None) -> "Credentials":
        """A token of another provider, passed to the server as it is. ``user_info`` is a dict
        (sent as a JSON object) or JSON text; anything but an object is
        :class:`~shoal.JsonError`."""
        if user_info is not None and not isinstance(user_info, str):
            user_info = json.dumps(user_info)
        p = call_ptr(
            lib.shoal_credentials_custom,
            _text(token, "the token"),
            _text(provider, "the provider"),
            _opt_text(user_info, "the user info"),
        )
        return cls(p, f"custom provider {provider!r}")

    @classmethod
    def debug(cls, identity: str) -> "Credentials":
        """The server's ``debug`` provider (``shoal-server --debug-provider``): log in as
        ``identity`` (``"admin"`` is an admin)."""
        p = call_ptr(lib.shoal_credentials_debug, _text(identity, "the identity"))
        return cls(p, f"debug {identity!r}")

    @classmethod
    def access_token(cls, token: str, identity: str) -> "Credentials":
        """Log in on the device alone, without any network call: ``token`` becomes the
        refresh token of the user ``identity``."""
        p = call_ptr(lib.shoal_credentials_access_token, _text(token, "the token"), _text(identity, "the identity"))
        return cls(p, f"access token for {identity!r}")

    def __repr__(self) -> str:
        return f"<shoal.Credentials {self._description}{' (released)' if self.released else ''}>"


# ---------------------------------------------------------------------------------------------
# App
# ---------------------------------------------------------------------------------------------


class App(Handle):
    """The app of this process for ``base_dir``: its users (kept in a user store under
    ``base_dir``, so they survive restarts), logins and auth callbacks.

    Use it as a context manager or call :meth:`close`. Creating a second ``App`` for the same
    ``base_dir`` while the first is alive gives another handle of the same app (same users);
    another process cannot use ``base_dir`` at the same time (:class:`~shoal.FileInUse`).
    The app stays alive while any of its :class:`User` objects does, so close those too before
    opening ``base_dir`` from another process."""

    _kind = "app"

    def __init__(
        self,
        base_dir: "str | os.PathLike[str]",
        app_id: str,
        trusted_ca: "str | bytes | os.PathLike[str] | None" = None,
    ) -> None:
        """``trusted_ca``: for servers whose TLS certificate is signed by a CA of your own (a
        self-hosted ``shoal-server --tls-cert``, a test CA): PEM text (``bytes``, or a ``str``
        holding ``-----BEGIN CERTIFICATE-----``) or the path of a PEM file. ``https://``
        logins and ``realms://`` sync of this app then trust those certificates *instead of*
        the public roots. :class:`~shoal.InvalidArgument` if it holds no usable certificate,
        or an app of ``base_dir`` is alive with other trusted roots."""
        base = os.fspath(base_dir)
        if isinstance(base, bytes):
            base = os.fsdecode(base)
        if trusted_ca is None:
            p = call_ptr(lib.shoal_app_new, _text(base, "the base directory"), _text(app_id, "the app id"))
        else:
            if isinstance(trusted_ca, bytes):
                pem = trusted_ca.decode("ascii", errors="replace")
            elif isinstance(trusted_ca, str) and "-----BEGIN" in trusted_ca:
                pem = trusted_ca
            else:
                with open(os.fspath(trusted_ca), encoding="ascii", errors="replace") as f:
                    pem = f.read()
            p = call_ptr(
                lib.shoal_app_new_with_trusted_ca,
                _text(base, "the base directory"),
                _text(app_id, "the app id"),
                _text(pem, "the trusted CA"),
            )
        super().__init__(p)
        self.base_dir: str = base
        self.app_id: str = app_id
        #: Identifies the app across handles and spellings of its directory.
        self._key = os.path.realpath(base)
        live_apps.add(self)

    def _wrap_user(self, p: int) -> "User":
        """A User of this app owning the handle ``p`` (for modules below this one)."""
        return User(p, self)

    def close(self) -> None:
        """Releases this handle of the app. Users obtained from it stay usable. Closing twice
        is harmless."""
        self.release()

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` was called (or the app left its ``with`` block)."""
        return self.released

    # -- logging in -------------------------------------------------------------------------------

    def login(self, credentials: Credentials, auth_url: str) -> "User":
        """Logs in at the auth server ``auth_url`` (``http(s)://host:port/auth``; without
        ``/auth`` it is appended), blocking. Errors: :class:`~shoal.InvalidCredentials`,
        :class:`~shoal.ExistingAccount` and the other auth errors, :class:`~shoal.InvalidArgument`
        for a malformed URL or a scheme other than http(s), :class:`~shoal.IoError` when the
        server cannot be reached (retry later)."""
        if not isinstance(credentials, Credentials):
            raise TypeError(f"expected Credentials, got {type(credentials).__name__}")
        p = call_ptr(lib.shoal_app_login, self._h, credentials._h, _text(auth_url, "the auth URL"))
        return User(p, self)

    def login_async(
        self,
        credentials: Credentials,
        auth_url: str,
        callback: "Callable[[User | None, ShoalError | None], Any] | None" = None,
    ) -> "concurrent.futures.Future[User]":
        """Logs in like :meth:`login` without blocking. ``callback(user, error)`` (one of the
        two is None) runs once on a library thread; the returned Future completes right after
        it with the user or the error. Invalid arguments raise here."""
        if not isinstance(credentials, Credentials):
            raise TypeError(f"expected Credentials, got {type(credentials).__name__}")
        url = _text(auth_url, "the auth URL")
        entry = _Pending(self, callback)
        # On failure the library runs FREE_USERDATA at once, which drops the registration.
        call_bool(
            lib.shoal_app_login_async,
            self._h,
            credentials._h,
            url,
            LOGIN,
            register(entry, on_library_thread=True),
            FREE_USERDATA,
        )
        return entry.future

    def user_from_json(self, text: str) -> "User":
        """Restores a user from :meth:`User.to_json` (or ROS-era Realm Java JSON) and adds it to
        the user store as logged in. No LOGGED_IN callback runs."""
        return User(call_ptr(lib.shoal_app_user_from_json, self._h, _text(text, "the JSON")), self)

    # -- users ------------------------------------------------------------------------------------

    @property
    def current_user(self) -> "User | None":
        """The only logged-in user, None if nobody is logged in;
        :class:`~shoal.MultipleUsersLoggedIn` if several are."""
        p = call_ptr(lib.shoal_app_current_user, self._h, allow_null=True)
        return User(p, self) if p else None

    @property
    def all_users(self) -> "dict[str, User]":
        """The logged-in users by identity (ordered by identity)."""
        while True:
            n = call_count(lib.shoal_app_all_users, self._h, None, 0)
            if n == 0:
                return {}
            out = (ctypes.c_void_p * n)()
            total = call_count(lib.shoal_app_all_users, self._h, out, n)
            users = [User(out[i], self) for i in range(min(total, n))]
            if total <= n:
                return {u.identity: u for u in users}
            for u in users:  # a user logged in between the two calls: ask again
                u.release()

    def user(self, identity: str) -> "User | None":
        """The user of ``identity`` known to this app, logged in or not (see
        :attr:`User.is_valid`), or None if it never logged in here."""
        p = call_ptr(lib.shoal_app_get_user, self._h, _text(identity, "the identity"), allow_null=True)
        return User(p, self) if p else None

    @property
    def pending_revocations(self) -> int:
        """How many logged-out users' refresh tokens still wait to be revoked on a server."""
        out = ctypes.c_uint64()
        call_bool(lib.shoal_app_pending_revocations, self._h, ctypes.byref(out))
        return out.value

    # -- callbacks --------------------------------------------------------------------------------

    def add_auth_callback(self, fn: "Callable[[User, AuthEvent], Any]") -> Token:
        """Calls ``fn(user, event)`` on a library thread after every login
        (:attr:`AuthEvent.LOGGED_IN`) and every logout the server confirmed
        (:attr:`AuthEvent.LOGGED_OUT`) of any user of this app, one at a time, in order.
        ``fn`` may call Shoal (even log in). Release the returned token (or use it in a
        ``with`` block) to unregister. Exceptions raised by ``fn`` are logged."""
        if not callable(fn):
            raise TypeError("the auth callback must be callable")
        p = call_ptr(
            lib.shoal_app_add_auth_callback, self._h, AUTH, register((fn, self), on_library_thread=True), FREE_USERDATA
        )
        return Token(p)

    # -- sync -----------------------------------------------------------------------------------

    def get_session(self, config: "Config") -> "Session":
        """The sync session of the synced realm ``config`` describes, created (state
        :attr:`SessionState.INACTIVE <shoal.SessionState.INACTIVE>` until the realm is opened)
        if there is none. :class:`~shoal.InvalidArgument` for a configuration that is not
        synced, a user of another app, or a file already synced with another URL or user."""
        check_kind(config, "config", "shoal.Config")
        return Session(call_ptr(lib.shoal_app_get_session, self._h, config._h), self)

    def execute_client_reset(self, original_path: "str | os.PathLike[str]") -> str:
        """Executes the client reset a session's error handler announced
        (:attr:`SyncError.is_client_reset <shoal.SyncError.is_client_reset>`): moves the realm
        file at ``original_path`` to exactly the error's ``backup_path`` (recorded when the error
        was raised: the same path whether or not a session handle is still held, and after a
        restart) and forgets its session, so that the next open downloads the realm afresh.
        Returns the backup path; open it with the error's ``backup_config`` or
        :meth:`Config.for_recovery <shoal.Config.for_recovery>`. Close every handle of the
        realm first (:class:`~shoal.RealmInUse` otherwise); :class:`~shoal.FileNotFound` if
        there is no file. Not executed by hand, the reset runs at the next open of the realm
        once every handle of it is closed."""
        path = os.fspath(original_path)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return call_string(lib.shoal_app_execute_client_reset, self._h, _text(path, "the original path"))

    def __repr__(self) -> str:
        return f"<shoal.App {self.app_id!r} at {self.base_dir}{' (closed)' if self.released else ''}>"


# ---------------------------------------------------------------------------------------------
# User
# ---------------------------------------------------------------------------------------------


class User(Handle):
    """A user of an :class:`App`. Every ``User`` of one identity shares one state: a logout
    through any of them makes all invalid, a new login makes all valid again. Users compare
    equal when they are of the same identity in the same app."""

    _kind = "user"

    def __init__(self, ptr: int, app: App) -> None:
        super().__init__(ptr)
        self._app = app
        self.identity: str = call_string(lib.shoal_user_identity, ptr)
        """The user's identity (the server's user id)."""

    @property
    def app(self) -> App:
        """The :class:`App` (handle) this user was obtained from."""
        return self._app

    def _flag(self, fn) -> bool:
        ok = call(fn, self._h)
        if not ok:
            e = last_error()
            if e is not None:
                raise e
        return bool(ok)

    @property
    def is_valid(self) -> bool:
        """Whether the user is logged in with an unexpired refresh token."""
        return self._flag(lib.shoal_user_is_valid)

    @property
    def is_admin(self) -> bool:
        """Whether the refresh token says the user is an admin of the server."""
        return self._flag(lib.shoal_user_is_admin)

    @property
    def auth_url(self) -> str:
        """The auth URL of the user's last login, as it was given."""
        return call_string(lib.shoal_user_auth_url, self._h)

    @property
    def refresh_token(self) -> str | None:
        """The refresh token, None after logout."""
        return _ffi.take_string(call_ptr(lib.shoal_user_refresh_token, self._h, allow_null=True))

    def granted_permissions(self) -> list[dict[str, Any]]:
        """The realms other users have shared with this user ("shared with me"): a list of
        ``{"path", "may_read", "may_write", "may_manage"}`` sorted by path. Blocks on the
        network."""
        text = _ffi.take_string(call_ptr(lib.shoal_user_granted_permissions_json, self._h))
        return json.loads(text)

    def access_token(self, path: str) -> str:
        """An access token for the realm at server ``path`` (``"/<identity>/tasks"``) from the
        auth service, cached until shortly before it expires: what a token binder passes to
        :meth:`Session.bind_token`. Blocks on the network."""
        return _ffi.take_string(call_ptr(lib.shoal_user_access_token, self._h, _text(path, "the realm path")))

    @property
    def all_sessions(self) -> "list[Session]":
        """The user's sync sessions that are not stopped by a fatal error (Realm's
        ``SyncUser.allSessions``: state ``ERROR`` left out), ordered by local path."""
        while True:
            n = call_count(lib.shoal_user_all_sessions, self._h, None, 0)
            if n == 0:
                return []
            out = (ctypes.c_void_p * n)()
            total = call_count(lib.shoal_user_all_sessions, self._h, out, n)
            sessions = [Session(out[i], self._app) for i in range(min(total, n))]
            if total <= n:
                return sessions
            for s in sessions:  # a session appeared between the two calls: ask again
                s.release()

    def to_json(self) -> str:
        """The user as JSON, for :meth:`App.user_from_json`."""
        return call_string(lib.shoal_user_to_json, self._h)

    def logout(self) -> None:
        """Logs out at once (never blocks); the refresh token is revoked on the server in the
        background, with retries. LOGGED_OUT callbacks run once the server confirmed."""
        call_bool(lib.shoal_user_logout, self._h)

    def change_password(self, new_password: str, identity: str | None = None) -> None:
        """Changes this user's password or, for an admin, the password of the user
        ``identity``. Blocks. Errors: :class:`~shoal.AccessDenied`,
        :class:`~shoal.UnknownAccount`, :class:`~shoal.InvalidParameters`,
        :class:`~shoal.ExpiredRefreshToken` (logged out), :class:`~shoal.IoError`."""
        call_bool(
            lib.shoal_user_change_password,
            self._h,
            _text(new_password, "the new password"),
            _opt_text(identity, "the identity"),
        )

    def change_password_async(
        self,
        new_password: str,
        identity: str | None = None,
        callback: "Callable[[ShoalError | None], Any] | None" = None,
    ) -> "concurrent.futures.Future[None]":
        """:meth:`change_password` without blocking: ``callback(error)`` (None on success) runs
        once on a library thread; the returned Future completes right after it."""
        entry = _Pending(self._app, callback)
        call_bool(
            lib.shoal_user_change_password_async,
            self._h,
            _text(new_password, "the new password"),
            _opt_text(identity, "the identity"),
            COMPLETION,
            register(entry, on_library_thread=True),
            FREE_USERDATA,
        )
        return entry.future

    def lookup(self, provider: str, provider_id: str) -> "dict[str, Any] | None":
        """As an admin, asks the server about the user that logs in with ``provider_id`` at
        ``provider`` (e.g. ``("password", "alice")``): ``{"identity", "provider",
        "provider_id", "is_admin"}``, or None if there is no such user.
        :class:`~shoal.AccessDenied` if this user is not an admin."""
        p = call_ptr(
            lib.shoal_user_lookup,
            self._h,
            _text(provider, "the provider"),
            _text(provider_id, "the provider id"),
            allow_null=True,
        )
        text = _ffi.take_string(p)
        return None if text is None else json.loads(text)

    def lookup_async(
        self,
        provider: str,
        provider_id: str,
        callback: "Callable[[dict[str, Any] | None, ShoalError | None], Any] | None" = None,
        scheduler: Any = None,
    ) -> "AsyncResult[dict[str, Any] | None]":
        """:meth:`lookup` without blocking: the request runs on a library thread, then
        ``callback(found, error)`` (``found`` None when there is no such user) runs once on
        ``scheduler`` (a :class:`shoal.aio.Scheduler`, e.g. an event loop's
        :class:`~shoal.aio.AsyncioScheduler`) or, without one, on the library thread. Returns
        an :class:`~shoal._core.AsyncResult` (``await`` it, or ``.result(timeout)``)."""
        if scheduler is not None:
            check_kind(scheduler, "scheduler", "shoal.aio.Scheduler")
        entry = _Pending(self._app, callback)
        call_bool(
            lib.shoal_user_lookup_async,
            self._h,
            _text(provider, "the provider"),
            _text(provider_id, "the provider id"),
            scheduler._h if scheduler is not None else None,
            LOOKUP,
            register(entry, on_library_thread=True),
            FREE_USERDATA,
        )
        return entry.future

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, User):
            return NotImplemented
        return self.identity == other.identity and self._app._key == other._app._key

    def __hash__(self) -> int:
        return hash((self._app._key, self.identity))

    def __repr__(self) -> str:
        if self.released:
            return f"<shoal.User {self.identity!r} (released)>"
        try:
            state = "valid" if self.is_valid else "logged out"
        except ShoalError:  # pragma: no cover
            state = "?"
        return f"<shoal.User {self.identity!r} {state}>"

"""Synced realms: sync configurations, sessions (states, progress, waits, tokens) and client
reset (``shoal_sync_config_*``, ``shoal_session_*``).

>>> user = app.login(shoal.Credentials.password("alice", "pw"), auth_url)       # doctest: +SKIP
>>> sync = shoal.SyncConfig(user, "realm://127.0.0.1:9080/~/tasks")             # doctest: +SKIP
>>> sync.set_error_handler(lambda session, error: print(error))                 # doctest: +SKIP
>>> with shoal.Realm.open(shoal.Config(sync=sync, schema=schema)) as realm:     # doctest: +SKIP
...     with realm.write():
...         realm.create("Task", 1, name="write the docs")
...     realm.session.wait_for_upload(timeout=10)

Threads: error handlers, token binders, state, connection and progress callbacks run on the
library's sync callback thread, one at a time and in order. Exceptions they raise are logged
(logger ``"shoal"``), never propagated. At interpreter exit the sessions this binding knows of
(those of open synced realms, of live :class:`Session` objects and of synced realms closed
while they still had changes to upload) are paused and their pending callbacks run, so that no
library thread calls into a finalizing interpreter.
"""

from __future__ import annotations

import atexit
import datetime
import enum
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable

from . import _core, _ffi
from ._core import (
    FREE_USERDATA,
    Handle,
    NamedIntEnum,
    Token,
    call,
    call_bool,
    call_ptr,
    call_string,
    check_kind,
    handle_class,
    live_apps,
    log,
    register,
    registered,
)
from ._ffi import lib
from .errors import Misuse, ShoalError, error_for, last_error

# `App`, `User`, `Config` and `Realm` in annotations name the classes of shoal.app,
# shoal.config and shoal.realm, modules above this one (they import it); annotations are never
# evaluated (`from __future__ import annotations`).

__all__ = [
    "set_default_sync_error_handler",
    "ConnectionState",
    "ProgressDirection",
    "ProgressMode",
    "Session",
    "SessionState",
    "StopPolicy",
    "SyncConfig",
    "SyncError",
]


class StopPolicy(NamedIntEnum):
    """What a session does when the last realm handle of its file is released
    (``SHOAL_STOP_POLICY_*``)."""

    #: Stop syncing at once; changes not uploaded yet wait for the next open.
    IMMEDIATELY = _ffi.SHOAL_STOP_POLICY_IMMEDIATELY
    #: Keep syncing for as long as the process runs.
    LIVE_INDEFINITELY = _ffi.SHOAL_STOP_POLICY_LIVE_INDEFINITELY
    #: The default: upload every local change (state DYING), then stop.
    AFTER_CHANGES_UPLOADED = _ffi.SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED


class SessionState(NamedIntEnum):
    """A session's state (``SHOAL_SESSION_*``)."""

    #: The session needs an access token before it can sync.
    WAITING_FOR_ACCESS_TOKEN = _ffi.SHOAL_SESSION_WAITING_FOR_ACCESS_TOKEN
    #: Syncing (or connecting to do so).
    ACTIVE = _ffi.SHOAL_SESSION_ACTIVE
    #: Every realm handle is released; uploading what is left, then stopping.
    DYING = _ffi.SHOAL_SESSION_DYING
    #: Not syncing: stopped, paused, or the user logged out.
    INACTIVE = _ffi.SHOAL_SESSION_INACTIVE
    #: Stopped for good by a fatal error (see the error handler).
    ERROR = _ffi.SHOAL_SESSION_ERROR


class ConnectionState(NamedIntEnum):
    """The state of a session's connection (``SHOAL_CONNECTION_*``)."""

    DISCONNECTED = _ffi.SHOAL_CONNECTION_DISCONNECTED
    #: Connecting or binding.
    CONNECTING = _ffi.SHOAL_CONNECTION_CONNECTING
    #: Bound on a connected WebSocket.
    CONNECTED = _ffi.SHOAL_CONNECTION_CONNECTED


class ProgressDirection(NamedIntEnum):
    """Which transfer a progress callback follows (``SHOAL_PROGRESS_DOWNLOAD/UPLOAD``)."""

    #: Changes from the server.
    DOWNLOAD = _ffi.SHOAL_PROGRESS_DOWNLOAD
    #: Local changes to the server.
    UPLOAD = _ffi.SHOAL_PROGRESS_UPLOAD


class ProgressMode(NamedIntEnum):
    """How long a progress callback reports (``SHOAL_PROGRESS_CURRENT_CHANGES/INDEFINITELY``)."""

    #: Follows what is to transfer at registration (for downloads: at the server's first
    #: figures), reports only growing progress and stops after the first completion.
    CURRENT_CHANGES = _ffi.SHOAL_PROGRESS_CURRENT_CHANGES
    #: Reports for as long as the callback is registered; the bytes to transfer grow with new
    #: changes.
    INDEFINITELY = _ffi.SHOAL_PROGRESS_INDEFINITELY


def _enum_value(enum_cls: type[enum.IntEnum], value: Any, what: str) -> int:
    """An enum member, its name (any case) or its number, as the number. Unknown numbers pass
    through for the library to refuse (:class:`~shoal.InvalidArgument`)."""
    if isinstance(value, str):
        try:
            return int(enum_cls[value.upper()])
        except KeyError:
            names = ", ".join(m.name for m in enum_cls)
            raise ValueError(f"unknown {what} {value!r} (one of {names})") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a {enum_cls.__name__}, not {type(value).__name__}")
    return int(value)


def _as_enum(enum_cls: type[enum.IntEnum], value: int) -> int:
    try:
        return enum_cls(value)
    except ValueError:  # a value of a newer library
        return value


def _timeout_ms(timeout: "float | datetime.timedelta | None", what: str = "the timeout") -> int:
    """Seconds (None or infinity: no practical limit) as the library's milliseconds."""
    if timeout is None:
        return _ffi.UINT64_MAX
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(timeout).__name__}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"{what} must be a number of seconds >= 0, not {timeout!r}")
    if math.isinf(timeout):
        return _ffi.UINT64_MAX
    return min(math.ceil(timeout * 1000), _ffi.UINT64_MAX)


def _text(s: Any, what: str) -> bytes:
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    if "\0" in s:
        raise ValueError(f"{what} {s!r} contains a NUL character")
    return s.encode("utf-8")


def _decode(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------
# Errors handed to the error handler
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncError:
    """An error of a sync session, as its error handler receives it.

    ``code`` is a protocol code (100–116, 200–213; ``category`` ``SYNC``), ``CLIENT_RESET``
    (7), ``IO`` (0, network failures), an auth code (601–616, e.g. ``ACCESS_DENIED`` 614 for a
    path the user may not sync) or a database code; ``name`` is its constant name
    (``"BAD_AUTHENTICATION"``, ``"CLIENT_RESET"``, ...). ``is_fatal``: the session stopped for
    good (state ERROR); otherwise it retries by itself. ``is_client_reset``: close every handle
    of the realm, then call :meth:`App.execute_client_reset <shoal.App.execute_client_reset>`
    with ``original_path``; the file goes to ``backup_path`` (chosen and recorded when the error
    was raised, so exactly there whoever runs the reset and whenever). Not executed by hand,
    the reset runs at the next open of the realm once every handle of it is closed (also
    after the app restarts); writes made in between are in the backup only.
    ``backup_config`` is a ready :class:`~shoal.Config` for the backup once the reset has run:
    read-only, unsynced, with the original configuration's encryption key and schema."""

    code: int
    name: str
    category: int
    message: str
    is_fatal: bool
    is_client_reset: bool
    original_path: str | None = None
    backup_path: str | None = None
    backup_config: "Config | None" = None

    @classmethod
    def _from_c(cls, e: "_ffi.shoal_sync_error_t") -> "SyncError":
        backup_config = None
        if e.backup_config:
            # Borrowed for the call: the Config keeps a clone.
            backup_config = handle_class("config")._adopt(call_ptr(lib.shoal_clone, e.backup_config))
        return cls(
            code=e.code,
            name=sync_code_name(e.code, e.category),
            category=e.category,
            message=_decode(e.message) or "",
            is_fatal=bool(e.is_fatal),
            is_client_reset=bool(e.is_client_reset),
            original_path=_decode(e.original_path),
            backup_path=_decode(e.backup_path),
            backup_config=backup_config,
        )

    def exception(self) -> ShoalError:
        """The matching exception (e.g. :class:`~shoal.AccessDenied`,
        :class:`~shoal.BadAuthentication`, :class:`~shoal.ClientReset`), to raise or log."""
        return error_for(self.code, self.category, self.message, self.original_path)

    def __str__(self) -> str:
        kind = "fatal" if self.is_fatal else "recoverable"
        return f"{self.message} [{self.name}, {kind}]"


def sync_code_name(code: int, category: int = _ffi.SHOAL_ERR_CATEGORY_SYNC) -> str:
    """The name of a code a :class:`SyncError` carries: the protocol's own for 100–116 and
    200–213 (200 is ``"SESSION_CLOSED"`` here, though ``shoal_error_name(200)`` names the
    family, ``"SYNC"``), else the ``SHOAL_ERR_*`` name."""
    if code == _ffi.SHOAL_ERR_SESSION_CLOSED:
        return "SESSION_CLOSED"
    return error_for(code, category, "").name


# ---------------------------------------------------------------------------------------------
# Callback thunks (module-level: they live as long as the process)
# ---------------------------------------------------------------------------------------------


def _callback_session(session_ptr: int | None, app: "App | None") -> "Session | None":
    """A Session for the temporary handle a callback receives: a clone, so it may be kept."""
    if not session_ptr:
        return None
    return Session(call_ptr(lib.shoal_clone, session_ptr), app)


@_ffi.shoal_sync_error_fn_t
def SYNC_ERROR(userdata, session_ptr, error):  # noqa: N802 - a C function pointer
    try:
        entry = registered(userdata)
        if entry is None or not error:
            return
        fn, app = entry
        err = SyncError._from_c(error.contents)
        fn(_callback_session(session_ptr, app), err)
    except BaseException:  # never unwind into Rust
        log.exception("a sync error handler raised")


@_ffi.shoal_token_binder_fn_t
def TOKEN_BINDER(userdata, session_ptr, server_path):  # noqa: N802 - a C function pointer
    try:
        entry = registered(userdata)
        if entry is None:
            return
        fn, app = entry
        session = _callback_session(session_ptr, app)
        token = fn(session, _decode(server_path) or "")
        if isinstance(token, str) and session is not None:
            session.bind_token(token)
    except BaseException:
        log.exception("a token binder raised")


@_ffi.shoal_session_state_fn_t
def SESSION_STATE(userdata, old, new):  # noqa: N802 - a C function pointer
    try:
        fn = registered(userdata)
        if fn is not None:
            fn(_as_enum(SessionState, old), _as_enum(SessionState, new))
    except BaseException:
        log.exception("a session state callback raised")


@_ffi.shoal_connection_state_fn_t
def CONNECTION_STATE(userdata, old, new):  # noqa: N802 - a C function pointer
    try:
        fn = registered(userdata)
        if fn is not None:
            fn(_as_enum(ConnectionState, old), _as_enum(ConnectionState, new))
    except BaseException:
        log.exception("a connection state callback raised")


@_ffi.shoal_progress_fn_t
def PROGRESS(userdata, transferred, transferable):  # noqa: N802 - a C function pointer
    try:
        fn = registered(userdata)
        if fn is not None:
            fn(transferred, transferable)
    except BaseException:
        log.exception("a progress callback raised")


# ---------------------------------------------------------------------------------------------
# Sync configurations
# ---------------------------------------------------------------------------------------------

#: The handler given to set_default_sync_error_handler (None: the built-in one).
_default_error_handler: "Callable[[Session | None, SyncError], Any] | None" = None


def set_default_sync_error_handler(fn: "Callable[[Session | None, SyncError], Any] | None") -> None:
    """Sets the error handler every :class:`SyncConfig` made from now on starts with (Realm's
    ``SyncManager.setDefaultSessionErrorHandler``): ``fn(session, error)`` on the sync callback
    thread. None restores the built-in handler, which logs fatal errors at ``ERROR`` and
    recoverable ones at ``INFO`` as ``Session Error[<url>]: <message>`` (logger
    ``shoal.sync``, see :mod:`shoal.log`). Configurations made earlier keep the handler they
    had. The sessions it is called for have no app here, so their ``user`` is unknown."""
    global _default_error_handler
    if fn is None:
        call_bool(lib.shoal_set_default_sync_error_handler, _ffi.shoal_sync_error_fn_t(), None, _ffi.shoal_free_userdata_fn_t())
    else:
        if not callable(fn):
            raise TypeError("the error handler must be callable")
        call_bool(lib.shoal_set_default_sync_error_handler, SYNC_ERROR, register((fn, None)), FREE_USERDATA)
    _default_error_handler = fn



class SyncConfig(Handle):
    """How a realm is synced: the ``user`` and the realm's ``url``, ``realm://host[:port]/path``
    or ``realms://`` (TLS). A path segment that is exactly ``~`` stands for the user's identity;
    every other one matches ``[A-Za-z0-9_.-]+`` and is not ``.`` or ``..``; the last one must not
    end in ``.realm``, ``.realm.lock`` or ``.realm.management``. The local file (:attr:`path`) is
    ``<base_dir>/shoal-object-server/<identity>/<server path>``, so two users of one URL get
    two files. Errors: :class:`~shoal.InvalidArgument` (a URL that breaks a rule, a logged-out
    user), :class:`~shoal.Misuse` (a released user).

    Give it to :class:`~shoal.Config` (``Config(sync=sync_config, schema=...)`` or
    :meth:`Config.set_sync <shoal.Config.set_sync>`), which copies it: set the options first.
    The setters return the sync configuration, so they chain."""

    _kind = "sync config"

    def __init__(self, user: "User", url: str) -> None:
        check_kind(user, "user", "shoal.User")
        super().__init__(call_ptr(lib.shoal_sync_config_new, user._h, _text(url, "the sync URL")))
        self._user = user
        self.url: str = url
        """The URL as given (see :attr:`server_url` for the resolved one)."""
        # The library gave it the default handler of the moment.
        self._error_handler: Callable[[Session | None, SyncError], Any] | None = _default_error_handler
        self._token_binder: Callable[[Session | None, str], Any] | None = None
        self._stop_policy = StopPolicy.AFTER_CHANGES_UPLOADED
        self._wait_for_initial_data: float | None = None

    @property
    def user(self) -> "User":
        """The user the realm syncs as."""
        return self._user

    @property
    def path(self) -> str:
        """The local realm file."""
        return call_string(lib.shoal_sync_config_path, self._h)

    @property
    def directory(self) -> str:
        """The root the local file lives under: ``<base_dir>/shoal-object-server``, or the
        directory given to :meth:`set_directory` (absolute and canonical)."""
        return call_string(lib.shoal_sync_config_directory, self._h)

    def set_name(self, name: str) -> "SyncConfig":
        """Names the local file ``name`` instead of the URL's last segment (Realm's
        ``SyncConfiguration.Builder.name()``); it stays in the folder the URL's path gives.
        The characters ``< > : " / \\ | ? *`` become ``_``. :class:`~shoal.InvalidArgument`
        for an empty name, ``"."``, ``".."`` or a name ending in ``.creating``, ``.compact``
        or ``.upgrade``; the configuration is then unchanged."""
        call_bool(lib.shoal_sync_config_set_name, self._h, _text(name, "the realm file name"))
        return self

    def set_directory(self, directory: "str | os.PathLike[str]") -> "SyncConfig":
        """Keeps the local file under ``directory`` instead of the app's sync root (Realm's
        ``SyncConfiguration.Builder.directory()``): ``<directory>/<identity>/<server path>``.
        The directory is created if missing. :class:`~shoal.InvalidArgument` for an empty
        path, a file, or a directory that cannot be created or is not writable; the
        configuration is then unchanged."""
        path = os.fspath(directory)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        call_bool(lib.shoal_sync_config_set_directory, self._h, _text(path, "the directory"))
        return self

    @property
    def server_url(self) -> str:
        """The resolved server URL (``~`` replaced by the user's identity)."""
        return call_string(lib.shoal_sync_config_server_url, self._h)

    @property
    def server_path(self) -> str:
        """The server path, e.g. ``"/<identity>/tasks"``."""
        return call_string(lib.shoal_sync_config_server_path, self._h)

    # -- options ----------------------------------------------------------------------------

    @property
    def error_handler(self) -> "Callable[[Session | None, SyncError], Any] | None":
        """The handler given to :meth:`set_error_handler`, else the default one of the moment
        the configuration was made (:func:`~shoal.set_default_sync_error_handler`); None: the
        built-in handler, which logs."""
        return self._error_handler

    def set_error_handler(self, fn: "Callable[[Session | None, SyncError], Any] | None") -> "SyncConfig":
        """Calls ``fn(session, error)`` (a :class:`Session` and a :class:`SyncError`) for every
        error of the session, on the sync callback thread: recoverable ones (the session
        retries by itself) and fatal ones (state ERROR), client resets included. None removes
        the handler (errors are then only logged by the library)."""
        if fn is None:
            call_bool(
                lib.shoal_sync_config_set_error_handler, self._h, _ffi.shoal_sync_error_fn_t(), None, _ffi.shoal_free_userdata_fn_t()
            )
        else:
            if not callable(fn):
                raise TypeError("the error handler must be callable")
            # On failure the library runs FREE_USERDATA, which drops the registration.
            call_bool(
                lib.shoal_sync_config_set_error_handler, self._h, SYNC_ERROR, register((fn, self._user.app)), FREE_USERDATA
            )
        self._error_handler = fn
        return self

    @property
    def stop_policy(self) -> StopPolicy:
        """The policy given to :meth:`set_stop_policy`."""
        return self._stop_policy

    def set_stop_policy(self, policy: "StopPolicy | int | str") -> "SyncConfig":
        """What the session does when the last realm handle of its file is released (see
        :class:`StopPolicy`; default ``AFTER_CHANGES_UPLOADED``)."""
        value = _enum_value(StopPolicy, policy, "the stop policy")
        call_bool(lib.shoal_sync_config_set_stop_policy, self._h, value)
        self._stop_policy = StopPolicy(value)
        return self

    @property
    def wait_for_initial_data(self) -> float | None:
        """The timeout set by :meth:`set_wait_for_initial_data` (None: no wait)."""
        return self._wait_for_initial_data

    def set_wait_for_initial_data(self, timeout: "float | datetime.timedelta | None") -> "SyncConfig":
        """Makes the first open of the realm (when its file does not exist yet) wait until
        everything on the server has been downloaded, for at most ``timeout`` seconds
        (``math.inf``: no limit); the open then raises :class:`~shoal.Timeout` (or the
        session's fatal error). None (the default) never waits: opening works offline."""
        if timeout is None:
            call_bool(lib.shoal_sync_config_set_wait_for_initial_data, self._h, False, 0)
            self._wait_for_initial_data = None
        else:
            ms = _timeout_ms(timeout)
            call_bool(lib.shoal_sync_config_set_wait_for_initial_data, self._h, True, ms)
            self._wait_for_initial_data = (
                timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
            )
        return self

    @property
    def token_binder(self) -> "Callable[[Session | None, str], Any] | None":
        """The binder given to :meth:`set_token_binder` (None: the library gets tokens from the auth server
        itself)."""
        return self._token_binder

    def set_token_binder(self, fn: "Callable[[Session | None, str], Any] | None") -> "SyncConfig":
        """Lets you supply access tokens: ``fn(session, server_path)`` runs on the sync callback
        thread whenever the session needs one (first bind, 10 s before the current one
        expires, after the server said it expired). Answer with
        :meth:`Session.bind_token`, now or later and from any thread, or return the token
        (a str) from ``fn``. None removes the binder: the library then gets tokens from the
        auth server itself."""
        if fn is None:
            call_bool(
                lib.shoal_sync_config_set_token_binder, self._h, _ffi.shoal_token_binder_fn_t(), None, _ffi.shoal_free_userdata_fn_t()
            )
        else:
            if not callable(fn):
                raise TypeError("the token binder must be callable")
            call_bool(
                lib.shoal_sync_config_set_token_binder, self._h, TOKEN_BINDER, register((fn, self._user.app)), FREE_USERDATA
            )
        self._token_binder = fn
        return self

    def __repr__(self) -> str:
        if self.released:
            return "<shoal.SyncConfig (released)>"
        return f"<shoal.SyncConfig {self.server_url!r} of {self._user.identity!r}>"


# ---------------------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------------------

#: Sessions with a Python wrapper, synced realms open through Realm.open, and sessions of
#: synced realms closed while they were still syncing: paused and drained at exit.
#: (By id: sessions of one file compare equal, and each wrapper holds its own handle.)
_live_sessions: "weakref.WeakValueDictionary[int, Session]" = weakref.WeakValueDictionary()
_synced_realms: "weakref.WeakSet[Realm]" = weakref.WeakSet()
#: session handle -> the handle of the state-callback registration that lets it go.
_running_after_close: dict[int, int] = {}
_running_lock = threading.Lock()

_RUNNING_STATES = (
    _ffi.SHOAL_SESSION_WAITING_FOR_ACCESS_TOKEN,
    _ffi.SHOAL_SESSION_ACTIVE,
    _ffi.SHOAL_SESSION_DYING,
)


class Session(Handle):
    """The sync session of a synced realm file: one per file and process, shared by every
    handle of the realm (:attr:`Realm.session <shoal.Realm.session>`,
    :meth:`App.get_session <shoal.App.get_session>`). Two ``Session`` objects compare equal
    when they are of the same file. Release it with :meth:`release` or a ``with`` block (the
    session itself lives on while its realm is open)."""

    _kind = "session"

    def __init__(self, ptr: int, app: "App | None" = None) -> None:
        super().__init__(ptr)
        self._app = app
        self._path_cache: str | None = None
        _live_sessions[id(self)] = self

    # -- state ------------------------------------------------------------------------------

    def _code(self, fn) -> int:
        v = call(fn, self._h)
        if v < 0:
            e = last_error()
            if e is not None:
                raise e
        return v

    @property
    def state(self) -> SessionState:
        """The session's state."""
        return _as_enum(SessionState, self._code(lib.shoal_session_state))  # type: ignore[return-value]

    @property
    def connection_state(self) -> ConnectionState:
        """The state of the session's connection."""
        return _as_enum(ConnectionState, self._code(lib.shoal_session_connection_state))  # type: ignore[return-value]

    @property
    def path(self) -> str:
        """The local realm file."""
        if self._path_cache is None:
            self._path_cache = call_string(lib.shoal_session_path, self._h)
        return self._path_cache

    @property
    def server_url(self) -> str:
        """The resolved server URL."""
        return call_string(lib.shoal_session_server_url, self._h)

    @property
    def user(self) -> "User":
        """The user the session syncs as."""
        p = call_ptr(lib.shoal_session_user, self._h)
        if self._app is None:
            lib.shoal_release(p)
            raise Misuse(
                _ffi.SHOAL_ERR_MISUSE,
                _ffi.SHOAL_ERR_CATEGORY_LOGIC,
                "the session's app is unknown here: get the session through Realm.open(config).session or App.get_session",
            )
        return self._app._wrap_user(p)  # User is defined above this module, by the app

    # -- callbacks --------------------------------------------------------------------------

    def add_state_callback(self, fn: "Callable[[SessionState, SessionState], Any]") -> "Token":
        """Calls ``fn(old, new)`` (:class:`SessionState` values) on every state change, on the
        sync callback thread. Release (or close) the returned token, or use it in a ``with``
        block, to unregister. Exceptions raised by ``fn`` are logged."""
        if not callable(fn):
            raise TypeError("the state callback must be callable")
        # On failure the library runs FREE_USERDATA at once, which drops the registration.
        p = call_ptr(
            lib.shoal_session_add_state_callback,
            self._h,
            SESSION_STATE,
            register(fn, on_library_thread=True),
            FREE_USERDATA,
        )
        return Token(p)

    def add_connection_callback(self, fn: "Callable[[ConnectionState, ConnectionState], Any]") -> "Token":
        """Calls ``fn(old, new)`` (:class:`ConnectionState` values) on every connection state
        change, on the sync callback thread; returns a token like :meth:`add_state_callback`."""
        if not callable(fn):
            raise TypeError("the connection callback must be callable")
        p = call_ptr(
            lib.shoal_session_add_connection_callback,
            self._h,
            CONNECTION_STATE,
            register(fn, on_library_thread=True),
            FREE_USERDATA,
        )
        return Token(p)

    def add_progress_callback(
        self,
        direction: "ProgressDirection | int | str",
        mode: "ProgressMode | int | str",
        fn: Callable[[int, int], Any],
    ) -> "Token":
        """Reports transfer progress in ``direction`` (:class:`ProgressDirection`, or
        ``"upload"``/``"download"``) as ``fn(transferred, transferable)`` (bytes; complete when
        ``transferred >= transferable``), on the sync callback thread: once soon after
        registration (for downloads: as soon as the server has sent its first figures), then
        whenever the figures change. ``mode`` (:class:`ProgressMode`) ``CURRENT_CHANGES``
        follows only what is to transfer now and stops after it completes; ``INDEFINITELY``
        keeps reporting. Returns a token like :meth:`add_state_callback`."""
        d = _enum_value(ProgressDirection, direction, "the progress direction")
        m = _enum_value(ProgressMode, mode, "the progress mode")
        if not callable(fn):
            raise TypeError("the progress callback must be callable")
        p = call_ptr(
            lib.shoal_session_add_progress_callback,
            self._h,
            d,
            m,
            PROGRESS,
            register(fn, on_library_thread=True),
            FREE_USERDATA,
        )
        return Token(p)

    # -- waits and control ------------------------------------------------------------------

    def wait_for_upload(self, timeout: "float | datetime.timedelta | None" = None) -> None:
        """Blocks until every local change committed before the call has been acknowledged by
        the server, or ``timeout`` seconds pass (None: no limit). Raises
        :class:`~shoal.Timeout` (also while paused or offline) or the session's fatal error
        (e.g. :class:`~shoal.AccessDenied`, :class:`~shoal.BadAuthentication`)."""
        call_bool(lib.shoal_session_wait_for_upload, self._h, _timeout_ms(timeout))

    def wait_for_download(self, timeout: "float | datetime.timedelta | None" = None) -> None:
        """Blocks until every change the server had when the call was made has been
        downloaded and integrated, or ``timeout`` seconds pass; errors as
        :meth:`wait_for_upload`. Call :meth:`Realm.refresh <shoal.Realm.refresh>` afterwards
        to see the changes through a realm handle."""
        call_bool(lib.shoal_session_wait_for_download, self._h, _timeout_ms(timeout))

    def pause(self) -> None:
        """Stops syncing until :meth:`resume` (state INACTIVE); local writes go on and upload
        after resuming."""
        call_bool(lib.shoal_session_pause, self._h)

    def resume(self) -> None:
        """Resumes a paused session."""
        call_bool(lib.shoal_session_resume, self._h)

    def bind_token(self, token: str) -> None:
        """Hands the session an access token its token binder was asked for (any thread).
        :class:`~shoal.InvalidArgument` for an empty token."""
        call_bool(lib.shoal_session_bind_token, self._h, _text(token, "the access token"))

    # -- identity ---------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        if self is other:
            return True
        return os.path.realpath(self.path) == os.path.realpath(other.path)

    def __hash__(self) -> int:
        return hash(os.path.realpath(self.path))

    def __repr__(self) -> str:
        if self.released:
            return "<shoal.Session (released)>"
        try:
            return f"<shoal.Session {self.server_url!r} {self.state.name}>"
        except ShoalError:  # pragma: no cover
            return "<shoal.Session ?>"


# ---------------------------------------------------------------------------------------------
# Stopping sessions at exit
# ---------------------------------------------------------------------------------------------


def _track_synced_realm(realm: "Realm") -> None:
    """Called by Realm.open for synced realms."""
    _synced_realms.add(realm)


def _state_of(session_ptr: int) -> int:
    return lib.shoal_session_state(session_ptr)


def _keep_session_while_it_runs(realm_ptr: int) -> None:
    """Called by Realm.close (before closing) for synced realms: keeps a handle of the session
    for as long as it syncs after the close (uploading its last changes, or for ever under
    ``LIVE_INDEFINITELY``), so that it can be paused at exit. A state callback lets the handle
    go once the session stops."""
    try:
        p = lib.shoal_realm_get_session(realm_ptr)
        if not p:
            return
        if _state_of(p) not in _RUNNING_STATES:
            lib.shoal_release(p)
            return
        with _running_lock:
            token = lib.shoal_session_add_state_callback(
                p, SESSION_STATE, register(lambda old, new: _let_go_if_stopped(p), on_library_thread=True), FREE_USERDATA
            )
            if not token:
                lib.shoal_release(p)
                return
            _running_after_close[p] = token
        _let_go_if_stopped(p)  # it may have stopped before the callback was registered
    finally:
        lib.shoal_clear_last_error()


def _let_go_if_stopped(session_ptr: int) -> None:
    with _running_lock:
        token = _running_after_close.get(session_ptr)
        if token is None or _state_of(session_ptr) in _RUNNING_STATES:
            return
        del _running_after_close[session_ptr]
    lib.shoal_release(token)
    lib.shoal_release(session_ptr)


@atexit.register
def _stop_sessions_at_exit() -> None:
    """Pauses every session this binding knows of, waits until their tasks have stopped and
    until the callbacks they had queued have run (a progress callback registered last is
    called after them, on the same thread), so that no sync callback calls into a finalizing
    interpreter. Registered after ``_core``'s exit handler, so it runs before it (while the
    tokens of state and progress callbacks are still registered)."""
    try:
        deadline = time.monotonic() + _core.EXIT_WAIT_SECONDS
        # Every session of every live app, tracked here or not (a synced realm whose object
        # was collected without close): paused, and the callbacks queued before run.
        for app in list(live_apps):
            p = app._ptr
            if p:
                lib.shoal_app_stop_sync(p, int(_core.EXIT_WAIT_SECONDS * 1000))
        handles: list[int] = []
        for realm in list(_synced_realms):
            p = realm._ptr
            if p:
                s = lib.shoal_realm_get_session(p)
                if s:
                    handles.append(s)
        for session in list(_live_sessions.values()):
            p = session._ptr
            if p:
                s = lib.shoal_clone(p)
                if s:
                    handles.append(s)
        with _running_lock:
            kept = list(_running_after_close.items())
            _running_after_close.clear()
        for session_ptr, token in kept:
            lib.shoal_release(token)
            handles.append(session_ptr)
        if not handles:
            return
        for s in handles:
            lib.shoal_session_pause(s)
        for s in handles:
            while _state_of(s) in _RUNNING_STATES and time.monotonic() < deadline:
                time.sleep(0.005)
        events: list[threading.Event] = []
        tokens: list[int] = []
        for s in handles:
            ev = threading.Event()
            t = lib.shoal_session_add_progress_callback(
                s,
                _ffi.SHOAL_PROGRESS_UPLOAD,
                _ffi.SHOAL_PROGRESS_INDEFINITELY,
                PROGRESS,
                register(lambda _t, _tt, ev=ev: ev.set(), on_library_thread=True),
                FREE_USERDATA,
            )
            if t:
                events.append(ev)
                tokens.append(t)
        for ev in events:
            ev.wait(max(0.0, deadline - time.monotonic()))
        for t in tokens:
            lib.shoal_release(t)
        for s in handles:
            lib.shoal_release(s)
    except Exception:  # pragma: no cover - interpreter shutdown
        pass

"""Realms, objects, lists, query results and change-callback tokens."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime
import json
import os
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeAlias, Union

from . import _ffi
from ._core import (
    FREE_USERDATA,
    AsyncResult,
    Handle,
    InValue,
    ObjectHandle,
    OutValue,
    Timestamp,
    Token,
    call,
    call_bool,
    call_count,
    call_ptr,
    call_string,
    fill_value,
    log,
    register,
    registered,
    same_file,
    take_callback_exception,
)
from ._ffi import lib, shoal_value_t
from .config import Config
from .observe import ChangeStream, observe
from .errors import (
    IndexOutOfBounds,
    Internal,
    NoSuchProperty,
    RealmClosed,
    ShoalError,
    error_from_c,
    last_error,
)
from .schema import ClassInfo, PropertyInfo, PropertyType, parse_schema_json
from .sync import Session, _keep_session_while_it_runs, _track_synced_realm

__all__ = ["Realm", "Object", "List", "Results", "Token", "Value", "PropertyValue", "AsyncOpenTask"]


_MISSING = object()


def _b(s: str) -> bytes:
    """A name or predicate as a C string (a NUL inside would silently cut it short)."""
    if not isinstance(s, str):
        raise TypeError(f"expected a str, got {type(s).__name__}")
    if "\0" in s:
        raise ValueError(f"{s!r} contains a NUL character")
    return s.encode("utf-8")


@_ffi.shoal_change_fn_t
def CHANGE(userdata, version):  # noqa: N802 - a C function pointer
    try:
        fn = registered(userdata)
        if fn is not None:
            fn(version)
    except BaseException:  # never unwind into Rust
        log.exception("a change callback raised")


# ---- asynchronous work (write_async, open_async) --------------------------------------------


class _WritePending:
    """A queued asynchronous write: its function, the optional callback, the result and the
    realm (kept until the completion, so that the realm's scheduler lives to deliver it)."""

    __slots__ = ("realm", "fn", "callback", "future", "error")

    def __init__(self, realm: "Realm", fn: Callable[["Realm"], Any], callback: Any) -> None:
        if not callable(fn):
            raise TypeError("the write function must be callable")
        if callback is not None and not callable(callback):
            raise TypeError("the callback must be callable")
        self.realm: "Realm | None" = realm
        self.fn = fn
        self.callback = callback
        self.future: AsyncResult = AsyncResult()
        self.future.set_running_or_notify_cancel()  # a queued write cannot be called off
        self.error: BaseException | None = None


@_ffi.shoal_write_fn_t
def WRITE(userdata, realm_ptr):  # noqa: N802 - a C function pointer
    entry = registered(userdata)
    if entry is None:  # pragma: no cover - the library calls before free_userdata
        return False
    try:
        realm = Realm(call_ptr(lib.shoal_clone, realm_ptr), _file_id=entry.realm._file_id if entry.realm else None)
        try:
            return entry.fn(realm) is not False
        finally:
            realm.release()
    except BaseException as e:  # never unwind into Rust: the exception goes to the future
        entry.error = e
        return False


@_ffi.shoal_write_completion_fn_t
def WRITE_DONE(userdata, error, version):  # noqa: N802 - a C function pointer
    try:
        entry = registered(userdata)
        if entry is None:  # pragma: no cover
            return
        exc = entry.error
        if exc is None and error:
            exc = error_from_c(error.contents)
        entry.realm = None
        if entry.callback is not None:
            try:
                entry.callback(None if exc else version, exc)
            except BaseException:  # never unwind into Rust
                log.exception("an asynchronous write's callback raised")
        if exc is None:
            entry.future.set_result(version)
        else:
            entry.future.set_exception(exc)
    except BaseException:
        log.exception("the asynchronous write's completion failed")


class _OpenPending:
    """An asynchronous open: the loop that awaits it, its future and the config (kept until
    the callback, which runs on a library thread or on the config's scheduler)."""

    __slots__ = ("loop", "future", "config")

    def __init__(self, loop: asyncio.AbstractEventLoop, config: Config) -> None:
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()
        self.config = config

    def deliver(self, realm: "Realm | None", exc: BaseException | None) -> None:
        """Any thread: hands the outcome to the awaiting loop."""
        try:
            self.loop.call_soon_threadsafe(self._settle, realm, exc)
        except RuntimeError:  # the loop is closed: nobody awaits the realm
            if realm is not None:
                realm.close()

    def _settle(self, realm: "Realm | None", exc: BaseException | None) -> None:
        """On the loop: completes the future, or closes a realm nobody awaits any more."""
        if self.future.done():  # cancelled too late for the library to stop the open
            if realm is not None:
                realm.close()
        elif exc is not None:
            self.future.set_exception(exc)
        else:
            self.future.set_result(realm)


@_ffi.shoal_open_fn_t
def OPENED(userdata, realm_ptr, error):  # noqa: N802 - a C function pointer
    try:
        entry = registered(userdata)
        if entry is None:  # pragma: no cover - the library calls once, before free_userdata
            if realm_ptr:
                lib.shoal_release(realm_ptr)
            return
        if realm_ptr:
            realm = Realm(realm_ptr, entry.config)  # a new handle: ours
            if entry.config.sync is not None:
                _track_synced_realm(realm)
            entry.deliver(realm, None)
        else:
            exc = error_from_c(error.contents) if error else Internal(
                _ffi.SHOAL_ERR_INTERNAL, _ffi.SHOAL_ERR_CATEGORY_INTERNAL, "the open failed without an error"
            )
            entry.deliver(None, exc)
    except BaseException:  # never unwind into Rust
        log.exception("the asynchronous open's callback failed")


class AsyncOpenTask(Handle):
    """An asynchronous open under way (``shoal_async_open_task_t``); see
    :meth:`Realm.open_async`."""

    _kind = "async open task"

    def cancel(self) -> bool:
        """Cancels the open: True when it was cancelled (its callback never runs, the realm it
        opened is closed and a file it created is deleted before this returns), False when it
        was too late (the callback ran or is running). May block while the library stops the
        open (a session stopping)."""
        out = ctypes.c_bool(False)
        call_bool(lib.shoal_async_open_task_cancel, self._h, ctypes.byref(out))
        return out.value


class Realm(Handle):
    """An open realm. Use it as a context manager, or call :meth:`close`."""

    _kind = "realm"

    def __init__(
        self,
        ptr: int,
        _owned_config: Config | None = None,
        _file_id: tuple[bool, str] | None = None,
        _sync_user: Any = None,
    ) -> None:
        super().__init__(ptr)
        # Kept so that the config (and its callbacks) live as long as the realm.
        self.config = _owned_config
        #: The user of a synced realm the library opened without a Python config (the
        #: management realm).
        self._sync_user = _sync_user if _sync_user is not None else (
            _owned_config.sync.user if _owned_config is not None and _owned_config.sync is not None else None
        )
        self._classes: dict[str, ClassInfo] | None = None
        #: Which file this is, to refuse links to objects of another file (None: unknown).
        self._file_id = _file_id if _file_id is not None else (_owned_config._file_id() if _owned_config else None)

    # -- opening and closing -------------------------------------------------------------------

    @classmethod
    def open(cls, config: "Config | str | os.PathLike[str]") -> "Realm":
        """Opens (creating if needed) the realm of ``config`` (a :class:`Config` or a path).

        An exception raised by the config's initial-data or migration callback is chained as
        the ``__cause__`` of the error raised here."""
        if not isinstance(config, Config):
            config = Config(config)
        take_callback_exception()
        p = call(lib.shoal_realm_open, config._h)
        if not p:
            err = last_error()
            cause = take_callback_exception()
            if err is None:  # pragma: no cover - against the contract
                raise RuntimeError("shoal_realm_open failed without an error")
            raise err from cause
        realm = cls(p, config)
        if config.sync is not None:
            _track_synced_realm(realm)
        return realm

    @classmethod
    async def open_async(cls, config: "Config | str | os.PathLike[str]") -> "Realm":
        """Opens the realm of ``config`` without blocking the event loop: the open, including
        the wait for the initial download when the sync configuration asks for it
        (:meth:`SyncConfig.set_wait_for_initial_data <shoal.SyncConfig.set_wait_for_initial_data>`),
        runs on a library thread.

        Cancelling the awaiting task (``task.cancel()``, ``asyncio.wait_for``) cancels the
        open: unless it had already completed, nothing is delivered, and a file it created is
        deleted before the :class:`asyncio.CancelledError` reaches the awaiting code. An open
        that completed anyway is closed.

        >>> realm = await shoal.Realm.open_async(config)                # doctest: +SKIP
        """
        if not isinstance(config, Config):
            config = Config(config)
        loop = asyncio.get_running_loop()
        entry = _OpenPending(loop, config)
        p = call_ptr(
            lib.shoal_realm_open_async, config._h, OPENED, register(entry, on_library_thread=True), FREE_USERDATA
        )
        task = AsyncOpenTask(p)
        try:
            return await entry.future
        except asyncio.CancelledError:
            # Stops the library's work (and deletes what it created) before the cancellation
            # goes on; an open that completed anyway is closed by _settle.
            task.cancel()
            raise
        finally:
            task.release()

    def write_async(
        self,
        fn: "Callable[[Realm], Any]",
        callback: "Callable[[int | None, BaseException | None], Any] | None" = None,
    ) -> "AsyncResult[int]":
        """Runs ``fn(realm)`` inside a write transaction on a library thread and commits it,
        without blocking the caller. ``realm`` is a handle of its own on the file, valid during
        the call: this handle stays free meanwhile. Returning False or raising cancels the
        transaction (nothing is written).

        Returns an :class:`~shoal._core.AsyncResult` (a ``concurrent.futures.Future`` that
        can also be awaited) of the file's version after the commit; it raises what ``fn``
        raised, or the library's error. ``callback(version, error)`` (one of the two is None)
        runs first, on this realm's scheduler (:meth:`Config.set_scheduler`; default: a
        library thread). With a scheduler, this handle has been refreshed to include the write
        when the callback runs and the awaiting coroutine resumes.

        Writes asked for through one handle run in the order asked. Raises at once (and runs
        nothing) for a closed or read-only realm.

        >>> version = await realm.write_async(lambda r: r.create("Person", 1))   # doctest: +SKIP
        """
        entry = _WritePending(self, fn, callback)
        call_bool(
            lib.shoal_realm_write_async,
            self._h,
            WRITE,
            WRITE_DONE,
            register(entry, on_library_thread=True),
            FREE_USERDATA,
        )
        return entry.future

    def _closed_error(self) -> Exception:
        return RealmClosed(_ffi.SHOAL_ERR_REALM_CLOSED, _ffi.SHOAL_ERR_CATEGORY_LOGIC, "the realm was closed")

    def close(self) -> None:
        """Closes the realm (cancelling an open write transaction) and releases the handle.
        Objects, lists and results of this realm then fail with :class:`RealmClosed`.
        Closing twice is harmless."""
        p = self._take()
        if not p:
            return
        if self._sync_user is not None:
            _keep_session_while_it_runs(p)
        ok = call(lib.shoal_realm_close, p)
        err = None if ok else last_error()
        lib.shoal_release(p)
        if err is not None:
            raise err

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_closed(self) -> bool:
        """Whether the realm was closed (through this or any other handle of it)."""
        if self._ptr is None:
            return True
        closed = call(lib.shoal_realm_is_closed, self._ptr)
        if not closed:
            e = last_error()
            if e is not None:
                raise e
        return bool(closed)

    # -- transactions ----------------------------------------------------------------------------

    def begin_write(self) -> None:
        """Starts a write transaction (waiting while another thread writes)."""
        call_bool(lib.shoal_realm_begin_write, self._h)

    def commit(self) -> None:
        """Commits the write transaction: durable when this returns; change callbacks and
        sync see it after."""
        call_bool(lib.shoal_realm_commit, self._h)

    def cancel_write(self) -> None:
        """Cancels the write transaction, dropping every change made in it."""
        call_bool(lib.shoal_realm_cancel_write, self._h)

    @property
    def in_transaction(self) -> bool:
        """Whether a write transaction is open on this handle."""
        r = call(lib.shoal_realm_is_in_transaction, self._h)
        if not r:
            e = last_error()
            if e is not None:
                raise e
        return bool(r)

    @contextlib.contextmanager
    def write(self) -> Iterator["Realm"]:
        """``with realm.write():`` begins a write transaction, commits it when the block ends
        and cancels it if the block raises."""
        self.begin_write()
        try:
            yield self
        except BaseException:
            try:
                if self._ptr is not None and self.in_transaction:
                    self.cancel_write()
            except ShoalError:
                log.debug("cancelling the write transaction failed", exc_info=True)
            raise
        else:
            if self.in_transaction:
                self.commit()

    def refresh(self) -> bool:
        """Moves to the latest version; returns whether it changed."""
        changed = ctypes.c_bool(False)
        call_bool(lib.shoal_realm_refresh, self._h, ctypes.byref(changed))
        return changed.value

    def compact(self) -> None:
        """Rewrites the file to take only the space its data needs (fails with
        :class:`~shoal.RealmInUse` while another handle of the file is open in the process)."""
        call_bool(lib.shoal_realm_compact, self._h)

    # -- information -----------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """Whether the realm holds no objects."""
        out = ctypes.c_bool(False)
        call_bool(lib.shoal_realm_is_empty, self._h, ctypes.byref(out))
        return out.value

    @property
    def schema_version(self) -> int:
        """The file's schema version."""
        out = ctypes.c_uint64(0)
        call_bool(lib.shoal_realm_get_schema_version, self._h, ctypes.byref(out))
        return out.value

    @property
    def version(self) -> int:
        """The history version this handle reads."""
        out = ctypes.c_uint64(0)
        call_bool(lib.shoal_realm_version, self._h, ctypes.byref(out))
        return out.value

    def schema_json(self) -> str:
        """The realm's schema as JSON (the form :meth:`Schema.from_json` reads)."""
        return call_string(lib.shoal_realm_get_schema_json, self._h)

    def schema(self) -> dict[str, ClassInfo]:
        """The realm's classes, by name."""
        self._classes = parse_schema_json(self.schema_json())
        return dict(self._classes)

    def dump_json(self) -> str:
        """The whole content as canonical JSON."""
        return call_string(lib.shoal_realm_dump_json, self._h)

    def dump(self) -> Any:
        """The whole content, parsed from :meth:`dump_json` (dicts and lists)."""
        return json.loads(self.dump_json())

    def _class_info(self, class_name: str) -> ClassInfo | None:
        if self._classes is None or class_name not in self._classes:
            try:
                self._classes = parse_schema_json(self.schema_json())
            except ShoalError:
                return None
        return self._classes.get(class_name)

    def _prop_info(self, class_name: str, prop: str) -> PropertyInfo | None:
        c = self._class_info(class_name)
        if c is None:
            return None
        p = c.properties.get(prop)
        if p is None and self._classes is not None:
            self._classes = None  # maybe stale: look again
            c = self._class_info(class_name)
            p = c.properties.get(prop) if c else None
        return p

    # -- objects and queries ---------------------------------------------------------------------

    def create(self, cls: str, /, pk: Value = None, **values: "Value | Iterable[Value]") -> "Object":
        """Creates an object of class ``cls`` (in a write transaction) and sets ``values``.

        A class with a primary key takes it as ``pk`` (positional or keyword) or by its
        property name among ``values`` (``realm.create("Person", id=1, name="Ann")``). List
        properties take any iterable of elements."""
        info = self._class_info(cls) if isinstance(cls, str) else None
        if pk is None and info is not None and info.primary_key in values:
            pk = values.pop(info.primary_key)
        elif pk is not None and info is not None and info.primary_key in values:
            if values[info.primary_key] != pk:
                raise ValueError(f"two different primary keys given for {cls}")
            values.pop(info.primary_key)
        if pk is None:
            p = call_ptr(lib.shoal_object_create, self._h, _b(cls), None)
        else:
            pk_type = info.properties[info.primary_key].type if info and info.primary_key else None
            v = InValue(pk, pk_type)
            p = call_ptr(lib.shoal_object_create, self._h, _b(cls), v.ref)
        obj = Object(p, self)
        for k, val in values.items():
            obj[k] = val
        return obj

    def find(self, cls: str, pk: Value) -> "Object | None":
        """The object of ``cls`` with primary key ``pk``, or None."""
        info = self._class_info(cls)
        pk_type = info.properties[info.primary_key].type if info and info.primary_key else None
        v = InValue(pk, pk_type)
        p = call_ptr(lib.shoal_object_find, self._h, _b(cls), v.ref, allow_null=True)
        return Object(p, self) if p else None

    def objects(self, cls: str) -> "Results":
        """Every object of ``cls``, as live results."""
        return Results(call_ptr(lib.shoal_realm_objects, self._h, _b(cls)), self, cls)

    def query(self, cls: str, predicate: str, *args: Value) -> "Results":
        """The objects of ``cls`` matching ``predicate`` (Realm's query language; ``$0``..
        are ``args``), as live results."""
        keep: list[Any] = []
        arr = (shoal_value_t * max(len(args), 1))()
        for i, a in enumerate(args):
            fill_value(arr[i], a, None, keep, self)
        p = call_ptr(lib.shoal_realm_query, self._h, _b(cls), _b(predicate), arr if args else None, len(args))
        return Results(p, self, cls)

    def property_key(self, cls: str, prop: str) -> _ffi.shoal_property_key_t:
        """A key for :meth:`Object.get_by_key` / :meth:`Object.set_by_key`."""
        out = _ffi.shoal_property_key_t()
        call_bool(lib.shoal_realm_property_key, self._h, _b(cls), _b(prop), ctypes.byref(out))
        return out

    def _resolve_link(self, v: shoal_value_t) -> "Object | None":
        """The object a LINK value points to."""
        p = call_ptr(lib.shoal_object_from_link, self._h, ctypes.byref(v), allow_null=True)
        return Object(p, self) if p else None

    # -- sync -------------------------------------------------------------------------------------

    @property
    def session(self) -> "Session":
        """The sync session of this synced realm (one per file and process, shared by every
        handle of it). :class:`~shoal.InvalidArgument` for a realm that is not synced,
        :class:`RealmClosed` once closed."""
        app = self._sync_user.app if self._sync_user is not None else None
        return Session(call_ptr(lib.shoal_realm_get_session, self._h), app)

    # -- notifications ---------------------------------------------------------------------------

    def add_change_callback(self, fn: Callable[[int], Any]) -> Token:
        """Calls ``fn(version)`` on a library thread after every commit that changes the file
        (from any handle or thread). Release the returned token (or use it in a ``with``
        block) to unregister. Exceptions raised by ``fn`` are logged."""
        if not callable(fn):
            raise TypeError("the change callback must be callable")
        # On failure the library runs FREE_USERDATA at once, which drops the registration.
        p = call_ptr(
            lib.shoal_realm_add_change_callback, self._h, CHANGE, register(fn, on_library_thread=True), FREE_USERDATA
        )
        return Token(p)

    def __repr__(self) -> str:
        if self._ptr is None:
            return "<shoal.Realm (closed)>"
        return f"<shoal.Realm {self._file_id[1] if self._file_id else ''}>"


class Object(ObjectHandle):
    """An object of a realm, read and written like a dict: ``obj["name"]``,
    ``obj["name"] = "Ann"``, ``obj.get("name")``, ``obj.keys()``..."""

    _kind = "object"

    def __init__(self, ptr: int, realm: Realm) -> None:
        super().__init__(ptr)
        self.realm = realm
        self._class_name: str | None = None
        self._key: int | None = None


    def observe(self, fn: Callable[[Any], Any]) -> Token:
        """Calls ``fn(change)`` after every commit that changed this, starting with the
        initial state (see :mod:`shoal.observe`). Release the token (or use it in a ``with``
        block) to stop. Exceptions raised by ``fn`` are logged."""
        return observe(self._kind, self._h, fn)

    def changes(self) -> ChangeStream:
        """The notifications of :meth:`observe` as an asyncio stream (call from a
        coroutine): ``async with obj.changes() as s: async for change in s: ...``."""
        return ChangeStream(self.observe)

    @property
    def class_name(self) -> str:
        """The name of the object's class."""
        if self._class_name is None:
            self._class_name = call_string(lib.shoal_object_class_name, self._h)
        return self._class_name

    @property
    def key(self) -> int:
        """The object's key within its class in this file."""
        if self._key is None:
            out = ctypes.c_uint64(0)
            call_bool(lib.shoal_object_key, self._h, ctypes.byref(out))
            self._key = out.value
        return self._key

    @property
    def is_valid(self) -> bool:
        """Whether the object still exists (False once deleted or released)."""
        if self._ptr is None:
            return False
        return bool(call(lib.shoal_object_is_valid, self._ptr))

    def _info(self, prop: str) -> PropertyInfo | None:
        if not isinstance(prop, str):
            raise TypeError(f"property names are str, not {type(prop).__name__}")
        try:
            cls = self.class_name
        except ShoalError:
            return None
        if self.realm._ptr is None:
            return None
        return self.realm._prop_info(cls, prop)

    def __getitem__(self, prop: str) -> PropertyValue:
        info = self._info(prop)
        if info is not None and info.is_list:
            return self.list(prop)
        if info is not None and info.type == PropertyType.LINK:
            return self.linked(prop)
        out = OutValue()
        call_bool(lib.shoal_object_get, self._h, _b(prop), out.ref)
        if out.value.kind == _ffi.SHOAL_VALUE_LINK:
            lib.shoal_value_free(out.ref)
            return self.linked(prop)
        return out.take()

    def __setitem__(self, prop: str, value: "Value | Iterable[Value]") -> None:
        info = self._info(prop)
        if info is not None and info.is_list:
            lst = self.list(prop)
            with lst:
                lst.clear()
                lst.extend(value)
            return
        v = InValue(value, info.type if info else None, self.realm)
        call_bool(lib.shoal_object_set, self._h, _b(prop), v.ref)

    def get(self, prop: str, default: Any = _MISSING) -> Any:
        """``obj[prop]``; with ``default``, that for a property the class does not have."""
        if default is _MISSING:
            return self[prop]
        try:
            return self[prop]
        except NoSuchProperty:
            return default

    def set(self, prop: str | None = None, value: "Value | Iterable[Value]" = None, /, **values: "Value | Iterable[Value]") -> None:
        """``obj.set("name", "Ann")`` or ``obj.set(name="Ann", age=3)``."""
        if prop is not None:
            self[prop] = value
        for k, v in values.items():
            self[k] = v

    def get_by_key(self, key: _ffi.shoal_property_key_t) -> PropertyValue:
        """``obj[prop]`` through a key from :meth:`Realm.property_key` (no name lookup)."""
        out = OutValue()
        call_bool(lib.shoal_object_get_by_key, self._h, key, out.ref)
        return out.take(self.realm._resolve_link)

    def set_by_key(self, key: _ffi.shoal_property_key_t, value: Value) -> None:
        """``obj[prop] = value`` through a key from :meth:`Realm.property_key`."""
        v = InValue(value, None, self.realm)
        call_bool(lib.shoal_object_set_by_key, self._h, key, v.ref)

    def add_int(self, prop: str, delta: int = 1) -> None:
        """Adds ``delta`` to an INT property (a counter that merges by addition)."""
        call_bool(lib.shoal_object_add_int, self._h, _b(prop), delta)

    def delete(self) -> None:
        """Deletes the object (in a write transaction); the handle stays to be released."""
        call_bool(lib.shoal_object_delete, self._h)

    def linked(self, prop: str) -> "Object | None":
        """The object a link property points to, or None."""
        p = call_ptr(lib.shoal_object_get_linked, self._h, _b(prop), allow_null=True)
        return Object(p, self.realm) if p else None

    def list(self, prop: str) -> "List":
        """A list property."""
        p = call_ptr(lib.shoal_object_get_list, self._h, _b(prop))
        return List(p, self, prop)

    # -- dict-like -----------------------------------------------------------------------------

    def keys(self) -> list[str]:
        """The property names of the object's class."""
        info = self.realm._class_info(self.class_name)
        return list(info.properties) if info else []

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __contains__(self, prop: object) -> bool:
        return isinstance(prop, str) and prop in self.keys()

    def values(self) -> list[PropertyValue]:
        """The values of :meth:`keys`, in that order."""
        return [self[k] for k in self.keys()]

    def items(self) -> list[tuple[str, PropertyValue]]:
        """(name, value) of every property, in the order of :meth:`keys`."""
        return [(k, self[k]) for k in self.keys()]

    def to_dict(self) -> dict[str, "Value | list[Value]"]:
        """Every property: lists as Python lists, links as :class:`Object`."""
        out: dict[str, Any] = {}
        for k in self.keys():
            v = self[k]
            if isinstance(v, List):
                with v:
                    v = list(v)
            out[k] = v
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Object):
            return NotImplemented
        if self is other:
            return True
        try:
            return (self.class_name, self.key) == (other.class_name, other.key) and same_file(self.realm, other.realm)
        except ShoalError:
            return False

    def __hash__(self) -> int:
        return hash((self.class_name, self.key))

    def __repr__(self) -> str:
        if self._ptr is None:
            return "<shoal.Object (released)>"
        try:
            return f"<shoal.Object {self.class_name} key={self.key}{'' if self.is_valid else ' (deleted)'}>"
        except ShoalError as e:
            return f"<shoal.Object ({e.name})>"


def _index(i: Any, n: int) -> int:
    if not isinstance(i, int) or isinstance(i, bool):
        raise TypeError(f"indexes are ints, not {type(i).__name__}")
    if i < 0:
        i += n
        if i < 0:
            raise IndexOutOfBounds(
                _ffi.SHOAL_ERR_INDEX_OUT_OF_BOUNDS,
                _ffi.SHOAL_ERR_CATEGORY_LOGIC,
                f"index {i - n} is out of range for {n} elements",
            )
    return i


class List(Handle):
    """A list property: ``len``, indexing (negative too), slicing for reads, iteration,
    ``append``/``insert``/``extend``/``set``/``erase``/``move``/``clear``/``pop``."""

    _kind = "list"

    def __init__(self, ptr: int, owner: Object, prop: str) -> None:
        super().__init__(ptr)
        self.owner = owner
        self.property = prop
        info = owner._info(prop)
        self._type: int | None = int(info.type) if info else None


    def observe(self, fn: Callable[[Any], Any]) -> Token:
        """Calls ``fn(change)`` after every commit that changed this, starting with the
        initial state (see :mod:`shoal.observe`). Release the token (or use it in a ``with``
        block) to stop. Exceptions raised by ``fn`` are logged."""
        return observe(self._kind, self._h, fn)

    def changes(self) -> ChangeStream:
        """The notifications of :meth:`observe` as an asyncio stream (call from a
        coroutine): ``async with obj.changes() as s: async for change in s: ...``."""
        return ChangeStream(self.observe)

    def __len__(self) -> int:
        return call_count(lib.shoal_list_size, self._h)

    def _get(self, i: int) -> Value:
        out = OutValue()
        call_bool(lib.shoal_list_get, self._h, i, out.ref)
        return out.take(self.owner.realm._resolve_link)

    def __getitem__(self, i: "int | slice") -> "Value | list[Value]":
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i = _index(i, len(self))
        return self._get(_index(i, 0))

    def __setitem__(self, i: int, value: Value) -> None:
        self.set(i, value)

    def __delitem__(self, i: int) -> None:
        self.erase(i)

    def __iter__(self) -> Iterator[Value]:
        for j in range(len(self)):
            try:
                yield self._get(j)
            except IndexOutOfBounds:  # shrank meanwhile
                return

    def __contains__(self, value: object) -> bool:
        return any(v == value for v in self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        if isinstance(other, List):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def insert(self, i: int, value: Value) -> None:
        """Inserts before index ``i`` (``len(list)`` appends; negative counts from the end)."""
        if i < 0:
            i = max(i + len(self), 0)
        v = InValue(value, self._type, self.owner.realm)
        call_bool(lib.shoal_list_insert, self._h, _index(i, 0), v.ref)

    def append(self, value: Value) -> None:
        """Adds ``value`` at the end."""
        self.insert(len(self), value)

    def extend(self, values: Iterable[Value]) -> None:
        """Appends every element of ``values`` (not a str or bytes: those are one value)."""
        if isinstance(values, (str, bytes)):
            raise TypeError("extend() takes an iterable of elements, not a str or bytes")
        for v in values:
            self.append(v)

    def set(self, i: int, value: Value) -> None:
        """Replaces the element at index ``i`` (negative counts from the end)."""
        if i < 0:
            i = _index(i, len(self))
        v = InValue(value, self._type, self.owner.realm)
        call_bool(lib.shoal_list_set, self._h, _index(i, 0), v.ref)

    def erase(self, i: int) -> None:
        """Removes the element at index ``i`` (negative counts from the end)."""
        if i < 0:
            i = _index(i, len(self))
        call_bool(lib.shoal_list_erase, self._h, _index(i, 0))

    def pop(self, i: int = -1) -> Value:
        """Removes the element at index ``i`` (the last by default) and returns it."""
        if i < 0:
            i = _index(i, len(self))
        v = self[i]
        self.erase(i)
        return v

    def move(self, from_index: int, to_index: int) -> None:
        """Moves the element at ``from_index`` so that it ends up at ``to_index``."""
        n = len(self) if from_index < 0 or to_index < 0 else 0
        call_bool(lib.shoal_list_move, self._h, _index(from_index, n), _index(to_index, n))

    def clear(self) -> None:
        """Removes every element."""
        call_bool(lib.shoal_list_clear, self._h)

    def __repr__(self) -> str:
        if self._ptr is None:
            return "<shoal.List (released)>"
        try:
            return f"<shoal.List {self.property} {list(self)!r}>"
        except ShoalError as e:
            return f"<shoal.List {self.property} ({e.name})>"


class Results(Handle):
    """Live query results: ``len``, indexing (negative too), iteration, ``sort``,
    ``sort_by``, ``distinct``, ``min``/``max``/``sum``/``average`` and ``delete_all``.

    Iterating yields the objects that matched when the iteration began, so deleting them
    while iterating is safe."""

    _kind = "results"

    def __init__(self, ptr: int, realm: Realm, class_name: str) -> None:
        super().__init__(ptr)
        self.realm = realm
        self.class_name = class_name


    def observe(self, fn: Callable[[Any], Any]) -> Token:
        """Calls ``fn(change)`` after every commit that changed this, starting with the
        initial state (see :mod:`shoal.observe`). Release the token (or use it in a ``with``
        block) to stop. Exceptions raised by ``fn`` are logged."""
        return observe(self._kind, self._h, fn)

    def changes(self) -> ChangeStream:
        """The notifications of :meth:`observe` as an asyncio stream (call from a
        coroutine): ``async with obj.changes() as s: async for change in s: ...``."""
        return ChangeStream(self.observe)

    def __len__(self) -> int:
        return call_count(lib.shoal_results_count, self._h)

    def __getitem__(self, i: "int | slice") -> "Object | list[Object]":
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i = _index(i, len(self))
        return Object(call_ptr(lib.shoal_results_get, self._h, _index(i, 0)), self.realm)

    def __iter__(self) -> Iterator[Object]:
        return iter(self[:])

    def first(self) -> Object | None:
        """The first object, or None when the results are empty."""
        return self[0] if len(self) else None

    def _derive(self, p: int) -> "Results":
        return Results(p, self.realm, self.class_name)

    def sort(self, prop: str, ascending: bool = True) -> "Results":
        """New results sorted by ``prop`` (a dotted path through links is allowed)."""
        return self._derive(call_ptr(lib.shoal_results_sort, self._h, _b(prop), bool(ascending)))

    def sort_by(self, keys: Sequence["tuple[str, bool] | str"]) -> "Results":
        """New results sorted by several keys, most significant first: ``[("age", False),
        ("name", True)]`` (a bare name sorts ascending)."""
        pairs = [(k, True) if isinstance(k, str) else (k[0], bool(k[1])) for k in keys]
        n = len(pairs)
        names = (ctypes.c_char_p * max(n, 1))(*[_b(p) for p, _ in pairs])
        asc = (ctypes.c_bool * max(n, 1))(*[a for _, a in pairs])
        return self._derive(
            call_ptr(lib.shoal_results_sort_by, self._h, names if n else None, asc if n else None, n)
        )

    def distinct(self, prop: str) -> "Results":
        """New results keeping the first object of each distinct value of ``prop``."""
        return self._derive(call_ptr(lib.shoal_results_distinct, self._h, _b(prop)))

    def _aggregate(self, fn: Any, prop: str) -> Value:
        out = OutValue()
        call_bool(fn, self._h, _b(prop), out.ref)
        return out.take()

    def min(self, prop: str) -> Value:
        """The smallest value of a numeric or timestamp property (None when empty)."""
        return self._aggregate(lib.shoal_results_min, prop)

    def max(self, prop: str) -> Value:
        """The largest value of a numeric or timestamp property (None when empty)."""
        return self._aggregate(lib.shoal_results_max, prop)

    def sum(self, prop: str) -> Value:
        """int for INT properties, float for FLOAT and DOUBLE; 0 when empty."""
        return self._aggregate(lib.shoal_results_sum, prop)

    def average(self, prop: str) -> Value:
        """The mean as a float (None when empty)."""
        return self._aggregate(lib.shoal_results_average, prop)

    def delete_all(self) -> int:
        """Deletes every object of the results (in a write transaction); returns how many."""
        return call_count(lib.shoal_results_delete_all, self._h)

    def __repr__(self) -> str:
        if self._ptr is None:
            return "<shoal.Results (released)>"
        try:
            return f"<shoal.Results {self.class_name} count={len(self)}>"
        except ShoalError as e:
            return f"<shoal.Results {self.class_name} ({e.name})>"


# The value types, after the classes they name (annotations above are strings: they may name them
# before they exist).
#: What a property or a list element holds, as Python sees it: ``None``, ``bool``, ``int``
#: (INT, 64-bit), ``float`` (DOUBLE; :class:`~shoal.Float32` for FLOAT), ``str``, ``bytes``
#: (BINARY), an aware ``datetime`` or a :class:`~shoal.Timestamp` (TIMESTAMP), or an
#: :class:`Object` (LINK). Query arguments and primary keys are values too.
Value: TypeAlias = Union[None, bool, int, float, str, bytes, datetime.datetime, Timestamp, Object]

#: What reading a property gives: a :data:`Value`, or a :class:`List` for a list property.
#: Writing one takes a :data:`Value`, or any iterable of them for a list property.
PropertyValue: TypeAlias = Union[Value, List]

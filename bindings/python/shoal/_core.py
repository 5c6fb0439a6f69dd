"""Plumbing shared by the public classes: handle ownership, error checking, the callback
registry and the conversion of Python values to and from ``shoal_value_t``.

Two rules make the binding safe:

* **The last error is read right after the failing call.** A handle dropped by the garbage
  collector is *not* released from ``__del__`` (``shoal_release`` resets the calling thread's
  last error, and the collector may run between a failing call and the read of its error);
  ``__del__`` queues the pointer and the queue is drained before the next Shoal call.
  ``release()``, ``close()`` and ``with`` blocks release at once.
* **Callbacks never unwind into Rust and never die early.** The C-callable thunks are
  module-level objects that live as long as the process; each registration stores its Python
  callable in a registry under an integer id passed as ``userdata``, and the library's
  ``free_userdata`` removes it, after the last call. Exceptions raised by a Python callback are
  logged (logger ``"shoal"``) and turned into a ``false`` return where the C type has one.

The package's modules import one another top to bottom only: ``_ffi`` (the ctypes
declarations), ``errors``, ``_core`` (this module: handles, tokens, callbacks, values),
``log``, ``schema``, ``sync``, ``config``, ``app``, ``realm``, ``management``, ``aio`` (the
asyncio schedulers), then ``__init__``. Where a lower module
must hand out an object of a higher one, it goes through an object it already has (a session's
user comes from its app) or :func:`handle_class`. ``tests/test_package.py`` checks the order.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import ctypes
import datetime as _dt
import enum
import itertools
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, NamedTuple, Self

from . import _ffi
from ._ffi import lib, shoal_value_t
from .errors import Misuse, last_error, raise_last_error

log = logging.getLogger("shoal")

# ---------------------------------------------------------------------------------------------
# Calls and handles
# ---------------------------------------------------------------------------------------------

_pending_release: list[int] = []
_swap_lock = threading.Lock()


def drain_pending() -> None:
    """Releases the handles whose wrappers were garbage collected."""
    while _pending_release:
        try:
            ptr = _pending_release.pop()
        except IndexError:
            break
        lib.shoal_release(ptr)


def call(fn, *args):
    """Calls a Shoal function after releasing any handles queued by ``__del__``."""
    if _pending_release:
        drain_pending()
    return fn(*args)


def check(ok: bool, what: str = "the call") -> None:
    """Raises the last error when ``ok`` is false."""
    if not ok:
        raise_last_error(what)


def call_bool(fn, *args) -> None:
    """Calls a function returning bool and raises its error on false."""
    if not call(fn, *args):
        raise_last_error(fn.__name__)


def call_ptr(fn, *args, allow_null: bool = False) -> int | None:
    """Calls a function returning a pointer. NULL raises the last error; with ``allow_null``
    a NULL without an error (``"not found"``) returns None."""
    p = call(fn, *args)
    if not p:
        if allow_null:
            e = last_error()
            if e is None:
                return None
            raise e
        raise_last_error(fn.__name__)
    return p


def call_count(fn, *args) -> int:
    """Calls a function returning a count (-1 on error)."""
    n = call(fn, *args)
    if n < 0:
        raise_last_error(fn.__name__)
    return n


def call_string(fn, *args) -> str:
    """Calls a function returning a string to free with ``shoal_free``."""
    p = call_ptr(fn, *args)
    return _ffi.take_string(p)  # type: ignore[return-value]


#: The public class of each kind of handle (``Handle._kind``), for modules that hand out
#: handles of a class defined above them (see :func:`handle_class`).
_handle_classes: dict[str, type] = {}


class Handle:
    """Owns one reference to a Shoal handle (``shoal_*_t*``)."""

    _kind = "handle"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _handle_classes[cls._kind] = cls  # a subclass defined later (Object) replaces its base

    def __init__(self, ptr: int) -> None:
        if not ptr:
            raise ValueError("a NULL handle")
        self._ptr: int | None = ptr

    def _closed_error(self) -> Exception:
        return Misuse(
            _ffi.SHOAL_ERR_MISUSE,
            _ffi.SHOAL_ERR_CATEGORY_LOGIC,
            f"the {self._kind} was released",
        )

    @property
    def _h(self) -> int:
        p = self._ptr
        if p is None:
            raise self._closed_error()
        return p

    @property
    def released(self) -> bool:
        """Whether :meth:`release` was called (or the handle was handed back)."""
        return self._ptr is None

    def _take(self) -> int | None:
        with _swap_lock:
            p, self._ptr = self._ptr, None
        return p

    def release(self) -> None:
        """Releases the handle now. Releasing twice is harmless."""
        p = self._take()
        if p:
            call_bool(lib.shoal_release, p)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            p = self._ptr
            if p:
                self._ptr = None
                _pending_release.append(p)
        except Exception:  # interpreter shutdown: module globals may be gone
            pass


def handle_class(kind: str) -> type:
    """The public class of a kind of handle (``"realm"`` gives :class:`shoal.Realm`).

    The modules import one another top to bottom only (``_ffi``, ``errors``, ``_core``,
    ``schema``, ``sync``, ``app``, ``config``, ``realm``); the one place where a lower module
    must hand out an object of a higher one (a config's initial-data and migration callbacks
    receive a :class:`~shoal.Realm`) looks the class up here. Classes register themselves by
    being defined, so the module that defines them must have been imported (``import shoal``
    imports all)."""
    return _handle_classes[kind]


def check_kind(obj: Any, kind: str, public_name: str) -> None:
    """Raises TypeError unless ``obj`` is a handle of ``kind`` (an isinstance check that needs
    no import of the class's module)."""
    if not isinstance(obj, Handle) or obj._kind != kind:
        raise TypeError(f"expected a {public_name}, got {type(obj).__name__}")


class ObjectHandle(Handle):
    """The base of :class:`shoal.Object`: what a LINK value can point to. Subclasses provide
    ``realm``, ``class_name`` and ``key``."""

    _kind = "object"
    realm: Any
    class_name: str
    key: int


def same_file(a: Any, b: Any) -> bool:
    """Whether two realms are handles of one file (True when that cannot be told)."""
    return a is b or a._file_id is None or b._file_id is None or a._file_id == b._file_id


# ---------------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------------

_registry: dict[int, Any] = {}
#: Ids of the registrations whose callback runs on a library thread (change callbacks).
_async_ids: set[int] = set()
_ids = itertools.count(1)
_tls = threading.local()


def file_id(path: str, in_memory: bool) -> tuple[bool, str]:
    """Identifies a realm file across spellings of its path."""
    return (in_memory, path if in_memory else os.path.realpath(path))


def register(entry: Any, on_library_thread: bool = False) -> int:
    """Stores a callback entry; the id is the userdata handed to the library.
    ``on_library_thread`` marks callbacks that library threads call (waited for at exit)."""
    i = next(_ids)
    _registry[i] = entry
    if on_library_thread:
        _async_ids.add(i)
    return i


def registered(userdata: int | None) -> Any:
    return _registry.get(userdata or 0)


def registry_size() -> int:
    """How many registrations the library still holds (for tests)."""
    return len(_registry)


@_ffi.shoal_free_userdata_fn_t
def FREE_USERDATA(userdata):  # noqa: N802 - a C function pointer
    try:
        _registry.pop(userdata or 0, None)
        _async_ids.discard(userdata or 0)
    except Exception:  # pragma: no cover - interpreter shutdown
        pass


def note_callback_exception(exc: BaseException) -> None:
    """Remembers, on this thread, the exception a synchronous callback raised so that the
    call that ran it can chain it."""
    _tls.callback_error = exc


def take_callback_exception() -> BaseException | None:
    exc = getattr(_tls, "callback_error", None)
    _tls.callback_error = None
    return exc


# Live tokens, released at exit so that no library thread calls into a finalizing interpreter.
live_tokens: "weakref.WeakSet[Any]" = weakref.WeakSet()

#: Every App alive, so that the exit handler of ``sync`` can stop their sessions.
live_apps: "weakref.WeakSet[Any]" = weakref.WeakSet()


class Token(Handle):
    """A callback registration (change, auth, session state and progress callbacks):
    :meth:`release` (or :meth:`close`, or leaving a ``with`` block) unregisters the callback."""

    _kind = "token"

    def __init__(self, ptr: int) -> None:
        super().__init__(ptr)
        live_tokens.add(self)

    def close(self) -> None:
        """Unregisters the callback (the same as :meth:`release`). Closing twice is harmless."""
        self.release()

    def __repr__(self) -> str:
        return f"<shoal.Token{' (released)' if self.released else ''}>"

class AsyncResult(concurrent.futures.Future):
    """The result of an asynchronous call (``*_async``): a ``concurrent.futures.Future``
    (``.result(timeout)`` blocks for it) that coroutines can also ``await``. The library
    completes it from whatever thread delivers the outcome (a library thread, or the app's
    loop through a scheduler); awaiting hands it over to the awaiting loop."""

    def __await__(self):
        return asyncio.wrap_future(self).__await__()


#: How long the exit handler waits for library threads to finish their last callbacks.
EXIT_WAIT_SECONDS = 5.0


@atexit.register
def _at_exit() -> None:
    """Unregisters every change callback and waits until the library has freed them all:
    ``free_userdata`` runs after a callback's last call, so once every registration is gone
    no library thread will call into Python again. (A library thread that called into the
    interpreter while it finalizes would be killed by it, and the process would abort.)"""
    for t in list(live_tokens):
        try:
            t.release()
        except Exception:
            pass
    try:
        drain_pending()
    except Exception:
        pass
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    while _async_ids and time.monotonic() < deadline:
        time.sleep(0.005)  # lets the library's threads take the GIL


# ---------------------------------------------------------------------------------------------
# Enums
# ---------------------------------------------------------------------------------------------


class NamedIntEnum(enum.IntEnum):
    """The base of the binding's enums: members are ints (they are the C constants) that print
    as their names (``SessionState.ACTIVE``), where Python 3.11's ``IntEnum`` prints the
    number."""

    __str__ = enum.Enum.__str__
    __format__ = enum.Enum.__format__


class NamedIntFlag(enum.IntFlag):
    """The base of the binding's flag sets: ints that print as their names
    (``PropertyFlag.NULLABLE|INDEXED``), where Python 3.11's ``IntFlag`` prints the number."""

    __str__ = enum.Flag.__str__
    __format__ = enum.Flag.__format__


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


class Float32(float):
    """A float stored as a 32-bit FLOAT value (a plain ``float`` is a 64-bit DOUBLE)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Float32({float(self)!r})"


class Timestamp(NamedTuple):
    """An exact TIMESTAMP: seconds since 1970-01-01T00:00:00Z plus nanoseconds. Reads give a
    ``datetime`` unless the time is outside what ``datetime`` can hold."""

    seconds: int
    nanos: int = 0

    def to_datetime(self) -> _dt.datetime:
        """The time as an aware UTC ``datetime`` (microseconds: the nanoseconds below are
        dropped); OverflowError outside the years 1-9999."""
        # int() truncates toward zero: nanos carry the sign of seconds (Realm's convention).
        return EPOCH + _dt.timedelta(seconds=self.seconds, microseconds=int(self.nanos / 1000))

    @classmethod
    def from_datetime(cls, dt: _dt.datetime) -> "Timestamp":
        """The exact timestamp of an aware ``datetime`` (ValueError for a naive one)."""
        if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
            raise ValueError("a naive datetime is ambiguous: give it a timezone (e.g. timezone.utc)")
        delta = dt - EPOCH
        micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        # Realm's convention: the nanoseconds have the sign of the seconds (-0.5 s is (0, -5e8)).
        seconds = abs(micros) // 1_000_000 * (1 if micros >= 0 else -1)
        return cls(seconds, (micros - seconds * 1_000_000) * 1000)


EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

PT_BOOL = _ffi.SHOAL_PROPERTY_TYPE_BOOL
PT_INT = _ffi.SHOAL_PROPERTY_TYPE_INT
PT_FLOAT = _ffi.SHOAL_PROPERTY_TYPE_FLOAT
PT_DOUBLE = _ffi.SHOAL_PROPERTY_TYPE_DOUBLE


class InValue:
    """A ``shoal_value_t`` built from a Python value, with the buffers it points to kept
    alive for as long as this object lives."""

    __slots__ = ("value", "_keep")

    def __init__(self, py: Any = None, prop_type: int | None = None, realm: Any = None) -> None:
        self.value = shoal_value_t()
        self._keep: list[Any] = []
        fill_value(self.value, py, prop_type, self._keep, realm)

    @property
    def ref(self):
        return ctypes.byref(self.value)


def _set_string(v: shoal_value_t, data: bytes, keep: list[Any]) -> None:
    buf = ctypes.create_string_buffer(data, len(data) or 1)
    keep.append(buf)
    v.kind = _ffi.SHOAL_VALUE_STRING
    v.data.string.data = ctypes.cast(buf, ctypes.POINTER(ctypes.c_char))
    v.data.string.size = len(data)


def fill_value(v: shoal_value_t, py: Any, prop_type: int | None, keep: list[Any], realm: Any = None) -> None:
    """Fills ``v`` from a Python value. ``prop_type`` (a ``SHOAL_PROPERTY_TYPE_*`` when the
    target property is known) lets ints and floats be widened or narrowed as Realm does:
    an int for a DOUBLE or FLOAT property, a float for a FLOAT property. An Object becomes a
    LINK, which must point into ``realm``'s file when that is given (a LINK names an object
    by class and key, which mean nothing in another file)."""
    if py is None:
        v.kind = _ffi.SHOAL_VALUE_NULL
    elif isinstance(py, bool):
        v.kind = _ffi.SHOAL_VALUE_BOOL
        v.data.boolean = py
    elif isinstance(py, Float32):
        v.kind = _ffi.SHOAL_VALUE_FLOAT
        v.data.fnum = float(py)
    elif isinstance(py, int):
        if prop_type in (PT_DOUBLE, PT_FLOAT):
            fill_value(v, float(py) if prop_type == PT_DOUBLE else Float32(py), prop_type, keep, realm)
            return
        if not _I64_MIN <= py <= _I64_MAX:
            raise OverflowError(f"{py} does not fit in a 64-bit integer")
        v.kind = _ffi.SHOAL_VALUE_INT
        v.data.integer = py
    elif isinstance(py, float):
        if prop_type == PT_FLOAT:
            v.kind = _ffi.SHOAL_VALUE_FLOAT
            v.data.fnum = py
        else:
            v.kind = _ffi.SHOAL_VALUE_DOUBLE
            v.data.dnum = py
    elif isinstance(py, str):
        _set_string(v, py.encode("utf-8"), keep)
    elif isinstance(py, (bytes, bytearray, memoryview)):
        data = bytes(py)
        buf = (ctypes.c_uint8 * max(len(data), 1)).from_buffer_copy(data or b"\0")
        keep.append(buf)
        v.kind = _ffi.SHOAL_VALUE_BINARY
        v.data.binary.data = ctypes.cast(buf, ctypes.POINTER(ctypes.c_uint8))
        v.data.binary.size = len(data)
    elif isinstance(py, _dt.datetime):
        fill_value(v, Timestamp.from_datetime(py), prop_type, keep, realm)
    elif isinstance(py, Timestamp):
        v.kind = _ffi.SHOAL_VALUE_TIMESTAMP
        v.data.timestamp.seconds = py.seconds
        v.data.timestamp.nanos = py.nanos
    elif isinstance(py, ObjectHandle):
        if realm is not None and not same_file(py.realm, realm):
            raise ValueError(f"{py!r} belongs to another realm file: copy its values instead of linking to it")
        cls_name = py.class_name.encode("utf-8")
        keep.append(cls_name)
        v.kind = _ffi.SHOAL_VALUE_LINK
        v.data.link.class_name = cls_name
        v.data.link.key = py.key
    else:
        raise TypeError(
            f"cannot store a {type(py).__name__} in Shoal (use None, bool, int, float, Float32, str, "
            "bytes, datetime, Timestamp or an Object)"
        )


def to_python(v: shoal_value_t, resolve_link: Callable[[shoal_value_t], Any] | None) -> Any:
    """Converts a value filled in by Shoal (not freed here)."""
    k = v.kind
    if k == _ffi.SHOAL_VALUE_NULL:
        return None
    if k == _ffi.SHOAL_VALUE_BOOL:
        return bool(v.data.boolean)
    if k == _ffi.SHOAL_VALUE_INT:
        return v.data.integer
    if k == _ffi.SHOAL_VALUE_FLOAT:
        return Float32(v.data.fnum)
    if k == _ffi.SHOAL_VALUE_DOUBLE:
        return v.data.dnum
    if k == _ffi.SHOAL_VALUE_STRING:
        s = v.data.string
        return ctypes.string_at(s.data, s.size).decode("utf-8") if s.size else ""
    if k == _ffi.SHOAL_VALUE_BINARY:
        b = v.data.binary
        return ctypes.string_at(b.data, b.size) if b.size else b""
    if k == _ffi.SHOAL_VALUE_TIMESTAMP:
        t = Timestamp(v.data.timestamp.seconds, v.data.timestamp.nanos)
        try:
            return t.to_datetime()
        except OverflowError:
            return t
    if k == _ffi.SHOAL_VALUE_LINK:
        if resolve_link is None:
            raise TypeError("a link value cannot be converted here")
        return resolve_link(v)
    raise TypeError(f"unknown value kind {k}")


class OutValue:
    """A ``shoal_value_t`` for Shoal to fill; :meth:`take` converts and frees it."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = shoal_value_t()

    @property
    def ref(self):
        return ctypes.byref(self.value)

    def take(self, resolve_link: Callable[[shoal_value_t], Any] | None = None) -> Any:
        try:
            return to_python(self.value, resolve_link)
        finally:
            lib.shoal_value_free(ctypes.byref(self.value))


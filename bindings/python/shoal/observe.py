"""Fine-grained notifications: what changed in observed results, lists and objects.

``Results.observe``, ``List.observe`` and ``Object.observe`` call a function with a
:class:`CollectionChanges` or :class:`ObjectChange` after every commit that changed what they
observe (local commits and sync downloads alike), starting with the initial state. The
function runs on the realm's scheduler (a library thread by default; the event loop with
``shoal.aio``). ``changes()`` gives the same as an asyncio stream::

    async with results.changes() as stream:
        async for change in stream:
            print(change.insertions)
"""

from __future__ import annotations

import asyncio
import ctypes
from dataclasses import dataclass, field
from typing import Any, Callable

from . import _ffi
from ._core import FREE_USERDATA, Token, call_ptr, log, register, registered

__all__ = ["CollectionChanges", "ObjectChange", "ChangeStream"]


@dataclass(frozen=True)
class CollectionChanges:
    """What changed in results or a list. Deletions are indices in the old collection,
    insertions and modifications in the new one (``modifications_old``: the same elements' old
    indices); a moved element counts as a deletion and an insertion and is listed in
    ``moves`` as ``(old, new)``. ``initial`` marks the first notification (the initial state),
    ``collection_deleted`` the last (a list whose object was deleted)."""

    version: int
    initial: bool = False
    deletions: list[int] = field(default_factory=list)
    insertions: list[int] = field(default_factory=list)
    modifications: list[int] = field(default_factory=list)
    modifications_old: list[int] = field(default_factory=list)
    moves: list[tuple[int, int]] = field(default_factory=list)
    collection_deleted: bool = False


@dataclass(frozen=True)
class ObjectChange:
    """What changed in an object: the names of the properties written, or ``deleted``."""

    version: int
    initial: bool = False
    deleted: bool = False
    changed: list[str] = field(default_factory=list)


def _ints(ptr: Any, n: int) -> list[int]:
    return [ptr[i] for i in range(n)] if n else []


@_ffi.shoal_collection_change_fn_t
def _ON_COLLECTION(userdata, changes):  # noqa: N802 - a C function pointer
    try:
        fn = registered(userdata)
        if fn is None:
            return
        c = changes.contents
        fn(
            CollectionChanges(
                version=c.version,
                initial=bool(c.initial),
                deletions=_ints(c.deletions, c.num_deletions),
                insertions=_ints(c.insertions, c.num_insertions),
                modifications=_ints(c.modifications, c.num_modifications),
                modifications_old=_ints(c.modifications_old, c.num_modifications),
                moves=[(c.moves[i].from_, c.moves[i].to) for i in range(c.num_moves)],
                collection_deleted=bool(c.collection_deleted),
            )
        )
    except BaseException:  # never unwind into Rust
        log.exception("a change observer raised")


@_ffi.shoal_object_change_fn_t
def _ON_OBJECT(userdata, changes):  # noqa: N802 - a C function pointer
    try:
        fn = registered(userdata)
        if fn is None:
            return
        c = changes.contents
        names = [c.changed_names[i].decode("utf-8") for i in range(c.num_changed)]
        fn(ObjectChange(version=c.version, initial=bool(c.initial), deleted=bool(c.deleted), changed=names))
    except BaseException:  # never unwind into Rust
        log.exception("a change observer raised")


def observe(kind: str, handle: Any, fn: Callable[[Any], Any]) -> Token:
    """Registers ``fn`` on a results (``kind="results"``), list or object handle."""
    if not callable(fn):
        raise TypeError("the observer must be callable")
    userdata = register(fn, on_library_thread=True)
    # On failure the library runs FREE_USERDATA at once, which drops the registration.
    if kind == "object":
        p = call_ptr(lib_fn("shoal_object_observe"), handle, _ON_OBJECT, userdata, FREE_USERDATA)
    else:
        p = call_ptr(lib_fn(f"shoal_{kind}_observe"), handle, _ON_COLLECTION, userdata, FREE_USERDATA)
    return Token(p)


def lib_fn(name: str) -> Any:
    """The library function ``name``."""
    return getattr(_ffi.lib, name)


class ChangeStream:
    """An asyncio stream of notifications: ``await stream.next()``, ``async for``, and
    ``async with`` (or :meth:`close`) to stop. Create it from a coroutine: notifications reach
    the running loop, whatever thread the library delivered them on. The first item is the
    initial state."""

    def __init__(self, observe_fn: Callable[[Callable[[Any], Any]], Token]) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._closed = False
        loop, queue = self._loop, self._queue

        def deliver(change: Any) -> None:
            if loop.is_closed():
                return
            loop.call_soon_threadsafe(queue.put_nowait, change)

        self._token: Token | None = observe_fn(deliver)

    async def next(self, timeout: float | None = None) -> Any:
        """The next notification (``asyncio.TimeoutError`` after ``timeout`` seconds)."""
        if self._closed:
            raise StopAsyncIteration
        if timeout is None:
            return await self._queue.get()
        return await asyncio.wait_for(self._queue.get(), timeout)

    def __aiter__(self) -> "ChangeStream":
        return self

    async def __anext__(self) -> Any:
        return await self.next()

    def close(self) -> None:
        """Stops the notifications (releases the registration)."""
        self._closed = True
        if self._token is not None:
            self._token.release()
            self._token = None

    async def aclose(self) -> None:
        """Stops the notifications (as :meth:`close`)."""
        self.close()

    async def __aenter__(self) -> "ChangeStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

"""asyncio integration: schedulers that run Shoal's callbacks on an event loop.

Change notifications and the completions of asynchronous work are produced on library threads.
A scheduler (``shoal_scheduler_new``) queues them instead, tells the app "there is work", and
runs them when the app calls :meth:`Scheduler.perform_work` on its own thread. An
:class:`AsyncioScheduler` does that on an asyncio event loop: its wake-up is
``loop.call_soon_threadsafe(perform_work)``, so the callbacks of every realm opened with a
config bound to it run on the loop's thread, between other tasks.

>>> async def main(path):
...     config = shoal.aio.bind_to_loop(shoal.Config(path, schema=schema))
...     realm = await shoal.Realm.open_async(config)
...     version = await realm.write_async(lambda r: r.create("Person", 1))
...     # the callbacks ran on this loop; `realm` already shows the write
>>> asyncio.run(main("people.realm"))                                    # doctest: +SKIP

A scheduler lives as long as something uses it: the configs it is set on keep it (and their
realms keep their configs); the library holds the wake-up function until the last of them is
gone. Wake-ups for a loop that has closed are dropped.
"""

from __future__ import annotations

import asyncio
import ctypes
import weakref
from typing import Any, Callable

from . import _ffi
from ._core import FREE_USERDATA, Handle, call_bool, call_ptr, log, register, registered
from ._ffi import lib
from .config import Config
from .errors import ShoalError

__all__ = ["Scheduler", "AsyncioScheduler", "scheduler_for_loop", "bind_to_loop"]


@_ffi.shoal_scheduler_notify_fn_t
def NOTIFY(userdata):  # noqa: N802 - a C function pointer
    try:
        notify = registered(userdata)
        if notify is not None:
            notify()
    except BaseException:  # never unwind into Rust
        log.exception("a scheduler's notify function raised")


class Scheduler(Handle):
    """A scheduler the app drives (``shoal_scheduler_t``): work for it waits in a queue,
    ``notify()`` is called (on a library thread, at most once per :meth:`perform_work`) when
    the queue gets work, and the work runs when the app calls :meth:`perform_work` on its own
    thread. ``notify`` must only wake the app's loop (post a message, write to a pipe), never
    run the work itself; the library keeps it until the scheduler is gone, so it should not
    hold the scheduler itself (hold a weak reference).

    Set it on configs with :meth:`Config.set_scheduler <shoal.Config.set_scheduler>`; for
    asyncio use :class:`AsyncioScheduler`."""

    _kind = "scheduler"

    def __init__(self, notify: Callable[[], Any]) -> None:
        if not callable(notify):
            raise TypeError("notify must be callable")
        # On failure the library runs FREE_USERDATA at once, which drops the registration.
        super().__init__(call_ptr(lib.shoal_scheduler_new, NOTIFY, register(notify), FREE_USERDATA))

    def perform_work(self) -> int:
        """Runs the work waiting now (notification callbacks, async completions) on the
        calling thread, in the order it was posted; returns how many pieces ran. Work posted
        meanwhile waits for the next call (and notifies again)."""
        ran = ctypes.c_size_t(0)
        call_bool(lib.shoal_scheduler_perform_work, self._h, ctypes.byref(ran))
        return ran.value

    def __repr__(self) -> str:
        return f"<shoal.aio.{type(self).__name__}{' (released)' if self.released else ''}>"


def _perform_on_loop(ref: "weakref.ref[AsyncioScheduler]") -> None:
    """Runs on the loop: the work of the scheduler, if it is still there."""
    scheduler = ref()
    if scheduler is None or scheduler.released:
        return
    try:
        scheduler.perform_work()
    except ShoalError:  # pragma: no cover - a released handle between the checks
        log.debug("the scheduler could not perform its work", exc_info=True)


class AsyncioScheduler(Scheduler):
    """A :class:`Scheduler` driven by an asyncio event loop: work runs on the loop's thread,
    scheduled with ``loop.call_soon_threadsafe``. ``loop`` None means the running loop (a
    RuntimeError outside one). One per loop is enough: see :func:`scheduler_for_loop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is None:
            loop = asyncio.get_running_loop()
        self._loop_ref = weakref.ref(loop)
        me = weakref.ref(self)
        loop_ref = self._loop_ref

        def notify() -> None:
            # Weak references only: the library keeps this function until the scheduler is
            # gone, and must keep neither the scheduler nor the loop alive.
            target = loop_ref()
            if target is None or target.is_closed():
                return
            try:
                target.call_soon_threadsafe(_perform_on_loop, me)
            except RuntimeError:  # closed meanwhile
                pass

        super().__init__(notify)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop (None once it has been garbage collected)."""
        return self._loop_ref()


_per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncioScheduler]" = weakref.WeakKeyDictionary()


def scheduler_for_loop(loop: asyncio.AbstractEventLoop | None = None) -> AsyncioScheduler:
    """The :class:`AsyncioScheduler` of ``loop`` (None: the running loop), made on first use
    and shared by every later call for the same loop."""
    if loop is None:
        loop = asyncio.get_running_loop()
    scheduler = _per_loop.get(loop)
    if scheduler is None or scheduler.released:
        scheduler = AsyncioScheduler(loop)
        _per_loop[loop] = scheduler
    return scheduler


def bind_to_loop(config: Config, loop: asyncio.AbstractEventLoop | None = None) -> Config:
    """Sets the scheduler of ``loop`` (None: the running loop) on ``config`` and returns it:
    realms opened with it deliver their change notifications and async completions on that
    loop."""
    if not isinstance(config, Config):
        raise TypeError(f"expected a shoal.Config, got {type(config).__name__}")
    return config.set_scheduler(scheduler_for_loop(loop))

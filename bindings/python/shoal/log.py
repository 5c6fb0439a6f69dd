"""The library's log events in Python's :mod:`logging`: each event goes to the logger
``shoal.<category>`` (``shoal.sync.runner`` for the core's ``shoal::sync::runner``) at the
matching level. Installed when the package is imported; :func:`set_level` chooses how much the
library reports (default ``logging.INFO``)."""

from __future__ import annotations

import atexit
import logging

from . import _ffi
from ._ffi import lib

#: The library's levels (``SHOAL_LOG_LEVEL_*``) as :mod:`logging` levels.
_TO_PYTHON = {
    _ffi.SHOAL_LOG_LEVEL_ALL: 1,
    _ffi.SHOAL_LOG_LEVEL_TRACE: 5,
    _ffi.SHOAL_LOG_LEVEL_DEBUG: logging.DEBUG,
    _ffi.SHOAL_LOG_LEVEL_INFO: logging.INFO,
    _ffi.SHOAL_LOG_LEVEL_WARN: logging.WARNING,
    _ffi.SHOAL_LOG_LEVEL_ERROR: logging.ERROR,
    _ffi.SHOAL_LOG_LEVEL_FATAL: logging.CRITICAL,
}


def _logger_name(category: str) -> str:
    parts = [p for p in category.split("::") if p]
    if parts and parts[0] == "shoal":
        parts = parts[1:]
    return ".".join(["shoal", *parts])


@_ffi.shoal_log_fn_t
def _LOG(userdata, level, category, message):  # noqa: N802 - a C function pointer
    try:
        name = _logger_name((category or b"").decode("utf-8", "replace"))
        text = (message or b"").decode("utf-8", "replace")
        logging.getLogger(name).log(_TO_PYTHON.get(level, logging.INFO), "%s", text)
    except Exception:  # pragma: no cover - never raise into the library
        pass


def set_level(level: int) -> None:
    """Reports library events at ``level`` (a :mod:`logging` level) and above; events below
    it cost the library almost nothing. ``logging.INFO`` by default."""
    if level <= 1:
        native = _ffi.SHOAL_LOG_LEVEL_ALL
    elif level <= 5:
        native = _ffi.SHOAL_LOG_LEVEL_TRACE
    elif level <= logging.DEBUG:
        native = _ffi.SHOAL_LOG_LEVEL_DEBUG
    elif level <= logging.INFO:
        native = _ffi.SHOAL_LOG_LEVEL_INFO
    elif level <= logging.WARNING:
        native = _ffi.SHOAL_LOG_LEVEL_WARN
    elif level <= logging.ERROR:
        native = _ffi.SHOAL_LOG_LEVEL_ERROR
    else:
        native = _ffi.SHOAL_LOG_LEVEL_FATAL
    lib.shoal_set_log_level(native)


def _install() -> None:
    lib.shoal_set_log_callback(_LOG, None, _ffi.shoal_free_userdata_fn_t())


def _uninstall() -> None:
    # Before the interpreter finalizes: no library thread may call into Python after that.
    lib.shoal_set_log_callback(_ffi.shoal_log_fn_t(), None, _ffi.shoal_free_userdata_fn_t())


_install()
atexit.register(_uninstall)

__all__ = ["set_level"]

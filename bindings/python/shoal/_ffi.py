"""Raw ctypes declarations of the Shoal C ABI (``include/shoal.h``).

Everything here mirrors the header one to one: the constants, the structs (``shoal_value_t``
with its union, ``shoal_error_t``, ``shoal_property_key_t``, ...), the callback types and the
argument / return types of every function. The Pythonic API in the rest of the package is
built on ``lib``; tests use it directly to check misuse is reported and never crashes.

Opaque handles (``shoal_realm_t*`` and friends) are declared as ``c_void_p``. Functions that
return a string the caller must free return ``c_void_p`` (not ``c_char_p``, which would copy
the text and lose the pointer that ``shoal_free`` needs); use :func:`take_string`.

The library is loaded from the first of these that has it (:func:`load_library`):

1. the package itself (``shoal/libshoal.so``: what a wheel built by ``pip install
   ./bindings/python`` ships);
2. the dynamic loader's search path, by the installed library's SONAME (``libshoal.so.0.1``),
   then ``libshoal.so`` (``LD_LIBRARY_PATH``, ``/etc/ld.so.conf``: what ``scripts/install.sh``
   installs);
3. the ``SHOAL_LIBRARY`` environment variable (a full path), then
   ``$CARGO_TARGET_DIR/{release,debug}``;
4. the repository's ``target/{release,debug}`` (``cargo build`` in a checkout).
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    c_bool,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# Finding and loading the library
# ---------------------------------------------------------------------------------------------

_PACKAGE_DIR = Path(__file__).resolve().parent
#: The repository root: three levels above the package directory (bindings/python/shoal).
#: Only meaningful in a checkout; an installed package never finds a ``target/`` there.
REPO_ROOT = _PACKAGE_DIR.parents[2]

if sys.platform == "darwin":
    _LIB_NAME = "libshoal.dylib"
elif sys.platform == "win32":
    _LIB_NAME = "shoal.dll"
else:
    _LIB_NAME = "libshoal.so"


def packaged_path() -> Path:
    """Where a wheel puts the library: inside the package."""
    return _PACKAGE_DIR / _LIB_NAME


def soname(version: str) -> str:
    """The SONAME of the library of ``version`` (the rule of ``build.rs``): the part of the
    version that changes on a breaking change, by Cargo's rule (``0.1`` for 0.1.z, ``1`` for
    1.y.z)."""
    major, minor = version.split(".")[:2]
    return f"libshoal.so.{major}.{minor}" if major == "0" else f"libshoal.so.{major}"


def loader_names() -> list[str]:
    """The names handed to the dynamic loader, which searches its own path for them: the
    installed library's SONAME first (a runtime-only install has no ``libshoal.so``)."""
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return [soname(SHOAL_VERSION), _LIB_NAME]
    return [_LIB_NAME]


def candidate_paths() -> list[Path]:
    """The build folders searched after the loader's path, in order: ``SHOAL_LIBRARY`` aside,
    ``$CARGO_TARGET_DIR/{release,debug}``, then the repository's ``target/{release,debug}``."""
    dirs: list[Path] = []
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        t = Path(target)
        if not t.is_absolute():
            t = REPO_ROOT / t
        dirs += [t / "release", t / "debug"]
    dirs += [REPO_ROOT / "target" / "release", REPO_ROOT / "target" / "debug"]
    return [d / _LIB_NAME for d in dirs]


class _DlInfo(Structure):
    """``Dl_info`` of ``dladdr(3)``."""

    _fields_ = [
        ("dli_fname", c_char_p),
        ("dli_fbase", c_void_p),
        ("dli_sname", c_char_p),
        ("dli_saddr", c_void_p),
    ]


def _path_of(loaded: ctypes.CDLL, name: str) -> Path:
    """The file the dynamic loader picked for ``name`` (``dladdr`` of one of its functions), or
    ``name`` itself where ``dladdr`` is not available."""
    try:
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [c_void_p, POINTER(_DlInfo)]
        dladdr.restype = ctypes.c_int
        info = _DlInfo()
        if dladdr(ctypes.cast(loaded.shoal_libversion, c_void_p), ctypes.byref(info)) and info.dli_fname:
            return Path(os.fsdecode(info.dli_fname))
    except (OSError, AttributeError, TypeError):
        pass
    return Path(name)


def _open(path: Path) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(str(path))
    except OSError as e:  # pragma: no cover - depends on the machine
        raise ImportError(f"could not load the Shoal library {path}: {e}") from e


def load_library() -> tuple[ctypes.CDLL, Path]:
    """Loads the Shoal library from the first place that has it (see the module's doc);
    returns it and its path. ImportError, listing every place searched, when none has it."""
    searched: list[str] = []
    packaged = packaged_path()
    if packaged.is_file():
        return _open(packaged), packaged
    searched.append(str(packaged))
    for name in loader_names():
        try:
            loaded = ctypes.CDLL(name)
        except OSError:
            searched.append(f"{name} on the dynamic loader's path")
            continue
        if hasattr(loaded, "shoal_libversion"):
            return loaded, _path_of(loaded, name)
        searched.append(f"{name} on the dynamic loader's path (not Shoal's: no shoal_libversion)")
    explicit = os.environ.get("SHOAL_LIBRARY")
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ImportError(f"SHOAL_LIBRARY={explicit!r} does not name an existing file")
        return _open(p), p
    searched.append("$SHOAL_LIBRARY (not set)")
    for p in candidate_paths():
        if p.is_file():
            return _open(p), p
        searched.append(str(p))
    listed = "\n  ".join(searched)
    raise ImportError(
        "the Shoal library was not found. Install the package with `pip install ./bindings/python` "
        "(its wheel contains the library), install the library with `scripts/install.sh PREFIX`, "
        f"build it with `cargo build` in a checkout, or set SHOAL_LIBRARY to the full path of "
        f"{_LIB_NAME}. Searched:\n  {listed}"
    )


# ---------------------------------------------------------------------------------------------
# Constants (same names and numbers as the header)
# ---------------------------------------------------------------------------------------------

SHOAL_ERR_UNKNOWN = -1
SHOAL_ERR_IO = 0
SHOAL_ERR_JSON = 1
SHOAL_ERR_CLIENT_RESET = 7
SHOAL_ERR_HTTP = 300
SHOAL_ERR_CONNECTION_CLOSED = 100
SHOAL_ERR_OTHER_ERROR = 101
SHOAL_ERR_UNKNOWN_MESSAGE = 102
SHOAL_ERR_BAD_SYNTAX = 103
SHOAL_ERR_LIMITS_EXCEEDED = 104
SHOAL_ERR_WRONG_PROTOCOL_VERSION = 105
SHOAL_ERR_BAD_SESSION_IDENT = 106
SHOAL_ERR_REUSE_OF_SESSION_IDENT = 107
SHOAL_ERR_BOUND_IN_OTHER_SESSION = 108
SHOAL_ERR_BAD_MESSAGE_ORDER = 109
SHOAL_ERR_BAD_ORIGIN_FILE_IDENT = 110
SHOAL_ERR_BAD_SERVER_VERSION_DOWNLOAD = 111
SHOAL_ERR_BAD_CHANGESET_DOWNLOAD = 112
SHOAL_ERR_BAD_REQUEST_IDENT = 113
SHOAL_ERR_BAD_ERROR_CODE = 114
SHOAL_ERR_BAD_COMPRESSION = 115
SHOAL_ERR_BAD_CLIENT_VERSION_DOWNLOAD = 116
SHOAL_ERR_SESSION_CLOSED = 200
#: The family of the sync protocol's codes (same number as SESSION_CLOSED; its name is "SYNC").
SHOAL_ERR_SYNC = 200
SHOAL_ERR_OTHER_SESSION_ERROR = 201
SHOAL_ERR_TOKEN_EXPIRED = 202
SHOAL_ERR_BAD_AUTHENTICATION = 203
SHOAL_ERR_ILLEGAL_REALM_PATH = 204
SHOAL_ERR_NO_SUCH_PATH = 205
SHOAL_ERR_PERMISSION_DENIED = 206
SHOAL_ERR_BAD_SERVER_FILE_IDENT = 207
SHOAL_ERR_BAD_CLIENT_FILE_IDENT = 208
SHOAL_ERR_BAD_SERVER_VERSION = 209
SHOAL_ERR_BAD_CLIENT_VERSION = 210
SHOAL_ERR_DIVERGING_HISTORIES = 211
SHOAL_ERR_BAD_CHANGESET = 212
SHOAL_ERR_DISABLED_SESSION = 213
SHOAL_ERR_INVALID_PARAMETERS = 601
SHOAL_ERR_MISSING_PARAMETERS = 602
SHOAL_ERR_INVALID_CREDENTIALS = 611
SHOAL_ERR_UNKNOWN_ACCOUNT = 612
SHOAL_ERR_EXISTING_ACCOUNT = 613
SHOAL_ERR_ACCESS_DENIED = 614
SHOAL_ERR_EXPIRED_REFRESH_TOKEN = 615
SHOAL_ERR_INVALID_HOST = 616
SHOAL_ERR_EXPIRED_PERMISSION_OFFER = 701
SHOAL_ERR_AMBIGUOUS_PERMISSION_OFFER_TOKEN = 702
SHOAL_ERR_FILE_MAY_NOT_BE_SHARED = 703
SHOAL_ERR_SERVER_MISCONFIGURATION = 801
SHOAL_ERR_INVALID_ARGUMENT = 1000
SHOAL_ERR_WRONG_TYPE = 1001
SHOAL_ERR_NOT_IN_WRITE_TRANSACTION = 1002
SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION = 1003
SHOAL_ERR_REALM_CLOSED = 1004
SHOAL_ERR_OBJECT_DELETED = 1005
SHOAL_ERR_NO_SUCH_CLASS = 1006
SHOAL_ERR_NO_SUCH_PROPERTY = 1007
SHOAL_ERR_DUPLICATE_PRIMARY_KEY = 1008
SHOAL_ERR_MIGRATION_NEEDED = 1009
SHOAL_ERR_SCHEMA_VERSION_LOWER = 1010
SHOAL_ERR_SCHEMA_CHANGED_WITHOUT_VERSION_BUMP = 1011
SHOAL_ERR_READ_ONLY = 1012
SHOAL_ERR_FILE_NOT_FOUND = 1013
SHOAL_ERR_FILE_PERMISSION_DENIED = 1014
SHOAL_ERR_INCOMPATIBLE_FILE = 1015
SHOAL_ERR_DECRYPTION_FAILED = 1016
SHOAL_ERR_FORMAT_UPGRADE_REQUIRED = 1017
SHOAL_ERR_FILE_IN_USE = 1018
SHOAL_ERR_INVALID_QUERY = 1019
SHOAL_ERR_MISUSE = 1020
SHOAL_ERR_INTERNAL = 1021
SHOAL_ERR_INDEX_OUT_OF_BOUNDS = 1022
SHOAL_ERR_NOT_SUPPORTED = 1023
SHOAL_ERR_CALLBACK_FAILED = 1024
SHOAL_ERR_REALM_IN_USE = 1025
SHOAL_ERR_MULTIPLE_USERS_LOGGED_IN = 1026
SHOAL_ERR_TIMEOUT = 1027

SHOAL_LOG_LEVEL_ALL = 1
SHOAL_LOG_LEVEL_TRACE = 2
SHOAL_LOG_LEVEL_DEBUG = 3
SHOAL_LOG_LEVEL_INFO = 4
SHOAL_LOG_LEVEL_WARN = 5
SHOAL_LOG_LEVEL_ERROR = 6
SHOAL_LOG_LEVEL_FATAL = 7
SHOAL_LOG_LEVEL_OFF = 8

SHOAL_ERR_CATEGORY_NONE = 0
SHOAL_ERR_CATEGORY_LOGIC = 1
SHOAL_ERR_CATEGORY_FILE = 2
SHOAL_ERR_CATEGORY_CLIENT = 3
SHOAL_ERR_CATEGORY_INTERNAL = 4
SHOAL_ERR_CATEGORY_AUTH = 5
SHOAL_ERR_CATEGORY_HTTP = 6
SHOAL_ERR_CATEGORY_SYNC = 7

SHOAL_AUTH_LOGGED_IN = 1
SHOAL_AUTH_LOGGED_OUT = 2

SHOAL_PROPERTY_TYPE_BOOL = 0
SHOAL_PROPERTY_TYPE_INT = 1
SHOAL_PROPERTY_TYPE_FLOAT = 2
SHOAL_PROPERTY_TYPE_DOUBLE = 3
SHOAL_PROPERTY_TYPE_STRING = 4
SHOAL_PROPERTY_TYPE_BINARY = 5
SHOAL_PROPERTY_TYPE_TIMESTAMP = 6
SHOAL_PROPERTY_TYPE_LINK = 7

SHOAL_PROPERTY_NULLABLE = 1
SHOAL_PROPERTY_INDEXED = 2
SHOAL_PROPERTY_LIST = 4

SHOAL_VALUE_NULL = 0
SHOAL_VALUE_BOOL = 1
SHOAL_VALUE_INT = 2
SHOAL_VALUE_FLOAT = 3
SHOAL_VALUE_DOUBLE = 4
SHOAL_VALUE_STRING = 5
SHOAL_VALUE_BINARY = 6
SHOAL_VALUE_TIMESTAMP = 7
SHOAL_VALUE_LINK = 8

SHOAL_STOP_POLICY_IMMEDIATELY = 0
SHOAL_STOP_POLICY_LIVE_INDEFINITELY = 1
SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED = 2

SHOAL_SESSION_WAITING_FOR_ACCESS_TOKEN = 0
SHOAL_SESSION_ACTIVE = 1
SHOAL_SESSION_DYING = 2
SHOAL_SESSION_INACTIVE = 3
SHOAL_SESSION_ERROR = 4

SHOAL_CONNECTION_DISCONNECTED = 0
SHOAL_CONNECTION_CONNECTING = 1
SHOAL_CONNECTION_CONNECTED = 2

SHOAL_PROGRESS_DOWNLOAD = 1
SHOAL_PROGRESS_UPLOAD = 2
SHOAL_PROGRESS_CURRENT_CHANGES = 0
SHOAL_PROGRESS_INDEFINITELY = 1

#: The ``timeout_ms`` meaning "no practical limit".
UINT64_MAX = 2**64 - 1

SHOAL_VERSION = "0.1.0"
SHOAL_VERSION_NUMBER = 1000

# ---------------------------------------------------------------------------------------------
# Loading the library (after the constants: the loader's names come from SHOAL_VERSION)
# ---------------------------------------------------------------------------------------------

lib, LIBRARY_PATH = load_library()

# ---------------------------------------------------------------------------------------------
# Structs
# ---------------------------------------------------------------------------------------------


class shoal_string_t(Structure):
    """A string of ``size`` bytes (NUL-terminated when returned by Shoal)."""

    _fields_ = [("data", POINTER(c_char)), ("size", c_size_t)]


class shoal_binary_t(Structure):
    """Bytes (``data`` may be NULL when ``size`` is 0)."""

    _fields_ = [("data", POINTER(c_uint8)), ("size", c_size_t)]


class shoal_timestamp_t(Structure):
    """Seconds since the Unix epoch plus nanoseconds."""

    _fields_ = [("seconds", c_int64), ("nanos", c_int32)]


class shoal_link_t(Structure):
    """A link to an object: its class name and its object key."""

    _fields_ = [("class_name", c_char_p), ("key", c_uint64)]


class shoal_value_data_t(Union):
    """The payload of a ``shoal_value_t``; which member is valid depends on ``kind``."""

    _fields_ = [
        ("boolean", c_bool),
        ("integer", c_int64),
        ("fnum", c_float),
        ("dnum", c_double),
        ("string", shoal_string_t),
        ("binary", shoal_binary_t),
        ("timestamp", shoal_timestamp_t),
        ("link", shoal_link_t),
    ]


class shoal_value_t(Structure):
    """A tagged value: ``kind`` is one of ``SHOAL_VALUE_*``."""

    _fields_ = [("kind", c_int32), ("data", shoal_value_data_t)]


class shoal_error_t(Structure):
    """The calling thread's last error, as filled by ``shoal_get_last_error``."""

    _fields_ = [
        ("code", c_int32),
        ("category", c_int32),
        ("message", c_char_p),
        ("path", c_char_p),
    ]


class shoal_property_key_t(Structure):
    """A property resolved once, for the ``_by_key`` functions."""

    _fields_ = [("class_key", c_uint32), ("property_key", c_uint32)]

    def __repr__(self) -> str:
        return f"shoal_property_key_t(class_key={self.class_key}, property_key={self.property_key})"


class shoal_sync_error_t(Structure):
    """An error of a sync session, as handed to the error handler (valid during the call)."""

    _fields_ = [
        ("code", c_int32),
        ("category", c_int32),
        ("message", c_char_p),
        ("is_fatal", c_bool),
        ("is_client_reset", c_bool),
        ("original_path", c_char_p),
        ("backup_path", c_char_p),
        ("backup_config", c_void_p),
    ]


class shoal_move_t(Structure):
    """A moved element: old and new index."""

    _fields_ = [("from_", c_size_t), ("to", c_size_t)]


class shoal_collection_changes_t(Structure):
    """What changed in observed results or a list (valid during the callback)."""

    _fields_ = [
        ("version", c_uint64),
        ("initial", c_bool),
        ("collection_deleted", c_bool),
        ("deletions", POINTER(c_size_t)),
        ("num_deletions", c_size_t),
        ("insertions", POINTER(c_size_t)),
        ("num_insertions", c_size_t),
        ("modifications", POINTER(c_size_t)),
        ("modifications_old", POINTER(c_size_t)),
        ("num_modifications", c_size_t),
        ("moves", POINTER(shoal_move_t)),
        ("num_moves", c_size_t),
    ]


class shoal_object_changes_t(Structure):
    """What changed in an observed object (valid during the callback)."""

    _fields_ = [
        ("version", c_uint64),
        ("initial", c_bool),
        ("deleted", c_bool),
        ("changed", POINTER(shoal_property_key_t)),
        ("changed_names", POINTER(c_char_p)),
        ("num_changed", c_size_t),
    ]


# ---------------------------------------------------------------------------------------------
# Callback types
# ---------------------------------------------------------------------------------------------

#: ``bool (*)(void* userdata, shoal_realm_t* realm)``
shoal_initial_data_fn_t = CFUNCTYPE(c_bool, c_void_p, c_void_p)
#: ``void (*)(void* userdata)``
shoal_free_userdata_fn_t = CFUNCTYPE(None, c_void_p)
#: ``bool (*)(void* userdata, shoal_realm_t* realm, uint64_t old_version, uint64_t new_version)``
shoal_migration_fn_t = CFUNCTYPE(c_bool, c_void_p, c_void_p, c_uint64, c_uint64)
#: ``void (*)(void* userdata, uint64_t version)``
shoal_change_fn_t = CFUNCTYPE(None, c_void_p, c_uint64)
#: ``void (*)(void* userdata, const shoal_collection_changes_t* changes)``
shoal_collection_change_fn_t = CFUNCTYPE(None, c_void_p, POINTER(shoal_collection_changes_t))
#: ``void (*)(void* userdata, const shoal_object_changes_t* changes)``
shoal_object_change_fn_t = CFUNCTYPE(None, c_void_p, POINTER(shoal_object_changes_t))
#: ``bool (*)(void* userdata, uint64_t total_bytes, uint64_t used_bytes)``
shoal_should_compact_fn_t = CFUNCTYPE(c_bool, c_void_p, c_uint64, c_uint64)
#: ``void (*)(void* userdata, shoal_user_t* user, const shoal_error_t* error)``: the user is a
#: new handle (or NULL), the error is valid during the call only (or NULL).
shoal_login_fn_t = CFUNCTYPE(None, c_void_p, c_void_p, POINTER(shoal_error_t))
#: ``void (*)(void* userdata, const shoal_error_t* error)``: NULL on success.
shoal_completion_fn_t = CFUNCTYPE(None, c_void_p, POINTER(shoal_error_t))
#: ``void (*)(void* userdata, shoal_user_t* user, int32_t event)``: the user is valid during the
#: call only; the event is a ``SHOAL_AUTH_*``.
shoal_auth_fn_t = CFUNCTYPE(None, c_void_p, c_void_p, c_int32)
#: ``void (*)(void* userdata, shoal_session_t* session, const shoal_sync_error_t* error)``: both
#: valid during the call only.
shoal_sync_error_fn_t = CFUNCTYPE(None, c_void_p, c_void_p, POINTER(shoal_sync_error_t))
#: ``void (*)(void* userdata, shoal_session_t* session, const char* server_path)``: both valid
#: during the call only; answer with ``shoal_session_bind_token``.
shoal_token_binder_fn_t = CFUNCTYPE(None, c_void_p, c_void_p, c_char_p)
#: ``void (*)(void* userdata, int32_t old_state, int32_t new_state)`` (``SHOAL_SESSION_*``).
shoal_session_state_fn_t = CFUNCTYPE(None, c_void_p, c_int32, c_int32)
#: ``void (*)(void* userdata, int32_t old_state, int32_t new_state)`` (``SHOAL_CONNECTION_*``).
shoal_connection_state_fn_t = CFUNCTYPE(None, c_void_p, c_int32, c_int32)
#: ``void (*)(void* userdata, uint64_t transferred, uint64_t transferable)``
shoal_progress_fn_t = CFUNCTYPE(None, c_void_p, c_uint64, c_uint64)
#: ``void (*)(void* userdata, int level, const char* category, const char* message)``
shoal_log_fn_t = CFUNCTYPE(None, c_void_p, c_int, c_char_p, c_char_p)
#: ``void (*)(void* userdata)``: a scheduler has work waiting (called on a library thread).
shoal_scheduler_notify_fn_t = CFUNCTYPE(None, c_void_p)
#: ``bool (*)(void* userdata, shoal_realm_t* realm)``: an asynchronous write's body; the realm is
#: valid during the call only.
shoal_write_fn_t = CFUNCTYPE(c_bool, c_void_p, c_void_p)
#: ``void (*)(void* userdata, const shoal_error_t* error, uint64_t version)``: NULL on success.
shoal_write_completion_fn_t = CFUNCTYPE(None, c_void_p, POINTER(shoal_error_t), c_uint64)
#: ``void (*)(void* userdata, shoal_realm_t* realm, const shoal_error_t* error)``: the realm is a
#: new handle (or NULL), the error is valid during the call only (or NULL).
shoal_open_fn_t = CFUNCTYPE(None, c_void_p, c_void_p, POINTER(shoal_error_t))
#: ``void (*)(void* userdata, const char* json, const shoal_error_t* error)``: both valid during
#: the call only; both NULL when there is no such user.
shoal_lookup_fn_t = CFUNCTYPE(None, c_void_p, c_char_p, POINTER(shoal_error_t))

# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------

_handle = c_void_p  # every opaque shoal_*_t*
_value_p = POINTER(shoal_value_t)

#: name -> (restype, argtypes), one entry per function of the header.
FUNCTIONS: dict[str, tuple[object, list[object]]] = {
    # schema
    "shoal_schema_new": (_handle, []),
    "shoal_schema_add_class": (c_bool, [_handle, c_char_p, c_char_p]),
    "shoal_schema_add_property": (c_bool, [_handle, c_char_p, c_char_p, c_int32, c_uint32, c_char_p]),
    "shoal_schema_from_json": (_handle, [c_char_p]),
    "shoal_schema_to_json": (c_void_p, [_handle]),
    # config
    "shoal_config_new": (_handle, [c_char_p]),
    "shoal_config_get_path": (c_void_p, [_handle]),
    "shoal_config_set_schema": (c_bool, [_handle, _handle]),
    "shoal_config_set_schema_version": (c_bool, [_handle, c_uint64]),
    "shoal_config_set_in_memory": (c_bool, [_handle, c_bool]),
    "shoal_config_set_read_only": (c_bool, [_handle, c_bool]),
    "shoal_config_set_delete_if_migration_needed": (c_bool, [_handle, c_bool]),
    "shoal_config_set_initial_data": (
        c_bool,
        [_handle, shoal_initial_data_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_config_set_migration": (
        c_bool,
        [_handle, shoal_migration_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_config_set_encryption_key": (c_bool, [_handle, POINTER(c_uint8), c_size_t]),
    "shoal_config_set_should_compact": (
        c_bool,
        [_handle, shoal_should_compact_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    # general
    "shoal_release": (c_bool, [c_void_p]),
    "shoal_clone": (c_void_p, [c_void_p]),
    "shoal_free": (None, [c_void_p]),
    "shoal_value_free": (None, [_value_p]),
    "shoal_get_last_error": (c_bool, [POINTER(shoal_error_t)]),
    "shoal_clear_last_error": (None, []),
    "shoal_error_name": (c_char_p, [c_int32]),
    "shoal_libversion": (c_char_p, []),
    "shoal_set_log_level": (c_bool, [c_int]),
    "shoal_set_log_callback": (c_bool, [shoal_log_fn_t, c_void_p, shoal_free_userdata_fn_t]),
    "shoal_libversion_number": (c_int32, []),
    # objects
    "shoal_object_create": (_handle, [_handle, c_char_p, _value_p]),
    "shoal_object_find": (_handle, [_handle, c_char_p, _value_p]),
    "shoal_object_get": (c_bool, [_handle, c_char_p, _value_p]),
    "shoal_object_set": (c_bool, [_handle, c_char_p, _value_p]),
    "shoal_object_get_by_key": (c_bool, [_handle, shoal_property_key_t, _value_p]),
    "shoal_object_set_by_key": (c_bool, [_handle, shoal_property_key_t, _value_p]),
    "shoal_object_add_int": (c_bool, [_handle, c_char_p, c_int64]),
    "shoal_object_delete": (c_bool, [_handle]),
    "shoal_object_is_valid": (c_bool, [_handle]),
    "shoal_object_key": (c_bool, [_handle, POINTER(c_uint64)]),
    "shoal_object_class_name": (c_void_p, [_handle]),
    "shoal_object_as_link": (c_bool, [_handle, _value_p]),
    "shoal_object_get_linked": (_handle, [_handle, c_char_p]),
    "shoal_object_from_link": (_handle, [_handle, _value_p]),
    "shoal_object_get_list": (_handle, [_handle, c_char_p]),
    # lists
    "shoal_list_size": (c_int64, [_handle]),
    "shoal_list_get": (c_bool, [_handle, c_size_t, _value_p]),
    "shoal_list_insert": (c_bool, [_handle, c_size_t, _value_p]),
    "shoal_list_set": (c_bool, [_handle, c_size_t, _value_p]),
    "shoal_list_erase": (c_bool, [_handle, c_size_t]),
    "shoal_list_move": (c_bool, [_handle, c_size_t, c_size_t]),
    "shoal_list_clear": (c_bool, [_handle]),
    # realms
    "shoal_realm_open": (_handle, [_handle]),
    "shoal_delete_realm_files": (c_bool, [_handle]),
    "shoal_realm_close": (c_bool, [_handle]),
    "shoal_realm_is_closed": (c_bool, [_handle]),
    "shoal_realm_begin_write": (c_bool, [_handle]),
    "shoal_realm_commit": (c_bool, [_handle]),
    "shoal_realm_cancel_write": (c_bool, [_handle]),
    "shoal_realm_is_in_transaction": (c_bool, [_handle]),
    "shoal_realm_refresh": (c_bool, [_handle, POINTER(c_bool)]),
    "shoal_realm_compact": (c_bool, [_handle]),
    "shoal_realm_is_empty": (c_bool, [_handle, POINTER(c_bool)]),
    "shoal_realm_get_schema_version": (c_bool, [_handle, POINTER(c_uint64)]),
    "shoal_realm_version": (c_bool, [_handle, POINTER(c_uint64)]),
    "shoal_realm_get_schema_json": (c_void_p, [_handle]),
    "shoal_realm_dump_json": (c_void_p, [_handle]),
    "shoal_realm_add_change_callback": (
        _handle,
        [_handle, shoal_change_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_realm_property_key": (c_bool, [_handle, c_char_p, c_char_p, POINTER(shoal_property_key_t)]),
    # schedulers
    "shoal_scheduler_new": (_handle, [shoal_scheduler_notify_fn_t, c_void_p, shoal_free_userdata_fn_t]),
    "shoal_scheduler_perform_work": (c_bool, [_handle, POINTER(c_size_t)]),
    "shoal_config_set_scheduler": (c_bool, [_handle, _handle]),
    # fine-grained notifications
    "shoal_results_observe": (
        _handle,
        [_handle, shoal_collection_change_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_list_observe": (
        _handle,
        [_handle, shoal_collection_change_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_object_observe": (
        _handle,
        [_handle, shoal_object_change_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    # async work
    "shoal_realm_write_async": (
        c_bool,
        [_handle, shoal_write_fn_t, shoal_write_completion_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_realm_open_async": (_handle, [_handle, shoal_open_fn_t, c_void_p, shoal_free_userdata_fn_t]),
    "shoal_async_open_task_cancel": (c_bool, [_handle, POINTER(c_bool)]),
    # queries and results
    "shoal_realm_query": (_handle, [_handle, c_char_p, c_char_p, _value_p, c_size_t]),
    "shoal_realm_objects": (_handle, [_handle, c_char_p]),
    "shoal_results_count": (c_int64, [_handle]),
    "shoal_results_get": (_handle, [_handle, c_size_t]),
    "shoal_results_sort": (_handle, [_handle, c_char_p, c_bool]),
    "shoal_results_sort_by": (_handle, [_handle, POINTER(c_char_p), POINTER(c_bool), c_size_t]),
    "shoal_results_distinct": (_handle, [_handle, c_char_p]),
    "shoal_results_min": (c_bool, [_handle, c_char_p, _value_p]),
    "shoal_results_max": (c_bool, [_handle, c_char_p, _value_p]),
    "shoal_results_sum": (c_bool, [_handle, c_char_p, _value_p]),
    "shoal_results_average": (c_bool, [_handle, c_char_p, _value_p]),
    "shoal_results_delete_all": (c_int64, [_handle]),
    # app, credentials and users
    "shoal_app_new": (_handle, [c_char_p, c_char_p]),
    "shoal_app_new_with_trusted_ca": (_handle, [c_char_p, c_char_p, c_char_p]),
    "shoal_credentials_password": (_handle, [c_char_p, c_char_p, c_bool]),
    "shoal_credentials_custom": (_handle, [c_char_p, c_char_p, c_char_p]),
    "shoal_credentials_debug": (_handle, [c_char_p]),
    "shoal_credentials_access_token": (_handle, [c_char_p, c_char_p]),
    "shoal_app_login": (_handle, [_handle, _handle, c_char_p]),
    "shoal_app_login_async": (
        c_bool,
        [_handle, _handle, c_char_p, shoal_login_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_app_current_user": (_handle, [_handle]),
    "shoal_app_all_users": (c_int64, [_handle, POINTER(c_void_p), c_size_t]),
    "shoal_app_get_user": (_handle, [_handle, c_char_p]),
    "shoal_app_user_from_json": (_handle, [_handle, c_char_p]),
    "shoal_user_identity": (c_void_p, [_handle]),
    "shoal_user_is_valid": (c_bool, [_handle]),
    "shoal_user_is_admin": (c_bool, [_handle]),
    "shoal_user_auth_url": (c_void_p, [_handle]),
    "shoal_user_refresh_token": (c_void_p, [_handle]),
    "shoal_user_to_json": (c_void_p, [_handle]),
    "shoal_user_logout": (c_bool, [_handle]),
    "shoal_user_change_password": (c_bool, [_handle, c_char_p, c_char_p]),
    "shoal_user_change_password_async": (
        c_bool,
        [_handle, c_char_p, c_char_p, shoal_completion_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_user_lookup": (c_void_p, [_handle, c_char_p, c_char_p]),
    "shoal_user_lookup_async": (
        c_bool,
        [_handle, c_char_p, c_char_p, _handle, shoal_lookup_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_app_add_auth_callback": (
        _handle,
        [_handle, shoal_auth_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_app_pending_revocations": (c_bool, [_handle, POINTER(c_uint64)]),
    # sync configurations
    "shoal_sync_config_new": (_handle, [_handle, c_char_p]),
    "shoal_sync_config_set_error_handler": (
        c_bool,
        [_handle, shoal_sync_error_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_sync_config_set_stop_policy": (c_bool, [_handle, c_int32]),
    "shoal_sync_config_set_wait_for_initial_data": (c_bool, [_handle, c_bool, c_uint64]),
    "shoal_sync_config_set_token_binder": (
        c_bool,
        [_handle, shoal_token_binder_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_sync_config_set_name": (c_bool, [_handle, c_char_p]),
    "shoal_sync_config_set_directory": (c_bool, [_handle, c_char_p]),
    "shoal_sync_config_directory": (c_void_p, [_handle]),
    "shoal_set_default_sync_error_handler": (
        c_bool,
        [shoal_sync_error_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_sync_config_path": (c_void_p, [_handle]),
    "shoal_sync_config_server_url": (c_void_p, [_handle]),
    "shoal_sync_config_server_path": (c_void_p, [_handle]),
    "shoal_config_set_sync": (c_bool, [_handle, _handle]),
    "shoal_config_for_recovery": (_handle, [c_char_p, POINTER(c_uint8), c_size_t, _handle]),
    "shoal_config_is_read_only": (c_bool, [_handle]),
    "shoal_config_schema_version": (c_bool, [_handle, POINTER(c_uint64)]),
    "shoal_config_schema": (_handle, [_handle]),
    "shoal_config_encryption_key": (c_int64, [_handle, POINTER(c_uint8), c_size_t]),
    # sessions
    "shoal_realm_get_session": (_handle, [_handle]),
    "shoal_app_get_session": (_handle, [_handle, _handle]),
    "shoal_session_state": (c_int32, [_handle]),
    "shoal_session_connection_state": (c_int32, [_handle]),
    "shoal_session_add_state_callback": (
        _handle,
        [_handle, shoal_session_state_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_session_add_connection_callback": (
        _handle,
        [_handle, shoal_connection_state_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_session_add_progress_callback": (
        _handle,
        [_handle, c_int32, c_int32, shoal_progress_fn_t, c_void_p, shoal_free_userdata_fn_t],
    ),
    "shoal_session_wait_for_upload": (c_bool, [_handle, c_uint64]),
    "shoal_session_wait_for_download": (c_bool, [_handle, c_uint64]),
    "shoal_session_pause": (c_bool, [_handle]),
    "shoal_session_resume": (c_bool, [_handle]),
    "shoal_session_bind_token": (c_bool, [_handle, c_char_p]),
    "shoal_session_path": (c_void_p, [_handle]),
    "shoal_session_server_url": (c_void_p, [_handle]),
    "shoal_session_user": (_handle, [_handle]),
    "shoal_user_all_sessions": (c_int64, [_handle, POINTER(c_void_p), c_size_t]),
    # client reset
    "shoal_app_execute_client_reset": (c_void_p, [_handle, c_char_p]),
    "shoal_app_stop_sync": (c_bool, [_handle, c_uint64]),
    "shoal_user_access_token": (c_void_p, [_handle, c_char_p]),
    "shoal_user_open_management_realm": (_handle, [_handle]),
    "shoal_user_granted_permissions_json": (c_void_p, [_handle]),
}

#: Functions that newer libraries have and older ones may lack; declared when present.
OPTIONAL_FUNCTIONS: dict[str, tuple[object, list[object]]] = {}


def _declare(table: dict[str, tuple[object, list[object]]], required: bool) -> None:
    for name, (restype, argtypes) in table.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            if required:
                raise ImportError(f"{LIBRARY_PATH} lacks {name}: rebuild it with `cargo build`") from None
            continue
        fn.restype = restype
        fn.argtypes = argtypes


_declare(FUNCTIONS, required=True)
_declare(OPTIONAL_FUNCTIONS, required=False)


def has_function(name: str) -> bool:
    """Whether the loaded library exports ``name``."""
    return hasattr(lib, name)


def take_string(ptr: int | None) -> str | None:
    """Copies a string returned by Shoal (documented "free with shoal_free") and frees it."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8", errors="replace")
    finally:
        lib.shoal_free(ptr)

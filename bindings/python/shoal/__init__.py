"""Shoal for Python: an embedded object database (a re-creation of Realm), through its C ABI.

Pure Python (ctypes) over the Shoal library, which a wheel (``pip install ./bindings/python``)
carries inside the package; otherwise it is looked for on the loader's path, through
``SHOAL_LIBRARY`` and in the repository's ``target/`` (see :mod:`shoal._ffi`).

>>> import shoal, tempfile, os
>>> schema = (shoal.Schema()
...           .add_class("Person", primary_key="id")
...           .add_property("Person", "id", "int")
...           .add_property("Person", "name", "string"))
>>> path = os.path.join(tempfile.mkdtemp(), "people.realm")
>>> with shoal.Realm.open(shoal.Config(path, schema=schema)) as realm:
...     with realm.write():
...         _ = realm.create("Person", 1, name="Ann")
...     realm.find("Person", 1)["name"]
'Ann'
"""

from __future__ import annotations

from . import _ffi, aio, log, management
from ._core import Float32, Timestamp, Token
from .app import App, AuthEvent, Credentials, User
from .config import Config, delete_realm_files
from .errors import *  # noqa: F403 - the exception hierarchy is part of the API
from .errors import __all__ as _errors_all
from .observe import ChangeStream, CollectionChanges, ObjectChange
from .realm import AsyncOpenTask, List, Object, PropertyValue, Realm, Results, Value
from .schema import ClassInfo, PropertyFlag, PropertyInfo, PropertyType, Schema
from .sync import (
    ConnectionState,
    ProgressDirection,
    ProgressMode,
    Session,
    SessionState,
    StopPolicy,
    SyncConfig,
    SyncError,
    set_default_sync_error_handler,
)

__version__ = "0.1.0"

#: The version string of the loaded library.
LIBRARY_VERSION: str = _ffi.lib.shoal_libversion().decode()
#: The path of the loaded library.
LIBRARY_PATH = _ffi.LIBRARY_PATH

__all__ = [
    "Config",
    "Realm",
    "Schema",
    "Object",
    "List",
    "Results",
    "CollectionChanges",
    "ObjectChange",
    "ChangeStream",
    "Token",
    "AsyncOpenTask",
    "Value",
    "PropertyValue",
    "PropertyType",
    "PropertyFlag",
    "PropertyInfo",
    "ClassInfo",
    "Float32",
    "Timestamp",
    "delete_realm_files",
    "App",
    "AuthEvent",
    "Credentials",
    "User",
    "SyncConfig",
    "SyncError",
    "Session",
    "SessionState",
    "ConnectionState",
    "StopPolicy",
    "ProgressDirection",
    "ProgressMode",
    "set_default_sync_error_handler",
    "LIBRARY_VERSION",
    "LIBRARY_PATH",
    *_errors_all,
]

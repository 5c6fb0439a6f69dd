"""Realm configurations (``shoal_config_*``) and the initial-data and migration callbacks;
synced configurations (:meth:`Config.set_sync`) and recovery configurations
(:meth:`Config.for_recovery`)."""

from __future__ import annotations

import ctypes
import json
import os
import weakref
from typing import Any, Callable

from . import _ffi
from ._core import (
    FREE_USERDATA,
    Handle,
    call,
    call_bool,
    call_count,
    call_ptr,
    call_string,
    check_kind,
    file_id,
    handle_class,
    log,
    note_callback_exception,
    register,
    registered,
)
from ._ffi import lib
from .schema import Schema
from .sync import SyncConfig

# `Realm` in annotations names shoal.realm.Realm, a module above this one (it imports this
# module); annotations are never evaluated (`from __future__ import annotations`).

__all__ = ["Config", "delete_realm_files"]

InitialDataFn = Callable[["Realm"], Any]
MigrationFn = Callable[["Realm", int, int], Any]


def _callback_realm(realm_ptr: int, file: tuple[bool, str] | None):
    """A Realm wrapper for the temporary handle a callback receives: a clone, so objects and
    the realm itself may be kept after the call. (Realm is defined above this module.)"""
    realm_class = handle_class("realm")
    return realm_class(call_ptr(lib.shoal_clone, realm_ptr), _file_id=file)


@_ffi.shoal_initial_data_fn_t
def INITIAL_DATA(userdata, realm_ptr):  # noqa: N802 - a C function pointer
    try:
        entry = registered(userdata)
        if entry is None:
            return False
        fn, config = entry
        return fn(_callback_realm(realm_ptr, config._file_id())) is not False
    except BaseException as e:  # never unwind into Rust
        log.exception("the initial-data callback raised")
        note_callback_exception(e)
        return False


@_ffi.shoal_migration_fn_t
def MIGRATION(userdata, realm_ptr, old_version, new_version):  # noqa: N802
    try:
        entry = registered(userdata)
        if entry is None:
            return False
        fn, config = entry
        return fn(_callback_realm(realm_ptr, config._file_id()), old_version, new_version) is not False
    except BaseException as e:
        log.exception("the migration callback raised")
        note_callback_exception(e)
        return False


@_ffi.shoal_should_compact_fn_t
def SHOULD_COMPACT(userdata, total_bytes, used_bytes):  # noqa: N802
    try:
        fn = registered(userdata)
        return bool(fn(total_bytes, used_bytes)) if fn is not None else False
    except BaseException:
        log.exception("the should-compact callback raised")
        return False


def _path_bytes(path: "str | os.PathLike[str]") -> bytes:
    p = os.fspath(path)
    if isinstance(p, bytes):
        return p
    return p.encode("utf-8")


def _as_schema(schema: "Schema | str | dict[str, Any] | None") -> Schema | None:
    if schema is None or isinstance(schema, Schema):
        return schema
    return Schema.from_json(schema if isinstance(schema, str) else json.dumps(schema))


def _check_sync_config(sync_config: Any) -> None:
    if not isinstance(sync_config, SyncConfig):
        raise TypeError(f"expected a shoal.SyncConfig, got {type(sync_config).__name__}")


class _ConfigRef:
    """What a callback registration keeps of its config: a weak reference (the library holds
    the registration and the config holds the library's handle, so a strong one would be a
    cycle that is never collected)."""

    __slots__ = ("_ref",)

    def __init__(self, config: "Config") -> None:
        self._ref = weakref.ref(config)

    def _file_id(self) -> tuple[bool, str] | None:
        config = self._ref()
        return config._file_id() if config is not None else None


class Config(Handle):
    """How to open a realm.

    ``schema`` is a :class:`Schema`, its JSON text or the same as a dict (None: use the
    file's). ``initial_data(realm)`` runs once, in the transaction that creates the file;
    ``migration(realm, old_version, new_version)`` runs when the file's schema version is lower.
    Either may return False (or raise) to make the open fail. ``encryption_key`` is 64 bytes;
    ``should_compact(total_bytes, used_bytes)`` decides at open whether to compact the file
    (an exception counts as False).

    ``sync`` (a :class:`~shoal.SyncConfig`) makes it a synced realm's configuration, as
    :meth:`set_sync` does; ``path`` may then be left out (the file is the sync
    configuration's).
    """

    _kind = "config"

    def __init__(
        self,
        path: "str | os.PathLike[str] | None" = None,
        schema: "Schema | str | dict[str, Any] | None" = None,
        schema_version: int = 0,
        in_memory: bool = False,
        read_only: bool = False,
        delete_if_migration_needed: bool = False,
        initial_data: InitialDataFn | None = None,
        migration: MigrationFn | None = None,
        *,
        encryption_key: bytes | None = None,
        should_compact: Callable[[int, int], bool] | None = None,
        sync: "SyncConfig | None" = None,
    ) -> None:
        if sync is not None:
            _check_sync_config(sync)
        if path is None:
            if sync is None:
                raise TypeError("Config() needs a path (or sync=, whose file it then uses)")
            path = sync.path
        super().__init__(call_ptr(lib.shoal_config_new, _path_bytes(path)))
        self._init_fields(os.fsdecode(os.fspath(path)))
        if sync is not None:
            self.set_sync(sync)
        if schema is not None:
            self.schema = schema  # type: ignore[assignment]
        if schema_version:
            self.schema_version = schema_version
        if in_memory:
            self.in_memory = in_memory
        if read_only:
            self.read_only = read_only
        if delete_if_migration_needed:
            self.delete_if_migration_needed = delete_if_migration_needed
        if initial_data is not None:
            self.initial_data = initial_data
        if migration is not None:
            self.migration = migration
        if encryption_key is not None:
            self.encryption_key = encryption_key
        if should_compact is not None:
            self.should_compact = should_compact

    def _init_fields(self, path: str) -> None:
        self._path = path
        self._schema: Schema | None = None
        self._schema_version = 0
        self._in_memory = False
        self._read_only = False
        self._delete = False
        self._initial_data: InitialDataFn | None = None
        self._migration: MigrationFn | None = None
        self._encryption_key: bytes | None = None
        self._should_compact: Callable[[int, int], bool] | None = None
        self._sync: "SyncConfig | None" = None
        self._scheduler: Any = None

    @classmethod
    def for_recovery(
        cls,
        path: "str | os.PathLike[str]",
        key: bytes | None = None,
        schema: "Schema | str | dict[str, Any] | None" = None,
    ) -> "Config":
        """A configuration that opens the realm file at ``path`` read-only and unsynced: the
        backup :meth:`App.execute_client_reset <shoal.App.execute_client_reset>` moved aside
        (or any synced file). ``key`` is its 64-byte encryption key (None: not encrypted);
        ``schema`` None uses the file's own. Writes raise :class:`~shoal.ReadOnly`.
        :class:`~shoal.InvalidArgument` for an empty path or a key that is not 64 bytes."""
        schema_obj = _as_schema(schema)
        if key is None:
            buf, n = None, 0
        else:
            key = bytes(key)
            buf = (ctypes.c_uint8 * max(len(key), 1)).from_buffer_copy(key or b"\0")
            n = len(key)
        p = call_ptr(
            lib.shoal_config_for_recovery,
            _path_bytes(path),
            buf,
            n,
            schema_obj._h if schema_obj is not None else None,
        )
        config = cls.__new__(cls)
        Handle.__init__(config, p)
        config._init_fields(os.fsdecode(os.fspath(path)))
        config._schema = schema_obj
        config._read_only = True
        config._encryption_key = key
        return config

    @classmethod
    def _adopt(cls, ptr: int) -> "Config":
        """A Config for a config handle made by the library (a client reset's backup
        configuration): its fields are read back from the handle."""
        config = cls.__new__(cls)
        Handle.__init__(config, ptr)
        config._init_fields(call_string(lib.shoal_config_get_path, ptr))
        config._read_only = bool(call(lib.shoal_config_is_read_only, ptr))
        version = ctypes.c_uint64()
        call_bool(lib.shoal_config_schema_version, ptr, ctypes.byref(version))
        config._schema_version = version.value
        schema = call_ptr(lib.shoal_config_schema, ptr, allow_null=True)
        config._schema = Schema(schema) if schema else None
        key = (ctypes.c_uint8 * 64)()
        if call_count(lib.shoal_config_encryption_key, ptr, key, len(key)) == 64:
            config._encryption_key = bytes(key)
        return config

    @property
    def path(self) -> str:
        """The realm path, as the library holds it (for a synced configuration: the sync
        configuration's local file)."""
        return call_string(lib.shoal_config_get_path, self._h)

    # -- sync ---------------------------------------------------------------------------------

    def set_sync(self, sync_config: "SyncConfig") -> "Config":
        """Makes this a synced realm's configuration. The sync configuration is copied (later
        changes to ``sync_config`` do not reach this config); the path becomes its local file.
        Synced realms are additive-only (a schema with additions needs a higher schema
        version; nothing is removed; no migration callback runs), cannot be in memory and
        cannot be compacted. Returns the config."""
        _check_sync_config(sync_config)
        call_bool(lib.shoal_config_set_sync, self._h, sync_config._h)
        self._sync = sync_config
        self._path = self.path
        return self

    @property
    def sync(self) -> "SyncConfig | None":
        """The sync configuration given to :meth:`set_sync` (None for a local realm)."""
        return self._sync

    # -- where callbacks run --------------------------------------------------------------------

    def set_scheduler(self, scheduler: Any) -> "Config":
        """Delivers the change notifications and async completions of realms opened with this
        config on ``scheduler`` (a :class:`shoal.aio.Scheduler`, e.g. the
        :class:`~shoal.aio.AsyncioScheduler` of an event loop) instead of library threads.
        The config keeps the scheduler alive. Returns the config."""
        check_kind(scheduler, "scheduler", "shoal.aio.Scheduler")
        call_bool(lib.shoal_config_set_scheduler, self._h, scheduler._h)
        self._scheduler = scheduler
        return self

    @property
    def scheduler(self) -> Any:
        """The scheduler given to :meth:`set_scheduler` (None: library threads)."""
        return self._scheduler

    @property
    def schema(self) -> Schema | None:
        """The schema the realm is opened with (None: the file's own). Set it to a
        :class:`Schema`, its JSON text or the same as a dict."""
        return self._schema

    @schema.setter
    def schema(self, schema: "Schema | str | dict[str, Any] | None") -> None:
        if schema is None:
            call_bool(lib.shoal_config_set_schema, self._h, None)
            self._schema = None
            return
        schema = _as_schema(schema)
        call_bool(lib.shoal_config_set_schema, self._h, schema._h)
        self._schema = schema

    @property
    def schema_version(self) -> int:
        """The schema version to open with (default 0); an unsigned 64-bit number. A file
        with a lower version runs :attr:`migration`."""
        return self._schema_version

    @schema_version.setter
    def schema_version(self, version: int) -> None:
        if not 0 <= version < 2**64:
            raise ValueError("the schema version is an unsigned 64-bit number")
        call_bool(lib.shoal_config_set_schema_version, self._h, version)
        self._schema_version = version

    @property
    def in_memory(self) -> bool:
        """Whether the realm lives in memory only (default False); the path names it."""
        return self._in_memory

    @in_memory.setter
    def in_memory(self, value: bool) -> None:
        call_bool(lib.shoal_config_set_in_memory, self._h, bool(value))
        self._in_memory = bool(value)

    @property
    def read_only(self) -> bool:
        """Whether the realm is opened read-only (default False)."""
        return self._read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        call_bool(lib.shoal_config_set_read_only, self._h, bool(value))
        self._read_only = bool(value)

    @property
    def delete_if_migration_needed(self) -> bool:
        """Whether a file that needs a migration is deleted and created anew instead
        (default False)."""
        return self._delete

    @delete_if_migration_needed.setter
    def delete_if_migration_needed(self, value: bool) -> None:
        call_bool(lib.shoal_config_set_delete_if_migration_needed, self._h, bool(value))
        self._delete = bool(value)

    @property
    def initial_data(self) -> InitialDataFn | None:
        """Called as ``fn(realm)`` once, in the transaction that creates the file (None:
        nothing); returning False or raising makes the open fail."""
        return self._initial_data

    @initial_data.setter
    def initial_data(self, fn: InitialDataFn | None) -> None:
        if fn is None:
            call_bool(lib.shoal_config_set_initial_data, self._h, _ffi.shoal_initial_data_fn_t(), None, _ffi.shoal_free_userdata_fn_t())
        else:
            if not callable(fn):
                raise TypeError("initial_data must be callable")
            # On failure the library runs FREE_USERDATA, which drops the registration.
            call_bool(lib.shoal_config_set_initial_data, self._h, INITIAL_DATA, register((fn, _ConfigRef(self))), FREE_USERDATA)
        self._initial_data = fn

    @property
    def migration(self) -> MigrationFn | None:
        """Called as ``fn(realm, old_version, new_version)`` when the file's schema version
        is lower than :attr:`schema_version` (None: nothing); returning False or raising makes
        the open fail."""
        return self._migration

    @migration.setter
    def migration(self, fn: MigrationFn | None) -> None:
        if fn is None:
            call_bool(lib.shoal_config_set_migration, self._h, _ffi.shoal_migration_fn_t(), None, _ffi.shoal_free_userdata_fn_t())
        else:
            if not callable(fn):
                raise TypeError("migration must be callable")
            call_bool(lib.shoal_config_set_migration, self._h, MIGRATION, register((fn, _ConfigRef(self))), FREE_USERDATA)
        self._migration = fn

    @property
    def encryption_key(self) -> bytes | None:
        """The 64-byte key of an encrypted realm (None: not encrypted)."""
        return self._encryption_key

    @encryption_key.setter
    def encryption_key(self, key: bytes | None) -> None:
        if key is None:
            call_bool(lib.shoal_config_set_encryption_key, self._h, None, 0)
        else:
            key = bytes(key)
            buf = (ctypes.c_uint8 * max(len(key), 1)).from_buffer_copy(key or b"\0")
            call_bool(lib.shoal_config_set_encryption_key, self._h, buf, len(key))
        self._encryption_key = key

    @property
    def should_compact(self) -> Callable[[int, int], bool] | None:
        """Called as ``fn(total_bytes, used_bytes)`` at open; True compacts the file (an
        exception counts as False). None: never."""
        return self._should_compact

    @should_compact.setter
    def should_compact(self, fn: Callable[[int, int], bool] | None) -> None:
        if fn is None:
            call_bool(lib.shoal_config_set_should_compact, self._h, _ffi.shoal_should_compact_fn_t(), None, _ffi.shoal_free_userdata_fn_t())
        else:
            if not callable(fn):
                raise TypeError("should_compact must be callable")
            call_bool(lib.shoal_config_set_should_compact, self._h, SHOULD_COMPACT, register(fn), FREE_USERDATA)
        self._should_compact = fn

    def _file_id(self) -> tuple[bool, str]:
        return file_id(self._path, self._in_memory)

    def delete_realm_files(self) -> None:
        """Deletes the realm file (:class:`~shoal.RealmInUse` while it is open in this
        process; a missing file is not an error)."""
        call_bool(lib.shoal_delete_realm_files, self._h)

    def __repr__(self) -> str:
        if self.released:
            return "<shoal.Config (released)>"
        synced = f" synced with {self._sync.server_url!r}" if self._sync is not None and not self._sync.released else ""
        return f"<shoal.Config path={self.path!r} schema_version={self._schema_version}{synced}>"


def delete_realm_files(config: "Config | str | os.PathLike[str]") -> None:
    """Deletes the realm file of ``config`` (or of a path)."""
    if isinstance(config, Config):
        config.delete_realm_files()
    else:
        with Config(config) as c:
            c.delete_realm_files()

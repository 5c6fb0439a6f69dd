"""Schemas: a builder over ``shoal_schema_*`` and the JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import _ffi
from ._core import Handle, NamedIntEnum, NamedIntFlag, call_bool, call_ptr, call_string
from ._ffi import lib


class PropertyType(NamedIntEnum):
    """``SHOAL_PROPERTY_TYPE_*``."""

    BOOL = _ffi.SHOAL_PROPERTY_TYPE_BOOL
    INT = _ffi.SHOAL_PROPERTY_TYPE_INT
    FLOAT = _ffi.SHOAL_PROPERTY_TYPE_FLOAT
    DOUBLE = _ffi.SHOAL_PROPERTY_TYPE_DOUBLE
    STRING = _ffi.SHOAL_PROPERTY_TYPE_STRING
    BINARY = _ffi.SHOAL_PROPERTY_TYPE_BINARY
    TIMESTAMP = _ffi.SHOAL_PROPERTY_TYPE_TIMESTAMP
    LINK = _ffi.SHOAL_PROPERTY_TYPE_LINK

    @classmethod
    def parse(cls, t: "PropertyType | str | int") -> "PropertyType":
        """Accepts a member, its number, or its JSON name (``"int"``, ``"link"``, ...)."""
        if isinstance(t, str):
            try:
                return cls[t.upper()]
            except KeyError:
                raise ValueError(f"unknown property type {t!r}") from None
        return cls(t)


class PropertyFlag(NamedIntFlag):
    """``SHOAL_PROPERTY_*`` flags."""

    NONE = 0
    NULLABLE = _ffi.SHOAL_PROPERTY_NULLABLE
    INDEXED = _ffi.SHOAL_PROPERTY_INDEXED
    LIST = _ffi.SHOAL_PROPERTY_LIST


@dataclass(frozen=True)
class PropertyInfo:
    """One property as described by a schema's JSON."""

    name: str
    type: PropertyType
    nullable: bool = False
    indexed: bool = False
    is_list: bool = False
    target: str | None = None


@dataclass
class ClassInfo:
    """One class as described by a schema's JSON."""

    name: str
    primary_key: str | None
    properties: dict[str, PropertyInfo] = field(default_factory=dict)


def parse_schema_json(text: str) -> dict[str, ClassInfo]:
    """Class name -> :class:`ClassInfo` from the JSON of ``shoal_schema_to_json``."""
    out: dict[str, ClassInfo] = {}
    for c in json.loads(text).get("classes", []):
        info = ClassInfo(c["name"], c.get("primary_key"))
        for p in c.get("properties", []):
            info.properties[p["name"]] = PropertyInfo(
                p["name"],
                PropertyType.parse(p["type"]),
                bool(p.get("nullable")),
                bool(p.get("indexed")),
                bool(p.get("list")),
                p.get("target"),
            )
        out[info.name] = info
    return out


class Schema(Handle):
    """A schema under construction.

    >>> s = Schema().add_class("Person", primary_key="id")
    >>> s = s.add_property("Person", "id", "int").add_property("Person", "name", "string", nullable=True)
    """

    _kind = "schema"

    def __init__(self, _ptr: int | None = None) -> None:
        super().__init__(_ptr or call_ptr(lib.shoal_schema_new))

    @classmethod
    def from_json(cls, text: "str | bytes | dict[str, Any]") -> "Schema":
        """Parses the JSON form (a string, or the same as a dict)."""
        if isinstance(text, dict):
            text = json.dumps(text)
        if isinstance(text, str):
            text = text.encode("utf-8")
        return cls(call_ptr(lib.shoal_schema_from_json, text))

    def to_json(self) -> str:
        """The JSON form (what :meth:`from_json` reads)."""
        return call_string(lib.shoal_schema_to_json, self._h)

    def to_dict(self) -> dict[str, Any]:
        """The schema as a dict: :meth:`to_json`, parsed."""
        return json.loads(self.to_json())

    def classes(self) -> dict[str, ClassInfo]:
        """The schema's classes, by name."""
        return parse_schema_json(self.to_json())

    def add_class(self, name: str, primary_key: str | None = None) -> "Schema":
        """Adds a class; ``primary_key`` names its INT or STRING primary-key property (added
        with :meth:`add_property`). Returns the schema, for chaining."""
        call_bool(
            lib.shoal_schema_add_class,
            self._h,
            name.encode("utf-8"),
            primary_key.encode("utf-8") if primary_key is not None else None,
        )
        return self

    def add_property(
        self,
        class_name: str,
        name: str,
        type: "PropertyType | str | int",  # noqa: A002 - the natural name
        *,
        nullable: bool = False,
        indexed: bool = False,
        list: bool = False,  # noqa: A002
        target: str | None = None,
        flags: int = 0,
    ) -> "Schema":
        """Adds a property (``target`` is the class a LINK points to). Returns the schema."""
        f = int(flags)
        if nullable:
            f |= PropertyFlag.NULLABLE
        if indexed:
            f |= PropertyFlag.INDEXED
        if list:
            f |= PropertyFlag.LIST
        kind = int(PropertyType.parse(type)) if not isinstance(type, int) else int(type)
        call_bool(
            lib.shoal_schema_add_property,
            self._h,
            class_name.encode("utf-8"),
            name.encode("utf-8"),
            kind,
            f,
            target.encode("utf-8") if target is not None else None,
        )
        return self

    def __repr__(self) -> str:
        if self.released:
            return "<shoal.Schema (released)>"
        return f"<shoal.Schema classes={sorted(self.classes())}>"

"""Sharing realms between users: the management realm (``/~/__management``) and the objects
written into it.

A user shares a realm by writing a ``PermissionOffer`` into its management realm; the server
answers in the same object (``statusCode`` 0 and a ``token``, or an error code with
``statusMessage``). Another user accepts with a ``PermissionOfferResponse`` carrying the token
in *its* management realm; the server grants the access and fills in ``realmUrl``. A
``PermissionChange`` sets access directly (``"*"`` for every realm or every user).

>>> realm = open_management_realm(user)              # doctest: +SKIP
>>> with realm.write():                              # doctest: +SKIP
...     offer = create_offer(realm, "/~/tasks", read=True, write=True)
"""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from ._core import Timestamp, call_ptr
from ._ffi import lib
from .app import User
from .realm import Object, Realm
from .sync import _track_synced_realm

#: The classes of the management realm.
MANAGEMENT_CLASSES = ("PermissionOffer", "PermissionOfferResponse", "PermissionChange")


def open_management_realm(user: User) -> Realm:
    """Opens (creating if needed) ``user``'s management realm: the synced realm at
    ``/~/__management`` on the sync server beside the user's auth server (``realm://`` for an
    ``http`` auth URL, ``realms://`` for ``https``), with the classes in
    :data:`MANAGEMENT_CLASSES`. Its sync errors are logged."""
    realm = Realm(call_ptr(lib.shoal_user_open_management_realm, user._h), _sync_user=user)
    _track_synced_realm(realm)
    return realm


def _base(realm: Realm, cls: str) -> Object:
    now = Timestamp.from_datetime(_dt.datetime.now(_dt.timezone.utc))
    return realm.create(cls, str(uuid.uuid4()), createdAt=now, updatedAt=now)


def create_offer(
    realm: Realm,
    realm_url: str,
    *,
    read: bool = True,
    write: bool = False,
    manage: bool = False,
    expires_at: Any = None,
) -> Object:
    """Creates a ``PermissionOffer`` (inside a write transaction of the management realm):
    ``realm_url`` (a ``realm://`` URL or a path, ``~`` for the offering user) with these access
    levels, until ``expires_at`` (a :class:`Timestamp` or timezone-aware ``datetime``; ``None``:
    never). The server sets ``token`` and ``statusCode``."""
    if not realm_url:
        raise ValueError("the realm URL must not be empty")
    offer = _base(realm, "PermissionOffer")
    offer["realmUrl"] = realm_url
    offer["mayRead"] = read
    offer["mayWrite"] = write
    offer["mayManage"] = manage
    offer["expiresAt"] = expires_at
    return offer


def create_offer_response(realm: Realm, token: str) -> Object:
    """Creates a ``PermissionOfferResponse`` accepting the offer with ``token`` (inside a write
    transaction of the responding user's management realm). The server grants the access and
    sets ``realmUrl`` and ``statusCode``."""
    if not token:
        raise ValueError("the token must not be empty")
    response = _base(realm, "PermissionOfferResponse")
    response["token"] = token
    return response


def create_permission_change(
    realm: Realm,
    realm_url: str,
    user_id: str,
    *,
    read: bool | None = None,
    write: bool | None = None,
    manage: bool | None = None,
) -> Object:
    """Creates a ``PermissionChange`` (inside a write transaction of the management realm):
    sets the access of ``user_id`` (``"*"``: every user) to ``realm_url`` (``"*"``: every realm
    the writer manages); ``None`` keeps a level as it is."""
    if not realm_url or not user_id:
        raise ValueError("the realm URL and the user id must not be empty")
    change = _base(realm, "PermissionChange")
    change["realmUrl"] = realm_url
    change["userId"] = user_id
    change["mayRead"] = read
    change["mayWrite"] = write
    change["mayManage"] = manage
    return change


__all__ = [
    "MANAGEMENT_CLASSES",
    "open_management_realm",
    "create_offer",
    "create_offer_response",
    "create_permission_change",
]

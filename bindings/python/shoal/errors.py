"""Exceptions raised from the calling thread's last Shoal error.

Every failing Shoal call raises a subclass of :class:`ShoalError` chosen by the error code (the
``SHOAL_ERR_*`` constants of ``shoal.h``). Some subclasses also derive from the matching
built-in exception, so ``except IndexError`` / ``except TypeError`` work as a Python user
expects: :class:`IndexOutOfBounds` is an ``IndexError``, :class:`WrongType` a ``TypeError``,
:class:`InvalidArgument` a ``ValueError``, :class:`NoSuchProperty` a ``KeyError``.

The auth server's refusals (codes 601–616 and 801) and the permission codes of management
realms (701–703) derive from :class:`AuthError`; an HTTP status the server answered without a Realm
code is an :class:`HttpError` whose ``code`` is the status itself (300–599; 300 alone when the
status was not in that range).

The sync protocol's codes (100–116 for the connection, 110–116 being the client's own;
200–213 for a session; category ``SYNC``) derive from :class:`SyncProtocolError`: a wait on a session that stopped for good
raises the session's error, e.g. :class:`BadAuthentication` (203). :class:`Timeout` (a wait
that did not finish in time) is also a ``TimeoutError``. (The errors a session's error handler
receives are :class:`shoal.SyncError` values, not exceptions; their ``exception()`` gives the
matching exception.)
"""

from __future__ import annotations

import ctypes

from . import _ffi

__all__ = [
    "ShoalError",
    "UnknownError",
    "IoError",
    "JsonError",
    "ClientReset",
    "InvalidArgument",
    "WrongType",
    "NotInWriteTransaction",
    "AlreadyInWriteTransaction",
    "RealmClosed",
    "ObjectDeleted",
    "NoSuchClass",
    "NoSuchProperty",
    "DuplicatePrimaryKey",
    "MigrationNeeded",
    "SchemaVersionLower",
    "SchemaChangedWithoutVersionBump",
    "ReadOnly",
    "FileNotFound",
    "FilePermissionDenied",
    "IncompatibleFile",
    "DecryptionFailed",
    "FormatUpgradeRequired",
    "FileInUse",
    "InvalidQuery",
    "Misuse",
    "Internal",
    "IndexOutOfBounds",
    "NotSupported",
    "CallbackFailed",
    "RealmInUse",
    "MultipleUsersLoggedIn",
    "Timeout",
    "AuthError",
    "InvalidParameters",
    "MissingParameters",
    "InvalidCredentials",
    "UnknownAccount",
    "ExistingAccount",
    "AccessDenied",
    "ExpiredRefreshToken",
    "ExpiredPermissionOffer",
    "AmbiguousPermissionOfferToken",
    "FileMayNotBeShared",
    "InvalidHost",
    "ServerMisconfiguration",
    "HttpError",
    "SyncProtocolError",
    "ConnectionClosed",
    "OtherError",
    "UnknownMessage",
    "BadSyntax",
    "LimitsExceeded",
    "WrongProtocolVersion",
    "BadSessionIdent",
    "ReuseOfSessionIdent",
    "BoundInOtherSession",
    "BadMessageOrder",
    "BadOriginFileIdent",
    "BadServerVersionDownload",
    "BadChangesetDownload",
    "BadRequestIdent",
    "BadErrorCode",
    "BadCompression",
    "BadClientVersionDownload",
    "SessionClosed",
    "OtherSessionError",
    "TokenExpired",
    "BadAuthentication",
    "IllegalRealmPath",
    "NoSuchPath",
    "PermissionDenied",
    "BadServerFileIdent",
    "BadClientFileIdent",
    "BadServerVersion",
    "BadClientVersion",
    "DivergingHistories",
    "BadChangeset",
    "DisabledSession",
    "ERROR_CLASSES",
    "error_for",
    "error_from_c",
    "last_error",
    "raise_last_error",
]


class ShoalError(Exception):
    """A Shoal error: ``code`` (a ``SHOAL_ERR_*`` number), ``category`` (a
    ``SHOAL_ERR_CATEGORY_*`` number), ``message`` and the ``path`` of the file concerned (or
    None)."""

    #: The ``SHOAL_ERR_*`` code this class stands for (None for the base class).
    code_constant: int | None = None

    def __init__(self, code: int, category: int, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.category = category
        self.message = message
        self.path = path

    @property
    def name(self) -> str:
        """The code's constant name without its prefix, e.g. ``"NO_SUCH_CLASS"``."""
        return _NAMES.get(self.code, "UNKNOWN")

    def __str__(self) -> str:
        s = f"{self.message} [{self.name}]"
        if self.path:
            s += f" (path: {self.path})"
        return s

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, category={self.category}, message={self.message!r}, path={self.path!r})"

    def __reduce__(self) -> tuple[type[ShoalError], tuple[int, int, str, str | None]]:
        return (type(self), (self.code, self.category, self.message, self.path))


class UnknownError(ShoalError):
    """An error without a more specific code (``SHOAL_ERR_UNKNOWN``)."""

    code_constant = _ffi.SHOAL_ERR_UNKNOWN


class IoError(ShoalError):
    """An I/O or network error (``SHOAL_ERR_IO``); usually recoverable by retrying."""

    code_constant = _ffi.SHOAL_ERR_IO


class JsonError(ShoalError, ValueError):
    """Malformed JSON handed to the library (``SHOAL_ERR_JSON``)."""

    code_constant = _ffi.SHOAL_ERR_JSON


class ClientReset(ShoalError):
    """The synced realm must be reset from the server (``SHOAL_ERR_CLIENT_RESET``)."""

    code_constant = _ffi.SHOAL_ERR_CLIENT_RESET


class InvalidArgument(ShoalError, ValueError):
    """An argument is invalid (empty name, out-of-range number, bad UTF-8, ...)
    (``SHOAL_ERR_INVALID_ARGUMENT``)."""

    code_constant = _ffi.SHOAL_ERR_INVALID_ARGUMENT


class WrongType(ShoalError, TypeError):
    """A value of the wrong type for a property or operation (``SHOAL_ERR_WRONG_TYPE``)."""

    code_constant = _ffi.SHOAL_ERR_WRONG_TYPE


class NotInWriteTransaction(ShoalError):
    """The operation needs a write transaction and none is open
    (``SHOAL_ERR_NOT_IN_WRITE_TRANSACTION``)."""

    code_constant = _ffi.SHOAL_ERR_NOT_IN_WRITE_TRANSACTION


class AlreadyInWriteTransaction(ShoalError):
    """A write transaction is already open on this realm handle
    (``SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION``)."""

    code_constant = _ffi.SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION


class RealmClosed(ShoalError):
    """The realm handle was closed (``SHOAL_ERR_REALM_CLOSED``)."""

    code_constant = _ffi.SHOAL_ERR_REALM_CLOSED


class ObjectDeleted(ShoalError):
    """The object was deleted (or belongs to a snapshot where it does not exist)
    (``SHOAL_ERR_OBJECT_DELETED``)."""

    code_constant = _ffi.SHOAL_ERR_OBJECT_DELETED


class NoSuchClass(ShoalError):
    """No class of that name exists in the schema (``SHOAL_ERR_NO_SUCH_CLASS``)."""

    code_constant = _ffi.SHOAL_ERR_NO_SUCH_CLASS


class NoSuchProperty(ShoalError, KeyError):
    """No property of that name exists in the class (``SHOAL_ERR_NO_SUCH_PROPERTY``)."""

    code_constant = _ffi.SHOAL_ERR_NO_SUCH_PROPERTY

    # KeyError.__str__ would print the repr of the message.
    __str__ = ShoalError.__str__


class DuplicatePrimaryKey(ShoalError):
    """An object with that primary key already exists (``SHOAL_ERR_DUPLICATE_PRIMARY_KEY``)."""

    code_constant = _ffi.SHOAL_ERR_DUPLICATE_PRIMARY_KEY


class MigrationNeeded(ShoalError):
    """The file's schema differs from the configuration's and no migration was provided
    (``SHOAL_ERR_MIGRATION_NEEDED``)."""

    code_constant = _ffi.SHOAL_ERR_MIGRATION_NEEDED


class SchemaVersionLower(ShoalError):
    """The configured schema version is lower than the file's
    (``SHOAL_ERR_SCHEMA_VERSION_LOWER``)."""

    code_constant = _ffi.SHOAL_ERR_SCHEMA_VERSION_LOWER


class SchemaChangedWithoutVersionBump(ShoalError):
    """The schema changed but the schema version was not raised
    (``SHOAL_ERR_SCHEMA_CHANGED_WITHOUT_VERSION_BUMP``)."""

    code_constant = _ffi.SHOAL_ERR_SCHEMA_CHANGED_WITHOUT_VERSION_BUMP


class ReadOnly(ShoalError):
    """A write on a read-only realm (``SHOAL_ERR_READ_ONLY``)."""

    code_constant = _ffi.SHOAL_ERR_READ_ONLY


class FileNotFound(ShoalError):
    """The realm file does not exist (``SHOAL_ERR_FILE_NOT_FOUND``)."""

    code_constant = _ffi.SHOAL_ERR_FILE_NOT_FOUND


class FilePermissionDenied(ShoalError):
    """The file system refused access (``SHOAL_ERR_FILE_PERMISSION_DENIED``)."""

    code_constant = _ffi.SHOAL_ERR_FILE_PERMISSION_DENIED


class IncompatibleFile(ShoalError):
    """The file is not a Shoal realm or is corrupt (``SHOAL_ERR_INCOMPATIBLE_FILE``)."""

    code_constant = _ffi.SHOAL_ERR_INCOMPATIBLE_FILE


class DecryptionFailed(ShoalError):
    """The encryption key is wrong, missing, or the file was tampered with
    (``SHOAL_ERR_DECRYPTION_FAILED``)."""

    code_constant = _ffi.SHOAL_ERR_DECRYPTION_FAILED


class FormatUpgradeRequired(ShoalError):
    """The file was written by an older format and must be upgraded
    (``SHOAL_ERR_FORMAT_UPGRADE_REQUIRED``)."""

    code_constant = _ffi.SHOAL_ERR_FORMAT_UPGRADE_REQUIRED


class FileInUse(ShoalError):
    """Another process has the realm file open (``SHOAL_ERR_FILE_IN_USE``)."""

    code_constant = _ffi.SHOAL_ERR_FILE_IN_USE


class InvalidQuery(ShoalError, ValueError):
    """The query string could not be parsed or does not fit the schema
    (``SHOAL_ERR_INVALID_QUERY``)."""

    code_constant = _ffi.SHOAL_ERR_INVALID_QUERY


class Misuse(ShoalError):
    """A NULL or released handle, or another misuse of the API (``SHOAL_ERR_MISUSE``)."""

    code_constant = _ffi.SHOAL_ERR_MISUSE


class Internal(ShoalError):
    """An internal error (a bug); reported instead of a crash (``SHOAL_ERR_INTERNAL``)."""

    code_constant = _ffi.SHOAL_ERR_INTERNAL


class IndexOutOfBounds(ShoalError, IndexError):
    """An index is past the end of a list or results (``SHOAL_ERR_INDEX_OUT_OF_BOUNDS``)."""

    code_constant = _ffi.SHOAL_ERR_INDEX_OUT_OF_BOUNDS


class NotSupported(ShoalError):
    """The operation is not supported for this kind of realm (``SHOAL_ERR_NOT_SUPPORTED``)."""

    code_constant = _ffi.SHOAL_ERR_NOT_SUPPORTED


class CallbackFailed(ShoalError):
    """A user callback (migration, initial data) reported failure
    (``SHOAL_ERR_CALLBACK_FAILED``)."""

    code_constant = _ffi.SHOAL_ERR_CALLBACK_FAILED


class RealmInUse(ShoalError):
    """The realm is open and the operation needs it closed (``SHOAL_ERR_REALM_IN_USE``)."""

    code_constant = _ffi.SHOAL_ERR_REALM_IN_USE


class MultipleUsersLoggedIn(ShoalError):
    """The current user was asked for while more than one user is logged in."""

    code_constant = _ffi.SHOAL_ERR_MULTIPLE_USERS_LOGGED_IN


class Timeout(ShoalError, TimeoutError):
    """A wait (for upload, download or initial data) did not finish in time (also while the
    session is paused or offline)."""

    code_constant = _ffi.SHOAL_ERR_TIMEOUT


class AuthError(ShoalError):
    """The auth server refused a request (codes 601–616 and 801, category ``AUTH``), or a
    permission request of a management realm was refused (701–703)."""


class InvalidParameters(AuthError):
    """Auth: a parameter of the request is malformed (the server's `601`)
    (``SHOAL_ERR_INVALID_PARAMETERS``)."""

    code_constant = _ffi.SHOAL_ERR_INVALID_PARAMETERS


class MissingParameters(AuthError):
    """Auth: a required parameter is missing (the server's `602`)
    (``SHOAL_ERR_MISSING_PARAMETERS``)."""

    code_constant = _ffi.SHOAL_ERR_MISSING_PARAMETERS


class InvalidCredentials(AuthError):
    """Unknown user, wrong password, or a token the server did not issue."""

    code_constant = _ffi.SHOAL_ERR_INVALID_CREDENTIALS


class UnknownAccount(AuthError):
    """Auth: the account or user does not exist (`612`) (``SHOAL_ERR_UNKNOWN_ACCOUNT``)."""

    code_constant = _ffi.SHOAL_ERR_UNKNOWN_ACCOUNT


class ExistingAccount(AuthError):
    """The account to register exists already."""

    code_constant = _ffi.SHOAL_ERR_EXISTING_ACCOUNT


class AccessDenied(AuthError):
    """Auth: the user may not do this, e.g. a non-admin looking up users (`614`)
    (``SHOAL_ERR_ACCESS_DENIED``)."""

    code_constant = _ffi.SHOAL_ERR_ACCESS_DENIED


class ExpiredRefreshToken(AuthError):
    """The refresh token is expired or revoked, or the user is logged out."""

    code_constant = _ffi.SHOAL_ERR_EXPIRED_REFRESH_TOKEN


class ExpiredPermissionOffer(AuthError):
    """A management realm's permission offer has expired (701)."""

    code_constant = _ffi.SHOAL_ERR_EXPIRED_PERMISSION_OFFER


class AmbiguousPermissionOfferToken(AuthError):
    """A permission offer token matches more than one offer (702)."""

    code_constant = _ffi.SHOAL_ERR_AMBIGUOUS_PERMISSION_OFFER_TOKEN


class FileMayNotBeShared(AuthError):
    """The realm may not be shared, or its permissions changed, by this user (703)."""

    code_constant = _ffi.SHOAL_ERR_FILE_MAY_NOT_BE_SHARED


class InvalidHost(AuthError):
    """Auth: the host the request was sent to is not one the server accepts (616; the Realm
    Object Server's, never sent by ``shoal-server``)."""

    code_constant = _ffi.SHOAL_ERR_INVALID_HOST


class ServerMisconfiguration(AuthError):
    """The server is misconfigured (801; the Realm Object Server's, never sent by
    ``shoal-server``)."""

    code_constant = _ffi.SHOAL_ERR_SERVER_MISCONFIGURATION


class HttpError(ShoalError):
    """The auth server answered with an HTTP error status that has no Realm code. ``code`` is
    the status itself (e.g. 404, 502); 300 stands for the family when the status was outside
    300–599."""

    code_constant = _ffi.SHOAL_ERR_HTTP

    @property
    def name(self) -> str:
        """``"HTTP"``: the family, whatever the status."""
        return "HTTP"

    @property
    def status(self) -> int:
        """The HTTP status (the raw ``code``)."""
        return self.code


class SyncProtocolError(ShoalError):
    """A sync session or connection error: ``code`` is the protocol's own (100–116 for the
    connection, 200–213 for a session), category ``SYNC``."""


class ConnectionClosed(SyncProtocolError):
    """Connection 100: the connection was closed; not an error."""

    code_constant = _ffi.SHOAL_ERR_CONNECTION_CLOSED


class OtherError(SyncProtocolError):
    """Connection 101: any other connection-level error."""

    code_constant = _ffi.SHOAL_ERR_OTHER_ERROR


class UnknownMessage(SyncProtocolError):
    """Connection 102: an unknown message type, or one sent the wrong way."""

    code_constant = _ffi.SHOAL_ERR_UNKNOWN_MESSAGE


class BadSyntax(SyncProtocolError):
    """Connection 103: a message that does not follow the encoding."""

    code_constant = _ffi.SHOAL_ERR_BAD_SYNTAX


class LimitsExceeded(SyncProtocolError):
    """Connection 104: a message, field or count beyond its limit."""

    code_constant = _ffi.SHOAL_ERR_LIMITS_EXCEEDED


class WrongProtocolVersion(SyncProtocolError):
    """Connection 105: a message of another protocol version."""

    code_constant = _ffi.SHOAL_ERR_WRONG_PROTOCOL_VERSION


class BadSessionIdent(SyncProtocolError):
    """Connection 106: a session ident that is 0 or not bound."""

    code_constant = _ffi.SHOAL_ERR_BAD_SESSION_IDENT


class ReuseOfSessionIdent(SyncProtocolError):
    """Connection 107: a BIND with a session ident used before on the connection."""

    code_constant = _ffi.SHOAL_ERR_REUSE_OF_SESSION_IDENT


class BoundInOtherSession(SyncProtocolError):
    """Connection 108: the client file is bound in another session."""

    code_constant = _ffi.SHOAL_ERR_BOUND_IN_OTHER_SESSION


class BadMessageOrder(SyncProtocolError):
    """Connection 109: a message that is not allowed at this point of the session."""

    code_constant = _ffi.SHOAL_ERR_BAD_MESSAGE_ORDER


class BadOriginFileIdent(SyncProtocolError):
    """Connection 110 (the client's): a bad origin file identifier in a downloaded changeset's
    header."""

    code_constant = _ffi.SHOAL_ERR_BAD_ORIGIN_FILE_IDENT


class BadServerVersionDownload(SyncProtocolError):
    """Connection 111 (the client's): a bad server version in a downloaded changeset's
    header."""

    code_constant = _ffi.SHOAL_ERR_BAD_SERVER_VERSION_DOWNLOAD


class BadChangesetDownload(SyncProtocolError):
    """Connection 112 (the client's): a downloaded changeset that does not decode or apply."""

    code_constant = _ffi.SHOAL_ERR_BAD_CHANGESET_DOWNLOAD


class BadRequestIdent(SyncProtocolError):
    """Connection 113 (the client's): a bad request identifier in a MARK."""

    code_constant = _ffi.SHOAL_ERR_BAD_REQUEST_IDENT


class BadErrorCode(SyncProtocolError):
    """Connection 114 (the client's): a bad error code in an ERROR."""

    code_constant = _ffi.SHOAL_ERR_BAD_ERROR_CODE


class BadCompression(SyncProtocolError):
    """Connection 115 (the client's): a bad compression in a DOWNLOAD."""

    code_constant = _ffi.SHOAL_ERR_BAD_COMPRESSION


class BadClientVersionDownload(SyncProtocolError):
    """Connection 116 (the client's): a bad last integrated client version in a downloaded
    changeset's header."""

    code_constant = _ffi.SHOAL_ERR_BAD_CLIENT_VERSION_DOWNLOAD


class SessionClosed(SyncProtocolError):
    """Session 200: the session was closed; not an error. 200 is also the number of the whole
    family (``SHOAL_ERR_SYNC``), so its ``name`` is ``"SYNC"``."""

    code_constant = _ffi.SHOAL_ERR_SESSION_CLOSED


class OtherSessionError(SyncProtocolError):
    """Session 201: any other session-level error."""

    code_constant = _ffi.SHOAL_ERR_OTHER_SESSION_ERROR


class TokenExpired(SyncProtocolError):
    """Session 202: the access token expired; the session gets a new one."""

    code_constant = _ffi.SHOAL_ERR_TOKEN_EXPIRED


class BadAuthentication(SyncProtocolError):
    """Session 203: the access token is not valid (not a token, or not signed by this
    server)."""

    code_constant = _ffi.SHOAL_ERR_BAD_AUTHENTICATION


class IllegalRealmPath(SyncProtocolError):
    """Session 204: the path is not a valid realm path."""

    code_constant = _ffi.SHOAL_ERR_ILLEGAL_REALM_PATH


class NoSuchPath(SyncProtocolError):
    """Session 205: no realm exists at the path."""

    code_constant = _ffi.SHOAL_ERR_NO_SUCH_PATH


class PermissionDenied(SyncProtocolError):
    """Session 206: the access token does not grant access to the path."""

    code_constant = _ffi.SHOAL_ERR_PERMISSION_DENIED


class BadServerFileIdent(SyncProtocolError):
    """Session 207 (client reset): the server file ident is wrong."""

    code_constant = _ffi.SHOAL_ERR_BAD_SERVER_FILE_IDENT


class BadClientFileIdent(SyncProtocolError):
    """Session 208 (client reset): the client file ident or its salt is wrong."""

    code_constant = _ffi.SHOAL_ERR_BAD_CLIENT_FILE_IDENT


class BadServerVersion(SyncProtocolError):
    """Session 209 (client reset): the client has a server version the server never had."""

    code_constant = _ffi.SHOAL_ERR_BAD_SERVER_VERSION


class BadClientVersion(SyncProtocolError):
    """Session 210: a client version out of order."""

    code_constant = _ffi.SHOAL_ERR_BAD_CLIENT_VERSION


class DivergingHistories(SyncProtocolError):
    """Session 211 (client reset): the client's and the server's histories diverge."""

    code_constant = _ffi.SHOAL_ERR_DIVERGING_HISTORIES


class BadChangeset(SyncProtocolError):
    """Session 212: a changeset that does not decode or apply."""

    code_constant = _ffi.SHOAL_ERR_BAD_CHANGESET


class DisabledSession(SyncProtocolError):
    """Session 213: the session has been disabled."""

    code_constant = _ffi.SHOAL_ERR_DISABLED_SESSION


#: code -> exception class, mirroring the ``SHOAL_ERR_*`` constants of the header.
ERROR_CLASSES: dict[int, type[ShoalError]] = {
    cls.code_constant: cls  # type: ignore[misc]
    for cls in (
        UnknownError,
        IoError,
        JsonError,
        ClientReset,
        InvalidArgument,
        WrongType,
        NotInWriteTransaction,
        AlreadyInWriteTransaction,
        RealmClosed,
        ObjectDeleted,
        NoSuchClass,
        NoSuchProperty,
        DuplicatePrimaryKey,
        MigrationNeeded,
        SchemaVersionLower,
        SchemaChangedWithoutVersionBump,
        ReadOnly,
        FileNotFound,
        FilePermissionDenied,
        IncompatibleFile,
        DecryptionFailed,
        FormatUpgradeRequired,
        FileInUse,
        InvalidQuery,
        Misuse,
        Internal,
        IndexOutOfBounds,
        NotSupported,
        CallbackFailed,
        RealmInUse,
        MultipleUsersLoggedIn,
        Timeout,
        InvalidParameters,
        MissingParameters,
        InvalidCredentials,
        UnknownAccount,
        ExistingAccount,
        AccessDenied,
        ExpiredRefreshToken,
        ExpiredPermissionOffer,
        AmbiguousPermissionOfferToken,
        FileMayNotBeShared,
        InvalidHost,
        ServerMisconfiguration,
        HttpError,
        ConnectionClosed,
        OtherError,
        UnknownMessage,
        BadSyntax,
        LimitsExceeded,
        WrongProtocolVersion,
        BadSessionIdent,
        ReuseOfSessionIdent,
        BoundInOtherSession,
        BadMessageOrder,
        BadOriginFileIdent,
        BadServerVersionDownload,
        BadChangesetDownload,
        BadRequestIdent,
        BadErrorCode,
        BadCompression,
        BadClientVersionDownload,
        SessionClosed,
        OtherSessionError,
        TokenExpired,
        BadAuthentication,
        IllegalRealmPath,
        NoSuchPath,
        PermissionDenied,
        BadServerFileIdent,
        BadClientFileIdent,
        BadServerVersion,
        BadClientVersion,
        DivergingHistories,
        BadChangeset,
        DisabledSession,
    )
}

#: The raw codes of :class:`HttpError`: HTTP statuses pass through as themselves.
HTTP_STATUSES = range(300, 600)

#: code -> constant name without the ``SHOAL_ERR_`` prefix.
_NAMES: dict[int, str] = {
    value: name[len("SHOAL_ERR_") :]
    for name, value in vars(_ffi).items()
    if name.startswith("SHOAL_ERR_") and not name.startswith("SHOAL_ERR_CATEGORY_")
}
# 200 is both SESSION_CLOSED and the family SYNC; the library names it "SYNC".
_NAMES[_ffi.SHOAL_ERR_SYNC] = "SYNC"


def error_for(code: int, category: int, message: str, path: str | None = None) -> ShoalError:
    """The exception for an error code: its class in :data:`ERROR_CLASSES`, :class:`HttpError`
    for any other HTTP status (300–599), :class:`SyncProtocolError` for another code of category
    ``SYNC``, else the base class (codes of newer libraries)."""
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        if code in HTTP_STATUSES:
            cls = HttpError
        elif category == _ffi.SHOAL_ERR_CATEGORY_SYNC:
            cls = SyncProtocolError
        else:
            cls = ShoalError
    return cls(code, category, message, path)


def last_error() -> ShoalError | None:
    """The calling thread's last Shoal error as an exception, or None if the last call
    succeeded. Must be read right after the failing call, before any other Shoal call."""
    err = _ffi.shoal_error_t()
    if not _ffi.lib.shoal_get_last_error(ctypes.byref(err)):
        return None
    return error_from_c(err)


def error_from_c(err: "_ffi.shoal_error_t") -> ShoalError:
    """The exception for a ``shoal_error_t`` (the last error, or one a callback received),
    copied out of the struct so it outlives the struct's strings."""
    message = err.message.decode("utf-8", errors="replace") if err.message else ""
    path = err.path.decode("utf-8", errors="replace") if err.path else None
    return error_for(err.code, err.category, message, path)


def raise_last_error(what: str = "the call") -> None:
    """Raises the calling thread's last error (``Internal`` if, against the contract, the
    failing call left none)."""
    e = last_error()
    if e is None:
        e = Internal(
            _ffi.SHOAL_ERR_INTERNAL,
            _ffi.SHOAL_ERR_CATEGORY_INTERNAL,
            f"{what} failed without reporting an error",
        )
    raise e

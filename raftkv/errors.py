"""The errors raftkv shows its users, and their one mapping to and from gRPC status codes.

Rules this module keeps:
- Every error a client sees is a :class:`RaftKVError`; each subclass names what the caller may
  conclude about a write: :class:`Unavailable` means it was definitely NOT applied (safe to retry or
  give up); :class:`Timeout` means the outcome is unknown (it may or may not have been applied).
- The mapping between error classes and gRPC status codes lives here, once, keyed by the status
  code's *name* (``"UNAVAILABLE"``), so this module imports nothing but the standard library and any
  layer (server interceptors, client, CLI) may use it.
- Programmer errors (a key of the wrong type) are ``TypeError``, not a RaftKVError.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

__all__ = [
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Overloaded",
    "PermissionDenied",
    "RaftKVError",
    "ServerError",
    "Timeout",
    "Unavailable",
    "error_for_status",
    "status_name_for",
]


class RaftKVError(Exception):
    """Base class of every error raftkv reports to a user.

    ``status`` is the gRPC status code name this error travels as.
    """

    status: ClassVar[str] = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unavailable(RaftKVError):
    """Nothing reachable, or no leader: the request was definitely not applied."""

    status = "UNAVAILABLE"


class Overloaded(Unavailable):
    """The cluster refused the request for lack of capacity; it was not applied. Retry later."""

    status = "RESOURCE_EXHAUSTED"


class Timeout(RaftKVError):
    """The deadline passed without a definite answer: a write may or may not have been applied."""

    status = "DEADLINE_EXCEEDED"


class InvalidArgument(RaftKVError):
    """The request is malformed or over a limit (the message names the limit); never retried."""

    status = "INVALID_ARGUMENT"


class NotFound(RaftKVError):
    """The named thing (a node id, for example) does not exist. A missing *key* is not an error."""

    status = "NOT_FOUND"


class FailedPrecondition(RaftKVError):
    """The cluster is not in a state that allows the request (e.g. a leadership transfer)."""

    status = "FAILED_PRECONDITION"


class PermissionDenied(RaftKVError):
    """The caller is not authenticated or not allowed to make the request."""

    status = "PERMISSION_DENIED"


class ServerError(RaftKVError):
    """The server failed in an unexpected way (a bug, or a status raftkv does not use)."""

    status = "INTERNAL"


class _HasName(Protocol):
    @property
    def name(self) -> str: ...


# Status code name -> error class. Codes not listed become ServerError.
_BY_STATUS: dict[str, type[RaftKVError]] = {
    "UNAVAILABLE": Unavailable,
    "RESOURCE_EXHAUSTED": Overloaded,
    "DEADLINE_EXCEEDED": Timeout,
    # A cancelled call may have been applied before it was cancelled: its outcome is unknown.
    "CANCELLED": Timeout,
    "ABORTED": Timeout,
    "INVALID_ARGUMENT": InvalidArgument,
    "OUT_OF_RANGE": InvalidArgument,
    "NOT_FOUND": NotFound,
    "FAILED_PRECONDITION": FailedPrecondition,
    "PERMISSION_DENIED": PermissionDenied,
    "UNAUTHENTICATED": PermissionDenied,
}


def error_for_status(code: str | _HasName, details: str | None) -> RaftKVError:
    """The error to raise for a gRPC status (a ``grpc.StatusCode`` or its name) and its details."""
    name = code if isinstance(code, str) else code.name
    cls = _BY_STATUS.get(name, ServerError)
    message = details or name.lower().replace("_", " ")
    return cls(message)


def status_name_for(error: RaftKVError) -> str:
    """The gRPC status code name a server should answer with for ``error``."""
    return error.status

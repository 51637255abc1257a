"""Every error a client can get from this server, and its gRPC status: the one mapping.

Rules: a message says what happened and what to do; a status says whether a write may have been
applied (UNAVAILABLE / RESOURCE_EXHAUSTED / INVALID_ARGUMENT / FAILED_PRECONDITION: it was not;
DEADLINE_EXCEEDED / UNKNOWN: it may have been), matching :mod:`raftkv.errors` on the client side.
"""

from __future__ import annotations

import grpc

from raftkv.node import errors as node_errors


class RequestError(Exception):
    """A request this server refuses; carries its status code."""

    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(RequestError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Unavailable(RequestError):
    code = grpc.StatusCode.UNAVAILABLE


class Overloaded(RequestError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(RequestError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class NotFound(RequestError):
    code = grpc.StatusCode.NOT_FOUND


class OutcomeUnknown(RequestError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status and message for any exception a servicer lets escape."""
    match exc:
        case RequestError():
            return exc.code, str(exc)
        case node_errors.NotLeaderError():
            return grpc.StatusCode.UNAVAILABLE, (
                f"node {exc.leader_id} is the leader and could not be reached; retry"
            )
        case node_errors.NoLeader():
            return grpc.StatusCode.UNAVAILABLE, f"{exc}; retry shortly (the write was not applied)"
        case node_errors.Overloaded():
            return grpc.StatusCode.RESOURCE_EXHAUSTED, f"{exc}; retry with backoff"
        case node_errors.ProposalFailed():
            return grpc.StatusCode.UNAVAILABLE, f"{exc}; retry"
        case node_errors.ResultUnknown():
            return grpc.StatusCode.ABORTED, f"{exc}; check before retrying without a session"
        case node_errors.Stopped():
            return grpc.StatusCode.UNAVAILABLE, "the node is shutting down; use another node"
        case TimeoutError():
            return grpc.StatusCode.DEADLINE_EXCEEDED, (
                "the deadline passed before the outcome was known; a write may have been applied"
            )
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"

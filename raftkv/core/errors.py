"""Errors the core raises to its caller (local misuse or refusals), never for remote input.

Remote nonsense (a message from a stale term, a malformed index) is ignored or answered by
protocol means; only the caller's own requests raise.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class of every error raised by :mod:`raftkv.core`."""


class NotLeader(CoreError):
    """The request needs the leader and this node is not it (``leader_id`` 0 if unknown)."""

    def __init__(self, leader_id: int) -> None:
        super().__init__(
            f"not the leader (leader is node {leader_id})" if leader_id else "no leader known"
        )
        self.leader_id = leader_id


class ProposalDropped(CoreError):
    """The leader refuses proposals for now (a leadership transfer is in progress)."""


class ConfChangeRefused(CoreError):
    """A membership change cannot be made now or at all; the message says why."""

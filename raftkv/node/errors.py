"""What the driver tells its callers: each error says whether a write may have happened.

Definite failures (:class:`NotLeaderError`, :class:`NoLeader`, :class:`Overloaded`,
:class:`ProposalFailed`, :class:`Stopped` before proposing) mean the command was NOT applied;
:class:`ResultUnknown` means it may or may not have been. The server maps these to gRPC codes in
one place (:mod:`raftkv.server.errors`).
"""

from __future__ import annotations


class NodeError(Exception):
    """Base class of the driver's errors."""


class NotLeaderError(NodeError):
    """This node is not the leader; ``leader_id`` is the one it knows (never 0)."""

    def __init__(self, leader_id: int) -> None:
        super().__init__(f"node {leader_id} is the leader")
        self.leader_id = leader_id


class NoLeader(NodeError):
    """No leader is known right now (an election is under way or a quorum is down)."""

    def __init__(self, message: str = "no leader is known; an election may be in progress") -> None:
        super().__init__(message)


class Overloaded(NodeError):
    """A bounded queue is full; the request was refused before it reached Raft."""


class ProposalFailed(NodeError):
    """Another leader's entry took the proposal's log slot: it was definitely not applied."""


class ResultUnknown(NodeError):
    """The proposal may or may not have been applied (e.g. a snapshot replaced the log)."""


class Stopped(NodeError):
    """The node is shutting down."""

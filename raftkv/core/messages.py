"""Messages between Raft peers, as the core sees them: one frozen dataclass per kind.

The wire form lives in ``proto/raft.proto``; :mod:`raftkv.transport.codec` converts and validates.
Every message carries the sender, the receiver and the sender's term.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.core.types import Entry, Index, NodeId, SnapshotMeta, Term


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteRequest:
    from_id: NodeId
    to_id: NodeId
    term: Term
    """For a pre-vote: the term the candidate would campaign in (its own term + 1)."""
    last_log_index: Index
    last_log_term: Term
    pre_vote: bool = False
    transfer: bool = False
    """Set when a leadership transfer (TimeoutNow) started the election: voters skip the lease."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteResponse:
    from_id: NodeId
    to_id: NodeId
    term: Term
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendRequest:
    """Log entries after (prev_index, prev_term); empty ``entries`` is a heartbeat."""

    from_id: NodeId
    to_id: NodeId
    term: Term
    prev_index: Index
    prev_term: Term
    entries: tuple[Entry, ...]
    commit: Index
    seq: int
    """The leader's heartbeat round when sent; echoed back to confirm ReadIndex reads."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResponse:
    from_id: NodeId
    to_id: NodeId
    term: Term
    success: bool
    match_index: Index
    """On success the follower's log matches the leader's through this index; on reject the
    ``prev_index`` that did not match."""
    hint_index: Index = Index(0)
    """On reject: the largest index whose term is <= the request's prev_term (the leader can back
    up a whole term per round trip)."""
    hint_term: Term = Term(0)
    seq: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotRequest:
    """Install the state machine's state as of ``meta``. The state itself travels beside this
    message (the transport streams it); the core only sees its description."""

    from_id: NodeId
    to_id: NodeId
    term: Term
    meta: SnapshotMeta


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNow:
    """From the leader to a transfer target: campaign now, without waiting for a timeout."""

    from_id: NodeId
    to_id: NodeId
    term: Term


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadIndexRequest:
    """From a follower to the leader: confirm leadership and tell me the read index."""

    from_id: NodeId
    to_id: NodeId
    term: Term
    context: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadIndexResponse:
    from_id: NodeId
    to_id: NodeId
    term: Term
    context: int
    index: Index


Message = (
    VoteRequest
    | VoteResponse
    | AppendRequest
    | AppendResponse
    | SnapshotRequest
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
)

"""The core's output: one Ready batch of work, handed out by ``RaftNode.ready()``.

The driver MUST do the work in this order, then call ``RaftNode.advance(ready)``, and step no
input into the core between ``ready()`` and ``advance()``:

1. ``send_now``: may be sent at once, in parallel with step 2 (the leader's appends; Raft thesis
   section 10.2.1: a leader may replicate while it persists, it counts itself only afterwards).
2. persist: ``snapshot`` (install it, resetting the log to start after it), then ``entries``
   (entries[0].index may be <= the stored last index: delete the stored suffix from there first),
   then ``hard_state``, atomically, and durably (fsync) when ``must_sync`` says so. A change of
   the commit index alone need not be synced: after a crash it is learned again.
3. ``send_after_persist``: only now, because they promise what step 2 made durable (a vote, an
   append acknowledgement).
4. apply ``committed`` in order (they may include entries persisted in step 2).
5. serve ``reads`` once the applied index reaches each read's index; fail ``dropped_reads``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from raftkv.core.messages import Message
from raftkv.core.types import Entry, HardState, Index, NodeId, SnapshotMeta


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftState:
    """Volatile facts, for metrics and client redirection; never persisted."""

    role: Role
    leader_id: NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadState:
    """A linearizable read may be served once the applied index reaches ``index``."""

    context: int
    index: Index


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    soft_state: SoftState | None
    """Set when role or leader changed since the last Ready."""
    hard_state: HardState | None
    """Set when term, vote or commit changed; persist with ``entries`` in one atomic write."""
    snapshot: SnapshotMeta | None
    """A snapshot received from the leader, to install before ``entries``."""
    entries: tuple[Entry, ...]
    """New log entries to persist (after truncating any stored suffix they replace)."""
    send_now: tuple[Message, ...]
    """Messages that may leave before this batch is persisted."""
    send_after_persist: tuple[Message, ...]
    """Messages that must leave only after this batch is durably persisted."""
    committed: tuple[Entry, ...]
    """Entries to apply, in order; the first follows the previously applied index."""
    reads: tuple[ReadState, ...]
    dropped_reads: tuple[int, ...]
    """Contexts of reads this node can no longer confirm (it lost leadership or its leader)."""
    must_sync: bool = True
    """Whether step 2 must fsync: new entries, a snapshot, or a new term or vote."""

    def must_persist(self) -> bool:
        return bool(self.entries) or self.hard_state is not None or self.snapshot is not None

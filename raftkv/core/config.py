"""The core's configuration: every tick count, window and batch bound, validated in one place."""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.core.types import Index, NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    node_id: NodeId
    heartbeat_ticks: int = 5
    """Defaults assume a 10 ms tick: heartbeat every 50 ms."""
    election_ticks: int = 15
    """Election timeout is uniform in [election_ticks, 2 * election_ticks): 150-300 ms."""
    pre_vote: bool = True
    check_quorum: bool = True
    max_msg_bytes: int = 1 << 20
    """At most this many entry bytes per AppendRequest (one entry always fits)."""
    max_inflight_msgs: int = 4
    """Unacknowledged appends per follower. Small on purpose: while the window is full, new
    entries accumulate and leave together, and every message costs a Python gRPC node far more
    than its bytes do."""
    max_inflight_bytes: int = 64 << 20
    quorum_first: bool = True
    """New entries go at once only to as many followers as a commit needs (those furthest
    along). The others get them with the next heartbeat; at the next tick if entries from before
    the previous tick are still uncommitted (a slow or lost eager follower: a stall lasts at most
    two ticks); and, while they lack committed entries (under load, or catching up), as soon as
    they answer an earlier append. On a host with fewer cores than nodes, the extra follower's
    receive, fsync and answer compete with the commit path for CPU and for the disk: a lone
    write on a 3-node cluster on 2 cores measured about 0.5 ms faster (bench/PROFILE.md,
    section 8). A follower that stops answering falls behind the others and loses its place at
    the next tick. False: every follower at once, as etcd's raft does."""
    max_uncommitted_entries: int = 100_000
    """Proposals beyond this many uncommitted entries are refused (backpressure)."""
    max_committed_bytes_per_ready: int = 16 << 20
    snapshot_timeout_ticks: int = 3000
    """A follower in the snapshot state for this long without an answer is probed again: a
    backstop for a transport that failed to report the outcome with ``report_snapshot``."""
    applied: Index = Index(0)
    """The state machine's applied index at start-up: apply resumes after it."""

    def __post_init__(self) -> None:
        if self.node_id <= 0:
            raise ValueError("node_id must be a positive integer")
        if self.heartbeat_ticks < 1:
            raise ValueError("heartbeat_ticks must be >= 1")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("election_ticks must be greater than heartbeat_ticks")
        for name in (
            "max_msg_bytes",
            "max_inflight_msgs",
            "max_inflight_bytes",
            "max_uncommitted_entries",
            "max_committed_bytes_per_ready",
            "snapshot_timeout_ticks",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.applied < 0:
            raise ValueError("applied must be >= 0")

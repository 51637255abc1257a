"""The leader's view of one follower: how far it matches, and how to send it more.

A small state machine (after etcd-io/raft's tracker):
- PROBE: we do not know where the follower's log matches ours. Send one append at a time
  (``probe_sent`` pauses until an answer or a heartbeat response), backing up on rejects.
- REPLICATE: the follower matched; stream appends optimistically (``next_index`` runs ahead of
  ``match_index``), bounded by the in-flight window.
- SNAPSHOT: the follower is behind our log start; wait until the snapshot is acknowledged.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from raftkv.core.types import Index


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass(slots=True)
class Inflights:
    """Appends sent but not yet acknowledged: (last index in message, bytes), oldest first."""

    max_msgs: int
    max_bytes: int
    _queue: deque[tuple[int, int]] = field(default_factory=deque)
    _bytes: int = 0

    def add(self, last_index: int, size_bytes: int) -> None:
        self._queue.append((last_index, size_bytes))
        self._bytes += size_bytes

    def free_le(self, index: int) -> None:
        while self._queue and self._queue[0][0] <= index:
            _, size = self._queue.popleft()
            self._bytes -= size

    def free_first(self) -> None:
        if self._queue:
            _, size = self._queue.popleft()
            self._bytes -= size

    def reset(self) -> None:
        self._queue.clear()
        self._bytes = 0

    def full(self) -> bool:
        return len(self._queue) >= self.max_msgs or self._bytes >= self.max_bytes

    def __len__(self) -> int:
        return len(self._queue)


@dataclass(slots=True)
class Progress:
    match_index: Index
    next_index: Index
    inflights: Inflights
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    pending_snapshot: Index = Index(0)
    recent_active: bool = False
    """Heard from since the last CheckQuorum round."""
    ack_seq: int = 0
    """Highest heartbeat round this follower acknowledged in the current term (ReadIndex)."""
    ticks_since_contact: int = 0
    ticks_in_state: int = 0
    is_learner: bool = False
    commit_sent: Index = Index(0)
    """The highest commit index sent to this follower (to skip needless commit notices)."""
    sent_this_tick: bool = False
    """An append went to this follower since the last tick (its heartbeat is not needed)."""

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next_index = Index(max(self.match_index + 1, self.pending_snapshot + 1))
        else:
            self.next_index = Index(self.match_index + 1)
        self.state = ProgressState.PROBE
        self.ticks_in_state = 0
        self.probe_sent = False
        self.pending_snapshot = Index(0)
        self.inflights.reset()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.ticks_in_state = 0
        self.next_index = Index(self.match_index + 1)
        self.probe_sent = False
        self.pending_snapshot = Index(0)
        self.inflights.reset()

    def become_snapshot(self, index: Index) -> None:
        self.state = ProgressState.SNAPSHOT
        self.ticks_in_state = 0
        self.pending_snapshot = index
        self.probe_sent = False
        self.inflights.reset()

    def maybe_update(self, index: Index) -> bool:
        """The follower matches through ``index``; False if that is old news."""
        updated = False
        if index > self.match_index:
            self.match_index = index
            updated = True
            self.probe_sent = False
        if index + 1 > self.next_index:
            self.next_index = Index(index + 1)
        return updated

    def maybe_decrease_to(self, rejected: Index, hint: Index) -> bool:
        """A reject of ``rejected`` (the prev index we sent); back up to just after ``hint``."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match_index:
                return False  # stale: a reject of something already matched
            self.next_index = Index(self.match_index + 1)
            return True
        if self.next_index - 1 != rejected:
            return False  # stale: not the probe we are waiting on
        self.next_index = Index(max(min(rejected, hint + 1), self.match_index + 1, 1))
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def sent_entries(self, last_index: Index, size_bytes: int) -> None:
        """Book-keeping after sending an append that ends at ``last_index``."""
        if self.state == ProgressState.REPLICATE:
            self.next_index = Index(last_index + 1)
            self.inflights.add(last_index, size_bytes)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

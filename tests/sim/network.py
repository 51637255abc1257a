"""The simulated network: per-message delay, loss, duplication and reordering; any partition.

Rules:
- every random choice comes from the ``random.Random`` handed in (the run's one seed);
- a message is checked against the link both when sent and when due (a partition that forms
  while it is in flight drops it, as a real cut would);
- reordering is a consequence of independent random delays; ``in_flight`` is a heap ordered by
  (due tick, send sequence) so equal delays keep send order and runs are reproducible.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from raftkv.core.messages import Message

Payload = tuple[object, ...] | None
"""What travels beside a message: for a SnapshotRequest, the sender's applied sequence."""


@dataclass(slots=True)
class Faults:
    """Network-wide fault rates; ``max_delay_ticks`` > ``min_delay_ticks`` reorders."""

    loss: float = 0.0
    duplicate: float = 0.0
    min_delay_ticks: int = 0
    max_delay_ticks: int = 1


@dataclass(order=True, slots=True)
class _InFlight:
    due: int
    seq: int
    message: Message = field(compare=False)
    payload: Payload = field(compare=False)


class Network:
    def __init__(self, rng: random.Random, node_ids: Iterable[int]) -> None:
        self._rng = rng
        self.node_ids = sorted(node_ids)
        self.faults = Faults()
        self.blocked: set[tuple[int, int]] = set()
        """(sender, receiver) pairs whose messages are dropped: one-way cuts are allowed."""
        self._in_flight: list[_InFlight] = []
        self._seq = 0
        self.sent = 0
        self.dropped = 0

    # -- topology ------------------------------------------------------------------------------
    def add_node(self, node_id: int) -> None:
        if node_id not in self.node_ids:
            self.node_ids = sorted([*self.node_ids, node_id])

    def connected(self, src: int, dst: int) -> bool:
        return (src, dst) not in self.blocked

    def disconnect(self, node_id: int) -> None:
        """Cut ``node_id`` off from everyone, both ways."""
        for other in self.node_ids:
            if other != node_id:
                self.blocked.add((node_id, other))
                self.blocked.add((other, node_id))

    def connect(self, node_id: int) -> None:
        """Restore ``node_id``'s links to everyone, both ways."""
        self.blocked = {(a, b) for (a, b) in self.blocked if node_id not in (a, b)}

    def partition(self, *groups: Iterable[int]) -> None:
        """Only nodes in the same group talk; nodes in no group are isolated."""
        group_of: dict[int, int] = {}
        for number, group in enumerate(groups):
            for node_id in group:
                group_of[node_id] = number
        self.blocked = {
            (a, b)
            for a in self.node_ids
            for b in self.node_ids
            if a != b and (a not in group_of or group_of.get(a) != group_of.get(b))
        }

    def block(self, src: int, dst: int) -> None:
        """A one-way cut: ``src`` can no longer reach ``dst``."""
        self.blocked.add((src, dst))

    def heal(self) -> None:
        self.blocked = set()

    # -- traffic -------------------------------------------------------------------------------
    def send(self, now: int, message: Message, payload: Payload = None) -> bool:
        """Queue ``message``; False if the link is cut (the sender's transport notices, as a
        failed connection would). Random loss is silent and returns True."""
        self.sent += 1
        if not self.connected(message.from_id, message.to_id):
            self.dropped += 1
            return False
        faults = self.faults
        if faults.loss and self._rng.random() < faults.loss:
            self.dropped += 1
            return True  # silent: the sender cannot tell
        copies = 2 if faults.duplicate and self._rng.random() < faults.duplicate else 1
        for _ in range(copies):
            delay = faults.min_delay_ticks
            if faults.max_delay_ticks > faults.min_delay_ticks:
                delay = self._rng.randint(faults.min_delay_ticks, faults.max_delay_ticks)
            self._seq += 1
            heapq.heappush(self._in_flight, _InFlight(now + delay, self._seq, message, payload))
        return True

    def due(self, now: int) -> list[tuple[Message, Payload]]:
        """Pop every message due by ``now`` whose link is still up, in delivery order."""
        out: list[tuple[Message, Payload]] = []
        while self._in_flight and self._in_flight[0].due <= now:
            item = heapq.heappop(self._in_flight)
            if self.connected(item.message.from_id, item.message.to_id):
                out.append((item.message, item.payload))
            else:
                self.dropped += 1
        return out

    def pending(self) -> int:
        return len(self._in_flight)

"""O(entries in the message), never a scan of the log (issue 2, "What the core must do").

Counts storage calls, not time, so the check is exact and immune to machine load: handling a
message on a node with a 20,000-entry log costs the same number of reads as with 20 entries.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from raftkv.core.config import RaftConfig
from raftkv.core.membership import Membership, membership_of
from raftkv.core.messages import (
    AppendRequest,
    AppendResponse,
    Message,
    VoteRequest,
    VoteResponse,
)
from raftkv.core.raft import RaftNode
from raftkv.core.ready import Role
from raftkv.core.storage import MemoryStorage
from raftkv.core.types import Entry, HardState, Index, NodeId, SnapshotMeta, Term


class CountingStorage:
    """A MemoryStorage that counts every read the core makes, and the entries it touches."""

    def __init__(self, membership: Membership) -> None:
        self.inner = MemoryStorage(membership)
        self.calls: Counter[str] = Counter()

    def hard_state(self) -> HardState:
        self.calls["hard_state"] += 1
        return self.inner.hard_state()

    def snapshot_meta(self) -> SnapshotMeta:
        self.calls["snapshot_meta"] += 1
        return self.inner.snapshot_meta()

    def first_index(self) -> Index:
        self.calls["first_index"] += 1
        return self.inner.first_index()

    def last_index(self) -> Index:
        self.calls["last_index"] += 1
        return self.inner.last_index()

    def term(self, index: Index) -> Term:
        self.calls["term"] += 1
        return self.inner.term(index)

    def entries(self, lo: Index, hi: Index, max_bytes: int | None = None) -> Sequence[Entry]:
        self.calls["entries"] += 1
        result = self.inner.entries(lo, hi, max_bytes)
        self.calls["entries returned"] += len(result)
        return result

    def membership_history(self) -> Sequence[tuple[Index, Membership]]:
        self.calls["membership_history"] += 1
        return self.inner.membership_history()


def follower_with_log(length: int) -> tuple[RaftNode, CountingStorage]:
    storage = CountingStorage(membership_of([1, 2, 3]))
    storage.inner.append(
        [Entry(term=Term(1), index=Index(i), data=b"x") for i in range(1, length + 1)]
    )
    storage.inner.set_hard_state(HardState(term=Term(1), vote=NodeId(2), commit=Index(length)))
    config = RaftConfig(node_id=NodeId(1), pre_vote=False, applied=Index(length))
    return RaftNode(config, storage, random.Random(1)), storage


def handle(node: RaftNode, storage: CountingStorage, message: Message) -> Counter[str]:
    """Storage reads made by stepping ``message`` and playing its Ready batches."""
    storage.calls.clear()
    node.step(message)
    while node.has_ready():
        rd = node.ready()
        storage.inner.append(rd.entries)
        if rd.hard_state is not None:
            storage.inner.set_hard_state(rd.hard_state)
        node.advance(rd)
    return Counter(storage.calls)


def messages_for(length: int) -> dict[str, Message]:
    leader = NodeId(2)
    return {
        "heartbeat": AppendRequest(
            from_id=leader,
            to_id=NodeId(1),
            term=Term(1),
            prev_index=Index(length),
            prev_term=Term(1),
            entries=(),
            commit=Index(length),
            seq=1,
        ),
        "append 3": AppendRequest(
            from_id=leader,
            to_id=NodeId(1),
            term=Term(1),
            prev_index=Index(length),
            prev_term=Term(1),
            entries=tuple(
                Entry(term=Term(1), index=Index(length + k), data=b"y") for k in (1, 2, 3)
            ),
            commit=Index(length),
            seq=1,
        ),
        "vote": VoteRequest(
            from_id=NodeId(3),
            to_id=NodeId(1),
            term=Term(2),
            last_log_index=Index(length),
            last_log_term=Term(1),
        ),
        "conflicting probe": AppendRequest(
            from_id=leader,
            to_id=NodeId(1),
            term=Term(1),
            prev_index=Index(length + 5),
            prev_term=Term(1),
            entries=(),
            commit=Index(length),
            seq=1,
        ),
    }


@pytest.mark.parametrize("kind", ["heartbeat", "append 3", "vote", "conflicting probe"])
def test_follower_work_does_not_grow_with_the_log(kind: str) -> None:
    costs = []
    for length in (20, 20_000):
        node, storage = follower_with_log(length)
        costs.append(handle(node, storage, messages_for(length)[kind]))
    small, large = costs
    assert small == large, f"{kind}: {dict(small)} with 20 entries, {dict(large)} with 20,000"


def test_leader_work_per_ack_does_not_grow_with_the_log() -> None:
    """A leader's handling of an append acknowledgement, with a short and a long log."""
    costs = []
    for length in (20, 20_000):
        node, storage = follower_with_log(length)
        node.campaign()
        handle(
            node,
            storage,
            VoteResponse(from_id=NodeId(2), to_id=NodeId(1), term=Term(2), granted=True),
        )
        assert node.role == Role.LEADER
        node.propose(b"p")
        handle(
            node,
            storage,
            AppendResponse(
                from_id=NodeId(3),
                to_id=NodeId(1),
                term=Term(2),
                success=True,
                match_index=Index(length),
            ),
        )
        ack: Any = AppendResponse(
            from_id=NodeId(2),
            to_id=NodeId(1),
            term=Term(2),
            success=True,
            match_index=Index(length + 2),
        )
        costs.append(handle(node, storage, ack))
    small, large = costs
    assert small == large, f"{dict(small)} with 20 entries, {dict(large)} with 20,000"

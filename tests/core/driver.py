"""A minimal single-node driver for paper-section tests: step messages in, get messages out.

It plays the Ready contract exactly like the real driver (send_now, persist, send_after_persist,
apply, advance) and remembers every Ready so a test can inspect where a message came from.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from raftkv.core.config import RaftConfig
from raftkv.core.membership import Membership
from raftkv.core.messages import AppendRequest, AppendResponse, Message, VoteResponse
from raftkv.core.raft import RaftNode
from raftkv.core.ready import Ready
from raftkv.core.storage import MemoryStorage
from raftkv.core.types import Entry, HardState, Index, NodeId, Term

M = TypeVar("M")


def entries_of(*terms: int, start: int = 1) -> list[Entry]:
    """Entries with these terms at consecutive indexes from ``start``."""
    return [
        Entry(term=Term(t), index=Index(start + i), data=b"e%d" % (start + i))
        for i, t in enumerate(terms)
    ]


class Driver:
    def __init__(
        self,
        node_id: int,
        voters: Iterable[int] = (1, 2, 3),
        *,
        log_terms: Sequence[int] = (),
        term: int = 0,
        vote: int = 0,
        commit: int = 0,
        seed: int = 1,
        learners: Iterable[int] = (),
        outgoing: Iterable[int] = (),
        **config: Any,
    ) -> None:
        self.storage = MemoryStorage(
            Membership(  # joint when ``outgoing`` names the old voters
                voters=frozenset(voters),
                learners=frozenset(learners),
                outgoing=frozenset(outgoing),
            )
        )
        if log_terms:
            self.storage.append(entries_of(*log_terms))
        self.storage.set_hard_state(
            HardState(term=Term(term), vote=NodeId(vote), commit=Index(commit))
        )
        config.setdefault("pre_vote", False)
        self.node = RaftNode(
            RaftConfig(node_id=NodeId(node_id), **config), self.storage, random.Random(seed)
        )
        self.readies: list[Ready] = []
        self.applied: list[Entry] = []

    def restart(self, seed: int = 2) -> None:
        """Crash and restart: a new core over the same (persisted) storage."""
        self.node = RaftNode(self.node.config, self.storage, random.Random(seed))

    def drain(self) -> list[Message]:
        out: list[Message] = []
        for _ in range(32):
            if not self.node.has_ready():
                return out
            rd = self.node.ready()
            self.readies.append(rd)
            out.extend(rd.send_now)
            if rd.snapshot is not None:
                self.storage.apply_snapshot(rd.snapshot)
            self.storage.append(rd.entries)
            if rd.hard_state is not None:
                self.storage.set_hard_state(rd.hard_state)
            out.extend(rd.send_after_persist)
            self.applied.extend(rd.committed)
            self.node.advance(rd)
        raise AssertionError("Ready batches never ended")

    def step(self, *messages: Message) -> list[Message]:
        for m in messages:
            self.node.step(m)
        return self.drain()

    def tick(self, ticks: int = 1) -> list[Message]:
        out: list[Message] = []
        for _ in range(ticks):
            self.node.tick()
            out.extend(self.drain())
        return out


def only(messages: Sequence[Message], kind: type[M]) -> list[M]:
    return [m for m in messages if isinstance(m, kind)]


def vote_granted(messages: Sequence[Message]) -> bool:
    (response,) = only(messages, VoteResponse)
    return response.granted


def acks_for(leader: int, out: Sequence[Message], match: int, seq: int = 0) -> list[Message]:
    """Successful append responses from every receiver of the leader's appends in ``out``."""
    return [
        AppendResponse(
            from_id=m.to_id,
            to_id=NodeId(leader),
            term=m.term,
            success=True,
            match_index=Index(match),
            seq=seq,
        )
        for m in only(out, AppendRequest)
    ]

"""Fuzz the consensus core's step(): a 3-node in-memory cluster under an adversary (Hypothesis).

The network delivers, drops, duplicates and reorders the members' own messages; the adversary
injects well-typed messages with random fields as a member with a STALE term (the members' ids,
terms below the recipient's). The core keeps every invariant:

- election safety: at most one leader per term;
- committed prefix stability: once an index is committed anywhere, every node that commits it
  commits the same entry, and it never changes;
- state-machine safety: every node's applied sequence is a prefix of the longest one;
- terms never go back, and commit indexes never go back.

Strangers (ids outside the configuration) and other clusters are stopped at the transport's
gateway (:class:`raftkv.transport.codec.PeerCheck`), NOT by the core, which trusts the sender ids
it is given (a stranger's AppendRequest with a high term WOULD be followed). The last test checks
that every such message, whatever its kind and fields, is refused there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.core.config import RaftConfig
from raftkv.core.membership import membership_of
from raftkv.core.messages import (
    AppendRequest,
    AppendResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from raftkv.core.raft import RaftNode
from raftkv.core.ready import Role
from raftkv.core.storage import MemoryStorage
from raftkv.core.types import Entry, Index, NodeId, Term
from raftkv.transport import codec

MEMBERS = (1, 2, 3)
STRANGERS = (4, 99)
BIG = (1 << 63) - 1


@dataclass
class World:
    nodes: dict[int, RaftNode]
    storages: dict[int, MemoryStorage]
    network: list[Message] = field(default_factory=list)
    applied: dict[int, list[tuple[int, int, bytes]]] = field(default_factory=dict)
    committed: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    leaders: dict[int, int] = field(default_factory=dict)
    terms: dict[int, int] = field(default_factory=dict)
    commits: dict[int, int] = field(default_factory=dict)

    @classmethod
    def start(cls, seed: int) -> World:
        nodes, storages = {}, {}
        for n in MEMBERS:
            storages[n] = MemoryStorage(membership_of(MEMBERS))
            nodes[n] = RaftNode(
                RaftConfig(node_id=NodeId(n), heartbeat_ticks=1, election_ticks=3),
                storages[n],
                random.Random(seed * 10 + n),
            )
        return cls(nodes, storages, applied={n: [] for n in MEMBERS})

    def process(self, n: int) -> None:
        node, storage = self.nodes[n], self.storages[n]
        for _ in range(64):
            if not node.has_ready():
                break
            rd = node.ready()
            self.network.extend(rd.send_now)
            if rd.snapshot is not None:
                storage.apply_snapshot(rd.snapshot)
            storage.append(rd.entries)
            if rd.hard_state is not None:
                storage.set_hard_state(rd.hard_state)
            self.network.extend(rd.send_after_persist)
            self.applied[n].extend((e.index, e.term, e.data) for e in rd.committed)
            node.advance(rd)
        self.check(n)

    def check(self, n: int) -> None:
        node = self.nodes[n]
        assert node.term >= self.terms.get(n, 0), f"node {n}'s term went back"
        self.terms[n] = node.term
        assert node.commit_index >= self.commits.get(n, 0), f"node {n}'s commit went back"
        self.commits[n] = node.commit_index
        if node.role == Role.LEADER:
            other = self.leaders.setdefault(node.term, n)
            assert other == n, f"two leaders in term {node.term}: {other} and {n}"
        storage = self.storages[n]
        first = max(storage.first_index(), 1)
        for index in range(first, node.commit_index + 1):
            entry = storage.entries(Index(index), Index(index + 1))[0]
            seen = self.committed.setdefault(index, (entry.term, entry.data))
            assert seen == (entry.term, entry.data), f"committed entry {index} changed on {n}"
        longest = max(self.applied.values(), key=len)
        mine = self.applied[n]
        assert mine == longest[: len(mine)], f"node {n} applied a different sequence"


def _stale_term(draw: st.DrawFn, world: World, to: int) -> int:
    return draw(st.integers(0, max(0, world.nodes[to].term - 1)))


@st.composite
def adversarial(draw: st.DrawFn, world: World, strangers: bool = True) -> Message | None:
    to = draw(st.sampled_from(MEMBERS))
    if not strangers and world.nodes[to].term == 0:
        return None  # no term is stale yet: a message now would be a (Byzantine) member's
    if strangers and draw(st.booleans()):
        sender, term = draw(st.sampled_from(STRANGERS)), draw(st.integers(0, BIG))
    else:
        sender = draw(st.sampled_from([m for m in MEMBERS if m != to]))
        term = _stale_term(draw, world, to)
    index = st.one_of(st.integers(0, 12), st.just(BIG))
    base = {"from_id": NodeId(sender), "to_id": NodeId(to), "term": Term(term)}
    kind = draw(st.sampled_from(["vote", "vote_resp", "append", "append_resp", "timeout", "ri"]))
    match kind:
        case "vote":
            return VoteRequest(
                **base,
                last_log_index=Index(draw(index)),
                last_log_term=Term(draw(st.integers(0, BIG))),
                pre_vote=draw(st.booleans()),
                transfer=draw(st.booleans()),
            )
        case "vote_resp":
            return VoteResponse(**base, granted=True, pre_vote=draw(st.booleans()))
        case "append":
            prev = draw(st.integers(0, 12))
            count = draw(st.integers(0, 3))
            entries = tuple(
                Entry(term=Term(term), index=Index(prev + 1 + i), data=b"evil")
                for i in range(count)
            )
            return AppendRequest(
                **base,
                prev_index=Index(prev),
                prev_term=Term(draw(st.integers(0, term))),
                entries=entries,
                commit=Index(draw(index)),
                seq=draw(st.integers(0, BIG)),
            )
        case "append_resp":
            return AppendResponse(
                **base,
                success=draw(st.booleans()),
                match_index=Index(draw(index)),
                hint_index=Index(draw(index)),
                hint_term=Term(draw(st.integers(0, BIG))),
                seq=draw(st.integers(0, BIG)),
            )
        case "timeout":
            return TimeoutNow(**base)
        case _:
            if draw(st.booleans()):
                return ReadIndexRequest(**base, context=draw(st.integers(0, BIG)))
            return ReadIndexResponse(
                **base, context=draw(st.integers(0, BIG)), index=Index(draw(index))
            )


def _run(data: st.DataObject, world: World) -> None:
    steps = data.draw(st.integers(20, 120), label="steps")
    for _ in range(steps):
        action = data.draw(
            st.sampled_from(
                ["tick", "deliver", "deliver", "deliver", "drop", "dup", "propose", "evil"]
            )
        )
        if action == "tick":
            n = data.draw(st.sampled_from(MEMBERS))
            world.nodes[n].tick()
            world.process(n)
        elif action in ("deliver", "drop", "dup") and world.network:
            i = data.draw(st.integers(0, len(world.network) - 1))
            m = world.network[i] if action == "dup" else world.network.pop(i)
            if action != "drop" and m.to_id in world.nodes:
                world.nodes[m.to_id].step(m)
                world.process(m.to_id)
        elif action == "propose":
            for n, node in world.nodes.items():
                if node.role == Role.LEADER:
                    node.propose(b"cmd%d" % data.draw(st.integers(0, 999)))
                    world.process(n)
                    break
        elif action == "evil":
            m = data.draw(adversarial(world, strangers=False))
            if m is None:
                continue
            world.nodes[m.to_id].step(m)
            world.process(m.to_id)
        world.network = world.network[-200:]


FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(data=st.data(), seed=st.integers(0, 1000))
def test_members_with_stale_terms_cannot_break_invariants(data: st.DataObject, seed: int) -> None:
    _run(data, World.start(seed))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), seed=st.integers(0, 1000), other_cluster=st.booleans())
def test_strangers_and_other_clusters_never_reach_the_core(
    data: st.DataObject, seed: int, other_cluster: bool
) -> None:
    world = World.start(seed)
    m = data.draw(adversarial(world))
    assert m is not None
    if not other_cluster and m.from_id in MEMBERS:
        m = replace(m, from_id=NodeId(data.draw(st.sampled_from(STRANGERS))))
    method, request = codec.encode(m, "evil-cluster" if other_cluster else "real-cluster")
    check = codec.PeerCheck(cluster_id="real-cluster", self_id=m.to_id, known_ids=list(MEMBERS))
    with pytest.raises(codec.CodecError) as info:
        codec.decode(method, request, check)
    assert info.value.reason == ("other_cluster" if other_cluster else "unknown_node")

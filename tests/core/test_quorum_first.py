"""New entries go at once to as many followers as a commit needs; the others get them with the
heartbeat, after a stalled tick, or when they answer lacking committed entries
(``RaftConfig.quorum_first``). On a host with fewer cores than nodes, a lone write then does not
wait behind the extra follower's receive, fsync and answer."""

from __future__ import annotations

from collections.abc import Sequence

from raftkv.core.membership import Membership
from raftkv.core.messages import (
    AppendRequest,
    AppendResponse,
    Message,
    TimeoutNow,
    VoteResponse,
)
from raftkv.core.ready import Role
from raftkv.core.types import Index, NodeId, Term
from tests.core.driver import Driver, acks_for, only


def steady_leader(
    voters: Sequence[int] = (1, 2, 3),
    *,
    learners: Sequence[int] = (),
    **config: object,
) -> Driver:
    """Node 1, leader at term 1 with every vote, its no-op (index 1) acknowledged by every
    member, then one tick (where the leader picks its lazy followers)."""
    d = Driver(1, voters, learners=learners, **config)  # type: ignore[arg-type]
    d.node.campaign()
    d.drain()
    electors = sorted(set(voters) - {1})
    out = d.step(
        *[
            VoteResponse(from_id=NodeId(p), to_id=NodeId(1), term=Term(1), granted=True)
            for p in electors
        ]
    )
    assert d.node.role == Role.LEADER
    d.step(*acks_for(1, out, match=1))
    assert d.node.commit_index == 1
    d.tick()
    return d


def sent_entries(out: Sequence[Message]) -> dict[int, list[int]]:
    """Appends that carry entries, by receiver: receiver -> the indexes carried."""
    return {m.to_id: [e.index for e in m.entries] for m in only(out, AppendRequest) if m.entries}


def ticks_until_entries(d: Driver, peer: int, limit: int) -> tuple[int, AppendRequest]:
    """Tick until ``peer`` is sent entries: how many ticks it took, and the append."""
    for n in range(1, limit + 1):
        for m in only(d.tick(), AppendRequest):
            if m.to_id == peer and m.entries:
                return n, m
    raise AssertionError(f"node {peer} was sent no entries in {limit} ticks")


def ack(frm: int, match: int, seq: int = 0) -> AppendResponse:
    """Node ``frm``'s success answer to leader 1 at term 1 (``seq``: the read round it echoes)."""
    return AppendResponse(
        from_id=NodeId(frm),
        to_id=NodeId(1),
        term=Term(1),
        success=True,
        match_index=Index(match),
        seq=seq,
    )


def propose(d: Driver, data: bytes = b"x") -> list[Message]:
    d.node.propose(data)
    return d.drain()


def test_of_three_nodes_one_follower_gets_a_write_at_once_and_its_answer_commits_it() -> None:
    d = steady_leader()
    out = propose(d)
    assert sent_entries(out) == {2: [2]}, "ties go to the lower id"
    d.step(ack(2, 2))
    assert d.node.commit_index == 2
    ticks, to_3 = ticks_until_entries(d, 3, d.node.config.heartbeat_ticks)
    assert ticks > 1, "not at every tick: with the heartbeat, as nothing is stalled"
    assert [e.index for e in to_3.entries] == [2]
    assert to_3.commit == 2, "with the commit index, so it can apply at once"


def test_a_stalled_commit_sends_to_the_lazy_follower_within_two_ticks() -> None:
    d = steady_leader(heartbeat_ticks=10, election_ticks=20)
    propose(d)  # to node 2, which never answers
    _, to_3 = ticks_until_entries(d, 3, 2)
    assert [e.index for e in to_3.entries] == [2]
    d.step(ack(3, 2))
    assert d.node.commit_index == 2, "committed by node 3, two ticks late at most"


def test_of_five_nodes_two_followers_get_a_write_at_once() -> None:
    d = steady_leader((1, 2, 3, 4, 5))
    out = propose(d)
    assert sent_entries(out) == {2: [2], 3: [2]}
    d.step(ack(2, 2))
    assert d.node.commit_index == 1, "one follower and the leader are not a quorum of five"
    d.step(ack(3, 2))
    assert d.node.commit_index == 2
    heartbeat = d.node.config.heartbeat_ticks
    assert {4: [2], 5: [2]} in [sent_entries(d.tick()) for _ in range(heartbeat)]


def test_a_lazy_follower_missing_committed_entries_gets_them_when_it_answers() -> None:
    d = steady_leader()
    propose(d, b"x")
    ticks_until_entries(d, 3, d.node.config.heartbeat_ticks)  # index 2
    assert sent_entries(propose(d, b"y")) == {2: [3]}
    d.step(ack(2, 3))
    assert d.node.commit_index == 3
    # Node 3 lacks committed index 3: its answer clocks the next append to it, so under load
    # (or while catching up) a lazy follower trails by a round trip, not by a tick.
    assert sent_entries(d.step(ack(3, 2))) == {3: [3]}


def test_a_lazy_follower_holding_every_committed_entry_waits() -> None:
    d = steady_leader()
    propose(d, b"x")
    d.step(ack(2, 2))
    ticks_until_entries(d, 3, d.node.config.heartbeat_ticks)  # index 2
    assert sent_entries(propose(d, b"y")) == {2: [3]}
    # A lone writer: node 3 answers while index 3 is not yet committed. Sending it at once
    # would cost node 3 a receive, an fsync and an answer per write, next to the commit path.
    assert sent_entries(d.step(ack(3, 2))) == {}
    d.step(ack(2, 3))
    _, to_3 = ticks_until_entries(d, 3, d.node.config.heartbeat_ticks)
    assert [e.index for e in to_3.entries] == [3]


def test_a_follower_that_stops_answering_is_replaced_at_the_next_tick() -> None:
    d = steady_leader()
    propose(d, b"x")  # to node 2, which never answers
    ticks_until_entries(d, 3, 2)
    d.step(ack(3, 2))
    assert d.node.commit_index == 2
    d.tick()  # node 3 is now further along than node 2
    assert sent_entries(propose(d, b"y")) == {3: [3]}


def test_learners_are_always_lazy() -> None:
    d = steady_leader((1, 2, 3), learners=(4,))
    assert sent_entries(propose(d)) == {2: [2]}
    heartbeat = d.node.config.heartbeat_ticks
    assert {3: [2], 4: [2]} in [sent_entries(d.tick()) for _ in range(heartbeat)]


def lazy_in_status(d: Driver) -> dict[int, bool]:
    return {f.node_id: f.lazy for f in d.node.status().followers}


def test_status_says_which_followers_are_lazy() -> None:
    """What `raftkv-cli status` shows as "follower (lazy)": the leader's current choice."""
    d = steady_leader((1, 2, 3), learners=(4,))
    assert lazy_in_status(d) == {2: False, 3: True, 4: True}
    propose(d, b"x")  # to node 2, which never answers
    ticks_until_entries(d, 3, 2)
    d.step(ack(3, 2))
    d.tick()  # node 3 is now further along than node 2: they swap
    assert lazy_in_status(d) == {2: True, 3: False, 4: True}
    assert not any(lazy_in_status(steady_leader((1, 2, 3), quorum_first=False)).values())


def test_every_follower_gets_a_write_at_once_while_the_configuration_is_joint() -> None:
    d = steady_leader((1, 2, 3, 4, 5))
    d.node.propose_conf_change(Membership(voters=frozenset({1, 2, 3, 4})))  # joint entry 2
    d.drain()
    d.tick()  # no lazy followers now; the two that were get entry 2
    assert d.node.membership.is_joint
    assert sent_entries(propose(d)) == {2: [3], 3: [3], 4: [3], 5: [3]}


def test_quorum_first_off_sends_to_every_follower_at_once() -> None:
    d = steady_leader((1, 2, 3, 4, 5), quorum_first=False)
    assert sent_entries(propose(d)) == {2: [2], 3: [2], 4: [2], 5: [2]}
    assert sent_entries(d.tick()) == {}


def test_a_transfer_target_catches_up_at_once() -> None:
    d = steady_leader(max_msg_bytes=1)  # one entry per append
    propose(d, b"x")
    propose(d, b"y")
    d.node.transfer_leader(NodeId(3))  # lazy node 3 lacks 2 and 3
    assert sent_entries(d.drain()) == {3: [2]}
    out = d.step(ack(3, 2))
    assert sent_entries(out) == {3: [3]}, "not at the next tick: the transfer waits on it"
    assert not only(out, TimeoutNow)
    assert only(d.step(ack(3, 3)), TimeoutNow)

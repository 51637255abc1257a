"""ReadIndex (thesis §6.4), leadership transfer (thesis §3.10) and the Ready contract
(thesis §10.2.1: what may leave before persisting and what only after)."""

from __future__ import annotations

import pytest

from raftkv.core.errors import NotLeader, ProposalDropped
from raftkv.core.messages import (
    AppendRequest,
    AppendResponse,
    Message,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from raftkv.core.ready import Role
from raftkv.core.types import Index, NodeId, Term
from tests.core.driver import Driver, acks_for, only
from tests.core.test_elections import vote_request
from tests.core.test_replication import append


def elected_leader(voters: tuple[int, ...] = (1, 2, 3), **config: object) -> tuple[Driver, list]:  # type: ignore[type-arg]
    """Node 1, just elected at term 1 with node 2's vote; returns the leader's first output."""
    d = Driver(1, voters, **config)  # type: ignore[arg-type]
    d.node.campaign()
    d.drain()
    out = d.step(VoteResponse(from_id=NodeId(2), to_id=NodeId(1), term=Term(1), granted=True))
    assert d.node.role == Role.LEADER
    return d, out


def reads_of(d: Driver) -> list[tuple[int, int]]:
    return [(r.context, r.index) for rd in d.readies for r in rd.reads]


def heartbeat_acks(out: list[Message], seq: int, match: int) -> list[Message]:
    return acks_for(
        1, [m for m in out if isinstance(m, AppendRequest) and m.seq == seq], match, seq=seq
    )


def test_read_index_waits_for_the_new_terms_noop() -> None:
    """Thesis §6.4: a new leader does not know its commit index until its no-op commits, so
    a read waits for that, then for one confirmed heartbeat round."""
    d, out = elected_leader()
    d.node.read_index(7)
    d.drain()
    assert reads_of(d) == []
    out = d.step(*acks_for(1, out, match=1))
    assert d.node.commit_index == 1
    assert reads_of(d) == [], "not before a heartbeat round confirms leadership"
    rounds = {m.seq for m in only(out, AppendRequest)}
    seq = max(rounds)
    assert seq >= 1
    d.step(*heartbeat_acks(out, seq, match=1)[:1])
    assert reads_of(d) == [(7, 1)]


def test_read_index_is_not_confirmed_by_an_older_round() -> None:
    """Thesis §6.4: only acknowledgements of a heartbeat sent after the read was asked count."""
    d, out = elected_leader()
    out = d.step(*acks_for(1, out, match=1))
    d.node.read_index(1)
    out = d.drain()
    seq = max(m.seq for m in only(out, AppendRequest))
    d.step(*heartbeat_acks(out, seq, match=1))
    d.node.read_index(2)
    d.drain()
    d.step(*heartbeat_acks(out, seq, match=1))  # old round answered again (duplicates)
    assert [c for c, _ in reads_of(d)] == [1]


def test_deposed_leader_drops_pending_reads() -> None:
    """Thesis §6.4: a leader that learns of a newer term fails its pending reads."""
    d, out = elected_leader()
    d.step(*acks_for(1, out, match=1))
    d.node.read_index(9)
    d.drain()
    d.step(append(2, 5, (0, 0), []))
    assert d.node.role == Role.FOLLOWER
    assert any(9 in rd.dropped_reads for rd in d.readies)
    assert reads_of(d) == []


def test_proposals_refused_during_transfer_and_timeout_now_once_caught_up() -> None:
    """Thesis §3.10: the leader stops accepting proposals, catches the target up, then sends
    TimeoutNow."""
    d, out = elected_leader()
    d.step(*acks_for(1, out, match=1)[:1])  # node 2 is caught up; node 3 is not
    d.node.transfer_leader(NodeId(3))
    out = d.drain()
    with pytest.raises(ProposalDropped):
        d.node.propose(b"x")
    assert not only(out, TimeoutNow)
    out = d.step(
        AppendResponse(
            from_id=NodeId(3), to_id=NodeId(1), term=Term(1), success=True, match_index=Index(1)
        )
    )
    (timeout_now,) = only(out, TimeoutNow)
    assert timeout_now.to_id == 3


def test_timeout_now_starts_a_real_election_at_once_even_with_prevote() -> None:
    """Thesis §3.10: the target campaigns immediately, skipping PreVote, and marks its requests
    so voters skip the lease."""
    d = Driver(3, pre_vote=True, check_quorum=True)
    d.step(append(1, 1, (0, 0), [], to=3))
    assert d.node.leader_id == 1
    out = d.step(TimeoutNow(from_id=NodeId(1), to_id=NodeId(3), term=Term(1)))
    requests = only(out, VoteRequest)
    assert requests and all(r.transfer and not r.pre_vote and r.term == 2 for r in requests)
    assert d.node.role == Role.CANDIDATE


def test_proposal_on_follower_names_the_leader() -> None:
    """§8: a follower redirects clients to the leader it knows (0 when it knows none)."""
    d = Driver(2)
    with pytest.raises(NotLeader) as info:
        d.node.propose(b"x")
    assert info.value.leader_id == 0
    d.step(append(1, 1, (0, 0), [], to=2))
    with pytest.raises(NotLeader) as info:
        d.node.propose(b"x")
    assert info.value.leader_id == 1


def test_ready_contract_promises_leave_only_after_persisting() -> None:
    """Thesis §10.2.1: a vote or an append acknowledgement promises durable state, so it is in
    ``send_after_persist`` of the Ready that persists it; the leader's own appends may leave
    at once (``send_now``)."""
    d = Driver(1)
    d.step(vote_request(2, 1))
    rd = d.readies[-1]
    assert rd.hard_state is not None and rd.hard_state.vote == 2
    assert only(list(rd.send_after_persist), VoteResponse)
    assert not only(list(rd.send_now), VoteResponse)
    d.step(append(2, 1, (0, 0), [], 0))
    from tests.core.driver import entries_of

    d.step(append(2, 1, (0, 0), entries_of(1)))
    rd = d.readies[-1]
    assert rd.entries and only(list(rd.send_after_persist), AppendResponse)
    assert not only(list(rd.send_now), AppendResponse)
    leader, _ = elected_leader()
    first = leader.readies[-1]
    assert first.entries and only(list(first.send_now), AppendRequest)
    assert not only(list(first.send_after_persist), AppendRequest)


def test_core_refuses_input_between_ready_and_advance() -> None:
    """The Ready contract (ready.py): no input between ``ready()`` and ``advance()``."""
    d = Driver(1)
    d.node.campaign()
    d.node.ready()
    with pytest.raises(AssertionError):
        d.node.tick()

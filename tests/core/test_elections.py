"""Elections: vote granting, the up-to-date rule, the lease, PreVote (paper §5.2, §5.4.1;
thesis §4.2.3, §9.6)."""

from __future__ import annotations

from raftkv.core.messages import VoteRequest, VoteResponse
from raftkv.core.ready import Role
from raftkv.core.types import Index, NodeId, Term
from tests.core.driver import Driver, only, vote_granted


def vote_request(
    frm: int, term: int, last_index: int = 0, last_term: int = 0, **flags: bool
) -> VoteRequest:
    return VoteRequest(
        from_id=NodeId(frm),
        to_id=NodeId(1),
        term=Term(term),
        last_log_index=Index(last_index),
        last_log_term=Term(last_term),
        **flags,
    )


def test_one_vote_per_term() -> None:
    """§5.2: each server votes for at most one candidate in a given term (first come)."""
    d = Driver(1)
    assert vote_granted(d.step(vote_request(2, 1)))
    assert not vote_granted(d.step(vote_request(3, 1)))
    assert vote_granted(d.step(vote_request(2, 1))), "a duplicate request from the same candidate"
    assert d.storage.hard_state().vote == 2
    assert vote_granted(d.step(vote_request(3, 2))), "a new term, a new vote"


def test_vote_survives_restart() -> None:
    """§5.2 (Figure 2, persistent state): votedFor is persisted before the vote is granted, so a
    restarted voter does not vote twice in one term."""
    d = Driver(1)
    assert vote_granted(d.step(vote_request(2, 1)))
    d.restart()
    assert not vote_granted(d.step(vote_request(3, 1)))
    assert vote_granted(d.step(vote_request(2, 1)))


def test_up_to_date_compares_last_term_then_last_index() -> None:
    """§5.4.1: the candidate's log must be at least as up to date: later last term wins; with
    equal last terms, the longer log wins."""
    cases = [
        ((5, 1), False),  # longer but older last term
        ((1, 3), True),  # shorter but newer last term
        ((2, 2), False),  # same last term, shorter
        ((3, 2), True),  # same last term, same length
        ((4, 2), True),  # same last term, longer
    ]
    for (last_index, last_term), expected in cases:
        d = Driver(1, log_terms=(1, 1, 2), term=2)
        granted = vote_granted(d.step(vote_request(2, 3, last_index, last_term)))
        assert granted is expected, (last_index, last_term)


def test_stale_term_vote_request_is_refused() -> None:
    """§5.1: a request from an older term is rejected (or ignored); the term does not go back."""
    d = Driver(1, term=5)
    out = d.step(vote_request(2, 3, 10, 3))
    assert not any(r.granted for r in only(out, VoteResponse))
    assert d.node.term == 5


def test_lease_ignores_disruptive_vote_requests() -> None:
    """Thesis §4.2.3: a follower that heard from a live leader within the minimum election
    timeout ignores vote requests (no term change, no answer) unless they come from a
    leadership transfer."""
    from tests.core.test_replication import heartbeat

    d = Driver(1, check_quorum=True)
    d.step(heartbeat(frm=2, term=1))
    assert d.node.leader_id == 2
    out = d.step(vote_request(3, 2, 10, 1))
    assert out == [] and d.node.term == 1
    out = d.step(vote_request(3, 2, 10, 1, transfer=True))
    assert vote_granted(out) and d.node.term == 2
    # Once an election timeout passes without the leader, requests are considered again.
    d2 = Driver(1, check_quorum=True)
    d2.step(heartbeat(frm=2, term=1))
    d2.tick(d2.node.config.election_ticks)
    term = d2.node.term + 1
    out = d2.step(vote_request(3, term, 10, 1))
    assert only(out, VoteResponse) and d2.node.term == term


def test_lease_only_believes_a_transfer_in_the_next_term() -> None:
    """A TimeoutNow candidate campaigns in exactly the leader's term + 1. A "transfer" vote from
    further ahead (a forged or confused sender) must not skip the lease: adopting a huge term
    would let one message wedge the cluster's terms."""
    from tests.core.test_replication import heartbeat

    d = Driver(1, check_quorum=True)
    d.step(heartbeat(frm=2, term=1))
    out = d.step(vote_request(3, 2**62, 10, 1, transfer=True))
    assert out == [] and d.node.term == 1 and d.node.leader_id == 2


def test_prevote_does_not_change_term_or_vote() -> None:
    """Thesis §9.6: granting a pre-vote changes neither the voter's term nor its vote."""
    d = Driver(1, term=1)
    out = d.step(vote_request(2, 2, 0, 0, pre_vote=True))
    assert vote_granted(out)
    assert d.node.term == 1 and d.node.vote == 0
    assert d.storage.hard_state().term == 1


def test_candidate_wins_with_a_majority_and_appends_a_noop() -> None:
    """§5.2, §8: a candidate with a majority becomes leader and appends a no-op of its term."""
    d = Driver(1)
    d.node.campaign()
    out = d.drain()
    requests = only(out, VoteRequest)
    assert sorted(r.to_id for r in requests) == [2, 3] and d.node.term == 1
    d.step(VoteResponse(from_id=NodeId(2), to_id=NodeId(1), term=Term(1), granted=True))
    assert d.node.role == Role.LEADER
    assert d.node.log_entry_term(Index(1)) == 1 and d.storage.last_index() == 1




def test_stale_vote_request_is_answered_with_the_current_term() -> None:
    """§5.1 and Figure 2 (RequestVote receiver: "Reply false if term < currentTerm"): the
    answer carries the voter's term so that the candidate catches up."""
    d = Driver(1, term=5)
    out = d.step(vote_request(2, 3, 10, 3))
    (response,) = only(out, VoteResponse)
    assert not response.granted and response.term == 5

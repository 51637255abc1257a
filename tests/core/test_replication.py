"""Log replication on the follower side and commitment on the leader side (paper §5.3,
§5.4.2 and Figure 8)."""

from __future__ import annotations

from raftkv.core.messages import AppendRequest, AppendResponse
from raftkv.core.ready import Role
from raftkv.core.types import Entry, Index, NodeId, Term
from tests.core.driver import Driver, acks_for, entries_of, only


def append(
    frm: int,
    term: int,
    prev: tuple[int, int],
    entries: list[Entry],
    commit: int = 0,
    *,
    to: int = 1,
) -> AppendRequest:
    return AppendRequest(
        from_id=NodeId(frm),
        to_id=NodeId(to),
        term=Term(term),
        prev_index=Index(prev[0]),
        prev_term=Term(prev[1]),
        entries=tuple(entries),
        commit=Index(commit),
        seq=0,
    )


def heartbeat(frm: int, term: int, commit: int = 0) -> AppendRequest:
    return append(frm, term, (0, 0), [], commit)


def log_terms(d: Driver) -> list[int]:
    return [d.storage.term(Index(i)) for i in range(1, d.storage.last_index() + 1)]


def response(out: list) -> AppendResponse:  # type: ignore[type-arg]
    (r,) = only(out, AppendResponse)
    return r


def test_consistency_check_rejects_a_gap() -> None:
    """§5.3: a follower refuses entries whose (prevLogIndex, prevLogTerm) it does not hold."""
    d = Driver(1, log_terms=(1,), term=1)
    r = response(d.step(append(2, 1, (3, 1), entries_of(1, start=4))))
    assert not r.success and d.storage.last_index() == 1


def test_matching_entries_are_never_truncated() -> None:
    """§5.3: "If an existing entry conflicts with a new one ... delete it and all that follow";
    a matching (shorter) append deletes nothing."""
    d = Driver(1, log_terms=(1, 1, 1), term=1)
    r = response(d.step(append(2, 1, (1, 1), entries_of(1, start=2))))
    assert r.success and r.match_index == 2
    assert log_terms(d) == [1, 1, 1]


def test_stale_duplicated_append_does_not_truncate() -> None:
    """§5.3 with a reordering network: an older, duplicated append arriving after a newer one
    must not cut off the entries the newer one added."""
    d = Driver(1, log_terms=(1,), term=1)
    newer = append(2, 1, (1, 1), entries_of(1, 1, 1, start=2))
    older = append(2, 1, (1, 1), entries_of(1, start=2))
    d.step(newer)
    d.step(older)
    d.step(older)
    assert log_terms(d) == [1, 1, 1, 1]


def test_conflicting_suffix_is_replaced() -> None:
    """§5.3: only the conflicting suffix goes; the Ready carries entries from the conflict."""
    d = Driver(1, log_terms=(1, 1, 1, 1), term=1)
    d.step(append(2, 2, (2, 1), entries_of(2, start=3)))
    assert log_terms(d) == [1, 1, 2]
    assert d.readies[-1].entries[0].index == 3


def test_stale_term_append_is_answered_with_the_current_term() -> None:
    """§5.1: a request with a stale term is rejected; the answer tells the sender the term."""
    d = Driver(1, log_terms=(1, 2), term=3)
    r = response(d.step(append(2, 2, (2, 2), entries_of(2, start=3))))
    assert not r.success and r.term == 3
    assert log_terms(d) == [1, 2]


def test_follower_commit_is_capped_by_the_last_new_entry() -> None:
    """§5.3 (Figure 2): commitIndex = min(leaderCommit, index of last new entry)."""
    d = Driver(1, log_terms=(1, 1, 1, 9), term=9)
    d.step(append(2, 9, (1, 1), entries_of(1, start=2), commit=4))
    assert d.node.commit_index == 2


def test_reject_hint_backs_up_a_whole_term() -> None:
    """§5.3 (end): the reject names the conflicting term and its first index, so the leader
    skips the whole term in one round trip."""
    follower = Driver(2, log_terms=(1, 2, 2, 2, 2, 2, 2, 2, 2, 2), term=2)
    probe = AppendRequest(
        from_id=NodeId(1),
        to_id=NodeId(2),
        term=Term(3),
        prev_index=Index(5),
        prev_term=Term(3),
        entries=(),
        commit=Index(1),
        seq=0,
    )
    r = response(follower.step(probe))
    assert not r.success and r.hint_term == 2
    leader = Driver(1, log_terms=(1, 3, 3, 3, 3), term=3, vote=1)
    leader.node.campaign()
    out = leader.drain()
    from raftkv.core.messages import VoteResponse

    out = leader.step(
        VoteResponse(from_id=NodeId(3), to_id=NodeId(1), term=leader.node.term, granted=True)
    )
    assert leader.node.role == Role.LEADER
    term = leader.node.term
    reject = AppendResponse(
        from_id=NodeId(2),
        to_id=NodeId(1),
        term=term,
        success=False,
        match_index=Index(5),
        hint_index=r.hint_index,
        hint_term=r.hint_term,
    )
    out = leader.step(reject)
    (retry,) = [m for m in only(out, AppendRequest) if m.to_id == 2]
    assert retry.prev_index == 1, "the leader backed up over all of term 3 in one step"


def test_leader_commits_only_entries_of_its_term_by_counting() -> None:
    """§5.4.2 and Figure 8: an older-term entry stored on a majority is not committed until an
    entry of the leader's own term is."""
    d = Driver(1, log_terms=(1, 2), term=2, commit=1)
    d.node.campaign()
    d.drain()
    from raftkv.core.messages import VoteResponse

    out = d.step(VoteResponse(from_id=NodeId(2), to_id=NodeId(1), term=Term(3), granted=True))
    assert d.node.role == Role.LEADER and d.node.last_index == 3
    d.step(*acks_for(1, out, match=2))
    assert d.node.commit_index == 1, "index 2 (term 2) is on a majority but must not commit"
    d.step(*acks_for(1, out, match=3))
    assert d.node.commit_index == 3

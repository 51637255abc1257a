"""Messages the leader leaves out when an append already does their job: commit notices to a
follower whose next append carries the commit anyway. Each one left out saves a send, a receive
and an answer per follower, which on a lone writer's path compete for the same cores."""

from __future__ import annotations

from raftkv.core.messages import AppendRequest, Message
from tests.core.driver import Driver, acks_for, only
from tests.core.test_read_transfer_ready import elected_leader


def empty_appends(out: list[Message]) -> dict[int, int]:
    """Empty appends (notices, heartbeats) by receiver: receiver -> the commit index carried."""
    return {m.to_id: m.commit for m in only(out, AppendRequest) if not m.entries}


def committed_noop() -> Driver:
    """Node 1, leader at term 1, its no-op (index 1) acknowledged by both followers."""
    d, out = elected_leader()
    d.step(*acks_for(1, out, match=1))
    assert d.node.commit_index == 1
    return d


def test_a_follower_told_nothing_for_a_whole_tick_gets_a_commit_notice() -> None:
    d = committed_noop()
    assert empty_appends(d.tick()) == {}, "not at the first tick: an append may still carry it"
    assert empty_appends(d.tick()) == {2: 1, 3: 1}, "the next tick tells both followers"
    assert empty_appends(d.tick()) == {}, "once told, nobody is told again"


def test_a_commit_carried_by_the_next_append_needs_no_notice() -> None:
    d = committed_noop()
    d.tick()
    d.node.propose(b"x")
    out = d.drain()
    assert {m.to_id: m.commit for m in only(out, AppendRequest)} == {2: 1, 3: 1}
    assert empty_appends(d.tick()) == {}, "the append carried commit 1"
    d.step(*acks_for(1, out, match=2))
    assert d.node.commit_index == 2
    assert empty_appends(d.tick()) == {}, "index 2 committed after the last tick: wait one more"
    assert empty_appends(d.tick()) == {2: 2, 3: 2}


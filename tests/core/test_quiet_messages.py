"""Messages the leader leaves out when an append already does their job: commit notices and
heartbeats to a follower that was sent an append within the tick. Each one left out saves a send,
a receive and an answer per follower, which on a lone writer's path compete for the same cores."""

from __future__ import annotations

from raftkv.core.messages import AppendRequest, Message
from raftkv.core.types import NodeId
from tests.core.driver import Driver, acks_for, only
from tests.core.test_read_transfer_ready import elected_leader


def empty_appends(out: list[Message]) -> dict[int, int]:
    """Empty appends (notices, heartbeats) by receiver: receiver -> the commit index carried."""
    return {m.to_id: m.commit for m in only(out, AppendRequest) if not m.entries}


def committed_noop() -> Driver:
    """Node 1, leader at term 1, its no-op (index 1) acknowledged by both followers. Every
    follower gets new entries at once (tests/core/test_quorum_first.py covers the default)."""
    d, out = elected_leader(quorum_first=False)
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


def test_heartbeats_skip_followers_sent_an_append_within_the_tick() -> None:
    d, out = elected_leader()
    # Only node 2 answers the no-op: node 3 stays a paused probe and is sent nothing new.
    d.step(*[m for m in acks_for(1, out, match=1) if m.from_id == 2])
    heartbeat = d.node.config.heartbeat_ticks
    d.tick(heartbeat - 1)
    d.node.propose(b"x")
    assert {m.to_id for m in only(d.drain(), AppendRequest)} == {NodeId(2)}
    beats = empty_appends(d.tick())
    assert set(beats) == {3}, "node 2 just got an append; only node 3 needs the heartbeat"
    quiet = [empty_appends(d.tick()) for _ in range(heartbeat)]
    assert set(quiet[-1]) == {2, 3}, "after a quiet interval both get one"
    assert all(beat == {} for beat in quiet[:-1]), "and not before the interval is up"

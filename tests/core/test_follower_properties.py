"""Property test (Hypothesis): a follower fed any interleaving of appends from a valid Raft
history -- stale, duplicated and reordered included -- keeps the paper's invariants (§5.3,
Figure 2 "Receiver implementation"; §5.4 safety).

The history: leaders of terms 1..T, each keeping at least the committed prefix of the one
before (leader completeness) and appending entries of its own term. Each message is a slice
of its leader's log with a commit index that leader could have known.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.core.config import RaftConfig
from raftkv.core.membership import membership_of
from raftkv.core.messages import AppendRequest, AppendResponse, Message
from raftkv.core.raft import RaftNode
from raftkv.core.storage import MemoryStorage
from raftkv.core.types import Entry, Index, NodeId, Term


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[int, list[int]], dict[int, int]]:
    """term -> that leader's log (entry terms, index i + 1 at i), term -> its commit index."""
    logs: dict[int, list[int]] = {}
    commits: dict[int, int] = {}
    previous: list[int] = []
    committed = 0
    for term in range(1, draw(st.integers(1, 4)) + 1):
        keep = draw(st.integers(committed, len(previous)))
        log = previous[:keep] + [term] * draw(st.integers(0, 4))
        committed = draw(st.integers(committed, len(log)))
        logs[term], commits[term] = log, committed
        previous = log
    return logs, commits


def entry(index: int, term: int) -> Entry:
    return Entry(term=Term(term), index=Index(index), data=b"%d/%d" % (term, index))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[int, list[int]], dict[int, int], list[Message]]:
    logs, commits = draw(histories())
    messages: list[Message] = []
    for _ in range(draw(st.integers(1, 25))):
        term = draw(st.sampled_from(sorted(logs)))
        log = logs[term]
        prev = draw(st.integers(0, len(log)))
        count = draw(st.integers(0, len(log) - prev))
        messages.append(
            AppendRequest(
                from_id=NodeId(2 + term % 2),
                to_id=NodeId(1),
                term=Term(term),
                prev_index=Index(prev),
                prev_term=Term(log[prev - 1] if prev else 0),
                entries=tuple(entry(i + 1, log[i]) for i in range(prev, prev + count)),
                commit=Index(draw(st.integers(0, commits[term]))),
                seq=0,
            )
        )
    return logs, commits, messages


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_follower_keeps_its_invariants_under_any_valid_interleaving(
    scenario: tuple[dict[int, list[int]], dict[int, int], list[Message]],
) -> None:
    logs, _, messages = scenario
    truth = logs[max(logs)]  # holds every committed entry of every term
    storage = MemoryStorage(membership_of([1, 2, 3]))
    node = RaftNode(
        RaftConfig(node_id=NodeId(1), pre_vote=False, check_quorum=False),
        storage,
        random.Random(0),
    )
    applied: list[Entry] = []
    last_term = 0
    acked = 0
    """The highest match index acknowledged in the current term."""
    for message in messages:
        node.step(message)
        replies: list[Message] = []
        while node.has_ready():
            rd = node.ready()
            storage.append(rd.entries)
            if rd.hard_state is not None:
                storage.set_hard_state(rd.hard_state)
            replies.extend(rd.send_now + rd.send_after_persist)
            applied.extend(rd.committed)
            node.advance(rd)
        assert node.term >= last_term, "the term went back"
        if node.term != last_term:
            acked = 0
        last_term = node.term
        for index in range(1, node.commit_index + 1):
            assert node.log_entry_term(Index(index)) == truth[index - 1], (
                "a committed entry changed"
            )
        assert [e.term for e in applied] == truth[: len(applied)], "applied a wrong entry"
        for reply in replies:
            if isinstance(reply, AppendResponse) and reply.success and reply.term == node.term:
                acked = max(acked, reply.match_index)
        # An acknowledged match is a promise the leader counts on for commitment: within the
        # term, no later (stale, duplicated) message may take it back.
        leader_log = logs.get(node.term, [])
        for index in range(1, acked + 1):
            assert node.log_entry_term(Index(index)) == leader_log[index - 1], (
                f"acknowledged a match through {acked} in term {node.term} but differs at {index}"
            )

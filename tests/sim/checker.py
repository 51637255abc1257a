"""The safety checker: every Raft invariant, checked after every step, in O(new work).

What it keeps (the only global knowledge in a run):
- ``leaders``: term -> the one node that led in it (election safety), and the tail of its log
  (leader append-only);
- ``committed``: index -> (term, term it was known committed in) of every entry known
  committed, learned from each node's commit index as it advances (log matching on the
  committed prefix; leader completeness for leaders of that term or later);
- ``applied``: index -> (term, data) of the first application anywhere (state-machine safety:
  every node's applied sequence is then a prefix of one sequence);
- reads: the commit index known when a read was asked; the answer's read index must reach it
  (a deposed leader never serves a stale read).

Violations raise :class:`SafetyViolation` naming the invariant, the node and the tick.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TYPE_CHECKING

from raftkv.core.ready import Role
from raftkv.core.types import Entry, Index

if TYPE_CHECKING:
    from tests.sim.cluster import SimNode


class SafetyViolation(AssertionError):
    pass


class Checker:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.now = 0
        self.leaders: dict[int, int] = {}
        self._leader_tail: dict[int, tuple[int, int]] = {}
        """term -> (index, term) of the leader's last entry when last checked."""
        self.committed: dict[int, tuple[int, int]] = {}
        """index -> (entry term, lowest term at which some node knew it committed)."""
        self.commit_high = 0
        """The highest index known committed whose term we know."""
        self.applied: dict[int, tuple[int, bytes]] = {}
        self._read_floor: dict[int, int] = {}
        self.reads_served = 0

    def fail(self, what: str) -> None:
        raise SafetyViolation(f"tick {self.now}: {what}")

    # -- per node, after each of its iterations ------------------------------------------------
    def check_node(self, node: SimNode) -> None:
        raft = node.raft
        assert raft is not None
        if raft.role == Role.LEADER:
            self._check_leader(node)
        commit = raft.commit_index
        if commit < node.checked_commit:
            self.fail(f"node {node.id} commit index went back {node.checked_commit} -> {commit}")
        for index in range(node.checked_commit + 1, commit + 1):
            term = raft.log_entry_term(Index(index))
            if term is None:
                continue  # compacted: it was checked when it was live, or came in a snapshot
            self._note_committed(node.id, index, term, raft.term)
        node.checked_commit = commit

    def _note_committed(self, node_id: int, index: int, term: int, seen_in: int) -> None:
        """``node_id``, at term ``seen_in``, knows the entry (index, term) is committed."""
        known = self.committed.get(index)
        if known is None:
            self.committed[index] = (term, seen_in)
            self.commit_high = max(self.commit_high, index)
        elif known[0] != term:
            self.fail(
                f"log matching: node {node_id} committed index {index} at term {term}, "
                f"but it was committed at term {known[0]}"
            )
        elif seen_in < known[1]:
            self.committed[index] = (term, seen_in)

    def _check_leader(self, node: SimNode) -> None:
        raft = node.raft
        assert raft is not None
        term = raft.term
        other = self.leaders.setdefault(term, node.id)
        if other != node.id:
            self.fail(f"election safety: nodes {other} and {node.id} both led term {term}")
        # Leader append-only: the last entry seen at the previous check is still there.
        seen = self._leader_tail.get(term)
        if seen is not None:
            index, entry_term = seen
            have = raft.log_entry_term(Index(index))
            if have is not None and have != entry_term:
                self.fail(f"leader append-only: leader {node.id} of term {term} replaced {seen}")
            if have is None and index > raft.last_index:
                self.fail(f"leader append-only: leader {node.id} of term {term} lost {seen}")
        last = raft.last_index
        last_term = raft.log_entry_term(last)
        if last_term is not None:
            self._leader_tail[term] = (int(last), int(last_term))
        # Leader completeness: an entry known committed at term T is in the log of every leader
        # of term >= T. Checked on the newest one (log matching carries the prefix) and a sample.
        for index in self._completeness_samples():
            want, seen_in = self.committed[index]
            if term < seen_in:
                continue  # a stale leader of an older term: not bound by later commitments
            have = raft.log_entry_term(Index(index))
            if have is None and index <= raft.last_index:
                continue  # compacted away: committed by construction
            if have != want:
                self.fail(
                    f"leader completeness: leader {node.id} of term {term} has term {have} at "
                    f"committed index {index} (committed at term {want})"
                )

    def _completeness_samples(self) -> Iterable[int]:
        if not self.commit_high:
            return ()
        sample = self._rng.randint(1, self.commit_high)
        return (self.commit_high, sample) if sample in self.committed else (self.commit_high,)

    # -- applying ------------------------------------------------------------------------------
    def check_apply(self, node: SimNode, entry: Entry) -> None:
        expected = len(node.applied) + 1
        if entry.index != expected:
            self.fail(
                f"node {node.id} applied index {entry.index} after {expected - 1} "
                "(applied index must advance by exactly one)"
            )
        value = (int(entry.term), entry.data)
        known = self.applied.setdefault(int(entry.index), value)
        if known != value:
            self.fail(
                f"state-machine safety: node {node.id} applied {value} at index {entry.index}, "
                f"another node applied {known}"
            )
        assert node.raft is not None
        self._note_committed(node.id, int(entry.index), int(entry.term), node.raft.term)

    # -- reads ---------------------------------------------------------------------------------
    def note_read_asked(self, context: int) -> None:
        self._read_floor[context] = self.commit_high

    def forget_read(self, context: int) -> None:
        self._read_floor.pop(context, None)

    def check_read(self, node: SimNode, context: int, index: int) -> None:
        floor = self._read_floor.get(context)
        if floor is None:
            self.fail(f"node {node.id} served read {context}, which was never asked")
            return
        if index < floor:
            self.fail(
                f"stale read: node {node.id} served read {context} at index {index}, but index "
                f"{floor} was already committed when the read was asked"
            )
        if len(node.applied) < index:
            self.fail(f"node {node.id} served read {context} before applying index {index}")
        self.reads_served += 1

    # -- whole-cluster, sampled and final ------------------------------------------------------
    def sample_log_matching(self, nodes: list[SimNode]) -> None:
        """Pick two logs and an index where their terms agree: an earlier index must agree too."""
        live = [n for n in nodes if n.raft is not None]
        if len(live) < 2:
            return
        a, b = self._rng.sample(live, 2)
        assert a.raft is not None and b.raft is not None
        top = min(a.raft.last_index, b.raft.last_index)
        if top < 2:
            return
        index = self._rng.randint(2, top)
        term = a.raft.log_entry_term(Index(index))
        if term is None or term != b.raft.log_entry_term(Index(index)):
            return
        earlier = Index(self._rng.randint(1, index - 1))
        ta, tb = a.raft.log_entry_term(earlier), b.raft.log_entry_term(earlier)
        if ta is not None and tb is not None and ta != tb:
            self.fail(
                f"log matching: nodes {a.id} and {b.id} agree at index {index} (term {term}) "
                f"but differ at {earlier} ({ta} vs {tb})"
            )

    def check_logs_fully(self, nodes: list[SimNode]) -> None:
        """Every pair of logs: below the highest index where they agree, they agree everywhere."""
        live = [n for n in nodes if n.raft is not None]
        for i, a in enumerate(live):
            for b in live[i + 1 :]:
                self._check_pair(a, b)

    def _check_pair(self, a: SimNode, b: SimNode) -> None:
        assert a.raft is not None and b.raft is not None
        agreed = False
        for index in range(min(a.raft.last_index, b.raft.last_index), 0, -1):
            ta = a.raft.log_entry_term(Index(index))
            tb = b.raft.log_entry_term(Index(index))
            if ta is None or tb is None:
                break
            if ta == tb:
                agreed = True
            elif agreed:
                self.fail(
                    f"log matching: nodes {a.id} and {b.id} agree at a later index but differ "
                    f"at {index} ({ta} vs {tb})"
                )

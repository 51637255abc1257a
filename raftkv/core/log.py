"""The node's view of the Raft log: stable entries in storage plus an unstable in-memory tail.

Entries the node accepted but the driver has not yet persisted live in ``_unstable`` (their first
index is ``_unstable_offset``). A Ready hands them out; ``stable_to`` drops them once persisted.

Invariants:
- ``_unstable_offset == storage.last_index() + 1`` unless a truncation replaced stored entries, in
  which case ``_unstable_offset <= storage.last_index()`` and the stored suffix is stale;
- ``applied <= committed <= last_index()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftkv.core.storage import CompactedError, LogStorage, limit_size
from raftkv.core.types import Entry, Index, SnapshotMeta, Term


class RaftLog:
    def __init__(self, storage: LogStorage, applied: Index) -> None:
        self.storage = storage
        meta = storage.snapshot_meta()
        self._snapshot_index = meta.index
        self._snapshot_term = meta.term
        self.pending_snapshot: SnapshotMeta | None = None
        self._unstable: list[Entry] = []
        self._unstable_offset = Index(storage.last_index() + 1)
        self.applied = Index(max(applied, meta.index))
        # The commit index is persisted without fsync, so it may lag the state machine after a
        # machine crash; everything applied was committed (and is in the durable log), so the
        # applied index is a safe lower bound.
        self.committed = Index(max(storage.hard_state().commit, self.applied))
        if self.applied > storage.last_index():
            raise ValueError(
                f"applied index {self.applied} is beyond the last log index "
                f"{storage.last_index()}: the raft log lost entries the state machine applied"
            )

    # -- queries ------------------------------------------------------------------------------
    def first_index(self) -> Index:
        return Index(self._snapshot_index + 1)

    def last_index(self) -> Index:
        if self._unstable:
            return self._unstable[-1].index
        return Index(self._unstable_offset - 1)

    def last_term(self) -> Term:
        term = self.term(self.last_index())
        assert term is not None
        return term

    def term(self, index: Index) -> Term | None:
        """The term at ``index``, or None if compacted away or beyond the last index."""
        if index >= self._unstable_offset:
            offset = index - self._unstable_offset
            return self._unstable[offset].term if offset < len(self._unstable) else None
        if index == self._snapshot_index:
            return self._snapshot_term
        if index < self._snapshot_index:
            return None
        try:
            return self.storage.term(index)
        except CompactedError:
            return None

    def match_term(self, index: Index, term: Term) -> bool:
        found = self.term(index)
        return found is not None and found == term

    def is_up_to_date(self, last_index: Index, last_term: Term) -> bool:
        """The voting rule (Raft paper section 5.4.1): compare last term, then last index."""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    def entries(self, lo: Index, max_bytes: int | None) -> list[Entry]:
        """Entries from ``lo`` to the end (at least one if any), within ``max_bytes``."""
        hi = self.last_index() + 1
        if lo >= hi:
            return []
        if lo <= self._snapshot_index:
            raise CompactedError(f"index {lo} is compacted")
        result: list[Entry] = []
        budget = max_bytes
        if lo < self._unstable_offset:
            stable_hi = min(hi, self._unstable_offset)
            stored = self.storage.entries(lo, Index(stable_hi), budget)
            result.extend(stored)
            if len(stored) < stable_hi - lo:
                return result
            if budget is not None:
                budget -= sum(e.size_bytes() for e in stored)
                if budget <= 0:
                    return result
        start = max(lo, self._unstable_offset) - self._unstable_offset
        tail = self._unstable[start:]
        if result and budget is not None:
            # Having some entries already, add from the tail only what fits entirely.
            taken: list[Entry] = []
            for entry in tail:
                budget -= entry.size_bytes()
                if budget < 0:
                    break
                taken.append(entry)
            result.extend(taken)
        else:
            result.extend(limit_size(tail, budget))
        return result

    def find_conflict_by_term(self, index: Index, term: Term) -> Index:
        """The largest index <= ``index`` whose term is <= ``term`` (or the log start).

        Used on both sides of a rejected append to skip a whole term per round trip.
        """
        index = Index(min(index, self.last_index()))
        while index > self._snapshot_index:
            found = self.term(index)
            if found is None or found <= term:
                break
            index = Index(index - 1)
        return index

    def last_stable_index(self) -> Index:
        """The last index the driver has persisted and that is still part of our log."""
        return Index(self._unstable_offset - 1)

    def unstable_entries(self) -> Sequence[Entry]:
        return self._unstable

    def has_next_committed(self) -> bool:
        return self.committed > self.applied and self.pending_snapshot is None

    def next_committed(self, max_bytes: int) -> list[Entry]:
        if not self.has_next_committed():
            return []
        entries = self.entries(Index(self.applied + 1), max_bytes)
        return entries[: self.committed - self.applied]

    # -- changes ------------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries, replacing everything from ``entries[0].index`` on."""
        if not entries:
            return
        first = entries[0].index
        assert first > self.committed, f"cannot overwrite committed index {first}"
        if first == self._unstable_offset + len(self._unstable):
            self._unstable.extend(entries)
        elif first <= self._unstable_offset:
            # Replaces stored entries too: the driver truncates storage from `first`.
            self._unstable_offset = first
            self._unstable = list(entries)
        else:
            del self._unstable[first - self._unstable_offset :]
            self._unstable.extend(entries)

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """Position in ``entries`` of the first entry that is new or conflicts (len if none)."""
        for position, entry in enumerate(entries):
            if not self.match_term(entry.index, entry.term):
                return position
        return len(entries)

    def commit_to(self, index: Index) -> bool:
        if index > self.committed:
            assert index <= self.last_index(), f"commit {index} beyond last {self.last_index()}"
            self.committed = index
            return True
        return False

    def applied_to(self, index: Index) -> None:
        assert self.applied <= index <= self.committed, (self.applied, index, self.committed)
        self.applied = index

    def stable_to(self, index: Index, term: Term) -> None:
        """The driver persisted entries through (index, term): drop them from memory."""
        if index < self._unstable_offset or not self.match_term(index, term):
            return
        drop = index - self._unstable_offset + 1
        del self._unstable[:drop]
        self._unstable_offset = Index(index + 1)

    def restore(self, meta: SnapshotMeta) -> None:
        """Reset to a received snapshot: everything through ``meta.index`` is its state."""
        self._snapshot_index = meta.index
        self._snapshot_term = meta.term
        self.pending_snapshot = meta
        self._unstable = []
        self._unstable_offset = Index(meta.index + 1)
        self.committed = meta.index

    def stable_snapshot_to(self, meta: SnapshotMeta) -> None:
        if self.pending_snapshot is not None and self.pending_snapshot.index == meta.index:
            self.pending_snapshot = None
            self.applied = Index(max(self.applied, meta.index))

    def refresh_log_start(self) -> None:
        """Storage may have compacted: learn the new log start (the driver calls this)."""
        meta = self.storage.snapshot_meta()
        if meta.index > self._snapshot_index:
            self._snapshot_index = meta.index
            self._snapshot_term = meta.term

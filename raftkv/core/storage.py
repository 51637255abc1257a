"""The storage protocol the core reads through, and an in-memory implementation for tests.

The core only *reads* stable storage; the driver writes it from each Ready (see
:mod:`raftkv.core.ready`). :class:`MemoryStorage` also offers those writes, so simulators and tests
can play the driver. ``raftkv.storage`` implements the same protocol on LevelDB; one contract test
suite runs against both.

Index conventions: the log start ``(snapshot index, snapshot term)`` is the last entry compacted
away (0, 0 for a new log); stored entries are ``first_index() .. last_index()``; ``term()`` answers
for the log start and every stored entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from raftkv.core.membership import Membership, decode_membership
from raftkv.core.types import Entry, EntryKind, HardState, Index, SnapshotMeta, Term


class StorageError(Exception):
    pass


class CompactedError(StorageError):
    """The requested index is at or below the log start: it was compacted away."""


class LogStorage(Protocol):
    def hard_state(self) -> HardState: ...

    def snapshot_meta(self) -> SnapshotMeta:
        """The log start: index, term and membership as of the last compacted entry."""
        ...

    def first_index(self) -> Index: ...

    def last_index(self) -> Index: ...

    def term(self, index: Index) -> Term:
        """Term of the entry at ``index``; raises CompactedError below the log start."""
        ...

    def entries(self, lo: Index, hi: Index, max_bytes: int | None = None) -> Sequence[Entry]:
        """Entries in [lo, hi); at least one if lo < hi, then stop before exceeding max_bytes."""
        ...

    def membership_history(self) -> Sequence[tuple[Index, Membership]]:
        """Configurations from the configuration entries in the log after its start, in order."""
        ...


class MemoryStorage:
    """A complete in-memory :class:`LogStorage` with the writes a driver would do."""

    def __init__(self, membership: Membership) -> None:
        self._hard_state = HardState()
        self._meta = SnapshotMeta(index=Index(0), term=Term(0), membership=membership)
        self._entries: list[Entry] = []  # _entries[i].index == meta.index + 1 + i

    # -- reads (the protocol) -----------------------------------------------------------------
    def hard_state(self) -> HardState:
        return self._hard_state

    def snapshot_meta(self) -> SnapshotMeta:
        return self._meta

    def first_index(self) -> Index:
        return Index(self._meta.index + 1)

    def last_index(self) -> Index:
        return Index(self._meta.index + len(self._entries))

    def term(self, index: Index) -> Term:
        offset = index - self._meta.index
        if offset < 0:
            raise CompactedError(f"index {index} is compacted (log starts at {self._meta.index})")
        if offset == 0:
            return self._meta.term
        if offset > len(self._entries):
            raise StorageError(f"index {index} is beyond the last index {self.last_index()}")
        return self._entries[offset - 1].term

    def entries(self, lo: Index, hi: Index, max_bytes: int | None = None) -> Sequence[Entry]:
        if lo <= self._meta.index:
            raise CompactedError(f"index {lo} is compacted (log starts at {self._meta.index})")
        if hi > self.last_index() + 1:
            raise StorageError(f"index {hi - 1} is beyond the last index {self.last_index()}")
        selected = self._entries[lo - self._meta.index - 1 : hi - self._meta.index - 1]
        return _limit_size(selected, max_bytes)

    def membership_history(self) -> Sequence[tuple[Index, Membership]]:
        return [
            (e.index, decode_membership(e.data))
            for e in self._entries
            if e.kind == EntryKind.CONF_CHANGE
        ]

    # -- writes (what a driver does with a Ready) ---------------------------------------------
    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def append(self, entries: Sequence[Entry]) -> None:
        """Append, first deleting any stored suffix from ``entries[0].index`` on."""
        if not entries:
            return
        first = entries[0].index
        if first <= self._meta.index:
            raise StorageError(f"append at {first} is at or below the log start {self._meta.index}")
        if first > self.last_index() + 1:
            raise StorageError(f"append at {first} leaves a gap after {self.last_index()}")
        del self._entries[first - self._meta.index - 1 :]
        self._entries.extend(entries)

    def apply_snapshot(self, meta: SnapshotMeta) -> None:
        """Reset the log to start after ``meta`` (keeping entries that follow it and match)."""
        keep: list[Entry] = []
        holds_it = self._meta.index < meta.index <= self.last_index()
        if holds_it and self.term(meta.index) == meta.term:
            keep = self._entries[meta.index - self._meta.index :]
        self._entries = keep
        self._meta = meta

    def compact(self, index: Index, membership: Membership) -> None:
        """Drop entries up to ``index``; ``membership`` is the configuration as of ``index``."""
        if index <= self._meta.index:
            return
        if index > self.last_index():
            raise StorageError(f"cannot compact to {index} beyond the last index")
        meta = SnapshotMeta(index=index, term=self.term(index), membership=membership)
        self._entries = self._entries[index - self._meta.index :]
        self._meta = meta


def _limit_size(entries: Sequence[Entry], max_bytes: int | None) -> Sequence[Entry]:
    if max_bytes is None or not entries:
        return entries
    total = 0
    for count, entry in enumerate(entries):
        total += entry.size_bytes()
        if total > max_bytes and count > 0:
            return entries[:count]
    return entries


limit_size = _limit_size

"""One contract for every LogStorage: the core's MemoryStorage (adapted) and RaftLogStore.

Each test drives both through the driver's write API (save/compact) and checks the protocol's reads.
RaftLogStore is also reopened, so every check holds after a restart too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from raftkv.core.membership import Membership, encode_membership, membership_of
from raftkv.core.storage import CompactedError, MemoryStorage, StorageError
from raftkv.core.types import Entry, EntryKind, HardState, Index, NodeId, SnapshotMeta, Term
from raftkv.storage.log_store import RaftLogStore

M0 = membership_of([1, 2, 3])
M1 = membership_of([1, 2, 3], learners=[4])


class Store(Protocol):
    def hard_state(self) -> HardState: ...
    def snapshot_meta(self) -> SnapshotMeta: ...
    def first_index(self) -> Index: ...
    def last_index(self) -> Index: ...
    def term(self, index: Index) -> Term: ...
    def entries(self, lo: Index, hi: Index, max_bytes: int | None = None) -> Sequence[Entry]: ...
    def membership_history(self) -> Sequence[tuple[Index, Membership]]: ...
    def save(
        self,
        *,
        hard_state: HardState | None = None,
        entries: Sequence[Entry] = (),
        snapshot: SnapshotMeta | None = None,
    ) -> None: ...
    def compact(self, index: Index, membership: Membership | None = None) -> None: ...


class MemoryAdapter:
    """MemoryStorage with the driver's save/compact API."""

    def __init__(self) -> None:
        self.inner = MemoryStorage(M0)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def save(
        self,
        *,
        hard_state: HardState | None = None,
        entries: Sequence[Entry] = (),
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        if snapshot is not None:
            self.inner.apply_snapshot(snapshot)
        self.inner.append(entries)
        if hard_state is not None:
            self.inner.set_hard_state(hard_state)

    def compact(self, index: Index, membership: Membership | None = None) -> None:
        assert membership is not None
        self.inner.compact(index, membership)


class Reopening:
    """A RaftLogStore that is closed and reopened after every write, to test what is durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inner = RaftLogStore.open(path, initial_membership=M0, tail_entries=3)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def _reopen(self) -> None:
        self.inner.close()
        self.inner = RaftLogStore.open(self.path, tail_entries=3)

    def save(self, **kwargs: object) -> None:
        self.inner.save(**kwargs)  # type: ignore[arg-type]
        self._reopen()

    def compact(self, index: Index, membership: Membership | None = None) -> None:
        self.inner.compact(index, membership)
        self._reopen()


@pytest.fixture(params=["memory", "leveldb", "leveldb-reopen"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryAdapter()  # type: ignore[misc]
        return
    s: object
    if request.param == "leveldb":
        s = RaftLogStore.open(tmp_path / "raft", initial_membership=M0, tail_entries=3)
    else:
        s = Reopening(tmp_path / "raft")
    yield s  # type: ignore[misc]
    s.close()  # type: ignore[attr-defined]


def ents(lo: int, hi: int, term: int = 1, size: int = 10) -> list[Entry]:
    return [
        Entry(term=Term(term), index=Index(i), data=bytes([i % 256]) * size) for i in range(lo, hi)
    ]


def conf(index: int, term: int, membership: Membership) -> Entry:
    return Entry(
        term=Term(term),
        index=Index(index),
        kind=EntryKind.CONF_CHANGE,
        data=encode_membership(membership),
    )


def test_empty_log(store: Store) -> None:
    assert store.first_index() == 1
    assert store.last_index() == 0
    assert store.term(Index(0)) == 0
    assert store.hard_state() == HardState()
    assert store.snapshot_meta() == SnapshotMeta(index=Index(0), term=Term(0), membership=M0)
    assert store.entries(Index(1), Index(1)) == []
    assert store.membership_history() == []
    with pytest.raises(StorageError):
        store.term(Index(1))


def test_append_and_read(store: Store) -> None:
    hs = HardState(term=Term(2), vote=NodeId(1), commit=Index(3))
    store.save(hard_state=hs, entries=ents(1, 11, term=2))
    assert store.hard_state() == hs
    assert (store.first_index(), store.last_index()) == (1, 10)
    assert [store.term(Index(i)) for i in range(11)] == [0] + [2] * 10
    assert list(store.entries(Index(1), Index(11))) == ents(1, 11, term=2)
    assert list(store.entries(Index(4), Index(7))) == ents(4, 7, term=2)
    with pytest.raises(StorageError):
        store.entries(Index(5), Index(12))
    with pytest.raises(StorageError):
        store.term(Index(11))


def test_max_bytes_returns_at_least_one(store: Store) -> None:
    store.save(entries=ents(1, 11, size=100))  # each entry counts 124 bytes
    assert len(store.entries(Index(1), Index(11), max_bytes=1)) == 1
    assert len(store.entries(Index(1), Index(11), max_bytes=250)) == 2
    assert len(store.entries(Index(1), Index(11), max_bytes=248)) == 2
    assert len(store.entries(Index(1), Index(11), max_bytes=247)) == 1
    assert len(store.entries(Index(9), Index(11), max_bytes=10_000)) == 2


def test_truncate_conflicting_suffix(store: Store) -> None:
    store.save(entries=ents(1, 8, term=1))
    store.save(entries=ents(5, 7, term=2))
    assert store.last_index() == 6
    assert [store.term(Index(i)) for i in range(1, 7)] == [1, 1, 1, 1, 2, 2]
    assert list(store.entries(Index(1), Index(7))) == ents(1, 5) + ents(5, 7, term=2)


def test_append_with_gap_or_below_start_refused(store: Store) -> None:
    store.save(entries=ents(1, 4))
    with pytest.raises(StorageError):
        store.save(entries=ents(6, 8))
    store.compact(Index(2), M0)
    with pytest.raises(StorageError):
        store.save(entries=ents(2, 4))
    assert store.last_index() == 3


def test_compaction(store: Store) -> None:
    store.save(entries=ents(1, 11, term=3))
    store.compact(Index(4), M0)
    assert store.snapshot_meta() == SnapshotMeta(index=Index(4), term=Term(3), membership=M0)
    assert (store.first_index(), store.last_index()) == (5, 10)
    assert store.term(Index(4)) == 3
    with pytest.raises(CompactedError):
        store.term(Index(3))
    with pytest.raises(CompactedError):
        store.entries(Index(4), Index(6))
    assert list(store.entries(Index(5), Index(11))) == ents(5, 11, term=3)
    store.compact(Index(2), M0)  # behind the start: nothing happens
    assert store.first_index() == 5
    with pytest.raises(StorageError):
        store.compact(Index(11), M0)
    store.compact(Index(10), M0)
    assert (store.first_index(), store.last_index()) == (11, 10)
    store.save(entries=ents(11, 12, term=4))
    assert store.term(Index(11)) == 4


def test_snapshot_resets_log(store: Store) -> None:
    store.save(entries=ents(1, 6, term=1))
    meta = SnapshotMeta(index=Index(20), term=Term(3), membership=M1)
    store.save(snapshot=meta, entries=ents(21, 23, term=3), hard_state=HardState(term=Term(3)))
    assert store.snapshot_meta() == meta
    assert (store.first_index(), store.last_index()) == (21, 22)
    assert store.term(Index(20)) == 3
    assert list(store.entries(Index(21), Index(23))) == ents(21, 23, term=3)


def test_snapshot_keeps_matching_suffix(store: Store) -> None:
    store.save(entries=ents(1, 11, term=2))
    meta = SnapshotMeta(index=Index(6), term=Term(2), membership=M0)
    store.save(snapshot=meta)
    assert (store.first_index(), store.last_index()) == (7, 10)
    assert list(store.entries(Index(7), Index(11))) == ents(7, 11, term=2)


def test_snapshot_drops_mismatching_suffix(store: Store) -> None:
    store.save(entries=ents(1, 11, term=2))
    meta = SnapshotMeta(index=Index(6), term=Term(3), membership=M0)
    store.save(snapshot=meta)
    assert (store.first_index(), store.last_index()) == (7, 6)


def test_membership_history(store: Store) -> None:
    store.save(entries=[*ents(1, 3), conf(3, 1, M1), *ents(4, 6), conf(6, 1, M0)])
    assert list(store.membership_history()) == [(3, M1), (6, M0)]
    store.save(entries=ents(6, 8, term=2))  # truncates the second configuration
    assert list(store.membership_history()) == [(3, M1)]
    store.compact(Index(3), M1)
    assert list(store.membership_history()) == []
    assert store.snapshot_meta().membership == M1


def test_hard_state_alone(store: Store) -> None:
    store.save(hard_state=HardState(term=Term(5), vote=NodeId(2)))
    store.save(hard_state=HardState(term=Term(5), vote=NodeId(2), commit=Index(0)))
    assert store.hard_state() == HardState(term=Term(5), vote=NodeId(2))


def test_random_operations_agree(tmp_path: Path) -> None:
    """A seeded random mix of writes leaves both implementations identical."""
    import random

    rng = random.Random(7)
    memory = MemoryAdapter()
    disk = RaftLogStore.open(tmp_path / "raft", initial_membership=M0, tail_entries=5)
    stores: list[Store] = [memory, disk]  # type: ignore[list-item]
    term = 1
    for _ in range(400):
        op = rng.random()
        last, first = disk.last_index(), disk.first_index()
        action: Callable[[Store], None]
        if op < 0.6:
            lo = rng.randint(first, last + 1)
            term += rng.random() < 0.2
            batch = ents(lo, lo + rng.randint(1, 20), term=term)
            hs = HardState(term=Term(term), commit=Index(min(last, rng.randint(0, last))))
            action = lambda s, b=batch, h=hs: s.save(entries=b, hard_state=h)  # noqa: E731
        elif op < 0.8 and last >= first:
            index = Index(rng.randint(first - 1, last))
            action = lambda s, i=index: s.compact(i, M0)  # noqa: E731
        else:
            idx = Index(rng.randint(max(0, first - 1), last + 5))
            t = Term(term if idx > last else disk.term(idx) if idx >= first - 1 else term)
            meta = SnapshotMeta(index=idx, term=t, membership=M0)
            action = lambda s, m=meta: s.save(snapshot=m)  # noqa: E731
        for s in stores:
            action(s)
        assert disk.snapshot_meta() == memory.snapshot_meta()
        assert disk.last_index() == memory.last_index()
        assert disk.hard_state() == memory.hard_state()
        f, la = disk.first_index(), disk.last_index()
        assert list(disk.entries(f, Index(la + 1))) == list(memory.entries(f, Index(la + 1)))
        lo = Index(rng.randint(f, la + 1))
        assert list(disk.entries(lo, Index(la + 1), max_bytes=200)) == list(
            memory.entries(lo, Index(la + 1), max_bytes=200)
        )
    disk.close()
    reopened = RaftLogStore.open(tmp_path / "raft")
    f, la = reopened.first_index(), reopened.last_index()
    assert list(reopened.entries(f, Index(la + 1))) == list(memory.entries(f, Index(la + 1)))
    assert reopened.hard_state() == memory.hard_state()
    reopened.close()

"""The raft log's write-ahead journal: what LevelDB held at its last checkpoint plus the journal
is the whole log, after any crash, a torn last record and any number of wrap-arounds; damage in
the middle refuses to start; a journal never replays into a database that is not its own.

A power loss is modelled by copying the LevelDB directory while it holds only what was made
durable by a checkpoint (writes since then went to LevelDB without sync and may be lost), then
opening that copy with the journal as it is after the last acknowledged write.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from raftkv.core.membership import membership_of
from raftkv.core.types import Entry, HardState, Index, NodeId, Term
from raftkv.storage import CorruptLogError, RaftLogStore
from raftkv.storage.journal import (
    DIRECT_BYTES,
    EXTEND_BYTES,
    GENERATION_KEY,
    Journal,
    decode_ops,
    encode_ops,
)
from raftkv.storage.leveldb import LevelDB
from raftkv.storage.log_store import journal_path_for

M0 = membership_of([1])


def entries(lo: int, hi: int, term: int) -> list[Entry]:
    return [
        Entry(term=Term(term), index=Index(i), data=b"t%d-%d" % (term, i))
        for i in range(lo, hi + 1)
    ]


def lost_power(live: Path, durable_copy: Path, into: Path) -> Path:
    """A data directory as a power loss leaves it: LevelDB as copied at its last durable point,
    the journal as it is now."""
    raft = into / "raft"
    shutil.copytree(durable_copy, raft)
    shutil.copyfile(journal_path_for(live), journal_path_for(raft))
    return raft


def fresh_store(path: Path) -> RaftLogStore:
    """A new log, closed once, so its journal holds no record yet (creating it writes one)."""
    RaftLogStore.open(path, initial_membership=M0).close()
    return RaftLogStore.open(path)


def snapshot_dir(path: Path, into: Path) -> Path:
    shutil.copytree(path, into)
    return into


def log_of(store: RaftLogStore) -> list[tuple[int, int, bytes]]:
    stored = store.entries(store.first_index(), Index(store.last_index() + 1))
    return [(e.index, e.term, e.data) for e in stored]


def test_ops_round_trip() -> None:
    ops = [(b"a", b"1"), (b"b", None), (b"", b""), (b"k" * 300, b"v" * 70000)]
    assert decode_ops(encode_ops(ops)) == ops


def test_a_power_loss_after_the_last_checkpoint_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live" / "raft"
    store = RaftLogStore.open(live, initial_membership=M0)
    store.save(entries=entries(1, 5, 1), hard_state=HardState(term=Term(1)))
    store.close()  # a clean close checkpoints: LevelDB alone now holds 1..5
    store = RaftLogStore.open(live)
    durable = snapshot_dir(live, tmp_path / "durable")
    store.save(entries=entries(6, 10, 1), hard_state=HardState(term=Term(1), commit=Index(4)))
    # A new leader's entries replace an uncommitted suffix; then the log is compacted.
    store.save(entries=entries(8, 12, 2), hard_state=HardState(term=Term(2), vote=NodeId(1)))
    store.compact(Index(3))
    expected = log_of(store)
    expected_state = store.hard_state()

    crashed = RaftLogStore.open(lost_power(live, durable, tmp_path / "crashed"))
    try:
        assert log_of(crashed) == expected
        assert crashed.first_index() == 4
        assert crashed.hard_state() == expected_state
    finally:
        crashed.close()
        store.close()


def test_replay_over_a_database_that_kept_some_of_the_unsynced_writes(tmp_path: Path) -> None:
    """LevelDB may have kept any prefix of the writes since the checkpoint: replaying records
    it already holds must not undo what later records did."""
    live = tmp_path / "live" / "raft"
    store = fresh_store(live)
    store.save(entries=entries(1, 10, 1))
    store.save(entries=entries(5, 6, 2))  # truncates 7..10
    partial = snapshot_dir(live, tmp_path / "partial")  # LevelDB holds both writes already
    store.save(entries=entries(7, 8, 2))
    expected = log_of(store)
    crashed = RaftLogStore.open(lost_power(live, partial, tmp_path / "crashed"))
    try:
        assert log_of(crashed) == expected
        assert crashed.last_index() == 8
    finally:
        crashed.close()
        store.close()


def written(tmp_path: Path, *ranges: tuple[int, int]) -> tuple[Path, bytearray]:
    """A copy of a fresh log's LevelDB before any write, and its journal after one save of
    entries lo..hi (term 1) per range."""
    live = tmp_path / "live" / "raft"
    store = fresh_store(live)
    durable = snapshot_dir(live, tmp_path / "durable")
    for lo, hi in ranges:
        store.save(entries=entries(lo, hi, 1))
    journal = bytearray(journal_path_for(live).read_bytes())
    store.close()
    return durable, journal


def with_journal(durable: Path, journal: bytearray, into: Path) -> Path:
    raft = into / "raft"
    shutil.copytree(durable, raft)
    journal_path_for(raft).write_bytes(bytes(journal))
    return raft


def test_a_torn_last_record_is_dropped_and_the_rest_replayed(tmp_path: Path) -> None:
    durable, journal = written(tmp_path, (1, 3), (4, 4), (5, 5))
    # The journal as a crash in the middle of the third write leaves it: that record cut short.
    third_end = _record_end(journal, 3)
    torn = journal[: third_end - 5] + bytes(len(journal) - third_end + 5)
    crashed = RaftLogStore.open(with_journal(durable, torn, tmp_path / "crashed"))
    try:
        assert crashed.last_index() == 4
    finally:
        crashed.close()


def test_damage_before_a_good_record_refuses_to_start_naming_the_file(tmp_path: Path) -> None:
    durable, journal = written(tmp_path, (1, 3), (4, 4))
    journal[_record_end(journal, 1) - 1] ^= 0x01  # the first record's last payload byte
    raft = with_journal(durable, journal, tmp_path / "crashed")
    with pytest.raises(CorruptLogError) as err:
        RaftLogStore.open(raft)
    message = str(err.value)
    assert str(journal_path_for(raft)) in message
    assert "offset 0" in message and "damaged" in message


def test_wrapping_around_keeps_every_write(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    db = LevelDB.open(path, create=True)
    journal = Journal.open(journal_path_for(path), db, max_bytes=EXTEND_BYTES)
    durable = tmp_path / "durable"
    value = b"v" * 1000
    generation, since_checkpoint = 0, 0
    for i in range(3000):  # about 3 MB of records: the 1 MiB journal wraps around twice
        with db.batch(sync=True, journal=journal) as batch:
            batch.put(b"k%05d" % i, value)
        now = int.from_bytes(db.get(GENERATION_KEY) or bytes(8), "big")
        since_checkpoint += 1
        if now != generation:  # a checkpoint: LevelDB alone is durable up to here
            generation, since_checkpoint = now, 0
            shutil.rmtree(durable, ignore_errors=True)
            snapshot_dir(path, durable)
    assert generation >= 2
    assert since_checkpoint > 100  # the crash below depends on the journal for these
    assert journal_path_for(path).stat().st_size == EXTEND_BYTES
    crashed = tmp_path / "crashed"
    shutil.copytree(durable, crashed)
    shutil.copyfile(journal_path_for(path), journal_path_for(crashed))
    journal.close()
    db.close()
    db2 = LevelDB.open(crashed, create=False)
    try:
        Journal.open(journal_path_for(crashed), db2, max_bytes=EXTEND_BYTES).close()
        assert sum(1 for _ in db2.keys(start=b"k", stop=b"l")) == 3000
    finally:
        db2.close()


def test_a_batch_bigger_than_the_journal_is_written_synced(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    db = LevelDB.open(path, create=True)
    journal = Journal.open(journal_path_for(path), db, max_bytes=EXTEND_BYTES)
    with db.batch(sync=True, journal=journal) as batch:
        batch.put(b"small", b"1")
    with db.batch(sync=True, journal=journal) as batch:
        batch.put(b"big", b"x" * (EXTEND_BYTES + 1))
    assert db.get(b"big") == b"x" * (EXTEND_BYTES + 1)
    assert db.get(b"small") == b"1"
    assert journal.append([(b"after", b"2")]) is True
    journal.close()
    db.close()


def test_a_large_batch_skips_only_an_empty_journal(tmp_path: Path) -> None:
    """A large batch on an empty journal is synced by LevelDB itself (nothing journaled is
    waiting to be replayed before it); once the journal holds a record, large batches are
    journaled too, or a replay would apply that older record over them."""
    live = tmp_path / "live" / "raft"
    store = fresh_store(live)
    large = (DIRECT_BYTES // 256) + 10  # entries of about 256 B
    untouched = journal_path_for(live).read_bytes()
    store.save(
        entries=[Entry(term=Term(1), index=Index(i), data=b"x" * 256) for i in range(1, large + 1)]
    )
    assert journal_path_for(live).read_bytes() == untouched  # LevelDB synced it, not the journal
    durable = snapshot_dir(live, tmp_path / "durable")  # LevelDB synced it: durable from here
    store.save(entries=entries(large + 1, large + 1, 1), hard_state=HardState(term=Term(1)))
    second = large + 2
    store.save(
        entries=[
            Entry(term=Term(2), index=Index(i), data=b"y" * 256)
            for i in range(second, second + large)
        ],
        hard_state=HardState(term=Term(2), vote=NodeId(1)),
    )
    expected, expected_state = log_of(store), store.hard_state()
    crashed = RaftLogStore.open(lost_power(live, durable, tmp_path / "crashed"))
    try:
        assert log_of(crashed) == expected
        assert crashed.hard_state() == expected_state
    finally:
        crashed.close()
        store.close()


def test_a_journal_left_without_its_database_is_not_replayed_into_a_new_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d" / "raft"
    store = RaftLogStore.open(path, initial_membership=M0)
    store.save(entries=entries(1, 5, 1))
    journal = journal_path_for(path).read_bytes()
    store.close()
    shutil.rmtree(path)
    journal_path_for(path).write_bytes(journal)  # as if only the database had been removed
    fresh = RaftLogStore.open(path, initial_membership=M0)
    try:
        assert fresh.last_index() == 0
    finally:
        fresh.close()


def _record_end(data: bytearray, n: int) -> int:
    """Offset just past the n-th record (crc u32, length u32, generation u64, payload)."""
    offset = 0
    for _ in range(n):
        length = int.from_bytes(data[offset + 4 : offset + 8], "little")
        offset += 16 + length
    return offset

"""The raft log's format version: new logs are format 2, a format-1 log (a CRC-32 inside every
entry) is verified and rewritten once, atomically, and an unknown version is refused."""

from __future__ import annotations

import logging
from pathlib import Path

import plyvel
import pytest

from raftkv.core.membership import encode_membership, membership_of
from raftkv.core.types import Entry, EntryKind, HardState, Index, NodeId, SnapshotMeta, Term
from raftkv.storage import CorruptLogError, DataDirError, RaftLogStore, codec
from tests.storage.format1 import encode_entry_v1

M0 = membership_of([1, 2, 3])
M1 = membership_of([1, 2, 3, 4])


def old_entries() -> list[Entry]:
    entries = [Entry(term=Term(2), index=Index(i), data=b"cmd-%d" % i) for i in range(6, 16)]
    entries[4] = Entry(
        term=Term(2), index=Index(10), kind=EntryKind.CONF_CHANGE, data=encode_membership(M1)
    )
    return entries


def write_format_1_log(path: Path, entries: list[Entry]) -> None:
    """A log as format 1 left it: log start at 5, hard state, entries 6..15, no format record."""
    path.mkdir(parents=True)
    db = plyvel.DB(str(path), create_if_missing=True)
    with db.write_batch(sync=True) as batch:
        start = SnapshotMeta(index=Index(5), term=Term(1), membership=M0)
        batch.put(codec.LOG_START_KEY, codec.encode_log_start(start))
        hard_state = HardState(term=Term(2), vote=NodeId(1), commit=Index(12))
        batch.put(codec.HARD_STATE_KEY, codec.encode_hard_state(hard_state))
        for entry in entries:
            batch.put(codec.entry_key(entry.index), encode_entry_v1(entry))
    db.close()


def stored(path: Path, key: bytes) -> bytes | None:
    db = plyvel.DB(str(path))
    try:
        value = db.get(key)
    finally:
        db.close()
    return value


def test_new_log_records_format_2(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    RaftLogStore.open(path, initial_membership=M0).close()
    assert stored(path, codec.FORMAT_KEY) == codec.encode_format()
    assert codec.decode_format(codec.encode_format()) == codec.FORMAT_VERSION == 2


def test_format_1_log_is_rewritten_on_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "raft"
    entries = old_entries()
    write_format_1_log(path, entries)
    with caplog.at_level(logging.INFO, logger="raftkv.storage.log_store"):
        store = RaftLogStore.open(path)
    assert "rewrote 10 entries from format 1 to format 2" in caplog.text
    assert store.entries(Index(6), Index(16)) == entries
    assert store.hard_state() == HardState(term=Term(2), vote=NodeId(1), commit=Index(12))
    assert store.membership_history() == [(Index(10), M1)]
    store.save(entries=[Entry(term=Term(3), index=Index(16), data=b"new")])
    store.close()

    # On disk it is format 2 now, record by record, and opens without another rewrite.
    assert stored(path, codec.FORMAT_KEY) == codec.encode_format()
    assert stored(path, codec.entry_key(7)) == codec.encode_entry(entries[1])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="raftkv.storage.log_store"):
        store = RaftLogStore.open(path)
    assert "rewrote" not in caplog.text
    assert store.entries(Index(6), Index(17)) == [
        *entries,
        Entry(term=Term(3), index=Index(16), data=b"new"),
    ]
    store.close()


def test_damaged_format_1_log_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    entries = old_entries()
    write_format_1_log(path, entries)
    damaged = bytearray(encode_entry_v1(entries[3]))
    damaged[-1] ^= 0x01  # the data: only format 1's CRC can tell
    db = plyvel.DB(str(path))
    db.put(codec.entry_key(9), bytes(damaged), sync=True)
    db.close()
    with pytest.raises(CorruptLogError) as err:
        RaftLogStore.open(path)
    message = str(err.value)
    assert str(path) in message and "index 9: checksum mismatch" in message
    # Nothing was rewritten: still format 1, the good records as they were.
    assert stored(path, codec.FORMAT_KEY) is None
    assert stored(path, codec.entry_key(6)) == encode_entry_v1(entries[0])


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    RaftLogStore.open(path, initial_membership=M0).close()
    db = plyvel.DB(str(path))
    db.put(codec.FORMAT_KEY, codec.encode_u64(3), sync=True)
    db.close()
    with pytest.raises(DataDirError, match=r"has format version 3; this raftkv reads versions 1"):
        RaftLogStore.open(path)

"""A damaged raft log refuses to open, naming the directory, the index and the problem."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from raftkv.core.membership import membership_of
from raftkv.core.types import Entry, HardState, Index, Term
from raftkv.storage import CorruptLogError, RaftLogStore, codec

M0 = membership_of([1])


def make_log(path: Path, n: int = 20) -> None:
    store = RaftLogStore.open(path, initial_membership=M0)
    store.save(
        entries=[Entry(term=Term(1), index=Index(i), data=b"x%d" % i) for i in range(1, n + 1)],
        hard_state=HardState(term=Term(1)),
    )
    store.close()


def rewrite(path: Path, key: bytes, value: bytes | None) -> None:
    db = plyvel.DB(str(path))
    if value is None:
        db.delete(key, sync=True)
    else:
        db.put(key, value, sync=True)
    db.close()


def test_bad_checksum_names_the_index(tmp_path: Path) -> None:
    path = tmp_path / "d" / "raft"
    make_log(path)
    db = plyvel.DB(str(path))
    value = bytearray(db.get(codec.entry_key(7)))
    db.close()
    value[-1] ^= 0x40  # the entry's data, so only the checksum can tell
    rewrite(path, codec.entry_key(7), bytes(value))
    with pytest.raises(CorruptLogError) as err:
        RaftLogStore.open(path)
    message = str(err.value)
    assert str(path) in message and "index 7" in message and "checksum mismatch" in message


def test_gap_names_the_missing_indexes(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    make_log(path)
    rewrite(path, codec.entry_key(12), None)
    with pytest.raises(CorruptLogError, match=r"index 13: gap: entries 12..12 are missing"):
        RaftLogStore.open(path)


def test_entry_moved_to_another_index_detected(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    make_log(path)
    db = plyvel.DB(str(path))
    value = db.get(codec.entry_key(3))
    db.close()
    rewrite(path, codec.entry_key(4), value)
    with pytest.raises(CorruptLogError, match="index 4: checksum mismatch"):
        RaftLogStore.open(path)


def test_damaged_hard_state_and_log_start(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    make_log(path)
    rewrite(path, codec.HARD_STATE_KEY, b"\x00" * 28)
    with pytest.raises(CorruptLogError, match="hard state record: checksum mismatch"):
        RaftLogStore.open(path)
    rewrite(path, codec.LOG_START_KEY, b"junk")
    with pytest.raises(CorruptLogError, match="log start record"):
        RaftLogStore.open(path)


def test_truncated_entry_record(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    make_log(path)
    rewrite(path, codec.entry_key(20), b"\x01\x02")
    with pytest.raises(CorruptLogError, match="index 20: entry record is 2 bytes"):
        RaftLogStore.open(path)

"""A damaged raft log refuses to open, naming the directory, the index and the problem."""

from __future__ import annotations

import os
import re
from pathlib import Path

import plyvel
import pytest

from raftkv.core.membership import membership_of
from raftkv.core.types import Entry, HardState, Index, Term
from raftkv.storage import CorruptLogError, DataDirError, RaftLogStore, codec

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


def damage(file: Path, offset: int) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= 0x40
    file.write_bytes(bytes(data))


def largest(path: Path, suffix: str) -> Path:
    return max(path.glob(f"*{suffix}"), key=lambda f: f.stat().st_size)


def test_damaged_table_block_names_the_index(tmp_path: Path) -> None:
    """A flipped bit anywhere in the entries' table file fails LevelDB's block checksum during
    the open-time scan; the message names the directory and the first index not verified."""
    for offset in range(0, 20_000, 1_999):
        path = tmp_path / str(offset) / "raft"
        store = RaftLogStore.open(path, initial_membership=M0)
        # Random 200 B payloads: incompressible, so the table is about 21 KB of data blocks.
        store.save(
            entries=[
                Entry(term=Term(1), index=Index(i), data=os.urandom(200)) for i in range(1, 101)
            ],
            hard_state=HardState(term=Term(1)),
        )
        store.close()  # a clean close leaves every entry in a table (the journal checkpoints)
        table = largest(path, ".ldb")
        assert table.stat().st_size > 20_000
        damage(table, offset)
        with pytest.raises(CorruptLogError) as err:
            RaftLogStore.open(path)
        message = str(err.value)
        assert str(path) in message and "checksum mismatch" in message
        assert re.search(r"index \d+ or the entries after it", message), message


def test_damaged_leveldb_log_record_refuses_to_open(tmp_path: Path) -> None:
    """Writes not yet in a table are in LevelDB's own log; paranoid_checks makes a damaged record
    there fail the open instead of being skipped."""
    path = tmp_path / "raft"
    make_log(path)
    entry = Entry(term=Term(1), index=Index(21), data=os.urandom(4000))
    rewrite(path, codec.entry_key(21), codec.encode_entry(entry))  # synced, left in the log
    damage(largest(path, ".log"), 2000)
    with pytest.raises(DataDirError, match=rf"LevelDB at {re.escape(str(path))} is damaged"):
        RaftLogStore.open(path)


def test_gap_names_the_missing_indexes(tmp_path: Path) -> None:
    path = tmp_path / "raft"
    make_log(path)
    rewrite(path, codec.entry_key(12), None)
    with pytest.raises(CorruptLogError, match=r"index 13: gap: entries 12..12 are missing"):
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

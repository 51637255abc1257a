"""LevelDB.sync(): every earlier write durable, also across LevelDB's switch of log files.

A synced write fsyncs only LevelDB's current log file. The file it switched away from when a
memtable filled was closed without a sync; its writes are durable once that memtable is in a
(synced) table, when LevelDB deletes the file. The compactor drops raft log entries on the
strength of sync(), so after it no write may be left in such a file.
"""

from __future__ import annotations

from pathlib import Path

from raftkv.storage.leveldb import LevelDB

MB = 1 << 20


def test_after_sync_no_write_is_left_in_an_older_log_file(tmp_path: Path) -> None:
    db = LevelDB.open(tmp_path / "db", create=True)
    try:
        value = b"v" * MB
        for round_ in range(8):
            # Past LevelDB's 4 MB write buffer: a new log file, the old one left unsynced.
            with db.batch(sync=False) as batch:
                for i in range(5):
                    batch.put(b"big/%d/%d" % (round_, i), value)
            with db.batch(sync=False) as batch:
                batch.put(b"small/%d" % round_, b"x")
            db.sync()
            logs = db.log_files()
            assert len(logs) == 1, f"round {round_}: writes left in unsynced {logs[:-1]}"
    finally:
        db.close()
    reopened = LevelDB.open(tmp_path / "db", create=False)
    try:
        assert reopened.get(b"small/7") == b"x" and reopened.get(b"big/7/4") == value
    finally:
        reopened.close()


def test_sync_without_a_log_switch_leaves_the_writes_in_the_log(tmp_path: Path) -> None:
    """The common case costs one synced write, not a memtable flush."""
    db = LevelDB.open(tmp_path / "db", create=True)
    try:
        with db.batch(sync=False) as batch:
            batch.put(b"marker-key-0123456789", b"marker-value")
        db.sync()
        (log_file,) = db.log_files()
        assert b"marker-key-0123456789" in log_file.read_bytes()
        assert not list((tmp_path / "db").glob("*.ldb"))
    finally:
        db.close()

"""The one place that imports plyvel: a small typed wrapper over a LevelDB database.

Rules:
- plyvel's errors never escape: a held LOCK becomes :class:`DataDirInUseError` ("already in use by
  another process"), anything else :class:`DataDirError` naming the path.
- Writes go through :class:`Batch` (one LevelDB WriteBatch); ``sync=True`` means the batch is on
  disk (fsync of LevelDB's log) when ``write`` returns.
- Reads can be taken from a point-in-time :class:`Snapshot`, which later writes do not disturb.
- Every read from disk verifies LevelDB's block checksums (``verify_checksums``; blocks already in
  the cache were verified when read) and the open verifies its write-ahead log records
  (``paranoid_checks``): LevelDB's CRC-32C is the integrity check of every record raftkv stores.
  A failure raises :class:`CorruptDatabaseError` naming the database and LevelDB's finding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import plyvel

from raftkv.storage.errors import CorruptDatabaseError, DataDirError, DataDirInUseError

log = logging.getLogger(__name__)

_SYNC_KEY = b"\xffsync"
"""Written with sync=True by :meth:`LevelDB.sync` to force earlier unsynced writes to disk."""
_PAST_EVERY_KEY = b"\xff" * 32


def _message(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def _corrupt(path: Path, exc: BaseException) -> CorruptDatabaseError:
    return CorruptDatabaseError(f"LevelDB at {path} is damaged: {_message(exc)}")


def _get(source: Any, path: Path, key: bytes) -> bytes | None:
    try:
        value = source.get(key, verify_checksums=True)
    except plyvel.CorruptionError as exc:
        raise _corrupt(path, exc) from None
    return None if value is None else bytes(value)


def _pairs(
    source: Any, path: Path, start: bytes | None, stop: bytes | None
) -> Iterator[tuple[bytes, bytes]]:
    try:
        with source.iterator(start=start, stop=stop, verify_checksums=True) as it:
            for key, value in it:
                yield bytes(key), bytes(value)
    except plyvel.CorruptionError as exc:
        raise _corrupt(path, exc) from None


def _keys(source: Any, path: Path, start: bytes | None, stop: bytes | None) -> Iterator[bytes]:
    try:
        with source.iterator(
            start=start, stop=stop, include_value=False, verify_checksums=True
        ) as it:
            for key in it:
                yield bytes(key)
    except plyvel.CorruptionError as exc:
        raise _corrupt(path, exc) from None


class JournalLike(Protocol):
    """What a batch needs of raftkv.storage.journal.Journal."""

    def append(self, ops: Sequence[tuple[bytes, bytes | None]]) -> bool: ...


class Batch:
    """Puts and deletes applied atomically by :meth:`write` (or on leaving a ``with`` block).

    With a ``journal`` (raftkv.storage.journal), a synced batch is made durable by the journal
    and written to LevelDB without sync."""

    __slots__ = ("_batch", "_db", "_journal", "_ops", "_written", "count")

    def __init__(self, db: Any, *, sync: bool, journal: JournalLike | None = None) -> None:
        journaled = sync and journal is not None
        self._db = db
        self._batch = db.write_batch(sync=sync and not journaled)
        self._journal = journal if journaled else None
        self._ops: list[tuple[bytes, bytes | None]] | None = [] if journaled else None
        self._written = False
        self.count = 0

    def put(self, key: bytes, value: bytes) -> None:
        self._batch.put(key, value)
        if self._ops is not None:
            self._ops.append((key, value))
        self.count += 1

    def delete(self, key: bytes) -> None:
        self._batch.delete(key)
        if self._ops is not None:
            self._ops.append((key, None))
        self.count += 1

    def put_from(self, fill: Callable[[Callable[[bytes, bytes], object]], int]) -> None:
        """Run ``fill(put)``: it calls ``put(key, value)`` for each pair and returns how many. For
        a hot loop that encodes and puts in one step; without a journal, ``put`` is the
        WriteBatch's own, so the loop makes no other call per item."""
        self.count += fill(self._batch.put if self._ops is None else self._put_journaled)

    def _put_journaled(self, key: bytes, value: bytes) -> None:
        self._batch.put(key, value)
        assert self._ops is not None
        self._ops.append((key, value))

    def apply(self, ops: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Put each (key, value); delete each (key, None)."""
        for key, value in ops:
            if value is None:
                self.delete(key)
            else:
                self.put(key, value)

    def write(self) -> None:
        assert not self._written, "a batch is written once"
        self._written = True
        if self._journal is None or self._ops is None or self._journal.append(self._ops):
            self._batch.write()
        else:  # too big for the journal, which is now empty: LevelDB syncs it itself
            with Batch(self._db, sync=True) as synced:
                synced.apply(self._ops)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # On an exception nothing is written: the batch is all or nothing.
        if exc_type is None and not self._written:
            self.write()


class Snapshot:
    """A consistent, point-in-time view of a database; close it when done."""

    def __init__(self, snapshot: Any, path: Path) -> None:
        self._snapshot = snapshot
        self._path = path

    def get(self, key: bytes) -> bytes | None:
        return _get(self._snapshot, self._path, key)

    def items(
        self, *, start: bytes | None = None, stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        return _pairs(self._snapshot, self._path, start, stop)

    def close(self) -> None:
        self._snapshot.close()


class LevelDB:
    """An open LevelDB database at ``path``."""

    def __init__(self, db: Any, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool) -> LevelDB:
        """Open (and with ``create``, create) the database; refuse if another process holds it."""
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = plyvel.DB(str(path), create_if_missing=create, paranoid_checks=True)
        except plyvel.IOError as exc:
            text = _message(exc)
            if "lock" in text.lower():
                raise DataDirInUseError(
                    f"data directory {path} is already in use by another process ({text})"
                ) from None
            raise DataDirError(f"cannot open LevelDB at {path}: {text}") from None
        except plyvel.CorruptionError as exc:
            raise _corrupt(path, exc) from None
        except plyvel.Error as exc:
            raise DataDirError(f"cannot open LevelDB at {path}: {_message(exc)}") from None
        return cls(db, path)

    def get(self, key: bytes) -> bytes | None:
        return _get(self._db, self.path, key)

    def items(
        self, *, start: bytes | None = None, stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Key/value pairs with start <= key < stop, in key order."""
        return _pairs(self._db, self.path, start, stop)

    def keys(self, *, start: bytes | None = None, stop: bytes | None = None) -> Iterator[bytes]:
        return _keys(self._db, self.path, start, stop)

    def batch(self, *, sync: bool, journal: JournalLike | None = None) -> Batch:
        return Batch(self._db, sync=sync, journal=journal)

    def snapshot(self) -> Snapshot:
        return Snapshot(self._db.snapshot(), self.path)

    def sync(self) -> None:
        """Make every earlier write durable.

        One synced write makes LevelDB's current log file durable up to it, and so every earlier
        write in that file. But when a memtable fills, LevelDB starts a new log file and closes
        the old one without syncing it; the old file's writes become durable when its memtable
        has been written to a synced table, and only then does LevelDB delete the file. So an
        older log file still present means writes not yet durable: flush them (rare, and short:
        LevelDB is already writing that table)."""
        self._db.put(_SYNC_KEY, b"", sync=True)
        if len(self.log_files()) > 1:
            self.flush()

    def log_files(self) -> list[Path]:
        """LevelDB's write-ahead log files (``NNNNNN.log``; its info log is ``LOG``)."""
        return sorted(self.path.glob("*.log"))

    def flush(self) -> None:
        """Make every earlier write durable, also across LevelDB's log switches: the memtable is
        written to a synced table (and the manifest synced) before this returns. The empty key
        range past every key keeps the compaction itself to the memtable."""
        self._db.compact_range(start=_PAST_EVERY_KEY, stop=_PAST_EVERY_KEY)

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()

    @property
    def closed(self) -> bool:
        return bool(self._db.closed)


def is_internal_key(key: bytes) -> bool:
    """Keys this wrapper writes for its own purposes (not part of any caller's layout)."""
    return key == _SYNC_KEY

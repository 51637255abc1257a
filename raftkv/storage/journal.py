"""A write-ahead journal that makes the raft log's LevelDB writes durable with one cheap fdatasync.

Why: a synced LevelDB write appends to a log file that grows, so each fdatasync also commits the
file's new size through the filesystem's own journal. Overwriting zeros already on disk needs no
metadata: with three nodes syncing to one disk at once, a 300-byte synced LevelDB write took
0.35 ms and a write+fdatasync into a zero-filled file 0.23 ms (bench/PROFILE.md, section 6).
Every raft log write waits for one, on the leader and on the follower of a lone put.

How:
- One file, ``raft.journal`` next to the log's LevelDB. Its zeros are written ahead of the
  records, ``EXTEND_BYTES`` at a time (each step synced once), up to ``max_bytes``.
- A batch is journaled (record appended, fdatasync), then written to LevelDB WITHOUT sync. A
  record is the batch's exact puts and deletes, so replaying one that LevelDB already holds
  changes nothing: the last write to each key wins, whatever the starting state.
- Record: crc32 (over the rest), payload length, generation, payload. The current generation
  is kept in LevelDB itself (``GENERATION_KEY``). On open, records of that generation are read
  from offset 0 and replayed in order, up to the first one that is not (zeros, an older
  generation, or a write torn by a crash).
- A checkpoint (when the journal is full, and after a replay) puts generation + 1 and flushes
  LevelDB's memtable to a synced table (``LevelDB.flush``): every earlier write is then durable
  in LevelDB, every old record is dead, and writing starts again at offset 0.
- A bad record followed by a good record of the current generation is not a torn tail but
  damage: opening refuses, naming the file and the offset.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from raftkv.storage.errors import CorruptLogError, DataDirError
from raftkv.storage.fsutil import fsync_dir
from raftkv.storage.leveldb import LevelDB

log = logging.getLogger(__name__)

GENERATION_KEY = b"j"
EXTEND_BYTES = 1 << 20
DIRECT_BYTES = 32 << 10
"""Entries at least this large skip an empty journal (the log store decides): LevelDB's own
synced write is then cheaper (256 entries of 256 B: 0.81 ms raw against 1.28 ms journaled, the
bytes written twice), and safe, since no journaled write is waiting to be replayed before it."""
DEFAULT_MAX_BYTES = 64 << 20

_HEADER = struct.Struct("<IIQ")  # crc32 of the rest, payload length, generation
_CRC = struct.Struct("<I")
_REST = struct.Struct("<IQ")  # the header after its crc32
_OP = struct.Struct("<BII")  # kind, key length, value length; key and value follow
_PUT, _DELETE = 1, 2
_ZEROS = bytes(64 << 10)  # written ahead in pieces: one large zero buffer would stay resident

Op = tuple[bytes, bytes | None]
"""(key, value) for a put, (key, None) for a delete."""


def encode_ops(ops: Sequence[Op]) -> bytes:
    parts: list[bytes] = []
    pack = _OP.pack
    for key, value in ops:
        if value is None:
            parts += (pack(_DELETE, len(key), 0), key)
        else:
            parts += (pack(_PUT, len(key), len(value)), key, value)
    return b"".join(parts)


def decode_ops(payload: bytes) -> list[Op]:
    ops: list[Op] = []
    offset, end = 0, len(payload)
    while offset < end:
        if offset + _OP.size > end:
            raise ValueError("truncated operation header")
        kind, key_len, value_len = _OP.unpack_from(payload, offset)
        offset += _OP.size
        if kind not in (_PUT, _DELETE) or offset + key_len + value_len > end:
            raise ValueError(f"bad operation (kind {kind}) at payload offset {offset}")
        key = payload[offset : offset + key_len]
        offset += key_len
        if kind == _PUT:
            ops.append((key, payload[offset : offset + value_len]))
            offset += value_len
        else:
            ops.append((key, None))
    return ops


def _record(generation: int, payload: bytes) -> bytes:
    rest = _REST.pack(len(payload), generation) + payload
    return _CRC.pack(zlib.crc32(rest)) + rest


class Journal:
    """Not thread-safe: the raft log store's one owner calls it."""

    def __init__(
        self, path: Path, fd: int, db: LevelDB, *, generation: int, zeroed: int, max_bytes: int
    ) -> None:
        self.path = path
        self._fd = fd
        self._db = db
        self._generation = generation
        self._offset = 0
        self._zeroed = zeroed
        self._max_bytes = max_bytes

    @classmethod
    def open(cls, path: Path, db: LevelDB, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Journal:
        """Open (creating if missing) the journal of ``db``, replay what it holds, checkpoint."""
        if max_bytes < EXTEND_BYTES:
            raise ValueError(f"max_bytes must be at least {EXTEND_BYTES}")
        created = not path.exists()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataDirError(f"cannot open the raft journal {path}: {exc.strerror}") from None
        if created:
            fsync_dir(path.parent)
        raw = db.get(GENERATION_KEY)
        generation = 0 if raw is None else int.from_bytes(raw, "big")
        journal = cls(
            path, fd, db, generation=generation, zeroed=os.fstat(fd).st_size, max_bytes=max_bytes
        )
        try:
            journal._replay()
        except BaseException:
            os.close(fd)
            raise
        return journal

    def close(self) -> None:
        """Checkpoint (a clean close leaves every write in LevelDB itself), then close."""
        if self._fd < 0:
            return
        try:
            if self._offset and not self._db.closed:
                self.checkpoint()
        finally:
            os.close(self._fd)
            self._fd = -1

    def append(self, ops: Sequence[Op]) -> bool:
        """Make ``ops`` durable; the caller then writes them to LevelDB without sync. False
        means they do not fit in an empty journal: it has been checkpointed (emptied), and the
        caller must write them to LevelDB WITH sync instead."""
        payload = encode_ops(ops)
        size = _HEADER.size + len(payload)
        if self._offset + size > self._max_bytes:
            self.checkpoint()
            if size > self._max_bytes:
                return False
        record = _record(self._generation, payload)  # after a checkpoint: the new generation
        end = self._offset + len(record)
        if end > self._zeroed:
            self._extend_to(end)
        os.pwrite(self._fd, record, self._offset)
        os.fdatasync(self._fd)
        self._offset = end
        return True

    @property
    def empty(self) -> bool:
        """No record since the last checkpoint: a write LevelDB syncs itself is safe now (a
        replay would apply nothing over it)."""
        return self._offset == 0

    def checkpoint(self) -> None:
        """Make every write so far durable in LevelDB itself and start a new generation."""
        self._generation += 1
        with self._db.batch(sync=False) as batch:
            batch.put(GENERATION_KEY, self._generation.to_bytes(8, "big"))
        self._db.flush()
        self._offset = 0
        log.debug("raft journal %s: checkpoint, generation %d", self.path, self._generation)

    def _extend_to(self, end: int) -> None:
        """Write zeros up to at least ``end`` and sync them (file size included) once."""
        target = min(self._max_bytes, -(-end // EXTEND_BYTES) * EXTEND_BYTES)
        while self._zeroed < target:
            step = min(len(_ZEROS), target - self._zeroed)
            os.pwrite(self._fd, _ZEROS[:step], self._zeroed)
            self._zeroed += step
        os.fsync(self._fd)

    # -- recovery ---------------------------------------------------------------------------------
    def _replay(self) -> None:
        offset, records = 0, 0
        with self._db.batch(sync=False) as batch:
            while True:
                parsed = self._read_record(offset)
                if parsed is None:
                    break
                payload, next_offset = parsed
                try:
                    ops = decode_ops(payload)
                except ValueError as exc:
                    raise CorruptLogError(
                        f"raft journal {self.path}: record at offset {offset}: {exc}"
                    ) from None
                batch.apply(ops)
                records += 1
                offset = next_offset
        self._refuse_damage(offset)
        if records:
            log.info(
                "raft journal %s: replayed %d records into %s", self.path, records, self._db.path
            )
            self.checkpoint()

    def _read_record(self, offset: int) -> tuple[bytes, int] | None:
        """The payload of this generation's record at ``offset`` and the next offset, or None
        (zeros, an older generation, a torn or damaged record, the end of the file)."""
        header = os.pread(self._fd, _HEADER.size, offset)
        if len(header) < _HEADER.size:
            return None
        crc, length, generation = _HEADER.unpack(header)
        end = offset + _HEADER.size + length
        if generation != self._generation or length == 0 or end > self._zeroed:
            return None
        payload = os.pread(self._fd, length, offset + _HEADER.size)
        if len(payload) < length or zlib.crc32(header[_CRC.size :] + payload) != crc:
            return None
        return payload, end

    def _refuse_damage(self, stop: int) -> None:
        """Replay stopped at ``stop``. A torn last write is expected after a crash; a good record
        of this generation right after the bad one means the journal was damaged."""
        header = os.pread(self._fd, _HEADER.size, stop)
        if len(header) < _HEADER.size:
            return
        _, length, generation = _HEADER.unpack(header)
        if generation != self._generation or length == 0:
            return
        if self._read_record(stop + _HEADER.size + length) is not None:
            raise CorruptLogError(
                f"raft journal {self.path}: the record at offset {stop} is damaged and a good "
                "record follows it; refusing to start (restore this node from its peers)"
            )

"""Snapshots of the state DB as a byte stream: streaming, installing, backup and restore.

Stream format (the same for InstallSnapshot and for backup files)::

    MAGIC (8 bytes)
    record*            tag 1, key length (4), value length (4), key, value: every state-DB
                       key in key order (data, sessions, and the metadata record with the
                       applied index, term and membership)
    end record         tag 2, record count (8), CRC-32 of every byte before it (4)

Rules:
- The stream is read from one point-in-time LevelDB snapshot, so it is consistent even while
  apply goes on; chunks are at most ``chunk_bytes`` long, cut anywhere (records may straddle).
- A receiver trusts nothing until the end record's count and CRC match; each chunk also carries
  its offset, and the final chunk the CRC-32 of the whole stream for the transport to check.
- :class:`SnapshotInstaller` writes into a fresh directory and swaps it in atomically
  (:mod:`raftkv.storage.state_dir`): a crash at any step leaves the old state or the new.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from raftkv.core.types import SnapshotMeta
from raftkv.kv import layout
from raftkv.kv.errors import SnapshotFormatError, StateMachineError
from raftkv.kv.state_machine import KVStateMachine
from raftkv.storage.fsutil import fsync_dir
from raftkv.storage.leveldb import Batch, LevelDB, Snapshot, is_internal_key
from raftkv.storage.state_dir import Fault, create_fresh, seal, swap_in

log = logging.getLogger(__name__)

MAGIC = b"RKVSNAP\x01"
DEFAULT_CHUNK_BYTES = 1 << 20
_TAG_RECORD = 1
_TAG_END = 2
_RECORD = struct.Struct(">BII")
_END = struct.Struct(">BQ")
_CRC = struct.Struct(">I")
_BATCH_BYTES = 4 << 20
_BLOCK_BYTES = 64 << 10


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotChunk:
    meta: SnapshotMeta
    """The snapshot's last included index, term and membership (on every chunk)."""
    offset: int
    data: bytes
    done: bool
    checksum: int = 0
    """On the last chunk (``done``): CRC-32 (zlib) of all data bytes of the stream."""


def _read_meta(snapshot: Snapshot) -> SnapshotMeta:
    raw = snapshot.get(layout.META_KEY)
    if raw is None:
        raise SnapshotFormatError("state DB has no metadata record")
    return layout.StateMeta.decode(raw).snapshot_meta()


def _stream_bytes(snapshot: Snapshot) -> Iterator[bytes]:
    """The stream as blocks of about ``_BLOCK_BYTES`` (not yet chunked)."""
    crc = zlib.crc32(MAGIC)
    yield MAGIC
    count = 0
    parts: list[bytes] = []
    size = 0
    pack = _RECORD.pack
    for key, value in snapshot.items():
        if is_internal_key(key):
            continue
        parts += (pack(_TAG_RECORD, len(key), len(value)), key, value)
        size += _RECORD.size + len(key) + len(value)
        count += 1
        if size >= _BLOCK_BYTES:
            block = b"".join(parts)
            crc = zlib.crc32(block, crc)
            yield block
            parts, size = [], 0
    end = b"".join(parts) + _END.pack(_TAG_END, count)
    yield end + _CRC.pack(zlib.crc32(end, crc))


def snapshot_chunks(
    state: KVStateMachine, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[SnapshotChunk]:
    """Stream a point-in-time snapshot of ``state`` in chunks of at most ``chunk_bytes``.

    The snapshot is taken when the first chunk is requested; close the generator to release it.
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be >= 1")
    snapshot = state.db.snapshot()
    try:
        meta = _read_meta(snapshot)
        offset = 0
        crc = 0
        buffer = bytearray()
        for piece in _stream_bytes(snapshot):
            buffer += piece
            while len(buffer) > chunk_bytes:
                data = bytes(buffer[:chunk_bytes])
                del buffer[:chunk_bytes]
                crc = zlib.crc32(data, crc)
                yield SnapshotChunk(meta=meta, offset=offset, data=data, done=False)
                offset += len(data)
        data = bytes(buffer)
        crc = zlib.crc32(data, crc)
        yield SnapshotChunk(meta=meta, offset=offset, data=data, done=True, checksum=crc)
    finally:
        snapshot.close()


class _StreamParser:
    """Parses stream bytes as they arrive and writes the records into a LevelDB (or, with
    ``db=None``, only verifies them)."""

    def __init__(self, db: LevelDB | None) -> None:
        self._db = db
        self._buffer = bytearray()
        self._crc = 0
        self._count = 0
        self._seen_magic = False
        self._batch: Batch | None = None if db is None else db.batch(sync=False)
        self._batch_bytes = 0
        self.meta: SnapshotMeta | None = None
        self.finished = False

    def feed(self, data: bytes) -> None:
        if self.finished and data:
            raise SnapshotFormatError("data after the end of the snapshot stream")
        self._buffer += data
        self._parse()

    def _parse(self) -> None:
        buf = self._buffer
        first = 0
        if not self._seen_magic:
            if len(buf) < len(MAGIC):
                return
            if bytes(buf[: len(MAGIC)]) != MAGIC:
                raise SnapshotFormatError("not a raftkv snapshot stream (bad magic)")
            self._seen_magic = True
            first = len(MAGIC)  # consumed, and covered by the checksum like the records
        view = memoryview(buf)
        try:
            pos = self._parse_records(view, first)
        finally:
            view.release()
        del buf[:pos]

    def _parse_records(self, view: memoryview, pos: int) -> int:
        """Consume whole records from ``view[pos:]``; returns where consumption ended. The
        checksum covers ``view`` from 0 to there."""
        size = len(view)
        start = 0
        unpack = _RECORD.unpack_from
        while pos < size:
            tag = view[pos]
            if tag == _TAG_RECORD:
                if size - pos < _RECORD.size:
                    break
                _, klen, vlen = unpack(view, pos)
                k0 = pos + _RECORD.size
                if size - k0 < klen + vlen:
                    break
                key = bytes(view[k0 : k0 + klen])
                value = bytes(view[k0 + klen : k0 + klen + vlen])
                if key == layout.META_KEY:
                    self.meta = layout.StateMeta.decode(value).snapshot_meta()
                self._put(key, value)
                self._count += 1
                pos = k0 + klen + vlen
            elif tag == _TAG_END:
                if size - pos < _END.size + _CRC.size:
                    break
                _, count = _END.unpack_from(view, pos)
                crc = zlib.crc32(view[start : pos + _END.size], self._crc)
                (expected,) = _CRC.unpack_from(view, pos + _END.size)
                if count != self._count or crc != expected:
                    raise SnapshotFormatError(
                        f"snapshot stream checksum mismatch (records {self._count}/{count})"
                    )
                pos += _END.size + _CRC.size
                if pos != size:
                    raise SnapshotFormatError("data after the end of the snapshot stream")
                self.finished = True
                return pos
            else:
                raise SnapshotFormatError(f"unknown record tag {tag} in snapshot stream")
        self._crc = zlib.crc32(view[start:pos], self._crc)
        return pos

    def _put(self, key: bytes, value: bytes) -> None:
        if self._batch is None:
            return
        self._batch.put(key, value)
        self._batch_bytes += len(key) + len(value)
        if self._batch_bytes >= _BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._batch is None or self._db is None:
            return
        self._batch.write()
        self._batch = self._db.batch(sync=False)
        self._batch_bytes = 0

    def finish(self) -> SnapshotMeta:
        if not self.finished:
            raise SnapshotFormatError("snapshot stream is truncated (no end record)")
        self.flush()
        if self.meta is None:
            raise SnapshotFormatError("snapshot stream has no metadata record")
        return self.meta


class SnapshotInstaller:
    """Receives a snapshot stream for ``state`` and swaps it in atomically.

    ``add`` each chunk (or ``feed`` raw bytes), then :meth:`commit`; :meth:`abort` discards.
    ``fault`` is a test hook called at each crash point with the step's name.
    """

    STEPS = (
        "written",
        "closed",
        "synced",
        "sealed",
        "state-closed",
        "moved-old",
        "moved-new",
        "removed-old",
    )

    def __init__(self, state: KVStateMachine, *, fault: Fault | None = None) -> None:
        self._state = state
        self._fault: Fault = fault or (lambda step: None)
        self._db = create_fresh(state.path)
        self._parser = _StreamParser(self._db)
        self._offset = 0
        self._checksum: int | None = None
        self._crc = 0

    def add(self, chunk: SnapshotChunk) -> None:
        if chunk.offset != self._offset:
            raise SnapshotFormatError(f"chunk at offset {chunk.offset}, expected {self._offset}")
        self.feed(chunk.data)
        if chunk.done:
            self._checksum = chunk.checksum

    def feed(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._offset += len(data)
        self._parser.feed(data)

    def commit(self) -> SnapshotMeta:
        """Verify, make durable and swap in the new state; reopen ``state`` on it."""
        meta = self._parser.finish()
        if self._checksum is not None and self._checksum != self._crc:
            raise SnapshotFormatError("snapshot stream checksum mismatch")
        if meta.index < self._state.applied_index():
            # The applied index never moves backwards (DESIGN, "Invariants").
            raise StateMachineError(
                f"snapshot at index {meta.index} is behind the applied index "
                f"{self._state.applied_index()} of {self._state.path}"
            )
        self._fault("written")
        seal(self._db, self._fault)
        self._state.close()
        self._fault("state-closed")
        swap_in(self._state.path, self._fault)
        self._state.reopen()
        log.info(
            "installed snapshot at index %d term %d into %s",
            meta.index,
            meta.term,
            self._state.path,
        )
        return meta

    def abort(self) -> None:
        self._db.close()
        shutil.rmtree(self._db.path, ignore_errors=True)


def load_stream(db: LevelDB, pieces: Iterable[bytes]) -> SnapshotMeta:
    """Parse a whole stream into the (fresh) database ``db``; verified before returning."""
    parser = _StreamParser(db)
    for piece in pieces:
        parser.feed(piece)
    return parser.finish()


def install_stream(state: KVStateMachine, pieces: Iterable[bytes]) -> SnapshotMeta:
    installer = SnapshotInstaller(state)
    try:
        for piece in pieces:
            installer.feed(piece)
        return installer.commit()
    except BaseException:
        installer.abort()
        raise


# -- backup files ------------------------------------------------------------------------------
def write_backup_file(path: Path, pieces: Iterable[bytes]) -> None:
    """Write a stream (e.g. a local snapshot's chunk data, or a remote Backup stream) to ``path``
    atomically: the file appears only when complete and synced."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        for piece in pieces:
            f.write(piece)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def backup_to_file(state: KVStateMachine, path: Path) -> SnapshotMeta:
    """Save a consistent snapshot of ``state`` to ``path``; returns what it contains."""
    chunks = snapshot_chunks(state)
    metas: list[SnapshotMeta] = []

    def pieces() -> Iterator[bytes]:
        for chunk in chunks:
            metas.append(chunk.meta)
            yield chunk.data

    write_backup_file(path, pieces())
    return metas[0]


def verify_backup_file(path: Path) -> SnapshotMeta:
    """Check a backup file end to end (format, record count, checksum); returns its metadata."""
    parser = _StreamParser(None)
    for piece in read_file_pieces(Path(path)):
        parser.feed(piece)
    return parser.finish()


def read_file_pieces(path: Path, piece_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while piece := f.read(piece_bytes):
            yield piece

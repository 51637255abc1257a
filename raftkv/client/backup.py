"""Writing the Cluster.Snapshot stream to a backup file that ``raftkv restore`` reads.

Format: the concatenation of every chunk's ``data`` bytes, in order — exactly the state stream
of ``raftkv.kv.snapshot`` (self-describing and verified again by restore). The stream's first
chunk carries ``meta`` (index, term, membership, cluster id); the last has ``done`` and the
stream checksum.

Rules:
- A backup is written to ``PATH.part``, checked (``done`` seen, checksum matches), fsynced, then
  renamed over PATH and the directory fsynced: PATH is either a complete backup or absent.
- The checksum field is named ``crc32c`` in proto/kv.proto, but the server sends zlib's CRC-32.
  We check the fast zlib CRC-32 first and accept CRC-32C (re-reading the file) as well, so either
  side can be aligned later without breaking backups.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from typing import BinaryIO

from raftkv.pb import kv_pb2

__all__ = ["BackupError", "BackupWriter", "crc32c"]

_READ_BYTES = 1024 * 1024


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``crc``. Pure Python: slow, a fallback."""
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class BackupError(Exception):
    """A backup stream is incomplete or damaged."""


class BackupWriter:
    """Writes one backup stream to ``path`` atomically; :meth:`add` chunks, then :meth:`commit`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._part = path + ".part"
        self._file: BinaryIO = open(self._part, "wb")  # noqa: SIM115 - closed in commit/abort
        self._crc32 = 0
        self.meta: kv_pb2.BackupMeta | None = None
        self.size_bytes = 0
        self.done = False

    def add(self, chunk: kv_pb2.BackupChunk) -> None:
        if self.done:
            raise BackupError("the snapshot stream continued after its last chunk")
        if chunk.HasField("meta"):
            self.meta = chunk.meta
        elif self.meta is None:
            raise BackupError("the snapshot stream did not start with its metadata")
        self._file.write(chunk.data)
        self._crc32 = zlib.crc32(chunk.data, self._crc32)
        self.size_bytes += len(chunk.data)
        if chunk.done:
            self._file.flush()
            if chunk.crc32c != self._crc32 and chunk.crc32c != self._crc32c_of_file():
                raise BackupError(
                    f"snapshot checksum mismatch: the stream says {chunk.crc32c:#010x}, the data "
                    f"has CRC-32 {self._crc32:#010x}"
                )
            self.done = True

    def _crc32c_of_file(self) -> int:
        crc = 0
        with open(self._part, "rb") as handle:
            while piece := handle.read(_READ_BYTES):
                crc = crc32c(piece, crc)
        return crc

    def commit(self) -> kv_pb2.BackupMeta:
        if not self.done or self.meta is None:
            raise BackupError("the snapshot stream ended before its last chunk")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._part, self.path)
        _fsync_directory(os.path.dirname(os.path.abspath(self.path)))
        return self.meta

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._part)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

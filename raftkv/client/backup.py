"""The backup file that ``snapshot_save`` writes, and a reader for ``raftkv restore``.

Format (version 1): the 8-byte magic ``RKVBAK01``, then every ``BackupChunk`` of the
Cluster.Snapshot stream exactly as received, each as a 4-byte big-endian length followed by the
serialized message. The first chunk carries ``meta``; the last has ``done`` set and ``crc32c``,
the CRC-32C (Castagnoli) of all ``data`` bytes in order.

Rules:
- A backup is written to ``PATH.part``, checked (done seen, checksum matches), fsynced, then
  renamed over PATH and the directory fsynced: PATH is either a complete backup or absent.
- The reader checks the same things and refuses a damaged file with BackupError naming the flaw.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from raftkv.pb import kv_pb2

__all__ = ["MAGIC", "BackupError", "BackupWriter", "crc32c", "read_backup"]

MAGIC = b"RKVBAK01"
_LENGTH = struct.Struct(">I")
_MAX_CHUNK_BYTES = 256 * 1024 * 1024


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
    """CRC-32C of ``data``, continuing from ``crc`` (the result of the previous piece)."""
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class BackupError(Exception):
    """A backup stream or file is incomplete or damaged."""


class BackupWriter:
    """Writes one backup stream to ``path`` atomically; feed chunks, then :meth:`commit`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._part = path + ".part"
        self._file: BinaryIO = open(self._part, "wb")  # noqa: SIM115 - closed in commit/abort
        self._file.write(MAGIC)
        self._crc = 0
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
        encoded = chunk.SerializeToString()
        self._file.write(_LENGTH.pack(len(encoded)))
        self._file.write(encoded)
        self._crc = crc32c(chunk.data, self._crc)
        self.size_bytes += len(chunk.data)
        if chunk.done:
            if chunk.crc32c != self._crc:
                raise BackupError(
                    f"snapshot checksum mismatch: stream says {chunk.crc32c:#010x}, "
                    f"data is {self._crc:#010x}"
                )
            self.done = True

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


def read_backup(path: str) -> tuple[kv_pb2.BackupMeta, Iterator[bytes]]:
    """The metadata of a backup file and an iterator over its data pieces (checked at the end)."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
    if handle.read(len(MAGIC)) != MAGIC:
        handle.close()
        raise BackupError(f"{path} is not a raftkv backup (bad magic)")
    first = _read_chunk(handle, path)
    if first is None or not first.HasField("meta"):
        handle.close()
        raise BackupError(f"{path}: the backup does not start with its metadata")
    return first.meta, _data(handle, path, first)


def _read_chunk(handle: BinaryIO, path: str) -> kv_pb2.BackupChunk | None:
    header = handle.read(_LENGTH.size)
    if not header:
        return None
    if len(header) != _LENGTH.size:
        raise BackupError(f"{path}: truncated chunk header")
    (length,) = _LENGTH.unpack(header)
    if length > _MAX_CHUNK_BYTES:
        raise BackupError(f"{path}: chunk of {length} bytes is implausible")
    body = handle.read(length)
    if len(body) != length:
        raise BackupError(f"{path}: truncated chunk")
    return kv_pb2.BackupChunk.FromString(body)


def _data(handle: BinaryIO, path: str, first: kv_pb2.BackupChunk) -> Iterator[bytes]:
    with handle:
        chunk: kv_pb2.BackupChunk | None = first
        crc = 0
        while chunk is not None:
            crc = crc32c(chunk.data, crc)
            if chunk.data:
                yield chunk.data
            if chunk.done:
                if chunk.crc32c != crc:
                    raise BackupError(f"{path}: checksum mismatch")
                return
            chunk = _read_chunk(handle, path)
        raise BackupError(f"{path}: the backup ends before its last chunk")

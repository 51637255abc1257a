"""Format 1 of the raft log's entry records, spelled out from the format (not taken from the
codec), so the migration is tested against the bytes old versions really wrote."""

from __future__ import annotations

import struct
import zlib

from raftkv.core.types import Entry

_HEAD = struct.Struct(">IQB")  # crc, term, kind; data follows
_COVERED = struct.Struct(">QQB")  # index, term, kind: what the CRC covers besides data


def encode_entry_v1(entry: Entry) -> bytes:
    covered = _COVERED.pack(entry.index, entry.term, entry.kind) + entry.data
    return _HEAD.pack(zlib.crc32(covered), entry.term, entry.kind) + entry.data

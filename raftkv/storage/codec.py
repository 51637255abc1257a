"""On-disk encodings of the raft DB: key layout and record codecs. Pure functions, no I/O.

Rules:
- Keys are prefixed by kind (one byte); integers are fixed-width big-endian, so LevelDB's byte
  order is numeric order and a range of indexes is a contiguous key range.
- Entry records (format 2) are the term, the kind and the data, with no checksum of their own:
  LevelDB checksums every record of its write-ahead log (CRC-32C, checked on recovery:
  ``paranoid_checks``) and every block of its tables (checked on each read from disk:
  ``verify_checksums``, raftkv.storage.leveldb), and a damaged block fails the open-time scan.
  Format 1 also packed a CRC-32 into every entry, about a microsecond of Python per entry on
  every durable append; :func:`decode_entry_v1` reads it once, to migrate an old log.
- The small records (hard state, log start) keep their CRC-32: they are rewritten in place and
  read once, and their check costs nothing on the hot path.
- Decoders validate once and raise :class:`CodecError` with the problem; the log store adds the
  data directory and index to the message.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence

from raftkv.core.membership import MembershipDecodeError, decode_membership, encode_membership
from raftkv.core.types import Entry, EntryKind, HardState, Index, NodeId, SnapshotMeta, Term

ENTRY_PREFIX = b"e"
HARD_STATE_KEY = b"h"
LOG_START_KEY = b"s"
FORMAT_KEY = b"f"
"""The log's format version (u64). A log without it was written by format 1."""
FORMAT_VERSION = 2

_U64 = struct.Struct(">Q")
_ENTRY_HEAD = struct.Struct(">QB")  # term, kind; data follows
_HARD_STATE = struct.Struct(">IQQQ")  # crc, term, vote, commit
_LOG_START = struct.Struct(">IQQ")  # crc, index, term; membership bytes follow
MAX_INDEX = (1 << 64) - 1


class CodecError(ValueError):
    """Stored bytes do not decode; the message says what is wrong."""


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)


def decode_u64(data: bytes) -> int:
    if len(data) != _U64.size:
        raise CodecError(f"expected 8 bytes, found {len(data)}")
    return int(_U64.unpack(data)[0])


def entry_key(index: int) -> bytes:
    return ENTRY_PREFIX + _U64.pack(index)


def index_of_entry_key(key: bytes) -> Index:
    if len(key) != 9 or key[:1] != ENTRY_PREFIX:
        raise CodecError(f"not an entry key: {key!r}")
    return Index(_U64.unpack_from(key, 1)[0])


def encode_format() -> bytes:
    return _U64.pack(FORMAT_VERSION)


def decode_format(value: bytes) -> int:
    return decode_u64(value)


def encode_entry(entry: Entry) -> bytes:
    """The value stored under ``entry_key(entry.index)``."""
    return _ENTRY_HEAD.pack(entry.term, entry.kind) + entry.data


def put_entries(put: Callable[[bytes, bytes], object], entries: Sequence[Entry]) -> int:
    """``put(key, value)`` for each entry (:func:`entry_key`, :func:`encode_entry`) and return
    how many: both inlined into one loop with no list of pairs, because this is the hot path of
    every durable append. ``kind`` goes to struct as the IntEnum it is."""
    pack_head, pack_key, prefix = _ENTRY_HEAD.pack, _U64.pack, ENTRY_PREFIX
    for e in entries:
        put(prefix + pack_key(e.index), pack_head(e.term, e.kind) + e.data)
    return len(entries)


_KINDS = frozenset(int(k) for k in EntryKind)


def verify_entry(value: bytes) -> tuple[int, int]:
    """Check the shape of an entry record without building an Entry: (term, kind)."""
    if len(value) < _ENTRY_HEAD.size:
        raise CodecError(f"entry record is {len(value)} bytes, shorter than its header")
    term, kind = _ENTRY_HEAD.unpack_from(value)
    if kind not in _KINDS:
        raise CodecError(f"unknown entry kind {kind}")
    return term, kind


def decode_entry(index: int, value: bytes) -> Entry:
    """Decode the value stored for ``index``."""
    term, kind = verify_entry(value)
    data = value[_ENTRY_HEAD.size :]
    return Entry(term=Term(term), index=Index(index), kind=EntryKind(kind), data=bytes(data))


_V1_CRC = struct.Struct(">I")
"""Format 1's record: this CRC-32, then format 2's record. The CRC covers the index (u64) and
everything after it."""


def decode_entry_v1(index: int, value: bytes) -> Entry:
    """Decode and verify a format-1 record (a CRC-32 over index, term, kind and data)."""
    if len(value) < _V1_CRC.size + _ENTRY_HEAD.size:
        raise CodecError(f"entry record is {len(value)} bytes, shorter than its header")
    (crc,) = _V1_CRC.unpack_from(value)
    record = value[_V1_CRC.size :]
    if zlib.crc32(record, zlib.crc32(_U64.pack(index))) != crc:
        raise CodecError("checksum mismatch in entry record")
    return decode_entry(index, record)


def encode_hard_state(hs: HardState) -> bytes:
    body = _HARD_STATE.pack(0, hs.term, hs.vote, hs.commit)[4:]
    return struct.pack(">I", zlib.crc32(body)) + body


def decode_hard_state(value: bytes) -> HardState:
    if len(value) != _HARD_STATE.size:
        raise CodecError(f"hard state record is {len(value)} bytes, expected {_HARD_STATE.size}")
    crc, term, vote, commit = _HARD_STATE.unpack(value)
    if zlib.crc32(value[4:]) != crc:
        raise CodecError("checksum mismatch in hard state record")
    return HardState(term=Term(term), vote=NodeId(vote), commit=Index(commit))


def encode_log_start(meta: SnapshotMeta) -> bytes:
    body = _LOG_START.pack(0, meta.index, meta.term)[4:] + encode_membership(meta.membership)
    return struct.pack(">I", zlib.crc32(body)) + body


def decode_log_start(value: bytes) -> SnapshotMeta:
    if len(value) < _LOG_START.size:
        raise CodecError(f"log start record is {len(value)} bytes, shorter than its header")
    crc, index, term = _LOG_START.unpack_from(value)
    if zlib.crc32(value[4:]) != crc:
        raise CodecError("checksum mismatch in log start record")
    try:
        membership = decode_membership(value[_LOG_START.size :])
    except MembershipDecodeError as exc:
        raise CodecError(f"log start membership: {exc}") from None
    return SnapshotMeta(index=Index(index), term=Term(term), membership=membership)

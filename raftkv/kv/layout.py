"""Key layout and metadata record of the state DB (``DATA_DIR/state``). Pure functions.

Rules:
- User data lives under ``d`` + key, so a scan over user keys is a scan over one prefix and
  metadata can never collide with a user key.
- ``m`` holds one metadata record: applied index, applied term, the session clock and the
  membership as of the applied index. It is written in the same batch as the data it describes.
- ``s`` + client id (8 bytes, big-endian) holds one client session (see :mod:`raftkv.kv.sessions`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from raftkv.core.membership import (
    Membership,
    MembershipDecodeError,
    decode_membership,
    encode_membership,
)
from raftkv.core.types import Index, SnapshotMeta, Term
from raftkv.kv.errors import StateMachineError

DATA_PREFIX = b"d"
META_KEY = b"m"
SESSION_PREFIX = b"s"

_META = struct.Struct(">BQQQ")  # format, applied index, applied term, clock ms; membership follows
_META_FORMAT = 1


def data_key(key: bytes) -> bytes:
    return DATA_PREFIX + key


def session_key(client_id: int) -> bytes:
    return SESSION_PREFIX + struct.pack(">Q", client_id)


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


@dataclass(frozen=True, slots=True, kw_only=True)
class StateMeta:
    applied_index: Index
    applied_term: Term
    clock_ms: int
    """The newest ``issued_at_ms`` applied: session expiry's clock, carried by the log."""
    membership: Membership

    def snapshot_meta(self) -> SnapshotMeta:
        return SnapshotMeta(
            index=self.applied_index, term=self.applied_term, membership=self.membership
        )

    def encode(self) -> bytes:
        head = _META.pack(_META_FORMAT, self.applied_index, self.applied_term, self.clock_ms)
        return head + encode_membership(self.membership)

    @classmethod
    def decode(cls, data: bytes) -> StateMeta:
        if len(data) < _META.size:
            raise StateMachineError("state metadata record is truncated")
        version, index, term, clock = _META.unpack_from(data)
        if version != _META_FORMAT:
            raise StateMachineError(f"unknown state metadata format {version}")
        try:
            membership = decode_membership(data[_META.size :])
        except MembershipDecodeError as exc:
            raise StateMachineError(f"state metadata membership: {exc}") from None
        return cls(
            applied_index=Index(index),
            applied_term=Term(term),
            clock_ms=clock,
            membership=membership,
        )

"""The replicated address book: node id -> HOST:PORT, kept in the state DB under ``a``.

Rules:
- Membership entries carry node ids only; a node learns where a member is from this book. An
  address is set by a ``SetMemberAddressOp`` command, proposed (and applied) before the
  membership change that adds the node, so every replica knows the address before it needs it.
- Keys are ``a`` + node id (8 bytes, big-endian); values are the UTF-8 address. They live beside
  the data and session keys, so snapshots, backups and restores carry the book unchanged.
- Addresses are never deleted: a removed node's entry is harmless and is overwritten if the id
  comes back.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

ADDRESS_PREFIX = b"a"
_ID = struct.Struct(">Q")


def address_key(node_id: int) -> bytes:
    return ADDRESS_PREFIX + _ID.pack(node_id)


def encode_address(address: str) -> bytes:
    return address.encode()


def decode_book(items: Iterable[tuple[bytes, bytes]]) -> dict[int, str]:
    """The book from the ``a``-prefixed items of the state DB (other keys are ignored)."""
    book: dict[int, str] = {}
    for key, value in items:
        if key.startswith(ADDRESS_PREFIX) and len(key) == 1 + _ID.size:
            book[_ID.unpack_from(key, 1)[0]] = value.decode(errors="replace")
    return book

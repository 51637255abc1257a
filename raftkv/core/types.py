"""Value types shared by every part of the core: ids, terms, indexes, entries, hard state.

All are immutable. ``NewType`` keeps a term from being passed where an index is expected.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

from raftkv.core.membership import Membership

NodeId = NewType("NodeId", int)
Term = NewType("Term", int)
Index = NewType("Index", int)

NO_NODE = NodeId(0)
"""Node ids start at 1; 0 means "nobody" (no vote, no known leader)."""


class EntryKind(enum.IntEnum):
    """What an entry's payload means to the core. Values are stored on disk and on the wire."""

    NORMAL = 0
    """An application command (opaque bytes); empty data is the leader's no-op."""
    CONF_CHANGE = 1
    """A membership configuration, encoded by :mod:`raftkv.core.membership`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    term: Term
    index: Index
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def size_bytes(self) -> int:
        """An estimate of the entry's encoded size, for batching limits."""
        return len(self.data) + 24


@dataclass(frozen=True, slots=True, kw_only=True)
class HardState:
    """What a node must persist before it promises anything: term, vote, commit."""

    term: Term = Term(0)
    vote: NodeId = NO_NODE
    commit: Index = Index(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotMeta:
    """Describes a snapshot: the state after applying every entry up to ``index``."""

    index: Index
    term: Term
    membership: Membership

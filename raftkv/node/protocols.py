"""The small interfaces the driver is written against: log store, state machine, transport.

``raftkv.storage``/``raftkv.kv`` implement the first two on LevelDB, :mod:`raftkv.node.memory` in
memory; :mod:`raftkv.transport` implements the third over gRPC and in memory. Methods of
:class:`LogStore` and :class:`StateMachine` may block: the driver calls them from ONE worker
thread, in order, never from the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from raftkv.core.membership import Membership
from raftkv.core.messages import Message
from raftkv.core.storage import LogStorage
from raftkv.core.types import Entry, HardState, Index, SnapshotMeta, Term


class LogStore(LogStorage, Protocol):
    def save(
        self,
        *,
        hard_state: HardState | None = None,
        entries: Sequence[Entry] = (),
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        """Persist durably and atomically: snapshot (log reset), then entries, then hard state."""
        ...

    def compact(self, index: Index, membership: Membership) -> None:
        """Drop entries through ``index`` (durably applied); ``membership`` is as of ``index``."""
        ...


class StateMachine(Protocol):
    def applied(self) -> tuple[Index, Term]:
        """The last applied entry's index and term (0, 0 when empty)."""
        ...

    def apply(self, entries: Sequence[Entry]) -> Sequence[object]:
        """Apply committed entries in order; one outcome per entry (None for no-ops)."""
        ...

    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, start: bytes, end: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` pairs with start <= key < end (no end: to the last key), in order."""
        ...

    def open_snapshot(self) -> tuple[Index, Term, Iterator[bytes]]:
        """A point-in-time copy of the state for InstallSnapshot: its applied index and term, and
        its bytes in chunks."""
        ...

    def stage_snapshot(self, index: Index, term: Term, chunks: Sequence[bytes]) -> None:
        """Keep a received snapshot aside until :meth:`install_snapshot` names it."""
        ...

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        """Replace the state with the staged snapshot matching ``meta``."""
        ...

    def sync(self) -> None:
        """Make every applied entry durable (before the log is compacted behind it)."""
        ...


class Transport(Protocol):
    def send(self, messages: Sequence[Message]) -> None:
        """Queue messages for their peers without blocking; drops are allowed (Raft retries)."""
        ...

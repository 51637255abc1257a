"""The small interfaces the driver is written against: log, state machine, compactor, transport.

``raftkv.storage`` and ``raftkv.kv`` (through :mod:`raftkv.node.kv_adapter`) implement the first
three on LevelDB, :mod:`raftkv.node.memory` in memory; :mod:`raftkv.transport` implements the last
over gRPC and in memory. Methods of :class:`LogStore`, :class:`StateMachine` and
:class:`Compactor` may block: the driver calls them from ONE worker thread, in order, never from
the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from raftkv.core.messages import Message
from raftkv.core.storage import LogStorage
from raftkv.core.types import Entry, HardState, Index, SnapshotMeta, Term


class _SessionExpired:
    def __repr__(self) -> str:
        return "SESSION_EXPIRED"


SESSION_EXPIRED = _SessionExpired()
"""An apply outcome: the command's session expired, so it was not applied (nor can the state
machine tell whether an earlier attempt was)."""


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


class StateMachine(Protocol):
    def applied(self) -> tuple[Index, Term]:
        """The last applied entry's index and term (0, 0 when empty)."""
        ...

    def apply(self, entries: Sequence[Entry]) -> Sequence[object]:
        """Apply committed entries in order; one outcome per entry: a ``CommandResult``,
        :data:`SESSION_EXPIRED`, or None for no-ops and configuration entries."""
        ...

    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Reads may come from a thread other than the storage thread, concurrently with apply."""
        ...

    def scan(
        self, *, prefix: bytes, start: bytes, end: bytes, limit: int
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        """Up to ``limit`` pairs with ``prefix`` in [start, end) (empty end: unbounded), in key
        order, and the start of the next page (None when there is no more)."""
        ...

    def open_snapshot(self) -> tuple[Index, Term, Iterator[bytes]]:
        """A point-in-time copy of the state for InstallSnapshot: its applied index and term, and
        its bytes in chunks."""
        ...

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        """Replace the state with the staged snapshot matching ``meta``."""
        ...


class Compactor(Protocol):
    def maybe_compact(self) -> Index | None:
        """Compact the log if due (never past a durably applied index); the new log start."""
        ...


class Transport(Protocol):
    def send(self, messages: Sequence[Message]) -> None:
        """Queue messages for their peers without blocking; drops are allowed (Raft retries)."""
        ...

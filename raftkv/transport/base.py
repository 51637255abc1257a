"""What a transport needs from its node: where inbound messages go, and snapshot state.

A :class:`~raftkv.node.driver.Driver` is an :class:`Inbox`; a state machine is a
:class:`SnapshotSource` (sender side) and a :class:`SnapshotStager` (receiver side).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from raftkv.core.messages import Message
from raftkv.core.types import Index, NodeId, SnapshotMeta, Term


class Inbox(Protocol):
    def deliver(self, message: Message) -> None: ...

    def report_unreachable(self, peer: NodeId) -> None: ...

    def report_snapshot(self, peer: NodeId, success: bool) -> None: ...


class SnapshotSource(Protocol):
    def open_snapshot(self) -> tuple[Index, Term, Iterator[bytes]]: ...


class StagingWriter(Protocol):
    """Receives one snapshot stream; blocking calls (the transport runs them off the loop)."""

    def feed(self, data: bytes) -> None: ...

    def commit(self) -> SnapshotMeta:
        """Make the staged state durable (not yet live) and return its REAL meta."""
        ...

    def abort(self) -> None: ...


class SnapshotStager(Protocol):
    def begin_staging(self, announced: SnapshotMeta) -> StagingWriter:
        """Start receiving a snapshot the sender announced as ``announced``."""
        ...

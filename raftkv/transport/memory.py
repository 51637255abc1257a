"""An in-memory network of nodes for tests: whole clusters in one event loop, with cuts.

Messages are delivered on a later loop iteration (never re-entrantly), so the receiving driver
sees them as it would over gRPC. A cut link drops messages silently, as a partition does.
Snapshots are copied through the same source/stager interfaces the gRPC transport uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from raftkv.core.messages import Message, SnapshotRequest
from raftkv.core.types import NodeId
from raftkv.transport.base import Inbox, SnapshotSource, SnapshotStager


@dataclass(slots=True)
class _Endpoint:
    inbox: Inbox
    source: SnapshotSource
    stager: SnapshotStager


class MemoryNetwork:
    def __init__(self) -> None:
        self._endpoints: dict[NodeId, _Endpoint] = {}
        self._down: set[NodeId] = set()
        self._cut: set[frozenset[NodeId]] = set()
        self.sent = 0

    def attach(
        self, node_id: NodeId, inbox: Inbox, source: SnapshotSource, stager: SnapshotStager
    ) -> None:
        self._endpoints[node_id] = _Endpoint(inbox, source, stager)

    def detach(self, node_id: NodeId) -> None:
        self._endpoints.pop(node_id, None)

    def transport(self, node_id: NodeId) -> MemoryTransport:
        return MemoryTransport(self, node_id)

    def isolate(self, node_id: NodeId) -> None:
        self._down.add(node_id)

    def heal(self) -> None:
        self._down.clear()
        self._cut.clear()

    def cut(self, a: NodeId, b: NodeId) -> None:
        self._cut.add(frozenset((a, b)))

    def _linked(self, a: NodeId, b: NodeId) -> bool:
        return a not in self._down and b not in self._down and frozenset((a, b)) not in self._cut

    def route(self, src: NodeId, messages: Sequence[Message]) -> None:
        loop = asyncio.get_running_loop()
        for m in messages:
            target = self._endpoints.get(m.to_id)
            if target is None or not self._linked(src, m.to_id):
                continue
            self.sent += 1
            if isinstance(m, SnapshotRequest):
                loop.call_soon(self._copy_snapshot, src, m)
            else:
                loop.call_soon(target.inbox.deliver, m)

    def _copy_snapshot(self, src: NodeId, m: SnapshotRequest) -> None:
        sender, target = self._endpoints.get(src), self._endpoints.get(m.to_id)
        if sender is None:
            return
        if target is None or not self._linked(src, m.to_id):
            sender.inbox.report_snapshot(m.to_id, False)
            return
        _, _, chunks = sender.source.open_snapshot()
        writer = target.stager.begin_staging(m.meta)
        for chunk in chunks:
            writer.feed(chunk)
        # The receiver learns the real point of the state it got, which may be past m.meta.
        target.inbox.deliver(replace(m, meta=writer.commit()))
        sender.inbox.report_snapshot(m.to_id, True)


class MemoryTransport:
    def __init__(self, network: MemoryNetwork, node_id: NodeId) -> None:
        self._network = network
        self._node_id = node_id

    def send(self, messages: Sequence[Message]) -> None:
        self._network.route(self._node_id, messages)

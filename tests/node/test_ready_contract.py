"""The driver keeps the Ready contract: promises leave only after what they promise is durable."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from raftkv.core.messages import AppendResponse, Message, VoteResponse
from raftkv.core.types import NodeId
from raftkv.node.memory import MemoryLogStore
from raftkv.transport.memory import MemoryNetwork, MemoryTransport

from .cluster import Cluster, put


class CheckingTransport(MemoryTransport):
    """Before each promise leaves, the sender's store must already hold what it promises."""

    def __init__(self, network: MemoryNetwork, node_id: NodeId, store: MemoryLogStore) -> None:
        super().__init__(network, node_id)
        self.store = store
        self.checked = 0

    def send(self, messages: Sequence[Message]) -> None:
        for m in messages:
            if isinstance(m, AppendResponse) and m.success:
                assert self.store.last_index() >= m.match_index, "ack before the append persisted"
                self.checked += 1
            if isinstance(m, VoteResponse) and m.granted and not m.pre_vote:
                hs = self.store.hard_state()
                assert (hs.term, hs.vote) == (m.term, m.to_id), "vote sent before it persisted"
                self.checked += 1
        super().send(messages)


def test_acknowledgements_and_votes_follow_persistence() -> None:
    async def body() -> None:
        c = Cluster()
        transports: dict[NodeId, CheckingTransport] = {}

        def make(node_id: NodeId) -> MemoryTransport:
            transports[node_id] = CheckingTransport(c.net, node_id, c.stores[node_id])
            return transports[node_id]

        c.net.transport = make  # type: ignore[method-assign]
        c.start_all()
        leader = await c.leader()
        # Rounds, not one burst: a burst can travel as a few appends (and so a few acks).
        for r in range(20):
            await asyncio.gather(
                *(leader.propose(put(b"k%d.%d" % (r, i), b"v")) for i in range(10))
            )
        await c.crash(leader.node.id)  # a second election: more votes to check
        new = await c.leader()
        await new.propose(put(b"x", b"y"))
        assert sum(t.checked for t in transports.values()) > 10
        await c.stop_all()

    asyncio.run(asyncio.wait_for(body(), 30))

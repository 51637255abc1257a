"""A whole cluster of drivers in one event loop over the in-memory transport (test harness)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from raftkv.core.config import RaftConfig
from raftkv.core.membership import membership_of
from raftkv.core.raft import RaftNode
from raftkv.core.ready import Role
from raftkv.core.types import NodeId
from raftkv.node.config import DriverConfig
from raftkv.node.driver import Driver
from raftkv.node.memory import MemoryCompactor, MemoryLogStore, MemoryStateMachine
from raftkv.pb import kv_pb2
from raftkv.transport.memory import MemoryNetwork


class Cluster:
    def __init__(self, n: int = 3, *, seed: int = 1, config: DriverConfig | None = None) -> None:
        self.ids = [NodeId(i) for i in range(1, n + 1)]
        self.net = MemoryNetwork()
        self.config = config or DriverConfig(tick_s=0.002)
        self.stores = {i: MemoryLogStore(membership_of(self.ids)) for i in self.ids}
        self.machines = {i: MemoryStateMachine() for i in self.ids}
        self.drivers: dict[NodeId, Driver] = {}
        self._rng = random.Random(seed)

    def start(self, node_id: NodeId) -> Driver:
        sm = self.machines[node_id]
        node = RaftNode(
            RaftConfig(node_id=node_id, applied=sm.applied()[0]),
            self.stores[node_id],
            random.Random(self._rng.random()),
        )
        driver = Driver(
            node=node,
            log_store=self.stores[node_id],
            state_machine=sm,
            transport=self.net.transport(node_id),
            config=self.config,
            compactor=MemoryCompactor(
                self.stores[node_id],
                sm,
                threshold=self.config.snapshot_threshold,
                trailing=self.config.snapshot_trailing,
            ),
        )
        self.net.attach(node_id, driver, sm, sm)
        self.drivers[node_id] = driver
        driver.start()
        return driver

    def start_all(self) -> None:
        for i in self.ids:
            self.start(i)

    async def crash(self, node_id: NodeId) -> None:
        """Stop a node; its store keeps what was persisted, its state machine what was applied."""
        self.net.detach(node_id)
        await self.drivers.pop(node_id).stop()

    async def stop_all(self) -> None:
        for i in list(self.drivers):
            await self.crash(i)

    async def leader(self, timeout_s: float = 5.0) -> Driver:
        found: list[Driver] = []

        def one_leader() -> bool:
            found[:] = [d for d in self.drivers.values() if d.node.role == Role.LEADER]
            return len(found) == 1

        await wait_until(one_leader, timeout_s)
        return found[0]


async def wait_until(pred: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``pred`` every few milliseconds until true; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.005)


def put(key: bytes, value: bytes, *, client_id: int = 0, seq: int = 0) -> bytes:
    return kv_pb2.Command(
        client_id=client_id, sequence=seq, put=kv_pb2.PutOp(key=key, value=value)
    ).SerializeToString()


def cas(key: bytes, expected: bytes, value: bytes) -> bytes:
    return kv_pb2.Command(
        cas=kv_pb2.CasOp(key=key, expected=expected, value=value)
    ).SerializeToString()

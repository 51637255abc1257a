"""Real NodeServers (gRPC on loopback, LevelDB) in the test's own event loop (test harness).

In one process, so a test can look inside a node (its driver, its reader) while it talks to it
over gRPC. Elections are slow (1 s) so a loaded machine does not move the leadership mid-test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from raftkv.core.types import NodeId
from raftkv.pb import kv_pb2, kv_pb2_grpc
from raftkv.server.app import NodeServer
from raftkv.server.settings import Settings
from tests.integration.harness import free_ports
from tests.node.cluster import wait_until


class Nodes:
    def __init__(self, servers: list[NodeServer]) -> None:
        self.servers = servers
        self._channels: dict[str, grpc.aio.Channel] = {}

    def leader(self) -> NodeServer:
        return next(s for s in self.servers if s.driver.is_leader)

    def follower(self) -> NodeServer:
        return next(s for s in self.servers if not s.driver.is_leader)

    def stub(self, server: NodeServer) -> kv_pb2_grpc.KVStub:
        address = server.settings.listen
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address)
        return kv_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]

    async def batch(
        self, server: NodeServer, ops: list[kv_pb2.BatchOp]
    ) -> list[kv_pb2.BatchResult]:
        response = await self.stub(server).Batch(kv_pb2.BatchRequest(ops=ops), timeout=10)
        assert len(response.results) == len(ops)
        return list(response.results)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


@contextlib.asynccontextmanager
async def running(root: Path, n: int = 3) -> AsyncIterator[Nodes]:
    """``n`` nodes, started, with one leader every node knows."""
    ports = free_ports(n)
    cluster = {NodeId(i): f"127.0.0.1:{port}" for i, port in enumerate(ports, start=1)}
    servers = [
        NodeServer(
            Settings(
                node_id=node_id,
                listen=address,
                cluster=cluster,
                data_dir=root / f"n{node_id}",
                election_timeout_ms=1000,
                shutdown_grace_s=0.5,
                log_level="warning",
            )
        )
        for node_id, address in cluster.items()
    ]
    started: list[NodeServer] = []
    nodes = Nodes(servers)
    try:
        for server in servers:
            await server.start()
            started.append(server)

        def one_leader_known() -> bool:
            leaders = [s for s in servers if s.driver.is_leader]
            return len(leaders) == 1 and all(
                s.driver.leader_id == leaders[0].driver.node.id for s in servers
            )

        await wait_until(one_leader_known, timeout_s=15.0)
        yield nodes
    finally:
        await nodes.close()
        for server in started:
            await server.stop()

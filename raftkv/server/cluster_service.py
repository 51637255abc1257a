"""The Cluster service: status, leadership transfer, and the state as a backup stream.

Rules: Status answers from this node's own view (works without a leader); TransferLeader runs on
the leader (a follower forwards it) and returns once the target leads or the election timeout
passes; Snapshot streams a point-in-time copy of the state read off the event loop, taken after a
linearizable read point (so it holds every write acknowledged before the call).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from raftkv import __version__
from raftkv.core.raft import NodeStatus, RaftNode
from raftkv.core.types import NodeId
from raftkv.pb import kv_pb2, kv_pb2_grpc
from raftkv.server.context import was_forwarded
from raftkv.server.errors import FailedPrecondition, NotFound, Unavailable, status_for
from raftkv.server.kv_service import ServiceBase
from raftkv.server.settings import Settings


class ClusterService(ServiceBase, kv_pb2_grpc.ClusterServicer):
    service = "Cluster"

    async def Status(self, request: kv_pb2.StatusRequest, context: Any) -> kv_pb2.StatusResponse:
        async def handle(deadline: float) -> kv_pb2.StatusResponse:
            return describe_status(
                self.node.driver.status(), self.node.settings, self.node.cluster_id
            )

        return await self.serve("Status", context, handle)

    async def TransferLeader(
        self, request: kv_pb2.TransferLeaderRequest, context: Any
    ) -> kv_pb2.TransferLeaderResponse:
        async def handle(deadline: float) -> kv_pb2.TransferLeaderResponse:
            async def local() -> kv_pb2.TransferLeaderResponse:
                target = await transfer_leadership(self, NodeId(request.target_id), deadline)
                return kv_pb2.TransferLeaderResponse(leader_id=target)

            forwarded = was_forwarded(context)
            return await self.on_leader("TransferLeader", request, forwarded, deadline, local)

        return await self.serve("TransferLeader", context, handle)

    async def Snapshot(
        self, request: kv_pb2.BackupRequest, context: Any
    ) -> AsyncIterator[kv_pb2.BackupChunk]:
        loop = asyncio.get_running_loop()
        try:
            # A linearizable point first: the backup holds every write acknowledged before it.
            await self.node.driver.read_index()
            status = self.node.driver.status()
            index, term, pieces = await loop.run_in_executor(None, self.node.state.open_snapshot)
        except Exception as exc:
            code, message = status_for(exc)
            await context.abort(code, message)
        yield kv_pb2.BackupChunk(
            meta=kv_pb2.BackupMeta(
                index=index,
                term=term,
                voters=sorted(status.membership.voters),
                learners=sorted(status.membership.learners),
                cluster_id=self.node.cluster_id,
            )
        )
        crc = 0
        while True:
            piece = await loop.run_in_executor(None, _next_or_none, pieces)
            if piece is None:
                break
            crc = zlib.crc32(piece, crc)
            yield kv_pb2.BackupChunk(data=piece)
        yield kv_pb2.BackupChunk(done=True, crc32c=crc)


def _next_or_none(it: Iterator[bytes]) -> bytes | None:
    return next(it, None)


async def transfer_leadership(service: ServiceBase, target: NodeId, deadline: float) -> NodeId:
    """Hand leadership to ``target`` (0: the most up-to-date follower); wait until it leads."""
    driver = service.node.driver
    status = driver.status()
    if target == 0:
        candidates = [f for f in status.followers if not f.is_learner]
        if not candidates:
            raise FailedPrecondition("no follower to transfer leadership to")
        target = max(candidates, key=lambda f: f.match_index).node_id
    if target == status.node_id:
        return target
    if target not in status.membership.all_voters():
        raise NotFound(f"node {target} is not a voting member ({status.membership.describe()})")

    def start(node: RaftNode) -> None:
        node.transfer_leader(target)

    await driver.call(start)
    limit = min(deadline, time.monotonic() + 3 * service.node.leader_wait_s)
    while driver.leader_id != target:
        remaining = limit - time.monotonic()
        if remaining <= 0:
            raise Unavailable(
                f"node {target} did not take over in time (leader is {driver.leader_id}); retry"
            )
        await driver.wait_for_change(remaining)
    return target


def describe_status(
    status: NodeStatus, settings: Settings, cluster_id: str
) -> kv_pb2.StatusResponse:
    membership = status.membership
    return kv_pb2.StatusResponse(
        id=status.node_id,
        address=settings.advertised,
        role=status.role.value,
        term=status.term,
        leader_id=status.leader_id,
        leader_address=settings.cluster.get(status.leader_id, ""),
        commit_index=status.commit_index,
        applied_index=status.applied_index,
        last_index=status.last_index,
        first_index=status.first_index,
        members=[
            kv_pb2.Member(
                id=m, address=settings.cluster.get(NodeId(m), ""), learner=m in membership.learners
            )
            for m in sorted(membership.members())
        ],
        followers=[
            kv_pb2.FollowerStatus(
                id=f.node_id,
                match_index=f.match_index,
                next_index=f.next_index,
                state=f.state.value,
                inflight=f.inflight,
                lazy=f.lazy,
            )
            for f in status.followers
        ],
        cluster_id=cluster_id,
        version=__version__,
    )

"""The Cluster service with the membership RPCs: MemberList, MemberAdd, MemberPromote, MemberRemove.

Rules: MemberList is answered by the leader (forwarded like a write: the freshest view, with the
members it cannot reach) and, when no leader is known, from this node's own view; the
changes run on the leader (a follower forwards them once, as it does writes) through
:class:`raftkv.server.membership.MembershipChanger`, and return the configuration afterwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from raftkv.metrics import Metrics
from raftkv.node.errors import NoLeader
from raftkv.pb import kv_pb2
from raftkv.server.cluster_service import ClusterService
from raftkv.server.context import NodeContext, was_forwarded
from raftkv.server.forward import Forwarder
from raftkv.server.membership import MembershipChanger, describe_members

_Response = kv_pb2.MemberListResponse


class MemberClusterService(ClusterService):
    def __init__(
        self,
        node: NodeContext,
        forwarder: Forwarder,
        metrics: Metrics | None,
        changer: MembershipChanger,
    ) -> None:
        super().__init__(node, forwarder, metrics)
        self.changer = changer

    async def MemberList(self, request: kv_pb2.MemberListRequest, context: Any) -> _Response:
        async def handle(deadline: float) -> _Response:
            async def local() -> _Response:
                return describe_members(self.node)

            forwarded = was_forwarded(context)
            try:
                return await self.on_leader("MemberList", request, forwarded, deadline, local)
            except NoLeader:
                return describe_members(self.node)

        return await self.serve("MemberList", context, handle)

    async def MemberAdd(self, request: kv_pb2.MemberAddRequest, context: Any) -> _Response:
        def change(deadline: float) -> Awaitable[None]:
            return self.changer.add(request.id, request.address, request.learner, deadline)

        return await self._change("MemberAdd", request, context, change)

    async def MemberPromote(self, request: kv_pb2.MemberPromoteRequest, context: Any) -> _Response:
        def change(deadline: float) -> Awaitable[None]:
            return self.changer.promote(request.id, deadline)

        return await self._change("MemberPromote", request, context, change)

    async def MemberRemove(self, request: kv_pb2.MemberRemoveRequest, context: Any) -> _Response:
        def change(deadline: float) -> Awaitable[None]:
            return self.changer.remove(request.id, deadline)

        return await self._change("MemberRemove", request, context, change)

    async def _change(
        self,
        method: str,
        request: Any,
        context: Any,
        change: Callable[[float], Awaitable[None]],
    ) -> _Response:
        async def handle(deadline: float) -> _Response:
            async def local() -> _Response:
                await change(deadline)
                return describe_members(self.node)

            forwarded = was_forwarded(context)
            return await self.on_leader(method, request, forwarded, deadline, local)

        return await self.serve(method, context, handle)

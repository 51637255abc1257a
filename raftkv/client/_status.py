"""Asking every node for its status at once, for ``raftkv-cli status``.

Rules:
- Each node gets exactly one attempt with the same budget, all concurrently, so one dead node
  costs at most that budget and never hides the others.
- Nodes are the configured endpoints plus every member any live node reports, so a client
  configured with one endpoint still sees the whole cluster. A member counts as already asked when
  its advertised address is one a live endpoint reported for itself.
- A node that does not answer is reported ``up=False`` with the error, and with its id when a
  live node listed it as a member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from raftkv.client._transport import RPCS, AttemptFailed, ChannelPool
from raftkv.client.types import NodeStatus
from raftkv.pb import kv_pb2

__all__ = ["gather_status"]


async def _ask(pool: ChannelPool, address: str, budget_s: float) -> NodeStatus:
    try:
        response, _ = await pool.unary(address, RPCS.STATUS, kv_pb2.StatusRequest(), budget_s)
    except AttemptFailed as failure:
        return NodeStatus.down(address, failure.details or failure.code)
    return NodeStatus.from_pb(address, response)


async def gather_status(
    pool: ChannelPool, endpoints: Sequence[str], budget_s: float
) -> list[NodeStatus]:
    first = await asyncio.gather(*(_ask(pool, address, budget_s) for address in endpoints))
    live = [s for s in first if s.up]
    known = {s.address for s in first} | {s.advertised_address for s in live}
    members: dict[str, int] = {}
    for status in live:
        for member in status.members:
            members.setdefault(member.address, member.id)
    extra = [address for address in members if address not in known]
    second = await asyncio.gather(*(_ask(pool, address, budget_s) for address in extra))
    ids_by_address = dict(members)
    for status in live:
        ids_by_address.setdefault(status.address, status.id)
    result = []
    for asked in [*first, *second]:
        if not asked.up and asked.address in ids_by_address:
            asked = NodeStatus.down(  # noqa: PLW2901 - same node, now with its id
                asked.address, asked.error or "down", ids_by_address[asked.address]
            )
        result.append(asked)
    # Nodes in id order; unknown ids (0) last, by address.
    result.sort(key=lambda s: (s.id == 0, s.id, s.address))
    return result

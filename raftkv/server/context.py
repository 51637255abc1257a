"""What the services share: the driver, the node's facts, deadlines, leader discovery.

Rules: every response and every error carries ``raftkv-node`` and, when known, ``raftkv-leader``
(the leader's client address) as trailing metadata; a follower forwards what needs the leader at
most once (``raftkv-forwarded`` marks a forwarded call, which is never forwarded again).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from raftkv.core.types import NO_NODE, NodeId
from raftkv.node.driver import Driver
from raftkv.node.errors import NoLeader
from raftkv.node.protocols import StateMachine
from raftkv.server.reads import Reader
from raftkv.server.settings import Settings

DEFAULT_DEADLINE_S = 10.0
MAX_DEADLINE_S = DEFAULT_DEADLINE_S * 6
FORWARDED_KEY = "raftkv-forwarded"


class NodeContext:
    def __init__(
        self, *, settings: Settings, driver: Driver, state: StateMachine, cluster_id: str
    ) -> None:
        self.settings = settings
        self.cluster_id = cluster_id
        self.driver = driver
        self.state = state
        self.reader = Reader(state)
        self.inflight = 0
        """Client calls being served (shutdown waits for them within its grace period)."""
        self.leader_wait_s = 2 * settings.election_timeout_ms / 1000

    def leader_address(self) -> str | None:
        leader = self.driver.leader_id
        return self.settings.cluster.get(leader) if leader != NO_NODE else None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        address = self.leader_address()
        node = ("raftkv-node", str(self.settings.node_id))
        return (node, ("raftkv-leader", address)) if address else (node,)

    async def wait_for_leader(self, deadline: float) -> NodeId:
        """The leader's id, waiting through an election (bounded by the caller's deadline)."""
        limit = min(deadline, time.monotonic() + self.leader_wait_s)
        while self.driver.leader_id == NO_NODE:
            remaining = limit - time.monotonic()
            if remaining <= 0:
                raise NoLeader(
                    "no leader is known (an election is in progress or a quorum of nodes is down)"
                )
            await self.driver.wait_for_change(remaining)
        return self.driver.leader_id


def deadline_of(context: Any) -> float:
    return deadline_in(context.time_remaining())


def deadline_in(seconds: float | None) -> float:
    """The monotonic deadline of a request with ``seconds`` to go (None: the default), capped."""
    if seconds is None:
        seconds = DEFAULT_DEADLINE_S
    return time.monotonic() + min(seconds, MAX_DEADLINE_S)


def was_forwarded(context: Any) -> bool:
    return any(key == FORWARDED_KEY for key, _ in (context.invocation_metadata() or ()))


async def with_deadline(coro: Any, deadline: float) -> Any:
    """Await ``coro`` until ``deadline`` (monotonic); TimeoutError after it.

    ``asyncio.timeout_at`` rather than ``wait_for``: no extra task per request. The loop's clock
    is ``time.monotonic``, the clock of ``deadline``."""
    async with asyncio.timeout_at(deadline):
        return await coro

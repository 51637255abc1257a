"""Keeps a running node in step with membership: peer addresses, and learner auto-promotion.

Rules:
- :class:`PeerDirectory` is the one writer of the node's address table (``settings.cluster``,
  which the services read for leader addresses and forwarding), the transport's peer addresses
  and the peer check's known ids. The replicated address book wins over ``--cluster`` for every
  node but this one (its own address comes from its flags).
- :class:`MemberWatch` polls (every ``poll_s``): the directory refreshes when the applied
  address book or membership changed; on the leader, with ``auto_promote_lag`` > 0, a learner
  whose match index is within that many entries of the leader's last index, and which was heard
  from within an election timeout, is promoted (one change at a time, never while another runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from raftkv.core.types import NodeId
from raftkv.node.errors import NodeError
from raftkv.server.context import NodeContext
from raftkv.server.errors import RequestError
from raftkv.server.membership import MembershipChanger
from raftkv.transport.codec import PeerCheck
from raftkv.transport.peer_client import GrpcTransport

log = logging.getLogger(__name__)


class PeerDirectory:
    def __init__(
        self,
        ctx: NodeContext,
        transport: GrpcTransport,
        check: PeerCheck,
        book: Callable[[], Mapping[int, str]],
        book_version: Callable[[], int],
    ) -> None:
        self.ctx = ctx
        self.transport = transport
        self.check = check
        self._book = book
        self._book_version = book_version
        self._seen: tuple[int, frozenset[int]] | None = None

    def learn(self, addresses: Mapping[int, str]) -> None:
        """Use ``addresses`` (node id -> HOST:PORT) from now on."""
        own = self.ctx.settings.node_id
        table = self.ctx.settings.cluster
        for node_id, address in addresses.items():
            if node_id == own or not address or table.get(NodeId(node_id)) == address:
                continue
            log.info("node %d is at %s", node_id, address)
            table[NodeId(node_id)] = address
            self.transport.set_address(NodeId(node_id), address)
        members = self.ctx.driver.node.membership.members()
        self.check.known_ids = frozenset(table) | members

    def refresh(self) -> None:
        """Pick up a changed address book or membership (cheap when nothing changed)."""
        seen = (self._book_version(), self.ctx.driver.node.membership.members())
        if seen != self._seen:
            self._seen = seen
            self.learn(self._book())


class MemberWatch:
    def __init__(
        self,
        ctx: NodeContext,
        directory: PeerDirectory,
        changer: MembershipChanger,
        *,
        auto_promote_lag: int,
        poll_s: float = 0.05,
        promote_every_s: float = 0.25,
    ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.changer = changer
        self.auto_promote_lag = auto_promote_lag
        self.poll_s = poll_s
        self.promote_every_s = promote_every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="raftkv-member-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        next_promote = 0.0
        while True:
            try:
                self.directory.refresh()
                now = time.monotonic()
                if self.auto_promote_lag > 0 and now >= next_promote:
                    next_promote = now + self.promote_every_s
                    await self.maybe_promote()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let a bad poll end the watch
                log.exception("membership watch failed; continuing")
            await asyncio.sleep(self.poll_s)

    async def maybe_promote(self) -> NodeId | None:
        """Promote one caught-up learner if this node leads; returns it (None: nothing to do)."""
        status = self.ctx.driver.status()
        if status.node_id != status.leader_id or self.changer.busy:
            return None
        if status.membership.is_joint:
            return None
        limit = self.ctx.settings.election_timeout_ms // 10
        for f in status.followers:
            if not f.is_learner or f.node_id not in status.membership.learners:
                continue
            if status.last_index - f.match_index > self.auto_promote_lag:
                continue
            if f.ticks_since_contact > limit or f.match_index == 0:
                continue
            log.info(
                "auto-promoting learner %d (match %d, leader at %d, lag limit %d)",
                f.node_id,
                f.match_index,
                status.last_index,
                self.auto_promote_lag,
            )
            try:
                await self.changer.promote(f.node_id, time.monotonic() + 10.0)
            except (RequestError, NodeError) as exc:  # refused, or leadership moved meanwhile
                log.info("auto-promotion of node %d not done: %s", f.node_id, exc)
                return None
            return f.node_id
        return None

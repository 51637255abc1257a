"""Membership changes on the leader: add, promote and remove members, one change at a time.

Rules:
- Every change runs on the leader (the Cluster service forwards from followers) and is checked
  before anything is proposed; a refusal is a :class:`FailedPrecondition` (the state forbids it
  now), :class:`InvalidArgument` (the request is malformed) or :class:`NotFound` (no such member),
  with a message that says what to do instead.
- One change at a time per leader (:class:`MembershipChanger` holds a lock); the core also
  refuses a change while a joint configuration or an unapplied change is in the log.
- A change that adds or removes voters is refused if the voters the leader has heard from within
  an election timeout would not form a quorum of the old AND the new configuration (the joint
  phase needs both), so an operator cannot wedge a cluster whose nodes are down.
- Adding a node first replicates its address (and any member address the book lacks) through
  the log (:mod:`raftkv.kv.address_book`), then proposes the configuration, so every replica
  can reach the node before it is a member.
- A call returns once the final configuration (after the joint phase) is applied locally.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import cast

from raftkv.core.errors import ConfChangeRefused, NotLeader
from raftkv.core.membership import Membership, has_quorum
from raftkv.core.raft import NodeStatus, RaftNode
from raftkv.core.types import NO_NODE, Index, NodeId
from raftkv.node.errors import NoLeader, NotLeaderError
from raftkv.pb import kv_pb2
from raftkv.server.context import NodeContext, with_deadline
from raftkv.server.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from raftkv.server.settings import SettingsError, parse_address

log = logging.getLogger(__name__)

_POLL_S = 0.02


def describe_members(ctx: NodeContext) -> kv_pb2.MemberListResponse:
    """This node's view of the configuration, with every member's address."""
    status = ctx.driver.status()
    m = status.membership
    book = ctx.settings.cluster
    return kv_pb2.MemberListResponse(
        members=[
            kv_pb2.Member(id=n, address=book.get(NodeId(n), ""), learner=n in m.learners)
            for n in sorted(m.members())
        ],
        leader_id=status.leader_id,
        leader_address=book.get(status.leader_id, "") if status.leader_id != NO_NODE else "",
        outgoing=sorted(m.outgoing),
        cluster_id=ctx.cluster_id,
        index=status.commit_index,
        unreachable=(
            sorted(n for n in m.members() if not _alive(ctx, status)(n))
            if status.leader_id == status.node_id
            else []
        ),
    )


def _alive(ctx: NodeContext, status: NodeStatus) -> Callable[[int], bool]:
    """Whether the leader heard from a node within an election timeout (itself: always)."""
    limit = ctx.settings.election_timeout_ms // 10  # ticks (settings.TICK_MS)
    recent = {f.node_id for f in status.followers if f.ticks_since_contact <= limit}
    return lambda n: n == status.node_id or n in recent


class MembershipChanger:
    """Plans, checks and runs membership changes on this node (when it leads)."""

    def __init__(self, ctx: NodeContext, book: Callable[[], Mapping[int, str]]) -> None:
        self.ctx = ctx
        self._book = book
        """The replicated address book as applied here."""
        self.on_addresses: Callable[[], None] = lambda: None
        """Called once new addresses are applied (the wiring refreshes the peer table)."""
        self._lock = asyncio.Lock()
        self._busy_with = ""

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    # ------------------------------------------------------------------ the operations
    async def add(self, node_id: int, address: str, learner: bool, deadline: float) -> None:
        if node_id < 1:
            raise InvalidArgument("the node id must be a positive integer")
        try:
            parse_address(address, "address")
        except SettingsError as exc:
            raise InvalidArgument(str(exc)) from None

        def plan(current: Membership) -> Membership:
            if node_id in current.members():
                role = "learner" if node_id in current.learners else "voter"
                raise FailedPrecondition(
                    f"node {node_id} is already a member ({role}, {current.describe()}); "
                    f"to replace it, remove it first; to make a learner vote, promote it"
                )
            for other, known in self.ctx.settings.cluster.items():
                if known == address and other in current.members():
                    raise FailedPrecondition(
                        f"address {address} belongs to member {other}; remove it first"
                    )
            if learner:
                return Membership(voters=current.voters, learners=current.learners | {node_id})
            return Membership(voters=current.voters | {node_id}, learners=current.learners)

        async with self._exclusive(f"adding node {node_id}"):
            self._check(plan)  # refuse early, before anything is proposed
            await self._record_addresses({NodeId(node_id): address}, deadline)
            self.on_addresses()
            await self._change(plan, deadline)

    async def promote(self, node_id: int, deadline: float) -> None:
        def plan(current: Membership) -> Membership:
            if node_id in current.voters:
                raise FailedPrecondition(f"node {node_id} already is a voter")
            if node_id not in current.learners:
                raise NotFound(f"node {node_id} is not a member ({current.describe()})")
            return Membership(
                voters=current.voters | {node_id}, learners=current.learners - {node_id}
            )

        async with self._exclusive(f"promoting node {node_id}"):
            await self._change(plan, deadline)

    async def remove(self, node_id: int, deadline: float) -> None:
        def plan(current: Membership) -> Membership:
            if node_id not in current.members():
                raise NotFound(f"node {node_id} is not a member ({current.describe()})")
            if current.voters == {node_id}:
                raise FailedPrecondition(
                    f"node {node_id} is the last voter; add and promote another node first"
                )
            return Membership(
                voters=current.voters - {node_id}, learners=current.learners - {node_id}
            )

        async with self._exclusive(f"removing node {node_id}"):
            await self._change(plan, deadline)

    # ------------------------------------------------------------------ the machinery
    def _exclusive(self, what: str) -> _Exclusive:
        if self._lock.locked():
            raise FailedPrecondition(
                f"another membership change is in progress ({self._busy_with}); "
                "retry when it ends (see `raftkv-cli member list`)"
            )
        self._busy_with = what
        return _Exclusive(self._lock)

    def _current(self) -> Membership:
        status = self.ctx.driver.status()
        if status.node_id != status.leader_id:
            raise _not_leader(status.leader_id)
        m = status.membership
        if m.is_joint:
            raise FailedPrecondition(
                f"a membership change is still in its joint phase ({m.describe()}); retry shortly"
            )
        return m

    async def _record_addresses(self, new: dict[NodeId, str], deadline: float) -> None:
        """Replicate ``new`` plus every member address the book lacks (bootstrap members)."""
        book = self._book()
        missing = {
            n: a
            for n, a in self.ctx.settings.cluster.items()
            if n in self._current().members() and book.get(n) != a
        }
        for node_id, address in {**missing, **new}.items():
            command = kv_pb2.Command(
                issued_at_ms=int(time.time() * 1000),
                member_address=kv_pb2.SetMemberAddressOp(node_id=node_id, address=address),
            )
            await with_deadline(self.ctx.driver.propose(command.SerializeToString()), deadline)

    def _check(self, plan: Callable[[Membership], Membership]) -> Membership:
        """The target configuration, if the change is allowed now (else a RequestError)."""
        status = self.ctx.driver.status()
        current = self._current()
        target = plan(current)
        if target.voters != current.voters:
            self._check_quorum(status, current, target)
        return target

    async def _change(self, plan: Callable[[Membership], Membership], deadline: float) -> None:
        target = self._check(plan)
        try:
            term, index = cast(tuple[int, int], await self.ctx.driver.call(_proposer(target)))
        except ConfChangeRefused as exc:
            raise FailedPrecondition(f"{exc}") from None
        except NotLeader as exc:
            raise _not_leader(exc.leader_id) from None
        log.info("proposed membership %s at index %d", target.describe(), index)
        await self._wait_applied(term, index, deadline)

    def _check_quorum(self, status: NodeStatus, current: Membership, target: Membership) -> None:
        alive = _alive(self.ctx, status)
        joint = Membership(voters=target.voters, outgoing=current.voters)
        if has_quorum(joint, alive):
            return
        down = sorted(n for n in joint.all_voters() if not alive(n))
        raise FailedPrecondition(
            f"the change would lose quorum: nodes {down} are down or unreachable (no contact "
            f"within an election timeout) and voters {sorted(target.voters)} (with the old "
            f"voters {sorted(current.voters)}) need a majority of both; bring them back first"
        )

    async def _wait_applied(self, term: int, index: int, deadline: float) -> None:
        """Until the entry at ``index`` and the leave-joint entry after it are applied here."""
        node = self.ctx.driver.node
        while True:
            status = self.ctx.driver.status()
            if status.applied_index >= index and not status.membership.is_joint:
                if node.log_entry_term(Index(index)) not in (None, term):
                    raise Unavailable("leadership changed and the change was lost; retry")
                return
            if time.monotonic() >= deadline:
                raise Unavailable(
                    f"the change (index {index}) was proposed but is not applied yet; "
                    "check `raftkv-cli member list` before retrying"
                )
            await asyncio.sleep(_POLL_S)


class _Exclusive:
    """The changer's lock, taken without waiting (the caller checked it is free)."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


def _proposer(target: Membership) -> Callable[[RaftNode], object]:
    def propose(node: RaftNode) -> object:
        return node.propose_conf_change(target)

    return propose


def _not_leader(leader_id: int) -> Exception:
    return NotLeaderError(leader_id) if leader_id else NoLeader()

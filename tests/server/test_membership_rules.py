"""The leader's membership refusals as a table: quorum given the nodes down, bad plans."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from raftkv.core.membership import Membership, membership_of
from raftkv.core.progress import ProgressState
from raftkv.core.raft import FollowerStatus, NodeStatus
from raftkv.core.ready import Role
from raftkv.core.types import Index, NodeId, Term
from raftkv.server.errors import FailedPrecondition, InvalidArgument, NotFound
from raftkv.server.membership import MembershipChanger

ELECTION_MS = 150  # 15 ticks


def status(membership: Membership, down: frozenset[int]) -> NodeStatus:
    followers = tuple(
        FollowerStatus(
            node_id=NodeId(n),
            match_index=Index(10),
            next_index=Index(11),
            state=ProgressState.REPLICATE,
            inflight=0,
            ticks_since_contact=100 if n in down else 1,
            is_learner=n in membership.learners,
        )
        for n in sorted(membership.members() - {1})
    )
    return NodeStatus(
        node_id=NodeId(1),
        role=Role.LEADER,
        term=Term(2),
        leader_id=NodeId(1),
        commit_index=Index(10),
        applied_index=Index(10),
        first_index=Index(1),
        last_index=Index(10),
        membership=membership,
        followers=followers,
        transferring_to=NodeId(0),
    )


class FakeDriver:
    def __init__(self, st: NodeStatus) -> None:
        self.st = st
        self.proposed: list[Membership] = []

    def status(self) -> NodeStatus:
        return self.st

    async def call(self, fn: Any) -> object:
        raise AssertionError("refused changes never reach the core")


def changer(membership: Membership, down: frozenset[int] = frozenset()) -> MembershipChanger:
    ctx = SimpleNamespace(
        settings=SimpleNamespace(election_timeout_ms=ELECTION_MS, cluster={}),
        driver=FakeDriver(status(membership, down)),
        cluster_id="c",
    )
    return MembershipChanger(ctx, dict)  # type: ignore[arg-type]


def run(coro: Any) -> None:
    asyncio.run(coro)


@pytest.mark.parametrize(
    ("config", "down", "call", "expect"),
    [
        (([1, 2, 3], []), {3}, ("add", 4, "h:4", False), (FailedPrecondition, "lose quorum")),
        (([1, 2, 3], [4]), {2}, ("promote", 4), (None, None)),  # {1,3,4}: 3 of 4 and 2 of 3
        (([1, 2, 3], [4]), {2, 4}, ("promote", 4), (FailedPrecondition, "[2, 4]")),
        (([1, 2, 3, 4, 5], []), {4, 5}, ("remove", 2), (FailedPrecondition, "lose quorum")),
        (([1, 2, 3], []), {3}, ("remove", 3), (None, None)),  # removing the down node is fine
        (([1], []), set(), ("remove", 1), (FailedPrecondition, "last voter")),
        (([1, 2, 3], []), set(), ("remove", 9), (NotFound, "not a member")),
        (([1, 2, 3], []), set(), ("promote", 2), (FailedPrecondition, "already is a voter")),
        (([1, 2, 3], []), set(), ("add", 2, "h:2", True), (FailedPrecondition, "already a member")),
        (([1, 2, 3], []), set(), ("add", 0, "h:1", True), (InvalidArgument, "positive")),
        (([1, 2, 3], []), set(), ("add", 5, "nowhere", True), (InvalidArgument, "HOST:PORT")),
    ],
)
def test_refusals(
    config: tuple[list[int], list[int]],
    down: set[int],
    call: tuple[Any, ...],
    expect: tuple[type[Exception] | None, str | None],
) -> None:
    error, text = expect
    c = changer(membership_of(*config), frozenset(down))
    name, *args = call
    coro = getattr(c, name)(*args, 1e18)
    if error is None:
        with pytest.raises(AssertionError, match="never reach the core"):
            run(coro)  # passed every check: it went on to propose
        return
    with pytest.raises(error) as info:
        run(coro)
    assert text is not None and text in str(info.value)


def test_joint_configuration_refuses_a_new_change() -> None:
    joint = Membership(voters=frozenset({1, 2, 3, 4}), outgoing=frozenset({1, 2, 3}))
    with pytest.raises(FailedPrecondition, match="joint phase"):
        run(changer(joint).remove(2, 1e18))

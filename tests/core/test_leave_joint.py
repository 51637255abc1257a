"""A leader leaves a committed joint configuration, also one it knows only from a snapshot.

The leader that commits a joint entry appends the leave at once; but if it fails first, and the
joint entry is then compacted into a snapshot (or reaches a node only inside one), the next
leader finds the joint configuration with no configuration entry in its log. It must still
leave it: else the cluster stays joint, and refuses every later change, for good. (Found by the
simulator, seed 11796 of the membership schedules.)
"""

from __future__ import annotations

from raftkv.core.membership import Membership, decode_membership
from raftkv.core.messages import VoteResponse
from raftkv.core.ready import Role
from raftkv.core.types import EntryKind, Index, NodeId, Term
from tests.core.driver import Driver
from tests.core.test_quorum_first import ack


def test_a_leader_whose_joint_configuration_came_from_a_snapshot_leaves_it() -> None:
    # Joint: new voters {1, 2, 3}, old voters {1, 2, 4}; no configuration entry in the log.
    d = Driver(1, (1, 2, 3), outgoing=(1, 2, 4))
    d.node.campaign()
    d.drain()
    d.step(VoteResponse(from_id=NodeId(2), to_id=NodeId(1), term=Term(1), granted=True))
    assert d.node.role == Role.LEADER and d.node.membership.is_joint
    d.step(ack(2, 1))  # node 2 holds the no-op: a majority of both halves
    assert d.node.commit_index == 1
    (leave,) = [e for e in d.storage.entries(Index(1), Index(3)) if e.kind == EntryKind.CONF_CHANGE]
    assert leave.index == 2
    assert decode_membership(leave.data) == Membership(voters=frozenset({1, 2, 3}))
    assert not d.node.membership.is_joint

"""Named membership scenarios (issue 8): joint consensus and learners under the simulator.

Raft paper §6 / thesis §4.3: a change is a log entry; nodes use the newest configuration in
their log; while joint, elections and commitment need majorities of both old and new voters.
"""

from __future__ import annotations

import pytest

from raftkv.core.errors import ConfChangeRefused
from raftkv.core.membership import Membership, membership_of
from raftkv.core.ready import Role
from tests.sim.cluster import Cluster

ELECTION = 15


def members_agree(cluster: Cluster, ids: list[int], target: Membership) -> bool:
    return all(cluster.raft(i).membership == target for i in ids)


def test_grow_three_to_five_through_learners() -> None:
    """New nodes join as learners, catch up, then are promoted through a joint config."""
    cluster = Cluster(3, seed=101)
    cluster.check_one_leader()
    for i in range(10):
        cluster.one(b"pre-%d" % i, expected=3)
    cluster.join(4)
    cluster.join(5)
    with_learners = membership_of([1, 2, 3], learners=[4, 5])
    cluster.change_membership(with_learners)
    cluster.one(b"during-growth", expected=3)  # clients keep writing (see the xfail below)
    cluster.caught_up([4, 5])
    five = membership_of([1, 2, 3, 4, 5])
    cluster.change_membership(five)
    cluster.one(b"with-five", expected=5)
    cluster.caught_up(list(cluster.nodes))
    assert members_agree(cluster, [1, 2, 3, 4, 5], five)
    # The new voters count: two old nodes down, the cluster still commits.
    leader = cluster.leader()
    old_followers = [i for i in (1, 2, 3) if i != leader][:2]
    for i in old_followers:
        cluster.crash(i)
    cluster.one(b"without-two-old", expected=3)


def test_learner_added_to_an_idle_cluster_catches_up() -> None:
    """A new learner receives the log even when no client writes after the change."""
    cluster = Cluster(3, seed=106)
    cluster.check_one_leader()
    for i in range(5):
        cluster.one(b"pre-%d" % i, expected=3)
    cluster.join(4)
    cluster.change_membership(membership_of([1, 2, 3], learners=[4]))
    cluster.caught_up([4], max_ticks=20 * ELECTION)


def test_joint_change_to_mostly_new_voters_completes_on_an_idle_cluster() -> None:
    """{1,2,3} -> {L,4,5}: the joint entry needs a majority of the new voters, so it must reach
    the new nodes; otherwise the cluster stays joint (and refuses further changes) forever."""
    cluster = Cluster(3, seed=7)
    leader = cluster.check_one_leader()
    cluster.one(b"a", expected=3)
    cluster.join(4)
    cluster.join(5)
    cluster.change_membership(membership_of([leader, 4, 5]), max_ticks=40 * ELECTION)


def test_shrink_five_to_three_and_removed_nodes_cannot_disrupt() -> None:
    """After C_new commits, removed nodes are out; their campaigns (PreVote, CheckQuorum)
    do not change the remaining cluster's term or leader."""
    cluster = Cluster(5, seed=102)
    cluster.check_one_leader()
    cluster.one(b"a", expected=5)
    three = membership_of([1, 2, 3])
    cluster.change_membership(three)
    cluster.one(b"b", expected=3)
    leader = cluster.leader()
    assert leader is not None and leader in (1, 2, 3)
    term = cluster.raft(leader).term
    cluster.run(20 * ELECTION)
    assert cluster.leader() == leader and cluster.raft(leader).term == term
    cluster.crash(4)
    cluster.crash(5)
    cluster.one(b"c", expected=3)


def test_replace_a_failed_node() -> None:
    """Node 3 dies for good; node 4 joins as a learner and takes its place as a voter."""
    cluster = Cluster(3, seed=103)
    cluster.check_one_leader()
    cluster.one(b"a", expected=3)
    cluster.crash(3)
    cluster.join(4)
    cluster.change_membership(membership_of([1, 2], learners=[4]))
    cluster.one(b"during-replacement", expected=2)
    cluster.caught_up([4])
    cluster.change_membership(membership_of([1, 2, 4]))
    cluster.one(b"b")
    leader = cluster.leader()
    assert leader is not None
    # Node 4 now counts for quorum: the other old node down, it still commits.
    other = next(i for i in (1, 2) if i != leader)
    cluster.crash(other)
    cluster.one(b"c", expected=2)


def test_remove_the_leader() -> None:
    """A leader removed from the configuration steps down once C_new commits; the rest elect
    a leader and go on; the removed node does not disturb them."""
    cluster = Cluster(3, seed=104)
    old = cluster.check_one_leader()
    cluster.one(b"a", expected=3)
    rest = [i for i in cluster.nodes if i != old]
    target = membership_of(rest)
    raft = cluster.raft(old)
    raft.propose_conf_change(target)
    assert cluster.run_until(
        lambda: (
            cluster.raft(old).role != Role.LEADER
            and cluster.leader() in rest
            and cluster.raft(cluster.leader() or rest[0]).membership == target
        ),
        10 * ELECTION,
    )
    new = cluster.check_one_leader()
    cluster.one(b"b", expected=2)
    term = cluster.raft(new).term
    cluster.run(20 * ELECTION)
    assert cluster.leader() == new and cluster.raft(new).term == term


def test_change_started_during_a_partition() -> None:
    """A change proposed by a leader cut off in a minority cannot commit (the joint quorum needs
    the old majority); the majority's new leader replaces it, and a change afterwards works."""
    cluster = Cluster(5, seed=105)
    old = cluster.check_one_leader()
    cluster.one(b"a", expected=5)
    buddy = next(i for i in cluster.nodes if i != old)
    majority = [i for i in cluster.nodes if i not in (old, buddy)]
    cluster.partition([old, buddy], majority)
    cluster.raft(old).propose_conf_change(membership_of([old, buddy]))
    with pytest.raises(ConfChangeRefused):
        cluster.raft(old).propose_conf_change(membership_of([old]))
    cluster.run(3 * ELECTION)
    assert cluster.run_until(lambda: cluster.leader() in majority, 10 * ELECTION)
    cluster.one(b"b", expected=3)
    cluster.heal()
    cluster.one(b"c", expected=5)
    five = membership_of([1, 2, 3, 4, 5])
    cluster.caught_up(list(cluster.nodes))
    assert members_agree(cluster, list(cluster.nodes), five)
    cluster.change_membership(membership_of(majority))
    cluster.one(b"d", expected=3)

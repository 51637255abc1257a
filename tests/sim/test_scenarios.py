"""Named scenarios on the simulated cluster (Raft paper, thesis, MIT 6.5840 style).

Each test drives the cluster through the harness verbs (crash, restart, connect, disconnect,
partition, heal, check_one_leader, one) or, where timing must be exact, holds messages and
delivers them by hand. The checker watches every invariant throughout.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from raftkv.core.errors import NotLeader, ProposalDropped
from raftkv.core.messages import AppendRequest, AppendResponse, Message, VoteRequest
from raftkv.core.ready import Role
from raftkv.core.types import Index
from tests.sim.cluster import Cluster
from tests.sim.network import Faults

ELECTION = 15
"""election_ticks of every cluster here: the election timeout is in [15, 30) ticks."""


def new_leader(cluster: Cluster, old: int, max_ticks: int = 10 * ELECTION) -> int:
    """Run until a leader other than ``old`` is the newest one, and settled."""
    assert cluster.run_until(lambda: cluster.leader() not in (None, old), max_ticks)
    return cluster.check_one_leader()


def to(*ids: int) -> Callable[[Message], bool]:
    """Selects held messages addressed to any of ``ids``."""
    return lambda m: m.to_id in ids


def win_election_by_hand(cluster: Cluster, node_id: int, down: tuple[int, ...]) -> None:
    """Campaign (again, at a higher term, if voters already voted) until ``node_id`` leads."""
    for _ in range(4):
        if cluster.raft(node_id).role == Role.LEADER:
            return
        cluster.campaign(node_id)
        cluster.drop_where(lambda m: m.to_id in down)
        cluster.deliver_where(lambda m: isinstance(m, VoteRequest))
        cluster.deliver_where(lambda m: m.to_id == node_id)
    assert cluster.raft(node_id).role == Role.LEADER


def terms_of(cluster: Cluster) -> dict[int, int]:
    return {n.id: n.raft.term for n in cluster.live() if n.raft is not None}


@pytest.mark.parametrize("jitter", [0, 3])
@pytest.mark.parametrize("n", [3, 5])
def test_initial_election_and_no_change_while_healthy(n: int, jitter: int) -> None:
    """Raft §5.2: a leader is elected, and keeps leading while the network stays healthy
    (messages delayed and reordered by up to ``jitter`` ticks, none lost)."""
    cluster = Cluster(n, seed=n)
    cluster.net.faults = Faults(max_delay_ticks=max(1, jitter))
    leader = cluster.check_one_leader(max_ticks=4 * ELECTION)
    term = cluster.raft(leader).term
    for _ in range(20 * ELECTION):
        cluster.tick()
        assert cluster.leaders() == [leader]
    assert set(terms_of(cluster).values()) == {term}
    assert all(cluster.raft(i).leader_id == leader for i in cluster.nodes)


def test_cut_off_leader_rejoins_steps_down_and_loses_uncommitted_entries() -> None:
    """Raft §5.3/§5.4: the majority elects a new leader; the old one rejoins as a follower and
    its uncommitted entries are replaced by the new leader's log."""
    cluster = Cluster(5, seed=11)
    cluster.check_one_leader()
    cluster.one(b"before")
    old = cluster.leader()
    assert old is not None
    cluster.disconnect(old)
    old_term = cluster.raft(old).term
    lost = [cluster.propose(old, b"lost-%d" % i)[1] for i in range(3)]
    new = new_leader(cluster, old)
    cluster.one(b"after-1")
    cluster.one(b"after-2")
    cluster.connect(old)
    cluster.one(b"after-rejoin", expected=5)
    assert cluster.raft(old).role == Role.FOLLOWER
    assert cluster.raft(old).leader_id == cluster.leader()
    everyone = cluster.nodes.values()
    assert all(not e.data.startswith(b"lost-") for n in everyone for e in n.applied)
    for index in lost:
        assert cluster.raft(old).log_entry_term(Index(index)) != old_term
    assert all(len(n.applied) == len(cluster.nodes[new].applied) for n in everyone)


def test_no_leader_without_quorum() -> None:
    """Raft §5.2: 2 of 5 connected cannot elect a leader (and a cut-off leader steps down)."""
    cluster = Cluster(5, seed=5)
    leader = cluster.check_one_leader()
    others = [i for i in cluster.nodes if i != leader]
    cluster.partition([leader, others[0]], [others[1]], [others[2]], [others[3]])
    cluster.run(3 * ELECTION)
    for _ in range(10 * ELECTION):
        cluster.tick()
        assert cluster.leaders() == []
    cluster.heal()
    cluster.check_one_leader()
    cluster.one(b"healed", expected=5)


def test_divergent_follower_repaired_in_few_round_trips() -> None:
    """Raft §5.3 (the optimization at the end): a follower with a long log of old, uncommitted
    entries is repaired by backing up a whole term per rejected append, not one entry."""
    cluster = Cluster(3, seed=3, max_inflight_msgs=4)
    first = cluster.check_one_leader()
    cluster.one(b"common")
    cluster.disconnect(first)
    for i in range(60):
        cluster.propose(first, b"stale-%d" % i)  # term t1, never committed
    cluster.run(3 * ELECTION)  # CheckQuorum: it steps down, and PreVote keeps its term
    # The other two run through several terms, each with a few entries.
    for round_ in range(3):
        leader = cluster.check_one_leader()
        for i in range(3):
            cluster.one(b"new-%d-%d" % (round_, i), expected=2)
        cluster.transfer(leader, next(i for i in cluster.nodes if i not in (first, leader)))
        cluster.run(ELECTION)
    leader = cluster.check_one_leader()
    assert cluster.raft(first).last_index > cluster.raft(leader).last_index
    rejects: list[Message] = []
    appends: list[Message] = []

    def tap(m: Message) -> None:
        if isinstance(m, AppendResponse) and m.from_id == first and not m.success:
            rejects.append(m)
        if isinstance(m, AppendRequest) and m.to_id == first and m.entries:
            appends.append(m)

    cluster.on_send = tap
    cluster.connect(first)
    top = cluster.raft(leader).last_index
    assert cluster.run_until(lambda: len(cluster.nodes[first].applied) >= top, 4 * ELECTION)
    assert all(not e.data.startswith(b"stale-") for e in cluster.nodes[first].applied)
    assert len(rejects) <= 2, f"{len(rejects)} rejected appends to repair 60 divergent entries"
    assert len(appends) <= 3


def test_divergent_follower_repaired_by_term_hints() -> None:
    """Raft §5.3 (end): when the first contact is the new leader's probe at its last index,
    the reject's hint lets the leader skip the follower's whole stale term at once: one or two
    rejected probes for 60 divergent entries, where backing up one entry at a time takes 60."""
    cluster = Cluster(3, seed=4, max_inflight_msgs=4)
    first = cluster.check_one_leader()
    cluster.one(b"common")
    cluster.disconnect(first)
    for i in range(60):
        cluster.propose(first, b"stale-%d" % i)
    cluster.run(3 * ELECTION)
    leader = cluster.check_one_leader()
    for i in range(70):  # newer-term entries over every index the stale ones occupy
        cluster.propose(leader, b"new-%d" % i)
    cluster.one(b"new-last", expected=2)
    other = next(i for i in cluster.nodes if i not in (first, leader))
    # Hold every message: the next leader's first words to `first` are its no-op probe.
    cluster.hold_messages = True
    cluster.connect(first)
    cluster.transfer(leader, other)
    rejects = 0
    for _ in range(40):
        if cluster.raft(first).last_index == cluster.raft(other).last_index and (
            cluster.raft(first).log_entry_term(Index(cluster.raft(first).last_index))
            == cluster.raft(other).term
        ):
            break
        cluster.drop_where(lambda m: isinstance(m, AppendRequest) and not m.entries)
        rejects += sum(
            1
            for m, _ in cluster.outbox
            if isinstance(m, AppendResponse) and m.from_id == first and not m.success
        )
        cluster.deliver_where(lambda m: True)
    else:
        raise AssertionError("the divergent follower was never repaired")
    assert cluster.raft(other).role == Role.LEADER
    assert 1 <= rejects <= 2, f"{rejects} rejected probes to repair 60 divergent entries"


def test_figure_8_old_term_entry_on_majority_is_not_committed() -> None:
    """Raft §5.4.2, Figure 8: a leader does not commit an entry of an older term by counting
    replicas, because a later leader could still overwrite it."""
    cluster = Cluster(5, seed=8, pre_vote=False, check_quorum=False, max_msg_bytes=1)
    cluster.hold_messages = True
    # (a) S1 leads term 1, everyone has its no-op; it replicates x (term 1) to S2 only.
    cluster.campaign(1)
    cluster.stabilize()
    assert cluster.raft(1).role == Role.LEADER and cluster.raft(1).commit_index == 1
    _, x_index = cluster.propose(1, b"x")
    cluster.deliver_where(to(2))
    cluster.deliver_where(to(1))
    cluster.drop_where(lambda m: True)
    assert cluster.raft(1).commit_index == 1
    # (b) S1 crashes; S5 wins term 2 with S3 and S4, appends its no-op at x's index, crashes.
    cluster.crash(1)
    cluster.campaign(5)
    cluster.drop_where(to(1, 2))
    cluster.deliver_where(to(3, 4))
    cluster.deliver_where(to(5))
    assert cluster.raft(5).role == Role.LEADER
    assert cluster.raft(5).log_entry_term(Index(x_index)) == 2
    cluster.drop_where(lambda m: True)
    cluster.crash(5)
    # (c) S1 restarts, wins term 3 and replicates x to S3: x is on a majority (S1, S2, S3)
    # and S1 knows it; its term-3 no-op is only on S1 and S2.
    cluster.restart(1)
    win_election_by_hand(cluster, 1, down=(5,))
    assert cluster.raft(1).role == Role.LEADER and cluster.raft(1).term == 3
    cluster.drop_where(to(4, 5))
    cluster.deliver_where(to(2))  # S2 (holding x) takes the no-op: S1 learns S2 matches
    cluster.deliver_where(lambda m: m.to_id == 1 and m.from_id == 2)
    cluster.drop_where(to(2))
    for _ in range(6):  # S3 rejects the no-op's append; S1 backs up and sends x alone
        if cluster.raft(3).log_entry_term(Index(x_index)) == 1:
            break
        cluster.deliver_where(to(3))
        cluster.deliver_where(to(1))
    cluster.drop_where(lambda m: True)  # S3 does not get the term-3 no-op
    s3 = cluster.raft(3)
    assert s3.log_entry_term(Index(x_index)) == 1 and s3.last_index == x_index
    assert cluster.raft(1).commit_index < x_index, "an old-term entry was committed by counting"
    # (d) Were x committed, this would lose it: S1 crashes and S5 wins with S3 and S4.
    cluster.crash(1)
    cluster.outbox.clear()
    cluster.restart(5)
    win_election_by_hand(cluster, 5, down=(1,))
    assert cluster.raft(5).role == Role.LEADER
    cluster.stabilize()
    assert cluster.raft(3).log_entry_term(Index(x_index)) == 2


@pytest.mark.parametrize("compact", [0, 5])
def test_every_node_crashes_and_restarts_committed_entries_survive(compact: int) -> None:
    """Raft §5.1/§5.2 persistence: crash nodes one by one, then all at once; what was
    acknowledged survives and the cluster goes on."""
    cluster = Cluster(3, seed=21, compact_threshold=compact)
    cluster.check_one_leader()
    for i in range(5):
        cluster.one(b"a-%d" % i)
    for node_id in sorted(cluster.nodes):
        cluster.crash(node_id)
        cluster.one(b"while-%d-down" % node_id, expected=2)
        cluster.restart(node_id)
        cluster.one(b"after-%d-back" % node_id, expected=3)
    for node_id in sorted(cluster.nodes):
        cluster.crash(node_id)
    cluster.run(ELECTION)
    for node_id in sorted(cluster.nodes):
        cluster.restart(node_id)
    cluster.check_one_leader()
    final = cluster.one(b"after-all", expected=3)
    for node in cluster.nodes.values():
        for index, data in cluster.acknowledged.items():
            assert node.applied[index - 1].data == data
        assert len(node.applied) >= final


def test_prevote_rejoining_node_does_not_raise_term() -> None:
    """Thesis §9.6: a partitioned node cannot win pre-votes, so it does not bump its term, and
    rejoining does not disturb the healthy cluster."""
    cluster = Cluster(3, seed=31)
    leader = cluster.check_one_leader()
    term = cluster.raft(leader).term
    loner = next(i for i in cluster.nodes if i != leader)
    cluster.disconnect(loner)
    cluster.run(20 * ELECTION)
    assert cluster.raft(loner).term == term
    cluster.connect(loner)
    cluster.run(5 * ELECTION)
    assert cluster.leaders() == [leader]
    assert set(terms_of(cluster).values()) == {term}


def test_without_prevote_a_rejoining_node_disrupts_the_term() -> None:
    """The contrast (thesis §9.6): without PreVote the loner's term runs away."""
    cluster = Cluster(3, seed=31, pre_vote=False)
    leader = cluster.check_one_leader()
    term = cluster.raft(leader).term
    loner = next(i for i in cluster.nodes if i != leader)
    cluster.disconnect(loner)
    cluster.run(20 * ELECTION)
    assert cluster.raft(loner).term > term


def test_check_quorum_cut_off_leader_steps_down() -> None:
    """Thesis §6.2: a leader that hears from no majority within an election timeout steps
    down (the check runs every election_ticks, so within two of them from the cut)."""
    cluster = Cluster(5, seed=41)
    leader = cluster.check_one_leader()
    cluster.disconnect(leader)
    assert cluster.run_until(lambda: cluster.raft(leader).role != Role.LEADER, 2 * ELECTION)


@pytest.mark.parametrize("check_quorum", [True, False])
def test_deposed_leader_serves_no_stale_read(check_quorum: bool) -> None:
    """Thesis §6.4: ReadIndex confirms leadership with a quorum before answering, so a deposed
    leader that has not heard of its successor never answers (with or without CheckQuorum)."""
    cluster = Cluster(5, seed=51, check_quorum=check_quorum)
    old = cluster.check_one_leader()
    cluster.one(b"v1", expected=5)
    minority = [old, next(i for i in cluster.nodes if i != old)]
    majority = [i for i in cluster.nodes if i not in minority]
    cluster.partition(minority, majority)
    new = new_leader(cluster, old)
    assert new in majority
    cluster.one(b"v2", expected=3)
    asked: list[tuple[int, int]] = []
    for _ in range(3 * ELECTION):
        for node_id in minority:
            raft = cluster.raft(node_id)
            if raft.role == Role.LEADER or raft.leader_id == old:
                asked.append((node_id, cluster.read(node_id)))
        cluster.tick()
    assert asked
    for node_id, context in asked:
        assert context not in cluster.nodes[node_id].served_reads
    cluster.heal()
    cluster.one(b"v3", expected=5)
    for node_id, context in asked:
        served = cluster.nodes[node_id].served_reads.get(context)
        assert served is None, f"read {context} asked of deposed leader served at {served}"


@pytest.mark.parametrize(
    "lagging",
    [False, True],
)
def test_leadership_transfer_within_an_election_timeout(lagging: bool) -> None:
    """Thesis §3.10: the leader catches the target up, sends TimeoutNow, and the target leads
    within an election timeout; proposals are refused meanwhile."""
    cluster = Cluster(5, seed=61)
    leader = cluster.check_one_leader()
    target = max(i for i in cluster.nodes if i != leader)
    if lagging:
        cluster.disconnect(target)
        for i in range(20):
            cluster.one(b"w-%d" % i, expected=4)
        cluster.connect(target)
    cluster.transfer(leader, target)
    if lagging:
        with pytest.raises(ProposalDropped):
            cluster.propose(leader, b"during-transfer")
    assert cluster.run_until(lambda: cluster.leaders() == [target], ELECTION)
    cluster.one(b"after-transfer", expected=5)


def test_proposal_on_follower_raises_not_leader_with_the_leader_id() -> None:
    """Raft §5.1 / client interaction (§8): followers redirect clients to the leader."""
    cluster = Cluster(3, seed=71)
    leader = cluster.check_one_leader()
    cluster.one(b"x", expected=3)
    for node_id in cluster.nodes:
        if node_id == leader:
            continue
        with pytest.raises(NotLeader) as info:
            cluster.propose(node_id, b"y")
        assert info.value.leader_id == leader


def test_follower_behind_log_start_catches_up_by_snapshot() -> None:
    """Raft §7: a follower that missed entries the leader compacted receives a snapshot."""
    cluster = Cluster(3, seed=81, compact_threshold=10)
    leader = cluster.check_one_leader()
    behind = next(i for i in cluster.nodes if i != leader)
    cluster.disconnect(behind)
    for i in range(40):
        cluster.one(b"s-%d" % i, expected=2)
    assert cluster.nodes[leader].storage.snapshot_meta().index > 10
    cluster.connect(behind)
    top = cluster.raft(leader).commit_index
    assert cluster.run_until(lambda: len(cluster.nodes[behind].applied) >= top, 4 * ELECTION)
    assert cluster.nodes[behind].storage.snapshot_meta().index > 0
    cluster.crash(behind)
    cluster.restart(behind)
    cluster.one(b"after-restart", expected=3)


def test_follower_that_lost_the_last_append_catches_up_on_an_idle_cluster() -> None:
    """Raft §5.3: "the leader retries AppendEntries indefinitely" until every follower
    stores all entries, heartbeats included, even when no new command arrives."""
    cluster = Cluster(3, seed=91)
    leader = cluster.check_one_leader()
    cluster.one(b"a", expected=3)
    follower = next(i for i in cluster.nodes if i != leader)
    cluster.hold_messages = True
    _, index = cluster.propose(leader, b"lost-once")
    cluster.drop_where(lambda m: m.to_id == follower)
    cluster.hold_messages = False
    for message, payload in cluster.outbox:
        cluster.net.send(cluster.now, message, payload)
    cluster.outbox.clear()
    assert cluster.run_until(
        lambda: len(cluster.nodes[follower].applied) >= index, 20 * ELECTION
    ), "the follower never received the entry it missed"


def test_one_way_cut_leader_that_cannot_hear_is_replaced() -> None:
    """Thesis §6.2 with a one-way fault: a leader whose inbound links are cut still reaches
    everyone (so followers stay in its lease), but CheckQuorum makes it step down, and then
    the followers elect a leader that works."""
    cluster = Cluster(3, seed=93)
    old = cluster.check_one_leader()
    for other in cluster.nodes:
        if other != old:
            cluster.net.block(other, old)
    assert cluster.run_until(lambda: cluster.raft(old).role != Role.LEADER, 2 * ELECTION)
    assert cluster.run_until(lambda: cluster.leader() not in (None, old), 10 * ELECTION)
    cluster.one(b"after-one-way-cut", expected=2)


def test_one_way_cut_follower_that_cannot_hear_does_not_disrupt() -> None:
    """Thesis §9.6: a follower that stops hearing the leader (but can still send) campaigns
    with PreVote; the others are in the leader's lease, so the term and leader stay put."""
    cluster = Cluster(3, seed=94)
    leader = cluster.check_one_leader()
    term = cluster.raft(leader).term
    deaf = next(i for i in cluster.nodes if i != leader)
    cluster.net.block(leader, deaf)
    for i in range(5):
        cluster.one(b"w-%d" % i, expected=2)
    cluster.run(20 * ELECTION)
    assert cluster.leader() == leader and cluster.raft(leader).term == term
    cluster.net.heal()
    cluster.one(b"healed", expected=3)

"""Random schedules (the generator and the nemesis), then the liveness phase.

One seed decides everything: cluster size, fault rates, compaction, and each tick's actions.
Safety phase: clients propose and read on random nodes while the nemesis crashes and restarts
nodes (also between sending and persisting a Ready), partitions the network in any shape
(including one-way cuts), changes loss/duplication/delay, slows nodes and moves leadership.
Liveness phase: everything heals; a leader must emerge within ``LEADER_BOUND_TICKS`` and a
write proposed to it must reach every node within ``COMMIT_BOUND_TICKS``.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

from raftkv.core.errors import CoreError
from raftkv.core.membership import membership_of
from tests.sim.cluster import Cluster, LivenessFailure
from tests.sim.network import Faults

LEADER_BOUND_TICKS = 10 * 2 * 15
"""After healing: 10 maximal election timeouts (2,000 seeds: median 7 ticks, worst 126)."""
COMMIT_BOUND_TICKS = 600


@dataclass(frozen=True, slots=True)
class RunStats:
    seed: int
    nodes: int
    ticks: int
    leader_after_heal_ticks: int
    committed: int
    reads_served: int
    messages: int
    fingerprint: str
    """A digest of the whole run's trace and final state: equal for equal seeds."""


def random_membership_change(cluster: Cluster) -> None:
    """The leader proposes a random configuration over a pool of up to n + 2 nodes."""
    rng = cluster.rng
    leader = cluster.leader()
    if leader is None:
        return
    pool = list(range(1, cluster.pool_size + 1))
    voters = rng.sample(pool, rng.randint(1, min(5, len(pool))))
    rest = [i for i in pool if i not in voters]
    learners = rng.sample(rest, rng.randint(0, min(2, len(rest))))
    for node_id in voters + learners:
        if node_id not in cluster.nodes:
            cluster.join(node_id)
    target = membership_of(voters, learners)
    try:
        cluster.raft(leader).propose_conf_change(target)
    except CoreError:
        return
    cluster.trace.append(f"{cluster.now}: propose {target.describe()} on {leader}")


def build_cluster(seed: int) -> Cluster:
    cluster = Cluster(n=3, seed=seed)  # a throwaway to draw the run's shape from the same seed
    rng = cluster.rng
    n = rng.choice((3, 3, 5, 5, 1, 2, 4))
    compact = rng.choice((0, 0, 5, 20))
    return Cluster(
        n=n,
        seed=seed,
        compact_threshold=compact,
        compact_trailing=rng.choice((0, 2)),
        max_inflight_msgs=rng.choice((1, 4, 256)),
        max_msg_bytes=rng.choice((30, 1 << 20)),
        # Most runs use the production settings; some check the bare algorithm (and give a
        # deposed leader longer to misbehave).
        pre_vote=rng.random() < 0.8,
        check_quorum=rng.random() < 0.8,
        # Mostly the default (new entries at once only to a quorum's worth of followers).
        quorum_first=rng.random() < 0.8,
    )


def nemesis_step(cluster: Cluster) -> None:
    """One tick's worth of random client and fault actions."""
    rng = cluster.rng
    ids = sorted(cluster.nodes)
    live = [n.id for n in cluster.live()]
    roll = rng.random()
    if live and roll < 0.30:
        target = rng.choice(live)
        with contextlib.suppress(CoreError):
            cluster.propose(target, b"w%d.%d" % (cluster.now, target))
    elif live and roll < 0.36:
        with contextlib.suppress(CoreError):
            cluster.read(rng.choice(live))
    elif live and roll < 0.375:
        cluster.crash(rng.choice(live))
    elif roll < 0.40:
        down = [i for i in ids if i not in live]
        if down:
            cluster.restart(rng.choice(down))
    elif roll < 0.41:
        shuffled = ids[:]
        rng.shuffle(shuffled)
        leader = cluster.leader()
        if leader is not None and rng.random() < 0.5:
            # Cut the leader off into a minority (the most telling fault: deposed leaders).
            shuffled.remove(leader)
            shuffled.insert(0, leader)
            cut = rng.randint(1, max(1, (len(ids) - 1) // 2))
        else:
            cut = rng.randint(1, max(1, len(ids) - 1))
        cluster.partition(shuffled[:cut], shuffled[cut:])
    elif roll < 0.415 and len(ids) > 1:
        a, b = rng.sample(ids, 2)
        cluster.trace.append(f"{cluster.now}: block {a}->{b}")
        cluster.net.block(a, b)
    elif roll < 0.425:
        cluster.heal()
    elif roll < 0.435:
        low = rng.choice((0, 0, 1))
        cluster.net.faults = Faults(
            loss=rng.choice((0.0, 0.05, 0.2, 0.5)),
            duplicate=rng.choice((0.0, 0.1, 0.3)),
            min_delay_ticks=low,
            max_delay_ticks=low + rng.choice((1, 3, 10)),
        )
        cluster.trace.append(f"{cluster.now}: faults {cluster.net.faults}")
    elif roll < 0.44:
        node = cluster.nodes[rng.choice(ids)]
        node.slow_every = rng.choice((1, 1, 3, 8))
        cluster.trace.append(f"{cluster.now}: node {node.id} slow every {node.slow_every}")
    elif roll < 0.445:
        leader = cluster.leader()
        if leader is not None:
            with contextlib.suppress(CoreError):
                cluster.transfer(leader, rng.choice(ids))
    elif live and roll < 0.447:
        cluster.campaign(rng.choice(live))
    elif cluster.pool_size and roll < 0.46:
        random_membership_change(cluster)


def heal_everything(cluster: Cluster) -> None:
    cluster.heal()
    cluster.net.faults = Faults()
    cluster.crash_mid_ready = 0.0
    for node in cluster.nodes.values():
        node.slow_every = 1
    for node_id in sorted(cluster.nodes):
        cluster.restart(node_id)


def check_reads_are_served(cluster: Cluster, leader: int, members: list[int]) -> None:
    """Liveness of ReadIndex: a read on the leader and one on a follower are both answered.

    Like a client, a read that was dropped or went unanswered for a few election timeouts is
    asked again (a delayed TimeoutNow from an aborted transfer may still move leadership).
    """
    del leader  # the newest leader is looked up at every attempt
    election = cluster.config_args["election_ticks"]
    deadline = cluster.now + COMMIT_BOUND_TICKS
    while cluster.now < deadline:
        current = cluster.leader()
        if current is None:
            cluster.run(1)
            continue
        asked = [(current, cluster.read(current))]
        followers = [i for i in members if i != current and cluster.raft(i).leader_id == current]
        if followers:
            follower = cluster.rng.choice(followers)
            asked.append((follower, cluster.read(follower)))

        def served(asked: list[tuple[int, int]] = asked) -> bool:
            return all(context in cluster.nodes[node].served_reads for node, context in asked)

        if cluster.run_until(served, min(4 * election, max(1, deadline - cluster.now))):
            return
    raise LivenessFailure("reads on the leader and a follower were not served after healing")


def run_schedule(
    seed: int, safety_ticks: int | None = None, *, membership: bool = False
) -> RunStats:
    cluster = build_cluster(seed)
    if membership:
        cluster.pool_size = len(cluster.nodes) + 2
    try:
        return _run(cluster, safety_ticks)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{cluster.describe()}") from exc


def _run(cluster: Cluster, safety_ticks: int | None) -> RunStats:
    rng = cluster.rng
    ticks = safety_ticks if safety_ticks is not None else rng.randint(100, 400)
    cluster.crash_mid_ready = rng.choice((0.0, 0.002, 0.01))
    for _ in range(ticks):
        nemesis_step(cluster)
        cluster.tick()
    # -- liveness -----------------------------------------------------------------------------
    heal_everything(cluster)
    healed_at = cluster.now
    cluster.check_one_leader(LEADER_BOUND_TICKS)
    leader_ticks = cluster.now - healed_at
    index = cluster.one(b"final", max_ticks=COMMIT_BOUND_TICKS)

    def settled() -> bool:
        leader = cluster.leader()
        if leader is None:
            return False
        raft = cluster.raft(leader)
        return not raft.membership.is_joint and raft.applied_index == raft.last_index

    if not cluster.run_until(settled, COMMIT_BOUND_TICKS):
        raise LivenessFailure("the leader did not settle on a final configuration")
    # No more client traffic: heartbeats alone must bring every member up to date.
    leader = cluster.check_one_leader(LEADER_BOUND_TICKS)
    config = cluster.raft(leader).membership
    members = sorted(i for i in config.members() if i in cluster.nodes)
    if not (cluster.config_args["pre_vote"] or cluster.config_args["check_quorum"]):
        # A removed node that never learned of its removal keeps campaigning, and without
        # PreVote or CheckQuorum nothing stops it from deposing leaders (Raft paper §6): the
        # operator stops removed nodes. (With either protection they stay running.)
        for node_id in sorted(cluster.nodes):
            if node_id not in members:
                cluster.crash(node_id)
        leader = cluster.check_one_leader(LEADER_BOUND_TICKS)
    top = cluster.raft(leader).commit_index
    everyone = cluster.run_until(
        lambda: all(len(cluster.nodes[i].applied) >= top for i in members), COMMIT_BOUND_TICKS
    )
    if not everyone:
        raise LivenessFailure(f"not every member of {config.describe()} applied through {top}")
    check_reads_are_served(cluster, leader, members)
    cluster.checker.check_logs_fully(list(cluster.nodes.values()))
    for node_id in members:
        node = cluster.nodes[node_id]
        for ack_index, data in cluster.acknowledged.items():
            if node.applied[ack_index - 1].data != data:
                raise AssertionError(f"acknowledged write at {ack_index} lost on node {node.id}")
    return RunStats(
        seed=cluster.seed,
        nodes=len(cluster.nodes),
        ticks=cluster.now,
        leader_after_heal_ticks=leader_ticks,
        committed=index,
        reads_served=cluster.checker.reads_served,
        messages=cluster.net.sent,
        fingerprint=hashlib.sha256(
            "\n".join([*cluster.trace, cluster.describe()]).encode()
        ).hexdigest(),
    )

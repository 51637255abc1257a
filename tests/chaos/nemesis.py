"""Nemeses: what breaks during a chaos run, as seeded schedules of rounds against a RealCluster.

A *round* injects one fault, holds it for a random time, and undoes it (kill -9 then restart,
SIGSTOP then SIGCONT, iptables rules then heal, a slower proxy then a fast one; a leadership
transfer is an instant fault). ``run_nemesis`` plays rounds of the named kinds, separated by
healthy gaps, until its deadline.

Rules kept here:
- Every fault is written to the ``FaultLog`` as ``{"name", "start_s", "end_s", "detail"}`` on
  the workload's clock (``time.monotonic``) before it is applied and closed after it is undone,
  so the history's timeline draws it and a failure message lists it.
- A round always undoes its own fault, also when cancelled (``finally``); ``heal_all`` then
  restores everything at the end of a run whatever happened (rules, paused and dead nodes,
  proxy delays).
- Choices come from the seeded ``random.Random`` in the context; real time still varies, so a
  seed replays the same *schedule*, not the same interleaving.
- Blocking harness calls (ip, iptables, kill, Popen) run in a worker thread, so clients keep
  running while a fault is applied. Holding a fault for a time is the schedule itself, not a
  synchronisation; every loop is bounded by a round count and the deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from raftkv.errors import RaftKVError
from tests.chaos.netns import Cluster
from tests.chaos.realcluster import ClusterError, RealCluster

MAX_ROUNDS = 1000


@dataclass
class FaultLog:
    """The fault schedule as it happened (JSON-ready; goes into the history's meta)."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def begin(self, name: str, **detail: Any) -> int:
        self.records.append(
            {"name": name, "start_s": time.monotonic(), "end_s": None, "detail": detail}
        )
        return len(self.records) - 1

    def end(self, index: int, **detail: Any) -> None:
        self.records[index]["end_s"] = time.monotonic()
        self.records[index]["detail"].update(detail)

    def describe(self, origin_s: float = 0.0) -> str:
        lines = []
        for r in self.records:
            end = "open" if r["end_s"] is None else f"{r['end_s'] - origin_s:7.2f}s"
            lines.append(f"  {r['start_s'] - origin_s:7.2f}s .. {end}  {r['name']} {r['detail']}")
        return "\n".join(lines) or "  (no faults)"


@dataclass
class Context:
    cluster: RealCluster
    rng: random.Random
    log: FaultLog
    deadline_s: float  # time.monotonic() value after which no new round starts
    hold_s: tuple[float, float] = (1.5, 3.5)
    gap_s: tuple[float, float] = (1.0, 2.5)

    def remaining_s(self) -> float:
        return self.deadline_s - time.monotonic()

    async def hold(self, bounds: tuple[float, float] | None = None) -> None:
        """Keep the current fault (or the healthy gap) for a random time within the deadline."""
        low, high = bounds or self.hold_s
        await asyncio.sleep(max(0.0, min(self.rng.uniform(low, high), self.remaining_s())))

    async def do(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def leader_or_random(self) -> int:
        try:
            return await self.cluster.leader(timeout_s=5.0)
        except ClusterError:
            return self.rng.randrange(self.cluster.n)

    def majority(self) -> int:
        return self.cluster.n // 2 + 1


Round = Callable[[Context], Awaitable[None]]


# --- process faults --------------------------------------------------------------------------


async def _kill_nodes(ctx: Context, name: str, nodes: Sequence[int]) -> None:
    c = ctx.cluster
    entry = ctx.log.begin(name, nodes=[n + 1 for n in nodes])
    try:
        for node in nodes:
            await ctx.do(c.kill, node)
        await ctx.hold()
    finally:
        for node in nodes:
            await ctx.do(c.start, node)
        ctx.log.end(entry)


async def kill_leader(ctx: Context) -> None:
    await _kill_nodes(ctx, "kill-leader", [await ctx.leader_or_random()])


async def kill_random(ctx: Context) -> None:
    await _kill_nodes(ctx, "kill-random", [ctx.rng.randrange(ctx.cluster.n)])


async def kill_majority(ctx: Context) -> None:
    nodes = ctx.rng.sample(range(ctx.cluster.n), ctx.majority())
    await _kill_nodes(ctx, "kill-majority", sorted(nodes))


async def restart_all(ctx: Context) -> None:
    c = ctx.cluster
    entry = ctx.log.begin("restart-all", nodes=list(range(1, c.n + 1)))
    try:
        await ctx.do(c.kill_all)
        await ctx.hold((0.2, 1.5))
    finally:
        await ctx.do(c.start_all_nodes)
        ctx.log.end(entry)


async def _pause(ctx: Context, name: str, node: int) -> None:
    c = ctx.cluster
    entry = ctx.log.begin(name, node=node + 1)
    try:
        await ctx.do(c.pause, node)
        await ctx.hold()
    finally:
        await ctx.do(c.resume, node)
        ctx.log.end(entry)


async def pause_leader(ctx: Context) -> None:
    await _pause(ctx, "pause-leader", await ctx.leader_or_random())


async def pause_random(ctx: Context) -> None:
    await _pause(ctx, "pause-random", ctx.rng.randrange(ctx.cluster.n))


# --- network faults --------------------------------------------------------------------------


async def _network(ctx: Context, name: str, apply: Callable[[], None], **detail: Any) -> None:
    net = ctx.cluster.net
    entry = ctx.log.begin(name, **detail)
    try:
        await ctx.do(apply)
        await ctx.hold()
    finally:
        await ctx.do(net.heal)
        ctx.log.end(entry)


def cut(net_cluster: Cluster, pairs: Sequence[tuple[int, int]]) -> None:
    """Cut each link both ways."""
    for a, b in pairs:
        net_cluster.one_way_drop(a, b)
        net_cluster.one_way_drop(b, a)


async def partition_leader(ctx: Context) -> None:
    leader = await ctx.leader_or_random()
    await _network(ctx, "isolate-leader", lambda: ctx.cluster.net.isolate(leader), node=leader + 1)


async def partition_halves(ctx: Context) -> None:
    nodes = list(range(ctx.cluster.n))
    ctx.rng.shuffle(nodes)
    major, minor = sorted(nodes[: ctx.majority()]), sorted(nodes[ctx.majority():])
    await _network(
        ctx, "partition-majority-minority",
        lambda: ctx.cluster.net.partition([major, minor]),
        majority=[n + 1 for n in major], minority=[n + 1 for n in minor],
    )


def bridge_pairs(n: int, rng: random.Random) -> tuple[int, list[tuple[int, int]]]:
    """A bridge node sees everyone; the others split in two halves that cannot see each other."""
    nodes = list(range(n))
    rng.shuffle(nodes)
    bridge, rest = nodes[0], nodes[1:]
    left, right = rest[: len(rest) // 2], rest[len(rest) // 2:]
    return bridge, [(a, b) for a in left for b in right]


def ring_pairs(n: int, rng: random.Random) -> tuple[list[int], list[tuple[int, int]]]:
    """Nodes on a random ring see only their two neighbours: with 5, every node sees a
    different majority (itself and its neighbours)."""
    order = list(range(n))
    rng.shuffle(order)
    neighbours = {frozenset((order[i], order[(i + 1) % n])) for i in range(n)}
    pairs = [
        (a, b) for a in range(n) for b in range(a + 1, n) if frozenset((a, b)) not in neighbours
    ]
    return order, pairs


async def partition_bridge(ctx: Context) -> None:
    bridge, pairs = bridge_pairs(ctx.cluster.n, ctx.rng)
    await _network(
        ctx, "partition-bridge", lambda: cut(ctx.cluster.net, pairs),
        bridge=bridge + 1, cut=[[a + 1, b + 1] for a, b in pairs],
    )


async def partition_ring(ctx: Context) -> None:
    order, pairs = ring_pairs(ctx.cluster.n, ctx.rng)
    await _network(
        ctx, "partition-ring", lambda: cut(ctx.cluster.net, pairs),
        ring=[n + 1 for n in order], cut=[[a + 1, b + 1] for a, b in pairs],
    )


async def one_way_loss(ctx: Context) -> None:
    """The leader's packets to the others vanish while theirs still reach it, or the reverse."""
    leader = await ctx.leader_or_random()
    others = [i for i in range(ctx.cluster.n) if i != leader]
    outbound = ctx.rng.random() < 0.5
    links = [(leader, o) if outbound else (o, leader) for o in others]

    def apply() -> None:
        for src, dst in links:
            ctx.cluster.net.one_way_drop(src, dst)

    await _network(
        ctx, "one-way-drop", apply, links=[[s + 1, d + 1] for s, d in links],
        direction="from-leader" if outbound else "to-leader",
    )


async def packet_loss(ctx: Context) -> None:
    """iptables ``statistic``: random loss on one node's links, or on every link."""
    net = ctx.cluster.net
    if ctx.rng.random() < 0.5:
        node, p = ctx.rng.randrange(ctx.cluster.n), ctx.rng.uniform(0.2, 0.5)
        await _network(ctx, "lossy-node", lambda: net.lossy_node(node, p), node=node + 1,
                       probability=round(p, 3))
        return
    p = ctx.rng.uniform(0.05, 0.2)

    def apply() -> None:
        for a in range(ctx.cluster.n):
            for b in range(ctx.cluster.n):
                if a != b:
                    net.lossy_link(a, b, p)

    await _network(ctx, "lossy-all", apply, probability=round(p, 3))


async def delay(ctx: Context) -> None:
    """Slow every byte into some proxied nodes (50-250 ms, jittered), then back to none."""
    c = ctx.cluster
    delayed = sorted(c.delayed)
    if not delayed:
        raise ValueError("the delay nemesis needs a RealCluster with delayed nodes")
    nodes = sorted(ctx.rng.sample(delayed, ctx.rng.randint(1, len(delayed))))
    delay_s, jitter_s = ctx.rng.uniform(0.05, 0.25), ctx.rng.uniform(0.0, 0.05)
    entry = ctx.log.begin(
        "delay", nodes=[n + 1 for n in nodes], delay_ms=round(delay_s * 1000),
        jitter_ms=round(jitter_s * 1000),
    )
    try:
        for node in nodes:
            await ctx.do(c.set_delay, node, delay_s, jitter_s)
        await ctx.hold()
    finally:
        for node in nodes:
            await ctx.do(c.set_delay, node, 0.0)
        ctx.log.end(entry)


# --- leadership --------------------------------------------------------------------------------


async def transfer_leader(ctx: Context) -> None:
    """Ask the leader to hand over to another node (an instant fault; the answer is logged)."""
    c = ctx.cluster
    leader = await ctx.leader_or_random()
    target = ctx.rng.choice([i for i in range(c.n) if i != leader])
    entry = ctx.log.begin("transfer-leader", source=leader + 1, target=target + 1)
    try:
        reported = await c.admin().transfer_leader(target + 1, timeout=3.0)
        ctx.log.end(entry, reported_leader=reported)
    except RaftKVError as exc:
        ctx.log.end(entry, error=repr(exc)[:200])
    await ctx.hold((0.3, 1.0))


# --- membership --------------------------------------------------------------------------------


MEMBERSHIP_SETTLE_S = 30.0


async def membership_under_loss(ctx: Context) -> None:
    """Remove a random member (the leader too, sometimes) and add it back as a learner, which
    the leader promotes once caught up, while every link drops packets. The node keeps running
    throughout; the round ends with the full membership restored (or the test fails)."""
    c = ctx.cluster
    node = ctx.rng.randrange(c.n)
    p = ctx.rng.uniform(0.05, 0.15)
    entry = ctx.log.begin("membership-under-loss", node=node + 1, probability=round(p, 3))
    admin = c.admin()
    errors: list[str] = []
    try:
        for a in range(c.n):
            for b in range(c.n):
                if a != b:
                    await ctx.do(c.net.lossy_link, a, b, p)
        for step in ("remove", "add"):
            try:
                if step == "remove":
                    await admin.member_remove(node + 1, timeout=10.0)
                else:
                    await admin.member_add(node + 1, c.address(node), learner=True, timeout=10.0)
            except RaftKVError as exc:  # refused or timed out under loss: logged, repaired below
                errors.append(f"{step}: {exc!r}"[:200])
        await ctx.hold((0.5, 1.5))
    finally:
        await ctx.do(c.net.heal)
        restored = await _restore_voter(ctx, node)
        ctx.log.end(entry, errors=errors, restored=restored)
    if not restored:
        raise AssertionError(f"node {node + 1} was not a voter again within {MEMBERSHIP_SETTLE_S}s")


async def _restore_voter(ctx: Context, node: int) -> bool:
    """Poll (with a deadline) until ``node`` is a voter and no change is in flight, re-adding it
    if the round's own add was lost."""
    admin = ctx.cluster.admin()
    deadline = time.monotonic() + MEMBERSHIP_SETTLE_S
    while time.monotonic() < deadline:
        try:
            members = await admin.member_list(timeout=2.0)
            mine = [m for m in members.members if m.id == node + 1]
            if mine and not mine[0].learner and not members.outgoing:
                return True
            if not mine and not members.outgoing:
                await admin.member_add(node + 1, ctx.cluster.address(node), learner=True,
                                       timeout=5.0)
        except RaftKVError:
            pass  # no leader yet, or a change still in flight: poll again
        await asyncio.sleep(0.2)  # poll interval
    return False


NEMESES: dict[str, Round] = {
    "kill-leader": kill_leader,
    "kill-random": kill_random,
    "kill-majority": kill_majority,
    "restart-all": restart_all,
    "pause-leader": pause_leader,
    "pause-random": pause_random,
    "isolate-leader": partition_leader,
    "partition-majority-minority": partition_halves,
    "partition-bridge": partition_bridge,
    "partition-ring": partition_ring,
    "one-way-drop": one_way_loss,
    "packet-loss": packet_loss,
    "delay": delay,
    "transfer-leader": transfer_leader,
    "membership-under-loss": membership_under_loss,
}


async def run_nemesis(ctx: Context, names: Sequence[str], *, first_gap_s: float = 1.0) -> None:
    """Play rounds of the named nemeses (chosen at random when several) until the deadline."""
    rounds = [NEMESES[name] for name in names]
    await ctx.hold((first_gap_s, first_gap_s))
    for _ in range(MAX_ROUNDS):
        if ctx.remaining_s() < 1.0:
            return
        await ctx.rng.choice(rounds)(ctx)
        await ctx.hold(ctx.gap_s)


def heal_all(cluster: RealCluster) -> None:
    """Undo every fault: network rules, pauses, dead nodes, proxy delays (blocking)."""
    cluster.net.heal()
    for node in list(cluster.paused):
        cluster.resume(node)
    cluster.start_all_nodes()
    for node in sorted(cluster.delayed):
        cluster.set_delay(node, 0.0)

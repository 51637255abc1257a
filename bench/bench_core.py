"""Micro-benchmarks of the consensus core alone (no I/O): ns per operation.

Run: ``python bench/bench_core.py`` (prints the table) or ``python bench/bench_core.py --write``
(also rewrites bench/CORE.md). Each figure is the best of several timed repeats (timeit
style: the minimum is the least disturbed by the rest of the machine).

Two costs are reported per message kind: ``step`` alone (what etcd's Go figures measure), and
``step + ready + advance`` with the in-memory storage writes a driver does for that message.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftkv.core.config import RaftConfig
from raftkv.core.membership import membership_of
from raftkv.core.messages import AppendRequest, AppendResponse, Message, VoteRequest
from raftkv.core.raft import RaftNode
from raftkv.core.ready import Role
from raftkv.core.storage import MemoryStorage
from raftkv.core.types import Entry, Index, NodeId, Term

REPEATS = 5
clock = time.process_time
"""CPU time of this process: the figures hold on a shared, loaded machine too."""
GO_REFERENCE_NS = {
    "RequestVote": 125,
    "heartbeat AppendEntries": 85,
    "AppendEntries, 3 entries": 320,
}


# ---------------------------------------------------------------------------------- driving
def new_node(
    node_id: int, voters: list[int], seed: int = 1, **config: object
) -> tuple[RaftNode, MemoryStorage]:
    storage = MemoryStorage(membership_of(voters))
    node = RaftNode(RaftConfig(node_id=NodeId(node_id), **config), storage, random.Random(seed))  # type: ignore[arg-type]
    return node, storage


def drain(node: RaftNode, storage: MemoryStorage, out: list[Message] | None = None) -> None:
    while node.has_ready():
        rd = node.ready()
        if out is not None:
            out.extend(rd.send_now)
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        if out is not None:
            out.extend(rd.send_after_persist)
        node.advance(rd)


def best_ns_per_op(run: Callable[[int], float], ops: int) -> float:
    """``run(ops)`` returns seconds spent on ``ops`` operations; the best of REPEATS, per op."""
    return min(run(ops) for _ in range(REPEATS)) * 1e9 / ops


# ---------------------------------------------------------------------------------- message benches
def _time_repeated_step(
    node: RaftNode, storage: MemoryStorage, message: Message, ops: int, with_ready: bool
) -> float:
    """CPU seconds for ``ops`` deliveries of the same ``message`` (after one untimed warm-up),
    each followed by the driver's ready/persist/advance work when ``with_ready``."""
    node.step(message)
    drain(node, storage)
    step = node.step
    spent = 0.0
    batch = 1000
    for _ in range(ops // batch):
        t0 = clock()
        if with_ready:
            for _ in range(batch):
                step(message)
                drain(node, storage)
        else:
            for _ in range(batch):
                step(message)
        spent += clock() - t0
        drain(node, storage)
    return spent


def bench_vote(ops: int, with_ready: bool) -> float:
    node, storage = new_node(1, [1, 2, 3])
    request = VoteRequest(
        from_id=NodeId(2),
        to_id=NodeId(1),
        term=Term(1),
        last_log_index=Index(0),
        last_log_term=Term(0),
    )
    return _time_repeated_step(node, storage, request, ops, with_ready)


def bench_heartbeat(ops: int, with_ready: bool) -> float:
    node, storage = new_node(1, [1, 2, 3])
    beat = AppendRequest(
        from_id=NodeId(2),
        to_id=NodeId(1),
        term=Term(1),
        prev_index=Index(0),
        prev_term=Term(0),
        entries=(),
        commit=Index(0),
        seq=0,
    )
    return _time_repeated_step(node, storage, beat, ops, with_ready)


def bench_append3(ops: int, with_ready: bool) -> float:
    node, storage = new_node(1, [1, 2, 3])
    messages = []
    for i in range(ops):
        first = 3 * i + 1
        entries = tuple(
            Entry(term=Term(1), index=Index(first + k), data=b"x" * 16) for k in range(3)
        )
        messages.append(
            AppendRequest(
                from_id=NodeId(2),
                to_id=NodeId(1),
                term=Term(1),
                prev_index=Index(first - 1),
                prev_term=Term(1 if first > 1 else 0),
                entries=entries,
                commit=Index(first - 1),
                seq=0,
            )
        )
    step = node.step
    spent = 0.0
    batch = 1000
    for start in range(0, ops, batch):
        chunk = messages[start : start + batch]
        t0 = clock()
        if with_ready:
            for m in chunk:
                step(m)
                drain(node, storage)
        else:
            for m in chunk:
                step(m)
        spent += clock() - t0
        drain(node, storage)
    return spent


# ---------------------------------------------------------------------------------- cluster benches
class MiniCluster:
    """A lean in-memory cluster for benchmarks: instant, lossless delivery; no checker."""

    def __init__(self, n: int, seed: int = 1) -> None:
        ids = list(range(1, n + 1))
        self.nodes = {i: new_node(i, ids, seed=seed * 100 + i) for i in ids}
        self.queue: deque[Message] = deque()

    def drain_all(self) -> None:
        for node, storage in self.nodes.values():
            out: list[Message] = []
            drain(node, storage, out)
            self.queue.extend(out)

    def deliver_all(self) -> None:
        for _ in range(1000):
            self.drain_all()
            if not self.queue:
                return
            while self.queue:
                m = self.queue.popleft()
                self.nodes[m.to_id][0].step(m)
        raise AssertionError("messages never settled")

    def tick_all(self) -> None:
        for node, _ in self.nodes.values():
            node.tick()
        self.deliver_all()

    def leader(self) -> RaftNode | None:
        for node, _ in self.nodes.values():
            if node.role == Role.LEADER:
                return node
        return None


def bench_election(n: int, *, from_timeout: bool) -> float:
    """Seconds to elect a leader: by campaign() (pure protocol work) or from a cold start
    ticking until a timeout fires (includes the idle ticks)."""

    def one(seed: int) -> float:
        t0 = clock()
        cluster = MiniCluster(n, seed)
        if from_timeout:
            for _ in range(1000):
                cluster.tick_all()
                if cluster.leader() is not None:
                    break
        else:
            cluster.nodes[1][0].campaign()
            cluster.deliver_all()
        assert cluster.leader() is not None
        return clock() - t0

    return min(sum(one(s) for s in range(200)) / 200 for _ in range(REPEATS))


def bench_replicate(proposals: int, batch: int) -> float:
    cluster = MiniCluster(3)
    cluster.nodes[1][0].campaign()
    cluster.deliver_all()
    leader = cluster.leader()
    assert leader is not None
    t0 = clock()
    for start in range(0, proposals, batch):
        for i in range(start, min(start + batch, proposals)):
            leader.propose(b"v%08d" % i)
        cluster.deliver_all()
    target = leader.last_index
    for _ in range(100):
        if all(node.applied_index >= target for node, _ in cluster.nodes.values()):
            break
        cluster.tick_all()
    spent = clock() - t0
    assert all(node.applied_index >= target for node, _ in cluster.nodes.values())
    return spent


# ---------------------------------------------------------------------------------- context
@dataclass(slots=True, kw_only=True)
class _MutableResponse:
    """AppendResponse's fields in a mutable slotted dataclass, for comparison only."""

    from_id: int
    to_id: int
    term: int
    success: bool
    match_index: int
    hint_index: int = 0
    hint_term: int = 0
    seq: int = 0


def bench_construct(ops: int, frozen: bool) -> float:
    cls: Any = AppendResponse if frozen else _MutableResponse
    t0 = clock()
    for _ in range(ops):
        cls(from_id=1, to_id=2, term=1, success=True, match_index=5, seq=0)
    return clock() - t0


# ---------------------------------------------------------------------------------- report
def measure(quick: bool) -> list[tuple[str, str, float, int | None]]:
    ops = 20_000 if quick else 200_000
    rows: list[tuple[str, str, float, int | None]] = []
    for name, fn in (
        ("RequestVote", bench_vote),
        ("heartbeat AppendEntries", bench_heartbeat),
        ("AppendEntries, 3 entries", bench_append3),
    ):
        rows.append(
            (
                name,
                "step",
                best_ns_per_op(functools.partial(fn, with_ready=False), ops),
                GO_REFERENCE_NS[name],
            )
        )
        rows.append(
            (
                name,
                "step + ready + persist + advance",
                best_ns_per_op(functools.partial(fn, with_ready=True), ops),
                None,
            )
        )
    for n in (3, 5):
        rows.append(
            (
                f"elect a leader, {n} nodes",
                "campaign + deliver until leader",
                bench_election(n, from_timeout=False) * 1e9,
                None,
            )
        )
        rows.append(
            (
                f"elect a leader, {n} nodes",
                "cold start, ticks until elected",
                bench_election(n, from_timeout=True) * 1e9,
                None,
            )
        )
    rows.append(
        (
            "context: build one AppendResponse",
            "frozen dataclass (as in the core)",
            best_ns_per_op(functools.partial(bench_construct, frozen=True), ops),
            None,
        )
    )
    rows.append(
        (
            "context: build one AppendResponse",
            "same fields, mutable slotted dataclass",
            best_ns_per_op(functools.partial(bench_construct, frozen=False), ops),
            None,
        )
    )
    count = 10_000
    for batch in (1, 100):
        spent = min(bench_replicate(count, batch) for _ in range(3 if not quick else 1))
        rows.append(
            (
                f"replicate {count:,} proposals, 3 nodes",
                f"{batch} per round trip",
                spent * 1e9 / count,
                None,
            )
        )
    return rows


def render(rows: list[tuple[str, str, float, int | None]], command: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        "# Core micro-benchmarks",
        "",
        "The consensus core alone (`raftkv/core`), in process, no I/O. Regenerate with:",
        "",
        "```",
        command,
        "```",
        "",
        f"- date: {now}",
        f"- machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- load average when measured: {os.getloadavg()[0]:.1f}; times are this process's CPU",
        "  time (`time.process_time`), so other load inflates them less than wall time would",
        f"- best of {REPEATS} repeats; `step` is `RaftNode.step()` alone, as the Go figures are;",
        "  the second row adds the driver's work for that message (`ready()`, MemoryStorage",
        "  writes, `advance()`). Cluster rows: total time per election or per proposal.",
        "- the machine is a shared VM: repeated runs vary by up to ~1.5x; compare rows within",
        "  one run rather than across runs.",
        "",
        "| benchmark | what is timed | ns/op | Go reference (etcd raft) |",
        "|---|---|---:|---:|",
    ]
    for name, what, ns, ref in rows:
        lines.append(f"| {name} | {what} | {ns:,.0f} | {f'{ref} ns' if ref else ''} |")
    lines += [
        "",
        "Reading it: CPython on this VM costs 20-40x Go per message. The paths stay O(entries in",
        "the message): no per-message scan of the log (tests/core/test_work_per_message.py counts",
        "storage reads). Replication is dominated by per-message overhead, which batching (many",
        "proposals per round trip) amortizes. The context rows show where much of a `step` goes:",
        "building the reply. A frozen dataclass's `__init__` sets each field through",
        "`object.__setattr__`, so one message costs about as much as the rest of the handling.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite bench/CORE.md")
    parser.add_argument("--quick", action="store_true", help="fewer operations (smoke run)")
    args = parser.parse_args()
    rows = measure(args.quick)
    command = "python bench/bench_core.py --write"
    text = render(rows, command)
    print(text)
    if args.write:
        (Path(__file__).resolve().parent / "CORE.md").write_text(text)


if __name__ == "__main__":
    main()

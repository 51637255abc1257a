"""Two versions side by side: ``python -m bench.ab REV [--workload lone] [--rounds 16]``.

A (the baseline) is git revision REV, checked out into a temporary worktree; B is this working
tree. Each gets its own cluster on loopback (3 nodes, or ``--nodes N``), both running at once,
and the same client process drives them in alternating rounds (A B, then B A, ...), so the
host's load, which on a shared 2-core machine moves a lone put's p50 by a third within minutes,
falls on both alike.

Workloads, each through the client library:
- ``lone``: 200 sequential puts per round; a round's figure is its p50 latency (ms).
- ``writers``: 64 concurrent writers for 2 s per round; puts per second.
- ``readers``: 64 concurrent linearizable readers for 2 s per round; reads per second.

It prints every round and the median of the paired differences B - A, with how many rounds B
won: the figure to quote for a change, where one run of ``bench.run`` cannot separate a 5%
change from the host's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.raftkv_cluster import ROOT, RaftkvCluster
from raftkv.client import AsyncClient

LONE_PUTS = 200
LOAD_CLIENTS = 64
LOAD_SECONDS = 2.0
VALUE = b"v" * 256


async def _lone(client: AsyncClient) -> float:
    latencies = []
    for i in range(LONE_PUTS):
        started = time.perf_counter()
        await client.put(b"lone/%d" % i, VALUE)
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies) * 1000


async def _load(op: Callable[[int, int], Awaitable[object]]) -> float:
    done = 0
    stop_at = time.perf_counter() + LOAD_SECONDS

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop_at:
            await op(w, i)
            i += 1
            done += 1

    await asyncio.gather(*(worker(w) for w in range(LOAD_CLIENTS)))
    return done / LOAD_SECONDS


async def _round(workload: str, client: AsyncClient) -> float:
    if workload == "lone":
        return await _lone(client)
    if workload == "writers":
        return await _load(lambda w, i: client.put(b"w%d/%d" % (w, i % 100), VALUE))
    return await _load(lambda w, i: client.get(b"w%d/%d" % (w, i % 100)))


async def compare(baseline: Path, workload: str, rounds: int, nodes: int = 3) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="raftkv-ab-"))
    clusters = {
        "A": RaftkvCluster(tmp / "a", size=nodes, source=baseline),
        "B": RaftkvCluster(tmp / "b", size=nodes, source=ROOT),
    }
    clients: dict[str, AsyncClient] = {}
    try:
        for name, cluster in clusters.items():
            cluster.start()
            await cluster.wait_leader()
            clients[name] = AsyncClient(cluster.endpoints)
            if workload == "readers":  # something to read
                for w in range(LOAD_CLIENTS):
                    for i in range(100):
                        await clients[name].put(b"w%d/%d" % (w, i), VALUE)
        figures: dict[str, list[float]] = {"A": [], "B": []}
        for r in range(rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                figures[name].append(await _round(workload, clients[name]))
        unit = "ms p50" if workload == "lone" else "ops/s"
        for name in ("A", "B"):
            rounds_text = ", ".join(f"{x:.2f}" if workload == "lone" else f"{x:,.0f}"
                                    for x in figures[name])
            print(f"{name}: median {statistics.median(figures[name]):,.2f} {unit}; rounds "
                  f"[{rounds_text}]")
        diffs = [b - a for a, b in zip(figures["A"], figures["B"], strict=True)]
        better = sum(d < 0 if workload == "lone" else d > 0 for d in diffs)
        print(f"B - A, paired median: {statistics.median(diffs):+,.3f} {unit}; "
              f"B better in {better} of {rounds} rounds")
    finally:
        for client in clients.values():
            await client.close()
        for cluster in clusters.values():
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the baseline: a git revision (A); B is the working tree")
    parser.add_argument("--workload", choices=("lone", "writers", "readers"), default="lone")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (3)")
    args = parser.parse_args()
    worktree = Path(tempfile.mkdtemp(prefix="raftkv-ab-base-")) / "src"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree),
                    args.rev], check=True, capture_output=True)
    try:
        asyncio.run(compare(worktree, args.workload, args.rounds, args.nodes))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                       check=False, capture_output=True)


if __name__ == "__main__":
    main()

"""Failover: the write gap after kill -9 of the leader under load, one fresh cluster per trial.

The gap is the longest pause between two consecutive successful writes from one second before
the kill until the trial ends (once a write succeeds ``AFTER_RESUME_S`` after the kill). Every
trial is bounded (``TRIAL_LIMIT_S``); a trial in which writes never resume reports ``None``
(counted as a failure).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from raftkv.loadgen import LoadSpec, Target, Workload, run_load

SETTLE_S = 2.0
TRIAL_LIMIT_S = 20.0
AFTER_RESUME_S = 1.0


class Killable(Protocol):
    endpoints: list[str]

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def kill(self, endpoint: str) -> None: ...

    async def wait_leader(self, timeout_s: float = ...) -> str: ...


class _Stamping:
    """A target wrapper that notes when each write succeeded."""

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.name = inner.name
        self.stamps: list[float] = []

    async def start(self) -> None:
        await self.inner.start()

    async def put(self, key: bytes, value: bytes, timeout_s: float) -> None:
        await self.inner.put(key, value, timeout_s)
        self.stamps.append(time.perf_counter())

    async def get(self, key: bytes, stale: bool, timeout_s: float) -> None:
        await self.inner.get(key, stale, timeout_s)

    async def close(self) -> None:
        await self.inner.close()


def longest_gap(stamps: list[float], kill_at: float) -> float | None:
    """The longest pause between successful writes from 1 s before the kill to the trial's end.

    Not "first write after the kill": a reply the dead leader sent just before dying can be read
    after ``kill_at`` (the kill blocks the event loop), and must not end the window early.
    """
    if not any(s > kill_at for s in stamps):
        return None
    window = sorted(s for s in stamps if s >= kill_at - 1.0)
    if len(window) < 2:
        return None
    return max(b - a for a, b in itertools.pairwise(window))


async def one_trial(cluster: Killable, make_target: Callable[[Any], Target],
                    clients: int) -> float | None:
    """Start ``cluster``, load it, kill its leader, return the write gap in seconds."""
    cluster.start()
    try:
        await cluster.wait_leader()
        target = _Stamping(make_target(cluster))
        await target.start()
        stop = asyncio.Event()
        spec = LoadSpec(
            workload=Workload.WRITE, clients=clients, duration_s=TRIAL_LIMIT_S, warmup_s=0,
            key_space=1000, op_timeout_s=2.0,
        )
        load = asyncio.get_running_loop().create_task(run_load(spec, target, stop=stop))
        try:
            await asyncio.sleep(SETTLE_S)
            leader = await cluster.wait_leader(2.0)
            cluster.kill(leader)
            kill_at = time.perf_counter()
            limit = kill_at + TRIAL_LIMIT_S - SETTLE_S - AFTER_RESUME_S - 1.0
            while time.perf_counter() < limit:
                if target.stamps and target.stamps[-1] > kill_at + AFTER_RESUME_S:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await load
            await target.close()
        return longest_gap(target.stamps, kill_at)
    finally:
        cluster.stop()


async def failover(make_cluster: Callable[[Path], Killable], make_target: Callable[[Any], Target],
                   *, root: Path, trials: int, clients: int = 16) -> dict[str, Any]:
    """``trials`` trials; the median gap in ms (failed trials are listed as null)."""
    gaps: list[float | None] = []
    for trial in range(trials):
        gaps.append(await one_trial(make_cluster(root / f"trial{trial}"), make_target, clients))
    measured = [g for g in gaps if g is not None]
    return {
        "trials_ms": [None if g is None else round(g * 1000, 1) for g in gaps],
        "median_ms": round(statistics.median(measured) * 1000, 1) if measured else None,
        "failed_trials": len(gaps) - len(measured),
    }

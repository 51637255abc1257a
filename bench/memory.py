"""Memory: RSS of every node idle, then while loading N keys of 256 B in four equal stages.

Rules: loading is bounded by ``time_limit_s`` (the row says how many keys were really written);
keys are written once each (sequential), through the fastest target the caller hands in.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from bench import procs
from raftkv.loadgen import LoadSpec, Target, Workload, run_load

IDLE_SETTLE_S = 3.0
STAGES = 4


class Measurable(Protocol):
    endpoints: list[str]

    def pid_of(self, endpoint: str) -> int: ...


def rss_row(cluster: Measurable) -> list[float]:
    return [round(procs.rss_mb(cluster.pid_of(e)), 1) for e in cluster.endpoints]


async def idle_rss(cluster: Measurable) -> list[float]:
    await asyncio.sleep(IDLE_SETTLE_S)
    return rss_row(cluster)


async def idle_cpu(cluster: Measurable, seconds: float = IDLE_SETTLE_S) -> list[float]:
    """CPU used per node while idle, in cores (1.0 = one full core)."""
    pids = [cluster.pid_of(e) for e in cluster.endpoints]
    before = [procs.cpu_s(p) for p in pids]
    started = time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - started
    return [round((procs.cpu_s(p) - b) / wall, 3) for p, b in zip(pids, before, strict=True)]


async def loaded_rss(cluster: Measurable, target: Target, *, keys: int, time_limit_s: float,
                     clients: int = 256, value_size_bytes: int = 256) -> dict[str, Any]:
    """Write ``keys`` keys in stages; RSS per node after each stage."""
    stages: list[dict[str, Any]] = []
    written = 0
    deadline = time.monotonic() + time_limit_s
    per_stage = max(1, keys // STAGES)
    for stage in range(STAGES):
        left_s = deadline - time.monotonic()
        if left_s <= 1:
            break
        spec = LoadSpec(
            workload=Workload.WRITE, clients=clients, duration_s=left_s, warmup_s=0,
            max_ops=per_stage, key_space=per_stage, sequential_keys=True,
            key_prefix=f"mem{stage}/", value_size_bytes=value_size_bytes,
        )
        result = await run_load(spec, target)
        written += result.ops
        stages.append({"keys": written, "rss_mb": rss_row(cluster),
                       "rate_per_s": round(result.throughput_per_s)})
    return {"target_keys": keys, "written_keys": written, "stages": stages}

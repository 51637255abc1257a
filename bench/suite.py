"""Side by side: the same scenarios against raftkv (client library and raw gRPC) and etcd,
alternating targets within each scenario, with the leader and term checked around every run.

Rules: one cluster of each kind is up at a time per size; targets are interleaved
(raftkv-client, raftkv-raw, etcd, then the next scenario) so a change in the machine's load
hits all of them alike; ``rounds`` repeats the whole list and each cell keeps the median round.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from bench import procs
from raftkv.loadgen import (
    LoadSpec,
    Target,
    Workload,
    describe_result,
    prefill,
    run_load,
    write_png,
)

SCENARIOS: list[tuple[str, LoadSpec]] = [
    ("put c=1", LoadSpec(workload=Workload.WRITE, clients=1)),
    ("put c=16", LoadSpec(workload=Workload.WRITE, clients=16)),
    ("put c=64", LoadSpec(workload=Workload.WRITE, clients=64)),
    ("put c=256", LoadSpec(workload=Workload.WRITE, clients=256)),
    ("read c=64", LoadSpec(workload=Workload.READ, clients=64, key_space=1000)),
    ("mixed 90/10 c=64", LoadSpec(workload=Workload.MIXED, clients=64, key_space=1000)),
]


LEADERSHIP_WAIT_S = 5.0


class Led(Protocol):
    endpoints: list[str]

    async def leadership(self) -> tuple[str, int]: ...

    def pid_of(self, endpoint: str) -> int: ...


def cluster_cpu_s(cluster: Led) -> list[float]:
    return [procs.cpu_s(cluster.pid_of(e)) for e in cluster.endpoints]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def leadership(cluster: Led) -> tuple[str, int]:
    """(leader, term), waiting out an election in progress (bounded by LEADERSHIP_WAIT_S)."""
    deadline = time.monotonic() + LEADERSHIP_WAIT_S
    found = await cluster.leadership()
    while not found[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        found = await cluster.leadership()
    return found


async def measured_run(cluster: Led, target: Target, spec: LoadSpec,
                       png: Path | None = None) -> dict[str, Any]:
    """One run (prefill included), with the leader and term before and after it.

    ``leader_changed`` is true when the leader or the term differs after the run (a re-election
    of the same node still bumps the term: an election happened).
    """
    if spec.reads and spec.prefill:
        await prefill(spec, target, log)
        spec = replace(spec, prefill=False)
    before = await leadership(cluster)
    cpu_before, own_before = cluster_cpu_s(cluster), time.process_time()
    result = await run_load(spec, target, progress=lambda line: log("    " + line))
    cpu_used = [b - a for a, b in zip(cpu_before, cluster_cpu_s(cluster), strict=True)]
    own_used = time.process_time() - own_before
    after = await leadership(cluster)
    log(describe_result(result))
    row = result.to_json()
    row["leader_before"], row["leader_after"] = list(before), list(after)
    row["leader_changed"] = before != after or not before[0]
    row["elections"] = max(0, after[1] - before[1]) if before[0] and after[0] else None
    # CPU per operation over the whole run (warm-up included, prefill not): less sensitive than
    # throughput to the machine's other load.
    ops_total = max(1, result.completed)
    row["cpu_ms_per_op"] = {
        "cluster": round(1000 * sum(cpu_used) / ops_total, 3),
        "busiest_node": round(1000 * max(cpu_used) / ops_total, 3),
        "load_generator": round(1000 * own_used / ops_total, 3),
        "per_node": [round(1000 * c / ops_total, 3) for c in cpu_used],
    }
    if png is not None and write_png(result, png):
        row["png"] = str(png)
    return row


TargetFactory = tuple[str, Led, Callable[[], Target]]


async def side_by_side(targets: list[TargetFactory], *, duration_s: float, warmup_s: float,
                       rounds: int, scenarios: list[tuple[str, LoadSpec]] | None = None,
                       png_dir: Path | None = None,
                       between: Callable[[], Awaitable[None]] | None = None,
                       ) -> list[dict[str, Any]]:
    """Every scenario on every target, ``rounds`` times; one row per (scenario, target)."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    prefilled: set[tuple[int, str, int]] = set()  # (cluster, key prefix, key space) already written
    for round_number in range(rounds):
        for name, base in scenarios or SCENARIOS:
            spec = replace(base, duration_s=duration_s, warmup_s=warmup_s,
                           seed=round_number + 1, key_prefix=f"r{round_number}/")
            for label, cluster, make in targets:
                log(f"== round {round_number + 1}/{rounds}: {name} on {label}")
                written = (id(cluster), spec.key_prefix, spec.key_space)
                run_spec = replace(spec, prefill=spec.reads and written not in prefilled)
                if spec.reads:
                    prefilled.add(written)
                target = make()
                png = None if png_dir is None else png_dir / f"{label}-{name}.png".replace(
                    " ", "_").replace("/", "-")
                try:
                    await target.start()
                    row = await measured_run(cluster, target, run_spec, png)
                except Exception as error:  # one failed run must not lose the others
                    log(f"!! {name} on {label} failed: {type(error).__name__}: {error}")
                    row = {"error": f"{type(error).__name__}: {error}", "throughput_per_s": 0.0,
                           "leader_changed": False, "elections": None}
                finally:
                    await target.close()
                runs.setdefault((name, label), []).append(row)
                if between is not None:
                    await between()
    return [_median_row(name, label, rows) for (name, label), rows in runs.items()]


def _median_row(name: str, label: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rows, key=lambda r: float(r["throughput_per_s"]))
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["scenario"], median["label"] = name, label
    median["rounds_throughput"] = [r["throughput_per_s"] for r in rows]
    median["leader_changed"] = any(r["leader_changed"] for r in rows)
    elections = [r.get("elections") for r in rows]
    median["elections"] = None if None in elections else sum(e or 0 for e in elections)
    if len(rows) > 1:
        median["spread_pct"] = round(
            100 * (ordered[-1]["throughput_per_s"] - ordered[0]["throughput_per_s"])
            / max(1e-9, statistics.median(r["throughput_per_s"] for r in rows)), 1)
    return median

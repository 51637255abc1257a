"""The long soak: 5 nodes, every nemesis mixed, for RAFTKV_CHAOS_SOAK_S seconds (off unless set).

    RAFTKV_CHAOS_SOAK_S=1800 pytest tests/chaos/test_nemesis_soak.py -s

Rules kept here:
- The soak is a sequence of epochs of ``EPOCH_S`` seconds on ONE cluster (its data and log keep
  growing, snapshots included). Each epoch uses its own keys (``e<n>-k<i>``), so its history is
  checked on its own right after it heals: the checker never faces a half-hour history, and a
  violation stops the soak with that epoch's artifacts.
- At the end, every node's state DB must agree and hold each epoch's final reads.
- ``RAFTKV_CHAOS_SEED`` replays the schedule, as for the bounded runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.nemesis import NEMESES, FaultLog
from tests.chaos.netns import Cluster
from tests.chaos.realcluster import RealCluster
from tests.chaos.test_nemesis import (
    SEED_ENV,
    Run,
    artifacts_dir,
    check_convergence,
    forget_artifacts,
    run_epoch,
    seed_for_run,
    server_options,
)

SOAK_ENV = "RAFTKV_CHAOS_SOAK_S"
EPOCH_S = 60.0
NODES = 5
MAX_EPOCHS = 10_000


def soak_seconds() -> float:
    return float(os.environ.get(SOAK_ENV, "0") or 0)


async def run_soak(total_s: float, seed: int, net: Cluster, artifacts: Path) -> None:
    run = Run(
        label=f"soak {total_s:g}s, {NODES} nodes, all nemeses",
        seed=seed,
        replay=f"{SEED_ENV}={seed} {SOAK_ENV}={total_s:g} pytest tests/chaos/test_nemesis_soak.py",
        artifacts=artifacts,
        faults=FaultLog(),
        origin_s=time.monotonic(),
    )
    # A small snapshot threshold so compaction and InstallSnapshot happen during the soak.
    cluster = RealCluster(
        net, artifacts / "cluster", options=server_options(snapshot_threshold=2000), delayed=(0, 1)
    )
    end_s = time.monotonic() + total_s
    finals: dict[str, str | None] = {}
    try:
        await asyncio.to_thread(cluster.start_all)
        await cluster.wait_ready(timeout_s=60.0)
        for epoch in range(MAX_EPOCHS):
            left = end_s - time.monotonic()
            if left < 10.0:
                break
            keys = [f"e{epoch}-k{i}" for i in range(5)]
            finals |= await run_epoch(
                cluster, run, sorted(NEMESES), keys=keys, duration_s=min(EPOCH_S, left),
                epoch=epoch,
            )
            print(f"soak epoch {epoch} ok ({len(run.faults.records)} faults so far)")
        await check_convergence(cluster, run, finals)
    finally:
        await cluster.close_admin()
        await asyncio.to_thread(cluster.close)


@pytest.mark.slow
@pytest.mark.skipif(soak_seconds() <= 0, reason=f"set {SOAK_ENV}=<seconds> to run the soak")
def test_soak(netns_cluster: Callable[..., Cluster]) -> None:
    seed = seed_for_run()
    artifacts = artifacts_dir("soak", seed)
    print(f"soak: seed {seed}, artifacts under {artifacts}")
    asyncio.run(run_soak(soak_seconds(), seed, netns_cluster(NODES, host_link=True), artifacts))
    forget_artifacts(artifacts)

"""``raftkv-cli bench`` against real nodes: it offers load and reports what it measured."""

from __future__ import annotations

import json

from click.testing import CliRunner

from raftkv.cli.client_main import main

from .harness import Cluster


def test_bench_reports_throughput_and_latency_of_real_writes(cluster: Cluster) -> None:
    endpoints = ",".join(n.address for n in cluster.nodes)
    result = CliRunner().invoke(
        main,
        ["--endpoints", endpoints, "-w", "json", "bench", "--clients", "4", "--duration", "3",
         "--warmup", "0.5", "--keys", "50", "-q"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ops"] > 0 and report["throughput_per_s"] > 0
    assert report["latency"]["p50_ms"] > 0
    # The writes really happened: one of the bench's keys is readable on every node.
    keys = [b"bench/%012d" % i for i in range(50)]
    assert any(cluster.nodes[0].get(key) is not None for key in keys)

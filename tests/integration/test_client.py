"""raftkv.client (the other team's Python client) against real nodes: the contract between us."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from raftkv.client import Client
from raftkv.errors import InvalidArgument

from .harness import Cluster


def test_client_operations_and_errors_across_the_cluster(shared: Cluster) -> None:
    endpoints = [n.address for n in shared.nodes]
    with Client(endpoints, timeout=10.0) as c:
        c.put("client/a", "1")
        assert c.get("client/a") == b"1"
        assert c.cas("client/a", "1", "2")
        assert not c.cas("client/a", "1", "3")
        assert c.delete("client/a")
        assert c.get("client/a") is None
        for i in range(5):
            c.put(f"client/s{i}", str(i))
        assert [k for k, _ in c.scan("client/s")] == [f"client/s{i}".encode() for i in range(5)]
        assert c.leader is not None
        with pytest.raises(InvalidArgument, match="4096"):
            c.put("k" * 5000, "v")
        statuses = c.status_all()
        assert sum(1 for s in statuses if s.role == "leader") == 1


def test_client_rides_through_a_leader_kill(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    cluster.start()
    try:
        leader = cluster.wait_ready()
        with Client([n.address for n in cluster.nodes], timeout=10.0) as c:
            c.put("before", "kill")
            leader.kill()
            started = time.monotonic()
            c.put("after", "kill")
            assert time.monotonic() - started < 5.0
            assert c.get("before") == b"kill"
            assert c.get("after") == b"kill"
    finally:
        cluster.stop()

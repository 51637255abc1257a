"""Issue 5: ``raftkv-cli status``, the gRPC health service and /metrics tell the same story."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from raftkv.pb import kv_pb2

from .harness import Cluster, free_ports, wait_for


def _metrics(port: int) -> dict[str, float]:
    """Unlabelled samples by name, and raftkv_role as ``raftkv_role:<role>``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "raftkv_role":
                samples[f"raftkv_role:{sample.labels['role']}"] = sample.value
            elif not sample.labels:
                samples[sample.name] = sample.value
    return samples


def _story(cluster: Cluster) -> list[tuple[object, ...]]:
    """Per node: what Status says, what health says, what the metrics say."""
    stories = []
    for node in cluster.nodes:
        status: kv_pb2.StatusResponse = node.status()
        health = health_pb2_grpc.HealthStub(node.channel)  # type: ignore[no-untyped-call]
        serving = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
        assert node.metrics_port is not None
        m = _metrics(node.metrics_port)
        stories.append(
            (
                (status.role, status.term, status.leader_id, status.commit_index,
                 status.applied_index, serving == health_pb2.HealthCheckResponse.SERVING),
                (next(k.split(":")[1] for k, v in m.items() if k.startswith("raftkv_role:") and v),
                 int(m["raftkv_term"]), int(m["raftkv_leader_id"]), int(m["raftkv_commit_index"]),
                 int(m["raftkv_applied_index"]), m["raftkv_serving"] == 1),
            )
        )
    return stories


def test_status_health_and_metrics_agree_on_every_node(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    for node, port in zip(cluster.nodes, free_ports(len(cluster.nodes)), strict=True):
        node.metrics_port = port
    cluster.start()
    try:
        leader = cluster.wait_ready()
        for i in range(20):
            leader.put(b"k%d" % i, b"v")

        def agree() -> bool:
            try:
                stories = _story(cluster)
            except (grpc.RpcError, OSError, KeyError, StopIteration):
                return False  # a node still starting its endpoints
            return all(said == measured for said, measured in stories)

        # Metrics refresh on every driver iteration (heartbeats keep a quiet node iterating):
        # poll until a quiet cluster's three views line up, then check what they say.
        wait_for(agree, 15, "status, health and metrics to agree")
        stories = _story(cluster)
        roles = sorted(said[0] for said, _ in stories)
        assert roles == ["follower", "follower", "leader"]
        assert all(said[5] for said, _ in stories)  # every node SERVING, and the metric says so
        assert len({said[2] for said, _ in stories}) == 1  # one leader id everywhere
    finally:
        cluster.stop()

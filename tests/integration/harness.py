"""Real ``raftkv serve`` processes on loopback, driven through raw gRPC stubs (test harness)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc

from raftkv.pb import kv_pb2, kv_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH", "")]))
    return e


def wait_for(fn: Callable[[], T | None], timeout_s: float = 15.0, what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = fn()
            if result:
                return result
        except grpc.RpcError as exc:
            last_error = exc
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached in {timeout_s}s (last error: {last_error})")


class Node:
    def __init__(self, cluster: Cluster, node_id: int) -> None:
        self.cluster = cluster
        self.id = node_id
        self.port = cluster.ports[node_id - 1]
        self.address = f"127.0.0.1:{self.port}"
        self.data_dir = cluster.root / f"node-{node_id}"
        self.log_path = cluster.root / f"node-{node_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port: int | None = None  # set before start() to serve /metrics
        self.channel = grpc.insecure_channel(self.address)
        self.kv = kv_pb2_grpc.KVStub(self.channel)  # type: ignore[no-untyped-call]
        self.admin = kv_pb2_grpc.ClusterStub(self.channel)  # type: ignore[no-untyped-call]

    def membership_args(self) -> list[str]:
        """How this node learns its cluster: bootstrap members (a joiner overrides this)."""
        return ["--cluster", ",".join(f"{n.id}={n.address}" for n in self.cluster.nodes)]

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "raftkv.cli.server_main",
            "serve",
            "--id",
            str(self.id),
            "--listen",
            self.address,
            *self.membership_args(),
            "--data-dir",
            str(self.data_dir),
            *self.cluster.extra_args,
        ]
        if self.metrics_port is not None:
            args += ["--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def terminate(self, timeout_s: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self.proc = None
        return code

    def status(self) -> kv_pb2.StatusResponse:
        response: kv_pb2.StatusResponse = self.admin.Status(kv_pb2.StatusRequest(), timeout=1)
        return response

    def put(self, key: bytes, value: bytes, timeout: float = 5.0) -> kv_pb2.PutResponse:
        request = kv_pb2.PutRequest(key=key, value=value)
        response: kv_pb2.PutResponse = _retry_unavailable(self.kv.Put, request, timeout)
        return response

    def get(self, key: bytes, *, stale: bool = False) -> bytes | None:
        consistency = kv_pb2.CONSISTENCY_STALE if stale else kv_pb2.CONSISTENCY_LINEARIZABLE
        request = kv_pb2.GetRequest(key=key, consistency=consistency)
        r = _retry_unavailable(self.kv.Get, request, 5.0)
        return r.value if r.found else None


def _retry_unavailable(method: Any, request: Any, timeout_s: float) -> Any:
    """Call until it answers or the deadline passes, retrying UNAVAILABLE ("no leader known":
    the server's promise is that nothing was applied, so a retry is safe). On a loaded machine a
    leadership change can land between finding the leader and the next call."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return method(request, timeout=max(0.05, remaining))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or remaining <= 0.1:
                raise
        time.sleep(0.05)  # poll interval while the cluster elects a leader


class Cluster:
    def __init__(self, root: Path, n: int = 3, extra_args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.ports = free_ports(n)
        self.extra_args = extra_args
        self.nodes = [Node(self, i) for i in range(1, n + 1)]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.proc is not None]

    def leader(self, timeout_s: float = 15.0) -> Node:
        def find() -> Node | None:
            for node in self.running():
                try:
                    status = node.status()
                except grpc.RpcError:
                    continue
                if status.role == "leader":
                    return node
            return None

        return wait_for(find, timeout_s, "a leader")

    def wait_ready(self, timeout_s: float = 20.0) -> Node:
        """Every running node answers and knows the leader; returns the leader."""

        def ready() -> bool:
            return all(n.status().leader_id for n in self.running())

        wait_for(ready, timeout_s, "every node knowing a leader")
        return self.leader()

    def stop(self) -> None:
        for node in self.running():
            try:
                node.terminate()
            except subprocess.TimeoutExpired:
                node.kill()
        for node in self.nodes:
            node.channel.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- node {n.id}\n{n.log_path.read_text()[-3000:]}"
            for n in self.nodes
            if n.log_path.exists()
        )


@contextlib.contextmanager
def ready_cluster(root: Path, n: int = 3) -> Iterator[Cluster]:
    """A cluster started under ``root`` with a leader every node knows; stopped on exit."""
    cluster = Cluster(root, n)
    cluster.start()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()

"""``raftkv up`` (:func:`run_up`): N ``raftkv serve`` processes on loopback, in the foreground.

Rules: every node gets DATA_DIR/node-<id> and a log file DATA_DIR/node-<id>.log; the same command
on the same directory brings the same cluster back. Children run in their own sessions so Ctrl-C
reaches only this supervisor, which then stops each node with SIGTERM (SIGKILL after a grace).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import grpc

import raftkv
from raftkv.pb import kv_pb2, kv_pb2_grpc

_STOP_GRACE_S = 10.0
_LEADER_WAIT_S = 30.0


def _command(
    node_id: int, nodes: int, data_dir: Path, base_port: int, metrics_base: int
) -> list[str]:
    cluster = ",".join(f"{i}=127.0.0.1:{base_port + i - 1}" for i in range(1, nodes + 1))
    return [
        sys.executable,
        "-m",
        "raftkv.cli.server_main",
        "serve",
        "--id",
        str(node_id),
        "--listen",
        f"127.0.0.1:{base_port + node_id - 1}",
        "--cluster",
        cluster,
        "--data-dir",
        str(data_dir / f"node-{node_id}"),
        "--metrics-listen",
        f"127.0.0.1:{metrics_base + node_id - 1}",
    ]


def _child_env() -> dict[str, str]:
    """The children import this very raftkv, installed or run from a checkout."""
    env = dict(os.environ)
    root = str(Path(raftkv.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return env


def _leader(endpoints: list[str]) -> tuple[int, str] | None:
    for endpoint in endpoints:
        try:
            with grpc.insecure_channel(endpoint) as channel:
                stub = kv_pb2_grpc.ClusterStub(channel)  # type: ignore[no-untyped-call]
                status = stub.Status(kv_pb2.StatusRequest(), timeout=0.5)
        except grpc.RpcError:
            continue
        if status.leader_id:
            return status.leader_id, status.leader_address
    return None


def run_up(*, nodes: int, data_dir: Path, base_port: int, metrics_base_port: int) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    endpoints = [f"127.0.0.1:{base_port + i}" for i in range(nodes)]
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for node_id in range(1, nodes + 1):
        log_file = (data_dir / f"node-{node_id}.log").open("ab")
        children[node_id] = subprocess.Popen(
            _command(node_id, nodes, data_dir, base_port, metrics_base_port),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
    deadline = time.monotonic() + _LEADER_WAIT_S
    leader = None
    while not stopping and leader is None and time.monotonic() < deadline:
        leader = _leader(endpoints)
        if leader is None:
            if any(c.poll() is not None for c in children.values()):
                break
            time.sleep(0.1)
    if leader is None:
        print(f"raftkv up: no leader elected; see the logs in {data_dir}", file=sys.stderr)
        _stop_all(children)
        return 1
    print(f"raftkv cluster of {nodes} node(s) is up; leader is node {leader[0]} ({leader[1]})")
    for i, endpoint in enumerate(endpoints, start=1):
        print(
            f"  node {i}: {endpoint}  metrics http://127.0.0.1:{metrics_base_port + i - 1}/metrics"
            f"  log {data_dir / f'node-{i}.log'}"
        )
    print(f"\ntry:\n  export RAFTKV_ENDPOINTS={','.join(endpoints)}")
    print("  raftkv-cli put greeting hello && raftkv-cli get greeting")
    print("\nCtrl-C stops the cluster; `raftkv up` again on the same --data-dir brings it back.")
    sys.stdout.flush()
    reported: set[int] = set()
    while not stopping:
        for node_id, child in children.items():
            if child.poll() is not None and node_id not in reported:
                reported.add(node_id)
                print(
                    f"raftkv up: node {node_id} exited with code {child.returncode}; see "
                    f"{data_dir / f'node-{node_id}.log'}",
                    file=sys.stderr,
                )
        time.sleep(0.2)
    print("stopping...", file=sys.stderr)
    return _stop_all(children)


def _stop_all(children: dict[int, subprocess.Popen[bytes]]) -> int:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    failed = 0
    for node_id, child in children.items():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"raftkv up: node {node_id} did not stop in time; killing it", file=sys.stderr)
            child.kill()
            child.wait()
            failed += 1
    return 0 if failed == 0 else 1
